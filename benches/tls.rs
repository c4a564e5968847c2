//! What TLS costs, measured in one run against the same server without it,
//! on loopback:
//! - pipelined echo, 32-byte lines, on 1 and 64 connections: chat-server
//!   with and without TLS, and a reply-sized TLS echo (tokio-rustls,
//!   reading 64 KiB as chat-server does and answering each line read with a
//!   prebuilt reply of chat-server's length, no framing) as the bound for
//!   TLS itself;
//! - chat fan-out, one sender to 100 receivers: chat-server --chat with
//!   and without TLS;
//! - 1,000 idle connections to a server in a child process: resident
//!   memory per connection, with and without TLS.
//!
//! Lines (or deliveries) per second, and the servers' CPU time per line,
//! from their worker threads' schedstat. The servers run on a multi-thread
//! runtime in this process, the clients on one thread beside them; with
//! TLS the clients decrypt too, on the same two cores.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chat::chat as chat_mode;
use chat::delimiter::Delimiter;
use chat::framing::LineFormat;
use chat::server::{self, Config};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, split};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::{TlsAcceptor, TlsConnector};

#[path = "support/mod.rs"]
mod support;
#[path = "support/unbuffered_tls.rs"]
mod unbuffered_tls;
use support::{LINE, LINES_PER_WRITE, REPLY_LEN, client_runtime};

/// A chat line, and how it reaches the others.
const CHAT_LINE: &[u8] = b"the quick brown fox jumps over\n";
const RECEIVERS: usize = 100;
const CHAT_LINES: u64 = 20_000;
/// The sender keeps at most this many lines ahead of the slowest receiver.
const CHAT_WINDOW_LINES: u64 = 2_000;
const RUNS: usize = 3;
const IDLE_CONNECTIONS: usize = 1_000;

/// A server under test.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// chat-server in echo mode, plain or with TLS.
    Echo { tls: bool },
    /// tokio-rustls answering each line with a prebuilt reply as long as
    /// chat-server's, reading 64 KiB at a time: TLS and the bytes, no work.
    RawTlsEcho,
    /// The same on rustls's unbuffered API, holding no buffer while idle:
    /// what chat-server's TLS would cost on it (`support/unbuffered_tls.rs`).
    UnbufferedTlsEcho,
    /// chat-server --chat, plain or with TLS.
    Chat { tls: bool },
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Echo { tls: false } => "chat-server",
            Kind::Echo { tls: true } => "chat-server TLS",
            Kind::RawTlsEcho => "reply-sized TLS echo (64 KiB)",
            Kind::UnbufferedTlsEcho => "the same, unbuffered rustls",
            Kind::Chat { tls: false } => "chat-server --chat",
            Kind::Chat { tls: true } => "chat-server --chat TLS",
        }
    }

    fn tls(self) -> bool {
        !matches!(self, Kind::Echo { tls: false } | Kind::Chat { tls: false })
    }
}

/// A certificate made now, both sides' configurations for it, and the
/// certificate and key in PEM files, for a server in a child process.
struct Keys {
    server: Arc<ServerConfig>,
    client: TlsConnector,
    files: chat::tls::ServerFiles,
}

