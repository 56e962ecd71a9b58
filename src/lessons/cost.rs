//! Lesson `cost`: what a process costs to create, and so why pools exist.
//!
//! Five things are timed live, `--rounds` times each, and reported as a median (and a
//! minimum): a forked child that does nothing (`fork` + `_exit` + `waitpid`); a spawned
//! child (fork + exec of this binary, its hello over ipc-channel, and its reap); a thread
//! (create + join); a task handed to a worker process that is already running, and its
//! answer (what a pool pays per task); and one byte to a forked child and one back over
//! pipes. When `python3` is on the `PATH`, CPython's own `Process(...).start(); join()`
//! is timed by a fixed script and shown beside them.
//!
//! The timed loops are bare: the events of the processes they create (`spawn`, `exit`)
//! carry stamps taken inside each timed interval, and are emitted after the clock
//! stopped where that is possible (the forks), so the narration does not weigh on the
//! numbers. Only orderings that hold on any machine, even a busy one, are claimed:
//! absolute numbers are observations.

use super::{LessonDef, OptSpec, Opts};
use crate::child::{ChildCtx, Down};
use crate::ctx::{Ctx, Stopped};
use crate::event::{now_ns, Event, How, Kind, ObsValue};
use crate::procs;
use crate::{say, step};
use anyhow::{anyhow, bail, Context, Result};
use nix::unistd::Pid;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// This lesson's words, whose keys the word macros check at compile time.
const WORDS: &crate::words::keys::Table = &crate::words::keys::COST;

pub static LESSON: LessonDef = LessonDef {
    name: "cost",
    words_src: include_str!("../../lessons/cost.toml"),
    options: &[OptSpec {
        name: "rounds",
        default: 20,
        min: 5,
        max: 200,
        help: "How many times each thing is timed (the median is reported)",
    }],
    run,
    validate: None,
    roles: &[("idle", idle), ("worker", worker)],
};

/// How long a worker or a child may take to answer; far more than either needs, so a
/// timeout means something is broken, not slow.
const TIMEOUT: Duration = Duration::from_secs(5);

/// How long CPython may take for all its rounds before it is given up on.
const PYTHON_TIMEOUT: Duration = Duration::from_secs(30);

/// CPython's side, fixed text: `Process(target=...).start(); join()` with the default
/// start method, `sys.argv[1]` times; prints its median and minimum in microseconds as
/// JSON. The target is a built-in (`os.getpid`) so that it pickles by reference under
/// every start method, `spawn` and `forkserver` included, even from `-c`.
const PY_SCRIPT: &str = r#"
import json, multiprocessing as mp, os, sys, time
n = int(sys.argv[1])
ts = []
for _ in range(n):
    t = time.perf_counter()
    p = mp.Process(target=os.getpid)
    p.start()
    p.join()
    ts.append((time.perf_counter() - t) * 1e6)
    if p.exitcode != 0:
        sys.exit(3)
