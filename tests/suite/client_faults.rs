//! `chat-client` when things go wrong: resets after replies, non-blocking
//! stdin and stdout, a server that does not answer the connection attempt,
//! and a server that closes with an error line.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[tokio::test]
async fn replies_received_before_a_reset_are_printed_first() {
    for count in [10, 1_000, 5_000] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let mut child = client(address, &[]).spawn().unwrap();
        let (mut stream, _) = within("the client to connect", listener.accept())
            .await
            .unwrap();
        // A line from the client says it is connected and running.
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"ready\n").await.unwrap();
        let mut ready = [0; b"ready\r\n".len()];
        within("the client's line", stream.read_exact(&mut ready))
            .await
            .unwrap();
        let lines = numbered_lines("before the reset", count);
        stream.write_all(&request_of(&lines)).await.unwrap();
        // A reset discards what the kernel has not sent yet: wait until the
        // client's kernel has it all.
        within("the lines to be acknowledged", async {
            while unacknowledged_bytes(&stream) > 0 {
                tokio::task::yield_now().await;
            }
        })
        .await;
        stream.set_zero_linger().unwrap();
        drop(stream);

        drop(stdin);
        let output = within("the client to fail", child.wait_with_output())
            .await
            .unwrap();
        let printed: String = lines.iter().map(|line| format!("{line}\n")).collect();
        assert!(
            output.stdout == printed.as_bytes(),
            "{count} lines sent, {} bytes of {} printed; {}: {}",
            output.stdout.len(),
            printed.len(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(output.status.code(), Some(1), "{count}");
        assert_eq!(
            String::from_utf8_lossy(&output.stderr).trim_end(),
            format!(
                "chat-client: error: reading from {address}: Connection reset by peer (os error 104)"
            )
        );
    }
}

/// Bytes sent on `stream` not yet acknowledged by the peer (`SIOCOUTQ`).
fn unacknowledged_bytes(stream: &tokio::net::TcpStream) -> i32 {
    let mut count: libc::c_int = 0;
    // SAFETY: the descriptor is open while `stream` is borrowed; SIOCOUTQ
    // (TIOCOUTQ in libc's names) writes one int.
    let status = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut count) };
    assert!(status >= 0, "{}", std::io::Error::last_os_error());
    count
}

/// An anonymous pipe whose `end` (`"read"` or `"write"`) is non-blocking.
fn pipe_non_blocking_at(end: &str) -> (std::io::PipeReader, std::io::PipeWriter) {
    let (reader, writer) = std::io::pipe().unwrap();
    let fd = match end {
        "read" => reader.as_raw_fd(),
        _ => writer.as_raw_fd(),
    };
    // SAFETY: `fd` is open, owned by the pipe ends above.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        assert!(libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) >= 0);
    }
    (reader, writer)
}

#[tokio::test]
async fn non_blocking_stdin_and_stdout_are_waited_for() {
    const LINES: usize = 200_000;
    let server = Server::start(&["--quiet"]).await;
    let (stdin_reader, mut stdin_writer) = pipe_non_blocking_at("read");
    let (mut stdout_reader, stdout_writer) = pipe_non_blocking_at("write");
    let mut child = client(server.address, &[])
        .stdin(Stdio::from(stdin_reader))
        .stdout(Stdio::from(stdout_writer))
        .spawn()
        .unwrap();
    // The client finds stdin empty at first, and stdout full often: this
    // side writes in small pieces and reads slowly.
    let lines = numbered_lines("non-blocking", LINES);
    let writer = std::thread::spawn(move || {
        for batch in lines.chunks(1000) {
            let input: String = batch.iter().map(|line| format!("{line}\n")).collect();
            stdin_writer.write_all(input.as_bytes()).unwrap();
        }
    });
    let reader = std::thread::spawn(move || {
        let mut printed = Vec::new();
        let mut chunk = [0; 512];
        loop {
            match stdout_reader.read(&mut chunk) {
                Ok(0) => return printed,
                Ok(count) => printed.extend_from_slice(&chunk[..count]),
                Err(error) => panic!("reading the client's stdout: {error}"),
            }
        }
    });
    let status = within("the client to exit", child.wait()).await.unwrap();
    let stderr = child.stderr.take().unwrap();
    writer.join().unwrap();
    let printed = reader.join().unwrap();
    let expected: String = numbered_lines("non-blocking", LINES)
        .iter()
        .map(|line| format!("You sent: {line}\n"))
        .collect();
    assert!(status.success(), "{status}: {}", read_all(stderr).await);
    assert_eq!(printed.len(), expected.len());
    assert!(printed == expected.as_bytes());
}

