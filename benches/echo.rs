//! The server end to end on loopback, against baseline servers that echo
//! raw bytes with no framing, reading 8 KiB (`tokio::io::copy`), 64 KiB or
//! 256 KiB at a time; each figure is compared with the best of them,
//! measured in the same run, driven by the same client code with the same
//! bytes:
//! - pipelined 32-byte lines on 1 and 64 connections, unbounded and with a
//!   window (at most W bytes of lines unanswered, as pipelining clients
//!   keep): lines per second, and the servers' CPU time per line;
//! - ping-pong, one line in flight, on 1 and 100 connections: round trips;
//! - 5,000 idle connections: resident memory per connection.
//!
//! Beside the throughput figures, a ceiling that is not a baseline: raw
//! echoes that answer each line with a prebuilt reply as long as
//! chat-server's (`You sent: ` adds 10 bytes), with no framing, reading 64
//! or 256 KiB at a time. They move the bytes chat-server moves and do none
//! of its work, so chat-server's share of them is what its own work costs.
//!
//! The servers run on a multi-thread runtime in this process; the client
//! runs on a single thread beside them. Ping-pong is measured that way and
//! again with each server in a child process confined to one core with one
//! worker and the client confined to another: on a 2-core machine the first
//! setup puts three busy threads on two cores, and its tail is mostly the
//! kernel's scheduler tick. Memory is measured with each server in a child
//! process, so that only the server is counted.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "support/mod.rs"]
mod support;
use support::{ChildServer, Kind, LINE, REPLY_LEN, SERVE, client_runtime};

/// Windows of the windowed client, in bytes of lines sent and not yet
/// answered; `None` is no window at all.
const WINDOWS: [Option<usize>; 5] = [
    Some(16 * 1024),
    Some(64 * 1024),
    Some(256 * 1024),
    Some(1024 * 1024),
    None,
];
/// The ratio to the best raw echo each throughput figure must reach.
const THROUGHPUT_TARGET: f64 = 0.85;
/// The most server CPU per line, as a multiple of the best raw echo's.
const CPU_TARGET: f64 = 1.3;
const RUNS: usize = 5;
/// Tail latency on a shared machine is noisy: more runs for its median.
const LATENCY_RUNS: usize = 7;
const IDLE_CONNECTIONS: usize = 5_000;

fn reply_len(kind: Kind) -> usize {
    match kind {
        Kind::Chat | Kind::ReplySized(_) => REPLY_LEN,
        Kind::RawEcho(_) => LINE.len(),
    }
}

