//! The rooms' history on the broker: one JetStream stream for every room's
//! talk (`chat.room.*.talk`), at most `--history` messages a room and
//! [`HISTORY_AGE`] old. The first server that needs it creates it; the
//! others bind to it, and say in their log if its settings differ from
//! theirs. A room's history is read with a short-lived consumer of that
//! room's subject only.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::stream::{self, DiscardPolicy, StorageType};
use async_nats::jetstream::{self, context::CreateStreamErrorKind};
use async_nats::{Client, Message};
use futures_util::StreamExt;
use tracing::{info, warn};

use super::wire::{TALK_SUBJECTS, talk_subject};

/// The stream's name.
pub const STREAM: &str = "CHAT_ROOMS";
/// How long the broker keeps a line.
pub const HISTORY_AGE: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// How long the broker may take to answer a question about the stream: a
/// member's greeting waits for it.
const ANSWER_WAIT: Duration = Duration::from_secs(1);
/// How long a consumer left behind (its server went away while reading)
/// lives on the broker.
const CONSUMER_LINGER: Duration = Duration::from_secs(30);

/// What the broker offers for the rooms' history.
pub(super) enum Bound {
    /// The stream, made or found.
    Stream(Arc<stream::Stream>),
    /// The broker has no JetStream: history stays on each server, and an
    /// outage loses what is said during it.
    NoJetStream,
    /// The broker has JetStream but the stream could not be made or read;
    /// tried again on the next connection.
    Failed(String),
}

/// The stream as this server would make it, for `lines` lines a room.
fn config(lines: usize) -> stream::Config {
    stream::Config {
        name: STREAM.to_string(),
        subjects: vec![TALK_SUBJECTS.to_string()],
        max_messages_per_subject: i64::try_from(lines).unwrap_or(i64::MAX),
        max_age: HISTORY_AGE,
        discard: DiscardPolicy::Old,
        storage: StorageType::File,
        allow_direct: true,
        ..Default::default()
    }
}

/// Finds or makes the stream of the rooms' history, keeping `lines` a
/// room; says in the log if the one found keeps something else.
pub(super) async fn bind(client: &Client, lines: usize) -> Bound {
    let mut context = jetstream::new(client.clone());
    context.set_timeout(ANSWER_WAIT);
    let wanted = config(lines);
    let mut stream = match context.get_or_create_stream(wanted.clone()).await {
        Ok(stream) => stream,
        Err(error) if error.kind() == CreateStreamErrorKind::JetStreamUnavailable => {
            return Bound::NoJetStream;
        }
        Err(error) => return Bound::Failed(error.to_string()),
    };
    match stream.info().await {
        Ok(found) => {
            let differences = differences(&found.config, &wanted);
            if differences.is_empty() {
                info!("link: the rooms' history is kept on the broker, in the stream {STREAM}");
            } else {
                warn!(
                    "link: the stream {STREAM} on the broker {}; using it as it is",
                    differences.join(", ")
                );
            }
            Bound::Stream(Arc::new(stream))
        }
        Err(error) => Bound::Failed(error.to_string()),
    }
}

/// How `found` differs from `wanted`, in the words of the log.
fn differences(found: &stream::Config, wanted: &stream::Config) -> Vec<String> {
    let mut said = Vec::new();
    if found.subjects != wanted.subjects {
        said.push(format!(
            "keeps the subjects {:?}, not {:?}",
            found.subjects, wanted.subjects
        ));
    }
    if found.max_messages_per_subject != wanted.max_messages_per_subject {
        said.push(format!(
            "keeps {} lines a room, not {} (--history)",
            found.max_messages_per_subject, wanted.max_messages_per_subject
        ));
    }
    if found.max_age != wanted.max_age {
        said.push(format!(
            "keeps lines for {}s, not {}s",
            found.max_age.as_secs(),
            wanted.max_age.as_secs()
        ));
    }
    said
}

/// A line from the stream, with when the broker stored it.
pub(super) struct Stored {
    pub(super) message: Message,
    pub(super) published: SystemTime,
}

/// The lines the stream keeps for `room`, oldest first, at most `limit`
/// (the newest), within [`ANSWER_WAIT`] for each answer.
pub(super) async fn fetch(
    stream: &stream::Stream,
    room: &str,
    limit: usize,
) -> anyhow::Result<Vec<Stored>> {
    let consumer = stream
        .create_consumer(pull::Config {
            filter_subject: talk_subject(room),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::None,
            inactive_threshold: CONSUMER_LINGER,
            memory_storage: true,
            ..Default::default()
        })
        .await?;
    let name = consumer.cached_info().name.clone();
    let pending = usize::try_from(consumer.cached_info().num_pending).unwrap_or(usize::MAX);
    let mut stored = Vec::with_capacity(pending.min(limit));
    // The oldest beyond `limit` are passed over, not fetched.
    let skip = pending.saturating_sub(limit);
    let mut messages = consumer
        .fetch()
        .max_messages(pending)
        .expires(ANSWER_WAIT)
        .messages()
        .await?;
    let mut seen = 0;
    while seen < pending {
        let next = tokio::time::timeout(ANSWER_WAIT, messages.next()).await;
        let Ok(Some(message)) = next else { break };
        let message = message.map_err(|error| anyhow::anyhow!("{error}"))?;
        seen += 1;
        if seen <= skip {
            continue;
        }
        let published = message.info().map_or(SystemTime::UNIX_EPOCH, |info| {
            let nanos = u64::try_from(info.published.unix_timestamp_nanos()).unwrap_or(0);
            SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos)
        });
        stored.push(Stored {
            message: message.split().0,
            published,
        });
    }
    // Gone by itself after CONSUMER_LINGER if this does not reach it.
    let stream = stream.clone();
    tokio::spawn(async move { stream.delete_consumer(&name).await });
    Ok(stored)
}
