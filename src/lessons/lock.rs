//! Lesson `lock`: Python's `Lock()`, on the ticket office of the study notes.
//!
//! Processes share no memory but they do share the file system, and sharing brings races.
//! `--tickets` tickets are written in a file; `--buyers` spawned processes each read the
//! count, pause, and write it back minus one if it was positive.
//!
//! - Without a lock the race is staged: every buyer reads and tells the parent, and only
//!   once all have read does the parent let them write. Every buyer has seen a ticket, so
//!   every buyer buys one: oversold on every run, at every speed, on any number of cores.
//! - With `flock(LOCK_EX)` on the file, one buyer at a time reads and writes: exactly
//!   `--tickets` are sold. While the first holder keeps the lock (until the parent lets it
//!   go on, a bounded window), the kernel's lock table (`/proc/locks`) lists every other
//!   buyer as a waiter, and the observer sees each of them asleep (`S`).

use super::{LessonDef, OptSpec, Opts};
use crate::child::{ChildCtx, Down};
use crate::ctx::{reply_any, ChildProc, Ctx, Expect};
use crate::event::now_ns;
use crate::sys::flock::FileLock;
use crate::{say, step};
use anyhow::{bail, Context, Result};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// This lesson's words, whose keys the word macros check at compile time.
const WORDS: &crate::words::keys::Table = &crate::words::keys::LOCK;

pub static LESSON: LessonDef = LessonDef {
    name: "lock",
    words_src: include_str!("../../lessons/lock.toml"),
    options: &[
        OptSpec {
            name: "tickets",
            default: 1,
            min: 1,
            max: 63,
            help: "Tickets for sale (fewer than --buyers)",
        },
        OptSpec {
            name: "buyers",
            default: 8,
            min: 2,
            max: 64,
            help: "Buyer processes",
        },
    ],
    run,
    validate: Some(validate),
    roles: &[("buyer", buyer)],
};

/// How long a buyer may take to answer, or the kernel to reach a state; far more than
/// either needs, so a timeout means something is broken, not slow.
const TIMEOUT: Duration = Duration::from_secs(5);

const NO_LOCK: &str = "no_lock";
const WITH_LOCK: &str = "lock";

/// With a ticket for every buyer, nobody can be oversold: the lesson needs fewer.
fn validate(opts: &Opts) -> std::result::Result<(), String> {
    let (tickets, buyers) = (opts.get("tickets"), opts.get("buyers"));
    if tickets >= buyers {
        return Err(format!(
            "--tickets ({tickets}) must be fewer than --buyers ({buyers}): \
             with a ticket for every buyer nobody can be oversold"
        ));
    }
    Ok(())
}

/// What a buyer tells the parent: without the lock, it has read `count` tickets left;
/// with it, it holds the lock and read `count`; then whether it bought one (wrote
/// `count - 1` back) or found none left.
#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Eq)]
enum Reply {
    Read { count: i64 },
    Holds { count: i64 },
    Bought,
    SoldOut,
}

/// What every phase shares: the office's file (and how it is shown), what is for sale
/// and how many want it.
struct Office {
    file: PathBuf,
    shown: String,
    tickets: i64,
    buyers: usize,
}

fn run(ctx: &mut Ctx<'_>, opts: &Opts) -> Result<()> {
    let file = ctx.dir.join("tickets");
    let office = Office {
        shown: file.display().to_string(),
        file,
        tickets: i64::from(opts.get("tickets")),
        buyers: opts.get("buyers") as usize,
    };
    ctx.observe("buyers", office.buyers);
    ctx.observe("tickets", office.tickets);

    step!(ctx, "office", &[("file", &office.shown)])?;
    write_count(&office.file, office.tickets)?;
    say!(
        ctx,
        "office",
        &[("tickets", &office.tickets), ("file", &office.shown)]
    );
    ctx.show(2000)?;

    let kids = reads_without_lock(ctx, &office)?;
    writes_without_lock(ctx, &office, &kids)?;
    ctx.pause(3000)?;
    with_lock(ctx, &office)?;
    ctx.pause(2000)?;
    say!(ctx, "moral", &[]);
    // The last step's pause, once its story is told.
    ctx.show(0)
}

