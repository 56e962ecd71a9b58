//! Bare forks: `fork_child` (a child that dies with its parent and cannot unwind), the
//! typed `Note` a forked child writes with one `write(2)`, and the helpers around them
//! (pipes, threads, `PR_SET_PDEATHSIG`).

use super::*;
use anyhow::{anyhow, Context, Result};
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::{getpid, Pid};
use std::os::fd::{OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// True in a bare forked child (in its own copy of this memory): a panic there must end
/// the child at once, never print or unwind into the copied frames of the parent (whose
/// destructors would join threads the child does not have and remove the run's
/// directory).
pub(super) static FORKED_CHILD: AtomicBool = AtomicBool::new(false);

/// The exit status of a forked child that panicked: Rust's own for a panic.
pub const EXIT_PANICKED: i32 = 101;

/// In a freshly forked child: die with the parent, and do not take the parent's signal
/// handlers along (they would write to the parent's signal pipe).
///
/// # Safety
/// Only async-signal-safe calls: sigaction, prctl, getppid, close, _exit.
pub(super) unsafe fn child_after_fork(parent: Pid) {
    use nix::sys::signal::{signal, SigHandler};
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: resetting to the default disposition is async-signal-safe.
        let _ = unsafe { signal(sig, SigHandler::SigDfl) };
    }
    let fd = JANITOR_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: close(2) is async-signal-safe; the fd is ours and not used again here.
        unsafe { nix::libc::close(fd) };
    }
    set_pdeathsig_or_exit(parent);
}

/// `PR_SET_PDEATHSIG(SIGKILL)`, then check the parent is still the one we expect: if it
/// died before the prctl, the signal will never come, so exit now.
pub(super) fn set_pdeathsig_or_exit(parent: Pid) {
    #[cfg(target_os = "linux")]
    {
        let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    }
    if nix::unistd::getppid() != parent {
        // SAFETY: _exit is async-signal-safe and ends only this process.
        unsafe { nix::libc::_exit(1) };
    }
}

/// Fork a child that runs `child` and `_exit`s with its return value.
///
/// # Safety
/// `child` runs in the forked copy of a multi-threaded process: it must only call
/// async-signal-safe functions (no allocation, no locks, no `println!`).
pub unsafe fn fork_child(child: impl FnOnce() -> i32) -> Result<Pid> {
    let parent = getpid();
    // SAFETY: the child branch only calls async-signal-safe functions (the caller's
    // promise for `child`, and `child_after_fork`), then `_exit`s.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            FORKED_CHILD.store(true, Ordering::Relaxed);
            // SAFETY: see above.
            unsafe { child_after_fork(parent) };
            // Should `child` panic anyway, the hook (`guard_forked_panics`) ends the child
            // before anything is printed; without the hook, this guard ends it before the
            // unwinding leaves this frame.
            let guard = ExitOnUnwind;
            let code = child();
            std::mem::forget(guard);
            // SAFETY: _exit ends the child without running the parent's atexit handlers.
            unsafe { nix::libc::_exit(code) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => Ok(child),
        Err(e) => Err(fork_error("fork()", e)),
    }
}

/// Ends a forked child whose body is unwinding (see [`fork_child`]).
pub(super) struct ExitOnUnwind;

impl Drop for ExitOnUnwind {
    fn drop(&mut self) {
        // SAFETY: _exit is async-signal-safe and ends only this (forked) process.
        unsafe { nix::libc::_exit(EXIT_PANICKED) }
    }
}

/// Install the panic hook that ends a panicking forked child at once, with
/// [`EXIT_PANICKED`], before the default hook would print (locks, allocation: unsafe
/// after fork in a threaded program). Elsewhere the previous hook runs as before.
pub fn guard_forked_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if FORKED_CHILD.load(Ordering::Relaxed) {
            // SAFETY: _exit is async-signal-safe and ends only this (forked) process.
            unsafe { nix::libc::_exit(EXIT_PANICKED) }
        }
        previous(info);
    }));
}

/// A clear message for a failed process creation.
pub fn fork_error(call: &str, e: Errno) -> anyhow::Error {
    anyhow!("{call} failed: {}", limit_hint(e))
}

/// Make `cmd` die with this process (`PR_SET_PDEATHSIG`), checked against the race.
pub fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let parent = getpid();
    // SAFETY: the closure runs between fork and exec and only calls prctl, getppid and
    // _exit, all async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            set_pdeathsig_or_exit(parent);
            Ok(())
        });
    }
}

/// Start a named thread. A thread is a task too: under `RLIMIT_NPROC` its creation
/// fails like a fork does, and the message says so.
pub fn thread<F, T>(name: &str, f: F) -> Result<std::thread::JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|e| match e.raw_os_error() {
            Some(code) => anyhow!(
                "starting the {name} thread failed: {}",
                limit_hint(Errno::from_raw(code))
            ),
            None => anyhow!("starting the {name} thread failed: {e}"),
        })
}

/// A pipe whose ends are closed on exec.
pub fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe2() failed")
}

/// A fixed-size note a forked child can write with one async-signal-safe `write(2)`:
/// when it was written, by whom, and two numbers.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct Note {
    pub t_ns: u64,
    pub pid: i32,
    pub ppid: i32,
    pub a: i64,
    pub b: i64,
}

pub(super) const NOTE_SIZE: usize = std::mem::size_of::<Note>();

/// What a lesson's notes say: an enum of its own, declared with [`note_kinds!`], carried
/// in [`Note::a`] as its number.
pub trait NoteKind: Copy + Eq + Sized {
    fn code(self) -> i64;
    fn from_code(code: i64) -> Option<Self>;
}

