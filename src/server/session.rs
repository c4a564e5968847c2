//! A connection's session: from the accept to the log line that says it
//! closed. The transport ([`super::connection`]) knows no mode; a mode (the
//! echo policy, or the chat) implements [`Session`] and is handed each
//! connection; the last line a client gets is chosen in [`farewell`] for
//! every way a connection ends, in either mode.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::info;

use super::config::Config;
use super::connection::{Connection, End, Stream};
use crate::protocol::{self, chat as chat_text};

/// Which mode a session is, where the two differ in what they say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Echo,
    Chat,
}

/// One way of serving connections, made once before the first accept; each
/// connection's task holds a clone (nothing for echo, the hub's handle for
/// the chat).
pub(crate) trait Session: Clone + Send + Sync + 'static {
    const MODE: Mode;

    /// What the mode keeps of a connection while it lasts: nothing for
    /// echo, the member for the chat.
    type Guest: Send;

    /// A connection has arrived; made before the log says it connected.
    fn arrive(&self) -> Self::Guest;

    /// Who the guest is, for the log lines: `None` for nobody by name.
    fn name(guest: &Self::Guest) -> Option<&str>;

    /// Serves `connection` until it has to end, and says why. What the
    /// client is still owed is left in the outbox, for the close.
    fn run(
        &self,
        guest: &mut Self::Guest,
        connection: &mut Connection,
    ) -> impl Future<Output = End> + Send;

    /// The server is shutting down: connections are told to stop.
    fn shut_down(&self) {}
}

/// The last line a client is sent when its connection ends as `end` says,
/// after everything it is owed; `None` for no line.
pub(crate) fn farewell(end: &End, mode: Mode) -> Option<String> {
    match end {
        End::LineTooLong(too_long) => Some(protocol::line_too_long(too_long.max_line_bytes)),
        End::Idle(timeout) => Some(protocol::idle(*timeout)),
        End::ServerFull(max_connections) => Some(protocol::server_full(*max_connections)),
        End::TooManyFrom { address, limit } => Some(protocol::too_many_from(*address, *limit)),
        End::Kicked(line) => Some(line.to_string()),
        End::NotTls => Some(protocol::TLS_REQUIRED.to_string()),
        End::TooSlow { sendq } => Some(chat_text::too_slow(*sendq)),
        End::ShuttingDown if mode == Mode::Chat => Some(chat_text::SHUTTING_DOWN.to_string()),
        End::Quit | End::QuitCommand(_) | End::ClientClosed if mode == Mode::Chat => {
            Some(chat_text::BYE.to_string())
        }
        End::PasswordRefused
        | End::ShuttingDown
        | End::Quit
        | End::QuitCommand(_)
        | End::ClientClosed
        | End::NotReading(_)
        | End::Failed(_)
        | End::TlsClient => None,
    }
}

/// Serves one connection from its first byte to its close with `session`,
/// holding `slot` until the connection is closed. Generic, so each mode's
/// task holds only its own state: an idle connection's memory is mostly
/// its task. Not an `async fn`: that would be a future around the future,
/// holding the arguments twice.
pub(crate) fn serve<S: Session>(
    session: S,
    stream: Stream,
    peer: SocketAddr,
    slot: super::Slot,
    config: Arc<Config>,
    stop: watch::Receiver<()>,
) -> impl Future<Output = ()> + use<S> {
    let logging = config.log_connections;
    // Made before the task starts, so the task holds the connection alone,
    // not also the parts it is made of.
    let mut connection = Connection::new(stream, config, stop);
    async move {
        let mut guest = session.arrive();
        if logging {
            info!(
                "{peer}{} connected{}",
                Named(S::name(&guest)),
                connection.over()
            );
        }
        let end = session.run(&mut guest, &mut connection).await;
        // A TLS client's handshake holds an LF, and is no nc to advise.
        let hint = match end {
            End::TlsClient => "",
            _ => connection.delimiter_hint(),
        };
        say_farewell_and_close(&mut connection, &end, S::MODE, None).await;
        // Freed before the log line says the connection is closed, so
        // whoever waits for that line can count on the slot.
        drop(slot);
        if logging {
            let name = Named(S::name(&guest));
            let (stats, over) = (connection.stats(), connection.over());
            info!("{peer}{name} closed ({end}): {stats}{over}{hint}");
        }
    }
}

/// A guest's name in a log line, after the peer's address: ` NAME`, or
/// nothing.
struct Named<'a>(Option<&'a str>);

impl std::fmt::Display for Named<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(name) => write!(f, " {name}"),
            None => Ok(()),
        }
    }
}

/// Tells a connection over a limit why it is refused (`end`: the server is
/// full, or its address has too many), and closes it.
pub(crate) async fn refuse(
    stream: Stream,
    peer: SocketAddr,
    config: Arc<Config>,
    stop: watch::Receiver<()>,
    end: End,
) {
    if config.log_connections {
        match &end {
            End::ServerFull(open) => info!("{peer} refused: server full ({open} connections open)"),
            other => info!("{peer} refused: {other}"),
        }
    }
    let mut connection = Connection::new(stream, config, stop);
    // One line, and no long wait for a client that does not take it.
    let stall = Some(super::REFUSAL_STALL);
    say_farewell_and_close(&mut connection, &end, Mode::Echo, stall).await;
}

/// Tells a client that sent plain text to a server with TLS that it needs
/// TLS, in plain text, and closes the connection.
pub(crate) async fn refuse_plaintext(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    config: Arc<Config>,
    stop: watch::Receiver<()>,
) {
    if config.log_connections {
        info!("{peer} refused: not TLS (it sent plain text)");
    }
    let mut connection = Connection::new(Stream::Tcp(stream), config, stop);
    let stall = Some(super::REFUSAL_STALL);
    say_farewell_and_close(&mut connection, &End::NotTls, Mode::Echo, stall).await;
}

/// Queues the farewell line and closes, waiting at most `stall` (or the
/// configured stall) for a client that takes nothing.
async fn say_farewell_and_close(
    connection: &mut Connection,
    end: &End,
    mode: Mode,
    stall: Option<Duration>,
) {
    if let Some(line) = farewell(end, mode) {
        connection.queue_line(&[line.as_bytes()]);
    }
    connection.close(end, stall).await;
}
