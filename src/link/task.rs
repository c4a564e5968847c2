//! The link's task: owns the NATS client, publishes what the chat hands it,
//! subscribes to the rooms that have local members, answers the other
//! servers' questions, and tells the chat when the link goes and comes
//! back.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use async_nats::{Client, Subscriber};
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

mod answers;
mod outage;
mod publish;

use super::broker::{node_in_use, round_trip};
use super::handle::{Control, Handed, Link};
use super::history::{self, Bound};
use super::outbox::Outbox;
use super::port::Port;
use super::room::{self, Delivery, Linked, Spanning, Start};
use super::wire::{self, NICK_SUBJECT, NODE_SUBJECT, ROOMS_SUBJECT, WHO_SUBJECT};
use super::{LinkSettings, ask, shown_url};
use outage::Outage;
use publish::Acks;

/// How often the link checks that its client still answers, and how long
/// a check waits.
const WATCH_EVERY: std::time::Duration = std::time::Duration::from_secs(2);
const WATCH_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
/// How long after the link is back the lines kept meanwhile are published:
/// the other servers retry every tenth of a second.
const REPUBLISH_SETTLE: std::time::Duration = std::time::Duration::from_millis(500);
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
    /// `--link-ca`, for a new client.
    ca: Option<std::path::PathBuf>,
    /// The client's JetStream side, for lines the broker's history keeps.
    jetstream: async_nats::jetstream::Context,
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
    /// Lines a room the broker's history takes (`--history`; 0: none).
    history_lines: usize,
    /// Lines the broker has not confirmed keeping.
    outbox: Outbox,
    /// When the lines kept while the link was down are published: a moment
    /// after it is back, so that the other servers are back too and get
    /// them live (what they miss they fetch from the broker's history,
    /// `--history` lines a room at most). New lines wait behind them.
    republish_at: Option<tokio::time::Instant>,
    /// The link as the rooms' deliveries see it.
    linked: watch::Sender<Linked>,
    /// The log has said the broker keeps no history.
    said_no_history: bool,
}

