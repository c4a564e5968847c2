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

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};
use async_nats::{Client, ConnectOptions, HeaderMap, Message, Subscriber};
use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use super::Hub;
use super::escape::{escape_into, escaped};
use super::mailbox::Mailbox;
use crate::protocol::chat as text;

/// Events waiting for the broker; past this, new ones are dropped (and
/// counted) rather than waited for.
const QUEUE: usize = 16 * 1024;
/// How long a server waits at start for the broker before serving alone.
const START_WAIT: Duration = Duration::from_secs(1);
/// How long `/who`, `/rooms` and `/msg` wait for the other servers.
const GATHER_WAIT: Duration = Duration::from_secs(1);
/// Once one server has answered, how much longer the others are waited for.
const GATHER_SETTLE: Duration = Duration::from_millis(200);
/// Pause between attempts to reach the broker: it is back in use within a
/// second of its return.
const RECONNECT_DELAY: Duration = Duration::from_millis(100);

const ROOM_SUBJECT: &str = "chat.room.";
const WHO_SUBJECT: &str = "chat.who";
const ROOMS_SUBJECT: &str = "chat.rooms";
const NODE_SUBJECT: &str = "chat.node.";

const NODE: &str = "Chat-Node";
/// When the sending server started: with the node, whose sequence it is.
const EPOCH: &str = "Chat-Epoch";
const SEQUENCE: &str = "Chat-Seq";
const KIND: &str = "Chat-Kind";
const NICK: &str = "Chat-Nick";
const OLD_NICK: &str = "Chat-Old";
const WHY: &str = "Chat-Why";
const ROOM: &str = "Chat-Room";
const TO: &str = "Chat-To";

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

/// Connects to the broker (waiting up to [`START_WAIT`]; if it is not
/// there, the link is made in the background once it is), checks that the
/// node name is free, and starts the link's task.
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
    let connected = tokio::time::timeout(START_WAIT, async {
        while let Some(event) = nats_event_rx.recv().await {
            if matches!(event, async_nats::Event::Connected) {
                return;
            }
        }
    })
    .await
    .is_ok();
    let node: Arc<str> = settings.node.as_str().into();
    if connected {
        if node_in_use(&client, &node).await {
            bail!(
                "node name \"{node}\" is already in use on the link {}; choose another with --node",
                settings.url
            );
        }
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
    tokio::spawn(task.run(event_rx, control_rx, nats_event_rx));
    Ok(link)
}

/// Whether another server answers to `node`'s name.
async fn node_in_use(client: &Client, node: &str) -> bool {
    let mut headers = HeaderMap::new();
    headers.insert(KIND, "ping");
    let request =
        client.request_with_headers(format!("{NODE_SUBJECT}{node}"), headers, Bytes::new());
    matches!(tokio::time::timeout(GATHER_WAIT, request).await, Ok(Ok(_)))
}

fn epoch() -> String {
    let since = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    since.as_nanos().to_string()
}

/// The link's task: owns the client, publishes, subscribes, answers.
struct Task {
    hub: Arc<Hub>,
    link: Arc<Link>,
    client: Client,
    url: String,
    epoch: String,
    sequence: u64,
    /// The node name has been checked against the link.
    checked: bool,
    /// Rooms with local members, and the task delivering each one's
    /// subscription.
    rooms: HashMap<Arc<str>, JoinHandle<()>>,
    /// Rooms known to have members on other servers.
    spanning: Arc<Mutex<HashSet<Arc<str>>>>,
    /// Rooms told the link was lost, to be told it is back.
    told_lost: HashSet<Arc<str>>,
}

impl Task {
    async fn run(
        mut self,
        mut events: mpsc::Receiver<Event>,
        mut control: mpsc::UnboundedReceiver<Control>,
        mut nats_events: mpsc::UnboundedReceiver<async_nats::Event>,
    ) {
        let node_subject = format!("{NODE_SUBJECT}{}", self.link.node);
        let (Ok(mut node), Ok(mut who), Ok(mut rooms)) = (
            self.client.subscribe(node_subject).await,
            self.client.subscribe(WHO_SUBJECT).await,
            self.client.subscribe(ROOMS_SUBJECT).await,
        ) else {
            error!("link: subscribing failed; not linked");
            return;
        };
        loop {
            tokio::select! {
                Some(event) = nats_events.recv() => {
                    if !self.on_nats_event(event).await {
                        return;
                    }
                }
                Some(event) = events.recv() => self.publish(event).await,
                Some(request) = control.recv() => self.on_control(request).await,
                Some(message) = next(&mut node) => self.on_node_message(message).await,
                Some(message) = next(&mut who) => self.answer_who(message).await,
                Some(message) = next(&mut rooms) => self.answer_rooms(message).await,
            }
        }
    }