async fn connect(address: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(address).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// One throughput run: lines per second over `connections` connections
/// pipelining together, and what the lines cost the servers.
fn pipelined_run(
    address: SocketAddr,
    kind: Kind,
    connections: usize,
    lines_each: usize,
    window: Option<usize>,
) -> support::LinesRun {
    support::measure_lines(connections * lines_each, async {
        let mut clients = tokio::task::JoinSet::new();
        for _ in 0..connections {
            clients.spawn(async move {
                let (reader, writer) = connect(address).await.into_split();
                support::pipeline(reader, writer, lines_each, reply_len(kind), window).await;
            });
        }
        while let Some(done) = clients.join_next().await {
            done.unwrap();
        }
    })
}

/// Round trips of one line at a time on each of `connections` connections.
fn ping_pong(
    address: SocketAddr,
    kind: Kind,
    connections: usize,
    trips_each: usize,
) -> Vec<Duration> {
    client_runtime().block_on(async {
        let mut clients = tokio::task::JoinSet::new();
        for _ in 0..connections {
            clients.spawn(async move {
                let mut stream = connect(address).await;
                let mut reply = vec![0; reply_len(kind)];
                let mut trips = Vec::with_capacity(trips_each);
                for _ in 0..trips_each {
                    let started = Instant::now();
                    stream.write_all(LINE).await.unwrap();
                    stream.read_exact(&mut reply).await.unwrap();
                    trips.push(started.elapsed());
                }
                trips
            });
        }
        let mut all = Vec::new();
        while let Some(trips) = clients.join_next().await {
            all.extend(trips.unwrap());
        }
        all.sort_unstable();
        all
    })
}

/// A server of `kind` in a child process.
fn start_child(kind: Kind) -> ChildServer {
    ChildServer::start(&kind.name())
}

/// A server of `kind` with one worker thread, confined to `core`.
fn start_child_pinned(kind: Kind, core: usize) -> ChildServer {
    let program = std::env::current_exe().unwrap();
    ChildServer::spawn(
        support::command("taskset")
            .args(["-c", &core.to_string()])
            .arg(program)
            .args([SERVE, &kind.name()])
            .env("TOKIO_WORKER_THREADS", "1"),
    )
}

/// Resident memory per idle connection: each of `IDLE_CONNECTIONS` sends a
/// line, gets its reply, and then stays open doing nothing.
fn idle_memory_per_connection(kind: Kind) -> f64 {
    let server = start_child(kind);
    let address = server.address;
    client_runtime().block_on(async {
        // One exchange first, so the runtime's own start-up is not counted.
        let mut warm = connect(address).await;
        warm.write_all(LINE).await.unwrap();
        warm.read_exact(&mut vec![0; reply_len(kind)])
            .await
            .unwrap();
        let before = server.resident_kib();
        let mut idle = Vec::with_capacity(IDLE_CONNECTIONS);
        for _ in 0..IDLE_CONNECTIONS {
            let mut stream = connect(address).await;
            stream.write_all(LINE).await.unwrap();
            stream
                .read_exact(&mut vec![0; reply_len(kind)])
                .await
                .unwrap();
            idle.push(stream);
        }
        let after = server.resident_kib();
        (after.saturating_sub(before) * 1024) as f64 / IDLE_CONNECTIONS as f64
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|arg| arg == SERVE) {
        let kind = Kind::parse(&args[at + 1]).unwrap();
        return support::serve_until_stdin_closes(|listener| {
            support::serve(listener, kind, std::future::pending())
        });
    }

    // `cargo bench --bench echo -- WORD...` runs only the parts named
    // (pipelined, windowed, ping-pong, idle).
    const PARTS: [&str; 4] = ["pipelined", "windowed", "ping-pong", "idle"];
    let wanted = support::parts_wanted(&args, &PARTS);
    let runtime = support::server_runtime();
    let kinds: Vec<Kind> = std::iter::once(Kind::Chat)
        .chain(support::RAW_ECHOES)
        .collect();
    let servers: Vec<(Kind, SocketAddr)> = kinds
        .iter()
        .map(|&kind| (kind, support::start(&runtime, kind)))
        .collect();
    let ceilings: Vec<(Kind, SocketAddr)> = support::REPLY_SIZED_ECHOES
        .iter()
        .map(|&kind| (kind, support::start(&runtime, kind)))
        .collect();
    println!(
        "echo: chat-server against raw byte echoes reading 8, 64 and 256 KiB, loopback, \
         median of {RUNS} runs; each ratio is to the best raw echo"
    );

    for window in WINDOWS {
        let part = if window.is_some() {
            "windowed"
        } else {
            "pipelined"
        };
        if !wanted(part) {
            continue;
        }
        for (connections, lines_each) in [(1, 1 << 20), (64, 1 << 14)] {
            throughput_row(&servers, &ceilings, connections, lines_each, window);
        }
    }

    if wanted("ping-pong") {
        // In this process, as for throughput: three busy threads share the
        // cores, and the tail is mostly the kernel's scheduler tick.
        ping_pong_table("in-process, unpinned", &servers);
        // Server and client on a core each: the tail is the server's own.
        if pinning_possible() {
            pin_this_thread(0);
            let children: Vec<ChildServer> = kinds
                .iter()
                .map(|&kind| start_child_pinned(kind, 1))
                .collect();
            let pinned: Vec<(Kind, SocketAddr)> = kinds
                .iter()
                .zip(&children)
                .map(|(&kind, child)| (kind, child.address))
                .collect();
            ping_pong_table("server pinned to core 1, client to core 0", &pinned);
            drop(children);
            unpin_this_thread();
        } else {
            println!("ping-pong pinned: skipped (needs 2 cores and taskset)");
        }
    }

    if !wanted("idle") {
        return;
    }
    let chat = idle_memory_per_connection(Kind::Chat);
    let raw = idle_memory_per_connection(support::RAW_ECHOES[0]);
    println!(
        "{IDLE_CONNECTIONS} idle connections: chat-server {:.2} KiB each, raw echo (8 KiB copy) \
         {:.2} KiB each (target <= 1.5 KiB) {}",
        chat / 1024.0,
        raw / 1024.0,
        verdict(chat <= 1.5 * 1024.0),
    );
}

/// Measures throughput against every server, runs interleaved, and prints
/// chat-server's rate and CPU per line against the best raw echo's, and
/// its share of the best reply-sized echo's rate (the `ceilings`).
fn throughput_row(
    servers: &[(Kind, SocketAddr)],
    ceilings: &[(Kind, SocketAddr)],
    connections: usize,
    lines_each: usize,
    window: Option<usize>,
) {
    let all: Vec<(Kind, SocketAddr)> = servers.iter().chain(ceilings).copied().collect();
    let mut runs = vec![Vec::new(); all.len()];
    for _ in 0..RUNS {
        for (i, &(kind, address)) in all.iter().enumerate() {
            runs[i].push(pipelined_run(
                address,
                kind,
                connections,
                lines_each,
                window,
            ));
        }
    }
    // The median of each figure over the runs, for every server.
    let medians = |figure: fn(&support::LinesRun) -> f64| -> Vec<f64> {
        runs.iter()
            .map(|runs| support::median(&mut runs.iter().map(figure).collect::<Vec<_>>()))
            .collect()
    };
    let rates = medians(|run| run.lines_per_second);
    let cpus = medians(|run| run.cpu_ns_per_line);
    let parks = medians(|run| run.parks_per_million);
    let preemptions = medians(|run| run.preemptions_per_million);
    let faults = medians(|run| run.faults_per_million);
    let allocations = medians(|run| run.allocations_per_million);
    let epoll_waits = medians(|run| run.epoll_waits_per_million.unwrap_or(f64::NAN));
    let waits = |at: usize| match epoll_waits[at].is_nan() {
        true => "n/a".to_string(),
        false => format!("{:.0}", epoll_waits[at]),
    };
    let fastest = |range: std::ops::Range<usize>| {
        range
            .max_by(|&a, &b| rates[a].total_cmp(&rates[b]))
            .unwrap()
    };
    let best = fastest(1..servers.len());
    let ceiling = fastest(servers.len()..all.len());
    let ratio = rates[0] / rates[best];
    let cpu_ratio = cpus[0] / cpus[best];
    let window = window.map_or("unbounded".to_string(), |bytes| {
        format!("W = {} KiB", bytes / 1024)
    });
    let others: Vec<String> = (1..all.len())
        .map(|i| format!("{} {}", all[i].0.name(), support::per_second(rates[i])))
        .collect();
    println!(
        "pipelined, {window}, {connections:>2} connection(s): chat-server {} lines/s, \
         {:.0} ns CPU/line; best raw echo ({}) {} lines/s, {:.0} ns CPU/line: \
         {ratio:.2}x (target >= {THROUGHPUT_TARGET}x) {}, CPU {cpu_ratio:.2}x \
         (target <= {CPU_TARGET}x) {}; of the reply-sized ceiling ({}, {:.0} ns CPU/line): \
         {:.2}x; per million lines, parks {:.0} against the ceiling's {:.0}, \
         preemptions {:.0} against {:.0}, page faults {:.0} against {:.0}, \
         epoll_wait calls {} against {}, allocations (the client's too) {:.0} against {:.0} [{}]",
        support::per_second(rates[0]),
        cpus[0],
        all[best].0.name(),
        support::per_second(rates[best]),
        cpus[best],
        verdict(ratio >= THROUGHPUT_TARGET),
        verdict(cpu_ratio <= CPU_TARGET),
        all[ceiling].0.name(),
        cpus[ceiling],
        rates[0] / rates[ceiling],
        parks[0],
        parks[ceiling],
        preemptions[0],
        preemptions[ceiling],
        faults[0],
        faults[ceiling],
        waits(0),
        waits(ceiling),
        allocations[0],
        allocations[ceiling],
        others.join(", "),
    );
}

/// Measures ping-pong on 1 and 100 connections against every server, runs
/// interleaved, and prints p50 and p99 with the p99 ratio to the raw echo
/// with the lowest p99.
fn ping_pong_table(setup: &str, servers: &[(Kind, SocketAddr)]) {
    for (connections, trips_each) in [(1, 5_000), (100, 500)] {
        let mut p50s = vec![Vec::new(); servers.len()];
        let mut p99s = vec![Vec::new(); servers.len()];
        for _ in 0..LATENCY_RUNS {
            for (i, &(kind, address)) in servers.iter().enumerate() {
                let trips = ping_pong(address, kind, connections, trips_each);
                p50s[i].push(support::percentile(&trips, 50.0).as_secs_f64());
                p99s[i].push(support::percentile(&trips, 99.0).as_secs_f64());
            }
        }
        let micros = |samples: &mut Vec<f64>| support::median(samples) * 1e6;
        let p50s: Vec<f64> = p50s.iter_mut().map(micros).collect();
        let p99s: Vec<f64> = p99s.iter_mut().map(micros).collect();
        let best = (1..servers.len())
            .min_by(|&a, &b| p99s[a].total_cmp(&p99s[b]))
            .unwrap();
        let ratio = p99s[0] / p99s[best];
        println!(
            "ping-pong, {connections:>3} connection(s), {setup}: chat-server p50 {:.0} us \
             p99 {:.0} us, best raw echo ({}) p50 {:.0} us p99 {:.0} us: p99 {ratio:.2}x \
             (target <= 1.2x) {}",
            p50s[0],
            p99s[0],
            servers[best].0.name(),
            p50s[best],
            p99s[best],
            verdict(ratio <= 1.2),
        );
    }
}

fn pinning_possible() -> bool {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let taskset = support::command("taskset").arg("--version").output();
    cores >= 2 && taskset.is_ok_and(|output| output.status.success())
}

/// Confines the calling thread (the client's runtime) to `core`.
fn pin_this_thread(core: usize) {
    set_this_thread_cores(&core.to_string());
}

fn unpin_this_thread() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    set_this_thread_cores(&format!("0-{}", cores - 1));
}

fn set_this_thread_cores(list: &str) {
    // The main thread's id is the process id.
    let status = support::command("taskset")
        .args(["-p", "-c", list, &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "taskset failed");
}

fn verdict(met: bool) -> &'static str {
    if met { "ok" } else { "MISSED" }
}
