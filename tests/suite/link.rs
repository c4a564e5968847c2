//! Linked chat servers through a real NATS broker: each test starts its own
//! `nats-server` and two or three `chat-server --chat --link` processes.

use std::time::Duration;

use crate::common::broker::Broker;
use crate::common::member::Member;
use crate::common::*;
use tokio::time::Instant;

pub async fn linked(broker: &Broker, node: &str, extra: &[&str]) -> Server {
    let url = broker.url();
    let mut args = vec!["--chat", "--link", &url, "--node", node, "--max-rate", "0"];
    args.extend_from_slice(extra);
    Server::start(&args).await
}

/// A broker, and two servers linked through it as `one` and `two`.
async fn two_linked(extra: &[&str]) -> (Broker, Server, Server) {
    let broker = Broker::start().await;
    let one = linked(&broker, "one", extra).await;
    let two = linked(&broker, "two", extra).await;
    (broker, one, two)
}

/// A free loopback port where no broker listens (yet), and its URL.
fn no_broker_yet() -> (u16, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    (port, format!("nats://127.0.0.1:{port}"))
}

/// Reads lines until `wanted` says one is the one, and returns it.
pub async fn line_where(member: &mut Member, wanted: impl Fn(&str) -> bool) -> String {
    loop {
        let line = member.line().await;
        if wanted(&line) {
            return line;
        }
    }
}

