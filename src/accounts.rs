//! Accounts: who owns which nick, kept in a store (`--data-dir DIR`).
//! The chat reaches the store through one trait, [`Store`]; `file` is the
//! one on this server's disk (redb, every change committed before the
//! member is told it is done). The hashes are Argon2id
//! ([`crate::chat::password`]); nothing else about a password is kept.

mod file;

use std::future::Future;
use std::pin::Pin;

pub use file::FileStore;

/// What a store's answers come as.
pub type Answer<'a, T> = Pin<Box<dyn Future<Output = anyhow::Result<T>> + Send + 'a>>;

/// Where accounts live. Nicks are given folded (lowercase).
pub trait Store: Send + Sync + 'static {
    /// Every registered nick, for the chat to know at once which are owned.
    fn nicks(&self) -> Answer<'_, Vec<String>>;
    /// The password hash of `nick`'s account, if it has one.
    fn hash(&self, nick: &str) -> Answer<'_, Option<String>>;
    /// Registers `nick` with `hash`; `false` if it is registered already.
    fn register(&self, nick: &str, hash: &str) -> Answer<'_, bool>;
    /// Gives `nick`'s account the password `hash`.
    fn set_hash(&self, nick: &str, hash: &str) -> Answer<'_, ()>;
}
