//! `chat-server`: answers every line with `You sent: <line>` and closes the
//! connection on a `.` line; with `--chat`, a chat server. Parses the flags
//! and calls [`chat::server`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chat::chat as chat_mode;
use chat::cli;
use chat::delimiter::Delimiter;
use chat::framing::LineFormat;
use chat::server;
use clap::Parser;

/// A line-based TCP server. With --chat, a chat server: nicks, rooms and
/// commands, for chat-client, nc and telnet users. Without it, an echo
/// server: answers every line with "You sent: LINE" and closes the
/// connection on a "." line.
#[derive(Parser, Debug)]
#[command(name = "chat-server", version, after_help = EXAMPLES)]
struct Args {
    /// Host name or IP address to listen on: every address it resolves to.
    /// localhost is this machine only; 0.0.0.0 (or ::) is every interface,
    /// for other machines to connect. Repeat to listen on several
    #[arg(long, default_value = cli::DEFAULT_HOST, value_parser = host)]
    host: Vec<String>,

    /// TCP port to listen on; 0 picks a free one, named in the "listening
    /// on" line
    #[arg(short, long, default_value_t = cli::DEFAULT_PORT)]
    port: u16,

    #[arg(long, value_name = "DELIM", help = cli::delimiter_help(
        "How lines end, in what clients send and in the replies; clients must use the same",
        "crlf; lenient with --chat"))]
    delimiter: Option<Delimiter>,

    /// Longest line accepted, delimiter not counted; a longer one gets
    /// "error: line exceeds N bytes" and the connection is closed
    #[arg(long, value_name = "N", default_value_t = server::DEFAULT_MAX_LINE_BYTES,
          value_parser = cli::count_up_to(cli::LARGEST_MAX_LINE_BYTES))]
    max_line_bytes: usize,

    /// Connections served at once; one more gets "error: server is full (N
    /// connections)" and is closed
    #[arg(long, value_name = "N", default_value_t = server::DEFAULT_MAX_CONNECTIONS,
          value_parser = cli::count_up_to(cli::LARGEST_MAX_CONNECTIONS))]
    max_connections: usize,

    /// Close a connection after this many seconds without input (fractions
    /// allowed), telling it "error: idle for SECS s"; 0 means never
    #[arg(long, value_name = "SECS", default_value = "0",
          value_parser = cli::seconds_up_to(cli::LONGEST_IDLE_TIMEOUT))]
    idle_timeout: cli::Seconds,

    /// TCP keepalive: probe a connection after this many seconds of silence,
    /// so a peer that vanished is closed within about twice that; 0 is off
    #[arg(long, value_name = "SECS", default_value_t = server::DEFAULT_KEEPALIVE_SECS,
          value_parser = cli::whole_seconds_up_to(cli::LONGEST_KEEPALIVE_SECS))]
    keepalive: u32,

    /// Set SO_REUSEPORT: several servers that all set it share the port, and
    /// the kernel splits the connections among them
    #[arg(long)]
    reuse_port: bool,

    /// Do not log a line per connection opened and closed
    #[arg(long)]
    quiet: bool,

    /// Chat mode: what one member sends, the others in its room receive
    #[arg(long)]
    chat: bool,

    /// Chat mode: the room every member starts in
    #[arg(long, value_name = "NAME", default_value = chat_mode::DEFAULT_ROOM,
          value_parser = room, requires = "chat")]
    room: String,

    /// Chat mode: once more than this many bytes wait for a member that is
    /// not reading, it gets "error: too slow" and is closed
    #[arg(long, value_name = "BYTES", default_value_t = chat_mode::DEFAULT_SENDQ,
          value_parser = cli::count_between(cli::SMALLEST_SENDQ, cli::LARGEST_SENDQ),
          requires = "chat")]
    sendq: usize,

    /// Chat mode: lines a second a member may send (in bursts of as many);
    /// a faster one is read more slowly, never cut. 0 means no limit
    #[arg(long, value_name = "LINES", default_value_t = chat_mode::DEFAULT_MAX_RATE,
          value_parser = cli::rate_up_to(cli::LARGEST_MAX_RATE), requires = "chat")]
    max_rate: u32,

    /// Chat mode: lines of talk each room keeps and shows a member who
    /// joins it (forgotten when the room empties). 0 keeps none
    #[arg(long, value_name = "LINES", default_value_t = chat_mode::history::DEFAULT_HISTORY_LINES,
          value_parser = cli::count_between(0, cli::LARGEST_HISTORY), requires = "chat")]
    history: usize,

    /// Chat mode: the most bytes a room's history may take; the oldest
    /// lines go first
    #[arg(long, value_name = "BYTES", default_value_t = chat_mode::history::DEFAULT_HISTORY_BYTES,
          value_parser = cli::count_up_to(cli::LARGEST_HISTORY_BYTES), requires = "chat")]
    history_bytes: usize,

    /// Chat mode: members must give the password on this file's first line
    /// (/pass PASSWORD) before they come in; the file must be readable by
    /// its owner only
    #[arg(long, value_name = "FILE", requires = "chat")]
    password_file: Option<PathBuf>,

    /// Chat mode: keep accounts (registered nicks) in this directory, made
    /// readable by its owner only
    #[arg(long, value_name = "DIR", requires = "chat")]
    data_dir: Option<PathBuf>,

    /// Chat mode: this registered nick is an operator once logged in (/kick);
    /// repeatable; needs --data-dir
    #[arg(long, value_name = "NICK", value_parser = operator_nick, requires = "data_dir")]
    op: Vec<String>,

    /// Chat mode: connections one client address may hold at once; past
    /// them a newcomer is told so and closed
    #[arg(long, value_name = "N", default_value_t = server::per_address::DEFAULT_MAX_PER_ADDRESS,
          value_parser = cli::count_up_to(cli::LARGEST_MAX_CONNECTIONS), requires = "chat")]
    max_per_address: usize,

    /// Chat mode: addresses --max-per-address does not count (CIDR, or an
    /// address; repeatable; "none" for none) [default: 127.0.0.0/8, ::1]
    #[arg(long, value_name = "CIDR", value_parser = exempt_network, requires = "chat")]
    exempt: Vec<Exempt>,

    /// Chat mode: link to other chat servers through the NATS broker at URL
    /// (nats://HOST:PORT, nats://USER:PASS@HOST:PORT, tls://HOST:PORT; several
    /// separated by commas); rooms with the same name on all of them are one
    #[arg(long, value_name = "URL", value_parser = link_url, requires = "chat")]
    link: Option<String>,

    /// Chat mode: this server's name on the link, shown after remote nicks
    /// (alice@NAME) [default: the host name]
    #[arg(long, value_name = "NAME", value_parser = node_name, requires = "link")]
    node: Option<String>,

    /// Chat mode: check a tls:// broker's certificate against those in
    /// this PEM file instead of the system's
    #[arg(long, value_name = "FILE", requires = "link")]
    link_ca: Option<PathBuf>,

    /// Chat mode, linked through a broker with JetStream: the most bytes of
    /// lines said while the link is down kept to publish once it is back;
    /// past it the oldest are lost, and the members are told how many
    #[arg(long, value_name = "BYTES", default_value_t = chat::link::DEFAULT_LINK_BUFFER,
          value_parser = cli::count_between(0, cli::LARGEST_LINK_BUFFER), requires = "link")]
    link_buffer: usize,

    /// Speak TLS only, with the certificate chain in this PEM file (the
    /// server's certificate first); needs --tls-key
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert's certificate, in a PEM file
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// How long a client has to finish its TLS handshake, at most the
    /// default (for tests)
    #[arg(long, value_name = "SECS", hide = true, requires = "tls_cert",
          default_value_t = cli::Seconds(server::HANDSHAKE_TIMEOUT),
          value_parser = cli::positive_seconds_up_to(server::HANDSHAKE_TIMEOUT))]
    tls_handshake_timeout: cli::Seconds,

    /// How long a closing connection waits for a client that takes none of
    /// its replies, at most the default (for tests)
    #[arg(long, value_name = "SECS", hide = true,
          default_value_t = cli::Seconds(server::CLOSE_STALL),
          value_parser = cli::positive_seconds_up_to(server::CLOSE_STALL))]
    close_stall: cli::Seconds,
}

