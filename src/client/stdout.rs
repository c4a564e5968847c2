//! Printing replies on a thread of their own: cutting them into lines and
//! writing them to stdout there leaves the task that moves bytes on the
//! socket free to keep both directions going.

use std::io::{self, Write};
use std::sync::Arc;
use std::thread;

use anyhow::{Context, anyhow, bail};
use bytes::BytesMut;
use tokio::sync::mpsc;

use crate::framing::{LineFormat, LineSplitter};

/// Chunks of reply bytes waiting for the thread. Bounds the memory used
/// when stdout is slower than the server: the socket is then not read.
const QUEUE_DEPTH: usize = 4;

/// The thread that prints replies, and the way to hand it bytes.
pub(super) struct Printer {
    /// Reply bytes as received, in order. Closed by the thread when it
    /// stops early: stdout was closed, or a reply line was too long.
    pub(super) replies: mpsc::Sender<BytesMut>,
    thread: thread::JoinHandle<anyhow::Result<()>>,
}

impl Printer {
    /// Starts a thread that cuts the bytes it is handed into lines by
    /// `format` and prints each line with `\n` to `output`, writing all the
    /// lines of a chunk at once, as soon as the chunk arrives.
    pub(super) fn spawn(
        output: impl Write + Send + 'static,
        format: Arc<LineFormat>,
        server: String,
    ) -> anyhow::Result<Printer> {
        let (replies, received) = mpsc::channel(QUEUE_DEPTH);
        let thread = thread::Builder::new()
            .name("stdout".into())
            .spawn(move || print_replies(output, format, &server, received))
            .context("starting the stdout thread")?;
        Ok(Printer { replies, thread })
    }

    /// Waits until everything handed over is printed (the end of the
    /// replies is the closing of `replies`). A closed stdout is not an
    /// error: it ends the client quietly.
    pub(super) fn finish(self) -> anyhow::Result<()> {
        drop(self.replies);
        self.thread
            .join()
            .unwrap_or_else(|_| Err(anyhow!("the stdout thread failed")))
    }
}

fn print_replies(
    mut output: impl Write,
    format: Arc<LineFormat>,
    server: &str,
    mut received: mpsc::Receiver<BytesMut>,
) -> anyhow::Result<()> {
    let mut lines = LineSplitter::new(format);
    let mut printed = Vec::new();
    while let Some(chunk) = received.blocking_recv() {
        lines.append(chunk);
        let complete = loop {
            match lines.next_line() {
                Ok(Some(line)) => {
                    printed.extend_from_slice(line);
                    printed.push(b'\n');
                }
                Ok(None) => break Ok(()),
                Err(too_long) => break Err(too_long),
            }
        };
        // The lines before a line that is too long are still printed.
        if !write_out(&mut output, &mut printed)? {
            return Ok(());
        }
        if let Err(too_long) = complete {
            bail!("reply from {server}: {too_long}");
        }
    }
    // The server has closed: a last line it did not end is still its data.
    let rest = lines.buffered();
    if !rest.is_empty() {
        printed.extend_from_slice(rest);
        printed.push(b'\n');
        write_out(&mut output, &mut printed)?;
    }
    Ok(())
}

/// Writes and flushes `printed`, then empties it. Returns false if stdout
/// is closed (`chat-client | head -1`).
fn write_out(output: &mut impl Write, printed: &mut Vec<u8>) -> anyhow::Result<bool> {
    if printed.is_empty() {
        return Ok(true);
    }
    let written = output.write_all(printed).and_then(|()| output.flush());
    printed.clear();
    match written {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(error) => Err(error).context("writing to stdout"),
    }
}
