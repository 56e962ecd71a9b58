//! Lesson `semaphore`: Python's `Semaphore(k)`, k rooms and n people, P (wait) and V
//! (signal), on a real POSIX named semaphore shared by spawned worker processes.
//!
//! The staging: every worker is running and has the semaphore open before the start gate
//! opens; then all of them try to get in at once (`sem_trywait`, and `sem_wait` for those
//! that find the counter at 0). Nobody leaves until the parent has heard from every
//! worker, so exactly `permits` are inside at once and `workers - permits` wait, on every
//! run. Then the parent lets one worker out at a time: its `sem_post` wakes one sleeper.
//!
//! The semaphore is created by the parent only once every worker runs, opened by each of
//! them by name, and unlinked as soon as all have it open (a millisecond later): nothing
//! is left in `/dev/shm`, even if the run is killed afterwards.

use super::{LessonDef, OptSpec, Opts};
use crate::child::{ChildCtx, Down};
use crate::ctx::{reply_any, ChildProc, Ctx, Expect};
use crate::event::{now_ns, ObsValue};
use crate::sys::sem::NamedSem;
use crate::{say, step};
use anyhow::{anyhow, bail, Result};
use std::time::Duration;

/// This lesson's words, whose keys the word macros check at compile time.
const WORDS: &crate::words::keys::Table = &crate::words::keys::SEMAPHORE;

pub static LESSON: LessonDef = LessonDef {
    name: "semaphore",
    words_src: include_str!("../../lessons/semaphore.toml"),
    options: &[
        OptSpec {
            name: "workers",
            default: 6,
            min: 2,
            max: 32,
            help: "Worker processes (the people)",
        },
        OptSpec {
            name: "permits",
            default: 2,
            min: 1,
            max: 16,
            help: "The semaphore's initial value (the rooms)",
        },
    ],
    run,
    validate: None,
    roles: &[("worker", worker)],
};

/// How long a worker may take to answer, or the kernel to reach a state; far more than
/// either needs, so a timeout means something is broken, not slow.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The counter as rooms: `■` a free one (a unit of the counter), `□` one in use.
fn gauge(value: i64, permits: i64) -> String {
    if value < 0 {
        return "?".into();
    }
    let free = value.min(permits) as usize;
    let used = (permits - value).max(0) as usize;
    format!("[{}{}]", "■".repeat(free), "□".repeat(used))
}

/// What a worker tells the parent: it has opened the semaphore; it must wait; it is
/// inside (stamped right after its P returned); it has left (stamped right before its V).
#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Eq)]
enum Reply {
    Opened,
    /// Said its line of the rush (told once the parent lets it speak).
    Spoke,
    Waiting,
    Inside {
        t_ns: u64,
    },
    Left {
        t_ns: u64,
    },
}

/// The largest number of intervals open at once, from `(acquire, release)` stamps; a
/// release and an acquire at the same stamp count the release first.
fn max_concurrent(marks: &[(u64, i32)]) -> i64 {
    let mut marks = marks.to_vec();
    marks.sort_by_key(|&(t, d)| (t, d));
    let (mut cur, mut max) = (0i64, 0i64);
    for (_, d) in marks {
        cur += i64::from(d);
        max = max.max(cur);
    }
    max
}

/// Who is where: the workers inside and those waiting (indices into the workers), and
/// every stamped entry (+1) and exit (-1).
struct Rooms {
    inside: Vec<usize>,
    waiting: Vec<usize>,
    marks: Vec<(u64, i32)>,
}

