//! `chat-server`'s memory per idle connection, guarded: a connection that
//! waits for input holds no buffer, so thousands of them cost little,
//! with TLS too, and whatever they were sent before.

use chat::protocol;
use chat::server::connection::READ_CHUNK;

use crate::common::certs;
use crate::common::*;

/// Connections held open at once for the measure.
const IDLE_CONNECTIONS: usize = 2_000;
/// The most resident memory an idle connection may cost the server.
const MAX_BYTES_PER_IDLE_CONNECTION: f64 = 1.5 * 1024.0;

#[tokio::test]
async fn an_idle_connection_costs_at_most_1_5_kib() {
    let server = Server::start(&["--quiet"]).await;
    // One exchange first, so the runtime's own start-up is not counted.
    let mut warm = connect(server.address).await;
    ping(&mut warm, "warm").await;
    let before = server.resident_kib();

    let mut idle = Vec::with_capacity(IDLE_CONNECTIONS);
    for i in 0..IDLE_CONNECTIONS {
        let mut stream = connect(server.address).await;
        ping(&mut stream, &format!("idle {i}")).await;
        idle.push(stream);
    }
    let grown_kib = server.resident_kib().saturating_sub(before);
    assert_at_most(
        grown_kib,
        IDLE_CONNECTIONS,
        MAX_BYTES_PER_IDLE_CONNECTION,
        "idle connection",
    );
}

/// Checks that `grown_kib` of resident memory is at most `max_bytes` for
/// each of `count` things, and says how much it was.
fn assert_at_most(grown_kib: u64, count: usize, max_bytes: f64, each: &str) {
    let per_each = (grown_kib * 1024) as f64 / count as f64;
    eprintln!("{per_each:.0} bytes per {each} ({count} open)");
    assert!(per_each <= max_bytes, "{per_each:.0} bytes per {each}");
}

/// Chat members held open at once for the measure.
const IDLE_MEMBERS: usize = 1_000;
/// The most resident memory an idle chat member may cost the server: an
/// idle connection's, plus its mailbox, its entries in the chat's maps,
/// and what the allocator keeps around them (about 2.5 KiB measured).
const MAX_BYTES_PER_IDLE_MEMBER: f64 = 3.0 * 1024.0;

#[tokio::test]
async fn an_idle_chat_member_costs_at_most_3_kib() {
    let server = Server::start(&["--quiet", "--chat"]).await;
    let mut warm = crate::common::member::Member::join(server.address).await;
    let before = server.resident_kib();

    let mut idle = Vec::with_capacity(IDLE_MEMBERS);
    for _ in 0..IDLE_MEMBERS {
        idle.push(crate::common::member::Member::join(server.address).await);
    }
    // Every join is sent to the first member: once it has them all, the
    // server has written every notice out.
    for _ in 0..IDLE_MEMBERS {
        let line = warm.line().await;
        assert!(line.ends_with(" joined"), "{line}");
    }
    let grown_kib = server.resident_kib().saturating_sub(before);
    assert_at_most(
        grown_kib,
        IDLE_MEMBERS,
        MAX_BYTES_PER_IDLE_MEMBER,
        "idle chat member",
    );
}

/// TLS connections held open at once for the measure, each after a burst.
const IDLE_TLS_CONNECTIONS: usize = 200;
/// The most resident memory an idle TLS connection may cost the server,
/// whatever it was sent before: an idle connection's, plus the TLS
/// session, which holds no buffer while it waits (7,660-8,360 bytes
/// measured; about 12,400 on rustls's buffered API, whose 4 KiB receive
/// buffer lives as long as the connection).
const MAX_BYTES_PER_IDLE_TLS_CONNECTION: f64 = 10.0 * 1024.0;

/// The length of each line in the burst, with its CRLF.
const LINE_BYTES: usize = 64;

/// Exactly one read's worth of lines: the read that takes them fills the
/// server's buffer to its last byte, and rustls's with full-size records.
fn one_full_read_of_lines() -> Vec<u8> {
    let line = [&[b'x'; LINE_BYTES - 2][..], b"\r\n"].concat();
    assert_eq!(READ_CHUNK % LINE_BYTES, 0);
    line.repeat(READ_CHUNK / LINE_BYTES)
}

#[tokio::test]
async fn an_idle_tls_connection_holds_nothing_of_a_burst_it_was_sent() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let certs = certs::Certs::make();
    let args = certs.server_args();
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.push("--quiet");
    let server = Server::start(&args).await;
    let burst = one_full_read_of_lines();
    let replies = burst.len() / LINE_BYTES * (LINE_BYTES + protocol::REPLY_PREFIX.len());
    let answered = |mut stream: tokio_rustls::client::TlsStream<tokio::net::TcpStream>| {
        let burst = &burst;
        async move {
            within("the burst", async {
                stream.write_all(burst).await.unwrap();
                stream.flush().await.unwrap();
                stream.read_exact(&mut vec![0; replies]).await.unwrap();
            })
            .await;
            stream
        }
    };
    let warm = answered(certs::tls_connect(server.address, &certs.ca, None).await).await;
    let before = server.resident_kib();

    let mut idle = Vec::with_capacity(IDLE_TLS_CONNECTIONS);
    for _ in 0..IDLE_TLS_CONNECTIONS {
        let stream = certs::tls_connect(server.address, &certs.ca, None).await;
        idle.push(answered(stream).await);
    }
    let grown_kib = server.resident_kib().saturating_sub(before);
    assert_at_most(
        grown_kib,
        IDLE_TLS_CONNECTIONS,
        MAX_BYTES_PER_IDLE_TLS_CONNECTION,
        "idle TLS connection after a 64 KiB burst",
    );
    drop((warm, idle));
}
