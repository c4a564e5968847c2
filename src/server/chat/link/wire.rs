//! What travels between linked servers: the subjects, the headers that
//! carry an event's nick, node and sequence, and how an event from another
//! server becomes a line for this server's members (escaped here, as every
//! server escapes for its own).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_nats::{HeaderMap, Message, Subscriber};
use bytes::{Bytes, BytesMut};

use super::Event;
use crate::protocol::chat as text;
use crate::server::chat::Hub;
use crate::server::chat::escape::{escape_into, escaped};

pub(super) const ROOM_SUBJECT: &str = "chat.room.";
pub(super) const WHO_SUBJECT: &str = "chat.who";
pub(super) const ROOMS_SUBJECT: &str = "chat.rooms";
pub(super) const NODE_SUBJECT: &str = "chat.node.";
/// No server subscribes here: a request to it is answered by the broker
/// itself ("no responders"), after everything the server sent before it.
pub(super) const SYNC_SUBJECT: &str = "chat.sync";

pub(super) const NODE: &str = "Chat-Node";
/// When the sending server started: with the node, whose sequence it is.
pub(super) const EPOCH: &str = "Chat-Epoch";
pub(super) const SEQUENCE: &str = "Chat-Seq";
pub(super) const KIND: &str = "Chat-Kind";
pub(super) const NICK: &str = "Chat-Nick";
pub(super) const OLD_NICK: &str = "Chat-Old";
pub(super) const WHY: &str = "Chat-Why";
pub(super) const ROOM: &str = "Chat-Room";
pub(super) const TO: &str = "Chat-To";

/// The subject, headers and payload that carry `event`, the `sequence`th
/// event of `node` since it started at `epoch`.
pub(super) fn encode(
    event: Event,
    node: &str,
    epoch: &str,
    sequence: u64,
) -> (String, HeaderMap, Bytes) {
    let mut headers = HeaderMap::new();
    headers.insert(NODE, node);
    headers.insert(EPOCH, epoch);
    headers.insert(SEQUENCE, sequence.to_string());
    let (room, payload) = match event {
        Event::Said { room, nick, text } => {
            headers.insert(KIND, "said");
            headers.insert(NICK, &*nick);
            (room, text)
        }
        Event::Action { room, nick, text } => {
            headers.insert(KIND, "action");
            headers.insert(NICK, &*nick);
            (room, text)
        }
        Event::Joined { room, nick } => {
            headers.insert(KIND, "joined");
            headers.insert(NICK, &*nick);
            (room, Bytes::new())
        }
        Event::Left { room, nick, why } => {
            headers.insert(KIND, "left");
            headers.insert(NICK, &*nick);
            if let Some(why) = why {
                headers.insert(WHY, why);
            }
            (room, Bytes::new())
        }
        Event::Renamed { room, old, new } => {
            headers.insert(KIND, "renamed");
            headers.insert(OLD_NICK, &*old);
            headers.insert(NICK, &*new);
            (room, Bytes::new())
        }
    };
    (format!("{ROOM_SUBJECT}{room}"), headers, payload)
}

/// The next message of `subscriber`; `None` once it has ended.
pub(super) async fn next(subscriber: &mut Subscriber) -> Option<Message> {
    use futures_core::Stream;
    std::future::poll_fn(|context| std::pin::Pin::new(&mut *subscriber).poll_next(context)).await
}

/// The most bytes of lines from other servers handed to a room's members
/// as one shared buffer.
const BATCH_BYTES: usize = 32 * 1024;

/// Delivers what other servers say in `room` to its local members, each
/// event once: a node's events carry a sequence number, and one not above
/// the last seen from that node (and start) is dropped. The messages that
/// have arrived together go out as one buffer, one write per member.
pub(super) async fn deliver_room(
    hub: Arc<Hub>,
    room: Arc<str>,
    mut subscriber: Subscriber,
    spanning: Arc<Mutex<HashSet<Arc<str>>>>,
) {
    let mut last_seen: HashMap<(String, String), u64> = HashMap::new();
    let mut batch = BytesMut::new();
    while let Some(message) = next(&mut subscriber).await {
        let mut message = Some(message);
        while let Some(arrived) = message.take() {
            if add_line(&mut batch, &arrived, &mut last_seen, &hub)
                && let Ok(mut spanning) = spanning.lock()
            {
                spanning.insert(Arc::clone(&room));
            }
            if batch.len() < BATCH_BYTES {
                message = ready_now(&mut subscriber);
            }
        }
        if !batch.is_empty() {
            hub.deliver_to_room(&room, &std::mem::take(&mut batch).freeze());
        }
    }
}

/// The next message if one is there already; never waits.
fn ready_now(subscriber: &mut Subscriber) -> Option<Message> {
    use futures_core::Stream;
    let waker = std::task::Waker::noop();
    let mut context = std::task::Context::from_waker(waker);
    match std::pin::Pin::new(subscriber).poll_next(&mut context) {
        std::task::Poll::Ready(message) => message,
        std::task::Poll::Pending => None,
    }
}

/// Appends the line `message` stands for to `batch`, unless it was seen
/// already or is not one of ours; says whether it did.
fn add_line(
    batch: &mut BytesMut,
    message: &Message,
    last_seen: &mut HashMap<(String, String), u64>,
    hub: &Hub,
) -> bool {
    let Some(headers) = &message.headers else {
        return false;
    };
    let header = |name: &str| headers.get(name).map(|value| value.as_str());
    let (Some(node), Some(kind), Some(nick)) = (header(NODE), header(KIND), header(NICK)) else {
        return false;
    };
    let sequence: u64 = header(SEQUENCE).and_then(|s| s.parse().ok()).unwrap_or(0);
    let key = (node.to_string(), header(EPOCH).unwrap_or("").to_string());
    let last = last_seen.entry(key).or_insert(0);
    if sequence <= *last {
        return false;
    }
    *last = sequence;
    let who = format!("{nick}@{node}");
    match kind {
        "said" => {
            text::said_prefix(batch, &who);
            escape_into(batch, &message.payload);
        }
        "action" => {
            text::action_prefix(batch, &who);
            escape_into(batch, &message.payload);
        }
        "joined" => batch.extend_from_slice(text::joined(&who).as_bytes()),
        "left" => {
            let why = header(WHY).map(|why| escaped(why.as_bytes()));
            batch.extend_from_slice(text::left(&who, why.as_deref()).as_bytes());
        }
        "renamed" => {
            let old = format!("{}@{node}", header(OLD_NICK).unwrap_or(""));
            batch.extend_from_slice(text::renamed(&old, &who).as_bytes());
        }
        _ => return false,
    }
    batch.extend_from_slice(hub.delimiter());
    true
}
