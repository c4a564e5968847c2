//! The link's task: owns the NATS client, publishes what the chat hands it,
//! subscribes to the rooms that have local members, answers the other
//! servers' questions, and tells the chat when the link goes and comes
//! back.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_nats::{Client, Message, Subscriber};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{error, info, warn};

use super::broker::{epoch, node_in_use, round_trip};
use super::handle::{Control, Handed, Link, Queued};
use super::port::Port;
use super::room::Spanning;
use super::wire::{self, NICK_SUBJECT, NODE_SUBJECT, ROOMS_SUBJECT, WHO_SUBJECT};
use super::{ask, room};

/// How often a broker that stays away is said to be, at most.
const OUTAGE_REPORT: std::time::Duration = std::time::Duration::from_secs(60);
/// How often drops while the link is up are said, at most.
const DROP_REPORT: std::time::Duration = std::time::Duration::from_secs(60);

/// What every server listens on, besides rooms: its node's subject,
/// `/who`, `/rooms`, and who has a nick.
pub(super) struct Subscriptions {
    node: Subscriber,
    who: Subscriber,
    rooms: Subscriber,
    nick: Subscriber,
}

impl Subscriptions {
    pub(super) async fn make(client: &Client, node: &str) -> anyhow::Result<Subscriptions> {
        Ok(Subscriptions {
            node: client.subscribe(format!("{NODE_SUBJECT}{node}")).await?,
            who: client.subscribe(WHO_SUBJECT).await?,
            rooms: client.subscribe(ROOMS_SUBJECT).await?,
            nick: client.subscribe(NICK_SUBJECT).await?,
        })
    }
}

/// The link's task: owns the client, publishes, subscribes, answers.
pub(super) struct Task {
    port: Arc<dyn Port>,
    link: Arc<Link>,
    client: Client,
    url: String,
    /// Per room with local members: when this server began sending in it
    /// (its epoch there) and the number of its last event there.
    numbering: HashMap<Arc<str>, (u128, u64)>,
    /// The node name has been checked against the link.
    checked: bool,
    /// Rooms with local members, and the task delivering each one's
    /// subscription.
    rooms: HashMap<Arc<str>, JoinHandle<()>>,
    spanning: Spanning,
    /// Rooms told the link was lost, to be told it is back.
    told_lost: HashSet<Arc<str>>,
    outage: Outage,
}

/// How long the broker has been away, and how many attempts to reach it
/// failed: the log says so once a minute, never once an attempt.
struct Outage {
    since: Option<Instant>,
    failed: u64,
    last_said: Instant,
}

impl Outage {
    fn new(connected: bool) -> Self {
        let now = Instant::now();
        Self {
            since: (!connected).then_some(now),
            failed: 0,
            last_said: now,
        }
    }

    fn began(&mut self) {
        let now = Instant::now();
        self.since.get_or_insert(now);
        self.last_said = now;
    }

    /// One more failed attempt; said if a minute has passed since the last
    /// line about the outage.
    fn failed(&mut self, url: &str, error: &async_nats::ClientError) {
        self.failed += 1;
        let since = *self.since.get_or_insert_with(Instant::now);
        if self.last_said.elapsed() >= OUTAGE_REPORT {
            self.last_said = Instant::now();
            warn!(
                "link: {url} still away after {}s, {} attempts failed (the last: {error})",
                since.elapsed().as_secs(),
                self.failed
            );
        }
    }

    /// The outage is over: how long it lasted, for the line that says so.
    fn ended(&mut self) -> String {
        let said = match self.since.take() {
            Some(since) => format!(
                " after {}s away, {} attempts failed",
                since.elapsed().as_secs(),
                self.failed
            ),
            None => String::new(),
        };
        self.failed = 0;
        said
    }
}

impl Task {
    /// The task of `link`, for a client already connected or not; `checked`
    /// when its node name is known to be free.
    pub(super) fn new(
        port: Arc<dyn Port>,
        link: Arc<Link>,
        client: Client,
        url: String,
        checked: bool,
    ) -> Self {
        Self {
            port,
            link,
            client,
            url,
            numbering: HashMap::new(),
            checked,
            rooms: HashMap::new(),
            spanning: Arc::default(),
            told_lost: HashSet::new(),
            outage: Outage::new(checked),
        }
    }

