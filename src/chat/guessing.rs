//! Guessing is slow: per client address, after [`ALLOWED_WRONG`] wrong
//! passwords within [`WINDOW`], further attempts are refused unchecked
//! until the oldest of them is that old.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Wrong passwords an address may give within [`WINDOW`].
pub const ALLOWED_WRONG: usize = 5;
pub const WINDOW: Duration = Duration::from_secs(10 * 60);
/// Addresses remembered at most; past it, those with nothing recent go.
const MOST_ADDRESSES: usize = 100_000;

/// The recent wrong passwords of each address.
#[derive(Debug, Default)]
pub struct Guesses {
    wrong: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl Guesses {
    /// How long `address` must wait before its next attempt is checked;
    /// `None` if it may try now.
    pub fn wait_for(&self, address: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let mut wrong = self.lock();
        let times = wrong.get_mut(&address)?;
        while times.front().is_some_and(|at| now - *at >= WINDOW) {
            times.pop_front();
        }
        if times.len() < ALLOWED_WRONG {
            return None;
        }
        let oldest = times[times.len() - ALLOWED_WRONG];
        Some(WINDOW - (now - oldest))
    }

    /// One more wrong password from `address`.
    pub fn wrong(&self, address: IpAddr) {
        let now = Instant::now();
        let mut wrong = self.lock();
        if wrong.len() >= MOST_ADDRESSES {
            wrong.retain(|_, times| times.back().is_some_and(|at| now - *at < WINDOW));
        }
        let times = wrong.entry(address).or_default();
        times.push_back(now);
        if times.len() > ALLOWED_WRONG {
            times.pop_front();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, VecDeque<Instant>>> {
        // Each change is whole: a poisoned lock still holds good times.
        self.wrong
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn five_wrong_within_the_window_refuse_until_it_passes() {
        let guesses = Guesses::default();
        let address: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..ALLOWED_WRONG - 1 {
            guesses.wrong(address);
            assert_eq!(guesses.wait_for(address), None);
        }
        tokio::time::advance(Duration::from_secs(60)).await;
        guesses.wrong(address);
        // The first was a minute ago: nine minutes to go.
        assert_eq!(
            guesses.wait_for(address),
            Some(WINDOW - Duration::from_secs(60))
        );
        assert_eq!(guesses.wait_for("192.0.2.2".parse().unwrap()), None);
        tokio::time::advance(WINDOW - Duration::from_secs(60)).await;
        assert_eq!(guesses.wait_for(address), None);
    }
}
