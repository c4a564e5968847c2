//! How a line ends, and how that is written on the command line
//! (`--delimiter`): `crlf`, `lf`, `lenient`, or a literal string with
//! escapes.

use std::fmt;
use std::str::FromStr;

/// How a line ends: the bytes searched for in what is received, and the
/// bytes written after each line sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delimiter {
    /// Never empty: an empty delimiter would make every position a line end.
    line_end: Box<[u8]>,
    /// Lenient: a CR just before the line end is not part of the line, and
    /// lines sent end with CRLF.
    lenient: bool,
}

impl Delimiter {
    /// `\r\n`, the protocol's default.
    pub fn crlf() -> Self {
        Self::exact(b"\r\n")
    }

    /// `\n`, as in text files and on a terminal.
    pub fn lf() -> Self {
        Self::exact(b"\n")
    }

    /// A line ends at LF, and a CR just before it is dropped; lines sent end
    /// with CRLF. What `nc` without `-C`, `telnet` and scripts all work with.
    pub fn lenient() -> Self {
        Self {
            line_end: Box::from(&b"\n"[..]),
            lenient: true,
        }
    }

    /// A delimiter made of exactly these bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, DelimiterError> {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return Err(DelimiterError::Empty);
        }
        Ok(Self {
            line_end: bytes.into_boxed_slice(),
            lenient: false,
        })
    }

    fn exact(bytes: &[u8]) -> Self {
        Self {
            line_end: Box::from(bytes),
            lenient: false,
        }
    }

    /// The bytes that end a line received.
    pub fn line_end(&self) -> &[u8] {
        &self.line_end
    }

    /// The bytes written after each line sent.
    pub fn written(&self) -> &[u8] {
        if self.lenient {
            b"\r\n"
        } else {
            &self.line_end
        }
    }

    /// Whether a CR just before the line end is dropped from the line.
    pub fn drops_cr(&self) -> bool {
        self.lenient
    }
}

/// Parses the command-line form: `crlf`, `lf`, `lenient`, or a literal
/// string with the escapes `\r \n \t \0 \\ \xNN`.
impl FromStr for Delimiter {
    type Err = DelimiterError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "crlf" | "CRLF" => return Ok(Self::crlf()),
            "lf" | "LF" => return Ok(Self::lf()),
            "lenient" => return Ok(Self::lenient()),
            _ => {}
        }
        let mut bytes = Vec::with_capacity(text.len());
        let mut rest = text.as_bytes();
        while let Some((&byte, after)) = rest.split_first() {
            rest = after;
            if byte != b'\\' {
                bytes.push(byte);
                continue;
            }
            let Some((&escape, after)) = rest.split_first() else {
                return Err(DelimiterError::TrailingBackslash);
            };
            rest = after;
            bytes.push(match escape {
                b'r' => b'\r',
                b'n' => b'\n',
                b't' => b'\t',
                b'0' => 0,
                b'\\' => b'\\',
                b'x' => {
                    // Two hex digits exactly: `from_str_radix` alone would
                    // also take a sign (`\x+a`).
                    let hex = rest
                        .get(..2)
                        .filter(|digits| digits.iter().all(u8::is_ascii_hexdigit))
                        .and_then(|digits| {
                            u8::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
                        });
                    let Some(value) = hex else {
                        return Err(DelimiterError::BadHexEscape);
                    };
                    rest = &rest[2..];
                    value
                }
                other => return Err(DelimiterError::UnknownEscape(char::from(other))),
            });
        }
        Self::new(bytes)
    }
}

/// Why a `--delimiter` value was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DelimiterError {
    Empty,
    TrailingBackslash,
    BadHexEscape,
    UnknownEscape(char),
}

impl fmt::Display for DelimiterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "the delimiter must not be empty"),
            Self::TrailingBackslash => write!(f, "a backslash must be followed by an escape"),
            Self::BadHexEscape => write!(f, "\\x must be followed by two hex digits"),
            Self::UnknownEscape(c) => {
                write!(
                    f,
                    "unknown escape \\{c} (known: \\r \\n \\t \\0 \\\\ \\xNN)"
                )
            }
        }
    }
}

impl std::error::Error for DelimiterError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_delimiters_from_the_command_line() {
        let parse = |text: &str| text.parse::<Delimiter>().map(|d| d.line_end().to_vec());
        assert_eq!(parse("crlf"), Ok(b"\r\n".to_vec()));
        assert_eq!(parse("lf"), Ok(b"\n".to_vec()));
        assert_eq!(parse(r"\r\n"), Ok(b"\r\n".to_vec()));
        assert_eq!(parse(r"\t\0\\"), Ok(b"\t\0\\".to_vec()));
        assert_eq!(parse(r"\x1e"), Ok(vec![0x1e]));
        assert_eq!(parse(r"end\xFF"), Ok(b"end\xff".to_vec()));
        assert_eq!(parse(""), Err(DelimiterError::Empty));
        assert_eq!(parse("\\"), Err(DelimiterError::TrailingBackslash));
        assert_eq!(parse(r"\x1"), Err(DelimiterError::BadHexEscape));
        assert_eq!(parse(r"\xZZ"), Err(DelimiterError::BadHexEscape));
        assert_eq!(parse(r"\x+a"), Err(DelimiterError::BadHexEscape));
        assert_eq!(parse(r"\x-1"), Err(DelimiterError::BadHexEscape));
        assert_eq!(parse("\\x\u{e9}"), Err(DelimiterError::BadHexEscape));
        assert_eq!(parse(r"\q"), Err(DelimiterError::UnknownEscape('q')));
    }

    #[test]
    fn lenient_ends_at_lf_and_writes_crlf() {
        let lenient: Delimiter = "lenient".parse().unwrap();
        assert_eq!(lenient.line_end(), b"\n");
        assert_eq!(lenient.written(), b"\r\n");
        assert!(lenient.drops_cr());
        let crlf = Delimiter::crlf();
        assert_eq!(
            (crlf.line_end(), crlf.written()),
            (&b"\r\n"[..], &b"\r\n"[..])
        );
        assert!(!crlf.drops_cr());
    }
}
