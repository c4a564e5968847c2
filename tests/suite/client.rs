//! `chat-client` through real sockets and pipes: against the real server,
//! and against stand-in servers written here that misbehave on purpose.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::common::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A listener for a stand-in server, on a free loopback port.
async fn stand_in() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    (listener, address)
}

async fn accept(listener: &TcpListener) -> TcpStream {
    within("the client to connect", listener.accept())
        .await
        .unwrap()
        .0
}

#[tokio::test]
async fn three_piped_lines_then_end_of_input_print_three_replies() {
    let server = Server::start(&["--quiet"]).await;
    let output = run_client(server.address, &[], b"one\ntwo\nthree\n").await;
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "You sent: one\nYou sent: two\nYou sent: three\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "",
        "no hint or noise on a pipe"
    );
    assert!(output.status.success());
}

#[tokio::test]
async fn exits_promptly_after_a_dot_while_stdin_stays_open() {
    let server = Server::start(&["--quiet"]).await;
    let mut child = client(server.address, &[]).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"hello\n.\n").await.unwrap();
    // `stdin` stays open and idle: the client must exit on the server's close alone.
    let started = Instant::now();
    let status = within_for(Duration::from_secs(2), "the client to exit", child.wait())
        .await
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(started.elapsed() < Duration::from_secs(2));
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .await
        .unwrap();
    assert_eq!(stdout, "You sent: hello\n");
    drop(stdin);
}

#[tokio::test]
async fn lines_after_the_dot_do_not_turn_the_close_into_an_error() {
    let server = Server::start(&["--quiet"]).await;
    let input = [&b"a\n.\n"[..], &b"after the dot\n".repeat(100_000)].concat();
    let output = run_client(server.address, &[], &input).await;
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "You sent: a\n");
    assert!(output.status.success());
}

#[tokio::test]
async fn each_reply_is_printed_as_it_arrives() {
    let server = Server::start(&["--quiet"]).await;
    let mut client = LiveClient::start(server.address, &[]);
    // One line at a time, stdin left open: each reply must come out on its
    // own, not when more output piles up or the input ends.
    for line in ["first", "second", "third"] {
        client.send(format!("{line}\n").as_bytes()).await;
        assert_eq!(client.printed_line().await, format!("You sent: {line}\n"));
    }
    client.finish().await;
}

#[tokio::test]
async fn a_pipe_is_not_written_line_by_line() {
    const LINES: usize = 10_000;
    let server = Server::start(&["--quiet"]).await;
    let mut client = LiveClient::start(server.address, &[]);
    let input: String = (0..LINES).map(|i| format!("{i}\n")).collect();
    client.send(input.as_bytes()).await;
    for i in 0..LINES {
        assert_eq!(client.printed_line().await, format!("You sent: {i}\n"));
    }
    // Read while the client is still running (stdin is still open). Its
    // writes to stdout are counted; it sends on the socket with `sendto`,
    // which is not.
    let writes = write_syscalls(client.child.id().unwrap());
    assert!(
        writes < (LINES / 100) as u64,
        "{writes} write calls for {LINES} replies"
    );
    client.finish().await;
}

#[tokio::test]
async fn a_stdin_line_over_the_limit_is_an_error() {
    let server = Server::start(&["--quiet"]).await;
    let input = [&b"short\n"[..], &[b'x'; 2000], b"\n"].concat();
    let output = run_client(server.address, &["--max-line-bytes", "1000"], &input).await;
    // The line before it is sent, and its reply printed.
    assert_eq!(String::from_utf8_lossy(&output.stdout), "You sent: short\n");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim_end(),
        "chat-client: error: stdin: line exceeds 1000 bytes"
    );
}

#[tokio::test]
async fn no_server_is_an_error_naming_the_address() {
    let (listener, address) = stand_in().await;
    drop(listener); // Nothing listens there now.
    let output = run_client(address, &[], b"hello\n").await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.trim_end(),
        format!(
            "chat-client: error: connecting to {address}: Connection refused (os error 111): \
             no server is listening there; is chat-server running, on this port?"
        )
    );
    assert_eq!(output.stdout, b"");
}

#[tokio::test]
async fn output_is_byte_exact() {
    let server = Server::start(&["--quiet"]).await;
    let line: &[u8] = b"\x00 \xff\xfe\tnot utf-8 \x1b[0m";
    let output = run_client(server.address, &[], &[line, b"\n"].concat()).await;
    assert_eq!(output.stdout, [b"You sent: ", line, b"\n"].concat());
    assert!(output.status.success());
}

#[tokio::test]
async fn sends_each_stdin_line_with_the_delimiter_and_half_closes_at_the_end() {
    let (listener, address) = stand_in().await;
    let client = tokio::spawn(run_client(address, &[], b"a\nb\r\n\nlast without newline"));
    let mut stream = accept(&listener).await;
    // The client shuts its side at the end of stdin: read_to_end returns.
    let received = read_to_end(&mut stream).await;
    assert_eq!(received, b"a\r\nb\r\n\r\nlast without newline\r\n");
    // It still prints what arrives after its side is shut.
    stream
        .write_all(b"late reply\r\nunterminated")
        .await
        .unwrap();
    drop(stream);
    let output = within("the client", client).await.unwrap();
    assert_eq!(output.stdout, b"late reply\nunterminated\n");
    assert!(output.status.success());
}

#[tokio::test]
async fn other_delimiters() {
    let (listener, address) = stand_in().await;
    let client = tokio::spawn(run_client(address, &["--delimiter", "lf"], b"a\r\nb\n"));
    let mut stream = accept(&listener).await;
    assert_eq!(read_to_end(&mut stream).await, b"a\nb\n");
    stream.write_all(b"x\ny\r\n").await.unwrap();
    drop(stream);
    let output = within("the client", client).await.unwrap();
    assert_eq!(output.stdout, b"x\ny\r\n");

    let server = Server::start(&["--quiet", "--delimiter", r"\0"]).await;
    let output = run_client(server.address, &["--delimiter", r"\0"], b"a\nb\n").await;
    assert_eq!(output.stdout, b"You sent: a\nYou sent: b\n");
}

