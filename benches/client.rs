//! `chat-client` end to end: 1,000,000 lines piped through it to the server
//! and back to stdout, against a baseline client that moves the same bytes
//! stdin -> socket -> stdout with no framing (a plain read/write loop each
//! way, on two threads), reading as much at a time as `chat-client` does
//! (64 KiB from stdin, 256 KiB from the socket). Both talk to the same
//! in-process server, and both are separate processes fed and drained by
//! this one. Each run's ratio is printed as a range over the runs and as
//! the ratio of the medians.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Instant;

#[path = "support/mod.rs"]
mod support;
use chat::protocol::REPLY_PREFIX;
use support::Kind;

const LINES: usize = 1_000_000;
const RUNS: usize = 31;
/// The argument that makes this program the baseline client.
const RAW_CLIENT: &str = "--raw-client";

/// Pipes `input` through `command` and returns the seconds it took and the
/// bytes it printed.
fn pipe_through(command: &mut Command, input: &'static [u8]) -> (f64, usize) {
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || stdin.write_all(input).unwrap());
    let mut stdout = child.stdout.take().unwrap();
    let mut buffer = vec![0; 64 * 1024];
    let mut printed = 0;
    loop {
        match stdout.read(&mut buffer).unwrap() {
            0 => break,
            count => printed += count,
        }
    }
    assert!(child.wait().unwrap().success());
    feeder.join().unwrap();
    (started.elapsed().as_secs_f64(), printed)
}

/// The baseline: stdin to the socket and the socket to stdout, bytes as
/// they come, as much at a time as `chat-client` reads; half-closes at the
/// end of stdin and exits when the server closes.
fn raw_client(address: SocketAddr) {
    let stream = TcpStream::connect(address).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut to_server = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buffer = vec![0; chat::client::STDIN_READ_CHUNK];
        loop {
            match stdin.read(&mut buffer).unwrap() {
                0 => break,
                count => to_server.write_all(&buffer[..count]).unwrap(),
            }
        }
        to_server.shutdown(Shutdown::Write).unwrap();
    });
    let mut from_server = stream;
    let mut stdout = std::io::stdout().lock();
    let mut buffer = vec![0; chat::client::READ_CHUNK];
    loop {
        match from_server.read(&mut buffer).unwrap() {
            0 => break,
            count => stdout.write_all(&buffer[..count]).unwrap(),
        }
    }
    stdout.flush().unwrap();
    sender.join().unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|arg| arg == RAW_CLIENT) {
        return raw_client(args[at + 1].parse().unwrap());
    }

    let runtime = support::server_runtime();
    let address = support::start(&runtime, Kind::Chat);
    // CRLF lines: the baseline sends them as they are, chat-client turns
    // each `\r\n` into `\r\n` again, so the server gets the same bytes.
    let input: &'static [u8] = (0..LINES)
        .flat_map(|i| format!("line {i:>9} of the client bench\r\n").into_bytes())
        .collect::<Vec<u8>>()
        .leak();
    let port = address.port().to_string();
    let exe = std::env::current_exe().unwrap();

    let (mut chat, mut raw) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let (seconds, printed) = pipe_through(
            support::command(env!("CARGO_BIN_EXE_chat-client")).args([
                "--host",
                "127.0.0.1",
                "--port",
                &port,
            ]),
            input,
        );
        // One `You sent: LINE\n` per line: the line less its `\r`.
        assert_eq!(printed, input.len() + LINES * (REPLY_PREFIX.len() - 1));
        chat.push(LINES as f64 / seconds);

        let (seconds, printed) = pipe_through(
            support::command(&exe).args([RAW_CLIENT, &address.to_string()]),
            input,
        );
        assert_eq!(printed, input.len() + LINES * REPLY_PREFIX.len());
        raw.push(LINES as f64 / seconds);
    }
    let ratios: Vec<f64> = chat
        .iter()
        .zip(&raw)
        .map(|(chat, raw)| chat / raw)
        .collect();
    let (chat, raw) = (support::median(&mut chat), support::median(&mut raw));
    let ratio = chat / raw;
    println!("client: {LINES} lines piped through to the server and back, median of {RUNS} runs");
    println!(
        "chat-client {} lines/s, raw byte client {} lines/s: {ratio:.2}x (runs {}) \
         (target >= 0.85x) {}",
        support::per_second(chat),
        support::per_second(raw),
        support::range(&ratios, |ratio| format!("{ratio:.2}x")),
        if ratio >= 0.85 { "ok" } else { "MISSED" }
    );
}
