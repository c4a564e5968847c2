//! `chat-server` through real sockets: the wire protocol, the flags, the
//! log, and what bad input gets.

use std::time::Duration;

use crate::common::*;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn answers_each_line_and_the_empty_line() {
    let server = Server::start(&["--quiet"]).await;
    let mut stream = connect(server.address).await;
    stream.write_all(b"hello\r\n").await.unwrap();
    let expected = reply("hello");
    assert_eq!(
        read_exactly(&mut stream, expected.len()).await,
        expected.as_bytes()
    );
    stream.write_all(b"\r\n").await.unwrap();
    let expected = reply("");
    assert_eq!(
        read_exactly(&mut stream, expected.len()).await,
        expected.as_bytes()
    );
}

#[tokio::test]
async fn a_dot_line_sends_earlier_replies_then_closes_and_ignores_the_rest() {
    let server = Server::start(&["--quiet"]).await;
    let received = exchange(server.address, b"a\r\n.\r\nb\r\nc").await;
    assert_eq!(received, reply("a").as_bytes());
}

#[tokio::test]
async fn lines_that_only_look_like_a_dot_are_ordinary() {
    let server = Server::start(&["--quiet"]).await;
    let received = exchange(server.address, b". \r\n..\r\n .\r\n.\r\n").await;
    let expected = [reply(". "), reply(".."), reply(" .")].concat();
    assert_eq!(String::from_utf8_lossy(&received), expected);
}

#[tokio::test]
async fn pipelined_lines_are_answered_in_order() {
    let server = Server::start(&["--quiet"]).await;
    let lines: Vec<String> = (0..1000).map(|i| format!("line {i}")).collect();
    let request: String = lines.iter().map(|line| format!("{line}\r\n")).collect();
    let received = exchange(server.address, format!("{request}.\r\n").as_bytes()).await;
    let expected: String = lines.iter().map(|line| reply(line)).collect();
    assert_eq!(String::from_utf8_lossy(&received), expected);
}

#[tokio::test]
async fn half_close_answers_complete_lines_and_not_a_trailing_fragment() {
    let server = Server::start(&["--quiet"]).await;
    let mut stream = connect(server.address).await;
    stream.write_all(b"one\r\ntwo\r\nthr").await.unwrap();
    stream.shutdown().await.unwrap();
    let received = read_to_end(&mut stream).await;
    assert_eq!(
        String::from_utf8_lossy(&received),
        reply("one") + &reply("two")
    );
}

#[tokio::test]
async fn bytes_are_echoed_exactly() {
    let server = Server::start(&["--quiet"]).await;
    let line: &[u8] = b"\x00nul \xff\xfe not utf-8, bare \n and lone \r inside\r";
    let received = exchange(server.address, &[line, b"\r\n.\r\n"].concat()).await;
    assert_eq!(received, [b"You sent: ", line, b"\r\n"].concat());
}

#[tokio::test]
async fn a_delimiter_split_across_reads_is_found() {
    let server = Server::start(&["--quiet"]).await;
    let mut stream = connect(server.address).await;
    // The reply to `x` shows the server has read the first part, `\r` and all.
    stream.write_all(b"x\r\nsplit\r").await.unwrap();
    let expected = reply("x");
    assert_eq!(
        read_exactly(&mut stream, expected.len()).await,
        expected.as_bytes()
    );
    stream.write_all(b"\n.\r\n").await.unwrap();
    assert_eq!(read_to_end(&mut stream).await, reply("split").as_bytes());
}

#[tokio::test]
async fn a_line_of_exactly_the_limit_is_answered_and_one_byte_more_is_refused() {
    let server = Server::start(&["--quiet", "--max-line-bytes", "8"]).await;
    let received = exchange(server.address, b"12345678\r\n.\r\n").await;
    assert_eq!(received, reply("12345678").as_bytes());

    let received = exchange(server.address, b"ok\r\n123456789\r\nnever\r\n").await;
    let expected = reply("ok") + "error: line exceeds 8 bytes\r\n";
    assert_eq!(String::from_utf8_lossy(&received), expected);
}

#[tokio::test]
async fn an_endless_line_is_refused_without_waiting_for_its_end() {
    let server = Server::start(&["--quiet", "--max-line-bytes", "1024"]).await;
    let mut stream = connect(server.address).await;
    // The line never ends, and the client never closes: the error must come
    // from the length alone.
    stream.write_all(&[b'x'; 4096]).await.unwrap();
    let expected = b"error: line exceeds 1024 bytes\r\n";
    assert_eq!(read_exactly(&mut stream, expected.len()).await, expected);
    assert_eq!(read_to_end(&mut stream).await, b"");
}

