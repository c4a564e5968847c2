//! The socket a connection is served on: plain TCP, or TLS over TCP. The
//! transport reads, writes and closes through this one type, so both modes
//! work the same inside TLS; what differs is here.
//!
//! With TLS, bytes written are first encrypted into records that rustls
//! holds until the socket takes them, so "written" is not "sent": whoever
//! writes without waiting (a chat member) must push those records out too
//! ([`Stream::has_unsent`], [`Stream::poll_writable`]).

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::framing::LineSplitter;

pub(crate) enum Stream {
    Tcp(TcpStream),
    /// Boxed: a TLS session is a few kilobytes, which plain connections
    /// should not carry.
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    /// The TCP socket under it all.
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Tcp(stream) => stream,
            Stream::Tls(stream) => stream.get_ref().0,
        }
    }

    /// The TLS version agreed (`TLS 1.3`), for the log; `None` for plain
    /// TCP.
    pub(super) fn tls_version(&self) -> Option<&'static str> {
        let Stream::Tls(stream) = self else {
            return None;
        };
        Some(crate::tls::version_name(
            stream.get_ref().1.protocol_version(),
        ))
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
            Stream::Tls(stream) => {
                // rustls may hold decrypted bytes the socket no longer
                // shows (then it wants no more); if it holds none, the
                // socket must have something before a buffer is reserved.
                let (socket, session) = stream.get_mut();
                if session.wants_read() && socket.poll_read_ready(context)?.is_pending() {
                    // rustls shrinks the buffer records are read into (to
                    // 4 KiB, from up to 32 KiB after full-size records)
                    // only as it starts its next read: one that finds
                    // nothing lets it do so before the wait.
                    let _ = session.read_tls(&mut NothingToRead);
                    return Poll::Pending;
                }
                std::pin::pin!(stream.read_buf(lines.buffer_for_read(spare))).poll(context)
            }
        }
    }

    /// Writes as much of `slices` as can go now, without waiting;
    /// `WouldBlock` if nothing can.
    pub(super) fn try_write_vectored(&mut self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream) => stream.try_write_vectored(slices),
            Stream::Tls(stream) => {
                // Never woken: whoever gets `WouldBlock` waits with
                // `poll_writable`, which registers.
                let mut context = Context::from_waker(Waker::noop());
                match Pin::new(&mut **stream).poll_write_vectored(&mut context, slices) {
                    Poll::Ready(written) => written,
                    Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
                }
            }
        }
    }

    /// Whether bytes already written wait to be sent (TLS records the
    /// socket has not taken yet).
    pub(super) fn has_unsent(&self) -> bool {
        match self {
            Stream::Tcp(_) => false,
            Stream::Tls(stream) => stream.get_ref().1.wants_write(),
        }
    }

    /// Ready once the socket can take more. With TLS, sends the records
    /// waiting first, and is ready once they are all in the socket.
    pub(super) fn poll_writable(&mut self, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Stream::Tcp(stream) => stream.poll_write_ready(context),
            Stream::Tls(stream) if stream.get_ref().1.wants_write() => {
                Pin::new(&mut **stream).poll_flush(context)
            }
            Stream::Tls(stream) => stream.get_ref().0.poll_write_ready(context),
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

/// A reader that has nothing yet: its reads end in `WouldBlock`.
struct NothingToRead;

impl io::Read for NothingToRead {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
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
            Stream::Tls(stream) => Pin::new(&mut **stream).poll_read(context, buffer),
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
            Stream::Tls(stream) => Pin::new(&mut **stream).poll_write(context, bytes),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(stream) => Pin::new(stream).poll_flush(context),
            Stream::Tls(stream) => Pin::new(&mut **stream).poll_flush(context),
        }
    }

    /// With TLS, sends close_notify before shutting the socket's sending
    /// side.
    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(stream) => Pin::new(stream).poll_shutdown(context),
            Stream::Tls(stream) => Pin::new(&mut **stream).poll_shutdown(context),
        }
    }
}