ts.sort()
print(json.dumps({"median_us": ts[len(ts) // 2], "min_us": ts[0],
                  "start_method": mp.get_start_method(), "version": sys.version.split()[0]}))
"#;

/// What the pool's worker tells the parent: task `task` is done, its answer the task's
/// own number.
#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Eq)]
enum Reply {
    Done { task: i64 },
}

/// Median and minimum of a set of timings, in microseconds.
#[derive(Clone, Copy, Debug)]
struct Timing {
    median: f64,
    min: f64,
}

impl Timing {
    fn of(mut us: Vec<f64>) -> Timing {
        us.sort_by(f64::total_cmp);
        Timing {
            median: us[us.len() / 2],
            min: us[0],
        }
    }
}

/// Microseconds between two `CLOCK_MONOTONIC` stamps.
fn us(from: u64, to: u64) -> f64 {
    to.saturating_sub(from) as f64 / 1000.0
}

/// One decimal, as the observations report it.
fn tenth(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// A number with one decimal, as the narration shows it.
fn f1(x: f64) -> String {
    format!("{x:.1}")
}

/// A number for a table row, right-aligned so the rows line up in any language.
fn cell(x: f64) -> String {
    format!("{x:>8.1}")
}

/// The medians and minimums of the five things timed.
struct Times {
    fork: Timing,
    spawn: Timing,
    thread: Timing,
    pool: Timing,
    pipe: Timing,
}

/// CPython's own timing and its start method, when `python3` could be run.
type Python = Option<(Timing, String)>;

fn run(ctx: &mut Ctx<'_>, opts: &Opts) -> Result<()> {
    let rounds = opts.get("rounds") as usize;
    ctx.observe("rounds", rounds);
    introduce(ctx, rounds)?;
    let times = timed(ctx, rounds)?;
    tell_each(ctx, &times)?;
    step!(ctx, "python", &[])?;
    let python = time_python(ctx, rounds, times.fork.median)?;
    ctx.pause(2000)?;
    ctx.observe("fork_us", tenth(times.fork.median));
    ctx.observe("spawn_us", tenth(times.spawn.median));
    ctx.observe("thread_us", tenth(times.thread.median));
    ctx.observe("pool_task_us", tenth(times.pool.median));
    ctx.observe("pipe_roundtrip_us", tenth(times.pipe.median));
    if let Some((t, _)) = &python {
        ctx.observe("python_process_us", tenth(t.median));
    }
    table(ctx, rounds, &times, &python)?;
    verdict(ctx, rounds, &times)?;
    // The last step's pause, once its story is told.
    ctx.show(0)
}

/// What is timed, one thing a step: a fork, a spawn, a thread.
fn introduce(ctx: &mut Ctx<'_>, rounds: usize) -> Result<()> {
    let main = ctx.main_pid;
    let janitor = ctx.janitor();
    step!(ctx, "intro", &[("main", &main), ("janitor", &janitor)])?;
    say!(ctx, "intro", &[("rounds", &rounds)]);
    ctx.show(2500)?;

    step!(ctx, "fork", &[])?;
    say!(ctx, "fork_intro", &[]);
    ctx.pause(2000)?;
    step!(ctx, "spawn", &[])?;
    say!(ctx, "spawn_intro", &[]);
    ctx.pause(2000)?;
    step!(ctx, "thread", &[])?;
    say!(ctx, "thread_intro", &[]);
    ctx.pause(2000)
}

/// The pool's worker and the echo child are started, the five are timed, and both are
/// ended and reaped whatever happened.
fn timed(ctx: &mut Ctx<'_>, rounds: usize) -> Result<Times> {
    let main = ctx.main_pid;
    step!(ctx, "pool_task", &[("main", &main)])?;
    let worker = ctx.spawn("worker", "worker", serde_json::json!({}))?;
    say!(ctx, "pool_intro", &[("pid", &worker.pid)]);
    ctx.show(2000)?;

    step!(ctx, "pipe", &[])?;
    let echo = Echo::fork(ctx)?;
    say!(ctx, "pipe_intro", &[("pid", &echo.pid)]);
    ctx.pause(2000)?;

    step!(ctx, "measure", &[("main", &main)])?;
    say!(ctx, "measure", &[("rounds", &rounds)]);
    ctx.show(1500)?;
    let measured = measure(ctx, rounds, &worker, &echo);
    // Whatever happened, the worker and the echo child are ended and reaped here.
    let _ = worker.send(Down::Stop);
    ctx.join(worker.pid)?;
    let echo_pid = echo.pid;
    drop(echo); // end of file on its pipe: the echo child returns and exits
    let echo_code = ctx.join(echo_pid)?;
    let [fork, spawn, thread, pool, pipe] = measured?;
    if echo_code != 0 {
        bail!("the echo child (PID {echo_pid}) exited with {echo_code}, not 0");
    }
    Ok(Times {
        fork,
        spawn,
        thread,
        pool,
        pipe,
    })
}

/// Each median in turn, each against the one it is best compared with.
fn tell_each(ctx: &mut Ctx<'_>, t: &Times) -> Result<()> {
    let (fork, spawn, thread, pool) = (
        t.fork.median,
        t.spawn.median,
        t.thread.median,
        t.pool.median,
    );
    say!(ctx, "fork_done", &[("median", &f1(fork))]);
    ctx.pause(1500)?;
    say!(
        ctx,
        "spawn_done",
        &[("median", &f1(spawn)), ("times", &ratio(spawn, fork))],
    );
    ctx.pause(1500)?;
    say!(
        ctx,
        "thread_done",
        &[("median", &f1(thread)), ("times", &ratio(fork, thread))],
    );
    ctx.pause(1500)?;
    say!(
        ctx,
        "pool_done",
        &[("median", &f1(pool)), ("times", &ratio(spawn, pool))],
    );
    ctx.pause(1500)?;
    say!(ctx, "pipe_done", &[("median", &f1(t.pipe.median))]);
    ctx.pause(2000)
}

/// All of them in one table, CPython's row last when there is one.
fn table(ctx: &mut Ctx<'_>, rounds: usize, times: &Times, python: &Python) -> Result<()> {
    step!(ctx, "table", &[])?;
    say!(ctx, "table_head", &[("rounds", &rounds)]);
    let rows = [
        times.spawn,
        times.fork,
        times.thread,
        times.pool,
        times.pipe,
    ];
    for (row, t) in rows.iter().enumerate() {
        say!(
            ctx,
            match (row) {
                0 => "row_spawn",
                1 => "row_fork",
                2 => "row_thread",
                3 => "row_pool",
                _ => "row_pipe",
            },
            &[("median", &cell(t.median)), ("min", &f1(t.min))]
        );
        ctx.settle()?;
    }
    if let Some((t, method)) = python {
        say!(
            ctx,
            "row_python",
            &[
                ("median", &cell(t.median)),
                ("min", &f1(t.min)),
                ("method", method),
            ],
        );
    }
    ctx.pause(3000)
}

/// The orderings that hold anywhere: exec and a fresh start-up dwarf a fork; a fork
/// copies a whole address space's page tables where a thread shares them; a message to
/// a running worker creates nothing at all.
fn verdict(ctx: &mut Ctx<'_>, rounds: usize, t: &Times) -> Result<()> {
    let (fork, spawn, thread, pool) = (
        t.fork.median,
        t.spawn.median,
        t.thread.median,
        t.pool.median,
    );
    let holds = spawn > fork;
    ctx.claim(
        "spawn_costs_more_than_fork",
        holds,
        &format!("== true (spawn_us {spawn:.1} > fork_us {fork:.1})"),
        holds,
    );
    let holds = fork > thread;
    ctx.claim(
        "process_costs_more_than_thread",
        holds,
        &format!("== true (fork_us {fork:.1} > thread_us {thread:.1})"),
        holds,
    );
    let holds = pool < spawn;
    ctx.claim(
        "pool_task_cheaper_than_spawn",
        holds,
        &format!("== true (pool_task_us {pool:.1} < spawn_us {spawn:.1})"),
        holds,
    );
    ctx.pause(1500)?;
    say!(
        ctx,
        "moral",
        &[("times", &ratio(spawn, pool)), ("rounds", &rounds)],
    );
    Ok(())
}

/// Time the five in turns: each round tries one fork, one spawn, one thread, one task for
/// the worker and one pipe round trip, one after the other, twice, and keeps the faster
/// try of each. A busy moment of the machine (another program holding the CPU) then falls
/// on all five alike, not on one of them; and since it can only make a try slower, two
/// tries a pass apart (a few ms, longer than such a moment) keep it out of the round.
/// Without the second try, a fork was seen slower than a thread now and then on a
/// two-core machine kept busy by other sessions' compilers. The medians and minimums of
/// the rounds, in that order.
fn measure(
    ctx: &mut Ctx<'_>,
    rounds: usize,
    worker: &crate::ctx::ChildProc,
    echo: &Echo,
) -> Result<[Timing; 5]> {
    // One untimed task and one untimed byte: the first trip of each warms its path up.
    pool_task(worker, 0)?;
    echo.roundtrip(ctx)?;
    let mut times: [Vec<f64>; 5] = Default::default();
    let mut tries = 0;
    for round in 0..rounds {
        // The live panel's bar: the rounds go by too fast to tell one by one.
        ctx.gauge("rounds", round as i64, rounds as i64);
        let mut best = [f64::INFINITY; 5];
        for _ in 0..2 {
            ctx.check()?;
            tries += 1;
            let this = [
                fork_once(ctx, tries)?,
                spawn_once(ctx, tries)?,
                thread_once()?,
                pool_task(worker, tries as i64)?,
                echo.roundtrip(ctx)?,
            ];
            for (b, t) in best.iter_mut().zip(this) {
                *b = b.min(t);
            }
        }
        for (v, b) in times.iter_mut().zip(best) {
            v.push(b);
        }
    }
    ctx.gauge("rounds", rounds as i64, rounds as i64);
    Ok(times.map(Timing::of))
}

/// `a / b` in words: "12" or "1.5" (one decimal under 10).
fn ratio(a: f64, b: f64) -> String {
    if b <= 0.0 {
        return "?".into();
    }
    let r = a / b;
    if r >= 10.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}")
    }
}

