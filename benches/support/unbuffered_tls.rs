//! A reply-sized TLS echo on rustls's unbuffered API
//! (`UnbufferedServerConnection`), where the program owns the buffers:
//! what chat-server's TLS would cost on that API rather than on
//! tokio-rustls, measured beside it in `benches/tls.rs`. Like chat-server,
//! it holds no buffer while its socket is empty.

use std::sync::{Arc, LazyLock};

use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::ServerConfig;

use chat::protocol::REPLY_PREFIX;

use super::LINE;

/// The most plaintext encrypted at once: one full record.
const RECORD: usize = 16 * 1024;

/// A record's worth of replies, made once and shared by every connection.
static REPLIES: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let reply_line = [REPLY_PREFIX, LINE].concat();
    reply_line.repeat(RECORD / reply_line.len())
});

/// Serves one connection until it closes or fails, reading at most
/// `read_size` bytes at a time and answering each whole [`LINE`] with a
/// reply of chat-server's length.
pub async fn serve(mut tcp: TcpStream, config: Arc<ServerConfig>, read_size: usize) {
    let Ok(mut tls) = UnbufferedServerConnection::new(config) else {
        return;
    };
    let reply_len = REPLY_PREFIX.len() + LINE.len();
    let replies = &REPLIES[..];
    // Received bytes not yet processed: the whole of `incoming`, read into
    // its spare room without zeroing it first, as chat-server reads.
    let mut incoming: Vec<u8> = Vec::new();
    let mut outgoing: Vec<u8> = Vec::new();
    let mut filled = 0;
    // Bytes of lines received and not yet answered.
    let mut owed = 0;
    loop {
        let status = tls.process_tls_records(&mut incoming);
        let mut discard = status.discard;
        let mut read_more = false;
        match status.state {
            Ok(ConnectionState::ReadTraffic(mut traffic)) => {
                while let Some(Ok(record)) = traffic.next_record() {
                    discard += record.discard;
                    owed += record.payload.len();
                }
            }
            Ok(ConnectionState::EncodeTlsData(mut encode)) => loop {
                match encode.encode(&mut outgoing[filled..]) {
                    Ok(count) => {
                        filled += count;
                        break;
                    }
                    Err(EncodeError::InsufficientSize(need)) => {
                        outgoing.resize(filled + need.required_size, 0)
                    }
                    Err(_) => return,
                }
            },
            Ok(ConnectionState::TransmitTlsData(transmit)) => {
                if tcp.write_all(&outgoing[..filled]).await.is_err() {
                    return;
                }
                filled = 0;
                transmit.done();
            }
            Ok(ConnectionState::BlockedHandshake) => read_more = true,
            Ok(ConnectionState::WriteTraffic(mut traffic)) => {
                let lines = owed / LINE.len();
                if lines == 0 {
                    read_more = true;
                } else {
                    // Whole records of replies, encrypted one after another
                    // into one buffer and sent in one write.
                    let mut left = lines * reply_len;
                    while left > 0 {
                        let chunk = &replies[..left.min(replies.len())];
                        match traffic.encrypt(chunk, &mut outgoing[filled..]) {
                            Ok(count) => {
                                filled += count;
                                left -= chunk.len();
                            }
                            Err(EncryptError::InsufficientSize(need)) => {
                                outgoing.resize(filled + need.required_size, 0)
                            }
                            Err(_) => return,
                        }
                    }
                    owed -= lines * LINE.len();
                    if tcp.write_all(&outgoing[..filled]).await.is_err() {
                        return;
                    }
                    filled = 0;
                }
            }
            Ok(ConnectionState::PeerClosed | ConnectionState::Closed) | Err(_) => return,
            Ok(_) => return,
        }
        incoming.drain(..discard);
        if read_more {
            if incoming.is_empty() {
                // Nothing kept while the socket is empty, as chat-server.
                incoming = Vec::new();
                outgoing = Vec::new();
                if tcp.readable().await.is_err() {
                    return;
                }
            }
            incoming.reserve(read_size);
            if !matches!(tcp.read_buf(&mut incoming).await, Ok(1..)) {
                return;
            }
        }
    }
}
