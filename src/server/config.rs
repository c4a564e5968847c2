//! What every connection is served with, and the defaults of the waits
//! it is given: the handshake's and the close's.

use std::sync::Arc;
use std::time::Duration;

use tokio_rustls::rustls::ServerConfig;

use crate::framing::LineFormat;

/// A closing connection waits for the client to take its last replies and
/// close its side; it gives up once the client has taken none of them for
/// this long (it has stopped reading).
pub const CLOSE_STALL: Duration = Duration::from_secs(5);
/// How long a client has to finish its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How the server speaks TLS.
#[derive(Clone)]
pub struct Tls {
    pub(super) config: Arc<ServerConfig>,
    pub(super) timeout: Duration,
}

impl Tls {
    /// TLS with `config` (see [`crate::tls::server_config`]); handshakes
    /// must finish within `timeout`.
    pub fn new(config: Arc<ServerConfig>, timeout: Duration) -> Self {
        Self { config, timeout }
    }
}

impl Tls {
    /// The same, with handshakes given at most `limit`.
    pub(super) fn within(&self, limit: Duration) -> Tls {
        Tls {
            config: Arc::clone(&self.config),
            timeout: self.timeout.min(limit),
        }
    }
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// What every connection is served with.
#[derive(Clone, Debug)]
pub struct Config {
    /// The delimiter and the line limit.
    pub format: Arc<LineFormat>,
    /// Connections served at once; further ones are told the server is full.
    pub max_connections: usize,
    /// Closes a connection after this long without a byte from the client
    /// (or, while replies are owed, without the client reading one).
    pub idle_timeout: Option<Duration>,
    /// Logs a line on stderr when a connection opens and when it closes.
    pub log_connections: bool,
    /// Chat mode's settings; echo mode without them.
    pub chat: Option<crate::chat::Settings>,
    /// `--max-per-address` (chat mode): connections one address may hold.
    pub per_address: Option<Arc<super::per_address::PerAddress>>,
    /// `--tls-cert` and `--tls-key`: every connection speaks TLS.
    pub tls: Option<Tls>,
    /// A closing connection gives up once the client has taken no reply
    /// for this long: [`CLOSE_STALL`], shorter only in tests.
    pub close_stall: Duration,
}
