//! Relayed text made terminal-safe: a member's line can never move another
//! member's cursor, change its colours, or forge a line of its own.

use bytes::BytesMut;

/// Appends `text` to `out` with every C0 control byte but TAB, DEL, every
/// C1 control and every byte that is not part of valid UTF-8 written as
/// `\xNN`. Valid UTF-8 otherwise passes unchanged (`é` stays `é`).
pub fn escape_into(out: &mut BytesMut, text: &[u8]) {
    // Most lines are plain printable ASCII: one pass to check, one copy.
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
    escape_into(&mut out, text);
    // Escaping leaves only valid UTF-8: invalid bytes became `\xNN`.
    String::from_utf8(out.to_vec()).unwrap_or_default()
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
        escape_into(&mut out, text);
        out.to_vec()
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

    proptest! {
        /// Whatever a member sends, what others receive is valid UTF-8 with
        /// no control character but TAB, and says every plain byte as sent.
        #[test]
        fn relayed_text_is_terminal_safe(text in proptest::collection::vec(any::<u8>(), 0..64)) {
            let out = escape(&text);
            let out = std::str::from_utf8(&out).expect("valid UTF-8");
            prop_assert!(out.chars().all(|c| c == '\t' || !c.is_control()));
            if text.iter().all(|&b| is_plain_ascii(b)) {
                prop_assert_eq!(out.as_bytes(), &text[..]);
            }
        }
    }
}
