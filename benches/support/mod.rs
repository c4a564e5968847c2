//! Shared by the benchmarks: the servers under test, the raw-byte baseline,
//! and the statistics. Every figure is a median over repeated runs, and
//! every comparison is with a baseline measured in the same process, in the
//! same run, on the same machine.

#![allow(dead_code)] // Each bench uses its own part of this module.

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
    }
}

/// Which server a measurement runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// chat-server's own code.
    Chat,
    /// The baseline: each connection copies its input back with
    /// `tokio::io::copy`, no framing at all.
    RawEcho,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Chat => "chat-server",
            Kind::RawEcho => "raw echo",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        [Kind::Chat, Kind::RawEcho]
            .into_iter()
            .find(|kind| kind.name() == name)
    }
}

/// A multi-thread runtime with a worker per core, as `chat-server` uses.
pub fn server_runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
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
        Kind::RawEcho => {
            let accepting = async {
                loop {
                    let (mut stream, _) = listener.accept().await.unwrap();
                    stream.set_nodelay(true).unwrap();
                    tokio::spawn(async move {
                        let (mut reader, mut writer) = stream.split();
                        let _ = tokio::io::copy(&mut reader, &mut writer).await;
                    });
                }
            };
            tokio::select! {
                () = accepting => {}
                () = shutdown => {}
            }
        }
    }
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
