//! Chat memory after a storm, guarded: what members were owed for a moment
//! is given back once written, and a member who never reads holds about
//! its `--sendq`, not the buffers its lines came in.

use std::net::SocketAddr;
use std::time::Duration;

use chat::protocol::chat::HOW_TO_TALK;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::Instant;

use crate::common::member::Member;
use crate::common::*;

/// Members who join while none of them reads.
const MEMBERS: usize = 1_000;
/// The most resident memory an idle member may cost once the backlog it
/// was owed has been written: what one that read as it went costs (see
/// `memory.rs`), since nothing of the backlog may stay behind.
const MAX_BYTES_PER_MEMBER_AFTER_A_BACKLOG: f64 = 3.0 * 1024.0;

/// The longest the memory is watched for going down.
const PURGE_WAIT: Duration = Duration::from_secs(5);

/// The server's resident memory, in KiB, once it is at most `bound_kib`,
/// or after [`PURGE_WAIT`].
async fn resident_once_down(server: &Server, bound_kib: u64) -> u64 {
    let deadline = Instant::now() + PURGE_WAIT;
    let mut interval = tokio::time::interval(Duration::from_millis(50));
    loop {
        interval.tick().await;
        let now = server.resident_kib();
        if now <= bound_kib || Instant::now() >= deadline {
            return now;
        }
    }
}

/// A member's connection, read a line at a time.
struct Reader {
    lines: BufReader<OwnedReadHalf>,
    line: String,
}

impl Reader {
    /// Connects: the reading side, and the writing side.
    async fn connect(address: SocketAddr) -> (Reader, OwnedWriteHalf) {
        let (read, writer) = connect(address).await.into_split();
        let reader = Reader {
            lines: BufReader::new(read),
            line: String::new(),
        };
        (reader, writer)
    }

    async fn line(&mut self) -> &str {
        self.line.clear();
        let count = within("a line", self.lines.read_line(&mut self.line))
            .await
            .unwrap();
        assert!(count > 0, "the server closed the connection");
        self.line.trim_end()
    }

    /// The number of the guest nick the welcome gives.
    async fn guest_number(&mut self) -> u64 {
        let welcome = self.line().await.to_string();
        let nick = welcome.rsplit(' ').next().unwrap();
        nick.trim_start_matches("guest").parse().unwrap()
    }
}

#[tokio::test]
async fn a_backlog_once_written_leaves_nothing_behind() {
    let server = Server::start(&["--quiet", "--chat"]).await;
    let _warm = Member::join(server.address).await;
    let before = server.resident_kib();

    // Everyone connects; each reads its welcome (so all have joined), and
    // nothing more until the last has: each is then owed a join notice
    // for every member after it, up to 20 KB, all at once.
    let mut readers = Vec::with_capacity(MEMBERS);
    let mut writers = Vec::with_capacity(MEMBERS);
    for _ in 0..MEMBERS {
        let (reader, writer) = Reader::connect(server.address).await;
        readers.push(reader);
        writers.push(writer);
    }
    let mut numbers = Vec::with_capacity(MEMBERS);
    for reader in &mut readers {
        numbers.push(reader.guest_number().await);
    }
    let mut sorted = numbers.clone();
    sorted.sort_unstable();
    let mut reading = tokio::task::JoinSet::new();
    for (mut reader, number) in readers.into_iter().zip(numbers) {
        let owed = MEMBERS - 1 - sorted.binary_search(&number).unwrap();
        reading.spawn(async move {
            while reader.line().await != HOW_TO_TALK {}
            let mut joined = 0;
            while joined < owed {
                joined += usize::from(reader.line().await.ends_with(" joined"));
            }
            reader
        });
    }
    let idle = reading.join_all().await;

    // Everything is written; what was freed goes back to the system
    // within a moment (the allocator's purge), so the memory is read on
    // an interval until it is down, or for at most `PURGE_WAIT`.
    let bound_kib =
        before + (MAX_BYTES_PER_MEMBER_AFTER_A_BACKLOG * MEMBERS as f64 / 1024.0) as u64;
    let grown_kib = resident_once_down(&server, bound_kib)
        .await
        .saturating_sub(before);
    let per_member = (grown_kib * 1024) as f64 / MEMBERS as f64;
    eprintln!("{per_member:.0} bytes per idle member after a backlog ({MEMBERS} open)");
    assert!(
        per_member <= MAX_BYTES_PER_MEMBER_AFTER_A_BACKLOG,
        "{per_member:.0} bytes per idle member after a backlog"
    );
    drop((idle, writers));
}

/// Set in the environment of this suite run again inside a network
/// namespace of its own, by [`in_a_namespace`].
const IN_NAMESPACE: &str = "CHAT_TEST_IN_A_NAMESPACE";

