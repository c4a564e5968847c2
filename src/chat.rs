//! The chat policy (`chat-server --chat`): each connection is a member with
//! a nick, in one room; what it says goes to the others in the room. The
//! shared state is the [`Hub`]; what reaches a member waits in its
//! `mailbox` (bounded by `--sendq`); `--max-rate` is a token bucket
//! (`rate`). Wire texts are in [`crate::protocol::chat`].

mod accounts;
mod command;
mod gate;
mod guessing;
pub mod history;
mod hub;
mod mailbox;
pub use crate::names;
pub mod password;
mod rate;
mod settings;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::time::Sleep;

use crate::accounts::{FileStore, Store};
use crate::escape;
use crate::framing::LineFormat;
use crate::link;
use crate::protocol::chat as text;
use crate::server::connection::queued::{SendQueue, Wake};
use crate::server::connection::{Connection, End};
use crate::server::session::{Mode, Session};
use accounts::Accounts;
use anyhow::Context as _;
use command::Input;
use gate::Gate;
use guessing::Guesses;
pub use hub::Hub;
use hub::MemberId;
use mailbox::{Closing, Mailbox};
use password::Hasher;
use rate::TokenBucket;
pub use settings::{DEFAULT_MAX_RATE, DEFAULT_ROOM, DEFAULT_SENDQ, Settings};

/// A member's consecutive lines are sent to the room in batches of about
/// this many bytes: one buffer shared by every member, one write each.
const BATCH_BYTES: usize = 32 * 1024;
/// Room to spare a shared batch may keep, past an eighth of its length.
const SPARE_SHARED: usize = 64;

/// Chat mode, as a session: the hub every member's task shares.
#[derive(Clone)]
pub(crate) struct Chat {
    hub: Arc<Hub>,
    /// `--password-file`: what a connection passes to come in.
    gate: Option<Arc<Gate>>,
    /// `--data-dir`: who owns which nick.
    accounts: Option<Arc<Accounts>>,
}

impl Chat {
    /// The chat's hub, linked to the other servers when `--link` says so
    /// (which waits for the broker's first answer, or a little while).
    pub(crate) async fn start(settings: &Settings, format: &LineFormat) -> anyhow::Result<Chat> {
        let delimiter = format.written_delimiter();
        let hub = Arc::new(Hub::new(
            settings.clone(),
            delimiter,
            format.max_line_bytes(),
        ));
        if let Some(link) = &settings.link {
            let port: Arc<dyn link::Port> = Arc::clone(&hub) as _;
            hub.set_link(link::start(port, link.clone()).await?);
        }
        let (hasher, guesses) = (Arc::new(Hasher::default()), Arc::new(Guesses::default()));
        let gate = settings.password.clone().map(|hash| {
            let (hasher, guesses) = (Arc::clone(&hasher), Arc::clone(&guesses));
            Arc::new(Gate::new(hash, hasher, guesses))
        });
        let accounts = match &settings.data_dir {
            Some(dir) => {
                let store: Arc<dyn Store> = Arc::new(FileStore::open(dir)?);
                let nicks = store.nicks().await.context("reading the accounts")?;
                hub.set_registered(nicks);
                Some(Arc::new(Accounts {
                    store,
                    hasher,
                    guesses,
                }))
            }
            None => None,
        };
        Ok(Chat {
            hub,
            gate,
            accounts,
        })
    }
}

impl Session for Chat {
    const MODE: Mode = Mode::Chat;

    type Guest = Guest;

    fn arrive(&self) -> Guest {
        let mailbox = Arc::new(Mailbox::new(self.hub.settings().sendq));
        // Behind the password, a connection is in no room until it passes.
        let gated = self.gate.is_some();
        let (id, nick) = match gated {
            true => self.hub.reserve_guest(),
            false => self.hub.arrive(Arc::clone(&mailbox)),
        };
        Guest {
            id,
            nick,
            mailbox,
            gated,
        }
    }

