//! What both command lines share: the defaults that make a plain
//! `chat-server` and a plain `chat-client` find each other, the parsers for
//! flag values, and how a run's result becomes an exit status.

use std::process::ExitCode;
use std::time::Duration;

/// Where a plain `chat-server` listens and a plain `chat-client` connects.
pub const DEFAULT_HOST: &str = "localhost";
pub const DEFAULT_PORT: u16 = 8007;

/// The largest value each flag takes: beyond them a value is a typo, or
/// would overflow a timer or a count, so it is refused at start.
pub const LARGEST_MAX_LINE_BYTES: usize = 1 << 30;
pub const LARGEST_MAX_CONNECTIONS: usize = 1_000_000;
pub const LONGEST_IDLE_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
pub const LONGEST_CONNECT_TIMEOUT: Duration = Duration::from_secs(3600);
pub const LARGEST_SENDQ: usize = 1 << 30;
/// Below this, a member's own `/who` answer could cut it as too slow.
pub const SMALLEST_SENDQ: usize = 1024;
pub const LARGEST_MAX_RATE: u32 = 1_000_000;
/// `--history`: lines a room may keep.
pub const LARGEST_HISTORY: usize = 10_000;
/// `--history-bytes`: what a room's history may take.
pub const LARGEST_HISTORY_BYTES: usize = 64 << 20;
/// `--link-buffer`: what lines said while the link is down may take.
pub const LARGEST_LINK_BUFFER: usize = 1 << 30;
/// Linux refuses a longer keepalive idle time (`MAX_TCP_KEEPIDLE`).
pub const LONGEST_KEEPALIVE_SECS: u32 = 32767;

/// `--delimiter`'s help: what it is for in `program`, the forms both
/// programs take, and the default.
pub fn delimiter_help(what_for: &str, default: &str) -> String {
    format!(
        "{what_for}: crlf; lf; lenient (a line ends at LF, a CR before it is dropped, lines \
         sent end with CRLF: for nc without -C, telnet and scripts); or a literal string with \
         the escapes \\r \\n \\t \\0 \\\\ \\xNN [default: {default}]"
    )
}

/// A parser for a count from 1 to `max`, such as `--max-line-bytes`.
pub fn count_up_to(max: usize) -> impl Fn(&str) -> Result<usize, String> + Clone {
    count_between(1, max)
}

/// A parser for a count from `min` to `max`, such as `--sendq`.
pub fn count_between(min: usize, max: usize) -> impl Fn(&str) -> Result<usize, String> + Clone {
    move |text| match text.parse::<usize>() {
        Ok(count) if (min..=max).contains(&count) => Ok(count),
        Ok(_) => Err(format!("must be from {min} to {max}")),
        Err(error) => Err(error.to_string()),
    }
}

/// A parser for a rate: `0` (no limit) or up to `max` a second.
pub fn rate_up_to(max: u32) -> impl Fn(&str) -> Result<u32, String> + Clone {
    move |text| match text.parse::<u32>() {
        Ok(rate) if rate <= max => Ok(rate),
        _ => Err(format!("must be a whole number from 0 (no limit) to {max}")),
    }
}

/// The shortest duration a flag accepts other than `0`: anything shorter
/// would round to nothing, and silently mean "none".
pub const MIN_DURATION: Duration = Duration::from_millis(1);

/// A duration given in seconds on the command line; `0` means none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seconds(pub Duration);

impl Seconds {
    /// The duration, or `None` for `0`.
    pub fn as_limit(self) -> Option<Duration> {
        Some(self.0).filter(|duration| !duration.is_zero())
    }
}

/// As it is written on the command line, for `--help`'s defaults.
impl std::fmt::Display for Seconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.as_secs_f64())
    }
}

