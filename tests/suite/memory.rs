//! `chat-server`'s memory per idle connection, guarded: a connection that
//! waits for input holds no buffer, so thousands of them cost little.

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
