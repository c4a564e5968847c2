//! Chat mode through real sockets against the real `chat-server --chat`:
//! the greeting, every command and error, the notices the others see,
//! escaping, half-close, the limits and shutdown.

use std::time::Duration;

use crate::common::member::Member;
use crate::common::*;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn members_are_greeted_and_talk_to_each_other() {
    let server = Server::start(&["--chat"]).await;
    let mut alice = Member::join(server.address).await;
    assert_eq!(alice.nick, "guest1");
    let mut bob = Member::join(server.address).await;
    assert_eq!(bob.nick, "guest2");
    alice.expect("*** guest2 joined").await;

    // The greeting, whole, as a third member sees it.
    let mut carol = connect(server.address).await;
    carol.write_all(b".\n").await.unwrap();
    let greeting = String::from_utf8(read_to_end(&mut carol).await).unwrap();
    assert_eq!(
        greeting,
        "*** welcome to #lobby, you are guest3\r\n\
         *** here: guest1, guest2, guest3 (3)\r\n\
         *** type to talk; /help for commands; \".\" or /quit to leave\r\n\
         *** bye\r\n"
    );
    alice.expect("*** guest3 joined").await;
    alice.expect("*** guest3 left").await;
    bob.expect("*** guest3 joined").await;
    bob.expect("*** guest3 left").await;

    // A sender does not see its own line; CRLF and LF both end a line; an
    // empty line is nothing; `//` says a line starting with `/`.
    alice
        .send_bytes(b"hello bob\r\n\n//who is there\n. \n")
        .await;
    bob.expect("<guest1> hello bob").await;
    bob.expect("<guest1> /who is there").await;
    bob.expect("<guest1> . ").await;
    bob.send("hi").await;
    alice.expect("<guest2> hi").await;

    // `.` leaves, like `/quit`, after what is owed.
    bob.send(".").await;
    assert_eq!(bob.rest().await, "*** bye\r\n");
    alice.expect("*** guest2 left").await;
}

