//! Closing a connection without losing a reply: send what is owed, shut
//! the sending side, then read and drop the client's input until it closes
//! too, for as long as it keeps taking its replies.

use std::io;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bytes::Buf;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::{Connection, End};

/// How often a closing connection looks at how much of its output the
/// client has yet to acknowledge.
const CLOSE_PROGRESS_CHECK: Duration = Duration::from_millis(50);
/// Room for the input read and thrown away while closing.
const DISCARD_CHUNK: usize = 16 * 1024;

/// What happened while closing.
enum Event {
    /// Bytes of the outbox went out.
    Sent(io::Result<usize>),
    /// The sending side is shut (with TLS, after close_notify).
    Shut(io::Result<()>),
    /// Input was read and dropped; `Ok(0)` is its end.
    Discarded(io::Result<usize>),
    /// Time to look at the client's progress.
    Check,
}

impl Connection {
    /// Sends the replies owed, shuts the sending side (with TLS, sends
    /// close_notify first), and waits for the client to close its side
    /// too, reading and dropping its input meanwhile: closing a socket with
    /// unread input makes the kernel send a reset, which destroys the
    /// replies it has not delivered yet. Gives up once the client has taken
    /// no reply for the configured stall ([`crate::server::CLOSE_STALL`] unless a test
    /// shortens it). At shutdown it does not wait for the
    /// client's close once the client has acknowledged everything, and the
    /// server's grace period ends the wait in any case.
    /// `stall`, when given, replaces the configured stall (a refusal's is
    /// short).
    pub(crate) async fn close(&mut self, end: &End, stall: Option<Duration>) {
        if matches!(end, End::Failed(_) | End::NotReading(_) | End::TlsClient) {
            return;
        }
        let Self {
            stream,
            outbox,
            stats,
            stop,
            config,
            ..
        } = self;
        let stall = stall.unwrap_or(config.close_stall);
        let mut input_open = !matches!(end, End::ClientClosed);
        let mut output_open = true;
        let mut sink = Vec::new();
        let mut check = tokio::time::interval(CLOSE_PROGRESS_CHECK);
        let mut unacknowledged = usize::MAX;
        let mut last_progress = Instant::now();
        while input_open || output_open {
            // Polled by hand: sending and reading both use the one stream.
            let event = std::future::poll_fn(|context| {
                if output_open {
                    let stream = Pin::new(&mut *stream);
                    if outbox.is_empty() {
                        if let Poll::Ready(shut) = stream.poll_shutdown(context) {
                            return Poll::Ready(Event::Shut(shut));
                        }
                    } else if let Poll::Ready(sent) = stream.poll_write(context, outbox.chunk()) {
                        return Poll::Ready(Event::Sent(sent));
                    }
                }
                if input_open {
                    if sink.is_empty() {
                        sink.resize(DISCARD_CHUNK, 0);
                    }
                    let mut buffer = ReadBuf::new(&mut sink);
                    if let Poll::Ready(read) =
                        Pin::new(&mut *stream).poll_read(context, &mut buffer)
                    {
                        return Poll::Ready(Event::Discarded(read.map(|()| buffer.filled().len())));
                    }
                }
                check.poll_tick(context).map(|_| Event::Check)
            })
            .await;
            match event {
                Event::Sent(Ok(count @ 1..)) => {
                    outbox.advance(count);
                    stats.bytes_out += count as u64;
                    stats.writes += 1;
                    last_progress = Instant::now();
                }
                Event::Sent(_) | Event::Shut(Err(_)) => return,
                // Nothing unread once input is closed too: the kernel
                // delivers the rest, then the FIN.
                Event::Shut(Ok(())) => output_open = false,
                Event::Discarded(Ok(0) | Err(_)) => input_open = false,
                Event::Discarded(Ok(count)) => stats.bytes_in += count as u64,
                Event::Check => {
                    let now = stream.unacknowledged_bytes().unwrap_or(0);
                    if now < unacknowledged {
                        last_progress = Instant::now();
                    }
                    unacknowledged = now;
                    let delivered = !output_open && unacknowledged == 0;
                    let shutting_down = !matches!(stop.has_changed(), Ok(false));
                    if last_progress.elapsed() >= stall || (delivered && shutting_down) {
                        return;
                    }
                }
            }
        }
    }
}
