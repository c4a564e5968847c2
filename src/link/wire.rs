//! What travels between linked servers, encoded and decoded: the subjects,
//! the headers that carry an event's nick, node and sequence, and the
//! answers to `/who` and `/rooms`. Nothing here does I/O.

use async_nats::{HeaderMap, Message};
use bytes::Bytes;

use super::port::{Event, Remote, RemoteEvent, RemoteNick};

pub(super) const ROOM_SUBJECT: &str = "chat.room.";
pub(super) const WHO_SUBJECT: &str = "chat.who";
pub(super) const ROOMS_SUBJECT: &str = "chat.rooms";
pub(super) const NODE_SUBJECT: &str = "chat.node.";
/// Who has a member of this nick (`/msg NICK` for a nick not on this
/// server): answered only by the servers that have one.
pub(super) const NICK_SUBJECT: &str = "chat.nick";
/// No server subscribes here: a request to it is answered by the broker
/// itself ("no responders"), after everything the server sent before it.
pub(super) const SYNC_SUBJECT: &str = "chat.sync";

pub(super) const NODE: &str = "Chat-Node";
/// When the sending server started: with the node, whose sequence it is.
pub(super) const EPOCH: &str = "Chat-Epoch";
pub(super) const SEQUENCE: &str = "Chat-Seq";
pub(super) const KIND: &str = "Chat-Kind";
pub(super) const NICK: &str = "Chat-Nick";
pub(super) const OLD_NICK: &str = "Chat-Old";
pub(super) const WHY: &str = "Chat-Why";
pub(super) const ROOM: &str = "Chat-Room";
pub(super) const TO: &str = "Chat-To";

/// The answer to a ping on a node's subject.
pub(super) const PONG: &[u8] = b"pong";

/// The subject of `room`'s events.
pub(super) fn room_subject(room: &str) -> String {
    format!("{ROOM_SUBJECT}{room}")
}

/// The subject, headers and payload that carry `event`, the `sequence`th
/// event of `node` since it started at `epoch`.
pub(super) fn encode(
    event: Event,
    node: &str,
    epoch: &str,
    sequence: u64,
) -> (String, HeaderMap, Bytes) {
    let mut headers = HeaderMap::new();
    headers.insert(NODE, node);
    headers.insert(EPOCH, epoch);
    headers.insert(SEQUENCE, sequence.to_string());
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
    (room_subject(&room), headers, payload)
}

/// A room event from another server, with where it stands in its sender's
/// order: the `sequence`th event of `node` since it started at `epoch`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Decoded {
    pub(super) epoch: String,
    pub(super) sequence: u64,
    pub(super) event: Remote,
}

/// The room event `message` carries; `None` if it is not one.
pub(super) fn decode(message: &Message) -> Option<Decoded> {
    let headers = message.headers.as_ref()?;
    let header = |name: &str| headers.get(name).map(|value| value.as_str());
    let (node, kind, nick) = (header(NODE)?, header(KIND)?, header(NICK)?);
    let what = match kind {
        "said" => RemoteEvent::Said(message.payload.clone()),
        "action" => RemoteEvent::Action(message.payload.clone()),
        "joined" => RemoteEvent::Joined,
        "left" => RemoteEvent::Left {
            why: header(WHY).map(str::to_string),
        },
        "renamed" => RemoteEvent::Renamed {
            old: header(OLD_NICK).unwrap_or("").to_string(),
        },
        _ => return None,
    };
    Some(Decoded {
        epoch: header(EPOCH).unwrap_or("").to_string(),
        sequence: header(SEQUENCE).and_then(|s| s.parse().ok()).unwrap_or(0),
        event: Remote {
            from: RemoteNick {
                nick: nick.to_string(),
                node: node.to_string(),
            },
            what,
        },
    })
}

/// The headers of a private message from `from` on `node` to `to`.
pub(super) fn private_headers(node: &str, from: &str, to: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(KIND, "msg");
    headers.insert(NODE, node);
    headers.insert(TO, to);
    headers.insert(NICK, from);
    headers
}

/// What arrives on a node's own subject.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ToNode {
    /// Is this node name in use?
    Ping,
    /// A private message for the local member `to`; its text is the payload.
    Private { to: String, from: RemoteNick },
    /// A private message without its receiver or sender.
    Malformed,
}

pub(super) fn decode_private(message: &Message) -> ToNode {
    let header = |name: &str| {
        let headers = message.headers.as_ref()?;
        headers.get(name).map(|value| value.as_str().to_string())
    };
    if header(KIND).as_deref() != Some("msg") {
        return ToNode::Ping;
    }
    match (header(TO), header(NICK), header(NODE)) {
        (Some(to), Some(nick), Some(node)) => ToNode::Private {
            to,
            from: RemoteNick { nick, node },
        },
        _ => ToNode::Malformed,
    }
}

/// The headers of a question about `room` (`/who`), or of none (`/rooms`).
pub(super) fn question_headers(room: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(room) = room {
        headers.insert(ROOM, room);
    }
    headers
}

/// The headers of a question about who has a member `nick`.
pub(super) fn nick_question_headers(nick: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(NICK, nick);
    headers
}

/// The nick a question on [`NICK_SUBJECT`] asks about.
pub(super) fn asked_nick(message: &Message) -> Option<String> {
    let headers = message.headers.as_ref()?;
    headers.get(NICK).map(|nick| nick.as_str().to_string())
}

