//! Finding lines in received bytes: where each line ends, whether it is
//! too long, and what ended it. [`super::LineSplitter`] keeps the bytes and
//! calls in here, once per line or once for a batch of lines.

use std::ops::ControlFlow;

use super::format::{LineFormat, ReceivedLine};
use super::occurrences::Occurrences;

/// A [`LineFormat`]'s parameters copied out, so that a loop over many
/// lines keeps them in registers rather than reading them again for each.
#[derive(Clone, Copy)]
pub(super) struct Cutter<'f> {
    ending: Ending<'f>,
    end_len: usize,
    drops_cr: bool,
    max_line_bytes: usize,
}

/// The delimiter, by how it is searched for.
#[derive(Clone, Copy)]
enum Ending<'f> {
    Byte(u8),
    Pair(u8, u8),
    Long(&'f memchr::memmem::Finder<'static>),
}

impl<'f> Cutter<'f> {
    /// `format`'s parameters as plain values, for one line or one batch.
    #[inline(always)]
    pub(super) fn new(format: &'f LineFormat) -> Self {
        let ending = match *format.delimiter.line_end() {
            [byte] => Ending::Byte(byte),
            [first, second] => Ending::Pair(first, second),
            _ => Ending::Long(&format.finder),
        };
        Cutter {
            ending,
            end_len: format.delimiter.line_end().len(),
            drops_cr: format.delimiter.drops_cr(),
            max_line_bytes: format.max_line_bytes,
        }
    }

    /// Cuts the first line off `pending`, the bytes from a line's start, of
    /// which the first `searched` are known not to begin a delimiter. When a
    /// line is too long: see
    /// [`LineSplitter::next_line`](super::LineSplitter::next_line).
    #[inline(always)]
    pub(super) fn cut(self, pending: &[u8], searched: usize) -> Cut {
        let Some(offset) = self.find_delimiter(&pending[searched..]) else {
            return self.without_delimiter(pending.len());
        };
        let end = searched + offset;
        self.line_in(&pending[..end + self.end_len])
    }

    /// What `with_ending`, a line's bytes and then its delimiter, holds: the
    /// line, or one too long.
    #[inline(always)]
    fn line_in(self, with_ending: &[u8]) -> Cut {
        let mut line_len = with_ending.len() - self.end_len;
        let mut ending_as_written = true;
        if self.drops_cr {
            match line_len.checked_sub(1) {
                Some(before) if with_ending[before] == b'\r' => line_len = before,
                _ => ending_as_written = false,
            }
        }
        if line_len > self.max_line_bytes {
            return Cut::TooLong;
        }
        Cut::Line {
            len: with_ending.len(),
            line_len,
            ending_as_written,
        }
    }

    /// What `len` bytes from a line's start with no whole delimiter in them
    /// are: a line still arriving, or one already too long.
    #[inline(always)]
    fn without_delimiter(self, len: usize) -> Cut {
        // A delimiter cut across two reads starts in the last
        // `end_len - 1` bytes: search those again next time.
        let searched = (len + 1).saturating_sub(self.end_len);
        if searched > self.max_line_bytes + usize::from(self.drops_cr) {
            return Cut::TooLong;
        }
        Cut::Incomplete { searched }
    }

