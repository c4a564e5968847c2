//! Shared by the integration tests: the real binaries, started and watched
//! by their events (the `listening on` line, a log line, a reply, EOF, an
//! exit), with a timeout on every wait so a bug fails a test instead of
//! hanging it.

use std::future::Future;
use std::net::SocketAddr;
use std::process::{ExitStatus, Output, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

pub mod broker;
pub mod certs;
pub mod member;
pub mod proxy;
pub mod raw_nats;
pub mod tmux;

/// The longest any single wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);

pub const SERVER: &str = env!("CARGO_BIN_EXE_chat-server");
pub const CLIENT: &str = env!("CARGO_BIN_EXE_chat-client");

/// A command for `program` that cannot see the developer's terminal: stdin
/// null, stdout and stderr piped, killed when dropped. Every program the
/// tests run starts here (clippy refuses `Command::new` anywhere else): a
/// child with the terminal as its stdin reads it, or sizes its output by
/// it (clap wraps `--help` to the terminal's width before it looks at
/// `COLUMNS`). A test that writes to the child's stdin sets it piped.
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    #[allow(clippy::disallowed_methods)] // The one place that may.
    let mut command = Command::new(program);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Awaits `future`, failing the test if it takes longer than [`WAIT`].
pub async fn within<F: Future>(what: &str, future: F) -> F::Output {
    within_for(WAIT, what, future).await
}

/// Awaits `future`, failing the test if it takes longer than `limit`.
pub async fn within_for<F: Future>(limit: Duration, what: &str, future: F) -> F::Output {
    match tokio::time::timeout(limit, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

/// A `chat-server` process on a free loopback port.
pub struct Server {
    pub child: Child,
    pub address: SocketAddr,
    /// Its log's messages after `listening on` (each line less its
    /// timestamp and level), read as they come so the server never blocks
    /// on a full pipe.
    log: mpsc::UnboundedReceiver<String>,
    /// The messages before `listening on` (start-up warnings, the link's
    /// first word), and that line itself.
    pub started: Vec<String>,
    /// Those but the listening line, for [`Server::wait_for_log`] to look
    /// at first.
    unseen: std::collections::VecDeque<String>,
}

/// The address in a `listening on ADDR` line (less its ` (TLS)`).
pub fn listening_address(rest: &str) -> SocketAddr {
    let address = rest.split(' ').next().unwrap_or(rest);
    address
        .parse()
        .unwrap_or_else(|_| panic!("the listening line names an address: {rest:?}"))
}

impl Server {
    /// Starts `chat-server --host 127.0.0.1 --port 0 ARGS` and waits for its
    /// `listening on` line.
    pub async fn start(args: &[&str]) -> Server {
        Self::start_command(
            command(SERVER)
                .args(["--host", "127.0.0.1", "--port", "0"])
                .args(args),
        )
        .await
    }

    /// Starts `command` (a `chat-server`, maybe wrapped) and waits for its
    /// `listening on` line.
    pub async fn start_command(command: &mut Command) -> Server {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("chat-server starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (lines, mut log) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if lines.send(log_message(&line).to_string()).is_err() {
                    break;
                }
            }
        });
        let mut started = Vec::new();
        let address = within("the listening line", async {
            loop {
                let Some(line) = log.recv().await else {
                    panic!("chat-server ended before `listening on ADDR`: {started:?}");
                };
                let bound = line.strip_prefix("listening on ").map(listening_address);
                started.push(line);
                if let Some(address) = bound {
                    return address;
                }
            }
        })
        .await;
        Server {
            child,
            address,
            log,
            unseen: started[..started.len() - 1].iter().cloned().collect(),
            started,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("the server is running")
    }

    /// Every log line that has arrived and not been waited for.
    pub fn log_so_far(&mut self) -> Vec<String> {
        let mut lines: Vec<String> = self.unseen.drain(..).collect();
        while let Ok(line) = self.log.try_recv() {
            lines.push(line);
        }
        lines
    }

    /// Waits for a log line satisfying `wanted`, and returns it.
    pub async fn wait_for_log(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        while let Some(line) = self.unseen.pop_front() {
            if wanted(&line) {
                return line;
            }
        }
        within(what, async {
            loop {
                match self.log.recv().await {
                    Some(line) if wanted(&line) => return line,
                    Some(_) => {}
                    None => panic!("the server's stderr ended before {what}"),
                }
            }
        })
        .await
    }

    /// Every log line until stderr closes (the server has exited).
    pub async fn rest_of_log(&mut self) -> Vec<String> {
        within("the end of the server's stderr", async {
            let mut lines = Vec::new();
            while let Some(line) = self.log.recv().await {
                lines.push(line);
            }
            lines
        })
        .await
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`).
    pub async fn signal(&self, name: &str) {
        send_signal(self.pid(), name).await;
    }

    /// Waits at most `limit` for the process to exit.
    pub async fn exit_within(&mut self, limit: Duration) -> ExitStatus {
        within_for(limit, "the server to exit", self.child.wait())
            .await
            .expect("waiting for the server")
    }

    /// Resident memory of the process, in KiB, from `/proc`.
    pub fn resident_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    /// The most resident memory the process has had so far, in KiB.
    pub fn peak_resident_kib(&self) -> u64 {
        self.status_kib("VmHWM:")
    }

    /// Starts the peak [`Server::peak_resident_kib`] reads from now
    /// (`/proc/PID/clear_refs`, Linux 4.0 and later).
    pub fn reset_peak(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5")
            .expect("/proc/PID/clear_refs is writable");
    }

    fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("/proc/PID/status is readable");
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("/proc/PID/status has {field}"))
    }
}

/// The message of a log line `TIMESTAMP LEVEL MESSAGE`; a line not of that
/// form (no timestamp, say) is returned whole, and matches no message.
pub fn log_message(line: &str) -> &str {
    let has_timestamp =
        |stamp: &str| stamp.len() >= 20 && stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T';
    let Some((stamp, rest)) = line.split_once(' ') else {
        return line;
    };
    let Some((level, message)) = rest.trim_start().split_once(' ') else {
        return line;
    };
    let known_level = ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&level);
    if has_timestamp(stamp) && known_level {
        message
    } else {
        line
    }
}

pub async fn send_signal(pid: u32, name: &str) {
    let status = command("kill")
        .args(["-s", name, &pid.to_string()])
        .status()
        .await
        .expect("kill runs");
    assert!(status.success(), "kill -s {name} {pid} failed");
}

pub async fn connect(address: SocketAddr) -> TcpStream {
    within("connecting", TcpStream::connect(address))
        .await
        .expect("the server accepts connections")
}

/// Everything the peer sends until it closes the connection.
pub async fn read_to_end(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    within(
        "the server to close the connection",
        stream.read_to_end(&mut received),
    )
    .await
    .expect("reading until the server closes");
    received
}

/// Reads exactly `len` bytes.
pub async fn read_exactly(stream: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut received = vec![0; len];
    within("a reply", stream.read_exact(&mut received))
        .await
        .expect("reading a reply");
    received
}

/// Sends `line` and checks that its reply arrives.
pub async fn ping(stream: &mut TcpStream, line: &str) {
    stream
        .write_all(format!("{line}\r\n").as_bytes())
        .await
        .expect("sending a line");
    let expected = reply(line);
    assert_eq!(
        read_exactly(stream, expected.len()).await,
        expected.as_bytes()
    );
}

/// Sends `request` and returns everything received until the server closes.
pub async fn exchange(address: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = connect(address).await;
    stream.write_all(request).await.expect("sending");
    read_to_end(&mut stream).await
}

/// `You sent: LINE\r\n`.
pub fn reply(line: &str) -> String {
    format!("You sent: {line}\r\n")
}

/// A `chat-client` command for the server at `address`, all pipes set.
pub fn client(address: SocketAddr, args: &[&str]) -> Command {
    let mut client = command(CLIENT);
    client
        .args([
            "--host",
            &address.ip().to_string(),
            "--port",
            &address.port().to_string(),
        ])
        .args(args)
        .stdin(Stdio::piped());
    client
}

/// Runs `chat-client` with `input` on stdin (then EOF) and returns what it
/// printed and how it exited.
pub async fn run_client(address: SocketAddr, args: &[&str], input: &[u8]) -> Output {
    run_with_input(&mut client(address, args), input).await
}

/// Runs `command` with `input` on stdin (then EOF) and returns what it
/// printed and how it exited.
pub async fn run_with_input(command: &mut Command, input: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the program starts");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let input = input.to_vec();
    // Written concurrently with reading the output, so a large input cannot
    // deadlock against a full stdout pipe.
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&input).await;
    });
    let output = within("the program to exit", child.wait_with_output())
        .await
        .expect("waiting for the program");
    writer.await.expect("the stdin writer finishes");
    output
}

/// The number in `key=N` of a close log line.
pub fn log_field(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|field| field.strip_prefix(key)?.strip_prefix('='))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {key}=N in {line:?}"))
}

/// Writes `payload` and reads no reply, until all of it is sent or the
/// server stops taking it (a second without progress). Returns how much was
/// sent by then, and the task, which goes on trying in the background and
/// keeps the connection open.
pub async fn send_until_stalled(
    mut writer: tokio::net::tcp::OwnedWriteHalf,
    payload: Vec<u8>,
) -> (usize, tokio::task::JoinHandle<()>) {
    let (progress, mut sent) = tokio::sync::watch::channel(0);
    let task = tokio::spawn(async move {
        let mut total = 0;
        for chunk in payload.chunks(64 * 1024) {
            if writer.write_all(chunk).await.is_err() {
                break;
            }
            total += chunk.len();
            progress.send_replace(total);
        }
        // Dropping `progress` says it is all sent; the connection stays open.
        drop(progress);
        std::future::pending::<()>().await;
    });
    let stalled_at = within("the sender to stall or finish", async {
        while let Ok(Ok(())) = tokio::time::timeout(Duration::from_secs(1), sent.changed()).await {}
        *sent.borrow()
    })
    .await;
    (stalled_at, task)
}

/// `count` numbered lines, `PREFIX N\r\n`.
pub fn numbered_lines(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix} {i}")).collect()
}

/// The lines, each followed by CRLF, as one request.
pub fn request_of(lines: &[String]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|line| [line.as_bytes(), b"\r\n"])
        .flatten()
        .copied()
        .collect()
}

/// The replies to the lines, in order.
pub fn replies_to(lines: &[String]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|line| reply(line).into_bytes())
        .collect()
}

/// What `program ARGS` prints on stderr, checked to be one line and exit 1.
pub async fn start_up_error(program: &str, args: &[&str]) -> String {
    let output = within("the program to fail", command(program).args(args).output())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr.trim_end().to_string()
}

/// Checks that `program` refuses each set of arguments the way clap does:
/// exit status 2, and an `error:` message pointing to `--help`.
pub async fn assert_refuses_arguments(program: &str, cases: &[&[&str]]) {
    for args in cases {
        let output = within(
            "the program to refuse its arguments",
            command(program).args(*args).output(),
        )
        .await
        .expect("the program runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(stderr.contains("try '--help'"), "{args:?}: {stderr}");
    }
}

/// How many descriptors process `pid` holds open.
pub fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/PID/fd is readable")
        .count()
}

/// Write system calls made by a running process so far (`syscw` in
/// `/proc/PID/io`): `write` and `writev` on any file, sockets included;
/// `send` and `sendto` are not counted.
pub fn write_syscalls(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).expect("/proc/PID/io is readable");
    io.lines()
        .find_map(|line| line.strip_prefix("syscw: "))
        .and_then(|count| count.parse().ok())
        .expect("/proc/PID/io has syscw")
}

/// A running `chat-client` whose stdin stays open until [`finish`]: for
/// tests that talk to it a line at a time.
///
/// [`finish`]: LiveClient::finish
pub struct LiveClient {
    pub child: Child,
    stdin: tokio::process::ChildStdin,
    stdout: BufReader<tokio::process::ChildStdout>,
}

impl LiveClient {
    pub fn start(address: SocketAddr, args: &[&str]) -> LiveClient {
        let mut child = client(address, args).spawn().expect("chat-client starts");
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        LiveClient {
            child,
            stdin,
            stdout,
        }
    }

    pub async fn send(&mut self, input: &[u8]) {
        self.stdin
            .write_all(input)
            .await
            .expect("writing to the client's stdin");
    }

    /// The next line the client prints, `\n` included.
    pub async fn printed_line(&mut self) -> String {
        let mut line = String::new();
        within("a printed line", self.stdout.read_line(&mut line))
            .await
            .expect("reading the client's stdout");
        line
    }

    /// Closes stdin and checks that the client then exits with success.
    pub async fn finish(self) {
        let LiveClient {
            mut child, stdin, ..
        } = self;
        drop(stdin);
        let status = within("the client to exit", child.wait())
            .await
            .expect("waiting for the client");
        assert!(status.success(), "{status}");
    }
}
