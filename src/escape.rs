//! Text made terminal-safe: a member's line can never move another
//! member's cursor, change its colours, or forge a line of its own; and
//! what `chat-client` shows on a terminal is shown the same way.

use std::fmt::Write;

use bytes::BytesMut;

use crate::protocol::chat as text;

/// Appends `text` to `out` with every C0 control byte but TAB, DEL, every
/// C1 control and every byte that is not part of valid UTF-8 written as
/// `\xNN`, and the invisible format characters that can reorder or hide
/// text written `\u{XXXX}`. Valid UTF-8 otherwise passes unchanged (`é`
/// stays `é`).
///
/// What `text` becomes is cut to at most `limit` bytes, ending in
/// [`text::CUT`]: escaping can make a line four times as long, and no
/// member is sent a line longer than the server takes.
pub fn escape_into(out: &mut BytesMut, text: &[u8], limit: usize) {
    // Most lines are plain printable ASCII: one pass to check, one copy.
    if text.len() <= limit && text.iter().all(|&byte| is_plain_ascii(byte)) {
        out.extend_from_slice(text);
        return;
    }
    let start = out.len();
    escape_all(out, text);
    if out.len() - start > limit {
        cut(out, start, limit);
    }
}

/// Cuts what was escaped from `start` on to `limit` bytes, marker
/// included, on a character boundary.
fn cut(out: &mut BytesMut, start: usize, limit: usize) {
    let mut end = start + limit.saturating_sub(text::CUT.len());
    while end > start && out[end] & 0xC0 == 0x80 {
        end -= 1;
    }
    out.truncate(end);
    out.extend_from_slice(text::CUT.as_bytes());
}

fn escape_all(out: &mut BytesMut, text: &[u8]) {
    if text.iter().all(|&byte| is_plain_ascii(byte)) {
        out.extend_from_slice(text);
        return;
    }
    for chunk in text.utf8_chunks() {
        for character in chunk.valid().chars() {
            let code = u32::from(character);
            if code < 0x80 && !is_plain_ascii(code as u8) || (0x80..0xA0).contains(&code) {
                let mut encoded = [0; 4];
                for &byte in character.encode_utf8(&mut encoded).as_bytes() {
                    write_hex(out, byte);
                }
            } else if is_invisible_format(code) {
                // Four hex digits: every one of them is below U+10000.
                let _ = write!(Writer(out), "\\u{{{code:04X}}}");
            } else {
                let mut encoded = [0; 4];
                out.extend_from_slice(character.encode_utf8(&mut encoded).as_bytes());
            }
        }
        for &byte in chunk.invalid() {
            write_hex(out, byte);
        }
    }
}

/// `text` escaped, as a string (for notices that quote what a member typed).
pub fn escaped(text: &[u8]) -> String {
    let mut out = BytesMut::with_capacity(text.len());
    escape_all(&mut out, text);
    // Escaping leaves only valid UTF-8: invalid bytes became `\xNN`.
    String::from_utf8(out.to_vec()).unwrap_or_default()
}

/// The characters that reorder or hide text on a terminal: the bidi
/// embeddings, overrides and isolates, the bidi marks, the line and
/// paragraph separators, the zero-width space and the byte-order mark. The
/// joiners (U+200C, U+200D) pass: scripts and emoji need them.
fn is_invisible_format(code: u32) -> bool {
    matches!(
        code,
        0x200B | 0x200E | 0x200F | 0x2028..=0x202E | 0x2066..=0x2069 | 0xFEFF
    )
}

/// `BytesMut` as a `fmt::Write`, for the `\u{XXXX}` form.
struct Writer<'a>(&'a mut BytesMut);

impl std::fmt::Write for Writer<'_> {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        self.0.extend_from_slice(text.as_bytes());
        Ok(())
    }
}

/// Printable ASCII or TAB: passes as it is.
fn is_plain_ascii(byte: u8) -> bool {
    (0x20..0x7F).contains(&byte) || byte == b'\t'
}

fn write_hex(out: &mut BytesMut, byte: u8) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    out.extend_from_slice(&[
        b'\\',
        b'x',
        DIGITS[usize::from(byte >> 4)],
        DIGITS[usize::from(byte & 0xF)],
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn escape(text: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        escape_into(&mut out, text, usize::MAX);
        out.to_vec()
    }

    #[test]
    fn what_escaping_makes_longer_is_cut_at_the_limit() {
        let mut out = BytesMut::from(&b"<x> "[..]);
        escape_into(&mut out, &[0x01; 100], 40);
        assert_eq!(out.len(), 4 + 40);
        assert!(out.ends_with(text::CUT.as_bytes()), "{out:?}");
        let mut out = BytesMut::new();
        escape_into(&mut out, "é".repeat(50).as_bytes(), 21);
        let out = std::str::from_utf8(&out).expect("cut on a character boundary");
        assert!(out.len() <= 21, "{out}");
        assert!(out.ends_with(text::CUT), "{out}");
        let mut out = BytesMut::new();
        escape_into(&mut out, b"short", 40);
        assert_eq!(&out[..], b"short");
    }

    #[test]
    fn controls_and_invalid_bytes_are_written_as_hex() {
        assert_eq!(escape(b"hello\tworld"), b"hello\tworld");
        assert_eq!(
            escape("caf\u{e9} \u{1F600}".as_bytes()),
            "caf\u{e9} \u{1F600}".as_bytes()
        );
        assert_eq!(escape(b"a\rb\x1b[2Jc\x7f\0"), br"a\x0Db\x1B[2Jc\x7F\x00");
        assert_eq!(escape(b"\xff\xfeok"), br"\xFF\xFEok");
        // U+0085 (NEL) and U+009B (CSI) are C1 controls.
        assert_eq!(escape("x\u{85}\u{9b}".as_bytes()), br"x\xC2\x85\xC2\x9B");
        // A lone lead byte is invalid; the ASCII after it is not swallowed.
        assert_eq!(escape(b"\xc3("), br"\xC3(");
        assert_eq!(escaped(b"\n"), r"\x0A");
    }

    #[test]
    fn invisible_format_characters_are_written_as_code_points() {
        let text = "a\u{202E}b\u{2066}c\u{200F}d\u{2028}e\u{200B}f\u{FEFF}g";
        assert_eq!(
            escaped(text.as_bytes()),
            r"a\u{202E}b\u{2066}c\u{200F}d\u{2028}e\u{200B}f\u{FEFF}g"
        );
        // The joiners stay: emoji and scripts need them.
        let family = "\u{1F468}\u{200D}\u{1F469}\u{200C}";
        assert_eq!(escaped(family.as_bytes()), family);
    }

    proptest! {
        /// Whatever a member sends, what others receive is valid UTF-8 with
        /// no control character but TAB, and says every plain byte as sent.
        #[test]
        fn relayed_text_is_terminal_safe(text in proptest::collection::vec(any::<u8>(), 0..64)) {
            let out = escape(&text);
            let out = std::str::from_utf8(&out).expect("valid UTF-8");
            prop_assert!(out.chars().all(|c| c == '\t' || !c.is_control()));
            prop_assert!(!out.chars().any(|c| is_invisible_format(u32::from(c))));
            if text.iter().all(|&b| is_plain_ascii(b)) {
                prop_assert_eq!(out.as_bytes(), &text[..]);
            }
        }
    }
}
