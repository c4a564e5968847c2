//! Opening the listening sockets: one per address the host names resolve
//! to, all on one port, each set up with the socket options every accepted
//! connection inherits (TCP keepalive).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use socket2::{Domain, Protocol, Socket, TcpKeepalive, Type};
use tokio::net::TcpListener;

use crate::address::host_port;

/// Pending connections the kernel queues before `accept` (capped by
/// `net.core.somaxconn`).
const LISTEN_BACKLOG: i32 = 1024;
/// Keepalive probes sent before a silent peer is given up (fewer when the
/// idle time is under this many seconds, the kernel counting whole seconds).
const KEEPALIVE_PROBES: u32 = 5;

/// How the listening sockets are set up.
#[derive(Clone, Copy, Debug)]
pub struct ListenOptions {
    /// Sets `SO_REUSEPORT`: several servers that all set it share the port.
    pub reuse_port: bool,
    /// TCP keepalive idle time; `None` leaves keepalive off.
    pub keepalive: Option<Duration>,
}

/// Listens on every address that `hosts` resolve to, all on `port`; with
/// port 0, all on the port the first one was given. An address of a family
/// this machine does not have (IPv6 switched off, say) is skipped as long as
/// another one is bound; any other failure, a port in use among them, is an
/// error naming the address.
pub async fn bind_all(
    hosts: &[String],
    port: u16,
    options: ListenOptions,
) -> anyhow::Result<Vec<TcpListener>> {
    let mut addresses: Vec<(SocketAddr, &str)> = Vec::new();
    for host in hosts {
        let resolved = tokio::net::lookup_host((host.as_str(), port))
            .await
            .with_context(|| format!("resolving {}", host_port(host, port)))?;
        for address in resolved {
            if !addresses.iter().any(|(known, _)| *known == address) {
                addresses.push((address, host));
            }
        }
    }
    let mut listeners = Vec::with_capacity(addresses.len());
    let mut skipped = None;
    let mut port = port;
    for (mut address, host) in addresses {
        address.set_port(port);
        match bind_one(address, options) {
            Ok(listener) => {
                port = listener.local_addr()?.port();
                listeners.push(listener);
            }
            Err(error) if family_unavailable(&error) => skipped = Some((error, address, host)),
            Err(error) => {
                return Err(with_hint(error)).with_context(|| bind_failure(host, address, port));
            }
        }
    }
    match (listeners.is_empty(), skipped) {
        (true, Some((error, address, host))) => {
            Err(with_hint(error)).with_context(|| bind_failure(host, address, port))
        }
        (true, None) => anyhow::bail!("{}: no address to listen on", hosts.join(", ")),
        (false, _) => Ok(listeners),
    }
}

fn bind_failure(host: &str, address: SocketAddr, port: u16) -> String {
    let named = host_port(host, port);
    if named == address.to_string() {
        format!("binding {named}")
    } else {
        format!("binding {named} ({address})")
    }
}

/// Adds what to do to a start-up error that has a usual cause: a port in
/// use, an address that is not this machine's, a low port without the
/// right to it.
fn with_hint(error: io::Error) -> io::Error {
    let hint = match error.raw_os_error() {
        Some(libc::EADDRINUSE) => {
            "another program listens there; choose another --port, or --port 0 for a free one"
        }
        Some(libc::EADDRNOTAVAIL) => {
            "that is not an address of this machine; --host 0.0.0.0 (or --host ::) listens on \
             every interface"
        }
        Some(libc::EACCES) => {
            "ports below 1024 need root or the CAP_NET_BIND_SERVICE capability (sudo setcap \
             cap_net_bind_service=+ep \"$(command -v chat-server)\"); or choose a --port from 1024"
        }
        _ => return error,
    };
    io::Error::new(error.kind(), format!("{error}: {hint}"))
}

/// The kernel has no such address or protocol family here.
fn family_unavailable(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EADDRNOTAVAIL | libc::EAFNOSUPPORT)
    )
}

fn bind_one(address: SocketAddr, options: ListenOptions) -> io::Result<TcpListener> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    if address.is_ipv6() {
        // `::` and `0.0.0.0` are then two listeners side by side, as they
        // are when a host name resolves to both.
        socket.set_only_v6(true)?;
    }
    // Lets a restarted server bind while old connections sit in TIME_WAIT;
    // on Linux it does not let two servers share a port.
    socket.set_reuse_address(true)?;
    if options.reuse_port {
        socket.set_reuse_port(true)?;
    }
    // Accepted connections inherit keepalive and its timings.
    if let Some(idle) = options.keepalive {
        socket.set_tcp_keepalive(&keepalive_timing(idle))?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// Probes start after `idle` without traffic and end, if the peer never
/// answers, about `idle` later: a vanished peer is closed within 2 × `idle`.
fn keepalive_timing(idle: Duration) -> TcpKeepalive {
    let probes = u32::try_from(idle.as_secs())
        .unwrap_or(u32::MAX)
        .clamp(1, KEEPALIVE_PROBES);
    TcpKeepalive::new()
        .with_time(idle)
        .with_interval(idle / probes)
        .with_retries(probes)
}
