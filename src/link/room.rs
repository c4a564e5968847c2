//! A room's subscription: what other servers say in a room, each event
//! once and in its sender's order, handed to the chat in batches. With the
//! broker's history, a room subscribed to anew first hands the chat what
//! the broker keeps of it, and after an outage catches up on what was
//! published while it was away before it takes live events again.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_nats::Message;
use async_nats::jetstream::stream;
use futures_util::{FutureExt, Stream, StreamExt};
use tokio::sync::watch;

use super::broker::epoch;
use super::handle::Link;
use super::history;
use super::order::{Order, Verdict};
use super::port::{Port, Remote, RemoteEvent};
use super::wire::{self, Decoded};

/// Rooms known to have members on other servers: found by the rooms'
/// deliveries and by `/who`, read when the link is lost.
pub(super) type Spanning = Arc<Mutex<HashSet<Arc<str>>>>;

/// How far ahead of this machine's clock another server's epoch may be.
const EPOCH_SLACK: Duration = Duration::from_secs(60);

/// How long before an outage was noticed the catch-up after it looks: the
/// lines of those seconds that did arrive are known by their numbers.
const CATCH_UP_SLACK: Duration = Duration::from_secs(10);

/// About the most bytes of events handed to the chat as one batch (which
/// its members get as one shared buffer, one write each).
const BATCH_BYTES: usize = 32 * 1024;

/// The link as the rooms' deliveries see it.
#[derive(Clone, Debug)]
pub(super) struct Linked {
    pub(super) up: bool,
    /// When the link was last lost.
    pub(super) lost_at: SystemTime,
    /// The broker's history of the rooms, if it keeps one.
    pub(super) history: Option<Arc<stream::Stream>>,
}

/// What a room's delivery needs.
pub(super) struct Delivery {
    pub(super) port: Arc<dyn Port>,
    pub(super) link: Arc<Link>,
    pub(super) room: Arc<str>,
    pub(super) spanning: Spanning,
    pub(super) linked: watch::Receiver<Linked>,
    /// How many lines of the broker's history a room takes.
    pub(super) history_lines: usize,
    /// Whether the room is new here (its history goes to the chat first),
    /// or subscribed to again (it catches up on what it missed since then).
    pub(super) start: Start,
}

#[derive(Clone, Copy, Debug)]
pub(super) enum Start {
    New,
    Again { since: SystemTime },
}

/// Tells the chat the room has no history if the delivery ends before it
/// told it what the broker keeps: the members who joined meanwhile are
/// greeted all the same.
struct Seeding<'a> {
    port: &'a dyn Port,
    room: &'a str,
    done: bool,
}

impl Seeding<'_> {
    fn give(&mut self, lines: &[(Remote, SystemTime)]) {
        self.done = true;
        self.port.history(self.room, lines);
    }
}

impl Drop for Seeding<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.port.history(self.room, &[]);
        }
    }
}

/// Delivers what other servers say in the room to the chat, each event once
/// and in its sender's order ([`Order`]). A message that is not a valid
/// event of this room, or whose text is longer than the chat takes, is
/// dropped and counted. The messages that have arrived together go to the
/// chat as one batch. The room is marked as spanning servers once another
/// server's event arrives in it. While the link is down, and until what
/// was published meanwhile has been fetched, live events wait.
pub(super) async fn deliver(
    delivery: Delivery,
    mut subscriber: impl Stream<Item = Message> + Unpin,
) {
    let Delivery {
        port,
        link,
        room,
        spanning,
        mut linked,
        history_lines,
        start,
    } = delivery;
    let mut order = Order::default();
    let max_text = port.max_text();
    let started = epoch();
    let mut seeding = Seeding {
        port: &*port,
        room: &room,
        done: false,
    };
    // Since when the delivery has to catch up, once the link is up.
    let mut behind = match start {
        Start::Again { since } => Some(since),
        Start::New => None,
    };
    if let Start::New = start {
        let now = linked.borrow_and_update().clone();
        let mut seed = Vec::new();
        match (&now.history, now.up) {
            (Some(stream), true) => {
                let stored = fetched(stream, &room, history_lines).await;
                let this_run = (&*link.node, started);
                seed = history_of(stored, &mut order, this_run, max_text);
            }
            (_, false) => behind = Some(now.lost_at),
            (None, true) => {}
        }
        seeding.give(&seed);
    }
    drop(seeding);
    let mut batch: Vec<Remote> = Vec::new();
    loop {
        if let Some(since) = behind {
            let now = linked.borrow_and_update().clone();
            if now.up {
                behind = None;
                if let Some(stream) = &now.history {
                    let limits = (history_lines, max_text);
                    let caught = catch_up(stream, &room, limits, since, &link.node, &mut order);
                    for part in in_batches(&caught.await) {
                        port.deliver_remote(&room, part);
                    }
                }
            }
        }
        tokio::select! {
            biased;
            changed = linked.changed() => {
                if changed.is_err() {
                    return;
                }
                let now = linked.borrow_and_update().clone();
                if !now.up {
                    behind.get_or_insert(now.lost_at);
                }
            }
            arrived = subscriber.next(), if behind.is_none() => {
                let Some(first) = arrived else { return };
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
    }
}

/// The lines of `stored` a room new here shows as its history, each once:
/// not those of this server's run that began at `started` (its members
/// had them live). Every one goes into `order`, so that a live event
/// that was in the history too is not delivered again.
fn history_of(
    stored: Vec<history::Stored>,
    order: &mut Order,
    (this_node, started): (&str, u128),
    max_text: usize,
) -> Vec<(Remote, SystemTime)> {
    let mut lines = Vec::with_capacity(stored.len());
    for stored in stored {
        let Ok(decoded) = checked(&stored.message, max_text) else {
            continue;
        };
        let own_now = decoded.event.from.node == this_node && decoded.epoch >= started;
        if !own_now && new(order, &decoded) {
            lines.push((decoded.event, stored.published));
        }
    }
    lines
}

/// What the broker keeps of `room`; nothing if it does not answer.
async fn fetched(stream: &stream::Stream, room: &str, limit: usize) -> Vec<history::Stored> {
    match history::fetch(stream, room, limit).await {
        Ok(stored) => stored,
        Err(error) => {
            tracing::warn!("link: reading the history of #{room} from the broker: {error:#}");
            Vec::new()
        }
    }
}

/// The lines of other servers the broker kept in `room` since `since`
/// (less [`CATCH_UP_SLACK`]) that have not been delivered here.
async fn catch_up(
    stream: &stream::Stream,
    room: &str,
    (limit, max_text): (usize, usize),
    since: SystemTime,
    this_node: &str,
    order: &mut Order,
) -> Vec<Remote> {
    let from = since.checked_sub(CATCH_UP_SLACK).unwrap_or(since);
    let mut caught = Vec::new();
    for stored in fetched(stream, room, limit).await {
        if stored.published < from {
            continue;
        }
        let Ok(decoded) = checked(&stored.message, max_text) else {
            continue;
        };
        if decoded.event.from.node != this_node && new(order, &decoded) {
            caught.push(decoded.event);
        }
    }
    caught
}

/// `events` in runs of about [`BATCH_BYTES`].
fn in_batches(events: &[Remote]) -> impl Iterator<Item = &[Remote]> {
    let mut rest = events;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut size = 0;
        let count = rest
            .iter()
            .take_while(|event| {
                let fits = size < BATCH_BYTES;
                size += approximate_size(event);
                fits
            })
            .count();
        let (part, after) = rest.split_at(count);
        rest = after;
        Some(part)
    })
}

