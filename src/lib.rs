//! `chat-server` and `chat-client`: a line-based TCP chat server (and echo
//! server) and its client, on tokio.
//!
//! # Layout
//!
//! A line's path goes one way: listener → connection → mode → outbox.
//! - [`server`]: the listener (bind, accept, slots, backoff, drain), one
//!   connection's transport ([`server::connection`]: stream, buffers,
//!   close), the TLS handshake, and the session that hands each
//!   connection to a mode. It knows no mode's rules.
//! - `echo`: the echo policy, `You sent: LINE` and `.`.
//! - [`chat`]: chat mode (`--chat`): members, rooms, commands, mailboxes,
//!   names, escaping, the rate limit.
//! - [`link`]: linking chat servers through NATS (`--link`), a leaf: the
//!   chat holds its handle, and it reaches the chat through one port,
//!   [`link::Port`].
//! - [`framing`]: cuts a byte stream into lines; the only place that does.
//!   [`delimiter`]: how a line ends, as `--delimiter` says.
//! - [`protocol`]: every text the server puts on the wire, in both modes.
//! - [`client`]: sends stdin lines and prints the replies until the server
//!   closes the connection.
//! - [`log`]: the server's log, which never blocks it. [`tls`]: both
//!   programs' TLS configurations.
//! - [`address`]: hosts and ports as people type them; [`cli`]: what both
//!   command lines share.
//!
//! The binaries in `src/bin/` only parse arguments and call in here.

pub mod accounts;
pub mod address;
mod allocator;
pub mod chat;
pub mod cli;
pub mod client;
pub mod delimiter;
mod echo;
pub(crate) mod escape;
pub mod framing;
pub mod link;
pub mod log;
pub mod names;
pub mod protocol;
pub mod server;
pub mod tls;
