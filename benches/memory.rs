//! Chat memory after a storm: the real `chat-server --chat` in a child
//! process, its resident memory read from `/proc` while a crowd comes and
//! goes. Every figure is beside the baseline it is judged against, from the
//! same run.
//!
//! - backlog: 1,000 members join, none reading until the last has joined
//!   (so each is owed up to ~20 KB of join notices for a moment), then all
//!   read everything and go idle: the memory per idle member afterwards,
//!   against 1,000 members who read as they go.
//! - waves: five times, 1,000 members join as above and all leave; each
//!   wave's peak against the first's, and the memory 5 s after each wave
//!   against before the first.
//! - non-reader: talkers pipeline short lines under `--max-rate`, everyone
//!   reading; the peak memory with one member (and with eight) that never
//!   reads, against the peak with none. Run in a network namespace of its
//!   own (`unshare`, util-linux) whose `tcp_wmem` and `tcp_rmem` are 4 KiB,
//!   so the kernel's socket buffers hold almost nothing of the backlog.
//!
//! - history: 1,000 rooms, one member in each, each room's history filled
//!   (by its line count with short lines, by `--history-bytes` with long
//!   ones): the memory per room, against the same rooms with `--history 0`,
//!   beside the bytes of lines each keeps.
//!
//! `cargo bench --bench memory -- WORD...` runs only the parts named.

mod support;

use std::io::BufRead;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use chat::protocol::chat::HOW_TO_TALK;
use support::client_runtime;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

/// Measurements of each figure; the range over them is reported.
const RUNS: usize = 3;
/// Members in the backlog and in each wave.
const MEMBERS: usize = 1000;
/// How long every wait in this bench may take.
const PATIENCE: Duration = Duration::from_secs(60);
/// How long the server is left to settle before its memory is read.
const SETTLE: Duration = Duration::from_secs(2);
/// The argument that runs the non-reader part inside its namespace.
const INSIDE: &str = "--inside-namespace";
/// chat-server's default `--sendq`.
const SENDQ: u64 = chat::chat::DEFAULT_SENDQ as u64;

/// The real chat-server, started with `args`.
struct Server {
    process: std::process::Child,
    address: SocketAddr,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut process = support::command(env!("CARGO_BIN_EXE_chat-server"))
            .args(["--chat", "--quiet", "--host", "127.0.0.1", "--port", "0"])
            .args(args)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut log = std::io::BufReader::new(process.stderr.take().unwrap());
        let mut line = String::new();
        let address = loop {
            line.clear();
            assert!(log.read_line(&mut line).unwrap() > 0, "chat-server ended");
            if let Some((_, bound)) = line.split_once("listening on ") {
                let bound = bound.split_whitespace().next().unwrap_or_default();
                break bound.parse().unwrap();
            }
        };
        // Keep reading its log, so it never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
        Server { process, address }
    }

    fn resident_kib(&self) -> u64 {
        support::resident_kib(self.process.id())
    }

    fn peak_kib(&self) -> u64 {
        support::status_kib(self.process.id(), "VmHWM:")
    }

    /// Starts the next peak from now (`clear_refs`, Linux 4.0 and later).
    fn reset_peak(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.process.id()), "5").unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// One member's connection, read a line at a time.
struct Member {
    stream: BufReader<TcpStream>,
    line: String,
}

impl Member {
    async fn connect(address: SocketAddr) -> Member {
        let stream = TcpStream::connect(address).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Member {
            stream: BufReader::new(stream),
            line: String::new(),
        }
    }

    /// The next line, without its line end.
    async fn line(&mut self) -> &str {
        self.line.clear();
        let read = tokio::time::timeout(PATIENCE, self.stream.read_line(&mut self.line));
        let count = read.await.expect("a line in time").unwrap();
        assert!(count > 0, "the server closed the connection");
        self.line.trim_end()
    }

    /// Reads lines until one is `wanted`.
    async fn until(&mut self, wanted: &str) {
        let mut last = String::new();
        loop {
            self.line.clear();
            let read = tokio::time::timeout(PATIENCE, self.stream.read_line(&mut self.line));
            let Ok(read) = read.await else {
                panic!("no {wanted:?} in time; the last line was {last:?}");
            };
            assert!(
                read.unwrap() > 0,
                "the server closed the connection after {last:?}"
            );
            if self.line.trim_end() == wanted {
                return;
            }
            last = self.line.clone();
        }
    }

