//! Lesson `shared`: Python's `Value('i', 0)` and `Array`, memory that several processes
//! really share. A file in the run's directory mapped `MAP_SHARED` by spawned workers
//! holds the value, its lock and an array of per-worker counts.
//!
//! Without the lock, `v.value += 1` is a read then a write, and updates are lost. The loss
//! is staged so it happens on every run, on one core or many: each worker stops at a gate
//! between its read and its write, and the gate opens only once every worker has read
//! (then again once every worker has written). With the lock, the read and the write
//! happen together and the total is exact. The lock is a process-shared semaphore in the
//! same page (`sem_init`, `pshared = 1`): a stand-in for CPython's `get_lock()`, which is
//! an `RLock`, a separate named semaphore (`sem_open`); both put their waiters to sleep
//! in `futex()`.

use super::{LessonDef, OptSpec, Opts};
use crate::child::{ChildCtx, Down};
use crate::ctx::{ChildProc, Ctx, Expect};
use crate::event::{now_ns, ObsValue};
#[cfg(not(target_os = "linux"))]
use crate::sys::flock::FileLock;
use crate::sys::proc::Call;
#[cfg(target_os = "linux")]
use crate::sys::sem::PageSem;
use crate::sys::shared::{Shared, SharedPage as Shareable};
use crate::{say, step};
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

const MAX_WORKERS: u32 = 8;

/// This lesson's words, whose keys the word macros check at compile time.
const WORDS: &crate::words::keys::Table = &crate::words::keys::SHARED;

pub static LESSON: LessonDef = LessonDef {
    name: "shared",
    words_src: include_str!("../../lessons/shared.toml"),
    options: &[
        OptSpec {
            name: "workers",
            default: 3,
            min: 2,
            max: MAX_WORKERS,
            help: "worker processes that increment the shared value",
        },
        OptSpec {
            name: "increments",
            default: 4,
            min: 1,
            max: 200,
            help: "increments each worker makes",
        },
    ],
    run,
    validate: None,
    roles: &[("worker", worker)],
};

/// Far more than a child needs to answer.
const TIMEOUT: Duration = Duration::from_secs(5);
/// With the lock, each holder pauses this long between its read and its write (at
/// `--speed 1`): the very window in which, without the lock, updates were lost.
const WINDOW_MS: u64 = 250;

/// What a worker tells the parent: it has mapped the page and waits at the start gate;
/// it has read `value` (then waits at the gate), or, the first holder of the lock, holds
/// it and has read `value`; it has written `value` (then waits at the gate); it is done,
/// and slept `waited` times at the lock.
#[derive(serde::Serialize, serde::Deserialize, Debug)]
enum Reply {
    Ready,
    Read { value: i32 },
    Holds { value: i32 },
    Wrote { value: i32 },
    Finished { waited: i64 },
}

/// The worker's next reply (within `timeout`), decoded.
fn next(p: &ChildProc, timeout: Duration) -> Result<Reply> {
    p.decode(&p.reply(timeout)?)
}

/// The worker answered `r` where the lesson waited for something else.
fn unexpected(p: &ChildProc, r: &Reply) -> anyhow::Error {
    anyhow!("{} (PID {}) answered {r:?}", p.name, p.pid)
}

/// What lives in the shared page: Python's `Value('i', 0)` with its lock, and
/// `Array('i', workers)`.
#[repr(C)]
struct SharedPage {
    /// The value's lock: a semaphore initialised with `pshared = 1`, so that every
    /// process mapping the page can use it.
    #[cfg(target_os = "linux")]
    lock: PageSem,
    /// `Value('i', 0)`. Read and written with separate atomic loads and stores, never an
    /// atomic read-modify-write: exactly the two steps of Python's `v.value += 1`.
    value: AtomicI32,
    /// `Array('i', workers)`: slot `i` belongs to worker `i` alone.
    counts: [AtomicI32; MAX_WORKERS as usize],
    /// Staging of the run with the lock: the first worker to take the lock writes its
    /// number here (1-based) and keeps the lock until the parent has seen the others
    /// asleep at it.
    first_holder: AtomicI32,
}

// SAFETY: atomics and a `pshared` semaphore (a `PageSem`, used only through sem_*
// calls), all valid when zero (a new page), written by every process that maps the page.
unsafe impl Shareable for SharedPage {}

