//! One client connection: answers each line with `You sent: <line>`, and
//! closes on `.`, end of input, a line over the limit, idle timeout, or
//! server shutdown, after sending every reply it owes.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::time::{Instant, Sleep};

use super::{Config, log};
use crate::framing::{LineSplitter, LineTooLong};

/// What every reply starts with.
const REPLY_PREFIX: &[u8] = b"You sent: ";
/// The line that asks the server to close the connection.
const QUIT_LINE: &[u8] = b".";
/// Room for the first read after a wait: small, since a connection that had
/// to wait is usually one line at a time (a person, a ping-pong client), and
/// its buffer is allocated anew after every wait.
const FIRST_READ: usize = 1024;
/// Room for each read while input keeps coming (the last read filled its
/// buffer): large, so a pipelining client costs few system calls per line.
const READ_CHUNK: usize = 64 * 1024;
/// Once unsent replies reach this, they are written before any more lines
/// are answered, and nothing more is read until they are: a client that
/// sends without reading is slowed down, not buffered for.
const REPLY_HIGH_WATER: usize = 128 * 1024;
/// After its last reply the server shuts its sending side and discards what
/// the client still sends, for at most this long, before closing. Closing at
/// once with unread input would make the kernel send a reset, which can
/// reach the client before it has read those last replies.
const LINGER: Duration = Duration::from_secs(1);

/// Serves one connection from its first byte to its close, holding `slot`
/// until the connection is closed.
pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    slot: OwnedSemaphorePermit,
    config: Arc<Config>,
    stop: watch::Receiver<()>,
) {
    let logging = config.log_connections;
    if logging {
        log(format_args!("{peer} connected"));
    }
    let mut connection = Connection::new(stream, config, stop);
    let end = connection.answer_lines().await;
    connection.close(&end).await;
    // Freed before the log line says the connection is closed, so whoever
    // waits for that line can count on the slot.
    drop(slot);
    if logging {
        log(format_args!("{peer} closed ({end}): {}", connection.stats));
    }
}

/// Tells a connection over the limit that the server is full, and closes it.
pub(crate) async fn refuse(
    stream: TcpStream,
    peer: SocketAddr,
    config: Arc<Config>,
    stop: watch::Receiver<()>,
) {
    let max_connections = config.max_connections;
    if config.log_connections {
        log(format_args!(
            "{peer} refused: server is full ({max_connections} connections)"
        ));
    }
    let mut connection = Connection::new(stream, config, stop);
    let message = format!("error: server is full ({max_connections} connections)");
    connection.queue_reply(&[message.as_bytes()]);
    connection.close(&End::ServerFull).await;
}

/// Why a connection ended; said in the log line when it closes.
#[derive(Debug)]
enum End {
    /// The client sent `.`.
    Quit,
    /// The client shut down its sending side (or closed).
    ClientClosed,
    LineTooLong(LineTooLong),
    /// Nothing arrived from the client for the idle timeout.
    Idle(Duration),
    /// Replies were owed but the client read none for the idle timeout.
    NotReading(Duration),
    ShuttingDown,
    ServerFull,
    /// A reset or other socket error: nothing more can be sent.
    Failed(io::Error),
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            End::Quit => write!(f, "client sent \".\""),
            End::ClientClosed => write!(f, "client closed its side"),
            End::LineTooLong(error) => write!(f, "{error}"),
            End::Idle(timeout) => write!(f, "nothing received for {timeout:?}"),
            End::NotReading(timeout) => write!(f, "client read nothing for {timeout:?}"),
            End::ShuttingDown => write!(f, "server shutting down"),
            End::ServerFull => write!(f, "server full"),
            End::Failed(error) => write!(f, "{error}"),
        }
    }
}

/// Counts for the log line at close.
#[derive(Debug)]
struct Stats {
    opened: Instant,
    lines: u64,
    bytes_in: u64,
    bytes_out: u64,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "lines={} bytes_in={} bytes_out={} duration={:.3?}",
            self.lines,
            self.bytes_in,
            self.bytes_out,
            self.opened.elapsed()
        )
    }
}

struct Connection {
    stream: TcpStream,
    /// Received bytes, cut into lines.
    lines: LineSplitter,
    /// Replies not yet written; unallocated while waiting for input.
    replies: BytesMut,
    config: Arc<Config>,
    /// Changes (or closes) when the server shuts down.
    stop: watch::Receiver<()>,
    /// Only with an idle timeout.
    idle_timer: Option<IdleTimer>,
    /// The last read filled its buffer, so more input is probably waiting
    /// and the next read is large.
    streaming: bool,
    stats: Stats,
}

/// The idle timeout's timer, allocated once per connection and re-armed
/// for each wait: a timer inline in every wait would make each connection's
/// task, and so its idle memory, larger.
struct IdleTimer {
    timeout: Duration,
    sleep: Pin<Box<Sleep>>,
}

impl IdleTimer {
    /// Completes with the timeout once it has elapsed from now.
    async fn expiry(&mut self) -> Duration {
        self.sleep.as_mut().reset(Instant::now() + self.timeout);
        (&mut self.sleep).await;
        self.timeout
    }
}

/// Completes when `timer` expires; never without one.
async fn idle_expiry(timer: &mut Option<IdleTimer>) -> Duration {
    match timer {
        Some(timer) => timer.expiry().await,
        None => std::future::pending().await,
    }
}

impl Connection {
    fn new(stream: TcpStream, config: Arc<Config>, stop: watch::Receiver<()>) -> Self {
        // Replies are batched by hand, so Nagle's delay would only add latency.
        let _ = stream.set_nodelay(true);
        Self {
            stream,
            lines: LineSplitter::new(Arc::clone(&config.format)),
            replies: BytesMut::new(),
            idle_timer: config.idle_timeout.map(|timeout| IdleTimer {
                timeout,
                sleep: Box::pin(tokio::time::sleep(timeout)),
            }),
            config,
            stop,
            streaming: false,
            stats: Stats {
                opened: Instant::now(),
                lines: 0,
                bytes_in: 0,
                bytes_out: 0,
            },
        }
    }

