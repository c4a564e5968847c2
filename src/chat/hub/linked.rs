//! The hub's side of the link to other servers (`--link`): the [`Port`]
//! through which the link delivers what other servers say and asks what
//! this server has, and the answers to questions asked of every server,
//! made into lines for the member who asked. Everything that arrives from
//! another server is escaped here, as for a local member's lines.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};

use super::super::mailbox::Mailbox;
use super::super::names;
use super::{Hub, MemberId, State, lines_with};
use crate::escape::{escape_into, escaped};
use crate::link::{Answer, Blocked, Event, Found, Link, Port, Remote, RemoteEvent, RemoteNick};
use crate::protocol::chat as text;

impl Hub {
    /// Links this chat to others; rooms that already have members are
    /// subscribed to.
    pub fn set_link(&self, link: Arc<Link>) {
        let state = self.lock();
        for room in state.rooms.keys() {
            link.subscribe(Arc::clone(room));
        }
        let _ = self.link.set(link);
    }

    pub fn link(&self) -> Option<&Arc<Link>> {
        self.link.get()
    }

    /// The rest of a greeting across servers: the room's recent lines, and
    /// the `here:` line once the other servers have answered (half a
    /// second at most).
    pub(super) fn greet_across(&self, state: &State, id: MemberId, room: &str, arriving: bool) {
        let (Some(link), Some(member)) = (self.link(), state.members.get(&id)) else {
            return;
        };
        self.send_recent(state, id, room);
        let local = state.sorted_names(room, text::HERE_NAMES);
        let local = local.into_iter().map(str::to_string).collect();
        let total = state.rooms.get(room).map_or(0, |room| room.members.len());
        let answer = self.here_across(local, total, arriving, &member.mailbox);
        link.here(Arc::from(room), answer);
    }

    /// Sends one of the member's chat lines (or, if `action`, its `/me`)
    /// to the other servers, as its raw bytes. When the link's queue is
    /// full, the line is given back to wait for room: the member is then
    /// read no further until it has been handed over.
    pub fn relay(&self, id: MemberId, text: &[u8], action: bool) -> Result<(), Blocked> {
        let Some(link) = self.link() else {
            return Ok(());
        };
        let (room, nick) = {
            let state = self.lock();
            let Some(member) = state.members.get(&id) else {
                return Ok(());
            };
            (Arc::clone(&member.room), Arc::clone(&member.nick.shown))
        };
        let text = Bytes::copy_from_slice(text);
        link.publish_line(match action {
            false => Event::Said { room, nick, text },
            true => Event::Action { room, nick, text },
        })
    }

    /// The answer to `/who` in `room` across servers: `local` names and the
    /// others' as `NICK@NODE`, sorted, to `to`.
    pub(super) fn who_across(
        &self,
        room: Arc<str>,
        local: Vec<String>,
        to: &Arc<Mailbox>,
    ) -> Answer<Vec<RemoteNick>> {
        // The member's next lines wait for this answer.
        to.await_answer();
        let (to, delimiter) = (Arc::clone(to), self.delimiter.clone());
        Answer::new(move |remote: Vec<RemoteNick>| {
            let names = merged(local, &remote);
            let lines = text::who(&room, names.iter().map(String::as_str), names.len());
            to.answer(&lines_with(&delimiter, &lines));
        })
    }

    /// The rest of a joining member's greeting across servers: the `here:`
    /// line with `local` names (the first few of `local_total`, sorted)
    /// and the others' as `NICK@NODE`, then, if `arriving`, how to talk.
    pub(super) fn here_across(
        &self,
        local: Vec<String>,
        local_total: usize,
        arriving: bool,
        to: &Arc<Mailbox>,
    ) -> Answer<Vec<RemoteNick>> {
        // The member's next lines wait for this answer.
        to.await_answer();
        let (to, delimiter) = (Arc::clone(to), self.delimiter.clone());
        Answer::new(move |remote: Vec<RemoteNick>| {
            let total = local_total + remote.len();
            let names = merged(local, &remote);
            let mut lines = vec![text::here(names.iter().map(String::as_str), total)];
            if arriving {
                lines.push(text::HOW_TO_TALK.to_string());
            }
            to.answer(&lines_with(&delimiter, &lines));
        })
    }

