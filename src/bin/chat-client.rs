//! `chat-client`: sends stdin lines to a `chat-server` and prints its
//! replies until the server closes the connection. Parses the flags and
//! calls [`chat::client`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use chat::address::{self, HostAndPort};
use chat::cli;
use chat::client;
use chat::delimiter::Delimiter;
use chat::framing::LineFormat;
use chat::tls;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};
use rustls_pki_types::ServerName;

/// Talks to a chat-server: sends each line typed (or piped in) and prints
/// each line the server sends, until the server closes the connection. With
/// chat-server --chat it is a chat client: type to talk, /help lists the
/// commands, "." or /quit leaves. With the echo server (chat-server without
/// --chat), every line comes back as "You sent: LINE", and "." asks it to
/// close.
#[derive(Parser, Debug)]
#[command(name = "chat-client", version, after_help = EXAMPLES)]
struct Args {
    // The help as an attribute: rustdoc would read `[IPV6]` as a link.
    #[arg(value_name = "HOST", value_parser = host_and_port, conflicts_with = "host",
          help = "The server's host name or IP address, as with nc and telnet (the same as \
                  --host); or HOST:PORT, [IPV6]:PORT, as with redis-cli and in URLs")]
    host_argument: Option<HostAndPort>,

    /// The server's TCP port (the same as --port)
    #[arg(value_name = "PORT", conflicts_with = "port")]
    port_argument: Option<u16>,

    /// The server's host name or IP address
    #[arg(long, default_value = cli::DEFAULT_HOST, value_parser = host)]
    host: String,

    /// The server's TCP port
    #[arg(short, long, default_value_t = cli::DEFAULT_PORT)]
    port: u16,

    #[arg(long, value_name = "DELIM", help = cli::delimiter_help(
        "How lines end, in what is sent and in what the server sends; the server must use \
         the same (chat-server --chat uses lenient)", "crlf"))]
    delimiter: Option<Delimiter>,

    /// Longest line accepted from the server (and from stdin), delimiter not
    /// counted; a longer one ends the client with an error
    #[arg(long, value_name = "N", default_value_t = client::DEFAULT_MAX_LINE_BYTES,
          value_parser = cli::count_up_to(cli::LARGEST_MAX_LINE_BYTES))]
    max_line_bytes: usize,

    /// Give up connecting after this many seconds (fractions allowed); 0
    /// leaves it to the system (about two minutes)
    #[arg(long, value_name = "SECS", default_value_t = cli::Seconds(client::DEFAULT_CONNECT_TIMEOUT),
          value_parser = cli::seconds_up_to(cli::LONGEST_CONNECT_TIMEOUT))]
    connect_timeout: cli::Seconds,

    /// Speak TLS, and check the server's certificate against the system's
    /// trusted roots
    #[arg(long)]
    tls: bool,

    /// Speak TLS, and trust only the certificate or CA in this PEM file
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,

    /// Speak TLS, and check the server's certificate for this name (also
    /// sent as SNI) instead of HOST: for connecting by IP address
    #[arg(long, value_name = "NAME", value_parser = tls::server_name)]
    tls_server_name: Option<ServerName<'static>>,

    /// On a terminal: colour nicks, notices and errors (auto: unless
    /// NO_COLOR is set). Never on a pipe
    #[arg(long, value_name = "WHEN", default_value = "auto")]
    color: client::ColorMode,

    /// On a terminal too, read and print lines plainly, without the line
    /// editor (as on a pipe)
    #[arg(long)]
    plain: bool,
}

/// `--host`, and `HOST` without a port: a digits-only host is a port.
fn host(text: &str) -> Result<String, String> {
    address::parse_host(text, port_hint)
}

/// `HOST`, `HOST:PORT` or `[IPV6]:PORT`.
fn host_and_port(text: &str) -> Result<HostAndPort, String> {
    address::parse_host_and_port(text, port_hint)
}

fn port_hint(port: &str) -> String {
    format!("chat-client localhost {port}, or -p {port}")
}

const EXAMPLES: &str = "\
Examples:
  chat-client                      talk to chat-server on localhost:8007
  chat-client example.org 9000     the server at example.org, port 9000
  chat-client example.org:9000     the same
  printf 'a\\nb\\n' | chat-client    send two lines, print both replies
  chat-client -p 9000 < lines.txt  send a file's lines, one per line
  chat-client --tls-ca ca.pem      TLS, trusting the CA in ca.pem
  chat-client --tls chat.example.org 6697
                                   TLS, checked against the system's roots";

fn main() -> ExitCode {
    let matches = Args::command().get_matches();
    let args = Args::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    let port_flag_given = matches.value_source("port") == Some(ValueSource::CommandLine);
    let (host, port) = server_address(&args, port_flag_given).unwrap_or_else(|error| error.exit());
    cli::exit_status("chat-client", connect(args, host, port))
}

/// The server's host and port, from whichever way they were given; a port
/// given twice (`localhost:9000 9001`, or with `-p`) is a usage error.
fn server_address(args: &Args, port_flag_given: bool) -> Result<(String, u16), clap::Error> {
    let Some(HostAndPort { host, port }) = args.host_argument.clone() else {
        return Ok((args.host.clone(), args.port_argument.unwrap_or(args.port)));
    };
    match (port, args.port_argument, port_flag_given) {
        (Some(port), None, false) => Ok((host, port)),
        (Some(port), _, _) => Err(Args::command().error(
            clap::error::ErrorKind::ArgumentConflict,
            format!("the port is given twice: {port} in HOST:PORT, and as PORT or --port"),
        )),
        (None, port_argument, _) => Ok((host, port_argument.unwrap_or(args.port))),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn connect(args: Args, host: String, port: u16) -> anyhow::Result<()> {
    let config = client::Config {
        host,
        port,
        format: Arc::new(LineFormat::new(
            args.delimiter.unwrap_or_else(Delimiter::crlf),
            args.max_line_bytes,
        )),
        connect_timeout: args.connect_timeout.as_limit(),
        tls: match args.tls || args.tls_ca.is_some() || args.tls_server_name.is_some() {
            false => None,
            true => Some(client::Tls {
                config: tls::client_config(args.tls_ca.as_deref())?,
                server_name: args.tls_server_name,
            }),
        },
        plain: args.plain,
        color: args.color,
    };
    client::run(config).await
}
