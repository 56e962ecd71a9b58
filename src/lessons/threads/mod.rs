//! Lesson `threads`: what a thread shares that a process does not.
//!
//! One small process, re-executed for the lesson so that its threads are only the
//! lesson's, shows it: one PID and three TIDs in `/proc/<pid>/task`; the global
//! `n = 100` that a thread sets to 0 and the main thread then reads as 0, at the same
//! address (the opposite of `isolation`); two spinning threads both `R` at once on two
//! CPUs (`/proc/<pid>/task/<tid>/stat`, field 39); and Python's daemon thread, left
//! working when the process exits, against a normal one, which CPython's
//! `threading._shutdown()` joins first. Last, with `python3`, CPython's GIL, timed.
//!
//! A process is the unit of resource allocation (memory, descriptors, the PID), a thread
//! the unit of CPU scheduling: the study notes call the process the unit of "resource
//! scheduling", and the lesson says it right.

use super::{LessonDef, Opts};
use crate::child::Down;
use crate::ctx::{ChildProc, Ctx, Expect, Stopped};
use crate::event::{now_ns, ObsValue};
use crate::procs;
use crate::sys::proc::{self, TaskStat};
use crate::{say, say_for, step};
use anyhow::{bail, Result};
use nix::unistd::Pid;
use std::time::{Duration, Instant};

mod gil;
mod process;

/// This lesson's words, whose keys the word macros check at compile time.
const WORDS: &crate::words::keys::Table = &crate::words::keys::THREADS;

pub static LESSON: LessonDef = LessonDef {
    name: "threads",
    words_src: include_str!("../../../lessons/threads.toml"),
    options: &[],
    run,
    validate: None,
    roles: &[("process", process::process)],
};

/// The commands of the lesson to its process.
const WRITE: &str = "write";
const SPIN: &str = "spin";
const EXIT: &str = "exit";

/// How long the daemon thread's job would take: far longer than the process lives.
const DAEMON_WORK_MS: u64 = 30_000;

/// How long the process may take to answer: far more than it needs.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the two spinning threads are sampled, at most, for a moment when both are
/// `R` on different CPUs (on a busy machine the kernel may keep them on one CPU a while).
const SAMPLE_BOUND: Duration = Duration::from_secs(5);

/// What the process tells the lesson.
#[derive(serde::Serialize, serde::Deserialize, Debug)]
enum Reply {
    /// Two threads started and parked; every TID, the main thread's first.
    Parked { tids: Vec<i32> },
    /// The parked threads were released and joined.
    Released,
    /// The global `n` as the main thread reads it, at `addr`.
    Global { n: i64, addr: u64, t_ns: u64 },
    /// Thread `tid` set `n = 0` at `thread_addr` (at `t_set`); after `join()` the main
    /// thread read `after` at `main_addr` (at `t_read`).
    Written {
        tid: i32,
        thread_addr: u64,
        t_set: u64,
        after: i64,
        main_addr: u64,
        t_read: u64,
    },
    /// Two threads spin.
    Spinning { tids: Vec<i32> },
    /// They stopped: the wall time they spun in, and each one's CPU time.
    Spun { wall_ns: u64, cpu_ns: Vec<u64> },
    /// The daemon thread and the normal one started.
    Started { daemon: i32, worker: i32 },
    /// The main code ended and the normal thread was joined (whether it had finished).
    Joined { worker_done: bool, t_ns: u64 },
    /// The daemon thread finished its job: never, in a process that exits first.
    DaemonDone,
}

fn next(child: &ChildProc) -> Result<Reply> {
    child.decode(&child.reply(REPLY_TIMEOUT)?)
}

fn hex(addr: u64) -> String {
    format!("{addr:#x}")
}

