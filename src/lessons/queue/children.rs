//! The spawned producers and consumers: they attach to the queue by what they inherited
//! and by name, and tell the parent what they do.

use super::*;
use crate::child::{ChildCtx, Down};
use crate::event::{now_ns, ObsValue};
use crate::say;
use crate::sys::flock::FileLock;
use anyhow::{bail, Context, Result};
use nix::libc;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// A descriptor this process inherited across exec, checked to be a pipe.
pub(super) fn inherited_pipe_end(c: &ChildCtx, key: &str) -> Result<OwnedFd> {
    let fd = c.arg_i64(key)? as RawFd;
    let st = nix::sys::stat::fstat(
        // SAFETY: only borrowed for fstat; if it is not open, fstat says EBADF.
        unsafe { BorrowedFd::borrow_raw(fd) },
    )
    .with_context(|| format!("fd {fd} ({key}) was not inherited"))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFIFO {
        bail!("fd {fd} ({key}) is not a pipe");
    }
    // SAFETY: the descriptor is open (fstat succeeded), was inherited for this purpose,
    // and nothing else in this process owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A child's side of the queue: the inherited pipe, its own lock files, then the
/// semaphores, opened by the names the parent sends; "opened" tells the parent so.
pub(super) fn attach(c: &ChildCtx) -> Result<Queue> {
    let reader = inherited_pipe_end(c, "reader")?;
    let writer = inherited_pipe_end(c, "writer")?;
    let rlock = FileLock::open(Path::new(&c.arg_str("rlock")?))?;
    let wlock = FileLock::open(Path::new(&c.arg_str("wlock")?))?;
    let msg = match c.recv()? {
        Down::Value(ObsValue::Str(s)) => s,
        other => bail!("expected the semaphore names, got {other:?}"),
    };
    let names: SemNamesMsg = serde_json::from_str(&msg).context("semaphore names")?;
    let slots = Sem::open(&names.slots)?;
    let joinable = match (names.unfinished, names.sleeping, names.woken, names.wait) {
        (Some(u), Some(s), Some(k), Some(w)) => Some(Joinable {
            unfinished: Sem::open(&u)?,
            cond: Condition {
                lock: FileLock::open(Path::new(&c.arg_str("cond")?))?,
                sleeping: Sem::open(&s)?,
                woken: Sem::open(&k)?,
                wait: Sem::open(&w)?,
            },
        }),
        _ => None,
    };
    c.tell(&Reply::Opened)?;
    Ok(Queue {
        maxsize: c.arg_i64("maxsize")? as i32,
        reader,
        writer,
        rlock,
        wlock,
        slots,
        joinable,
    })
}

/// `put`, then its stamped event with the fill level.
pub(super) fn put_and_tell(c: &ChildCtx, q: &Queue, item: Option<&str>) -> Result<()> {
    q.put(item)?;
    let t = now_ns();
    let size = q.qsize()?;
    c.act_at(
        t,
        "put",
        &[("item", py_item(item).into()), ("size", size.into())],
    )?;
    c.gauge("queue", size.into(), q.maxsize.into())
}

/// `get`, then its stamped event with the fill level.
pub(super) fn get_and_tell(c: &ChildCtx, q: &Queue) -> Result<Got> {
    let got = q.get()?;
    c.act_at(
        got.t_ns,
        "get",
        &[
            ("item", py_item(got.item.as_deref()).into()),
            ("size", got.size.into()),
        ],
    )?;
    c.gauge("queue", got.size.into(), q.maxsize.into())?;
    Ok(got)
}

/// A producer: `for k in range(n): q.put(f"p{i}.{k}")`. Before each put it tells the
/// parent "put k", so the parent knows which put a sleeping producer is in. Then it
/// waits: `Value(n)` asks it to put n sentinels (it is the last producer), `Stop` ends it.
pub(super) fn producer(c: &mut ChildCtx) -> Result<i32> {
    let q = attach(c)?;
    let index = c.arg_i64("index")?;
    let items = c.arg_i64("items")?;
    c.expect_go()?;
    for k in 0..items {
        c.tell(&Reply::Put { k })?;
        let item = format!("p{index}.{k}");
        put_and_tell(c, &q, Some(&item))?;
        if index == 1 && k == 0 {
            say!(
                c,
                "first_put",
                &[
                    ("item", &item),
                    ("bytes", &encode(Some(&item)).len()),
                    ("w", &q.writer.as_raw_fd()),
                ],
            )?;
        }
        c.pause(PUT_MS);
    }
    c.tell(&Reply::Done { items })?;
    match c.recv()? {
        Down::Value(ObsValue::Int(n)) => {
            say!(c, "putting_sentinels", &[("n", &n)])?;
            for _ in 0..n {
                put_and_tell(c, &q, None)?;
            }
            c.tell(&Reply::Sentinels)?;
        }
        Down::Stop => {}
        other => bail!("unexpected command {other:?}"),
    }
    Ok(0)
}

/// A consumer: `while (item := q.get()) is not None: work(item)`. After working on an
/// item it reports it to the parent (the item and its get stamp, [`Reply::Got`]): so
/// when the parent has heard of every item, every consumer is on its way back into `get()`.
pub(super) fn consumer(c: &mut ChildCtx) -> Result<i32> {
    let q = attach(c)?;
    let index = c.arg_i64("index")?;
    c.expect_go()?;
    let mut got = 0;
    loop {
        let Got { item, t_ns, .. } = get_and_tell(c, &q)?;
        let Some(item) = item else {
            say!(c, "got_sentinel", &[("n", &got)])?;
            c.tell(&Reply::Stop { got })?;
            return Ok(0);
        };
        if index == 1 && got == 0 {
            say!(
                c,
                "first_get",
                &[
                    ("item", &item),
                    ("bytes", &encode(Some(&item)).len()),
                    ("r", &q.reader.as_raw_fd()),
                ],
            )?;
        }
        c.pause(WORK_MS);
        got += 1;
        c.tell(&Reply::Got {
            t_ns,
            item: item_code(&item),
        })?;
    }
}

/// An item's name as one number, for a [`Note`]: `p2.5` → 2005, `task-3` → 3.
pub(super) fn item_code(item: &str) -> i64 {
    let (p, k) = match item.strip_prefix('p').and_then(|r| r.split_once('.')) {
        Some((p, k)) => (p.parse().unwrap_or(0), k.parse().unwrap_or(0)),
        None => (
            0,
            item.rsplit('-')
                .next()
                .and_then(|k| k.parse().ok())
                .unwrap_or(0),
        ),
    };
    p * 1000 + k
}

/// The JoinableQueue's producer: put the tasks, then `join()` until all are done.
pub(super) fn jproducer(c: &mut ChildCtx) -> Result<i32> {
    let q = attach(c)?;
    let items = c.arg_i64("items")?;
    c.expect_go()?;
    for k in 0..items {
        put_and_tell(c, &q, Some(&format!("task-{k}")))?;
        c.pause(PUT_MS / 2);
    }
    say!(c, "calling_join", &[("n", &items)])?;
    c.tell(&Reply::Join)?;
    q.join()?;
    let t = now_ns();
    let unfinished = q.unfinished()?;
    c.act_at(t, "queue_join", &[("unfinished", unfinished.into())])?;
    c.tell(&Reply::Joined { t_ns: t })?;
    match c.recv()? {
        Down::Stop => Ok(0),
        other => bail!("unexpected command {other:?}"),
    }
}

/// A JoinableQueue's worker: get a task, work, `task_done()`; forever (the parent ends
/// it, as Python ends daemon workers).
pub(super) fn jconsumer(c: &mut ChildCtx) -> Result<i32> {
    let q = attach(c)?;
    c.expect_go()?;
    loop {
        let item = py_item(get_and_tell(c, &q)?.item.as_deref());
        c.pause(WORK_MS);
        let t = now_ns();
        c.act_at(t, "task_done", &[("item", item.as_str().into())])?;
        if !q.task_done()? {
            bail!("ValueError: task_done() called too many times");
        }
        c.tell(&Reply::Got {
            t_ns: t,
            item: item_code(&item),
        })?;
    }
}
