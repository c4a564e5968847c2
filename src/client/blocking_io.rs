//! Blocking reads and writes on stdin and stdout that also work when a
//! parent left them non-blocking (`O_NONBLOCK` is shared by every process
//! holding the descriptor): "try again" means wait until the descriptor is
//! ready, as `cat` does, never an error.

use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use bytes::BytesMut;

/// Reads at most `spare` bytes and appends them to `buffer`, waiting for
/// input when there is none yet. Reads straight into the buffer's spare
/// room, which `std::io::Read` could only do after zeroing it, a cost as
/// large as the read's for short lines.
pub(super) fn read_appending(
    input: &impl AsFd,
    buffer: &mut BytesMut,
    spare: usize,
) -> io::Result<usize> {
    buffer.reserve(spare);
    loop {
        let room = &mut buffer.spare_capacity_mut()[..spare];
        // SAFETY: `room` is memory owned by `buffer`, valid for writes of
        // `room.len()` bytes, and read(2) writes no more than that.
        let count = unsafe {
            libc::read(
                input.as_fd().as_raw_fd(),
                room.as_mut_ptr().cast(),
                room.len(),
            )
        };
        if let Ok(count) = usize::try_from(count) {
            // SAFETY: read(2) initialised the first `count` bytes of `room`,
            // which start at the buffer's current length.
            unsafe { buffer.set_len(buffer.len() + count) };
            return Ok(count);
        }
        let error = io::Error::last_os_error();
        match error.kind() {
            io::ErrorKind::WouldBlock => wait_until_ready(input.as_fd(), libc::POLLIN)?,
            io::ErrorKind::Interrupted => {}
            _ => return Err(error),
        }
    }
}

/// Writes all of `bytes`, waiting for room when the output is full.
pub(super) fn write_all(output: &mut (impl Write + AsFd), mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match output.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(count) => bytes = &bytes[count..],
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                wait_until_ready(output.as_fd(), libc::POLLOUT)?;
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Blocks until `fd` is ready for `events` (or has an error or hang-up to
/// report, which the next read or write then returns).
fn wait_until_ready(fd: BorrowedFd<'_>, events: libc::c_short) -> io::Result<()> {
    let mut poll = libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    };
    loop {
        // SAFETY: `poll` is one valid pollfd, and the descriptor stays open
        // while `fd` is borrowed.
        if unsafe { libc::poll(&mut poll, 1, -1) } >= 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}
