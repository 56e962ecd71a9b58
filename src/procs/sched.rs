//! Scheduling and ancestry helpers: adoption by the subreaper, pinning to a CPU, a thread's
//! CPU clock.

use super::*;
use anyhow::{Context, Result};
use nix::unistd::Pid;

/// In a forked process whose parent `creator` is ending: wait (bounded, 10 s) until the
/// kernel hands it to `adopter` (the main process, a child subreaper), then die with the
/// adopter from then on (`PR_SET_PDEATHSIG`: set earlier, the creator's exit would have
/// killed it) and check the parent once more, in case the adopter died in between. Any
/// other parent means the main process is gone: `_exit(1)`. Async-signal-safe (getppid,
/// nanosleep, prctl, _exit), so a forked child of a threaded process may call it.
pub fn await_adoption(creator: i32, adopter: i32) {
    let mut waited_ms = 0;
    loop {
        let ppid = nix::unistd::getppid().as_raw();
        if ppid == adopter {
            break;
        }
        if ppid != creator || waited_ms > 10_000 {
            // SAFETY: _exit is async-signal-safe.
            unsafe { nix::libc::_exit(1) };
        }
        let ms = nix::libc::timespec {
            tv_sec: 0,
            tv_nsec: 1_000_000,
        };
        // SAFETY: nanosleep with a stack timespec; async-signal-safe.
        unsafe { nix::libc::nanosleep(&ms, std::ptr::null_mut()) };
        waited_ms += 1;
    }
    die_with_parent_now(adopter);
}

/// `sched_setaffinity(pid, {cpu})`: `pid` may run on `cpu` only (lessons that make
/// processes take turns on one CPU).
#[cfg(target_os = "linux")]
pub fn pin(pid: Pid, cpu: usize) -> Result<()> {
    use nix::sched::{sched_setaffinity, CpuSet};
    let mut set = CpuSet::new();
    set.set(cpu).context("CPU number out of range")?;
    sched_setaffinity(pid, &set).with_context(|| format!("sched_setaffinity({pid}, {{{cpu}}})"))
}

#[cfg(not(target_os = "linux"))]
pub fn pin(_pid: Pid, _cpu: usize) -> Result<()> {
    anyhow::bail!("sched_setaffinity is Linux-only")
}

/// CPU time of the calling thread in nanoseconds (`CLOCK_THREAD_CPUTIME_ID`): time it
/// really ran on a CPU, whatever else the machine was doing. Async-signal-safe
/// (clock_gettime), so a forked child may use it.
pub fn thread_cpu_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).map_or(0, |t| {
        t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
    })
}

/// The CPUs `pid` may run on (`sched_getaffinity`; 0: this process), in order.
#[cfg(target_os = "linux")]
pub fn allowed_cpus(pid: Pid) -> Vec<usize> {
    use nix::sched::{sched_getaffinity, CpuSet};
    match sched_getaffinity(pid) {
        Ok(set) => (0..CpuSet::count())
            .filter(|&i| set.is_set(i).unwrap_or(false))
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[cfg(not(target_os = "linux"))]
pub fn allowed_cpus(_pid: Pid) -> Vec<usize> {
    Vec::new()
}
