//! The chat bench's baselines, each given every advantage chat-server has
//! (64 KiB reads, one formatted buffer shared by every receiver):
//! - `per_line`: the design of tokio's `examples/chat.rs`: an unbounded
//!   queue per member and one write call per line per member.
//! - `raw`: the bound on fan-out: each chunk read is queued, as it is, for
//!   every other connection, and each writes all it has queued in one
//!   `writev`; no lines, no prefixes, no limits.
//!
//! Each greets a connection with one line once it is registered, so a
//! client knows from when on it receives.

use std::collections::{HashMap, VecDeque};
use std::io::IoSlice;
use std::sync::{Arc, Mutex};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// The line each baseline greets a registered connection with.
pub const REGISTERED: &[u8] = b"welcome\r\n";
const READ_SIZE: usize = 64 * 1024;

type Peers = Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Bytes>>>>;

/// Serves `listener` with the per-line-write design, forever.
pub async fn per_line(listener: TcpListener) {
    serve(listener, per_line_member).await;
}

/// Serves `listener` with the raw fan-out bound, forever.
pub async fn raw(listener: TcpListener) {
    serve(listener, raw_member).await;
}

async fn serve<F, Fut>(listener: TcpListener, member: F)
where
    F: Fn(TcpStream, u64, Peers, mpsc::UnboundedReceiver<Bytes>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let peers: Peers = Arc::default();
    let mut next = 0;
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (sender, receiver) = mpsc::unbounded_channel();
        peers.lock().unwrap().insert(next, sender);
        tokio::spawn(member(stream, next, Arc::clone(&peers), receiver));
        next += 1;
    }
}

/// Sends `bytes` to every peer but `me`.
fn broadcast(peers: &Peers, me: u64, bytes: &Bytes) {
    for (id, peer) in peers.lock().unwrap().iter() {
        if *id != me {
            let _ = peer.send(bytes.clone());
        }
    }
}

async fn per_line_member(
    stream: TcpStream,
    me: u64,
    peers: Peers,
    mut inbox: mpsc::UnboundedReceiver<Bytes>,
) {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::with_capacity(READ_SIZE, reader);
    let nick = format!("guest{me}");
    let mut line = Vec::new();
    if writer.write_all(REGISTERED).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            read = reader.read_until(b'\n', &mut line) => {
                if !matches!(read, Ok(1..)) {
                    break;
                }
                let text = line.strip_suffix(b"\n").unwrap_or(&line);
                let text = text.strip_suffix(b"\r").unwrap_or(text);
                let mut out = BytesMut::with_capacity(text.len() + nick.len() + 5);
                out.extend_from_slice(b"<");
                out.extend_from_slice(nick.as_bytes());
                out.extend_from_slice(b"> ");
                out.extend_from_slice(text);
                out.extend_from_slice(b"\r\n");
                broadcast(&peers, me, &out.freeze());
                line.clear();
            }
            Some(message) = inbox.recv() => {
                if writer.write_all(&message).await.is_err() {
                    break;
                }
            }
        }
    }
    peers.lock().unwrap().remove(&me);
}

async fn raw_member(
    stream: TcpStream,
    me: u64,
    peers: Peers,
    mut inbox: mpsc::UnboundedReceiver<Bytes>,
) {
    let (mut reader, mut writer) = stream.into_split();
    if writer.write_all(REGISTERED).await.is_err() {
        return;
    }
    let reading = {
        let peers = Arc::clone(&peers);
        async move {
            let mut buffer = BytesMut::new();
            loop {
                buffer.reserve(READ_SIZE);
                match reader.read_buf(&mut buffer).await {
                    Ok(1..) => broadcast(&peers, me, &buffer.split().freeze()),
                    _ => break,
                }
            }
        }
    };
    let writing = async move {
        let mut pending: VecDeque<Bytes> = VecDeque::new();
        while let Some(first) = inbox.recv().await {
            pending.push_back(first);
            while !pending.is_empty() {
                while let Ok(more) = inbox.try_recv() {
                    pending.push_back(more);
                }
                let mut slices = [IoSlice::new(&[]); 64];
                let count = pending
                    .iter()
                    .zip(&mut slices)
                    .map(|(part, slice)| *slice = IoSlice::new(part))
                    .count();
                let mut written = match writer.write_vectored(&slices[..count]).await {
                    Ok(written @ 1..) => written,
                    _ => return,
                };
                while written > 0 {
                    let Some(front) = pending.front_mut() else {
                        break;
                    };
                    if written >= front.len() {
                        written -= front.len();
                        pending.pop_front();
                    } else {
                        front.advance(written);
                        written = 0;
                    }
                }
            }
        }
    };
    tokio::select! {
        () = reading => {}
        () = writing => {}
    }
    peers.lock().unwrap().remove(&me);
}
