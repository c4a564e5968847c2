//! Many connections at once: 9,000 held open together, each answered
//! byte-exact. Where the open-file limit is lower, as many as it allows.

use std::sync::Arc;
use std::time::Instant;

use crate::common::*;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

const WANTED: usize = 9_000;
/// Descriptors this test process keeps for everything but the connections.
const SPARE_DESCRIPTORS: usize = 100;
/// Connection attempts in flight at once, well under the listen backlog.
const CONNECTING_AT_ONCE: usize = 256;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_concurrent_connections_each_get_their_reply() {
    let count = WANTED.min(open_file_limit().saturating_sub(SPARE_DESCRIPTORS));
    assert!(
        count >= 100,
        "an open-file limit of {} is too low for this test",
        open_file_limit()
    );
    let server = Server::start(&["--quiet"]).await;
    let started = Instant::now();

    // Open them all, and keep them all open.
    let connecting = Arc::new(Semaphore::new(CONNECTING_AT_ONCE));
    let mut opening = tokio::task::JoinSet::new();
    for _ in 0..count {
        let permit = Arc::clone(&connecting).acquire_owned().await.unwrap();
        let address = server.address;
        opening.spawn(async move {
            let stream = connect(address).await;
            drop(permit);
            stream
        });
    }
    let mut streams = Vec::with_capacity(count);
    while let Some(stream) = within("the connections to open", opening.join_next()).await {
        streams.push(stream.unwrap());
    }
    let opened = started.elapsed();

    // A distinct line on every one, all in flight together, each answered exactly.
    let mut exchanges = tokio::task::JoinSet::new();
    for (i, mut stream) in streams.into_iter().enumerate() {
        exchanges.spawn(async move {
            let line = format!("connection {i} of many");
            stream
                .write_all(format!("{line}\r\n").as_bytes())
                .await
                .unwrap();
            let expected = reply(&line);
            assert_eq!(
                read_exactly(&mut stream, expected.len()).await,
                expected.as_bytes()
            );
            stream
        });
    }
    let mut answered = Vec::with_capacity(count);
    while let Some(stream) = within("the replies", exchanges.join_next()).await {
        answered.push(stream.unwrap());
    }
    assert_eq!(answered.len(), count);
    eprintln!(
        "held {count} connections at once (open-file limit {}); opened in {opened:?}, all answered in {:?}",
        open_file_limit(),
        started.elapsed()
    );
}

/// This process's soft limit on open files, from `/proc/self/limits`.
fn open_file_limit() -> usize {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|soft| soft.parse().ok())
        .unwrap()
}
