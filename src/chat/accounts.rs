//! `/register`, `/login` and `/password`: what each asks of the store and
//! of the hasher runs in a task of its own, while the member's next lines
//! wait for its answer (as they wait for an answer from the other
//! servers). Wrong passwords count against the member's address.

use std::net::IpAddr;
use std::sync::Arc;

use tracing::warn;

use super::guessing::Guesses;
use super::hub::{Hub, MemberId};
use super::mailbox::Mailbox;
use super::names;
use super::password::Hasher;
use crate::accounts::Store;
use crate::protocol::chat as text;

/// The store, and what checks passwords against it.
pub(crate) struct Accounts {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) hasher: Arc<Hasher>,
    pub(crate) guesses: Arc<Guesses>,
}

/// Who asks: the member, its mailbox, its address.
pub(crate) struct Asker<'a> {
    pub(crate) hub: &'a Arc<Hub>,
    pub(crate) id: MemberId,
    pub(crate) mailbox: &'a Arc<Mailbox>,
    pub(crate) address: Option<IpAddr>,
}

impl Asker<'_> {
    fn tell(&self, line: &str) {
        self.mailbox.push(&self.hub.lines(&[line]));
    }

    /// Runs `work` in a task; the member's next lines wait for the line it
    /// ends with.
    fn answer_with(&self, work: impl Future<Output = String> + Send + 'static) {
        self.mailbox.await_answer();
        let (hub, mailbox) = (Arc::clone(self.hub), Arc::clone(self.mailbox));
        tokio::spawn(async move {
            let line = work.await;
            mailbox.answer(&hub.lines(&[line]));
        });
    }
}

/// The line for a store that failed, logged with what failed.
fn failed(what: &str, error: &anyhow::Error) -> String {
    warn!("accounts: {what}: {error:#}");
    text::ACCOUNTS_FAILED.to_string()
}

impl Accounts {
    /// `/register PASSWORD`.
    pub(crate) fn register(self: &Arc<Self>, asker: &Asker<'_>, password: &[u8]) {
        if password.is_empty() {
            return asker.tell(text::REGISTER_NEEDS_PASSWORD);
        }
        let key = match asker.hub.may_register(asker.id) {
            Ok(key) => key,
            Err(line) => return asker.tell(&line),
        };
        let (accounts, hub, id) = (Arc::clone(self), Arc::clone(asker.hub), asker.id);
        let password = password.to_vec();
        asker.answer_with(async move {
            let hash = match accounts.hasher.hash(password).await {
                Ok(hash) => hash,
                Err(error) => return failed("hashing", &error),
            };
            match accounts.store.register(&key, &hash).await {
                Ok(true) => hub.registered(id, &key),
                Ok(false) => text::nick_registered(&key),
                Err(error) => failed(&format!("registering {key}"), &error),
            }
        });
    }

    /// `/login NICK PASSWORD`.
    pub(crate) fn log_in(self: &Arc<Self>, asker: &Asker<'_>, nick: &[u8], password: &[u8]) {
        if nick.is_empty() || password.is_empty() {
            return asker.tell(text::LOGIN_NEEDS);
        }
        let Some(nick) = names::nick(nick).map(str::to_string) else {
            return asker.tell(text::BAD_NICK);
        };
        let (accounts, hub, id) = (Arc::clone(self), Arc::clone(asker.hub), asker.id);
        let (password, address) = (password.to_vec(), asker.address);
        asker.answer_with(async move {
            let key = names::fold(&nick).into_owned();
            match accounts.check(&key, password, address).await {
                Ok(()) => hub.log_in(id, &nick),
                Err(line) => line,
            }
        });
    }

    /// `/password OLD NEW`.
    pub(crate) fn change_password(self: &Arc<Self>, asker: &Asker<'_>, old: &[u8], new: &[u8]) {
        if old.is_empty() || new.is_empty() {
            return asker.tell(text::PASSWORD_NEEDS);
        }
        let Some(key) = asker.hub.owned_nick(asker.id) else {
            return asker.tell(text::LOGIN_FIRST);
        };
        let accounts = Arc::clone(self);
        let (old, new, address) = (old.to_vec(), new.to_vec(), asker.address);
        asker.answer_with(async move {
            if let Err(line) = accounts.check(&key, old, address).await {
                return line;
            }
            let hash = match accounts.hasher.hash(new).await {
                Ok(hash) => hash,
                Err(error) => return failed("hashing", &error),
            };
            match accounts.store.set_hash(&key, &hash).await {
                Ok(()) => text::PASSWORD_CHANGED.to_string(),
                Err(error) => failed(&format!("changing the password of {key}"), &error),
            }
        });
    }

    /// Whether `password` is the one of `key`'s account; `Err` with the
    /// line to answer if not (the same for a nick with no account), or if
    /// `address` has guessed too often.
    async fn check(
        &self,
        key: &str,
        password: Vec<u8>,
        address: Option<IpAddr>,
    ) -> Result<(), String> {
        if let Some(wait) = address.and_then(|ip| self.guesses.wait_for(ip)) {
            return Err(text::too_many_wrong(wait));
        }
        let hash = match self.store.hash(key).await {
            Ok(hash) => hash,
            Err(error) => return Err(failed(&format!("reading {key}"), &error)),
        };
        let right = match hash {
            Some(hash) => self.hasher.check(password, hash.into()).await,
            None => false,
        };
        if right {
            return Ok(());
        }
        if let Some(ip) = address {
            self.guesses.wrong(ip);
        }
        Err(text::WRONG_PASSWORD.to_string())
    }
}
