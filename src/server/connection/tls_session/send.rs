//! The sending side of a [`TlsSession`]: plaintext encrypted into records
//! as there is room, the records sent as the socket takes them, and the
//! close_notify alert.

use std::io::{self, IoSlice};
use std::task::{Context, Poll, ready};

use super::records::{Outgoing, Settled, Sink};
use super::{GATHER_BELOW, RECORD, TlsSession, UNSENT_LIMIT, invalid};

impl TlsSession {
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
    pub(super) fn try_send(&mut self) -> io::Result<()> {
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
}