    async fn send(&mut self, line: &str) {
        let stream = self.stream.get_mut();
        stream.write_all(line.as_bytes()).await.unwrap();
        stream.write_all(b"\n").await.unwrap();
    }

    /// The nick the welcome gives.
    async fn nick(&mut self) -> String {
        let welcome = self.line().await;
        welcome.rsplit(' ').next().unwrap().to_string()
    }
}

/// `count` members join, none reading past its welcome until the last has
/// joined, then all read everything they were sent: afterwards they are
/// idle.
async fn join_with_backlog(address: SocketAddr, count: usize) -> Vec<Member> {
    let mut members = Vec::with_capacity(count);
    for _ in 0..count {
        members.push(Member::connect(address).await);
    }
    // Guest nicks are numbered in the order the members arrived: each is
    // owed a join notice for every number above its own.
    let mut numbers = Vec::with_capacity(count);
    for member in &mut members {
        let nick = member.nick().await;
        numbers.push(nick.trim_start_matches("guest").parse::<u64>().unwrap());
    }
    let mut sorted = numbers.clone();
    sorted.sort_unstable();
    let mut readers = tokio::task::JoinSet::new();
    for (mut member, number) in members.into_iter().zip(numbers) {
        let owed = count - 1 - sorted.binary_search(&number).unwrap();
        readers.spawn(async move {
            member.until(HOW_TO_TALK).await;
            let mut joined = 0;
            while joined < owed {
                joined += usize::from(member.line().await.ends_with(" joined"));
            }
            member
        });
    }
    readers.join_all().await
}

/// `count` members join one at a time, each reading its greeting before
/// the next comes; the join notices are left to the kernel's buffers.
async fn join_reading(address: SocketAddr, count: usize) -> Vec<Member> {
    let mut members = Vec::with_capacity(count);
    for _ in 0..count {
        let mut member = Member::connect(address).await;
        member.until(HOW_TO_TALK).await;
        members.push(member);
    }
    members
}

/// KiB per idle member: after joining with a backlog, and (the baseline)
/// after joining while reading.
fn idle_after_backlog() -> (f64, f64) {
    let per_member = |backlog: bool| {
        let server = Server::start(&[]);
        client_runtime().block_on(async {
            let mut warm = join_reading(server.address, 1).await;
            let before = server.resident_kib();
            let members = if backlog {
                join_with_backlog(server.address, MEMBERS).await
            } else {
                join_reading(server.address, MEMBERS).await
            };
            // Time for the server to settle once it has written everything,
            // and for the allocator to give back what was freed.
            tokio::time::sleep(SETTLE).await;
            let after = server.resident_kib();
            drop((members, warm.pop()));
            after.saturating_sub(before) as f64 / MEMBERS as f64
        })
    };
    (per_member(true), per_member(false))
}

/// Five waves of members who join with a backlog and leave: the RSS
/// before the first, and each wave's peak and RSS 5 s after it, in KiB.
fn waves() -> (u64, Vec<u64>, Vec<u64>) {
    let server = Server::start(&[]);
    client_runtime().block_on(async {
        let mut watcher = join_reading(server.address, 1).await.pop().unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let start = server.resident_kib();
        let (mut peaks, mut after) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            server.reset_peak();
            let members = join_with_backlog(server.address, MEMBERS).await;
            drop(members);
            let mut left = 0;
            while left < MEMBERS {
                left += usize::from(watcher.line().await.contains(" left"));
            }
            peaks.push(server.peak_kib());
            tokio::time::sleep(Duration::from_secs(5)).await;
            after.push(server.resident_kib());
        }
        (start, peaks, after)
    })
}

/// Talkers, lines each, bytes each line: the non-reader part's load.
const TALKERS: usize = 10;
const TALKER_LINES: usize = 2000;
const TALKER_LINE: &[u8] = b"hello, world!\n";
/// Their `--max-rate`: its burst, from every talker at once, stays well
/// within a reader's `--sendq`.
const MAX_RATE: &str = "500";

