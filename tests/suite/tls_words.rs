//! TLS said in words: the server's `listening on ADDR (TLS)` and its log's
//! `TLS 1.3`, the client's hint, a warning at start for a certificate
//! clients will refuse, and each refusal as a sentence with what to do.

use crate::client::on_a_terminal;
use crate::common::certs::{Certs, Refused, path};
use crate::common::*;

/// Each certificate clients refuse: what the server warns at start, and
/// what the client says when it meets it.
const REFUSED: [(Refused, &str, &str); 4] = [
    (
        Refused::CaAsServer,
        "it is a CA certificate (basicConstraints CA:TRUE), which clients refuse as a server's",
        "the server's certificate is a CA's (CA:TRUE), which no client accepts as a server's: \
         the server needs a certificate signed by that CA",
    ),
    (
        Refused::Expired,
        "it expired on 2021-01-01",
        "the server's certificate expired on 2021-01-01 (the server needs a new one)",
    ),
    (
        Refused::NotYetValid,
        "it is not valid until 2099-01-01",
        "the server's certificate is not valid until 2099-01-01 (is this machine's clock right?)",
    ),
    (
        Refused::OtherName,
        "it is not for localhost: it is for other.example",
        "the server's certificate is not for localhost: it is for other.example (connect by one \
         of those names, or check one with --tls-server-name NAME)",
    ),
];

/// A server on `localhost` (so its certificate's names are checked).
async fn on_localhost(tls_args: &[String]) -> Server {
    Server::start_command(
        command(SERVER)
            .args(["--host", "localhost", "--port", "0"])
            .args(tls_args),
    )
    .await
}

#[tokio::test]
async fn a_certificate_clients_will_refuse_is_warned_of_at_start_and_refused_in_words() {
    let certs = Certs::make();
    for (refused, warned, said) in REFUSED {
        let mut server = on_localhost(&certs.refused_args(refused)).await;
        let warnings: Vec<&String> = server
            .started
            .iter()
            .filter(|line| line.starts_with("clients will refuse the TLS certificate "))
            .collect();
        assert_eq!(warnings.len(), 1, "{refused:?}: {:?}", server.started);
        assert!(warnings[0].contains(warned), "{refused:?}: {}", warnings[0]);
        // It still starts.
        let ca = path(&certs.ca);
        let args = ["--tls-ca", &ca, "--tls-server-name", "localhost"];
        let output = run_client(server.address, &args, b"hello\n").await;
        assert_eq!(output.status.code(), Some(1), "{refused:?}");
        assert_eq!(
            String::from_utf8_lossy(&output.stderr),
            format!("chat-client: error: TLS with {}: {said}\n", server.address),
            "{refused:?}"
        );
        let failed = server
            .wait_for_log("the failed handshake", |line| {
                line.contains("TLS handshake failed")
            })
            .await;
        assert!(
            failed.contains("the client refused this server's certificate"),
            "{refused:?}: {failed}"
        );
    }
    let server = on_localhost(&certs.server_args()).await;
    assert!(
        !server.started.iter().any(|line| line.contains("refuse")),
        "{:?}",
        server.started
    );
}

#[tokio::test]
async fn tls_is_shown_where_the_server_listens_logs_and_the_client_connects() {
    let certs = Certs::make();
    let args = certs.server_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = Server::start(&args).await;
    let listening = server.started.last().unwrap();
    assert_eq!(listening, &format!("listening on {} (TLS)", server.address));

    let ca = path(&certs.ca);
    let seen = on_a_terminal(
        server.address,
        &["--tls-ca", &ca, "--tls-server-name", "localhost"],
        b"hi\n.\n",
    )
    .await;
    let hint = format!(
        "connected to {} (TLS 1.3, certificate for localhost) — type lines, \".\" to quit",
        server.address
    );
    assert!(seen.contains(&hint), "{seen:?}");
    let connected = server
        .wait_for_log("the connected line", |line| line.contains(" connected"))
        .await;
    assert!(
        connected.ends_with(" connected over TLS 1.3"),
        "{connected}"
    );
    let closed = server
        .wait_for_log("the closed line", |line| line.contains(" closed ("))
        .await;
    assert!(closed.ends_with(" over TLS 1.3"), "{closed}");
}

#[tokio::test]
async fn a_server_that_answers_in_plain_text_is_asked_about_at_once() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let serving = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut stream, b"220 hello there\r\n")
            .await
            .unwrap();
        // Holds the connection open: the client must not wait for its end.
        std::future::pending::<()>().await;
    });
    let certs = Certs::make();
    let started = std::time::Instant::now();
    let output = run_client(address, &["--tls-ca", &path(&certs.ca)], b"").await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!(
            "chat-client: error: TLS with {address}: the server answered in something that is \
             not TLS: is it started with --tls-cert?\n"
        )
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    serving.abort();
}
