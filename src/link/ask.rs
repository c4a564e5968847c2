//! Questions to every linked server, answered within a second: `/who` (and
//! the `here:` line, within half of one), `/rooms`, `/msg NICK@NODE`, and
//! `/msg NICK` for a nick on another server. Each runs as a task of its own and ends
//! by handing its answer to the callback it came with, so a member never
//! waits for the broker.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::Client;
use bytes::Bytes;
use futures_util::StreamExt;

use super::handle::{GATHER_WAIT, Link};
use super::port::{Answer, Found, RemoteNick};
use super::room::Spanning;
use super::wire;

/// Once one server has answered, how much longer the others are waited for.
const GATHER_SETTLE: Duration = Duration::from_millis(200);

/// What a question needs: the client, this node's name, and whether the
/// broker is there at all.
pub(super) struct Asker {
    pub client: Client,
    pub node: Arc<str>,
    pub connected: bool,
    /// Where a malformed answer is counted.
    pub link: Arc<Link>,
}

/// `/who`: every other server's members of `room`, waiting `wait` at
/// most. A room any of them answers for spans servers.
pub(super) async fn who(
    asker: Asker,
    room: Arc<str>,
    wait: Duration,
    spanning: Spanning,
    answer: Answer<Vec<RemoteNick>>,
) {
    let mut names = Vec::new();
    let headers = wire::question_headers(Some(&room));
    for (node, answered) in gather(&asker, wire::WHO_SUBJECT, headers, wait).await {
        let Some(nicks) = wire::decode_names(&answered) else {
            asker.link.count_malformed();
            continue;
        };
        let before = names.len();
        for nick in nicks {
            names.push(RemoteNick {
                nick,
                node: node.clone(),
            });
        }
        if names.len() > before
            && let Ok(mut spanning) = spanning.lock()
        {
            spanning.insert(Arc::clone(&room));
        }
    }
    answer.give(names);
}

/// `/rooms`: every other server's rooms, members added up.
pub(super) async fn rooms(asker: Asker, answer: Answer<Vec<(String, usize)>>) {
    let mut rooms: BTreeMap<String, usize> = BTreeMap::new();
    let headers = wire::question_headers(None);
    for (_, answered) in gather(&asker, wire::ROOMS_SUBJECT, headers, GATHER_WAIT).await {
        let Some(answered) = wire::decode_rooms(&answered) else {
            asker.link.count_malformed();
            continue;
        };
        for (name, count) in answered {
            let total = rooms.entry(name).or_default();
            *total = total.saturating_add(count);
        }
    }
    answer.give(rooms.into_iter().collect());
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
    answer.give(send_private(&asker, &from, &to, text).await);
}

/// `/msg NICK TEXT` for a nick this server does not have: which servers
/// have one, then, if only one has, `/msg NICK@NODE TEXT`.
pub(super) async fn message_anyone(
    asker: Asker,
    from: Arc<str>,
    nick: String,
    text: Bytes,
    answer: Answer<Found>,
) {
    let headers = wire::nick_question_headers(&nick);
    let mut having: Vec<RemoteNick> = gather(&asker, wire::NICK_SUBJECT, headers, GATHER_WAIT)
        .await
        .into_iter()
        .filter_map(|(node, shown)| match shown_nick(&shown) {
            Some(nick) => Some(RemoteNick { nick, node }),
            None => {
                asker.link.count_malformed();
                None
            }
        })
        .collect();
    having.sort_by(|a, b| a.node.cmp(&b.node));
    let found = match having.len() {
        0 => Found::Nobody,
        1 => {
            let to = having.remove(0);
            match send_private(&asker, &from, &to, text).await {
                Some(nick) => Found::Sent(RemoteNick { nick, ..to }),
                None => Found::Nobody,
            }
        }
        _ => Found::Several(having),
    };
    answer.give(found);
}

/// Sends `text` from `from` to `to` on its node; the receiver's nick as
/// shown, or `None` if the node has no such member or does not answer.
async fn send_private(asker: &Asker, from: &str, to: &RemoteNick, text: Bytes) -> Option<String> {
    let headers = wire::private_headers(&asker.node, from, &to.nick);
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
        .filter(|shown| !shown.is_empty())?;
    let nick = shown_nick(&shown);
    if nick.is_none() {
        asker.link.count_malformed();
    }
    nick
}

/// A nick as another server answered it, if it is one.
fn shown_nick(answered: &[u8]) -> Option<String> {
    crate::names::nick(answered).map(str::to_string)
}

/// Asks every server on `subject` (what `headers` say) and collects the
/// answers, with the answering node, for up to `wait`.
async fn gather(
    asker: &Asker,
    subject: &'static str,
    headers: async_nats::HeaderMap,
    wait: Duration,
) -> Vec<(String, Bytes)> {
    let mut answers = Vec::new();
    if !asker.connected {
        return answers;
    }
    let client = &asker.client;
    let inbox = client.new_inbox();
    let Ok(mut replies) = client.subscribe(inbox.clone()).await else {
        return answers;
    };
    if client
        .publish_with_reply_and_headers(subject, inbox, headers, Bytes::new())
        .await
        .is_err()
    {
        return answers;
    }
    let mut deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(reply)) = tokio::time::timeout_at(deadline, replies.next()).await {
        if let Some(node) = wire::answering_node(&reply) {
            answers.push((node, reply.payload));
        }
        deadline = deadline.min(tokio::time::Instant::now() + GATHER_SETTLE);
    }
    answers
}