/// The peak RSS, in KiB, while `TALKERS` pipeline their lines and every
/// member reads, beside `non_readers` members that never read.
async fn peak_with_non_readers(non_readers: usize) -> u64 {
    let server = Server::start(&["--max-rate", MAX_RATE]);
    let mut sleepers = Vec::new();
    for _ in 0..non_readers {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        sleepers.push(socket.connect(server.address).await.unwrap());
    }
    let mut talkers = join_reading(server.address, TALKERS).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.reset_peak();
    let flood = TALKER_LINE.repeat(TALKER_LINES);
    let mut tasks = tokio::task::JoinSet::new();
    for talker in talkers.drain(..) {
        let flood = flood.clone();
        tasks.spawn(async move {
            let (mut reading, mut writing) = talker.stream.into_inner().into_split();
            let write = async move {
                writing.write_all(&flood).await.unwrap();
                writing
            };
            // Every other talker's lines, then done.
            let read = async move {
                let wanted = (TALKERS - 1) * TALKER_LINES;
                let mut reader = BufReader::new(&mut reading);
                let (mut seen, mut line) = (0, String::new());
                while seen < wanted {
                    line.clear();
                    let read = tokio::time::timeout(PATIENCE, reader.read_line(&mut line));
                    assert!(read.await.expect("lines in time").unwrap() > 0);
                    seen += usize::from(line.ends_with("hello, world!\r\n"));
                }
            };
            let (writing, ()) = tokio::join!(write, read);
            drop(writing);
        });
    }
    tasks.join_all().await;
    let peak = server.peak_kib();
    drop(sleepers);
    peak
}

/// Inside the namespace: prints the three peaks, one line.
fn inside_namespace() {
    let runtime = client_runtime();
    let peaks: Vec<u64> = [0, 1, 8]
        .into_iter()
        .map(|non_readers| runtime.block_on(peak_with_non_readers(non_readers)))
        .collect();
    println!("{} {} {}", peaks[0], peaks[1], peaks[2]);
}

/// Runs [`inside_namespace`] in a user and network namespace of its own,
/// with 4 KiB socket buffers; its three peaks in KiB.
fn non_reader_peaks() -> [u64; 3] {
    let script = "ip link set lo up && \
        echo '4096 4096 4096' > /proc/sys/net/ipv4/tcp_wmem && \
        echo '4096 4096 4096' > /proc/sys/net/ipv4/tcp_rmem && \
        exec \"$0\" --bench --inside-namespace";
    let program = std::env::current_exe().unwrap();
    let output = support::command("unshare")
        .args(["--user", "--map-root-user", "--net", "sh", "-c", script])
        .arg(program)
        .stderr(Stdio::inherit())
        .output()
        .expect("unshare (util-linux) runs");
    let text = String::from_utf8_lossy(&output.stdout);
    let peaks: Vec<u64> = text
        .split_whitespace()
        .map(|peak| peak.parse().unwrap())
        .collect();
    assert_eq!(peaks.len(), 3, "the namespace's run printed {text:?}");
    [peaks[0], peaks[1], peaks[2]]
}

/// Rooms filled with history in the history part.
const ROOMS: usize = 1000;
/// Lines each member says in its room: more than `--history` keeps.
const SAID: usize = 60;

/// KiB per room of [`ROOMS`] rooms, one member in each who says [`SAID`]
/// lines of `text_len` bytes, with chat-server's default history and with
/// none; and the bytes of lines each room then keeps.
fn rooms_with_history(text_len: usize) -> (f64, f64, f64) {
    let per_room = |history: bool| {
        let args: &[&str] = if history {
            &["--max-rate", "0"]
        } else {
            &["--max-rate", "0", "--history", "0"]
        };
        let server = Server::start(args);
        client_runtime().block_on(async {
            let mut warm = join_reading(server.address, 1).await;
            let before = server.resident_kib();
            let text = "x".repeat(text_len);
            let mut members = Vec::with_capacity(ROOMS);
            for room in 0..ROOMS {
                let mut member = Member::connect(server.address).await;
                member.until(HOW_TO_TALK).await;
                member.send(&format!("/join r{room}")).await;
                member.until(&format!("*** you are in #r{room}")).await;
                for _ in 0..SAID {
                    member.send(&text).await;
                }
                // Its lines are handled once its /who is answered.
                member.send("/who").await;
                member
                    .until(&format!("*** here in #r{room} (1): {}", member_nick(room)))
                    .await;
                members.push(member);
            }
            std::thread::sleep(SETTLE);
            let grown = server.resident_kib().saturating_sub(before);
            warm.clear();
            grown as f64 / ROOMS as f64
        })
    };
    // What one room keeps: `<guestN> ` and the text and CRLF a line, the
    // newest within the line count and the bytes.
    let line_len = "<guest1001> ".len() + text_len + 2;
    let limits = chat::chat::history::Limits::default();
    let kept_lines = SAID.min(limits.lines).min(limits.bytes / line_len);
    let kept_kib = (kept_lines * line_len) as f64 / 1024.0;
    (per_room(true), per_room(false), kept_kib)
}

