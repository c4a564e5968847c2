//! Questions to every linked server, answered within a second: `/who`,
//! `/rooms`, and `/msg NICK@NODE`. Each runs as a task of its own and ends
//! by handing its answer to the callback it came with, so a member never
//! waits for the broker.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::Client;
use bytes::Bytes;
use futures_util::StreamExt;

use super::port::{Answer, RemoteNick};
use super::room::Spanning;
use super::wire;

/// How long `/who`, `/rooms` and `/msg` wait for the other servers.
pub(super) const GATHER_WAIT: Duration = Duration::from_secs(1);
/// Once one server has answered, how much longer the others are waited for.
const GATHER_SETTLE: Duration = Duration::from_millis(200);

/// What a question needs: the client, this node's name, and whether the
/// broker is there at all.
pub(super) struct Asker {
    pub client: Client,
    pub node: Arc<str>,
    pub connected: bool,
}

/// `/who`: every other server's members of `room`. A room any of them
/// answers for spans servers.
pub(super) async fn who(
    asker: Asker,
    room: Arc<str>,
    spanning: Spanning,
    answer: Answer<Vec<RemoteNick>>,
) {
    let mut names = Vec::new();
    for (node, answered) in gather(&asker, wire::WHO_SUBJECT, Some(&room)).await {
        for nick in wire::decode_names(&answered) {
            names.push(RemoteNick {
                nick,
                node: node.clone(),
            });
        }
        if let Ok(mut spanning) = spanning.lock() {
            spanning.insert(Arc::clone(&room));
        }
    }
    answer(names);
}

/// `/rooms`: every other server's rooms, members added up.
pub(super) async fn rooms(asker: Asker, answer: Answer<Vec<(String, usize)>>) {
    let mut rooms: BTreeMap<String, usize> = BTreeMap::new();
    for (_, answered) in gather(&asker, wire::ROOMS_SUBJECT, None).await {
        for (name, count) in wire::decode_rooms(&answered) {
            *rooms.entry(name).or_default() += count;
        }
    }
    answer(rooms.into_iter().collect());
}

/// `/msg NICK@NODE TEXT`: a request to that node, which answers with the
/// nick as shown, or nothing if it has no such member.
pub(super) async fn message(
    asker: Asker,
    from: Arc<str>,
    to: RemoteNick,
    text: Bytes,
    answer: Answer<Option<String>>,
) {
    let headers = wire::private_headers(&asker.node, &from, &to.nick);
    let subject = format!("{}{}", wire::NODE_SUBJECT, to.node);
    let request = asker.client.request_with_headers(subject, headers, text);
    let reply = match asker.connected {
        true => tokio::time::timeout(GATHER_WAIT, request)
            .await
            .ok()
            .and_then(Result::ok),
        false => None,
    };
    let shown = reply
        .map(|reply| reply.payload)
        .filter(|shown| !shown.is_empty())
        .map(|shown| String::from_utf8_lossy(&shown).into_owned());
    answer(shown);
}

/// Asks every server on `subject` (about `room`) and collects the answers,
/// with the answering node, for up to [`GATHER_WAIT`].
async fn gather(asker: &Asker, subject: &'static str, room: Option<&str>) -> Vec<(String, Bytes)> {
    let mut answers = Vec::new();
    if !asker.connected {
        return answers;
    }
    let client = &asker.client;
    let inbox = client.new_inbox();
    let Ok(mut replies) = client.subscribe(inbox.clone()).await else {
        return answers;
    };
    let headers = wire::question_headers(room);
    if client
        .publish_with_reply_and_headers(subject, inbox, headers, Bytes::new())
        .await
        .is_err()
    {
        return answers;
    }
    let mut deadline = tokio::time::Instant::now() + GATHER_WAIT;
    while let Ok(Some(reply)) = tokio::time::timeout_at(deadline, replies.next()).await {
        if let Some(node) = wire::answering_node(&reply) {
            answers.push((node, reply.payload));
        }
        deadline = deadline.min(tokio::time::Instant::now() + GATHER_SETTLE);
    }
    answers
}
