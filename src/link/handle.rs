//! The chat's handle on the link: it publishes and asks without waiting,
//! and the link's task takes what it hands over from the channels here.
//!
//! What members say waits for the broker in a queue bounded in bytes: a
//! line that finds it full is not dropped but handed back as [`Blocked`],
//! and its member is read no further until the line has room (TCP then
//! slows the talker, as `--max-rate` does). Notices (joins, leaves, nick
//! changes) are small and come at most at a member's rate, so they go
//! past the bound rather than wait.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore, mpsc};

use super::port::{Answer, Event, Found, RemoteNick};

/// The most bytes of members' lines waiting for the broker; a line past it
/// waits for room, and its member with it.
pub const QUEUE_BYTES: usize = 4 << 20;

/// How long `/who`, `/rooms` and `/msg` wait for the other servers.
pub const GATHER_WAIT: Duration = Duration::from_secs(1);
/// How long a joining member's `here:` line waits for the other servers.
pub const HERE_WAIT: Duration = Duration::from_millis(500);

/// An event for the broker, with the room it takes in the queue (none for
/// notices), given back once the task has handed it to the client.
pub(super) struct Queued {
    pub(super) event: Event,
    pub(super) _room: Option<OwnedSemaphorePermit>,
}

/// A member's line that found the queue full: it waits for room, and is
/// handed to the link as soon as there is.
pub struct Blocked {
    event: Option<Event>,
    room: Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>,
}

impl Blocked {
    /// Ready once the line has been handed to `link`.
    pub fn poll_handed(&mut self, link: &Link, context: &mut Context<'_>) -> Poll<()> {
        let room = ready!(self.room.as_mut().poll(context));
        if let Some(event) = self.event.take() {
            link.send(event, room.ok());
        }
        Poll::Ready(())
    }
}

/// What the chat asks of the link, in order, never dropped.
pub(super) enum Control {
    /// The room has local members now, or has none any more.
    Subscribe(Arc<str>),
    Unsubscribe(Arc<str>),
    /// `/who`, or the `here:` line: the other servers' members of the
    /// room, answered within `wait`.
    Who {
        room: Arc<str>,
        wait: Duration,
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
    /// `/msg NICK` for a nick not on this server: sent to the one other
    /// server that has a member NICK, if only one has.
    MessageAnyone {
        from: Arc<str>,
        nick: String,
        text: Bytes,
        answer: Answer<Found>,
    },
}

/// The chat's handle on the link.
pub struct Link {
    pub(super) node: Arc<str>,
    events: mpsc::UnboundedSender<Queued>,
    /// One permit a byte of [`QUEUE_BYTES`]: what members' lines may take.
    room: Arc<Semaphore>,
    control: mpsc::UnboundedSender<Control>,
    /// Whether the broker is reachable now; while it is not, notices are
    /// dropped, and so are lines unless the broker keeps history.
    pub(super) connected: AtomicBool,
    /// Whether the broker keeps the rooms' history: lines said while it is
    /// away are then kept (up to `--link-buffer`) and published once it
    /// is back.
    pub(super) keeps: AtomicBool,
    /// Events dropped since the last report.
    pub(super) dropped: AtomicU64,
    /// Messages from the broker dropped as malformed (a bad field, a line
    /// too long, an impossible sequence) since the last report.
    pub(super) malformed: AtomicU64,
}

impl Link {
    /// One more malformed message from the broker, for the next report.
    pub(super) fn count_malformed(&self) {
        self.malformed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// Hands a notice to the link without waiting; dropped (and counted)
    /// only while the broker is away.
    pub fn publish(&self, event: Event) {
        if self.connected.load(Ordering::Relaxed) {
            self.send(event, None);
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Hands a member's line (or `/me`) to the link if the queue has room
    /// for it; if not, gives it back to wait for room. Dropped (and
    /// counted) only while the broker is away, if it keeps no history.
    pub fn publish_line(&self, event: Event) -> Result<(), Blocked> {
        if !self.connected.load(Ordering::Relaxed) && !self.keeps.load(Ordering::Relaxed) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        // A line longer than the whole queue waits for all of it.
        let bytes = event.text_len().clamp(1, QUEUE_BYTES) as u32;
        match Arc::clone(&self.room).try_acquire_many_owned(bytes) {
            Ok(room) => {
                self.send(event, Some(room));
                Ok(())
            }
            Err(_) => Err(Blocked {
                event: Some(event),
                room: Box::pin(Arc::clone(&self.room).acquire_many_owned(bytes)),
            }),
        }
    }

    fn send(&self, event: Event, room: Option<OwnedSemaphorePermit>) {
        let queued = Queued { event, _room: room };
        if self.events.send(queued).is_err() {
            // The task has ended (its node name was taken after a restart).
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn subscribe(&self, room: Arc<str>) {
        self.ask(Control::Subscribe(room));
    }

    pub fn unsubscribe(&self, room: Arc<str>) {
        self.ask(Control::Unsubscribe(room));
    }

    /// `/who`: every other server's members of `room`, within a second.
    pub fn who(&self, room: Arc<str>, answer: Answer<Vec<RemoteNick>>) {
        let wait = GATHER_WAIT;
        self.ask(Control::Who { room, wait, answer });
    }

    /// The `here:` line of a member joining `room`: every other server's
    /// members of it, within half a second.
    pub fn here(&self, room: Arc<str>, answer: Answer<Vec<RemoteNick>>) {
        let wait = HERE_WAIT;
        self.ask(Control::Who { room, wait, answer });
    }

    /// `/rooms`: every other server's rooms, within a second.
    pub fn rooms(&self, answer: Answer<Vec<(String, usize)>>) {
        self.ask(Control::Rooms { answer });
    }

    /// `/msg NICK TEXT` for a nick not on this server: sent to the only
    /// other server with a member NICK, within a second and a half.
    pub fn message_anyone(&self, from: Arc<str>, nick: String, text: &[u8], answer: Answer<Found>) {
        let text = Bytes::copy_from_slice(text);
        self.ask(Control::MessageAnyone {
            from,
            nick,
            text,
            answer,
        });
    }

    /// A question that cannot be asked (the link's task has ended) is
    /// dropped, and its answer says that nobody answered.
    fn ask(&self, control: Control) {
        let _ = self.control.send(control);
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
        self.ask(Control::Message {
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
    pub(super) events: mpsc::UnboundedReceiver<Queued>,
    pub(super) control: mpsc::UnboundedReceiver<Control>,
}

impl Link {
    /// A handle for `node`, the broker reachable now or not, and the ends
    /// of its channels for the task.
    pub(super) fn new(node: Arc<str>, connected: bool) -> (Arc<Link>, Handed) {
        let (events, event_rx) = mpsc::unbounded_channel();
        let (control, control_rx) = mpsc::unbounded_channel();
        let link = Arc::new(Link {
            node,
            events,
            room: Arc::new(Semaphore::new(QUEUE_BYTES)),
            control,
            connected: AtomicBool::new(connected),
            keeps: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
        });
        let handed = Handed {
            events: event_rx,
            control: control_rx,
        };
        (link, handed)
    }
}
