//! `JoinableQueue`: `task_done()` after every item, `join()` asleep on the condition until
//! the last one, and the `ValueError` of one `task_done()` too many.

use super::*;
use crate::child::Down;
use crate::ctx::{ChildProc, Ctx, Expect};
use crate::procs::{self};
use crate::sys::flock::FileLock;
use crate::sys::proc::Call;
use crate::{say, step};
use anyhow::{Context, Result};

/// What the JoinableQueue's phases share: the queue, its producer (who calls `join()`)
/// and its workers, the lock files, and the number of tasks.
struct Tasks {
    q: Queue,
    boss: ChildProc,
    workers: Vec<ChildProc>,
    /// The lock files, removed when the queue is done.
    files: LockFiles,
    tasks: usize,
}

/// `JoinableQueue(maxsize)`: task_done() and join().
pub(super) fn joinable_queue(ctx: &mut Ctx<'_>, n_cons: usize, maxsize: usize) -> Result<()> {
    let t = joinable_parts(ctx, n_cons, maxsize)?;
    join_after_all_done(ctx, &t)?;
    one_too_many(ctx, &t.q)?;
    end_joinable(ctx, t)
}

/// The parts: the plain queue's pipe, locks and slots, plus a semaphore counting the
/// unfinished tasks and a `Condition` (a lock and three semaphores); the producer and
/// the workers that share them.
fn joinable_parts(ctx: &mut Ctx<'_>, n_cons: usize, maxsize: usize) -> Result<Tasks> {
    let tasks = maxsize;
    step!(ctx, "joinable", &[("maxsize", &maxsize)])?;
    say!(ctx, "joinable_intro", &[("maxsize", &maxsize)]);
    ctx.pause(2500)?;
    let (reader, writer) = procs::pipe()?;
    let files = LockFiles(vec![
        ctx.dir.join("jqueue.rlock"),
        ctx.dir.join("jqueue.wlock"),
        ctx.dir.join("jqueue.cond"),
    ]);
    let rlock = FileLock::open(&files.0[0])?;
    let wlock = FileLock::open(&files.0[1])?;
    let cond_lock = FileLock::open(&files.0[2])?;
    let handout = Handout {
        reader: &reader,
        writer: &writer,
        files: &files,
        items: tasks,
        maxsize,
    };
    let boss = handout.spawn(ctx, "jproducer", "producer", 0)?;
    let workers = handout.spawn_n(ctx, "jconsumer", "worker", n_cons)?;
    let all: Vec<&ChildProc> = std::iter::once(&boss).chain(workers.iter()).collect();
    let (slots, joinable) = joinable_sems(ctx, &all, maxsize, cond_lock)?;
    say!(
        ctx,
        "joinable_parts",
        &[
            ("unfinished", &joinable.unfinished.name()),
            ("cond", &files.0[2].display()),
        ],
    );
    ctx.pause(2000)?;
    let q = Queue {
        maxsize: maxsize as i32,
        reader,
        writer,
        rlock,
        wlock,
        slots,
        joinable: Some(joinable),
    };
    Ok(Tasks {
        q,
        boss,
        workers,
        files,
        tasks,
    })
}

/// The five semaphores (the slots, the unfinished tasks, and the Condition's three,
/// around its `lock`): created, opened by every child, and their names unlinked.
fn joinable_sems(
    ctx: &Ctx<'_>,
    all: &[&ChildProc],
    maxsize: usize,
    lock: FileLock,
) -> Result<(Sem, Joinable)> {
    let mut slots = Sem::fresh("slots", maxsize as u32)?;
    let mut unfinished = Sem::fresh("unfinished", 0)?;
    let mut sleeping = Sem::fresh("sleeping", 0)?;
    let mut woken = Sem::fresh("woken", 0)?;
    let mut wait = Sem::fresh("wait", 0)?;
    share_sems(
        ctx,
        all,
        &SemNamesMsg {
            slots: slots.name().into(),
            unfinished: Some(unfinished.name().into()),
            sleeping: Some(sleeping.name().into()),
            woken: Some(woken.name().into()),
            wait: Some(wait.name().into()),
        },
        &mut [
            &mut slots,
            &mut unfinished,
            &mut sleeping,
            &mut woken,
            &mut wait,
        ],
    )?;
    let cond = Condition {
        lock,
        sleeping,
        woken,
        wait,
    };
    Ok((slots, Joinable { unfinished, cond }))
}

