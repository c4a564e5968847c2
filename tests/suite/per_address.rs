//! `--max-per-address` and `--exempt` (chat mode): one client address
//! holds at most N connections at once, unless it is exempt (by default
//! the loopback addresses); past them a newcomer is told and closed, and
//! the others notice nothing.

use chat::protocol::too_many_from;

use crate::common::member::Member;
use crate::common::*;

/// The whole of what a refused connection gets: the line, then the close.
async fn refused(server: &Server) -> String {
    let mut stream = connect(server.address).await;
    String::from_utf8(read_to_end(&mut stream).await).unwrap()
}

#[tokio::test]
async fn an_address_past_its_limit_is_told_and_closed_and_the_others_go_on() {
    let mut server = Server::start(&["--chat", "--max-per-address", "2", "--exempt", "none"]).await;
    let mut alice = Member::join(server.address).await;
    let bob = Member::join(server.address).await;
    let loopback = "127.0.0.1".parse().unwrap();
    assert_eq!(
        refused(&server).await,
        format!("{}\r\n", too_many_from(loopback, 2))
    );
    server
        .wait_for_log("the refusal", |line| {
            line.contains("refused: 2 connections open from 127.0.0.1 (--max-per-address)")
        })
        .await;
    // The two in the room notice nothing.
    alice.send("still here").await;
    let mut bob = bob;
    bob.expect(&format!("<{}> still here", alice.nick)).await;

    // One leaves: once it is closed, a newcomer comes in.
    alice.send("/quit").await;
    alice.rest().await;
    drop(alice);
    server
        .wait_for_log("alice's close", |line| line.contains("closed (/quit)"))
        .await;
    let _newcomer = Member::join(server.address).await;
    assert!(
        refused(&server)
            .await
            .starts_with("error: too many connections")
    );
}

#[tokio::test]
async fn exempt_addresses_are_not_counted() {
    // Loopback is exempt by default, and when named.
    for exempt in [
        &[][..],
        &["--exempt", "10.0.0.0/8", "--exempt", "127.0.0.0/8"],
    ] {
        let mut args = vec!["--chat", "--max-per-address", "1"];
        args.extend_from_slice(exempt);
        let server = Server::start(&args).await;
        let mut members = Vec::new();
        for _ in 0..3 {
            members.push(Member::join(server.address).await);
        }
    }
    // Exempting another network counts loopback.
    let server = Server::start(&["--chat", "--max-per-address", "1", "--exempt", "10.0.0.1"]).await;
    let _member = Member::join(server.address).await;
    assert!(
        refused(&server)
            .await
            .starts_with("error: too many connections from 127.0.0.1 (1)")
    );
}

#[tokio::test]
async fn the_per_address_flags_have_ranges_and_need_chat() {
    assert_refuses_arguments(
        SERVER,
        &[
            &["--max-per-address", "5"],
            &["--exempt", "none"],
            &["--chat", "--max-per-address", "0"],
            &["--chat", "--max-per-address", "1000001"],
            &["--chat", "--exempt", "10.0.0.0/33"],
            &["--chat", "--exempt", "localhost"],
        ],
    )
    .await;
}