    /// Hands each complete line of `pending` to `each`, as
    /// [`LineSplitter::for_each_line`](super::LineSplitter::for_each_line)
    /// says; `searched` is as for [`cut`](Self::cut).
    #[inline(always)]
    pub(super) fn cut_each<B>(
        self,
        pending: &[u8],
        searched: usize,
        mut each: impl FnMut(ReceivedLine<'_>) -> ControlFlow<B>,
    ) -> Batch<B> {
        // Pairs are found by their second byte; `first` then is the byte
        // that must come before it.
        let (first, last) = match self.ending {
            Ending::Byte(byte) => (None, byte),
            Ending::Pair(first, second) => (Some(first), second),
            Ending::Long(_) => return self.cut_one_by_one(pending, searched, each),
        };
        // Every line's delimiter ends with `last`: one pass finds them all,
        // from where the first delimiter not yet ruled out would end.
        let mut start = 0;
        for at in Occurrences::new(pending, last, searched + self.end_len - 1) {
            let with_ending = &pending[start..=at];
            // `last` at a line's start, or inside it: not a delimiter's end.
            let Some(first_at) = with_ending.len().checked_sub(self.end_len) else {
                continue;
            };
            if first.is_some_and(|first| with_ending[first_at] != first) {
                continue;
            }
            let Cut::Line {
                line_len,
                ending_as_written,
                ..
            } = self.line_in(with_ending)
            else {
                return Batch {
                    taken: start,
                    searched: 0,
                    stopped: None,
                };
            };
            start = at + 1;
            let line = ReceivedLine {
                with_ending,
                line_len,
                ending_as_written,
            };
            if let ControlFlow::Break(value) = each(line) {
                return Batch {
                    taken: start,
                    searched: 0,
                    stopped: Some(ControlFlow::Break(value)),
                };
            }
        }
        let (searched, stopped) = match self.without_delimiter(pending.len() - start) {
            Cut::Incomplete { searched } => (searched, Some(ControlFlow::Continue(()))),
            _ => (0, None),
        };
        Batch {
            taken: start,
            searched,
            stopped,
        }
    }

    /// [`cut_each`](Self::cut_each) with [`cut`](Self::cut) for each line:
    /// for delimiters of three bytes or more.
    fn cut_one_by_one<B>(
        self,
        pending: &[u8],
        mut searched: usize,
        mut each: impl FnMut(ReceivedLine<'_>) -> ControlFlow<B>,
    ) -> Batch<B> {
        let mut rest = pending;
        let stopped = loop {
            match self.cut(rest, searched) {
                Cut::Line {
                    len,
                    line_len,
                    ending_as_written,
                } => {
                    let (with_ending, after) = rest.split_at(len);
                    rest = after;
                    searched = 0;
                    let line = ReceivedLine {
                        with_ending,
                        line_len,
                        ending_as_written,
                    };
                    if let ControlFlow::Break(value) = each(line) {
                        break Some(ControlFlow::Break(value));
                    }
                }
                Cut::Incomplete { searched: now } => {
                    searched = now;
                    break Some(ControlFlow::Continue(()));
                }
                Cut::TooLong => break None,
            }
        };
        Batch {
            taken: pending.len() - rest.len(),
            searched,
            stopped,
        }
    }

    /// Where the delimiter first starts in `haystack`, if it is there whole.
    #[inline(always)]
    fn find_delimiter(self, haystack: &[u8]) -> Option<usize> {
        match self.ending {
            // memchr directly: memmem would only get there by a detour.
            Ending::Byte(byte) => memchr::memchr(byte, haystack),
            // CRLF and other pairs: memchr for the second byte (LF, rare in
            // text), then a look at the byte before it. memmem's search
            // costs more to set up than a short line takes to scan, and this
            // is once per line.
            Ending::Pair(first, second) => {
                let mut from = 1;
                loop {
                    let at = from + memchr::memchr(second, haystack.get(from..)?)?;
                    if haystack[at - 1] == first {
                        return Some(at - 1);
                    }
                    from = at + 1;
                }
            }
            Ending::Long(finder) => finder.find(haystack),
        }
    }
}

/// How a batch of lines went: see [`Cutter::cut_each`].
pub(super) struct Batch<B> {
    /// Bytes taken as lines, delimiters included.
    pub(super) taken: usize,
    /// Bytes after those known not to begin a delimiter.
    pub(super) searched: usize,
    /// How the batch stopped; `None` when a line was too long.
    pub(super) stopped: Option<ControlFlow<B>>,
}

/// What the bytes from a line's start hold: see [`Cutter::cut`].
pub(super) enum Cut {
    /// A line of `line_len` bytes, ended after `len` bytes.
    Line {
        len: usize,
        line_len: usize,
        ending_as_written: bool,
    },
    /// No delimiter yet; the first `searched` bytes cannot begin one.
    Incomplete { searched: usize },
    /// The line is over the limit, whether its delimiter has come or not.
    TooLong,
}
