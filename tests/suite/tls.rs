//! TLS through the real binaries, with certificates made at test time:
//! both modes inside TLS, the client's checks of the server, what a
//! plaintext or silent client gets and costs, bad files at start, and
//! interoperation with Debian's `openssl` (package `openssl`).

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use crate::common::certs::{Certs, path, tls_connect};
use crate::common::*;
use chat::protocol::{self, chat as chat_text};
use tokio::io::{
    AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, ReadHalf, WriteHalf, split,
};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// A server with TLS on a free port, and its certificates.
async fn tls_server(certs: &Certs, args: &[&str]) -> Server {
    let mut all = certs.server_args();
    all.extend(args.iter().map(|arg| arg.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    Server::start(&all).await
}

/// A TLS peer that reads lines.
struct Peer {
    reader: BufReader<ReadHalf<TlsStream<TcpStream>>>,
    writer: WriteHalf<TlsStream<TcpStream>>,
}

impl Peer {
    async fn connect(address: SocketAddr, certs: &Certs, receive_buffer: Option<u32>) -> Peer {
        let (reader, writer) = split(tls_connect(address, &certs.ca, receive_buffer).await);
        Peer {
            reader: BufReader::new(reader),
            writer,
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        within("sending", async {
            self.writer.write_all(bytes).await.unwrap();
            self.writer.flush().await.unwrap();
        })
        .await;
    }

    /// The next line, without its line end.
    async fn line(&mut self) -> String {
        let mut line = String::new();
        within("a line", self.reader.read_line(&mut line))
            .await
            .unwrap();
        assert!(line.ends_with("\r\n"), "a whole line, not {line:?}");
        line.truncate(line.len() - 2);
        line
    }

    /// Everything until the server's close, which must be a clean TLS
    /// close (close_notify), not a bare end of the TCP stream.
    async fn rest(&mut self) -> String {
        let mut rest = String::new();
        within("the end", self.reader.read_to_string(&mut rest))
            .await
            .expect("the server closes with close_notify");
        rest
    }
}

/// A line the client sends with its handshake's last flight, in the same
/// write as its Finished, is answered: the server decrypts it while it
/// finishes the handshake, and keeps it for the first read.
#[tokio::test]
async fn a_line_sent_with_the_handshake_is_answered() {
    use std::io::{Read, Write};
    use tokio_rustls::rustls::ClientConnection;
    use tokio_rustls::rustls::pki_types::ServerName;

    let certs = Certs::make();
    let server = tls_server(&certs, &[]).await;
    let config = chat::tls::client_config(Some(&certs.ca)).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = ClientConnection::new(config, name).unwrap();
    // Held until the handshake is done, then sent right after Finished.
    tls.writer().write_all(b"with the handshake\r\n").unwrap();
    let mut tcp = connect(server.address).await;
    let mut received = Vec::new();
    let mut buffer = vec![0; 16 * 1024];
    within("the reply", async {
        while !received.ends_with(b"\r\n") {
            // All that is due in one write: Finished and the line together.
            let mut flight = Vec::new();
            while tls.wants_write() {
                tls.write_tls(&mut flight).unwrap();
            }
            tcp.write_all(&flight).await.unwrap();
            let count = tcp.read(&mut buffer).await.unwrap();
            assert!(count > 0, "the server closed");
            tls.read_tls(&mut &buffer[..count]).unwrap();
            tls.process_new_packets().unwrap();
            let _ = tls.reader().read_to_end(&mut received);
        }
    })
    .await;
    assert_eq!(received, b"You sent: with the handshake\r\n");
}

#[tokio::test]
async fn echo_works_inside_tls_and_closes_with_close_notify() {
    let certs = Certs::make();
    let mut server = tls_server(&certs, &[]).await;

    // Pipelined, through the real client: every reply, in order.
    let lines = numbered_lines("line", 20_000);
    let ca = path(&certs.ca);
    let output = run_client(server.address, &["--tls-ca", &ca], &request_of(&lines)).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let expected: String = lines
        .iter()
        .map(|line| format!("You sent: {line}\n"))
        .collect();
    assert!(output.stdout == expected.as_bytes(), "replies differ");
    let closed = server
        .wait_for_log("the close", |line| line.contains("closed"))
        .await;
    assert!(closed.contains("lines=20000"), "{closed}");

    // `.` is answered by the close, with close_notify first.
    let mut peer = Peer::connect(server.address, &certs, None).await;
    peer.send(b"hello\r\n.\r\nnot answered\r\n").await;
    assert_eq!(peer.line().await, "You sent: hello");
    assert_eq!(peer.rest().await, "");

    // The host name is checked too, not only the address.
    let output = command(CLIENT)
        .args(["localhost", &server.address.port().to_string()])
        .args(["--tls-ca", &ca])
        .stdin(Stdio::piped())
        .output();
    let output = within("the client", output).await.unwrap();
    assert!(output.status.success(), "{output:?}");
}

#[tokio::test]
async fn chat_works_inside_tls_and_a_slow_reader_gets_every_line() {
    let certs = Certs::make();
    let mut server = tls_server(&certs, &["--chat", "--max-rate", "0", "--sendq", "4000000"]).await;
    let mut alice = Peer::connect(server.address, &certs, None).await;
    assert_eq!(alice.line().await, chat_text::welcome("lobby", "guest1"));
    alice.line().await;
    alice.line().await;
    // Bob's small receive buffer fills at once: the server's TLS records
    // wait until he reads, and must all be sent then. (That records left
    // when a member's queue empties go out is checked in the transport's
    // own tests, where the server's buffers are small too.)
    let mut bob = Peer::connect(server.address, &certs, Some(4096)).await;
    for _ in 0..3 {
        bob.line().await;
    }
    assert_eq!(alice.line().await, chat_text::joined("guest2"));

    let lines = numbered_lines("a line long enough to fill records quickly", 20_000);
    let request: Vec<u8> = lines
        .iter()
        .flat_map(|line| format!("{line}\n").into_bytes())
        .collect();
    alice.send(&request).await;
    for line in &lines {
        assert_eq!(bob.line().await, format!("<guest1> {line}"));
    }
    bob.send(b"/quit\n").await;
    assert_eq!(bob.rest().await, format!("{}\r\n", chat_text::BYE));
    assert_eq!(alice.line().await, chat_text::left("guest2", None));

    // Shutdown inside TLS too: the notice, then close_notify.
    server.signal("TERM").await;
    assert_eq!(alice.line().await, chat_text::SHUTTING_DOWN);
    assert_eq!(alice.rest().await, "");
    assert!(server.exit_within(Duration::from_secs(5)).await.success());
}

#[tokio::test]
async fn an_unknown_ca_or_a_wrong_name_is_one_line_and_exit_1() {
    let certs = Certs::make();
    let mut server = tls_server(&certs, &[]).await;
    let address = server.address;
    let other_ca = path(&certs.other_ca);
    let ca = path(&certs.ca);
    let tls_with = format!("chat-client: error: TLS with {address}: ");
    let unknown_issuer = format!(
        "{tls_with}the server's certificate is not signed by a CA this client trusts (give it \
         with --tls-ca FILE)\n"
    );
    let cases: [(&[&str], Option<&str>, String); 4] = [
        (&["--tls-ca", &other_ca], None, unknown_issuer.clone()),
        // `--tls` trusts the system's roots; `SSL_CERT_FILE` names them.
        (&["--tls"], Some(&other_ca), unknown_issuer.clone()),
        (
            &["--tls-ca", &ca, "--tls-server-name", "other.example"],
            None,
            format!(
                "{tls_with}the server's certificate is not for other.example: it is for \
                 localhost, 127.0.0.1 (connect by one of those names, or check one with \
                 --tls-server-name NAME)\n"
            ),
        ),
        (&["--tls-ca", &path(&certs.cert)], None, unknown_issuer),
    ];
    for (args, roots, expected) in cases {
        let mut command = client(address, args);
        if let Some(roots) = roots {
            command.env("SSL_CERT_FILE", roots);
        }
        let output = run_with_input(&mut command, b"hello\n").await;
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&output.stderr),
            expected,
            "{args:?}"
        );
        assert!(output.stdout.is_empty());
        let failed = server
            .wait_for_log("the failed handshake", |line| {
                line.contains("TLS handshake failed")
            })
            .await;
        assert!(failed.starts_with("127.0.0.1:"), "{failed}");
    }

    // The same roots, trusted, work.
    let mut command = client(address, &["--tls"]);
    command.env("SSL_CERT_FILE", &ca);
    let output = run_with_input(&mut command, b"hello\n").await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(output.stdout, b"You sent: hello\n");
}

#[tokio::test]
async fn plaintext_and_silent_clients_harm_no_one_and_silent_ones_are_closed() {
    let certs = Certs::make();
    let mut server = tls_server(
        &certs,
        &["--max-connections", "2", "--tls-handshake-timeout", "1.5"],
    )
    .await;
    let mut alice = Peer::connect(server.address, &certs, None).await;
    alice.send(b"before\r\n").await;
    assert_eq!(alice.line().await, "You sent: before");

    // Plain text is told, in plain text, that TLS is needed.
    let answer = exchange(server.address, b"hello\r\n").await;
    assert_eq!(answer, format!("{}\r\n", protocol::TLS_REQUIRED).as_bytes());
    server
        .wait_for_log("the refusal", |line| line.contains("refused: not TLS"))
        .await;
    let output = run_client(server.address, &[], b"hello\n").await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr,
        format!(
            "chat-client: error: server closed the connection: {}\n",
            protocol::TLS_REQUIRED
        )
    );

    // A connection that never starts its handshake holds a slot from
    // accept: with Alice, the server is full.
    let mut silent = connect(server.address).await;
    let started = tokio::time::Instant::now();
    let ca = path(&certs.ca);
    let refused = run_client(server.address, &["--tls-ca", &ca], b"x\n").await;
    assert_eq!(refused.stdout, b"error: server is full (2 connections)\n");
    assert_eq!(refused.status.code(), Some(1));
    // Until the handshake timeout closes it.
    assert!(read_to_end(&mut silent).await.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(1500));
    let failed = server
        .wait_for_log("the timeout", |line| line.contains("TLS handshake failed"))
        .await;
    assert!(
        failed.ends_with("TLS handshake failed: not done within 1.5s"),
        "{failed}"
    );

    // Alice noticed nothing, and the slot is free again.
    alice.send(b"after\r\n").await;
    assert_eq!(alice.line().await, "You sent: after");
    let output = run_client(server.address, &["--tls-ca", &ca], b"next\n").await;
    assert!(output.status.success(), "{output:?}");
}