/// Declare the kinds of note a lesson's forked children write:
/// `note_kinds! { enum Said { Hello = 1, Forked = 2 } }`.
#[macro_export]
macro_rules! note_kinds {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $v:ident = $n:expr),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        $vis enum $name { $($(#[$vmeta])* $v),+ }

        impl $crate::procs::NoteKind for $name {
            fn code(self) -> i64 {
                match self { $($name::$v => $n),+ }
            }
            fn from_code(code: i64) -> Option<Self> {
                $(if code == $n { return Some($name::$v); })+
                None
            }
        }
    };
}

impl Note {
    /// A note of kind `kind` with the number `b`, from a forked child: [`Note::send`].
    pub fn tell(fd: RawFd, kind: impl NoteKind, b: i64) {
        Note::send(fd, kind.code(), b);
    }

    /// What this note says, if it is one of `K`'s kinds.
    pub fn kind<K: NoteKind>(&self) -> Option<K> {
        K::from_code(self.a)
    }

    /// Stamp and write a note to `fd`, from a forked child.
    /// Async-signal-safe: clock_gettime, getpid, getppid, write.
    pub fn send(fd: RawFd, a: i64, b: i64) {
        let mut ts = nix::libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes into our stack timespec; async-signal-safe.
        unsafe { nix::libc::clock_gettime(nix::libc::CLOCK_MONOTONIC, &mut ts) };
        let note = Note {
            t_ns: ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64,
            pid: nix::unistd::getpid().as_raw(),
            ppid: nix::unistd::getppid().as_raw(),
            a,
            b,
        };
        // SAFETY: Note is repr(C) plain data; we write exactly its bytes (< PIPE_BUF, so
        // atomically) with write(2), which is async-signal-safe.
        unsafe {
            nix::libc::write(fd, (&note as *const Note).cast(), NOTE_SIZE);
        }
    }

    /// Read one note, waiting at most `timeout`. `None` on timeout or end of file.
    pub fn recv(fd: &OwnedFd, timeout: Duration) -> Result<Option<Note>> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let mut buf = [0u8; NOTE_SIZE];
        let mut got = 0;
        let deadline = Instant::now() + timeout;
        while got < NOTE_SIZE {
            let left = deadline.saturating_duration_since(Instant::now());
            let ms = PollTimeout::try_from(left.as_millis().min(60_000) as i32)
                .unwrap_or(PollTimeout::NONE);
            let mut fds = [PollFd::new(std::os::fd::AsFd::as_fd(fd), PollFlags::POLLIN)];
            match poll(&mut fds, ms) {
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(anyhow!("poll() failed: {e}")),
            }
            match nix::unistd::read(fd, &mut buf[got..]) {
                Ok(0) => return Ok(None),
                Ok(n) => got += n,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(anyhow!("read() failed: {e}")),
            }
        }
        // SAFETY: the buffer holds exactly the bytes of a Note written by Note::send.
        Ok(Some(unsafe {
            std::ptr::read_unaligned(buf.as_ptr().cast::<Note>())
        }))
    }
}

/// Let one forked child waiting at the gate `w` (in [`wait_byte`]) take its next step.
pub fn open_gate(w: &OwnedFd) -> Result<()> {
    nix::unistd::write(w, &[1]).context("write() to the children's gate")?;
    Ok(())
}

/// For a forked child: wait for one byte on `fd` (a gate the parent opens by writing
/// one). False on end of file (every writer gone) or an error. Async-signal-safe.
pub fn wait_byte(fd: std::os::fd::RawFd) -> bool {
    let mut byte = [0u8; 1];
    loop {
        // SAFETY: read(2) into a stack buffer; async-signal-safe.
        let n = unsafe { nix::libc::read(fd, byte.as_mut_ptr().cast(), 1) };
        if n == 1 {
            return true;
        }
        if n < 0 && nix::errno::Errno::last() == nix::errno::Errno::EINTR {
            continue;
        }
        return false;
    }
}

/// `PR_SET_PDEATHSIG` (SIGKILL) for this process, then `_exit(1)` if its parent is no
/// longer `parent` (the race the flag alone cannot close). Async-signal-safe.
pub fn die_with_parent_now(parent: i32) {
    #[cfg(target_os = "linux")]
    {
        let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    }
    if nix::unistd::getppid().as_raw() != parent {
        // SAFETY: _exit is async-signal-safe.
        unsafe { nix::libc::_exit(1) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::wait::{waitpid, WaitStatus};
    use std::os::fd::AsRawFd;

    /// Written to by its destructor: had a forked child unwound into this test's frame,
    /// its copy of the value would write `u` into the pipe.
    struct Witness(RawFd);

    impl Drop for Witness {
        fn drop(&mut self) {
            // SAFETY: write(2) of one byte from a static buffer.
            unsafe { nix::libc::write(self.0, b"u".as_ptr().cast(), 1) };
        }
    }

    #[test]
    fn a_forked_child_that_panics_exits_101_without_unwinding_into_the_parent() {
        guard_forked_panics();
        let (r, w) = pipe().unwrap();
        let witness = Witness(w.as_raw_fd());
        let child_body = || -> i32 { panic!("in the child") };
        // SAFETY: the child panics at once; the hook and the guard end it with _exit.
        let pid = unsafe { fork_child(child_body) }.unwrap();
        let status = waitpid(pid, None).unwrap();
        assert_eq!(status, WaitStatus::Exited(pid, EXIT_PANICKED));
        std::mem::forget(witness);
        drop(w);
        let mut buf = [0u8; 1];
        assert_eq!(
            nix::unistd::read(&r, &mut buf).unwrap(),
            0,
            "the child unwound"
        );
    }
}
