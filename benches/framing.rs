//! The splitter alone: throughput for short to long lines arriving in tiny
//! to large reads, taken out one at a time (`next_line`, as chat mode does)
//! and in batches (`for_each_line`, as echo mode and the client do); the
//! batches' search for every LF against `memchr::memchr_iter` on the same
//! buffers; and the resume check: a 16 MiB line arriving in 1 KiB reads
//! must cost at most twice the same line arriving in one read.

use std::hint::black_box;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat::delimiter::Delimiter;
use chat::framing::occurrences::Occurrences;
use chat::framing::{LineFormat, LineSplitter};

#[path = "support/mod.rs"]
mod support;

const RUNS: usize = 5;
/// Bytes split per run; less when reads are 1 byte each, which is slow by nature.
const INPUT_BYTES: usize = 8 << 20;
const INPUT_BYTES_BYTE_BY_BYTE: usize = 1 << 20;
const LONG_LINE: usize = 16 << 20;
const RESUME_RUNS: usize = 7;
/// The argument that makes this program one sample of the resume check.
const RESUME_SAMPLE: &str = "--resume-sample";

/// Feeds `input` to a fresh splitter in reads of `read_len` bytes, taking
/// the complete lines out with `take_lines` after each read; returns the
/// number of lines.
fn split(
    input: &[u8],
    read_len: usize,
    max_line_bytes: usize,
    take_lines: impl Fn(&mut LineSplitter) -> usize,
) -> usize {
    let format = Arc::new(LineFormat::new(Delimiter::crlf(), max_line_bytes));
    let mut splitter = LineSplitter::new(format);
    input
        .chunks(read_len)
        .map(|read| {
            splitter.extend_from_slice(read);
            take_lines(&mut splitter)
        })
        .sum()
}

/// Takes every complete line out one at a time, as chat mode does.
fn one_at_a_time(splitter: &mut LineSplitter) -> usize {
    let mut lines = 0;
    while let Some(line) = splitter.next_line().expect("no line is over the limit") {
        black_box(line);
        lines += 1;
    }
    lines
}

/// Takes every complete line out in one batch, as echo mode and the client
/// do.
fn in_a_batch(splitter: &mut LineSplitter) -> usize {
    let mut lines = 0;
    let taken = splitter.for_each_line(|received| {
        black_box(received.line());
        lines += 1;
        ControlFlow::<()>::Continue(())
    });
    assert_eq!(
        taken,
        Ok(ControlFlow::Continue(())),
        "no line is over the limit"
    );
    lines
}

/// The median time of `RUNS` runs of `run`.
fn time(mut run: impl FnMut()) -> Duration {
    let mut samples: Vec<f64> = (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            run();
            started.elapsed().as_secs_f64()
        })
        .collect();
    Duration::from_secs_f64(support::median(&mut samples))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|arg| arg == RESUME_SAMPLE) {
        return resume_sample(args[at + 1].parse().unwrap());
    }
    println!("framing: LineSplitter, CRLF lines, median of {RUNS} runs");
    println!(
        "{:>10} {:>10} {:>12} {:>12} {:>12} {:>12}",
        "line", "read", "MB/s", "lines/s", "batch MB/s", "lines/s"
    );
    for line_len in [8, 32, 1024, 65536] {
        let line = [vec![b'x'; line_len], b"\r\n".to_vec()].concat();
        for read_len in [1, 1024, 65536] {
            let total = if read_len == 1 {
                INPUT_BYTES_BYTE_BY_BYTE
            } else {
                INPUT_BYTES
            };
            let input = line.repeat((total / line.len()).max(1));
            let count = input.len() / line.len();
            let one_by_one = time(|| {
                assert_eq!(split(&input, read_len, 65536, one_at_a_time), count);
            });
            let batched = time(|| {
                assert_eq!(split(&input, read_len, 65536, in_a_batch), count);
            });
            let rates = |elapsed: Duration| {
                let seconds = elapsed.as_secs_f64();
                let megabytes = input.len() as f64 / seconds / 1e6;
                (megabytes, support::per_second(count as f64 / seconds))
            };
            let ((one_mb, one_lines), (batch_mb, batch_lines)) =
                (rates(one_by_one), rates(batched));
            println!(
                "{line_len:>10} {read_len:>10} {one_mb:>12.0} {one_lines:>12} {batch_mb:>12.0} \
                 {batch_lines:>12}",
            );
        }
    }

    search_against_memchr_iter();
    resume_check();
}