#[tokio::test]
async fn nicks_notices_who_rooms_and_msg_cross_servers() {
    let broker = Broker::start().await;
    let one = linked(&broker, "one", &[]).await;
    let two = linked(&broker, "two", &[]).await;
    let mut alice = Member::named(one.address, "alice").await;
    let mut bob = Member::join(two.address).await;
    alice.expect("*** guest1@two joined").await;
    bob.send("/nick bob").await;
    // alice's rename on one may still be on its way to two.
    line_where(&mut bob, |line| line == "*** you are now bob").await;
    alice.expect("*** guest1@two is now bob@two").await;

    alice.send("hello from one").await;
    bob.expect("<alice@one> hello from one").await;
    bob.send("/me waves \x1b[1m").await;
    alice.expect(r"* bob@two waves \x1B[1m").await;

    let mut carol = Member::named(one.address, "carol").await;
    // The room's recent talk, from this server and the other, without the
    // notices between.
    let recent = &carol.recent[1..carol.recent.len().saturating_sub(1)];
    assert_eq!(
        recent,
        ["<alice> hello from one", r"* bob@two waves \x1B[1m"]
    );
    alice.expect("*** guest2 joined").await;
    alice.expect("*** guest2 is now carol").await;
    bob.expect("*** guest2@one joined").await;
    bob.expect("*** guest2@one is now carol@one").await;
    carol.send("/who").await;
    carol
        .expect("*** here in #lobby (3): alice, bob@two, carol")
        .await;
    bob.send("/who").await;
    bob.expect("*** here in #lobby (3): alice@one, bob, carol@one")
        .await;

    bob.send("/join rust").await;
    bob.expect("*** you are in #rust").await;
    bob.expect("*** here: bob (1)").await;
    alice.expect("*** bob@two left (to #rust)").await;
    carol.expect("*** bob@two left (to #rust)").await;
    alice.send("/rooms").await;
    alice.expect("*** rooms: #lobby (2), #rust (1)").await;

    alice.send("/msg bob@two psst").await;
    alice.expect("-> *bob@two* psst").await;
    bob.expect("*alice@one* psst").await;
    alice.send("/msg nobody@two hi").await;
    alice.expect("error: no such nick \"nobody@two\"").await;
    alice.send("/msg carol@one local").await;
    alice.expect("-> *carol* local").await;
    carol.expect("*alice* local").await;
    alice.send("/msg bob@nowhere hi").await;
    alice.expect("error: no such nick \"bob@nowhere\"").await;

    bob.send("/quit bye").await;
    bob.rest().await;
    alice.send("/join rust").await;
    alice.expect("*** you are in #rust").await;
    // bob's leave may cross alice's arrival in #rust on the broker.
    let here = line_where(&mut alice, |line| line.starts_with("*** here: ")).await;
    assert!(here.starts_with("*** here: alice"), "{here}");
    carol.expect("*** alice left (to #rust)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_cross_servers_exactly_once_whole_and_in_order() {
    const LINES: usize = 10_000;
    // The members read only once both have sent everything: room for it.
    let (_broker, one, two) = two_linked(&["--quiet", "--sendq", "16777216"]).await;
    let mut alice = Member::named(one.address, "alice").await;
    let mut bob = Member::named(two.address, "bob").await;
    let carol = Member::named(one.address, "carol").await;
    let dave = Member::named(two.address, "dave").await;
    // Everyone has seen everyone arrive before the talk starts.
    line_where(&mut alice, |line| line == "*** guest2@two is now dave@two").await;
    line_where(&mut bob, |line| line == "*** guest2 is now dave").await;

    let talk = |name: &str| -> String {
        (0..LINES)
            .map(|n| format!("{name} {n} {}\n", "x".repeat(n % 50)))
            .collect()
    };
    /// Checks that `member` receives exactly the lines of `senders` (nick
    /// as shown to it, name in the text), each once and in order.
    async fn receive_all(mut member: Member, senders: Vec<(String, String)>) {
        let shown: Vec<String> = senders.iter().map(|(shown, _)| shown.clone()).collect();
        receive_in_order(&mut member, &shown, LINES, |at, n| {
            format!("{} {n} {}", senders[at].1, "x".repeat(n % 50))
        })
        .await;
        // Nothing more: the next line answers this.
        member.send("/rooms").await;
        let line = line_where(&mut member, |line| {
            !line.starts_with("*** ") || line.starts_with("*** rooms")
        })
        .await;
        assert!(
            line.starts_with("*** rooms"),
            "{} received {line}",
            member.nick
        );
    }
    let started = Instant::now();
    alice.send_bytes(talk("alice").as_bytes()).await;
    bob.send_bytes(talk("bob").as_bytes()).await;
    let checks = [
        tokio::spawn(receive_all(
            carol,
            vec![
                ("alice".into(), "alice".into()),
                ("bob@two".into(), "bob".into()),
            ],
        )),
        tokio::spawn(receive_all(
            dave,
            vec![
                ("alice@one".into(), "alice".into()),
                ("bob".into(), "bob".into()),
            ],
        )),
        tokio::spawn(receive_all(alice, vec![("bob@two".into(), "bob".into())])),
        tokio::spawn(receive_all(bob, vec![("alice@one".into(), "alice".into())])),
    ];
    for check in checks {
        within("every line to cross", check)
            .await
            .expect("each member's lines check out");
    }
    eprintln!("2 x {LINES} lines crossed in {:?}", started.elapsed());
}

#[tokio::test]
async fn a_node_name_in_use_is_refused_at_start() {
    let broker = Broker::start().await;
    let mut one = linked(&broker, "one", &[]).await;
    // Said once the broker has its subscriptions: the second finds it.
    one.wait_for_log("the link", |line| line.starts_with("linked through"))
        .await;
    let output = within(
        "the second server to exit",
        command(SERVER)
            .args([
                "--chat",
                "--port",
                "0",
                "--host",
                "127.0.0.1",
                "--link",
                &broker.url(),
                "--node",
                "one",
            ])
            .output(),
    )
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("chat-server: error: node name \"one\" is already in use"),
        "{stderr}"
    );
    // Every start-up check comes before the server says it listens.
    assert!(!stderr.contains("listening on"), "{stderr}");
}

