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

use std::io::{self, IoSlice};
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use tokio::net::TcpStream;
use tokio_rustls::rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use tokio_rustls::rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, UnbufferedStatus,
};
use tokio_rustls::rustls::{self, ProtocolVersion, ServerConfig};

use crate::framing::LineSplitter;

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

/// Where decrypted plaintext goes.
enum Sink<'a> {
    /// Into the line buffer, reserving room for `spare` bytes first.
    Lines(&'a mut LineSplitter, usize),
    Early,
}

/// What to encrypt while the records are processed.
enum Outgoing<'a> {
    Nothing,
    Data(&'a [u8]),
    CloseNotify,
}

/// Where processing stopped.
#[derive(PartialEq)]
enum Settled {
    /// More bytes from the socket are needed (or may be).
    Open,
    /// Both close_notify alerts are through.
    Closed,
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

    /// Encrypts as much of `slices` as there is room for now and sends
    /// what the socket takes, without waiting; `WouldBlock` if there is no
    /// room (see [`TlsSession::poll_send`]).
    pub(crate) fn try_write_vectored(&mut self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        match self.try_send() {
            Err(error) if error.kind() != io::ErrorKind::WouldBlock => return Err(error),
            _ => {}
        }
        let room = UNSENT_LIMIT.saturating_sub(self.filled - self.sent);
        if room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut taken = 0;
        let mut gather = std::mem::take(&mut self.gather);
        for slice in slices {
            let slice = &slice[..slice.len().min(room - taken)];
            if slice.len() >= GATHER_BELOW && gather.is_empty() {
                self.encrypt(slice)?;
            } else {
                let mut rest = slice;
                while !rest.is_empty() {
                    let part = rest.len().min(RECORD - gather.len());
                    gather.extend_from_slice(&rest[..part]);
                    rest = &rest[part..];
                    if gather.len() == RECORD {
                        self.encrypt(&gather)?;
                        gather.clear();
                    }
                }
            }
            taken += slice.len();
            if taken == room {
                break;
            }
        }
        if !gather.is_empty() {
            self.encrypt(&gather)?;
            gather.clear();
        }
        self.gather = gather;
        match self.try_send() {
            Err(error) if error.kind() != io::ErrorKind::WouldBlock => Err(error),
            _ => Ok(taken),
        }
    }

    fn encrypt(&mut self, plaintext: &[u8]) -> io::Result<()> {
        match self.process(Sink::Early, Outgoing::Data(plaintext)) {
            Ok(Settled::Open) => Ok(()),
            Ok(Settled::Closed) => Err(io::ErrorKind::BrokenPipe.into()),
            Err(error) => Err(invalid(error)),
        }
    }

    /// Whether encrypted records wait for the socket.
    pub(crate) fn has_unsent(&self) -> bool {
        self.sent < self.filled
    }

    /// Sends the records waiting; ready once the socket has them all.
    pub(crate) fn poll_send(&mut self, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match self.try_send() {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.tcp.poll_write_ready(context))?;
                }
                sent => return Poll::Ready(sent),
            }
        }
    }

    /// Sends what the socket takes of the records waiting: `Ok` once all
    /// are sent, `WouldBlock` if some are left.
    fn try_send(&mut self) -> io::Result<()> {
        while self.sent < self.filled {
            match self.tcp.try_write(&self.outgoing[self.sent..self.filled]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(count) => self.sent += count,
                Err(error) => return Err(error),
            }
        }
        (self.filled, self.sent) = (0, 0);
        Ok(())
    }

    /// Sends close_notify (once), then shuts the socket's sending side.
    pub(crate) fn poll_shutdown(&mut self, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.close_notify_queued {
            self.close_notify_queued = true;
            self.process(Sink::Early, Outgoing::CloseNotify)
                .map_err(invalid)?;
        }
        ready!(self.poll_send(context))?;
        tokio::io::AsyncWrite::poll_shutdown(std::pin::Pin::new(&mut self.tcp), context)
    }

    /// Runs rustls over the records received until it needs more bytes
    /// (or is closed), putting plaintext into `sink`, the records it makes
    /// into `outgoing`, and encrypting `write` when it may.
    fn process(
        &mut self,
        mut sink: Sink<'_>,
        write: Outgoing<'_>,
    ) -> Result<Settled, rustls::Error> {
        let mut write = Some(write);
        let Self {
            tls,
            incoming,
            processed,
            outgoing,
            filled,
            early,
            peer_closed,
            ..
        } = self;
        loop {
            let UnbufferedStatus { mut discard, state } =
                tls.process_tls_records(&mut incoming[*processed..]);
            let step = state.and_then(|state| {
                let mut buffers = Buffers {
                    sink: &mut sink,
                    early,
                    outgoing,
                    filled,
                    discard: &mut discard,
                };
                step(state, &mut buffers, &mut write, peer_closed)
            });
            *processed += discard;
            match step {
                Ok(None) => {}
                Ok(Some(settled)) => return Ok(settled),
                Err(error) => {
                    queue_alert(tls, outgoing, filled);
                    return Err(error);
                }
            }
        }
    }
}

