//! What the client is told to do: where to connect, how lines are cut,
//! how long to wait, and how to check the server with TLS.

use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::ServerName;
use tokio_rustls::rustls::ClientConfig;

use super::terminal::ColorMode;
use crate::framing::LineFormat;

/// Longest reply line the client buffers before giving up.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1024 * 1024;
/// How long a connection attempt may take: a server behind a firewall that
/// drops it is an error after this, not after the kernel's two minutes.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where to connect, and how lines are cut: the delimiter both ways, the
/// line limit for replies and for stdin lines alike.
#[derive(Clone, Debug)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub format: Arc<LineFormat>,
    /// For connecting and, with TLS, for the handshake; `None` leaves the
    /// limit to the kernel.
    pub connect_timeout: Option<Duration>,
    /// `--tls`: speak TLS, and check the server as this says.
    pub tls: Option<Tls>,
    /// `--plain`: no line editor, even on a terminal.
    pub plain: bool,
    /// `--color`: for the line editor's screen only.
    pub color: ColorMode,
}

/// `--tls`, `--tls-ca` and `--tls-server-name`: how the server is checked.
#[derive(Clone, Debug)]
pub struct Tls {
    /// What is trusted: see [`crate::tls::client_config`].
    pub config: Arc<ClientConfig>,
    /// The name the server's certificate must hold, and the one sent as
    /// SNI; the host's when `None`.
    pub server_name: Option<ServerName<'static>>,
}