/// Parses `--host`: a digits-only host is a port.
fn host(text: &str) -> Result<String, String> {
    chat::address::parse_host(text, |port| format!("chat-server -p {port}"))
}

/// Parses `--link`: NATS server addresses, separated by commas.
fn link_url(text: &str) -> Result<String, String> {
    chat::link::addresses(text).map(|_| text.to_string())
}

/// Parses `--op`: a nick, folded.
fn operator_nick(text: &str) -> Result<String, String> {
    chat::names::nick(text.as_bytes())
        .map(|nick| nick.to_ascii_lowercase())
        .ok_or_else(|| "a nick is 1-24 letters, digits, - or _, starting with a letter".to_string())
}

/// One `--exempt`: a network, or none at all.
#[derive(Clone, Debug)]
enum Exempt {
    Nothing,
    Network(ipnet::IpNet),
}

/// Parses `--exempt`: `none`, a CIDR network, or one address.
fn exempt_network(text: &str) -> Result<Exempt, String> {
    if text == "none" {
        return Ok(Exempt::Nothing);
    }
    let network = text.parse::<ipnet::IpNet>().or_else(|_| {
        text.parse::<std::net::IpAddr>()
            .map(ipnet::IpNet::from)
            .map_err(|_| "an address or network such as 10.0.0.0/8, ::1 or none".to_string())
    })?;
    Ok(Exempt::Network(network))
}

