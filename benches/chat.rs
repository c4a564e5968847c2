//! Chat mode's fan-out: chat-server `--chat` against two baselines in the
//! same run (see `support/fan_out.rs`): the per-line-write design of
//! tokio's `examples/chat.rs`, and a raw fan-out bound that moves chunks
//! with no lines at all. Each server runs in a child process (this program
//! with `--serve KIND`), so its memory and CPU are its own.
//!
//! - deliveries/s: one sender, N receivers in one room (N = 100, 1,000);
//!   the sender keeps at most `WINDOW_BYTES` ahead of the slowest receiver.
//!   10 million deliveries a measurement (`DELIVERIES`): with 2 million
//!   a measurement lasted 30-60 ms, mostly the first batch's way through,
//!   and the ratio to the bound swung 0.29-0.97x between runs. The
//!   per-line-write design gets a fifth of them: at its rate that is
//!   still several seconds a measurement.
//! - latency: p50/p99 from send to receipt at 100k deliveries/s (1,000
//!   lines/s to 100 receivers), with and without a member that never reads.
//! - isolation: 10 readers and one member that never reads: the readers'
//!   rate, and how much the server's memory grows.
//! - idle: resident memory per idle member, 1,000 members in one room.
//! - link: one room across two servers linked through a `nats-server`,
//!   against the same room on one of them: deliveries/s and p99; and a
//!   burst of 50,000 lines piped by one member across the link at once:
//!   how long until the other server's member has them, and how many.
//!
//! - history: how long a `/join` takes to be answered (its `here:` line)
//!   in a room whose history holds 50 lines, against a room with none, on
//!   one server, joins alternating; and linked through a JetStream broker
//!   (`linked_history`): recent lines from the stream against held ones,
//!   the stream's two ways to read them, and the lines said during an
//!   outage reaching 100 members against the same lines live.
//!
//! `cargo bench --bench chat -- WORD...` runs only the parts named
//! (throughput, latency, isolation, idle, link, history).

#[path = "chat/linked_history.rs"]
mod linked_history;
mod support;

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chat::chat as chat_mode;
use chat::delimiter::Delimiter;
use chat::framing::LineFormat;
use chat::server::{self, Config};
use support::{ChildServer, SERVE, client_runtime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::Instant;

/// Measurements of each figure; the range over them is reported.
const RUNS: usize = 3;
/// Deliveries in one throughput measurement (lines times receivers).
const DELIVERIES: u64 = 10_000_000;
/// Bytes of lines the sender may be ahead of the slowest receiver: well
/// within chat-server's default `--sendq`, with the prefixes added.
const WINDOW_BYTES: u64 = 64 * 1024;
/// A chat line as sent: 31 bytes and LF.
const LINE: &[u8] = b"the quick brown fox jumps over\n";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Chat,
    PerLine,
    Raw,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Chat, Kind::PerLine, Kind::Raw];

    fn name(self) -> &'static str {
        match self {
            Kind::Chat => "chat-server",
            Kind::PerLine => "per-line-write",
            Kind::Raw => "raw-fan-out",
        }
    }

    fn parse(name: &str) -> Option<Kind> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// Lines a connection receives on joining, before any other.
    fn greeting_lines(self) -> u64 {
        match self {
            Kind::Chat => 3,
            Kind::PerLine | Kind::Raw => 1,
        }
    }

    /// Lines receiver `k` of `n` (joined in order, then the sender) is sent
    /// about the others joining.
    fn notices(self, k: usize, n: usize) -> u64 {
        match self {
            Kind::Chat => (n - 1 - k) as u64 + 1,
            Kind::PerLine | Kind::Raw => 0,
        }
    }
}

/// The child's side: serves `kind` until stdin closes.
async fn serve(listener: TcpListener, kind: Kind) {
    match kind {
        Kind::Chat => {
            let config = Config {
                format: Arc::new(LineFormat::new(
                    Delimiter::lenient(),
                    server::DEFAULT_MAX_LINE_BYTES,
                )),
                max_connections: server::DEFAULT_MAX_CONNECTIONS,
                idle_timeout: None,
                log_connections: false,
                chat: Some(chat_mode::Settings {
                    max_rate: None,
                    ..chat_mode::Settings::default()
                }),
                per_address: None,
                tls: None,
                close_stall: chat::server::CLOSE_STALL,
            };
            server::run(vec![listener], config, std::future::pending())
                .await
                .unwrap();
        }
        Kind::PerLine => support::fan_out::per_line(listener).await,
        Kind::Raw => support::fan_out::raw(listener).await,
    }
}

