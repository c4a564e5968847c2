//! `chat-client` on a real terminal (tmux): the typed line stays whole on
//! the last row whatever arrives, readline keys and history, the terminal
//! restored when the server closes or the client is killed, arrived bytes
//! shown terminal-safe, colour only when asked and never on a pipe.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::common::member::Member;
use crate::common::tmux::Tmux;
use crate::common::*;

/// The client for `address` in a terminal, with `args`, once its editor
/// is up (the hint is on screen).
async fn client_in_terminal(address: SocketAddr, args: &str) -> Tmux {
    let line = format!(
        "{CLIENT} --host {} --port {} {args}",
        address.ip(),
        address.port()
    );
    let tmux = Tmux::start(&line).await;
    tmux.wait_for("the client's hint", |screen| {
        screen.contains("connected to")
    })
    .await;
    tmux
}

/// A chat server, bob in it, and the client in a terminal, seen by bob
/// as `guest2`.
async fn bob_and_a_terminal() -> (Server, Member, Tmux) {
    let server = chat_server().await;
    let mut bob = Member::named(server.address, "bob").await;
    let tmux = client_in_terminal(server.address, "").await;
    bob.expect("*** guest2 joined").await;
    (server, bob, tmux)
}

async fn chat_server() -> Server {
    Server::start(&["--chat", "--max-rate", "0", "--quiet"]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typed_line_stays_whole_while_lines_arrive() {
    let (_server, mut bob, tmux) = bob_and_a_terminal().await;
    tmux.type_text("hello wor").await;
    tmux.wait_for("the typed text", |screen| screen.contains("hello wor"))
        .await;
    let flood: String = (1..=200).map(|n| format!("line {n} from bob\n")).collect();
    bob.send_bytes(flood.as_bytes()).await;
    let screen = tmux
        .wait_for("the last line", |screen| {
            screen.contains("<bob> line 200 from bob")
        })
        .await;
    for row in screen.lines().filter(|row| row.starts_with("<bob>")) {
        let n = row
            .trim_end()
            .strip_prefix("<bob> line ")
            .and_then(|rest| rest.strip_suffix(" from bob"));
        assert!(
            n.is_some_and(|n| n.parse::<u32>().is_ok()),
            "a cut line: {row:?}"
        );
    }
    assert_eq!(tmux.typed_row().await, "hello wor");
    tmux.type_text("ld").await;
    tmux.keys(&["Enter"]).await;
    bob.expect("<guest2> hello world").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readline_keys_and_history_edit_the_line() {
    let (_server, mut bob, tmux) = bob_and_a_terminal().await;
    for line in ["first", "second"] {
        tmux.type_text(line).await;
        tmux.keys(&["Enter"]).await;
        bob.expect(&format!("<guest2> {line}")).await;
    }
    tmux.keys(&["Up"]).await;
    tmux.type_text("!").await;
    tmux.keys(&["Enter"]).await;
    bob.expect("<guest2> second!").await;
    tmux.type_text("one two three").await;
    tmux.keys(&["C-w"]).await;
    tmux.keys(&["C-a"]).await;
    tmux.type_text(">").await;
    tmux.keys(&["End", "Left", "Left"]).await;
    tmux.type_text("_").await;
    tmux.keys(&["Enter"]).await;
    bob.expect("<guest2> >one tw_o ").await;
    tmux.type_text("gone").await;
    tmux.keys(&["C-u"]).await;
    tmux.type_text("kept").await;
    tmux.keys(&["Enter"]).await;
    bob.expect("<guest2> kept").await;
}

/// Waits for the client to have exited, and checks the terminal is as it
/// found it.
async fn exited_and_restored(tmux: &Tmux, status: &str) {
    let screen = tmux
        .wait_for("the client to exit", |screen| screen.contains("EXITED"))
        .await;
    assert!(screen.contains(&format!("EXITED {status}")), "{screen}");
    let (before, after) = tmux.terminal_settings();
    assert!(!before.is_empty());
    assert_eq!(before, after, "the terminal is not as the client found it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_closes_ends_the_client_at_once_and_restores_the_terminal() {
    // Shut down (SIGTERM) while a line is half typed.
    let server = chat_server().await;
    let tmux = client_in_terminal(server.address, "").await;
    tmux.type_text("half typ").await;
    tmux.wait_for("the typed text", |screen| screen.contains("half typ"))
        .await;
    server.signal("TERM").await;
    within_for(
        Duration::from_secs(1),
        "the client to exit within a second",
        exited_and_restored(&tmux, "0"),
    )
    .await;
    // `.` typed.
    let server = chat_server().await;
    let tmux = client_in_terminal(server.address, "").await;
    tmux.type_text(".").await;
    tmux.keys(&["Enter"]).await;
    exited_and_restored(&tmux, "0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_client_restores_the_terminal() {
    for (signal, status) in [("TERM", "143"), ("HUP", "129")] {
        let server = chat_server().await;
        let tmux = client_in_terminal(server.address, "").await;
        tmux.type_text("typing").await;
        tmux.wait_for("the typed text", |screen| screen.contains("typing"))
            .await;
        send_signal(tmux.command_pid().await, signal).await;
        exited_and_restored(&tmux, status).await;
    }
}

/// A stand-in server that sends `bytes`, then holds the connection open.
async fn sending(bytes: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        stream.write_all(bytes).await.unwrap();
        // Holds the connection open until the test ends.
        std::future::pending::<()>().await;
    });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_arrives_is_shown_terminal_safe() {
    let address = sending(b"\x1b[31mred\x1b[0m \x1b[2J \xff\x07 end\r\n").await;
    let tmux = client_in_terminal(address, "").await;
    let screen = tmux
        .wait_for("the line", |screen| screen.contains("end"))
        .await;
    assert!(
        screen.contains(r"\x1B[31mred\x1B[0m \x1B[2J \xFF\x07 end"),
        "{screen}"
    );
    assert!(
        screen.contains("connected to"),
        "the screen was cleared: {screen}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn colour_when_asked_the_same_for_a_nick_and_never_on_a_pipe() {
    const LINES: &[u8] = b"<alice> one\r\n<bob> two\r\n<alice> three\r\n*** done\r\n";
    let address = sending(LINES).await;
    let tmux = client_in_terminal(address, "--color always").await;
    tmux.wait_for("the lines", |screen| screen.contains("*** done"))
        .await;
    let screen = tmux.screen(true).await;
    let colour_of = |text: &str| {
        let row = screen.lines().find(|row| row.contains(text)).unwrap();
        let start = row.find("\x1b[").expect("a colour");
        row[start..start + 5].to_string()
    };
    assert_eq!(colour_of("one"), colour_of("three"), "{screen:?}");
    let address = sending(LINES).await;
    let tmux = client_in_terminal(address, "--color never").await;
    tmux.wait_for("the lines", |screen| screen.contains("*** done"))
        .await;
    let plain = tmux.screen(true).await;
    assert!(plain.contains("<alice> one"), "{plain:?}");
    assert!(!plain.contains("\x1b["), "{plain:?}");
    // NO_COLOR set in the terminal's environment.
    let address = sending(LINES).await;
    let line = format!("NO_COLOR=1 {CLIENT} --port {}", address.port());
    let tmux = Tmux::start(&line).await;
    tmux.wait_for("the lines", |screen| screen.contains("*** done"))
        .await;
    let screen = tmux.screen(true).await;
    assert!(!screen.contains("\x1b[2m"), "{screen:?}");
    // On a pipe, --color always changes no byte.
    let address = sending(LINES).await;
    let mut client = client(address, &["--color", "always"]);
    let child = client
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.unwrap();
    let mut printed = vec![0; 40];
    tokio::io::AsyncReadExt::read_exact(&mut stdout, &mut printed)
        .await
        .unwrap();
    assert_eq!(
        &printed[..],
        &b"<alice> one\n<bob> two\n<alice> three\n*** "[..]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_d_on_an_empty_line_ends_the_input_and_waits_for_the_replies() {
    let server = Server::start(&["--quiet"]).await;
    let tmux = client_in_terminal(server.address, "").await;
    tmux.type_text("hi").await;
    tmux.keys(&["Enter"]).await;
    tmux.keys(&["C-d"]).await;
    exited_and_restored(&tmux, "0").await;
    assert!(tmux.screen(false).await.contains("You sent: hi"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_typed_during_a_flood_shows() {
    let (_server, mut bob, tmux) = bob_and_a_terminal().await;
    let flood: String = (1..=10_000).map(|n| format!("flood {n}\n")).collect();
    bob.send_bytes(flood.as_bytes()).await;
    tmux.wait_for("the flood", |screen| screen.contains("<bob> flood"))
        .await;
    tmux.type_text("k").await;
    tmux.wait_for("the key", |screen| {
        screen
            .lines()
            .rev()
            .find(|row| !row.trim().is_empty())
            .is_some_and(|row| row.trim_end() == "k")
    })
    .await;
    tmux.wait_for("the end of the flood", |screen| {
        screen.contains("<bob> flood 10000")
    })
    .await;
    assert_eq!(tmux.typed_row().await, "k");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_turns_the_editor_off() {
    let server = Server::start(&["--quiet"]).await;
    let tmux = client_in_terminal(server.address, "--plain").await;
    tmux.type_text("hi").await;
    tmux.keys(&["Enter"]).await;
    tmux.wait_for("the reply", |screen| screen.contains("You sent: hi"))
        .await;
    tmux.keys(&["C-d"]).await;
    exited_and_restored(&tmux, "0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_pasted_at_once_all_go() {
    let (_server, mut bob, tmux) = bob_and_a_terminal().await;
    tmux.type_text("one\rtwo\rthree\r").await;
    for line in ["one", "two", "three"] {
        bob.expect(&format!("<guest2> {line}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_wider_than_the_window_wraps_and_a_resize_redraws_it() {
    let (_server, mut bob, tmux) = bob_and_a_terminal().await;
    let long = "0123456789".repeat(10);
    tmux.type_text(&long).await;
    tmux.wait_for("the long line, wrapped", |screen| {
        screen.contains(&long[..80]) && screen.contains(&long[80..])
    })
    .await;
    tmux.resize(40, 12).await;
    tmux.wait_for("the line redrawn in 40 columns", |screen| {
        screen.lines().any(|row| row.trim_end() == &long[..40])
    })
    .await;
    tmux.type_text("!").await;
    tmux.keys(&["Enter"]).await;
    bob.expect(&format!("<guest2> {long}!")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_clears_a_line_and_on_an_empty_one_ends_the_input() {
    let (_server, mut bob, tmux) = bob_and_a_terminal().await;
    tmux.type_text("not this").await;
    tmux.wait_for("the typed text", |screen| screen.contains("not this"))
        .await;
    tmux.keys(&["C-c"]).await;
    tmux.type_text("this").await;
    tmux.keys(&["Enter"]).await;
    bob.expect("<guest2> this").await;
    tmux.keys(&["C-c"]).await;
    bob.expect("*** guest2 left").await;
    exited_and_restored(&tmux, "0").await;
}
