//! Lesson `queue`: Python's `Queue(maxsize)` and `JoinableQueue`, built the way CPython
//! builds them, so that every part can be shown working:
//!
//! - an OS **pipe** that carries the items as bytes (a 4-byte length, then the serialised
//!   item; CPython pickles, this lesson writes JSON);
//! - a **reader lock** and a **writer lock** (`flock` on two files of the run's private
//!   directory), so that one process at a time reads and one at a time writes;
//! - a **BoundedSemaphore(maxsize)**: a POSIX named semaphore (`sem_open`) counting the
//!   free slots. `put` waits on it, `get` posts it: a full queue is a semaphore at 0.
//! - for `JoinableQueue`, a semaphore counting the unfinished tasks and a `Condition`
//!   (a lock and three semaphores, exactly CPython's algorithm) on which `join` sleeps.
//!
//! Producers and consumers are spawned roles (fork + exec of this binary). They receive
//! the pipe by inheritance: its two descriptors are kept open across `exec` (FD_CLOEXEC
//! cleared just for the spawn), which is what CPython's spawn start method does with
//! `passfds`. The locks are opened by path (a `flock` lock belongs to an open file
//! description, so each process opens its own). The semaphores are opened by name, and
//! their names are unlinked as soon as every process has opened them, so nothing is left
//! in `/dev/shm` whatever happens next.
//!
//! Staging: producers and consumers wait at gates, so the queue really is full when a
//! producer is seen asleep in `put`, and really is empty when the consumers are seen
//! asleep in `get`; `/proc/<pid>/syscall` names the very system call they sleep in.

use super::{LessonDef, OptSpec, Opts};
use crate::child::Down;
use crate::ctx::{reply_any, ChildProc, Ctx, Expect};
use crate::event::ObsValue;
use crate::procs;
use crate::sys::flock::FileLock;
use crate::sys::proc::Call;
use crate::{say, step};
use anyhow::{bail, Context, Result};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

mod children;
mod cpython;
mod joinable;
mod watch;

use children::*;
use cpython::*;
use joinable::*;
use watch::*;

/// This lesson's words, whose keys the word macros check at compile time.
const WORDS: &crate::words::keys::Table = &crate::words::keys::QUEUE;

pub static LESSON: LessonDef = LessonDef {
    name: "queue",
    words_src: include_str!("../../../lessons/queue.toml"),
    options: &[
        OptSpec {
            name: "producers",
            default: 2,
            min: 1,
            max: 4,
            help: "Producer processes, each putting maxsize + 1 items",
        },
        OptSpec {
            name: "consumers",
            default: 2,
            min: 1,
            max: 4,
            help: "Consumer processes",
        },
        OptSpec {
            name: "maxsize",
            default: 2,
            min: 1,
            max: 8,
            help: "The queue's capacity: Queue(maxsize)",
        },
    ],
    run,
    validate: None,
    roles: &[
        ("producer", producer),
        ("consumer", consumer),
        ("jproducer", jproducer),
        ("jconsumer", jconsumer),
    ],
};

/// How long the kernel gets to reach a state we wait for; far more than it needs.
const STATE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pacing (at `--speed 1`): a producer's pause after each put.
const PUT_MS: u64 = 500;
/// Pacing: how long a consumer "works" on each item.
const WORK_MS: u64 = 700;

// ───────────────────────────── the parent's side ─────────────────────────────

/// Spawn a role that inherits `fds` (the queue's pipe): clear FD_CLOEXEC
/// on them just for this spawn (only this thread starts processes), so that they stay
/// open across exec, as CPython's spawn keeps them with `passfds`.
fn spawn_sharing(
    ctx: &mut Ctx<'_>,
    role: &str,
    name: &str,
    args: serde_json::Value,
    fds: &[&OwnedFd],
) -> Result<ChildProc> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    for &fd in fds {
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty())).context("fcntl(F_SETFD, 0)")?;
    }
    let child = ctx.spawn(role, name, args);
    for &fd in fds {
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).context("fcntl(F_SETFD, CLOEXEC)")?;
    }
    child
}

/// Time allowed for something paced by `ms` at `--speed 1`.
fn budget(ctx: &Ctx<'_>, ms: u64) -> Duration {
    STATE_TIMEOUT + Duration::from_secs_f64(ms as f64 * ctx.speed / 1000.0)
}

