//! `chat-server` under pressure: a client that does not read, the connection
//! limit, running out of file descriptors, idle connections, and peers that
//! reset, half-close or say nothing.

use std::time::{Duration, Instant};

use crate::common::*;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn a_client_that_does_not_read_is_slowed_down_not_buffered_for() {
    const FLOOD: usize = 50 << 20;
    let server = Server::start(&["--quiet"]).await;
    let mut warm = connect(server.address).await;
    ping(&mut warm, "warm up").await;
    let resident_before = server.resident_kib();

    // 50 MiB of short lines, the most replies per byte, none of them read.
    let flood = b"0123456789abcdef0123456789abcd\r\n".repeat(FLOOD / 32);
    let (_reader, writer) = connect(server.address).await.into_split();
    let (stalled_at, sender) = send_until_stalled(writer, flood).await;
    let growth_kib = server.resident_kib().saturating_sub(resident_before);
    assert!(
        growth_kib < 32 * 1024,
        "resident memory grew by {growth_kib} KiB after {stalled_at} bytes were sent unread"
    );
    assert!(
        stalled_at < FLOOD,
        "the server kept reading all {FLOOD} bytes"
    );

    // Other connections are not held up.
    let started = Instant::now();
    let mut other = connect(server.address).await;
    within_for(
        Duration::from_secs(1),
        "another connection's reply",
        ping(&mut other, "still there"),
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(1));
    sender.abort();
}

#[tokio::test]
async fn at_the_connection_limit_new_connections_are_told_and_closed() {
    let mut server = Server::start(&["--max-connections", "3"]).await;
    let mut held = Vec::new();
    for i in 0..3 {
        let mut stream = connect(server.address).await;
        ping(&mut stream, &format!("held {i}")).await;
        held.push(stream);
    }

    let refused = exchange(server.address, b"one too many\r\n").await;
    assert_eq!(refused, b"error: server is full (3 connections)\r\n");
    server
        .wait_for_log("the refusal", |line| {
            line.ends_with(" refused: server full (3 connections open)")
        })
        .await;

    for (i, stream) in held.iter_mut().enumerate() {
        ping(stream, &format!("still held {i}")).await;
    }

    // One leaves; once the server has closed it, a newcomer is served.
    let mut leaving = held.pop().unwrap();
    leaving.write_all(b".\r\n").await.unwrap();
    assert_eq!(read_to_end(&mut leaving).await, b"");
    drop(leaving);
    server
        .wait_for_log("the close", |line| {
            line.contains("closed (client sent \".\")")
        })
        .await;
    let served = exchange(server.address, b"newcomer\r\n.\r\n").await;
    assert_eq!(served, reply("newcomer").as_bytes());
}

#[tokio::test]
async fn running_out_of_file_descriptors_does_not_stop_the_server() {
    // Connections beyond what 64 descriptors hold wait in the backlog while
    // every accept fails.
    let mut server = Server::start_command(command("sh").args([
        "-c",
        "ulimit -n 64 && exec \"$0\" \"$@\"",
        SERVER,
        "--quiet",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
    ]))
    .await;
    let mut clients = Vec::new();
    for _ in 0..100 {
        clients.push(connect(server.address).await);
    }
    let is_accept_error =
        |line: &str| line.starts_with("accepting a connection failed: Too many open files");
    server
        .wait_for_log("the first accept error", is_accept_error)
        .await;
    let started = Instant::now();
    let cpu_before = cpu_time(server.pid());
    for _ in 0..4 {
        server
            .wait_for_log("more accept errors", is_accept_error)
            .await;
    }
    // Backing off 10 + 20 + 40 + 80 ms: a loop that spun would log these at once.
    let elapsed = started.elapsed();
    let cpu = cpu_time(server.pid()) - cpu_before;
    assert!(
        elapsed >= Duration::from_millis(120),
        "4 retries in {elapsed:?}"
    );
    assert!(
        cpu * 2 < elapsed + Duration::from_millis(20),
        "{cpu:?} of CPU in {elapsed:?}"
    );

    // Connections already accepted are still served meanwhile.
    ping(&mut clients[0], "during").await;

    drop(clients);
    let mut after = connect(server.address).await;
    ping(&mut after, "after").await;
}

