//! Linking chat servers through a NATS broker (`--link nats://HOST:PORT`):
//! rooms with the same name on every linked server are one room. One task
//! owns the NATS client; the hub hands it what to publish through a
//! bounded queue and never waits for it, so a slow or absent broker cannot
//! stall a member. Each line goes to the broker once, as its raw bytes with
//! the sender's nick and node in headers; each server escapes it for its
//! own members.
//!
//! Subjects: `chat.room.ROOM` (what is said and done in a room; a server
//! subscribes while it has members there), `chat.who` and `chat.rooms`
//! (every server answers with its own part), `chat.node.NODE` (private
//! messages, and the check that a node name is free).
//!
//! The link is a leaf: it knows nothing of members, mailboxes or what
//! members are sent. The chat reaches it through the handle [`Link`], and
//! it reaches the chat through one narrow [`Port`] the chat implements;
//! answers to questions asked of every server go back through the
//! callback the question came with.
//!
//! The task is in `task`, the questions to every server in `ask`, and the
//! encoding and decoding of what goes over the wire in `wire`.

mod ask;
mod room;
mod task;
mod wire;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};
use async_nats::{Client, ConnectOptions, HeaderMap};
use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::{info, warn};

use task::Task;
use wire::{KIND, NODE_SUBJECT, SYNC_SUBJECT};

/// Events waiting for the broker; past this, new ones are dropped (and
/// counted) rather than waited for.
const QUEUE: usize = 16 * 1024;
/// How long a server waits at start for a broker that is slow to answer
/// before serving alone. A broker that is not there (refused, unreachable)
/// is known as soon as the first attempt fails.
const START_WAIT: Duration = Duration::from_secs(5);
/// The longest a server waits for another that holds its node name to
/// say so.
const NAME_CHECK_WAIT: Duration = Duration::from_secs(5);
/// The longest a server waits for the broker to confirm it has handled
/// what the server sent (its subscriptions).
const ROUND_TRIP_WAIT: Duration = Duration::from_secs(1);
/// Pause between attempts to reach the broker: it is back in use within a
/// second of its return.
const RECONNECT_DELAY: Duration = Duration::from_millis(100);

/// `--link` and `--node`.
#[derive(Clone, Debug)]
pub struct LinkSettings {
    pub url: String,
    pub node: String,
}

/// Something that happened in a room, for the other servers.
#[derive(Debug)]
pub enum Event {
    Said {
        room: Arc<str>,
        nick: Arc<str>,
        text: Bytes,
    },
    Action {
        room: Arc<str>,
        nick: Arc<str>,
        text: Bytes,
    },
    Joined {
        room: Arc<str>,
        nick: Arc<str>,
    },
    Left {
        room: Arc<str>,
        nick: Arc<str>,
        why: Option<String>,
    },
    Renamed {
        room: Arc<str>,
        old: Arc<str>,
        new: Arc<str>,
    },
}

/// A member of another server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteNick {
    pub nick: String,
    pub node: String,
}

/// Something that happened in a room on another server, as it arrived.
#[derive(Debug, PartialEq, Eq)]
pub struct Remote {
    pub from: RemoteNick,
    pub what: RemoteEvent,
}

#[derive(Debug, PartialEq, Eq)]
pub enum RemoteEvent {
    /// A chat line, as its raw bytes.
    Said(Bytes),
    /// A `/me`, as its raw bytes.
    Action(Bytes),
    Joined,
    Left {
        why: Option<String>,
    },
    /// `from` is the new nick.
    Renamed {
        old: String,
    },
}

/// What the link needs of the chat: where what other servers say goes,
/// and what this server answers to their questions.
pub trait Port: Send + Sync + 'static {
    /// Events from other servers in `room`, in the order they arrived
    /// (each once), for the room's local members: together, as one batch.
    fn deliver_remote(&self, room: &str, events: &[Remote]);
    /// A private message from another server for the local member `to`;
    /// the member's nick as shown, or `None` if there is no such member.
    fn deliver_private(&self, to: &str, from: &RemoteNick, text: &[u8]) -> Option<Arc<str>>;
    /// The local members of `room`, sorted.
    fn local_names(&self, room: &str) -> Vec<String>;
    /// The local rooms and how many members each has here.
    fn local_rooms(&self) -> Vec<(String, usize)>;
    /// The link to the other servers was lost (`up` is false) or is back:
    /// the members of `rooms` are to be told.
    fn link_changed(&self, rooms: &[Arc<str>], up: bool);
}