/// `fork()` a child that `_exit`s at once, and reap it. Only the fork, the exit and the
/// `waitpid` are inside the clock; the `spawn` and `exit` events (stamped when `fork()`
/// returned and when `waitpid()` did) are emitted after it stopped.
fn fork_once(ctx: &mut Ctx<'_>, i: usize) -> Result<f64> {
    let t0 = now_ns();
    let child_body = || 0;
    // SAFETY: the child does nothing at all: it returns 0 to `_exit`.
    let pid = unsafe { procs::fork_child(child_body) }?;
    let forked = now_ns();
    let code = procs::reap(pid)?;
    let t1 = now_ns();
    let name = format!("fork-{i}");
    ctx.spawned_at(forked, pid.as_raw(), ctx.main_pid, &name, How::Fork);
    ctx.emit(Event {
        t_ns: t1,
        pid: pid.as_raw(),
        kind: Kind::Exit {
            name,
            exitcode: code,
            reaped_by: ctx.main_pid,
        },
    });
    if code != 0 {
        bail!("the forked child (PID {pid}) exited with {code}, not 0");
    }
    Ok(us(t0, t1))
}

/// Spawn this binary as an `idle` child (which says hello and waits to be told to end),
/// tell it to end, and join it. All of `ctx.spawn` (the ipc-channel server, fork + exec,
/// the child's start-up and its hello), the `Stop` and `ctx.join` are inside the clock.
fn spawn_once(ctx: &mut Ctx<'_>, i: usize) -> Result<f64> {
    let t0 = now_ns();
    let child = ctx.spawn("idle", &format!("spawn-{i}"), serde_json::json!({}))?;
    child.send(Down::Stop)?;
    let code = ctx.join(child.pid)?;
    let t1 = now_ns();
    if code != 0 {
        bail!(
            "{} (PID {}) exited with {code}, not 0",
            child.name,
            child.pid
        );
    }
    Ok(us(t0, t1))
}