/// Takes every position, one at a time, as cutting a batch does; not
/// `count()`, which memchr's iterator answers without finding positions.
fn each(positions: impl Iterator<Item = usize>) -> usize {
    let mut found = 0;
    for position in positions {
        black_box(position);
        found += 1;
    }
    found
}

/// Every LF in an 8 MiB buffer of lines, found by the batches' search and
/// by `memchr_iter`: whether the hand-written search earns its `unsafe`.
fn search_against_memchr_iter() {
    println!(
        "every LF in {} MiB of CRLF lines, MB/s, median of {RUNS} runs",
        INPUT_BYTES >> 20
    );
    println!(
        "{:>10} {:>14} {:>14} {:>8}",
        "line", "Occurrences", "memchr_iter", "ratio"
    );
    for line_len in [8, 32, 1024, 65536] {
        let line = [vec![b'x'; line_len], b"\r\n".to_vec()].concat();
        let input = line.repeat(INPUT_BYTES / line.len());
        let count = input.len() / line.len();
        let ours = time(|| assert_eq!(each(Occurrences::new(black_box(&input), b'\n', 0)), count));
        let theirs =
            time(|| assert_eq!(each(memchr::memchr_iter(b'\n', black_box(&input))), count));
        let rate = |elapsed: Duration| input.len() as f64 / elapsed.as_secs_f64() / 1e6;
        let (ours, theirs) = (rate(ours), rate(theirs));
        println!(
            "{line_len:>10} {ours:>14.0} {theirs:>14.0} {:>7.2}x",
            ours / theirs
        );
    }
}

/// Linear, not quadratic: the search resumes where it stopped. Each sample
/// is a fresh process, so both cases start with the same cold allocator: in
/// one process, repeated runs let the one-read case reuse the memory freed
/// by the previous run while the growing buffer of the many-reads case
/// cannot, which measures the allocator rather than the splitter.
fn resume_check() {
    let sample = |read_len: usize| {
        let output = support::command(std::env::current_exe().unwrap())
            .args([RESUME_SAMPLE, &read_len.to_string()])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .unwrap()
            .trim()
            .parse::<f64>()
            .unwrap()
    };
    let (mut whole, mut in_reads) = (Vec::new(), Vec::new());
    for _ in 0..RESUME_RUNS {
        whole.push(sample(LONG_LINE + 2));
        in_reads.push(sample(1024));
    }
    let whole = Duration::from_secs_f64(support::median(&mut whole));
    let in_reads = Duration::from_secs_f64(support::median(&mut in_reads));
    let ratio = in_reads.as_secs_f64() / whole.as_secs_f64();
    println!(
        "resume check: a 16 MiB line in one read {whole:.2?}, in 1 KiB reads {in_reads:.2?}: \
         {ratio:.2}x (target <= 2x) {}",
        if ratio <= 2.0 { "ok" } else { "MISSED" }
    );
}

/// Runs one sample of the resume check in this process and prints seconds.
fn resume_sample(read_len: usize) {
    // Built in place: freeing a large temporary first would change how the
    // allocator serves the splitter's buffer.
    let mut long_line = vec![b'x'; LONG_LINE + 2];
    long_line[LONG_LINE..].copy_from_slice(b"\r\n");
    let started = Instant::now();
    assert_eq!(split(&long_line, read_len, 2 * LONG_LINE, one_at_a_time), 1);
    println!("{}", started.elapsed().as_secs_f64());
}
