//! Where `chat-server` listens and how its sockets are set up: every address
//! a host resolves to, on one port, and TCP keepalive on every connection.

use std::net::SocketAddr;

use crate::common::*;
use chat::server::DEFAULT_KEEPALIVE_SECS;

/// Starts `chat-server --port 0` with `hosts` (each after `--host`) and
/// `args`, and returns it with every address it says it listens on.
async fn start_on(hosts: &[&str], args: &[&str]) -> (Server, Vec<SocketAddr>) {
    let mut command = command(SERVER);
    command.args(["--port", "0", "--quiet"]).args(args);
    for host in hosts {
        command.args(["--host", host]);
    }
    let mut server = Server::start_command(&mut command).await;
    let mut addresses = vec![server.address];
    let expected = resolve(hosts).await.len();
    while addresses.len() < expected {
        let line = server
            .wait_for_log("another listening line", |line| {
                line.starts_with("listening on ")
            })
            .await;
        addresses.push(line["listening on ".len()..].parse().unwrap());
    }
    (server, addresses)
}

/// Every distinct address `hosts` resolve to, port aside.
async fn resolve(hosts: &[&str]) -> Vec<std::net::IpAddr> {
    let mut all = Vec::new();
    for host in hosts {
        let host = chat::address::parse_host(host, |_| String::new()).unwrap();
        for address in tokio::net::lookup_host((host.as_str(), 0)).await.unwrap() {
            if !all.contains(&address.ip()) {
                all.push(address.ip());
            }
        }
    }
    all
}

/// Each address answers, and they share one port.
async fn assert_all_answer(addresses: &[SocketAddr]) {
    let port = addresses[0].port();
    for address in addresses {
        assert_eq!(address.port(), port, "{addresses:?}");
        let answer = exchange(*address, b"here?\r\n.\r\n").await;
        assert_eq!(answer, reply("here?").as_bytes(), "{address}");
    }
}

#[tokio::test]
async fn listens_on_every_address_of_localhost() {
    let (_server, addresses) = start_on(&["localhost"], &[]).await;
    let mut listening: Vec<_> = addresses.iter().map(SocketAddr::ip).collect();
    let mut resolved = resolve(&["localhost"]).await;
    listening.sort();
    resolved.sort();
    assert_eq!(listening, resolved);
    assert_all_answer(&addresses).await;
}

#[tokio::test]
async fn listens_on_each_host_given() {
    let (_server, addresses) = start_on(&["127.0.0.1", "[::1]"], &[]).await;
    assert_eq!(addresses.len(), 2, "{addresses:?}");
    assert!(
        addresses[0].is_ipv4() && addresses[1].is_ipv6(),
        "{addresses:?}"
    );
    assert_all_answer(&addresses).await;
    // The client takes the bracketed form too.
    let output = run_client(addresses[1], &[], b"over IPv6\n").await;
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "You sent: over IPv6\n"
    );
}

/// The keepalive timer of the server's side of the connection from
/// `client` to `server`, in seconds left, from `/proc/net/tcp*`; `None`
/// when no keepalive timer runs.
fn keepalive_timer(server: SocketAddr, client: SocketAddr) -> Option<f64> {
    let table = if server.is_ipv4() { "tcp" } else { "tcp6" };
    let text = std::fs::read_to_string(format!("/proc/net/{table}")).unwrap();
    let port_of = |field: &str| u16::from_str_radix(field.rsplit(':').next().unwrap(), 16).unwrap();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if port_of(fields[1]) != server.port() || port_of(fields[2]) != client.port() {
            continue;
        }
        // `tr:tm->when`: timer 2 is keepalive; the time left is in
        // USER_HZ ticks, 100 a second.
        let (timer, when) = fields[5].split_once(':').unwrap();
        return (timer == "02").then(|| u64::from_str_radix(when, 16).unwrap() as f64 / 100.0);
    }
    panic!("no socket from {client} to {server} in /proc/net/{table}");
}

#[tokio::test]
async fn accepted_connections_carry_tcp_keepalive() {
    for (args, idle) in [
        (&[][..], Some(DEFAULT_KEEPALIVE_SECS)),
        (&["--keepalive", "30"][..], Some(30)),
        (&["--keepalive", "0"][..], None),
    ] {
        let server = Server::start(args).await;
        let stream = connect(server.address).await;
        // Once the server has answered, it has accepted the connection.
        let mut stream = stream;
        tokio::io::AsyncWriteExt::write_all(&mut stream, b"ping\r\n")
            .await
            .unwrap();
        read_exactly(&mut stream, reply("ping").len()).await;
        let left = keepalive_timer(server.address, stream.local_addr().unwrap());
        match idle {
            Some(idle) => {
                let left = left.unwrap_or_else(|| panic!("{args:?}: no keepalive timer"));
                let idle = f64::from(idle);
                assert!(
                    left <= idle && left > idle - 10.0,
                    "{args:?}: {left} s left"
                );
            }
            None => assert_eq!(left, None, "{args:?}"),
        }
    }
}
