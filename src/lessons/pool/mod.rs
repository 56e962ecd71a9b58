//! Lesson `pool`: Python's `Pool(processes, initializer)`, `apply`, `apply_async` with a
//! callback, `map`, `map_async`, `close` and `join`, on real worker processes.
//!
//! The pool is built the way CPython builds it. Its workers are spawned roles (fork +
//! exec of this binary) that stay alive and take task after task over ipc-channel; each
//! runs the initializer once when it starts. In the main process, a *handler* thread
//! keeps the task queue, hands a task to whichever worker is idle, collects results and
//! runs callbacks (CPython's task and result handler threads); one small *proxy* thread
//! per worker carries a task down and its result up. So `apply_async` only queues and
//! returns, and a callback runs in the main process, never in a worker.
//!
//! The pool's size defaults to the number of CPUs this process may use
//! (`sched_getaffinity`, as `os.process_cpu_count()` and so `Pool()` count them from
//! Python 3.13; up to 3.12 `Pool()` takes `os.cpu_count()`, the CPUs online); `--workers
//! 0` (the default) means exactly that, another value overrides it. (CPython's `Pool(0)`
//! is a `ValueError`, not the default.)

use super::{LessonDef, OptSpec, Opts};
use crate::ctx::{Ctx, Expect};
use crate::event::now_ns;
use crate::procs;
use crate::voice::Voice;
use crate::{say, step};
use anyhow::{Context, Result};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod machinery;
mod speedup;
mod worker;

use machinery::*;
use speedup::*;
use worker::*;

/// This lesson's words, whose keys the word macros check at compile time.
const WORDS: &crate::words::keys::Table = &crate::words::keys::POOL;

pub static LESSON: LessonDef = LessonDef {
    name: "pool",
    words_src: include_str!("../../../lessons/pool.toml"),
    options: &[
        OptSpec {
            name: "workers",
            default: 0,
            min: 0,
            max: 16,
            help: "Worker processes in the pool; 0 (the default) means the number of CPUs \
                   this process may use (sched_getaffinity), as Python's Pool() does",
        },
        OptSpec {
            name: "tasks",
            default: 12,
            min: 1,
            max: 64,
            help: "Tasks given to map, map_async and the timed map",
        },
    ],
    run,
    validate: None,
    roles: &[("worker", worker)],
};

/// CPU time of one task, in milliseconds: of `apply` and `apply_async`, of `map` and
/// `map_async` (both grow with `--speed`, up to 2, so that a person can watch the
/// workers compute: `base + per_speed * speed`), and of the timed maps (fixed).
const APPLY_TASK_MS: (f64, f64) = (10.0, 600.0);
const MAP_TASK_MS: (f64, f64) = (2.0, 200.0);
const TIMED_TASK_MS: f64 = 4.0;
/// The timed map is run this many times (one process, then the pool, each time); the
/// best time of each counts, so that a burst of other programs does not decide.
const TIMED_ROUNDS: u32 = 3;
/// A bound on every wait for the pool, beyond the time its tasks need.
const WAIT_BOUND: Duration = Duration::from_secs(30);
/// The speed-up claimed when at least two CPUs and two workers are there. A smaller one
/// is a failed claim only if the workers really got the CPUs, at least [`FREE_CPUS`]
/// CPUs' worth of time during the map; on a machine busy with other programs they may
/// not, and the speed-up is then only reported.
const SPEEDUP_CLAIM: f64 = 1.2;
const FREE_CPUS: f64 = 1.5;
/// Nor if the same work cost the workers more than this many times the CPU time it cost
/// the one process: their CPUs then slow each other down (hyperthreads, a busy host).
const MAX_COST: f64 = 1.2;

/// One task: `work(n)`, in job `job` (the call that submitted it).
#[derive(Serialize, Deserialize, Clone, Debug)]
struct Task {
    id: u32,
    job: u32,
    n: u64,
}

/// A task's result, as the worker sends it back.
#[derive(Serialize, Deserialize, Clone, Debug)]
struct Done {
    id: u32,
    job: u32,
    pid: i32,
    result: u64,
    /// The worker's counter, set to 0 by the initializer: this is its nth task.
    nth: u32,
    /// CPU time the worker spent computing it.
    cpu_ns: u64,
    t_start: u64,
    t_done: u64,
}

