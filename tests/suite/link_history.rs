//! Linked rooms keep what they say, on a broker with JetStream
//! (`nats-server -js`, its store in a directory of the test's own): a
//! room's history is the room's across servers, and what is said during an
//! outage arrives late, once each and in order, or is counted as lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use chat::link::STREAM;
use chat::protocol::chat::{LINK_LOST, LINK_RESTORED, link_restored};

use crate::common::broker::{Broker, Store};
use crate::common::member::Member;
use crate::common::proxy::Proxy;
use crate::common::*;
use crate::history::{join_room, recent_lines};
use crate::link::line_where;

/// `chat-server --chat` linked through the broker at `url` as `node`.
async fn linked_at(url: &str, node: &str, extra: &[&str]) -> Server {
    let mut args = vec!["--chat", "--link", url, "--node", node, "--max-rate", "0"];
    args.extend_from_slice(extra);
    let mut server = Server::start(&args).await;
    server
        .wait_for_log("the history stream", |line| {
            line.contains(&format!("the stream {STREAM}"))
        })
        .await;
    server
}

/// Waits until the broker's history holds `count` lines in all, the
/// newest published last: what was said has been kept.
async fn stream_has(url: &str, count: u64) {
    let client = async_nats::connect(url).await.expect("a test client");
    let context = jetstream::new(client);
    within("the broker to keep the lines", async {
        loop {
            if let Ok(mut stream) = context.get_stream(STREAM).await
                && let Ok(info) = stream.info().await
                && info.state.last_sequence >= count
            {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
}

/// The lines `member` receives up to and with the one `last`.
async fn lines_through(member: &mut Member, last: &str) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let line = within_for(Duration::from_secs(10), last, member.line()).await;
        let done = line == last;
        lines.push(line);
        if done {
            return lines;
        }
    }
}

/// alice on `one` and bob on `two`, in #lobby, each seen by the other.
async fn alice_and_bob(one: &Server, two: &Server) -> (Member, Member) {
    let mut alice = Member::named(one.address, "alice").await;
    let mut bob = Member::named(two.address, "bob").await;
    line_where(&mut alice, |line| line == "*** guest1@two is now bob@two").await;
    alice.send("ping").await;
    line_where(&mut bob, |line| line == "<alice@one> ping").await;
    (alice, bob)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_joining_on_another_server_sees_what_was_said_there() {
    let store = Store::new();
    let broker = Broker::start_jetstream(&store, None).await;
    let url = broker.url();
    let one = linked_at(&url, "one", &["--history", "5"]).await;
    let mut alice = Member::named(one.address, "alice").await;
    let mut dave = Member::named(one.address, "dave").await;
    // Talk, a /me, a private message, a rename and a join: only the talk
    // is kept, and only its last five lines.
    for line in [
        "line 0",
        "line 1",
        "/me waves",
        "/msg dave secret",
        "line 2",
    ] {
        alice.send(line).await;
    }
    dave.send("/nick david").await;
    alice.send("line 3").await;
    alice.send("bell\x07end").await;
    line_where(&mut dave, |line| line == r"<alice> bell\x07end").await;
    stream_has(&url, 6).await;

    alice.send("/join #rust").await;
    line_where(&mut alice, |line| line.starts_with("*** here: ")).await;
    alice.send("in rust").await;
    stream_has(&url, 7).await;

    // Nobody on two was ever in #lobby or #rust.
    let two = linked_at(&url, "two", &["--history", "5"]).await;
    let mut bob = Member::join(two.address).await;
    let kept = [
        "<alice@one> line 1",
        "* alice@one waves",
        "<alice@one> line 2",
        "<alice@one> line 3",
        r"<alice@one> bell\x07end",
    ];
    assert_eq!(recent_lines(&bob.recent, "lobby"), kept);
    let (recent, _) = join_room(&mut bob, "rust").await;
    assert_eq!(recent_lines(&recent, "rust"), ["<alice@one> in rust"]);

    // A server that keeps fewer bytes a room shows the newest that fit,
    // and says the stream keeps another number of lines than it asks.
    let mut three = Server::start(&[
        "--chat",
        "--link",
        &url,
        "--node",
        "three",
        "--history",
        "7",
        "--history-bytes",
        "50",
    ])
    .await;
    three
        .wait_for_log("the stream's settings", |line| {
            line.contains("keeps 5 lines a room, not 7 (--history)")
        })
        .await;
    let carol = Member::join(three.address).await;
    assert_eq!(recent_lines(&carol.recent, "lobby"), kept[3..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_lines_during_a_join_are_neither_lost_nor_shown_twice() {
    let store = Store::new();
    let broker = Broker::start_jetstream(&store, None).await;
    let one = linked_at(&broker.url(), "one", &[]).await;
    let two = linked_at(&broker.url(), "two", &[]).await;
    let mut alice = Member::named(one.address, "alice").await;
    // bob joins on two while alice talks, fifty lines a millisecond, once
    // the broker has the first ten, until he is in (at most 20,000 lines).
    let joined = Arc::new(AtomicBool::new(false));
    let talking = tokio::spawn({
        let joined = Arc::clone(&joined);
        async move {
            for n in 1..=20_000 {
                alice.send(&format!("n {n}")).await;
                if joined.load(Ordering::Relaxed) {
                    break;
                }
                if n % 50 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            alice.send("end").await;
            alice
        }
    });
    stream_has(&broker.url(), 10).await;
    let mut bob = Member::join(two.address).await;
    joined.store(true, Ordering::Relaxed);
    let _alice = talking.await.unwrap();
    let mut seen = recent_lines(&bob.recent, "lobby");
    let during = seen.len();
    seen.extend(lines_through(&mut bob, "<alice@one> end").await);
    let numbers: Vec<u32> = seen
        .iter()
        .filter_map(|line| line.strip_prefix("<alice@one> n "))
        .map(|n| n.parse().unwrap())
        .collect();
    // From the first bob saw to the last, each once and in order; some of
    // them in the history, some live.
    let (first, last) = (numbers[0], numbers[numbers.len() - 1]);
    assert_eq!(numbers, (first..=last).collect::<Vec<_>>(), "{seen:?}");
    assert!(during > 0 && numbers.len() > during, "{seen:?}");
}

/// alice on `one` (started with `one_args`) and bob on `two`; the broker
/// SIGKILLed, alice says `during 1` to `during 20`, the broker is back on
/// its port and store, and alice says `after` once told so. Returns the
/// notice alice was told it with, and what bob got after his through
/// `after`.
async fn twenty_lines_in_an_outage(one_args: &[&str]) -> (String, Vec<String>) {
    let store = Store::new();
    let broker = Broker::start_jetstream(&store, None).await;
    let one = linked_at(&broker.url(), "one", one_args).await;
    let two = linked_at(&broker.url(), "two", &[]).await;
    let (mut alice, mut bob) = alice_and_bob(&one, &two).await;

    let port = broker.kill().await;
    alice.expect(LINK_LOST).await;
    bob.expect(LINK_LOST).await;
    for n in 1..=20 {
        alice.send(&format!("during {n}")).await;
    }
    let _broker = Broker::start_jetstream(&store, Some(port)).await;
    let notice = alice.line().await;
    alice.send("after").await;
    line_where(&mut bob, |line| line == LINK_RESTORED).await;
    (notice, lines_through(&mut bob, "<alice@one> after").await)
}

/// alice's lines `during FIRST` to `during 20`, then `after`, as bob sees
/// them.
fn during_from(first: u64) -> Vec<String> {
    let during = (first..=20).map(|n| format!("<alice@one> during {n}"));
    during.chain(["<alice@one> after".to_string()]).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_said_while_the_broker_is_down_arrive_once_in_order_after_it_is_back() {
    let (notice, lines) = twenty_lines_in_an_outage(&[]).await;
    // Every line was kept: the plain notice.
    assert_eq!(notice, LINK_RESTORED);
    assert_eq!(lines, during_from(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_cut_off_from_the_broker_catches_up_once_back() {
    let store = Store::new();
    let broker = Broker::start_jetstream(&store, None).await;
    // one reaches the broker through a proxy that can cut it alone.
    let proxy = Proxy::start(broker.port).await;
    let one = linked_at(&proxy.url(), "one", &[]).await;
    let two = linked_at(&broker.url(), "two", &[]).await;
    let (mut alice, mut bob) = alice_and_bob(&one, &two).await;

    proxy.cut(true);
    alice.expect(LINK_LOST).await;
    let from_bob: Vec<String> = (1..=20).map(|n| format!("bob {n}")).collect();
    for line in &from_bob {
        bob.send(line).await;
    }
    let from_alice: Vec<String> = (1..=5).map(|n| format!("alice {n}")).collect();
    for line in &from_alice {
        alice.send(line).await;
    }
    stream_has(&broker.url(), 21).await;
    proxy.cut(false);
    // two stayed linked: its members get one's lines late, without notice.
    let wanted: Vec<String> = from_alice
        .iter()
        .map(|line| format!("<alice@one> {line}"))
        .collect();
    assert_eq!(lines_through(&mut bob, "<alice@one> alice 5").await, wanted);
    bob.send("after").await;
    line_where(&mut alice, |line| line == LINK_RESTORED).await;
    let mut wanted: Vec<String> = from_bob
        .iter()
        .map(|line| format!("<bob@two> {line}"))
        .collect();
    wanted.push("<bob@two> after".to_string());
    assert_eq!(lines_through(&mut alice, "<bob@two> after").await, wanted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buffer_too_small_for_the_outage_loses_the_oldest_and_says_how_many() {
    let (notice, lines) = twenty_lines_in_an_outage(&["--link-buffer", "1000"]).await;
    let lost: u64 = notice
        .strip_prefix(&format!("{LINK_RESTORED}; "))
        .and_then(|rest| rest.strip_suffix(" lines said meanwhile were lost"))
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("a restored notice with a count: {notice:?}"));
    assert_eq!(notice, link_restored(lost));
    assert!((1..20).contains(&lost), "{lost} lost");
    // The newest arrive, in order.
    assert_eq!(lines, during_from(lost + 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_outlives_every_chat_server() {
    let store = Store::new();
    let broker = Broker::start_jetstream(&store, None).await;
    let url = broker.url();
    let one = linked_at(&url, "one", &[]).await;
    let two = linked_at(&url, "two", &[]).await;
    let (mut alice, mut bob) = alice_and_bob(&one, &two).await;
    bob.send("from two").await;
    line_where(&mut alice, |line| line == "<bob@two> from two").await;
    stream_has(&url, 2).await;
    drop((alice, bob, one, two));

    // The same nodes again: one's own lines of its earlier run are history
    // too.
    let one = linked_at(&url, "one", &[]).await;
    let carol = Member::join(one.address).await;
    assert_eq!(
        recent_lines(&carol.recent, "lobby"),
        ["<alice> ping", "<bob@two> from two"]
    );
}
