//! The transport inside TLS, over real loopback sockets whose buffers are
//! small: bytes written become TLS records that wait in rustls when the
//! socket is full, and must go out even when nothing more is written.

use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rustls_pki_types::{PrivatePkcs8KeyDer, ServerName};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig};

use super::queued::SendQueue;
use super::{Connection, Stream, TlsSession};
use crate::delimiter::Delimiter;
use crate::framing::LineFormat;
use crate::server::Config;

/// More than the sockets below hold, less than rustls takes at once: one
/// write takes it all, and most of it waits in records.
const PAYLOAD: usize = 32 * 1024;
/// Socket buffers on both sides (the kernel doubles them).
const SOCKET_BUFFER: u32 = 4096;
const WAIT: Duration = Duration::from_secs(10);

/// A connection served inside TLS, and a client task that reads all it is
/// sent and returns how many bytes that was.
async fn tls_connection() -> (Connection, JoinHandle<usize>, watch::Sender<()>) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = certified.cert.der().clone();
    let key = PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
    let server = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key.into())
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let reader = tokio::spawn(async move {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(SOCKET_BUFFER).unwrap();
        let stream = socket.connect(address).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let connector = TlsConnector::from(Arc::new(client));
        let mut stream = connector.connect(name, stream).await.unwrap();
        let mut received = Vec::new();
        // Until close_notify, or the server's end of the test.
        let _ = stream.read_to_end(&mut received).await;
        received.len()
    });
    let (stream, _) = listener.accept().await.unwrap();
    socket2::SockRef::from(&stream)
        .set_send_buffer_size(SOCKET_BUFFER as usize)
        .unwrap();
    let stream = TlsSession::accept(stream, Arc::new(server)).await.unwrap();
    let config = Config {
        format: Arc::new(LineFormat::new(Delimiter::crlf(), 1024)),
        max_connections: 1,
        idle_timeout: None,
        log_connections: false,
        chat: None,
        per_address: None,
        tls: None,
        close_stall: crate::server::CLOSE_STALL,
    };
    let (stop_sender, stop) = watch::channel(());
    let connection = Connection::new(Stream::Tls(Box::new(stream)), Arc::new(config), stop);
    (connection, reader, stop_sender)
}

/// Closes `connection` (close_notify first) and returns what its reader got.
async fn bytes_received(mut connection: Connection, reader: JoinHandle<usize>) -> usize {
    let closed = connection.close(&super::End::Quit, None);
    tokio::time::timeout(WAIT, closed).await.expect("closed");
    tokio::time::timeout(WAIT, reader)
        .await
        .expect("the reader ends")
        .unwrap()
}

#[tokio::test]
async fn a_flush_sends_the_records_the_outbox_became() {
    let (mut connection, reader, _stop) = tls_connection().await;
    connection.outbox = BytesMut::from(&[b'x'; PAYLOAD][..]);
    tokio::time::timeout(WAIT, connection.flush())
        .await
        .expect("the flush ends")
        .unwrap_or_else(|end| panic!("{end}"));
    assert!(connection.outbox.is_empty());
    assert!(!connection.stream.has_unsent(), "records left unsent");
    assert_eq!(bytes_received(connection, reader).await, PAYLOAD);
}

#[tokio::test]
async fn a_wait_sends_records_left_when_the_queue_is_empty() {
    let (mut connection, reader, _stop) = tls_connection().await;
    let mut queue = SendQueue::default();
    queue.parts().push_back(Bytes::from(vec![b'x'; PAYLOAD]));
    connection.write_queued(&mut queue).unwrap();
    assert!(queue.is_empty(), "rustls takes it all at once");
    assert!(connection.stream.has_unsent(), "the socket cannot");
    // As a chat member does: with nothing queued, it waits for its input
    // and its mailbox, and the records go out meanwhile.
    while connection.stream.has_unsent() {
        let waited = connection.wait(false, !queue.is_empty(), |_| Poll::<()>::Pending);
        tokio::time::timeout(WAIT, waited)
            .await
            .expect("the records go out while waiting")
            .unwrap_or_else(|end| panic!("{end}"));
        connection.write_queued(&mut queue).unwrap();
    }
    assert_eq!(bytes_received(connection, reader).await, PAYLOAD);
}
