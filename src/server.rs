//! The listener: binds, accepts connections up to the limit, survives
//! accept errors, and shuts down gracefully, in whichever mode it serves.
//! Opening the listening sockets is in [`bind`]; one connection's
//! transport is in [`connection`]; what a connection is served with, from
//! accept to close, in `session` (the modes themselves are
//! `crate::echo` and [`crate::chat`]); the TLS handshake in `handshake`.

pub mod bind;
mod config;
pub mod connection;
mod handshake;
pub mod per_address;
pub(crate) mod session;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::{JoinError, JoinSet};
use tracing::{error, info, warn};

use crate::chat::Chat;
use crate::echo::Echo;
pub use bind::{ListenOptions, bind_all};
pub use config::{CLOSE_STALL, Config, HANDSHAKE_TIMEOUT, Tls};
use connection::{End, Stream};
use per_address::Held;
use session::Session;

/// The asyncio `StreamReader` default, so the reference's clients fit.
pub const DEFAULT_MAX_LINE_BYTES: usize = 64 * 1024;
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// TCP keepalive idle time: a peer that vanished without a FIN or a reset
/// is closed within about twice this.
pub const DEFAULT_KEEPALIVE_SECS: u32 = 60;

/// How long connections get, after a shutdown signal, to send the replies
/// they owe and close; then they are dropped. The whole shutdown, with the
/// log's last lines, must take under 5 seconds.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// Connections over `--max-connections` being told so at once, at most:
/// past this, a newcomer is closed without a word, so refusals hold few
/// descriptors whatever a flood of connections does.
pub const MAX_REFUSING: usize = 64;
/// With TLS, how long a refused connection has to finish its handshake to
/// be told the server is full, in TLS.
pub const REFUSAL_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a refusal waits for a client that takes none of its one line.
pub const REFUSAL_STALL: Duration = Duration::from_millis(500);
/// Accept errors (out of file descriptors, say) are retried after a pause
/// that doubles from the first to the last value, so a persistent error
/// costs a log line a second rather than a busy core.
const ACCEPT_BACKOFF_FIRST: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_LAST: Duration = Duration::from_secs(1);

/// Runs the server as the `chat-server` command does: binds every address
/// of `hosts`, says `listening on ADDR` for each, and serves until SIGINT,
/// SIGTERM or SIGHUP.
pub async fn serve(
    hosts: &[String],
    port: u16,
    options: ListenOptions,
    config: Config,
) -> anyhow::Result<()> {
    // Before the listening line, so a signal sent as soon as it is seen is
    // handled rather than killing the process.
    let shutdown = shutdown_signal()?;
    let listeners = bind_all(hosts, port, options).await?;
    let config = Arc::new(config);
    // Every start-up check is done before the listening line: the link's
    // (a node name in use) too.
    let chat = match &config.chat {
        Some(settings) => Some(Chat::start(settings, &config.format).await?),
        None => None,
    };
    let with = if config.tls.is_some() { " (TLS)" } else { "" };
    for listener in &listeners {
        let address = listener.local_addr().context("reading the bound address")?;
        info!("listening on {address}{with}");
    }
    match chat {
        None => serve_with(Echo, listeners, config, shutdown).await,
        Some(chat) => serve_with(chat, listeners, config, shutdown).await,
    }
    Ok(())
}

/// Completes on the first SIGINT, SIGTERM or SIGHUP (the terminal was
/// closed). The handlers are installed by this call, not when the future is
/// first polled.
pub fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    let mut interrupt = signal(SignalKind::interrupt()).context("handling SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("handling SIGTERM")?;
    let mut hangup = signal(SignalKind::hangup()).context("handling SIGHUP")?;
    Ok(async move {
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
            _ = hangup.recv() => "SIGHUP",
        };
        info!("{name} received, shutting down");
    })
}

/// Serves connections from `listeners` until `shutdown` completes, then
/// stops accepting, lets every connection send what it owes and close, and
/// returns once all have, or after [`SHUTDOWN_GRACE`] by dropping the rest.
pub async fn run(
    listeners: Vec<TcpListener>,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let config = Arc::new(config);
    match &config.chat {
        None => serve_with(Echo, listeners, config, shutdown).await,
        Some(settings) => {
            let chat = Chat::start(settings, &config.format).await?;
            serve_with(chat, listeners, config, shutdown).await;
        }
    }
    Ok(())
}

