//! Reaching the server: a TCP connection to the first of the host's
//! addresses that answers, then, with `--tls`, the TLS handshake, each
//! within the connect timeout.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::config::{Config, Tls};
use crate::address::host_port;
use crate::tls::explain;

/// Connects to the first address of the host that answers, within the
/// connect timeout for all of them.
pub(super) async fn connect(config: &Config) -> anyhow::Result<TcpStream> {
    let connecting = TcpStream::connect((config.host.as_str(), config.port));
    let connected = within(config.connect_timeout, connecting).await?;
    let stream = connected.map_err(|error| match error.kind() {
        io::ErrorKind::ConnectionRefused => {
            anyhow!("{error}: no server is listening there; is chat-server running, on this port?")
        }
        _ => error.into(),
    })?;
    // Lines are batched by hand, so Nagle's delay would only add latency.
    // A socket that refuses it has already failed, and reading says how.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Makes the TLS handshake on `stream` and checks the server's certificate,
/// within the connect timeout. Errors name the address and say the cause
/// in words (`TLS with HOST:PORT: the server's certificate is not signed by
/// a CA this client trusts (give it with --tls-ca FILE)`).
pub(super) async fn secure(
    stream: TcpStream,
    tls: &Tls,
    config: &Config,
) -> anyhow::Result<Secured> {
    let address = host_port(&config.host, config.port);
    let context = || format!("TLS with {address}");
    let name = match &tls.server_name {
        Some(name) => name.clone(),
        None => crate::tls::server_name(&config.host)
            .map_err(|error| anyhow!("{error}: give the name to check with --tls-server-name"))
            .with_context(context)?,
    };
    let checked = name.to_str().into_owned();
    let handshake = TlsConnector::from(Arc::clone(&tls.config)).connect(name, stream);
    let done = within(config.connect_timeout, handshake)
        .await
        .with_context(context)?;
    let stream = done
        .map_err(|error| anyhow!(explain::client_failure(&error, &checked)))
        .with_context(context)?;
    let version = crate::tls::version_name(stream.get_ref().1.protocol_version());
    Ok(Secured {
        stream,
        about: format!("{version}, certificate for {checked}"),
    })
}

/// A connection whose handshake is done, and what to tell a person of it
/// (`TLS 1.3, certificate for NAME`).
pub(super) struct Secured {
    pub stream: TlsStream<TcpStream>,
    pub about: String,
}

/// `operation`'s result, or an error once `limit` has passed.
async fn within<T>(
    limit: Option<Duration>,
    operation: impl Future<Output = T>,
) -> anyhow::Result<T> {
    match limit {
        None => Ok(operation.await),
        Some(limit) => tokio::time::timeout(limit, operation)
            .await
            .map_err(|_| anyhow!("no answer within {}s", limit.as_secs_f64())),
    }
}