/// The nick of the member in room `room`: the warm-up member is guest1.
fn member_nick(room: usize) -> String {
    format!("guest{}", room + 2)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|arg| arg == INSIDE) {
        return inside_namespace();
    }
    const PARTS: [&str; 4] = ["backlog", "waves", "non-reader", "history"];
    let wanted = support::parts_wanted(&args, &PARTS);
    println!("memory: chat-server --chat, {MEMBERS} members, {RUNS} runs");
    let kib = |values: &[f64]| support::range(values, |x| format!("{x:.2}"));
    let mib = |values: &[f64]| support::range(values, |x| format!("{:.1}", x / 1024.0));

    if wanted("backlog") {
        let (mut backlog, mut reading) = (Vec::new(), Vec::new());
        for _ in 0..RUNS {
            let (after_backlog, after_reading) = idle_after_backlog();
            backlog.push(after_backlog);
            reading.push(after_reading);
        }
        println!(
            "idle member after a backlog of join notices: {} KiB each; reading as they go: {} KiB each",
            kib(&backlog),
            kib(&reading),
        );
    }

    if wanted("waves") {
        for _ in 0..RUNS {
            let (start, peaks, after) = waves();
            let first = peaks[0] as f64;
            let worst = peaks
                .iter()
                .map(|&peak| peak as f64 / first)
                .fold(0.0, f64::max);
            let last = *after.last().unwrap();
            println!(
                "5 waves of {MEMBERS} joining with a backlog and leaving: start {:.1} MiB; peaks {} MiB \
                 (highest {worst:.2}x the first); 5 s after each {} MiB; last {:+.1} MiB on the start",
                start as f64 / 1024.0,
                peaks
                    .iter()
                    .map(|&p| format!("{:.1}", p as f64 / 1024.0))
                    .collect::<Vec<_>>()
                    .join(", "),
                after
                    .iter()
                    .map(|&a| format!("{:.1}", a as f64 / 1024.0))
                    .collect::<Vec<_>>()
                    .join(", "),
                (last as f64 - start as f64) / 1024.0,
            );
        }
    }

    if wanted("history") {
        for (what, text_len) in [
            ("50 lines of 30 bytes", 16),
            ("long lines, to --history-bytes", 2000),
        ] {
            let (mut with, mut without, mut kept) = (Vec::new(), Vec::new(), 0.0);
            for _ in 0..RUNS {
                let (history, none, lines) = rooms_with_history(text_len);
                with.push(history);
                without.push(none);
                kept = lines;
            }
            let extra: Vec<f64> = with.iter().zip(&without).map(|(w, n)| w - n).collect();
            println!(
                "{ROOMS} rooms, history full ({what}): {} KiB a room, {} KiB with --history 0; \
                 the history {} KiB a room, holding {kept:.2} KiB of lines",
                kib(&with),
                kib(&without),
                kib(&extra),
            );
        }
    }

    if wanted("non-reader") {
        let (mut none, mut one, mut eight) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..RUNS {
            let [no, with_one, with_eight] = non_reader_peaks();
            none.push(no as f64);
            one.push((with_one.saturating_sub(no)) as f64);
            eight.push((with_eight.saturating_sub(no)) as f64);
        }
        let of_sendq = |values: &[f64]| {
            support::range(values, |x| format!("{:.2}x", x * 1024.0 / SENDQ as f64))
        };
        println!(
            "{TALKERS} talkers pipelining {TALKER_LINES} lines, 4 KiB socket buffers: peak {} MiB; \
             one non-reader adds {} MiB ({} --sendq), eight add {} MiB ({} --sendq, {} each)",
            mib(&none),
            mib(&one),
            of_sendq(&one),
            mib(&eight),
            of_sendq(&eight),
            of_sendq(&eight.iter().map(|x| x / 8.0).collect::<Vec<_>>()),
        );
    }
}
