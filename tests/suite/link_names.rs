//! Who is where across linked servers: the `here:` line a member gets on
//! joining names the other servers' members too, and `/msg NICK` finds a
//! NICK that only another server has.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::time::Instant;

use crate::common::broker::Broker;
use crate::common::member::Member;
use crate::common::*;
use crate::link::{line_where, linked};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_member_is_told_who_is_here_on_every_server() {
    let broker = Broker::start().await;
    let one = linked(&broker, "one", &[]).await;
    let two = linked(&broker, "two", &[]).await;
    let _alice = Member::named(one.address, "alice").await;
    let mut bob = Member::join(two.address).await;
    assert_eq!(
        bob.greeting,
        [
            "*** welcome to #lobby, you are guest1",
            "*** here: alice@one, guest1 (2)",
            "*** type to talk; /help for commands; \".\" or /quit to leave",
        ]
    );
    bob.send("/join rust").await;
    // alice's rename may reach bob just after the here line that has it.
    line_where(&mut bob, |line| line == "*** you are in #rust").await;
    bob.expect("*** here: guest1 (1)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_linked_server_delays_the_here_line_half_a_second_at_most() {
    let broker = Broker::start().await;
    let one = linked(&broker, "one", &[]).await;
    // Something on the broker that takes `/who` questions and never answers.
    let silent = async_nats::connect(broker.url()).await.unwrap();
    let _questions = silent.subscribe("chat.who").await.unwrap();
    silent.flush().await.unwrap();
    let mut member = BufReader::new(connect(one.address).await);
    let mut welcome = String::new();
    within("the welcome", member.read_line(&mut welcome))
        .await
        .unwrap();
    assert!(welcome.starts_with("*** welcome"), "{welcome:?}");
    let welcomed = Instant::now();
    let mut here = String::new();
    within("the here line", member.read_line(&mut here))
        .await
        .unwrap();
    let waited = welcomed.elapsed();
    assert_eq!(here, "*** here: guest1 (1)\r\n");
    assert!(
        waited < Duration::from_millis(900),
        "the here line waited {waited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msg_finds_the_only_server_with_that_nick_and_names_several() {
    let broker = Broker::start().await;
    let one = linked(&broker, "one", &[]).await;
    let two = linked(&broker, "two", &[]).await;
    let three = linked(&broker, "three", &[]).await;
    let mut alice = Member::named(one.address, "alice").await;
    let mut bob = Member::named(two.address, "bob").await;
    alice.send("/msg BOB psst").await;
    let sent = line_where(&mut alice, |line| !line.starts_with("***")).await;
    assert_eq!(sent, "-> *bob@two* psst");
    line_where(&mut bob, |line| line == "*alice@one* psst").await;
    alice.send("/msg nobody hi").await;
    alice.expect("error: no such nick \"nobody\"").await;
    // A nick named with this server's node is looked for here only.
    alice.send("/msg bob@one hi").await;
    alice.expect("error: no such nick \"bob\"").await;

    let mut other_bob = Member::named(three.address, "bob").await;
    alice.send("/msg bob which one?").await;
    let several = line_where(&mut alice, |line| line.starts_with("error:")).await;
    assert_eq!(
        several,
        "error: \"bob\" is on several servers: bob@three, bob@two"
    );
    bob.send("/quit").await;
    bob.rest().await;
    alice.send("/msg bob now you").await;
    let sent = line_where(&mut alice, |line| line.starts_with("->")).await;
    assert_eq!(sent, "-> *bob@three* now you");
    line_where(&mut other_bob, |line| line == "*alice@one* now you").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_member_sends_at_once_waits_for_its_greeting() {
    let broker = Broker::start().await;
    let one = linked(&broker, "one", &[]).await;
    let _two = linked(&broker, "two", &[]).await;
    let mut stream = connect(one.address).await;
    tokio::io::AsyncWriteExt::write_all(&mut stream, b"/nick alice\n/join rust\n/who\n")
        .await
        .unwrap();
    let mut member = BufReader::new(stream);
    let mut lines = Vec::new();
    for _ in 0..7 {
        let mut line = String::new();
        within("a line", member.read_line(&mut line)).await.unwrap();
        lines.push(line.trim_end().to_string());
    }
    assert_eq!(
        lines,
        [
            "*** welcome to #lobby, you are guest1",
            "*** here: guest1 (1)",
            "*** type to talk; /help for commands; \".\" or /quit to leave",
            "*** you are now alice",
            "*** you are in #rust",
            "*** here: alice (1)",
            "*** here in #rust (1): alice",
        ]
    );
}