    /// Returns false if the link must end (its node name is taken).
    async fn on_nats_event(&mut self, event: async_nats::Event) -> bool {
        match event {
            async_nats::Event::Connected => {
                if !self.checked {
                    if node_in_use(&self.client, &self.link.node).await {
                        error!(
                            "link: node name \"{}\" is already in use on {}; not linking",
                            self.link.node, self.url
                        );
                        self.link.connected.store(false, Ordering::Relaxed);
                        return false;
                    }
                    self.checked = true;
                }
                self.link.connected.store(true, Ordering::Relaxed);
                info!("link to {} up", self.url);
                let dropped = self.link.dropped.swap(0, Ordering::Relaxed);
                if dropped > 0 {
                    warn!(
                        "link: {dropped} lines and notices did not reach the other servers while the link was down"
                    );
                }
                let restored = self.hub.lines(&[text::LINK_RESTORED]);
                for room in self.told_lost.drain() {
                    self.hub.deliver_to_room(&room, &restored);
                }
            }
            async_nats::Event::Disconnected => {
                self.link.connected.store(false, Ordering::Relaxed);
                warn!("link to {} lost; retrying", self.url);
                let lost = self.hub.lines(&[text::LINK_LOST]);
                let spanning: Vec<Arc<str>> = self
                    .spanning
                    .lock()
                    .map(|rooms| rooms.iter().cloned().collect())
                    .unwrap_or_default();
                for room in spanning {
                    if self.rooms.contains_key(&room) && self.told_lost.insert(Arc::clone(&room)) {
                        self.hub.deliver_to_room(&room, &lost);
                    }
                }
            }
            other => info!("link: {other}"),
        }
        true
    }