/// The shared file, mapped `MAP_SHARED` into this process.
struct Mapping {
    map: Shared<SharedPage>,
    /// Where there is no process-shared `sem_init` (macOS), the value's lock is `flock`
    /// on the file.
    #[cfg(not(target_os = "linux"))]
    flock: FileLock,
}

impl Mapping {
    /// Map `path` (creating it, one page of zeros, if `create`).
    fn open(path: &Path, create: bool) -> Result<Mapping> {
        let map = if create {
            Shared::create(path)?
        } else {
            Shared::open(path)?
        };
        Ok(Mapping {
            map,
            #[cfg(not(target_os = "linux"))]
            flock: FileLock::open(path)?,
        })
    }

    fn page(&self) -> &SharedPage {
        self.map.get()
    }

    fn addr(&self) -> String {
        format!("{:#x}", self.map.addr())
    }

    /// `sem_init(&lock, pshared = 1, 1)`: done once, by the process that created the page,
    /// before any worker is started.
    fn init_lock(&self) -> Result<()> {
        #[cfg(target_os = "linux")]
        // SAFETY: the page is new and no worker has been told where it is yet.
        unsafe { self.page().lock.init(1) }.context("the value's lock")?;
        Ok(())
    }

    /// `sem_destroy`, once every worker is reaped.
    fn destroy_lock(&self) {
        #[cfg(target_os = "linux")]
        // SAFETY: every process that used the semaphore has been reaped.
        unsafe {
            self.page().lock.destroy();
        }
    }

    /// Take the lock without waiting; false if another process holds it.
    fn try_lock(&self) -> Result<bool> {
        #[cfg(target_os = "linux")]
        let free = self.page().lock.try_wait();
        #[cfg(not(target_os = "linux"))]
        let free = self.flock.try_lock();
        free.context("taking the value's lock")
    }

    /// Take the lock, sleeping until it is free.
    fn lock(&self) -> Result<()> {
        #[cfg(target_os = "linux")]
        let taken = self.page().lock.wait();
        #[cfg(not(target_os = "linux"))]
        let taken = self.flock.lock();
        taken.context("taking the value's lock")
    }

    fn unlock(&self) -> Result<()> {
        #[cfg(target_os = "linux")]
        let given = self.page().lock.post();
        #[cfg(not(target_os = "linux"))]
        let given = self.flock.unlock();
        given.context("releasing the value's lock")
    }
}

// ---------------------------------------------------------------------------------------
// The worker: a spawned process that maps the file and increments the value.

/// Wait for the parent's `Go` (a gate). False if told to stop.
fn gate(c: &ChildCtx) -> Result<bool> {
    loop {
        match c.recv()? {
            Down::Go => return Ok(true),
            Down::Stop => return Ok(false),
            Down::Value(_) => {}
        }
    }
}

