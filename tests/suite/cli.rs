//! Both command lines as `nc`, `telnet` and `redis-cli` users expect them:
//! `chat-client HOST PORT`, `-p`, the lenient delimiter, help that fits the
//! terminal with examples, and errors that say what to do.

use crate::common::*;
use tokio::io::AsyncWriteExt;

/// Runs `program ARGS` with `input` on stdin, without the test helpers'
/// `--host` and `--port`.
async fn run(program: &str, args: &[&str], input: &[u8]) -> std::process::Output {
    run_with_input(command(program).args(args), input).await
}

/// `chat-client ARGS` sends `hi`, prints the echo server's reply, exits 0.
async fn assert_client_reaches_the_server(args: &[&str]) {
    let output = run(CLIENT, args, b"hi\n").await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "You sent: hi\n",
        "{args:?}: {stderr}"
    );
    assert!(output.status.success(), "{args:?}: {stderr}");
}

#[tokio::test]
async fn the_client_takes_host_and_port_as_nc_and_telnet_do() {
    let server = Server::start(&["--quiet"]).await;
    let host = server.address.ip().to_string();
    let port = server.address.port().to_string();
    for args in [
        vec![host.as_str(), port.as_str()],
        vec!["-p", &port, "--host", &host],
        vec![&host, "-p", &port],
        vec!["--host", &host, "--port", &port],
    ] {
        assert_client_reaches_the_server(&args).await;
    }
}

#[tokio::test]
async fn the_server_takes_p_for_port() {
    let server =
        Server::start_command(command(SERVER).args(["--host", "127.0.0.1", "-p", "0"])).await;
    let answer = exchange(server.address, b"short\r\n.\r\n").await;
    assert_eq!(answer, reply("short").as_bytes());
}

#[tokio::test]
async fn lenient_takes_lf_crlf_and_a_mix_and_answers_with_crlf() {
    let server = Server::start(&["--quiet", "--delimiter", "lenient"]).await;
    for (sent, expected) in [
        (&b"nc\n.\n"[..], &b"You sent: nc\r\n"[..]),
        (b"telnet\r\n.\r\n", b"You sent: telnet\r\n"),
        (
            b"lf\ncrlf\r\nbare\rcr\n\r\n.\n",
            b"You sent: lf\r\nYou sent: crlf\r\nYou sent: bare\rcr\r\nYou sent: \r\n",
        ),
    ] {
        let answer = exchange(server.address, sent).await;
        assert_eq!(
            String::from_utf8_lossy(&answer),
            String::from_utf8_lossy(expected)
        );
    }
    // The client in lenient mode: replies cut at LF, the CR dropped.
    let output = run_client(server.address, &["--delimiter", "lenient"], b"a\r\nb\n").await;
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "You sent: a\nYou sent: b\n"
    );
}

#[tokio::test]
async fn a_client_that_sent_lf_but_no_crlf_gets_a_hint_in_the_log() {
    let mut server = Server::start(&[]).await;
    let mut stream = connect(server.address).await;
    let local = stream.local_addr().unwrap();
    stream.write_all(b"what nc sends\n").await.unwrap();
    stream.shutdown().await.unwrap();
    assert_eq!(read_to_end(&mut stream).await, b"");
    let closed = server
        .wait_for_log("the close", |line| {
            line.starts_with(&format!("{local} closed"))
        })
        .await;
    assert!(closed.contains("--delimiter lenient"), "{closed}");
    assert!(closed.contains("nc -C"), "{closed}");

    // No hint for a client that sent CRLF lines.
    let mut stream = connect(server.address).await;
    let local = stream.local_addr().unwrap();
    stream.write_all(b"proper\r\n").await.unwrap();
    stream.shutdown().await.unwrap();
    assert_eq!(read_to_end(&mut stream).await, reply("proper").as_bytes());
    let closed = server
        .wait_for_log("the close", |line| {
            line.starts_with(&format!("{local} closed"))
        })
        .await;
    assert!(!closed.contains("lenient"), "{closed}");
}