/// Parses `--node`: 1-32 letters, digits, - or _.
fn node_name(text: &str) -> Result<String, String> {
    chat::names::node(text.as_bytes())
        .map(str::to_string)
        .ok_or_else(|| "a node name is 1-32 letters, digits, - or _".to_string())
}

/// The host name as a node name: up to its first dot, other characters
/// made `-`.
fn default_node() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim().split('.').next().unwrap_or("");
    let node: String = host
        .chars()
        .take(32)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if node.is_empty() {
        "chat".to_string()
    } else {
        node
    }
}

/// Parses `--room`: a valid room name, `#` optional.
fn room(text: &str) -> Result<String, String> {
    let refused = chat::protocol::chat::BAD_ROOM.trim_start_matches("error: ");
    chat_mode::names::room(text.as_bytes()).ok_or_else(|| refused.to_string())
}

const EXAMPLES: &str = "\
Examples:
  chat-server                      listen on localhost:8007
  chat-client                      then, in another terminal, talk to it
  printf 'a\\nb\\n' | chat-client    send two lines, print both replies
  chat-server --port 0             let the system pick a free port
  nc -C localhost 8007             any TCP client works; -C sends CRLF
  chat-server --delimiter lenient  accept plain nc and telnet line ends
  chat-server --chat               a chat: every chat-client, nc or telnet
                                   connected talks to the others
  chat-server --tls-cert cert.pem --tls-key key.pem
                                   TLS only (chat-client --tls, or
                                   openssl s_client -crlf)";

fn main() -> ExitCode {
    let args = Args::parse();
    cli::exit_status("chat-server", serve(args))
}

#[tokio::main]
async fn serve(args: Args) -> anyhow::Result<()> {
    // Held to the end: dropping it writes the log's last lines.
    let _log = chat::log::init()?;
    let default_delimiter = if args.chat {
        Delimiter::lenient()
    } else {
        Delimiter::crlf()
    };
    let delimiter = args.delimiter.unwrap_or(default_delimiter);
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => {
            let files = chat::tls::ServerFiles { cert, key };
            let config = chat::tls::server_config(&files)?;
            let hosts: Vec<&str> = args.host.iter().map(String::as_str).collect();
            if let Some(warning) = chat::tls::certificate_warning(&files, &hosts)? {
                tracing::warn!("{warning}");
            }
            Some(server::Tls::new(config, args.tls_handshake_timeout.0))
        }
        // clap makes each require the other.
        _ => None,
    };
    let password = match &args.password_file {
        Some(file) => Some(chat_mode::password::server_password(file)?),
        None => None,
    };
    let config = server::Config {
        format: Arc::new(LineFormat::new(delimiter, args.max_line_bytes)),
        max_connections: args.max_connections,
        idle_timeout: args.idle_timeout.as_limit(),
        log_connections: !args.quiet,
        chat: args.chat.then(|| chat_mode::Settings {
            room: args.room,
            sendq: args.sendq,
            max_rate: (args.max_rate > 0).then_some(args.max_rate),
            history: chat_mode::history::Limits {
                lines: args.history,
                bytes: args.history_bytes,
            },
            link: args.link.map(|url| chat::link::LinkSettings {
                url,
                node: args.node.unwrap_or_else(default_node),
                ca: args.link_ca,
                history_lines: args.history,
                buffer: args.link_buffer,
            }),
            password,
            data_dir: args.data_dir,
            operators: args.op,
        }),
        per_address: args.chat.then(|| {
            let exempt = match args.exempt.is_empty() {
                true => server::per_address::loopback(),
                false => (args.exempt.iter())
                    .filter_map(|exempt| match exempt {
                        Exempt::Network(network) => Some(*network),
                        Exempt::Nothing => None,
                    })
                    .collect(),
            };
            Arc::new(server::per_address::PerAddress::new(
                args.max_per_address,
                exempt,
            ))
        }),
        tls,
        close_stall: args.close_stall.0,
    };
    let options = server::ListenOptions {
        reuse_port: args.reuse_port,
        keepalive: (args.keepalive > 0).then(|| Duration::from_secs(args.keepalive.into())),
    };
    server::serve(&args.host, args.port, options, config).await
}
