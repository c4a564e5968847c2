//! Cutting a byte stream into lines: the one place that knows where a line
//! ends, how long it may be, and how a delimiter is written on the command line.
//!
//! A [`LineSplitter`] owns the bytes received so far and remembers how far it
//! has already searched for the delimiter, so a long line arriving in many
//! small reads is scanned once in total, not once per read.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use bytes::{Buf, BytesMut};

/// The bytes that end a line. Never empty: an empty delimiter would make
/// every position a line end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delimiter(Box<[u8]>);

impl Delimiter {
    /// `\r\n`, the protocol's default.
    pub fn crlf() -> Self {
        Self(Box::from(&b"\r\n"[..]))
    }

    /// `\n`, as in text files and on a terminal.
    pub fn lf() -> Self {
        Self(Box::from(&b"\n"[..]))
    }

    /// A delimiter made of exactly these bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, DelimiterError> {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return Err(DelimiterError::Empty);
        }
        Ok(Self(bytes.into_boxed_slice()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Parses the command-line form: `crlf`, `lf`, or a literal string with the
/// escapes `\r \n \t \0 \\ \xNN`.
impl FromStr for Delimiter {
    type Err = DelimiterError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "crlf" | "CRLF" => return Ok(Self::crlf()),
            "lf" | "LF" => return Ok(Self::lf()),
            _ => {}
        }
        let mut bytes = Vec::with_capacity(text.len());
        let mut rest = text.as_bytes();
        while let Some((&byte, after)) = rest.split_first() {
            rest = after;
            if byte != b'\\' {
                bytes.push(byte);
                continue;
            }
            let Some((&escape, after)) = rest.split_first() else {
                return Err(DelimiterError::TrailingBackslash);
            };
            rest = after;
            bytes.push(match escape {
                b'r' => b'\r',
                b'n' => b'\n',
                b't' => b'\t',
                b'0' => 0,
                b'\\' => b'\\',
                b'x' => {
                    // Two hex digits exactly: `from_str_radix` alone would
                    // also take a sign (`\x+a`).
                    let hex = rest
                        .get(..2)
                        .filter(|digits| digits.iter().all(u8::is_ascii_hexdigit))
                        .and_then(|digits| {
                            u8::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
                        });
                    let Some(value) = hex else {
                        return Err(DelimiterError::BadHexEscape);
                    };
                    rest = &rest[2..];
                    value
                }
                other => return Err(DelimiterError::UnknownEscape(char::from(other))),
            });
        }
        Self::new(bytes)
    }
}

/// Why a `--delimiter` value was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DelimiterError {
    Empty,
    TrailingBackslash,
    BadHexEscape,
    UnknownEscape(char),
}

impl fmt::Display for DelimiterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "the delimiter must not be empty"),
            Self::TrailingBackslash => write!(f, "a backslash must be followed by an escape"),
            Self::BadHexEscape => write!(f, "\\x must be followed by two hex digits"),
            Self::UnknownEscape(c) => {
                write!(
                    f,
                    "unknown escape \\{c} (known: \\r \\n \\t \\0 \\\\ \\xNN)"
                )
            }
        }
    }
}

impl std::error::Error for DelimiterError {}

/// How a stream is cut into lines: shared, unchanged, by every splitter of a
/// program, so a connection holds only a pointer to it.
#[derive(Clone, Debug)]
pub struct LineFormat {
    delimiter: Delimiter,
    finder: memchr::memmem::Finder<'static>,
    /// The longest line accepted, delimiter not counted.
    max_line_bytes: usize,
}

impl LineFormat {
    pub fn new(delimiter: Delimiter, max_line_bytes: usize) -> Self {
        Self {
            finder: memchr::memmem::Finder::new(delimiter.as_bytes()).into_owned(),
            delimiter,
            max_line_bytes,
        }
    }

    pub fn delimiter(&self) -> &[u8] {
        self.delimiter.as_bytes()
    }

    pub fn max_line_bytes(&self) -> usize {
        self.max_line_bytes
    }

