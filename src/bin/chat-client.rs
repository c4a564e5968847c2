//! `chat-client`: sends stdin lines to a `chat-server` and prints its
//! replies until the server closes the connection. Parses the flags and
//! calls [`chat::client`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use chat::cli;
use chat::client;
use chat::delimiter::Delimiter;
use chat::framing::LineFormat;
use chat::tls;
use clap::Parser;
use rustls_pki_types::ServerName;

/// Sends each stdin line to a chat-server and prints each reply; exits when
/// the server closes the connection (send "." to ask it to).
#[derive(Parser, Debug)]
#[command(name = "chat-client", version, after_help = EXAMPLES)]
struct Args {
    /// The server's host name or IP address, as with nc and telnet (the same
    /// as --host)
    #[arg(value_name = "HOST", value_parser = cli::host, conflicts_with = "host")]
    host_argument: Option<String>,

    /// The server's TCP port (the same as --port)
    #[arg(value_name = "PORT", conflicts_with = "port")]
    port_argument: Option<u16>,

    /// Host name or IP address of the server
    #[arg(long, default_value = cli::DEFAULT_HOST, value_parser = cli::host)]
    host: String,

    #[command(flatten)]
    lines: cli::LineOptions,

    /// Longest reply line (and stdin line) accepted, delimiter not counted;
    /// a longer one ends the client with an error
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
}

const EXAMPLES: &str = "\
Examples:
  chat-client                      talk to chat-server on localhost:8007
  chat-client example.org 9000     the server at example.org, port 9000
  printf 'a\\nb\\n' | chat-client    send two lines, print both replies
  chat-client -p 9000 < lines.txt  send a file's lines, one per line
  chat-client --tls-ca ca.pem      TLS, trusting the CA in ca.pem
  chat-client --tls chat.example.org 6697
                                   TLS, checked against the system's roots";

fn main() -> ExitCode {
    let args = Args::parse();
    cli::exit_status("chat-client", connect(args))
}

#[tokio::main(flavor = "current_thread")]
async fn connect(args: Args) -> anyhow::Result<()> {
    let config = client::Config {
        host: args.host_argument.unwrap_or(args.host),
        port: args.port_argument.unwrap_or(args.lines.port),
        format: Arc::new(LineFormat::new(
            args.lines.delimiter_or(Delimiter::crlf()),
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
    };
    client::run(config).await
}
