//! Printing replies on a thread of their own: cutting them into lines and
//! writing them to stdout there leaves the task that moves bytes on the
//! socket free to keep both directions going.

use std::convert::Infallible;
use std::io::{self, Write};
use std::ops::ControlFlow;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::thread;

use anyhow::{Context, anyhow, bail};
use bytes::BytesMut;
use tokio::sync::mpsc;

use super::blocking_io;
use crate::framing::{LineFormat, LineSplitter};
use crate::protocol::ERROR_PREFIX;

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
        output: impl Write + AsFd + Send + 'static,
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
    /// error: it ends the client quietly. When the server's last line was
    /// an error line, that is the error.
    pub(super) fn finish(self) -> anyhow::Result<()> {
        drop(self.replies);
        self.thread
            .join()
            .unwrap_or_else(|_| Err(anyhow!("the stdout thread failed")))
    }
}

fn print_replies(
    mut output: impl Write + AsFd,
    format: Arc<LineFormat>,
    server: &str,
    mut received: mpsc::Receiver<BytesMut>,
) -> anyhow::Result<()> {
    let mut lines = LineSplitter::new(format);
    let mut printed = Vec::new();
    // The server's last line, kept only if it is an error line.
    let mut last_error_line = None;
    while let Some(chunk) = received.blocking_recv() {
        lines.append(chunk);
        let complete = lines.for_each_line(|received| {
            printed.extend_from_slice(received.line());
            printed.push(b'\n');
            ControlFlow::<Infallible>::Continue(())
        });
        note_error_line(&printed, &mut last_error_line);
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
        note_error_line(&printed, &mut last_error_line);
        write_out(&mut output, &mut printed)?;
    }
    match last_error_line {
        Some(line) => bail!(
            "server closed the connection: {}",
            String::from_utf8_lossy(&line)
        ),
        None => Ok(()),
    }
}

/// Keeps in `last_error_line` the last of the `printed` lines (each ended
/// with `\n`) if it is an error line; forgets it if another line follows.
pub(super) fn note_error_line(printed: &[u8], last_error_line: &mut Option<Vec<u8>>) {
    let Some(lines) = printed.strip_suffix(b"\n") else {
        return;
    };
    let last = memchr::memrchr(b'\n', lines).map_or(lines, |end| &lines[end + 1..]);
    *last_error_line = last.starts_with(ERROR_PREFIX).then(|| last.to_vec());
}

/// Writes and flushes `printed`, then empties it. Returns false if stdout
/// is closed (`chat-client | head -1`).
fn write_out(output: &mut (impl Write + AsFd), printed: &mut Vec<u8>) -> anyhow::Result<bool> {
    if printed.is_empty() {
        return Ok(true);
    }
    let written = blocking_io::write_all(output, printed).and_then(|()| output.flush());
    printed.clear();
    match written {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(error) => Err(error).context("writing to stdout"),
    }
}