/// TIDs as the narration lists them: `101, 102, 103`.
fn list(tids: &[i32]) -> String {
    tids.iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn run(ctx: &mut Ctx<'_>, _opts: &Opts) -> Result<()> {
    let cpus = procs::allowed_cpus(Pid::from_raw(0)).len();
    ctx.observe("cpus_usable", cpus);
    // The worker thread's job: still running while the lesson tells the main code's end.
    let work_ms = ((12_000.0 * ctx.speed) as u64).max(200);
    let main = ctx.main_pid;
    step!(ctx, "one_pid", &[("main", &main)])?;
    let child = ctx.spawn(
        "process",
        "process",
        serde_json::json!({ "work_ms": work_ms }),
    )?;
    let told = parts(ctx, &child, cpus);
    if told.is_err() {
        // Whatever went wrong, the process is ended and reaped here.
        let _ = nix::sys::signal::kill(child.pid, nix::sys::signal::Signal::SIGKILL);
        let _ = ctx.join(child.pid);
    }
    told?;
    step!(ctx, "gil", &[])?;
    gil::gil(ctx, cpus)?;
    say!(ctx, "moral", &[]);
    // The last step's pause, once its story is told.
    ctx.show(0)
}

fn parts(ctx: &mut Ctx<'_>, child: &ChildProc, cpus: usize) -> Result<()> {
    one_pid(ctx, child)?;
    shared_n(ctx, child)?;
    parallel(ctx, child, cpus)?;
    daemon(ctx, child)
}

/// Emit what `/proc/<pid>/task` says of each thread, as `task` events of `phase`.
fn tell_tasks(ctx: &Ctx<'_>, pid: i32, phase: &str, tasks: &[TaskStat], t_ns: u64) {
    for t in tasks {
        ctx.act_at(
            pid,
            t_ns,
            "task",
            &[
                ("phase", phase.into()),
                ("tid", ObsValue::from(t.tid as i64)),
                ("state", t.state.to_string().into()),
                ("cpu", ObsValue::from(t.cpu as i64)),
            ],
        );
    }
}

/// One PID, three TIDs: the process's own list against the kernel's.
fn one_pid(ctx: &mut Ctx<'_>, child: &ChildProc) -> Result<()> {
    let pid = child.pid.as_raw();
    let Reply::Parked { tids } = next(child)? else {
        bail!("the process (PID {pid}) did not start its threads");
    };
    say!(ctx, "intro", &[("pid", &pid)]);
    ctx.pause(1500)?;
    let t_ns = now_ns();
    let tasks = proc::tasks(pid);
    tell_tasks(ctx, pid, "tids", &tasks, t_ns);
    let seen: Vec<i32> = tasks.iter().map(|t| t.tid).collect();
    let states: String = tasks.iter().map(|t| t.state).collect();
    say!(
        ctx,
        "tasks",
        &[
            ("pid", &pid),
            ("n", &seen.len()),
            ("tids", &list(&seen)),
            ("states", &states),
        ],
    );
    // As sets: /proc lists the TIDs in increasing order, and after the PIDs wrap
    // around (at pid_max, 32768 by default) a thread's TID can be lower than its PID.
    let (mut kernel, mut told) = (seen.clone(), tids.clone());
    kernel.sort_unstable();
    told.sort_unstable();
    ctx.claim(
        "tids",
        seen.len(),
        Expect::eq(3)
            .note("the main thread, TID = PID, and 2 threads")
            .and("same_as_threads_told", kernel == told)
            .and("main_tid_is_pid", seen.contains(&pid)),
    );
    ctx.pause(2500)?;
    say!(ctx, "unit", &[]);
    ctx.show(3000)?;
    child.send(Down::Go)?;
    match next(child)? {
        Reply::Released => Ok(()),
        other => bail!("the process answered {other:?} instead of joining its threads"),
    }
}

/// `n = 100`; a thread sets it to 0; the main thread reads 0, at the same address.
fn shared_n(ctx: &mut Ctx<'_>, child: &ChildProc) -> Result<()> {
    let pid = child.pid.as_raw();
    step!(ctx, "shared", &[])?;
    say!(ctx, "remember", &[]);
    ctx.pause(1500)?;
    child.send(Down::Value(WRITE.into()))?;
    let Reply::Global { n, addr, t_ns } = next(child)? else {
        bail!("the process (PID {pid}) did not read its n");
    };
    say_for!(
        ctx,
        pid,
        t_ns,
        "global",
        &[("pid", &pid), ("n", &n), ("addr", &hex(addr))]
    );
    ctx.observe("value_before", n);
    ctx.pause(2000)?;
    child.send(Down::Go)?;
    let Reply::Written {
        tid,
        thread_addr,
        t_set,
        after,
        main_addr,
        t_read,
    } = next(child)?
    else {
        bail!("the process (PID {pid}) did not run its writing thread");
    };
    let fields = |tid: i32, value: i64, addr: u64| {
        [
            ("tid", ObsValue::from(tid as i64)),
            ("value", value.into()),
            ("addr", hex(addr).into()),
        ]
    };
    ctx.act_at(pid, t_set, "write", &fields(tid, 0, thread_addr));
    ctx.act_at(pid, t_read, "read", &fields(pid, after, main_addr));
    say_for!(
        ctx,
        pid,
        t_set,
        "thread_set",
        &[("tid", &tid), ("addr", &hex(thread_addr))]
    );
    say_for!(
        ctx,
        pid,
        t_read,
        "main_reads",
        &[("n", &after), ("addr", &hex(main_addr))]
    );
    ctx.keep_up();
    ctx.claim("thread_write_seen", after == 0, Expect::eq(true));
    let same = thread_addr == main_addr;
    ctx.claim("same_address", same, Expect::eq(true));
    ctx.pause(2000)?;
    say!(ctx, "one_space", &[]);
    ctx.pause(2500)
}

/// Two spinning threads, sampled until both are `R` on different CPUs.
fn parallel(ctx: &mut Ctx<'_>, child: &ChildProc, cpus: usize) -> Result<()> {
    let pid = child.pid.as_raw();
    step!(ctx, "parallel", &[("pid", &pid)])?;
    say!(ctx, "spin_intro", &[("cpus", &cpus)]);
    ctx.pause(1500)?;
    child.send(Down::Value(SPIN.into()))?;
    let Reply::Spinning { tids } = next(child)? else {
        bail!("the process (PID {pid}) did not start its spinning threads");
    };
    let sampled = sample(pid, &tids, cpus);
    let (t_ns, pair) = match sampled {
        Ok(s) => s,
        Err(e) => {
            let _ = child.send(Down::Go);
            return Err(e);
        }
    };
    tell_tasks(ctx, pid, "spin", &pair, t_ns);
    let both = pair.len() == 2
        && pair.iter().all(|t| t.state == 'R')
        && pair[0].cpu != pair[1].cpu
        && pair.iter().all(|t| t.cpu >= 0);
    if cpus >= 2 {
        let (a, b) = (&pair[0], &pair[1]);
        say_for!(
            ctx,
            pid,
            t_ns,
            if (both) { "both_running" } else { "not_both" },
            &[
                ("a", &a.tid),
                ("sa", &a.state),
                ("ca", &a.cpu),
                ("b", &b.tid),
                ("sb", &b.state),
                ("cb", &b.cpu),
            ],
        );
        ctx.claim("both_running_on_two_cpus", both, Expect::eq(true));
    } else {
        say_for!(ctx, pid, t_ns, "one_cpu", &[]);
        ctx.observe("both_running_on_two_cpus", false);
    }
    ctx.show(2000)?;
    child.send(Down::Go)?;
    let Reply::Spun { wall_ns, cpu_ns } = next(child)? else {
        bail!("the process (PID {pid}) did not stop its spinning threads");
    };
    let ms = |ns: u64| format!("{:.0}", ns as f64 / 1e6);
    let ratio = cpu_ns.iter().sum::<u64>() as f64 / wall_ns.max(1) as f64;
    say!(
        ctx,
        "spun",
        &[
            ("wall", &ms(wall_ns)),
            ("a", &ms(cpu_ns.first().copied().unwrap_or(0))),
            ("b", &ms(cpu_ns.get(1).copied().unwrap_or(0))),
            ("ratio", &format!("{ratio:.1}")),
        ],
    );
    ctx.observe("threads_cpu_ratio", (ratio * 100.0).round() / 100.0);
    ctx.pause(2500)
}

/// Read both threads' `/proc/<pid>/task/<tid>/stat` every millisecond until both are
/// `R` on two different CPUs (with one CPU usable, the first sample), within
/// [`SAMPLE_BOUND`]: the stamp and the sample that showed it, or the last one.
fn sample(pid: i32, tids: &[i32], cpus: usize) -> Result<(u64, Vec<TaskStat>)> {
    let deadline = Instant::now() + SAMPLE_BOUND;
    loop {
        let t_ns = now_ns();
        let pair: Vec<TaskStat> = tids.iter().filter_map(|&t| proc::task(pid, t)).collect();
        if pair.len() != 2 {
            bail!("the spinning threads of PID {pid} are gone from /proc/{pid}/task");
        }
        let both = pair.iter().all(|t| t.state == 'R') && pair[0].cpu != pair[1].cpu;
        if both || cpus < 2 || Instant::now() > deadline {
            return Ok((t_ns, pair));
        }
        if !procs::sleep(Duration::from_millis(1)) {
            return Err(Stopped.into());
        }
    }
}

/// Python's daemon thread against a normal one, at the process's exit.
fn daemon(ctx: &mut Ctx<'_>, child: &ChildProc) -> Result<()> {
    let pid = child.pid.as_raw();
    step!(ctx, "daemon", &[("pid", &pid)])?;
    say!(ctx, "daemon_intro", &[]);
    ctx.pause(2000)?;
    child.send(Down::Value(EXIT.into()))?;
    let Reply::Started { daemon, worker } = next(child)? else {
        bail!("the process (PID {pid}) did not start its two threads");
    };
    say!(
        ctx,
        "two_started",
        &[
            ("daemon", &daemon),
            ("worker", &worker),
            ("ms", &DAEMON_WORK_MS)
        ],
    );
    ctx.pause(1500)?;
    say!(ctx, "main_ends", &[("worker", &worker)]);
    child.send(Down::Go)?;
    let Reply::Joined { worker_done, t_ns } = next(child)? else {
        bail!("the process (PID {pid}) did not join its worker thread");
    };
    let t_read = now_ns();
    let tasks = proc::tasks(pid);
    tell_tasks(ctx, pid, "exit", &tasks, t_read);
    let daemon_state = tasks
        .iter()
        .find(|t| t.tid == daemon)
        .map_or('?', |t| t.state);
    say_for!(
        ctx,
        pid,
        t_ns,
        "joined",
        &[
            ("worker", &worker),
            ("daemon", &daemon),
            ("state", &daemon_state),
            ("n", &tasks.len()),
        ],
    );
    ctx.show(2000)?;
    child.send(Down::Stop)?;
    let code = ctx.join_within(child.pid, REPLY_TIMEOUT)?;
    // Every reply it sent before it exited, up to the end of its channel: a
    // `DaemonDone` would be among them.
    let mut daemon_done = false;
    loop {
        match child.reply(Duration::from_secs(2)) {
            Ok(v) => daemon_done |= matches!(child.decode(&v)?, Reply::DaemonDone),
            Err(e) if e.is::<Stopped>() => return Err(e),
            Err(_) => break,
        }
    }
    say!(ctx, "exited", &[("code", &code), ("daemon", &daemon)]);
    ctx.claim("joined_thread_finished", worker_done, Expect::eq(true));
    ctx.claim("daemon_thread_finished", daemon_done, Expect::eq(false));
    ctx.pause(2500)?;
    say!(ctx, "python_daemon", &[]);
    ctx.pause(2500)
}
