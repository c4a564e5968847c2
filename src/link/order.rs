//! Each remote event once, in its sender's order, in a way a stranger on
//! the broker cannot poison for long: a sender numbers its events in each
//! room from 1, per epoch (when it began sending in that room), and a
//! receiver keeps, per node, only the latest epoch, the highest number seen
//! and which of the numbers just below it have arrived.
//!
//! A number impossibly far ahead is refused, not adopted; a node whose
//! events keep being refused as old (the highest number was forged) is
//! re-anchored after a few; the table of nodes is bounded. What a stranger
//! can still do is forge plausible events: only broker permissions stop
//! that.

use std::collections::HashMap;

/// How far ahead of the highest seen a number may be: gaps come only from
/// events the broker refused, never thousands in a row.
pub(super) const MAX_JUMP: u64 = 1 << 16;
/// How many numbers below the highest are remembered, for events that
/// arrive out of order.
const WINDOW: u64 = 128;
/// Refusals in a row after which a node's numbers are taken as they come:
/// its highest was forged, or it lost its place.
const REANCHOR_AFTER: u32 = 16;
/// The most nodes remembered per room; past it, the one heard from least
/// recently is forgotten.
pub(super) const MAX_NODES: usize = 1024;

/// What [`Order::admit`] made of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Not seen before: deliver it.
    New,
    /// Seen already.
    Duplicate,
    /// From an older epoch, too far ahead or too far behind: dropped and
    /// counted as malformed.
    Refused,
}

/// Where each node of one room stands.
#[derive(Debug, Default)]
pub(super) struct Order {
    nodes: HashMap<String, Place>,
    /// Counts admissions, to find the node heard from least recently.
    clock: u64,
}

#[derive(Debug)]
struct Place {
    epoch: u128,
    highest: u64,
    /// Bit `n` set: number `highest - 1 - n` has arrived.
    below: u128,
    refused_in_a_row: u32,
    heard: u64,
}

impl Place {
    fn anchored(epoch: u128, sequence: u64, heard: u64) -> Self {
        Self {
            epoch,
            highest: sequence,
            below: 0,
            refused_in_a_row: 0,
            heard,
        }
    }
}

impl Order {
    /// Whether the `sequence`th event of `node` in `epoch` is new here.
    pub(super) fn admit(&mut self, node: &str, epoch: u128, sequence: u64) -> Verdict {
        self.clock += 1;
        let heard = self.clock;
        let Some(place) = self.nodes.get_mut(node) else {
            if self.nodes.len() >= MAX_NODES {
                self.forget_least_recent();
            }
            let place = Place::anchored(epoch, sequence, heard);
            self.nodes.insert(node.to_string(), place);
            return Verdict::New;
        };
        let verdict = if epoch > place.epoch {
            *place = Place::anchored(epoch, sequence, heard);
            Verdict::New
        } else if epoch < place.epoch {
            Verdict::Refused
        } else if sequence > place.highest {
            let ahead = sequence - place.highest;
            if ahead > MAX_JUMP {
                Verdict::Refused
            } else {
                place.below = match ahead {
                    ..=127 => (place.below << ahead) | (1 << (ahead - 1)),
                    128 => 1 << 127,
                    _ => 0,
                };
                place.highest = sequence;
                Verdict::New
            }
        } else if sequence == place.highest {
            Verdict::Duplicate
        } else {
            let behind = place.highest - sequence;
            if behind > WINDOW {
                Verdict::Refused
            } else if place.below & (1 << (behind - 1)) != 0 {
                Verdict::Duplicate
            } else {
                place.below |= 1 << (behind - 1);
                Verdict::New
            }
        };
        match verdict {
            Verdict::Refused => {
                place.refused_in_a_row += 1;
                if place.refused_in_a_row >= REANCHOR_AFTER {
                    *place = Place::anchored(epoch, sequence, heard);
                    return Verdict::New;
                }
            }
            Verdict::New | Verdict::Duplicate => {
                place.refused_in_a_row = 0;
                place.heard = heard;
            }
        }
        verdict
    }

    /// Takes every number of `node` below the highest seen as seen too:
    /// after a room's history, older live events are not new.
    pub(super) fn seen_below(&mut self, node: &str) {
        if let Some(place) = self.nodes.get_mut(node) {
            place.below = u128::MAX;
        }
    }

    fn forget_least_recent(&mut self) {
        let oldest = self
            .nodes
            .iter()
            .min_by_key(|(_, place)| place.heard)
            .map(|(node, _)| node.clone());
        if let Some(node) = oldest {
            self.nodes.remove(&node);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::*;

    #[test]
    fn each_event_once_even_out_of_order() {
        let mut order = Order::default();
        assert_eq!(order.admit("two", 5, 10), New);
        assert_eq!(order.admit("two", 5, 12), New);
        assert_eq!(order.admit("two", 5, 11), New);
        assert_eq!(order.admit("two", 5, 11), Duplicate);
        assert_eq!(order.admit("two", 5, 12), Duplicate);
        assert_eq!(order.admit("two", 5, 10), Duplicate);
        assert_eq!(order.admit("two", 5, 13 + 200), New);
        assert_eq!(order.admit("two", 5, 13), Refused);
        // A restart: a later epoch starts again.
        assert_eq!(order.admit("two", 6, 1), New);
        assert_eq!(order.admit("two", 5, 300), Refused);
    }

    #[test]
    fn a_forged_number_does_not_silence_a_node() {
        let mut order = Order::default();
        assert_eq!(order.admit("two", 5, 1), New);
        assert_eq!(order.admit("two", 5, u64::MAX), Refused);
        assert_eq!(order.admit("two", 5, 2), New);
        // Forged before any real event: the real ones are refused a few
        // times, then taken as they come.
        let mut order = Order::default();
        assert_eq!(order.admit("one", 5, u64::MAX - 1), New);
        let refused = (1..=u64::from(REANCHOR_AFTER))
            .filter(|&n| order.admit("one", 5, n) == Refused)
            .count();
        assert_eq!(refused, REANCHOR_AFTER as usize - 1);
        assert_eq!(order.admit("one", 5, 17), New);
    }

    #[test]
    fn after_a_history_older_numbers_are_seen() {
        let mut order = Order::default();
        assert_eq!(order.admit("two", 5, 60), New);
        order.seen_below("two");
        assert_eq!(order.admit("two", 5, 10), Duplicate);
        assert_eq!(order.admit("two", 5, 61), New);
    }

    #[test]
    fn the_table_of_nodes_is_bounded() {
        let mut order = Order::default();
        for node in 0..MAX_NODES * 3 {
            order.admit(&node.to_string(), 1, 1);
        }
        assert_eq!(order.nodes.len(), MAX_NODES);
        // The most recent stay.
        assert_eq!(
            order.admit(&(MAX_NODES * 3 - 1).to_string(), 1, 1),
            Duplicate
        );
    }
}
