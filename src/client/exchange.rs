//! One connection's two directions at once: stdin's lines to the server,
//! the server's bytes to the printer, over plain TCP or TLS alike.

use std::future::Future;
use std::io;
use std::task::Poll;

use anyhow::anyhow;
use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// The most bytes read from the socket before they are handed to the
/// printer; all that is available, up to this, goes in one chunk. Large,
/// so a stream of replies costs few reads and few hand-overs.
pub const READ_CHUNK: usize = 256 * 1024;

/// Both directions of one connection: stdin's lines to the server, its
/// replies to the printer.
pub(super) struct Exchange<'a> {
    /// Batches of stdin lines, ready to send; ends at stdin's end.
    pub(super) lines: mpsc::Receiver<anyhow::Result<Bytes>>,
    pub(super) printer: &'a mpsc::Sender<BytesMut>,
    pub(super) server: &'a str,
}

impl Exchange<'_> {
    /// Moves bytes: stdin batches to the server, and the server's bytes to
    /// the printer, both at once. Ends when the server closes the
    /// connection, or the printer stops (stdout closed, or a reply too
    /// long: the printer says which). When stdin ends, shuts the sending
    /// side (with TLS, sends close_notify) so the server knows, and goes
    /// on. An error, on the socket or on stdin, is returned only once every
    /// byte received before it is handed to the printer; after a stdin
    /// error the sending side is shut and the replies still come.
    pub(super) async fn run(
        self,
        mut from_server: impl AsyncRead + Unpin,
        mut to_server: impl AsyncWrite + Unpin,
    ) -> anyhow::Result<()> {
        let Self {
            mut lines,
            printer,
            server,
        } = self;
        // Received and not yet handed to the printer.
        let mut received = BytesMut::new();
        let mut state = State::default();
        while state.connected() || !received.is_empty() {
            let (connected, sending, step) = (state.connected(), state.sending(), state.step());
            tokio::select! {
                // Only once the last bytes are handed over: the printer sets the pace.
                ended = read_available(&mut from_server, &mut received), if received.is_empty() && connected => {
                    state.on_read(ended, server);
                }
                permit = printer.reserve(), if !received.is_empty() => match permit {
                    Ok(permit) => permit.send(received.split()),
                    Err(_) => return Ok(()),
                },
                () = printer.closed() => return Ok(()),
                sent = send(&mut to_server, &state.unsent, step), if sending && step.is_some() => {
                    state.on_sent(sent, step, server);
                }
                batch = lines.recv(), if !state.stdin_ended && state.unsent.is_empty() && sending => {
                    state.on_stdin(batch);
                }
            }
        }
        state.outcome()
    }
}

/// Where an exchange stands: what is left to send, and how each side has
/// ended so far.
#[derive(Default)]
struct State {
    server_closed: bool,
    /// A failure to read ends the connection. A failure to send only ends
    /// sending: reading goes on, and usually tells the cause.
    failed: Option<anyhow::Error>,
    send_failed: Option<anyhow::Error>,
    /// A batch of stdin lines, or what of it is not written yet.
    unsent: Bytes,
    /// With TLS, what is written may wait in records until flushed.
    unflushed: bool,
    /// stdin has ended, and the sending side is not shut yet.
    closing: bool,
    stdin_ended: bool,
    stdin_error: Option<anyhow::Error>,
}

impl State {
    fn connected(&self) -> bool {
        !self.server_closed && self.failed.is_none()
    }

    fn sending(&self) -> bool {
        self.connected() && self.send_failed.is_none()
    }

    /// What the sending side does next, if anything.
    fn step(&self) -> Option<Step> {
        if !self.unsent.is_empty() {
            Some(Step::Write)
        } else if self.closing {
            Some(Step::Shut)
        } else if self.unflushed {
            Some(Step::Flush)
        } else {
            None
        }
    }

    fn on_read(&mut self, ended: Option<io::Result<()>>, server: &str) {
        match ended {
            Some(Ok(())) => self.server_closed = true,
            Some(Err(error)) => {
                self.failed = Some(read_failure(error).context(format!("reading from {server}")));
            }
            None => {}
        }
    }

    fn on_sent(&mut self, sent: io::Result<Sent>, step: Option<Step>, server: &str) {
        match sent {
            Ok(Sent::Written(count)) => {
                self.unsent.advance(count);
                self.unflushed = true;
            }
            Ok(Sent::Flushed) => self.unflushed = false,
            Ok(Sent::Shut) => self.closing = false,
            Err(error) => {
                self.closing = false;
                let what = match step {
                    Some(Step::Shut) => "closing the sending side to",
                    _ => "sending to",
                };
                self.send_failed = Some(anyhow!(error).context(format!("{what} {server}")));
            }
        }
    }

    fn on_stdin(&mut self, batch: Option<anyhow::Result<Bytes>>) {
        match batch {
            Some(Ok(batch)) => self.unsent = batch,
            end => {
                self.stdin_ended = true;
                self.closing = true;
                self.stdin_error = end.and_then(Result::err);
            }
        }
    }

    /// The first error, on the socket, in sending, or on stdin.
    fn outcome(self) -> anyhow::Result<()> {
        match self.failed.or(self.send_failed).or(self.stdin_error) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

/// Why reading failed, in words. rustls calls a TLS connection closed
/// without close_notify an unexpected end, with a link to its manual.
fn read_failure(error: io::Error) -> anyhow::Error {
    if error.kind() == io::ErrorKind::UnexpectedEof {
        anyhow!("the server closed the connection without TLS close_notify: replies may be missing")
    } else {
        error.into()
    }
}

/// What the sending side does next.
#[derive(Clone, Copy)]
enum Step {
    /// Write what stdin gave and is not sent yet.
    Write,
    /// Push out what was written (with TLS, records may wait).
    Flush,
    /// Shut the sending side (with TLS, after close_notify): stdin ended.
    Shut,
}

/// What a [`Step`] did.
enum Sent {
    Written(usize),
    Flushed,
    Shut,
}

/// Takes `step`, if any (`None` never completes).
async fn send(
    to_server: &mut (impl AsyncWrite + Unpin),
    unsent: &[u8],
    step: Option<Step>,
) -> io::Result<Sent> {
    match step {
        Some(Step::Write) => to_server.write(unsent).await.map(Sent::Written),
        Some(Step::Flush) => to_server.flush().await.map(|()| Sent::Flushed),
        Some(Step::Shut) => to_server.shutdown().await.map(|()| Sent::Shut),
        None => std::future::pending().await,
    }
}

/// Waits for what the server sends, then takes all there is without
/// waiting more, up to [`READ_CHUNK`] bytes. Returns how the connection
/// ended, if it has: closed by the server, or failed. What was read before
/// is in `received` either way. Holds nothing between polls, so it may be
/// dropped at any time.
fn read_available(
    from_server: &mut (impl AsyncRead + Unpin),
    received: &mut BytesMut,
) -> impl Future<Output = Option<io::Result<()>>> {
    std::future::poll_fn(move |context| {
        while received.len() < READ_CHUNK {
            received.reserve(READ_CHUNK - received.len());
            let read = std::pin::pin!(from_server.read_buf(received)).poll(context);
            match read {
                Poll::Ready(Ok(0)) => return Poll::Ready(Some(Ok(()))),
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(error)) => return Poll::Ready(Some(Err(error))),
                Poll::Pending if received.is_empty() => return Poll::Pending,
                Poll::Pending => break,
            }
        }
        Poll::Ready(None)
    })
}
