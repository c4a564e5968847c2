//! The server's password (`--password-file`): a new connection is in no
//! room and hears nothing until it gives it with `/pass`; it may send only
//! `/pass`, `/quit` and `.` meanwhile, and the third wrong password closes
//! it. Wrong passwords count against the client's address too
//! ([`Guesses`]), and a password sent over plain TCP from another machine
//! is answered with a note saying so first.

use std::sync::Arc;

use super::command::Input;
use super::guessing::Guesses;
use super::password::Hasher;
use crate::escape;
use crate::protocol::chat as text;
use crate::server::connection::{Connection, End};

/// Wrong passwords a connection may give before it is closed.
pub const TRIES: usize = 3;

/// The password's hash, and who got it wrong.
#[derive(Debug)]
pub struct Gate {
    hash: Arc<str>,
    hasher: Arc<Hasher>,
    guesses: Arc<Guesses>,
}

impl Gate {
    /// The gate of the password `hash` was made from, checked by `hasher`,
    /// wrong ones counted in `guesses` (shared with `/login`).
    pub fn new(hash: Arc<str>, hasher: Arc<Hasher>, guesses: Arc<Guesses>) -> Self {
        Self {
            hash,
            hasher,
            guesses,
        }
    }

    /// Sends `welcome` and asks for the password, then reads lines until
    /// the right one comes (`Ok`), or the connection has to end.
    pub(super) async fn pass(&self, connection: &mut Connection, welcome: &str) -> Result<(), End> {
        let address = connection.peer().map(|peer| peer.ip().to_canonical());
        let from_afar = !connection.is_tls() && address.is_some_and(|ip| !ip.is_loopback());
        connection.queue_line(&[welcome.as_bytes()]);
        connection.queue_line(&[text::PASSWORD_NEEDED.as_bytes()]);
        let mut wrong = 0;
        loop {
            connection.flush().await?;
            connection.receive().await?;
            // Copied: the few lines before the password are answered one
            // by one, and the rest stays buffered for the chat.
            while let Some(line) = connection.lines.next_line().map_err(End::LineTooLong)? {
                let line = line.to_vec();
                connection.count_lines(1);
                connection.restart_idle_timer();
                match Input::parse(&line) {
                    Input::Pass(given) => {
                        if from_afar {
                            connection.queue_line(&[text::PLAIN_TEXT_PASSWORD.as_bytes()]);
                        }
                        let waiting = address.and_then(|ip| self.guesses.wait_for(ip));
                        if let Some(wait) = waiting {
                            connection.queue_line(&[text::too_many_wrong(wait).as_bytes()]);
                        } else if self
                            .hasher
                            .check(given.to_vec(), Arc::clone(&self.hash))
                            .await
                        {
                            return Ok(());
                        } else {
                            if let Some(ip) = address {
                                self.guesses.wrong(ip);
                            }
                            connection.queue_line(&[text::WRONG_PASSWORD.as_bytes()]);
                        }
                        wrong += 1;
                        if wrong >= TRIES {
                            return Err(End::PasswordRefused);
                        }
                    }
                    Input::QuitLine => return Err(End::Quit),
                    Input::Quit(reason) => {
                        let reason = reason.map(|reason| escape::escaped(reason).into());
                        return Err(End::QuitCommand(reason));
                    }
                    Input::Nothing => {}
                    _ => connection.queue_line(&[text::PASS_FIRST.as_bytes()]),
                }
            }
        }
    }
}
