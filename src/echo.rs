//! The echo policy: every line is answered with `You sent: LINE`, and `.`
//! ends the connection. The transport it answers through is
//! `server::connection`, and the session that hands it each connection
//! `server::session`.

use std::ops::ControlFlow;

use crate::protocol::{QUIT_LINE, REPLY_PREFIX};
use crate::server::connection::{Connection, End};
use crate::server::session::{Mode, Session};

/// Echo mode, as a session: it holds nothing.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Echo;

impl Session for Echo {
    const MODE: Mode = Mode::Echo;

    type Guest = ();

    fn arrive(&self) {}

    fn name(_: &()) -> Option<&str> {
        None
    }

    fn run(&self, _: &mut (), connection: &mut Connection) -> impl Future<Output = End> + Send {
        answer_lines(connection)
    }
}

/// Answers lines until the connection has to end, and says why. Replies
/// owed at that point are still in the outbox, for the close.
async fn answer_lines(connection: &mut Connection) -> End {
    loop {
        let all_answered = match answer_buffered(connection) {
            Ok(all_answered) => all_answered,
            Err(end) => return end,
        };
        if let Err(end) = connection.flush().await {
            return end;
        }
        if all_answered && let Err(end) = connection.receive().await {
            return end;
        }
    }
}

/// Answers the complete lines already received, into the outbox. Stops
/// early when the outbox is full; returns whether every complete line is
/// answered. This is the per-line hot path: no I/O, no allocation but the
/// outbox's growth, nothing looked up again for each line.
fn answer_buffered(connection: &mut Connection) -> Result<bool, End> {
    connection.prepare_outbox();
    let Connection {
        lines,
        outbox,
        config,
        ..
    } = connection;
    let delimiter = config.format.written_delimiter();
    // Filled as a local, so the loop keeps its length in a register.
    let mut replies = std::mem::take(outbox);
    let mut answered = 0;
    // Breaks with the end of the connection, or with none when the outbox
    // is full.
    let stopped = lines.for_each_line(|received| {
        if received.line() == QUIT_LINE {
            return ControlFlow::Break(Some(End::Quit));
        }
        replies.extend_from_slice(REPLY_PREFIX);
        match received.with_written_delimiter() {
            Some(line_and_delimiter) => replies.extend_from_slice(line_and_delimiter),
            None => {
                replies.extend_from_slice(received.line());
                replies.extend_from_slice(delimiter);
            }
        }
        answered += 1;
        if Connection::outbox_has_room(&replies) {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(None)
        }
    });
    *outbox = replies;
    connection.count_lines(answered);
    match stopped {
        Ok(ControlFlow::Continue(())) => Ok(true),
        Ok(ControlFlow::Break(None)) => Ok(false),
        Ok(ControlFlow::Break(Some(end))) => Err(end),
        Err(too_long) => Err(End::LineTooLong(too_long)),
    }
}