#[tokio::test]
async fn a_reply_over_the_limit_is_an_error() {
    let (listener, address) = stand_in().await;
    let child = client(address, &["--max-line-bytes", "1000"])
        .spawn()
        .unwrap();
    let mut stream = accept(&listener).await;
    // An endless line: the client must give up, not buffer it.
    let endless = tokio::spawn(async move {
        let chunk = [b'x'; 1000];
        while stream.write_all(&chunk).await.is_ok() {}
    });
    let output = within("the client to give up", child.wait_with_output())
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim_end(),
        format!("chat-client: error: reply from {address}: line exceeds 1000 bytes")
    );
    endless.abort();
}

#[tokio::test]
async fn a_server_that_resets_is_an_error() {
    let (listener, address) = stand_in().await;
    let mut child = client(address, &[]).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"hello\n").await.unwrap();
    let mut stream = accept(&listener).await;
    let mut line = vec![0; b"hello\r\n".len()];
    within("the client's line", stream.read_exact(&mut line))
        .await
        .unwrap();
    assert_eq!(line, b"hello\r\n");
    stream.set_zero_linger().unwrap();
    drop(stream);
    let output = within("the client to fail", child.wait_with_output())
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim_end(),
        format!(
            "chat-client: error: reading from {address}: Connection reset by peer (os error 104)"
        )
    );
    drop(stdin);
}

#[tokio::test]
async fn a_server_that_never_answers_and_goes_away_is_an_error_not_a_hang() {
    let (listener, address) = stand_in().await;
    let mut child = client(address, &[]).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stream = accept(&listener).await;
    stdin.write_all(b"anyone there?\n").await.unwrap();
    // Wait until the line has arrived, leave it unread, then vanish as a
    // killed process would: closing with unread input resets the connection.
    within("the line to arrive", stream.peek(&mut [0; 1]))
        .await
        .unwrap();
    drop(stream);
    drop(listener);
    let output = within("the client to end", child.wait_with_output())
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with(&format!("chat-client: error: reading from {address}: ")),
        "{stderr}"
    );
    assert!(stderr.contains("reset"), "{stderr}");
    drop(stdin);
}

#[tokio::test]
async fn a_closed_stdout_ends_it_quietly() {
    let server = Server::start(&["--quiet"]).await;
    let mut child = client(server.address, &[]).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = tokio::spawn(async move {
        let lines = "line\n".repeat(1000);
        while stdin.write_all(lines.as_bytes()).await.is_ok() {}
    });
    // Like `chat-client | head -1`: read one line, then close the pipe.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    within("the first reply", stdout.read_line(&mut first))
        .await
        .unwrap();
    assert_eq!(first, "You sent: line\n");
    drop(stdout);
    let output = within("the client to end", child.wait_with_output())
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    assert!(output.status.success(), "{}", output.status);
    writer.abort();
}

/// Runs `chat-client ARGS` (no spaces in them) for the server at `address`
/// on a pseudo-terminal (through `script`, which copies our `input` to it),
/// and returns what the terminal showed once the client has exited.
pub async fn on_a_terminal(address: SocketAddr, args: &[&str], input: &[u8]) -> String {
    let client = format!(
        "{CLIENT} --host {} --port {} {}",
        address.ip(),
        address.port(),
        args.join(" ")
    );
    let mut terminal = command("script");
    terminal.args(["--quiet", "--return", "--command", &client, "/dev/null"]);
    let mut child = terminal
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("`script` (util-linux) runs");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).await.unwrap();
    let output = within("the client on a terminal", child.wait_with_output())
        .await
        .unwrap();
    assert!(output.status.success(), "{}", output.status);
    drop(stdin);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn prints_a_hint_on_a_terminal_only() {
    let server = Server::start(&["--quiet"]).await;
    let seen = on_a_terminal(server.address, &[], b"hi\n.\n").await;
    let hint = format!(
        "connected to {} — type lines, \".\" to quit",
        server.address
    );
    assert!(seen.contains(&hint), "{seen:?}");
    assert!(seen.contains("You sent: hi"), "{seen:?}");
    // The user ended it: no word about the server closing.
    assert!(!seen.contains("closed the connection"), "{seen:?}");
}

#[tokio::test]
async fn on_a_terminal_a_close_by_the_server_is_said() {
    let (listener, address) = stand_in().await;
    let serving = tokio::spawn(async move {
        let mut stream = accept(&listener).await;
        stream.write_all(b"bye\r\n").await.unwrap();
    });
    let seen = on_a_terminal(address, &[], b"").await;
    serving.await.unwrap();
    assert!(seen.contains("bye"), "{seen:?}");
    assert!(
        seen.contains(&format!("{address} closed the connection")),
        "{seen:?}"
    );
}

#[tokio::test]
async fn bad_arguments_exit_2() {
    let cases: &[&[&str]] = &[
        &["--delimiter", ""],
        &["--max-line-bytes", "x"],
        &["--port", "-1"],
        &["host", "1", "extra"],
        // A host or port given both ways.
        &["--host", "a", "b"],
        &["-p", "1", "a", "2"],
        &["--connect-timeout", "1e19"],
        &["--connect-timeout", "1e-10"],
        &["--connect-timeout", "-1"],
        &["--max-line-bytes", "18446744073709551615"],
        &["--delimiter", r"\x+a"],
    ];
    assert_refuses_arguments(CLIENT, cases).await;
}
