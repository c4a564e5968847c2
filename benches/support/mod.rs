//! Shared by the benchmarks: the servers under test, the raw-byte baseline,
//! and the statistics. Every figure is a median over repeated runs, and
//! every comparison is with a baseline measured in the same process, in the
//! same run, on the same machine.

#![allow(dead_code)] // Each bench uses its own part of this module.

pub mod fan_out;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chat::delimiter::Delimiter;
use chat::framing::LineFormat;
use chat::server::{self, Config};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;

/// The server as `chat-server` runs it by default, quiet.
pub fn server_config() -> Config {
    Config {
        format: Arc::new(LineFormat::new(
            Delimiter::crlf(),
            server::DEFAULT_MAX_LINE_BYTES,
        )),
        max_connections: server::DEFAULT_MAX_CONNECTIONS,
        idle_timeout: None,
        log_connections: false,
        chat: None,
        tls: None,
    }
}

/// Which server a measurement runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// chat-server's own code.
    Chat,
    /// A baseline: each connection copies its input back with no framing at
    /// all, reading at most this many bytes at a time: 8 KiB is
    /// `tokio::io::copy`; the others read into a buffer of that size and
    /// `write_all` what they read, as chat-server reads 64 KiB.
    RawEcho(usize),
}

/// The raw echoes every figure is compared with: the best of them, each
/// measured in the same run, is the baseline.
pub const RAW_ECHOES: [Kind; 3] = [
    Kind::RawEcho(8 * 1024),
    Kind::RawEcho(64 * 1024),
    Kind::RawEcho(256 * 1024),
];

impl Kind {
    pub fn name(self) -> String {
        match self {
            Kind::Chat => "chat-server".to_string(),
            Kind::RawEcho(read) => format!("raw-echo-{}k", read / 1024),
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        std::iter::once(Kind::Chat)
            .chain(RAW_ECHOES)
            .find(|kind| kind.name() == name)
    }
}

/// A multi-thread runtime with a worker per core, as `chat-server` uses.
pub fn server_runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .thread_name(SERVER_THREAD)
        .enable_all()
        .build()
        .unwrap()
}

/// Starts a server of `kind` on `runtime`, on a free loopback port.
pub fn start(runtime: &Runtime, kind: Kind) -> SocketAddr {
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, kind, std::future::pending()));
        address
    })
}

/// Serves `listener` as `kind` until `shutdown` completes.
pub async fn serve(listener: TcpListener, kind: Kind, shutdown: impl Future<Output = ()>) {
    match kind {
        Kind::Chat => server::run(vec![listener], server_config(), shutdown)
            .await
            .unwrap(),
        Kind::RawEcho(read_size) => {
            let accepting = async {
                loop {
                    let (stream, _) = listener.accept().await.unwrap();
                    stream.set_nodelay(true).unwrap();
                    tokio::spawn(raw_echo(stream, read_size));
                }
            };
            tokio::select! {
                () = accepting => {}
                () = shutdown => {}
            }
        }
    }
}

/// Echoes `stream`'s bytes back as they come, `read_size` at most at a time.
async fn raw_echo(mut stream: tokio::net::TcpStream, read_size: usize) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut reader, mut writer) = stream.split();
    if read_size == 8 * 1024 {
        let _ = tokio::io::copy(&mut reader, &mut writer).await;
        return;
    }
    let mut buffer = vec![0; read_size];
    while let Ok(count @ 1..) = reader.read(&mut buffer).await {
        if writer.write_all(&buffer[..count]).await.is_err() {
            return;
        }
    }
}

/// The name of the servers' worker threads, by which their CPU time is
/// told apart from the clients'.
const SERVER_THREAD: &str = "bench-server";

/// CPU time used so far by the servers' worker threads (the benches'
/// clients run on the main thread), from `/proc/self/task/*/schedstat`.
pub fn server_cpu() -> Duration {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let path = task.unwrap().path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if name.trim_end() != SERVER_THREAD {
            continue;
        }
        let schedstat = std::fs::read_to_string(path.join("schedstat")).unwrap_or_default();
        let on_cpu: u64 = schedstat
            .split_whitespace()
            .next()
            .and_then(|nanos| nanos.parse().ok())
            .unwrap_or(0);
        total += on_cpu;
    }
    Duration::from_nanos(total)
}

/// The smallest and largest of `values`, as `low-high` with `unit`.
pub fn range(values: &[f64], format: impl Fn(f64) -> String) -> String {
    let low = values.iter().copied().fold(f64::INFINITY, f64::min);
    let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{}-{}", format(low), format(high))
}

pub fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// The `p`th percentile (0..=100) of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank]
}

/// Resident memory of a process, in KiB, from `/proc`.
pub fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Formats a count per second with a unit: `12.3M`.
pub fn per_second(value: f64) -> String {
    if value >= 1e6 {
        format!("{:.2}M", value / 1e6)
    } else if value >= 1e3 {
        format!("{:.1}k", value / 1e3)
    } else {
        format!("{value:.0}")
    }
}

/// The argument that makes a bench program a server child: `serve KIND`.
pub const SERVE: &str = "--serve";

/// A server in a child process (this bench program run as `--serve KIND`,
/// or another command that prints its address first), so its memory and
/// CPU are its own. Closing its stdin, when dropped, tells it to exit.
pub struct ChildServer {
    pub process: std::process::Child,
    pub address: SocketAddr,
}

impl ChildServer {
    /// This program again, serving `kind` (a name the program knows).
    pub fn start(kind: &str) -> ChildServer {
        let program = std::env::current_exe().unwrap();
        Self::spawn(std::process::Command::new(program).args([SERVE, kind]))
    }

    /// Runs `command`, and reads the address it serves on from the first
    /// line of its stdout.
    pub fn spawn(command: &mut std::process::Command) -> ChildServer {
        use std::io::BufRead;
        let mut process = command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(process.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line.trim().parse().unwrap();
        ChildServer { process, address }
    }

    pub fn resident_kib(&self) -> u64 {
        resident_kib(self.process.id())
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        // Closing its stdin tells the child to exit.
        drop(self.process.stdin.take());
        let _ = self.process.wait();
    }
}

/// The child's side of [`ChildServer`]: binds a loopback port, prints it,
/// and runs `serve` on it until stdin closes.
pub fn serve_until_stdin_closes<F: Future<Output = ()>>(serve: impl FnOnce(TcpListener) -> F) {
    use std::io::Write;
    server_runtime().block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap());
        std::io::stdout().flush().unwrap();
        let stdin_closed = tokio::task::spawn_blocking(|| {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        });
        tokio::select! {
            () = serve(listener) => {}
            _ = stdin_closed => {}
        }
    });
}
