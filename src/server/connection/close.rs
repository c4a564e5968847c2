//! Closing a connection without losing a reply: send what is owed, shut
//! the sending side, then read and drop the client's input until it closes
//! too, for as long as it keeps taking its replies.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::ReadHalf;
use tokio::time::Instant;

use super::{Connection, End};

/// A closing connection waits for the client to take its last replies and
/// close its side; it gives up once the client has taken none of them for
/// this long (it has stopped reading).
pub const CLOSE_STALL: Duration = Duration::from_secs(5);
/// How often a closing connection looks at how much of its output the
/// client has yet to acknowledge.
const CLOSE_PROGRESS_CHECK: Duration = Duration::from_millis(50);
/// Room for the input read and thrown away while closing.
const DISCARD_CHUNK: usize = 16 * 1024;

impl Connection {
    /// Sends the replies owed, shuts the sending side, and waits for the
    /// client to close its side too, reading and dropping its input
    /// meanwhile: closing a socket with unread input makes the kernel send a
    /// reset, which destroys the replies it has not delivered yet. Gives up
    /// once the client has taken no reply for [`CLOSE_STALL`]. At shutdown
    /// it does not wait for the client's close once the client has
    /// acknowledged everything, and the server's grace period ends the wait
    /// in any case.
    pub(super) async fn close(&mut self, end: &End) {
        if matches!(end, End::Failed(_) | End::NotReading(_)) {
            return;
        }
        let Self {
            stream,
            outbox,
            stats,
            stop,
            ..
        } = self;
        let (mut input, mut output) = stream.split();
        let mut input_open = !matches!(end, End::ClientClosed);
        let mut output_open = true;
        let mut sink = Vec::new();
        let mut check = tokio::time::interval(CLOSE_PROGRESS_CHECK);
        let mut unacknowledged = usize::MAX;
        let mut last_progress = Instant::now();
        loop {
            if output_open && outbox.is_empty() {
                if output.shutdown().await.is_err() {
                    return;
                }
                output_open = false;
            }
            if !input_open && !output_open {
                // Nothing unread: the kernel delivers the rest, then the FIN.
                return;
            }
            tokio::select! {
                written = output.write_buf(outbox), if output_open => match written {
                    Ok(count @ 1..) => {
                        stats.bytes_out += count as u64;
                        stats.writes += 1;
                        last_progress = Instant::now();
                    }
                    _ => return,
                },
                read = discard_input(&mut input, &mut sink), if input_open => match read {
                    Ok(0) | Err(_) => input_open = false,
                    Ok(count) => stats.bytes_in += count as u64,
                },
                _ = check.tick() => {
                    let now = unacknowledged_bytes(input.as_ref()).unwrap_or(0);
                    if now < unacknowledged {
                        last_progress = Instant::now();
                    }
                    unacknowledged = now;
                    let delivered = !output_open && unacknowledged == 0;
                    let shutting_down = !matches!(stop.has_changed(), Ok(false));
                    if last_progress.elapsed() >= CLOSE_STALL || (delivered && shutting_down) {
                        return;
                    }
                }
            }
        }
    }
}

/// Reads input to throw away, into `sink` (allocated on first use).
async fn discard_input(stream: &mut ReadHalf<'_>, sink: &mut Vec<u8>) -> io::Result<usize> {
    if sink.is_empty() {
        sink.resize(DISCARD_CHUNK, 0);
    }
    stream.read(sink).await
}

/// Bytes sent on `stream` that the peer has not acknowledged yet, with
/// those not sent yet (`SIOCOUTQ`): while it falls, the client is taking
/// its replies.
fn unacknowledged_bytes(stream: &TcpStream) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let mut count: libc::c_int = 0;
    // SAFETY: the descriptor is open for as long as `stream` is borrowed,
    // and SIOCOUTQ (TIOCOUTQ in libc's names) writes one int to `count`.
    let status = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut count) };
    if status < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(count).unwrap_or(0))
}
