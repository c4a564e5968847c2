//! The splitter against a model anyone can check by eye, over arbitrary
//! chunkings, for every kind of delimiter; and its exact boundaries.

use super::*;
use crate::delimiter::Delimiter;
use proptest::prelude::*;

fn splitter(delimiter: &[u8], max_line_bytes: usize) -> LineSplitter {
    let delimiter = Delimiter::new(delimiter).expect("test delimiters are not empty");
    splitter_for(delimiter, max_line_bytes)
}

fn splitter_for(delimiter: Delimiter, max_line_bytes: usize) -> LineSplitter {
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

/// As [`split_chunks`], taking the lines out in batches, with
/// [`LineSplitter::for_each_line`].
fn split_chunks_batched(
    splitter: &mut LineSplitter,
    chunks: &[&[u8]],
) -> (Vec<Vec<u8>>, Vec<u8>, Option<LineTooLong>) {
    let mut lines = Vec::new();
    for chunk in chunks {
        splitter.extend_from_slice(chunk);
        let written = splitter.format().written_delimiter().to_vec();
        let taken = splitter.for_each_line(|received| {
            if let Some(whole) = received.with_written_delimiter() {
                assert_eq!(whole, [received.line(), &written].concat());
            }
            lines.push(received.line().to_vec());
            ControlFlow::<()>::Continue(())
        });
        match taken {
            Ok(ControlFlow::Continue(())) => {}
            Ok(ControlFlow::Break(())) => unreachable!("the closure never breaks"),
            Err(error) => return (lines, Vec::new(), Some(error)),
        }
    }
    (lines, splitter.buffered().to_vec(), None)
}

#[test]
fn a_batch_stops_after_the_line_that_breaks_it() {
    let mut s = splitter(b"\r\n", 100);
    s.extend_from_slice(b"one\r\nstop\r\nthree\r\nfo");
    let mut seen = Vec::new();
    let stopped = s.for_each_line(|received| {
        seen.push(received.line().to_vec());
        if received.line() == b"stop" {
            ControlFlow::Break(seen.len())
        } else {
            ControlFlow::Continue(())
        }
    });
    assert_eq!(stopped, Ok(ControlFlow::Break(2)));
    assert_eq!(seen, [b"one".to_vec(), b"stop".to_vec()]);
    // The line after it is still there, then the batch runs to the tail.
    assert_eq!(s.next_line(), Ok(Some(&b"three"[..])));
    let rest = s.for_each_line(|_| ControlFlow::Break(()));
    assert_eq!(rest, Ok(ControlFlow::Continue(())));
    assert_eq!(s.buffered(), b"fo");
}

#[test]
fn a_batch_answers_the_lines_before_one_too_long() {
    let mut s = splitter(b"\r\n", 4);
    s.extend_from_slice(b"ab\r\ncd\r\ntoo long\r\nef\r\n");
    let mut seen = Vec::new();
    let stopped = s.for_each_line(|received| {
        seen.push(received.line().to_vec());
        ControlFlow::<()>::Continue(())
    });
    assert_eq!(stopped, Err(LineTooLong { max_line_bytes: 4 }));
    assert_eq!(seen, [b"ab".to_vec(), b"cd".to_vec()]);
    assert!(s.buffered().is_empty());
    assert!(
        s.for_each_line(|_| ControlFlow::<()>::Continue(()))
            .is_err()
    );
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
fn releases_a_buffer_that_lines_filled_to_the_last_byte() {
    let mut s = splitter(b"\n", 100);
    let buffer = s.buffer_for_read(64);
    let capacity = buffer.capacity();
    buffer.extend_from_slice(&b"a\n".repeat(capacity / 2));
    while let Ok(Some(_)) = s.next_line() {}
    s.release_if_empty();
    // Held still, the old memory would be reused whole; freed, a small
    // read gets a small buffer.
    assert!(s.buffer_for_read(1).capacity() < capacity);
}

#[test]
fn lenient_takes_lf_and_crlf_and_keeps_other_crs() {
    let mut lines = splitter_for(Delimiter::lenient(), 8);
    lines.extend_from_slice(b"nc\ntelnet\r\na\rb\n\r\r\n\n12345678\r\n");
    let mut seen = Vec::new();
    while let Some(line) = lines.next_line().unwrap() {
        seen.push(line.to_vec());
    }
    let expected: Vec<&[u8]> = vec![b"nc", b"telnet", b"a\rb", b"\r", b"", b"12345678"];
    assert_eq!(seen, expected);
    // The limit counts the line without its CR.
    lines.extend_from_slice(b"123456789\r\n");
    assert_eq!(lines.next_line(), Err(LineTooLong { max_line_bytes: 8 }));
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

/// The lenient delimiter's contract written plainly: split at each LF,
/// drop one CR before it; the limit holds for the line without its CR,
/// and a tail is too long once it could not fit even with one.
fn lenient_model(
    bytes: &[u8],
    max_line_bytes: usize,
) -> (Vec<Vec<u8>>, Vec<u8>, Option<LineTooLong>) {
    let too_long = Some(LineTooLong { max_line_bytes });
    let mut lines = Vec::new();
    let mut rest = bytes;
    while let Some(at) = rest.iter().position(|&byte| byte == b'\n') {
        let line = rest[..at].strip_suffix(b"\r").unwrap_or(&rest[..at]);
        if line.len() > max_line_bytes {
            return (lines, Vec::new(), too_long);
        }
        lines.push(line.to_vec());
        rest = &rest[at + 1..];
    }
    if rest.len() > max_line_bytes + 1 {
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
    let delimiter = Delimiter::new(delimiter).expect("test delimiters are not empty");
    check_chunking_against(delimiter, bytes, cuts, max_line_bytes, expected)
}

/// Splits `bytes` in one read, in the reads `cuts` makes, and a byte per
/// read, and checks each gives `expected`.
fn check_chunking_against(
    delimiter: Delimiter,
    bytes: &[u8],
    cuts: Vec<usize>,
    max_line_bytes: usize,
    expected: (Vec<Vec<u8>>, Vec<u8>, Option<LineTooLong>),
) -> Result<(), TestCaseError> {
    let fresh = || splitter_for(delimiter.clone(), max_line_bytes);
    let whole = split_chunks(&mut fresh(), &[bytes]);
    prop_assert_eq!(&whole, &expected, "in one read");
    let pieces = chunked(bytes, cuts);
    let cut = split_chunks(&mut fresh(), &pieces);
    prop_assert_eq!(&cut, &expected, "in reads {:?}", pieces);
    let one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
    let single = split_chunks(&mut fresh(), &one_by_one);
    prop_assert_eq!(&single, &expected, "one byte per read");
    let batched = split_chunks_batched(&mut fresh(), &pieces);
    prop_assert_eq!(&batched, &expected, "in batches, in reads {:?}", pieces);
    let batched = split_chunks_batched(&mut fresh(), &one_by_one);
    prop_assert_eq!(&batched, &expected, "in batches, one byte per read");
    Ok(())
}

/// Long runs of lines of up to 150 bytes (mostly the delimiter's bytes,
/// CR and others), each followed by `delimiter`: many lines in a batch,
/// across many 64-byte blocks.
fn lines_for(delimiter: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        1 => proptest::sample::select(delimiter.to_vec()),
        1 => Just(b'\r'),
        4 => any::<u8>(),
    ];
    let line = proptest::collection::vec(byte, 0..150);
    proptest::collection::vec(line, 0..40).prop_map(move |lines| {
        lines
            .into_iter()
            .flat_map(|line| line.into_iter().chain(delimiter.iter().copied()))
            .collect()
    })
}

/// The delimiters the chunking tests cut by: one byte, CRLF, another
/// pair, a doubled byte (a candidate's first byte is also the byte
/// searched for), and one long enough for a different search.
const DELIMITERS: [&[u8]; 5] = [b"\n", b"\r\n", b"<>", b"==", b"<=>"];

proptest! {
    // As many cases for each delimiter as a test of its own would get.
    #![proptest_config(ProptestConfig::with_cases(256 * DELIMITERS.len() as u32))]

    #[test]
    fn lines_do_not_depend_on_chunking(
        (delimiter, bytes) in proptest::sample::select(DELIMITERS.to_vec())
            .prop_flat_map(|delimiter| (Just(delimiter), stream_for(delimiter))),
        cuts in proptest::collection::vec(any::<usize>(), 0..40),
        max_line_bytes in 1usize..24,
    ) {
        check_chunking(delimiter, &bytes, cuts, max_line_bytes)?;
    }
}

proptest! {
    #[test]
    fn runs_of_lines_do_not_depend_on_chunking(
        (delimiter, bytes) in proptest::sample::select(DELIMITERS.to_vec())
            .prop_flat_map(|delimiter| (Just(delimiter), lines_for(delimiter))),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
        max_line_bytes in 100usize..200,
    ) {
        check_chunking(delimiter, &bytes, cuts, max_line_bytes)?;
    }

    #[test]
    fn lenient_runs_of_lines_do_not_depend_on_chunking(
        bytes in lines_for(b"\n"),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
        max_line_bytes in 100usize..200,
    ) {
        let expected = lenient_model(&bytes, max_line_bytes);
        check_chunking_against(Delimiter::lenient(), &bytes, cuts, max_line_bytes, expected)?;
    }

    #[test]
    fn lenient_lines_do_not_depend_on_chunking(
        bytes in stream_for(b"\r\n"),
        cuts in proptest::collection::vec(any::<usize>(), 0..40),
        max_line_bytes in 1usize..24,
    ) {
        let expected = lenient_model(&bytes, max_line_bytes);
        check_chunking_against(Delimiter::lenient(), &bytes, cuts, max_line_bytes, expected)?;
    }
}
