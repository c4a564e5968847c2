//! TLS over a connection's socket, on rustls's unbuffered API: the
//! connection owns the buffers records are read into and written from, so
//! it can free them while it waits, as a plain connection frees its read
//! buffer. (rustls's buffered `ServerConnection`, which `tokio-rustls`
//! wraps, keeps a 4 KiB receive buffer for as long as the connection
//! lives: more than half of what an idle TLS connection cost.)
//!
//! Records are decrypted straight into the line buffer; replies are
//! encrypted into one buffer of records and sent from it, so "written" is
//! not "sent" ([`TlsSession::has_unsent`], [`TlsSession::poll_send`]).

mod records;
mod send;

use std::io;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use tokio::net::TcpStream;
use tokio_rustls::rustls::server::UnbufferedServerConnection;
use tokio_rustls::rustls::{self, ProtocolVersion, ServerConfig};

use crate::framing::LineSplitter;
use records::{Outgoing, Settled, Sink};

/// The most plaintext a TLS record carries.
const RECORD: usize = 16 * 1024;
/// Encrypted bytes the socket has not taken, past which writing waits
/// (what rustls's buffered API allows by default).
const UNSENT_LIMIT: usize = 64 * 1024;
/// Bytes read from the socket at once when no caller says how many: in
/// the handshake, and by [`tokio::io::AsyncRead`] (closing).
const READ_SIZE: usize = RECORD + 512;
/// Slices shorter than this are gathered into one record's worth before
/// they are encrypted: each encryption makes at least one record.
const GATHER_BELOW: usize = 4 * 1024;

pub(crate) struct TlsSession {
    tcp: TcpStream,
    tls: UnbufferedServerConnection,
    /// Bytes read from the socket; those before `processed` are done with.
    incoming: Vec<u8>,
    processed: usize,
    /// Encrypted records: `outgoing[sent..filled]` are yet to be sent. The
    /// vector's length is the room made (and zeroed) so far.
    outgoing: Vec<u8>,
    filled: usize,
    sent: usize,
    /// Plaintext decrypted before anyone asked for it (with the
    /// handshake's last flight, or while writing): handed out first.
    early: BytesMut,
    /// Short slices gathered for one encryption.
    gather: Vec<u8>,
    /// The client's close_notify has arrived.
    peer_closed: bool,
    close_notify_queued: bool,
}

impl TlsSession {
    /// Makes the handshake on `tcp`. Fails with rustls's error inside an
    /// `InvalidData` error (after the alert that says so is sent), or
    /// `UnexpectedEof` if the client closes first.
    pub(crate) async fn accept(tcp: TcpStream, config: Arc<ServerConfig>) -> io::Result<Self> {
        let tls = UnbufferedServerConnection::new(config).map_err(invalid)?;
        let mut session = TlsSession {
            tcp,
            tls,
            incoming: Vec::new(),
            processed: 0,
            outgoing: Vec::new(),
            filled: 0,
            sent: 0,
            early: BytesMut::new(),
            gather: Vec::new(),
            peer_closed: false,
            close_notify_queued: false,
        };
        loop {
            let processed = session.process(Sink::Early, Outgoing::Nothing);
            let sent = std::future::poll_fn(|context| session.poll_send(context)).await;
            let settled = processed.map_err(invalid)?;
            sent?;
            if !session.tls.is_handshaking() {
                return Ok(session);
            }
            let read = match settled {
                Settled::Closed => 0,
                Settled::Open => {
                    std::future::poll_fn(|context| session.poll_fill(context, READ_SIZE)).await?
                }
            };
            if read == 0 || session.peer_closed {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    pub(crate) fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    pub(crate) fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.tls.protocol_version()
    }

    /// Decrypts what has arrived into `lines`, with room for at least
    /// `spare` bytes; pending when nothing has, holding no buffer then.
    /// `Ok(0)` is the end of input: the client's close_notify, or its
    /// socket closing.
    pub(crate) fn poll_read_into(
        &mut self,
        context: &mut Context<'_>,
        lines: &mut LineSplitter,
        spare: usize,
    ) -> Poll<io::Result<usize>> {
        if !self.early.is_empty() {
            let count = self.early.len();
            lines.extend_from_slice(&self.early);
            self.early = BytesMut::new();
            return Poll::Ready(Ok(count));
        }
        self.poll_received(context, Sink::Lines(lines, spare), spare)
    }

    /// Like [`tokio::io::AsyncRead::poll_read`].
    pub(crate) fn poll_read(
        &mut self,
        context: &mut Context<'_>,
        buffer: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.early.is_empty() {
            ready!(self.poll_received(context, Sink::Early, READ_SIZE))?;
        }
        let count = self.early.len().min(buffer.remaining());
        buffer.put_slice(&self.early[..count]);
        self.early.advance(count);
        Poll::Ready(Ok(()))
    }

    /// Processes the records received, reading from the socket until some
    /// plaintext comes (its length), or the input ends (`Ok(0)`).
    fn poll_received(
        &mut self,
        context: &mut Context<'_>,
        mut sink: Sink<'_>,
        read_size: usize,
    ) -> Poll<io::Result<usize>> {
        loop {
            let before = self.early.len();
            let (settled, received) = match &mut sink {
                Sink::Lines(lines, spare) => {
                    let before = lines.buffered().len();
                    let settled = self.process(Sink::Lines(lines, *spare), Outgoing::Nothing);
                    (settled, lines.buffered().len() - before)
                }
                Sink::Early => {
                    let settled = self.process(Sink::Early, Outgoing::Nothing);
                    (settled, self.early.len() - before)
                }
            };
            let settled = settled.map_err(invalid)?;
            // Records made while processing (a key update's answer) go
            // out without waiting for the next write.
            match self.try_send() {
                Err(error) if error.kind() != io::ErrorKind::WouldBlock => {
                    return Poll::Ready(Err(error));
                }
                _ => {}
            }
            if received > 0 {
                return Poll::Ready(Ok(received));
            }
            if self.peer_closed || settled == Settled::Closed {
                return Poll::Ready(Ok(0));
            }
            match self.poll_fill(context, read_size) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Ok(0)),
                Poll::Ready(Ok(_)) => continue,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => {
                    self.release();
                    return Poll::Pending;
                }
            }
        }
    }

    /// Reads from the socket into `incoming`, reserving room only once
    /// there is something to read. `Ok(0)` is the socket's end.
    fn poll_fill(&mut self, context: &mut Context<'_>, size: usize) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.tcp.poll_read_ready(context))?;
            if self.processed > 0 {
                self.incoming.drain(..self.processed);
                self.processed = 0;
            }
            self.incoming.reserve(size);
            match self.tcp.try_read_buf(&mut self.incoming) {
                // `WouldBlock` cleared the readiness: the next poll
                // registers for the next bytes.
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                read => return Poll::Ready(read),
            }
        }
    }

    /// Frees what the session holds that is empty, before a wait.
    fn release(&mut self) {
        if self.processed == self.incoming.len() {
            self.incoming = Vec::new();
            self.processed = 0;
        }
        if !self.has_unsent() {
            self.outgoing = Vec::new();
            (self.filled, self.sent) = (0, 0);
        }
        self.gather = Vec::new();
        if self.early.is_empty() {
            self.early = BytesMut::new();
        }
    }
}

/// A TLS error as an I/O error, as `tokio-rustls` gives it.
fn invalid(error: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}