    pub(super) async fn run(
        mut self,
        subscriptions: Subscriptions,
        handed: Handed,
        mut nats_events: mpsc::UnboundedReceiver<async_nats::Event>,
    ) {
        let Subscriptions {
            mut node,
            mut who,
            mut rooms,
            nick: mut nicks,
        } = subscriptions;
        let Handed {
            mut events,
            mut control,
        } = handed;
        let mut drop_report = tokio::time::interval(DROP_REPORT);
        drop_report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // In this order: a room's subscription, asked for before the
            // join that created it, reaches the broker before the join does.
            tokio::select! {
                biased;
                Some(event) = nats_events.recv() => {
                    if !self.on_nats_event(event).await {
                        return;
                    }
                }
                Some(request) = control.recv() => self.on_control(request).await,
                Some(queued) = events.recv() => self.publish(queued).await,
                Some(message) = node.next() => self.on_node_message(message).await,
                Some(message) = who.next() => self.answer_who(message).await,
                Some(message) = rooms.next() => self.answer_rooms(message).await,
                Some(message) = nicks.next() => self.answer_nick(message).await,
                _ = drop_report.tick() => self.report_drops(),
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
                // The client subscribes again by itself once connected;
                // members are told the link is back once the broker has
                // those subscriptions, so a line sent right after the
                // notice reaches this server.
                round_trip(&self.client).await;
                self.link.connected.store(true, Ordering::Relaxed);
                info!("link to {} up{}", self.url, self.outage.ended());
                let dropped = self.link.dropped.swap(0, Ordering::Relaxed);
                if dropped > 0 {
                    warn!(
                        "link: {dropped} lines and notices did not reach the other servers while the link was down"
                    );
                }
                let rooms: Vec<Arc<str>> = self.told_lost.drain().collect();
                self.port.link_changed(&rooms, true);
            }
            async_nats::Event::Disconnected => {
                self.link.connected.store(false, Ordering::Relaxed);
                self.outage.began();
                warn!("link to {} lost; retrying", self.url);
                let spanning: Vec<Arc<str>> = self
                    .spanning
                    .lock()
                    .map(|rooms| rooms.iter().cloned().collect())
                    .unwrap_or_default();
                let newly_lost: Vec<Arc<str>> = spanning
                    .into_iter()
                    .filter(|room| {
                        self.rooms.contains_key(room) && self.told_lost.insert(Arc::clone(room))
                    })
                    .collect();
                self.port.link_changed(&newly_lost, false);
            }
            // Each failed attempt to reconnect: counted, and said at most
            // once a minute while the broker stays away.
            async_nats::Event::ClientError(error) => self.outage.failed(&self.url, &error),
            other => info!("link: {other}"),
        }
        true
    }

    /// Says, while the link is up, how many events did not reach the
    /// broker since the last report (the client refused them); the drops
    /// while it was down are said when it is back.
    fn report_drops(&self) {
        if !self.link.connected.load(Ordering::Relaxed) {
            return;
        }
        let dropped = self.link.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            warn!("link: {dropped} lines and notices did not reach the broker in the last minute");
        }
        let malformed = self.link.malformed.swap(0, Ordering::Relaxed);
        if malformed > 0 {
            warn!(
                "link: {malformed} malformed messages from the broker dropped in the last minute                  (see the README on locking the broker down)"
            );
        }
    }

    /// Hands `queued` to the client; its room in the queue is given back
    /// once the client has it.
    async fn publish(&mut self, queued: Queued) {
        let (epoch, sequence) = self.next_number(queued.event.room());
        let (subject, headers, payload) =
            wire::encode(queued.event, &self.link.node, epoch, sequence);
        if self
            .client
            .publish_with_headers(subject, headers, payload)
            .await
            .is_err()
        {
            self.link.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The epoch and number of this server's next event in `room`: events
    /// are numbered from 1 in each room, and a room that had no local
    /// members for a while starts again with a later epoch.
    fn next_number(&mut self, room: &Arc<str>) -> (u128, u64) {
        let latest = self.numbering.values().map(|(epoch, _)| *epoch).max();
        let (epoch, sequence) = self
            .numbering
            .entry(Arc::clone(room))
            .or_insert_with(|| (epoch().max(latest.map_or(0, |latest| latest + 1)), 0));
        *sequence += 1;
        (*epoch, *sequence)
    }

    async fn on_control(&mut self, request: Control) {
        match request {
            Control::Subscribe(room) => {
                if self.rooms.contains_key(&room) {
                    return;
                }
                let Ok(subscriber) = self.client.subscribe(wire::room_subject(&room)).await else {
                    warn!("link: subscribing to #{room} failed");
                    return;
                };
                let delivery = room::deliver(
                    Arc::clone(&self.port),
                    Arc::clone(&self.link),
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
                self.numbering.remove(&room);
                if let Ok(mut spanning) = self.spanning.lock() {
                    spanning.remove(&room);
                }
            }
            Control::Who { room, wait, answer } => {
                let spanning = Arc::clone(&self.spanning);
                tokio::spawn(ask::who(self.asker(), room, wait, spanning, answer));
            }
            Control::Rooms { answer } => {
                tokio::spawn(ask::rooms(self.asker(), answer));
            }
            Control::Message {
                from,
                to,
                text,
                answer,
            } => {
                tokio::spawn(ask::message(self.asker(), from, to, text, answer));
            }
            Control::MessageAnyone {
                from,
                nick,
                text,
                answer,
            } => {
                let asking = ask::message_anyone(self.asker(), from, nick, text, answer);
                tokio::spawn(asking);
            }
        }
    }

    /// What a question to the other servers needs.
    fn asker(&self) -> ask::Asker {
        ask::Asker {
            client: self.client.clone(),
            node: Arc::clone(&self.link.node),
            connected: self.link.connected.load(Ordering::Relaxed),
            link: Arc::clone(&self.link),
        }
    }

    /// A private message for one of this server's members, or a ping.
    async fn on_node_message(&self, message: Message) {
        let Some(reply) = message.reply.clone() else {
            return;
        };
        let answer = match wire::decode_private(&message) {
            wire::ToNode::Ping => wire::PONG.into(),
            wire::ToNode::Private { from, .. }
                if *from.node == *self.link.node
                    || message.payload.len() > self.port.max_text() =>
            {
                self.link.count_malformed();
                return;
            }
            wire::ToNode::Private { to, from } => self
                .port
                .deliver_private(&to, &from, &message.payload)
                .map(|shown| shown.to_string().into())
                .unwrap_or_default(),
            wire::ToNode::Malformed => {
                self.link.count_malformed();
                return;
            }
        };
        let _ = self.client.publish(reply, answer).await;
    }

    /// `/who` from another server: this server's members of the room.
    async fn answer_who(&self, message: Message) {
        let Some(reply) = message.reply.clone() else {
            return;
        };
        // Answered even when empty: the asker stops waiting sooner.
        let names = wire::asked_room(&message)
            .map(|room| self.port.local_names(&room))
            .unwrap_or_default();
        self.reply(reply, wire::encode_names(&names)).await;
    }

    /// `/rooms` from another server: this server's rooms and counts.
    async fn answer_rooms(&self, message: Message) {
        let Some(reply) = message.reply else {
            return;
        };
        let rooms = self.port.local_rooms();
        self.reply(reply, wire::encode_rooms(&rooms)).await;
    }

    /// Who has a nick, from another server: this server answers only if it
    /// has a member of that nick, with the nick as shown.
    async fn answer_nick(&self, message: Message) {
        let Some(reply) = message.reply.clone() else {
            return;
        };
        let found = wire::asked_nick(&message).and_then(|nick| self.port.find_member(&nick));
        if let Some(shown) = found {
            self.reply(reply, shown.to_string().into()).await;
        }
    }

    /// An answer to another server's question, saying which node it is.
    async fn reply(&self, to: async_nats::Subject, payload: bytes::Bytes) {
        let headers = wire::answer_headers(&self.link.node);
        let _ = self.client.publish_with_headers(to, headers, payload).await;
    }
}