/// The producer puts every task and calls `join()`, which sleeps on the condition; the
/// workers go, and `join()` returns only after the last `task_done()`.
fn join_after_all_done(ctx: &mut Ctx<'_>, t: &Tasks) -> Result<()> {
    let Tasks {
        q, boss, workers, ..
    } = t;
    let tasks = t.tasks;
    boss.send(Down::Go)?;
    boss.expect(budget(ctx, PUT_MS * tasks as u64), |r: &Reply| {
        *r == Reply::Join
    })?;
    let blocked = wait_blocked(ctx, boss.pid, &[Call::Futex], "all_tasks_done")?;
    let unfinished_now = q.unfinished()?;
    if let Some(b) = &blocked {
        say!(
            ctx,
            "join_blocked",
            &[
                ("pid", &boss.pid),
                ("n", &unfinished_now),
                ("call", &b.call()),
            ],
        );
    }
    ctx.pause(2000)?;
    say!(ctx, "workers_go", &[]);
    for wk in workers {
        wk.send(Down::Go)?;
    }
    let done: Vec<u64> = collect_reports(workers, tasks, budget(ctx, WORK_MS * tasks as u64))?
        .iter()
        .map(|&(t_ns, _)| t_ns)
        .collect();
    let Reply::Joined { t_ns: joined_at } = boss.expect(budget(ctx, 0), |r: &Reply| {
        matches!(r, Reply::Joined { .. })
    })?
    else {
        unreachable!("expect returns only a Joined")
    };
    let last_done = done.iter().copied().max().unwrap_or(u64::MAX);
    // join() was seen asleep while tasks were unfinished, and returned after the last
    // task_done() had been called.
    let after = blocked.is_some() && done.len() == tasks && joined_at > last_done;
    say!(
        ctx,
        "join_returned",
        &[
            ("n", &done.len()),
            (
                "gap",
                &format!("{:.3}", (joined_at as f64 - last_done as f64) / 1e6),
            ),
        ],
    );
    ctx.claim("join_after_all_done", after, Expect::eq(true));
    ctx.pause(2000)
}

/// One `task_done()` more than there were tasks: `ValueError`.
fn one_too_many(ctx: &mut Ctx<'_>, q: &Queue) -> Result<()> {
    step!(ctx, "too_many", &[])?;
    let extra = if q.task_done()? {
        "no error".to_string()
    } else {
        "ValueError: task_done() called too many times".to_string()
    };
    say!(ctx, "task_done_extra", &[("error", &extra)]);
    ctx.claim(
        "task_done_extra_error",
        extra.as_str(),
        Expect::starts_with("ValueError"),
    );
    ctx.pause(2000)
}

/// The end: the producer stops, the workers (still asleep in get()) are terminated, and
/// the queue's parts go.
fn end_joinable(ctx: &mut Ctx<'_>, t: Tasks) -> Result<()> {
    let Tasks {
        q,
        boss,
        workers,
        files,
        ..
    } = t;
    boss.send(Down::Stop)?;
    ctx.join(boss.pid)?;
    say!(ctx, "terminate_workers", &[("n", &workers.len())]);
    for wk in &workers {
        nix::sys::signal::kill(wk.pid, nix::sys::signal::Signal::SIGTERM)
            .context("kill(SIGTERM)")?;
    }
    for wk in &workers {
        ctx.join(wk.pid)?;
    }
    ctx.pause(1000)?;
    say!(ctx, "moral", &[]);
    drop(q);
    drop(files);
    Ok(())
}
