//! Publishing: notices and, without the broker's history, lines as they
//! come (dropped while the link is down); with it, each line kept in the
//! outbox until the broker confirms it, the ones said while the link was
//! down published once it is back.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;

use super::super::broker::epoch;
use super::super::handle::Queued;
use super::super::port::Event;
use super::super::wire;
use super::Task;

/// A confirmation is awaited at least once this many lines; the broker
/// keeps a connection's lines in order, so one confirms those before it.
const CONFIRM_EVERY: usize = 64;

/// A line's confirmation: its id in the outbox, and whether the broker
/// kept it.
type Confirmation = Pin<Box<dyn Future<Output = (u64, bool)> + Send>>;

/// The confirmations awaited, in the order the lines were published: one
/// for the last line of each burst, and one every [`CONFIRM_EVERY`].
#[derive(Default)]
pub(in crate::link) struct Acks {
    awaited: FuturesOrdered<Confirmation>,
    unawaited: usize,
}

impl Acks {
    fn sent(&mut self, id: u64, ack: PublishAckFuture, last_of_burst: bool) {
        self.unawaited += 1;
        if last_of_burst || self.unawaited >= CONFIRM_EVERY {
            self.unawaited = 0;
            self.awaited
                .push_back(Box::pin(async move { (id, ack.await.is_ok()) }));
        }
        // An ack not awaited is dropped; the client reads it all the same.
    }

    /// The next confirmation; pending for ever while none is awaited.
    pub(super) async fn next(&mut self) -> Option<(u64, bool)> {
        match self.awaited.next().await {
            Some(confirmed) => Some(confirmed),
            None => std::future::pending().await,
        }
    }

    fn clear(&mut self) {
        self.awaited = FuturesOrdered::new();
        self.unawaited = 0;
    }
}

impl Task {
    /// Hands `queued` to the client; its room in the queue is given back
    /// once the client has it. `last_of_burst` when no other event waits.
    pub(super) async fn publish(&mut self, queued: Queued, acks: &mut Acks, last_of_burst: bool) {
        let Queued { event, _room } = queued;
        let talk = matches!(event, Event::Said { .. } | Event::Action { .. });
        if talk && self.link.keeps.load(Ordering::Relaxed) {
            // Behind those kept while the link was down, until they go.
            if !self.link.connected.load(Ordering::Relaxed) || self.republish_at.is_some() {
                self.outbox.keep(event, None);
                return;
            }
            let number = self.next_number(event.room());
            let id = self.outbox.keep(event.clone(), Some(number));
            self.send_kept(id, event, number, acks, last_of_burst).await;
            return;
        }
        let (epoch, sequence) = self.next_number(event.room());
        let (subject, headers, payload) = wire::encode(event, &self.link.node, epoch, sequence);
        if self
            .client
            .publish_with_headers(subject, headers, payload)
            .await
            .is_err()
        {
            self.link.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Publishes every line kept, in order: those said while the link was
    /// down (numbered now) and those the broker had not confirmed (under
    /// their numbers, so that each is kept and delivered once).
    pub(super) async fn publish_kept(&mut self, acks: &mut Acks) {
        acks.clear();
        let kept = self.outbox.take();
        let count = kept.len();
        for (at, line) in kept.into_iter().enumerate() {
            let number = match line.number {
                Some(number) => number,
                None => self.next_number(line.event.room()),
            };
            let id = self.outbox.keep(line.event.clone(), Some(number));
            self.send_kept(id, line.event, number, acks, at + 1 == count)
                .await;
        }
    }

    async fn send_kept(
        &mut self,
        id: u64,
        event: Event,
        (epoch, sequence): (u128, u64),
        acks: &mut Acks,
        last_of_burst: bool,
    ) {
        let (subject, headers, payload) = wire::encode(event, &self.link.node, epoch, sequence);
        let message = PublishMessage::build().headers(headers).payload(payload);
        // One that fails stays kept, published again once the link is back.
        if let Ok(ack) = self.jetstream.send_publish(subject, message).await {
            acks.sent(id, ack, last_of_burst);
        }
    }

    /// The broker confirmed the line `id` and those before it; or it
    /// refused them while up (they reached the servers listening, not the
    /// history): either way they are no longer kept. A confirmation that
    /// failed because the link went keeps them.
    pub(super) fn on_ack(&mut self, (id, kept): (u64, bool)) {
        if kept || self.link.connected.load(Ordering::Relaxed) {
            self.outbox.confirmed_through(id);
        }
    }

    /// The epoch and number of this server's next event in `room`: events
    /// are numbered from 1 in each room, and a room that had no local
    /// members for a while starts again with a later epoch.
    pub(super) fn next_number(&mut self, room: &Arc<str>) -> (u128, u64) {
        let latest = self.numbering.values().map(|(epoch, _)| *epoch).max();
        let (epoch, sequence) = self
            .numbering
            .entry(Arc::clone(room))
            .or_insert_with(|| (epoch().max(latest.map_or(0, |latest| latest + 1)), 0));
        *sequence += 1;
        (*epoch, *sequence)
    }
}