    async fn publish(&mut self, event: Event) {
        self.sequence += 1;
        let mut headers = HeaderMap::new();
        headers.insert(NODE, &*self.link.node);
        headers.insert(EPOCH, self.epoch.as_str());
        headers.insert(SEQUENCE, self.sequence.to_string());
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
        let subject = format!("{ROOM_SUBJECT}{room}");
        if self
            .client
            .publish_with_headers(subject, headers, payload)
            .await
            .is_err()
        {
            self.link.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    async fn on_control(&mut self, request: Control) {
        match request {
            Control::Subscribe(room) => {
                if self.rooms.contains_key(&room) {
                    return;
                }
                let Ok(subscriber) = self.client.subscribe(format!("{ROOM_SUBJECT}{room}")).await
                else {
                    warn!("link: subscribing to #{room} failed");
                    return;
                };
                let delivery = deliver_room(
                    Arc::clone(&self.hub),
                    Arc::clone(&room),
                    subscriber,
                    Arc::clone(&self.spanning),
                );
                self.rooms.insert(room, tokio::spawn(delivery));
            }
            Control::Unsubscribe(room) => {
                if let Some(delivery) = self.rooms.remove(&room) {
                    delivery.abort();
                }
                if let Ok(mut spanning) = self.spanning.lock() {
                    spanning.remove(&room);
                }
            }
            Control::Who { room, local, to } => {
                let gather = gather(
                    self.client.clone(),
                    WHO_SUBJECT,
                    Some(Arc::clone(&room)),
                    self.link.connected.load(Ordering::Relaxed),
                );
                let hub = Arc::clone(&self.hub);
                let spanning = Arc::clone(&self.spanning);
                tokio::spawn(async move {
                    let mut names = local;
                    for (node, answer) in gather.await {
                        for nick in answer
                            .split(|&byte| byte == b'\n')
                            .filter(|nick| !nick.is_empty())
                        {
                            names.push(format!("{}@{node}", String::from_utf8_lossy(nick)));
                        }
                        if let Ok(mut spanning) = spanning.lock() {
                            spanning.insert(Arc::clone(&room));
                        }
                    }
                    names.sort_by_key(|name| name.to_ascii_lowercase());
                    let lines = text::who(&room, names.iter().map(String::as_str), names.len());
                    to.push(hub.lines(&lines));
                });
            }
            Control::Rooms { local, to } => {
                let gather = gather(
                    self.client.clone(),
                    ROOMS_SUBJECT,
                    None,
                    self.link.connected.load(Ordering::Relaxed),
                );
                let hub = Arc::clone(&self.hub);
                tokio::spawn(async move {
                    let mut rooms: std::collections::BTreeMap<String, usize> =
                        local.into_iter().collect();
                    for (_, answer) in gather.await {
                        for entry in String::from_utf8_lossy(&answer).lines() {
                            if let Some((name, count)) = entry.split_once(' ')
                                && let Ok(count) = count.parse::<usize>()
                            {
                                *rooms.entry(name.to_string()).or_default() += count;
                            }
                        }
                    }
                    let lines =
                        text::rooms(rooms.iter().map(|(name, count)| (name.as_str(), *count)));
                    to.push(hub.lines(&lines));
                });
            }
            Control::Message {
                from,
                nick,
                node,
                text: message,
                to,
            } => {
                let client = self.client.clone();
                let hub = Arc::clone(&self.hub);
                let connected = self.link.connected.load(Ordering::Relaxed);
                let own_node = Arc::clone(&self.link.node);
                tokio::spawn(async move {
                    let mut headers = HeaderMap::new();
                    headers.insert(KIND, "msg");
                    headers.insert(NODE, &*own_node);
                    headers.insert(TO, nick.as_str());
                    headers.insert(NICK, &*from);
                    let request = client.request_with_headers(
                        format!("{NODE_SUBJECT}{node}"),
                        headers,
                        message.clone(),
                    );
                    let answer = match connected {
                        true => tokio::time::timeout(GATHER_WAIT, request)
                            .await
                            .ok()
                            .and_then(Result::ok),
                        false => None,
                    };
                    let shown = answer
                        .map(|reply| reply.payload)
                        .filter(|shown| !shown.is_empty());
                    let line = match shown {
                        Some(shown) => {
                            let mut copy = BytesMut::new();
                            text::private_sent_prefix(
                                &mut copy,
                                &format!("{}@{node}", String::from_utf8_lossy(&shown)),
                            );
                            escape_into(&mut copy, &message);
                            copy.extend_from_slice(hub.delimiter());
                            copy.freeze()
                        }
                        None => hub.lines(&[text::no_such_nick(&escaped(
                            format!("{nick}@{node}").as_bytes(),
                        ))]),
                    };
                    to.push(line);
                });
            }
        }
    }

    /// A private message for one of this server's members, or a ping.
    async fn on_node_message(&self, message: Message) {
        let Some(reply) = message.reply else {
            return;
        };
        let headers = message.headers.unwrap_or_default();
        let header = |name: &str| headers.get(name).map(|value| value.as_str().to_string());
        let answer = match header(KIND).as_deref() {
            Some("msg") => {
                let (Some(to), Some(from), Some(node)) = (header(TO), header(NICK), header(NODE))
                else {
                    return;
                };
                let from = format!("{from}@{node}");
                self.hub
                    .deliver_private(&to, &from, &message.payload)
                    .map(|shown| Bytes::from(shown.to_string()))
                    .unwrap_or_default()
            }
            _ => Bytes::from_static(b"pong"),
        };
        let _ = self.client.publish(reply, answer).await;
    }

    /// `/who` from another server: this server's members of the room.
    async fn answer_who(&self, message: Message) {
        let Some(reply) = message.reply else {
            return;
        };
        let room = message
            .headers
            .as_ref()
            .and_then(|headers| headers.get(ROOM))
            .map(|room| room.as_str().to_string());
        let names = room
            .map(|room| self.hub.local_names(&room))
            .unwrap_or_default();
        if names.is_empty() {
            return;
        }
        self.reply(reply, names.join("\n").into()).await;
    }

    /// `/rooms` from another server: this server's rooms and counts.
    async fn answer_rooms(&self, message: Message) {
        let Some(reply) = message.reply else {
            return;
        };
        let rooms = self.hub.local_rooms();
        let answer: Vec<String> = rooms
            .iter()
            .map(|(name, count)| format!("{name} {count}"))
            .collect();
        self.reply(reply, answer.join("\n").into()).await;
    }

    async fn reply(&self, to: async_nats::Subject, payload: Bytes) {
        let mut headers = HeaderMap::new();
        headers.insert(NODE, &*self.link.node);
        let _ = self.client.publish_with_headers(to, headers, payload).await;
    }
}

/// The next message of `subscriber`; `None` once it has ended.
async fn next(subscriber: &mut Subscriber) -> Option<Message> {
    use futures_core::Stream;
    std::future::poll_fn(|context| std::pin::Pin::new(&mut *subscriber).poll_next(context)).await
}

/// Asks every server on `subject` (about `room`) and collects the answers,
/// with the answering node, for up to [`GATHER_WAIT`].
async fn gather(
    client: Client,
    subject: &'static str,
    room: Option<Arc<str>>,
    connected: bool,
) -> Vec<(String, Bytes)> {
    let mut answers = Vec::new();
    if !connected {
        return answers;
    }
    let inbox = client.new_inbox();
    let Ok(mut replies) = client.subscribe(inbox.clone()).await else {
        return answers;
    };
    let mut headers = HeaderMap::new();
    if let Some(room) = &room {
        headers.insert(ROOM, &**room);
    }
    if client
        .publish_with_reply_and_headers(subject, inbox, headers, Bytes::new())
        .await
        .is_err()
    {
        return answers;
    }
    let mut deadline = tokio::time::Instant::now() + GATHER_WAIT;
    while let Ok(Some(reply)) = tokio::time::timeout_at(deadline, next(&mut replies)).await {
        let node = reply
            .headers
            .as_ref()
            .and_then(|headers| headers.get(NODE))
            .map(|node| node.as_str().to_string());
        if let Some(node) = node {
            answers.push((node, reply.payload));
        }
        deadline = deadline.min(tokio::time::Instant::now() + GATHER_SETTLE);
    }
    answers
}

/// Delivers what other servers say in `room` to its local members, each
/// event once: a node's events carry a sequence number, and one not above
/// the last seen from that node (and start) is dropped.
async fn deliver_room(
    hub: Arc<Hub>,
    room: Arc<str>,
    mut subscriber: Subscriber,
    spanning: Arc<Mutex<HashSet<Arc<str>>>>,
) {
    let mut last_seen: HashMap<(String, String), u64> = HashMap::new();
    while let Some(message) = next(&mut subscriber).await {
        let Some(headers) = &message.headers else {
            continue;
        };
        let header = |name: &str| headers.get(name).map(|value| value.as_str());
        let (Some(node), Some(kind), Some(nick)) = (header(NODE), header(KIND), header(NICK))
        else {
            continue;
        };
        let sequence: u64 = header(SEQUENCE).and_then(|s| s.parse().ok()).unwrap_or(0);
        let key = (node.to_string(), header(EPOCH).unwrap_or("").to_string());
        let last = last_seen.entry(key).or_insert(0);
        if sequence <= *last {
            continue;
        }
        *last = sequence;
        if let Ok(mut spanning) = spanning.lock() {
            spanning.insert(Arc::clone(&room));
        }
        let who = format!("{nick}@{node}");
        let mut line = BytesMut::new();
        match kind {
            "said" => {
                text::said_prefix(&mut line, &who);
                escape_into(&mut line, &message.payload);
            }
            "action" => {
                text::action_prefix(&mut line, &who);
                escape_into(&mut line, &message.payload);
            }
            "joined" => line.extend_from_slice(text::joined(&who).as_bytes()),
            "left" => {
                let why = header(WHY).map(|why| escaped(why.as_bytes()));
                line.extend_from_slice(text::left(&who, why.as_deref()).as_bytes());
            }
            "renamed" => {
                let old = format!("{}@{node}", header(OLD_NICK).unwrap_or(""));
                line.extend_from_slice(text::renamed(&old, &who).as_bytes());
            }
            _ => continue,
        }
        line.extend_from_slice(hub.delimiter());
        hub.deliver_to_room(&room, &line.freeze());
    }
}
