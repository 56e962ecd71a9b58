//! A lock on a file with `flock(2)`, taken and given back as often as a lesson needs
//! (nix's `Flock` owns its file and unlocks once). One holder at a time; the kernel
//! releases it when its holder dies, which CPython's `Lock` (a semaphore) does not do:
//! a lesson that uses this as the stand-in for a Python lock says so.

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::libc;
use std::os::fd::AsRawFd;
use std::path::Path;

pub struct FileLock {
    file: std::fs::File,
}

impl FileLock {
    /// Open (or create, mode 0600) the lock file at `path`.
    pub fn open(path: &Path) -> Result<FileLock> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("opening the lock file {}", path.display()))?;
        Ok(FileLock { file })
    }

    fn flock(&self, op: libc::c_int) -> Result<bool> {
        loop {
            // SAFETY: flock on a descriptor we own; no memory is involved.
            if unsafe { libc::flock(self.file.as_raw_fd(), op) } == 0 {
                return Ok(true);
            }
            match Errno::last() {
                Errno::EINTR => continue,
                Errno::EWOULDBLOCK if op & libc::LOCK_NB != 0 => return Ok(false),
                e => bail!("flock() failed: {e}"),
            }
        }
    }

    /// `flock(LOCK_EX)`: sleep until the lock is ours.
    pub fn lock(&self) -> Result<()> {
        self.flock(libc::LOCK_EX).map(|_| ())
    }

    /// `flock(LOCK_EX | LOCK_NB)`: the lock if it is free, false if someone holds it.
    pub fn try_lock(&self) -> Result<bool> {
        self.flock(libc::LOCK_EX | libc::LOCK_NB)
    }

    /// `flock(LOCK_UN)`.
    pub fn unlock(&self) -> Result<()> {
        self.flock(libc::LOCK_UN).map(|_| ())
    }

    /// The locked file, to read and write while the lock is held (`&File` reads, writes
    /// and seeks).
    pub fn file(&self) -> &std::fs::File {
        &self.file
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let (a, b) = (
            FileLock::open(&path).unwrap(),
            FileLock::open(&path).unwrap(),
        );
        a.lock().unwrap();
        assert!(!b.try_lock().unwrap());
        a.unlock().unwrap();
        assert!(b.try_lock().unwrap());
        b.unlock().unwrap();
    }
}
