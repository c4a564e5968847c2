//! The hub's side of the link to other servers (`--link`): what the link
//! task delivers here, and what it asks of this server.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::super::escape::escape_into;
use super::super::link::{Event, Link};
use super::super::names;
use super::{Hub, MemberId};
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

    /// Sends one of the member's chat lines (or, if `action`, its `/me`)
    /// to the other servers, as its raw bytes.
    pub fn relay(&self, id: MemberId, text: &[u8], action: bool) {
        let Some(link) = self.link() else {
            return;
        };
        let (room, nick) = {
            let state = self.lock();
            let Some(member) = state.members.get(&id) else {
                return;
            };
            (Arc::clone(&member.room), Arc::clone(&member.nick.shown))
        };
        let text = Bytes::copy_from_slice(text);
        link.publish(match action {
            false => Event::Said { room, nick, text },
            true => Event::Action { room, nick, text },
        });
    }

    /// Lines from another server, for every local member of `room`.
    pub fn deliver_to_room(&self, room: &str, lines: &Bytes) {
        self.lock().send_to_room(room, None, lines);
    }

    /// A private message from another server (`from` is `NICK@NODE`) for
    /// the local member `to`; its nick as shown, or `None` if no such member.
    pub fn deliver_private(&self, to: &str, from: &str, message: &[u8]) -> Option<Arc<str>> {
        let state = self.lock();
        let id = state.nicks.get(names::fold(to).as_ref())?;
        let receiver = state.members.get(id)?;
        let mut private = BytesMut::new();
        text::private_prefix(&mut private, from);
        escape_into(&mut private, message);
        private.extend_from_slice(&self.delimiter);
        receiver.mailbox.push(private.freeze());
        Some(Arc::clone(&receiver.nick.shown))
    }

    /// The local members of `room`, sorted.
    pub fn local_names(&self, room: &str) -> Vec<String> {
        let state = self.lock();
        let names = state.sorted_names(room, usize::MAX);
        names.into_iter().map(str::to_string).collect()
    }

    /// The local rooms and how many members each has here.
    pub fn local_rooms(&self) -> Vec<(String, usize)> {
        let state = self.lock();
        let rooms = state.rooms.iter();
        rooms
            .map(|(name, room)| (name.to_string(), room.members.len()))
            .collect()
    }
}
