//! Cutting a byte stream into lines: the one place that knows where a line
//! ends and how long it may be. How a delimiter is written on the command
//! line is in [`crate::delimiter`].
//!
//! A [`LineSplitter`] owns the bytes received so far and remembers how far it
//! has already searched for the delimiter, so a long line arriving in many
//! small reads is scanned once in total, not once per read. Its batch form,
//! [`LineSplitter::for_each_line`], finds every line in the bytes received
//! with one pass over them, 64 bytes at a time.

use std::ops::ControlFlow;
use std::sync::Arc;

use bytes::{Buf, BytesMut};

mod cut;
mod format;
#[doc(hidden)] // Public for the framing bench, which races it against memchr_iter.
pub mod occurrences;
use cut::{Cut, Cutter};
pub use format::{LineFormat, LineTooLong, ReceivedLine};

/// Received bytes and the lines in them.
///
/// Bytes are appended through [`buffer_for_read`](Self::buffer_for_read);
/// lines come out of [`next_line`](Self::next_line) as slices of the buffer,
/// with no copy. The lines returned are dropped from the buffer all at once
/// before the next append, by advancing the buffer's start, never by moving
/// the bytes after them.
#[derive(Debug)]
pub struct LineSplitter {
    /// Received bytes not yet returned as lines. Holds no allocation while
    /// empty after [`release_if_empty`](Self::release_if_empty), so an idle
    /// connection costs no buffer.
    buffer: BytesMut,
    /// Bytes at the start of `buffer` already returned as lines, with their
    /// delimiters; dropped before the next append.
    consumed: usize,
    /// How many bytes after `consumed` are known not to begin a delimiter:
    /// the next search starts there instead of at the line's start.
    searched: usize,
    /// Set once a line was too long; the stream cannot be split any further.
    failed: bool,
    format: Arc<LineFormat>,
}

impl LineSplitter {
    /// An empty splitter. Allocates nothing until bytes arrive.
    pub fn new(format: Arc<LineFormat>) -> Self {
        Self {
            buffer: BytesMut::new(),
            consumed: 0,
            searched: 0,
            failed: false,
            format,
        }
    }

    /// How this splitter cuts lines.
    pub fn format(&self) -> &LineFormat {
        &self.format
    }

    /// The buffer to append received bytes to, with room for at least
    /// `spare` more. Append only: the bytes already there must not change,
    /// since the splitter remembers how far it has searched them.
    pub fn buffer_for_read(&mut self, spare: usize) -> &mut BytesMut {
        self.drop_consumed();
        self.buffer.reserve(spare);
        &mut self.buffer
    }

    /// Appends `bytes`: for callers whose bytes are already in memory.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.buffer_for_read(bytes.len()).extend_from_slice(bytes);
    }

    /// Appends bytes received elsewhere. Takes them over without copying
    /// when nothing is buffered, or when they were split off the same
    /// buffer right after the bytes already here.
    pub fn append(&mut self, bytes: BytesMut) {
        self.drop_consumed();
        self.buffer.unsplit(bytes);
    }

    /// The next complete line, without its delimiter; `None` until more bytes
    /// arrive.
    ///
    /// A line longer than the limit is an error as soon as that is certain:
    /// when its delimiter turns up too far in, or when more than
    /// `max_line_bytes + delimiter length - 1` bytes are buffered without one
    /// (the last few could still be the start of a delimiter; a lenient
    /// delimiter counts as CRLF here). Memory stays bounded either way, and
    /// after the error nothing more is kept.
    #[inline]
    pub fn next_line(&mut self) -> Result<Option<&[u8]>, LineTooLong> {
        Ok(self.next_received_line()?.map(|received| received.line()))
    }

    /// As [`next_line`](Self::next_line), with the bytes that ended the
    /// line too, for a caller that sends the line back with a delimiter.
    #[inline]
    pub fn next_received_line(&mut self) -> Result<Option<ReceivedLine<'_>>, LineTooLong> {
        if self.failed {
            return Err(self.fail());
        }
        match Cutter::new(&self.format).cut(&self.buffer[self.consumed..], self.searched) {
            Cut::Line {
                len,
                line_len,
                ending_as_written,
            } => {
                let start = self.consumed;
                self.consumed += len;
                self.searched = 0;
                Ok(Some(ReceivedLine {
                    with_ending: &self.buffer[start..self.consumed],
                    line_len,
                    ending_as_written,
                }))
            }
            Cut::Incomplete { searched } => {
                self.searched = searched;
                Ok(None)
            }
            Cut::TooLong => Err(self.fail()),
        }
    }

    /// Hands every complete line to `each`, in order, until `each` breaks
    /// (that line is taken too) or no complete line is left: the batch form
    /// of [`next_received_line`](Self::next_received_line), for the hot
    /// paths. Returns how it stopped; a line over the limit is the same
    /// error, after the lines before it.
    #[inline]
    pub fn for_each_line<B>(
        &mut self,
        each: impl FnMut(ReceivedLine<'_>) -> ControlFlow<B>,
    ) -> Result<ControlFlow<B>, LineTooLong> {
        if self.failed {
            return Err(self.fail());
        }
        let pending = &self.buffer[self.consumed..];
        let batch = Cutter::new(&self.format).cut_each(pending, self.searched, each);
        self.consumed += batch.taken;
        self.searched = batch.searched;
        batch.stopped.ok_or_else(|| self.fail())
    }

    /// The bytes received after the last line returned: a line still being
    /// received, or a trailing fragment once the stream has ended.
    pub fn buffered(&self) -> &[u8] {
        &self.buffer[self.consumed..]
    }

    /// Frees the buffer's memory if it holds no bytes, so that a connection
    /// waiting for input holds no buffer. (A buffer whose every byte was
    /// read and consumed has no capacity left but still holds its memory:
    /// emptiness, not capacity, says whether to free.)
    pub fn release_if_empty(&mut self) {
        self.drop_consumed();
        if self.buffer.is_empty() {
            self.buffer = BytesMut::new();
        }
    }

    fn drop_consumed(&mut self) {
        if self.consumed > 0 {
            self.buffer.advance(self.consumed);
            self.consumed = 0;
        }
    }

    fn fail(&mut self) -> LineTooLong {
        self.failed = true;
        self.buffer = BytesMut::new();
        self.consumed = 0;
        self.searched = 0;
        LineTooLong {
            max_line_bytes: self.format.max_line_bytes,
        }
    }
}

#[cfg(test)]
mod tests;