/// Start a thread that does nothing, and join it.
fn thread_once() -> Result<f64> {
    let t0 = now_ns();
    let handle = procs::thread("cost-thread", || ())?;
    handle
        .join()
        .map_err(|_| anyhow!("the timed thread panicked"))?;
    Ok(us(t0, now_ns()))
}

/// Hand the running worker task `i` (a number) and wait for its answer (a
/// [`Reply::Done`] of the same number). The clock stops when the answer has arrived; it
/// is decoded and checked after.
fn pool_task(worker: &crate::ctx::ChildProc, i: i64) -> Result<f64> {
    let t0 = now_ns();
    worker.send(Down::Value(ObsValue::Int(i)))?;
    let answer = worker.reply(TIMEOUT)?;
    let t1 = now_ns();
    let done: Reply = worker.decode(&answer)?;
    if done != (Reply::Done { task: i }) {
        bail!("the worker answered {done:?} to task {i}");
    }
    Ok(us(t0, t1))
}

/// A forked child that answers every byte on one pipe with a byte on another. Dropping
/// it closes the parent's write end: the child sees end of file and exits (join it).
struct Echo {
    pid: Pid,
    to_child: OwnedFd,
    from_child: OwnedFd,
}

impl Echo {
    fn fork(ctx: &mut Ctx<'_>) -> Result<Echo> {
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
        // SAFETY: the child only calls close(2), read(2) and write(2) on descriptors it
        // inherited, with a stack buffer, all async-signal-safe, and returns its status.
        let pid = unsafe { ctx.fork("echo", child_body) }?;
        Ok(Echo {
            pid,
            to_child: to_child_w,
            from_child: from_child_r,
        })
    }

