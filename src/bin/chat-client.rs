//! `chat-client`: sends stdin lines to a `chat-server` and prints its
//! replies until the server closes the connection. Parses the flags and
//! calls [`chat::client`].

use std::process::ExitCode;
use std::sync::Arc;

use chat::cli;
use chat::client;
use chat::framing::{Delimiter, LineFormat};
use clap::Parser;

/// Sends each stdin line to a chat-server and prints each reply; exits when
/// the server closes the connection (send "." to ask it to).
#[derive(Parser, Debug)]
#[command(name = "chat-client", version)]
struct Args {
    /// Host name or IP address of the server
    #[arg(long, default_value = cli::DEFAULT_HOST, value_parser = cli::host)]
    host: String,

    /// TCP port of the server
    #[arg(long, default_value_t = cli::DEFAULT_PORT)]
    port: u16,

    #[arg(long, default_value = "crlf", help = cli::DELIMITER_HELP)]
    delimiter: Delimiter,

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
}

fn main() -> ExitCode {
    let args = Args::parse();
    cli::exit_status("chat-client", connect(args))
}

#[tokio::main(flavor = "current_thread")]
async fn connect(args: Args) -> anyhow::Result<()> {
    let config = client::Config {
        host: args.host,
        port: args.port,
        format: Arc::new(LineFormat::new(args.delimiter, args.max_line_bytes)),
        connect_timeout: args.connect_timeout.as_limit(),
    };
    client::run(config).await
}
