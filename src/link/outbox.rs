//! Members' lines the broker has not confirmed keeping (`--link-buffer`):
//! the lines said while the link is down, and those in flight when it
//! went. They are published again, in order and under the same message id,
//! once it is back; the broker's duplicate window keeps each once, and the
//! receivers' per-node order delivers each once. Bounded in bytes: past
//! the bound the oldest go, counted per room for the restored notice.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::port::Event;

/// `--link-buffer`'s default.
pub const DEFAULT_LINK_BUFFER: usize = 1 << 20;

/// A line kept until the broker confirms it, with its number in its room
/// once it has been given one (when first published).
pub(super) struct Kept {
    pub(super) id: u64,
    pub(super) event: Event,
    pub(super) number: Option<(u128, u64)>,
}

/// The lines kept, oldest first.
pub(super) struct Outbox {
    kept: VecDeque<Kept>,
    bytes: usize,
    limit: usize,
    next_id: u64,
    /// Lines never published let go past the bound since the last restored
    /// notice, per room.
    lost: HashMap<Arc<str>, u64>,
}

impl Outbox {
    pub(super) fn new(limit: usize) -> Self {
        Self {
            kept: VecDeque::new(),
            bytes: 0,
            limit,
            next_id: 0,
            lost: HashMap::new(),
        }
    }

    /// Keeps `event` (numbered already if it was published), and lets the
    /// oldest go while the kept lines take more than the bound. Returns its
    /// id, for [`Outbox::confirmed`].
    pub(super) fn keep(&mut self, event: Event, number: Option<(u128, u64)>) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.bytes += size(&event);
        self.kept.push_back(Kept { id, event, number });
        while self.bytes > self.limit {
            let Some(oldest) = self.kept.pop_front() else {
                break;
            };
            self.bytes -= size(&oldest.event);
            // One published before the link went most likely reached the
            // others: only those never published are said to be lost.
            if oldest.number.is_none() {
                *self
                    .lost
                    .entry(Arc::clone(oldest.event.room()))
                    .or_default() += 1;
            }
        }
        id
    }

    /// The broker has the lines up to `id`: they are no longer kept.
    pub(super) fn confirmed_through(&mut self, id: u64) {
        while let Some(oldest) = self.kept.front()
            && oldest.id <= id
        {
            self.bytes -= size(&oldest.event);
            self.kept.pop_front();
        }
    }

    /// Every line kept, oldest first, to publish again.
    pub(super) fn take(&mut self) -> VecDeque<Kept> {
        self.bytes = 0;
        std::mem::take(&mut self.kept)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// Lines let go per room since the last call.
    pub(super) fn take_lost(&mut self) -> HashMap<Arc<str>, u64> {
        std::mem::take(&mut self.lost)
    }
}

/// What a kept line counts against the bound: its text and about what its
/// room, nick and headers take.
fn size(event: &Event) -> usize {
    event.text_len() + 128
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn said(room: &str, text: &'static str) -> Event {
        Event::Said {
            room: room.into(),
            nick: "alice".into(),
            text: Bytes::from_static(text.as_bytes()),
        }
    }

    #[test]
    fn the_oldest_go_past_the_bound_and_are_counted_per_room() {
        let mut outbox = Outbox::new(3 * (128 + 2));
        let first = outbox.keep(said("a", "l1"), Some((1, 1)));
        outbox.keep(said("a", "l2"), None);
        outbox.keep(said("b", "l3"), None);
        outbox.keep(said("b", "l4"), None);
        outbox.keep(said("b", "l5"), None);
        // The first two went; confirming one that went changes nothing.
        outbox.confirmed_through(first);
        let lost = outbox.take_lost();
        // l1 had been published.
        assert_eq!(lost.get("a"), Some(&1));
        assert_eq!(lost.get("b"), None);
        let kept: Vec<u64> = outbox.take().iter().map(|kept| kept.id).collect();
        assert_eq!(kept, [3, 4, 5]);
    }

    #[test]
    fn confirmed_lines_are_no_longer_kept() {
        let mut outbox = Outbox::new(DEFAULT_LINK_BUFFER);
        outbox.keep(said("a", "l1"), Some((1, 1)));
        let second = outbox.keep(said("a", "l2"), Some((1, 2)));
        let third = outbox.keep(said("a", "l3"), Some((1, 3)));
        outbox.confirmed_through(second);
        let kept: Vec<u64> = outbox.take().iter().map(|kept| kept.id).collect();
        assert_eq!(kept, [third]);
        assert_eq!(outbox.bytes, 0);
    }
}