    /// Answers lines until the connection has to end, and says why. Replies
    /// owed at that point are still in `replies`, for [`Self::close`].
    async fn answer_lines(&mut self) -> End {
        loop {
            let all_answered = match self.answer_buffered() {
                Ok(all_answered) => all_answered,
                Err(end) => return end,
            };
            if let Err(end) = self.send_replies().await {
                return end;
            }
            if all_answered && let Err(end) = self.receive().await {
                return end;
            }
        }
    }

    /// Answers the complete lines already received, into `replies`. Stops
    /// early when the replies reach [`REPLY_HIGH_WATER`]; returns whether
    /// every complete line is answered. This is the per-line hot path: no
    /// I/O, no allocation but the reply buffer's growth.
    fn answer_buffered(&mut self) -> Result<bool, End> {
        let delimiter = self.config.format.delimiter();
        if self.replies.capacity() == 0 {
            let estimate = 2 * self.lines.buffered().len();
            self.replies.reserve(estimate.min(REPLY_HIGH_WATER));
        }
        while self.replies.len() < REPLY_HIGH_WATER {
            match self.lines.next_line() {
                Ok(None) => return Ok(true),
                Ok(Some(QUIT_LINE)) => return Err(End::Quit),
                Ok(Some(line)) => {
                    self.replies.extend_from_slice(REPLY_PREFIX);
                    self.replies.extend_from_slice(line);
                    self.replies.extend_from_slice(delimiter);
                    self.stats.lines += 1;
                }
                Err(too_long) => {
                    let message = format!("error: {too_long}");
                    self.queue_reply(&[message.as_bytes()]);
                    return Err(End::LineTooLong(too_long));
                }
            }
        }
        Ok(false)
    }

    /// Queues one line made of `parts`, followed by the delimiter.
    fn queue_reply(&mut self, parts: &[&[u8]]) {
        for part in parts {
            self.replies.extend_from_slice(part);
        }
        self.replies
            .extend_from_slice(self.config.format.delimiter());
    }

    /// Writes every queued reply, usually in one write. With an idle timeout,
    /// a client that takes none of them for that long ends the connection.
    async fn send_replies(&mut self) -> Result<(), End> {
        while !self.replies.is_empty() {
            let write = self.stream.write_buf(&mut self.replies);
            let written = match &mut self.idle_timer {
                None => write.await,
                Some(timer) => tokio::select! {
                    written = write => written,
                    timeout = timer.expiry() => return Err(End::NotReading(timeout)),
                },
            };
            match written {
                Ok(0) => return Err(End::Failed(io::ErrorKind::WriteZero.into())),
                Ok(count) => self.stats.bytes_out += count as u64,
                Err(error) => return Err(End::Failed(error)),
            }
        }
        Ok(())
    }

    /// Waits for more bytes from the client and appends them to `lines`.
    /// Holds no buffer while it waits: buffers are freed when there is
    /// nothing to read, and reserved again once there is.
    async fn receive(&mut self) -> Result<(), End> {
        debug_assert!(self.replies.is_empty(), "replies are sent before reading");
        let Self {
            stream,
            lines,
            replies,
            stop,
            idle_timer,
            streaming,
            ..
        } = self;
        // Polled by hand rather than as `readable()` then `read_buf()`: that
        // pair would keep a readiness waiter inside every waiting
        // connection's task. The read future holds no state between polls.
        let read = std::future::poll_fn(|context| {
            if stream.poll_read_ready(context)?.is_ready() {
                let spare = if *streaming { READ_CHUNK } else { FIRST_READ };
                let buffer = lines.buffer_for_read(spare);
                let room = buffer.capacity() - buffer.len();
                let read = std::pin::pin!(stream.read_buf(buffer));
                if let Poll::Ready(count) = read.poll(context)? {
                    *streaming = count == room;
                    return Poll::Ready(Ok(count));
                }
            }
            // Nothing to read: the wait may be long, so free the buffers.
            // `replies` is empty here: all replies were sent before reading.
            lines.release_if_empty();
            *replies = BytesMut::new();
            *streaming = false;
            Poll::Pending
        });
        let received = tokio::select! {
            biased;
            _ = stop.changed() => return Err(End::ShuttingDown),
            timeout = idle_expiry(idle_timer) => return Err(End::Idle(timeout)),
            received = read => received,
        };
        match received {
            Ok(0) => Err(End::ClientClosed),
            Ok(count) => {
                self.stats.bytes_in += count as u64;
                Ok(())
            }
            Err(error) => Err(End::Failed(error)),
        }
    }

    /// Sends the replies owed, shuts the sending side, and lingers so the
    /// client reads them all before the socket is closed.
    async fn close(&mut self, end: &End) {
        if matches!(end, End::Failed(_) | End::NotReading(_)) {
            return;
        }
        if self.send_replies().await.is_err() || self.stream.shutdown().await.is_err() {
            return;
        }
        if !matches!(end, End::ClientClosed) {
            self.discard_until_end_of_input().await;
        }
    }

    /// Reads and drops the client's input until it closes its side, for at
    /// most [`LINGER`].
    async fn discard_until_end_of_input(&mut self) {
        let mut sink = vec![0; 4096];
        let discard = async {
            while let Ok(count @ 1..) = self.stream.read(&mut sink).await {
                self.stats.bytes_in += count as u64;
            }
        };
        let _ = tokio::time::timeout(LINGER, discard).await;
    }
}
