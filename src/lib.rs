//! `chat-server` and `chat-client`: a line-based TCP echo server and its
//! client on tokio.
//!
//! The parts:
//! - [`framing`]: cuts a byte stream into lines; the only place that does.
//! - [`server`]: accepts connections, enforces the limits, shuts down
//!   gracefully; [`server::connection`] answers the lines of one connection.
//! - [`client`]: sends stdin lines and prints the replies until the server
//!   closes the connection.
//! - [`cli`]: what both command lines share.
//!
//! The binaries in `src/bin/` only parse arguments and call in here.

pub mod cli;
pub mod client;
pub mod framing;
pub mod server;
