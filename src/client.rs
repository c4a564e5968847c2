//! The client: sends stdin lines to the server and prints its replies, both
//! at once, until the server closes the connection; that close is the signal
//! to exit, whatever stdin is doing.
//!
//! Three parts run together: a thread reads stdin and cuts it into lines
//! (`client/stdin.rs`), a thread cuts the replies into lines and prints them
//! (`client/stdout.rs`), and the task here moves bytes between them and the
//! socket.

mod blocking_io;
mod stdin;
mod stdout;

use std::fs::File;
use std::io::{self, IsTerminal};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, anyhow};
use bytes::{Buf, Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::ReadHalf;
use tokio::sync::mpsc;

use crate::cli::host_port;
use crate::framing::LineFormat;

/// Longest reply line the client buffers before giving up.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1024 * 1024;
/// How long a connection attempt may take: a server behind a firewall that
/// drops it is an error after this, not after the kernel's two minutes.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The most bytes read from the socket before they are handed to the
/// printer; all that is available, up to this, goes in one chunk. Large,
/// so a stream of replies costs few reads and few hand-overs.
pub const READ_CHUNK: usize = 256 * 1024;

/// Bytes asked of stdin per read.
pub const STDIN_READ_CHUNK: usize = 64 * 1024;

/// Where to connect, and how lines are cut: the delimiter both ways, the
/// line limit for replies and for stdin lines alike.
#[derive(Clone, Debug)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub format: Arc<LineFormat>,
    /// `None` leaves the limit to the kernel.
    pub connect_timeout: Option<Duration>,
}

/// Runs the client as the `chat-client` command does, on the process's
/// stdin and stdout.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let address = host_port(&config.host, config.port);
    let stream = connect(&config)
        .await
        .with_context(|| format!("connecting to {address}"))?;
    // Lines are batched by hand, so Nagle's delay would only add latency.
    // A socket that refuses it has already failed, and reading says how.
    let _ = stream.set_nodelay(true);
    let server = stream.peer_addr().map_or(address, |peer| peer.to_string());

    let on_terminal = io::stdin().is_terminal();
    if on_terminal {
        eprintln!("connected to {server} — type lines, \".\" to quit");
    }
    // The descriptors themselves, unbuffered: the threads batch by hand.
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
    let quit_sent = Arc::new(AtomicBool::new(false));
    let lines = stdin::spawn_reader(input, Arc::clone(&config.format), Arc::clone(&quit_sent))?;
    let printer = stdout::Printer::spawn(output, config.format, server.clone())?;
    exchange(stream, lines, printer, &server).await?;
    if on_terminal && !quit_sent.load(Ordering::Relaxed) {
        eprintln!("{server} closed the connection");
    }
    Ok(())
}

/// Connects to the first address of the host that answers, within the
/// connect timeout for all of them.
async fn connect(config: &Config) -> anyhow::Result<TcpStream> {
    let connecting = TcpStream::connect((config.host.as_str(), config.port));
    let connected = match config.connect_timeout {
        None => connecting.await,
        Some(limit) => match tokio::time::timeout(limit, connecting).await {
            Ok(connected) => connected,
            Err(_) => return Err(anyhow!("no answer within {}s", limit.as_secs_f64())),
        },
    };
    connected.map_err(|error| match error.kind() {
        io::ErrorKind::ConnectionRefused => {
            anyhow!("{error}: no server is listening there; is chat-server running, on this port?")
        }
        _ => error.into(),
    })
}

/// Sends the batches of lines from `lines` and hands the replies to
/// `printer`, both at once, until the server closes the connection. When
/// `lines` ends, shuts the sending side so the server knows, and goes on.
/// Every way out waits until the replies received are printed.
async fn exchange(
    stream: TcpStream,
    lines: mpsc::Receiver<anyhow::Result<Bytes>>,
    printer: stdout::Printer,
    server: &str,
) -> anyhow::Result<()> {
    let moved = move_bytes(stream, lines, &printer.replies, server).await;
    let printed = printer.finish();
    moved.and(printed)
}

/// Moves bytes: stdin batches to the socket, and the socket's bytes to the
/// printer. Ends when the server closes the connection, or the printer
/// stops (stdout closed, or a reply too long: `finish` says which). An
/// error, on the socket or on stdin, is returned only once every byte
/// received before it is handed to the printer; after a stdin error the
/// sending side is shut and the replies still come.
async fn move_bytes(
    mut stream: TcpStream,
    mut lines: mpsc::Receiver<anyhow::Result<Bytes>>,
    printer: &mpsc::Sender<BytesMut>,
    server: &str,
) -> anyhow::Result<()> {
    let (from_server, mut to_server) = stream.split();
    // Received and not yet handed to the printer.
    let mut received = BytesMut::new();
    let mut server_closed = false;
    // A failure to read ends the connection. A failure to send only ends
    // sending: reading goes on, and usually tells the cause (a reset).
    let mut failed: Option<anyhow::Error> = None;
    let mut send_failed: Option<anyhow::Error> = None;
    let mut unsent = Bytes::new();
    let mut stdin_open = true;
    let mut stdin_error = None;
    loop {
        let connected = !server_closed && failed.is_none();
        if !connected && received.is_empty() {
            break;
        }
        tokio::select! {
            // Only once the last bytes are handed over: the printer sets the pace.
            readable = from_server.readable(), if received.is_empty() && connected => {
                let ended = match readable {
                    Ok(()) => read_available(&from_server, &mut received),
                    Err(error) => Some(Err(error)),
                };
                match ended {
                    Some(Ok(())) => server_closed = true,
                    Some(Err(error)) => failed = Some(anyhow!(error).context(format!("reading from {server}"))),
                    None => {}
                }
            }
            permit = printer.reserve(), if !received.is_empty() => match permit {
                Ok(permit) => permit.send(received.split()),
                Err(_) => return Ok(()),
            },
            () = printer.closed() => return Ok(()),
            writable = to_server.writable(), if !unsent.is_empty() && connected && send_failed.is_none() => {
                let written = writable.and_then(|()| to_server.try_write(&unsent));
                match written {
                    Ok(count) => unsent.advance(count),
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                    Err(error) => send_failed = Some(anyhow!(error).context(format!("sending to {server}"))),
                }
            }
            batch = lines.recv(), if stdin_open && unsent.is_empty() && connected && send_failed.is_none() => match batch {
                Some(Ok(batch)) => unsent = batch,
                end => {
                    stdin_open = false;
                    stdin_error = end.and_then(Result::err);
                    if let Err(error) = to_server.shutdown().await {
                        let context = format!("closing the sending side to {server}");
                        send_failed = Some(anyhow!(error).context(context));
                    }
                }
            },
        }
    }
    match failed.or(send_failed).or(stdin_error) {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// Reads what the server has sent, without waiting, up to [`READ_CHUNK`]
/// bytes. Returns how the connection ended, if it has: closed by the
/// server, or failed. What was read before is in `received` either way.
fn read_available(from_server: &ReadHalf<'_>, received: &mut BytesMut) -> Option<io::Result<()>> {
    while received.len() < READ_CHUNK {
        received.reserve(READ_CHUNK - received.len());
        match from_server.try_read_buf(received) {
            Ok(0) => return Some(Ok(())),
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
            Err(error) => return Some(Err(error)),
        }
    }
    None
}
