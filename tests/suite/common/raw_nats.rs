//! A NATS client written in the test, over a plain TCP socket: it sends
//! exactly the bytes a test gives it (headers a library would refuse
//! included), as a stranger on the broker can.

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::within;

pub struct RawNats {
    stream: BufReader<TcpStream>,
}

/// A message as it arrived: its header block, less the `NATS/1.0` line,
/// and its payload.
pub struct Arrived {
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

impl RawNats {
    pub async fn connect(port: u16) -> RawNats {
        let stream = within("the broker", TcpStream::connect(("127.0.0.1", port)))
            .await
            .expect("the broker accepts clients");
        let mut raw = RawNats {
            stream: BufReader::new(stream),
        };
        let info = raw.line().await;
        assert!(info.starts_with("INFO "), "{info}");
        raw.send(b"CONNECT {\"verbose\":false,\"headers\":true,\"no_responders\":true}\r\n")
            .await;
        raw.sync().await;
        raw
    }

    /// Publishes `payload` on `subject` with `headers`, each `Name: value`
    /// written as given, and waits until the broker has it.
    pub async fn publish(&mut self, subject: &str, headers: &[(&str, &[u8])], payload: &[u8]) {
        let mut block = b"NATS/1.0\r\n".to_vec();
        for (name, value) in headers {
            block.extend_from_slice(name.as_bytes());
            block.extend_from_slice(b": ");
            block.extend_from_slice(value);
            block.extend_from_slice(b"\r\n");
        }
        block.extend_from_slice(b"\r\n");
        let total = block.len() + payload.len();
        let mut command = format!("HPUB {subject} {} {total}\r\n", block.len()).into_bytes();
        command.extend_from_slice(&block);
        command.extend_from_slice(payload);
        command.extend_from_slice(b"\r\n");
        self.send(&command).await;
        self.sync().await;
    }

    pub async fn subscribe(&mut self, subject: &str, sid: u32) {
        self.send(format!("SUB {subject} {sid}\r\n").as_bytes())
            .await;
        self.sync().await;
    }

    /// The next message on a subscription (passing over pings).
    pub async fn next_message(&mut self) -> Arrived {
        loop {
            let line = self.line().await;
            if line == "PING" {
                self.send(b"PONG\r\n").await;
                continue;
            }
            let fields: Vec<&str> = line.split(' ').collect();
            assert_eq!(fields[0], "HMSG", "{line}");
            let header_len: usize = fields[fields.len() - 2].parse().unwrap();
            let total_len: usize = fields[fields.len() - 1].parse().unwrap();
            let mut body = vec![0; total_len + 2];
            within("a message's body", self.stream.read_exact(&mut body))
                .await
                .unwrap();
            let block = String::from_utf8_lossy(&body[..header_len]).into_owned();
            let headers = block
                .split("\r\n")
                .skip(1)
                .filter_map(|line| line.split_once(": "))
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect();
            return Arrived {
                headers,
                payload: body[header_len..total_len].to_vec(),
            };
        }
    }

    async fn sync(&mut self) {
        self.send(b"PING\r\n").await;
        loop {
            let line = self.line().await;
            assert!(!line.starts_with("-ERR"), "{line}");
            if line == "PONG" {
                return;
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        within(
            "writing to the broker",
            self.stream.get_mut().write_all(bytes),
        )
        .await
        .unwrap();
    }

    async fn line(&mut self) -> String {
        let mut line = String::new();
        within("a line from the broker", self.stream.read_line(&mut line))
            .await
            .unwrap();
        assert!(!line.is_empty(), "the broker closed the connection");
        line.trim_end().to_string()
    }
}
