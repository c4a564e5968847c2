//! `chat-server`'s log: a stderr that nobody reads drops log lines, and
//! never slows or stops serving; the lines dropped are counted once stderr
//! is read again.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use crate::common::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Child;

/// Lines of the server's stderr, read only when the test asks.
type Stderr = tokio::io::Lines<BufReader<tokio::process::ChildStderr>>;

/// Starts `chat-server` with its stderr a pipe the test reads only up to
/// the `listening on` line.
async fn start_with_stderr_unread() -> (Child, Stderr, SocketAddr) {
    let mut child = command(SERVER)
        .args(["--host", "127.0.0.1", "--port", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("chat-server starts");
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = within("the listening line", stderr.next_line())
        .await
        .unwrap()
        .expect("a first line");
    let address = log_message(&first)
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{first:?}"))
        .parse()
        .unwrap();
    (child, stderr, address)
}

/// Two log lines each: connected, closed.
async fn connect_and_close(address: SocketAddr, cycles: usize) {
    for i in 0..cycles {
        let line = format!("cycle {i}");
        let answer = exchange(address, format!("{line}\r\n.\r\n").as_bytes()).await;
        assert_eq!(answer, reply(&line).as_bytes());
    }
}

#[tokio::test]
async fn a_stderr_nobody_reads_does_not_stop_the_server() {
    // More lines than the log holds for a stalled stderr.
    const CYCLES: usize = chat::log::BUFFERED_LINES;
    let (mut child, mut stderr, address) = start_with_stderr_unread().await;

    // From here on nobody reads stderr: the pipe fills after a few hundred
    // lines, the log's queue after BUFFERED_LINES, and each cycle logs two.
    connect_and_close(address, CYCLES).await;
    let mut stream = connect(address).await;
    stream.write_all(b"still answering\r\n").await.unwrap();
    let expected = reply("still answering");
    let answer = within_for(
        Duration::from_secs(1),
        "an answer while stderr is full",
        read_exactly(&mut stream, expected.len()),
    )
    .await;
    assert_eq!(answer, expected.as_bytes());
    drop(stream);

    // Read again: the count of lines dropped arrives.
    let dropped = within("the count of dropped lines", async {
        loop {
            let line = stderr.next_line().await.unwrap().expect("more log");
            if log_message(&line).contains("log lines dropped") {
                return line;
            }
        }
    })
    .await;
    let count: usize = log_message(&dropped)
        .split_whitespace()
        .next()
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("{dropped:?}"));
    assert!(count > 0 && count <= 2 * CYCLES + 2, "{dropped:?}");

    send_signal(child.id().unwrap(), "TERM").await;
    let draining = tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
    let status = within_for(Duration::from_secs(5), "the server to exit", child.wait())
        .await
        .unwrap();
    assert!(status.success(), "{status}");
    draining.await.unwrap();
}

#[tokio::test]
async fn a_stderr_nobody_reads_does_not_stop_shutdown() {
    let (mut child, stderr, address) = start_with_stderr_unread().await;
    connect_and_close(address, 2_000).await;
    // stderr stays full and unread through the shutdown.
    send_signal(child.id().unwrap(), "TERM").await;
    let status = within_for(Duration::from_secs(5), "the server to exit", child.wait())
        .await
        .unwrap();
    assert!(status.success(), "{status}");
    drop(stderr);
}

#[tokio::test]
async fn the_chat_log_names_each_member_and_how_it_left() {
    let mut server = Server::start(&["--chat"]).await;
    let leaves: [(&str, &[u8], &str); 4] = [
        ("alice", b"/quit gotta go\n", "/quit gotta go"),
        ("bob", b"/QUIT\n", "/quit"),
        ("carol", b".\n", "client sent \".\""),
        ("dave", b"", "client closed its side"),
    ];
    for (nick, leave, why) in leaves {
        let mut member = member::Member::join(server.address).await;
        let local = member.writer.local_addr().unwrap();
        let guest = member.nick.clone();
        let connected = server
            .wait_for_log("the connected line", |line| line.ends_with(" connected"))
            .await;
        assert_eq!(connected, format!("{local} {guest} connected"));
        member.send(&format!("/nick {nick}")).await;
        member.expect(&format!("*** you are now {nick}")).await;
        member.send_bytes(leave).await;
        member.writer.shutdown().await.unwrap();
        member.rest().await;
        let closed = server
            .wait_for_log("the closed line", |line| line.contains(" closed ("))
            .await;
        let said = format!("{local} {nick} closed ({why}): ");
        assert!(closed.starts_with(&said), "{closed:?} is not {said:?}…");
    }
}
