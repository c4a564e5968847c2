//! `--color`: the kinds of chat lines told apart on the screen. A nick in
//! `<nick>`, `* nick` and `*nick*` has a colour of its own (the same nick,
//! the same colour); `***` notices are dimmed, `error:` lines red, private
//! messages bold. Never on a pipe.

/// `--color auto|always|never`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorMode {
    /// On a terminal, unless `NO_COLOR` is set.
    #[default]
    Auto,
    Always,
    Never,
}

impl ColorMode {
    /// Whether the screen gets colour (the editor runs only on a terminal).
    pub fn wanted(self) -> bool {
        match self {
            ColorMode::Always => true,
            ColorMode::Never => false,
            ColorMode::Auto => std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty()),
        }
    }
}

const RESET: &str = "\x1b[0m";
const DIM: &str = "\x1b[2m";
const RED: &str = "\x1b[31m";
const BOLD: &str = "\x1b[1m";
/// Nick colours: green, yellow, blue, magenta, cyan and their bright forms
/// (red is for errors).
const NICK_COLOURS: [&str; 10] = [
    "\x1b[32m", "\x1b[33m", "\x1b[34m", "\x1b[35m", "\x1b[36m", "\x1b[92m", "\x1b[93m", "\x1b[94m",
    "\x1b[95m", "\x1b[96m",
];

/// Appends `line` (already terminal-safe) to `out`, coloured by its kind.
pub(super) fn paint(line: &str, out: &mut String) {
    if line.starts_with("***") {
        wrap(out, DIM, line);
    } else if line.starts_with("error:") {
        wrap(out, RED, line);
    } else if let Some(rest) = line.strip_prefix('<')
        && let Some((nick, text)) = rest.split_once("> ")
    {
        out.push('<');
        wrap(out, nick_colour(nick), nick);
        out.push_str("> ");
        out.push_str(text);
    } else if let Some(rest) = line.strip_prefix("* ")
        && let Some((nick, text)) = rest.split_once(' ')
    {
        out.push_str("* ");
        wrap(out, nick_colour(nick), nick);
        out.push(' ');
        out.push_str(text);
    } else if let Some((sent, nick, text)) = private(line) {
        out.push_str(sent);
        out.push('*');
        wrap(out, nick_colour(nick), nick);
        out.push_str("* ");
        wrap(out, BOLD, text);
    } else {
        out.push_str(line);
    }
}

/// `*nick* text` (received) or `-> *nick* text` (sent): the arrow, the
/// nick and the text.
fn private(line: &str) -> Option<(&str, &str, &str)> {
    let (sent, rest) = match line.strip_prefix("-> ") {
        Some(rest) => ("-> ", rest),
        None => ("", line),
    };
    let (nick, text) = rest.strip_prefix('*')?.split_once("* ")?;
    (!nick.is_empty() && !nick.contains(' ')).then_some((sent, nick, text))
}

fn wrap(out: &mut String, colour: &str, text: &str) {
    out.push_str(colour);
    out.push_str(text);
    out.push_str(RESET);
}

/// The same nick, the same colour, in every run (nicks are
/// case-insensitive): FNV-1a of the folded nick picks it.
fn nick_colour(nick: &str) -> &'static str {
    let hash = nick.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte.to_ascii_lowercase())).wrapping_mul(0x0100_0000_01b3)
    });
    NICK_COLOURS[(hash % NICK_COLOURS.len() as u64) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn painted(line: &str) -> String {
        let mut out = String::new();
        paint(line, &mut out);
        out
    }

    #[test]
    fn each_kind_of_line_has_its_look() {
        let alice = nick_colour("alice");
        assert_eq!(painted("<alice> hi"), format!("<{alice}alice{RESET}> hi"));
        assert_eq!(
            painted("* alice waves"),
            format!("* {alice}alice{RESET} waves")
        );
        assert_eq!(
            painted("*alice* psst"),
            format!("*{alice}alice{RESET}* {BOLD}psst{RESET}")
        );
        assert_eq!(
            painted("-> *alice* psst"),
            format!("-> *{alice}alice{RESET}* {BOLD}psst{RESET}")
        );
        assert_eq!(
            painted("*** bob joined"),
            format!("{DIM}*** bob joined{RESET}")
        );
        assert_eq!(painted("error: no"), format!("{RED}error: no{RESET}"));
        assert_eq!(painted("You sent: x"), "You sent: x");
        // The same nick, the same colour, whatever its case.
        assert_eq!(nick_colour("Alice"), alice);
    }
}
