//! What a nick and a room name may be, and when two are the same: both are
//! case-insensitive, so each has a folded form used as its key.

use std::borrow::Cow;

/// The longest nick, and the longest room name.
pub const MAX_NICK_BYTES: usize = 24;
pub const MAX_ROOM_BYTES: usize = 32;
/// The longest node name (`--node`).
pub const MAX_NODE_BYTES: usize = 32;

/// A nick as the member chose it (`Alice`): 1-24 ASCII letters, digits,
/// `-` or `_`, starting with a letter. `None` if `text` is not one.
pub fn nick(text: &[u8]) -> Option<&str> {
    let valid = (1..=MAX_NICK_BYTES).contains(&text.len())
        && text[0].is_ascii_alphabetic()
        && text.iter().all(|&byte| is_name_byte(byte));
    // Only ASCII passed the check, so the text is UTF-8.
    valid.then(|| std::str::from_utf8(text).ok()).flatten()
}

/// A room name, `#` optional, folded to lower case (`#Rust` is `rust`):
/// 1-32 of a-z, 0-9, `-` and `_`. `None` if `text` is not one.
pub fn room(text: &[u8]) -> Option<String> {
    let name = text.strip_prefix(b"#").unwrap_or(text);
    let valid =
        (1..=MAX_ROOM_BYTES).contains(&name.len()) && name.iter().all(|&byte| is_name_byte(byte));
    valid.then(|| String::from_utf8_lossy(name).to_ascii_lowercase())
}

/// The key under which a nick is unique: `Alice` and `alice` are one nick.
/// `text` as a node name (`--node`, and the node of every linked event):
/// 1-32 letters, digits, `-` or `_`.
pub fn node(text: &[u8]) -> Option<&str> {
    let valid =
        (1..=MAX_NODE_BYTES).contains(&text.len()) && text.iter().all(|&byte| is_name_byte(byte));
    valid.then(|| std::str::from_utf8(text).ok()).flatten()
}

pub fn fold(nick: &str) -> Cow<'_, str> {
    if nick.bytes().any(|byte| byte.is_ascii_uppercase()) {
        Cow::Owned(nick.to_ascii_lowercase())
    } else {
        Cow::Borrowed(nick)
    }
}

fn is_name_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nicks() {
        assert_eq!(nick(b"Alice"), Some("Alice"));
        assert_eq!(nick(b"a-b_9"), Some("a-b_9"));
        assert_eq!(nick(&[b'a'; 24]), Some("aaaaaaaaaaaaaaaaaaaaaaaa"));
        for refused in [
            &b""[..],
            &[b'a'; 25],
            b"9lives",
            b"-x",
            b"a b",
            b"caf\xc3\xa9",
            b"a.b",
        ] {
            assert_eq!(
                nick(refused),
                None,
                "{:?}",
                String::from_utf8_lossy(refused)
            );
        }
        assert_eq!(fold("Alice"), "alice");
    }

    #[test]
    fn rooms() {
        assert_eq!(room(b"#Rust").as_deref(), Some("rust"));
        assert_eq!(room(b"lobby").as_deref(), Some("lobby"));
        assert_eq!(room(b"9-_x").as_deref(), Some("9-_x"));
        for refused in [&b""[..], b"#", &[b'r'; 33], b"a b", b"##x", b"a.b"] {
            assert_eq!(
                room(refused),
                None,
                "{:?}",
                String::from_utf8_lossy(refused)
            );
        }
    }
}