/// Without a lock, the reads: every buyer reads the count and says so, and none writes
/// until all have read. The buyers, waiting at the write gate.
fn reads_without_lock(ctx: &mut Ctx<'_>, office: &Office) -> Result<Vec<ChildProc>> {
    let Office {
        tickets, buyers, ..
    } = *office;
    let main = ctx.main_pid;
    let janitor = ctx.janitor();
    step!(ctx, "no_lock", &[("main", &main), ("janitor", &janitor)])?;
    say!(ctx, "no_lock_intro", &[("buyers", &buyers)]);
    ctx.pause(1500)?;
    let kids = spawn_buyers(ctx, buyers, &office.shown, false)?;
    say!(ctx, "gate_read", &[("buyers", &buyers)]);
    for k in &kids {
        k.send(Down::Go)?;
    }
    for k in &kids {
        k.expect(TIMEOUT, |r: &Reply| matches!(r, Reply::Read { .. }))?;
    }
    ctx.pause(1000)?;
    say!(
        ctx,
        "all_read",
        &[("buyers", &buyers), ("tickets", &tickets)]
    );
    ctx.show(2500)?;
    Ok(kids)
}

/// Without a lock, the writes: every buyer saw a ticket, so every buyer buys one, and the
/// office has sold more than it had.
fn writes_without_lock(ctx: &mut Ctx<'_>, office: &Office, kids: &[ChildProc]) -> Result<()> {
    let tickets = office.tickets;
    step!(ctx, "writes", &[])?;
    say!(ctx, "gate_write", &[]);
    for k in kids {
        k.send(Down::Go)?;
    }
    let mut sold_without = 0i64;
    for k in kids {
        if bought(k)? {
            sold_without += 1;
        }
    }
    for k in kids {
        ctx.join(k.pid)?;
    }
    let left = read_count(&office.file)?;
    ctx.pause(1000)?;
    say!(
        ctx,
        "oversold",
        &[
            ("sold", &sold_without),
            ("tickets", &tickets),
            ("left", &left),
            ("over", &(sold_without - tickets)),
        ],
    );
    ctx.claim(
        "sold_without_lock",
        sold_without,
        Expect::gt(tickets).of("tickets"),
    );
    Ok(())
}

/// With a lock: `flock(LOCK_EX)` around read-pause-write. One holder at a time, in the
/// order the kernel lets them in; while the first holds it, the others are shown asleep
/// in the lock table. Exactly `tickets` are sold.
fn with_lock(ctx: &mut Ctx<'_>, office: &Office) -> Result<()> {
    let tickets = office.tickets;
    step!(ctx, "with_lock", &[])?;
    write_count(&office.file, tickets)?;
    say!(
        ctx,
        "lock_intro",
        &[("tickets", &tickets), ("buyers", &office.buyers)]
    );
    ctx.pause(2000)?;
    let kids = spawn_buyers(ctx, office.buyers, &office.shown, true)?;
    let inode = inode_of(&office.file)?;
    say!(ctx, "gate_lock", &[("buyers", &office.buyers)]);
    for k in &kids {
        k.send(Down::Go)?;
    }
    let mut waiting: Vec<&ChildProc> = kids.iter().collect();
    let mut sold_with = 0i64;
    let mut first = true;
    while !waiting.is_empty() {
        let (i, v) = reply_any(&waiting, TIMEOUT)?;
        let read = match waiting[i].decode(&v)? {
            Reply::Holds { count } => count,
            other => bail!("{} answered {other:?}", waiting[i].name),
        };
        let holder = waiting.remove(i);
        // A holder that found none left said so and let go on its own, at once: the
        // rest that find none go through in a row, told as one line.
        if read == 0 {
            bought(holder)?;
            continue;
        }
        // The first holder is told with the waiters behind it; the others say their own
        // turn (the panel shows who waits).
        if first {
            first = false;
            say!(
                ctx,
                "holds",
                &[
                    ("name", &holder.name),
                    ("pid", &holder.pid),
                    ("count", &read),
                    ("waiting", &waiting.len()),
                ],
            );
            show_waiters(ctx, holder, &waiting, inode)?;
        }
        ctx.pause(900)?;
        holder.send(Down::Go)?;
        if bought(holder)? {
            sold_with += 1;
        }
        holder.send(Down::Go)?; // now flock(LOCK_UN)
    }
    // Joined once all have bought, like the script's `for p in buyers: p.join()`: their
    // ends are then one line, not one between each turn.
    for k in &kids {
        ctx.join(k.pid)?;
    }
    let left = read_count(&office.file)?;
    ctx.pause(800)?;
    say!(
        ctx,
        "lock_done",
        &[("sold", &sold_with), ("tickets", &tickets), ("left", &left)],
    );
    ctx.claim(
        "sold_with_lock",
        sold_with,
        Expect::eq(tickets).of("tickets"),
    );
    Ok(())
}