async fn read_all(mut stderr: tokio::process::ChildStderr) -> String {
    use tokio::io::AsyncReadExt;
    let mut text = String::new();
    let _ = stderr.read_to_string(&mut text).await;
    text
}

#[tokio::test]
async fn a_server_that_does_not_answer_the_connection_attempt_times_out() {
    // A backlog of one, filled: the kernel drops further connection
    // attempts without an answer, as a firewall does (on loopback, so it
    // runs wherever the tests do).
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let address = listener.local_addr().unwrap();
    let _queued = connect(address).await;

    let started = Instant::now();
    let output = run_client(address, &["--connect-timeout", "0.5"], b"").await;
    let elapsed = started.elapsed();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim_end(),
        format!("chat-client: error: connecting to {address}: no answer within 0.5s")
    );
    assert!(elapsed >= Duration::from_millis(500), "{elapsed:?}");
}

/// The address of a host that never answers, on a link this test makes in
/// a network namespace of its own: packets to it leave on a virtual cable
/// whose far end is down, so a connection attempt gets no answer at all.
const SILENT_HOST: &str = "192.0.2.2";

#[tokio::test]
async fn a_host_that_drops_the_connection_attempt_times_out() {
    // In new user and network namespaces (`unshare`, util-linux; `ip`,
    // iproute2), so no privilege is needed; only loopback and the test's
    // own cable exist there.
    let script = format!(
        "ip link set lo up && \
         ip link add host0 type veth peer name host1 && \
         ip addr add 192.0.2.1/24 dev host0 && ip link set host0 up && \
         ip neigh add {SILENT_HOST} lladdr 02:00:00:00:00:02 dev host0 nud permanent && \
         exec \"$0\" {SILENT_HOST} 8007 --connect-timeout 0.5"
    );
    let started = Instant::now();
    let output = run_with_input(
        command("unshare").args([
            "--user",
            "--map-root-user",
            "--net",
            "sh",
            "-c",
            &script,
            CLIENT,
        ]),
        b"",
    )
    .await;
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.trim_end(),
        format!("chat-client: error: connecting to {SILENT_HOST}:8007: no answer within 0.5s"),
        "(the test needs util-linux's unshare, iproute2's ip, and user namespaces)"
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(elapsed >= Duration::from_millis(500), "{elapsed:?}");
}

#[tokio::test]
async fn a_server_error_line_before_the_close_is_exit_1() {
    // Idle timeout: the client keeps stdin open and sends nothing.
    let server = Server::start(&["--quiet", "--idle-timeout", "0.2"]).await;
    let mut child = client(server.address, &[]).spawn().unwrap();
    let stdin = child.stdin.take().unwrap();
    let output = within("the client to exit", child.wait_with_output())
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "error: idle for 0.2 s\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "chat-client: error: server closed the connection: error: idle for 0.2 s\n"
    );
    assert_eq!(output.status.code(), Some(1));
    drop(stdin);

    // Server full.
    let server = Server::start(&["--quiet", "--max-connections", "1"]).await;
    let mut held = connect(server.address).await;
    ping(&mut held, "holding").await;
    let output = run_client(server.address, &[], b"hello\n").await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "chat-client: error: server closed the connection: error: server is full (1 connection)\n"
    );

    // Line too long; an ordinary close after replies is still exit 0.
    let server = Server::start(&["--quiet", "--max-line-bytes", "4"]).await;
    let output = run_client(server.address, &[], b"ok\ntoo long\n").await;
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "You sent: ok\nerror: line exceeds 4 bytes\n"
    );
    assert_eq!(output.status.code(), Some(1));
    let output = run_client(server.address, &[], b"ok\n").await;
    assert_eq!(String::from_utf8_lossy(&output.stdout), "You sent: ok\n");
    assert!(output.status.success());
}
