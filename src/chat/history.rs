//! A room's recent lines (`--history`, `--history-bytes`): the buffers the
//! fan-out already shares, kept as they are, the oldest let go first, and
//! given to each member who joins between the two marker lines.

use std::collections::VecDeque;
use std::time::SystemTime;

use bytes::Bytes;

use crate::protocol::chat as text;

/// `--history`: lines of talk a room keeps.
pub const DEFAULT_HISTORY_LINES: usize = 50;
/// `--history-bytes`: what those lines may take, at most, per room.
pub const DEFAULT_HISTORY_BYTES: usize = 64 * 1024;

/// How much each room keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Lines; 0 keeps none.
    pub lines: usize,
    pub bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            lines: DEFAULT_HISTORY_LINES,
            bytes: DEFAULT_HISTORY_BYTES,
        }
    }
}

/// One room's recent lines, in batches as they were fanned out. Holds no
/// memory until a line is kept.
#[derive(Debug, Default)]
pub struct History {
    batches: VecDeque<Batch>,
    lines: usize,
    bytes: usize,
}

/// Whole lines, each ending with the delimiter, shared with the fan-out.
#[derive(Debug)]
struct Batch {
    lines: Bytes,
    count: usize,
    said_at: SystemTime,
}

impl History {
    /// Keeps `lines` (whole lines, each ending with `delimiter`), then lets
    /// the oldest go until the room is within `limits`.
    pub fn keep(&mut self, lines: &Bytes, delimiter: &[u8], limits: Limits) {
        if limits.lines == 0 || lines.is_empty() {
            return;
        }
        let count = count_lines(lines, delimiter);
        self.lines += count;
        self.bytes += lines.len();
        self.batches.push_back(Batch {
            lines: lines.clone(),
            count,
            said_at: SystemTime::now(),
        });
        self.trim(delimiter, limits);
    }

    /// Puts `older` lines (each a whole line, with when it was said),
    /// oldest first, before those kept, then lets the oldest go until the
    /// room is within `limits`: what the broker kept of the room before it
    /// had members here.
    pub fn seed(&mut self, older: Vec<(Bytes, SystemTime)>, delimiter: &[u8], limits: Limits) {
        if limits.lines == 0 || older.is_empty() {
            return;
        }
        let newer = std::mem::take(&mut self.batches);
        for (lines, said_at) in older {
            let count = count_lines(&lines, delimiter);
            self.lines += count;
            self.bytes += lines.len();
            self.batches.push_back(Batch {
                lines,
                count,
                said_at,
            });
        }
        self.batches.extend(newer);
        self.trim(delimiter, limits);
    }

    /// Lets the oldest lines go until the room is within `limits`.
    fn trim(&mut self, delimiter: &[u8], limits: Limits) {
        while self.lines > limits.lines || self.bytes > limits.bytes {
            let Some(oldest) = self.batches.front_mut() else {
                break;
            };
            let over_lines = self.lines.saturating_sub(limits.lines);
            let over_bytes = self.bytes.saturating_sub(limits.bytes);
            let (count, len) = first_lines(&oldest.lines, delimiter, over_lines, over_bytes);
            self.lines -= count;
            self.bytes -= len;
            if count == oldest.count {
                self.batches.pop_front();
            } else {
                oldest.count -= count;
                oldest.lines = oldest.lines.slice(len..);
            }
        }
    }

    /// What a member joining `room` is sent, newest last, within `budget`
    /// bytes: the first marker line, the lines, the last marker line. Empty
    /// when nothing is kept.
    pub fn recent(&self, room: &str, delimiter: &[u8], budget: usize) -> Vec<Bytes> {
        let mut bytes = 0;
        let mut lines = 0;
        let mut first = self.batches.len();
        for (at, batch) in self.batches.iter().enumerate().rev() {
            if bytes + batch.lines.len() > budget {
                break;
            }
            bytes += batch.lines.len();
            lines += batch.count;
            first = at;
        }
        let Some(oldest) = self.batches.get(first) else {
            return Vec::new();
        };
        let opening = text::recent_lines(room, lines, &utc_minute(oldest.said_at));
        let mut out = Vec::with_capacity(self.batches.len() - first + 2);
        out.push(with_delimiter(&opening, delimiter));
        out.extend(self.batches.range(first..).map(|batch| batch.lines.clone()));
        out.push(with_delimiter(text::RECENT_END, delimiter));
        out
    }
}

fn with_delimiter(line: &str, delimiter: &[u8]) -> Bytes {
    [line.as_bytes(), delimiter].concat().into()
}

/// Lines in `bytes`, each ending with `delimiter`.
fn count_lines(bytes: &[u8], delimiter: &[u8]) -> usize {
    match delimiter.last() {
        // The delimiter's last byte ends every line and is in no line.
        Some(&last) => memchr::memchr_iter(last, bytes).count(),
        None => 0,
    }
}

