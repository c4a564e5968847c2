//! `chat-client` on a terminal under a flood: how long a key typed while
//! 10,000 lines arrive takes to show on the typed row, against the same
//! key with nothing arriving, measured in the same run through a real
//! terminal (`tmux`, polled with `capture-pane` every millisecond, which
//! bounds the resolution). Needs `tmux` (Debian package `tmux`).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

#[path = "support/mod.rs"]
mod support;

const RUNS: usize = 9;
const FLOOD: usize = 10_000;
const SERVER: &str = env!("CARGO_BIN_EXE_chat-server");
const CLIENT: &str = env!("CARGO_BIN_EXE_chat-client");
const SOCKET: &str = "chat-bench-terminal";

fn tmux(args: &[&str]) -> String {
    let output = support::command("tmux")
        .args(["-L", SOCKET, "-f", "/dev/null"])
        .args(args)
        .output()
        .expect("tmux runs (Debian package tmux)");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn typed_row() -> String {
    let screen = tmux(&["capture-pane", "-p", "-t", "bench"]);
    let row = screen.lines().rev().find(|row| !row.trim().is_empty());
    row.unwrap_or("").trim_end().to_string()
}

fn wait_until(what: &str, done: impl Fn() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(30), "{what}");
        std::thread::sleep(Duration::from_millis(1));
    }
    started.elapsed()
}

/// Types `x`, and how long until the typed row shows it; then clears it.
fn key_latency() -> Duration {
    tmux(&["send-keys", "-t", "bench", "-l", "x"]);
    let shown = wait_until("the key to show", || typed_row() == "x");
    tmux(&["send-keys", "-t", "bench", "BSpace"]);
    wait_until("the key to go", || typed_row() != "x");
    shown
}

fn start_server() -> (Child, SocketAddr) {
    let mut server = support::command(SERVER)
        .args([
            "--chat",
            "--quiet",
            "--max-rate",
            "0",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chat-server starts");
    let mut log = BufReader::new(server.stderr.take().unwrap());
    let mut line = String::new();
    log.read_line(&mut line).unwrap();
    let address = line
        .split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a listening line")
        .parse()
        .unwrap();
    std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
    (server, address)
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn main() {
    let (mut server, address) = start_server();
    let client = format!("{CLIENT} --port {} --color never", address.port());
    tmux(&["kill-server"]);
    tmux(&[
        "new-session",
        "-d",
        "-x",
        "80",
        "-y",
        "24",
        "-s",
        "bench",
        &client,
    ]);
    wait_until("the client", || {
        tmux(&["capture-pane", "-p", "-t", "bench"]).contains("type to talk")
    });
    let mut flooder = TcpStream::connect(address).unwrap();
    flooder.write_all(b"/nick flooder\n").unwrap();
    let mut idle = Vec::new();
    let mut flooded = Vec::new();
    for run in 0..RUNS {
        idle.push(key_latency());
        let lines: String = (0..FLOOD).map(|n| format!("flood {run} {n}\n")).collect();
        flooder.write_all(lines.as_bytes()).unwrap();
        // Any of its lines: the first scrolls away at once.
        let arriving = format!("<flooder> flood {run} ");
        wait_until("the flood", || {
            tmux(&["capture-pane", "-p", "-t", "bench"]).contains(&arriving)
        });
        flooded.push(key_latency());
        let last = format!("<flooder> flood {run} {}", FLOOD - 1);
        wait_until("the flood's end", || {
            tmux(&["capture-pane", "-p", "-t", "bench"]).contains(&last)
        });
    }
    tmux(&["kill-server"]);
    let _ = server.kill();
    let (idle, flooded) = (median(idle), median(flooded));
    println!(
        "terminal: a key typed during a flood of {FLOOD} lines shows in {:.1} ms, against {:.1} ms \
         with nothing arriving: {:.2}x (medians of {RUNS}; target < 100 ms)",
        flooded.as_secs_f64() * 1e3,
        idle.as_secs_f64() * 1e3,
        flooded.as_secs_f64() / idle.as_secs_f64()
    );
}