/// The accept loop, in `session`'s mode: accepts until `shutdown`, then
/// drains.
async fn serve_with<S: Session>(
    session: S,
    listeners: Vec<TcpListener>,
    config: Arc<Config>,
    shutdown: impl Future<Output = ()>,
) {
    // A connection holds a slot for its whole life; none left means full.
    let slots = Arc::new(Semaphore::new(config.max_connections));
    // A refusal holds one of these while it tells the client.
    let refusals = Arc::new(Semaphore::new(MAX_REFUSING));
    // Dropping the sender tells every connection to stop reading.
    let (stop_connections, stop) = watch::channel(());
    // Every connection task, so shutdown can wait for them and abort the
    // stragglers.
    let mut connections = JoinSet::new();
    let mut backoff = ACCEPT_BACKOFF_FIRST;
    let mut first_listener = 0;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(finished) = connections.join_next() => report_panic(finished),
            accepted = accept_any(&listeners, &mut first_listener) => match accepted {
                Ok((stream, peer)) => {
                    backoff = ACCEPT_BACKOFF_FIRST;
                    let accepted = Accepted { stream, peer, config: &config, stop: &stop };
                    let admitted = admit(&config, peer, &slots);
                    match admitted {
                        Ok(slot) => accepted.spawn(&mut connections, &session, slot),
                        Err(end) => match Arc::clone(&refusals).try_acquire_owned() {
                            Ok(refusing) => accepted.spawn_refusal(&mut connections, refusing, end),
                            // Closed at once: too many are being told already.
                            Err(_) => drop(accepted),
                        },
                    }
                }
                Err(error) => {
                    error!("accepting a connection failed: {error}; retrying in {backoff:?}");
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_LAST);
                }
            },
        }
    }
    drop(listeners);
    drop(stop_connections);
    session.shut_down();
    drain(connections).await;
}

/// Waits for every connection to close, for up to [`SHUTDOWN_GRACE`];
/// then drops those still open.
async fn drain(mut connections: JoinSet<()>) {
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
        warn!("closing {open} {noun} still open after {SHUTDOWN_GRACE:?}");
        connections.shutdown().await;
    }
}

/// What a connection holds for its whole life: one of `--max-connections`,
/// and one of its address's `--max-per-address` unless it is exempt.
pub(crate) struct Slot {
    _connection: OwnedSemaphorePermit,
    _address: Option<Held>,
}

/// A slot for a connection from `peer`, or why it is refused.
fn admit(config: &Config, peer: SocketAddr, slots: &Arc<Semaphore>) -> Result<Slot, End> {
    let address = match &config.per_address {
        Some(counts) => counts.take(peer.ip()).map_err(|_| End::TooManyFrom {
            address: peer.ip().to_canonical(),
            limit: counts.limit(),
        })?,
        None => None,
    };
    let connection = Arc::clone(slots)
        .try_acquire_owned()
        .map_err(|_| End::ServerFull(config.max_connections))?;
    Ok(Slot {
        _connection: connection,
        _address: address,
    })
}

/// A connection just accepted, and what its task is given.
struct Accepted<'a> {
    stream: TcpStream,
    peer: SocketAddr,
    config: &'a Arc<Config>,
    stop: &'a watch::Receiver<()>,
}

impl Accepted<'_> {
    /// Spawns its task: the session, holding `slot`.
    fn spawn<S: Session>(self, connections: &mut JoinSet<()>, session: &S, slot: Slot) {
        let (peer, config, stop) = (self.peer, Arc::clone(self.config), self.stop.clone());
        let session = session.clone();
        let tls = config.tls.clone();
        self.spawn_served(connections, tls, move |stream| {
            session::serve(session, stream, peer, slot, config, stop)
        });
    }

    /// Spawns the task that tells it why it is refused (`end`), holding
    /// `refusing`: quickly (a short handshake with TLS, a short wait for a
    /// client that does not read).
    fn spawn_refusal(
        self,
        connections: &mut JoinSet<()>,
        refusing: OwnedSemaphorePermit,
        end: End,
    ) {
        let (peer, config, stop) = (self.peer, Arc::clone(self.config), self.stop.clone());
        let tls = config
            .tls
            .as_ref()
            .map(|tls| tls.within(REFUSAL_HANDSHAKE_TIMEOUT));
        self.spawn_served(connections, tls, move |stream| async move {
            session::refuse(stream, peer, config, stop, end).await;
            drop(refusing);
        });
    }

    /// Spawns the task that `serve` makes from the stream: right away, or
    /// with `tls` once the handshake is done.
    fn spawn_served<F>(
        self,
        connections: &mut JoinSet<()>,
        tls: Option<Tls>,
        serve: impl FnOnce(Stream) -> F + Send + 'static,
    ) where
        F: Future<Output = ()> + Send + 'static,
    {
        match tls {
            // Made before it is spawned: the task holds the connection alone.
            None => connections.spawn(serve(Stream::Tcp(self.stream))),
            Some(tls) => connections.spawn(handshake::then_serve(
                tls,
                self.stream,
                self.peer,
                Arc::clone(self.config),
                self.stop.clone(),
                serve,
            )),
        };
    }
}

/// The next connection on any of `listeners`. Each call starts looking one
/// listener further than the last, so a busy address cannot starve another.
async fn accept_any(
    listeners: &[TcpListener],
    first: &mut usize,
) -> io::Result<(TcpStream, SocketAddr)> {
    std::future::poll_fn(|context| {
        for turn in 0..listeners.len() {
            let listener = &listeners[(*first + turn) % listeners.len()];
            if let Poll::Ready(accepted) = listener.poll_accept(context) {
                *first = (*first + 1) % listeners.len();
                return Poll::Ready(accepted);
            }
        }
        Poll::Pending
    })
    .await
}

/// A panic in a connection task is a bug; it ends that connection only, and
/// must not pass unnoticed.
fn report_panic(finished: Result<(), JoinError>) {
    if let Err(error) = finished
        && error.is_panic()
    {
        error!("a connection task panicked: {error}");
    }
}
