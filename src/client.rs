//! The client: sends stdin lines to the server and prints its replies, both
//! at once, until the server closes the connection; that close is the signal
//! to exit, whatever stdin is doing.

mod stdin;

use std::io::{self, IsTerminal, Write};
use std::sync::Arc;

use anyhow::{Context, bail};
use bytes::{Buf, Bytes};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::ReadHalf;
use tokio::sync::mpsc;

use crate::cli::host_port;
use crate::framing::{LineFormat, LineSplitter};

/// Longest reply line the client buffers before giving up.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1024 * 1024;

/// Room made for each read from the socket.
const READ_CHUNK: usize = 64 * 1024;
/// Printed replies are written to stdout when no more are immediately
/// available, or sooner once this many bytes are waiting.
const STDOUT_BATCH: usize = 64 * 1024;

/// Where to connect, and how lines are cut: the delimiter both ways, the
/// line limit for replies and for stdin lines alike.
#[derive(Clone, Debug)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub format: Arc<LineFormat>,
}

/// Runs the client as the `chat-client` command does, on the process's
/// stdin and stdout.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let address = host_port(&config.host, config.port);
    let stream = TcpStream::connect((config.host.as_str(), config.port))
        .await
        .with_context(|| format!("connecting to {address}"))?;
    // Lines are batched by hand, so Nagle's delay would only add latency.
    stream
        .set_nodelay(true)
        .with_context(|| format!("configuring the connection to {address}"))?;
    let server = stream.peer_addr().map_or(address, |peer| peer.to_string());

    let input = io::stdin();
    if input.is_terminal() {
        eprintln!("connected to {server} — type lines, \".\" to quit");
    }
    let lines = stdin::spawn_reader(input, Arc::clone(&config.format))?;
    exchange(stream, lines, &mut io::stdout(), config.format, &server).await
}

/// How an exchange can end without an error.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    /// The server closed the connection, or nobody reads stdout any more.
    Done,
}

/// Sends the batches of lines from `lines` and prints replies to `output`,
/// both at once, until the server closes the connection. When `lines` ends,
/// shuts the sending side so the server knows, and goes on printing.
async fn exchange(
    mut stream: TcpStream,
    mut lines: mpsc::Receiver<anyhow::Result<Bytes>>,
    output: &mut impl Write,
    format: Arc<LineFormat>,
    server: &str,
) -> anyhow::Result<()> {
    let (from_server, mut to_server) = stream.split();
    let mut replies = Replies {
        lines: LineSplitter::new(format),
        printed: Vec::new(),
        server,
    };
    let mut unsent = Bytes::new();
    let mut stdin_open = true;
    loop {
        tokio::select! {
            readable = from_server.readable() => {
                readable.with_context(|| format!("reading from {server}"))?;
                if replies.print_available(&from_server, output)? == Flow::Done {
                    return Ok(());
                }
            }
            writable = to_server.writable(), if !unsent.is_empty() => {
                writable.with_context(|| format!("sending to {server}"))?;
                match to_server.try_write(&unsent) {
                    Ok(count) => unsent.advance(count),
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                    Err(error) => return Err(error).context(format!("sending to {server}")),
                }
            }
            batch = lines.recv(), if stdin_open && unsent.is_empty() => match batch {
                Some(batch) => unsent = batch?,
                None => {
                    stdin_open = false;
                    to_server
                        .shutdown()
                        .await
                        .with_context(|| format!("closing the sending side to {server}"))?;
                }
            },
        }
    }
}

/// The replies received and not yet printed.
struct Replies<'a> {
    lines: LineSplitter,
    /// Reply lines, each ending in `\n`, waiting to be written to stdout.
    printed: Vec<u8>,
    server: &'a str,
}

impl Replies<'_> {
    /// Reads and prints every reply available without waiting, then flushes.
    fn print_available(
        &mut self,
        from_server: &ReadHalf<'_>,
        output: &mut impl Write,
    ) -> anyhow::Result<Flow> {
        loop {
            match from_server.try_read_buf(self.lines.buffer_for_read(READ_CHUNK)) {
                Ok(0) => {
                    // A last line the server did not end is still its data.
                    let rest = self.lines.buffered();
                    if !rest.is_empty() {
                        self.printed.extend_from_slice(rest);
                        self.printed.push(b'\n');
                    }
                    self.flush(output)?;
                    return Ok(Flow::Done);
                }
                Ok(_) => {
                    if let Err(error) = self.collect_lines() {
                        self.flush(output)?;
                        return Err(error);
                    }
                    if self.printed.len() >= STDOUT_BATCH && self.flush(output)? == Flow::Done {
                        return Ok(Flow::Done);
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    return self.flush(output);
                }
                Err(error) => {
                    self.flush(output)?;
                    return Err(error).context(format!("reading from {}", self.server));
                }
            }
        }
    }

    /// Moves every complete reply line to `printed`, ending each with `\n`.
    fn collect_lines(&mut self) -> anyhow::Result<()> {
        loop {
            match self.lines.next_line() {
                Ok(Some(line)) => {
                    self.printed.extend_from_slice(line);
                    self.printed.push(b'\n');
                }
                Ok(None) => return Ok(()),
                Err(too_long) => bail!("reply from {}: {too_long}", self.server),
            }
        }
    }

    /// Writes out what is waiting. A closed stdout ends the client quietly.
    fn flush(&mut self, output: &mut impl Write) -> anyhow::Result<Flow> {
        if self.printed.is_empty() {
            return Ok(Flow::Continue);
        }
        let written = output
            .write_all(&self.printed)
            .and_then(|()| output.flush());
        self.printed.clear();
        match written {
            Ok(()) => Ok(Flow::Continue),
            Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(Flow::Done),
            Err(error) => Err(error).context("writing to stdout"),
        }
    }
}