    fn name(guest: &Guest) -> Option<&str> {
        Some(&guest.nick)
    }

    async fn run(&self, guest: &mut Guest, connection: &mut Connection) -> End {
        if let (true, Some(gate)) = (guest.gated, &self.gate) {
            let welcome = text::welcome(&self.hub.settings().room, &guest.nick);
            if let Err(end) = gate.pass(connection, &welcome).await {
                self.hub.release(guest.id, &guest.nick);
                return end;
            }
            guest.gated = false;
            self.hub
                .seat(guest.id, &guest.nick, Arc::clone(&guest.mailbox));
        }
        take_part(guest, connection, &self.hub, self.accounts.as_ref()).await
    }

    fn shut_down(&self) {
        self.hub.shut_down();
    }
}

/// A connection that has arrived in the chat: a member of the hub, with
/// the nick it has now.
pub(crate) struct Guest {
    id: MemberId,
    nick: Arc<str>,
    mailbox: Arc<Mailbox>,
    /// It owes the server's password: its nick is reserved, nothing more.
    gated: bool,
}

/// The lines of `batch`, to be shared with the room. A batch that is
/// mostly room to spare (a line or two where many were buffered: over
/// `--max-rate`, a line per batch) is shared as a copy of exactly its
/// lines, and its room kept for the next: a member who reads slowly then
/// holds only the lines it is owed, not a buffer of each batch's size.
fn shared(batch: &mut BytesMut) -> Bytes {
    let spare = batch.capacity() - batch.len();
    if spare > batch.len() / 8 + SPARE_SHARED {
        let lines = Bytes::copy_from_slice(batch);
        batch.clear();
        lines
    } else {
        std::mem::take(batch).freeze()
    }
}

/// Has the guest take part in the chat until it leaves, and says why it
/// did. What it is still owed is in the connection's outbox, for the
/// close.
async fn take_part(
    guest: &mut Guest,
    connection: &mut Connection,
    hub: &Arc<Hub>,
    accounts: Option<&Arc<Accounts>>,
) -> End {
    let id = guest.id;
    let address = connection.peer().map(|peer| peer.ip().to_canonical());
    let mut member = Member {
        accounts,
        address,
        plain_from_afar: !connection.is_tls() && address.is_some_and(|ip| !ip.is_loopback()),
        id,
        nick: Arc::clone(&guest.nick),
        hub,
        rate: hub.settings().max_rate.map(TokenBucket::new),
        mailbox: Arc::clone(&guest.mailbox),
        queue: SendQueue::default(),
        token_timer: None,
        blocked: None,
    };
    let end = member.talk(connection).await;
    guest.nick = Arc::clone(&member.nick);
    // A line still waiting for the link goes out before the leave does.
    if let (Some(mut waiting), Some(link)) = (member.blocked.take(), hub.link()) {
        std::future::poll_fn(|context| waiting.poll_handed(link, context)).await;
    }
    let why = member.why_left(&end);
    // A kick was told to the room already.
    let quietly = matches!(end, End::ShuttingDown | End::Kicked(_));
    hub.leave(id, why.as_deref(), quietly);
    member.hand_over(connection, &end);
    end
}

/// One member, as its own connection's task sees it.
struct Member<'a> {
    id: MemberId,
    /// Kept here too, since only this task changes it.
    nick: Arc<str>,
    hub: &'a Arc<Hub>,
    /// `--data-dir`: the accounts, for `/register`, `/login`, `/password`.
    accounts: Option<&'a Arc<Accounts>>,
    /// The client's address, against which wrong passwords count.
    address: Option<std::net::IpAddr>,
    /// Neither TLS nor loopback: a password it sends crossed the network
    /// in plain text, and it is told so.
    plain_from_afar: bool,
    /// Only with `--max-rate`.
    rate: Option<TokenBucket>,
    mailbox: Arc<Mailbox>,
    /// Taken from the mailbox, being written.
    queue: SendQueue,
    /// Wakes a member over `--max-rate` when its next line may be read.
    token_timer: Option<Pin<Box<Sleep>>>,
    /// A line of the member's that waits for room in the link's queue:
    /// until it is handed over, the member is read no further.
    blocked: Option<link::Blocked>,
}

