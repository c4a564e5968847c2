//! `chat-server` closing connections: every reply owed reaches a client that
//! keeps reading, however slowly and whatever it still sends, and a client
//! that stops reading cannot hold a close open.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::common::*;
use chat::server::SHUTDOWN_GRACE;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// The close stall the servers here are started with (`--close-stall`):
/// shorter than the default, so that a close that must outlast it, or end
/// at it, takes a second, not five.
const STALL: Duration = Duration::from_secs(1);

/// `--close-stall` and [`STALL`].
fn stall_flag() -> [String; 2] {
    ["--close-stall".to_string(), STALL.as_secs_f64().to_string()]
}

/// How often a throttled reader reads.
const THROTTLED_TICK: Duration = Duration::from_millis(16);
/// Bytes read per tick: about 1 MB/s.
const MEGABYTE_A_SECOND: usize = 16 * 1024;

/// Reads until the server closes, at most `per_tick` bytes each
/// [`THROTTLED_TICK`]. Fails the test on a reset: that is the reply loss
/// this file is about.
async fn read_throttled(reader: OwnedReadHalf, per_tick: usize) -> Vec<u8> {
    let (received, ended) = read_throttled_telling(reader, per_tick, watch::channel(0).0).await;
    if let Err(error) = ended {
        panic!("after {} bytes of replies: {error}", received.len());
    }
    received
}

/// As [`read_throttled`], saying in `progress` how much it has read, and
/// returning how the connection ended (a clean close, or the error) with
/// what it received.
async fn read_throttled_telling(
    mut reader: OwnedReadHalf,
    per_tick: usize,
    progress: watch::Sender<usize>,
) -> (Vec<u8>, std::io::Result<()>) {
    let mut received = Vec::new();
    let mut chunk = vec![0; per_tick];
    let mut ticks = tokio::time::interval(THROTTLED_TICK);
    loop {
        ticks.tick().await;
        match reader.read(&mut chunk).await {
            Ok(0) => return (received, Ok(())),
            Ok(count) => {
                received.extend_from_slice(&chunk[..count]);
                progress.send_replace(received.len());
            }
            Err(error) => return (received, Err(error)),
        }
    }
}

/// Keeps sending short lines, never `.`, until told to stop or the server
/// stops taking them; bounded by [`WAIT`].
fn keep_sending(mut writer: OwnedWriteHalf) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let (stop, mut stopped) = oneshot::channel();
    let task = tokio::spawn(async move {
        let chunk = b"more after the end\r\n".repeat(100);
        let sending = async {
            while writer.write_all(&chunk).await.is_ok() {}
            std::future::pending::<()>().await;
        };
        let until_stopped = async {
            tokio::select! {
                () = sending => {}
                _ = &mut stopped => {}
            }
        };
        // Bounded in time, like every load in the tests.
        let _ = tokio::time::timeout(WAIT, until_stopped).await;
    });
    (stop, task)
}

/// A connection whose receive buffer is small, so that most unread
/// replies wait in the server's kernel rather than in ours.
async fn connect_small_buffer(address: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    within("connecting", socket.connect(address))
        .await
        .expect("the server accepts connections")
}

#[tokio::test]
async fn a_slow_reader_that_keeps_sending_after_the_dot_gets_every_reply() {
    let [stall, seconds] = stall_flag();
    let server = Server::start(&["--quiet", &stall, &seconds]).await;
    // About 2.5 MB of replies: at 1 MB/s, the close lasts more than twice
    // the stall, and far more than the kernel's buffers hold.
    let lines = numbered_lines("line", 100_000);
    let mut request = request_of(&lines);
    request.extend_from_slice(b".\r\n");

    let (reader, mut writer) = connect_small_buffer(server.address).await.into_split();
    let started = Instant::now();
    let reading = tokio::spawn(read_throttled(reader, MEGABYTE_A_SECOND));
    writer.write_all(&request).await.unwrap();
    let (stop, sending) = keep_sending(writer);

    let received = within("every reply", reading).await.unwrap();
    let _ = stop.send(());
    sending.await.unwrap();
    let expected = replies_to(&lines);
    assert_eq!(received.len(), expected.len());
    assert!(received == expected, "the replies differ");
    // The reader took longer than the stall to read them all: a server
    // that gave up at the stall, rather than at a stall of progress, fails.
    assert!(started.elapsed() > 2 * STALL, "{:?}", started.elapsed());
}

