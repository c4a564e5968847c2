//! Reading stdin on a thread of its own. A blocking read cannot be
//! cancelled, so it must never be something the client waits for on its way
//! out: the thread is left blocked, and the process exits past it.

use std::convert::Infallible;
use std::ops::ControlFlow;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use anyhow::{Context, anyhow};
use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use super::blocking_io;

/// Bytes asked of stdin per read.
pub const STDIN_READ_CHUNK: usize = 64 * 1024;
use crate::delimiter::Delimiter;
use crate::framing::{LineFormat, LineSplitter};
use crate::protocol::QUIT_LINE;

/// Batches waiting between the thread and the socket. Bounds the memory
/// used when stdin is faster than the server: the thread then blocks.
const QUEUE_DEPTH: usize = 4;

/// Starts a thread that reads `input`, cuts it into lines at `\n`, and sends
/// them in batches ready for the wire: each line, less its `\n` and a `\r`
/// before it, followed by `format`'s delimiter. The channel closes at the
/// end of input; a read error or a line over `format`'s limit is sent as
/// the last item, after the lines before it. `quit_sent` is set when the
/// last line read was `.`.
pub(super) fn spawn_reader(
    input: impl AsFd + Send + 'static,
    format: Arc<LineFormat>,
    quit_sent: Arc<AtomicBool>,
) -> anyhow::Result<mpsc::Receiver<anyhow::Result<Bytes>>> {
    let (batches, receiver) = mpsc::channel(QUEUE_DEPTH);
    thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            if let Err(error) = read_lines(input, &format, &quit_sent, &batches) {
                // Nobody may be listening any more; then there is no one to tell.
                let _ = batches.blocking_send(Err(error));
            }
        })
        .context("starting the stdin thread")?;
    Ok(receiver)
}

fn read_lines(
    input: impl AsFd,
    format: &LineFormat,
    quit_sent: &AtomicBool,
    batches: &mpsc::Sender<anyhow::Result<Bytes>>,
) -> anyhow::Result<()> {
    // A stdin line ends at `\n`, and a `\r` before it is dropped.
    let stdin_format = LineFormat::new(Delimiter::lenient(), format.max_line_bytes());
    let mut lines = LineSplitter::new(Arc::new(stdin_format));
    let delimiter = format.written_delimiter();
    // A stdin line that already ends with the wire's delimiter (CRLF) is
    // copied with it in one piece.
    let ends_as_sent = delimiter == lines.format().written_delimiter();
    loop {
        let buffer = lines.buffer_for_read(STDIN_READ_CHUNK);
        let count = blocking_io::read_appending(&input, buffer, STDIN_READ_CHUNK)
            .context("reading stdin")?;

        let mut batch = BytesMut::with_capacity(count + count / 4 + delimiter.len());
        let mut last_line = None;
        let complete = lines.for_each_line(|received| {
            let line = received.line();
            last_line = Some(batch.len()..batch.len() + line.len());
            match received.with_written_delimiter() {
                Some(line_and_delimiter) if ends_as_sent => {
                    batch.extend_from_slice(line_and_delimiter);
                }
                _ => {
                    batch.extend_from_slice(line);
                    batch.extend_from_slice(delimiter);
                }
            }
            ControlFlow::<Infallible>::Continue(())
        });
        let end_of_input = count == 0;
        if end_of_input && !lines.buffered().is_empty() {
            // A last line without `\n` is still a line.
            last_line = Some(batch.len()..batch.len() + lines.buffered().len());
            batch.extend_from_slice(lines.buffered());
            batch.extend_from_slice(delimiter);
        }
        if let Some(last_line) = last_line {
            quit_sent.store(&batch[last_line] == QUIT_LINE, Ordering::Relaxed);
        }
        // The lines before one that is too long are still sent.
        if !batch.is_empty() && batches.blocking_send(Ok(batch.freeze())).is_err() {
            return Ok(()); // The client is exiting.
        }
        complete.map_err(|too_long| anyhow!("stdin: {too_long}"))?;
        if end_of_input {
            return Ok(());
        }
    }
}
