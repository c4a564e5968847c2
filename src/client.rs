//! The client: sends stdin lines to the server and prints its replies, both
//! at once, until the server closes the connection; that close is the signal
//! to exit, whatever stdin is doing.
//!
//! Three parts run together: a thread reads stdin and cuts it into lines
//! (`client/stdin.rs`), a thread cuts the replies into lines and prints them
//! (`client/stdout.rs`), and a task moves bytes between them and the socket
//! (`client/exchange.rs`), plain or TLS (`client/connect.rs`).

mod blocking_io;
mod config;
mod connect;
mod exchange;
mod stdin;
mod stdout;
mod terminal;

use std::fs::File;
use std::io::{self, IsTerminal};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;

use crate::address::host_port;
pub use config::{Config, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_LINE_BYTES, Tls};
use exchange::Exchange;
pub use exchange::READ_CHUNK;
pub use stdin::STDIN_READ_CHUNK;
pub use terminal::ColorMode;

/// Runs the client as the `chat-client` command does, on the process's
/// stdin and stdout.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let address = host_port(&config.host, config.port);
    let stream = connect::connect(&config)
        .await
        .with_context(|| format!("connecting to {address}"))?;
    let server = stream.peer_addr().map_or(address, |peer| peer.to_string());
    match &config.tls {
        None => {
            talk(config, &server, "", async move |exchange| {
                let mut stream = stream;
                let (from_server, to_server) = stream.split();
                exchange.run(from_server, to_server).await
            })
            .await
        }
        Some(tls) => {
            let secured = connect::secure(stream, tls, &config).await?;
            let about = format!(" ({})", secured.about);
            talk(config, &server, &about, async move |exchange| {
                let (from_server, to_server) = tokio::io::split(secured.stream);
                exchange.run(from_server, to_server).await
            })
            .await
        }
    }
}

/// Runs the exchange with `server`, which `connected` carries out over the
/// connection once the threads for stdin and stdout are started. `about`
/// follows the address in the hint: how the connection is secured.
async fn talk(
    config: Config,
    server: &str,
    about: &str,
    connected: impl AsyncFnOnce(Exchange<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let on_terminal = io::stdin().is_terminal();
    if on_terminal {
        tell_terminal(&format!(
            "connected to {server}{about} — type lines, \".\" to quit"
        ));
    }
    let quit_sent = Arc::new(AtomicBool::new(false));
    let editing = terminal::wanted(config.plain)
        .then(terminal::Saved::now)
        .flatten();
    let moved = match editing {
        Some(saved) => {
            saved.restore_on_signals()?;
            let (lines, printer) =
                terminal::spawn_editor(Arc::clone(&config.format), Arc::clone(&quit_sent))?;
            let coloured = config.color.wanted();
            let screen =
                terminal::Screen::spawn(printer, config.format, server.to_string(), coloured)?;
            let moved = connected(Exchange {
                lines,
                printer: &screen.replies,
                server,
            })
            .await;
            let shown = screen.finish();
            // The editor's thread may still be reading: the terminal is put
            // back as it was, and the process exits past that thread.
            saved.restore();
            moved.and(shown)
        }
        None => {
            // The descriptors themselves, unbuffered: the threads batch by
            // hand.
            let input = File::from(
                io::stdin()
                    .as_fd()
                    .try_clone_to_owned()
                    .context("opening stdin")?,
            );
            let output = File::from(
                io::stdout()
                    .as_fd()
                    .try_clone_to_owned()
                    .context("opening stdout")?,
            );
            let lines =
                stdin::spawn_reader(input, Arc::clone(&config.format), Arc::clone(&quit_sent))?;
            let printer = stdout::Printer::spawn(output, config.format, server.to_string())?;
            let moved = connected(Exchange {
                lines,
                printer: &printer.replies,
                server,
            })
            .await;
            // Every way out waits until the replies received are printed.
            let printed = printer.finish();
            moved.and(printed)
        }
    };
    moved?;
    if on_terminal && !quit_sent.load(Ordering::Relaxed) {
        tell_terminal(&format!("{server} closed the connection"));
    }
    Ok(())
}

/// Writes `line` to stderr in one write: `eprintln!` writes each piece of
/// its format on its own, and the terminal's echo of what the user types
/// can land between them.
fn tell_terminal(line: &str) {
    use std::io::Write;
    let _ = io::stderr().write_all(format!("{line}\n").as_bytes());
}
