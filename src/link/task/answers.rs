//! The link task's answers to other servers: private messages and pings on
//! this node's subject, and `/who`, `/rooms` and who-has-a-nick questions.

use async_nats::Message;

use super::super::wire;
use super::Task;

impl Task {
    /// A private message for one of this server's members, or a ping.
    pub(super) async fn on_node_message(&self, message: Message) {
        let Some(reply) = message.reply.clone() else {
            return;
        };
        let answer = match wire::decode_private(&message) {
            wire::ToNode::Ping => wire::PONG.into(),
            wire::ToNode::Private { from, .. }
                if *from.node == *self.link.node
                    || message.payload.len() > self.port.max_text() =>
            {
                self.link.count_malformed();
                return;
            }
            wire::ToNode::Private { to, from } => self
                .port
                .deliver_private(&to, &from, &message.payload)
                .map(|shown| shown.to_string().into())
                .unwrap_or_default(),
            wire::ToNode::Malformed => {
                self.link.count_malformed();
                return;
            }
        };
        let _ = self.client.publish(reply, answer).await;
    }

    /// `/who` from another server: this server's members of the room.
    pub(super) async fn answer_who(&self, message: Message) {
        let Some(reply) = message.reply.clone() else {
            return;
        };
        // Answered even when empty: the asker stops waiting sooner.
        let names = wire::asked_room(&message)
            .map(|room| self.port.local_names(&room))
            .unwrap_or_default();
        self.reply(reply, wire::encode_names(&names)).await;
    }

    /// `/rooms` from another server: this server's rooms and counts.
    pub(super) async fn answer_rooms(&self, message: Message) {
        let Some(reply) = message.reply else {
            return;
        };
        let rooms = self.port.local_rooms();
        self.reply(reply, wire::encode_rooms(&rooms)).await;
    }

    /// Who has a nick, from another server: this server answers only if it
    /// has a member of that nick, with the nick as shown.
    pub(super) async fn answer_nick(&self, message: Message) {
        let Some(reply) = message.reply.clone() else {
            return;
        };
        let found = wire::asked_nick(&message).and_then(|nick| self.port.find_member(&nick));
        if let Some(shown) = found {
            self.reply(reply, shown.to_string().into()).await;
        }
    }

    /// An answer to another server's question, saying which node it is.
    pub(super) async fn reply(&self, to: async_nats::Subject, payload: bytes::Bytes) {
        let headers = wire::answer_headers(&self.link.node);
        let _ = self.client.publish_with_headers(to, headers, payload).await;
    }
}