#[tokio::test]
async fn a_client_with_tls_against_a_server_without_gives_up_with_one_line() {
    let server = Server::start(&[]).await;
    let output = run_client(
        server.address,
        &["--tls", "--connect-timeout", "0.5"],
        b"hello\n",
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "chat-client: error: TLS with {}: ",
            server.address
        )),
        "{stderr}"
    );
    assert!(
        stderr.ends_with(": is it started with --tls-cert?\n"),
        "{stderr}"
    );
}

#[tokio::test]
async fn bad_files_and_flags_are_refused_at_start() {
    let certs = Certs::make();
    let (cert, key) = (path(&certs.cert), path(&certs.key));
    let missing = format!("{cert}.missing");
    let other_key = path(&certs.other_key);
    let cases = [
        (
            [&missing, &key],
            format!(
                "reading the TLS certificate {missing}: No such file or directory (os error 2)"
            ),
        ),
        (
            [&key, &key],
            format!("reading the TLS certificate {key}: no certificate in it"),
        ),
        (
            [&cert, &cert],
            format!("reading the TLS key {cert}: no private key in it"),
        ),
        (
            [&cert, &other_key],
            format!(
                "the TLS key {other_key} does not go with the certificate {cert}: \
                 keys may not be consistent: KeyMismatch"
            ),
        ),
    ];
    for ([cert, key], expected) in cases {
        let output = command(SERVER)
            .args(["--port", "0", "--tls-cert", cert, "--tls-key", key])
            .output();
        let output = within("the server to refuse", output).await.unwrap();
        assert_eq!(output.status.code(), Some(1));
        assert_eq!(
            String::from_utf8_lossy(&output.stderr),
            format!("chat-server: error: {expected}\n")
        );
    }
    let output = run_client("127.0.0.1:1".parse().unwrap(), &["--tls-ca", &missing], b"").await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!(
            "chat-client: error: reading the TLS CA file {missing}: No such file or directory (os error 2)\n"
        )
    );

    assert_refuses_arguments(
        SERVER,
        &[
            &["--tls-cert", &cert],
            &["--tls-key", &key],
            &[
                "--tls-cert",
                &cert,
                "--tls-key",
                &key,
                "--tls-handshake-timeout",
                "0",
            ],
            &[
                "--tls-cert",
                &cert,
                "--tls-key",
                &key,
                "--tls-handshake-timeout",
                "11",
            ],
            &["--tls-handshake-timeout", "1"],
        ],
    )
    .await;
    assert_refuses_arguments(
        CLIENT,
        &[&["--tls-server-name", "not a name"], &["--tls-ca"]],
    )
    .await;
}