    /// The answer to `/rooms` across servers: `local` rooms and the others',
    /// members added up, to `to`.
    pub(super) fn rooms_across(
        &self,
        local: Vec<(String, usize)>,
        to: &Arc<Mailbox>,
    ) -> Answer<Vec<(String, usize)>> {
        // The member's next lines wait for this answer.
        to.await_answer();
        let (to, delimiter) = (Arc::clone(to), self.delimiter.clone());
        Answer::new(move |remote: Vec<(String, usize)>| {
            let mut rooms: BTreeMap<String, usize> = local.into_iter().collect();
            for (name, count) in remote {
                *rooms.entry(escaped(name.as_bytes())).or_default() += count;
            }
            let lines = text::rooms(rooms.iter().map(|(name, count)| (name.as_str(), *count)));
            to.answer(&lines_with(&delimiter, &lines));
        })
    }

    /// The answer to `/msg NICK@NODE TEXT` for another server: the copy
    /// the sender sees, or that there is no such nick, to `to`.
    pub(super) fn message_across(
        &self,
        asked: RemoteNick,
        message: &[u8],
        to: &Arc<Mailbox>,
    ) -> Answer<Option<String>> {
        // The member's next lines wait for this answer.
        to.await_answer();
        let (to, delimiter) = (Arc::clone(to), self.delimiter.clone());
        let max_text = self.max_text;
        let message = Bytes::copy_from_slice(message);
        Answer::new(move |shown_nick: Option<String>| {
            let line = match shown_nick {
                Some(nick) => {
                    let receiver = RemoteNick { nick, ..asked };
                    let mut copy = BytesMut::new();
                    text::private_sent_prefix(&mut copy, &escaped(shown(&receiver).as_bytes()));
                    escape_into(&mut copy, &message, max_text);
                    copy.extend_from_slice(&delimiter);
                    copy.freeze()
                }
                None => {
                    let error = text::no_such_nick(&escaped(shown(&asked).as_bytes()));
                    lines_with(&delimiter, &[error])
                }
            };
            to.answer(&line);
        })
    }

    /// The answer to `/msg NICK TEXT` for a nick on no server of this one's
    /// (`asked`, as typed): the copy the sender sees, that several servers
    /// have one, or that none has, to `to`.
    pub(super) fn message_anyone(
        &self,
        asked: &[u8],
        message: &[u8],
        to: &Arc<Mailbox>,
    ) -> Answer<Found> {
        // The member's next lines wait for this answer.
        to.await_answer();
        let (to, delimiter) = (Arc::clone(to), self.delimiter.clone());
        let max_text = self.max_text;
        let message = Bytes::copy_from_slice(message);
        let asked = escaped(asked);
        Answer::new(move |found: Found| {
            let error = match found {
                Found::Sent(receiver) => {
                    let mut copy = BytesMut::new();
                    text::private_sent_prefix(&mut copy, &escaped(shown(&receiver).as_bytes()));
                    escape_into(&mut copy, &message, max_text);
                    copy.extend_from_slice(&delimiter);
                    to.answer(&copy.freeze());
                    return;
                }
                Found::Nobody => text::no_such_nick(&asked),
                Found::Several(members) => {
                    let members: Vec<String> = members
                        .iter()
                        .map(|member| escaped(shown(member).as_bytes()))
                        .collect();
                    text::on_several_servers(&asked, members.iter().map(String::as_str))
                }
            };
            to.answer(&lines_with(&delimiter, &[error]));
        })
    }

    /// Appends the line `event` from another server stands for to `batch`.
    /// This server's own lines come back only in a room's history, from an
    /// earlier run: shown as its members' lines are.
    fn add_remote_line(&self, batch: &mut BytesMut, event: &Remote) {
        let own = self
            .link()
            .is_some_and(|link| link.node() == event.from.node);
        let who = match own {
            true => escaped(event.from.nick.as_bytes()),
            false => escaped(shown(&event.from).as_bytes()),
        };
        match &event.what {
            RemoteEvent::Said(said) => {
                text::said_prefix(batch, &who);
                escape_into(batch, said, self.max_text);
            }
            RemoteEvent::Action(action) => {
                text::action_prefix(batch, &who);
                escape_into(batch, action, self.max_text);
            }
            RemoteEvent::Joined => batch.extend_from_slice(text::joined(&who).as_bytes()),
            RemoteEvent::Left { why } => {
                let why = why.as_ref().map(|why| escaped(why.as_bytes()));
                batch.extend_from_slice(text::left(&who, why.as_deref()).as_bytes());
            }
            RemoteEvent::Renamed { old } => {
                let old = RemoteNick {
                    nick: old.clone(),
                    node: event.from.node.clone(),
                };
                let old = escaped(shown(&old).as_bytes());
                batch.extend_from_slice(text::renamed(&old, &who).as_bytes());
            }
        }
        batch.extend_from_slice(&self.delimiter);
    }
}

