//! The echo server: binds, accepts connections up to the limit, survives
//! accept errors, and shuts down gracefully. What happens on one connection
//! is in [`connection`].

pub mod connection;

use std::fmt;
use std::future::Future;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::{TcpListener, TcpSocket};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Semaphore, watch};
use tokio::task::{JoinError, JoinSet};

use crate::cli::host_port;
use crate::framing::LineFormat;

/// The asyncio `StreamReader` default, so the reference's clients fit.
pub const DEFAULT_MAX_LINE_BYTES: usize = 64 * 1024;
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// How long connections get, after a shutdown signal, to send the replies
/// they owe and close; then they are dropped. The whole shutdown must take
/// under 5 seconds.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// Pending connections the kernel queues before `accept` (capped by
/// `net.core.somaxconn`).
const LISTEN_BACKLOG: u32 = 1024;
/// Accept errors (out of file descriptors, say) are retried after a pause
/// that doubles from the first to the last value, so a persistent error
/// costs a log line a second rather than a busy core.
const ACCEPT_BACKOFF_FIRST: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_LAST: Duration = Duration::from_secs(1);

/// What every connection is served with.
#[derive(Clone, Debug)]
pub struct Config {
    /// The delimiter and the line limit.
    pub format: Arc<LineFormat>,
    /// Connections served at once; further ones are told the server is full.
    pub max_connections: usize,
    /// Closes a connection after this long without a byte from the client
    /// (or, while replies are owed, without the client reading one).
    pub idle_timeout: Option<Duration>,
    /// Logs a line on stderr when a connection opens and when it closes.
    pub log_connections: bool,
}

/// Runs the server as the `chat-server` command does: binds, says
/// `listening on ADDR` on stderr, and serves until SIGINT or SIGTERM.
pub async fn serve(host: &str, port: u16, reuse_port: bool, config: Config) -> anyhow::Result<()> {
    // Before the listening line, so a signal sent as soon as it is seen is
    // handled rather than killing the process.
    let shutdown = shutdown_signal()?;
    let listener = bind(host, port, reuse_port).await?;
    let address = listener.local_addr().context("reading the bound address")?;
    log(format_args!("listening on {address}"));
    run(listener, config, shutdown).await
}

/// Completes on the first SIGINT or SIGTERM. The handlers are installed by
/// this call, not when the future is first polled.
pub fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    let mut interrupt = signal(SignalKind::interrupt()).context("handling SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("handling SIGTERM")?;
    Ok(async move {
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        log(format_args!("{name} received, shutting down"));
    })
}

/// Listens on the first address `host` resolves to that can be bound.
/// Without `reuse_port`, a port already in use is an error naming it.
pub async fn bind(host: &str, port: u16, reuse_port: bool) -> anyhow::Result<TcpListener> {
    let address = host_port(host, port);
    let candidates = tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("resolving {address}"))?;
    let mut last_error = io::Error::new(io::ErrorKind::NotFound, "no address found");
    for candidate in candidates {
        match bind_one(candidate, reuse_port) {
            Ok(listener) => return Ok(listener),
            Err(error) => last_error = error,
        }
    }
    Err(last_error).with_context(|| format!("binding {address}"))
}

fn bind_one(address: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    let socket = match address {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // Lets a restarted server bind while old connections sit in TIME_WAIT;
    // on Linux it does not let two servers share a port.
    socket.set_reuseaddr(true)?;
    if reuse_port {
        socket.set_reuseport(true)?;
    }
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves connections from `listener` until `shutdown` completes, then stops
/// accepting, lets every connection send what it owes and close, and returns
/// once all have, or after a grace period (3 s) by dropping the rest.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let config = Arc::new(config);
    // A connection holds a slot for its whole life; none left means full.
    let slots = Arc::new(Semaphore::new(config.max_connections));
    // Dropping the sender tells every connection to stop reading.
    let (stop_connections, stop) = watch::channel(());
    // Every connection task, so shutdown can wait for them and abort the
    // stragglers.
    let mut connections = JoinSet::new();
    let mut backoff = ACCEPT_BACKOFF_FIRST;
    tokio::pin!(shutdown);

    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(finished) = connections.join_next() => report_panic(finished),
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    backoff = ACCEPT_BACKOFF_FIRST;
                    match Arc::clone(&slots).try_acquire_owned() {
                        Ok(slot) => connections.spawn(connection::serve(
                            stream, peer, slot, Arc::clone(&config), stop.clone(),
                        )),
                        Err(_) => connections.spawn(connection::refuse(
                            stream, peer, Arc::clone(&config), stop.clone(),
                        )),
                    };
                }
                Err(error) => {
                    log(format_args!("accepting a connection failed: {error}; retrying in {backoff:?}"));
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_LAST);
                }
            },
        }
    }

    drop(listener);
    drop(stop_connections);
    let waiting = async {
        while let Some(finished) = connections.join_next().await {
            report_panic(finished);
        }
    };
    if tokio::time::timeout(SHUTDOWN_GRACE, waiting).await.is_err() {
        let open = connections.len();
        let noun = if open == 1 {
            "connection"
        } else {
            "connections"
        };
        log(format_args!(
            "closing {open} {noun} still open after {SHUTDOWN_GRACE:?}"
        ));
        connections.shutdown().await;
    }
    Ok(())
}

/// Writes one line to stderr in a single write, so lines from different
/// connections never interleave and a line costs one system call.
pub(crate) fn log(line: fmt::Arguments<'_>) {
    let mut text = line.to_string();
    text.push('\n');
    // Nowhere left to report a failure to log.
    let _ = io::stderr().write_all(text.as_bytes());
}

/// A panic in a connection task is a bug; it ends that connection only, and
/// must not pass unnoticed.
fn report_panic(finished: Result<(), JoinError>) {
    if let Err(error) = finished
        && error.is_panic()
    {
        eprintln!("a connection task panicked: {error}");
    }
}
