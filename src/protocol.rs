//! Every text the server puts on the wire, in one place: changing a log line
//! or an error message elsewhere can never change the protocol by accident.
//! Each line here is sent followed by the connection's delimiter. Chat
//! mode's texts are in [`chat`].

pub mod chat;

use std::time::Duration;

/// What every echo reply starts with: `You sent: LINE`.
pub const REPLY_PREFIX: &[u8] = b"You sent: ";

/// The line that asks the server to close the connection.
pub const QUIT_LINE: &[u8] = b".";

/// What every line starts with that tells the client why the server is
/// closing the connection; the client exits with an error after one.
pub const ERROR_PREFIX: &[u8] = b"error: ";

/// Sent before closing a connection that sent a line over the limit.
pub fn line_too_long(max_line_bytes: usize) -> String {
    format!("error: line exceeds {max_line_bytes} bytes")
}

/// Sent to a connection over `--max-connections` before closing it.
pub fn server_full(max_connections: usize) -> String {
    let noun = if max_connections == 1 {
        "connection"
    } else {
        "connections"
    };
    format!("error: server is full ({max_connections} {noun})")
}

/// Sent to a connection past `--max-per-address` from its address.
pub fn too_many_from(address: std::net::IpAddr, limit: usize) -> String {
    format!("error: too many connections from {address} ({limit})")
}

/// Sent in plain text by a server with TLS to a client that does not start
/// a TLS handshake (nc, telnet, chat-client without `--tls`), before
/// closing: better than the TLS alert it could not read.
/// Told once to a connection that has sent only bare-LF lines (`nc`
/// without `-C`) and then gone quiet, so it is not left in silence.
pub const LINES_END_WITH_CRLF: &str =
    "*** lines end with CRLF here: use nc -C, or start chat-server with --delimiter lenient";

/// How long such a connection stays quiet before it is told.
pub const LF_NOTICE_AFTER: Duration = Duration::from_secs(1);

pub const TLS_REQUIRED: &str =
    "error: this server speaks TLS only (chat-client --tls, openssl s_client)";

/// Sent before closing a connection that sent nothing for the idle timeout.
pub fn idle(timeout: Duration) -> String {
    format!("error: idle for {} s", timeout.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_lines() {
        assert_eq!(line_too_long(4), "error: line exceeds 4 bytes");
        assert_eq!(server_full(3), "error: server is full (3 connections)");
        assert_eq!(server_full(1), "error: server is full (1 connection)");
        assert_eq!(idle(Duration::from_millis(500)), "error: idle for 0.5 s");
        assert_eq!(idle(Duration::from_secs(60)), "error: idle for 60 s");
        let tls_required = TLS_REQUIRED.to_string();
        for line in [
            line_too_long(1),
            server_full(1),
            idle(Duration::ZERO),
            tls_required,
        ] {
            assert!(line.as_bytes().starts_with(ERROR_PREFIX));
        }
    }
}
