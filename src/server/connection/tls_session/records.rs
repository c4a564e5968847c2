//! rustls's unbuffered state machine, driven over a [`TlsSession`]'s
//! buffers: each state it reaches is handled in [`step`] until it needs
//! more bytes from the socket.

use bytes::BytesMut;
use tokio_rustls::rustls;
use tokio_rustls::rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use tokio_rustls::rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, UnbufferedStatus,
};

use super::TlsSession;
use crate::framing::LineSplitter;

/// Where decrypted plaintext goes.
pub(super) enum Sink<'a> {
    /// Into the line buffer, reserving room for `spare` bytes first.
    Lines(&'a mut LineSplitter, usize),
    Early,
}

/// What to encrypt while the records are processed.
pub(super) enum Outgoing<'a> {
    Nothing,
    Data(&'a [u8]),
    CloseNotify,
}

/// Where processing stopped.
#[derive(PartialEq)]
pub(super) enum Settled {
    /// More bytes from the socket are needed (or may be).
    Open,
    /// Both close_notify alerts are through.
    Closed,
}

impl TlsSession {
    /// Runs rustls over the records received until it needs more bytes
    /// (or is closed), putting plaintext into `sink`, the records it makes
    /// into `outgoing`, and encrypting `write` when it may.
    pub(super) fn process(
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
            write_into(outgoing, filled, |room| encode.encode(room))?;
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
                    write_into(outgoing, filled, |room| traffic.encrypt(plaintext, room))?;
                }
                Some(Outgoing::CloseNotify) => {
                    write_into(outgoing, filled, |room| traffic.queue_close_notify(room))?;
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
                if write_into(outgoing, filled, |room| encode.encode(room)).is_err() {
                    return;
                }
            }
            Ok(ConnectionState::TransmitTlsData(transmit)) => transmit.done(),
            _ => return,
        }
    }
}

/// What rustls asks for when the room it was given is too small.
trait NeedsRoom: std::fmt::Display {
    fn required_size(&self) -> Option<usize>;
}

impl NeedsRoom for EncodeError {
    fn required_size(&self) -> Option<usize> {
        match self {
            EncodeError::InsufficientSize(need) => Some(need.required_size),
            _ => None,
        }
    }
}

impl NeedsRoom for EncryptError {
    fn required_size(&self) -> Option<usize> {
        match self {
            EncryptError::InsufficientSize(need) => Some(need.required_size),
            _ => None,
        }
    }
}

/// Runs `write` (an encoding or an encryption) on the room after `filled`,
/// making more room as rustls asks.
fn write_into<E: NeedsRoom>(
    outgoing: &mut Vec<u8>,
    filled: &mut usize,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, E>,
) -> Result<(), rustls::Error> {
    loop {
        match write(&mut outgoing[*filled..]) {
            Ok(count) => {
                *filled += count;
                return Ok(());
            }
            Err(error) => match error.required_size() {
                Some(size) => outgoing.resize(*filled + size, 0),
                None => return Err(rustls::Error::General(error.to_string())),
            },
        }
    }
}
