//! What both command lines share: the defaults that make a plain
//! `chat-server` and a plain `chat-client` find each other, the parsers for
//! flag values, and how a run's result becomes an exit status.

use std::process::ExitCode;
use std::time::Duration;

/// Where a plain `chat-server` listens and a plain `chat-client` connects.
pub const DEFAULT_HOST: &str = "localhost";
pub const DEFAULT_PORT: u16 = 8007;

/// Help for `--delimiter`, the same in both programs.
pub const DELIMITER_HELP: &str = "Line delimiter: crlf, lf, or a literal string with the \
    escapes \\r \\n \\t \\0 \\\\ \\xNN. Both ends must agree";

/// `host:port`, with an IPv6 address in brackets, for messages.
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Parses a count that must be at least 1, such as `--max-line-bytes`.
pub fn positive_count(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_string()),
        Ok(count) => Ok(count),
        Err(error) => Err(error.to_string()),
    }
}

/// Parses a number of seconds, fractions allowed (`0.5`); `0` means none.
pub fn seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{text:?} is not a number of seconds"))
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