impl Done {
    fn task_ms(&self) -> f64 {
        (self.t_done.saturating_sub(self.t_start)) as f64 / 1e6
    }
}

/// The CPU-bound function of the lesson: `n` rounds of xorshift. No allocation, no
/// system call: pure computation, the kind a pool speeds up.
fn work(n: u64) -> u64 {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut acc: u64 = 0;
    for _ in 0..std::hint::black_box(n) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        acc = acc.wrapping_add(x);
    }
    std::hint::black_box(acc) % 1_000_000
}

/// Rounds of `work` per millisecond of CPU on this machine, measured now on this
/// thread's CPU clock, so that other programs running at the same time do not skew it
/// (the debug and release builds differ tenfold, so task sizes are set in milliseconds).
fn rounds_per_ms() -> f64 {
    let mut n = 20_000u64;
    loop {
        let t = procs::thread_cpu_ns();
        work(n);
        let el = procs::thread_cpu_ns().saturating_sub(t);
        if el >= 4_000_000 || n > 1 << 34 {
            return n as f64 / (el as f64 / 1e6).max(1e-6);
        }
        n *= 2;
    }
}

/// The number of CPUs this process may run on: `sched_getaffinity`, as CPython's
/// `os.process_cpu_count()` (and so `Pool()`) counts them.
#[cfg(target_os = "linux")]
pub fn usable_cpus() -> usize {
    procs::allowed_cpus(Pid::from_raw(0)).len().max(1)
}

#[cfg(not(target_os = "linux"))]
pub fn usable_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `os.cpu_count()`: the CPUs online in the machine.
fn online_cpus() -> usize {
    // SAFETY: sysconf only reads a system value; it has no memory-safety preconditions.
    let n = unsafe { nix::libc::sysconf(nix::libc::_SC_NPROCESSORS_ONLN) };
    n.max(1) as usize
}

// ---------------------------------------------------------------------------------------
// The lesson.

