//! `chat-server`'s memory per idle connection, guarded: a connection that
//! waits for input holds no buffer, so thousands of them cost little.

mod common;

use common::*;

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
    let after = server.resident_kib();
    let per_connection = (after.saturating_sub(before) * 1024) as f64 / IDLE_CONNECTIONS as f64;
    eprintln!("{per_connection:.0} bytes per idle connection ({IDLE_CONNECTIONS} open)");
    assert!(
        per_connection <= MAX_BYTES_PER_IDLE_CONNECTION,
        "{per_connection:.0} bytes per idle connection"
    );
}

/// Chat members held open at once for the measure.
const IDLE_MEMBERS: usize = 1_000;
/// The most resident memory an idle chat member may cost the server: an
/// idle connection's, plus its mailbox, its entries in the chat's maps,
/// and what the allocator keeps around them (about 2.7 KiB measured).
const MAX_BYTES_PER_IDLE_MEMBER: f64 = 3.0 * 1024.0;

#[tokio::test]
async fn an_idle_chat_member_costs_at_most_3_kib() {
    let server = Server::start(&["--quiet", "--chat"]).await;
    let warm = common::member::Member::join(server.address).await;
    let before = server.resident_kib();

    let mut idle = Vec::with_capacity(IDLE_MEMBERS);
    for _ in 0..IDLE_MEMBERS {
        idle.push(common::member::Member::join(server.address).await);
    }
    // Every join is sent to the first member: once it has them all, the
    // server has written every notice out.
    let mut warm = warm;
    for _ in 0..IDLE_MEMBERS {
        let line = warm.line().await;
        assert!(line.ends_with(" joined"), "{line}");
    }
    let after = server.resident_kib();
    let per_member = (after.saturating_sub(before) * 1024) as f64 / IDLE_MEMBERS as f64;
    eprintln!("{per_member:.0} bytes per idle chat member ({IDLE_MEMBERS} in one room)");
    assert!(
        per_member <= MAX_BYTES_PER_IDLE_MEMBER,
        "{per_member:.0} bytes per idle chat member"
    );
}
