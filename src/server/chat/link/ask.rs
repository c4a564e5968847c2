//! Questions to every linked server, answered within a second: `/who`,
//! `/rooms`, and `/msg NICK@NODE`. Each runs as a task of its own and ends
//! by sending the member its answer, so a member never waits for the broker.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::{Client, HeaderMap};
use bytes::{Bytes, BytesMut};

use super::wire::{KIND, NICK, NODE, NODE_SUBJECT, ROOM, ROOMS_SUBJECT, TO, WHO_SUBJECT, next};
use crate::protocol::chat as text;
use crate::server::chat::Hub;
use crate::server::chat::escape::{escape_into, escaped};
use crate::server::chat::mailbox::Mailbox;

/// How long `/who`, `/rooms` and `/msg` wait for the other servers.
pub(super) const GATHER_WAIT: Duration = Duration::from_secs(1);
/// Once one server has answered, how much longer the others are waited for.
const GATHER_SETTLE: Duration = Duration::from_millis(200);

/// What a question needs: the client, the hub, this node's name, and
/// whether the broker is there at all.
pub(super) struct Asker {
    pub client: Client,
    pub hub: Arc<Hub>,
    pub node: Arc<str>,
    pub connected: bool,
}

/// `/who`: `local` names and every other server's members of `room`.
pub(super) async fn who(
    asker: Asker,
    room: Arc<str>,
    local: Vec<String>,
    to: Arc<Mailbox>,
    spanning: Arc<Mutex<HashSet<Arc<str>>>>,
) {
    let mut names = local;
    for (node, answer) in gather(&asker, WHO_SUBJECT, Some(&room)).await {
        let nicks = answer
            .split(|&byte| byte == b'\n')
            .filter(|nick| !nick.is_empty());
        for nick in nicks {
            names.push(format!("{}@{node}", String::from_utf8_lossy(nick)));
        }
        if let Ok(mut spanning) = spanning.lock() {
            spanning.insert(Arc::clone(&room));
        }
    }
    names.sort_by_key(|name| name.to_ascii_lowercase());
    let lines = text::who(&room, names.iter().map(String::as_str), names.len());
    to.push(asker.hub.lines(&lines));
}

/// `/rooms`: `local` rooms and every other server's, members added up.
pub(super) async fn rooms(asker: Asker, local: Vec<(String, usize)>, to: Arc<Mailbox>) {
    let mut rooms: BTreeMap<String, usize> = local.into_iter().collect();
    for (_, answer) in gather(&asker, ROOMS_SUBJECT, None).await {
        for entry in String::from_utf8_lossy(&answer).lines() {
            if let Some((name, count)) = entry.split_once(' ')
                && let Ok(count) = count.parse::<usize>()
            {
                *rooms.entry(name.to_string()).or_default() += count;
            }
        }
    }
    let lines = text::rooms(rooms.iter().map(|(name, count)| (name.as_str(), *count)));
    to.push(asker.hub.lines(&lines));
}

/// `/msg NICK@NODE TEXT`: a request to that node, which answers with the
/// nick as shown, or nothing if it has no such member.
pub(super) async fn message(
    asker: Asker,
    from: Arc<str>,
    nick: String,
    node: String,
    message: Bytes,
    to: Arc<Mailbox>,
) {
    let mut headers = HeaderMap::new();
    headers.insert(KIND, "msg");
    headers.insert(NODE, &*asker.node);
    headers.insert(TO, nick.as_str());
    headers.insert(NICK, &*from);
    let request = asker.client.request_with_headers(
        format!("{NODE_SUBJECT}{node}"),
        headers,
        message.clone(),
    );
    let answer = match asker.connected {
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
            let receiver = format!("{}@{node}", String::from_utf8_lossy(&shown));
            text::private_sent_prefix(&mut copy, &receiver);
            escape_into(&mut copy, &message);
            copy.extend_from_slice(asker.hub.delimiter());
            copy.freeze()
        }
        None => {
            let asked = format!("{nick}@{node}");
            asker
                .hub
                .lines(&[text::no_such_nick(&escaped(asked.as_bytes()))])
        }
    };
    to.push(line);
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
    let mut headers = HeaderMap::new();
    if let Some(room) = room {
        headers.insert(ROOM, room);
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
