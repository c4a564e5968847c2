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
use chat::protocol::REPLY_PREFIX;
use chat::server::{self, Config};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;

/// A command for `program` with a null stdin unless the caller pipes it:
/// a bench run from a terminal never hands the terminal to a child (clippy
/// refuses `Command::new` anywhere else).
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
    #[allow(clippy::disallowed_methods)] // The one place that may.
    let mut command = std::process::Command::new(program);
    command.stdin(std::process::Stdio::null());
    command
}

/// 30 bytes and CRLF: the 32-byte line the echo benches pipeline.
pub const LINE: &[u8] = b"0123456789abcdefghijklmnopqrst\r\n";
/// chat-server's reply to [`LINE`]: `You sent: ` and the line.
pub const REPLY_LEN: usize = REPLY_PREFIX.len() + LINE.len();
/// Lines a pipelining client writes at once, when no window is smaller.
pub const LINES_PER_WRITE: usize = 2048;

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
        per_address: None,
        tls: None,
        close_stall: chat::server::CLOSE_STALL,
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
    /// Not a baseline: a raw echo that answers each [`LINE`] it reads with a
    /// prebuilt reply as long as chat-server's, with no framing (reading at
    /// most this many bytes at a time). What the longer replies alone cost
    /// in the kernel: a ceiling for chat-server, below the raw echoes.
    ReplySized(usize),
}

/// The raw echoes every figure is compared with: the best of them, each
/// measured in the same run, is the baseline.
pub const RAW_ECHOES: [Kind; 3] = [
    Kind::RawEcho(8 * 1024),
    Kind::RawEcho(64 * 1024),
    Kind::RawEcho(256 * 1024),
];

/// The ceilings shown beside the baseline: raw echoes with replies of
/// chat-server's length, reading as chat-server does and as the best raw
/// echo mostly does.
pub const REPLY_SIZED_ECHOES: [Kind; 2] =
    [Kind::ReplySized(64 * 1024), Kind::ReplySized(256 * 1024)];

