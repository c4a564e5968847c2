//! A chat member over a real socket, for the chat tests: it reads the
//! greeting, sends lines, and reads what arrives line by line, each read
//! bounded by a timeout.

use std::collections::VecDeque;
use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::{connect, within};

pub struct Member {
    pub nick: String,
    reader: BufReader<OwnedReadHalf>,
    pub writer: OwnedWriteHalf,
    /// Lines that arrived inside the greeting: on a linked server, the
    /// `here:` line waits for the other servers while the room talks on.
    early: VecDeque<Vec<u8>>,
    /// The greeting's lines, from the welcome to `type to talk`, less
    /// those of others that arrived inside it and the recent lines.
    pub greeting: Vec<String>,
    /// The room's recent lines in the greeting, with their two marker
    /// lines; empty if it had none.
    pub recent: Vec<String>,
}

impl Member {
    /// Connects and reads the three greeting lines.
    pub async fn join(address: SocketAddr) -> Member {
        Self::join_stream(connect(address).await).await
    }

    /// Reads the greeting on `stream`.
    pub async fn join_stream(stream: TcpStream) -> Member {
        let (reader, writer) = stream.into_split();
        let mut member = Member {
            nick: String::new(),
            reader: BufReader::new(reader),
            writer,
            early: VecDeque::new(),
            greeting: Vec::new(),
            recent: Vec::new(),
        };
        let welcome = member.line().await;
        let nick = welcome
            .rsplit_once("you are ")
            .map(|(_, nick)| nick.to_string())
            .unwrap_or_else(|| panic!("a welcome line, not {welcome:?}"));
        let mut early = VecDeque::new();
        let mut in_recent = false;
        let here = loop {
            let line = member.line().await;
            if in_recent || line.starts_with("*** recent in #") {
                in_recent = line != chat::protocol::chat::RECENT_END;
                member.recent.push(line);
                continue;
            }
            if line.starts_with("*** here: ") {
                break line;
            }
            early.push_back(line.into_bytes());
        };
        let how_to_talk = member.line().await;
        assert!(how_to_talk.starts_with("*** type to talk"), "{how_to_talk}");
        member.early = early;
        member.greeting = vec![welcome, here, how_to_talk];
        member.nick = nick;
        member
    }

    /// Connects, and takes `nick` (passing over what others do meanwhile).
    pub async fn named(address: SocketAddr, nick: &str) -> Member {
        let mut member = Self::join(address).await;
        member.send(&format!("/nick {nick}")).await;
        let renamed = format!("*** you are now {nick}");
        while member.line().await != renamed {}
        member.nick = nick.to_string();
        member
    }

    /// Sends `line` and its line end (LF, as nc sends).
    pub async fn send(&mut self, line: &str) {
        self.send_bytes(format!("{line}\n").as_bytes()).await;
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        within("sending", self.writer.write_all(bytes))
            .await
            .expect("sending to the server");
    }

    /// The next line received, less its CRLF; panics at EOF.
    pub async fn line(&mut self) -> String {
        let bytes = self.line_bytes().await;
        String::from_utf8(bytes).expect("chat lines are UTF-8")
    }

    /// The next line received, as bytes, less its CRLF; panics at EOF.
    pub async fn line_bytes(&mut self) -> Vec<u8> {
        if let Some(line) = self.early.pop_front() {
            return line;
        }
        let mut line = Vec::new();
        let read = within(
            &format!("a line for {}", self.nick),
            self.reader.read_until(b'\n', &mut line),
        )
        .await
        .expect("reading a line");
        assert!(read > 0, "{}: the server closed the connection", self.nick);
        assert!(line.ends_with(b"\r\n"), "a line ends with CRLF: {line:?}");
        line.truncate(line.len() - 2);
        line
    }

    /// Checks that the next line received is `expected`.
    pub async fn expect(&mut self, expected: &str) {
        let line = self.line().await;
        assert_eq!(line, expected, "{} received", self.nick);
    }

    /// Everything until the server closes the connection.
    pub async fn rest(&mut self) -> String {
        let mut rest = Vec::new();
        for line in self.early.drain(..) {
            rest.extend_from_slice(&line);
            rest.extend_from_slice(b"\r\n");
        }
        within(
            "the server to close the connection",
            self.reader.read_to_end(&mut rest),
        )
        .await
        .expect("reading to the end");
        String::from_utf8(rest).expect("chat lines are UTF-8")
    }
}