fn run(ctx: &mut Ctx<'_>, opts: &Opts) -> Result<()> {
    let workers = opts.get("workers") as usize;
    let permits = opts.get("permits");
    ctx.observe("permits", permits);
    ctx.observe("workers", workers);

    // The step title names this run's k and n, not the letters.
    step!(
        ctx,
        "rooms",
        &[("permits", &permits), ("workers", &workers)]
    )?;
    say!(
        ctx,
        "intro",
        &[("permits", &permits), ("workers", &workers)]
    );
    ctx.pause(2000)?;
    let mut kids: Vec<ChildProc> = Vec::with_capacity(workers);
    for i in 1..=workers {
        kids.push(ctx.spawn(
            "worker",
            &format!("worker-{i}"),
            serde_json::json!({ "permits": permits }),
        )?);
    }
    let sem = open(ctx, &kids, permits)?;
    let mut rooms = rush(ctx, &kids, &sem, permits)?;
    let waited = rooms.waiting.len();
    leave(ctx, &kids, &sem, permits, &mut rooms)?;
    verdict(ctx, sem, &rooms.marks, workers, permits, waited)?;
    ctx.pause(2000)?;
    say!(ctx, "moral", &[]);
    // The last step's pause, once its story is told.
    ctx.show(0)
}

/// Create, let everyone open, unlink: the name exists for about a millisecond.
fn open(ctx: &mut Ctx<'_>, kids: &[ChildProc], permits: u32) -> Result<NamedSem> {
    let (workers, k) = (kids.len(), i64::from(permits));
    let name = NamedSem::fresh_name("rooms")?;
    step!(ctx, "open", &[("name", &name)])?;
    let mut sem = NamedSem::create(&name, permits)?;
    say!(
        ctx,
        "created",
        &[
            ("name", &name),
            ("permits", &permits),
            ("gauge", &gauge(sem.value(), k)),
        ],
    );
    // While the name exists: the hint lists it in /dev/shm.
    ctx.show(0)?;
    for kid in kids {
        kid.send(Down::Value(name.clone().into()))?;
    }
    for kid in kids {
        kid.expect(TIMEOUT, |r: &Reply| *r == Reply::Opened)?;
    }
    sem.unlink()?;
    let shm = format!("/dev/shm/sem.{}", name.trim_start_matches('/'));
    let gone = !std::path::Path::new(&shm).exists();
    say!(
        ctx,
        if (gone) { "unlinked" } else { "unlink_unseen" },
        &[("workers", &workers), ("shm", &shm)],
    );
    ctx.pause(2500)?;
    Ok(sem)
}

/// The rush: everyone at once; exactly `permits` get in, the rest sleep.
fn rush(ctx: &mut Ctx<'_>, kids: &[ChildProc], sem: &NamedSem, permits: u32) -> Result<Rooms> {
    let (workers, k) = (kids.len(), i64::from(permits));
    let main = ctx.main_pid;
    let janitor = ctx.janitor();
    step!(ctx, "rush", &[("main", &main), ("janitor", &janitor)])?;
    say!(ctx, "rush", &[("workers", &workers), ("permits", &permits)]);
    for kid in kids {
        kid.send(Down::Go)?;
    }
    let mut inside: Vec<usize> = Vec::new();
    let mut waiting: Vec<usize> = Vec::new();
    let mut marks: Vec<(u64, i32)> = Vec::new();
    let mut pending: Vec<usize> = (0..workers).collect();
    while !pending.is_empty() {
        let refs: Vec<&ChildProc> = pending.iter().map(|&i| &kids[i]).collect();
        let (j, v) = reply_any(&refs, TIMEOUT)?;
        let i = pending.remove(j);
        match kids[i].decode(&v)? {
            Reply::Inside { t_ns } => {
                inside.push(i);
                marks.push((t_ns, 1));
            }
            Reply::Waiting => waiting.push(i),
            other => bail!("{} answered {other:?}", kids[i].name),
        }
    }
    // They all called P() at once; they tell what they found in two turns, those inside
    // (one line for all, alike), then those asleep, so that the reader reads one before
    // the other comes.
    for group in [&inside, &waiting] {
        ctx.keep_up();
        for &i in group.iter() {
            kids[i].send(Down::Go)?;
        }
        for &i in group.iter() {
            kids[i].expect(TIMEOUT, |r: &Reply| *r == Reply::Spoke)?;
        }
    }
    let waited = waiting.len();
    let mut asleep = 0usize;
    for &i in &waiting {
        if ctx.wait_state(kids[i].pid, &['S'], TIMEOUT)? == Some('S') {
            asleep += 1;
        }
    }
    ctx.show(1000)?;
    let names = |set: &[usize]| -> String {
        let list: Vec<String> = set
            .iter()
            .map(|&i| format!("{} ({})", kids[i].name, kids[i].pid))
            .collect();
        if list.is_empty() {
            "-".into()
        } else {
            list.join(", ")
        }
    };
    let value = sem.value();
    say!(
        ctx,
        "inside_now",
        &[
            ("inside", &names(&inside)),
            ("value", &value),
            ("gauge", &gauge(value, k)),
        ],
    );
    if waited > 0 {
        say!(
            ctx,
            "asleep",
            &[("waiting", &names(&waiting)), ("n", &asleep)]
        );
    }
    ctx.claim(
        "waiters_seen_asleep",
        asleep,
        Expect::eq(waited).of("waited"),
    );
    ctx.pause(3500)?;
    Ok(Rooms {
        inside,
        waiting,
        marks,
    })
}