#[tokio::test]
async fn at_shutdown_slow_readers_that_keep_sending_get_every_reply_owed() {
    const CONNECTIONS: usize = 64;
    let mut server = Server::start(&[]).await;
    // Far more than the server can answer before the signal, at the pace
    // the clients read: the server stops reading with input still arriving.
    let lines = numbered_lines("pipelined", 1_000_000);
    let request = std::sync::Arc::new(request_of(&lines));
    let mut streams = Vec::new();
    for _ in 0..CONNECTIONS {
        streams.push(connect_small_buffer(server.address).await);
        server
            .wait_for_log("the connection", |line| line.ends_with(" connected"))
            .await;
    }
    let mut clients = Vec::new();
    let mut progress = Vec::new();
    for stream in streams {
        let local = stream.local_addr().unwrap();
        let (reader, mut writer) = stream.into_split();
        let request = std::sync::Arc::clone(&request);
        let sending = tokio::spawn(async move {
            if writer.write_all(&request).await.is_ok() {
                let (_stop, sending) = keep_sending(writer);
                let _ = sending.await;
            }
        });
        // Slow enough that the replies in the kernel's buffers at the signal
        // (up to 4 MiB, as they grow) take longer than a second to read;
        // fast enough for the grace period.
        let (told, read_so_far) = watch::channel(0);
        let reading = tokio::spawn(read_throttled_telling(reader, 2 * MEGABYTE_A_SECOND, told));
        clients.push((local, reading, sending));
        progress.push(read_so_far);
    }
    // The signal comes once replies flow on every connection.
    for mut read_so_far in progress {
        within(
            "replies on every connection",
            read_so_far.wait_for(|&read| read >= 256 * 1024),
        )
        .await
        .unwrap();
    }
    server.signal("TERM").await;

    let mut received = Vec::new();
    for (local, reading, sending) in clients {
        received.push((local, within("the replies", reading).await.unwrap()));
        sending.abort();
    }
    assert!(server.exit_within(Duration::from_secs(5)).await.success());
    let log = server.rest_of_log().await;
    // A connection the log says was closed got every reply it was counted
    // as answering, and a clean close. One still open when the grace period
    // ended (its reader too slow for it, on a loaded machine) was cut, and
    // the log says so.
    // The replies to the first N lines are `expected[..reply_ends[N]]`.
    let expected = replies_to(&lines);
    let reply_ends: Vec<usize> = std::iter::once(0)
        .chain(lines.iter().scan(0, |end, line| {
            *end += reply(line).len();
            Some(*end)
        }))
        .collect();
    let mut closed_cleanly = 0;
    for (local, (bytes, ended)) in received {
        let prefix = format!("{local} closed");
        match log.iter().find(|line| line.starts_with(&prefix)) {
            Some(closed) => {
                assert!(closed.contains("(server shutting down)"), "{closed}");
                let answered = log_field(closed, "lines") as usize;
                assert!(
                    ended.is_ok() && bytes[..] == expected[..reply_ends[answered]],
                    "{local}: {} bytes received ({ended:?}), not the replies to the first \
                     {answered} lines",
                    bytes.len()
                );
                closed_cleanly += 1;
            }
            None => assert!(
                log.iter().any(|line| line.starts_with("closing ")
                    && line.ends_with(&format!("still open after {SHUTDOWN_GRACE:?}"))),
                "{local} was neither closed nor cut at the end of the grace period"
            ),
        }
    }
    // Unloaded, every one of them; each, at 2 MB/s, needs 1-2 s.
    assert!(
        closed_cleanly > 0,
        "no connection closed within the grace period"
    );
}

#[tokio::test]
async fn a_client_that_never_reads_cannot_hold_a_close_open() {
    // One slot: the close must free it for the next connection.
    let [stall, seconds] = stall_flag();
    let mut server = Server::start(&["--max-connections", "1", &stall, &seconds]).await;
    let stream = connect(server.address).await;
    let local = stream.local_addr().unwrap();
    let (_reader, mut writer) = stream.into_split();
    let started = Instant::now();
    writer.write_all(b"hello\r\n.\r\n").await.unwrap();
    // Never reads, never closes, and keeps sending.
    let (stop, sending) = keep_sending(writer);

    let closed = server
        .wait_for_log("the close", |line| {
            line.starts_with(&format!("{local} closed"))
        })
        .await;
    assert!(closed.contains("(client sent \".\")"), "{closed}");
    assert!(started.elapsed() >= STALL, "{:?}", started.elapsed());
    assert_eq!(
        exchange(server.address, b"next\r\n.\r\n").await,
        reply("next").as_bytes()
    );
    let _ = stop.send(());
    sending.await.unwrap();
}
