//! Room history (`--history`, `--history-bytes`) through the real binary:
//! what a member joining a room is shown of what was said in it, and what
//! never is.

use chat::protocol::chat::RECENT_END;

use crate::common::member::Member;
use crate::common::*;

/// Checks the first marker line: `*** recent in #ROOM (N lines since
/// YYYY-MM-DD HH:MM UTC):`, with a time of today's kind.
fn assert_opening(line: &str, room: &str, count: usize) {
    let lines = if count == 1 { "line" } else { "lines" };
    let start = format!("*** recent in #{room} ({count} {lines} since ");
    let time = line
        .strip_prefix(&start)
        .and_then(|rest| rest.strip_suffix(" UTC):"))
        .unwrap_or_else(|| panic!("{line:?} starts with {start:?}"));
    let shape: String = time
        .chars()
        .map(|c| if c.is_ascii_digit() { '9' } else { c })
        .collect();
    assert_eq!(shape, "9999-99-99 99:99", "{line}");
    assert!(time.starts_with("20"), "{line}");
}

/// The recent lines a member was shown, without the marker lines, after
/// checking them.
pub fn recent_lines(recent: &[String], room: &str) -> Vec<String> {
    assert!(recent.len() >= 2, "a recent block: {recent:?}");
    assert_opening(&recent[0], room, recent.len() - 2);
    assert_eq!(recent.last().map(String::as_str), Some(RECENT_END));
    recent[1..recent.len() - 1].to_vec()
}

/// `/join ROOM`: passes over what arrives before `*** you are in #ROOM`
/// (others coming and going), then returns the recent block (empty if
/// none) and the `here:` line.
pub async fn join_room(member: &mut Member, room: &str) -> (Vec<String>, String) {
    member.send(&format!("/join #{room}")).await;
    let joined = format!("*** you are in #{room}");
    while member.line().await != joined {}
    let mut recent = Vec::new();
    loop {
        let line = member.line().await;
        if recent.is_empty() && line.starts_with("*** here: ") {
            return (recent, line);
        }
        let done = line == RECENT_END;
        recent.push(line);
        if done {
            return (recent, member.line().await);
        }
    }
}

#[tokio::test]
async fn a_member_who_arrives_is_shown_the_talk_and_nothing_else() {
    let server = Server::start(&["--chat", "--max-rate", "0"]).await;
    let mut alice = Member::named(server.address, "alice").await;
    let mut bob = Member::named(server.address, "bob").await;
    while alice.line().await != "*** guest2 is now bob" {}
    alice.send("hi").await;
    alice.send("/me waves").await;
    alice.send("bell\x07and\u{202E}bidi").await;
    bob.expect("<alice> hi").await;
    bob.expect("* alice waves").await;
    let escaped = bob.line().await;
    assert_eq!(escaped, "<alice> bell\\x07and\\u{202E}bidi");
    bob.send("/msg alice not for the room").await;
    bob.send("/nick robert").await;
    bob.expect("-> *alice* not for the room").await;
    bob.expect("*** you are now robert").await;

    let carol = Member::join(server.address).await;
    // No join notice, rename or private message: the talk, escaped as it
    // was live.
    let lines = recent_lines(&carol.recent, "lobby");
    assert_eq!(lines, ["<alice> hi", "* alice waves", &escaped]);
    assert_eq!(carol.greeting[1], "*** here: alice, guest3, robert (3)");
}

#[tokio::test]
async fn a_join_shows_that_room_s_lines_between_you_are_in_and_here() {
    let server = Server::start(&["--chat"]).await;
    let mut alice = Member::named(server.address, "alice").await;
    alice.send("in the lobby").await;
    // Her line has been handled once her /who is answered.
    alice.send("/who").await;
    alice.expect("*** here in #lobby (1): alice").await;
    let mut bob = Member::named(server.address, "bob").await;
    assert_eq!(recent_lines(&bob.recent, "lobby"), ["<alice> in the lobby"]);
    assert_eq!(
        join_room(&mut bob, "side").await,
        (vec![], "*** here: bob (1)".into())
    );
    bob.send("on the side").await;
    // Bob's line has been handled once his /who is answered.
    bob.send("/who").await;
    bob.expect("*** here in #side (1): bob").await;

    let (recent, here) = join_room(&mut alice, "side").await;
    assert_eq!(recent_lines(&recent, "side"), ["<bob> on the side"]);
    assert_eq!(here, "*** here: alice, bob (2)");
    // Joining the room one is in shows nothing again.
    let (recent, here) = join_room(&mut alice, "side").await;
    assert!(recent.is_empty(), "{recent:?}");
    assert_eq!(here, "*** here: alice, bob (2)");
}

#[tokio::test]
async fn history_keeps_the_newest_lines_within_its_count_and_its_bytes() {
    for (args, kept) in [
        (&["--history", "3"][..], 3),
        // `<alice> line N` and CRLF are 16 bytes: 50 bytes hold three.
        (&["--history-bytes", "50"][..], 3),
        (&["--history", "0"][..], 0),
    ] {
        let mut all = vec!["--chat", "--max-rate", "0"];
        all.extend(args);
        let server = Server::start(&all).await;
        let mut alice = Member::named(server.address, "alice").await;
        let mut bob = Member::join(server.address).await;
        for n in 1..=5 {
            alice.send(&format!("line {n}")).await;
        }
        for n in 1..=5 {
            bob.expect(&format!("<alice> line {n}")).await;
        }
        let carol = Member::join(server.address).await;
        if kept == 0 {
            assert!(carol.recent.is_empty(), "{args:?}: {:?}", carol.recent);
            continue;
        }
        let expected: Vec<String> = (6 - kept..=5)
            .map(|n| format!("<alice> line {n}"))
            .collect();
        assert_eq!(recent_lines(&carol.recent, "lobby"), expected, "{args:?}");
    }
}

#[tokio::test]
async fn a_room_forgets_its_lines_when_its_last_member_leaves() {
    let server = Server::start(&["--chat"]).await;
    let mut alice = Member::named(server.address, "alice").await;
    let alone = || (vec![], "*** here: alice (1)".to_string());
    assert_eq!(join_room(&mut alice, "brief").await, alone());
    alice.send("said to nobody").await;
    assert_eq!(join_room(&mut alice, "lobby").await, alone());

    let mut bob = Member::join(server.address).await;
    let here = format!("*** here: {} (1)", bob.nick);
    assert_eq!(join_room(&mut bob, "brief").await, (vec![], here));

    // The same for a room left by a member's leaving.
    bob.send("kept while bob is here").await;
    bob.send("/quit").await;
    bob.rest().await;
    // Past bob's coming and going in the lobby.
    assert_eq!(join_room(&mut alice, "brief").await, alone());
}
