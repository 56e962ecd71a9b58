//! `/proc`, read in one place.
//!
//! Every lesson proves its claims from what the kernel says about its processes: the
//! state letter, where a sleeper waits (`wchan`, the system call it is in), its CPU and
//! run-queue clocks, its descriptors, its threads, its children. All of it is read here,
//! through the `procfs` crate, so that a lesson names what it wants to know
//! (`proc::syscall(pid)`, [`Call::Futex`]) and never a path or a field number. Only
//! `/proc/locks` is parsed by hand: `procfs` drops the `->` that marks a blocked request,
//! which is the very thing the lock lesson shows.
//!
//! Elsewhere than Linux every reader answers "not known" (`None`, empty), and the
//! lessons say the kernel did not tell.

/// A system call a lesson waits to see a process asleep in, as `/proc/<pid>/syscall`
/// numbers it on this machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Read,
    Flock,
    Futex,
    Recvmsg,
    Nanosleep,
}

impl Call {
    const ALL: [Call; 5] = [
        Call::Read,
        Call::Flock,
        Call::Futex,
        Call::Recvmsg,
        Call::Nanosleep,
    ];

    /// Its number on this machine (`libc::SYS_*`); elsewhere than Linux, none matches.
    #[cfg(target_os = "linux")]
    #[allow(clippy::unnecessary_cast)] // `c_long` is i64 only on 64-bit targets
    pub fn nr(self) -> i64 {
        use nix::libc;
        (match self {
            Call::Read => libc::SYS_read,
            Call::Flock => libc::SYS_flock,
            Call::Futex => libc::SYS_futex,
            Call::Recvmsg => libc::SYS_recvmsg,
            Call::Nanosleep => libc::SYS_clock_nanosleep,
        }) as i64
    }

    #[cfg(not(target_os = "linux"))]
    pub fn nr(self) -> i64 {
        -1 - self as i64
    }

    /// Its name, as `strace` and the man pages say it.
    pub fn name(self) -> &'static str {
        match self {
            Call::Read => "read",
            Call::Flock => "flock",
            Call::Futex => "futex",
            Call::Recvmsg => "recvmsg",
            Call::Nanosleep => "clock_nanosleep",
        }
    }

    /// The call numbered `nr`, when it is one the lessons know.
    pub fn from_nr(nr: i64) -> Option<Call> {
        Call::ALL.into_iter().find(|c| c.nr() == nr)
    }
}

/// What `/proc/<pid>/syscall` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syscall {
    /// Not readable here (gone, no permission, or a kernel without it).
    Unavailable,
    /// On a CPU or ready for one: not in a system call.
    Running,
    /// Asleep in system call `nr` (`-1`: blocked outside any call), `arg0` its first
    /// argument (a descriptor for `read` and `flock`, the word's address for `futex`).
    In { nr: i64, arg0: u64 },
}

impl Syscall {
    /// Asleep in `call`?
    pub fn is(self, call: Call) -> bool {
        matches!(self, Syscall::In { nr, .. } if nr == call.nr())
    }
}

/// The scheduler's clocks of a process (`/proc/<pid>/schedstat`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sched {
    /// Nanoseconds on a CPU.
    pub cpu_ns: u64,
    /// Nanoseconds waiting on a run queue: ready, not running.
    pub wait_ns: u64,
    /// How many times it got a CPU.
    pub turns: u64,
}

/// What `/proc/<pid>/stat` says of a process's name and place: in the tree, its
/// process group, its session, its terminal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ids {
    /// The command name (`comm`), as `ps` and `pstree` show it.
    pub comm: String,
    pub state: char,
    pub ppid: i32,
    pub pgid: i32,
    pub sid: i32,
    /// The controlling terminal's device number, 0 for none.
    pub tty_nr: i32,
    /// The terminal's name as `ps` writes it (`pts/3`, `?` for none).
    pub tty: String,
}

/// One thread of a process as `/proc/<pid>/task/<tid>/stat` shows it: its state letter
/// and the CPU it last ran on (field 39, `processor`; `-1` when the kernel did not say).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskStat {
    pub tid: i32,
    pub state: char,
    pub cpu: i32,
}