impl Task {
    /// The task of `link`, for a client already connected or not; `checked`
    /// when its node name is known to be free.
    pub(super) fn new(
        port: Arc<dyn Port>,
        link: Arc<Link>,
        client: Client,
        settings: &LinkSettings,
        checked: bool,
    ) -> Self {
        let (linked, _) = watch::channel(Linked {
            up: checked,
            lost_at: SystemTime::now(),
            history: None,
        });
        Self {
            port,
            link,
            jetstream: async_nats::jetstream::new(client.clone()),
            ca: settings.ca.clone(),
            client,
            url: settings.url.clone(),
            history_lines: settings.history_lines,
            outbox: Outbox::new(settings.buffer),
            republish_at: None,
            linked,
            said_no_history: false,
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
        let mut subscriptions = subscriptions;
        let Handed {
            mut events,
            mut control,
        } = handed;
        let mut drop_report = tokio::time::interval(DROP_REPORT);
        drop_report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut watchdog = tokio::time::interval(WATCH_EVERY);
        watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut acks = Acks::default();
        if self.link.connected.load(Ordering::Relaxed) {
            self.bind_history().await;
        }
        loop {
            // In this order: a room's subscription, asked for before the
            // join that created it, reaches the broker before the join does.
            // A handler that panics is said, and the link goes on.
            let Subscriptions {
                node,
                who,
                rooms,
                nick,
            } = &mut subscriptions;
            tokio::select! {
                biased;
                Some(event) = nats_events.recv() => {
                    if survive(self.on_nats_event(event)).await == Some(false) {
                        return;
                    }
                }
                Some(request) = control.recv() => survive(self.on_control(request)).await.unwrap_or(()),
                Some(confirmed) = acks.next() => self.on_ack(confirmed),
                _ = sleep_until(self.republish_at) => {
                    self.republish_at = None;
                    survive(self.publish_kept(&mut acks)).await.unwrap_or(());
                    self.restored();
                }
                Some(queued) = events.recv() => {
                    let last_of_burst = events.is_empty();
                    survive(self.publish(queued, &mut acks, last_of_burst)).await.unwrap_or(())
                }
                Some(message) = node.next() => survive(self.on_node_message(message)).await.unwrap_or(()),
                Some(message) = who.next() => survive(self.answer_who(message)).await.unwrap_or(()),
                Some(message) = rooms.next() => survive(self.answer_rooms(message)).await.unwrap_or(()),
                Some(message) = nick.next() => survive(self.answer_nick(message)).await.unwrap_or(()),
                _ = drop_report.tick() => self.report_drops(),
                _ = watchdog.tick() => {
                    self.restart_stopped_rooms().await;
                    if !self.client_answers().await
                        && let Some((client, events, made)) = self.new_client().await
                    {
                        self.client = client;
                        nats_events = events;
                        subscriptions = made;
                    }
                }
            }
        }
    }

    /// Whether the client still answers: `false` only when the broker was
    /// reachable and a round trip through it did not come back within
    /// [`WATCH_WAIT`] (the client's own connection task ended, or the broker
    /// froze).
    async fn client_answers(&self) -> bool {
        if !self.link.connected.load(Ordering::Relaxed) {
            return true;
        }
        // Nobody subscribes to it: the broker itself answers.
        let asked = self.client.request(wire::SYNC_SUBJECT, bytes::Bytes::new());
        match tokio::time::timeout(WATCH_WAIT, asked).await {
            Ok(Ok(_)) => true,
            Ok(Err(error)) => error.kind() == async_nats::RequestErrorKind::NoResponders,
            Err(_) => false,
        }
    }

    /// A new client in place of one that stopped answering: the members of
    /// rooms that span servers are told the link is lost (and, once the new
    /// client is up, that it is back), and every room is subscribed again.
    async fn new_client(
        &mut self,
    ) -> Option<(
        Client,
        mpsc::UnboundedReceiver<async_nats::Event>,
        Subscriptions,
    )> {
        warn!(
            "link: the client for {} stopped answering; starting a new one",
            shown_url(&self.url)
        );
        self.on_nats_event(async_nats::Event::Disconnected).await;
        let (client, events) = match super::connect(&self.url, self.ca.as_deref()).await {
            Ok(made) => made,
            Err(error) => {
                warn!("link: {error:#}");
                return None;
            }
        };
        let subscriptions = match Subscriptions::make(&client, &self.link.node).await {
            Ok(made) => made,
            Err(error) => {
                warn!("link: subscribing again: {error:#}");
                return None;
            }
        };
        let old = std::mem::replace(&mut self.client, client.clone());
        drop(old);
        self.jetstream = async_nats::jetstream::new(client.clone());
        let rooms: Vec<Arc<str>> = self.rooms.keys().cloned().collect();
        for room in rooms {
            self.resubscribe(room).await;
        }
        Some((client, events, subscriptions))
    }

    /// Rooms whose delivery ended (it panicked, or its subscription was
    /// closed) are subscribed to again.
    async fn restart_stopped_rooms(&mut self) {
        let stopped: Vec<Arc<str>> = self
            .rooms
            .iter()
            .filter(|(_, delivery)| delivery.is_finished())
            .map(|(room, _)| Arc::clone(room))
            .collect();
        for room in stopped {
            warn!("link: the delivery of #{room} stopped; subscribing again");
            self.resubscribe(room).await;
        }
    }

    /// Subscribes to `room` again: its new delivery catches up on what was
    /// published since the link was last lost.
    async fn resubscribe(&mut self, room: Arc<str>) {
        if let Some(delivery) = self.rooms.remove(&room) {
            delivery.abort();
        }
        let since = self.linked.borrow().lost_at;
        self.subscribe(room, Start::Again { since }).await;
    }

    /// Returns false if the link must end (its node name is taken).
    async fn on_nats_event(&mut self, event: async_nats::Event) -> bool {
        match event {
            async_nats::Event::Connected => {
                if !self.checked {
                    if node_in_use(&self.client, &self.link.node).await {
                        error!(
                            "link: node name \"{}\" is already in use on {}; not linking",
                            self.link.node,
                            shown_url(&self.url)
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
                info!("link to {} up{}", shown_url(&self.url), self.outage.ended());
                self.bind_history().await;
                let dropped = self.link.dropped.swap(0, Ordering::Relaxed);
                if dropped > 0 {
                    warn!(
                        "link: {dropped} lines and notices did not reach the other servers while the link was down"
                    );
                }
                // With lines kept, the members are told once they are gone.
                match self.outbox.is_empty() {
                    true => self.restored(),
                    false => {
                        let at = tokio::time::Instant::now() + REPUBLISH_SETTLE;
                        self.republish_at = Some(at);
                    }
                }
            }
            async_nats::Event::Disconnected => {
                self.link.connected.store(false, Ordering::Relaxed);
                self.republish_at = None;
                self.linked.send_modify(|linked| {
                    if linked.up {
                        linked.lost_at = SystemTime::now();
                    }
                    linked.up = false;
                });
                self.outage.began();
                warn!("link to {} lost; retrying", shown_url(&self.url));
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
                self.port.link_lost(&newly_lost);
            }
            // Each failed attempt to reconnect: counted, and said at most
            // once a minute while the broker stays away.
            async_nats::Event::ClientError(error) => {
                self.outage.failed(&shown_url(&self.url), &error);
            }
            other => info!("link: {other}"),
        }
        true
    }

    /// Tells the members of the rooms that were told the link was lost that
    /// it is back (and how many of their lines it lost), then lets the
    /// rooms catch up on what the other servers said meanwhile.
    fn restored(&mut self) {
        let mut lost = self.outbox.take_lost();
        let total: u64 = lost.values().sum();
        if total > 0 {
            warn!(
                "link: {total} lines said while the link was down were let go (past --link-buffer)"
            );
        }
        let rooms: Vec<(Arc<str>, u64)> = self
            .told_lost
            .drain()
            .map(|room| {
                let lost = lost.remove(&room).unwrap_or(0);
                (room, lost)
            })
            .collect();
        self.port.link_restored(&rooms);
        self.linked.send_modify(|linked| linked.up = true);
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

    async fn on_control(&mut self, request: Control) {
        match request {
            Control::Subscribe(room) => {
                if !self.rooms.contains_key(&room) {
                    self.subscribe(room, Start::New).await;
                }
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

    /// Subscribes to `room`'s events, delivered by a task of the room's
    /// own from `start`.
    async fn subscribe(&mut self, room: Arc<str>, start: Start) {
        let Ok(subscriber) = self.client.subscribe(wire::room_subjects(&room)).await else {
            warn!("link: subscribing to #{room} failed");
            if let Start::New = start {
                self.port.history(&room, &[]);
            }
            return;
        };
        let delivery = Delivery {
            port: Arc::clone(&self.port),
            link: Arc::clone(&self.link),
            room: Arc::clone(&room),
            spanning: Arc::clone(&self.spanning),
            linked: self.linked.subscribe(),
            history_lines: self.history_lines,
            start,
        };
        self.rooms
            .insert(room, tokio::spawn(room::deliver(delivery, subscriber)));
    }

    /// Finds or makes the broker's history of the rooms, once connected;
    /// the log says once if the broker keeps none.
    async fn bind_history(&mut self) {
        if self.history_lines == 0 {
            return;
        }
        let stream = match history::bind(&self.client, self.history_lines).await {
            Bound::Stream(stream) => Some(stream),
            Bound::NoJetStream => {
                if !self.said_no_history {
                    self.said_no_history = true;
                    warn!(
                        "link: the broker {} has no JetStream (nats-server -js): each server keeps its rooms' history alone, and lines said while the link is down are lost",
                        shown_url(&self.url)
                    );
                }
                None
            }
            Bound::Failed(error) => {
                warn!("link: the rooms' history on the broker: {error}; each server keeps its own");
                None
            }
        };
        self.link.keeps.store(stream.is_some(), Ordering::Relaxed);
        self.linked.send_modify(|linked| linked.history = stream);
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
}

/// Ready at `at`; never if `None`.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Runs one of the task's handlers; a panic in it is caught (the panic
/// hook has said it) and the task goes on: `None` then.
async fn survive<T>(handler: impl std::future::Future<Output = T>) -> Option<T> {
    use futures_util::FutureExt;
    let caught = std::panic::AssertUnwindSafe(handler).catch_unwind().await;
    if caught.is_err() {
        error!("link: a handler panicked (said above); the link goes on");
    }
    caught.ok()
}
