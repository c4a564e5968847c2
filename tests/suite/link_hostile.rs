//! The link against hostile input: a stranger on the broker publishing
//! forged messages with a raw NATS client, and members typing what the
//! link code must never hand to a library unchecked. After each, lines
//! still cross both ways, nobody is told the link was lost, no member sees
//! a raw control byte or a line over its limit, and nothing panics.

use std::time::Duration;

use crate::common::broker::Broker;
use crate::common::member::Member;
use crate::common::raw_nats::RawNats;
use crate::common::*;
use crate::link::{line_where, linked};
use chat::link::{notice_subject, talk_subject};

/// A broker, `one` with alice and `two` with bob, both in #lobby and each
/// seen by the other.
async fn alice_and_bob(extra: &[&str]) -> (Broker, Server, Server, Member, Member) {
    let broker = Broker::start().await;
    let one = linked(&broker, "one", extra).await;
    let two = linked(&broker, "two", extra).await;
    let mut alice = Member::named(one.address, "alice").await;
    let mut bob = Member::named(two.address, "bob").await;
    line_where(&mut alice, |line| line == "*** guest1@two is now bob@two").await;
    alice.send("ping").await;
    line_where(&mut bob, |line| line == "<alice@one> ping").await;
    (broker, one, two, alice, bob)
}

/// Lines cross both ways, and everything each received meanwhile is clean:
/// no control byte but TAB, no `lost link` notice, nothing from `forged`.
async fn still_crossing_and_clean(alice: &mut Member, bob: &mut Member, said: &str) {
    let mut seen = Vec::new();
    alice.send(&format!("{said} from alice")).await;
    let wanted = format!("<alice@one> {said} from alice");
    loop {
        let line = within_for(Duration::from_secs(10), "alice's line", bob.line()).await;
        let done = line == wanted;
        seen.push(line);
        if done {
            break;
        }
    }
    bob.send(&format!("{said} from bob")).await;
    let wanted = format!("<bob@two> {said} from bob");
    loop {
        let line = within_for(Duration::from_secs(10), "bob's line", alice.line()).await;
        let done = line == wanted;
        seen.push(line);
        if done {
            break;
        }
    }
    for line in &seen {
        assert!(
            line.chars().all(|c| c == '\t' || !c.is_control()),
            "a control character reached a member: {line:?}"
        );
        assert!(!line.contains("lost link"), "{line}");
        assert!(
            !line.ends_with(" forged"),
            "a forged event was shown: {line}"
        );
    }
}

