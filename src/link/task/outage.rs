//! How long the broker has been away, said once when lost, once a minute
//! while away, and once when back: never once a reconnection attempt.

use tokio::time::Instant;
use tracing::warn;

/// How often a broker that stays away is said to be, at most.
const OUTAGE_REPORT: std::time::Duration = std::time::Duration::from_secs(60);

/// How long the broker has been away, and how many attempts to reach it
/// failed: the log says so once a minute, never once an attempt.
pub(super) struct Outage {
    since: Option<Instant>,
    failed: u64,
    last_said: Instant,
}

impl Outage {
    pub(super) fn new(connected: bool) -> Self {
        let now = Instant::now();
        Self {
            since: (!connected).then_some(now),
            failed: 0,
            last_said: now,
        }
    }

    pub(super) fn began(&mut self) {
        let now = Instant::now();
        self.since.get_or_insert(now);
        self.last_said = now;
    }

    /// One more failed attempt; said if a minute has passed since the last
    /// line about the outage.
    pub(super) fn failed(&mut self, url: &str, error: &async_nats::ClientError) {
        self.failed += 1;
        let since = *self.since.get_or_insert_with(Instant::now);
        if self.last_said.elapsed() >= OUTAGE_REPORT {
            self.last_said = Instant::now();
            warn!(
                "link: {url} still away after {}s, {} attempts failed (the last: {error})",
                since.elapsed().as_secs(),
                self.failed
            );
        }
    }

    /// The outage is over: how long it lasted, for the line that says so.
    pub(super) fn ended(&mut self) -> String {
        let said = match self.since.take() {
            Some(since) => format!(
                " after {}s away, {} attempts failed",
                since.elapsed().as_secs(),
                self.failed
            ),
            None => String::new(),
        };
        self.failed = 0;
        said
    }
}
