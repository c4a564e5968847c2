//! The server's log: `tracing` events, one timestamped line each, written to
//! stderr by a thread of their own so that a slow or stalled stderr (a full
//! pipe, a paused terminal) drops lines instead of stopping the server.
//!
//! `RUST_LOG` filters as in other tokio programs; the default shows `info`.

use std::io::{self, IsTerminal};
use std::time::Duration;

use tracing::level_filters::LevelFilter;
use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Lines waiting for stderr before new ones are dropped: enough for a burst
/// of a couple of thousand connections, and well under a MiB of memory.
pub const BUFFERED_LINES: usize = 4096;
/// How often dropped lines are looked for, and reported once stderr takes
/// lines again.
const DROPPED_REPORT_EVERY: Duration = Duration::from_secs(1);

/// Keeps the log writer alive: dropping it writes the lines still queued
/// (waiting about a second at most) and stops the writer thread.
#[must_use = "dropping the guard stops the log"]
pub struct LogGuard {
    _writer: WorkerGuard,
}

/// Sends `tracing` events to stderr through a non-blocking, lossy writer,
/// and starts a task (on the current tokio runtime) that reports how many
/// lines were dropped.
pub fn init() -> anyhow::Result<LogGuard> {
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(BUFFERED_LINES)
        .thread_name("log")
        .finish(io::stderr());
    let dropped = writer.error_counter();
    // Without RUST_LOG: our events, and only the NATS client's problems
    // (the link logs its own ups and downs).
    let filter = match std::env::var("RUST_LOG") {
        Ok(_) => EnvFilter::builder()
            .with_default_directive(LevelFilter::INFO.into())
            .from_env_lossy(),
        Err(_) => EnvFilter::new("info,async_nats=warn"),
    };
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_env_filter(filter)
        .with_ansi(io::stderr().is_terminal())
        .with_target(false)
        .try_init()
        .map_err(|error| anyhow::anyhow!("setting up the log: {error}"))?;
    tokio::spawn(report_dropped_lines(dropped));
    Ok(LogGuard { _writer: guard })
}

/// Every [`DROPPED_REPORT_EVERY`], says how many lines were dropped since
/// the last report that got through. While stderr is still stalled the
/// report is itself dropped; it is then not counted, and tried again.
async fn report_dropped_lines(counter: ErrorCounter) {
    let mut told = 0;
    let mut own_reports_dropped = 0;
    let mut every = tokio::time::interval(DROPPED_REPORT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let before = counter.dropped_lines();
        let others = before - own_reports_dropped;
        if others == told {
            continue;
        }
        tracing::warn!(
            "{} log lines dropped: stderr was not taking them",
            others - told
        );
        // The writer drops a line only while its queue is full, and then it
        // drops this one too; a rise here is taken to be this report.
        if counter.dropped_lines() > before {
            own_reports_dropped += 1;
        } else {
            told = others;
        }
    }
}