/// What one step of processing writes into.
struct Buffers<'a, 'b> {
    sink: &'a mut Sink<'b>,
    early: &'a mut BytesMut,
    outgoing: &'a mut Vec<u8>,
    filled: &'a mut usize,
    /// Bytes of `incoming` done with.
    discard: &'a mut usize,
}

/// Handles one state rustls reached; `Some` where processing stops.
fn step(
    state: ConnectionState<'_, '_, ServerConnectionData>,
    buffers: &mut Buffers<'_, '_>,
    write: &mut Option<Outgoing<'_>>,
    peer_closed: &mut bool,
) -> Result<Option<Settled>, rustls::Error> {
    let Buffers {
        sink,
        early,
        outgoing,
        filled,
        discard,
    } = buffers;
    match state {
        ConnectionState::ReadTraffic(mut traffic) => {
            while let Some(record) = traffic.next_record() {
                let record = record?;
                **discard += record.discard;
                match sink {
                    Sink::Lines(lines, spare) => {
                        lines
                            .buffer_for_read(*spare)
                            .extend_from_slice(record.payload);
                        // Room for one read is enough for its records.
                        *spare = 0;
                    }
                    Sink::Early => early.extend_from_slice(record.payload),
                }
            }
            Ok(None)
        }
        ConnectionState::EncodeTlsData(mut encode) => {
            encode_into(outgoing, filled, |room| encode.encode(room))?;
            Ok(None)
        }
        // The records are sent from `outgoing`, in order.
        ConnectionState::TransmitTlsData(transmit) => {
            transmit.done();
            Ok(None)
        }
        ConnectionState::BlockedHandshake => Ok(Some(Settled::Open)),
        ConnectionState::WriteTraffic(mut traffic) => {
            match write.take() {
                Some(Outgoing::Data(plaintext)) => {
                    encrypt_into(outgoing, filled, |room| traffic.encrypt(plaintext, room))?;
                }
                Some(Outgoing::CloseNotify) => {
                    encrypt_into(outgoing, filled, |room| traffic.queue_close_notify(room))?;
                }
                Some(Outgoing::Nothing) | None => {}
            }
            Ok(Some(Settled::Open))
        }
        ConnectionState::PeerClosed => {
            *peer_closed = true;
            Ok(None)
        }
        ConnectionState::Closed => Ok(Some(Settled::Closed)),
        // Early data is not enabled, and nothing else exists yet.
        _ => Err(rustls::Error::General("unexpected TLS state".into())),
    }
}

/// After an error: the alert rustls queued for the client goes into
/// `outgoing`, to be sent with what is left.
fn queue_alert(tls: &mut UnbufferedServerConnection, outgoing: &mut Vec<u8>, filled: &mut usize) {
    loop {
        match tls.process_tls_records(&mut []).state {
            Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                if encode_into(outgoing, filled, |room| encode.encode(room)).is_err() {
                    return;
                }
            }
            Ok(ConnectionState::TransmitTlsData(transmit)) => transmit.done(),
            _ => return,
        }
    }
}

/// Runs `encode` on the room after `filled`, making more room as asked.
fn encode_into(
    outgoing: &mut Vec<u8>,
    filled: &mut usize,
    mut encode: impl FnMut(&mut [u8]) -> Result<usize, EncodeError>,
) -> Result<(), rustls::Error> {
    loop {
        match encode(&mut outgoing[*filled..]) {
            Ok(count) => {
                *filled += count;
                return Ok(());
            }
            Err(EncodeError::InsufficientSize(need)) => {
                outgoing.resize(*filled + need.required_size, 0);
            }
            Err(error) => return Err(rustls::Error::General(error.to_string())),
        }
    }
}

/// [`encode_into`] for encryption.
fn encrypt_into(
    outgoing: &mut Vec<u8>,
    filled: &mut usize,
    mut encrypt: impl FnMut(&mut [u8]) -> Result<usize, EncryptError>,
) -> Result<(), rustls::Error> {
    loop {
        match encrypt(&mut outgoing[*filled..]) {
            Ok(count) => {
                *filled += count;
                return Ok(());
            }
            Err(EncryptError::InsufficientSize(need)) => {
                outgoing.resize(*filled + need.required_size, 0);
            }
            Err(error) => return Err(rustls::Error::General(error.to_string())),
        }
    }
}

/// A TLS error as an I/O error, as `tokio-rustls` gives it.
fn invalid(error: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}