/// A parser for a number of seconds, fractions allowed (`0.5`): `0` (which
/// means none, or off), or from [`MIN_DURATION`] to `max`.
pub fn seconds_up_to(max: Duration) -> impl Fn(&str) -> Result<Seconds, String> + Clone {
    move |text| {
        let range = || {
            format!(
                "must be 0 or from {} to {} seconds",
                MIN_DURATION.as_secs_f64(),
                max.as_secs_f64()
            )
        };
        let seconds: f64 = text
            .parse()
            .map_err(|_| format!("{text:?} is not a number of seconds"))?;
        if seconds == 0.0 {
            return Ok(Seconds(Duration::ZERO));
        }
        match Duration::try_from_secs_f64(seconds) {
            Ok(duration) if (MIN_DURATION..=max).contains(&duration) => Ok(Seconds(duration)),
            _ => Err(range()),
        }
    }
}

/// A parser for a number of seconds from [`MIN_DURATION`] to `max`, `0`
/// refused: for the hidden flags that shorten a wait in tests.
pub fn positive_seconds_up_to(max: Duration) -> impl Fn(&str) -> Result<Seconds, String> + Clone {
    move |text| match seconds_up_to(max)(text)? {
        Seconds(duration) if duration.is_zero() => Err("must not be 0".to_string()),
        seconds => Ok(seconds),
    }
}

/// A parser for a whole number of seconds: `0` (off), or from 1 to `max`.
pub fn whole_seconds_up_to(max: u32) -> impl Fn(&str) -> Result<u32, String> + Clone {
    move |text| match text.parse::<u32>() {
        Ok(seconds) if seconds <= max => Ok(seconds),
        _ => Err(format!("must be a whole number of seconds from 0 to {max}")),
    }
}

/// Turns a program's result into its exit status: success, or one line on
/// stderr naming what failed and why (the whole context chain) and status 1.
pub fn exit_status(program: &str, result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{program}: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn durations_refuse_what_would_overflow_or_round_to_nothing() {
        let idle = seconds_up_to(LONGEST_IDLE_TIMEOUT);
        assert_eq!(idle("0").map(Seconds::as_limit), Ok(None));
        assert_eq!(idle("0.5"), Ok(Seconds(Duration::from_millis(500))));
        assert_eq!(idle("0.001"), Ok(Seconds(MIN_DURATION)));
        for refused in ["1e19", "1e-10", "0.0009", "-1", "NaN", "inf", "", "x"] {
            assert!(idle(refused).is_err(), "{refused:?} accepted");
        }
        let keepalive = whole_seconds_up_to(LONGEST_KEEPALIVE_SECS);
        assert_eq!(keepalive("60"), Ok(60));
        for refused in ["32768", "0.5", "-1", "99999999999"] {
            assert!(keepalive(refused).is_err(), "{refused:?} accepted");
        }
    }

    #[test]
    fn counts() {
        let count = count_up_to(LARGEST_MAX_CONNECTIONS);
        assert_eq!(count("1"), Ok(1));
        for refused in ["0", "1000001", "2305843009213693952", "-1", "1.5"] {
            assert!(count(refused).is_err(), "{refused:?} accepted");
        }
    }

    proptest! {
        /// Whatever number is given, a duration either is refused or can be
        /// added to any instant of the program's life without overflow.
        #[test]
        fn every_accepted_duration_is_usable(seconds in proptest::num::f64::ANY) {
            let parse = seconds_up_to(LONGEST_CONNECT_TIMEOUT.max(LONGEST_IDLE_TIMEOUT));
            if let Ok(Seconds(duration)) = parse(&seconds.to_string()) {
                let far = std::time::Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600);
                prop_assert!(far.checked_add(duration).is_some());
                prop_assert!(duration.is_zero() || duration >= MIN_DURATION);
            }
        }

        #[test]
        fn every_accepted_count_fits_a_semaphore(count in any::<u64>()) {
            if let Ok(count) = count_up_to(LARGEST_MAX_CONNECTIONS)(&count.to_string()) {
                prop_assert!((1..=tokio::sync::Semaphore::MAX_PERMITS).contains(&count));
            }
        }
    }
}