/// A buyer's last word: whether it bought a ticket (or found none left).
fn bought(k: &ChildProc) -> Result<bool> {
    let r = k.expect(TIMEOUT, |r: &Reply| {
        matches!(r, Reply::Bought | Reply::SoldOut)
    })?;
    Ok(r == Reply::Bought)
}

/// Start `n` buyers and wait until each has connected.
fn spawn_buyers(ctx: &mut Ctx<'_>, n: usize, file: &str, lock: bool) -> Result<Vec<ChildProc>> {
    (1..=n)
        .map(|i| {
            ctx.spawn(
                "buyer",
                &format!("buyer-{i}"),
                serde_json::json!({ "file": file, "lock": i64::from(lock) }),
            )
        })
        .collect()
}

/// While `holder` keeps the lock: wait (bounded) until the kernel's lock table lists every
/// other buyer as waiting for it, then until the observer sees each one asleep.
fn show_waiters(
    ctx: &mut Ctx<'_>,
    holder: &ChildProc,
    waiting: &[&ChildProc],
    inode: u64,
) -> Result<()> {
    let want: Vec<i32> = waiting.iter().map(|k| k.pid.as_raw()).collect();
    let deadline = Instant::now() + TIMEOUT;
    let listed = loop {
        let table = lock_table(inode);
        let all_listed = table.holders.contains(&holder.pid.as_raw())
            && want.iter().all(|p| table.waiters.contains(p));
        if all_listed || Instant::now() > deadline {
            break table.waiters;
        }
        if !crate::procs::sleep(Duration::from_millis(1)) {
            return Err(crate::ctx::Stopped.into());
        }
    };
    let mut asleep = 0usize;
    for k in waiting {
        let in_table = listed.contains(&k.pid.as_raw());
        let state = ctx.wait_state(k.pid, &['S'], TIMEOUT)?;
        if in_table && state == Some('S') {
            asleep += 1;
            ctx.act_at(
                k.pid.as_raw(),
                now_ns(),
                "wait",
                &[
                    ("what", "flock".into()),
                    ("state", "S".into()),
                    ("holder", holder.pid.as_raw().into()),
                ],
            );
        }
    }
    let pids: Vec<String> = waiting.iter().map(|k| k.pid.to_string()).collect();
    step!(ctx, "waiters", &[("inode", &inode)])?;
    say!(
        ctx,
        "waiters",
        &[
            ("n", &asleep),
            ("pids", &pids.join(", ")),
            ("holder", &holder.pid),
            ("inode", &inode),
        ],
    );
    ctx.show(0)?;
    ctx.claim(
        "waiters_seen_asleep",
        asleep,
        Expect::eq(waiting.len()).of("buyers - 1"),
    );
    ctx.pause(3500)
}

/// Who holds and who waits for locks on inode `ino`, from the kernel's lock table.
#[derive(Default)]
struct LockTable {
    holders: Vec<i32>,
    waiters: Vec<i32>,
}

/// Who holds and who waits for the `flock` on the file with inode `ino`, from
/// `/proc/locks`.
fn lock_table(ino: u64) -> LockTable {
    let (holders, waiters) = crate::sys::proc::flocks(ino);
    LockTable { holders, waiters }
}

fn inode_of(path: &Path) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::metadata(path)
        .with_context(|| format!("stat {}", path.display()))?
        .ino())
}

