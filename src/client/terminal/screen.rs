//! What arrives, printed above the typed line: cut into lines as on a
//! pipe, shown terminal-safe, coloured if asked, and handed to the editor
//! a batch at a time (one redraw of the typed line per batch). The editor
//! takes one batch at a time, so a screen slower than the server slows the
//! reading of the socket, as a slow pipe does.

use std::convert::Infallible;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::thread;

use anyhow::{Context, anyhow, bail};
use bytes::{Bytes, BytesMut};
use rustyline::ExternalPrinter;
use tokio::sync::mpsc;

use super::colour;
use crate::client::stdout::note_error_line;
use crate::escape::escape_into;
use crate::framing::{LineFormat, LineSplitter};

/// Chunks of reply bytes waiting for the thread, as on a pipe.
const QUEUE_DEPTH: usize = 4;

/// The thread that shows replies, and the way to hand it bytes.
pub(in crate::client) struct Screen {
    pub(in crate::client) replies: mpsc::Sender<BytesMut>,
    thread: thread::JoinHandle<anyhow::Result<()>>,
}

impl Screen {
    pub(in crate::client) fn spawn(
        printer: impl ExternalPrinter + Send + 'static,
        format: Arc<LineFormat>,
        server: String,
        coloured: bool,
    ) -> anyhow::Result<Screen> {
        let (replies, received) = mpsc::channel(QUEUE_DEPTH);
        let thread = thread::Builder::new()
            .name("screen".into())
            .spawn(move || show_replies(printer, format, &server, coloured, received))
            .context("starting the screen thread")?;
        Ok(Screen { replies, thread })
    }

    /// Waits until everything handed over is shown; the server's last
    /// line, if an error line, is the error (as on a pipe).
    pub(in crate::client) fn finish(self) -> anyhow::Result<()> {
        drop(self.replies);
        self.thread
            .join()
            .unwrap_or_else(|_| Err(anyhow!("the screen thread failed")))
    }
}

fn show_replies(
    mut printer: impl ExternalPrinter,
    format: Arc<LineFormat>,
    server: &str,
    coloured: bool,
    mut received: mpsc::Receiver<BytesMut>,
) -> anyhow::Result<()> {
    let mut lines = LineSplitter::new(format);
    // The lines as received, for the error-line rule, and as shown.
    let mut raw = Vec::new();
    let mut shown = String::new();
    let mut last_error_line = None;
    while let Some(chunk) = received.blocking_recv() {
        lines.append(chunk);
        let complete = lines.for_each_line(|received| {
            raw.extend_from_slice(received.line());
            raw.push(b'\n');
            show(received.line(), coloured, &mut shown);
            ControlFlow::<Infallible>::Continue(())
        });
        note_error_line(&raw, &mut last_error_line);
        raw.clear();
        if !shown.is_empty() {
            printer
                .print(std::mem::take(&mut shown))
                .map_err(|error| anyhow!("writing to the terminal: {error}"))?;
        }
        if let Err(too_long) = complete {
            bail!("reply from {server}: {too_long}");
        }
    }
    let rest = lines.buffered().to_vec();
    if !rest.is_empty() {
        raw.extend_from_slice(&rest);
        raw.push(b'\n');
        note_error_line(&raw, &mut last_error_line);
        show(&rest, coloured, &mut shown);
        let _ = printer.print(shown);
    }
    settle(&mut printer);
    match last_error_line {
        Some(line) => bail!(
            "server closed the connection: {}",
            String::from_utf8_lossy(&line)
        ),
        None => Ok(()),
    }
}

/// Returns once everything handed to the editor is on the screen, so the
/// client can restore the terminal and exit without losing a line. The
/// editor takes one message at a time, and takes the next only once it has
/// drawn the one before: two more messages, each a cursor-up and a line
/// end (drawing nothing, moving nothing), prove it. Once the editor has
/// ended (Ctrl-D), they go straight to the terminal, as harmless.
fn settle(printer: &mut impl ExternalPrinter) {
    for _ in 0..2 {
        if printer.print(UNSEEN.to_string()).is_err() {
            return;
        }
    }
}

/// Up one row, and back down.
const UNSEEN: &str = "\x1b[A\n";

/// Appends `line`, terminal-safe and maybe coloured, and a line end.
fn show(line: &[u8], coloured: bool, shown: &mut String) {
    let mut safe = BytesMut::with_capacity(line.len());
    escape_into(&mut safe, line, usize::MAX);
    let safe = Bytes::from(safe);
    // Escaping leaves only valid UTF-8.
    let safe = std::str::from_utf8(&safe).unwrap_or_default();
    if coloured {
        colour::paint(safe, shown);
    } else {
        shown.push_str(safe);
    }
    shown.push('\n');
}
