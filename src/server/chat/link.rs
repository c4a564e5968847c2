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
//! The task is in `task`, the questions to every server in `ask`, and what
//! goes over the wire in `wire`.

mod ask;
mod task;
mod wire;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};
use async_nats::{Client, ConnectOptions, HeaderMap};
use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::Hub;
use super::mailbox::Mailbox;
use task::Task;
use wire::{KIND, NODE_SUBJECT, ROOMS_SUBJECT, SYNC_SUBJECT, WHO_SUBJECT};

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

/// What the hub asks of the link, in order, never dropped.
#[derive(Debug)]
enum Control {
    /// The room has local members now, or has none any more.
    Subscribe(Arc<str>),
    Unsubscribe(Arc<str>),
    Who {
        room: Arc<str>,
        local: Vec<String>,
        to: Arc<Mailbox>,
    },
    Rooms {
        local: Vec<(String, usize)>,
        to: Arc<Mailbox>,
    },
    Message {
        from: Arc<str>,
        nick: String,
        node: String,
        text: Bytes,
        to: Arc<Mailbox>,
    },
}

/// The hub's handle on the link.
#[derive(Debug)]
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

    /// `/who`: `local` names and every other server's, to `to`.
    pub fn who(&self, room: Arc<str>, local: Vec<String>, to: Arc<Mailbox>) {
        let _ = self.control.send(Control::Who { room, local, to });
    }

    /// `/rooms`: `local` rooms and every other server's, to `to`.
    pub fn rooms(&self, local: Vec<(String, usize)>, to: Arc<Mailbox>) {
        let _ = self.control.send(Control::Rooms { local, to });
    }

    /// `/msg NICK@NODE TEXT` for another server.
    pub fn message(&self, from: Arc<str>, nick: &str, node: &str, text: &[u8], to: Arc<Mailbox>) {
        let _ = self.control.send(Control::Message {
            from,
            nick: nick.to_string(),
            node: node.to_string(),
            text: Bytes::copy_from_slice(text),
            to,
        });
    }
}

/// Connects to the broker (waiting for the first attempt, up to
/// `START_WAIT`; if it is not there, the link is made in the background
/// once it is), checks that the node name is free, and starts the link's
/// task.
pub async fn start(hub: Arc<Hub>, settings: LinkSettings) -> anyhow::Result<Arc<Link>> {
    let (nats_events, mut nats_event_rx) = mpsc::unbounded_channel();
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
        .connect(settings.url.as_str())
        .await
        .with_context(|| format!("linking through {}", settings.url))?;
    // The first attempt's outcome: connected, or failed (the client goes
    // on trying in the background).
    let first_attempt = async {
        while let Some(event) = nats_event_rx.recv().await {
            match event {
                async_nats::Event::Connected => return true,
                async_nats::Event::ClientError(_) => return false,
                _ => {}
            }
        }
        false
    };
    let connected = tokio::time::timeout(START_WAIT, first_attempt)
        .await
        .unwrap_or(false);
    let node: Arc<str> = settings.node.as_str().into();
    if connected && node_in_use(&client, &node).await {
        bail!(
            "node name \"{node}\" is already in use on the link {}; choose another with --node",
            settings.url
        );
    }
    // Made before the server is said to be linked, so another server
    // started after that line finds this one.
    let node_subject = format!("{NODE_SUBJECT}{node}");
    let subscribed = async {
        let node = client.subscribe(node_subject).await?;
        let who = client.subscribe(WHO_SUBJECT).await?;
        let rooms = client.subscribe(ROOMS_SUBJECT).await?;
        anyhow::Ok(task::Subscriptions { node, who, rooms })
    };
    let subscriptions = subscribed
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
    let task = Task {
        hub,
        link: Arc::clone(&link),
        client,
        url: settings.url,
        epoch: epoch(),
        sequence: 0,
        checked: connected,
        rooms: HashMap::new(),
        spanning: Arc::default(),
        told_lost: HashSet::new(),
    };
    tokio::spawn(task.run(subscriptions, event_rx, control_rx, nats_event_rx));
    Ok(link)
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