fn parse_count(text: &str, path: &Path) -> Result<i64> {
    text.trim()
        .parse()
        .with_context(|| format!("{} holds {text:?}, not a number", path.display()))
}

fn read_count(path: &Path) -> Result<i64> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_count(&text, path)
}

fn write_count(path: &Path, n: i64) -> Result<()> {
    std::fs::write(path, format!("{n}\n")).with_context(|| format!("writing {}", path.display()))
}

/// A buyer: read the count, tell the parent, wait, then buy if there was a ticket. With
/// `lock`, all of it under `flock(LOCK_EX)` on the tickets file.
fn buyer(c: &mut ChildCtx) -> Result<i32> {
    let path = PathBuf::from(c.arg_str("file")?);
    let phase = if c.arg_i64("lock")? == 1 {
        WITH_LOCK
    } else {
        NO_LOCK
    };
    c.expect_go()?; // the start gate: every buyer is running
    if phase == NO_LOCK {
        let count = read_count(&path)?;
        tell_read(c, count, phase)?;
        say!(c, "read", &[("count", &count)])?;
        c.tell(&Reply::Read { count })?;
        c.expect_go()?; // the write gate: every buyer has read
        let bought = count > 0;
        if bought {
            write_count(&path, count - 1)?;
            tell_buy(c, count, phase)?;
        } else {
            say!(c, "sold_out", &[("count", &count)])?;
        }
        c.tell(&outcome(bought))?;
        return Ok(0);
    }

    let lock = FileLock::open(&path)?;
    lock.lock()
        .with_context(|| format!("flock(LOCK_EX) on {}", path.display()))?;
    c.act_at(now_ns(), "acquire", &[("what", "flock".into())])?;
    let mut file = lock.file();
    let mut text = String::new();
    file.seek(SeekFrom::Start(0))?;
    file.read_to_string(&mut text)?;
    let count = parse_count(&text, &path)?;
    tell_read(c, count, phase)?;
    // A buyer that finds none left says so in one line with its acquire and read, lets
    // go at once and tells the parent after (it has no window to wait in).
    if count == 0 {
        say!(c, "sold_out_locked", &[("count", &count)])?;
        c.act_at(now_ns(), "release", &[("what", "flock".into())])?;
        lock.unlock()
            .with_context(|| format!("flock(LOCK_UN) on {}", path.display()))?;
        c.tell(&Reply::Holds { count })?;
        c.tell(&outcome(false))?;
        return Ok(0);
    }
    say!(c, "got_lock", &[("count", &count)])?;
    c.tell(&Reply::Holds { count })?;
    c.expect_go()?; // the parent's window is over: finish and let the next one in
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    writeln!(file, "{}", count - 1)?;
    tell_buy(c, count, phase)?;
    c.act_at(now_ns(), "release", &[("what", "flock".into())])?;
    // The reply travels behind the events above: once the parent has it, they are on the
    // screen, before the acquire of the next holder.
    c.tell(&outcome(true))?;
    c.expect_go()?;
    lock.unlock()
        .with_context(|| format!("flock(LOCK_UN) on {}", path.display()))?;
    Ok(0)
}

/// What a buyer says once it has written, or found none left.
fn outcome(bought: bool) -> Reply {
    if bought {
        Reply::Bought
    } else {
        Reply::SoldOut
    }
}

/// The `read` event of a buyer that read `count` tickets left.
fn tell_read(c: &ChildCtx, count: i64, phase: &str) -> Result<()> {
    c.act(
        "read",
        &[
            ("what", "tickets".into()),
            ("value", count.into()),
            ("phase", phase.into()),
        ],
    )
}

/// A buyer wrote `count - 1` back: its `buy` event, then its line.
fn tell_buy(c: &ChildCtx, count: i64, phase: &str) -> Result<()> {
    c.act(
        "buy",
        &[
            ("phase", phase.into()),
            ("read", count.into()),
            ("wrote", (count - 1).into()),
        ],
    )?;
    say!(
        c,
        if (phase == NO_LOCK) {
            "buy"
        } else {
            "buy_locked"
        },
        &[("count", &count), ("left", &(count - 1))]
    )
}