/// One by one, the parent lets a worker out: V() wakes one sleeper.
fn leave(
    ctx: &mut Ctx<'_>,
    kids: &[ChildProc],
    sem: &NamedSem,
    permits: u32,
    rooms: &mut Rooms,
) -> Result<()> {
    let k = i64::from(permits);
    let Rooms {
        inside,
        waiting,
        marks,
    } = rooms;
    step!(ctx, "leave", &[])?;
    say!(ctx, "leave_intro", &[]);
    ctx.pause(1500)?;
    while !inside.is_empty() {
        let i = inside.remove(0);
        let leaver = &kids[i];
        say!(
            ctx,
            "let_out",
            &[("name", &leaver.name), ("pid", &leaver.pid)]
        );
        leaver.send(Down::Go)?;
        let Reply::Left { t_ns } = leaver.expect(TIMEOUT, |r| matches!(r, Reply::Left { .. }))?
        else {
            unreachable!("expect returns only a Left")
        };
        marks.push((t_ns, -1));
        leaver.send(Down::Go)?; // now sem_post
        ctx.join(leaver.pid)?;
        if waiting.is_empty() {
            let value = sem.value();
            say!(
                ctx,
                "freed",
                &[
                    ("name", &leaver.name),
                    ("value", &value),
                    ("gauge", &gauge(value, k)),
                ],
            );
        } else {
            let refs: Vec<&ChildProc> = waiting.iter().map(|&w| &kids[w]).collect();
            let (j, v) = reply_any(&refs, TIMEOUT)?;
            let w = waiting.remove(j);
            match kids[w].decode(&v)? {
                Reply::Inside { t_ns } => marks.push((t_ns, 1)),
                other => bail!("{} answered {other:?}", kids[w].name),
            }
            inside.push(w);
            let value = sem.value();
            say!(
                ctx,
                "took_over",
                &[
                    ("name", &leaver.name),
                    ("next", &kids[w].name),
                    ("pid", &kids[w].pid),
                    ("still", &waiting.len()),
                    ("value", &value),
                    ("gauge", &gauge(value, k)),
                ],
            );
        }
        ctx.pause(1200)?;
    }
    Ok(())
}

/// The verdict: never more inside than the permits, and exactly the others waited.
fn verdict(
    ctx: &mut Ctx<'_>,
    sem: NamedSem,
    marks: &[(u64, i32)],
    workers: usize,
    permits: u32,
    waited: usize,
) -> Result<()> {
    let k = i64::from(permits);
    if marks.iter().filter(|m| m.1 == 1).count() != workers {
        return Err(anyhow!("not every worker got in"));
    }
    let max = max_concurrent(marks);
    let expect = k.min(workers as i64);
    let value = sem.value();
    drop(sem);
    say!(
        ctx,
        "done",
        &[
            ("max", &max),
            ("permits", &permits),
            ("waited", &waited),
            ("value", &value),
            ("gauge", &gauge(value, k)),
        ],
    );
    let expected = if expect == k {
        Expect::eq(k).of("permits")
    } else {
        Expect::eq(expect)
            .of("workers")
            .note("fewer workers than permits")
    };
    ctx.claim("max_concurrent", max, expected);
    let want_waited = workers.saturating_sub(permits as usize);
    ctx.claim(
        "waited",
        waited,
        Expect::eq(want_waited).of("workers - permits"),
    );
    Ok(())
}

