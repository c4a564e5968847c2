//! A room's subscription: what other servers say in a room, each event
//! once and in its sender's order, handed to the chat in batches.

use std::collections::HashMap;
use std::sync::Arc;

use async_nats::Subscriber;
use futures_util::{FutureExt, StreamExt};

use super::task::Spanning;
use super::{Port, Remote, RemoteEvent, wire};

/// About the most bytes of events handed to the chat as one batch (which
/// its members get as one shared buffer, one write each).
const BATCH_BYTES: usize = 32 * 1024;

/// Delivers what other servers say in `room` to the chat, each event once:
/// a node's events carry a sequence number, and one not above the last seen
/// from that node (and start) is dropped. The messages that have arrived
/// together go to the chat as one batch. The room is marked as spanning
/// servers once another server's event arrives in it.
pub(super) async fn deliver(
    port: Arc<dyn Port>,
    room: Arc<str>,
    mut subscriber: Subscriber,
    spanning: Spanning,
) {
    let mut last_seen = LastSeen::default();
    let mut batch: Vec<Remote> = Vec::new();
    while let Some(first) = subscriber.next().await {
        let mut size = 0;
        let mut arrived = Some(first);
        while let Some(message) = arrived.take() {
            if let Some(decoded) = wire::decode(&message)
                && last_seen.is_new(&decoded)
            {
                size += approximate_size(&decoded.event);
                batch.push(decoded.event);
            }
            if size < BATCH_BYTES {
                // The next message if one is there already; never waits.
                arrived = subscriber.next().now_or_never().flatten();
            }
        }
        if !batch.is_empty() {
            if let Ok(mut spanning) = spanning.lock() {
                spanning.insert(Arc::clone(&room));
            }
            port.deliver_remote(&room, &batch);
            batch.clear();
        }
    }
}

/// The last sequence number seen from each node and start.
#[derive(Default)]
struct LastSeen(HashMap<(String, String), u64>);

impl LastSeen {
    /// Whether `decoded` comes after everything seen from its sender; if
    /// so, it is the last seen now.
    fn is_new(&mut self, decoded: &wire::Decoded) -> bool {
        let key = (decoded.event.from.node.clone(), decoded.epoch.clone());
        let last = self.0.entry(key).or_insert(0);
        if decoded.sequence <= *last {
            return false;
        }
        *last = decoded.sequence;
        true
    }
}

/// About the bytes `event` becomes as a line.
fn approximate_size(event: &Remote) -> usize {
    let text = match &event.what {
        RemoteEvent::Said(text) | RemoteEvent::Action(text) => text.len(),
        _ => 0,
    };
    text + event.from.nick.len() + event.from.node.len() + 32
}