/// The fewest first lines of `bytes` that are at least `lines` lines and
/// `len` bytes (all of them if it has fewer): how many, and their length.
fn first_lines(bytes: &[u8], delimiter: &[u8], lines: usize, len: usize) -> (usize, usize) {
    let mut taken = (0, 0);
    if let Some(&last) = delimiter.last() {
        for at in memchr::memchr_iter(last, bytes) {
            if taken.0 >= lines && taken.1 >= len {
                break;
            }
            taken = (taken.0 + 1, at + 1);
        }
    }
    taken
}

/// `time` as `YYYY-MM-DD HH:MM UTC`.
fn utc_minute(time: SystemTime) -> String {
    let seconds = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let (days, of_day) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        of_day / 3600,
        of_day % 3600 / 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Bytes {
        Bytes::copy_from_slice(text.as_bytes())
    }

    fn kept(history: &History) -> String {
        let all: Vec<u8> = history
            .batches
            .iter()
            .flat_map(|batch| batch.lines.to_vec())
            .collect();
        String::from_utf8(all).unwrap()
    }

    #[test]
    fn dates_are_civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(20_791), (2026, 12, 4));
        let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(20_791 * 86_400 + 3_723);
        assert_eq!(utc_minute(time), "2026-12-04 01:02 UTC");
    }

    #[test]
    fn the_oldest_lines_go_first_by_count_and_by_bytes() {
        let limits = Limits {
            lines: 3,
            bytes: 1024,
        };
        let mut history = History::default();
        history.keep(&lines("a\r\nb\r\n"), b"\r\n", limits);
        history.keep(&lines("c\r\nd\r\n"), b"\r\n", limits);
        assert_eq!(kept(&history), "b\r\nc\r\nd\r\n");
        assert_eq!((history.lines, history.bytes), (3, 9));
        history.keep(&lines("e\r\nf\r\ng\r\nh\r\n"), b"\r\n", limits);
        assert_eq!(kept(&history), "f\r\ng\r\nh\r\n");

        let limits = Limits {
            lines: 50,
            bytes: 10,
        };
        let mut history = History::default();
        history.keep(&lines("1234\r\n5678\r\n"), b"\r\n", limits);
        assert_eq!(kept(&history), "5678\r\n");
        history.keep(&lines("9\r\n"), b"\r\n", limits);
        assert_eq!(kept(&history), "5678\r\n9\r\n");
        assert_eq!((history.lines, history.bytes), (2, 9));
    }

    #[test]
    fn none_is_kept_with_no_history_and_a_room_holds_nothing_until_then() {
        let mut history = History::default();
        assert_eq!(history.batches.capacity(), 0);
        history.keep(
            &lines("a\n"),
            b"\n",
            Limits {
                lines: 0,
                bytes: 1024,
            },
        );
        assert!(history.recent("lobby", b"\n", usize::MAX).is_empty());
    }

    #[test]
    fn older_lines_go_before_those_kept_and_within_the_limits() {
        let mut history = History::default();
        let limits = Limits {
            lines: 3,
            bytes: 1000,
        };
        history.keep(&lines("new\r\n"), b"\r\n", limits);
        let at = SystemTime::UNIX_EPOCH;
        let older = ["a\r\n", "b\r\n", "c\r\n"].map(|line| (lines(line), at));
        history.seed(older.to_vec(), b"\r\n", limits);
        assert_eq!(kept(&history), "b\r\nc\r\nnew\r\n");
        let recent = history.recent("lobby", b"\r\n", 1000);
        assert!(
            recent[0].starts_with(b"*** recent in #lobby (3 lines since 1970-01-01 00:00 UTC)")
        );
    }

    #[test]
    fn a_joining_member_gets_the_newest_lines_within_its_budget() {
        let limits = Limits::default();
        let mut history = History::default();
        history.keep(&lines("<a> one\n"), b"\n", limits);
        history.keep(&lines("<b> two\n* b waves\n"), b"\n", limits);
        let sent: Vec<u8> = history.recent("lobby", b"\n", 1000).concat();
        let sent = String::from_utf8(sent).unwrap();
        assert!(
            sent.starts_with("*** recent in #lobby (3 lines since "),
            "{sent}"
        );
        assert!(sent.ends_with(" UTC):\n<a> one\n<b> two\n* b waves\n*** end of recent lines\n"));
        let sent: Vec<u8> = history.recent("lobby", b"\n", 20).concat();
        let sent = String::from_utf8(sent).unwrap();
        assert!(sent.contains("(2 lines since"), "{sent}");
        assert!(!sent.contains("one"), "{sent}");
    }
}