/// The room a `/who` question asks about.
pub(super) fn asked_room(message: &Message) -> Option<String> {
    let headers = message.headers.as_ref()?;
    headers.get(ROOM).map(|room| room.as_str().to_string())
}

/// The headers of an answer from `node`.
pub(super) fn answer_headers(node: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(NODE, node);
    headers
}

/// The node an answer comes from.
pub(super) fn answering_node(message: &Message) -> Option<String> {
    let headers = message.headers.as_ref()?;
    headers.get(NODE).map(|node| node.as_str().to_string())
}

/// A `/who` answer: one nick a line.
pub(super) fn encode_names(names: &[String]) -> Bytes {
    names.join("\n").into()
}

pub(super) fn decode_names(answer: &[u8]) -> Vec<String> {
    answer
        .split(|&byte| byte == b'\n')
        .filter(|nick| !nick.is_empty())
        .map(|nick| String::from_utf8_lossy(nick).into_owned())
        .collect()
}

/// A `/rooms` answer: `NAME COUNT` a line.
pub(super) fn encode_rooms(rooms: &[(String, usize)]) -> Bytes {
    let lines: Vec<String> = rooms
        .iter()
        .map(|(name, count)| format!("{name} {count}"))
        .collect();
    lines.join("\n").into()
}

pub(super) fn decode_rooms(answer: &[u8]) -> Vec<(String, usize)> {
    String::from_utf8_lossy(answer)
        .lines()
        .filter_map(|entry| {
            let (name, count) = entry.split_once(' ')?;
            Some((name.to_string(), count.parse().ok()?))
        })
        .collect()
}

/// A message as the client would hand it over, for tests.
#[cfg(test)]
pub(super) fn message(subject: String, headers: HeaderMap, payload: Bytes) -> Message {
    Message {
        subject: subject.into(),
        reply: None,
        payload,
        headers: Some(headers),
        status: None,
        description: None,
        length: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn every_room_event_decodes_to_what_was_encoded() {
        let (room, nick): (Arc<str>, Arc<str>) = ("lobby".into(), "alice".into());
        let cases = [
            (
                Event::Said {
                    room: Arc::clone(&room),
                    nick: Arc::clone(&nick),
                    text: Bytes::from_static(b"hi \x1b there"),
                },
                RemoteEvent::Said(Bytes::from_static(b"hi \x1b there")),
            ),
            (
                Event::Action {
                    room: Arc::clone(&room),
                    nick: Arc::clone(&nick),
                    text: Bytes::from_static(b"waves"),
                },
                RemoteEvent::Action(Bytes::from_static(b"waves")),
            ),
            (
                Event::Joined {
                    room: Arc::clone(&room),
                    nick: Arc::clone(&nick),
                },
                RemoteEvent::Joined,
            ),
            (
                Event::Left {
                    room: Arc::clone(&room),
                    nick: Arc::clone(&nick),
                    why: Some("bye".to_string()),
                },
                RemoteEvent::Left {
                    why: Some("bye".to_string()),
                },
            ),
            (
                Event::Renamed {
                    room: Arc::clone(&room),
                    old: "guest1".into(),
                    new: Arc::clone(&nick),
                },
                RemoteEvent::Renamed {
                    old: "guest1".to_string(),
                },
            ),
        ];
        for (sequence, (event, what)) in (1..).zip(cases) {
            let (subject, headers, payload) = encode(event, "one", "42", sequence);
            assert_eq!(subject, "chat.room.lobby");
            let decoded = decode(&message(subject, headers, payload));
            let from = RemoteNick {
                nick: "alice".to_string(),
                node: "one".to_string(),
            };
            assert_eq!(
                decoded,
                Some(Decoded {
                    epoch: "42".to_string(),
                    sequence,
                    event: Remote { from, what },
                })
            );
        }
    }

    #[test]
    fn what_is_not_a_room_event_decodes_to_none() {
        let mut headers = HeaderMap::new();
        headers.insert(NODE, "one");
        headers.insert(NICK, "alice");
        headers.insert(KIND, "teleported");
        let strange = message(room_subject("lobby"), headers, Bytes::new());
        assert_eq!(decode(&strange), None);
        let mut bare = strange;
        bare.headers = None;
        assert_eq!(decode(&bare), None);
    }

    #[test]
    fn answers_and_private_messages_round_trip() {
        let names = vec!["alice".to_string(), "bob".to_string()];
        assert_eq!(decode_names(&encode_names(&names)), names);
        let rooms = vec![("lobby".to_string(), 3), ("rust".to_string(), 1)];
        assert_eq!(decode_rooms(&encode_rooms(&rooms)), rooms);
        let private = message(
            "chat.node.two".to_string(),
            private_headers("one", "alice", "bob"),
            Bytes::from_static(b"psst"),
        );
        let from = RemoteNick {
            nick: "alice".to_string(),
            node: "one".to_string(),
        };
        assert_eq!(
            decode_private(&private),
            ToNode::Private {
                to: "bob".to_string(),
                from
            }
        );
        let ping = message("chat.node.two".to_string(), HeaderMap::new(), Bytes::new());
        assert_eq!(decode_private(&ping), ToNode::Ping);
    }
}
