//! Whole reads and writes on a raw descriptor (a pipe shared with children), retried
//! on `EINTR`, and `poll` with a zero timeout: CPython's `Connection._poll(0)`.

use anyhow::{bail, Result};
use nix::errno::Errno;
use std::os::fd::BorrowedFd;

/// Write all of `buf` to `fd`.
pub fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> Result<()> {
    while !buf.is_empty() {
        match nix::unistd::write(fd, buf) {
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => {}
            Err(e) => bail!("write() failed: {e}"),
        }
    }
    Ok(())
}

/// Read exactly `buf.len()` bytes from `fd`, sleeping in `read(2)` until they come; end
/// of file before that is an error.
pub fn read_exact(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<()> {
    let mut got = 0;
    while got < buf.len() {
        match nix::unistd::read(fd, &mut buf[got..]) {
            Ok(0) => bail!("end of file after {got} of {} bytes", buf.len()),
            Ok(n) => got += n,
            Err(Errno::EINTR) => {}
            Err(e) => bail!("read() failed: {e}"),
        }
    }
    Ok(())
}

/// Whether `fd` has bytes to read now (`poll` with a zero timeout).
pub fn readable(fd: BorrowedFd<'_>) -> Result<bool> {
    readable_within(fd, std::time::Duration::ZERO)
}

/// Whether `fd` becomes readable (bytes, or end of file) within `timeout`: `poll` with
/// that timeout, Python's `multiprocessing.connection.wait([fd], timeout)`.
pub fn readable_within(fd: BorrowedFd<'_>, timeout: std::time::Duration) -> Result<bool> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ms =
            PollTimeout::try_from(left.as_millis().min(60_000) as i32).unwrap_or(PollTimeout::NONE);
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        match poll(&mut fds, ms) {
            Ok(n) => return Ok(n > 0),
            Err(Errno::EINTR) => {}
            Err(e) => bail!("poll() failed: {e}"),
        }
    }
}

/// Whether the reader of `fd` is gone, asked without writing (`poll` with a zero
/// timeout): `EPIPE` for a pipe whose read end is closed (`POLLERR`), `EIO` for a
/// terminal that hung up (`POLLHUP`); `None` while it can still be written to. So a run
/// that is quiet for a while (a reading pause) notices `| head -1` at once, not at its
/// next line.
pub fn reader_gone(fd: BorrowedFd<'_>) -> Option<Errno> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
    poll(&mut fds, PollTimeout::ZERO).ok()?;
    let got = fds[0].revents()?;
    if got.contains(PollFlags::POLLERR) {
        Some(Errno::EPIPE)
    } else if got.contains(PollFlags::POLLHUP) {
        Some(Errno::EIO)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_pipe_round_trip() {
        let (r, w) = nix::unistd::pipe().unwrap();
        assert!(!readable(r.as_fd()).unwrap());
        write_all(w.as_fd(), b"hello").unwrap();
        assert!(readable(r.as_fd()).unwrap());
        let mut buf = [0u8; 5];
        read_exact(r.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        drop(w);
        let err = read_exact(r.as_fd(), &mut buf).unwrap_err();
        assert_eq!(err.to_string(), "end of file after 0 of 5 bytes");
    }

    #[test]
    fn a_closed_reader_is_seen_without_writing() {
        let (r, w) = nix::unistd::pipe().unwrap();
        assert_eq!(reader_gone(w.as_fd()), None);
        drop(r);
        assert_eq!(reader_gone(w.as_fd()), Some(Errno::EPIPE));
    }
}
