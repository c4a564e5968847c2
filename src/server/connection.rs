//! One client connection: answers each line with `You sent: <line>`, and
//! closes on `.`, end of input, a line over the limit, idle timeout, or
//! server shutdown, after sending every reply it owes.

mod close;

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
use tracing::info;

use super::Config;
use crate::framing::{LineSplitter, LineTooLong};
use crate::protocol::{self, QUIT_LINE, REPLY_PREFIX};
pub use close::CLOSE_STALL;
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
/// Room reserved past [`REPLY_HIGH_WATER`] for the reply that crosses it.
const REPLY_HEADROOM: usize = 4 * 1024;

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
        info!("{peer} connected");
    }
    let mut connection = Connection::new(stream, config, stop);
    let end = connection.answer_lines().await;
    let hint = connection.delimiter_hint();
    connection.close(&end).await;
    // Freed before the log line says the connection is closed, so whoever
    // waits for that line can count on the slot.
    drop(slot);
    if logging {
        info!("{peer} closed ({end}): {}{hint}", connection.stats);
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
        info!("{peer} refused: server full ({max_connections} connections open)");
    }
    let message = protocol::server_full(max_connections);
    let mut connection = Connection::new(stream, config, stop);
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
    /// Write calls that sent bytes: with pipelining, far fewer than lines.
    writes: u64,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "lines={} bytes_in={} bytes_out={} writes={} duration={:.3}s",
            self.lines,
            self.bytes_in,
            self.bytes_out,
            self.writes,
            self.opened.elapsed().as_secs_f64()
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
                writes: 0,
            },
        }
    }

    /// For the close log: a client that sent LF line ends but never the
    /// delimiter (`nc` without `-C`, say) is told how to be understood.
    fn delimiter_hint(&self) -> &'static str {
        let sent_only_lf = self.stats.lines == 0
            && self.config.format.line_end() != b"\n"
            && memchr::memchr(b'\n', self.lines.buffered()).is_some();
        if sent_only_lf {
            "; it sent LF line ends but never the delimiter: \
             run the server with --delimiter lenient, or use nc -C"
        } else {
            ""
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
        let delimiter = self.config.format.written_delimiter();
        if self.replies.is_empty() {
            // Room for the replies to everything buffered (twice its size
            // covers lines of 10 bytes and more), up to the high-water mark
            // and a reply past it, so the buffer rarely has to grow and copy
            // mid-batch. Reclaims the room already written out, if enough.
            let estimate = 2 * self.lines.buffered().len();
            self.replies
                .reserve(estimate.min(REPLY_HIGH_WATER + REPLY_HEADROOM));
        }
        while self.replies.len() < REPLY_HIGH_WATER {
            match self.lines.next_received_line() {
                Ok(None) => return Ok(true),
                Ok(Some(received)) if received.line() == QUIT_LINE => return Err(End::Quit),
                Ok(Some(received)) => {
                    self.replies.extend_from_slice(REPLY_PREFIX);
                    match received.with_written_delimiter() {
                        Some(line_and_delimiter) => {
                            self.replies.extend_from_slice(line_and_delimiter);
                        }
                        None => {
                            self.replies.extend_from_slice(received.line());
                            self.replies.extend_from_slice(delimiter);
                        }
                    }
                    self.stats.lines += 1;
                }
                Err(too_long) => {
                    let message = protocol::line_too_long(too_long.max_line_bytes);
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
            .extend_from_slice(self.config.format.written_delimiter());
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
                Ok(count) => {
                    self.stats.bytes_out += count as u64;
                    self.stats.writes += 1;
                }
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
            timeout = idle_expiry(idle_timer) => {
                let message = protocol::idle(timeout);
                self.queue_reply(&[message.as_bytes()]);
                return Err(End::Idle(timeout));
            }
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
}