/// A `nats-server` on a free loopback port, or `None` if it is not
/// installed; it is killed when dropped.
struct Broker {
    process: std::process::Child,
    url: String,
}

impl Broker {
    fn start() -> Option<Broker> {
        Self::start_with(&["-p", "-1"])
    }

    /// `nats-server -a 127.0.0.1 ARGS` (which name its port).
    fn start_with(args: &[&str]) -> Option<Broker> {
        let mut process = support::command("nats-server")
            .args(["-a", "127.0.0.1"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .ok()?;
        let mut log = std::io::BufReader::new(process.stderr.take().unwrap());
        let mut line = String::new();
        while std::io::BufRead::read_line(&mut log, &mut line).ok()? > 0 {
            if let Some((_, address)) = line.split_once("Listening for client connections on ") {
                let url = format!("nats://{}", address.trim());
                // Keep reading its log: a closed pipe would end it.
                std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
                return Some(Broker { process, url });
            }
            line.clear();
        }
        None
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The real `chat-server --chat`, linked through `broker` as `node`.
struct LinkedServer {
    process: std::process::Child,
    address: SocketAddr,
}

impl LinkedServer {
    fn start(broker: &Broker, node: &str, extra: &[&str]) -> LinkedServer {
        let mut process = support::command(env!("CARGO_BIN_EXE_chat-server"))
            .args([
                "--chat",
                "--quiet",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--max-rate",
                "0",
                // The burst's receiver may fall behind for a moment.
                "--sendq",
                "67108864",
            ])
            .args(["--link", &broker.url, "--node", node])
            .args(extra)
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut log = std::io::BufReader::new(process.stderr.take().unwrap());
        let (mut address, mut linked) = (None, false);
        let mut line = String::new();
        while address.is_none() || !linked {
            line.clear();
            assert!(
                std::io::BufRead::read_line(&mut log, &mut line).unwrap() > 0,
                "chat-server ended"
            );
            linked |= line.contains("linked through");
            if let Some((_, bound)) = line.split_once("listening on ") {
                let bound = bound.split_whitespace().next().unwrap_or_default();
                address = Some(bound.parse().unwrap());
            }
        }
        // Keep reading its log, so it never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
        LinkedServer {
            process,
            address: address.unwrap(),
        }
    }
}

impl Drop for LinkedServer {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// One room across two linked servers against the same room on one: the
/// receivers on `two`, the sender on `one` or on `two`.
fn link_table() {
    let mut same = Vec::new();
    let mut cross = Vec::new();
    let mut kept = Vec::new();
    let mut same_p99 = Vec::new();
    let mut cross_p99 = Vec::new();
    let mut kept_p99 = Vec::new();
    for _ in 0..RUNS {
        for (across, jetstream, rates, p99s) in [
            (false, false, &mut same, &mut same_p99),
            (true, false, &mut cross, &mut cross_p99),
            (true, true, &mut kept, &mut kept_p99),
        ] {
            let store = linked_history::Store::new();
            let broker = match jetstream {
                true => store.broker(None),
                false => Broker::start(),
            };
            let Some(broker) = broker else {
                println!(
                    "link: skipped: nats-server (Debian package nats-server) is not installed"
                );
                return;
            };
            let one = LinkedServer::start(&broker, "one", &[]);
            let two = LinkedServer::start(&broker, "two", &[]);
            let sender = if across { one.address } else { two.address };
            let places = Places {
                receivers: two.address,
                sender,
                watched: two.process.id(),
                linked: true,
            };
            rates.push(fan_out_at(Kind::Chat, &places, 100, 20_000, LINE, false).0);
            let (delays, _) = latencies_at(&places, 100, false);
            p99s.push(support::percentile(&delays, 99.0).as_secs_f64() * 1e3);
        }
    }
    let ratio: Vec<f64> = cross.iter().zip(&same).map(|(c, s)| c / s).collect();
    let kept_ratio: Vec<f64> = kept.iter().zip(&cross).map(|(k, c)| k / c).collect();
    let ms = |values: &[f64]| support::range(values, |x| format!("{x:.2}"));
    let (mut seconds, mut arrived) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let Some(broker) = Broker::start() else {
            return;
        };
        let one = LinkedServer::start(&broker, "one", &[]);
        let two = LinkedServer::start(&broker, "two", &[]);
        let (took, count) = client_runtime().block_on(burst_across(one.address, two.address));
        seconds.push(took.as_secs_f64());
        arrived.push(count as f64);
    }
    println!(
        "linked, a burst of {BURST_LINES} lines from one member: all there after {} s; arrived {} of {BURST_LINES}",
        support::range(&seconds, |x| format!("{x:.2}")),
        support::range(&arrived, |x| format!("{x:.0}")),
    );
    println!(
        "linked, 1 sender, 100 receivers: across two servers {}/s, on one server {}/s ({} of it); \
         p99 at 100k deliveries/s {} ms across, {} ms on one",
        support::range(&cross, support::per_second),
        support::range(&same, support::per_second),
        support::range(&ratio, |x| format!("{x:.2}x")),
        ms(&cross_p99),
        ms(&same_p99),
    );
    println!(
        "linked through a broker with JetStream (each line kept in the stream, confirmed, and kept \
         by the sender till then): {}/s across ({} of it without), p99 {} ms",
        support::range(&kept, support::per_second),
        support::range(&kept_ratio, |x| format!("{x:.2}x")),
        ms(&kept_p99),
    );
}

/// Lines in the burst across the link.
const BURST_LINES: usize = 50_000;
/// The burst's receiver gives up once nothing has arrived for this long.
const BURST_SILENCE: Duration = Duration::from_secs(5);

/// One member on `sender` pipes [`BURST_LINES`] lines at once; returns how
/// long until the member on `receiver` had the last of them that arrived,
/// and how many did.
async fn burst_across(sender: SocketAddr, receiver: SocketAddr) -> (Duration, usize) {
    use tokio::io::AsyncBufReadExt;
    let mut listening = tokio::io::BufReader::new(TcpStream::connect(receiver).await.unwrap());
    let mut line = String::new();
    // The greeting's last line: the member is in the room.
    while !line.starts_with("*** type to talk") {
        line.clear();
        listening.read_line(&mut line).await.unwrap();
    }
    let mut talking = TcpStream::connect(sender).await.unwrap();
    // The sender has joined, as the other server sees it: the link is live.
    while !line.ends_with("@one joined\r\n") {
        line.clear();
        listening.read_line(&mut line).await.unwrap();
    }
    let burst: Vec<u8> = (0..BURST_LINES)
        .flat_map(|n| format!("line {n} of the burst\n").into_bytes())
        .collect();
    let started = Instant::now();
    let sending = tokio::spawn(async move {
        talking.write_all(&burst).await.unwrap();
        talking
    });
    let (mut arrived, mut last) = (0, started);
    while arrived < BURST_LINES {
        line.clear();
        match tokio::time::timeout(BURST_SILENCE, listening.read_line(&mut line)).await {
            Ok(Ok(1..)) if line.starts_with('<') => {
                arrived += 1;
                last = Instant::now();
            }
            Ok(Ok(1..)) => {}
            _ => break,
        }
    }
    drop(sending);
    (last - started, arrived)
}

/// Connects, and waits for the first line of the greeting (the server has
/// registered the connection); returns the stream and the lines seen.
async fn join(address: SocketAddr, receive_buffer: Option<u32>) -> (TcpStream, u64) {
    let socket = TcpSocket::new_v4().unwrap();
    if let Some(size) = receive_buffer {
        socket.set_recv_buffer_size(size).unwrap();
    }
    let mut stream = socket.connect(address).await.unwrap();
    stream.set_nodelay(true).unwrap();
    if receive_buffer.is_some() {
        return (stream, 0);
    }
    let mut buffer = [0; 4096];
    let mut seen = 0;
    while seen == 0 {
        let count = stream.read(&mut buffer).await.unwrap();
        assert!(count > 0, "the server closed the connection");
        seen += memchr::memchr_iter(b'\n', &buffer[..count]).count() as u64;
    }
    (stream, seen)
}

/// Joins measured into each room, in the history part.
const JOINS: usize = 500;

/// How long each `/join` took to be answered with its `here:` line: into
/// a room whose history holds 50 lines, and into one with none, [`JOINS`]
/// of each, alternating.
fn join_latencies() -> [Vec<Duration>; 2] {
    let server = ChildServer::start(Kind::Chat.name());
    client_runtime().block_on(async {
        // A member in each room keeps it (and its history) alive; the
        // first fills its room's history.
        let (mut talker, _) = join(server.address, None).await;
        let (mut quiet, _) = join(server.address, None).await;
        let said: String = (0..50)
            .map(|n| format!("line {n} of the room's history\n"))
            .collect();
        talker.write_all(b"/join talked\n").await.unwrap();
        talker.write_all(said.as_bytes()).await.unwrap();
        quiet.write_all(b"/join quiet\n").await.unwrap();
        let joiner = TcpStream::connect(server.address).await.unwrap();
        joiner.set_nodelay(true).unwrap();
        let mut joiner = tokio::io::BufReader::new(joiner);
        let mut line = String::new();
        // Reads lines until `here:`, and says whether the recent lines came.
        let mut until_here = async |joiner: &mut tokio::io::BufReader<TcpStream>| {
            let mut recent = false;
            loop {
                line.clear();
                let read = tokio::io::AsyncBufReadExt::read_line(joiner, &mut line);
                assert!(read.await.unwrap() > 0, "the server closed the connection");
                recent |= line.starts_with("*** recent in #");
                if line.starts_with("*** here: ") {
                    return recent;
                }
            }
        };
        until_here(&mut joiner).await;
        let mut took = [Vec::with_capacity(JOINS), Vec::with_capacity(JOINS)];
        // The first joins warm up, and make sure the 50 lines are in.
        for round in 0..JOINS + 10 {
            for (at, room) in ["talked", "quiet"].into_iter().enumerate() {
                let started = Instant::now();
                let command = format!("/join {room}\n");
                joiner
                    .get_mut()
                    .write_all(command.as_bytes())
                    .await
                    .unwrap();
                let recent = until_here(&mut joiner).await;
                if round >= 10 {
                    assert_eq!(recent, at == 0, "recent lines only in #talked");
                    took[at].push(started.elapsed());
                }
            }
        }
        drop((talker, quiet));
        took
    })
}

/// Deliveries a second: `lines` from one sender to `receivers` members.
fn deliveries_per_second(kind: Kind, receivers: usize, lines: u64) -> f64 {
    fan_out(kind, receivers, lines, LINE, false).0
}

/// Sends `lines` copies of `line` from one sender to `receivers` members
/// (and to one more that never reads, if `stalled`); returns deliveries a
/// second to the receivers and how much the server's memory grew, in KiB.
fn fan_out(kind: Kind, receivers: usize, lines: u64, line: &[u8], stalled: bool) -> (f64, u64) {
    let server = ChildServer::start(kind.name());
    fan_out_at(kind, &Places::one(&server), receivers, lines, line, stalled)
}

/// Where the members of a measurement connect: the receivers (and the one
/// that never reads) to one server, the sender to the same or another, and
/// whose memory is watched.
struct Places {
    receivers: SocketAddr,
    sender: SocketAddr,
    watched: u32,
    /// Linked servers: the sender's greeting waits for the other servers
    /// (its `here:` line), and so do its first lines; it starts once the
    /// greeting is whole.
    linked: bool,
}

impl Places {
    fn one(server: &ChildServer) -> Places {
        Places {
            receivers: server.address,
            sender: server.address,
            watched: server.process.id(),
            linked: false,
        }
    }

    fn resident_kib(&self) -> u64 {
        support::resident_kib(self.watched)
    }

    /// Connects the members: first the one that never reads (if `stalled`,
    /// so the others are not told it joined), then `receivers` (with the
    /// lines each has seen), then the sender.
    async fn join(
        &self,
        receivers: usize,
        stalled: bool,
    ) -> (Option<TcpStream>, Vec<(TcpStream, u64)>, TcpStream) {
        let never_reads = match stalled {
            true => Some(join(self.receivers, Some(4096)).await.0),
            false => None,
        };
        let mut streams = Vec::new();
        for _ in 0..receivers {
            streams.push(join(self.receivers, None).await);
        }
        let (mut sender, _) = join(self.sender, None).await;
        if self.linked {
            let mut seen = Vec::new();
            let mut buffer = [0; 4096];
            while memchr::memmem::find(&seen, b"*** type to talk").is_none() {
                let count = sender.read(&mut buffer).await.unwrap();
                assert!(count > 0, "the server closed the connection");
                seen.extend_from_slice(&buffer[..count]);
            }
        }
        (never_reads, streams, sender)
    }
}

/// [`fan_out`] with the members at `places`.
fn fan_out_at(
    kind: Kind,
    places: &Places,
    receivers: usize,
    lines: u64,
    line: &[u8],
    stalled: bool,
) -> (f64, u64) {
    client_runtime().block_on(async {
        let (_never_reads, streams, mut sender) = places.join(receivers, stalled).await;
        let received: Arc<Vec<AtomicU64>> =
            Arc::new((0..receivers).map(|_| AtomicU64::new(0)).collect());
        // Receivers that have read every line sent before the timed part.
        let ready = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        let before = places.resident_kib();
        for (k, (mut stream, seen)) in streams.into_iter().enumerate() {
            let skip = kind.greeting_lines() + kind.notices(k, receivers);
            // chat-server tells the room that the one not reading was cut.
            let cut_notice = u64::from(stalled && kind == Kind::Chat);
            let received = Arc::clone(&received);
            let ready = Arc::clone(&ready);
            tasks.push(tokio::spawn(async move {
                let mut buffer = vec![0; 16 * 1024];
                let mut lines_seen = seen;
                let mut counted_ready = false;
                while lines_seen < skip + lines + cut_notice {
                    if !counted_ready && lines_seen >= skip {
                        ready.fetch_add(1, Ordering::Relaxed);
                        counted_ready = true;
                    }
                    let count = stream.read(&mut buffer).await.unwrap();
                    assert!(count > 0, "receiver {k} was closed");
                    lines_seen += memchr::memchr_iter(b'\n', &buffer[..count]).count() as u64;
                    let chat_lines = lines_seen.saturating_sub(skip);
                    received[k].store(chat_lines, Ordering::Relaxed);
                }
                Instant::now()
            }));
        }
        // The timed part starts once every join has been seen by everyone.
        while ready.load(Ordering::Relaxed) < receivers as u64 {
            assert!(
                !tasks.iter().any(|task| task.is_finished()),
                "a receiver failed"
            );
            tokio::task::yield_now().await;
        }
        let started = Instant::now();
        let chunk: Vec<u8> = line.repeat(256);
        let window = WINDOW_BYTES / line.len() as u64;
        let mut sent = 0;
        while sent < lines {
            let slowest = received.iter().map(|r| r.load(Ordering::Relaxed)).min();
            if sent - slowest.unwrap_or(0) + 256 > window.max(256) {
                // A receiver that is still owed lines has failed (closed).
                assert!(
                    !tasks.iter().any(|task| task.is_finished()),
                    "a receiver failed"
                );
                tokio::task::yield_now().await;
                continue;
            }
            let count = (lines - sent).min(256);
            sender
                .write_all(&chunk[..count as usize * line.len()])
                .await
                .unwrap();
            sent += count;
        }
        let mut last = Duration::ZERO;
        for task in tasks {
            last = last.max(task.await.unwrap().duration_since(started));
        }
        let grown = places.resident_kib().saturating_sub(before);
        (
            (receivers as u64 * lines) as f64 / last.as_secs_f64(),
            grown,
        )
    })
}

/// Send-to-receipt latencies at `LATENCY_RATE` lines a second to
/// `receivers` members, with a member that never reads if `stalled`;
/// with the server's memory growth over the run, in KiB.
fn latencies(kind: Kind, receivers: usize, stalled: bool) -> (Vec<Duration>, u64) {
    let server = ChildServer::start(kind.name());
    latencies_at(&Places::one(&server), receivers, stalled)
}

/// [`latencies`] with the members at `places`.
fn latencies_at(places: &Places, receivers: usize, stalled: bool) -> (Vec<Duration>, u64) {
    const LATENCY_LINES: u64 = 2000;
    const PAD: usize = 480;
    client_runtime().block_on(async {
        let (_never_reads, streams, mut sender) = places.join(receivers, stalled).await;
        let before = places.resident_kib();
        let base = Instant::now();
        let mut tasks = Vec::new();
        for (k, (mut stream, _)) in streams.into_iter().enumerate() {
            tasks.push(tokio::spawn(async move {
                let mut pending = Vec::new();
                let mut buffer = vec![0; 16 * 1024];
                let mut delays = Vec::with_capacity(LATENCY_LINES as usize);
                while (delays.len() as u64) < LATENCY_LINES {
                    let count = stream.read(&mut buffer).await.unwrap();
                    assert!(count > 0, "receiver {k} was closed");
                    let now = base.elapsed();
                    pending.extend_from_slice(&buffer[..count]);
                    let mut start = 0;
                    while let Some(end) = memchr::memchr(b'\n', &pending[start..]) {
                        let line = &pending[start..start + end];
                        start += end + 1;
                        // Only timed chat lines (`<nick> NANOS...`) count;
                        // notices, greetings and a room's recent lines do not.
                        let Some(at) = memchr::memmem::find(line, b"> ") else {
                            continue;
                        };
                        let digits = line.get(at + 2..at + 22).unwrap_or_default();
                        if !digits.iter().all(u8::is_ascii_digit) || digits.is_empty() {
                            continue;
                        }
                        let digits = std::str::from_utf8(digits).unwrap();
                        let sent = Duration::from_nanos(digits.parse().unwrap());
                        delays.push(now.saturating_sub(sent));
                    }
                    pending.drain(..start);
                }
                delays
            }));
        }
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        for _ in 0..LATENCY_LINES {
            tick.tick().await;
            let line = format!("{:020}{}\n", base.elapsed().as_nanos(), "x".repeat(PAD));
            sender.write_all(line.as_bytes()).await.unwrap();
        }
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        all.sort_unstable();
        let grown = places.resident_kib().saturating_sub(before);
        (all, grown)
    })
}

/// Resident memory per idle member: `IDLE_MEMBERS` join one room (after
/// 200 others, so the server's start-up is not counted) and stay.
fn idle_memory_per_member(kind: Kind) -> f64 {
    const IDLE_MEMBERS: usize = 1000;
    let server = ChildServer::start(kind.name());
    client_runtime().block_on(async {
        let mut members = Vec::new();
        for _ in 0..200 {
            members.push(join(server.address, None).await);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = server.resident_kib();
        for _ in 0..IDLE_MEMBERS {
            members.push(join(server.address, None).await);
        }
        // Time for every notice to be written out.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = server.resident_kib();
        (after.saturating_sub(before) * 1024) as f64 / IDLE_MEMBERS as f64
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|arg| arg == SERVE) {
        let kind = Kind::parse(&args[at + 1]).unwrap();
        return support::serve_until_stdin_closes(|listener| serve(listener, kind));
    }
    const PARTS: [&str; 6] = [
        "throughput",
        "latency",
        "isolation",
        "idle",
        "link",
        "history",
    ];
    let wanted = support::parts_wanted(&args, &PARTS);
    println!(
        "chat: chat-server --chat against the per-line-write design and the raw fan-out bound, loopback, {RUNS} runs"
    );

    if wanted("throughput") {
        for receivers in [100, 1000] {
            let mut figures = vec![Vec::new(); Kind::ALL.len()];
            let mut over_per_line = Vec::new();
            let mut over_raw = Vec::new();
            for _ in 0..RUNS {
                let run: Vec<f64> = Kind::ALL
                    .iter()
                    .map(|&kind| {
                        let deliveries = match kind {
                            Kind::PerLine => DELIVERIES / 5,
                            _ => DELIVERIES,
                        };
                        deliveries_per_second(kind, receivers, deliveries / receivers as u64)
                    })
                    .collect();
                over_per_line.push(run[0] / run[1]);
                over_raw.push(run[0] / run[2]);
                for (figure, value) in figures.iter_mut().zip(run) {
                    figure.push(value);
                }
            }
            let fmt = |values: &[f64]| support::range(values, support::per_second);
            println!(
                "deliveries/s, 1 sender, {receivers} receivers: chat-server {}, per-line-write {}, raw fan-out {}; \
                 chat-server is {} the per-line-write design, {} the raw fan-out bound",
                fmt(&figures[0]),
                fmt(&figures[1]),
                fmt(&figures[2]),
                support::range(&over_per_line, |x| format!("{x:.1}x")),
                support::range(&over_raw, |x| format!("{x:.2}x")),
            );
        }
    }

    if wanted("history") {
        let mut p50 = [Vec::new(), Vec::new()];
        let mut p99 = [Vec::new(), Vec::new()];
        let mut ratio = Vec::new();
        for _ in 0..RUNS {
            let mut took = join_latencies();
            let mut run = [0.0; 2];
            for (at, times) in took.iter_mut().enumerate() {
                times.sort_unstable();
                let us = |p| support::percentile(times, p).as_secs_f64() * 1e6;
                p50[at].push(us(50.0));
                p99[at].push(us(99.0));
                run[at] = us(50.0);
            }
            ratio.push(run[0] / run[1]);
        }
        let us = |values: &[f64]| support::range(values, |x| format!("{x:.0}"));
        println!(
            "/join answered (here: line), {JOINS} joins each: into a room with 50 history lines \
             p50 {} us, p99 {} us; into one with none p50 {} us, p99 {} us; {} the p50",
            us(&p50[0]),
            us(&p99[0]),
            us(&p50[1]),
            us(&p99[1]),
            support::range(&ratio, |x| format!("{x:.2}x")),
        );
        linked_history::print();
    }

    if wanted("latency") {
        for kind in [Kind::Chat, Kind::PerLine] {
            let mut p50 = [Vec::new(), Vec::new()];
            let mut p99 = [Vec::new(), Vec::new()];
            let mut grown = Vec::new();
            let mut ratio = Vec::new();
            for _ in 0..RUNS {
                let mut run_p99 = [0.0; 2];
                for (at, stalled) in [false, true].into_iter().enumerate() {
                    let (delays, kib) = latencies(kind, 100, stalled);
                    let ms = |d: Duration| d.as_secs_f64() * 1e3;
                    p50[at].push(ms(support::percentile(&delays, 50.0)));
                    p99[at].push(ms(support::percentile(&delays, 99.0)));
                    run_p99[at] = ms(support::percentile(&delays, 99.0));
                    if stalled {
                        grown.push(kib as f64 / 1024.0);
                    }
                }
                ratio.push(run_p99[1] / run_p99[0]);
            }
            let ms = |values: &[f64]| support::range(values, |x| format!("{x:.2}"));
            println!(
                "latency at 100k deliveries/s, 100 receivers, {}: p50 {} ms, p99 {} ms; with one member that never reads: \
                 p50 {} ms, p99 {} ms ({} without it), server memory grew {} MiB",
                kind.name(),
                ms(&p50[0]),
                ms(&p99[0]),
                ms(&p50[1]),
                ms(&p99[1]),
                support::range(&ratio, |x| format!("{x:.2}x")),
                support::range(&grown, |x| format!("{x:.1}")),
            );
        }
    }

    if wanted("isolation") {
        // 200-byte lines, 20 MB to each: far more than the kernel's buffers
        // and chat-server's --sendq hold for the one that never reads.
        let line = [&[b'y'; 199][..], b"\n"].concat();
        for kind in [Kind::Chat, Kind::PerLine] {
            let mut alone = Vec::new();
            let mut with = Vec::new();
            let mut grown = Vec::new();
            for _ in 0..RUNS {
                alone.push(fan_out(kind, 10, 100_000, &line, false).0);
                let (rate, kib) = fan_out(kind, 10, 100_000, &line, true);
                with.push(rate);
                grown.push(kib as f64 / 1024.0);
            }
            println!(
                "isolation, 10 readers and one member that never reads, 20 MB each: {} delivers {}/s ({}/s without it), its memory grew {} MiB",
                kind.name(),
                support::range(&with, support::per_second),
                support::range(&alone, support::per_second),
                support::range(&grown, |x| format!("{x:.1}")),
            );
        }
    }

    if wanted("link") {
        link_table();
    }

    if wanted("idle") {
        for kind in [Kind::Chat, Kind::PerLine] {
            let figures: Vec<f64> = (0..RUNS)
                .map(|_| idle_memory_per_member(kind) / 1024.0)
                .collect();
            println!(
                "1000 idle members in one room: {} {} KiB each",
                kind.name(),
                support::range(&figures, |x| format!("{x:.2}"))
            );
        }
    }
}
