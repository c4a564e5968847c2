//! What crosses between the link and the chat: the chat's events for the
//! other servers, the other servers' events as they arrive, and the port
//! through which the link reaches the chat.

use std::sync::Arc;

use bytes::Bytes;

/// Something that happened in a room, for the other servers.
#[derive(Clone, Debug)]
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

impl Event {
    /// The room it happened in.
    pub(crate) fn room(&self) -> &Arc<str> {
        match self {
            Event::Said { room, .. }
            | Event::Action { room, .. }
            | Event::Joined { room, .. }
            | Event::Left { room, .. }
            | Event::Renamed { room, .. } => room,
        }
    }

    /// The bytes of what was said, for the queue's bound.
    pub(crate) fn text_len(&self) -> usize {
        match self {
            Event::Said { text, .. } | Event::Action { text, .. } => text.len(),
            _ => 0,
        }
    }
}

/// A member of another server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteNick {
    pub nick: String,
    pub node: String,
}

/// Something that happened in a room on another server, as it arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remote {
    pub from: RemoteNick,
    pub what: RemoteEvent,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoteEvent {
    /// A chat line, as its raw bytes.
    Said(Bytes),
    /// A `/me`, as its raw bytes.
    Action(Bytes),
    Joined,
    Left {
        why: Option<String>,
    },
    /// `from` is the new nick.
    Renamed {
        old: String,
    },
}

/// What the link needs of the chat: where what other servers say goes,
/// and what this server answers to their questions.
pub trait Port: Send + Sync + 'static {
    /// Events from other servers in `room`, in the order they arrived
    /// (each once), for the room's local members: together, as one batch.
    fn deliver_remote(&self, room: &str, events: &[Remote]);
    /// What the broker keeps of `room`, oldest first, each line with when
    /// it was said (empty when it keeps nothing): given once each time the
    /// room is subscribed to anew, before any of its events from other
    /// servers, for the members who joined it meanwhile.
    fn history(&self, room: &str, lines: &[(Remote, std::time::SystemTime)]);
    /// A private message from another server for the local member `to`;
    /// the member's nick as shown, or `None` if there is no such member.
    fn deliver_private(&self, to: &str, from: &RemoteNick, text: &[u8]) -> Option<Arc<str>>;
    /// The longest text a remote line may carry (`--max-line-bytes`):
    /// longer ones are dropped as malformed.
    fn max_text(&self) -> usize;
    /// The local member called `nick` (in any case), as shown, if any.
    fn find_member(&self, nick: &str) -> Option<Arc<str>>;
    /// The local members of `room`, sorted.
    fn local_names(&self, room: &str) -> Vec<String>;
    /// The local rooms and how many members each has here.
    fn local_rooms(&self) -> Vec<(String, usize)>;
    /// The link to the other servers was lost: the members of `rooms` are
    /// to be told.
    fn link_lost(&self, rooms: &[Arc<str>]);
    /// The link is back: the members of each room are to be told, and how
    /// many lines said there while it was down never reached the others.
    fn link_restored(&self, rooms: &[(Arc<str>, u64)]);
}

/// Where `/msg NICK TEXT` went, for a nick on no server of its sender's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Found {
    /// Exactly one other server has a member NICK: it was sent there.
    Sent(RemoteNick),
    /// No server that answered has one.
    #[default]
    Nobody,
    /// Several have one; nothing was sent.
    Several(Vec<RemoteNick>),
}

/// Where the answer to a question asked of every server goes, exactly
/// once: if it is dropped unanswered (the question could not be asked, or
/// the task asking it ended), it answers as if no other server had, so
/// nobody waits for it for ever.
pub struct Answer<T: Default> {
    to: Option<Box<dyn FnOnce(T) + Send>>,
}

impl<T: Default> Answer<T> {
    pub fn new(to: impl FnOnce(T) + Send + 'static) -> Self {
        Self {
            to: Some(Box::new(to)),
        }
    }

    /// Hands over the answer.
    pub fn give(mut self, answer: T) {
        if let Some(to) = self.to.take() {
            to(answer);
        }
    }
}

impl<T: Default> Drop for Answer<T> {
    fn drop(&mut self) {
        if let Some(to) = self.to.take() {
            to(T::default());
        }
    }
}

impl<T: Default> std::fmt::Debug for Answer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Answer")
    }
}
