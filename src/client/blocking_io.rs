//! Blocking reads and writes on stdin and stdout that also work when a
//! parent left them non-blocking (`O_NONBLOCK` is shared by every process
//! holding the descriptor): "try again" means wait until the descriptor is
//! ready, as `cat` does, never an error.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

/// Reads into `buffer`, waiting for input when there is none yet.
pub(super) fn read(input: &mut (impl Read + AsFd), buffer: &mut [u8]) -> io::Result<usize> {
    loop {
        match input.read(buffer) {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                wait_until_ready(input.as_fd(), libc::POLLIN)?;
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            result => return result,
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
