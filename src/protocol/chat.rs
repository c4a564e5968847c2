//! Every text chat mode puts on the wire. What a line starts with tells its
//! kind: `<` another member's line, `* ` a `/me`, `*NICK*` a private
//! message, `*** ` a server notice, `error: ` about the member's own line.
//! Each line is sent followed by the connection's delimiter.

use std::fmt::Write as _;

use bytes::BytesMut;

/// The longest `/who` or `/rooms` line, delimiter not counted: a longer
/// list goes on more lines, each starting the same way.
pub const MAX_LIST_LINE: usize = 512;
/// The `here:` line on joining names at most this many members.
pub const HERE_NAMES: usize = 50;

/// What starts a command, and what `//` stands for at a line's start.
pub const COMMAND_PREFIX: u8 = b'/';

/// Told to the members of rooms that spanned servers when the link to the
/// broker is lost, and when it is back.
pub const LINK_LOST: &str = "*** lost link to other servers; only people on this server hear you";
pub const LINK_RESTORED: &str = "*** link to other servers restored";

/// To a member kicked by `op`, as it is closed.
pub fn kicked(op: &str, reason: Option<&str>) -> String {
    match reason {
        Some(reason) => format!("error: kicked by {op} ({reason})"),
        None => format!("error: kicked by {op}"),
    }
}

/// To the room of a member kicked.
pub fn was_kicked(nick: &str, op: &str, reason: Option<&str>) -> String {
    match reason {
        Some(reason) => format!("*** {nick} was kicked by {op} ({reason})"),
        None => format!("*** {nick} was kicked by {op}"),
    }
}

/// An operator's command given by someone else.
pub fn for_operators(command: &str) -> String {
    format!("error: {command} is for operators")
}

/// Accounts, on a server without a store.
pub const NO_ACCOUNTS: &str = "error: this server keeps no accounts (start it with --data-dir DIR)";
pub const REGISTER_NEEDS_PASSWORD: &str = "error: /register PASSWORD";
pub const LOGIN_NEEDS: &str = "error: /login NICK PASSWORD";
pub const PASSWORD_NEEDS: &str = "error: /password OLD NEW";
pub const LOGIN_FIRST: &str =
    "error: /login first: /password changes the password you are logged in with";
pub const GUEST_NOT_REGISTERED: &str =
    "error: guest nicks cannot be registered; take one with /nick NAME first";
pub const PASSWORD_CHANGED: &str = "*** your password is changed";
/// The store failed (a full disk, say): nothing was changed.
pub const ACCOUNTS_FAILED: &str = "error: the accounts could not be reached; try again";

/// `/register` done.
pub fn registered_to_you(nick: &str) -> String {
    format!("*** nick {nick} is registered to you; /login {nick} PASSWORD next time")
}

/// `/nick NAME` (or `/register`) for a nick someone owns.
pub fn nick_registered(nick: &str) -> String {
    format!("error: nick \"{nick}\" is registered; /login {nick} PASSWORD")
}

/// `/login` done.
pub fn logged_in(nick: &str) -> String {
    format!("*** you are now {nick} (logged in)")
}

/// To a connection whose nick's owner logged in on another.
pub fn logged_in_elsewhere(nick: &str, guest: &str) -> String {
    format!("*** {nick} logged in elsewhere; you are now {guest}")
}

/// After the welcome line, on a server with `--password-file`.
pub const PASSWORD_NEEDED: &str = "*** this server needs a password: /pass PASSWORD";
/// Anything but `/pass`, `/quit` and `.` before the password.
pub const PASS_FIRST: &str = "error: /pass PASSWORD first";
pub const WRONG_PASSWORD: &str = "error: wrong password";
/// Before the answer to a password sent over plain TCP from afar.
pub const PLAIN_TEXT_PASSWORD: &str =
    "*** note: your password crossed the network in plain text; use TLS (chat-client --tls)";

/// An address that gave too many wrong passwords, for `wait` more.
pub fn too_many_wrong(wait: std::time::Duration) -> String {
    format!(
        "error: too many wrong passwords; try again in {} s",
        wait.as_secs().max(1)
    )
}

/// The link is back, and `lost` lines said here while it was down (past
/// `--link-buffer`) never reached the other servers.
pub fn link_restored(lost: u64) -> String {
    match lost {
        0 => LINK_RESTORED.to_string(),
        1 => format!("{LINK_RESTORED}; 1 line said meanwhile was lost"),
        _ => format!("{LINK_RESTORED}; {lost} lines said meanwhile were lost"),
    }
}

