//! One connection's two directions at once: stdin's lines to the server,
//! the server's bytes to the printer, over plain TCP or TLS alike.

use std::future::Future;
use std::io;
use std::task::Poll;

use anyhow::anyhow;
use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::READ_CHUNK;

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
        let mut server_closed = false;
        // A failure to read ends the connection. A failure to send only
        // ends sending: reading goes on, and usually tells the cause.
        let mut failed: Option<anyhow::Error> = None;
        let mut send_failed: Option<anyhow::Error> = None;
        let mut unsent = Bytes::new();
        // With TLS, what is written may wait in records until flushed.
        let mut unflushed = false;
        let mut stdin_open = true;
        // stdin has ended and the sending side is not shut yet.
        let mut closing = false;
        let mut stdin_error = None;
        loop {
            let connected = !server_closed && failed.is_none();
            if !connected && received.is_empty() {
                break;
            }
            let sending = connected && send_failed.is_none();
            let step = if !unsent.is_empty() {
                Some(Step::Write)
            } else if closing {
                Some(Step::Shut)
            } else if unflushed {
                Some(Step::Flush)
            } else {
                None
            };
            tokio::select! {
                // Only once the last bytes are handed over: the printer sets the pace.
                ended = read_available(&mut from_server, &mut received), if received.is_empty() && connected => {
                    match ended {
                        Some(Ok(())) => server_closed = true,
                        Some(Err(error)) => failed = Some(read_failure(error).context(format!("reading from {server}"))),
                        None => {}
                    }
                }
                permit = printer.reserve(), if !received.is_empty() => match permit {
                    Ok(permit) => permit.send(received.split()),
                    Err(_) => return Ok(()),
                },
                () = printer.closed() => return Ok(()),
                sent = send(&mut to_server, &unsent, step), if sending && step.is_some() => match sent {
                    Ok(Sent::Written(count)) => {
                        unsent.advance(count);
                        unflushed = true;
                    }
                    Ok(Sent::Flushed) => unflushed = false,
                    Ok(Sent::Shut) => closing = false,
                    Err(error) => {
                        closing = false;
                        let what = match step {
                            Some(Step::Shut) => "closing the sending side to",
                            _ => "sending to",
                        };
                        send_failed = Some(anyhow!(error).context(format!("{what} {server}")));
                    }
                },
                batch = lines.recv(), if stdin_open && unsent.is_empty() && sending => match batch {
                    Some(Ok(batch)) => unsent = batch,
                    end => {
                        stdin_open = false;
                        closing = true;
                        stdin_error = end.and_then(Result::err);
                    }
                },
            }
        }
        match failed.or(send_failed).or(stdin_error) {
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