/// Wait for `n` reports ([`Reply::Got`]) from any of `children`: each (stamp, item).
/// They come on each child's own channel, after the events they follow.
fn collect_reports(children: &[ChildProc], n: usize, timeout: Duration) -> Result<Vec<(u64, i64)>> {
    let deadline = Instant::now() + timeout;
    let all: Vec<&ChildProc> = children.iter().collect();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        let (i, v) = reply_any(&all, left)
            .with_context(|| format!("only {} of {n} reports came in time", out.len()))?;
        match all[i].decode::<Reply>(&v)? {
            Reply::Got { t_ns, item } => out.push((t_ns, item)),
            other => bail!("{}: unexpected reply {other:?}", all[i].name),
        }
    }
    Ok(out)
}

/// Send every child the semaphore names; wait until each says it has opened them; then
/// unlink the names.
fn share_sems(
    ctx: &Ctx<'_>,
    children: &[&ChildProc],
    msg: &SemNamesMsg,
    sems: &mut [&mut Sem],
) -> Result<()> {
    let text = serde_json::to_string(msg)?;
    for c in children {
        c.send(Down::Value(ObsValue::Str(text.clone())))?;
    }
    for c in children {
        c.expect(budget(ctx, 0), |r: &Reply| *r == Reply::Opened)?;
    }
    for sem in sems {
        sem.unlink()?;
    }
    Ok(())
}

/// What a queue's children are handed: the pipe's two ends (inherited across exec) and
/// the lock files (each child opens its own), with the items each producer puts and the
/// queue's size.
struct Handout<'a> {
    reader: &'a OwnedFd,
    writer: &'a OwnedFd,
    files: &'a LockFiles,
    items: usize,
    maxsize: usize,
}

impl Handout<'_> {
    /// Child `index`'s arguments: the numbers, the pipe's descriptors, and the lock files
    /// by name (`rlock`, `wlock`, and the JoinableQueue's `cond`).
    fn args(&self, index: usize) -> serde_json::Value {
        let mut a = serde_json::json!({
            "index": index, "items": self.items, "maxsize": self.maxsize,
            "reader": self.reader.as_raw_fd(), "writer": self.writer.as_raw_fd(),
        });
        for (key, path) in ["rlock", "wlock", "cond"].into_iter().zip(&self.files.0) {
            a[key] = path.display().to_string().into();
        }
        a
    }

    /// Spawn child `index` as `role`, named `name`, sharing the pipe.
    fn spawn(&self, ctx: &mut Ctx<'_>, role: &str, name: &str, index: usize) -> Result<ChildProc> {
        spawn_sharing(
            ctx,
            role,
            name,
            self.args(index),
            &[self.reader, self.writer],
        )
    }

    /// Spawn `n` children as `role`, named `<prefix>-<i>`.
    fn spawn_n(
        &self,
        ctx: &mut Ctx<'_>,
        role: &str,
        prefix: &str,
        n: usize,
    ) -> Result<Vec<ChildProc>> {
        (1..=n)
            .map(|i| self.spawn(ctx, role, &format!("{prefix}-{i}"), i))
            .collect()
    }
}

fn run(ctx: &mut Ctx<'_>, opts: &Opts) -> Result<()> {
    if cfg!(not(target_os = "linux")) {
        bail!("the queue lesson reads /proc: it runs on Linux only");
    }
    let producers = opts.get("producers") as usize;
    let consumers = opts.get("consumers") as usize;
    let maxsize = opts.get("maxsize") as usize;
    ctx.observe("maxsize", maxsize);
    plain_queue(ctx, producers, consumers, maxsize)?;
    joinable_queue(ctx, consumers, maxsize)?;
    // The last step's pause, once its story is told.
    ctx.show(0)
}

/// `Queue(maxsize)` with producers and consumers.
fn plain_queue(ctx: &mut Ctx<'_>, n_prod: usize, n_cons: usize, maxsize: usize) -> Result<()> {
    let staged = parts(ctx, n_prod, n_cons, maxsize)?;
    full(ctx, &staged)?;
    drain(ctx, &staged)?;
    empty(ctx, &staged)?;
    sentinels(ctx, staged)
}