impl Keys {
    fn make() -> Keys {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let dir = std::env::temp_dir().join(format!("chat-tls-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = chat::tls::ServerFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::write(&files.cert, made.cert.pem()).unwrap();
        std::fs::write(&files.key, made.signing_key.serialize_pem()).unwrap();
        // As the programs load them.
        let server = chat::tls::server_config(&files).unwrap();
        let client = chat::tls::client_config(Some(&files.cert)).unwrap();
        Keys {
            server,
            client: TlsConnector::from(client),
            files,
        }
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        if let Some(dir) = self.files.cert.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Starts a server of `kind` on `runtime`, on a free loopback port.
fn start(runtime: &tokio::runtime::Runtime, kind: Kind, keys: &Keys) -> SocketAddr {
    let tls = server::Tls::new(Arc::clone(&keys.server), server::HANDSHAKE_TIMEOUT);
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let forever = std::future::pending();
        // As `chat-server` runs by default: CRLF lines in echo mode,
        // lenient ones in chat mode.
        let config = |chat: bool, tls_on: bool| Config {
            format: match chat {
                false => support::server_config().format,
                true => Arc::new(LineFormat::new(
                    Delimiter::lenient(),
                    server::DEFAULT_MAX_LINE_BYTES,
                )),
            },
            tls: tls_on.then(|| tls.clone()),
            chat: chat.then(|| chat_mode::Settings {
                max_rate: None,
                sendq: 64 << 20,
                ..chat_mode::Settings::default()
            }),
            ..support::server_config()
        };
        match kind {
            Kind::Echo { tls } => {
                tokio::spawn(server::run(vec![listener], config(false, tls), forever));
            }
            Kind::Chat { tls } => {
                tokio::spawn(server::run(vec![listener], config(true, tls), forever));
            }
            Kind::RawTlsEcho => {
                let acceptor = TlsAcceptor::from(Arc::clone(&keys.server));
                tokio::spawn(raw_tls_echo(listener, acceptor));
            }
            Kind::UnbufferedTlsEcho => {
                tokio::spawn(unbuffered_tls_echo(listener, Arc::clone(&keys.server)));
            }
        }
        address
    })
}

/// Echoes each connection's bytes back inside TLS: reads up to 64 KiB,
/// writes them, flushes.
async fn raw_tls_echo(listener: TcpListener, acceptor: TlsAcceptor) {
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        stream.set_nodelay(true).unwrap();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let stream = acceptor.accept(stream).await.unwrap();
            support::reply_sized_echo(stream, chat::server::connection::READ_CHUNK).await;
        });
    }
}

/// [`unbuffered_tls::serve`] for each connection `listener` accepts.
async fn unbuffered_tls_echo(listener: TcpListener, config: Arc<ServerConfig>) {
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        stream.set_nodelay(true).unwrap();
        let config = Arc::clone(&config);
        tokio::spawn(unbuffered_tls::serve(
            stream,
            config,
            chat::server::connection::READ_CHUNK,
        ));
    }
}

/// A connection to `address`, inside TLS if `tls`.
async fn connect(
    address: SocketAddr,
    tls: bool,
    keys: &Keys,
) -> (
    Box<dyn AsyncRead + Unpin + Send>,
    Box<dyn AsyncWrite + Unpin + Send>,
) {
    let stream = TcpStream::connect(address).await.unwrap();
    stream.set_nodelay(true).unwrap();
    if !tls {
        let (reader, writer) = stream.into_split();
        return (Box::new(reader), Box::new(writer));
    }
    let name = ServerName::try_from("localhost").unwrap();
    let stream = keys.client.connect(name, stream).await.unwrap();
    let (reader, writer) = split(stream);
    (Box::new(reader), Box::new(writer))
}

/// Lines a second over `connections` connections pipelining together
/// (no window), and the server's CPU time per line in nanoseconds.
fn echo_run(
    address: SocketAddr,
    kind: Kind,
    connections: usize,
    lines_each: usize,
    keys: &Arc<Keys>,
) -> (f64, f64) {
    let reply_len = REPLY_LEN;
    support::lines_per_second_and_cpu(connections * lines_each, async {
        let mut clients = tokio::task::JoinSet::new();
        for _ in 0..connections {
            let keys = Arc::clone(keys);
            clients.spawn(async move {
                let (reader, writer) = connect(address, kind.tls(), &keys).await;
                support::pipeline(reader, writer, lines_each, reply_len, None).await;
            });
        }
        while let Some(done) = clients.join_next().await {
            done.unwrap();
        }
    })
}