/// The `callback` event, stamped as the callback runs (in the handler thread), about the
/// main process.
fn tell_callback(voice: &Voice, call: &str, job: u32, results: &[Done]) {
    voice.act_at(
        nix::unistd::getpid().as_raw(),
        "main",
        now_ns(),
        "callback",
        &[
            ("call", call.into()),
            ("job", job.into()),
            ("results", results.len().into()),
        ],
    );
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// A boolean as Python prints it.
fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

fn fmt_ms(ms: f64) -> String {
    if ms < 1.0 {
        format!("{ms:.3}")
    } else {
        format!("{ms:.1}")
    }
}

/// A call on the pool: `call` is stamped right before it, then the tasks are queued.
/// The call's job number, its results to come, and when it started.
fn call(
    ctx: &Ctx<'_>,
    pool: &mut Pool,
    name: &str,
    ns: &[u64],
    callback: Option<Callback>,
) -> Result<(u32, AsyncResult, Instant)> {
    let job = pool.next_job + 1;
    ctx.act_at(
        ctx.main_pid,
        now_ns(),
        "call",
        &[("call", name.into()), ("job", job.into())],
    );
    let started = Instant::now();
    let (job, r) = pool.submit(ns, callback)?;
    Ok((job, r, started))
}

/// `returned`, stamped right after the call returned. The stamp.
fn returned(ctx: &Ctx<'_>, name: &str, job: u32) -> u64 {
    let t = now_ns();
    ctx.act_at(
        ctx.main_pid,
        t,
        "returned",
        &[("call", name.into()), ("job", job.into())],
    );
    t
}

/// What the run works with, decided once: the pool's size, the tasks, the work in each
/// task (calibrated to this CPU), and the bound on every wait for results.
#[derive(Clone, Copy)]
struct Plan {
    me: i32,
    usable: usize,
    size: usize,
    tasks: usize,
    bound: Duration,
    apply_n: u64,
    map_n: u64,
    timed_n: u64,
}

fn run(ctx: &mut Ctx<'_>, opts: &Opts) -> Result<()> {
    let (mut pool, p) = create(ctx, opts)?;
    let applied = apply(ctx, &mut pool, &p)?;
    let applied_async = apply_async(ctx, &mut pool, &p)?;
    let mapped = map(ctx, &mut pool, &p)?;
    let mapped_async = map_async(ctx, &mut pool, &p)?;
    let timed = speedup(ctx, &mut pool, &p)?;
    close_join(ctx, &mut pool, &p)?;
    let ran: Vec<&Done> = applied
        .iter()
        .chain(&applied_async)
        .chain(&mapped)
        .chain(&mapped_async)
        .chain(&timed)
        .collect();
    workers_seen(ctx, &pool, &p, &ran);
    ctx.pause(1500)?;
    say!(ctx, "moral", &[]);
    // The last step's pause, once its story is told.
    ctx.show(0)
}

/// Pool(): how many workers. Create the workers: the cost a pool pays once.
fn create(ctx: &mut Ctx<'_>, opts: &Opts) -> Result<(Pool, Plan)> {
    let me = ctx.main_pid;
    let usable = usable_cpus();
    let online = online_cpus();
    let asked = opts.get("workers") as usize;
    let size = if asked == 0 { usable } else { asked };
    let tasks = opts.get("tasks") as usize;
    // Task sizes grow with --speed (up to 2) so that a person can watch the workers
    // compute; at --speed 0 they are a few milliseconds.
    let grow = ctx.speed.min(2.0);
    let apply_ms = APPLY_TASK_MS.0 + APPLY_TASK_MS.1 * grow;
    let map_ms = MAP_TASK_MS.0 + MAP_TASK_MS.1 * grow;
    let bound = WAIT_BOUND
        + Duration::from_secs_f64(
            3.0 * (2.0 * apply_ms + (2.0 * map_ms + 12.0 * TIMED_TASK_MS) * tasks as f64) / 1000.0,
        );
    step!(ctx, "size", &[("main", &me)])?;
    say!(
        ctx,
        "cpu_count",
        &[("online", &online), ("usable", &usable), ("pid", &me)],
    );
    ctx.pause(1500)?;
    if asked == 0 {
        say!(ctx, "size_default", &[("size", &size), ("online", &online)]);
    } else {
        say!(ctx, "size_given", &[("size", &size), ("usable", &usable)]);
    }
    ctx.observe("cpus_usable", usable);
    ctx.observe("pool_size", size);
    ctx.observe("tasks", tasks);
    ctx.show(1500)?;

    let janitor = ctx.janitor();
    step!(ctx, "create", &[("main", &me), ("janitor", &janitor)])?;
    say!(ctx, "why_pool", &[]);
    ctx.pause(1500)?;
    let rate = rounds_per_ms();
    let apply_n = (rate * apply_ms).max(1.0) as u64;
    let map_n = (rate * map_ms).max(1.0) as u64;
    let timed_n = (rate * TIMED_TASK_MS).max(1.0) as u64;
    let (pool, costs) = Pool::new(ctx, size)?;
    for (i, cost) in costs.iter().enumerate() {
        say!(
            ctx,
            "spawn_cost",
            &[
                ("name", &pool.names[i]),
                ("pid", &pool.pids[i]),
                ("ms", &fmt_ms(*cost)),
            ],
        );
    }
    let mean_cost = costs.iter().sum::<f64>() / costs.len().max(1) as f64;
    ctx.observe("spawn_ms", (mean_cost * 1000.0).round() / 1000.0);
    ctx.show(2000)?;
    let p = Plan {
        me,
        usable,
        size,
        tasks,
        bound,
        apply_n,
        map_n,
        timed_n,
    };
    Ok((pool, p))
}

/// apply: blocks until the result is back.
fn apply(ctx: &mut Ctx<'_>, pool: &mut Pool, p: &Plan) -> Result<Vec<Done>> {
    let Plan {
        me, bound, apply_n, ..
    } = *p;
    step!(ctx, "apply", &[("main", &me)])?;
    say!(ctx, "apply_intro", &[("n", &apply_n)]);
    ctx.pause(1200)?;
    // While apply waits, what is its caller doing? The handler thread looks at the
    // calling thread's state just before it hands the result over (where CPython's result
    // handler runs a callback, before it sets the result's event): the caller is still
    // waiting then, and the kernel says how.
    let caller = nix::unistd::gettid().as_raw();
    let (st_tx, st_rx) = mpsc::channel::<char>();
    let probe: Callback = Box::new(move |_: &[Done]| {
        let _ = st_tx.send(crate::sys::proc::state(caller).unwrap_or('?'));
    });
    let (job, r, started) = call(ctx, pool, "apply", &[apply_n], Some(probe))?;
    let apply_res = r.get(bound)?;
    let t_ret = returned(ctx, "apply", job); // right after apply returned
    let caller_state = st_rx
        .recv_timeout(Duration::from_secs(5))
        .context("the handler did not look at the caller of apply")?;
    let d = apply_res.first().context("apply gave no result")?;
    say!(
        ctx,
        "apply_done",
        &[
            ("ms", &fmt_ms(ms_since(started))),
            ("result", &d.result),
            ("pid", &d.pid),
            ("task_ms", &fmt_ms(d.task_ms())),
            ("state", &caller_state),
        ],
    );
    let waited = t_ret >= d.t_done;
    ctx.claim("apply_returned_after_task_done", waited, Expect::eq(true));
    ctx.claim(
        "apply_caller_state",
        caller_state.to_string(),
        Expect::eq("S"),
    );
    ctx.show(2000)?;
    Ok(apply_res)
}

/// apply_async: returns at once; the callback runs later, in the main process.
fn apply_async(ctx: &mut Ctx<'_>, pool: &mut Pool, p: &Plan) -> Result<Vec<Done>> {
    let Plan {
        me, bound, apply_n, ..
    } = *p;
    step!(ctx, "apply_async", &[("main", &me)])?;
    say!(ctx, "apply_async_intro", &[("n", &apply_n)]);
    ctx.pause(1200)?;
    let voice = ctx.voice();
    let cb_voice = voice.clone();
    let (cb_tx, cb_rx) = mpsc::channel::<i32>();
    let cb_job = pool.next_job + 1;
    let callback: Callback = Box::new(move |results: &[Done]| {
        let pid = nix::unistd::getpid().as_raw(); // where the callback really runs
        tell_callback(&cb_voice, "apply_async", cb_job, results);
        let (result, worker) = results.first().map_or((0, 0), |d| (d.result, d.pid));
        say!(
            cb_voice,
            "callback_apply",
            &[("result", &result), ("pid", &pid), ("worker", &worker)],
        );
        let _ = cb_tx.send(pid);
    });
    let (job, mut r, started) = call(ctx, pool, "apply_async", &[apply_n], Some(callback))?;
    let async_ms = ms_since(started);
    returned(ctx, "apply_async", job);
    let ready = r.ready();
    say!(
        ctx,
        if (ready) {
            "apply_async_returned_ready"
        } else {
            "apply_async_returned"
        },
        &[("ms", &fmt_ms(async_ms)), ("ready", &py_bool(ready))],
    );
    ctx.pause(800)?;
    let async_res = r.get(bound)?;
    let d = async_res.first().context("apply_async gave no result")?;
    let callback_pid = cb_rx
        .recv_timeout(Duration::from_secs(5))
        .context("the callback did not run")?;
    say!(
        ctx,
        "async_get",
        &[
            ("result", &d.result),
            ("worker", &d.pid),
            ("task_ms", &fmt_ms(d.task_ms())),
        ],
    );
    ctx.claim("callback_pid", callback_pid, Expect::eq(me).of("main"));
    ctx.show(2000)?;
    Ok(async_res)
}

/// map: many tasks, few processes.
fn map(ctx: &mut Ctx<'_>, pool: &mut Pool, p: &Plan) -> Result<Vec<Done>> {
    let Plan {
        me,
        tasks,
        size,
        bound,
        map_n,
        ..
    } = *p;
    step!(ctx, "map", &[("main", &me)])?;
    say!(ctx, "map_intro", &[("tasks", &tasks), ("size", &size)]);
    ctx.pause(1500)?;
    let ns = vec![map_n; tasks];
    let (job, r, started) = call(ctx, pool, "map", &ns, None)?;
    let results = r.get(bound)?;
    returned(ctx, "map", job);
    say!(
        ctx,
        "map_done",
        &[
            ("tasks", &results.len()),
            ("ms", &fmt_ms(ms_since(started))),
        ],
    );
    ctx.pause(1200)?;
    let mut by_worker: BTreeMap<i32, Vec<&Done>> = BTreeMap::new();
    for d in &results {
        by_worker.entry(d.pid).or_default().push(d);
    }
    for (i, pid) in pool.pids.iter().enumerate() {
        let ran = by_worker.get(&pid.as_raw()).cloned().unwrap_or_default();
        let ids: Vec<String> = ran.iter().map(|d| d.id.to_string()).collect();
        let nth = ran.iter().map(|d| d.nth).max().unwrap_or(0);
        say!(
            ctx,
            "worker_tasks",
            &[
                ("name", &pool.names[i]),
                ("pid", pid),
                ("ids", &ids.join(", ")),
                ("count", &ran.len()),
                ("nth", &nth),
            ],
        );
    }
    let map_pids: BTreeSet<i32> = results.iter().map(|d| d.pid).collect();
    say!(
        ctx,
        "reuse",
        &[("tasks", &tasks), ("distinct", &map_pids.len())]
    );
    ctx.show(2500)?;
    Ok(results)
}

/// map_async: returns at once; one callback with every result.
fn map_async(ctx: &mut Ctx<'_>, pool: &mut Pool, p: &Plan) -> Result<Vec<Done>> {
    let Plan {
        me,
        tasks,
        bound,
        map_n,
        ..
    } = *p;
    step!(ctx, "map_async", &[("main", &me)])?;
    say!(ctx, "map_async_intro", &[("tasks", &tasks)]);
    ctx.pause(1200)?;
    let cb_voice = ctx.voice();
    let ns = vec![map_n; tasks];
    let cb_job = pool.next_job + 1;
    let (cb_tx, cb_rx) = mpsc::channel::<i32>();
    let callback: Callback = Box::new(move |results: &[Done]| {
        let pid = nix::unistd::getpid().as_raw();
        tell_callback(&cb_voice, "map_async", cb_job, results);
        say!(
            cb_voice,
            "callback_map",
            &[("count", &results.len()), ("pid", &pid)]
        );
        let _ = cb_tx.send(pid);
    });
    let (job, mut r, started) = call(ctx, pool, "map_async", &ns, Some(callback))?;
    let async_ms = ms_since(started);
    returned(ctx, "map_async", job);
    let ready = r.ready();
    say!(
        ctx,
        "map_async_returned",
        &[("ms", &fmt_ms(async_ms)), ("ready", &py_bool(ready))],
    );
    let all = r.get(bound)?;
    let map_cb_pid = cb_rx
        .recv_timeout(Duration::from_secs(5))
        .context("the map_async callback did not run")?;
    say!(ctx, "map_async_wait", &[("count", &all.len())]);
    ctx.claim("map_callback_pid", map_cb_pid, Expect::eq(me).of("main"));
    ctx.pause(2000)?;
    Ok(all)
}

/// close, then join.
fn close_join(ctx: &mut Ctx<'_>, pool: &mut Pool, p: &Plan) -> Result<()> {
    let Plan {
        me, size, bound, ..
    } = *p;
    step!(ctx, "close_join", &[("main", &me)])?;
    let early = pool.join(ctx, bound);
    let early_error = match early {
        Err(e) if e.is::<StillRunning>() => e.to_string(),
        Err(e) => return Err(e),
        Ok(()) => String::new(),
    };
    say!(ctx, "join_early", &[("error", &early_error)]);
    ctx.claim(
        "join_before_close_error",
        early_error.as_str(),
        Expect::eq("ValueError: Pool is still running"),
    );
    ctx.show(2500)?;
    say!(ctx, "close", &[]);
    pool.close();
    ctx.pause(1000)?;
    pool.join(ctx, bound)?;
    say!(ctx, "joined", &[("size", &size)]);
    Ok(())
}

/// What the run showed: the workers that ran tasks, from their own replies.
fn workers_seen(ctx: &mut Ctx<'_>, pool: &Pool, p: &Plan, ran: &[&Done]) {
    let Plan { size, tasks, .. } = *p;
    let all_pids: BTreeSet<i32> = ran.iter().map(|d| d.pid).collect();
    let busy = tasks.min(size);
    let distinct = all_pids.len();
    let pool_set: BTreeSet<i32> = pool.pids.iter().map(|p| p.as_raw()).collect();
    let only_pool = all_pids.is_subset(&pool_set);
    ctx.claim("only_pool_workers", only_pool, Expect::eq(true));
    if busy == size {
        ctx.claim(
            "distinct_worker_pids",
            distinct,
            Expect::eq(size).of("pool_size"),
        );
    } else {
        ctx.claim(
            "distinct_worker_pids",
            distinct,
            Expect::between(busy, size).note("the busy workers and pool_size"),
        );
    }
}