/// The plain queue's processes and parts, set up by [`parts`] and used by every phase.
struct Staged {
    q: Queue,
    prods: Vec<ChildProc>,
    conss: Vec<ChildProc>,
    /// The lock files, removed when the queue is done.
    files: LockFiles,
    n_prod: usize,
    n_cons: usize,
    maxsize: usize,
    /// Items per producer: one more than fit, so that the last put must wait.
    per: usize,
    n_items: usize,
}

/// The parts: a pipe, two locks, a semaphore; the producers and consumers that share
/// them; the queue as it starts (empty, and `get_nowait` says so).
fn parts(ctx: &mut Ctx<'_>, n_prod: usize, n_cons: usize, maxsize: usize) -> Result<Staged> {
    let per = maxsize + 1;
    let m = maxsize as i32;
    let main = ctx.main_pid;
    step!(ctx, "parts", &[("maxsize", &maxsize), ("main", &main)])?;
    say!(ctx, "intro", &[("maxsize", &maxsize)]);
    ctx.pause(2000)?;
    let (reader, writer) = procs::pipe()?;
    let (r, w) = (reader.as_raw_fd(), writer.as_raw_fd());
    say!(ctx, "part_pipe", &[("r", &r), ("w", &w)]);
    ctx.pause(2000)?;
    let files = LockFiles(vec![
        ctx.dir.join("queue.rlock"),
        ctx.dir.join("queue.wlock"),
    ]);
    let rlock = FileLock::open(&files.0[0])?;
    let wlock = FileLock::open(&files.0[1])?;
    say!(
        ctx,
        "part_locks",
        &[
            ("rlock", &files.0[0].display()),
            ("wlock", &files.0[1].display()),
        ],
    );
    ctx.show(2000)?;

    let handout = Handout {
        reader: &reader,
        writer: &writer,
        files: &files,
        items: per,
        maxsize,
    };
    let (prods, conss) = spawn_children(ctx, &handout, n_prod, n_cons)?;
    let slots = part_sem(ctx, &prods, &conss, maxsize)?;
    let q = Queue {
        maxsize: m,
        reader,
        writer,
        rlock,
        wlock,
        slots,
        joinable: None,
    };
    at_start(ctx, &q, maxsize)?;
    Ok(Staged {
        q,
        prods,
        conss,
        files,
        n_prod,
        n_cons,
        maxsize,
        per,
        n_items: n_prod * per,
    })
}

/// The producers and consumers, each handed the pipe and the lock files.
fn spawn_children(
    ctx: &mut Ctx<'_>,
    handout: &Handout<'_>,
    n_prod: usize,
    n_cons: usize,
) -> Result<(Vec<ChildProc>, Vec<ChildProc>)> {
    let (r, w) = (handout.reader.as_raw_fd(), handout.writer.as_raw_fd());
    say!(
        ctx,
        "spawn_children",
        &[
            ("producers", &n_prod),
            ("consumers", &n_cons),
            ("per", &handout.items),
            ("r", &r),
            ("w", &w),
        ],
    );
    ctx.pause(1500)?;
    let prods = handout.spawn_n(ctx, "producer", "producer", n_prod)?;
    let conss = handout.spawn_n(ctx, "consumer", "consumer", n_cons)?;
    Ok((prods, conss))
}

/// The BoundedSemaphore(maxsize): created, opened by every child, and its name unlinked.
fn part_sem(
    ctx: &mut Ctx<'_>,
    prods: &[ChildProc],
    conss: &[ChildProc],
    maxsize: usize,
) -> Result<Sem> {
    let mut slots = Sem::fresh("slots", maxsize as u32)?;
    let slots_name = slots.name().to_string();
    say!(
        ctx,
        "part_sem",
        &[("name", &slots_name), ("maxsize", &maxsize)]
    );
    let all: Vec<&ChildProc> = prods.iter().chain(conss.iter()).collect();
    share_sems(
        ctx,
        &all,
        &SemNamesMsg {
            slots: slots_name.clone(),
            ..Default::default()
        },
        &mut [&mut slots],
    )?;
    say!(ctx, "unlinked", &[("name", &slots_name), ("n", &all.len())]);
    ctx.pause(2000)?;
    Ok(slots)
}

