//! The timer: a small process that times the bare mechanisms (a fork, a thread, a pipe
//! round trip) for the lesson, and a fork of itself grown to a given size.
//!
//! Timed from mp-demo's main process, the same calls cost 3-4 times what the kernel
//! needs: the main process is large (its allocator's arenas, the observer's and the
//! narrator's threads, each with a stack to map) and busy (the observer samples `/proc`
//! on another thread). A fresh start of this program has one thread and a few MiB, as
//! CPython's fork server has: what it measures is the mechanism.

use super::Reply;
use crate::child::{ChildCtx, Down};
use crate::event::{now_ns, ObsValue};
use crate::procs;
use crate::sys::{proc, shared::Touched};
use anyhow::{anyhow, bail, Result};
use nix::unistd::Pid;
use std::os::fd::{AsRawFd, OwnedFd};

/// How many forks are timed at each size of memory (their median is reported).
pub(super) const GROWN_FORKS: usize = 5;

/// The `timer` role: forks its echo child and says so, then on `Go` times one round (a
/// fork, a thread, a pipe round trip, twice each), on a number `mib` times forks with
/// that many MiB written, and on `Stop` ends its echo child and exits. It tells the
/// stream of every child it forks and reaps itself, outside the clock.
pub(super) fn timer(c: &mut ChildCtx) -> Result<i32> {
    let me = nix::unistd::getpid().as_raw();
    let echo = Echo::fork(c)?;
    c.tell(&Reply::TimerReady {
        echo: echo.pid.as_raw(),
        threads: proc::threads(me),
        rss_kib: proc::rss_kib(me).unwrap_or(0),
    })?;
    // A first, untimed byte: the first trip warms its path up.
    echo.roundtrip()?;
    let (mut forks, mut grown_forks) = (0, 0);
    loop {
        match c.recv()? {
            Down::Go => {
                let (mut fork_us, mut thread_us, mut pipe_us) =
                    (Vec::new(), Vec::new(), Vec::new());
                for _ in 0..2 {
                    forks += 1;
                    fork_us.push(fork_once(c, &format!("fork-{forks}"), false)?);
                    thread_us.push(thread_once()?);
                    pipe_us.push(echo.roundtrip()?);
                }
                c.tell(&Reply::Round {
                    fork_us,
                    thread_us,
                    pipe_us,
                })?;
            }
            Down::Value(ObsValue::Int(mib)) => {
                let bytes = usize::try_from(mib)
                    .ok()
                    .and_then(|m| m.checked_mul(1 << 20))
                    .ok_or_else(|| anyhow!("{mib} MiB is not a size"))?;
                let grown = Touched::new(bytes)?;
                let rss_kib = proc::rss_kib(me).unwrap_or(0);
                let mut fork_us = Vec::new();
                for _ in 0..GROWN_FORKS {
                    grown_forks += 1;
                    fork_us.push(fork_once(c, &format!("grown-{grown_forks}"), true)?);
                }
                drop(grown);
                c.tell(&Reply::Grown {
                    mib,
                    rss_kib,
                    fork_us,
                })?;
            }
            Down::Value(other) => bail!("{other} is not a size in MiB"),
            Down::Stop => {
                let pid = echo.pid;
                drop(echo); // end of file on its pipe: the echo child returns and exits
                let exitcode = procs::reap(pid)?;
                c.reaped_at(now_ns(), pid.as_raw(), "echo", exitcode)?;
                c.tell(&Reply::TimerEnded {
                    echo_exitcode: exitcode,
                })?;
                return Ok(0);
            }
        }
    }
}

/// `fork()` a child that `_exit`s at once, and reap it: only the fork, the exit and the
/// `waitpid` are inside the clock, whose microseconds this returns. The child goes into
/// the stream after its reap, stamped with the clock's own two stamps (its life there is
/// the time measured); or, `early`, for forks that take milliseconds (a grown parent),
/// its start is sent as soon as `fork()` returned, stamped then, so that nothing said
/// meanwhile comes before it (a few µs inside a clock of milliseconds).
fn fork_once(c: &ChildCtx, name: &str, early: bool) -> Result<f64> {
    let t0 = now_ns();
    let child_body = || 0;
    // SAFETY: the child does nothing at all: it returns 0 to `_exit`. This process has
    // one thread, so the copy has every lock it would need (it needs none).
    let pid = unsafe { procs::fork_child(child_body) }?;
    if early {
        c.forked_at(now_ns(), pid.as_raw(), name)?;
    }
    let exitcode = procs::reap(pid)?;
    let t1 = now_ns();
    if !early {
        c.forked_at(t0, pid.as_raw(), name)?;
    }
    c.reaped_at(t1, pid.as_raw(), name, exitcode)?;
    if exitcode != 0 {
        bail!("the forked child (PID {pid}) exited with {exitcode}, not 0");
    }
    Ok(micros(t0, t1))
}