fn no_panic_logged(server: &mut Server) {
    for line in server.log_so_far() {
        assert!(!line.contains("panicked"), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_a_library_would_choke_on_harm_nothing() {
    let (broker, mut one, mut two, mut alice, mut bob) = alice_and_bob(&[]).await;
    let mut stranger = RawNats::connect(broker.port).await;
    let forged: [&[(&str, &[u8])]; 4] = [
        // A lone CR in a value: async-nats 0.50 asserted on it.
        &[("Chat-Nick", b"a\rb"), ("Chat-Kind", b"said")],
        // Not UTF-8: async-nats 0.50 dropped the connection for it.
        &[("Chat-Node", b"two\xff"), ("Chat-Kind", b"said")],
        // A name with a space, and a line without a colon.
        &[("Chat Nick", b"x"), ("no-colon-here", b"")],
        &[("Chat-Kind", b"said\x00")],
    ];
    for _ in 0..3 {
        for headers in forged {
            stranger
                .publish(&talk_subject("lobby"), headers, b"forged")
                .await;
            stranger
                .publish(&notice_subject("lobby"), headers, b"")
                .await;
            stranger.publish("chat.node.two", headers, b"forged").await;
            stranger.publish("chat.who", headers, b"").await;
        }
    }
    still_crossing_and_clean(&mut alice, &mut bob, "after bad headers").await;
    no_panic_logged(&mut one);
    no_panic_logged(&mut two);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_names_never_reach_a_terminal() {
    let (broker, _one, _two, mut alice, mut bob) = alice_and_bob(&[]).await;
    let mut stranger = RawNats::connect(broker.port).await;
    let event = |node: &'static [u8], nick: &'static [u8], kind: &'static [u8]| {
        vec![
            ("Chat-Node", node),
            ("Chat-Epoch", &b"1"[..]),
            ("Chat-Seq", &b"1"[..]),
            ("Chat-Kind", kind),
            ("Chat-Nick", nick),
        ]
    };
    let lines = [
        event(b"evil", b"\x1b[2K\x1b[Galice> hi <x", b"said"),
        event(b"\x1b[1A", b"mallory", b"said"),
        event(b"evil", b"mallory", b"teleported"),
    ];
    for headers in &lines {
        stranger
            .publish(&talk_subject("lobby"), headers, b"forged")
            .await;
    }
    let mut renamed = event(b"evil", b"mallory", b"renamed");
    renamed.push(("Chat-Old", b"\x07\x1b]0;pwned\x07"));
    stranger
        .publish(&notice_subject("lobby"), &renamed, b"")
        .await;
    // A private message with a forged sender, to bob's server.
    let private = [
        ("Chat-Kind", &b"msg"[..]),
        ("Chat-Node", b"evil"),
        ("Chat-To", b"bob"),
        ("Chat-Nick", b"*** server"),
    ];
    stranger.publish("chat.node.two", &private, b"forged").await;
    still_crossing_and_clean(&mut alice, &mut bob, "after forged names").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_sequence_does_not_silence_a_node() {
    let (broker, _one, _two, mut alice, mut bob) = alice_and_bob(&[]).await;
    // Learn one's real epoch in #lobby, as a stranger can.
    let mut watcher = RawNats::connect(broker.port).await;
    watcher.subscribe(&talk_subject("lobby"), 1).await;
    alice.send("seen by the stranger").await;
    let real = watcher.next_message().await;
    assert_eq!(real.payload, b"seen by the stranger");
    let epoch = real
        .headers
        .iter()
        .find(|(name, _)| name == "Chat-Epoch")
        .map(|(_, value)| value.clone())
        .expect("an epoch header");
    let mut stranger = RawNats::connect(broker.port).await;
    for sequence in ["18446744073709551615", "99999999999"] {
        let headers = [
            ("Chat-Node", &b"one"[..]),
            ("Chat-Epoch", epoch.as_bytes()),
            ("Chat-Seq", sequence.as_bytes()),
            ("Chat-Kind", b"said"),
            ("Chat-Nick", b"alice"),
        ];
        stranger
            .publish(&talk_subject("lobby"), &headers, b"forged")
            .await;
    }
    still_crossing_and_clean(&mut alice, &mut bob, "after a forged sequence").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_cannot_hand_the_link_bytes_it_would_panic_on() {
    let (_broker, mut one, _two, mut alice, mut bob) = alice_and_bob(&[]).await;
    // Chat mode is lenient: a CR inside a line is data.
    alice.send_bytes(b"/msg bo\rb@two hi\n").await;
    alice.expect(r#"error: no such nick "bo\x0Db@two""#).await;
    alice.send_bytes(b"/msg bob@tw\ro hi\n").await;
    alice.expect(r#"error: no such nick "bob@tw\x0Do""#).await;
    alice.send_bytes(b"/msg b\rob hi\n").await;
    alice.expect(r#"error: no such nick "b\x0Dob""#).await;
    still_crossing_and_clean(&mut alice, &mut bob, "after a CR in a nick").await;
    no_panic_logged(&mut one);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_from_elsewhere_keep_the_line_limit_and_hide_nothing() {
    let (broker, _one, _two, mut alice, mut bob) =
        alice_and_bob(&["--max-line-bytes", "1000"]).await;
    // A valid event whose text is a million control bytes.
    let mut stranger = RawNats::connect(broker.port).await;
    let headers = [
        ("Chat-Node", &b"evil"[..]),
        ("Chat-Epoch", b"1"),
        ("Chat-Seq", b"1"),
        ("Chat-Kind", b"said"),
        ("Chat-Nick", b"mallory"),
    ];
    let huge = vec![1; 1_000_000];
    stranger
        .publish(&talk_subject("lobby"), &headers, &huge)
        .await;
    // A member's own line of control bytes, at the limit: escaped, four
    // times as long, then cut to the limit.
    let mut line = vec![0x01; 990];
    line.push(b'\n');
    alice.send_bytes(&line).await;
    let relayed = line_where(&mut bob, |line| line.starts_with("<alice@one> ")).await;
    let text = &relayed["<alice@one> ".len()..];
    assert!(text.len() <= 1000, "{} bytes", text.len());
    assert!(text.ends_with(chat::protocol::chat::CUT), "{text}");
    // Invisible format characters are shown, not obeyed.
    alice.send("abc\u{202E}fed\u{2066}x\u{200B}y").await;
    bob.expect(r"<alice@one> abc\u{202E}fed\u{2066}x\u{200B}y")
        .await;
    still_crossing_and_clean(&mut alice, &mut bob, "after long lines").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_from_other_servers_come_in_order_before_the_bye() {
    let broker = Broker::start().await;
    let one = linked(&broker, "one", &[]).await;
    let two = linked(&broker, "two", &[]).await;
    let _bob = Member::named(two.address, "bob").await;
    let output = run_client(one.address, &[], b"/who\n/rooms\n").await;
    assert!(output.status.success(), "{output:?}");
    let printed = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = printed.lines().skip(3).collect();
    assert_eq!(
        lines,
        [
            "*** here in #lobby (2): bob@two, guest1",
            "*** rooms: #lobby (2)",
            "*** bye",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_questions_across_servers_cost_little_memory() {
    const MEMBERS: usize = 100;
    const QUESTIONS: usize = 40;
    let broker = Broker::start().await;
    let one = linked(&broker, "one", &["--quiet"]).await;
    let two = linked(&broker, "two", &["--quiet"]).await;
    let _bob = Member::named(two.address, "bob").await;
    let mut joining = tokio::task::JoinSet::new();
    for _ in 0..MEMBERS {
        joining.spawn(Member::join(one.address));
    }
    let members = joining.join_all().await;
    let before = one.resident_kib();
    let asking = members.into_iter().map(|mut member| {
        tokio::spawn(async move {
            member
                .send_bytes("/who\n".repeat(QUESTIONS).as_bytes())
                .await;
            let mut answered = 0;
            while answered < QUESTIONS {
                if member.line().await.starts_with("*** here in #lobby") {
                    answered += 1;
                }
            }
        })
    });
    let asking: Vec<_> = asking.collect();
    for member in asking {
        within_for(Duration::from_secs(120), "every answer", member)
            .await
            .unwrap();
    }
    let grown = one.peak_resident_kib().saturating_sub(before);
    eprintln!(
        "{} questions: peak resident memory grew {grown} KiB",
        MEMBERS * QUESTIONS
    );
    assert!(
        grown < 32 * 1024,
        "{} questions took {grown} KiB",
        MEMBERS * QUESTIONS
    );
}

/// Waits at most 15 s for each of alice and bob to receive a line that
/// `wanted` says is the one.
async fn both_told(alice: &mut Member, bob: &mut Member, wanted: impl Fn(&str) -> bool + Copy) {
    for member in [alice, bob] {
        let what = format!("{} told", member.nick);
        within_for(Duration::from_secs(15), &what, line_where(member, wanted)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_answering_is_replaced() {
    let (broker, _one, _two, mut alice, mut bob) = alice_and_bob(&[]).await;
    // A frozen broker keeps the connection open and answers nothing: the
    // client's own pings would take minutes to notice.
    broker.freeze(true);
    let lost = |line: &str| line.starts_with("*** lost link");
    both_told(&mut alice, &mut bob, lost).await;
    broker.freeze(false);
    let restored = |line: &str| line.starts_with("*** link to other servers restored");
    both_told(&mut alice, &mut bob, restored).await;
    alice.send("after the freeze").await;
    line_where(&mut bob, |line| line == "<alice@one> after the freeze").await;
}

/// The broker configuration the README shows: only the chat servers'
/// user may publish or subscribe.
const LOCKED_BROKER: &str = r#"
authorization {
  users = [
    { user: chat, password: "change-this-secret",
      permissions: {
        publish: ["chat.>", "_INBOX.>"]
        subscribe: ["chat.>", "_INBOX.>"]
      } }
  ]
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_broker_lets_only_the_chat_servers_in_and_logs_no_password() {
    let broker = Broker::start_with_config(LOCKED_BROKER).await;
    let url = format!("nats://chat:change-this-secret@127.0.0.1:{}", broker.port);
    let start = |node: &'static str| {
        let url = url.clone();
        async move { Server::start(&["--chat", "--link", &url, "--node", node]).await }
    };
    let (mut one, mut two) = (start("one").await, start("two").await);
    let mut alice = Member::named(one.address, "alice").await;
    let mut bob = Member::named(two.address, "bob").await;
    alice.send("locked in").await;
    line_where(&mut bob, |line| line == "<alice@one> locked in").await;
    // A stranger without the password is refused at once.
    let mut stranger = tokio::net::TcpStream::connect(("127.0.0.1", broker.port))
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stranger, b"CONNECT {\"verbose\":false}\r\nPING\r\n")
        .await
        .unwrap();
    let answer = read_to_end(&mut stranger).await;
    assert!(
        String::from_utf8_lossy(&answer).contains("Authorization Violation"),
        "{answer:?}"
    );
    for server in [&mut one, &mut two] {
        let log = server.log_so_far();
        assert!(log.iter().any(|line| line.contains("chat:***@")), "{log:?}");
        assert!(
            !log.iter().any(|line| line.contains("change-this-secret")),
            "{log:?}"
        );
    }
}
