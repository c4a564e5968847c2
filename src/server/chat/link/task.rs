//! The link's task: owns the NATS client, publishes what the hub hands it,
//! subscribes to the rooms that have local members, answers the other
//! servers' questions, and tells members when the link goes and comes back.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use async_nats::{Client, HeaderMap, Message, Subscriber};
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use super::wire::{self, KIND, NICK, NODE, ROOM, ROOM_SUBJECT, TO, deliver_room, next};
use super::{Control, Event, Link, ask, node_in_use, round_trip};
use crate::protocol::chat as text;
use crate::server::chat::Hub;

/// What every server listens on, besides rooms: its node's subject,
/// `/who` and `/rooms`.
pub(super) struct Subscriptions {
    pub(super) node: Subscriber,
    pub(super) who: Subscriber,
    pub(super) rooms: Subscriber,
}

/// The link's task: owns the client, publishes, subscribes, answers.
pub(super) struct Task {
    pub(super) hub: Arc<Hub>,
    pub(super) link: Arc<Link>,
    pub(super) client: Client,
    pub(super) url: String,
    pub(super) epoch: String,
    pub(super) sequence: u64,
    /// The node name has been checked against the link.
    pub(super) checked: bool,
    /// Rooms with local members, and the task delivering each one's
    /// subscription.
    pub(super) rooms: HashMap<Arc<str>, JoinHandle<()>>,
    /// Rooms known to have members on other servers.
    pub(super) spanning: Arc<Mutex<HashSet<Arc<str>>>>,
    /// Rooms told the link was lost, to be told it is back.
    pub(super) told_lost: HashSet<Arc<str>>,
}

impl Task {
    pub(super) async fn run(
        mut self,
        subscriptions: Subscriptions,
        mut events: mpsc::Receiver<Event>,
        mut control: mpsc::UnboundedReceiver<Control>,
        mut nats_events: mpsc::UnboundedReceiver<async_nats::Event>,
    ) {
        let Subscriptions {
            mut node,
            mut who,
            mut rooms,
        } = subscriptions;
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
                Some(event) = events.recv() => self.publish(event).await,
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
                // The client subscribes again by itself once connected;
                // members are told the link is back once the broker has
                // those subscriptions, so a line sent right after the
                // notice reaches this server.
                round_trip(&self.client).await;
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
        let (subject, headers, payload) =
            wire::encode(event, &self.link.node, &self.epoch, self.sequence);
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
                let asking = ask::who(self.asker(), room, local, to, Arc::clone(&self.spanning));
                tokio::spawn(asking);
            }
            Control::Rooms { local, to } => {
                tokio::spawn(ask::rooms(self.asker(), local, to));
            }
            Control::Message {
                from,
                nick,
                node,
                text: message,
                to,
            } => {
                tokio::spawn(ask::message(self.asker(), from, nick, node, message, to));
            }
        }
    }

    /// What a question to the other servers needs.
    fn asker(&self) -> ask::Asker {
        ask::Asker {
            client: self.client.clone(),
            hub: Arc::clone(&self.hub),
            node: Arc::clone(&self.link.node),
            connected: self.link.connected.load(Ordering::Relaxed),
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