/// A process kept open for sampling its state again and again (the observer's loop):
/// one `/proc/<pid>` directory opened once instead of a path walk each time.
pub struct Handle {
    #[cfg(target_os = "linux")]
    process: procfs::process::Process,
}

impl Handle {
    /// `None` when `pid` is gone already (or elsewhere than Linux).
    pub fn open(pid: i32) -> Option<Handle> {
        #[cfg(target_os = "linux")]
        return procfs::process::Process::new(pid)
            .ok()
            .map(|process| Handle { process });
        #[cfg(not(target_os = "linux"))]
        {
            let _ = pid;
            None
        }
    }

    /// Its state letter now; `None` once it is gone.
    pub fn state(&self) -> Option<char> {
        #[cfg(target_os = "linux")]
        return self.process.stat().ok().map(|s| s.state);
        #[cfg(not(target_os = "linux"))]
        None
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use super::{Ids, Sched, Syscall, TaskStat};
    use procfs::process::{FDTarget, Process};

    fn process(pid: i32) -> Option<Process> {
        Process::new(pid).ok()
    }

    pub(crate) fn state(pid: i32) -> Option<char> {
        process(pid)?.stat().ok().map(|s| s.state)
    }

    pub(crate) fn rss_kib(pid: i32) -> Option<u64> {
        process(pid)?.status().ok()?.vmrss
    }

    pub(crate) fn ids(pid: i32) -> Option<Ids> {
        let stat = process(pid)?.stat().ok()?;
        let (major, minor) = stat.tty_nr();
        let tty = match (stat.tty_nr, major) {
            (0, _) => "?".to_string(),
            (_, 136..=143) => format!("pts/{}", (major - 136) * 256 + minor),
            (_, 4) if minor < 64 => format!("tty{minor}"),
            (_, 4) => format!("ttyS{}", minor - 64),
            _ => format!("{major}:{minor}"),
        };
        Some(Ids {
            comm: stat.comm,
            state: stat.state,
            ppid: stat.ppid,
            pgid: stat.pgrp,
            sid: stat.session,
            tty_nr: stat.tty_nr,
            tty,
        })
    }

    pub(crate) fn wchan(pid: i32) -> Option<String> {
        let w = process(pid)?.wchan().ok()?;
        let w = w.trim();
        (!w.is_empty() && w != "0").then(|| w.to_string())
    }

    pub(crate) fn syscall(pid: i32) -> Syscall {
        match process(pid).map(|p| p.syscall()) {
            Some(Ok(procfs::process::Syscall::Running)) => Syscall::Running,
            Some(Ok(procfs::process::Syscall::Blocked {
                syscall_number,
                argument_registers,
                ..
            })) => Syscall::In {
                nr: syscall_number,
                arg0: argument_registers[0],
            },
            _ => Syscall::Unavailable,
        }
    }

    pub(crate) fn schedstat(pid: i32) -> Option<Sched> {
        let s = process(pid)?.schedstat().ok()?;
        Some(Sched {
            cpu_ns: s.sum_exec_runtime,
            wait_ns: s.run_delay,
            turns: s.pcount,
        })
    }

    pub(crate) fn fd_target(pid: i32, fd: i32) -> Option<String> {
        let info = process(pid)?.fd_from_fd(fd).ok()?;
        Some(match info.target {
            FDTarget::Path(p) => p
                .file_name()
                .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into()),
            FDTarget::Pipe(inode) => format!("pipe:[{inode}]"),
            FDTarget::Socket(inode) => format!("socket:[{inode}]"),
            other => format!("{other:?}"),
        })
    }

    pub(crate) fn pipe_write_ends(inode: u64, pids: &[i32]) -> Vec<(i32, i32)> {
        let mut out = Vec::new();
        for &pid in pids {
            let Some(fds) = process(pid).and_then(|p| p.fd().ok()) else {
                continue;
            };
            for info in fds.flatten() {
                // The link's owner bits are the descriptor's open mode: `l-wx` for a
                // write end, `lr-x` for a read end.
                let write_only = info.mode & 0o600 == 0o200;
                if matches!(info.target, FDTarget::Pipe(i) if i == inode) && write_only {
                    out.push((pid, info.fd));
                }
            }
        }
        out.sort_unstable();
        out
    }

