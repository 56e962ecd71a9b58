//! Reaping: `waitpid` bounded or not, Python's exit codes, and the sweeps that kill and
//! reap every descendant.

use super::*;
use anyhow::{anyhow, Result};
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{getpid, Pid};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Whether `pid` exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    crate::sys::proc::state(pid).is_some_and(|s| s != 'Z')
}

/// Every descendant of this process (children, theirs, …), the janitor aside.
pub fn descendants() -> Vec<i32> {
    let janitor = JANITOR.load(Ordering::SeqCst);
    let mut out = Vec::new();
    let mut next = vec![getpid().as_raw()];
    while let Some(p) = next.pop() {
        for c in crate::sys::proc::children(p) {
            if c != janitor && !out.contains(&c) && out.len() < 4096 {
                out.push(c);
                next.push(c);
            }
        }
    }
    out
}

/// Python's `exitcode` from a wait status: the exit status, or `-N` for signal N.
pub fn python_exitcode(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(-(sig as i32)),
        _ => None,
    }
}

/// `waitpid(pid)`: block until the child ends and reap it; its Python `exitcode`.
pub fn reap(pid: Pid) -> Result<i32> {
    loop {
        match waitpid(pid, None) {
            Ok(status) => {
                if let Some(code) = python_exitcode(status) {
                    return Ok(code);
                }
            }
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(anyhow!("waitpid({pid}) failed: {e}")),
        }
    }
}

/// Reap `pid` if it ends within `within` (polling `waitpid(WNOHANG)`); whether it did.
pub fn reap_within(pid: Pid, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => {}
            Ok(_) | Err(_) => return true,
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `waitpid(pid, WNOHANG)`: reap it if it has ended.
pub fn try_reap(pid: Pid) -> Result<Option<i32>> {
    match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::StillAlive) => Ok(None),
        Ok(status) => Ok(python_exitcode(status)),
        Err(e) => Err(anyhow!("waitpid({pid}, WNOHANG) failed: {e}")),
    }
}

/// Kill every child of this process (not the janitor) with SIGKILL. Returns how many.
pub fn kill_children() -> usize {
    let me = getpid().as_raw();
    let janitor = JANITOR.load(Ordering::SeqCst);
    let mut n = 0;
    for pid in crate::sys::proc::children(me) {
        if pid != janitor && kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok() {
            n += 1;
        }
    }
    n
}

/// Kill and reap every descendant, until none is left (orphaned grandchildren are
/// re-parented to us as the subreaper, so each round finds the next generation).
/// Returns how many processes were reaped.
pub fn kill_and_reap_all() -> usize {
    let me = getpid().as_raw();
    let janitor = JANITOR.load(Ordering::SeqCst);
    let mut reaped = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let kids: Vec<i32> = crate::sys::proc::children(me)
            .into_iter()
            .filter(|&p| p != janitor)
            .collect();
        if kids.is_empty() || Instant::now() > deadline {
            return reaped;
        }
        for &pid in &kids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        for &pid in &kids {
            if waitpid(Pid::from_raw(pid), None).is_ok() {
                reaped += 1;
            }
        }
    }
}
