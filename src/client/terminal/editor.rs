//! The line editor's thread: readline keys and in-memory history from
//! rustyline; each line typed goes to the server as a stdin line would.
//! Ctrl-D on an empty line ends the input (a half-close, as at a pipe's
//! end); Ctrl-C clears a line, and on an empty one does what Ctrl-D does.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use rustyline::error::ReadlineError;
use rustyline::{
    Cmd, ConditionalEventHandler, Config, DefaultEditor, Event, EventContext, EventHandler,
    ExternalPrinter, KeyEvent, Movement, RepeatCount,
};
use tokio::sync::mpsc;

use crate::framing::LineFormat;
use crate::protocol::QUIT_LINE;

/// Lines typed and not yet sent: a person types slower than any socket.
const QUEUE_DEPTH: usize = 16;
/// Lines kept for Up and Down, in memory only.
const HISTORY: usize = 1000;

/// Starts the editor on a thread of its own; returns the lines typed, each
/// ready for the wire with `format`'s delimiter (the channel closes at the
/// end of input), and the printer that writes above the typed line.
/// `quit_sent` is set when the last line sent was `.`.
pub(in crate::client) fn spawn_editor(
    format: Arc<LineFormat>,
    quit_sent: Arc<AtomicBool>,
) -> anyhow::Result<(
    mpsc::Receiver<anyhow::Result<Bytes>>,
    impl ExternalPrinter + Send + 'static,
)> {
    let config = Config::builder()
        .max_history_size(HISTORY)
        .context("setting up the line editor")?
        .auto_add_history(true)
        .build();
    let mut editor = DefaultEditor::with_config(config).context("starting the line editor")?;
    editor.bind_sequence(
        KeyEvent::ctrl('C'),
        EventHandler::Conditional(Box::new(CtrlC)),
    );
    let printer = editor
        .create_external_printer()
        .context("starting the line editor")?;
    let (lines, receiver) = mpsc::channel(QUEUE_DEPTH);
    thread::Builder::new()
        .name("editor".into())
        .spawn(move || {
            edit(&mut editor, &format, &quit_sent, lines);
            // The input has ended, but replies may still come: the editor
            // goes on drawing them (one handed over as the input ended
            // included) above an empty line, until another Ctrl-D or the
            // terminal's end; what is typed now goes nowhere.
            while editor.readline("").is_ok() {}
        })
        .context("starting the editor thread")?;
    Ok((receiver, printer))
}

/// Sends the lines typed until the end of input; `lines` is dropped then,
/// which the exchange takes for it.
fn edit(
    editor: &mut DefaultEditor,
    format: &LineFormat,
    quit_sent: &AtomicBool,
    lines: mpsc::Sender<anyhow::Result<Bytes>>,
) {
    let delimiter = format.written_delimiter();
    loop {
        let line = match editor.readline("") {
            Ok(line) => line,
            // Ctrl-D on an empty line, or Ctrl-C on one (see `CtrlC`).
            Err(ReadlineError::Eof | ReadlineError::Interrupted) => return,
            Err(error) => {
                let _ = lines.blocking_send(Err(anyhow::anyhow!("reading the terminal: {error}")));
                return;
            }
        };
        if line.len() > format.max_line_bytes() {
            let error = anyhow::anyhow!("stdin: line exceeds {} bytes", format.max_line_bytes());
            let _ = lines.blocking_send(Err(error));
            return;
        }
        quit_sent.store(line.as_bytes() == QUIT_LINE, Ordering::Relaxed);
        let mut batch = BytesMut::with_capacity(line.len() + delimiter.len());
        batch.extend_from_slice(line.as_bytes());
        batch.extend_from_slice(delimiter);
        if lines.blocking_send(Ok(batch.freeze())).is_err() {
            return; // The client is exiting.
        }
    }
}

/// Ctrl-C: clears a line being typed; on an empty line, ends the input.
struct CtrlC;

impl ConditionalEventHandler for CtrlC {
    fn handle(&self, _: &Event, _: RepeatCount, _: bool, context: &EventContext) -> Option<Cmd> {
        if context.line().is_empty() {
            Some(Cmd::EndOfFile)
        } else {
            Some(Cmd::Kill(Movement::WholeLine))
        }
    }
}