/// The queue as it starts: empty, and `get_nowait()` raises `Empty`.
fn at_start(ctx: &mut Ctx<'_>, q: &Queue, maxsize: usize) -> Result<()> {
    say!(
        ctx,
        "state_at_start",
        &[
            ("empty", &py_bool(q.empty()?)),
            ("full", &py_bool(q.full()?)),
            ("size", &q.qsize()?),
            ("maxsize", &maxsize),
        ],
    );
    ctx.pause(2000)?;
    let empty_error = match q.get_nowait()? {
        None => "Empty".to_string(),
        Some(got) => format!("returned {}", py_item(got.item.as_deref())),
    };
    say!(ctx, "get_nowait_empty", &[("result", &empty_error)]);
    ctx.claim(
        "get_nowait_empty_error",
        empty_error.as_str(),
        Expect::eq("Empty"),
    );
    ctx.pause(2000)?;
    Ok(())
}

/// Full: producer-1 alone fills the queue and falls asleep in its next put.
fn full(ctx: &mut Ctx<'_>, s: &Staged) -> Result<()> {
    let Staged { q, prods, .. } = s;
    let (maxsize, per, m) = (s.maxsize, s.per, s.maxsize as i32);
    let p1 = &prods[0];
    step!(ctx, "full", &[("pid", &p1.pid)])?;
    say!(ctx, "fill", &[("per", &per), ("maxsize", &maxsize)]);
    ctx.pause(1500)?;
    p1.send(Down::Go)?;
    let put = |k: i64| move |r: &Reply| *r == Reply::Put { k };
    p1.expect(budget(ctx, PUT_MS * per as u64), put(maxsize as i64))?;
    let blocked = wait_blocked(ctx, p1.pid, &[Call::Futex], "slot")?;
    let (size, full) = (q.qsize()?, q.full()?);
    let p1_blocked = blocked.is_some() && full && size == m;
    if let Some(b) = &blocked {
        say!(
            ctx,
            "producer_blocked",
            &[
                ("pid", &p1.pid),
                ("item", &format!("p1.{maxsize}")),
                ("maxsize", &maxsize),
                ("call", &b.call()),
            ],
        );
    }
    ctx.show(2000)?;
    say!(
        ctx,
        "full_now",
        &[
            ("full", &py_bool(full)),
            ("size", &size),
            ("empty", &py_bool(q.empty()?)),
        ],
    );
    ctx.claim("producer_blocked_when_full", p1_blocked, Expect::eq(true));
    ctx.pause(2000)?;
    let full_error = if q.put_nowait(Some("x"))? {
        "no error: the item went in".to_string()
    } else {
        "Full".to_string()
    };
    say!(ctx, "put_nowait_full", &[("result", &full_error)]);
    ctx.claim(
        "put_nowait_full_error",
        full_error.as_str(),
        Expect::eq("Full"),
    );
    ctx.pause(2000)?;
    for p in &prods[1..] {
        p.send(Down::Go)?;
        p.expect(budget(ctx, 0), |r: &Reply| *r == Reply::Put { k: 0 })?;
        if let Some(b) = wait_blocked(ctx, p.pid, &[Call::Futex], "slot")? {
            say!(
                ctx,
                "also_blocked",
                &[("name", &p.name), ("pid", &p.pid), ("call", &b.call())],
            );
        }
    }
    ctx.pause(2000)?;
    Ok(())
}