/// What the timed thread runs: nothing.
extern "C" fn nothing(_: *mut std::ffi::c_void) -> *mut std::ffi::c_void {
    std::ptr::null_mut()
}

/// Start a thread that does nothing, and join it: a bare `pthread_create` and
/// `pthread_join`, as CPython's `Thread.start()` and `join()` make underneath. Rust's own
/// threads add their bookkeeping (a handle, a name, and an alternate signal stack mapped
/// and unmapped for each thread), which would double the figure.
fn thread_once() -> Result<f64> {
    let t0 = now_ns();
    let mut tid: nix::libc::pthread_t = 0;
    // SAFETY: `tid` is a valid place for the new thread's id; default attributes; the
    // thread runs `nothing`, which touches no memory, with a null argument.
    let rc = unsafe {
        nix::libc::pthread_create(&mut tid, std::ptr::null(), nothing, std::ptr::null_mut())
    };
    if rc != 0 {
        bail!(
            "starting the timed thread failed: {}",
            procs::limit_hint(nix::errno::Errno::from_raw(rc))
        );
    }
    // SAFETY: `tid` was created just above, joinable, and is joined once; its result
    // (null) is not read.
    let rc = unsafe { nix::libc::pthread_join(tid, std::ptr::null_mut()) };
    if rc != 0 {
        bail!(
            "joining the timed thread failed: {}",
            nix::errno::Errno::from_raw(rc)
        );
    }
    Ok(micros(t0, now_ns()))
}

/// Microseconds between two `CLOCK_MONOTONIC` stamps.
fn micros(from: u64, to: u64) -> f64 {
    to.saturating_sub(from) as f64 / 1000.0
}

/// A forked child that answers every byte on one pipe with a byte on another. Dropping
/// it closes the write end: the child sees end of file and exits (reap it).
struct Echo {
    pid: Pid,
    to_child: OwnedFd,
    from_child: OwnedFd,
}

impl Echo {
    /// The echo child, told to the stream.
    fn fork(c: &ChildCtx) -> Result<Echo> {
        let (to_child_r, to_child_w) = procs::pipe()?;
        let (from_child_r, from_child_w) = procs::pipe()?;
        let (rd, wr, theirs) = (
            to_child_r.as_raw_fd(),
            from_child_w.as_raw_fd(),
            to_child_w.as_raw_fd(),
        );
        let child_body = move || {
            // Our copy of the parent's write end, closed: once the parent closes its
            // own, the read below sees end of file.
            // SAFETY: close(2) of a descriptor this forked child owns; async-signal-safe.
            unsafe { nix::libc::close(theirs) };
            let mut byte = [0u8; 1];
            loop {
                // SAFETY: read(2) into a stack buffer of the length passed; async-signal-safe.
                if unsafe { nix::libc::read(rd, byte.as_mut_ptr().cast(), 1) } != 1 {
                    return 0;
                }
                // SAFETY: write(2) from a live buffer of the length passed; async-signal-safe.
                if unsafe { nix::libc::write(wr, byte.as_ptr().cast(), 1) } != 1 {
                    return 1;
                }
            }
        };
        let t0 = now_ns();
        // SAFETY: the child only calls close(2), read(2) and write(2) on descriptors it
        // inherited, with a stack buffer, all async-signal-safe, and returns its status.
        let pid = unsafe { procs::fork_child(child_body) }?;
        c.forked_at(t0, pid.as_raw(), "echo")?;
        Ok(Echo {
            pid,
            to_child: to_child_w,
            from_child: from_child_r,
        })
    }

    /// One byte there and one back. Bounded: if the echo child dies, the read sees end
    /// of file, since this process holds no write end of that pipe.
    fn roundtrip(&self) -> Result<f64> {
        let mut byte = [0u8; 1];
        let t0 = now_ns();
        loop {
            match nix::unistd::write(&self.to_child, b"x") {
                Ok(_) => break,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(anyhow!("write() to the echo child's pipe: {e}")),
            }
        }
        loop {
            match nix::unistd::read(&self.from_child, &mut byte) {
                Ok(1) => break,
                Ok(_) => bail!("the echo child (PID {}) closed its pipe", self.pid),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(anyhow!("read() from the echo child's pipe: {e}")),
            }
        }
        Ok(micros(t0, now_ns()))
    }
}
