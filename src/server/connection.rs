//! One client connection's transport: reading and cutting lines, the
//! outbox and its flush, the idle timer, the close, and the counts the log
//! line reports. It knows no mode: a session (`super::session`) drives it,
//! and it ends on end of input, a line over the limit, idle timeout,
//! server shutdown, or whatever the session decides, after sending every
//! reply it owes.

mod close;
pub(crate) mod queued;
mod stream;
#[cfg(test)]
mod tests;
mod tls_session;

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use super::config::Config;
use crate::framing::{LineSplitter, LineTooLong};
use crate::protocol;
pub(crate) use stream::Stream;
pub(crate) use tls_session::TlsSession;

/// Room for each read: large, so a pipelining client costs few system
/// calls per line. Reserved only once the socket has bytes, and freed when
/// it has none, so a waiting connection holds no buffer. (A smaller first
/// read after each wait made a client that keeps a window of requests in
/// flight pay an extra read and write per window.)
pub const READ_CHUNK: usize = 64 * 1024;
/// Once the outbox holds this much, it is written before any more lines
/// are answered, and nothing more is read until it is: a client that sends
/// without reading is slowed down, not buffered for.
const OUTBOX_HIGH_WATER: usize = 128 * 1024;
/// Room reserved past [`OUTBOX_HIGH_WATER`] for the line that crosses it.
const OUTBOX_HEADROOM: usize = 4 * 1024;

/// Whether `bytes` start as a TLS handshake record does: `16 03 0x`.
pub(crate) fn starts_a_tls_handshake(bytes: &[u8]) -> bool {
    matches!(bytes, [0x16, 0x03, 0..=4, ..])
}

/// Why a connection ended; said in the log line when it closes.
#[derive(Debug)]
pub(crate) enum End {
    /// The client sent `.`.
    Quit,
    /// A chat member sent `/quit`, with its reason (escaped) if it gave one.
    QuitCommand(Option<Box<str>>),
    /// The client shut down its sending side (or closed).
    ClientClosed,
    LineTooLong(LineTooLong),
    /// Nothing arrived from the client for the idle timeout.
    Idle(Duration),
    /// Replies were owed but the client read none for the idle timeout.
    NotReading(Duration),
    ShuttingDown,
    /// Refused: `--max-connections` (this many) are open.
    ServerFull(usize),
    /// An operator kicked the chat member; the line it is sent last.
    Kicked(Box<str>),
    /// A chat member gave the server's password wrong too often, or tried
    /// while its address may not.
    PasswordRefused,
    /// Refused: `--max-per-address` (`limit`) are open from `address`.
    TooManyFrom {
        address: std::net::IpAddr,
        limit: usize,
    },
    /// The server has TLS and the client sent plain text.
    NotTls,
    /// The server has no TLS and the client started a TLS handshake.
    TlsClient,
    /// A chat member let more than `sendq` bytes wait for it.
    TooSlow {
        sendq: usize,
    },
    /// A reset or other socket error: nothing more can be sent.
    Failed(io::Error),
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            End::Quit => write!(f, "client sent \".\""),
            End::QuitCommand(None) => write!(f, "/quit"),
            End::QuitCommand(Some(reason)) => write!(f, "/quit {reason}"),
            End::ClientClosed => write!(f, "client closed its side"),
            End::LineTooLong(error) => write!(f, "{error}"),
            End::Idle(timeout) => write!(f, "nothing received for {timeout:?}"),
            End::NotReading(timeout) => write!(f, "client read nothing for {timeout:?}"),
            End::ShuttingDown => write!(f, "server shutting down"),
            End::ServerFull(_) => write!(f, "server full"),
            End::PasswordRefused => write!(f, "wrong password"),
            End::Kicked(line) => write!(f, "{}", line.strip_prefix("error: ").unwrap_or(line)),
            End::TooManyFrom { address, limit } => {
                write!(
                    f,
                    "{limit} connections open from {address} (--max-per-address)"
                )
            }
            End::NotTls => write!(f, "not TLS"),
            End::TlsClient => write!(
                f,
                "a TLS client; this server speaks plain text (start it with --tls-cert and \
                 --tls-key)"
            ),
            End::TooSlow { sendq } => write!(f, "too slow: more than {sendq} bytes unread"),
            End::Failed(error) => write!(f, "{error}"),
        }
    }
}

