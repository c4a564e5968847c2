//! How chat mode is run: `--room`, `--sendq`, `--max-rate`, `--history`,
//! `--history-bytes`, `--link`.

use super::history;
use crate::link;

pub const DEFAULT_ROOM: &str = "lobby";
/// `--sendq`: what may wait for a member before it is cut as too slow.
pub const DEFAULT_SENDQ: usize = 256 * 1024;
/// `--max-rate`: lines a second a member may send, in bursts of as many.
pub const DEFAULT_MAX_RATE: u32 = 20;

/// How chat mode is run.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where members start (a valid room name, folded).
    pub room: String,
    /// Bytes that may wait for a member before it is cut.
    pub sendq: usize,
    /// Lines a second a member may send; `None` for no limit.
    pub max_rate: Option<u32>,
    /// `--history` and `--history-bytes`: what each room keeps.
    pub history: history::Limits,
    /// `--link` and `--node`: other servers to be one chat with.
    pub link: Option<link::LinkSettings>,
    /// `--password-file`: the Argon2id hash of the server's password.
    pub password: Option<std::sync::Arc<str>>,
    /// `--data-dir`: where the accounts are kept.
    pub data_dir: Option<std::path::PathBuf>,
    /// `--op NICK`: registered nicks (folded) that are operators once
    /// logged in.
    pub operators: Vec<String>,
}

/// Every default, as `chat-server --chat` runs without the chat flags.
impl Default for Settings {
    fn default() -> Self {
        Self {
            room: DEFAULT_ROOM.to_string(),
            sendq: DEFAULT_SENDQ,
            max_rate: Some(DEFAULT_MAX_RATE),
            history: history::Limits::default(),
            link: None,
            password: None,
            data_dir: None,
            operators: Vec::new(),
        }
    }
}
