//! Nicks people own (`--data-dir`, chat mode): `/register`, `/login`,
//! `/password`, kept in a real store file that a SIGKILL does not hurt.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chat::protocol::chat::{
    NO_ACCOUNTS, PASSWORD_CHANGED, WRONG_PASSWORD, for_operators, kicked, logged_in,
    logged_in_elsewhere, nick_registered, nick_taken, registered_to_you, was_kicked,
};

use crate::common::member::Member;
use crate::common::*;
use crate::link::line_where;

/// A distinctive password, to look for where it must not be.
const SECRET: &str = "walrus-tangent-5821";

/// A data directory of the test's own, removed at the end.
struct DataDir(PathBuf);

impl DataDir {
    fn new() -> DataDir {
        static MADE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let made = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("chat-data-{}-{made}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        DataDir(dir)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn server_with(data: &DataDir) -> Server {
    Server::start(&["--chat", "--max-rate", "0", "--data-dir", data.path()]).await
}

/// Kills `server` with SIGKILL and waits until it is gone.
async fn kill(mut server: Server) {
    server.signal("KILL").await;
    server.exit_within(Duration::from_secs(5)).await;
}

/// Reads `member`'s lines (others' notices among them) until `wanted`.
async fn until(member: &mut Member, wanted: &str) {
    line_where(member, |line| line == wanted).await;
}

/// Every byte of the files in `dir`.
fn contents(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        all.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    all
}

#[tokio::test]
async fn a_registered_nick_is_its_owners_after_a_restart_too() {
    let data = DataDir::new();
    let mut server = server_with(&data).await;
    let mut alice = Member::named(server.address, "alice").await;
    alice.send(&format!("/register {SECRET}")).await;
    alice.expect(&registered_to_you("alice")).await;
    let mut bob = Member::join(server.address).await;
    bob.send("/nick alice").await;
    bob.expect(&nick_taken("alice")).await;
    drop(alice);
    server
        .wait_for_log("alice's close", |line| line.contains(" alice closed"))
        .await;
    bob.send("/nick Alice").await;
    let refused = nick_registered("Alice");
    line_where(&mut bob, |line| line == refused).await;
    let log = server.log_so_far();
    kill(server).await;

    let server = server_with(&data).await;
    let mut carol = Member::join(server.address).await;
    let mut dave = Member::join(server.address).await;
    carol.send("/nick alice").await;
    until(&mut carol, &nick_registered("alice")).await;
    carol.send("/login alice wrong-one").await;
    until(&mut carol, WRONG_PASSWORD).await;
    carol.send(&format!("/login alice {SECRET}")).await;
    until(&mut carol, &logged_in("alice")).await;
    carol.send("hello as alice").await;
    line_where(&mut dave, |line| line == "<alice> hello as alice").await;
    // The owner logs in on another connection: that one is alice now.
    dave.send(&format!("/login alice {SECRET}")).await;
    until(&mut dave, &logged_in("alice")).await;
    let told = line_where(&mut carol, |line| line.contains("logged in elsewhere")).await;
    let guest = told.rsplit_once("you are now ").unwrap().1.to_string();
    assert_eq!(told, logged_in_elsewhere("alice", &guest));
    carol.send("and now?").await;
    line_where(&mut dave, |line| line == format!("<{guest}> and now?")).await;

    // The password is in no log line and not in the store's file.
    for line in log {
        assert!(!line.contains(SECRET), "{line}");
    }
    let stored = contents(&data.0);
    assert!(
        !stored
            .windows(SECRET.len())
            .any(|window| window == SECRET.as_bytes())
    );
}

#[tokio::test]
async fn twenty_registrations_answered_outlive_a_sigkill() {
    let data = DataDir::new();
    let server = server_with(&data).await;
    let mut members = Vec::new();
    for n in 0..20 {
        let mut member = Member::named(server.address, &format!("user{n}")).await;
        member.send(&format!("/register pw{n}")).await;
        members.push(member);
    }
    for (n, member) in members.iter_mut().enumerate() {
        let answer = registered_to_you(&format!("user{n}"));
        line_where(member, |line| line == answer).await;
    }
    kill(server).await;
    let server = server_with(&data).await;
    let mut checker = Member::join(server.address).await;
    for n in 0..20 {
        checker.send(&format!("/nick user{n}")).await;
        checker.expect(&nick_registered(&format!("user{n}"))).await;
    }
    checker.send("/login user7 pw7").await;
    checker.expect(&logged_in("user7")).await;
}

#[tokio::test]
async fn a_password_changes_and_guessing_is_slow() {
    let data = DataDir::new();
    let server = server_with(&data).await;
    let mut alice = Member::named(server.address, "alice").await;
    alice.send("/register first").await;
    alice.expect(&registered_to_you("alice")).await;
    alice.send("/password wrong second").await;
    alice.expect(WRONG_PASSWORD).await;
    alice.send("/password first second").await;
    alice.expect(PASSWORD_CHANGED).await;
    let mut bob = Member::join(server.address).await;
    bob.send("/login alice first").await;
    bob.expect(WRONG_PASSWORD).await;
    // Five wrong ones from this address (with alice's above), then even the
    // right one waits.
    for _ in 0..3 {
        bob.send("/login alice guess").await;
        bob.expect(WRONG_PASSWORD).await;
    }
    bob.send("/login alice second").await;
    let refused = bob.line().await;
    assert!(
        refused.starts_with("error: too many wrong passwords; try again in "),
        "{refused}"
    );
}

#[tokio::test]
async fn without_a_store_there_are_no_accounts() {
    let server = Server::start(&["--chat"]).await;
    let mut alice = Member::named(server.address, "alice").await;
    for command in ["/register x", "/login alice x", "/password a b"] {
        alice.send(command).await;
        alice.expect(NO_ACCOUNTS).await;
    }
}

#[tokio::test]
async fn an_operator_kicks_and_nobody_else_may() {
    let data = DataDir::new();
    let mut server = Server::start(&["--chat", "--data-dir", data.path(), "--op", "alice"]).await;
    let mut alice = Member::named(server.address, "alice").await;
    alice.send("/register op-pass").await;
    alice.expect(&registered_to_you("alice")).await;
    let mut bob = Member::named(server.address, "bob").await;
    let mut carol = Member::named(server.address, "carol").await;
    bob.send("/kick carol").await;
    until(&mut bob, &for_operators("/kick")).await;
    alice.send("/kick bob spamming").await;
    until(&mut carol, &was_kicked("bob", "alice", Some("spamming"))).await;
    let rest = bob.rest().await;
    assert!(
        rest.ends_with(&format!("{}\r\n", kicked("alice", Some("spamming")))),
        "{rest:?}"
    );
    drop(bob);
    server
        .wait_for_log("bob's close", |line| {
            line.contains("bob closed (kicked by alice (spamming))")
        })
        .await;
    // No "left" notice after the kick.
    carol.send("/who").await;
    until(&mut carol, "*** here in #lobby (2): alice, carol").await;
}

#[tokio::test]
async fn an_operator_needs_a_store() {
    assert_refuses_arguments(
        SERVER,
        &[
            &["--chat", "--op", "alice"],
            &["--chat", "--data-dir", "d", "--op", "9x"],
        ],
    )
    .await;
}