    /// One byte there and one back. Bounded: if the echo child dies (a stop kills it),
    /// the read sees end of file, since this process holds no write end of that pipe.
    fn roundtrip(&self, ctx: &Ctx<'_>) -> Result<f64> {
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
                Ok(_) => {
                    ctx.check()?;
                    bail!("the echo child (PID {}) closed its pipe", self.pid);
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(anyhow!("read() from the echo child's pipe: {e}")),
            }
        }
        Ok(us(t0, now_ns()))
    }
}

/// Time CPython's `Process(...).start(); join()` with its fixed script, if `python3` is
/// there. Its timing and start method, or `None` (said why) when it could not be had.
fn time_python(ctx: &mut Ctx<'_>, rounds: usize, fork_us: f64) -> Result<Python> {
    use std::process::{Command, Stdio};
    let mut cmd = Command::new("python3");
    cmd.args(["-c", PY_SCRIPT, &rounds.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    procs::die_with_parent(&mut cmd);
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            say!(ctx, "python_missing", &[]);
            return Ok(None);
        }
        Err(e) => {
            say!(ctx, "python_failed", &[("why", &e)]);
            return Ok(None);
        }
    };
    let pid = Pid::from_raw(child.id() as i32);
    ctx.spawned(pid.as_raw(), ctx.main_pid, "python3", How::Spawn);
    say!(ctx, "python_intro", &[("pid", &pid), ("rounds", &rounds)]);
    // The output is read (and the child reaped) on a thread, so that this one can give up
    // when the run is stopped or CPython takes far too long.
    let (tx, rx) = std::sync::mpsc::channel();
    if let Err(e) = procs::thread("python3-wait", move || {
        let _ = tx.send(child.wait_with_output());
    }) {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = ctx.join(pid);
        return Err(e);
    }
    let deadline = Instant::now() + PYTHON_TIMEOUT;
    let output = loop {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(out) => break out,
            Err(_) if procs::stop_reason().is_some() => {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                return Err(Stopped.into());
            }
            Err(_) if Instant::now() > deadline => {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
            Err(_) => {}
        }
    };
    let output = output.context("waiting for python3")?;
    let code = {
        use std::os::unix::process::ExitStatusExt;
        output
            .status
            .code()
            .or_else(|| output.status.signal().map(|s| -s))
            .unwrap_or(-1)
    };
    ctx.reaped(pid, code);
    let parsed: Option<serde_json::Value> = serde_json::from_slice(&output.stdout).ok();
    let field = |name: &str| parsed.as_ref().and_then(|v| v.get(name)).cloned();
    let timing = match (
        code,
        field("median_us").and_then(|v| v.as_f64()),
        field("min_us").and_then(|v| v.as_f64()),
    ) {
        (0, Some(median), Some(min)) => Timing { median, min },
        _ => {
            say!(
                ctx,
                "python_failed",
                &[("why", &format!("exitcode {code}"))]
            );
            return Ok(None);
        }
    };
    let method = field("start_method")
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_else(|| "?".into());
    let version = field("version")
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_else(|| "?".into());
    say!(
        ctx,
        "python_done",
        &[
            ("median", &f1(timing.median)),
            ("method", &method),
            ("version", &version),
            ("times", &ratio(timing.median, fork_us)),
        ],
    );
    Ok(Some((timing, method)))
}

/// A spawned child that only says hello (inside `ctx.spawn`) and ends when told to. It
/// does not end on its own: `ctx.spawn` takes a child that is gone before its hello was
/// accepted for one that died before it connected, and on a busy machine the accepting
/// thread can be that late.
fn idle(c: &mut ChildCtx) -> Result<i32> {
    loop {
        if c.recv()? == Down::Stop {
            return Ok(0);
        }
    }
}

/// A pool's worker: answer every task with its own number until told to stop (a task
/// that is not a number is an error).
fn worker(c: &mut ChildCtx) -> Result<i32> {
    loop {
        match c.recv()? {
            Down::Value(ObsValue::Int(task)) => c.tell(&Reply::Done { task })?,
            Down::Value(other) => bail!("task {other} is not a number"),
            Down::Stop => return Ok(0),
            Down::Go => {}
        }
    }
}