/// Drain: the consumers take items out; each get lets one sleeping put in.
fn drain(ctx: &mut Ctx<'_>, s: &Staged) -> Result<()> {
    let Staged { prods, conss, .. } = s;
    let (n_prod, per, n_items) = (s.n_prod, s.per, s.n_items);
    step!(ctx, "drain", &[])?;
    say!(ctx, "consumers_go", &[]);
    ctx.pause(1500)?;
    for c in conss {
        c.send(Down::Go)?;
    }
    let mut got = collect_reports(conss, n_items, budget(ctx, WORK_MS * n_items as u64))?;
    let mut produced = 0;
    for p in prods {
        if let Reply::Done { items } =
            p.expect(budget(ctx, 0), |r: &Reply| matches!(r, Reply::Done { .. }))?
        {
            produced += items as usize;
        }
    }
    say!(ctx, "producers_done", &[("n", &produced)]);
    for p in &prods[1..] {
        p.send(Down::Stop)?;
        ctx.join(p.pid)?;
    }
    // In the order the items left the pipe (their get stamps).
    got.sort();
    let mut distinct: Vec<i64> = got.iter().map(|&(_, code)| code).collect();
    distinct.sort_unstable();
    distinct.dedup();
    let consumed = got.len();
    let each_once = distinct.len() == consumed;
    let fifo = (1..=n_prod as i64).all(|i| {
        let seqs: Vec<i64> = got
            .iter()
            .filter(|&&(_, code)| code / 1000 == i)
            .map(|&(_, code)| code % 1000)
            .collect();
        seqs == (0..per as i64).collect::<Vec<_>>()
    });
    ctx.claim(
        "produced",
        produced,
        Expect::eq(n_items).of("producers × (maxsize + 1)"),
    );
    ctx.claim(
        "consumed",
        consumed,
        Expect::eq(produced)
            .of("produced")
            .and("each_item_once", each_once),
    );
    say!(ctx, if (fifo) { "fifo_kept" } else { "fifo_broken" }, &[]);
    ctx.claim("fifo_per_producer", fifo, Expect::eq(true));
    ctx.pause(2000)?;
    Ok(())
}

/// Empty: every item is out; the consumers sleep in get().
fn empty(ctx: &mut Ctx<'_>, s: &Staged) -> Result<()> {
    let Staged { q, conss, .. } = s;
    step!(ctx, "empty", &[("pid", &conss[0].pid)])?;
    let mut seen = Vec::new();
    for c in conss {
        let b = wait_blocked(ctx, c.pid, &[Call::Read, Call::Flock], "item")?;
        seen.push((c, b));
    }
    let all_blocked = seen.iter().all(|(_, b)| b.is_some());
    // The one in read() holds the reader lock: tell about it first.
    seen.sort_by_key(|(_, b)| b.as_ref().is_none_or(|b| b.call != Some(Call::Read)));
    for (c, b) in &seen {
        let Some(b) = b else { continue };
        let (call, target) = (b.call(), fd_target(c.pid, b.arg0));
        say!(
            ctx,
            match (b.call) {
                Some(Call::Read) => "blocked_in_read",
                Some(Call::Flock) => "blocked_in_flock",
                _ => "blocked_somewhere",
            },
            &[
                ("name", &c.name),
                ("pid", &c.pid),
                ("call", &call),
                ("target", &target),
            ],
        );
        ctx.pause(1500)?;
    }
    let empty = q.empty()?;
    say!(
        ctx,
        "empty_now",
        &[("empty", &py_bool(empty)), ("size", &q.qsize()?)],
    );
    let claim = all_blocked && empty;
    ctx.claim("consumers_blocked_when_empty", claim, Expect::eq(true));
    ctx.show(2000)?;
    Ok(())
}

/// Sentinels: one None per consumer ends them.
fn sentinels(ctx: &mut Ctx<'_>, s: Staged) -> Result<()> {
    let Staged {
        q,
        prods,
        conss,
        files,
        n_cons,
        ..
    } = s;
    let p1 = &prods[0];
    step!(ctx, "sentinels", &[])?;
    say!(ctx, "sentinels", &[("n", &n_cons)]);
    ctx.pause(1500)?;
    // Each consumer's get of its None comes before its Stop, on its channel; but the
    // joins of the others are stamped meanwhile, and a consumer slow to send lost its
    // place (seen 9 ms out of stamp order with the suite at four threads): until every
    // Stop is in, nothing stamped after the sentinels are sent is written.
    let news = ctx.expect_news();
    p1.send(Down::Value(ObsValue::Int(n_cons as i64)))?;
    for c in &conss {
        c.expect(budget(ctx, 0), |r: &Reply| matches!(r, Reply::Stop { .. }))?;
        ctx.join(c.pid)?;
    }
    drop(news);
    p1.expect(budget(ctx, 0), |r: &Reply| *r == Reply::Sentinels)?;
    ctx.join(p1.pid)?;
    say!(ctx, "all_joined", &[("size", &q.qsize()?)]);
    ctx.pause(2000)?;
    drop(q);
    drop(files);
    Ok(())
}
