//! `chat-server` on SIGINT, SIGTERM and SIGHUP: it stops accepting, lets every
//! connection send the replies it owes, closes them all, and exits 0 within
//! 5 seconds, even when a client does not read.

use std::time::Duration;

use crate::common::*;
use chat::server::SHUTDOWN_GRACE;
use tokio::io::AsyncReadExt;

const SHUTDOWN_LIMIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn idle_clients_are_closed_and_the_server_exits_0() {
    for signal in ["TERM", "INT", "HUP"] {
        let mut server = Server::start(&["--quiet"]).await;
        let mut clients = Vec::new();
        for i in 0..3 {
            let mut stream = connect(server.address).await;
            ping(&mut stream, &format!("idle {i}")).await;
            clients.push(stream);
        }
        server.signal(signal).await;
        for stream in &mut clients {
            assert_eq!(read_to_end(stream).await, b"", "SIG{signal}");
        }
        let status = server.exit_within(SHUTDOWN_LIMIT).await;
        assert!(status.success(), "SIG{signal}: {status}");
        assert!(
            connect_refused(server.address).await,
            "SIG{signal}: still accepting"
        );
    }
}

async fn connect_refused(address: std::net::SocketAddr) -> bool {
    within(
        "a connection attempt",
        tokio::net::TcpStream::connect(address),
    )
    .await
    .is_err()
}

#[tokio::test]
async fn a_client_mid_pipeline_gets_every_reply_owed() {
    let mut server = Server::start(&[]).await;
    let stream = connect(server.address).await;
    let local = stream.local_addr().unwrap();
    let (mut reader, writer) = stream.into_split();
    // Far more lines than the socket buffers hold, sent without reading, so
    // the server is stalled mid-pipeline with replies owed.
    let lines = numbered_lines("pipelined", 2_000_000);
    let (_, sender) = send_until_stalled(writer, request_of(&lines)).await;

    server.signal("TERM").await;
    let mut received = Vec::new();
    within("the replies", reader.read_to_end(&mut received))
        .await
        .expect("a clean close after the last reply");
    let closed = server
        .wait_for_log("the connection's close", |line| {
            line.starts_with(&format!("{local} closed"))
        })
        .await;
    assert!(closed.contains("(server shutting down)"), "{closed}");
    let answered = log_field(&closed, "lines") as usize;
    assert!(
        answered > 0 && answered < lines.len(),
        "{answered} lines answered"
    );
    assert!(
        received == replies_to(&lines[..answered]),
        "the replies are not the first {answered} owed"
    );
    assert!(server.exit_within(SHUTDOWN_LIMIT).await.success());
    sender.abort();
}

#[tokio::test]
async fn a_client_that_does_not_read_cannot_hold_the_server_up() {
    let mut server = Server::start(&[]).await;
    let (_reader, writer) = connect(server.address).await.into_split();
    let (_, sender) = send_until_stalled(writer, b"never read\r\n".repeat(10_000_000)).await;
    server.signal("TERM").await;
    let status = server.exit_within(SHUTDOWN_LIMIT).await;
    assert!(status.success(), "{status}");
    let log = server.rest_of_log().await;
    assert!(
        log.iter().any(
            |line| *line == format!("closing 1 connection still open after {SHUTDOWN_GRACE:?}")
        ),
        "{log:?}"
    );
    sender.abort();
}
