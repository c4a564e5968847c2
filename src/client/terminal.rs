//! `chat-client` on a terminal: a line editor (rustyline), so the line
//! being typed stays whole on the last row while replies print above it.
//! The pipe path (`stdin.rs`, `stdout.rs`) is untouched; this one shares
//! its line cutting and the exchange with the server.
//!
//! The editor reads the terminal in a blocking call on a thread of its
//! own. That thread is never waited for: when the server closes, the
//! terminal is restored from the state saved at start and the process
//! exits past the thread, as it does past a blocked read of stdin.

mod colour;
mod editor;
mod screen;

use std::io::{self, IsTerminal};

pub use colour::ColorMode;
pub(super) use editor::spawn_editor;
pub(super) use screen::Screen;

/// Whether `chat-client` is a line editor here: stdin and stdout are both
/// terminals and `--plain` was not given.
pub(super) fn wanted(plain: bool) -> bool {
    !plain && io::stdin().is_terminal() && io::stdout().is_terminal()
}

/// The terminal's settings as found at start, put back on the way out
/// (and by SIGTERM or SIGHUP), whatever the editor's thread is doing.
#[derive(Clone, Copy)]
pub(super) struct Saved(libc::termios);

impl Saved {
    /// The settings of stdin's terminal now.
    pub(super) fn now() -> Option<Saved> {
        // SAFETY: a zeroed termios is a valid place for tcgetattr to fill.
        let mut settings: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: fd 0 is open; `settings` is a valid termios to fill.
        let read = unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut settings) };
        (read == 0).then_some(Saved(settings))
    }

    /// Puts the settings back, and leaves the cursor at the start of a
    /// fresh row below what was typed.
    pub(super) fn restore(&self) {
        // SAFETY: `self.0` came from tcgetattr on the same descriptor.
        unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.0) };
        use std::io::Write;
        let _ = io::stdout().write_all(b"\r\n");
        let _ = io::stdout().flush();
    }

    /// Restores the terminal on SIGTERM or SIGHUP, then exits as killed
    /// by it (128 + the signal).
    pub(super) fn restore_on_signals(self) -> anyhow::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut hangup = signal(SignalKind::hangup())?;
        tokio::spawn(async move {
            let number = tokio::select! {
                _ = terminate.recv() => libc::SIGTERM,
                _ = hangup.recv() => libc::SIGHUP,
            };
            self.restore();
            std::process::exit(128 + number);
        });
        Ok(())
    }
}
