//! How a server reaches its broker: several URLs (the client moves to a
//! live one), a broker that wants TLS (`tls://`, checked against
//! `--link-ca`), and what a bad `--link` or `--link-ca` gets.

use crate::common::broker::Broker;
use crate::common::certs::Certs;
use crate::common::member::Member;
use crate::common::*;
use crate::link::line_where;

/// A loopback port nothing listens on.
fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A line from alice on `one` reaches bob on `two`.
async fn lines_cross(one: &Server, two: &Server) {
    let mut alice = Member::named(one.address, "alice").await;
    let mut bob = Member::named(two.address, "bob").await;
    line_where(&mut alice, |line| line == "*** guest1@two is now bob@two").await;
    alice.send("across").await;
    line_where(&mut bob, |line| line == "<alice@one> across").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_several_brokers_the_one_that_answers_is_used() {
    let broker = Broker::start().await;
    let urls = format!("nats://127.0.0.1:{},{}", dead_port(), broker.url());
    let mut one = Server::start(&["--chat", "--link", &urls, "--node", "one"]).await;
    one.wait_for_log("the link", |line| line.starts_with("linked through"))
        .await;
    let two = Server::start(&["--chat", "--link", &broker.url(), "--node", "two"]).await;
    lines_cross(&one, &two).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_broker_is_reached_with_its_ca_and_not_without() {
    let certs = Certs::make();
    let broker = Broker::start_tls(&certs).await;
    let url = format!("tls://127.0.0.1:{}", broker.port);
    let ca = certs.ca.to_str().unwrap();
    let args =
        |node| ["--chat", "--link", &url, "--link-ca", ca, "--node", node].map(str::to_string);
    let one = Server::start(&args("one").each_ref().map(String::as_str)).await;
    let two = Server::start(&args("two").each_ref().map(String::as_str)).await;
    assert!(
        one.started
            .iter()
            .any(|line| line.starts_with("linked through tls://")),
        "{:?}",
        one.started
    );
    lines_cross(&one, &two).await;

    // Checked against another CA, the broker's certificate is refused: the
    // server serves alone, and says so.
    let other = certs.other_ca.to_str().unwrap();
    let three = Server::start(&[
        "--chat",
        "--link",
        &url,
        "--link-ca",
        other,
        "--node",
        "three",
    ])
    .await;
    assert!(
        three
            .started
            .iter()
            .any(|line| line.contains("does not answer")),
        "{:?}",
        three.started
    );
}

#[tokio::test]
async fn a_bad_link_or_link_ca_is_refused_with_one_clear_line() {
    assert_refuses_arguments(
        SERVER,
        &[
            &["--chat", "--link", "nats://127.0.0.1:4222,http://x"],
            &["--chat", "--link-ca", "ca.pem"],
        ],
    )
    .await;
    let missing = std::env::temp_dir().join("chat-no-such-ca.pem");
    let missing = missing.to_str().unwrap();
    let args = [
        "--chat",
        "--link",
        "tls://127.0.0.1:1",
        "--link-ca",
        missing,
    ];
    let stderr = start_up_error(SERVER, &args).await;
    assert!(
        stderr.contains(&format!("reading --link-ca {missing}")),
        "{stderr}"
    );
}