/// Bytes read on a connection until `ending` has been seen.
async fn read_until(reader: &mut (impl AsyncRead + Unpin), ending: &[u8]) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buffer = [0; 4096];
    while !seen.ends_with(ending) {
        let count = reader.read(&mut buffer).await.unwrap();
        assert!(count > 0, "the server closed the connection");
        seen.extend_from_slice(&buffer[..count]);
    }
    seen
}

/// Deliveries a second from one sender to [`RECEIVERS`] members, and the
/// server's CPU time per delivery in nanoseconds.
fn chat_run(address: SocketAddr, kind: Kind, keys: &Arc<Keys>) -> (f64, f64) {
    client_runtime().block_on(async {
        let tls = kind.tls();
        let mut readers = Vec::new();
        for _ in 0..RECEIVERS {
            let (mut reader, writer) = connect(address, tls, keys).await;
            read_until(&mut reader, b"leave\r\n").await;
            readers.push((reader, writer));
        }
        let (mut sender_reader, mut sender) = connect(address, tls, keys).await;
        let greeting = read_until(&mut sender_reader, b"leave\r\n").await;
        let greeting = String::from_utf8(greeting).unwrap();
        let nick = greeting.split_once("you are ").unwrap().1;
        let nick = &nick[..nick.find("\r\n").unwrap()];
        let joined = format!("*** {nick} joined\r\n");
        let delivered_len = format!("<{nick}> ").len() + CHAT_LINE.len() + 1;
        // Every receiver has seen the sender arrive: only its lines follow.
        for (reader, _) in &mut readers {
            read_until(reader, joined.as_bytes()).await;
        }

        let progress: Arc<Vec<AtomicU64>> =
            Arc::new((0..RECEIVERS).map(|_| AtomicU64::new(0)).collect());
        let moved = Arc::new(Notify::new());
        let cpu_before = support::server_cpu();
        let started = Instant::now();
        let mut receiving = tokio::task::JoinSet::new();
        for (at, (mut reader, writer)) in readers.into_iter().enumerate() {
            let (progress, moved) = (Arc::clone(&progress), Arc::clone(&moved));
            receiving.spawn(async move {
                let expected = CHAT_LINES * delivered_len as u64;
                let mut buffer = vec![0; 64 * 1024];
                let mut received = 0;
                while received < expected {
                    let count = reader.read(&mut buffer).await.unwrap();
                    assert!(count > 0, "the server closed early");
                    received += count as u64;
                    progress[at].store(received / delivered_len as u64, Ordering::Relaxed);
                    moved.notify_one();
                }
                drop(writer);
            });
        }
        let batch = CHAT_LINE.repeat(LINES_PER_WRITE);
        let mut sent = 0;
        while sent < CHAT_LINES {
            let slowest = || progress.iter().map(|p| p.load(Ordering::Relaxed)).min();
            while sent - slowest().unwrap() > CHAT_WINDOW_LINES {
                let wait = moved.notified();
                if sent - slowest().unwrap() <= CHAT_WINDOW_LINES {
                    break;
                }
                let _ = tokio::time::timeout(Duration::from_millis(1), wait).await;
            }
            let count = (CHAT_LINES - sent).min(LINES_PER_WRITE as u64);
            sender
                .write_all(&batch[..count as usize * CHAT_LINE.len()])
                .await
                .unwrap();
            sender.flush().await.unwrap();
            sent += count;
        }
        while let Some(done) = receiving.join_next().await {
            done.unwrap();
        }
        let deliveries = (CHAT_LINES * RECEIVERS as u64) as f64;
        let cpu = (support::server_cpu() - cpu_before).as_secs_f64();
        (
            deliveries / started.elapsed().as_secs_f64(),
            cpu * 1e9 / deliveries,
        )
    })
}