/// A worker: open the semaphore by name, then at the gate P(); inside until the parent
/// lets it out; V().
fn worker(c: &mut ChildCtx) -> Result<i32> {
    let permits = c.arg_i64("permits")?;
    let name = match c.recv()? {
        Down::Value(ObsValue::Str(name)) => name,
        other => bail!("expected the semaphore's name, got {other:?}"),
    };
    let sem = NamedSem::open(&name)?;
    say!(c, "opened", &[("name", &name)])?;
    c.tell(&Reply::Opened)?;
    if c.recv()? != Down::Go {
        bail!("expected Go at the start gate");
    }

    let got = sem.try_wait()?;
    if got {
        let t = now_ns();
        acquired(c, t, sem.value(), permits, false)?;
        c.tell(&Reply::Inside { t_ns: t })?;
        // My turn to say so.
        if c.recv()? != Down::Go {
            bail!("expected Go to speak");
        }
        say!(c, "enter", &[])?;
        c.tell(&Reply::Spoke)?;
    } else {
        c.tell(&Reply::Waiting)?;
        if c.recv()? != Down::Go {
            bail!("expected Go to speak");
        }
        // The wait begins now: after my line, sem_wait() (sem_trywait() found no room).
        let v = sem.value();
        c.act(
            "wait",
            &[
                ("what", "semaphore".into()),
                ("value", v.into()),
                ("errno", "EAGAIN".into()),
            ],
        )?;
        say!(c, "must_wait", &[])?;
        c.tell(&Reply::Spoke)?;
        sem.wait()?;
        let t = now_ns();
        tell_woken(c, t, sem.value(), permits)?;
        c.tell(&Reply::Inside { t_ns: t })?;
    }

    if c.recv()? != Down::Go {
        bail!("expected Go to leave");
    }
    let v = sem.value();
    let t_out = now_ns();
    c.act_at(
        t_out,
        "release",
        &[("what", "semaphore".into()), ("value", v.into())],
    )?;
    say!(c, "leave", &[])?;
    // The reply travels behind the events above: once the parent has it, they are on the
    // screen, before the acquire of whoever our sem_post wakes.
    c.tell(&Reply::Left { t_ns: t_out })?;
    if c.recv()? != Down::Go {
        bail!("expected Go to post");
    }
    sem.post()?;
    c.gauge("permits", sem.value(), permits)?;
    Ok(0)
}

/// A worker got in at `t` (the semaphore now at `v`), at once or after it `waited`: its
/// stamped `acquire` and the permits bar.
fn acquired(c: &ChildCtx, t: u64, v: i64, permits: i64, waited: bool) -> Result<()> {
    c.act_at(
        t,
        "acquire",
        &[
            ("what", "semaphore".into()),
            ("value", v.into()),
            ("waited", waited.into()),
        ],
    )?;
    c.gauge("permits", v, permits)
}

/// A worker woken in sem_wait() got in at `t` (the semaphore now at `v`): its acquire,
/// and its line.
fn tell_woken(c: &ChildCtx, t: u64, v: i64, permits: i64) -> Result<()> {
    acquired(c, t, v, permits, true)?;
    say!(c, "woken", &[("value", &v), ("gauge", &gauge(v, permits))])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauge_shows_free_and_used_rooms() {
        assert_eq!(gauge(2, 2), "[■■]");
        assert_eq!(gauge(1, 3), "[■□□]");
        assert_eq!(gauge(0, 2), "[□□]");
        assert_eq!(gauge(-1, 2), "?");
    }

    #[test]
    fn max_concurrent_counts_releases_first_on_ties() {
        assert_eq!(max_concurrent(&[(1, 1), (2, 1), (3, -1), (3, 1)]), 2);
        assert_eq!(max_concurrent(&[]), 0);
    }
}