/// The last line of every leave (`/quit`, `.`, end of input), so the
/// leaver can tell a leave from a cut-off.
pub const BYE: &str = "*** bye";
/// Told to every member when the server is shutting down.
pub const SHUTTING_DOWN: &str = "*** server shutting down";
/// The last line of the greeting.
/// Ends a relayed line cut short: escaped, it was longer than the server
/// takes (`--max-line-bytes`).
pub const CUT: &str = " [cut]";

pub const HOW_TO_TALK: &str = "*** type to talk; /help for commands; \".\" or /quit to leave";
/// The answer to `/help`.
pub const HELP: [&str; 10] = [
    "*** /nick NAME        change your nick",
    "*** /join ROOM        move to #ROOM (it exists while it has members); /j too",
    "*** /part             back to the room everyone starts in",
    "*** /who              who is in this room; /names too",
    "*** /rooms            every room and how many are in it; /list too",
    "*** /me TEXT          say that you do something: * NICK TEXT",
    "*** /msg NICK TEXT    send TEXT to NICK only; /query too",
    "*** /quit [REASON]    leave; \".\" also leaves",
    "*** //TEXT            say TEXT starting with one /",
    "*** /help             this list",
];

pub const BAD_NICK: &str = "error: a nick is 1-24 letters, digits, - or _, starting with a letter";
pub const BAD_ROOM: &str = "error: a room name is 1-32 of a-z 0-9 - _";
pub const ME_NEEDS_TEXT: &str = "error: /me needs text";
pub const NICK_NEEDS_NAME: &str = "error: /nick needs a name";
pub const JOIN_NEEDS_ROOM: &str = "error: /join needs a room";

/// `/part` in the default room itself.
pub fn already_in_default_room(room: &str) -> String {
    format!("error: you are in #{room}, the default room")
}
pub const MSG_NEEDS_TEXT: &str = "error: /msg needs a nick and text";

/// Written before another member's line: `<NICK> `.
pub fn said_prefix(out: &mut BytesMut, nick: &str) {
    out.extend_from_slice(b"<");
    out.extend_from_slice(nick.as_bytes());
    out.extend_from_slice(b"> ");
}

/// Written before another member's `/me` text: `* NICK `.
pub fn action_prefix(out: &mut BytesMut, nick: &str) {
    out.extend_from_slice(b"* ");
    out.extend_from_slice(nick.as_bytes());
    out.extend_from_slice(b" ");
}

/// Written before a private message to its receiver: `*SENDER* `.
pub fn private_prefix(out: &mut BytesMut, sender: &str) {
    out.extend_from_slice(b"*");
    out.extend_from_slice(sender.as_bytes());
    out.extend_from_slice(b"* ");
}

/// Written before a private message's copy to its sender: `-> *NICK* `.
pub fn private_sent_prefix(out: &mut BytesMut, receiver: &str) {
    out.extend_from_slice(b"-> ");
    private_prefix(out, receiver);
}

pub fn welcome(room: &str, nick: &str) -> String {
    format!("*** welcome to #{room}, you are {nick}")
}

/// `*** here: a, b, c (3)`, naming the first [`HERE_NAMES`] of `names`
/// (and how many more there are) out of `total`.
pub fn here<'a>(names: impl Iterator<Item = &'a str>, total: usize) -> String {
    let mut line = String::from("*** here: ");
    let mut named = 0;
    for name in names.take(HERE_NAMES) {
        if named > 0 {
            line.push_str(", ");
        }
        line.push_str(name);
        named += 1;
    }
    if total > named {
        let _ = write!(line, " and {} more", total - named);
    }
    let _ = write!(line, " ({total})");
    line
}

/// Before a room's recent lines, on joining it: `*** recent in #ROOM (N
/// lines since YYYY-MM-DD HH:MM UTC):`, `since` the time of the oldest.
pub fn recent_lines(room: &str, count: usize, since: &str) -> String {
    let lines = if count == 1 { "line" } else { "lines" };
    format!("*** recent in #{room} ({count} {lines} since {since}):")
}

/// After a room's recent lines.
pub const RECENT_END: &str = "*** end of recent lines";

pub fn joined(nick: &str) -> String {
    format!("*** {nick} joined")
}

/// `*** NICK left`, or `*** NICK left (WHY)`.
pub fn left(nick: &str, why: Option<&str>) -> String {
    match why {
        Some(why) => format!("*** {nick} left ({why})"),
        None => format!("*** {nick} left"),
    }
}

/// Why a member left, as the room is told: `(to #ROOM)`.
pub fn to_room(room: &str) -> String {
    format!("to #{room}")
}

/// Why a member left, when its connection ended on a limit.
pub const LEFT_TOO_SLOW: &str = "too slow";
pub const LEFT_LINE_TOO_LONG: &str = "line too long";
pub const LEFT_IDLE: &str = "idle";
pub const LEFT_CONNECTION_LOST: &str = "connection lost";