#[tokio::test]
async fn the_broker_going_away_leaves_rooms_working_locally_and_its_return_restores_the_link() {
    // Without JetStream: what is said while the broker is away is lost,
    // and the log says why.
    let broker = Broker::start().await;
    let mut one = linked(&broker, "one", &[]).await;
    one.wait_for_log("the broker's lack of history", |line| {
        line.contains("has no JetStream (nats-server -js)")
    })
    .await;
    let two = linked(&broker, "two", &[]).await;
    let mut alice = Member::named(one.address, "alice").await;
    let mut carol = Member::named(one.address, "carol").await;
    let mut bob = Member::named(two.address, "bob").await;
    line_where(&mut alice, |line| line == "*** guest1@two is now bob@two").await;
    line_where(&mut carol, |line| line == "*** guest1@two is now bob@two").await;
    alice.send("before").await;
    line_where(&mut bob, |line| line == "<alice@one> before").await;
    carol.expect("<alice> before").await;

    let port = broker.kill().await;
    let lost = "*** lost link to other servers; only people on this server hear you";
    alice.expect(lost).await;
    carol.expect(lost).await;
    bob.expect(lost).await;
    alice.send("while away").await;
    carol.expect("<alice> while away").await;

    let broker = Broker::start_on(Some(port)).await;
    let back = Instant::now();
    let restored = "*** link to other servers restored";
    alice.expect(restored).await;
    bob.expect(restored).await;
    carol.expect(restored).await;
    let took = back.elapsed();
    eprintln!("the link came back {took:?} after the broker");
    assert!(
        took < Duration::from_secs(1),
        "the link came back {took:?} after the broker"
    );
    alice.send("after").await;
    // Nothing sent while away, nothing twice: the next line is this one.
    bob.expect("<alice@one> after").await;
    bob.send("and back").await;
    alice.expect("<bob@two> and back").await;
    carol.expect("<alice> after").await;
    carol.expect("<bob@two> and back").await;
    drop(broker);
}

#[tokio::test]
async fn a_server_started_before_its_broker_links_once_it_is_there() {
    // A port nothing listens on yet.
    let (port, url) = no_broker_yet();
    let mut one = Server::start(&["--chat", "--link", &url, "--node", "one"]).await;
    one.wait_for_log("the link to be reported down", |line| {
        line.contains("does not answer")
    })
    .await;
    let broker = Broker::start_on(Some(port)).await;
    one.wait_for_log("the link to come up", |line| {
        line.contains("link to") && line.contains("up")
    })
    .await;
    let two = linked(&broker, "two", &[]).await;
    let mut alice = Member::named(one.address, "alice").await;
    let mut bob = Member::join(two.address).await;
    // Once bob's server has heard of alice, alice's server hears bob's.
    line_where(&mut alice, |line| line == "*** guest1@two joined").await;
    alice.send("late but here").await;
    // alice's own arrival may reach bob's server late, under load.
    line_where(&mut bob, |line| line == "<alice@one> late but here").await;
}

/// Reads until `member` has received `lines` lines from each of `senders`
/// (nicks as shown to it), checking that the `n`th of sender `at` is
/// `expected(at, n)`: each once and in order. Notices are passed over.
async fn receive_in_order(
    member: &mut Member,
    senders: &[String],
    lines: usize,
    expected: impl Fn(usize, usize) -> String,
) {
    let mut next = vec![0; senders.len()];
    while next.iter().any(|&n| n < lines) {
        let line = member.line().await;
        if line.starts_with("*** ") {
            continue;
        }
        let (shown, text) = line[1..]
            .split_once("> ")
            .unwrap_or_else(|| panic!("{line}"));
        let at = senders
            .iter()
            .position(|nick| nick == shown)
            .unwrap_or_else(|| panic!("{line}"));
        assert_eq!(text, expected(at, next[at]), "{} received", member.nick);
        next[at] += 1;
    }
}

