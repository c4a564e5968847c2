//! The chat's handle on the link: it publishes and asks without waiting,
//! and the link's task takes what it hands over from the channels here.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::port::{Answer, Event, RemoteNick};

/// Events waiting for the broker; past this, new ones are dropped (and
/// counted) rather than waited for.
const QUEUE: usize = 16 * 1024;

/// What the chat asks of the link, in order, never dropped.
pub(super) enum Control {
    /// The room has local members now, or has none any more.
    Subscribe(Arc<str>),
    Unsubscribe(Arc<str>),
    /// `/who`: the other servers' members of the room.
    Who {
        room: Arc<str>,
        answer: Answer<Vec<RemoteNick>>,
    },
    /// `/rooms`: the other servers' rooms, with their members added up.
    Rooms {
        answer: Answer<Vec<(String, usize)>>,
    },
    /// `/msg NICK@NODE`: the receiver's nick as shown, or `None`.
    Message {
        from: Arc<str>,
        to: RemoteNick,
        text: Bytes,
        answer: Answer<Option<String>>,
    },
}

/// The chat's handle on the link.
pub struct Link {
    pub(super) node: Arc<str>,
    events: mpsc::Sender<Event>,
    control: mpsc::UnboundedSender<Control>,
    /// Whether the broker is reachable now; while it is not, events are
    /// dropped: only the members on this server hear what is said.
    pub(super) connected: AtomicBool,
    /// Events dropped since the last report.
    pub(super) dropped: AtomicU64,
}

impl Link {
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Hands `event` to the link without waiting; dropped (and counted)
    /// while the broker is away or the queue is full.
    pub fn publish(&self, event: Event) {
        if !self.connected.load(Ordering::Relaxed) || self.events.try_send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn subscribe(&self, room: Arc<str>) {
        let _ = self.control.send(Control::Subscribe(room));
    }

    pub fn unsubscribe(&self, room: Arc<str>) {
        let _ = self.control.send(Control::Unsubscribe(room));
    }

    /// `/who`: every other server's members of `room`, within a second.
    pub fn who(&self, room: Arc<str>, answer: Answer<Vec<RemoteNick>>) {
        let _ = self.control.send(Control::Who { room, answer });
    }

    /// `/rooms`: every other server's rooms, within a second.
    pub fn rooms(&self, answer: Answer<Vec<(String, usize)>>) {
        let _ = self.control.send(Control::Rooms { answer });
    }

    /// `/msg NICK@NODE TEXT` for another server: the receiver's nick as
    /// that server shows it, or `None` if it has no such member.
    pub fn message(
        &self,
        from: Arc<str>,
        to: RemoteNick,
        text: &[u8],
        answer: Answer<Option<String>>,
    ) {
        let _ = self.control.send(Control::Message {
            from,
            to,
            text: Bytes::copy_from_slice(text),
            answer,
        });
    }
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// The task's ends of a handle's channels.
pub(super) struct Handed {
    pub(super) events: mpsc::Receiver<Event>,
    pub(super) control: mpsc::UnboundedReceiver<Control>,
}

impl Link {
    /// A handle for `node`, the broker reachable now or not, and the ends
    /// of its channels for the task.
    pub(super) fn new(node: Arc<str>, connected: bool) -> (Arc<Link>, Handed) {
        let (events, event_rx) = mpsc::channel(QUEUE);
        let (control, control_rx) = mpsc::unbounded_channel();
        let link = Arc::new(Link {
            node,
            events,
            control,
            connected: AtomicBool::new(connected),
            dropped: AtomicU64::new(0),
        });
        let handed = Handed {
            events: event_rx,
            control: control_rx,
        };
        (link, handed)
    }
}
