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