/// Runs the test `name` (this module's) again, alone, in new user and
/// network namespaces (`unshare`, util-linux; no privilege needed) whose
/// sockets send from 4 KiB buffers: the kernel then holds almost nothing
/// of what a member does not read, and the server's memory shows all of
/// it. (They receive into 128 KiB, so the server reads a talker's
/// pipelined lines in large batches, as it does outside.)
async fn in_a_namespace(name: &str) {
    let script = "ip link set lo up && \
        echo '4096 4096 4096' > /proc/sys/net/ipv4/tcp_wmem && \
        echo '4096 131072 131072' > /proc/sys/net/ipv4/tcp_rmem && \
        exec \"$0\" --exact \"$1\" --nocapture";
    let module = module_path!().split_once("::").unwrap().1;
    let suite = std::env::current_exe().unwrap();
    let output = within(
        "the test in its namespace",
        command("unshare")
            .args(["--user", "--map-root-user", "--net", "sh", "-c", script])
            .arg(suite)
            .arg(format!("{module}::{name}"))
            .env(IN_NAMESPACE, "1")
            .output(),
    )
    .await
    .expect("unshare runs (util-linux)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stderr}");
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "in the namespace: {stdout}{stderr} \
         (the test needs util-linux's unshare, iproute2's ip, and user namespaces)"
    );
}

/// Talkers, the lines each pipelines, and their `--max-rate`: past its
/// burst a talker's lines are read one at a time, so each batch shared
/// with the room holds one line.
const TALKERS: usize = 10;
const TALKER_LINES: usize = 4000;
const MAX_RATE: &str = "1000";
/// The `--sendq` of the server: 1 MiB, four times the default, so that
/// what a non-reader holds stands well above the few hundred KiB by which
/// two servers' peaks differ on a loaded machine; the talkers send it
/// more than that.
const SENDQ: usize = 1024 * 1024;
const TALKER_LINE: &str = "hello, world!";
/// How many `--sendq`s a member that never reads may add to the peak: it
/// holds about one (0.55-0.75 measured). Without copying a lagging
/// member's small parts together it adds about 2.5. (That and copying a
/// batch that is mostly spare room are each guarded by a unit test too.)
const NON_READER_SENDQS: u64 = 2;
/// jemalloc's options from the environment (`MALLOC_CONF`, with the
/// prefix of the `tikv-jemallocator` build), read after the server's own.
const ALLOCATOR_OPTIONS: &str = "_RJEM_MALLOC_CONF";

/// The server's peak resident memory, in KiB, while every talker
/// pipelines its lines and reads everyone else's, beside a member that
/// never reads (if `non_reader`).
async fn peak_while_talking(non_reader: bool) -> u64 {
    // The allocator gives back freed pages at once (not after 250 ms), so
    // the peak is what the server holds alive, not also what it freed a
    // moment before: on a loaded machine that lingers longer, and two
    // servers' peaks then differ by more than a `--sendq`.
    let server = Server::start_command(
        command(SERVER)
            .args(["--host", "127.0.0.1", "--port", "0", "--quiet", "--chat"])
            .args(["--max-rate", MAX_RATE, "--sendq", &SENDQ.to_string()])
            .env(ALLOCATOR_OPTIONS, "dirty_decay_ms:0"),
    )
    .await;
    let sleeper = if non_reader {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        Some(
            within("connecting", socket.connect(server.address))
                .await
                .unwrap(),
        )
    } else {
        None
    };
    let mut talkers = Vec::with_capacity(TALKERS);
    for _ in 0..TALKERS {
        let (mut reader, writer) = Reader::connect(server.address).await;
        while reader.line().await != HOW_TO_TALK {}
        talkers.push((reader, writer));
    }
    server.reset_peak();
    let flood = format!("{TALKER_LINE}\n").repeat(TALKER_LINES);
    let said = format!("> {TALKER_LINE}");
    let mut talking = tokio::task::JoinSet::new();
    for (mut reader, mut writer) in talkers {
        let (flood, said) = (flood.clone(), said.clone());
        talking.spawn(async move {
            let write = async {
                within("sending", writer.write_all(flood.as_bytes()))
                    .await
                    .unwrap();
            };
            // Every other talker's lines.
            let read = async {
                let mut seen = 0;
                while seen < (TALKERS - 1) * TALKER_LINES {
                    seen += usize::from(reader.line().await.ends_with(&said));
                }
            };
            tokio::join!(write, read);
        });
    }
    talking.join_all().await;
    let peak = server.peak_resident_kib();
    drop(sleeper);
    peak
}

#[tokio::test]
async fn a_member_who_never_reads_holds_about_its_sendq() {
    if std::env::var_os(IN_NAMESPACE).is_none() {
        return in_a_namespace("a_member_who_never_reads_holds_about_its_sendq").await;
    }
    let without = peak_while_talking(false).await;
    let with = peak_while_talking(true).await;
    eprintln!("peak {without} KiB; with a member that never reads, {with} KiB");
    let sendq_kib = (SENDQ / 1024) as u64;
    assert!(
        with <= without + NON_READER_SENDQS * sendq_kib,
        "a member that never reads: peak {with} KiB against {without} KiB without it \
         (--sendq is {sendq_kib} KiB)"
    );
}
