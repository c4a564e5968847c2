//! Who is here: every member's nick, room and mailbox, and the rooms. Each
//! change (arrive, rename, join, leave) and each line sent happens under
//! one lock, so every member sees the same order of events. Lines are
//! formatted once, outside the lock where they can be, and shared.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::{Bytes, BytesMut};

mod accounts;
mod linked;

use super::history::History;
use super::mailbox::Mailbox;
use super::names;
use super::settings::Settings;
use crate::escape::{escape_into, escaped};
use crate::link::{Event, Link, RemoteNick};
use crate::protocol::chat as text;

/// `lines`, each followed by `delimiter`, as one shareable buffer.
fn lines_with<S: AsRef<str>>(delimiter: &[u8], lines: &[S]) -> Bytes {
    let mut out = BytesMut::new();
    for line in lines {
        out.extend_from_slice(line.as_ref().as_bytes());
        out.extend_from_slice(delimiter);
    }
    out.freeze()
}

/// A member, for as long as it is connected; never reused.
pub type MemberId = u64;

/// The shared state of one chat server.
#[derive(Debug)]
pub struct Hub {
    state: Mutex<State>,
    settings: Settings,
    /// Written after every line.
    delimiter: Bytes,
    /// `--max-line-bytes`: what a relayed text may take, escaped.
    max_text: usize,
    /// With `--link`, set once at start.
    link: OnceLock<Arc<Link>>,
}

#[derive(Debug, Default)]
struct State {
    next_member: MemberId,
    /// The number in the next guest nick: counts up, never reused.
    next_guest: u64,
    members: HashMap<MemberId, Member>,
    /// Folded nick to member: a nick is taken while it is here.
    nicks: HashMap<Arc<str>, MemberId>,
    /// Room name to its members; a room exists while it has any. Sorted,
    /// for `/rooms`.
    rooms: BTreeMap<Arc<str>, Room>,
    /// Set by [`Hub::shut_down`]; a member arriving after it is told at once.
    shutting_down: bool,
    /// Folded nicks with an account: only their owner may take them.
    registered: std::collections::HashSet<Arc<str>>,
}

#[derive(Debug)]
struct Member {
    nick: Nick,
    /// Shared with the room's key: no string of its own per member.
    room: Arc<str>,
    mailbox: Arc<Mailbox>,
    /// It logged in (or registered) as its nick.
    owns_nick: bool,
}

#[derive(Debug, Default)]
struct Room {
    /// Folded nick to member and its mailbox (so sending to the room looks
    /// nothing up), sorted for lists.
    members: BTreeMap<Arc<str>, (MemberId, Arc<Mailbox>)>,
    /// Its recent lines, forgotten with the room.
    history: History,
    /// Linked: the members who joined the room (and whether each was
    /// arriving) while it waits for what the broker keeps of it; their
    /// greeting goes on once that has come.
    awaiting_history: Option<Vec<(MemberId, bool)>>,
}

/// A nick as shown, and its folded form, the key it is unique under; one
/// string for both when they are the same (every guest nick).
#[derive(Debug)]
struct Nick {
    shown: Arc<str>,
    key: Arc<str>,
}

impl Nick {
    fn new(name: &str) -> Self {
        let shown: Arc<str> = name.into();
        let key = match names::fold(name) {
            Cow::Borrowed(_) => Arc::clone(&shown),
            Cow::Owned(folded) => folded.into(),
        };
        Self { shown, key }
    }
}

impl Hub {
    /// The hub of a chat whose members' lines end with `delimiter` and
    /// hold at most `max_line_bytes`.
    pub fn new(settings: Settings, delimiter: &[u8], max_line_bytes: usize) -> Self {
        Self {
            state: Mutex::default(),
            settings,
            delimiter: Bytes::copy_from_slice(delimiter),
            max_text: max_line_bytes,
            link: OnceLock::new(),
        }
    }