/// Counts for the log line at close.
#[derive(Debug)]
pub(crate) struct Stats {
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

/// The transport of one connection: the socket, the lines received, the
/// bytes to send, the idle timer, the close, and the counts for the log.
/// What to answer is the policy's (`echo`).
pub(crate) struct Connection {
    stream: Stream,
    /// Received bytes, cut into lines.
    pub(crate) lines: LineSplitter,
    /// Bytes to send, not yet written; unallocated while waiting for input.
    pub(crate) outbox: BytesMut,
    pub(crate) config: Arc<Config>,
    /// Changes (or closes) when the server shuts down.
    stop: watch::Receiver<()>,
    /// Only with an idle timeout.
    idle_timer: Option<IdleTimer>,
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
    pub(crate) fn new(stream: Stream, config: Arc<Config>, stop: watch::Receiver<()>) -> Self {
        stream.set_nodelay();
        Self {
            stream,
            lines: LineSplitter::new(Arc::clone(&config.format)),
            outbox: BytesMut::new(),
            idle_timer: config.idle_timeout.map(|timeout| IdleTimer {
                timeout,
                sleep: Box::pin(tokio::time::sleep(timeout)),
            }),
            config,
            stop,
            stats: Stats {
                opened: Instant::now(),
                lines: 0,
                bytes_in: 0,
                bytes_out: 0,
                writes: 0,
            },
        }
    }

    /// The client's address, if the socket still knows it.
    pub(crate) fn peer(&self) -> Option<std::net::SocketAddr> {
        self.stream.tcp().peer_addr().ok()
    }

    /// Whether the connection speaks TLS.
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    /// For the close log: a client that sent LF line ends but never the
    /// delimiter (`nc` without `-C`, say) is told how to be understood.
    pub(crate) fn delimiter_hint(&self) -> &'static str {
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

    /// ` over TLS 1.3` with TLS, nothing without: for the log lines.
    pub(crate) fn over(&self) -> String {
        self.stream
            .tls_version()
            .map_or_else(String::new, |version| format!(" over {version}"))
    }

    /// The counts so far, for the close log line.
    pub(crate) fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Reserves room in the outbox for the replies to everything buffered
    /// (twice its size covers lines of 10 bytes and more), up to the
    /// high-water mark and a reply past it, so it rarely has to grow and
    /// copy mid-batch. Reclaims the room already written out, if enough.
    #[inline]
    pub(crate) fn prepare_outbox(&mut self) {
        if self.outbox.is_empty() {
            let estimate = 2 * self.lines.buffered().len();
            self.outbox
                .reserve(estimate.min(OUTBOX_HIGH_WATER + OUTBOX_HEADROOM));
        }
    }

    /// Whether `outbox` may take more before it must be flushed.
    #[inline]
    pub(crate) fn outbox_has_room(outbox: &BytesMut) -> bool {
        outbox.len() < OUTBOX_HIGH_WATER
    }

    /// Counts lines answered, for the close log.
    #[inline]
    pub(crate) fn count_lines(&mut self, answered: u64) {
        self.stats.lines += answered;
    }

    /// Queues one line made of `parts`, followed by the delimiter.
    pub(crate) fn queue_line(&mut self, parts: &[&[u8]]) {
        for part in parts {
            self.outbox.extend_from_slice(part);
        }
        self.outbox
            .extend_from_slice(self.config.format.written_delimiter());
    }