#[tokio::test]
async fn every_command_and_its_errors() {
    let server = Server::start(&["--chat"]).await;
    let mut alice = Member::named(server.address, "Alice").await;
    let mut bob = Member::join(server.address).await;
    alice.expect("*** guest2 joined").await;

    // /nick: case-insensitive uniqueness, validation, the others told.
    bob.send("/nick alice").await;
    bob.expect("error: nick \"alice\" is taken").await;
    for bad in ["9lives", "a b", "x.y", "aaaaaaaaaaaaaaaaaaaaaaaaa"] {
        bob.send(&format!("/nick {bad}")).await;
        bob.expect("error: a nick is 1-24 letters, digits, - or _, starting with a letter")
            .await;
    }
    bob.send("/nick").await;
    bob.expect("error: /nick needs a name").await;
    bob.send("/nick Bob").await;
    bob.expect("*** you are now Bob").await;
    alice.expect("*** guest2 is now Bob").await;
    alice.send("/nick alice").await;
    alice.expect("*** you are now alice").await;
    bob.expect("*** Alice is now alice").await;

    // /who and /rooms.
    bob.send("/who").await;
    bob.expect("*** here in #lobby (2): alice, Bob").await;
    bob.send("/rooms").await;
    bob.expect("*** rooms: #lobby (2)").await;

    // /me, and its error.
    alice.send("/me waves").await;
    bob.expect("* alice waves").await;
    alice.send("/me").await;
    alice.expect("error: /me needs text").await;

    // /msg: only the receiver gets it; the sender a copy; nicks any case.
    alice.send("/msg BOB psst").await;
    alice.expect("-> *Bob* psst").await;
    bob.expect("*alice* psst").await;
    alice.send("/msg nobody hi").await;
    alice.expect("error: no such nick \"nobody\"").await;
    alice.send("/msg Bob").await;
    alice.expect("error: /msg needs a nick and text").await;

    // /join: `#` optional, names folded; the old room and the new told.
    bob.send("/join #Rust").await;
    bob.expect("*** you are in #rust").await;
    bob.expect("*** here: Bob (1)").await;
    alice.expect("*** Bob left (to #rust)").await;
    alice.send("/join rust").await;
    alice.expect("*** you are in #rust").await;
    alice.expect("*** here: alice, Bob (2)").await;
    bob.expect("*** alice joined").await;
    for bad in ["a.b", "#", "rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr"] {
        alice.send(&format!("/join {bad}")).await;
        alice
            .expect("error: a room name is 1-32 of a-z 0-9 - _")
            .await;
    }
    alice.send("/join  ").await;
    alice.expect("error: /join needs a room").await;
    let mut carol = Member::join(server.address).await;
    carol.send("/rooms").await;
    carol.expect("*** rooms: #lobby (1), #rust (2)").await;
    // Lines stay in their room.
    carol.send("anyone?").await;
    alice.send("in rust").await;
    bob.expect("<alice> in rust").await;

    // /help, unknown commands (escaped), and /quit with a reason.
    alice.send("/help").await;
    let first = alice.line().await;
    assert!(first.starts_with("*** /nick NAME"), "{first}");
    let mut help = vec![first];
    while !help.last().unwrap().starts_with("*** /help") {
        help.push(alice.line().await);
    }
    for command in [
        "/join", "/who", "/rooms", "/me", "/msg", "/quit", "/j ", "/part", "/names", "/list",
        "/query",
    ] {
        assert!(help.iter().any(|line| line.contains(command)), "{help:?}");
    }
    alice.send_bytes(b"/fo\x1bo bar\n").await;
    alice
        .expect(r#"error: unknown command "/fo\x1Bo"; /help lists commands"#)
        .await;
    alice.send("/QUIT gone home").await;
    assert_eq!(alice.rest().await, "*** bye\r\n");
    bob.expect("*** alice left (gone home)").await;
}

#[tokio::test]
async fn irc_habits_work_as_aliases() {
    let server = Server::start(&["--chat"]).await;
    let mut alice = Member::named(server.address, "alice").await;
    let mut bob = Member::named(server.address, "bob").await;
    alice.expect("*** guest2 joined").await;
    alice.expect("*** guest2 is now bob").await;
    alice.send("/part").await;
    alice
        .expect("error: you are in #lobby, the default room")
        .await;
    alice.send("/j rust").await;
    alice.expect("*** you are in #rust").await;
    alice.expect("*** here: alice (1)").await;
    bob.expect("*** alice left (to #rust)").await;
    alice.send("/names").await;
    alice.expect("*** here in #rust (1): alice").await;
    alice.send("/LIST").await;
    alice.expect("*** rooms: #lobby (1), #rust (1)").await;
    alice.send("/query bob psst").await;
    alice.expect("-> *bob* psst").await;
    bob.expect("*alice* psst").await;
    alice.send("/query bob").await;
    alice.expect("error: /msg needs a nick and text").await;
    alice.send("/part").await;
    alice.expect("*** you are in #lobby").await;
    alice.expect("*** here: alice, bob (2)").await;
    bob.expect("*** alice joined").await;
}

#[tokio::test]
async fn every_leave_ends_with_bye() {
    let server = Server::start(&["--chat"]).await;
    for leave in [&b"/quit\n"[..], b".\n", b"/quit see you\n"] {
        let mut member = Member::join(server.address).await;
        member.send_bytes(leave).await;
        assert_eq!(member.rest().await, "*** bye\r\n", "{leave:?}");
    }
    // End of input is a leave too.
    let mut member = Member::join(server.address).await;
    member.writer.shutdown().await.unwrap();
    assert_eq!(member.rest().await, "*** bye\r\n");
    // A mistyped command before a leave does not make the client fail.
    let output = run_client(server.address, &[], b"/hlep\n/quit\n").await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.ends_with("error: unknown command \"/hlep\"; /help lists commands\n*** bye\n"),
        "{stdout}"
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = run_client(server.address, &[], b"/foo\n").await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn relayed_text_is_escaped_and_cannot_forge_a_line() {
    let server = Server::start(&["--chat"]).await;
    let mut alice = Member::join(server.address).await;
    let mut bob = Member::join(server.address).await;
    alice.expect("*** guest2 joined").await;
    alice
        .send_bytes(b"caf\xc3\xa9\ttab\x1b[2J\x07 \xff\xfe a\rb \xc2\x9b end\r\n")
        .await;
    bob.expect(r"<guest1> café	tab\x1B[2J\x07 \xFF\xFE a\x0Db \xC2\x9B end")
        .await;
    alice.send("/me \x08\x08\x08<guest2> forged").await;
    bob.expect(r"* guest1 \x08\x08\x08<guest2> forged").await;
    alice.send("/quit \x1b]0;title\x07").await;
    bob.expect(r"*** guest1 left (\x1B]0;title\x07)").await;
}

#[tokio::test]
async fn guest_nicks_are_never_reused_and_skip_taken_ones() {
    let server = Server::start(&["--chat", "--room", "Start"]).await;
    let mut first = Member::join(server.address).await;
    first.send("/nick guest2").await;
    first.expect("*** you are now guest2").await;
    let mut second = Member::join(server.address).await;
    assert_eq!(second.nick, "guest3");
    second.send("/who").await;
    second
        .expect("*** here in #start (2): guest2, guest3")
        .await;
    second.send(".").await;
    second.rest().await;
    let third = Member::join(server.address).await;
    assert_eq!(third.nick, "guest4");
}

#[tokio::test]
async fn the_here_line_names_fifty_and_who_wraps_at_512_bytes() {
    let server = Server::start(&["--chat", "--max-rate", "0"]).await;
    let mut members = Vec::new();
    for n in 0..60 {
        members.push(Member::named(server.address, &format!("member-with-long-nick-{n:02}")).await);
    }
    let _last = Member::join(server.address).await;
    let mut stream = connect(server.address).await;
    stream.write_all(b"/who\n.\n").await.unwrap();
    let received = String::from_utf8(read_to_end(&mut stream).await).unwrap();
    let lines: Vec<&str> = received.split_terminator("\r\n").collect();
    let here = lines[1];
    assert!(
        here.starts_with("*** here: guest61, guest62, member-with"),
        "{here}"
    );
    assert!(here.ends_with(" and 12 more (62)"), "{here}");
    assert_eq!(here.matches(", ").count(), 49);
    // After the /who lines, the leave's `*** bye`.
    assert_eq!(lines.last(), Some(&"*** bye"));
    let who: Vec<&str> = lines[3..lines.len() - 1].to_vec();
    assert!(who.len() > 1, "{who:?}");
    let mut named = Vec::new();
    for line in &who {
        assert!(line.len() <= 512, "{} bytes", line.len());
        let names = line.strip_prefix("*** here in #lobby (62): ").unwrap();
        named.extend(names.split(", "));
    }
    assert_eq!(named.len(), 62);
    assert!(named.windows(2).all(|pair| pair[0] < pair[1]), "sorted");
}

#[tokio::test]
async fn half_close_leaves_so_a_piped_client_posts_and_exits() {
    let server = Server::start(&["--chat"]).await;
    let mut alice = Member::join(server.address).await;
    let output = run_client(server.address, &[], b"hello all\n").await;
    assert!(output.status.success(), "{output:?}");
    alice.expect("*** guest2 joined").await;
    alice.expect("<guest2> hello all").await;
    alice.expect("*** guest2 left").await;
    let printed = String::from_utf8(output.stdout).unwrap();
    assert!(
        printed.starts_with("*** welcome to #lobby, you are guest2\n"),
        "{printed}"
    );
}

#[tokio::test]
async fn a_line_too_long_closes_with_an_error_and_the_room_is_told() {
    let server = Server::start(&["--chat", "--max-line-bytes", "10"]).await;
    let mut watcher = Member::join(server.address).await;
    let mut long = Member::join(server.address).await;
    watcher.expect("*** guest2 joined").await;
    long.send("0123456789").await;
    watcher.expect("<guest2> 0123456789").await;
    long.send("0123456789X").await;
    assert_eq!(long.rest().await, "error: line exceeds 10 bytes\r\n");
    watcher.expect("*** guest2 left (line too long)").await;
}

#[tokio::test]
async fn an_idle_member_is_closed_with_an_error_and_the_room_is_told() {
    let server = Server::start(&["--chat", "--idle-timeout", "0.5"]).await;
    let mut watcher = Member::join(server.address).await;
    let mut idle = Member::join(server.address).await;
    watcher.expect("*** guest2 joined").await;
    // The watcher keeps talking (asking /who), so only the other is idle.
    let told = within("the room to be told", async {
        loop {
            watcher.send("/who").await;
            let line = watcher.line().await;
            if line != "*** here in #lobby (2): guest1, guest2" {
                break line;
            }
        }
    })
    .await;
    assert_eq!(told, "*** guest2 left (idle)");
    assert_eq!(idle.rest().await, "error: idle for 0.5 s\r\n");
}

#[tokio::test]
async fn shutdown_tells_every_member_and_drains() {
    let mut server = Server::start(&["--chat"]).await;
    let mut alice = Member::join(server.address).await;
    let mut bob = Member::join(server.address).await;
    alice.expect("*** guest2 joined").await;
    bob.send("last words").await;
    alice.expect("<guest2> last words").await;
    server.signal("TERM").await;
    assert_eq!(alice.rest().await, "*** server shutting down\r\n");
    assert_eq!(bob.rest().await, "*** server shutting down\r\n");
    assert!(server.exit_within(Duration::from_secs(5)).await.success());
}

#[tokio::test]
async fn chat_flags_have_ranges_and_need_chat() {
    const LINK: &str = "nats://127.0.0.1:1";
    let past_link_buffer = (chat::cli::LARGEST_LINK_BUFFER + 1).to_string();
    assert_refuses_arguments(
        SERVER,
        &[
            &["--room", "x"],
            &["--chat", "--room", "a.b"],
            &["--chat", "--room", ""],
            &["--chat", "--sendq", "1023"],
            &["--chat", "--sendq", "1073741825"],
            &["--chat", "--max-rate", "-1"],
            &["--chat", "--max-rate", "1000001"],
            &["--chat", "--max-rate", "1.5"],
            &["--history", "5"],
            &["--chat", "--history", "10001"],
            &["--chat", "--history", "-1"],
            &["--chat", "--history-bytes", "0"],
            &["--chat", "--history-bytes", "67108865"],
            &["--chat", "--link-buffer", "1024"],
            &["--chat", "--link", LINK, "--link-buffer", "-1"],
            &["--chat", "--link", LINK, "--link-buffer", &past_link_buffer],
        ],
    )
    .await;
}

#[tokio::test]
async fn a_member_read_slowly_for_its_rate_is_not_idle() {
    // 30 lines at 10 a second take 2 s to read: four idle timeouts.
    let server = Server::start(&["--chat", "--max-rate", "10", "--idle-timeout", "0.5"]).await;
    let mut reader = Member::join(server.address).await;
    let mut flooder = Member::join(server.address).await;
    reader.expect(&format!("*** {} joined", flooder.nick)).await;
    let flood: String = (0..30).map(|n| format!("line {n}\n")).collect();
    flooder.send_bytes(flood.as_bytes()).await;
    // The reader keeps itself active meanwhile, so only the flooder could
    // be idle.
    let mut received = 0;
    while received < 30 {
        reader.send("/rooms").await;
        let line = reader.line().await;
        if line.starts_with("*** rooms") {
            continue;
        }
        assert_eq!(line, format!("<{}> line {received}", flooder.nick));
        received += 1;
    }
}
