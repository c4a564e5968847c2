//! `--tls-cert` and `--tls-key`: every connection starts with a TLS
//! handshake, which must finish within a time limit. The connection holds
//! its slot from accept, so clients that never finish cannot take more
//! than their share, and only for that long.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::rustls::ServerConfig;
use tracing::info;

use super::config::{Config, Tls};
use super::connection::{Stream, TlsSession};
use super::session;
use crate::tls::explain;

/// The first byte of every TLS handshake: the record type "handshake".
const HANDSHAKE_RECORD: u8 = 0x16;

/// Serves `stream` with `serve` once its handshake is done. A client that
/// starts with plain text is told, in plain text, that TLS is needed. A
/// handshake that fails or takes too long is one log line, and the
/// connection is closed; at shutdown it is dropped.
pub(super) async fn then_serve<F: Future<Output = ()>>(
    tls: Tls,
    stream: TcpStream,
    peer: SocketAddr,
    config: Arc<Config>,
    mut stop: watch::Receiver<()>,
    serve: impl FnOnce(Stream) -> F,
) {
    let opening = tokio::time::timeout(tls.timeout, open(&tls.config, stream));
    let failure = tokio::select! {
        _ = stop.changed() => return,
        opened = opening => match opened {
            Ok(Opened::Tls(stream)) => return serve(Stream::Tls(stream)).await,
            Ok(Opened::Plaintext(stream)) => {
                return session::refuse_plaintext(stream, peer, config, stop).await;
            }
            Ok(Opened::Failed(failure)) => failure,
            Err(_) => format!("not done within {:?}", tls.timeout),
        },
    };
    if config.log_connections {
        info!("{peer} TLS handshake failed: {failure}");
    }
}

/// How a connection's start went.
enum Opened {
    Tls(Box<TlsSession>),
    /// Its first byte cannot start a TLS handshake.
    Plaintext(TcpStream),
    Failed(String),
}

/// Makes the handshake, once the client's first byte shows it is one.
async fn open(config: &Arc<ServerConfig>, stream: TcpStream) -> Opened {
    let mut first = [0; 1];
    match stream.peek(&mut first).await {
        Ok(0) => return Opened::Failed("closed before its handshake".to_string()),
        Ok(_) if first[0] != HANDSHAKE_RECORD => return Opened::Plaintext(stream),
        Ok(_) => {}
        Err(error) => return Opened::Failed(error.to_string()),
    }
    match TlsSession::accept(stream, Arc::clone(config)).await {
        Ok(stream) => Opened::Tls(Box::new(stream)),
        Err(error) => Opened::Failed(explain::server_failure(&error)),
    }
}
