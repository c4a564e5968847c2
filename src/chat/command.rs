//! What a member's line asks for: a chat line, a command, or leaving. Pure
//! parsing on byte slices; what each one does is the member's and the
//! hub's.

use crate::protocol::QUIT_LINE;
use crate::protocol::chat::COMMAND_PREFIX;

/// One line from a member, parsed. Arguments are the bytes as sent.
#[derive(Debug, PartialEq, Eq)]
pub enum Input<'a> {
    /// Nothing to do: an empty line.
    Nothing,
    /// Text for the room (`//text` arrives here as `/text`).
    Say(&'a [u8]),
    /// `/me TEXT`.
    Action(&'a [u8]),
    /// `/nick NAME`.
    Nick(&'a [u8]),
    /// `/join ROOM` (`/j`).
    Join(&'a [u8]),
    /// `/part`: back to the default room.
    Part,
    /// `/who` (`/names`).
    Who,
    /// `/rooms` (`/list`).
    Rooms,
    /// `/msg NICK TEXT` (`/query`).
    Message {
        to: &'a [u8],
        text: &'a [u8],
    },
    /// `/quit [REASON]`.
    Quit(Option<&'a [u8]>),
    /// The `.` line, which also leaves.
    QuitLine,
    /// `/pass PASSWORD`: the server's password, before anything else.
    Pass(&'a [u8]),
    /// `/kick NICK [REASON]` (operators).
    Kick {
        nick: &'a [u8],
        reason: &'a [u8],
    },
    /// `/register PASSWORD`: the member's nick is theirs.
    Register(&'a [u8]),
    /// `/login NICK PASSWORD`.
    Login {
        nick: &'a [u8],
        password: &'a [u8],
    },
    /// `/password OLD NEW`.
    ChangePassword {
        old: &'a [u8],
        new: &'a [u8],
    },
    Help,
    /// A command nobody knows, as typed (`/foo`).
    Unknown(&'a [u8]),
}

impl<'a> Input<'a> {
    /// Parses one line (delimiter removed). Command names are
    /// case-insensitive; spaces around arguments do not count.
    pub fn parse(line: &'a [u8]) -> Self {
        if line.is_empty() {
            return Input::Nothing;
        }
        if line == QUIT_LINE {
            return Input::QuitLine;
        }
        let Some(command) = line.strip_prefix(&[COMMAND_PREFIX]) else {
            return Input::Say(line);
        };
        if command.first() == Some(&COMMAND_PREFIX) {
            return Input::Say(command);
        }
        let (name, rest) = split_word(command);
        let argument = trim(rest);
        let lower = name.to_ascii_lowercase();
        match lower.as_slice() {
            b"me" => Input::Action(argument),
            b"nick" => Input::Nick(argument),
            // IRC's names for the same commands work too.
            b"join" | b"j" => Input::Join(argument),
            b"part" => Input::Part,
            b"who" | b"names" => Input::Who,
            b"rooms" | b"list" => Input::Rooms,
            b"msg" | b"query" => {
                let (to, text) = split_word(argument);
                Input::Message {
                    to,
                    text: trim(text),
                }
            }
            b"quit" => Input::Quit((!argument.is_empty()).then_some(argument)),
            // The password as typed: spaces inside and around it count.
            b"pass" => Input::Pass(rest),
            b"register" => Input::Register(argument),
            b"kick" => {
                let (nick, reason) = split_word(argument);
                Input::Kick {
                    nick,
                    reason: trim(reason),
                }
            }
            b"login" => {
                let (nick, password) = split_word(argument);
                Input::Login { nick, password }
            }
            b"password" => {
                let (old, new) = split_word(argument);
                Input::ChangePassword { old, new }
            }
            b"help" => Input::Help,
            _ => Input::Unknown(&line[..=name.len()]),
        }
    }
}

/// The bytes up to the first space, and the rest after it.
fn split_word(text: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memchr(b' ', text) {
        Some(space) => (&text[..space], &text[space + 1..]),
        None => (text, &[]),
    }
}

fn trim(text: &[u8]) -> &[u8] {
    text.trim_ascii()
}

#[cfg(test)]
mod tests {
    use super::Input::*;
    use super::*;

    #[test]
    fn lines_and_commands() {
        assert_eq!(Input::parse(b""), Nothing);
        assert_eq!(Input::parse(b"."), QuitLine);
        assert_eq!(Input::parse(b".."), Say(b".."));
        assert_eq!(Input::parse(b" /who"), Say(b" /who"));
        assert_eq!(Input::parse(b"hello"), Say(b"hello"));
        assert_eq!(Input::parse(b"//who"), Say(b"/who"));
        assert_eq!(Input::parse(b"//"), Say(b"/"));
        assert_eq!(Input::parse(b"/me waves  "), Action(b"waves"));
        assert_eq!(Input::parse(b"/me"), Action(b""));
        assert_eq!(Input::parse(b"/ME  waves"), Action(b"waves"));
        assert_eq!(Input::parse(b"/nick Bob"), Nick(b"Bob"));
        assert_eq!(Input::parse(b"/join #rust"), Join(b"#rust"));
        assert_eq!(Input::parse(b"/who"), Who);
        assert_eq!(Input::parse(b"/rooms"), Rooms);
        assert_eq!(Input::parse(b"/j rust"), Join(b"rust"));
        assert_eq!(Input::parse(b"/NAMES"), Who);
        assert_eq!(Input::parse(b"/list"), Rooms);
        assert_eq!(Input::parse(b"/part"), Part);
        assert_eq!(
            Input::parse(b"/query bob hi"),
            Message {
                to: b"bob",
                text: b"hi"
            }
        );
        assert_eq!(
            Input::parse(b"/msg bob  psst there"),
            Message {
                to: b"bob",
                text: b"psst there"
            }
        );
        assert_eq!(Input::parse(b"/msg"), Message { to: b"", text: b"" });
        assert_eq!(Input::parse(b"/quit"), Quit(None));
        assert_eq!(Input::parse(b"/quit gone home"), Quit(Some(b"gone home")));
        assert_eq!(Input::parse(b"/help"), Help);
        assert_eq!(Input::parse(b"/foo bar"), Unknown(b"/foo"));
        assert_eq!(Input::parse(b"/meow"), Unknown(b"/meow"));
        assert_eq!(Input::parse(b"/"), Unknown(b"/"));
    }

    #[test]
    fn account_commands() {
        assert_eq!(Input::parse(b"/pass  two words "), Pass(b" two words "));
        assert_eq!(Input::parse(b"/register s3cret"), Register(b"s3cret"));
        assert_eq!(
            Input::parse(b"/login alice s3cret"),
            Login {
                nick: b"alice",
                password: b"s3cret"
            }
        );
        assert_eq!(
            Input::parse(b"/PASSWORD old new"),
            ChangePassword {
                old: b"old",
                new: b"new"
            }
        );
        assert_eq!(
            Input::parse(b"/kick bob  flooding the room"),
            Kick {
                nick: b"bob",
                reason: b"flooding the room"
            }
        );
    }

    /// Every argument `parse` hands out is part of the line it was given.
    fn within(line: &[u8], part: &[u8]) -> bool {
        let (start, end) = (line.as_ptr() as usize, line.as_ptr() as usize + line.len());
        let at = part.as_ptr() as usize;
        part.is_empty() || (start <= at && at + part.len() <= end)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]
        /// Whatever a member sends, parsing never panics, and what it
        /// hands out is the line's own bytes: a command word and its
        /// arguments, or the line itself.
        #[test]
        fn any_line_parses_into_parts_of_itself(
            line in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            command in proptest::sample::select(&["", "/", "//", "/me ", "/nick ", "/msg ",
                "/login ", "/password ", "/pass ", "/register ", "/kick ", "/quit ", "/JOIN "][..]),
        ) {
            let line = [command.as_bytes(), &line].concat();
            let parts: Vec<&[u8]> = match Input::parse(&line) {
                Say(text) | Action(text) | Nick(text) | Join(text) | Pass(text)
                | Register(text) | Unknown(text) => vec![text],
                Message { to, text } => vec![to, text],
                Login { nick, password } => vec![nick, password],
                ChangePassword { old, new } => vec![old, new],
                Kick { nick, reason } => vec![nick, reason],
                Quit(reason) => reason.into_iter().collect(),
                Nothing | QuitLine | Part | Who | Rooms | Help => vec![],
            };
            for part in parts {
                proptest::prop_assert!(within(&line, part), "{line:?}: {part:?}");
            }
        }
    }
}
