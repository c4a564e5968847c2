//! The socket a connection is served on: plain TCP, or TLS over TCP. The
//! transport reads, writes and closes through this one type, so both modes
//! work the same inside TLS; what differs is here.
//!
//! With TLS ([`TlsSession`]), bytes written are first encrypted into
//! records held until the socket takes them, so "written" is not "sent":
//! whoever writes without waiting (a chat member) must push those records
//! out too ([`Stream::has_unsent`], [`Stream::poll_writable`]).

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::tls_session::TlsSession;
use crate::framing::LineSplitter;

pub(crate) enum Stream {
    Tcp(TcpStream),
    /// Boxed: a TLS session is a few kilobytes, which plain connections
    /// should not carry.
    Tls(Box<TlsSession>),
}

impl Stream {
    /// The TCP socket under it all.
    pub(super) fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Tcp(stream) => stream,
            Stream::Tls(session) => session.tcp(),
        }
    }

    /// The TLS version agreed (`TLS 1.3`), for the log; `None` for plain
    /// TCP.
    pub(super) fn tls_version(&self) -> Option<&'static str> {
        let Stream::Tls(session) = self else {
            return None;
        };
        Some(crate::tls::version_name(session.protocol_version()))
    }

    /// Replies are batched by hand, so Nagle's delay would only add latency.
    pub(super) fn set_nodelay(&self) {
        let _ = self.tcp().set_nodelay(true);
    }

    /// Reads what has arrived into `lines`, with room for at least `spare`
    /// bytes; pending (and woken later) when nothing has. The buffer is
    /// reserved only once there is something to read, so a connection that
    /// waits holds none and a wake-up costs no allocation. `Ok(0)` is the
    /// end of input (with TLS, the client's close_notify).
    pub(super) fn poll_read_into(
        &mut self,
        context: &mut Context<'_>,
        lines: &mut LineSplitter,
        spare: usize,
    ) -> Poll<io::Result<usize>> {
        match self {
            Stream::Tcp(stream) => loop {
                if stream.poll_read_ready(context)?.is_pending() {
                    return Poll::Pending;
                }
                match stream.try_read_buf(lines.buffer_for_read(spare)) {
                    // `WouldBlock` cleared the readiness: the next poll
                    // registers for the next bytes.
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                    read => return Poll::Ready(read),
                }
            },
            Stream::Tls(session) => session.poll_read_into(context, lines, spare),
        }
    }

    /// Writes as much of `slices` as can go now, without waiting;
    /// `WouldBlock` if nothing can.
    pub(super) fn try_write_vectored(&mut self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream) => stream.try_write_vectored(slices),
            // Whoever gets `WouldBlock` waits with `poll_writable`.
            Stream::Tls(session) => session.try_write_vectored(slices),
        }
    }

    /// Whether bytes already written wait to be sent (TLS records the
    /// socket has not taken yet).
    pub(super) fn has_unsent(&self) -> bool {
        match self {
            Stream::Tcp(_) => false,
            Stream::Tls(session) => session.has_unsent(),
        }
    }

    /// Ready once the socket can take more. With TLS, sends the records
    /// waiting first, and is ready once they are all in the socket.
    pub(super) fn poll_writable(&mut self, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Stream::Tcp(stream) => stream.poll_write_ready(context),
            Stream::Tls(session) if session.has_unsent() => session.poll_send(context),
            Stream::Tls(session) => session.tcp().poll_write_ready(context),
        }
    }

    /// Bytes sent that the peer has not acknowledged yet, with those not
    /// sent yet (`SIOCOUTQ`): while it falls, the client is taking its
    /// replies.
    pub(super) fn unacknowledged_bytes(&self) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        let mut count: libc::c_int = 0;
        // SAFETY: the descriptor is open for as long as `self` is borrowed,
        // and SIOCOUTQ (TIOCOUTQ in libc's names) writes one int to `count`.
        let status = unsafe { libc::ioctl(self.tcp().as_raw_fd(), libc::TIOCOUTQ, &mut count) };
        if status < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(usize::try_from(count).unwrap_or(0))
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(stream) => Pin::new(stream).poll_read(context, buffer),
            Stream::Tls(session) => session.poll_read(context, buffer),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(stream) => Pin::new(stream).poll_write(context, bytes),
            Stream::Tls(session) => loop {
                match session.try_write_vectored(&[IoSlice::new(bytes)]) {
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                        std::task::ready!(session.poll_send(context))?;
                    }
                    written => return Poll::Ready(written),
                }
            },
        }
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(stream) => Pin::new(stream).poll_flush(context),
            Stream::Tls(session) => session.poll_send(context),
        }
    }

    /// With TLS, sends close_notify before shutting the socket's sending
    /// side.
    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(stream) => Pin::new(stream).poll_shutdown(context),
            Stream::Tls(session) => session.poll_shutdown(context),
        }
    }
}
