//! `--max-rate`: a token bucket per member. A member past its rate is not
//! cut and loses nothing: its lines wait in its socket, and TCP slows it.

use std::time::Duration;

use tokio::time::Instant;

/// Lines a member may send: `per_second` on average, in bursts of as many.
/// Kept as the time the bucket would be full again (the "generic cell
/// rate" form of a token bucket), in whole nanoseconds, so no rounding
/// ever loses or invents a token.
#[derive(Debug)]
pub struct TokenBucket {
    /// Nanoseconds one token takes to come back (at most a second). Kept
    /// small: it is part of every member's task.
    interval_nanos: u32,
    per_second: u32,
    /// When every token taken so far will have come back.
    due: Instant,
}

impl TokenBucket {
    /// A full bucket. `per_second` is at least 1.
    pub fn new(per_second: u32) -> Self {
        let per_second = per_second.max(1);
        Self {
            interval_nanos: 1_000_000_000 / per_second,
            per_second,
            due: Instant::now(),
        }
    }

    /// Time one token takes to come back.
    fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval_nanos.into())
    }

    /// How far ahead of now `due` may run: the burst, less one token.
    fn burst(&self) -> Duration {
        self.interval() * (self.per_second - 1)
    }

    /// Whether a line may be taken now.
    pub fn has_token(&self) -> bool {
        self.due.saturating_duration_since(Instant::now()) <= self.burst()
    }

    /// Takes a line's token (there may be none: the rate is a rule for
    /// reading, not for what was read already).
    pub fn take(&mut self) {
        self.due = self.due.max(Instant::now()) + self.interval();
    }

    /// Takes a line's token if there is one.
    #[cfg(test)]
    pub fn try_take(&mut self) -> bool {
        let available = self.has_token();
        if available {
            self.take();
        }
        available
    }

    /// When the next token will be there (now, if one is).
    pub fn next_token(&self) -> Instant {
        let now = Instant::now();
        self.due
            .checked_sub(self.burst())
            .map_or(now, |next| next.max(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_then_the_rate() {
        let mut bucket = TokenBucket::new(20);
        for _ in 0..20 {
            assert!(bucket.try_take());
        }
        assert!(!bucket.try_take());
        let next = bucket.next_token();
        assert_eq!(next - Instant::now(), Duration::from_millis(50));
        tokio::time::advance(Duration::from_millis(49)).await;
        assert!(!bucket.try_take());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(bucket.try_take());
        // A long pause refills the burst, no more.
        tokio::time::advance(Duration::from_secs(60)).await;
        let taken = (0..100).take_while(|_| bucket.try_take()).count();
        assert_eq!(taken, 20);
    }
}