/// Why [`Member::handle_lines`] stopped.
enum Handled {
    /// Every complete line received is handled.
    All,
    /// Lines may be waiting, but the member is past `--max-rate`.
    OverRate,
    /// Lines may be waiting, but the member's last line waits for room in
    /// the link's queue.
    LinkFull,
    /// Lines may be waiting, but an answer from the other servers (the
    /// rest of a greeting, `/who`, …) is not there yet: what the member
    /// says next comes after it.
    Awaiting,
}

impl Member<'_> {
    /// Handles lines, sends what arrives for the member, and waits, until
    /// the connection has to end.
    async fn talk(&mut self, connection: &mut Connection) -> End {
        loop {
            let handled = match self.handle_lines(connection) {
                Ok(handled) => handled,
                Err(end) => return end,
            };
            // Taken only once what was taken before is written: meanwhile
            // what arrives waits in the mailbox, where small parts are
            // copied together, and wakes nobody.
            let taken = if self.queue.is_empty() {
                self.mailbox.take(self.queue.parts())
            } else {
                self.mailbox.closing().map_or(Ok(()), Err)
            };
            match taken {
                Ok(()) => {}
                Err(Closing::Overflowed) => {
                    return End::TooSlow {
                        sendq: self.mailbox.limit(),
                    };
                }
                Err(Closing::ShuttingDown) => return End::ShuttingDown,
                Err(Closing::Kicked) => {
                    return End::Kicked(self.mailbox.farewell().unwrap_or_default());
                }
            }
            match connection.write_queued(&mut self.queue) {
                Ok(written) => self.mailbox.written(written),
                Err(end) => return end,
            }
            let over_rate = matches!(handled, Handled::OverRate);
            if over_rate && let Some(rate) = &self.rate {
                let next = rate.next_token();
                match &mut self.token_timer {
                    Some(timer) => timer.as_mut().reset(next),
                    // Boxed, and only once needed: most members never
                    // reach their rate.
                    None => self.token_timer = Some(Box::pin(tokio::time::sleep_until(next))),
                }
            }
            let read = matches!(handled, Handled::All);
            let write = !self.queue.is_empty();
            let Self {
                mailbox,
                token_timer,
                blocked,
                hub,
                ..
            } = self;
            let arrival_token_or_room = |context: &mut Context<'_>| {
                if mailbox.poll_arrival(context, !write).is_ready() {
                    return Poll::Ready(());
                }
                if let (Some(waiting), Some(link)) = (blocked.as_mut(), hub.link())
                    && waiting.poll_handed(link, context).is_ready()
                {
                    *blocked = None;
                    return Poll::Ready(());
                }
                match token_timer {
                    Some(timer) if over_rate => timer.as_mut().poll(context),
                    _ => Poll::Pending,
                }
            };
            match connection.wait(read, write, arrival_token_or_room).await {
                Ok(Wake::Received | Wake::Writable | Wake::Other(())) => {}
                Err(end) => return end,
            }
        }
    }

    /// Handles the complete lines received, as many as `--max-rate` allows.
    /// Consecutive chat lines go to the room as one batch.
    fn handle_lines(&mut self, connection: &mut Connection) -> Result<Handled, End> {
        let mut batch = BytesMut::new();
        let mut handled = 0;
        // Looked at again only after a command: a line costs no lock. A
        // new nick comes from a login, this member's or its nick's owner's.
        let (mut awaiting, new_nick) = self.mailbox.awaiting_and_new_nick();
        if let Some(nick) = new_nick {
            self.nick = nick;
        }
        let result = loop {
            if self.blocked.is_some() {
                break Ok(Handled::LinkFull);
            }
            if awaiting {
                break Ok(Handled::Awaiting);
            }
            if self.rate.as_ref().is_some_and(|rate| !rate.has_token()) {
                break Ok(Handled::OverRate);
            }
            let buffered = connection.lines.buffered().len();
            let line = match connection.lines.next_line() {
                Ok(None) => break Ok(Handled::All),
                Ok(Some(line)) => line,
                Err(too_long) => break Err(End::LineTooLong(too_long)),
            };
            if let Some(rate) = &mut self.rate {
                rate.take();
            }
            handled += 1;
            let input = Input::parse(line);
            match input {
                Input::Say(said) => {
                    self.blocked = self.hub.relay(self.id, said, false).err();
                    self.reserve_batch(&mut batch, buffered);
                    text::said_prefix(&mut batch, &self.nick);
                    escape::escape_into(&mut batch, said, self.hub.max_text());
                    batch.extend_from_slice(self.hub.delimiter());
                }
                Input::Action(action) if !action.is_empty() => {
                    self.blocked = self.hub.relay(self.id, action, true).err();
                    self.reserve_batch(&mut batch, buffered);
                    text::action_prefix(&mut batch, &self.nick);
                    escape::escape_into(&mut batch, action, self.hub.max_text());
                    batch.extend_from_slice(self.hub.delimiter());
                }
                Input::Nothing => {}
                command => {
                    self.post(&mut batch);
                    if let Err(end) = self.obey(command) {
                        break Err(end);
                    }
                    awaiting = self.mailbox.awaiting();
                }
            }
            if batch.len() >= BATCH_BYTES {
                self.post(&mut batch);
            }
        };
        self.post(&mut batch);
        if handled > 0 {
            connection.count_lines(handled);
            connection.restart_idle_timer();
        }
        result
    }

    /// Room for a batch of lines: about what is buffered, within a batch.
    fn reserve_batch(&self, batch: &mut BytesMut, buffered: usize) {
        if batch.is_empty() {
            batch.reserve((buffered + buffered / 4 + 256).min(BATCH_BYTES + 1024));
        }
    }

    /// Sends the batch to the room, as one buffer every member shares.
    fn post(&self, batch: &mut BytesMut) {
        if !batch.is_empty() {
            self.hub.post(self.id, shared(batch));
        }
    }

    /// Carries out a command; `Err` if it ends the connection.
    fn obey(&mut self, input: Input<'_>) -> Result<(), End> {
        match input {
            Input::Nick(b"") => self.tell(&[text::NICK_NEEDS_NAME]),
            Input::Join(b"") => self.tell(&[text::JOIN_NEEDS_ROOM]),
            Input::Part => {
                let default = &self.hub.settings().room;
                if self.hub.is_in(self.id, default) {
                    self.tell(&[text::already_in_default_room(default)]);
                } else {
                    self.hub.join(self.id, default);
                }
            }
            Input::Nick(name) => match names::nick(name) {
                Some(nick) => match self.hub.rename(self.id, nick) {
                    Ok(shown) => self.nick = shown,
                    Err(error) => self.tell(&[error]),
                },
                None => self.tell(&[text::BAD_NICK]),
            },
            Input::Join(room) => match names::room(room) {
                Some(room) => self.hub.join(self.id, &room),
                None => self.tell(&[text::BAD_ROOM]),
            },
            Input::Who => self.hub.who(self.id),
            Input::Rooms => self.hub.rooms(self.id),
            Input::Message { to, text: message } => {
                if to.is_empty() || message.is_empty() {
                    self.tell(&[text::MSG_NEEDS_TEXT]);
                } else {
                    self.hub.message(self.id, to, message);
                }
            }
            Input::Action(_) => self.tell(&[text::ME_NEEDS_TEXT]),
            Input::Help => self.tell(&text::HELP),
            Input::Unknown(command) => {
                self.tell(&[text::unknown_command(&escape::escaped(command))]);
            }
            Input::QuitLine => return Err(End::Quit),
            Input::Quit(reason) => {
                let reason = reason.map(|reason| escape::escaped(reason).into());
                return Err(End::QuitCommand(reason));
            }
            // Only a connection that has not come in yet gives it.
            Input::Pass(_) => self.tell(&[text::unknown_command("/pass")]),
            Input::Kick { nick, reason } => {
                let reason = (!reason.is_empty()).then(|| escape::escaped(reason));
                let nick = escape::escaped(nick);
                if let Err(line) = self.hub.kick(self.id, &nick, reason.as_deref()) {
                    self.tell(&[line]);
                }
            }
            Input::Register(password) => match self.accounts {
                Some(accounts) => accounts.register(&self.asker(), password),
                None => self.tell(&[text::NO_ACCOUNTS]),
            },
            Input::Login { nick, password } => match self.accounts {
                Some(accounts) => accounts.log_in(&self.asker(), nick, password),
                None => self.tell(&[text::NO_ACCOUNTS]),
            },
            Input::ChangePassword { old, new } => match self.accounts {
                Some(accounts) => accounts.change_password(&self.asker(), old, new),
                None => self.tell(&[text::NO_ACCOUNTS]),
            },
            Input::Say(_) | Input::Nothing => {}
        }
        Ok(())
    }

    /// The member, as an account command sees it.
    fn asker(&self) -> accounts::Asker<'_> {
        if self.plain_from_afar {
            self.tell(&[text::PLAIN_TEXT_PASSWORD]);
        }
        accounts::Asker {
            hub: self.hub,
            id: self.id,
            mailbox: &self.mailbox,
            address: self.address,
        }
    }

    /// Sends the member lines of its own (answers, errors).
    fn tell<S: AsRef<str>>(&self, lines: &[S]) {
        self.mailbox.push(&self.hub.lines(lines));
    }

    /// Why the member left, as the room is told it.
    fn why_left(&self, end: &End) -> Option<String> {
        let why = match end {
            End::QuitCommand(reason) => return reason.as_deref().map(str::to_string),
            End::LineTooLong(_) => text::LEFT_LINE_TOO_LONG,
            End::Idle(_) | End::NotReading(_) => text::LEFT_IDLE,
            End::TooSlow { .. } => text::LEFT_TOO_SLOW,
            End::Failed(_) | End::TlsClient => text::LEFT_CONNECTION_LOST,
            End::Quit
            | End::ClientClosed
            | End::ShuttingDown
            | End::ServerFull(_)
            | End::TooManyFrom { .. }
            | End::Kicked(_)
            | End::PasswordRefused
            | End::NotTls => {
                return None;
            }
        };
        Some(why.to_string())
    }

    /// Puts what the member is still owed in the connection's outbox for
    /// the close (the line that says why comes after it, from the session).
    /// A member too slow gets only the end of a part already started.
    fn hand_over(&mut self, connection: &mut Connection, end: &End) {
        if matches!(end, End::TooSlow { .. }) {
            self.queue.keep_only_started();
        } else {
            // After leaving, nothing more arrives: the rest is all there is.
            self.mailbox.take_rest(self.queue.parts());
        }
        self.queue.move_into(&mut connection.outbox);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_mostly_spare_is_shared_as_an_exact_copy_and_a_full_one_as_it_is() {
        let mut batch = BytesMut::with_capacity(BATCH_BYTES);
        batch.extend_from_slice(b"<alice> hi\r\n");
        let room = batch.as_ptr();
        let lines = shared(&mut batch);
        assert_eq!(&lines[..], b"<alice> hi\r\n");
        assert_ne!(lines.as_ptr(), room, "copied out of the batch's buffer");
        assert!(
            batch.is_empty() && batch.capacity() >= BATCH_BYTES,
            "room kept"
        );

        batch.extend_from_slice(&[b'x'; BATCH_BYTES - 2]);
        batch.extend_from_slice(b"\r\n");
        let full = batch.as_ptr();
        assert_eq!(shared(&mut batch).as_ptr(), full, "shared as it is");
    }
}
