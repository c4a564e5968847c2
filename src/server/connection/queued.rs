//! The transport of a connection whose output comes from others as well as
//! from its own lines (chat): shared buffers written with one `writev`,
//! and a wait for whichever comes first of input, room to write, and
//! whatever else the policy waits for.

use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, IoSlice};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::time::Instant;

use super::{Connection, End, READ_CHUNK, starts_a_tls_handshake};

/// The most buffers one write call takes; each is a batch of lines.
const WRITE_SLICES: usize = 64;

/// Shared buffers to write, in order.
#[derive(Debug, Default)]
pub(crate) struct SendQueue {
    parts: VecDeque<Bytes>,
    /// The first part is partly written: it must be finished before
    /// anything else goes out, or a line would be cut in two.
    started: bool,
}

impl SendQueue {
    pub(crate) fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Where new parts are added at the back.
    pub(crate) fn parts(&mut self) -> &mut VecDeque<Bytes> {
        &mut self.parts
    }

    /// Drops everything not yet started, keeping a part already partly
    /// written so that what went out ends on a line's end.
    pub(crate) fn keep_only_started(&mut self) {
        let keep = usize::from(self.started);
        self.parts.truncate(keep);
    }

    /// Moves every part, in order, into `outbox`: a copy, made once when
    /// the connection closes.
    pub(crate) fn move_into(&mut self, outbox: &mut BytesMut) {
        for part in self.parts.drain(..) {
            outbox.extend_from_slice(&part);
        }
        self.started = false;
    }
}

/// What ended a [`Connection::wait`].
pub(crate) enum Wake<T> {
    /// Bytes arrived and are in [`Connection::lines`].
    Received,
    /// The socket can take more.
    Writable,
    /// The policy's own future completed.
    Other(T),
}

impl Connection {
    /// Writes as much of `queue` as the socket takes now, many parts per
    /// call; returns the bytes written. Never waits.
    pub(crate) fn write_queued(&mut self, queue: &mut SendQueue) -> Result<usize, End> {
        let mut total = 0;
        while !queue.parts.is_empty() {
            let mut slices = [IoSlice::new(&[]); WRITE_SLICES];
            let count = queue
                .parts
                .iter()
                .zip(&mut slices)
                .map(|(part, slice)| *slice = IoSlice::new(part))
                .count();
            let mut written = match self.stream.try_write_vectored(&slices[..count]) {
                Ok(0) => return Err(End::Failed(io::ErrorKind::WriteZero.into())),
                Ok(written) => written,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) => return Err(End::Failed(error)),
            };
            self.stats.bytes_out += written as u64;
            self.stats.writes += 1;
            total += written;
            while written > 0 {
                let Some(front) = queue.parts.front_mut() else {
                    break;
                };
                if written >= front.len() {
                    written -= front.len();
                    queue.parts.pop_front();
                    queue.started = false;
                    if queue.parts.is_empty() {
                        // All written: hold no room while waiting for more.
                        queue.parts = VecDeque::new();
                    }
                } else {
                    front.advance(written);
                    queue.started = true;
                    written = 0;
                }
            }
        }
        Ok(total)
    }

    /// Counts the connection as active now, for the idle timeout: a member
    /// read slowly (over its rate) is still sending.
    pub(crate) fn restart_idle_timer(&mut self) {
        if let Some(timer) = &mut self.idle_timer {
            timer.sleep.as_mut().reset(Instant::now() + timer.timeout);
        }
    }

    /// Waits for input (if `read`; it is then in [`Connection::lines`]),
    /// for room to write (if `write`), or for `other` to be ready,
    /// whichever comes first. Ends the connection on end of input, and
    /// when nothing has arrived for the idle timeout. A shutdown is the
    /// policy's to notice, through `other`.
    ///
    /// Everything is polled by hand in one future: readiness futures, a
    /// `Notify` or a `select!` would keep waiters and state inside every
    /// waiting member's task, which is most of an idle member's memory.
    pub(crate) fn wait<T>(
        &mut self,
        read: bool,
        write: bool,
        mut other: impl FnMut(&mut Context<'_>) -> Poll<T>,
    ) -> impl Future<Output = Result<Wake<T>, End>> {
        let tls_at_plain = self.config.tls.is_none();
        let Self {
            stream,
            lines,
            idle_timer,
            stats,
            ..
        } = self;
        std::future::poll_fn(move |context| {
            if let Some(timer) = idle_timer
                && timer.sleep.as_mut().poll(context).is_ready()
            {
                return Poll::Ready(Err(End::Idle(timer.timeout)));
            }
            if let Poll::Ready(value) = other(context) {
                return Poll::Ready(Ok(Wake::Other(value)));
            }
            // With TLS, records already made go out before anything else.
            if write || stream.has_unsent() {
                match stream.poll_writable(context) {
                    Poll::Ready(Ok(())) => return Poll::Ready(Ok(Wake::Writable)),
                    Poll::Ready(Err(error)) => return Poll::Ready(Err(End::Failed(error))),
                    Poll::Pending => {}
                }
            }
            // Always a large read: what one read brings is handed on as
            // one batch, so a read takes all there is. The buffer is freed
            // again below once the socket is empty.
            if read && let Poll::Ready(read) = stream.poll_read_into(context, lines, READ_CHUNK) {
                return Poll::Ready(match read {
                    Ok(0) => Err(End::ClientClosed),
                    Ok(count) => {
                        let first_read = stats.bytes_in == 0;
                        stats.bytes_in += count as u64;
                        if let Some(timer) = idle_timer {
                            timer.sleep.as_mut().reset(Instant::now() + timer.timeout);
                        }
                        if first_read && tls_at_plain && starts_a_tls_handshake(lines.buffered()) {
                            Err(End::TlsClient)
                        } else {
                            Ok(Wake::Received)
                        }
                    }
                    Err(error) => Err(End::Failed(error)),
                });
            }
            // The wait may be long: hold no read buffer meanwhile.
            lines.release_if_empty();
            Poll::Pending
        })
    }
}