#[tokio::test]
async fn openssl_s_client_talks_to_the_server() {
    let certs = Certs::make();
    let server = tls_server(&certs, &[]).await;
    let mut command = command("openssl");
    command.args([
        "s_client",
        "-connect",
        &server.address.to_string(),
        "-servername",
        "localhost",
        "-CAfile",
        &path(&certs.ca),
        "-verify_return_error",
        "-quiet",
    ]);
    // `-quiet` also waits for the server's close after stdin's end.
    let output = run_with_input(&mut command, b"hello\r\n.\r\n").await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(output.stdout, b"You sent: hello\r\n");
}

#[tokio::test]
async fn the_client_talks_to_openssl_s_server() {
    let certs = Certs::make();
    let mut s_server = command("openssl")
        .args([
            "s_server",
            "-accept",
            "127.0.0.1:0",
            "-naccept",
            "1",
            "-crlf",
        ])
        .args(["-cert", &path(&certs.cert), "-key", &path(&certs.key)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("openssl must be installed (Debian package openssl)");
    let mut said = BufReader::new(s_server.stdout.take().unwrap()).lines();
    let mut to_client = s_server.stdin.take().unwrap();
    let address: SocketAddr = within("s_server to listen", async {
        loop {
            let line = said.next_line().await.unwrap().expect("s_server listens");
            if let Some(address) = line.strip_prefix("ACCEPT ") {
                return address.parse().unwrap();
            }
        }
    })
    .await;

    let mut client = LiveClient::start(
        address,
        &[
            "--tls-ca",
            &path(&certs.ca),
            "--tls-server-name",
            "localhost",
        ],
    );
    client.send(b"hello\n").await;
    within("s_server to print the line", async {
        while said.next_line().await.unwrap().expect("s_server prints") != "hello" {}
    })
    .await;
    to_client.write_all(b"welcome\n").await.unwrap();
    assert_eq!(client.printed_line().await, "welcome\n");
    // At stdin's end, the client sends close_notify; s_server answers with
    // its own and closes, and the client exits with success.
    client.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_cost_little_and_a_real_client_is_told_it_is_full() {
    const HELD: usize = 50;
    const STALLED: usize = 1000;
    let certs = Certs::make();
    let limit = HELD.to_string();
    let server = tls_server(&certs, &["--quiet", "--max-connections", &limit]).await;
    let mut held = Vec::new();
    for _ in 0..HELD {
        held.push(tls_connect(server.address, &certs.ca, None).await);
    }
    // Each sends the first bytes of a ClientHello record, then nothing.
    let mut stalled = Vec::new();
    for _ in 0..STALLED {
        let mut stream = connect(server.address).await;
        stream.write_all(&[0x16, 0x03, 0x01, 0x02]).await.unwrap();
        stalled.push(stream);
    }
    // Within 2 s of the last one, the server holds the held connections
    // and its own few descriptors only: every stalled one is closed. On
    // the way, it never held more than the refusals it may be making.
    let pid = server.pid();
    let own = 30;
    let peak = within_for(
        Duration::from_secs(2),
        "the server to let go of the stalled connections",
        async {
            let mut check = tokio::time::interval(Duration::from_millis(20));
            let mut peak = 0;
            loop {
                let open = open_descriptors(pid);
                peak = peak.max(open);
                if open < HELD + own {
                    return peak;
                }
                check.tick().await;
            }
        },
    )
    .await;
    assert!(
        peak < HELD + chat::server::MAX_REFUSING + own,
        "{peak} descriptors"
    );
    // A real client is told, in TLS, that the server is full.
    let full = protocol::server_full(HELD);
    let ca = path(&certs.ca);
    let output = within_for(
        Duration::from_secs(3),
        "the refused client",
        run_client(server.address, &["--tls-ca", &ca], b""),
    )
    .await;
    assert_eq!(String::from_utf8_lossy(&output.stdout), format!("{full}\n"));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!("chat-client: error: server closed the connection: {full}\n")
    );
    assert_eq!(output.status.code(), Some(1));
    drop((held, stalled));
}

#[tokio::test]
async fn a_tls_client_at_a_plain_server_is_closed_at_once_and_logged() {
    // The start of a ClientHello: a handshake record, TLS 1.0 on the
    // record layer, and (as real ones have) an LF among its bytes.
    let hello = [
        0x16, 0x03, 0x01, 0x00, 0x2f, 0x01, 0x00, 0x00, 0x2b, 0x03, 0x03, 0x0a,
    ];
    for mode in [&[][..], &["--chat"]] {
        let mut server = Server::start(mode).await;
        let mut stream = connect(server.address).await;
        let local = stream.local_addr().unwrap();
        stream.write_all(&hello).await.unwrap();
        // Closed within a second, whatever the line rules would wait for.
        let mut rest = Vec::new();
        let _ = within_for(
            Duration::from_secs(1),
            "the server to close the connection",
            stream.read_to_end(&mut rest),
        )
        .await;
        if mode.is_empty() {
            assert!(rest.is_empty(), "{rest:?}");
        }
        let closed = server
            .wait_for_log("the close", |line| {
                // In chat mode, the guest's nick comes between.
                line.starts_with(&format!("{local} ")) && line.contains(" closed (")
            })
            .await;
        assert!(
            closed.contains(
                "(a TLS client; this server speaks plain text (start it with --tls-cert and \
                 --tls-key))"
            ),
            "{closed}"
        );
        assert!(!closed.contains("lenient"), "{closed}");
    }
    // chat-client --tls against it gives up at once, not at its timeout.
    let server = Server::start(&[]).await;
    let started = std::time::Instant::now();
    let output = run_client(server.address, &["--tls"], b"").await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}