/// Runs `measure` [`RUNS`] times for each of `kinds`, interleaved, and
/// prints each one's range of rates and CPU per line, and the first two's
/// ratios (TLS over plain).
fn table(
    what: &str,
    [unit, units]: [&str; 2],
    kinds: &[Kind],
    mut measure: impl FnMut(Kind) -> (f64, f64),
) {
    let mut rates = vec![Vec::new(); kinds.len()];
    let mut cpus = vec![Vec::new(); kinds.len()];
    let mut rate_ratio = Vec::new();
    let mut cpu_ratio = Vec::new();
    let mut of_ceiling = Vec::new();
    let mut unbuffered_ratio = Vec::new();
    for _ in 0..RUNS {
        let run: Vec<(f64, f64)> = kinds.iter().map(|&kind| measure(kind)).collect();
        rate_ratio.push(run[1].0 / run[0].0);
        cpu_ratio.push(run[1].1 / run[0].1);
        if let Some(ceiling) = run.get(2) {
            of_ceiling.push(run[1].0 / ceiling.0);
        }
        if let Some(unbuffered) = run.get(3) {
            unbuffered_ratio.push(unbuffered.0 / run[2].0);
        }
        for (at, (rate, cpu)) in run.into_iter().enumerate() {
            rates[at].push(rate);
            cpus[at].push(cpu);
        }
    }
    let figures: Vec<String> = kinds
        .iter()
        .enumerate()
        .map(|(at, kind)| {
            format!(
                "{} {} {units}/s, {} ns CPU/{unit}",
                kind.name(),
                support::range(&rates[at], support::per_second),
                support::range(&cpus[at], |ns| format!("{ns:.0}")),
            )
        })
        .collect();
    let ceiling = match of_ceiling.is_empty() {
        true => String::new(),
        false => format!(
            "; chat-server TLS {} the reply-sized TLS echo's {units}/s (target >= {TLS_TARGET}x)",
            support::range(&of_ceiling, |x| format!("{x:.2}x")),
        ),
    };
    let unbuffered = match unbuffered_ratio.is_empty() {
        true => String::new(),
        false => format!(
            "; unbuffered rustls {} tokio-rustls's {units}/s",
            support::range(&unbuffered_ratio, |x| format!("{x:.2}x")),
        ),
    };
    println!(
        "{what}: {}; with TLS {} the {units}/s, {} the CPU/{unit}{ceiling}{unbuffered}",
        figures.join("; "),
        support::range(&rate_ratio, |x| format!("{x:.2}x")),
        support::range(&cpu_ratio, |x| format!("{x:.2}x")),
    );
}

/// chat-server's TLS echo against the reply-sized TLS echo, in one run.
const TLS_TARGET: f64 = 0.9;

/// What [`idle_memory_per_connection`] measures, in a child process.
#[derive(Clone, Copy, PartialEq)]
enum Idle {
    Plain,
    Tls,
    /// [`Kind::UnbufferedTlsEcho`].
    Unbuffered,
}

impl Idle {
    fn name(self) -> &'static str {
        match self {
            Idle::Plain => "plain",
            Idle::Tls => "tls",
            Idle::Unbuffered => "unbuffered",
        }
    }
}

/// The child's side of [`idle_memory_per_connection`]: chat-server's echo
/// mode, with TLS from the PEM files given unless `plain`, or the
/// unbuffered TLS echo.
fn serve_child(idle: &str, cert: &str, key: &str) {
    let files = chat::tls::ServerFiles {
        cert: cert.into(),
        key: key.into(),
    };
    let tls_config = || chat::tls::server_config(&files).unwrap();
    if idle == Idle::Unbuffered.name() {
        let config = tls_config();
        return support::serve_until_stdin_closes(|listener| unbuffered_tls_echo(listener, config));
    }
    let tls = (idle == Idle::Tls.name())
        .then(|| server::Tls::new(tls_config(), server::HANDSHAKE_TIMEOUT));
    let config = Config {
        tls,
        ..support::server_config()
    };
    support::serve_until_stdin_closes(|listener| async move {
        server::run(vec![listener], config, std::future::pending())
            .await
            .unwrap();
    });
}

