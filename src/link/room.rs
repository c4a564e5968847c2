//! A room's subscription: what other servers say in a room, each event
//! once and in its sender's order, handed to the chat in batches.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_nats::Message;
use futures_util::{FutureExt, Stream, StreamExt};

use super::broker::epoch;
use super::handle::Link;
use super::order::{Order, Verdict};
use super::port::{Port, Remote, RemoteEvent};
use super::wire::{self, Decoded};

/// Rooms known to have members on other servers: found by the rooms'
/// deliveries and by `/who`, read when the link is lost.
pub(super) type Spanning = Arc<Mutex<HashSet<Arc<str>>>>;

/// How far ahead of this machine's clock another server's epoch may be.
const EPOCH_SLACK: std::time::Duration = std::time::Duration::from_secs(60);

/// About the most bytes of events handed to the chat as one batch (which
/// its members get as one shared buffer, one write each).
const BATCH_BYTES: usize = 32 * 1024;

/// Delivers what other servers say in `room` to the chat, each event once
/// and in its sender's order ([`Order`]). A message that is not a valid
/// event of this room, or whose text is longer than the chat takes, is
/// dropped and counted. The messages that have arrived together go to the
/// chat as one batch. The room is marked as spanning servers once another
/// server's event arrives in it.
pub(super) async fn deliver(
    port: Arc<dyn Port>,
    link: Arc<Link>,
    room: Arc<str>,
    mut subscriber: impl Stream<Item = Message> + Unpin,
    spanning: Spanning,
) {
    let mut order = Order::default();
    let mut batch: Vec<Remote> = Vec::new();
    let max_text = port.max_text();
    while let Some(first) = subscriber.next().await {
        let mut size = 0;
        let mut arrived = Some(first);
        while let Some(message) = arrived.take() {
            match admit(&mut order, &message, max_text, &link.node) {
                Ok(Some(decoded)) => {
                    size += approximate_size(&decoded.event);
                    batch.push(decoded.event);
                }
                Ok(None) => {}
                Err(()) => link.count_malformed(),
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

/// The event `message` carries if it is new; `Ok(None)` for one seen
/// already, `Err` for a malformed one.
fn admit(
    order: &mut Order,
    message: &Message,
    max_text: usize,
    this_node: &str,
) -> Result<Option<Decoded>, ()> {
    let decoded = wire::decode(message).ok_or(())?;
    // This server's own events never come back (the client says no
    // echo): one that claims to be is forged.
    if decoded.event.from.node == this_node {
        return Err(());
    }
    if let RemoteEvent::Said(text) | RemoteEvent::Action(text) = &decoded.event.what
        && text.len() > max_text
    {
        return Err(());
    }
    // An epoch from the future would outrank the node's real one.
    if decoded.epoch > epoch() + EPOCH_SLACK.as_nanos() {
        return Err(());
    }
    let node = &decoded.event.from.node;
    match order.admit(node, decoded.epoch, decoded.sequence) {
        Verdict::New => Ok(Some(decoded)),
        Verdict::Duplicate => Ok(None),
        Verdict::Refused => Err(()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::{Event, RemoteNick};
    use bytes::Bytes;

    /// A chat that records what the link hands it.
    #[derive(Default)]
    struct Recorder {
        batches: Mutex<Vec<(String, Vec<Remote>)>>,
    }

    impl Port for Recorder {
        fn deliver_remote(&self, room: &str, events: &[Remote]) {
            let batch = (room.to_string(), events.to_vec());
            self.batches.lock().unwrap().push(batch);
        }
        fn deliver_private(&self, _: &str, _: &RemoteNick, _: &[u8]) -> Option<Arc<str>> {
            None
        }
        fn max_text(&self) -> usize {
            8
        }
        fn find_member(&self, _: &str) -> Option<Arc<str>> {
            None
        }
        fn local_names(&self, _: &str) -> Vec<String> {
            Vec::new()
        }
        fn local_rooms(&self) -> Vec<(String, usize)> {
            Vec::new()
        }
        fn link_changed(&self, _: &[Arc<str>], _: bool) {}
    }

    /// The message that carries `text` said by alice on `node`, the
    /// `sequence`th event of that node's run `epoch`.
    fn said(node: &str, epoch: u128, sequence: u64, text: &'static str) -> Message {
        let event = Event::Said {
            room: "lobby".into(),
            nick: "alice".into(),
            text: Bytes::from_static(text.as_bytes()),
        };
        let (subject, headers, payload) = wire::encode(event, node, epoch, sequence);
        wire::message(subject, headers, payload)
    }

    #[tokio::test]
    async fn each_event_is_handed_over_once_in_order_and_ready_ones_together() {
        let port = Arc::new(Recorder::default());
        let spanning = Spanning::default();
        let mut forged = said("one", 1, 3, "x");
        forged
            .headers
            .as_mut()
            .unwrap()
            .insert("Chat-Nick", "\x1b[2K");
        let messages = futures_util::stream::iter([
            said("one", 1, 1, "a"),
            said("one", 1, 2, "b"),
            // A repeat, and an old one: dropped.
            said("one", 1, 2, "b"),
            said("one", 1, 1, "a"),
            // Malformed: a nick that is none, a text too long, a number
            // impossibly far ahead. Dropped and counted.
            forged,
            said("one", 1, 4, "longer than 8"),
            said("one", 1, u64::MAX, "y"),
            // Another node, and the same node's next run, count apart.
            said("two", 1, 1, "c"),
            said("one", 2, 1, "d"),
        ]);
        let chat: Arc<dyn Port> = Arc::clone(&port) as _;
        let (link, _handed) = Link::new("here".into(), true);
        let delivering = deliver(
            chat,
            Arc::clone(&link),
            "lobby".into(),
            messages,
            Arc::clone(&spanning),
        );
        delivering.await;
        assert_eq!(link.malformed.load(std::sync::atomic::Ordering::Relaxed), 3);
        let batches = port.batches.lock().unwrap();
        // Everything was there at once: one batch.
        assert_eq!(batches.len(), 1);
        let (room, events) = &batches[0];
        assert_eq!(room, "lobby");
        let said: Vec<(&str, &[u8])> = events
            .iter()
            .map(|event| match &event.what {
                RemoteEvent::Said(text) => (event.from.node.as_str(), &text[..]),
                other => panic!("only lines were sent, not {other:?}"),
            })
            .collect();
        assert_eq!(
            said,
            [
                ("one", &b"a"[..]),
                ("one", b"b"),
                ("two", b"c"),
                ("one", b"d")
            ]
        );
        assert!(spanning.lock().unwrap().contains("lobby"));
    }
}