#[tokio::test]
async fn help_fits_80_columns_lists_every_flag_and_has_examples() {
    let shared = ["--host", "--port", "-p", "--delimiter", "--max-line-bytes"];
    let server_only = [
        "--max-connections",
        "--idle-timeout",
        "--keepalive",
        "--reuse-port",
        "--quiet",
        "--chat",
        "--room",
        "--sendq",
        "--max-rate",
        "--history",
        "--history-bytes",
        "--link-buffer",
        "--max-per-address",
        "--exempt",
        "--password-file",
        "--data-dir",
        "--op",
    ];
    let client_only = ["--connect-timeout", "[HOST] [PORT]"];
    for (program, name, own) in [
        (CLIENT, "chat-client", &client_only[..]),
        (SERVER, "chat-server", &server_only[..]),
    ] {
        let help = within(
            "--help",
            command(program).arg("--help").env("COLUMNS", "80").output(),
        )
        .await
        .unwrap();
        assert!(help.status.success());
        let help = String::from_utf8_lossy(&help.stdout);
        assert!(help.contains(&format!("Usage: {name} [OPTIONS]")), "{help}");
        for flag in shared.iter().chain(own) {
            assert!(help.contains(flag), "{name} --help lacks {flag}");
        }
        assert!(help.contains("Examples:"), "{help}");
        for line in help.lines() {
            assert!(line.chars().count() <= 80, "{name}: {line:?}");
        }
        let version = within("--version", command(program).arg("--version").output())
            .await
            .unwrap();
        assert!(version.status.success());
        assert_eq!(
            String::from_utf8_lossy(&version.stdout).trim_end(),
            format!("{name} {}", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[tokio::test]
async fn the_client_takes_host_colon_port_as_redis_cli_and_urls_write_it() {
    let v4 = Server::start(&["--quiet"]).await;
    let v6 =
        Server::start_command(command(SERVER).args(["--host", "::1", "-p", "0", "--quiet"])).await;
    let (v4_port, v6_port) = (v4.address.port(), v6.address.port());
    for args in [
        vec![format!("127.0.0.1:{v4_port}")],
        vec![format!("[::1]:{v6_port}")],
        // An IPv6 address without brackets is a host.
        vec!["::1".to_string(), v6_port.to_string()],
        vec!["[::1]".to_string(), "-p".to_string(), v6_port.to_string()],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_client_reaches_the_server(&args).await;
    }
}

#[tokio::test]
async fn a_host_of_digits_and_a_port_given_twice_are_usage_errors() {
    let looks_like_a_port = "9000 looks like a port: chat-client localhost 9000, or -p 9000";
    let twice = "the port is given twice: 9000 in HOST:PORT, and as PORT or --port";
    for (program, args, message) in [
        (CLIENT, &["9000"][..], looks_like_a_port),
        (CLIENT, &["--host", "9000"], looks_like_a_port),
        (CLIENT, &["localhost:9000", "9001"], twice),
        (CLIENT, &["localhost:9000", "-p", "9001"], twice),
        (
            CLIENT,
            &["localhost:x"],
            "localhost:x: the port after ':' is a number",
        ),
        (
            CLIENT,
            &["--host", "localhost:9000"],
            "--host takes no port: --host localhost -p 9000",
        ),
        (
            SERVER,
            &["--host", "9000"],
            "9000 looks like a port: chat-server -p 9000",
        ),
        (
            SERVER,
            &["--host", "[::1]:9000"],
            "--host takes no port: --host [::1] -p 9000",
        ),
    ] {
        let output = run(program, args, b"").await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}

#[tokio::test]
async fn start_up_errors_say_what_to_do() {
    // TEST-NET-1 is no address of this machine; binding it sends nothing.
    assert_eq!(
        start_up_error(SERVER, &["--host", "192.0.2.1", "-p", "0"]).await,
        "chat-server: error: binding 192.0.2.1:0: Cannot assign requested address (os error 99): \
         that is not an address of this machine; --host 0.0.0.0 (or --host ::) listens on every \
         interface"
    );
    // In a user namespace of its own, the server has no right to this
    // machine's low ports, even when the tests run as root.
    let first_free_port: u16 =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
            .expect("/proc/sys/net/ipv4/ip_unprivileged_port_start is readable")
            .trim()
            .parse()
            .unwrap();
    assert!(
        first_free_port > 1,
        "every port is free for anyone here (net.ipv4.ip_unprivileged_port_start = {first_free_port}): \
         a low port cannot be refused"
    );
    let low = (first_free_port - 1).to_string();
    let refused = start_up_error(
        "unshare",
        &["--user", SERVER, "--host", "127.0.0.1", "-p", &low],
    )
    .await;
    assert!(
        refused.starts_with(&format!(
            "chat-server: error: binding 127.0.0.1:{low}: Permission denied (os error 13): ports \
             below 1024 need root or the CAP_NET_BIND_SERVICE capability"
        )),
        "{refused}"
    );
}

/// `program --help` at 80 columns.
async fn help_of(program: &str) -> String {
    let help = within(
        "--help",
        command(program).arg("--help").env("COLUMNS", "80").output(),
    )
    .await
    .unwrap();
    assert!(help.status.success());
    String::from_utf8(help.stdout).unwrap()
}

/// The help of one flag (`--port`): its line and the lines that continue it.
fn flag_help(help: &str, flag: &str) -> String {
    let mut lines = help
        .lines()
        .skip_while(|line| !line.contains(&format!("{flag} <")));
    let first = lines
        .next()
        .unwrap_or_else(|| panic!("no {flag} in {help}"));
    let continued =
        lines.take_while(|line| line.starts_with("      ") && !line.trim_start().starts_with('-'));
    std::iter::once(first)
        .chain(continued)
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test]
async fn each_program_s_help_speaks_of_itself() {
    let client = help_of(CLIENT).await;
    let server = help_of(SERVER).await;
    let summary = client.split("Usage:").next().unwrap();
    let summary = summary.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(summary.contains("chat-server --chat"), "{summary}");
    assert!(summary.contains("/help"), "{summary}");
    for (flag, client_says, server_says) in [
        ("--port", "The server's TCP port", "port to listen on"),
        ("--host", "The server's host name", "address to listen on"),
        (
            "--delimiter",
            "the server must use the same",
            "clients must use the same",
        ),
    ] {
        let (of_client, of_server) = (flag_help(&client, flag), flag_help(&server, flag));
        assert!(of_client.contains(client_says), "{of_client}");
        assert!(!of_client.contains("listen"), "{of_client}");
        assert!(of_server.contains(server_says), "{of_server}");
        assert!(!of_server.contains("connects"), "{of_server}");
    }
}

#[tokio::test]
async fn a_client_that_sends_bare_lf_lines_and_waits_is_told_once() {
    let server = Server::start(&["--quiet"]).await;
    let notice = format!("{}\r\n", chat::protocol::LINES_END_WITH_CRLF);
    let mut nc = connect(server.address).await;
    let started = std::time::Instant::now();
    nc.write_all(b"what nc sends\n").await.unwrap();
    assert_eq!(read_exactly(&mut nc, notice.len()).await, notice.as_bytes());
    assert!(started.elapsed() >= chat::protocol::LF_NOTICE_AFTER);
    // Nothing else changes: the bytes are still one unfinished line, and
    // the notice comes once.
    nc.write_all(b"more\n").await.unwrap();
    nc.write_all(b"\r\n.\r\n").await.unwrap();
    assert_eq!(
        read_to_end(&mut nc).await,
        reply("what nc sends\nmore\n").as_bytes()
    );
    // A client that sends the delimiter in time never sees it.
    let mut proper = connect(server.address).await;
    ping(&mut proper, "proper").await;
    proper.write_all(b"then an lf\n").await.unwrap();
    let mut more = [0; 1];
    let quiet = tokio::time::timeout(
        chat::protocol::LF_NOTICE_AFTER * 2,
        tokio::io::AsyncReadExt::read(&mut proper, &mut more),
    )
    .await;
    assert!(quiet.is_err(), "{quiet:?}");
}