/// CPU time a process has used, from `/proc/PID/stat` (in USER_HZ ticks,
/// 100 a second on Linux).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses: utime is the
    // 12th, stime the 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let mut server = Server::start(&["--idle-timeout", "0.5"]).await;
    let mut stream = connect(server.address).await;
    ping(&mut stream, "then silence").await;
    let silent_since = Instant::now();
    assert_eq!(read_to_end(&mut stream).await, b"error: idle for 0.5 s\r\n");
    assert!(
        silent_since.elapsed() >= Duration::from_millis(450),
        "closed after {:?}",
        silent_since.elapsed()
    );
    // Closed on our side too, as a client does: the server's close is done.
    drop(stream);
    server
        .wait_for_log("the idle close", |line| {
            line.contains("closed (nothing received for 500ms)")
        })
        .await;
}

#[tokio::test]
async fn with_an_idle_timeout_a_client_that_never_reads_is_closed() {
    let mut server = Server::start(&["--idle-timeout", "0.5"]).await;
    let stream = connect(server.address).await;
    let (_reader, mut writer) = stream.into_split();
    let flood = tokio::spawn(async move {
        let chunk = b"never read\r\n".repeat(10_000);
        while writer.write_all(&chunk).await.is_ok() {}
    });
    server
        .wait_for_log("the close", |line| {
            line.contains("closed (client read nothing for 500ms)")
        })
        .await;
    within("the flood to end", flood).await.unwrap();
}

#[tokio::test]
async fn resets_half_closes_and_silent_peers_affect_no_one_else() {
    // Four slots: if a misbehaving peer's slot leaked, the last step would be refused.
    let mut server = Server::start(&["--max-connections", "4"]).await;
    let mut witness = connect(server.address).await;
    ping(&mut witness, "before").await;

    // Resets in the middle of a line.
    let mut resetting = connect(server.address).await;
    resetting.write_all(b"half a li").await.unwrap();
    server
        .wait_for_log("its connection", |line| line.ends_with(" connected"))
        .await;
    resetting.set_zero_linger().unwrap();
    drop(resetting);
    server
        .wait_for_log("the reset", |line| {
            line.contains("closed (Connection reset by peer")
        })
        .await;

    // Half-closes after a line and a fragment.
    let mut half = connect(server.address).await;
    half.write_all(b"last\r\nfragm").await.unwrap();
    half.shutdown().await.unwrap();
    assert_eq!(read_to_end(&mut half).await, reply("last").as_bytes());
    server
        .wait_for_log("the half-close", |line| {
            line.contains("closed (client closed its side)")
        })
        .await;

    // Connects and says nothing.
    let silent = connect(server.address).await;
    ping(&mut witness, "during").await;
    drop(silent);
    server
        .wait_for_log("the silent close", |line| {
            line.contains("closed (client closed its side)")
        })
        .await;

    ping(&mut witness, "after").await;
    let mut others = Vec::new();
    for i in 0..3 {
        let mut stream = connect(server.address).await;
        ping(&mut stream, &format!("slot {i}")).await;
        others.push(stream);
    }
}

#[tokio::test]
async fn refused_connections_that_never_read_nor_close_are_let_go_at_once() {
    const REFUSED: usize = 200;
    let server = Server::start(&["--quiet", "--max-connections", "1"]).await;
    let mut held = connect(server.address).await;
    ping(&mut held, "in").await;
    let before = open_descriptors(server.pid());
    // They stay open, and never read their line.
    let mut refused = Vec::new();
    for _ in 0..REFUSED {
        refused.push(connect(server.address).await);
    }
    let pid = server.pid();
    within_for(
        Duration::from_secs(2),
        "the server to let go of the refused connections",
        async {
            let mut check = tokio::time::interval(Duration::from_millis(20));
            while open_descriptors(pid) > before + 5 {
                check.tick().await;
            }
        },
    )
    .await;
    // Each was told first.
    let told = format!("{}\r\n", chat::protocol::server_full(1));
    for mut stream in refused.into_iter().take(3) {
        assert_eq!(read_to_end(&mut stream).await, told.as_bytes());
    }
    ping(&mut held, "still served").await;
}
