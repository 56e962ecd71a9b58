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
use crate::ctx::{Ctx, Expect};
use crate::event::{now_ns, ObsValue};
use crate::{python_or_say, say, step};
use anyhow::{bail, Result};
use std::time::Duration;

/// This lesson's words, whose keys the word macros check at compile time.
const WORDS: &crate::words::keys::Table = &crate::words::keys::COST;

pub static LESSON: LessonDef = LessonDef {
    name: "cost",
    words_src: include_str!("../../../lessons/cost.toml"),
    options: &[OptSpec {
        name: "rounds",
        default: 20,
        min: 5,
        max: 200,
        help: "How many times each thing is timed (the median is reported)",
    }],
    run,
    validate: None,
    roles: &[("idle", idle), ("worker", worker), ("timer", timer::timer)],
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

mod timer;

/// The sizes of memory the timer grows to before it forks (MiB).
const GROWN_MIB: [i64; 3] = [1, 64, 512];

/// What the children tell the lesson: the pool's worker, task `task` done (its answer
/// the task's own number); the timer, its echo child and its own size, each round's
/// times, each grown size's forks, and its echo child's end.
#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
enum Reply {
    Done {
        task: i64,
    },
    TimerReady {
        echo: i32,
        threads: usize,
        rss_kib: u64,
    },
    Round {
        fork_us: Vec<f64>,
        thread_us: Vec<f64>,
        pipe_us: Vec<f64>,
    },
    Grown {
        mib: i64,
        rss_kib: u64,
        fork_us: Vec<f64>,
    },
    TimerEnded {
        echo_exitcode: i32,
    },
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
    let (times, grown) = timed(ctx, rounds)?;
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
    verdict(ctx, rounds, &times, &grown)?;
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

/// The pool's worker and the timer (with its echo child) are started, the five are
/// timed, the timer forks grown, and all are ended and reaped whatever happened.
fn timed(ctx: &mut Ctx<'_>, rounds: usize) -> Result<(Times, Vec<Grown>)> {
    let main = ctx.main_pid;
    step!(ctx, "pool_task", &[("main", &main)])?;
    let worker = ctx.spawn("worker", "worker", serde_json::json!({}))?;
    say!(ctx, "pool_intro", &[("pid", &worker.pid)]);
    ctx.show(2000)?;

    step!(ctx, "pipe", &[("main", &main)])?;
    let timer = ctx.spawn("timer", "timer", serde_json::json!({}))?;
    let measured = timer_ready(ctx, &timer).and_then(|echo| {
        ctx.show(2000)?;
        step!(ctx, "measure", &[("main", &main)])?;
        say!(ctx, "measure", &[("rounds", &rounds)]);
        ctx.show(1500)?;
        let [fork, spawn, thread, pool, pipe] = measure(ctx, rounds, &worker, &timer)?;
        let times = Times {
            fork,
            spawn,
            thread,
            pool,
            pipe,
        };
        tell_each(ctx, &times)?;
        let grown = grow(ctx, &timer)?;
        Ok((echo, times, grown))
    });
    // Whatever happened, the worker and the timer are ended and reaped here (the timer
    // reaps its echo child; a timer that died leaves it to the subreaper, this process).
    let _ = worker.send(Down::Stop);
    ctx.join(worker.pid)?;
    let ended = timer
        .send(Down::Stop)
        .and_then(|()| timer.decode::<Reply>(&timer.reply(TIMEOUT)?));
    let timer_code = ctx.join(timer.pid)?;
    let (echo, times, grown) = measured?;
    match ended? {
        Reply::TimerEnded { echo_exitcode } => {
            if echo_exitcode != 0 {
                bail!("the echo child (PID {echo}) exited with {echo_exitcode}, not 0");
            }
        }
        other => bail!("the timer answered {other:?} to Stop"),
    }
    if timer_code != 0 {
        bail!(
            "the timer (PID {}) exited with {timer_code}, not 0",
            timer.pid
        );
    }
    Ok((times, grown))
}

/// The timer's first word: its echo child (told as a child of the timer) and its size
/// against this process's, said and observed. The echo child's PID.
fn timer_ready(ctx: &mut Ctx<'_>, timer: &crate::ctx::ChildProc) -> Result<i32> {
    let Reply::TimerReady {
        echo,
        threads,
        rss_kib,
    } = timer.decode(&timer.reply(TIMEOUT)?)?
    else {
        bail!("the timer (PID {}) did not start as it should", timer.pid);
    };
    let main = ctx.main_pid;
    let main_threads = crate::sys::proc::threads(main);
    let main_rss = crate::sys::proc::rss_kib(main).unwrap_or(0);
    say!(
        ctx,
        "timer_intro",
        &[
            ("pid", &timer.pid),
            ("threads", &threads),
            ("mib", &mib_of(rss_kib)),
            ("main", &main),
            ("main_threads", &main_threads),
            ("main_mib", &mib_of(main_rss)),
        ],
    );
    ctx.observe("timer_threads", threads);
    ctx.observe("main_threads", main_threads);
    say!(ctx, "pipe_intro", &[("pid", &echo)]);
    Ok(echo)
}

/// KiB as MiB with one decimal.
fn mib_of(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
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
fn verdict(ctx: &mut Ctx<'_>, rounds: usize, t: &Times, grown: &[Grown]) -> Result<()> {
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
        Expect::eq(true).note(format!("spawn_us {spawn:.1} > fork_us {fork:.1}")),
    );
    let holds = fork > thread;
    ctx.claim(
        "process_costs_more_than_thread",
        holds,
        Expect::eq(true).note(format!("fork_us {fork:.1} > thread_us {thread:.1}")),
    );
    let holds = pool < spawn;
    ctx.claim(
        "pool_task_cheaper_than_spawn",
        holds,
        Expect::eq(true).note(format!("pool_task_us {pool:.1} < spawn_us {spawn:.1}")),
    );
    // The largest parent against the smallest: tens of times the page tables to copy.
    if let (Some(small), Some(large)) = (grown.first(), grown.last()) {
        let holds = large.median_us > small.median_us;
        ctx.claim(
            "fork_dearer_with_memory",
            holds,
            Expect::eq(true).note(format!(
                "fork_{}mib_us {:.1} > fork_{}mib_us {:.1}",
                large.mib, large.median_us, small.mib, small.median_us
            )),
        );
    }
    ctx.pause(1500)?;
    say!(
        ctx,
        "moral",
        &[("times", &ratio(spawn, pool)), ("rounds", &rounds)],
    );
    Ok(())
}

/// Time the five in turns. Each round, the timer tries a fork, a thread and a pipe round
/// trip, twice each; then this process tries a spawn and a task for the worker, twice
/// each; each keeps the faster try. A busy moment of the machine (another program
/// holding the CPU) then falls on all five alike, not on one of them; and since it can
/// only make a try slower, two tries a pass apart keep it out of the round. Without the
/// second try, a fork was seen slower than a thread now and then on a two-core machine
/// kept busy by other sessions' compilers. The medians and minimums of the rounds, in
/// the order fork, spawn, thread, pool task, pipe.
fn measure(
    ctx: &mut Ctx<'_>,
    rounds: usize,
    worker: &crate::ctx::ChildProc,
    timer: &crate::ctx::ChildProc,
) -> Result<[Timing; 5]> {
    // One untimed task: the first trip warms its path up (the timer warms its own).
    pool_task(worker, 0)?;
    let mut times: [Vec<f64>; 5] = Default::default();
    let mut tries = 0;
    for round in 0..rounds {
        // The live panel's bar: the rounds go by too fast to tell one by one.
        ctx.gauge("rounds", round as i64, rounds as i64);
        ctx.check()?;
        timer.send(Down::Go)?;
        let Reply::Round {
            fork_us,
            thread_us,
            pipe_us,
        } = timer.decode(&timer.reply(TIMEOUT)?)?
        else {
            bail!(
                "the timer (PID {}) answered Go with something else",
                timer.pid
            );
        };
        let (mut spawn_best, mut pool_best) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..2 {
            ctx.check()?;
            tries += 1;
            spawn_best = spawn_best.min(spawn_once(ctx, tries)?);
            pool_best = pool_best.min(pool_task(worker, tries as i64)?);
        }
        let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
        let this = [
            best(&fork_us),
            spawn_best,
            best(&thread_us),
            pool_best,
            best(&pipe_us),
        ];
        for (v, b) in times.iter_mut().zip(this) {
            v.push(b);
        }
    }
    ctx.gauge("rounds", rounds as i64, rounds as i64);
    Ok(times.map(Timing::of))
}

/// One size the timer grew to: MiB written, and the median of its forks at that size.
struct Grown {
    mib: i64,
    median_us: f64,
}

/// The timer writes 1, 64, then 512 MiB and forks at each size: fork() copies the page
/// tables and marks every page copy-on-write, so it costs more the larger the parent.
fn grow(ctx: &mut Ctx<'_>, timer: &crate::ctx::ChildProc) -> Result<Vec<Grown>> {
    step!(ctx, "memory", &[("pid", &timer.pid)])?;
    say!(
        ctx,
        "memory_intro",
        &[("pid", &timer.pid), ("forks", &timer::GROWN_FORKS)],
    );
    ctx.pause(1500)?;
    let mut grown: Vec<Grown> = Vec::new();
    for mib in GROWN_MIB {
        ctx.check()?;
        timer.send(Down::Value(ObsValue::Int(mib)))?;
        let Reply::Grown {
            mib: got,
            rss_kib,
            fork_us,
        } = timer.decode(&timer.reply(TIMEOUT)?)?
        else {
            bail!(
                "the timer (PID {}) answered a size with something else",
                timer.pid
            );
        };
        if got != mib {
            bail!("the timer grew to {got} MiB, not {mib}");
        }
        let median_us = Timing::of(fork_us).median;
        let smallest = grown.first().map_or(median_us, |g| g.median_us);
        say!(
            ctx,
            "memory_row",
            &[
                ("mib", &mib),
                ("rss", &mib_of(rss_kib)),
                ("median", &f1(median_us)),
                ("times", &ratio(median_us, smallest)),
            ],
        );
        ctx.observe(&format!("fork_{mib}mib_us"), tenth(median_us));
        ctx.settle()?;
        grown.push(Grown { mib, median_us });
    }
    say!(ctx, "memory_moral", &[]);
    ctx.pause(2000)?;
    Ok(grown)
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

/// Time CPython's `Process(...).start(); join()` with its fixed script, if `python3` is
/// there. Its timing and start method, or `None` (said why) when it could not be had.
fn time_python(ctx: &mut Ctx<'_>, rounds: usize, fork_us: f64) -> Result<Python> {
    let started = |ctx: &mut Ctx<'_>, pid: i32| {
        say!(ctx, "python_intro", &[("pid", &pid), ("rounds", &rounds)]);
    };
    let rounds_arg = rounds.to_string();
    let args = ["-c".as_ref(), PY_SCRIPT.as_ref(), rounds_arg.as_ref()];
    let Some(output) = python_or_say!(ctx, &args, PYTHON_TIMEOUT, started) else {
        return Ok(None);
    };
    let code = output.exitcode;
    let parsed: Option<serde_json::Value> = serde_json::from_str(&output.stdout).ok();
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