    /// Writes everything in the outbox, usually in one write (with TLS,
    /// then sends the records it made). With an idle timeout, a client that
    /// takes none of it for that long ends the connection.
    pub(crate) async fn flush(&mut self) -> Result<(), End> {
        let Self {
            stream,
            outbox,
            idle_timer,
            stats,
            ..
        } = self;
        while !outbox.is_empty() || stream.has_unsent() {
            let send = async {
                if outbox.is_empty() {
                    stream.flush().await.map(|()| None)
                } else {
                    stream.write_buf(outbox).await.map(Some)
                }
            };
            let sent = match idle_timer {
                None => send.await,
                Some(timer) => tokio::select! {
                    sent = send => sent,
                    timeout = timer.expiry() => return Err(End::NotReading(timeout)),
                },
            };
            match sent {
                Ok(None) => {}
                Ok(Some(0)) => return Err(End::Failed(io::ErrorKind::WriteZero.into())),
                Ok(Some(count)) => {
                    stats.bytes_out += count as u64;
                    stats.writes += 1;
                }
                Err(error) => return Err(End::Failed(error)),
            }
        }
        Ok(())
    }

    /// Waits for more bytes from the client and appends them to `lines`.
    /// Holds no buffer while it waits: buffers are freed when there is
    /// nothing to read, and reserved again once there is.
    pub(crate) async fn receive(&mut self) -> Result<(), End> {
        debug_assert!(
            self.outbox.is_empty(),
            "the outbox is flushed before reading"
        );
        // Boxed, and only once due: most connections never need it.
        let lf_notice = self
            .owes_lf_notice()
            .then(|| Box::pin(tokio::time::sleep(protocol::LF_NOTICE_AFTER)));
        let Self {
            stream,
            lines,
            outbox,
            stop,
            idle_timer,
            ..
        } = self;
        // Polled by hand rather than as `readable()` then `read_buf()`: that
        // pair would keep a readiness waiter inside every waiting
        // connection's task. The read future holds no state between polls.
        let read = std::future::poll_fn(|context| {
            if let Poll::Ready(read) = stream.poll_read_into(context, lines, READ_CHUNK) {
                return Poll::Ready(read);
            }
            // Nothing to read: the wait may be long, so free the buffers.
            // The outbox is empty here: it is flushed before reading.
            lines.release_if_empty();
            *outbox = BytesMut::new();
            Poll::Pending
        });
        let received = tokio::select! {
            biased;
            _ = stop.changed() => return Err(End::ShuttingDown),
            timeout = idle_expiry(idle_timer) => return Err(End::Idle(timeout)),
            received = read => received,
            () = async { lf_notice.unwrap().await }, if lf_notice.is_some() => {
                self.queue_line(&[protocol::LINES_END_WITH_CRLF.as_bytes()]);
                return Ok(());
            }
        };
        match received {
            Ok(0) => Err(End::ClientClosed),
            Ok(count) => {
                self.stats.bytes_in += count as u64;
                self.check_not_tls(count)
            }
            Err(error) => Err(End::Failed(error)),
        }
    }

    /// Whether the client is owed the bare-LF notice once it goes quiet:
    /// it has never sent the delimiter (no line answered), its last byte is
    /// LF, and nothing has been sent to it yet (so it is told once).
    fn owes_lf_notice(&self) -> bool {
        self.stats.lines == 0
            && self.stats.bytes_out == 0
            && self.config.format.line_end() != b"\n"
            && self.lines.buffered().last() == Some(&b'\n')
    }

    /// After a read of `count` bytes: a server without TLS whose client's
    /// first bytes are a TLS handshake record (`16 03 0x`, a ClientHello)
    /// ends the connection at once, rather than waiting for a line that
    /// never comes while the client waits for a handshake.
    pub(crate) fn check_not_tls(&self, count: usize) -> Result<(), End> {
        let first_read = self.stats.bytes_in == count as u64;
        if first_read && starts_a_tls_handshake(self.lines.buffered()) && self.config.tls.is_none()
        {
            Err(End::TlsClient)
        } else {
            Ok(())
        }
    }
}