    /// Where `delimiter` first starts in `haystack`, if it is there whole.
    #[inline]
    fn find_delimiter(&self, haystack: &[u8]) -> Option<usize> {
        match self.delimiter.as_bytes() {
            // memchr directly: memmem would only get there by a detour.
            &[byte] => memchr::memchr(byte, haystack),
            _ => self.finder.find(haystack),
        }
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
    /// (the last few could still be the start of a delimiter). Memory stays
    /// bounded either way, and after the error nothing more is kept.
    #[inline]
    pub fn next_line(&mut self) -> Result<Option<&[u8]>, LineTooLong> {
        if self.failed {
            return Err(self.fail());
        }
        let format = &*self.format;
        let delimiter_len = format.delimiter().len();
        let line_start = self.consumed;
        let pending = &self.buffer[line_start..];
        let Some(offset) = format.find_delimiter(&pending[self.searched..]) else {
            // A delimiter cut across two reads starts in the last
            // `delimiter_len - 1` bytes: search those again next time.
            self.searched = (pending.len() + 1).saturating_sub(delimiter_len);
            if self.searched > format.max_line_bytes {
                return Err(self.fail());
            }
            return Ok(None);
        };
        let line_len = self.searched + offset;
        if line_len > format.max_line_bytes {
            return Err(self.fail());
        }
        self.consumed += line_len + delimiter_len;
        self.searched = 0;
        Ok(Some(&self.buffer[line_start..line_start + line_len]))
    }

    /// The bytes received after the last line returned: a line still being
    /// received, or a trailing fragment once the stream has ended.
    pub fn buffered(&self) -> &[u8] {
        &self.buffer[self.consumed..]
    }

    /// Frees the buffer's memory if it holds no bytes, so that a connection
    /// waiting for input holds no buffer.
    pub fn release_if_empty(&mut self) {
        self.drop_consumed();
        if self.buffer.is_empty() && self.buffer.capacity() > 0 {
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
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn splitter(delimiter: &[u8], max_line_bytes: usize) -> LineSplitter {
        let delimiter = Delimiter::new(delimiter).expect("test delimiters are not empty");
        LineSplitter::new(Arc::new(LineFormat::new(delimiter, max_line_bytes)))
    }

    /// Feeds `chunks` one at a time, collecting every line as soon as it is
    /// complete; returns the lines, the leftover bytes, and the error if any.
    fn split_chunks(
        splitter: &mut LineSplitter,
        chunks: &[&[u8]],
    ) -> (Vec<Vec<u8>>, Vec<u8>, Option<LineTooLong>) {
        let mut lines = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            // Both ways in: copied from a slice, and handed over as a buffer.
            if i % 2 == 0 {
                splitter.extend_from_slice(chunk);
            } else {
                splitter.append(BytesMut::from(*chunk));
            }
            loop {
                match splitter.next_line() {
                    Ok(Some(line)) => lines.push(line.to_vec()),
                    Ok(None) => break,
                    Err(error) => return (lines, Vec::new(), Some(error)),
                }
            }
        }
        (lines, splitter.buffered().to_vec(), None)
    }

    #[test]
    fn splits_lines_and_keeps_the_partial_tail() {
        let mut s = splitter(b"\r\n", 100);
        let (lines, rest, error) = split_chunks(&mut s, &[b"one\r\ntwo\r\nthr"]);
        assert_eq!(lines, [b"one".to_vec(), b"two".to_vec()]);
        assert_eq!(rest, b"thr");
        assert_eq!(error, None);
    }

    #[test]
    fn finds_a_delimiter_split_across_reads() {
        let mut s = splitter(b"\r\n", 100);
        let (lines, rest, _) = split_chunks(&mut s, &[b"ab\r", b"\ncd\r", b"\n"]);
        assert_eq!(lines, [b"ab".to_vec(), b"cd".to_vec()]);
        assert!(rest.is_empty());

        let mut s = splitter(b"<=>", 100);
        let (lines, _, _) = split_chunks(&mut s, &[b"ab<", b"=", b">cd<=", b">"]);
        assert_eq!(lines, [b"ab".to_vec(), b"cd".to_vec()]);
    }

    #[test]
    fn empty_lines_are_lines() {
        let mut s = splitter(b"\r\n", 100);
        let (lines, rest, _) = split_chunks(&mut s, &[b"\r\n\r\nx\r\n\r\n"]);
        assert_eq!(lines, [vec![], vec![], b"x".to_vec(), vec![]]);
        assert!(rest.is_empty());
    }

    #[test]
    fn a_bare_lf_or_cr_inside_a_crlf_line_is_data() {
        let mut s = splitter(b"\r\n", 100);
        let (lines, _, _) = split_chunks(&mut s, &[b"a\nb\rc\r\r\n\n\r\n"]);
        assert_eq!(lines, [b"a\nb\rc\r".to_vec(), b"\n".to_vec()]);
    }

    #[test]
    fn a_line_of_exactly_the_limit_is_accepted_and_one_more_byte_is_not() {
        let mut s = splitter(b"\r\n", 4);
        let (lines, _, error) = split_chunks(&mut s, &[b"1234\r\n"]);
        assert_eq!((lines, error), (vec![b"1234".to_vec()], None));

        let mut s = splitter(b"\r\n", 4);
        let (lines, _, error) = split_chunks(&mut s, &[b"ok\r\n12345\r\n"]);
        assert_eq!(lines, [b"ok".to_vec()]);
        assert_eq!(error, Some(LineTooLong { max_line_bytes: 4 }));
    }

    #[test]
    fn the_limit_holds_byte_by_byte_without_a_delimiter() {
        // 4 bytes plus a `\r` could still be a line of 4: not yet an error.
        let mut s = splitter(b"\r\n", 4);
        let (_, rest, error) = split_chunks(&mut s, &[b"1", b"2", b"3", b"4", b"\r"]);
        assert_eq!((rest.as_slice(), error), (&b"1234\r"[..], None));
        let (lines, _, error) = split_chunks(&mut s, &[b"\n"]);
        assert_eq!((lines, error), (vec![b"1234".to_vec()], None));

        // A sixth byte with no delimiter in sight settles it.
        let mut s = splitter(b"\r\n", 4);
        let (_, _, error) = split_chunks(&mut s, &[b"12345", b"6"]);
        assert_eq!(error, Some(LineTooLong { max_line_bytes: 4 }));
    }

    #[test]
    fn too_long_keeps_nothing_and_stays_an_error() {
        let mut s = splitter(b"\r\n", 4);
        let (_, _, error) = split_chunks(&mut s, &[b"123456789"]);
        assert!(error.is_some());
        assert!(s.buffered().is_empty());
        assert_eq!(s.buffer.capacity(), 0, "the long line's bytes are freed");

        // What follows the long line, even a valid line, is not buffered.
        let (lines, _, error) = split_chunks(&mut s, &[b"ok\r\n"]);
        assert!(lines.is_empty());
        assert!(error.is_some());
        assert!(s.buffered().is_empty());
        assert_eq!(s.buffer.capacity(), 0);
    }

    #[test]
    fn resumes_the_search_where_it_stopped() {
        let mut s = splitter(b"\r\n", 1 << 20);
        s.extend_from_slice(&[b'x'; 1000]);
        assert_eq!(s.next_line(), Ok(None));
        assert_eq!(s.searched, 999, "backs up one byte for a split CRLF");
        s.extend_from_slice(b"\r");
        assert_eq!(s.next_line(), Ok(None));
        assert_eq!(s.searched, 1000);
        s.extend_from_slice(b"\n");
        assert_eq!(s.next_line().map(|l| l.map(<[u8]>::len)), Ok(Some(1000)));
    }

    #[test]
    fn append_takes_over_buffers_without_copying() {
        let mut s = splitter(b"\r\n", 100);
        let mut received = BytesMut::from(&b"one\r\ntw"[..]);
        let first = received.split_to(5);
        let at = first.as_ptr();
        s.append(first);
        assert_eq!(s.next_line(), Ok(Some(&b"one"[..])));
        assert_eq!(
            s.buffer.as_ptr(),
            at,
            "an empty splitter takes the buffer over"
        );
        // The rest was split off the same buffer right after: no copy either.
        let rest_at = received.as_ptr();
        s.append(received);
        assert_eq!(s.buffered(), b"tw");
        assert_eq!(s.buffered().as_ptr(), rest_at);
        s.append(BytesMut::from(&b"o\r\n"[..]));
        assert_eq!(s.next_line(), Ok(Some(&b"two"[..])));
    }

    #[test]
    fn releases_its_buffer_only_when_empty() {
        let mut s = splitter(b"\n", 100);
        s.extend_from_slice(b"a\nb");
        assert_eq!(s.next_line(), Ok(Some(&b"a"[..])));
        s.release_if_empty();
        assert_eq!(s.buffered(), b"b");
        assert!(s.buffer.capacity() > 0);
        s.extend_from_slice(b"\n");
        assert_eq!(s.next_line(), Ok(Some(&b"b"[..])));
        s.release_if_empty();
        assert_eq!(s.buffer.capacity(), 0);
    }

    #[test]
    fn parses_delimiters_from_the_command_line() {
        let parse = |text: &str| text.parse::<Delimiter>().map(|d| d.as_bytes().to_vec());
        assert_eq!(parse("crlf"), Ok(b"\r\n".to_vec()));
        assert_eq!(parse("lf"), Ok(b"\n".to_vec()));
        assert_eq!(parse(r"\r\n"), Ok(b"\r\n".to_vec()));
        assert_eq!(parse(r"\t\0\\"), Ok(b"\t\0\\".to_vec()));
        assert_eq!(parse(r"\x1e"), Ok(vec![0x1e]));
        assert_eq!(parse(r"end\xFF"), Ok(b"end\xff".to_vec()));
        assert_eq!(parse(""), Err(DelimiterError::Empty));
        assert_eq!(parse("\\"), Err(DelimiterError::TrailingBackslash));
        assert_eq!(parse(r"\x1"), Err(DelimiterError::BadHexEscape));
        assert_eq!(parse(r"\xZZ"), Err(DelimiterError::BadHexEscape));
        assert_eq!(parse(r"\x+a"), Err(DelimiterError::BadHexEscape));
        assert_eq!(parse(r"\x-1"), Err(DelimiterError::BadHexEscape));
        assert_eq!(parse("\\x\u{e9}"), Err(DelimiterError::BadHexEscape));
        assert_eq!(parse(r"\q"), Err(DelimiterError::UnknownEscape('q')));
    }

    /// Cuts `bytes` at the given points (taken modulo its length).
    fn chunked(bytes: &[u8], mut cuts: Vec<usize>) -> Vec<&[u8]> {
        cuts.iter_mut().for_each(|cut| *cut %= bytes.len() + 1);
        cuts.push(0);
        cuts.push(bytes.len());
        cuts.sort_unstable();
        cuts.windows(2).map(|w| &bytes[w[0]..w[1]]).collect()
    }

    /// Bytes drawn mostly from the delimiter's own bytes, so that lines,
    /// near-delimiters and split delimiters are common.
    fn stream_for(delimiter: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![
            3 => proptest::sample::select(delimiter.to_vec()),
            1 => any::<u8>(),
        ];
        proptest::collection::vec(byte, 0..400)
    }

    /// The splitter's contract written plainly: split at each first whole
    /// delimiter; a line over the limit, or a tail that can no longer fit
    /// under it, is the error and ends the stream.
    fn model(
        bytes: &[u8],
        delimiter: &[u8],
        max_line_bytes: usize,
    ) -> (Vec<Vec<u8>>, Vec<u8>, Option<LineTooLong>) {
        let too_long = Some(LineTooLong { max_line_bytes });
        let mut lines = Vec::new();
        let mut rest = bytes;
        while let Some(at) = rest.windows(delimiter.len()).position(|w| w == delimiter) {
            if at > max_line_bytes {
                return (lines, Vec::new(), too_long);
            }
            lines.push(rest[..at].to_vec());
            rest = &rest[at + delimiter.len()..];
        }
        if rest.len() > max_line_bytes + delimiter.len() - 1 {
            return (lines, Vec::new(), too_long);
        }
        (lines, rest.to_vec(), None)
    }

    fn check_chunking(
        delimiter: &[u8],
        bytes: &[u8],
        cuts: Vec<usize>,
        max_line_bytes: usize,
    ) -> Result<(), TestCaseError> {
        let expected = model(bytes, delimiter, max_line_bytes);
        let whole = split_chunks(&mut splitter(delimiter, max_line_bytes), &[bytes]);
        prop_assert_eq!(&whole, &expected, "in one read");
        let pieces = chunked(bytes, cuts);
        let cut = split_chunks(&mut splitter(delimiter, max_line_bytes), &pieces);
        prop_assert_eq!(&cut, &expected, "in reads {:?}", pieces);
        let one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
        let single = split_chunks(&mut splitter(delimiter, max_line_bytes), &one_by_one);
        prop_assert_eq!(&single, &expected, "one byte per read");
        Ok(())
    }

    proptest! {
        #[test]
        fn crlf_lines_do_not_depend_on_chunking(
            bytes in stream_for(b"\r\n"),
            cuts in proptest::collection::vec(any::<usize>(), 0..40),
            max_line_bytes in 1usize..24,
        ) {
            check_chunking(b"\r\n", &bytes, cuts, max_line_bytes)?;
        }

        #[test]
        fn lf_lines_do_not_depend_on_chunking(
            bytes in stream_for(b"\n"),
            cuts in proptest::collection::vec(any::<usize>(), 0..40),
            max_line_bytes in 1usize..24,
        ) {
            check_chunking(b"\n", &bytes, cuts, max_line_bytes)?;
        }

        #[test]
        fn three_byte_delimiter_lines_do_not_depend_on_chunking(
            bytes in stream_for(b"<=>"),
            cuts in proptest::collection::vec(any::<usize>(), 0..40),
            max_line_bytes in 1usize..24,
        ) {
            check_chunking(b"<=>", &bytes, cuts, max_line_bytes)?;
        }
    }
}
