//! The server's password (`--password-file`, chat mode): nothing heard and
//! nothing said before `/pass`, three tries a connection, five wrong ones
//! an address within ten minutes, and a file others can read refused.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use chat::protocol::chat::{PASS_FIRST, PASSWORD_NEEDED, WRONG_PASSWORD, welcome};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::member::Member;
use crate::common::*;

/// A distinctive password, to look for where it must not be.
const PASSWORD: &str = "zebra-quartz-7193";

/// A file holding `contents`, with `mode`, in a directory of its own.
fn password_file(contents: &str, mode: u32) -> PathBuf {
    static MADE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let made = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("chat-pass-{}-{made}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("password");
    std::fs::write(&file, contents).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
    file
}

async fn gated_server() -> Server {
    let file = password_file(&format!("{PASSWORD}\n"), 0o600);
    Server::start(&["--chat", "--password-file", file.to_str().unwrap()]).await
}

/// One line, read a byte at a time (so the rest stays in the socket).
async fn line(stream: &mut TcpStream) -> String {
    within("a line", async {
        let mut line = Vec::new();
        while !line.ends_with(b"\r\n") {
            let mut byte = [0];
            assert_eq!(
                stream.read(&mut byte).await.unwrap(),
                1,
                "closed after {line:?}"
            );
            line.push(byte[0]);
        }
        line.truncate(line.len() - 2);
        String::from_utf8(line).unwrap()
    })
    .await
}

async fn send(stream: &mut TcpStream, line: &str) {
    stream
        .write_all(format!("{line}\r\n").as_bytes())
        .await
        .unwrap();
}

/// Connects, and reads the welcome and the request for the password.
async fn at_the_gate(server: &Server) -> (TcpStream, String) {
    let mut stream = connect(server.address).await;
    let first = line(&mut stream).await;
    let nick = first
        .rsplit_once("you are ")
        .map(|(_, nick)| nick.to_string())
        .unwrap();
    assert_eq!(first, welcome("lobby", &nick));
    assert_eq!(line(&mut stream).await, PASSWORD_NEEDED);
    (stream, nick)
}

/// Passes the gate with the right password, then reads the usual greeting.
async fn come_in(mut stream: TcpStream) -> Member {
    send(&mut stream, &format!("/pass {PASSWORD}")).await;
    Member::join_stream(stream).await
}

#[tokio::test]
async fn nothing_is_heard_or_said_before_the_password() {
    let server = gated_server().await;
    let (stream, _) = at_the_gate(&server).await;
    let mut alice = come_in(stream).await;
    let (mut stranger, nick) = at_the_gate(&server).await;
    for attempt in ["hello", "/who", "/nick bob", "/msg alice hi"] {
        send(&mut stranger, attempt).await;
        assert_eq!(line(&mut stranger).await, PASS_FIRST, "{attempt}");
    }
    alice.send("said before the stranger came in").await;
    alice.send("/who").await;
    // The stranger is nobody yet: not in the room, not a nick to write to.
    alice
        .expect(&format!("*** here in #lobby (1): {}", alice.nick))
        .await;
    alice.send(&format!("/msg {nick} psst")).await;
    alice
        .expect(&format!("error: no such nick \"{nick}\""))
        .await;
    send(&mut stranger, "/pass wrong").await;
    assert_eq!(line(&mut stranger).await, WRONG_PASSWORD);
    // The right one: the usual greeting, the room's recent lines in it.
    let stranger = come_in(stranger).await;
    assert_eq!(stranger.greeting[0], welcome("lobby", &nick));
    assert!(
        stranger
            .recent
            .iter()
            .any(|line| line.ends_with("> said before the stranger came in")),
        "{:?}",
        stranger.recent
    );
    alice.expect(&format!("*** {nick} joined")).await;
}

#[tokio::test]
async fn the_third_wrong_password_closes_the_connection() {
    let mut server = gated_server().await;
    let (mut stream, _) = at_the_gate(&server).await;
    for _ in 0..3 {
        send(&mut stream, "/pass not it").await;
        assert_eq!(line(&mut stream).await, WRONG_PASSWORD);
    }
    assert_eq!(read_to_end(&mut stream).await, b"");
    drop(stream);
    server
        .wait_for_log("the close", |line| line.contains("closed (wrong password)"))
        .await;
    // Nothing secret in the log: the right password, or a wrong one.
    for line in server.log_so_far() {
        assert!(
            !line.contains(PASSWORD) && !line.contains("not it"),
            "{line}"
        );
    }
}

#[tokio::test]
async fn five_wrong_passwords_from_an_address_refuse_even_the_right_one() {
    let server = gated_server().await;
    for tries in [3, 2] {
        let (mut stream, _) = at_the_gate(&server).await;
        for _ in 0..tries {
            send(&mut stream, "/pass guess").await;
            assert_eq!(line(&mut stream).await, WRONG_PASSWORD);
        }
    }
    let (mut stream, _) = at_the_gate(&server).await;
    send(&mut stream, &format!("/pass {PASSWORD}")).await;
    let refused = line(&mut stream).await;
    let seconds: u64 = refused
        .strip_prefix("error: too many wrong passwords; try again in ")
        .and_then(|rest| rest.strip_suffix(" s"))
        .and_then(|seconds| seconds.parse().ok())
        .unwrap_or_else(|| panic!("{refused:?}"));
    assert!((1..=600).contains(&seconds), "{seconds}");
}

#[tokio::test]
async fn a_password_file_others_may_read_or_an_empty_one_is_refused() {
    let readable = password_file(&format!("{PASSWORD}\n"), 0o644);
    let empty = password_file("\n", 0o600);
    for (file, wanted) in [
        (
            &readable,
            "may be read by others (mode 644); chmod 600".to_string(),
        ),
        (&empty, "its first line, the password, is empty".to_string()),
    ] {
        let file = file.to_str().unwrap();
        let stderr = start_up_error(SERVER, &["--chat", "--password-file", file]).await;
        assert!(stderr.contains(&wanted), "{stderr}");
        assert!(!stderr.contains(PASSWORD), "{stderr}");
    }
    assert_refuses_arguments(SERVER, &[&["--password-file", "x"]]).await;
}
