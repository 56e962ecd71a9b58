//! `JoinableQueue`: `task_done()` after every item, `join()` asleep on the condition until
//! the last one, and the `ValueError` of one `task_done()` too many.

use super::*;
use crate::child::Down;
use crate::ctx::{ChildProc, Ctx};
use crate::procs::{self};
use crate::sys::flock::FileLock;
use crate::sys::proc::Call;
use crate::{say, step};
use anyhow::{Context, Result};
use std::os::fd::AsRawFd;

/// `JoinableQueue(maxsize)`: task_done() and join().
pub(super) fn joinable_queue(ctx: &mut Ctx<'_>, n_cons: usize, maxsize: usize) -> Result<()> {
    let tasks = maxsize;
    step!(ctx, "joinable", &[("maxsize", &maxsize)])?;
    say!(ctx, "joinable_intro", &[("maxsize", &maxsize)]);
    ctx.pause(2500)?;
    let (reader, writer) = procs::pipe()?;
    let (r, w) = (reader.as_raw_fd(), writer.as_raw_fd());
    let files = LockFiles(vec![
        ctx.dir.join("jqueue.rlock"),
        ctx.dir.join("jqueue.wlock"),
        ctx.dir.join("jqueue.cond"),
    ]);
    let rlock = FileLock::open(&files.0[0])?;
    let wlock = FileLock::open(&files.0[1])?;
    let cond_lock = FileLock::open(&files.0[2])?;
    let args = |index: usize| {
        serde_json::json!({
            "index": index, "items": tasks, "maxsize": maxsize,
            "reader": r, "writer": w,
            "rlock": files.0[0].display().to_string(),
            "wlock": files.0[1].display().to_string(),
            "cond": files.0[2].display().to_string(),
        })
    };
    let boss = spawn_sharing(ctx, "jproducer", "producer", args(0), &[&reader, &writer])?;
    let (report_r, report_w) = procs::pipe()?;
    let mut workers = Vec::new();
    for i in 1..=n_cons {
        let name = format!("worker-{i}");
        let mut a = args(i);
        a["report"] = report_w.as_raw_fd().into();
        let fds = [&reader, &writer, &report_w];
        workers.push(spawn_sharing(ctx, "jconsumer", &name, a, &fds)?);
    }
    drop(report_w);
    let mut slots = Sem::fresh("slots", maxsize as u32)?;
    let mut unfinished = Sem::fresh("unfinished", 0)?;
    let mut sleeping = Sem::fresh("sleeping", 0)?;
    let mut woken = Sem::fresh("woken", 0)?;
    let mut wait = Sem::fresh("wait", 0)?;
    let unfinished_name = unfinished.name().to_string();
    let all: Vec<&ChildProc> = std::iter::once(&boss).chain(workers.iter()).collect();
    share_sems(
        ctx,
        &all,
        &SemNamesMsg {
            slots: slots.name().into(),
            unfinished: Some(unfinished_name.clone()),
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
    say!(
        ctx,
        "joinable_parts",
        &[
            ("unfinished", &unfinished_name),
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
        joinable: Some(Joinable {
            unfinished,
            cond: Condition {
                lock: cond_lock,
                sleeping,
                woken,
                wait,
            },
        }),
    };

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
    for wk in &workers {
        wk.send(Down::Go)?;
    }
    let done: Vec<u64> =
        collect_reports(ctx, &report_r, tasks, budget(ctx, WORK_MS * tasks as u64))?
            .iter()
            .map(|n| n.a as u64)
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
    ctx.claim("join_after_all_done", after, "== true", after);
    ctx.pause(2000)?;

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
        "== ValueError",
        extra.starts_with("ValueError"),
    );
    ctx.pause(2000)?;
    boss.send(Down::Stop)?;
    ctx.join(boss.pid)?;
    say!(ctx, "terminate_workers", &[("n", &n_cons)]);
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