/// Whether `decoded`, read from the broker's history, is new to `order`;
/// one it refuses (older than what arrived) was delivered already, or is
/// too old to matter. Live events older than it are not new any more: they
/// were in the history, or were said before it.
fn new(order: &mut Order, decoded: &Decoded) -> bool {
    let node = &decoded.event.from.node;
    let new = order.admit(node, decoded.epoch, decoded.sequence) == Verdict::New;
    order.seen_below(node);
    new
}

/// The event `message` carries if it is a valid one of this room, its text
/// within `max_text` and its epoch not from the future.
fn checked(message: &Message, max_text: usize) -> Result<Decoded, ()> {
    let decoded = wire::decode(message).ok_or(())?;
    if let RemoteEvent::Said(text) | RemoteEvent::Action(text) = &decoded.event.what
        && text.len() > max_text
    {
        return Err(());
    }
    // An epoch from the future would outrank the node's real one.
    if decoded.epoch > epoch() + EPOCH_SLACK.as_nanos() {
        return Err(());
    }
    Ok(decoded)
}

/// The event `message` carries if it is new; `Ok(None)` for one seen
/// already, `Err` for a malformed one.
fn admit(
    order: &mut Order,
    message: &Message,
    max_text: usize,
    this_node: &str,
) -> Result<Option<Decoded>, ()> {
    let decoded = checked(message, max_text)?;
    // This server's own events never come back (the client says no
    // echo): one that claims to be is forged.
    if decoded.event.from.node == this_node {
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
        seeds: Mutex<Vec<(String, Vec<Remote>)>>,
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
        fn history(&self, room: &str, lines: &[(Remote, SystemTime)]) {
            let lines = lines.iter().map(|(event, _)| event.clone()).collect();
            self.seeds.lock().unwrap().push((room.to_string(), lines));
        }
        fn link_lost(&self, _: &[Arc<str>]) {}
        fn link_restored(&self, _: &[(Arc<str>, u64)]) {}
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

    #[test]
    fn live_events_that_were_in_the_history_are_not_delivered_again() {
        let at = SystemTime::now();
        let stored = |node, epoch, sequence, text| history::Stored {
            message: said(node, epoch, sequence, text),
            published: at,
        };
        let mut order = Order::default();
        let kept = vec![
            stored("two", 1, 1, "a"),
            stored("two", 1, 2, "b"),
            stored("two", 1, 2, "b"),
            // This server's, of an earlier run and of this one.
            stored("here", 1, 1, "old"),
            stored("here", 9, 1, "now"),
        ];
        let history = history_of(kept, &mut order, ("here", 5), 8);
        let texts: Vec<&[u8]> = history
            .iter()
            .map(|(event, _)| match &event.what {
                RemoteEvent::Said(text) => &text[..],
                other => panic!("only lines were kept, not {other:?}"),
            })
            .collect();
        assert_eq!(texts, [&b"a"[..], b"b", b"old"]);
        // Live, b again, then c: only c is new.
        let mut live =
            |sequence, text| admit(&mut order, &said("two", 1, sequence, text), 8, "here");
        assert_eq!(live(2, "b"), Ok(None));
        assert!(matches!(live(3, "c"), Ok(Some(_))));
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
        let (_up, linked) = watch::channel(Linked {
            up: true,
            lost_at: SystemTime::now(),
            history: None,
        });
        let delivering = deliver(
            Delivery {
                port: chat,
                link: Arc::clone(&link),
                room: "lobby".into(),
                spanning: Arc::clone(&spanning),
                linked,
                history_lines: 50,
                start: Start::New,
            },
            messages,
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
        // Without the broker's history, the room's is empty, said first.
        assert_eq!(*port.seeds.lock().unwrap(), [("lobby".to_string(), vec![])]);
    }
}
