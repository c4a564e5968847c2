//! Both command lines as `nc`, `telnet` and `redis-cli` users expect them:
//! `chat-client HOST PORT`, `-p`, the lenient delimiter, help that fits the
//! terminal with examples, and errors that say what to do.

mod common;

use common::*;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Runs `program ARGS` with `input` on stdin, without the test helpers'
/// `--host` and `--port`.
async fn run(program: &str, args: &[&str], input: &[u8]) -> std::process::Output {
    run_with_input(Command::new(program).args(args), input).await
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
        let output = run(CLIENT, &args, b"hi\n").await;
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "You sent: hi\n",
            "{args:?}"
        );
        assert!(output.status.success(), "{args:?}");
    }
}

#[tokio::test]
async fn the_server_takes_p_for_port() {
    let server =
        Server::start_command(Command::new(SERVER).args(["--host", "127.0.0.1", "-p", "0"])).await;
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
    ];
    let client_only = ["--connect-timeout", "[HOST] [PORT]"];
    for (program, name, own) in [
        (CLIENT, "chat-client", &client_only[..]),
        (SERVER, "chat-server", &server_only[..]),
    ] {
        let help = within(
            "--help",
            Command::new(program)
                .arg("--help")
                .env("COLUMNS", "80")
                .output(),
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
        let version = within("--version", Command::new(program).arg("--version").output())
            .await
            .unwrap();
        assert!(version.status.success());
        assert_eq!(
            String::from_utf8_lossy(&version.stdout).trim_end(),
            format!("{name} {}", env!("CARGO_PKG_VERSION"))
        );
    }
}
