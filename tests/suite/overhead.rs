//! What `chat-server` costs beyond the line work, guarded where time is not:
//! page faults, voluntary context switches and write calls per 100,000
//! lines, counted by the kernel (`/proc/PID`) and by the server's close
//! line. The bounds
//! are generous (several times what is measured), so load on the machine
//! does not trip them, and the counts do not hang on the build's speed: the
//! client waits for each batch's replies, so the server empties its socket
//! and waits once a batch, in a debug build as in a release one. What they
//! catch is a cost per wake or per line coming back: buffers whose pages go
//! back to the system each time the socket is empty (about 37 faults a
//! wake: the read buffer and the replies), or a write per line.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

/// Lines sent, as fast as the server takes them.
const LINES: usize = 100_000;
const LINE: &[u8] = b"0123456789abcdefghijklmnopqrst\r\n";
/// Lines written at once by the client.
const LINES_PER_WRITE: usize = 2_048;

/// Minor page faults the server may take for [`LINES`]: 46-78 measured,
/// with the freed buffers' pages kept by the allocator between wakes
/// (`src/allocator.rs`); about 1,900 when they go back to the system at
/// once (`_RJEM_MALLOC_CONF=dirty_decay_ms:0`), as glibc's malloc does.
const MAX_FAULTS: u64 = 500;
/// Voluntary context switches of all the server's threads (a worker that
/// had nothing to do): 4-46 measured, under a park a batch; 500 is ten a
/// batch. (Involuntary ones rose to 450 beside a busy test.)
const MAX_SWITCHES: u64 = 500;
/// Write calls for [`LINES`] replies: one for each read's worth of
/// replies, 49-66 measured (about 3,100 reading 1 KiB at a time).
const MAX_WRITES: u64 = 500;

/// The kernel's counts for a process: minor faults, and voluntary context
/// switches (a thread that had nothing to do) summed over its threads.
/// Involuntary ones are left out: they count how busy the machine is (the
/// test runs beside others), not what the server does.
fn counters(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // The fields after the name in parentheses start with the state
    // (field 3); minflt is field 10.
    let after_name = &stat[stat.rfind(')').expect("stat has a (name)") + 2..];
    let faults = after_name
        .split(' ')
        .nth(7)
        .and_then(|n| n.parse().ok())
        .expect("minflt in /proc/PID/stat");
    let mut switches = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("/proc/PID/task") {
        let Ok(task) = task else { continue };
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        switches += status
            .lines()
            .filter_map(|line| line.strip_prefix("voluntary_ctxt_switches:"))
            .filter_map(|count| count.trim().parse::<u64>().ok())
            .sum::<u64>();
    }
    (faults, switches)
}

#[tokio::test]
async fn windowed_lines_cost_no_fault_switch_or_write_per_line() {
    let mut server = Server::start(&[]).await;
    // One exchange first, so the runtime's start-up is not counted.
    let mut warm = connect(server.address).await;
    ping(&mut warm, "warm").await;

    let mut stream = connect(server.address).await;
    let batch = LINE.repeat(LINES_PER_WRITE);
    let reply_len = b"You sent: ".len() + LINE.len();
    let mut replies = vec![0; LINES_PER_WRITE * reply_len];
    let (faults_before, switches_before) = counters(server.pid());
    // A window of one batch: the server empties its socket and waits
    // after every one, as it does under a client that waits for replies.
    let mut left = LINES;
    while left > 0 {
        let lines = left.min(LINES_PER_WRITE);
        stream
            .write_all(&batch[..lines * LINE.len()])
            .await
            .unwrap();
        let replies = &mut replies[..lines * reply_len];
        within("a batch's replies", stream.read_exact(replies))
            .await
            .unwrap();
        left -= lines;
    }
    let (faults_after, switches_after) = counters(server.pid());
    stream.write_all(b".\r\n").await.unwrap();
    within("the server's close", read_to_end(&mut stream)).await;
    drop(stream);

    let closed = server
        .wait_for_log("the closed line", |l| l.contains("closed (client sent"))
        .await;
    assert_eq!(log_field(&closed, "lines"), LINES as u64, "{closed}");
    let faults = faults_after - faults_before;
    let switches = switches_after - switches_before;
    let writes = log_field(&closed, "writes");
    eprintln!(
        "per {LINES} lines: {faults} minor faults, {switches} voluntary context switches, {writes} writes"
    );
    assert!(
        faults <= MAX_FAULTS,
        "{faults} minor faults for {LINES} lines"
    );
    assert!(
        switches <= MAX_SWITCHES,
        "{switches} voluntary context switches for {LINES} lines"
    );
    assert!(writes <= MAX_WRITES, "{writes} writes for {LINES} lines");
}
