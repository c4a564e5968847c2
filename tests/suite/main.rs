//! Both programs, run as real processes over real sockets on loopback: one
//! test crate, so the suite links once. Every program a test starts gets a
//! null or piped stdin ([`common::command`]), never the developer's
//! terminal; every wait is for an event (a `listening on` line, a reply,
//! EOF, an exit), bounded by a timeout.
//!
//! `cargo test --test suite chat::` runs one module's tests.

mod common;

mod accounts;
mod chat;
mod chat_load;
mod chat_memory;
mod chat_model;
mod cli;
mod client;
mod client_faults;
mod closing;
mod history;
mod limits;
mod link;
mod link_access;
mod link_history;
mod link_hostile;
mod link_names;
mod listening;
mod logging;
mod memory;
mod model;
mod overhead;
mod password;
mod per_address;
mod server;
mod shutdown;
mod stress;
mod terminal;
mod tls;
mod tls_words;
