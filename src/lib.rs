//! `chat-server` and `chat-client`: a line-based TCP echo server and its
//! client on tokio.
//!
//! The parts:
//! - [`framing`]: cuts a byte stream into lines; the only place that does.
//! - [`delimiter`]: how a line ends, as `--delimiter` says.
//! - [`server`]: accepts connections, enforces the limits, shuts down
//!   gracefully; [`server::connection`] is one connection's transport, and
//!   [`server::chat`] the chat mode (`--chat`) served through it.
//! - [`client`]: sends stdin lines and prints the replies until the server
//!   closes the connection.
//! - [`protocol`]: every text the server puts on the wire, in both modes.
//! - [`log`]: the server's log, which never blocks it.
//! - [`tls`]: both programs' TLS configurations.
//! - [`address`]: hosts and ports as people type them.
//! - [`cli`]: what both command lines share.
//!
//! The binaries in `src/bin/` only parse arguments and call in here.

pub mod address;
pub mod cli;
pub mod client;
pub mod delimiter;
pub mod framing;
pub mod log;
pub mod protocol;
pub mod server;
pub mod tls;