impl Port for Hub {
    fn deliver_remote(&self, room: &str, events: &[Remote]) {
        let mut batch = BytesMut::new();
        // Where the lines of talk are in `batch`, runs of them together:
        // they go into the room's history, the notices do not.
        let mut talk: Vec<std::ops::Range<usize>> = Vec::new();
        for event in events {
            let start = batch.len();
            self.add_remote_line(&mut batch, event);
            if matches!(event.what, RemoteEvent::Said(_) | RemoteEvent::Action(_)) {
                match talk.last_mut() {
                    Some(run) if run.end == start => run.end = batch.len(),
                    _ => talk.push(start..batch.len()),
                }
            }
        }
        let batch = batch.freeze();
        let mut state = self.lock();
        state.send_to_room(room, None, &batch);
        for run in talk {
            self.keep(&mut state, room, &batch.slice(run));
        }
    }

    fn deliver_private(&self, to: &str, from: &RemoteNick, message: &[u8]) -> Option<Arc<str>> {
        let state = self.lock();
        let id = state.nicks.get(names::fold(to).as_ref())?;
        let receiver = state.members.get(id)?;
        let mut private = BytesMut::new();
        text::private_prefix(&mut private, &escaped(shown(from).as_bytes()));
        escape_into(&mut private, message, self.max_text);
        private.extend_from_slice(&self.delimiter);
        receiver.mailbox.push(&private.freeze());
        Some(Arc::clone(&receiver.nick.shown))
    }

    fn max_text(&self) -> usize {
        self.max_text
    }

    fn find_member(&self, nick: &str) -> Option<Arc<str>> {
        let state = self.lock();
        let id = state.nicks.get(names::fold(nick).as_ref())?;
        let member = state.members.get(id)?;
        Some(Arc::clone(&member.nick.shown))
    }

    fn local_names(&self, room: &str) -> Vec<String> {
        let state = self.lock();
        let names = state.sorted_names(room, usize::MAX);
        names.into_iter().map(str::to_string).collect()
    }

    fn local_rooms(&self) -> Vec<(String, usize)> {
        let state = self.lock();
        let rooms = state.rooms.iter();
        rooms
            .map(|(name, room)| (name.to_string(), room.members.len()))
            .collect()
    }

    fn history(&self, room: &str, lines: &[(Remote, SystemTime)]) {
        let older = lines
            .iter()
            .map(|(event, said_at)| {
                let mut line = BytesMut::new();
                self.add_remote_line(&mut line, event);
                (line.freeze(), *said_at)
            })
            .collect();
        let mut state = self.lock();
        let Some(entered) = state.rooms.get_mut(room) else {
            return;
        };
        entered
            .history
            .seed(older, &self.delimiter, self.settings.history);
        for (id, arriving) in entered.awaiting_history.take().unwrap_or_default() {
            let still_there = state
                .members
                .get(&id)
                .is_some_and(|member| *member.room == *room);
            if still_there {
                self.greet_across(&state, id, room, arriving);
            }
        }
    }

    fn link_lost(&self, rooms: &[Arc<str>]) {
        let lines = self.lines(&[text::LINK_LOST]);
        let state = self.lock();
        for room in rooms {
            state.send_to_room(room, None, &lines);
        }
    }

    fn link_restored(&self, rooms: &[(Arc<str>, u64)]) {
        let state = self.lock();
        for (room, lost) in rooms {
            let lines = self.lines(&[text::link_restored(*lost)]);
            state.send_to_room(room, None, &lines);
        }
    }
}

/// `local` names and the other servers' members (as `NICK@NODE`, escaped)
/// in one list, sorted case aside.
fn merged(local: Vec<String>, remote: &[RemoteNick]) -> Vec<String> {
    let mut names = local;
    names.extend(
        remote
            .iter()
            .map(|member| escaped(shown(member).as_bytes())),
    );
    names.sort_by_key(|name| name.to_ascii_lowercase());
    names
}

/// A member of another server as members see it: `NICK@NODE`.
fn shown(member: &RemoteNick) -> String {
    format!("{}@{}", member.nick, member.node)
}
