//! The echo policy: every line is answered with `You sent: LINE`, and `.`
//! ends the connection. The transport it answers through is
//! [`super::connection`].

use std::sync::Arc;

use super::connection::{Connection, End};
use crate::protocol::{self, QUIT_LINE, REPLY_PREFIX};

/// Answers lines until the connection has to end, and says why. Replies
/// owed at that point are still in the outbox, for the close.
pub(super) async fn answer_lines(connection: &mut Connection) -> End {
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
/// outbox's growth.
fn answer_buffered(connection: &mut Connection) -> Result<bool, End> {
    connection.prepare_outbox();
    let format = Arc::clone(&connection.config.format);
    let delimiter = format.written_delimiter();
    let mut answered = 0;
    let result = loop {
        if !connection.outbox_has_room() {
            break Ok(false);
        }
        match connection.lines.next_received_line() {
            Ok(None) => break Ok(true),
            Ok(Some(received)) if received.line() == QUIT_LINE => break Err(End::Quit),
            Ok(Some(received)) => {
                let outbox = &mut connection.outbox;
                outbox.extend_from_slice(REPLY_PREFIX);
                match received.with_written_delimiter() {
                    Some(line_and_delimiter) => outbox.extend_from_slice(line_and_delimiter),
                    None => {
                        outbox.extend_from_slice(received.line());
                        outbox.extend_from_slice(delimiter);
                    }
                }
                answered += 1;
            }
            Err(too_long) => {
                let message = protocol::line_too_long(too_long.max_line_bytes);
                connection.queue_line(&[message.as_bytes()]);
                break Err(End::LineTooLong(too_long));
            }
        }
    };
    connection.count_lines(answered);
    result
}
