//! A real terminal for the client: a `tmux` session of 80 by 24 (Debian
//! package `tmux`), each test on a tmux server of its own. Keys are sent
//! with `send-keys`, the screen read with `capture-pane`; a wait for the
//! screen polls it, bounded like every wait.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::{command, within_for};

pub struct Tmux {
    socket: String,
    /// Where the session's shell writes `stty -g` before and after.
    dir: std::path::PathBuf,
}

impl Tmux {
    /// Runs `command_line` in a new 80x24 session; the shell around it
    /// saves `stty -g` before and after, and says `EXITED STATUS`.
    pub async fn start(command_line: &str) -> Tmux {
        static MADE: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "chat-test-{}-{}",
            std::process::id(),
            MADE.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.display();
        let script = format!(
            "stty -g > {d}/before; {command_line}; s=$?; stty -g > {d}/after; echo EXITED $s; sleep 600"
        );
        let tmux = Tmux { socket: name, dir };
        let status = tmux
            .run(&[
                "new-session",
                "-d",
                "-x",
                "80",
                "-y",
                "24",
                "-s",
                "test",
                &script,
            ])
            .await;
        assert!(
            status.success(),
            "tmux must be installed (Debian package tmux)"
        );
        tmux
    }

    async fn run(&self, args: &[&str]) -> std::process::ExitStatus {
        let output = within_for(
            Duration::from_secs(10),
            "tmux",
            command("tmux")
                .args(["-L", &self.socket, "-f", "/dev/null"])
                .args(args)
                .output(),
        )
        .await
        .unwrap_or_else(|error| panic!("tmux must be installed (Debian package tmux): {error}"));
        output.status
    }

    /// Types `keys` (tmux key names: `Enter`, `C-u`, `Left`, or text).
    pub async fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "test"];
        args.extend_from_slice(keys);
        assert!(self.run(&args).await.success());
    }

    /// Makes the window `columns` by `rows`.
    pub async fn resize(&self, columns: u16, rows: u16) {
        let (x, y) = (columns.to_string(), rows.to_string());
        assert!(
            self.run(&["resize-window", "-t", "test", "-x", &x, "-y", &y])
                .await
                .success()
        );
    }

    /// Types `text` as it is (`-l`: no key names).
    pub async fn type_text(&self, text: &str) {
        assert!(
            self.run(&["send-keys", "-t", "test", "-l", text])
                .await
                .success()
        );
    }

    /// The screen, as text (`with_escapes`: with its colours as escape
    /// sequences).
    pub async fn screen(&self, with_escapes: bool) -> String {
        let mut args = vec!["capture-pane", "-p", "-t", "test"];
        if with_escapes {
            args.push("-e");
        }
        let output = command("tmux")
            .args(["-L", &self.socket])
            .args(&args)
            .output()
            .await
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Waits until the screen satisfies `wanted`, and returns it. A screen
    /// says nothing when it changes: it is read every 20 ms until it does.
    pub async fn wait_for(&self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let mut every = tokio::time::interval(Duration::from_millis(20));
        within_for(Duration::from_secs(20), what, async {
            loop {
                every.tick().await;
                let screen = self.screen(false).await;
                if wanted(&screen) {
                    return screen;
                }
            }
        })
        .await
    }

    /// The last row with something on it: where the typed line is.
    pub async fn typed_row(&self) -> String {
        let screen = self.screen(false).await;
        screen
            .lines()
            .rev()
            .find(|row| !row.trim().is_empty())
            .unwrap_or("")
            .trim_end()
            .to_string()
    }

    /// The process the session's shell runs now (the command).
    pub async fn command_pid(&self) -> u32 {
        let output = command("tmux")
            .args([
                "-L",
                &self.socket,
                "list-panes",
                "-t",
                "test",
                "-F",
                "#{pane_pid}",
            ])
            .output()
            .await
            .unwrap();
        let shell = String::from_utf8_lossy(&output.stdout).trim().to_string();
        let output = command("pgrep")
            .args(["-P", &shell])
            .output()
            .await
            .unwrap();
        let children = String::from_utf8_lossy(&output.stdout);
        children
            .lines()
            .next()
            .and_then(|pid| pid.trim().parse().ok())
            .unwrap_or_else(|| panic!("the session's shell {shell} runs nothing"))
    }

    /// `stty -g` before the command ran and after it ended.
    pub fn terminal_settings(&self) -> (String, String) {
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        (read("before"), read("after"))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // Synchronous, in a drop: `kill-server` reads nothing from stdin,
        // which is null.
        #[allow(clippy::disallowed_methods)]
        let _ = std::process::Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .stdin(std::process::Stdio::null())
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