    pub(crate) fn threads(pid: i32) -> usize {
        process(pid)
            .and_then(|p| p.tasks().ok())
            .map_or(0, |t| t.flatten().count())
    }

    pub(crate) fn tasks(pid: i32) -> Vec<TaskStat> {
        let Some(tasks) = process(pid).and_then(|p| p.tasks().ok()) else {
            return Vec::new();
        };
        let mut out: Vec<TaskStat> = tasks.flatten().filter_map(|t| task_of(&t)).collect();
        out.sort_unstable_by_key(|t| t.tid);
        out
    }

    pub(crate) fn task(pid: i32, tid: i32) -> Option<TaskStat> {
        task_of(&process(pid)?.task_from_tid(tid).ok()?)
    }

    fn task_of(t: &procfs::process::Task) -> Option<TaskStat> {
        let stat = t.stat().ok()?;
        Some(TaskStat {
            tid: t.tid,
            state: stat.state,
            cpu: stat.processor.unwrap_or(-1),
        })
    }

    pub(crate) fn children(pid: i32) -> Vec<i32> {
        // Each thread's `children` lists the children it created; a re-parented orphan
        // appears under the main thread.
        let Some(tasks) = process(pid).and_then(|p| p.tasks().ok()) else {
            return Vec::new();
        };
        let mut out: Vec<i32> = tasks
            .flatten()
            .filter_map(|t| t.children().ok())
            .flatten()
            .filter_map(|c| i32::try_from(c).ok())
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    pub(crate) fn myself() -> Option<i32> {
        Process::myself().ok().map(|p| p.pid)
    }

    pub(crate) fn link(pid: i32, what: &str) -> Option<String> {
        std::fs::read_link(format!("/proc/{pid}/{what}"))
            .ok()
            .map(|p| p.display().to_string())
    }

    pub(crate) fn flocks(inode: u64) -> (Vec<i32>, Vec<i32>) {
        let (mut holders, mut waiters) = (Vec::new(), Vec::new());
        let Ok(text) = std::fs::read_to_string("/proc/locks") else {
            return (holders, waiters);
        };
        for line in text.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            let Some(at) = words.iter().position(|w| w.matches(':').count() == 2) else {
                continue;
            };
            let same_file = words[at].rsplit(':').next() == Some(&inode.to_string());
            let pid = at.checked_sub(1).and_then(|p| words[p].parse::<i32>().ok());
            if let (true, Some(pid)) = (same_file, pid) {
                if words.contains(&"->") {
                    waiters.push(pid);
                } else {
                    holders.push(pid);
                }
            }
        }
        (holders, waiters)
    }
}

#[cfg(not(target_os = "linux"))]
mod linux {
    use super::{Ids, Sched, Syscall, TaskStat};
    pub fn tasks(_: i32) -> Vec<TaskStat> {
        Vec::new()
    }
    pub fn task(_: i32, _: i32) -> Option<TaskStat> {
        None
    }
    pub fn state(_: i32) -> Option<char> {
        None
    }
    pub fn ids(_: i32) -> Option<Ids> {
        None
    }
    pub fn wchan(_: i32) -> Option<String> {
        None
    }
    pub fn syscall(_: i32) -> Syscall {
        Syscall::Unavailable
    }
    pub fn schedstat(_: i32) -> Option<Sched> {
        None
    }
    pub fn fd_target(_: i32, _: i32) -> Option<String> {
        None
    }
    pub fn pipe_write_ends(_: u64, _: &[i32]) -> Vec<(i32, i32)> {
        Vec::new()
    }
    pub fn threads(_: i32) -> usize {
        0
    }
    pub fn rss_kib(_: i32) -> Option<u64> {
        None
    }
    pub fn children(_: i32) -> Vec<i32> {
        Vec::new()
    }
    pub fn link(_: i32, _: &str) -> Option<String> {
        None
    }
    pub fn myself() -> Option<i32> {
        None
    }
    pub fn flocks(_: u64) -> (Vec<i32>, Vec<i32>) {
        (Vec::new(), Vec::new())
    }
}