/// Resident memory per idle echo connection, each having had `lines`
/// lines answered, of a server in a child process.
fn idle_memory_per_connection(idle: Idle, keys: &Keys, lines: usize) -> f64 {
    let tls = idle != Idle::Plain;
    let (cert, key) = (&keys.files.cert, &keys.files.key);
    let server = support::ChildServer::spawn(
        support::command(std::env::current_exe().unwrap())
            .arg(support::SERVE)
            .arg(idle.name())
            .args([cert, key]),
    );
    client_runtime().block_on(async {
        let mut idle = Vec::with_capacity(IDLE_CONNECTIONS + 1);
        let mut measured = None;
        // The first one warms the server up, and is not counted.
        for _ in 0..=IDLE_CONNECTIONS {
            let (mut reader, mut writer) = connect(server.address, tls, keys).await;
            writer.write_all(&LINE.repeat(lines)).await.unwrap();
            writer.flush().await.unwrap();
            reader
                .read_exact(&mut vec![0; REPLY_LEN * lines])
                .await
                .unwrap();
            idle.push((reader, writer));
            measured.get_or_insert_with(|| server.resident_kib());
        }
        let grown = server.resident_kib().saturating_sub(measured.unwrap());
        (grown * 1024) as f64 / IDLE_CONNECTIONS as f64
    })
}

/// Lines in the burst before an idle connection is measured: 64 KiB.
const BURST_LINES: usize = 64 * 1024 / LINE.len();

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|arg| arg == support::SERVE) {
        return serve_child(&args[at + 1], &args[at + 2], &args[at + 3]);
    }
    let keys = Arc::new(Keys::make());
    let runtime = support::server_runtime();
    let kinds = [
        Kind::Echo { tls: false },
        Kind::Echo { tls: true },
        Kind::RawTlsEcho,
        Kind::UnbufferedTlsEcho,
        Kind::Chat { tls: false },
        Kind::Chat { tls: true },
    ];
    let servers: Vec<(Kind, SocketAddr)> = kinds
        .iter()
        .map(|&kind| (kind, start(&runtime, kind, &keys)))
        .collect();
    let address = |kind: Kind| servers.iter().find(|(k, _)| *k == kind).unwrap().1;
    println!("tls: chat-server with TLS against itself without, loopback, {RUNS} runs");
    for (connections, lines_each) in [(1, 1 << 20), (64, 1 << 14)] {
        table(
            &format!("pipelined echo, {connections:>2} connection(s)"),
            ["line", "lines"],
            &kinds[..4],
            |kind| echo_run(address(kind), kind, connections, lines_each, &keys),
        );
    }
    table(
        &format!("chat fan-out, 1 sender, {RECEIVERS} receivers"),
        ["delivery", "deliveries"],
        &kinds[4..],
        |kind| chat_run(address(kind), kind, &keys),
    );
    let [plain, tls, unbuffered] = [Idle::Plain, Idle::Tls, Idle::Unbuffered]
        .map(|idle| idle_memory_per_connection(idle, &keys, 1));
    println!(
        "{IDLE_CONNECTIONS} idle connections: chat-server {:.2} KiB each, with TLS {:.2} KiB each \
         (target <= 4 KiB); the unbuffered TLS echo {:.2} KiB each",
        plain / 1024.0,
        tls / 1024.0,
        unbuffered / 1024.0,
    );
    // After a burst of 64 KiB of lines each, answered whole: what grew for
    // the burst must be given back.
    let [plain, tls] =
        [Idle::Plain, Idle::Tls].map(|idle| idle_memory_per_connection(idle, &keys, BURST_LINES));
    println!(
        "{IDLE_CONNECTIONS} idle connections after a 64 KiB burst each: chat-server {:.2} KiB each, with TLS {:.2} KiB each",
        plain / 1024.0,
        tls / 1024.0
    );
}