fn worker(c: &mut ChildCtx) -> Result<i32> {
    let path = c.arg_str("file")?;
    let index = c.arg_i64("index")? as usize;
    let increments = c.arg_i64("increments")?;
    let locked = c.arg_i64("lock")? != 0;
    let map = Mapping::open(Path::new(&path), false)?;
    let page = map.page();
    let slot = page
        .counts
        .get(index)
        .context("worker index out of range")?;
    say!(
        c,
        "worker_mapped",
        &[("pid", &c.pid), ("addr", &map.addr())]
    )?;
    c.tell(&Reply::Ready)?;
    if !gate(c)? {
        return Ok(0);
    }
    let lock_field = ("lock", ObsValue::from(locked));
    let mut waited = 0i64;
    for _ in 0..increments {
        if locked && !map.try_lock()? {
            waited += 1;
            c.act("wait", &[("for", "lock".into())])?; // stamped right before sleeping
            map.lock()?;
        }
        if locked {
            c.act("acquire", &[("what", "lock".into())])?;
        }
        let v = page.value.load(Ordering::SeqCst);
        c.act_at(now_ns(), "read", &[("value", v.into()), lock_field.clone()])?;
        if locked {
            let first = page.first_holder.compare_exchange(
                0,
                index as i32 + 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
            if first.is_ok() {
                // The very first holder keeps the lock until the parent has seen every
                // other worker asleep at it.
                c.tell(&Reply::Holds { value: v })?;
                if !gate(c)? {
                    return Ok(0);
                }
            } else {
                c.pause(WINDOW_MS); // the window where, without the lock, updates were lost
            }
        } else {
            c.tell(&Reply::Read { value: v })?; // the gate opens once every worker has read
            if !gate(c)? {
                return Ok(0);
            }
        }
        c.act_at(
            now_ns(),
            "write",
            &[("value", (v + 1).into()), lock_field.clone()],
        )?;
        page.value.store(v + 1, Ordering::SeqCst);
        slot.fetch_add(1, Ordering::SeqCst);
        if locked {
            c.act("release", &[("what", "lock".into())])?; // stamped right before
            map.unlock()?;
        } else {
            // The next round waits until every worker has written.
            c.tell(&Reply::Wrote { value: v + 1 })?;
            if !gate(c)? {
                return Ok(0);
            }
        }
    }
    c.tell(&Reply::Finished { waited })?;
    Ok(0)
}

// ---------------------------------------------------------------------------------------
// The lesson.

/// What every phase knows: the sizes of the run and where the shared file is.
struct Plan {
    workers: u32,
    increments: u32,
    /// `workers × increments`: the total if no update is lost.
    expected: i64,
    path: PathBuf,
}

/// What the run without the lock ended with: the value, and the increments the workers
/// counted in their own slots of the array.
struct Race {
    without: i32,
    done: i64,
}

/// What the run with the lock ended with: the value, how often a worker slept at the
/// lock, and the state letters seen for the waiters while the first holder kept it.
struct Locked {
    with: i32,
    waits: i64,
    blocked: Vec<char>,
}

fn run(ctx: &mut Ctx<'_>, opts: &Opts) -> Result<()> {
    let workers = opts.get("workers");
    let increments = opts.get("increments");
    let plan = Plan {
        workers,
        increments,
        expected: i64::from(workers) * i64::from(increments),
        path: ctx.dir.join("value.shm"),
    };
    let map = create(ctx, &plan)?;
    let race = race(ctx, &plan, &map)?;
    let locked = with_lock(ctx, &plan, &map)?;
    map.destroy_lock();
    drop(map);
    let path = &plan.path;
    std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
    ctx.pause(2500)?;
    compare(ctx, &plan, &race, &locked)?;
    ctx.pause(1500)?;
    say!(ctx, "moral", &[]);
    // The last step's pause, once its story is told.
    ctx.show(0)
}

/// `Value('i', 0)`: the file mapped `MAP_SHARED`, its lock initialised.
fn create(ctx: &mut Ctx<'_>, plan: &Plan) -> Result<Mapping> {
    let path = &plan.path;
    step!(ctx, "value", &[("path", &path.display())])?;
    let map = Mapping::open(path, true)?;
    map.init_lock()?;
    say!(
        ctx,
        "value_intro",
        &[("path", &path.display()), ("addr", &map.addr())],
    );
    ctx.show(2000)?;
    Ok(map)
}

/// Without the lock: `v.value += 1` as a read and a write, with every worker's read
/// before any write (the gates), so updates are lost in every round.
fn race(ctx: &mut Ctx<'_>, plan: &Plan, map: &Mapping) -> Result<Race> {
    let (workers, expected) = (plan.workers, plan.expected);
    step!(ctx, "race", &[])?;
    say!(
        ctx,
        "race_intro",
        &[
            ("workers", &workers),
            ("increments", &plan.increments),
            ("expected", &expected),
        ],
    );
    ctx.pause(2000)?;
    let procs = start_workers(ctx, plan, false)?;
    say!(ctx, "gate_intro", &[]);
    ctx.pause(2500)?;
    let first = procs[0].pid;
    step!(
        ctx,
        "race_run",
        &[("pid", &first), ("path", &plan.path.display())]
    )?;
    // The workers at the gate, the page mapped in each.
    ctx.show(0)?;
    go_all(&procs)?;
    race_rounds(ctx, plan, map, &procs)?;
    finish(ctx, procs, TIMEOUT)?;
    let without = map.page().value.load(Ordering::SeqCst);
    let counts_free = counts(map, workers);
    let done: i64 = counts_free.iter().map(|&c| i64::from(c)).sum();
    say!(
        ctx,
        "race_result",
        &[
            ("v", &without),
            ("expected", &expected),
            ("counts", &format!("{counts_free:?}")),
            ("sum", &done),
        ],
    );
    ctx.pause(3000)?;
    Ok(Race { without, done })
}

/// The rounds of the race: every worker reads the same value, then every worker writes
/// it plus one; all but one of the round's updates are lost, and the lesson says how many.
fn race_rounds(ctx: &mut Ctx<'_>, plan: &Plan, map: &Mapping, procs: &[ChildProc]) -> Result<()> {
    let workers = plan.workers;
    for round in 1..=plan.increments {
        let reads = replies(procs, |r| match r {
            Reply::Read { value } => Some(*value),
            _ => None,
        })?;
        let v = reads[0];
        if round == 1 {
            say!(ctx, "round_read_first", &[("v", &v), ("n", &workers)]);
            ctx.pause(2000)?;
        } else {
            ctx.pause(600)?;
        }
        go_all(procs)?;
        replies(procs, |r| match r {
            Reply::Wrote { value } => Some(*value),
            _ => None,
        })?;
        let now = map.page().value.load(Ordering::SeqCst);
        let lost = i64::from(workers) - i64::from(now - v);
        if round == 1 {
            say!(
                ctx,
                "round_lost_first",
                &[("v", &v), ("now", &now), ("n", &workers), ("lost", &lost)],
            );
        } else {
            say!(
                ctx,
                "round_lost",
                &[
                    ("round", &round),
                    ("v", &v),
                    ("now", &now),
                    ("n", &workers),
                    ("lost", &lost),
                ],
            );
        }
        ctx.pause(if round == 1 { 2500 } else { 900 })?;
        go_all(procs)?;
    }
    Ok(())
}

/// With the lock: the read and the write happen together. The first holder keeps the
/// lock until the others are seen asleep at it; then the total is exact.
fn with_lock(ctx: &mut Ctx<'_>, plan: &Plan, map: &Mapping) -> Result<Locked> {
    let (workers, expected) = (plan.workers, plan.expected);
    step!(ctx, "lock", &[])?;
    map.page().value.store(0, Ordering::SeqCst);
    for c in &map.page().counts {
        c.store(0, Ordering::SeqCst);
    }
    say!(ctx, "lock_intro", &[("window", &WINDOW_MS)]);
    ctx.pause(2500)?;
    map.page().first_holder.store(0, Ordering::SeqCst);
    let procs = start_workers(ctx, plan, true)?;
    say!(ctx, "lock_go", &[("n", &workers)]);
    go_all(&procs)?;
    let (holder, blocked) = show_holder_and_waiters(ctx, map, &procs)?;
    step!(ctx, "lock_run", &[("pids", &pid_list(&procs))])?;
    // In step mode the lesson waits here with the lock really held and the others asleep.
    ctx.show(2500)?;
    say!(
        ctx,
        "lock_release_first",
        &[("holder", &procs[holder].name)]
    );
    procs[holder].send(Down::Go)?;
    let slow =
        Duration::from_secs_f64(expected as f64 * (WINDOW_MS as f64 * ctx.speed + 20.0) / 1000.0);
    let waits = finish(ctx, procs, TIMEOUT + slow)?;
    let with = map.page().value.load(Ordering::SeqCst);
    let counts_locked = counts(map, workers);
    say!(
        ctx,
        "lock_result",
        &[
            ("v", &with),
            ("expected", &expected),
            ("waits", &waits),
            ("counts", &format!("{counts_locked:?}")),
        ],
    );
    Ok(Locked {
        with,
        waits,
        blocked,
    })
}

/// Both runs side by side, and the claims: updates lost without the lock (though every
/// increment was made), none with it, the waiters asleep.
fn compare(ctx: &mut Ctx<'_>, plan: &Plan, race: &Race, locked: &Locked) -> Result<()> {
    let (workers, expected) = (plan.workers, plan.expected);
    let (without, with) = (race.without, locked.with);
    step!(ctx, "compare", &[])?;
    say!(
        ctx,
        "compare",
        &[
            ("expected", &expected),
            ("without", &without),
            ("with", &with),
        ],
    );
    ctx.observe("expected", expected);
    ctx.claim("final_without_lock", without, Expect::lt(expected));
    ctx.claim("final_with_lock", with, Expect::eq(expected));
    ctx.claim(
        "increments_done_without_lock",
        race.done,
        Expect::eq(expected),
    );
    let blocked = &locked.blocked;
    let letters: String = blocked.iter().collect();
    ctx.claim(
        "waiters_blocked_state",
        letters,
        Expect::eq("S".repeat(workers as usize - 1)),
    );
    ctx.observe("lock_waits", locked.waits);
    Ok(())
}

/// The run with the lock has started: find the first holder (it keeps the lock for now),
/// wait until the observer sees every other worker asleep at the lock, and say so. The
/// holder's index and the state letters seen for the waiters.
fn show_holder_and_waiters(
    ctx: &mut Ctx<'_>,
    map: &Mapping,
    procs: &[ChildProc],
) -> Result<(usize, Vec<char>)> {
    let deadline = Instant::now() + TIMEOUT;
    let first = loop {
        ctx.check()?;
        match map.page().first_holder.load(Ordering::SeqCst) {
            0 if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
            0 => bail!("no worker took the lock within {TIMEOUT:?}"),
            n => break n as usize - 1,
        }
    };
    let holder = procs.get(first).context("the first holder's number")?;
    let v = match next(holder, TIMEOUT)? {
        Reply::Holds { value } => value,
        other => return Err(unexpected(holder, &other)),
    };
    let mut letters = Vec::new();
    let mut waiting = Vec::new();
    for p in procs.iter().filter(|p| p.pid != holder.pid) {
        match ctx.wait_blocked_in(p.pid, Call::Futex, TIMEOUT)? {
            Some((letter, wchan)) => {
                letters.push(letter);
                waiting.push(format!("{} {} ({letter}, {wchan})", p.name, p.pid));
            }
            None => {
                let now = crate::sys::proc::state(p.pid.as_raw()).unwrap_or('?');
                letters.push(now);
                waiting.push(format!("{} {} ({now})", p.name, p.pid));
            }
        }
    }
    say!(
        ctx,
        "lock_holder",
        &[
            ("holder", &holder.name),
            ("pid", &holder.pid),
            ("v", &v),
            ("waiting", &waiting.join(", ")),
        ],
    );
    Ok((first, letters))
}

fn counts(map: &Mapping, workers: u32) -> Vec<i32> {
    map.page().counts[..workers as usize]
        .iter()
        .map(|c| c.load(Ordering::SeqCst))
        .collect()
}

fn pid_list(procs: &[ChildProc]) -> String {
    procs
        .iter()
        .map(|p| p.pid.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Spawn the workers (with the lock or without); each maps the file and reports ready.
fn start_workers(ctx: &mut Ctx<'_>, plan: &Plan, lock: bool) -> Result<Vec<ChildProc>> {
    let mut procs = Vec::new();
    for i in 0..plan.workers {
        let args = serde_json::json!({
            "file": plan.path.display().to_string(),
            "index": i,
            "increments": plan.increments,
            "lock": i32::from(lock),
        });
        procs.push(ctx.spawn("worker", &format!("worker-{}", i + 1), args)?);
    }
    for p in &procs {
        match next(p, TIMEOUT)? {
            Reply::Ready => {}
            other => return Err(unexpected(p, &other)),
        }
    }
    Ok(procs)
}

fn go_all(procs: &[ChildProc]) -> Result<()> {
    procs.iter().try_for_each(|p| p.send(Down::Go))
}

/// One reply from every worker, in order, each the one `pick` takes (a value read, or
/// written): any other is an error.
fn replies(procs: &[ChildProc], pick: impl Fn(&Reply) -> Option<i32>) -> Result<Vec<i32>> {
    procs
        .iter()
        .map(|p| {
            let r = next(p, TIMEOUT)?;
            pick(&r).ok_or_else(|| unexpected(p, &r))
        })
        .collect()
}

/// Wait for every worker's last reply (how often it waited for the lock), then reap it.
fn finish(ctx: &mut Ctx<'_>, procs: Vec<ChildProc>, timeout: Duration) -> Result<i64> {
    let deadline = Instant::now() + timeout;
    let mut waits = 0;
    for p in &procs {
        let left = deadline.saturating_duration_since(Instant::now());
        match next(p, left.max(Duration::from_millis(1)))? {
            Reply::Finished { waited } => waits += waited,
            other => return Err(unexpected(p, &other)),
        }
    }
    for p in procs {
        ctx.join_within(p.pid, TIMEOUT)?;
    }
    Ok(waits)
}