/// The state letter of `pid` now (`R`, `S`, `D`, `T`, `Z`…); `None` once it is gone.
pub fn state(pid: i32) -> Option<char> {
    linux::state(pid)
}

/// Its parent, group, session and terminal.
pub fn ids(pid: i32) -> Option<Ids> {
    linux::ids(pid)
}

/// The kernel function a sleeping `pid` waits in (`/proc/<pid>/wchan`), if told.
pub fn wchan(pid: i32) -> Option<String> {
    linux::wchan(pid)
}

/// The system call `pid` is in.
pub fn syscall(pid: i32) -> Syscall {
    linux::syscall(pid)
}

/// Its scheduler clocks.
pub fn schedstat(pid: i32) -> Option<Sched> {
    linux::schedstat(pid)
}

/// What descriptor `fd` of `pid` is: a file's name, `pipe:[1234]`, `socket:[5678]`.
pub fn fd_target(pid: i32, fd: i32) -> Option<String> {
    linux::fd_target(pid, fd)
}

/// The write ends of pipe `inode` that the processes `pids` hold open: `(pid, fd)`.
pub fn pipe_write_ends(inode: u64, pids: &[i32]) -> Vec<(i32, i32)> {
    linux::pipe_write_ends(inode, pids)
}

/// How many threads `pid` has (`/proc/<pid>/task`); 0 once it is gone.
pub fn threads(pid: i32) -> usize {
    linux::threads(pid)
}

/// Every thread of `pid` (`/proc/<pid>/task`), by TID, with its state and CPU; empty
/// once it is gone.
pub fn tasks(pid: i32) -> Vec<TaskStat> {
    linux::tasks(pid)
}

/// Thread `tid` of `pid` (`/proc/<pid>/task/<tid>/stat`); `None` once it is gone.
pub fn task(pid: i32, tid: i32) -> Option<TaskStat> {
    linux::task(pid, tid)
}

/// The memory `pid` has in RAM now, in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: i32) -> Option<u64> {
    linux::rss_kib(pid)
}

/// The children of `pid`, sorted.
pub fn children(pid: i32) -> Vec<i32> {
    linux::children(pid)
}

/// Where the link `/proc/<pid>/<what>` points (`cwd`, `fd/0`, …).
pub fn link(pid: i32, what: &str) -> Option<String> {
    linux::link(pid, what)
}

/// The PID `/proc/self` names: the process that reads it, as the kernel says.
pub fn myself() -> Option<i32> {
    linux::myself()
}

/// The `flock`s on the file with `inode`, from `/proc/locks`: the pids holding one, and
/// the pids whose request waits behind them.
pub fn flocks(inode: u64) -> (Vec<i32>, Vec<i32>) {
    linux::flocks(inode)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id() as i32;
        assert!(matches!(state(me), Some('R' | 'S')));
        assert_eq!(ids(me).unwrap().ppid, nix::unistd::getppid().as_raw());
        assert!(threads(me) >= 1);
        let tasks = tasks(me);
        assert!(tasks.iter().any(|t| t.tid == me && t.cpu >= 0));
        assert_eq!(task(me, me).map(|t| t.tid), Some(me));
        assert!(schedstat(me).is_some_and(|s| s.cpu_ns > 0));
        assert_eq!(Call::from_nr(Call::Futex.nr()), Some(Call::Futex));
    }

    #[test]
    fn a_pipe_write_end_is_found_by_its_inode() {
        let (r, w) = nix::unistd::pipe().unwrap();
        use std::os::fd::AsRawFd;
        let me = std::process::id() as i32;
        let target = fd_target(me, w.as_raw_fd()).unwrap();
        let inode: u64 = target
            .trim_start_matches("pipe:[")
            .trim_end_matches(']')
            .parse()
            .unwrap();
        assert_eq!(pipe_write_ends(inode, &[me]), vec![(me, w.as_raw_fd())]);
        drop((r, w));
    }
}