impl Kind {
    pub fn name(self) -> String {
        match self {
            Kind::Chat => "chat-server".to_string(),
            Kind::RawEcho(read) => format!("raw-echo-{}k", read / 1024),
            Kind::ReplySized(read) => format!("reply-sized-{}k", read / 1024),
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        std::iter::once(Kind::Chat)
            .chain(RAW_ECHOES)
            .chain(REPLY_SIZED_ECHOES)
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

/// The clients' runtime: one thread, beside the servers' workers.
pub fn client_runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Sends `lines` copies of [`LINE`] as fast as the connection takes them,
/// with at most `window` bytes of them unanswered (none: no limit), while
/// reading the replies (`reply_len` bytes each), until all have come back.
pub async fn pipeline(
    mut reader: impl AsyncRead + Unpin,
    mut writer: impl AsyncWrite + Unpin,
    lines: usize,
    reply_len: usize,
    window: Option<usize>,
) {
    let window_lines = window.map_or(Semaphore::MAX_PERMITS, |bytes| bytes / LINE.len());
    // A quarter of the window per write, so the next lines go out while the
    // replies to the last ones come back.
    let per_write = LINES_PER_WRITE.min(window_lines / 4).max(1);
    let batches = lines / per_write;
    let room = Arc::new(Semaphore::new(window_lines));
    let batch = LINE.repeat(per_write);
    let send = {
        let room = Arc::clone(&room);
        async move {
            for _ in 0..batches {
                room.acquire_many(per_write as u32).await.unwrap().forget();
                writer.write_all(&batch).await.unwrap();
                // With TLS, the last records may wait until flushed.
                writer.flush().await.unwrap();
            }
            writer
        }
    };
    let receive = async move {
        let expected = batches * per_write * reply_len;
        let mut buffer = vec![0; 64 * 1024];
        let mut received = 0;
        while received < expected {
            let count = reader.read(&mut buffer).await.unwrap();
            assert!(count > 0, "the server closed early");
            let answered = (received + count) / reply_len - received / reply_len;
            room.add_permits(answered);
            received += count;
        }
        assert_eq!(received, expected);
    };
    let (_writer, ()) = tokio::join!(send, receive);
}

/// Runs `clients` (which answer `lines` lines in all) on a client runtime;
/// returns lines a second, and the servers' CPU time per line in
/// nanoseconds.
pub fn lines_per_second_and_cpu(lines: usize, clients: impl Future<Output = ()>) -> (f64, f64) {
    let run = measure_lines(lines, clients);
    (run.lines_per_second, run.cpu_ns_per_line)
}

/// What one run of clients cost the servers, per line.
#[derive(Clone, Copy, Debug)]
pub struct LinesRun {
    pub lines_per_second: f64,
    pub cpu_ns_per_line: f64,
    /// The servers' threads' voluntary context switches (a worker with
    /// nothing to do parks), per million lines.
    pub parks_per_million: f64,
    /// Their involuntary ones (preempted: on two cores the clients' thread
    /// competes with them), per million lines.
    pub preemptions_per_million: f64,
    /// The servers' threads' minor page faults, per million lines.
    pub faults_per_million: f64,
    /// Allocations in the whole process, per million lines: the servers'
    /// and the clients' (the same clients for every server).
    pub allocations_per_million: f64,
    /// The servers' worker threads' `epoll_wait` calls, per million lines;
    /// `None` where the kernel does not let this process count them.
    pub epoll_waits_per_million: Option<f64>,
}

/// Runs `clients` (which answer `lines` lines in all) on a client runtime,
/// and says what that cost the servers' worker threads.
pub fn measure_lines(lines: usize, clients: impl Future<Output = ()>) -> LinesRun {
    client_runtime().block_on(async {
        let epoll_waits = EPOLL_WAITS.get_or_init(EpollWaits::open).as_ref();
        let waits_before = epoll_waits.map(EpollWaits::count);
        let before = ServerCounters::now();
        let allocations_before = allocations();
        let started = std::time::Instant::now();
        clients.await;
        let elapsed = started.elapsed().as_secs_f64();
        let allocations_after = allocations();
        let after = ServerCounters::now();
        let waits_after = epoll_waits.map(EpollWaits::count);
        let lines = lines as f64;
        let per_million = |count: u64| count as f64 * 1e6 / lines;
        LinesRun {
            lines_per_second: lines / elapsed,
            cpu_ns_per_line: (after.cpu - before.cpu).as_secs_f64() * 1e9 / lines,
            parks_per_million: per_million(after.parks - before.parks),
            preemptions_per_million: per_million(after.preemptions - before.preemptions),
            faults_per_million: per_million(after.faults - before.faults),
            allocations_per_million: per_million(allocations_after - allocations_before),
            epoll_waits_per_million: waits_before
                .zip(waits_after)
                .map(|(before, after)| per_million(after - before)),
        }
    })
}

/// Counters of the servers' worker threads' `epoll_wait` calls, opened once
/// the workers exist.
static EPOLL_WAITS: std::sync::OnceLock<Option<EpollWaits>> = std::sync::OnceLock::new();

/// One kernel counter of `epoll_wait` calls for each server worker thread:
/// a `perf_event_open` counter on the syscall's tracepoint.
struct EpollWaits {
    counters: Vec<std::fs::File>,
}

impl EpollWaits {
    /// `None` where the kernel will not count (no tracefs, or not allowed:
    /// `perf_event_paranoid`, no root).
    fn open() -> Option<EpollWaits> {
        let id = "/sys/kernel/tracing/events/syscalls/sys_enter_epoll_wait/id";
        let id: u64 = std::fs::read_to_string(id).ok()?.trim().parse().ok()?;
        let mut counters = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").ok()? {
            let path = task.ok()?.path();
            let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
            if comm.trim_end() != SERVER_THREAD {
                continue;
            }
            let tid: libc::pid_t = path.file_name()?.to_str()?.parse().ok()?;
            counters.push(tracepoint_counter(id, tid)?);
        }
        (!counters.is_empty()).then_some(EpollWaits { counters })
    }

    fn count(&self) -> u64 {
        use std::io::Read;
        self.counters
            .iter()
            .map(|mut counter| {
                let mut value = [0; 8];
                counter
                    .read_exact(&mut value)
                    .map_or(0, |()| u64::from_ne_bytes(value))
            })
            .sum()
    }
}

/// `perf_event_attr` as its first version has it (64 bytes): counting,
/// enabled, the one thread only.
#[repr(C)]
struct PerfEventAttr {
    kind: u32,
    size: u32,
    config: u64,
    rest: [u64; 6],
}

/// A counter of tracepoint `id`'s events on thread `tid`.
fn tracepoint_counter(id: u64, tid: libc::pid_t) -> Option<std::fs::File> {
    use std::os::fd::FromRawFd;
    const PERF_TYPE_TRACEPOINT: u32 = 2;
    const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
    let attr = PerfEventAttr {
        kind: PERF_TYPE_TRACEPOINT,
        size: std::mem::size_of::<PerfEventAttr>() as u32,
        config: id,
        rest: [0; 6],
    };
    // SAFETY: `attr` is a valid perf_event_attr of the size it says, alive
    // for the call; the result is a new descriptor or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const PerfEventAttr,
            tid,
            -1 as libc::c_int,
            -1 as libc::c_int,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    let fd = libc::c_int::try_from(fd).ok().filter(|&fd| fd >= 0)?;
    // SAFETY: the descriptor was just opened and is owned by nothing else.
    Some(unsafe { std::fs::File::from_raw_fd(fd) })
}

/// Allocations made so far in this process, from jemalloc's statistics
/// over all its arenas (`stats.arenas.<all>.{small,large}.nmalloc`).
fn allocations() -> u64 {
    use std::ffi::{CStr, c_void};
    fn read(name: &CStr) -> u64 {
        let mut value: u64 = 0;
        let mut len = std::mem::size_of::<u64>();
        // SAFETY: `name` is a NUL-terminated name of a uint64_t statistic;
        // `value` and `len` describe a buffer of that size; nothing is
        // written to jemalloc.
        let status = unsafe {
            tikv_jemalloc_sys::mallctl(
                name.as_ptr(),
                (&raw mut value).cast::<c_void>(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        assert_eq!(status, 0, "mallctl {name:?}");
        value
    }
    // The statistics are a snapshot, taken when the epoch is advanced.
    let mut epoch: u64 = 1;
    let mut len = std::mem::size_of::<u64>();
    // SAFETY: "epoch" reads and writes a uint64_t; both buffers are one.
    let status = unsafe {
        tikv_jemalloc_sys::mallctl(
            c"epoch".as_ptr(),
            (&raw mut epoch).cast::<c_void>(),
            &mut len,
            (&raw mut epoch).cast::<c_void>(),
            len,
        )
    };
    assert_eq!(status, 0, "mallctl epoch");
    // Arena 4096 is `MALLCTL_ARENAS_ALL`: every arena's together.
    read(c"stats.arenas.4096.small.nmalloc") + read(c"stats.arenas.4096.large.nmalloc")
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
        Kind::RawEcho(read_size) | Kind::ReplySized(read_size) => {
            let accepting = async {
                loop {
                    let (stream, _) = listener.accept().await.unwrap();
                    stream.set_nodelay(true).unwrap();
                    if kind == Kind::RawEcho(read_size) {
                        tokio::spawn(raw_echo(stream, read_size));
                    } else {
                        tokio::spawn(reply_sized_echo(stream, read_size));
                    }
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

/// Answers each whole [`LINE`] read with a reply of chat-server's length,
/// from a buffer made once: the bytes chat-server moves, none of its work.
/// Over TCP or inside TLS (`benches/tls.rs`).
#[allow(dead_code)] // Each bench uses its own part of this module.
pub async fn reply_sized_echo<S>(mut stream: S, read_size: usize)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let reply_line = [REPLY_PREFIX, LINE].concat();
    let replies = reply_line.repeat(read_size / LINE.len() + 1);
    let mut buffer = vec![0; read_size];
    let mut partial = 0;
    while let Ok(count @ 1..) = stream.read(&mut buffer).await {
        let total = partial + count;
        partial = total % LINE.len();
        let lines = total / LINE.len();
        if stream
            .write_all(&replies[..lines * reply_line.len()])
            .await
            .is_err()
            || stream.flush().await.is_err()
        {
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
    ServerCounters::now().cpu
}

/// What the servers' worker threads have cost so far, from
/// `/proc/self/task/*`: CPU time (`schedstat`), context switches
/// (`status`) and minor page faults (`stat`).
struct ServerCounters {
    cpu: Duration,
    parks: u64,
    preemptions: u64,
    faults: u64,
}

impl ServerCounters {
    fn now() -> ServerCounters {
        let mut counters = ServerCounters {
            cpu: Duration::ZERO,
            parks: 0,
            preemptions: 0,
            faults: 0,
        };
        for task in std::fs::read_dir("/proc/self/task").unwrap() {
            let path = task.unwrap().path();
            let read = |file: &str| std::fs::read_to_string(path.join(file)).unwrap_or_default();
            if read("comm").trim_end() != SERVER_THREAD {
                continue;
            }
            let number = |text: Option<&str>| text.and_then(|n| n.trim().parse().ok()).unwrap_or(0);
            counters.cpu +=
                Duration::from_nanos(number(read("schedstat").split_whitespace().next()));
            for line in read("status").lines() {
                if let Some(count) = line.strip_prefix("voluntary_ctxt_switches:") {
                    counters.parks += number(Some(count));
                } else if let Some(count) = line.strip_prefix("nonvoluntary_ctxt_switches:") {
                    counters.preemptions += number(Some(count));
                }
            }
            // `stat`: the fields after the name in parentheses start with
            // the state (field 3); minflt is field 10.
            let stat = read("stat");
            let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
            counters.faults += number(after_name.split_whitespace().nth(7));
        }
        counters
    }
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

/// Which of a bench's `parts` to run, from its arguments
/// (`cargo bench --bench NAME -- PART...`): those named, or all when none
/// is (so `cargo bench`'s own `--bench` runs them all).
pub fn parts_wanted<'a>(args: &'a [String], parts: &'a [&str]) -> impl Fn(&str) -> bool + 'a {
    let words: Vec<&str> = args
        .iter()
        .skip(1)
        .map(String::as_str)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    move |part| words.iter().all(|word| !parts.contains(word)) || words.contains(&part)
}

/// Resident memory of a process, in KiB, from `/proc`.
pub fn resident_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// A figure in KiB from a process's `/proc/PID/status`, by its field name
/// (`VmRSS:`, `VmHWM:`).
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
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
        Self::spawn(command(program).args([SERVE, kind]))
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
