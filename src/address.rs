//! Addresses as people type them: `HOST`, `[IPV6]`, `HOST:PORT` and
//! `[IPV6]:PORT`, as `nc`, `ssh`, `redis-cli` and URLs write them; and
//! `HOST:PORT` written back for messages. Both command lines and the
//! library's messages use it.

/// A host as given on a command line, with the port when it carried one
/// (`localhost:9000`, `[::1]:9000`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostAndPort {
    /// A host name or an IP address, without brackets.
    pub host: String,
    pub port: Option<u16>,
}

/// `host:port`, with an IPv6 address in brackets, for messages.
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Parses `HOST`, `[IPV6]`, `HOST:PORT` or `[IPV6]:PORT`. An IPv6 address
/// without brackets (two colons or more) is a host with no port. A host of
/// digits only is refused: nobody means `9000` as the address 0.0.35.40, so
/// the error says it looks like a port, and how to give one: `port_hint`
/// writes that for the program (`chat-client localhost 9000, or -p 9000`).
pub fn parse_host_and_port(
    text: &str,
    port_hint: fn(&str) -> String,
) -> Result<HostAndPort, String> {
    let (host, port) = split_port(text)?;
    if host.is_empty() {
        return Err("a host name or address is needed".to_string());
    }
    if host.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(format!("{host} looks like a port: {}", port_hint(host)));
    }
    Ok(HostAndPort {
        host: host.to_string(),
        port,
    })
}

/// Parses a host alone (`--host`): as [`parse_host_and_port`], refusing a
/// port, which has a flag of its own (`-p` in both programs).
pub fn parse_host(text: &str, port_hint: fn(&str) -> String) -> Result<String, String> {
    let parsed = parse_host_and_port(text, port_hint)?;
    match parsed.port {
        None => Ok(parsed.host),
        Some(port) => Err(format!(
            "--host takes no port: --host {} -p {port}",
            bracketed(&parsed.host)
        )),
    }
}

/// The host and the port of `text`, the brackets of an IPv6 address taken
/// off.
fn split_port(text: &str) -> Result<(&str, Option<u16>), String> {
    if let Some(inside) = text.strip_prefix('[') {
        let Some((host, after)) = inside.split_once(']') else {
            return Err(format!("{text}: an opening [ needs its closing ]"));
        };
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((host, Some(parse_port(text, port)?))),
                None => Err(format!("{text}: after [{host}] comes :PORT or nothing")),
            },
        };
    }
    match text.split_once(':') {
        Some((host, port)) if !port.contains(':') => Ok((host, Some(parse_port(text, port)?))),
        // No colon, or an IPv6 address without brackets.
        _ => Ok((text, None)),
    }
}

fn parse_port(text: &str, port: &str) -> Result<u16, String> {
    port.parse()
        .map_err(|_| format!("{text}: the port after ':' is a number from 0 to 65535"))
}

/// An IPv6 address in brackets, anything else as it is.
fn bracketed(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_hint(port: &str) -> String {
        format!("chat-client localhost {port}, or -p {port}")
    }

    fn parse(text: &str) -> Result<HostAndPort, String> {
        parse_host_and_port(text, client_hint)
    }

    fn ok(host: &str, port: Option<u16>) -> Result<HostAndPort, String> {
        Ok(HostAndPort {
            host: host.to_string(),
            port,
        })
    }

    #[test]
    fn hosts_with_and_without_ports() {
        assert_eq!(parse("localhost"), ok("localhost", None));
        assert_eq!(parse("localhost:9000"), ok("localhost", Some(9000)));
        assert_eq!(parse("10.0.0.1:0"), ok("10.0.0.1", Some(0)));
        assert_eq!(parse("[::1]"), ok("::1", None));
        assert_eq!(parse("[::1]:9000"), ok("::1", Some(9000)));
        assert_eq!(parse("::1"), ok("::1", None));
        assert_eq!(parse("fe80::1:2"), ok("fe80::1:2", None));
        assert_eq!(parse("chat.example.org"), ok("chat.example.org", None));
        assert_eq!(parse("9000.example.org"), ok("9000.example.org", None));
    }

    #[test]
    fn what_is_refused_and_why() {
        assert_eq!(
            parse("9000"),
            Err("9000 looks like a port: chat-client localhost 9000, or -p 9000".to_string())
        );
        for refused in [
            "",
            "[]",
            "[]:80",
            ":80",
            "[::1",
            "[::1]80",
            "host:",
            "host:x",
            "host:65536",
            "0",
            "[::1]:-1",
        ] {
            assert!(parse(refused).is_err(), "{refused:?} accepted");
        }
        assert_eq!(
            parse_host("localhost:9000", client_hint),
            Err("--host takes no port: --host localhost -p 9000".to_string())
        );
        assert_eq!(
            parse_host("[::1]:9000", client_hint),
            Err("--host takes no port: --host [::1] -p 9000".to_string())
        );
        assert_eq!(parse_host("[::1]", client_hint), Ok("::1".to_string()));
    }

    #[test]
    fn written_back_with_brackets_for_ipv6() {
        assert_eq!(host_port("::1", 8007), "[::1]:8007");
        assert_eq!(host_port("localhost", 8007), "localhost:8007");
    }
}