/// Where the answer to a question asked of every server goes, once.
pub type Answer<T> = Box<dyn FnOnce(T) + Send>;

/// What the chat asks of the link, in order, never dropped.
enum Control {
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
    node: Arc<str>,
    events: mpsc::Sender<Event>,
    control: mpsc::UnboundedSender<Control>,
    /// Whether the broker is reachable now; while it is not, events are
    /// dropped: only the members on this server hear what is said.
    connected: AtomicBool,
    /// Events dropped since the last report.
    dropped: AtomicU64,
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

/// Connects to the broker (waiting for the first attempt, up to
/// `START_WAIT`; if it is not there, the link is made in the background
/// once it is), checks that the node name is free, and starts the link's
/// task, which reaches the chat through `port`.
pub async fn start(port: Arc<dyn Port>, settings: LinkSettings) -> anyhow::Result<Arc<Link>> {
    let (client, mut nats_events) = connect(&settings.url).await?;
    let connected = first_attempt(&mut nats_events).await;
    let node: Arc<str> = settings.node.as_str().into();
    if connected && node_in_use(&client, &node).await {
        bail!(
            "node name \"{node}\" is already in use on the link {}; choose another with --node",
            settings.url
        );
    }
    // Made before the server is said to be linked, so another server
    // started after that line finds this one.
    let subscriptions = task::Subscriptions::make(&client, &node)
        .await
        .with_context(|| format!("subscribing on the link {}", settings.url))?;
    if connected {
        round_trip(&client).await;
        info!("linked through {} as node {node}", settings.url);
    } else {
        warn!(
            "link: {} does not answer; serving this server's members alone, and linking once it does",
            settings.url
        );
    }
    let (events, event_rx) = mpsc::channel(QUEUE);
    let (control, control_rx) = mpsc::unbounded_channel();
    let link = Arc::new(Link {
        node,
        events,
        control,
        connected: AtomicBool::new(connected),
        dropped: AtomicU64::new(0),
    });
    let task = Task::new(port, Arc::clone(&link), client, settings.url, connected);
    tokio::spawn(task.run(subscriptions, event_rx, control_rx, nats_events));
    Ok(link)
}

/// A NATS client for `url` that retries for ever, and the events it
/// reports (connected, disconnected, errors).
async fn connect(
    url: &str,
) -> anyhow::Result<(Client, mpsc::UnboundedReceiver<async_nats::Event>)> {
    let (nats_events, nats_event_rx) = mpsc::unbounded_channel();
    let client = ConnectOptions::new()
        .no_echo()
        .retry_on_initial_connect()
        .max_reconnects(None)
        .reconnect_delay_callback(|_| RECONNECT_DELAY)
        .event_callback(move |event| {
            let nats_events = nats_events.clone();
            async move {
                let _ = nats_events.send(event);
            }
        })
        .connect(url)
        .await
        .with_context(|| format!("linking through {url}"))?;
    Ok((client, nats_event_rx))
}

/// The first attempt's outcome, within [`START_WAIT`]: connected, or
/// failed (the client goes on trying in the background).
async fn first_attempt(nats_events: &mut mpsc::UnboundedReceiver<async_nats::Event>) -> bool {
    let outcome = async {
        while let Some(event) = nats_events.recv().await {
            match event {
                async_nats::Event::Connected => return true,
                async_nats::Event::ClientError(_) => return false,
                _ => {}
            }
        }
        false
    };
    tokio::time::timeout(START_WAIT, outcome)
        .await
        .unwrap_or(false)
}

/// Returns once the broker has handled everything `client` sent before
/// (its subscriptions, say), or after [`ROUND_TRIP_WAIT`]: a request to a
/// subject no server listens on is answered by the broker itself, in
/// order with the rest.
async fn round_trip(client: &Client) {
    let answered = client.request(SYNC_SUBJECT, Bytes::new());
    let _ = tokio::time::timeout(ROUND_TRIP_WAIT, answered).await;
}

/// Whether another server answers to `node`'s name. A free name is known
/// at once (the broker says no one listens there); a server that holds it
/// is waited for up to [`NAME_CHECK_WAIT`], however busy it is.
async fn node_in_use(client: &Client, node: &str) -> bool {
    let mut headers = HeaderMap::new();
    headers.insert(KIND, "ping");
    let request =
        client.request_with_headers(format!("{NODE_SUBJECT}{node}"), headers, Bytes::new());
    matches!(
        tokio::time::timeout(NAME_CHECK_WAIT, request).await,
        Ok(Ok(_))
    )
}

fn epoch() -> String {
    let since = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    since.as_nanos().to_string()
}