/// A line that names its sender and its number, padded to about `bytes`.
fn numbered(sender: &str, n: usize, bytes: usize) -> String {
    format!("{sender} {n} {}", "x".repeat(bytes - 10))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_larger_than_the_link_queue_crosses_whole_and_in_order() {
    // 50,000 lines of about 100 bytes: more than the link's queue holds, so
    // the talker is slowed down while the broker catches up.
    const LINES: usize = 50_000;
    assert!(LINES * numbered("alice", LINES, 100).len() > chat::link::QUEUE_BYTES);
    let (_broker, one, two) = two_linked(&["--quiet", "--sendq", "67108864"]).await;
    let mut alice = Member::named(one.address, "alice").await;
    let mut bob = Member::named(two.address, "bob").await;
    line_where(&mut alice, |line| line == "*** guest1@two is now bob@two").await;

    let burst: String = (0..LINES)
        .map(|n| numbered("alice", n, 100) + "\n")
        .collect();
    let sending = tokio::spawn(async move {
        alice.send_bytes(burst.as_bytes()).await;
        alice
    });
    for n in 0..LINES {
        assert_eq!(
            bob.line().await,
            format!("<alice@one> {}", numbered("alice", n, 100))
        );
    }
    within("the burst to be sent", sending).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_talkers_within_their_rate_all_cross() {
    const TALKERS: usize = 1000;
    const ROOMS: usize = 10;
    const LINES: usize = 40;
    // The first burst of each, 20 lines of 300 bytes, is more than the
    // link's queue holds.
    const BYTES: usize = 300;
    const { assert!(TALKERS * 20 * BYTES > chat::link::QUEUE_BYTES) };
    let broker = Broker::start().await;
    // The default --max-rate: 20 lines at once, then 20 a second.
    let url = broker.url();
    let link = |node: &'static str| {
        let url = url.clone();
        async move {
            let args = ["--chat", "--quiet", "--link", &url, "--node", node];
            Server::start(&[&args[..], &["--sendq", "67108864"]].concat()).await
        }
    };
    let (one, two) = (link("one").await, link("two").await);
    // One listener per room on two; a hundred talkers per room on one.
    let mut listeners = Vec::new();
    for room in 0..ROOMS {
        let mut listener = Member::join(two.address).await;
        listener.send(&format!("/join r{room}")).await;
        line_where(&mut listener, |line| line.starts_with("*** here: ")).await;
        listeners.push(listener);
    }
    // A hundred join at once: each `here:` line waits for the other server.
    let mut talkers = Vec::new();
    for first in (0..TALKERS).step_by(100) {
        let mut joining = tokio::task::JoinSet::new();
        for talker in first..first + 100 {
            let address = one.address;
            joining.spawn(async move {
                let mut member = Member::join(address).await;
                member.send(&format!("/join r{}", talker % ROOMS)).await;
                line_where(&mut member, |line| line.starts_with("*** here: ")).await;
                (talker, member)
            });
        }
        let mut joined = joining.join_all().await;
        joined.sort_by_key(|(talker, _)| *talker);
        talkers.extend(joined.into_iter().map(|(_, member)| member));
    }
    // Each listener hears every talker of its room join before the talk.
    for (room, listener) in listeners.iter_mut().enumerate() {
        let mut awaited: std::collections::HashSet<String> = (room..TALKERS)
            .step_by(ROOMS)
            .map(|talker| format!("*** {}@one joined", talkers[talker].nick))
            .collect();
        while !awaited.is_empty() {
            let line = listener.line().await;
            awaited.remove(&line);
        }
    }
    let mut nicks = Vec::new();
    for member in &mut talkers {
        let talk: String = (0..LINES)
            .map(|n| numbered(&member.nick, n, BYTES) + "\n")
            .collect();
        member.send_bytes(talk.as_bytes()).await;
        nicks.push(member.nick.clone());
    }
    let mut receiving = Vec::new();
    for (room, mut listener) in listeners.into_iter().enumerate() {
        let nicks: Vec<String> = nicks.iter().skip(room).step_by(ROOMS).cloned().collect();
        let shown: Vec<String> = nicks.iter().map(|nick| format!("{nick}@one")).collect();
        receiving.push(tokio::spawn(async move {
            receive_in_order(&mut listener, &shown, LINES, |at, n| {
                numbered(&nicks[at], n, BYTES)
            })
            .await;
        }));
    }
    for listener in receiving {
        within("every line of the room", listener).await.unwrap();
    }
    drop(talkers);
}

#[tokio::test]
async fn a_broker_that_stays_away_is_said_once_not_at_every_retry() {
    // Every attempt (ten a second) fails.
    let (_, url) = no_broker_yet();
    let mut server = Server::start(&["--chat", "--link", &url, "--node", "alone"]).await;
    server
        .wait_for_log("the link's one line", |line| {
            line.starts_with("link: ") && line.contains("does not answer")
        })
        .await;
    // A second and a half of retries later, not one more line about it.
    let more = tokio::time::timeout(
        Duration::from_millis(1500),
        server.wait_for_log("another line about the link", |line| line.contains("link")),
    )
    .await;
    assert!(more.is_err(), "{more:?}");
    // The members on this server still talk.
    let mut alice = Member::named(server.address, "alice").await;
    let mut bob = Member::named(server.address, "bob").await;
    alice.expect("*** guest2 joined").await;
    bob.send("hi").await;
    line_where(&mut alice, |line| line == "<bob> hi").await;
}
