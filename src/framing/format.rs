//! What the splitter and the cutting share: how a stream is cut (the
//! format), the line as it was received, and the error for a line too long.

use std::fmt;

use crate::delimiter::Delimiter;

/// How a stream is cut into lines: shared, unchanged, by every splitter of a
/// program, so a connection holds only a pointer to it.
#[derive(Clone, Debug)]
pub struct LineFormat {
    pub(super) delimiter: Delimiter,
    pub(super) finder: memchr::memmem::Finder<'static>,
    /// The longest line accepted, delimiter not counted.
    pub(super) max_line_bytes: usize,
}

impl LineFormat {
    pub fn new(delimiter: Delimiter, max_line_bytes: usize) -> Self {
        Self {
            finder: memchr::memmem::Finder::new(delimiter.line_end()).into_owned(),
            delimiter,
            max_line_bytes,
        }
    }

    /// The bytes that end a line received.
    pub fn line_end(&self) -> &[u8] {
        self.delimiter.line_end()
    }

    /// The bytes written after each line sent.
    pub fn written_delimiter(&self) -> &[u8] {
        self.delimiter.written()
    }

    pub fn max_line_bytes(&self) -> usize {
        self.max_line_bytes
    }
}

/// A line was longer than [`LineFormat::max_line_bytes`]. The splitter that
/// returned it holds nothing more and returns this error from then on: the
/// stream cannot be resynchronised without reading the rest of that line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineTooLong {
    pub max_line_bytes: usize,
}

impl fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line exceeds {} bytes", self.max_line_bytes)
    }
}

impl std::error::Error for LineTooLong {}

/// A line as it was received: its bytes, and after them in the buffer the
/// bytes that ended it.
#[derive(Clone, Copy, Debug)]
pub struct ReceivedLine<'a> {
    pub(super) with_ending: &'a [u8],
    pub(super) line_len: usize,
    /// The ending is exactly [`LineFormat::written_delimiter`].
    pub(super) ending_as_written: bool,
}

impl<'a> ReceivedLine<'a> {
    /// The line, without its delimiter.
    #[inline]
    pub fn line(&self) -> &'a [u8] {
        &self.with_ending[..self.line_len]
    }

    /// The line followed by its delimiter, when what ended it is what this
    /// program writes after a line: one slice to copy instead of two.
    #[inline]
    pub fn with_written_delimiter(&self) -> Option<&'a [u8]> {
        self.ending_as_written.then_some(self.with_ending)
    }
}
