//! The hub's side of accounts: which nicks are registered (all of them
//! known at start, so that `/nick` costs no look-up in the store), who
//! owns the nick they have, and a login that takes a nick back from
//! whoever holds it.

use std::sync::Arc;

use super::super::names;
use super::{Hub, MemberId, Nick, State};
use crate::link::Event;
use crate::protocol::chat as text;

impl State {
    /// Whether member `id` owns the nick `nick` (logged in as it).
    pub(super) fn owns(&self, id: MemberId, nick: &str) -> bool {
        self.members
            .get(&id)
            .is_some_and(|member| member.owns_nick && *member.nick.key == *names::fold(nick))
    }
}

impl Hub {
    /// The nicks registered in the store, at start.
    pub fn set_registered(&self, nicks: Vec<String>) {
        let mut state = self.lock();
        state.registered = nicks.into_iter().map(Arc::from).collect();
    }

    /// The member's nick (folded) if it may register it: not a guest's,
    /// not registered. `Err` with the line that says why not.
    pub fn may_register(&self, id: MemberId) -> Result<Arc<str>, String> {
        let state = self.lock();
        let Some(member) = state.members.get(&id) else {
            return Err(text::ACCOUNTS_FAILED.to_string());
        };
        let key = Arc::clone(&member.nick.key);
        if is_guest(&key) {
            return Err(text::GUEST_NOT_REGISTERED.to_string());
        }
        if state.registered.contains(&key) {
            return Err(text::nick_registered(&member.nick.shown));
        }
        Ok(key)
    }

    /// `key` is registered now, to member `id` if it still has that nick.
    /// The line that tells it so.
    pub fn registered(&self, id: MemberId, key: &Arc<str>) -> String {
        let mut state = self.lock();
        state.registered.insert(Arc::clone(key));
        match state.members.get_mut(&id) {
            Some(member) if member.nick.key == *key => {
                member.owns_nick = true;
                text::registered_to_you(&member.nick.shown)
            }
            _ => text::registered_to_you(key),
        }
    }

    /// The nick member `id` owns (folded), if it logged in.
    pub fn owned_nick(&self, id: MemberId) -> Option<Arc<str>> {
        let state = self.lock();
        let member = state.members.get(&id)?;
        member.owns_nick.then(|| Arc::clone(&member.nick.key))
    }

    /// Member `id` logged in as `nick` (as shown, valid): whoever else
    /// holds the nick becomes a new guest, and the member takes it. The
    /// line that tells it so.
    pub fn log_in(&self, id: MemberId, nick: &str) -> String {
        let mut state = self.lock();
        let key: Arc<str> = names::fold(nick).into();
        if let Some(&holder) = state.nicks.get(&key)
            && holder != id
        {
            let guest = state.new_guest_nick();
            self.rename_to(&mut state, holder, &guest);
            if let Some(member) = state.members.get(&holder) {
                member.mailbox.renamed(Arc::from(guest.as_str()));
                let told = self.lines(&[text::logged_in_elsewhere(nick, &guest)]);
                member.mailbox.push(&told);
            }
        }
        self.rename_to(&mut state, id, nick);
        if let Some(member) = state.members.get_mut(&id) {
            member.owns_nick = true;
            member.mailbox.renamed(Arc::clone(&member.nick.shown));
        }
        text::logged_in(nick)
    }

    /// Gives member `id` the nick `new` (free), and tells its room.
    fn rename_to(&self, state: &mut State, id: MemberId, new: &str) {
        let nick = Nick::new(new);
        let Some(member) = state.members.get_mut(&id) else {
            return;
        };
        let key = Arc::clone(&nick.key);
        let old = std::mem::replace(&mut member.nick, nick);
        member.owns_nick = false;
        let room = Arc::clone(&member.room);
        let shown = Arc::clone(&member.nick.shown);
        state.nicks.remove(&old.key);
        state.nicks.insert(Arc::clone(&key), id);
        if let Some(members) = state.rooms.get_mut(&room).map(|room| &mut room.members)
            && let Some(entry) = members.remove(&old.key)
        {
            members.insert(key, entry);
        }
        if *old.shown != *new {
            let notice = self.lines(&[text::renamed(&old.shown, new)]);
            state.send_to_room(&room, Some(id), &notice);
            if let Some(link) = self.link() {
                let old = old.shown;
                link.publish(Event::Renamed {
                    room,
                    old,
                    new: shown,
                });
            }
        }
    }
}

impl Hub {
    /// `/kick NICK [REASON]` by member `op`: NICK is told who kicked it and
    /// why, and closed; its room is told. `Err` with the line for `op` if
    /// it is no operator or there is no such member.
    pub fn kick(&self, op: MemberId, nick: &str, reason: Option<&str>) -> Result<(), String> {
        let state = self.lock();
        let Some(operator) = state.members.get(&op).filter(|member| {
            member.owns_nick
                && self
                    .settings
                    .operators
                    .iter()
                    .any(|name| **name == *member.nick.key)
        }) else {
            return Err(text::for_operators("/kick"));
        };
        let target = state.nicks.get(names::fold(nick).as_ref());
        let Some((&id, member)) = target.and_then(|&id| state.members.get_key_value(&id)) else {
            return Err(text::no_such_nick(nick));
        };
        let by = &operator.nick.shown;
        let notice = self.lines(&[text::was_kicked(&member.nick.shown, by, reason)]);
        state.send_to_room(&member.room, Some(id), &notice);
        if operator.room != member.room {
            state.send_to(op, notice);
        }
        member.mailbox.kick(text::kicked(by, reason));
        Ok(())
    }
}

/// Guest nicks (`guestN`) cannot be registered.
fn is_guest(key: &str) -> bool {
    key.strip_prefix("guest")
        .is_some_and(|number| !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()))
}