/// Sends `request`, then `more` from another task while reading, and
/// returns what was read until a clean close. A reset, on either side, fails
/// the test.
async fn exchange_while_sending_more(
    address: std::net::SocketAddr,
    request: &[u8],
    more: Vec<u8>,
) -> Vec<u8> {
    let stream = connect(address).await;
    let (mut reader, mut writer) = stream.into_split();
    writer.write_all(request).await.unwrap();
    let sender = tokio::spawn(async move {
        writer.write_all(&more).await?;
        writer.shutdown().await
    });
    let mut received = Vec::new();
    within(
        "a clean close",
        tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut received),
    )
    .await
    .expect("the connection ends with a close, not a reset");
    let sent = within("the sender", sender).await.unwrap();
    sent.expect("the server reads what is sent after its last reply, not resets");
    received
}

#[tokio::test]
async fn input_still_arriving_after_the_last_reply_does_not_reset_the_connection() {
    // Unread input at close makes the kernel send a reset, which can destroy
    // the replies before the client reads them; the server drains it first.
    let server = Server::start(&["--quiet", "--max-line-bytes", "1024"]).await;
    let flood = b"more\r\n".repeat(200_000);
    let received = exchange_while_sending_more(server.address, b"a\r\n.\r\n", flood.clone()).await;
    assert_eq!(received, reply("a").as_bytes());

    let endless = vec![b'x'; 1 << 20];
    let received = exchange_while_sending_more(server.address, b"ok\r\n", endless).await;
    assert_eq!(
        String::from_utf8_lossy(&received),
        reply("ok") + "error: line exceeds 1024 bytes\r\n"
    );
}

#[tokio::test]
async fn other_delimiters() {
    let server = Server::start(&["--quiet", "--delimiter", "lf"]).await;
    let received = exchange(server.address, b"a\r\n\nb\n.\n").await;
    assert_eq!(received, b"You sent: a\r\nYou sent: \nYou sent: b\n");

    let server = Server::start(&["--quiet", "--delimiter", r"<\x1e>"]).await;
    let received = exchange(server.address, b"a\r\nb<\x1e>c<\x1e>.<\x1e>").await;
    assert_eq!(received, b"You sent: a\r\nb<\x1e>You sent: c<\x1e>");
}

#[tokio::test]
async fn says_where_it_listens_on_stderr_and_keeps_stdout_empty() {
    let mut server = Server::start(&[]).await;
    assert_ne!(
        server.address.port(),
        0,
        "the real port, not the 0 asked for"
    );
    assert!(server.address.ip().is_loopback());
    exchange(server.address, b".\r\n").await;
    server.signal("TERM").await;
    assert!(server.exit_within(Duration::from_secs(5)).await.success());
    let mut stdout = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(server.child.stdout.as_mut().unwrap(), &mut stdout)
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&stdout), "");
}

#[tokio::test]
async fn logs_a_line_per_connection_opened_and_closed() {
    let mut server = Server::start(&[]).await;
    let mut stream = connect(server.address).await;
    let local = stream.local_addr().unwrap();
    let opened = server
        .wait_for_log("the connected line", |l| l.contains("connected"))
        .await;
    assert_eq!(opened, format!("{local} connected"));

    stream.write_all(b"ab\r\ncd\r\n.\r\n").await.unwrap();
    read_to_end(&mut stream).await;
    // Closed on our side too, as a client does: the server's close is done.
    drop(stream);
    let closed = server
        .wait_for_log("the closed line", |l| l.contains("closed"))
        .await;
    assert!(
        closed.starts_with(&format!("{local} closed (client sent \".\"): ")),
        "{closed}"
    );
    assert_eq!(log_field(&closed, "lines"), 2);
    assert_eq!(log_field(&closed, "bytes_in"), 11);
    assert_eq!(
        log_field(&closed, "bytes_out"),
        2 * reply("ab").len() as u64
    );
    assert!(closed.contains("duration="), "{closed}");
}

#[tokio::test]
async fn quiet_logs_no_connections() {
    let mut server = Server::start(&["--quiet"]).await;
    exchange(server.address, b"a\r\n.\r\n").await;
    server.signal("TERM").await;
    assert!(server.exit_within(Duration::from_secs(5)).await.success());
    let log = server.rest_of_log().await;
    assert_eq!(log, ["SIGTERM received, shutting down"]);
}