pub fn you_are_now(nick: &str) -> String {
    format!("*** you are now {nick}")
}

pub fn renamed(old: &str, new: &str) -> String {
    format!("*** {old} is now {new}")
}

pub fn you_are_in(room: &str) -> String {
    format!("*** you are in #{room}")
}

/// `/who`'s answer: `*** here in #ROOM (N): a, b, c`, in lines of at most
/// [`MAX_LIST_LINE`] bytes.
pub fn who<'a>(room: &str, names: impl Iterator<Item = &'a str>, total: usize) -> Vec<String> {
    list_lines(&format!("*** here in #{room} ({total}): "), names)
}

/// `/rooms`' answer: `*** rooms: #lobby (3), #rust (2)`, in lines of at
/// most [`MAX_LIST_LINE`] bytes.
pub fn rooms<'a>(rooms: impl Iterator<Item = (&'a str, usize)>) -> Vec<String> {
    let entries: Vec<String> = rooms
        .map(|(name, members)| format!("#{name} ({members})"))
        .collect();
    list_lines("*** rooms: ", entries.iter().map(String::as_str))
}

/// `items` after `start`, comma-separated, in as many lines as keep each
/// within [`MAX_LIST_LINE`] bytes; every line starts with `start`.
fn list_lines<'a>(start: &str, items: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::from(start);
    for item in items {
        let fresh = line.len() == start.len();
        if !fresh && line.len() + 2 + item.len() > MAX_LIST_LINE {
            lines.push(std::mem::replace(&mut line, String::from(start)));
        } else if !fresh {
            line.push_str(", ");
        }
        line.push_str(item);
    }
    lines.push(line);
    lines
}

/// `name` is a valid nick (a check made before any text is built).
pub fn nick_taken(name: &str) -> String {
    format!("error: nick \"{name}\" is taken")
}

/// `name` as typed, escaped.
pub fn no_such_nick(name: &str) -> String {
    format!("error: no such nick \"{name}\"")
}

/// `/msg NICK` when NICK is on no server of the sender's but on several
/// others, each named as `NICK@NODE`.
pub fn on_several_servers<'a>(nick: &str, members: impl Iterator<Item = &'a str>) -> String {
    let members: Vec<&str> = members.collect();
    format!(
        "error: \"{nick}\" is on several servers: {}",
        members.join(", ")
    )
}

/// `command` as typed, escaped.
pub fn unknown_command(command: &str) -> String {
    format!("error: unknown command \"{command}\"; /help lists commands")
}

/// Sent before closing a member past `--sendq`.
pub fn too_slow(sendq: usize) -> String {
    format!("error: too slow: more than {sendq} bytes unread")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn here_names_at_most_fifty() {
        assert_eq!(
            here(["alice", "bob", "guest1"].into_iter(), 3),
            "*** here: alice, bob, guest1 (3)"
        );
        let names: Vec<String> = (0..60).map(|n| format!("n{n}")).collect();
        let line = here(names.iter().map(String::as_str), 60);
        assert!(line.ends_with(", n49 and 10 more (60)"), "{line}");
        assert!(!line.contains("n50"));
    }

    #[test]
    fn lists_wrap_within_the_limit_and_lose_nothing() {
        let names: Vec<String> = (0..300).map(|n| format!("member{n}")).collect();
        let lines = who("lobby", names.iter().map(String::as_str), 300);
        assert!(lines.len() > 1);
        let mut seen = Vec::new();
        for line in &lines {
            assert!(line.len() <= MAX_LIST_LINE, "{} bytes", line.len());
            let rest = line.strip_prefix("*** here in #lobby (300): ").unwrap();
            seen.extend(rest.split(", ").map(str::to_string));
        }
        assert_eq!(seen, names);
        assert_eq!(
            rooms([("lobby", 3), ("rust", 2)].into_iter()),
            ["*** rooms: #lobby (3), #rust (2)"]
        );
    }

    #[test]
    fn errors_start_as_errors() {
        for line in [
            BAD_NICK.to_string(),
            BAD_ROOM.to_string(),
            ME_NEEDS_TEXT.to_string(),
            MSG_NEEDS_TEXT.to_string(),
            nick_taken("bob"),
            no_such_nick("x"),
            on_several_servers("x", ["x@a", "x@b"].into_iter()),
            unknown_command("/foo"),
            too_slow(1),
        ] {
            assert!(line.as_bytes().starts_with(crate::protocol::ERROR_PREFIX));
        }
        assert_eq!(
            unknown_command("/foo"),
            "error: unknown command \"/foo\"; /help lists commands"
        );
    }
}
