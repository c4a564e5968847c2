//! One client connection: answers each line with `You sent: <line>`, and
//! closes on `.`, end of input, a line over the limit, idle timeout, or
//! server shutdown, after sending every reply it owes.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, watch};

use super::{Config, log};
use crate::framing::{LineSplitter, LineTooLong};

/// What every reply starts with.
const REPLY_PREFIX: &[u8] = b"You sent: ";
/// The line that asks the server to close the connection.
const QUIT_LINE: &[u8] = b".";
/// Room made in the input buffer before each read.
const READ_CHUNK: usize = 16 * 1024;
/// Once unsent replies reach this, they are written before any more lines
/// are answered, and nothing more is read until they are: a client that
/// sends without reading is slowed down, not buffered for.
const REPLY_HIGH_WATER: usize = 64 * 1024;
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
    /// Replies not yet written; empty and unallocated while idle.
    replies: BytesMut,
    config: Arc<Config>,
    /// Changes (or closes) when the server shuts down.
    stop: watch::Receiver<()>,
    stats: Stats,
}

impl Connection {
    fn new(stream: TcpStream, config: Arc<Config>, stop: watch::Receiver<()>) -> Self {
        // Replies are batched by hand, so Nagle's delay would only add latency.
        let _ = stream.set_nodelay(true);
        Self {
            stream,
            lines: LineSplitter::new(Arc::clone(&config.format)),
            replies: BytesMut::new(),
            config,
            stop,
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
            let written = match self.config.idle_timeout {
                None => write.await,
                Some(timeout) => tokio::time::timeout(timeout, write)
                    .await
                    .map_err(|_| End::NotReading(timeout))?,
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
    /// Holds no buffer while it waits: one is reserved only once the socket
    /// is readable.
    async fn receive(&mut self) -> Result<(), End> {
        self.lines.release_if_empty();
        if self.replies.is_empty() {
            self.replies = BytesMut::new();
        }
        let Self {
            stream,
            lines,
            stop,
            config,
            ..
        } = self;
        let read = async {
            stream.readable().await?;
            stream.read_buf(lines.buffer_for_read(READ_CHUNK)).await
        };
        let idle = async {
            match config.idle_timeout {
                Some(timeout) => {
                    tokio::time::sleep(timeout).await;
                    timeout
                }
                None => std::future::pending().await,
            }
        };
        let received = tokio::select! {
            biased;
            _ = stop.changed() => return Err(End::ShuttingDown),
            timeout = idle => return Err(End::Idle(timeout)),
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