#[tokio::test]
async fn a_port_in_use_is_a_clear_error() {
    let first = Server::start(&["--quiet"]).await;
    let port = first.address.port().to_string();
    let output = within(
        "the second server to fail",
        command(SERVER)
            .args(["--host", "127.0.0.1", "--port", &port])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.trim_end(),
        format!(
            "chat-server: error: binding 127.0.0.1:{port}: Address already in use (os error 98): \
             another program listens there; choose another --port, or --port 0 for a free one"
        )
    );
}

#[tokio::test]
async fn reuse_port_lets_two_servers_share_a_port() {
    let first = Server::start(&["--quiet", "--reuse-port"]).await;
    let port = first.address.port().to_string();
    let second = Server::start_command(command(SERVER).args([
        "--quiet",
        "--reuse-port",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
    ]))
    .await;
    assert_eq!(second.address, first.address);
    let received = exchange(second.address, b"shared\r\n.\r\n").await;
    assert_eq!(received, reply("shared").as_bytes());
}

#[tokio::test]
async fn bad_arguments_exit_2_with_clap_usage() {
    let cases: &[&[&str]] = &[
        &["--delimiter", ""],
        &["--delimiter", r"\q"],
        &["--max-line-bytes", "0"],
        &["--max-connections", "-1"],
        &["--idle-timeout", "soon"],
        &["--port", "70000"],
        &["--no-such-flag"],
        // Values that once panicked, or silently meant something else.
        &["--idle-timeout", "1e19"],
        &["--idle-timeout", "1e-10"],
        &["--idle-timeout", "NaN"],
        &["--idle-timeout", "inf"],
        &["--max-connections", "2305843009213693952"],
        &["--max-connections", "0"],
        &["--max-line-bytes", "18446744073709551615"],
        &["--keepalive", "32768"],
        &["--keepalive", "0.5"],
        &["--delimiter", r"\x+a"],
        &["--host", "[]"],
    ];
    assert_refuses_arguments(SERVER, cases).await;
}

#[tokio::test]
async fn sigint_sigterm_and_sighup_stop_it_with_status_0() {
    for signal in ["INT", "TERM", "HUP"] {
        let mut server = Server::start(&["--quiet"]).await;
        server.signal(signal).await;
        let status = server.exit_within(Duration::from_secs(5)).await;
        assert!(status.success(), "SIG{signal}: {status}");
    }
}

#[tokio::test]
async fn uses_a_thread_per_core() {
    let server = Server::start(&["--quiet"]).await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    let threads: usize = status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|count| count.trim().parse().ok())
        .unwrap();
    let cores = std::thread::available_parallelism().unwrap().get();
    assert!(
        threads > cores,
        "{threads} threads for {cores} cores: one per core and main"
    );
}

#[tokio::test]
async fn replies_to_one_read_go_out_in_one_write() {
    let mut server = Server::start(&[]).await;
    let mut stream = connect(server.address).await;
    let local = stream.local_addr().unwrap();
    // One line and its reply: one write.
    stream.write_all(b"warm\r\n").await.unwrap();
    read_exactly(&mut stream, reply("warm").len()).await;

    // A hundred lines in one segment, so the server reads them at once.
    let request: String = (0..100).map(|i| format!("{i}\r\n")).collect();
    stream.write_all(request.as_bytes()).await.unwrap();
    let expected: String = (0..100).map(|i| reply(&i.to_string())).collect();
    assert_eq!(
        read_exactly(&mut stream, expected.len()).await,
        expected.as_bytes()
    );
    stream.write_all(b".\r\n").await.unwrap();
    assert_eq!(read_to_end(&mut stream).await, b"");
    drop(stream);
    let closed = server
        .wait_for_log("the close", |line| {
            line.starts_with(&format!("{local} closed"))
        })
        .await;
    assert_eq!(log_field(&closed, "lines"), 101, "{closed}");
    assert_eq!(log_field(&closed, "writes"), 2, "{closed}");
}

#[tokio::test]
async fn a_hundred_connections_each_pipelining_a_hundred_lines() {
    let server = Server::start(&["--quiet"]).await;
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..100 {
        let address = server.address;
        clients.spawn(async move {
            let request: String = (0..100)
                .map(|i| format!("client {client} line {i}\r\n"))
                .collect();
            let received = exchange(address, format!("{request}.\r\n").as_bytes()).await;
            let expected: String = (0..100)
                .map(|i| reply(&format!("client {client} line {i}")))
                .collect();
            assert_eq!(String::from_utf8_lossy(&received), expected);
        });
    }
    while let Some(done) = within("a hundred clients", clients.join_next()).await {
        done.unwrap();
    }
}