    /// The most bytes a relayed text may take once escaped: what the
    /// server takes in a line.
    pub fn max_text(&self) -> usize {
        self.max_text
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The bytes written after every line.
    pub fn delimiter(&self) -> &[u8] {
        &self.delimiter
    }

    /// `lines`, each followed by the delimiter, as one shareable buffer.
    pub fn lines<S: AsRef<str>>(&self, lines: &[S]) -> Bytes {
        lines_with(&self.delimiter, lines)
    }

    /// A new member: gives it a guest nick, puts it in the default room and
    /// greets it; the room is told it joined. Returns its id and nick.
    pub fn arrive(&self, mailbox: Arc<Mailbox>) -> (MemberId, Arc<str>) {
        // One lock for both: members join in the order of their numbers.
        let mut state = self.lock();
        let (id, nick) = state.reserve_guest();
        self.seat_in(&mut state, id, &nick, mailbox);
        (id, nick)
    }

    /// An id and a guest nick for a connection that is not in yet (it
    /// owes the server's password): nobody else can take the nick, and
    /// nobody finds the connection by it.
    pub fn reserve_guest(&self) -> (MemberId, Arc<str>) {
        self.lock().reserve_guest()
    }

    /// A connection that never came in lets its reserved nick go.
    pub fn release(&self, id: MemberId, nick: &str) {
        let mut state = self.lock();
        if state.nicks.get(nick) == Some(&id) && !state.members.contains_key(&id) {
            state.nicks.remove(nick);
        }
    }

    /// Puts the member `id`, with the guest nick reserved for it, in the
    /// default room and greets it; the room is told it joined.
    pub fn seat(&self, id: MemberId, nick: &Arc<str>, mailbox: Arc<Mailbox>) {
        let mut state = self.lock();
        self.seat_in(&mut state, id, nick, mailbox);
    }

    fn seat_in(&self, state: &mut State, id: MemberId, nick: &Arc<str>, mailbox: Arc<Mailbox>) {
        let room = self.room_name(state, &self.settings.room);
        let nick = Nick {
            shown: Arc::clone(nick),
            key: Arc::clone(nick),
        };
        let shown = Arc::clone(&nick.shown);
        state.members.insert(
            id,
            Member {
                nick,
                room: Arc::clone(&room),
                mailbox,
                owns_nick: false,
            },
        );
        let welcome = text::welcome(&room, &shown);
        self.enter(state, id, &room, welcome, true);
        if let Some(link) = self.link() {
            let nick = Arc::clone(&shown);
            link.publish(Event::Joined { room, nick });
        }
        if state.shutting_down
            && let Some(member) = state.members.get(&id)
        {
            member.mailbox.shut_down();
        }
    }

    /// Tells every member's task the server is shutting down.
    pub fn shut_down(&self) {
        let mut state = self.lock();
        state.shutting_down = true;
        for member in state.members.values() {
            member.mailbox.shut_down();
        }
    }

    /// Sends `lines` (already formatted, whole) to everyone else in the
    /// member's room.
    pub fn post(&self, from: MemberId, lines: Bytes) {
        let mut state = self.lock();
        let Some(member) = state.members.get(&from) else {
            return;
        };
        let room = Arc::clone(&member.room);
        state.send_to_room(&room, Some(from), &lines);
        self.keep(&mut state, &room, &lines);
    }

    /// Keeps lines of talk said in `room` in its history.
    fn keep(&self, state: &mut State, room: &str, lines: &Bytes) {
        if let Some(room) = state.rooms.get_mut(room) {
            let limits = self.settings.history;
            room.history.keep(lines, &self.delimiter, limits);
        }
    }

    /// Sends a member joining `room` the room's recent lines, within half
    /// its `--sendq` (so that they can never cut it as too slow).
    fn send_recent(&self, state: &State, id: MemberId, room: &str) {
        let Some(history) = state.rooms.get(room).map(|room| &room.history) else {
            return;
        };
        for part in history.recent(room, &self.delimiter, self.settings.sendq / 2) {
            state.send_to(id, part);
        }
    }

    /// `/nick NAME`: the nick as now shown, or `Err` with the error line
    /// if it is taken.
    pub fn rename(&self, id: MemberId, new: &str) -> Result<Arc<str>, String> {
        let mut state = self.lock();
        let taken_by = state.nicks.get(names::fold(new).as_ref());
        if taken_by.is_some_and(|&owner| owner != id) {
            return Err(text::nick_taken(new));
        }
        if state.registered.contains(names::fold(new).as_ref()) && !state.owns(id, new) {
            return Err(text::nick_registered(new));
        }
        let nick = Nick::new(new);
        let shown = Arc::clone(&nick.shown);
        let Some(member) = state.members.get_mut(&id) else {
            return Ok(shown);
        };
        let key = Arc::clone(&nick.key);
        let old = std::mem::replace(&mut member.nick, nick);
        // Another nick is not the one it logged in as.
        member.owns_nick &= old.key == key;
        let room = Arc::clone(&member.room);
        state.nicks.remove(&old.key);
        state.nicks.insert(Arc::clone(&key), id);
        if let Some(members) = state.rooms.get_mut(&room).map(|room| &mut room.members)
            && let Some(entry) = members.remove(&old.key)
        {
            members.insert(key, entry);
        }
        let old = old.shown;
        state.send_to(id, self.lines(&[text::you_are_now(new)]));
        if *old != *new {
            let notice = self.lines(&[text::renamed(&old, new)]);
            state.send_to_room(&room, Some(id), &notice);
            if let Some(link) = self.link() {
                let new = Arc::clone(&shown);
                link.publish(Event::Renamed { room, old, new });
            }
        }
        Ok(shown)
    }

    /// `/join ROOM` (a valid, folded name). Joining the room the member is
    /// in only tells it where it is.
    /// Whether the member is in `room`.
    pub fn is_in(&self, id: MemberId, room: &str) -> bool {
        let state = self.lock();
        state
            .members
            .get(&id)
            .is_some_and(|member| *member.room == *room)
    }

    pub fn join(&self, id: MemberId, room: &str) {
        let mut state = self.lock();
        let Some(member) = state.members.get_mut(&id) else {
            return;
        };
        if *member.room == *room {
            let lines = [text::you_are_in(room), state.here(room)];
            state.send_to(id, self.lines(&lines));
            return;
        }
        let nick = member.nick.shown.clone();
        let key = Arc::clone(&member.nick.key);
        let name = self.room_name(&mut state, room);
        // Looked up again: naming the room borrowed the whole state.
        let Some(member) = state.members.get_mut(&id) else {
            return;
        };
        let old = std::mem::replace(&mut member.room, Arc::clone(&name));
        self.remove_from_room(&mut state, &old, &key);
        let why = text::to_room(room);
        let notice = self.lines(&[text::left(&nick, Some(&why))]);
        state.send_to_room(&old, None, &notice);
        self.enter(&mut state, id, room, text::you_are_in(room), false);
        if let Some(link) = self.link() {
            let (left, why) = (Arc::clone(&nick), Some(why));
            link.publish(Event::Left {
                room: old,
                nick: left,
                why,
            });
            link.publish(Event::Joined { room: name, nick });
        }
    }

    /// `/who`: the member's room, sorted, in lines of bounded length.
    pub fn who(&self, id: MemberId) {
        let state = self.lock();
        let Some(member) = state.members.get(&id) else {
            return;
        };
        let names = state.sorted_names(&member.room, usize::MAX);
        if let Some(link) = self.link() {
            let names = names.into_iter().map(str::to_string).collect();
            let answer = self.who_across(Arc::clone(&member.room), names, &member.mailbox);
            link.who(Arc::clone(&member.room), answer);
            return;
        }
        let lines = text::who(&member.room, names.iter().copied(), names.len());
        state.send_to(id, self.lines(&lines));
    }

    /// `/rooms`: every room and its number of members, sorted.
    pub fn rooms(&self, id: MemberId) {
        let state = self.lock();
        let rooms = state
            .rooms
            .iter()
            .map(|(name, room)| (name.as_ref(), room.members.len()));
        if let Some(link) = self.link()
            && let Some(member) = state.members.get(&id)
        {
            let local = rooms
                .map(|(name, count)| (name.to_string(), count))
                .collect();
            link.rooms(self.rooms_across(local, &member.mailbox));
            return;
        }
        state.send_to(id, self.lines(&text::rooms(rooms)));
    }

    /// `/msg NICK TEXT`.
    pub fn message(&self, from: MemberId, to: &[u8], message: &[u8]) {
        let state = self.lock();
        let Some(sender) = state.members.get(&from) else {
            return;
        };
        let mut to = to;
        let mut this_node_named = false;
        if let Some(link) = self.link()
            && let Some(at) = memchr::memrchr(b'@', to)
        {
            let (nick, node) = (&to[..at], &to[at + 1..]);
            // Nothing typed reaches the link unless it is a nick and a node.
            if names::nick(nick).is_none() || names::node(node).is_none() {
                let error = text::no_such_nick(&escaped(to));
                state.send_to(from, self.lines(&[error]));
                return;
            }
            if node != link.node().as_bytes() {
                let to = RemoteNick {
                    nick: String::from_utf8_lossy(nick).into_owned(),
                    node: String::from_utf8_lossy(node).into_owned(),
                };
                let answer = self.message_across(to.clone(), message, &sender.mailbox);
                link.message(Arc::clone(&sender.nick.shown), to, message, answer);
                return;
            }
            to = nick;
            this_node_named = true;
        }
        let receiver = std::str::from_utf8(to)
            .ok()
            .and_then(|nick| state.nicks.get(names::fold(nick).as_ref()))
            .and_then(|id| state.members.get(id));
        let Some(receiver) = receiver else {
            let asked = names::nick(to).filter(|_| !this_node_named);
            if let (Some(link), Some(_)) = (self.link(), asked) {
                let answer = self.message_anyone(to, message, &sender.mailbox);
                let nick = String::from_utf8_lossy(to).into_owned();
                link.message_anyone(Arc::clone(&sender.nick.shown), nick, message, answer);
                return;
            }
            let error = text::no_such_nick(&escaped(to));
            state.send_to(from, self.lines(&[error]));
            return;
        };
        let mut private = BytesMut::new();
        text::private_prefix(&mut private, &sender.nick.shown);
        escape_into(&mut private, message, self.max_text);
        private.extend_from_slice(&self.delimiter);
        let mut copy = BytesMut::new();
        text::private_sent_prefix(&mut copy, &receiver.nick.shown);
        escape_into(&mut copy, message, self.max_text);
        copy.extend_from_slice(&self.delimiter);
        // The copy first: a member who messages itself sees it sent, then
        // received.
        sender.mailbox.push(&copy.freeze());
        receiver.mailbox.push(&private.freeze());
    }

    /// The member leaves the server; the room is told why, unless `quietly`
    /// (the server is shutting down, and everyone is told that instead).
    pub fn leave(&self, id: MemberId, why: Option<&str>, quietly: bool) {
        let mut state = self.lock();
        let Some(member) = state.members.remove(&id) else {
            return;
        };
        state.nicks.remove(&member.nick.key);
        self.remove_from_room(&mut state, &member.room, &member.nick.key);
        if !quietly {
            let notice = self.lines(&[text::left(&member.nick.shown, why)]);
            state.send_to_room(&member.room, None, &notice);
        }
        if let Some(link) = self.link() {
            let why = why.map(str::to_string);
            let (room, nick) = (member.room, member.nick.shown);
            link.publish(Event::Left { room, nick, why });
        }
    }

    /// Puts the member in `room` (creating it), tells it `first` and who is
    /// here (and, on `arriving`, how to talk), and tells the others it
    /// joined.
    fn enter(&self, state: &mut State, id: MemberId, room: &str, first: String, arriving: bool) {
        let Some(member) = state.members.get(&id) else {
            return;
        };
        let nick = Arc::clone(&member.nick.shown);
        let entry_mailbox = Arc::clone(&member.mailbox);
        let entry = (id, Arc::clone(&member.mailbox));
        let key = Arc::clone(&member.nick.key);
        if let Some(entered) = state.rooms.get_mut(room) {
            entered.members.insert(key, entry);
        }
        if self.link().is_some() {
            state.send_to(id, self.lines(&[first]));
            let waiting = state.rooms.get_mut(room);
            match waiting.and_then(|room| room.awaiting_history.as_mut()) {
                // Its member's lines wait for the rest of the greeting.
                Some(waiting) => {
                    waiting.push((id, arriving));
                    entry_mailbox.await_answer();
                }
                None => self.greet_across(state, id, room, arriving),
            }
        } else {
            state.send_to(id, self.lines(&[first]));
            self.send_recent(state, id, room);
            let mut greeting = vec![state.here(room)];
            if arriving {
                greeting.push(text::HOW_TO_TALK.to_string());
            }
            state.send_to(id, self.lines(&greeting));
        }
        state.send_to_room(room, Some(id), &self.lines(&[text::joined(&nick)]));
    }

    /// The room called `name`, created (and, linked, subscribed to) if it
    /// does not exist yet.
    fn room_name(&self, state: &mut State, name: &str) -> Arc<str> {
        let created = !state.rooms.contains_key(name);
        let name = state.room_name(name);
        if created && let Some(link) = self.link() {
            // Its first members wait for what the broker keeps of it.
            if let Some(room) = state.rooms.get_mut(&name) {
                room.awaiting_history = Some(Vec::new());
            }
            link.subscribe(Arc::clone(&name));
        }
        name
    }

    /// Takes a member out of `room`; a room left empty is gone (and, linked,
    /// no longer subscribed to).
    fn remove_from_room(&self, state: &mut State, room: &Arc<str>, key: &str) {
        state.remove_from_room(room, key);
        if !state.rooms.contains_key(room)
            && let Some(link) = self.link()
        {
            link.unsubscribe(Arc::clone(room));
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change to the state is made whole before anything that can
        // panic, so a poisoned lock still guards a consistent state.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    /// A new member's id and guest nick, the nick taken.
    fn reserve_guest(&mut self) -> (MemberId, Arc<str>) {
        let id = self.next_member;
        self.next_member += 1;
        // Guest nicks are folded already.
        let nick: Arc<str> = self.new_guest_nick().into();
        self.nicks.insert(Arc::clone(&nick), id);
        (id, nick)
    }

    /// A guest nick no one has: `guestN`, N counting up.
    fn new_guest_nick(&mut self) -> String {
        loop {
            self.next_guest += 1;
            let nick = format!("guest{}", self.next_guest);
            if !self.nicks.contains_key(nick.as_str()) {
                return nick;
            }
        }
    }

    fn nick(&self, id: MemberId) -> &str {
        self.members
            .get(&id)
            .map_or("", |member| &member.nick.shown)
    }

    /// The room called `name` (folded), created if it does not exist; its
    /// name is shared by every member in it.
    fn room_name(&mut self, name: &str) -> Arc<str> {
        match self.rooms.get_key_value(name) {
            Some((name, _)) => Arc::clone(name),
            None => {
                let name: Arc<str> = name.into();
                self.rooms.insert(Arc::clone(&name), Room::default());
                name
            }
        }
    }

    /// The first `limit` nicks in `room`, in case-insensitive order.
    fn sorted_names(&self, room: &str, limit: usize) -> Vec<&str> {
        let members = self.rooms.get(room).map(|room| &room.members);
        let ids = members.into_iter().flat_map(|members| members.values());
        ids.take(limit).map(|(id, _)| self.nick(*id)).collect()
    }

    /// The `here:` line for `room`.
    fn here(&self, room: &str) -> String {
        let total = self.rooms.get(room).map_or(0, |room| room.members.len());
        let names = self.sorted_names(room, text::HERE_NAMES);
        text::here(names.into_iter(), total)
    }

    fn send_to(&self, id: MemberId, lines: Bytes) {
        if let Some(member) = self.members.get(&id) {
            member.mailbox.push(&lines);
        }
    }

    /// Shares `lines` with every member of `room` but `except`.
    fn send_to_room(&self, room: &str, except: Option<MemberId>, lines: &Bytes) {
        let Some(room) = self.rooms.get(room) else {
            return;
        };
        for (id, mailbox) in room.members.values() {
            if Some(*id) != except {
                mailbox.push(lines);
            }
        }
    }

    fn remove_from_room(&mut self, room: &str, key: &str) {
        if let Some(members) = self.rooms.get_mut(room).map(|room| &mut room.members) {
            members.remove(key);
            if members.is_empty() {
                self.rooms.remove(room);
            }
        }
    }
}
