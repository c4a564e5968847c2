//! `chat-server` and `chat-client`: a line-based TCP echo server and its
//! client on tokio.
//!
//! The parts:
//! - [`framing`]: cuts a byte stream into lines; the only place that does.

pub mod framing;
