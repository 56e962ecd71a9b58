//! Lesson `start-methods`: fork, spawn and forkserver side by side, really.
//!
//! The program has a module-level value, [`SETTING`] (`"module"` as compiled), and a
//! lock, [`LOCK`]. The lesson's `run` is this program's `if __name__ == "__main__":`
//! block: only the main process runs it, and it sets the value to `"changed"` and has a
//! second thread take the lock and keep it. Then three children look at both:
//! - one made by `fork()` from the main process: a copy, so it sees `"changed"` and a
//!   lock held by a thread it does not have;
//! - one made by spawn (fork + exec of this program, the `spawned` role): a fresh start,
//!   which never ran the main block, so it sees `"module"` and a free lock;
//! - one made by a fork server (the `server` role, a fresh start of this program, one
//!   thread): on each request the server forks a copy of itself, so that child's parent
//!   is the server, not the main process (which gets `ECHILD` from `waitpid` on it), and
//!   its exit code comes to the main process from the server, as CPython's forkserver
//!   writes it to the client's pipe.
//!
//! Then what each costs to start (from the request to the child's first line, medians of
//! `--rounds`), and the defaults, with what this machine's `python3` says of its own.

use super::{LessonDef, OptSpec, Opts};
use crate::child::{ChildCtx, Down};
use crate::ctx::{ChildProc, Ctx, Expect};
use crate::event::{now_ns, ObsValue};
use crate::procs::{self, Note};
use crate::{python_or_say, say, say_for, step};
use anyhow::{bail, Context, Result};
use nix::unistd::Pid;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{mpsc, Mutex, TryLockError};
use std::time::Duration;

/// This lesson's words, whose keys the word macros check at compile time.
const WORDS: &crate::words::keys::Table = &crate::words::keys::START_METHODS;

pub static LESSON: LessonDef = LessonDef {
    name: "start-methods",
    words_src: include_str!("../../../lessons/start-methods.toml"),
    options: &[OptSpec {
        name: "rounds",
        default: 3,
        min: 3,
        max: 50,
        help: "How many children each start method starts to be timed (the median is reported)",
    }],
    run,
    validate: None,
    roles: &[("server", server), ("spawned", spawned)],
};

/// The module's value, as a fresh start of the program has it, and as the main block
/// sets it.
const MODULE: u8 = 0;
const CHANGED: u8 = 1;

/// `setting = "module"` at the top of the module. An atomic only so that every read
/// really reads this process's memory.
static SETTING: AtomicU8 = AtomicU8::new(MODULE);

/// A lock of the module, which the main process's second thread takes and keeps.
static LOCK: Mutex<()> = Mutex::new(());

/// How long a child or the server may take to answer; far more than either needs.
const TIMEOUT: Duration = Duration::from_secs(5);

/// How long `python3` may take to say its version and default.
const PYTHON_TIMEOUT: Duration = Duration::from_secs(10);

/// The three methods, in the order they are shown.
const METHODS: [&str; 3] = ["fork", "spawn", "forkserver"];

/// What `python3` is asked: its version, its default start method, and all of them.
const PY_ASK: &str = "import multiprocessing as mp, sys, json; \
print(json.dumps({'version': sys.version.split()[0], 'default': mp.get_start_method(), \
'all': mp.get_all_start_methods()}))";

fn setting_name(v: u8) -> &'static str {
    if v == CHANGED {
        "changed"
    } else {
        "module"
    }
}

/// What a child sees of the module: its `setting`, and whether the lock is held (it
/// cannot take it). Async-signal-safe: an atomic load, and a `try_lock`, which is one
/// atomic compare-and-swap (and, when it succeeded, a store to unlock it again).
fn look() -> (u8, bool) {
    let setting = SETTING.load(Ordering::SeqCst);
    let held = matches!(LOCK.try_lock(), Err(TryLockError::WouldBlock));
    (setting, held)
}

/// What a child reported: who it is, when it ran its first line, what it saw.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq)]
struct Seen {
    pid: i32,
    ppid: i32,
    t_ns: u64,
    setting: u8,
    lock_held: bool,
}

impl Seen {
    fn of(note: &Note) -> Seen {
        Seen {
            pid: note.pid,
            ppid: note.ppid,
            t_ns: note.t_ns,
            setting: note.a as u8,
            lock_held: note.b != 0,
        }
    }
}

/// What the roles tell the lesson.
#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
enum Reply {
    /// The server runs: its threads and its size.
    Ready { threads: usize, rss_kib: u64 },
    /// A child (the spawned one, or one the server forked) ran and saw this.
    Seen(Seen),
    /// The server reaped its child `pid`: its exit code, sent to the main process.
    Exited { pid: i32, exitcode: i32 },
}

/// The server's commands: fork a child that waits to be let go, or one that ends at once.
const SHOW: &str = "show";
const TIME: &str = "time";

/// A child, forked here or by the server, that looks, writes a note, and (when `wait`)
/// waits at its gate. `gate_w` is the parent's end of the gate, closed in the child so
/// that the parent's death ends the wait. Async-signal-safe only.
fn child_body(note_fd: RawFd, gate_fd: RawFd, gate_w: RawFd, wait: bool) -> i32 {
    // SAFETY: close(2) of this forked child's copy of the gate's write end.
    unsafe { nix::libc::close(gate_w) };
    let (setting, held) = look();
    Note::send(note_fd, i64::from(setting), i64::from(held));
    if wait && !procs::wait_byte(gate_fd) {
        return 5;
    }
    0
}

/// A forked child not yet let go, and what is needed to let it go.
struct Waiting {
    pid: Pid,
    gate: OwnedFd,
}

/// Fork a child of this process (the main process or the server) that looks and
/// reports: what it saw and, when `wait`, its gate (else it has already ended, and is
/// reaped by the caller).
fn fork_looker(
    fork: impl FnOnce(&dyn Fn() -> i32) -> Result<Pid>,
    wait: bool,
) -> Result<(Seen, Waiting)> {
    let (note_r, note_w) = procs::pipe()?;
    let (gate_r, gate_w) = procs::pipe()?;
    let (note_fd, gate_fd, gate_w_fd) =
        (note_w.as_raw_fd(), gate_r.as_raw_fd(), gate_w.as_raw_fd());
    let body = move || child_body(note_fd, gate_fd, gate_w_fd, wait);
    let pid = fork(&body)?;
    drop((note_w, gate_r));
    let note = Note::recv(&note_r, TIMEOUT)?
        .with_context(|| format!("the forked child (PID {pid}) did not report what it saw"))?;
    Ok((Seen::of(&note), Waiting { pid, gate: gate_w }))
}

/// The `server` role: a fork server. Single-threaded and small, a fresh start of the
/// program. On `show` it forks a child that reports and waits; on `Go` it lets that
/// child go, reaps it and sends its exit code; on `time` it forks one that reports and
/// ends at once, and sends its exit code too; on `Stop` it ends.
fn server(c: &mut ChildCtx) -> Result<i32> {
    let me = nix::unistd::getpid().as_raw();
    c.tell(&Reply::Ready {
        threads: crate::sys::proc::threads(me),
        rss_kib: crate::sys::proc::rss_kib(me).unwrap_or(0),
    })?;
    let mut waiting: Option<Waiting> = None;
    let mut timed = 0;
    loop {
        match c.recv()? {
            Down::Value(ObsValue::Str(what)) if what == SHOW || what == TIME => {
                let wait = what == SHOW;
                let name = if wait {
                    "served".to_string()
                } else {
                    timed += 1;
                    format!("child-{timed}")
                };
                let fork = |body: &dyn Fn() -> i32| {
                    let t0 = now_ns();
                    // SAFETY: this process has one thread; the child only makes the
                    // async-signal-safe calls of `child_body`.
                    let pid = unsafe { procs::fork_child(body) }?;
                    c.forked_at(t0, pid.as_raw(), &name)?;
                    Ok(pid)
                };
                let (seen, child) = fork_looker(fork, wait)?;
                c.tell(&Reply::Seen(seen))?;
                if wait {
                    waiting = Some(child);
                } else {
                    let Waiting { pid, gate } = child;
                    drop(gate);
                    let exitcode = procs::reap(pid)?;
                    c.reaped_at(now_ns(), pid.as_raw(), &name, exitcode)?;
                    c.tell(&Reply::Exited {
                        pid: pid.as_raw(),
                        exitcode,
                    })?;
                }
            }
            Down::Go => {
                let Some(Waiting { pid, gate }) = waiting.take() else {
                    bail!("the server was told to let its child go, and has none");
                };
                procs::open_gate(&gate)?;
                let exitcode = procs::reap(pid)?;
                c.reaped_at(now_ns(), pid.as_raw(), "served", exitcode)?;
                c.tell(&Reply::Exited {
                    pid: pid.as_raw(),
                    exitcode,
                })?;
            }
            Down::Stop => return Ok(0),
            Down::Value(other) => bail!("the server cannot do {other}"),
        }
    }
}

/// The `spawned` role: a fresh start of the program. Its first line stamps the clock
/// and looks; it reports, and waits to be let go.
fn spawned(c: &mut ChildCtx) -> Result<i32> {
    let t_ns = now_ns();
    let (setting, lock_held) = look();
    c.tell(&Reply::Seen(Seen {
        pid: c.pid,
        ppid: nix::unistd::getppid().as_raw(),
        t_ns,
        setting,
        lock_held,
    }))?;
    c.expect_go()?;
    Ok(0)
}

/// What a child (the spawned one, or the server about its child) reports it saw: its
/// next reply, which must be `Seen`.
fn seen_of(child: &ChildProc) -> Result<Seen> {
    match child.decode(&child.reply(TIMEOUT)?)? {
        Reply::Seen(seen) => Ok(seen),
        other => bail!("{} (PID {}) answered {other:?}", child.name, child.pid),
    }
}

/// The main process's second thread, holding [`LOCK`] until this is dropped.
struct Holder {
    tid: i32,
    _release: mpsc::Sender<()>,
}

/// Start the thread that takes the lock, and wait until it has it.
fn hold_lock() -> Result<Holder> {
    let (held_tx, held_rx) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    procs::thread("lock-holder", move || {
        let guard = LOCK.lock();
        let _ = held_tx.send(nix::unistd::gettid().as_raw());
        // Until the Holder is dropped (the sender goes), bounded all the same.
        let _ = released.recv_timeout(Duration::from_secs(3600));
        drop(guard);
    })?;
    let tid = held_rx
        .recv_timeout(TIMEOUT)
        .context("the lock-holder thread did not take the lock")?;
    Ok(Holder {
        tid,
        _release: release,
    })
}

/// One child of each method, as the main process sees it.
struct Shown {
    seen: Seen,
    /// Its parent, read from `/proc/<pid>/stat` while it waits.
    ppid: Option<i32>,
}

fn run(ctx: &mut Ctx<'_>, opts: &Opts) -> Result<()> {
    let rounds = opts.get("rounds") as usize;
    // The main block: only the main process runs it. (The tour may run it twice.)
    SETTING.store(CHANGED, Ordering::SeqCst);
    let holder = intro(ctx)?;
    let fork = by_fork(ctx)?;
    let spawn = by_spawn(ctx)?;
    by_forkserver(ctx, rounds, fork, spawn, holder)?;
    defaults(ctx)?;
    ctx.pause(1500)?;
    say!(ctx, "moral", &[]);
    // The last step's pause, once its story is told.
    ctx.show(0)
}

/// The module's value and the lock, in the main process.
fn intro(ctx: &mut Ctx<'_>) -> Result<Holder> {
    let main = ctx.main_pid;
    step!(ctx, "intro", &[("main", &main)])?;
    let holder = hold_lock()?;
    say!(ctx, "intro", &[("pid", &main), ("tid", &holder.tid)]);
    ctx.show(2500)?;
    Ok(holder)
}

/// What a child said it saw, in its own voice, stamped when it looked: one line.
fn tell_seen(ctx: &mut Ctx<'_>, method: &str, seen: &Seen) {
    let (pid, t, ppid) = (seen.pid, seen.t_ns, seen.ppid);
    let setting = setting_name(seen.setting);
    let args: crate::words::Args<'_> = &[
        ("method", &method),
        ("pid", &pid),
        ("ppid", &ppid),
        ("setting", &setting),
    ];
    match (seen.setting == CHANGED, seen.lock_held) {
        (true, true) => say_for!(ctx, pid, t, "seen_changed_held", args),
        (true, false) => say_for!(ctx, pid, t, "seen_changed_free", args),
        (false, true) => say_for!(ctx, pid, t, "seen_module_held", args),
        (false, false) => say_for!(ctx, pid, t, "seen_module_free", args),
    }
}

/// What the child saw, said in its voice; its parent, from the kernel; the method's
/// claims.
fn observe_child(ctx: &mut Ctx<'_>, method: &str, seen: &Seen, parent: Option<Expect>) -> Shown {
    tell_seen(ctx, method, seen);
    let ppid = crate::sys::proc::ids(seen.pid).map(|i| i.ppid);
    let changed = seen.setting == CHANGED;
    let (want_change, want_held) = (method == "fork", method == "fork");
    ctx.claim(
        &format!("sees_parent_change_{method}"),
        changed,
        Expect::eq(want_change),
    );
    ctx.claim(
        &format!("lock_held_in_{method}"),
        seen.lock_held,
        Expect::eq(want_held),
    );
    // Its parent, as the kernel says, against the one it must have.
    if let Some(expect) = parent {
        ctx.claim(&format!("{method}_child_ppid"), ppid.unwrap_or(0), expect);
    }
    Shown { seen: *seen, ppid }
}

/// `fork`: a copy of the main process, made on the spot. It waits at its gate.
fn by_fork(ctx: &mut Ctx<'_>) -> Result<(Shown, Waiting)> {
    let main = ctx.main_pid;
    step!(ctx, "fork", &[("main", &main)])?;
    say!(ctx, "fork_intro", &[]);
    ctx.pause(2000)?;
    // What the child saw is said in its voice, stamped when it looked, once its note is
    // read: nothing stamped after the fork is written before it.
    let news = ctx.expect_news();
    let fork = |body: &dyn Fn() -> i32| {
        // SAFETY: the child only makes the async-signal-safe calls of `child_body`.
        unsafe { ctx.fork("forked", body) }
    };
    let (seen, gate) = fork_looker(fork, true)?;
    let parent = Expect::eq(main).of("the main process");
    let shown = observe_child(ctx, "fork", &seen, Some(parent));
    drop(news);
    let ppid = shown.ppid.unwrap_or(0);
    ctx.pause(1000)?;
    say!(ctx, "fork_after", &[("ppid", &ppid)]);
    ctx.show(2500)?;
    Ok((shown, gate))
}

/// `spawn`: a fresh start of the program, which waits for Go.
fn by_spawn(ctx: &mut Ctx<'_>) -> Result<(ChildProc, Shown)> {
    let main = ctx.main_pid;
    step!(ctx, "spawn", &[("main", &main)])?;
    say!(ctx, "spawn_intro", &[]);
    ctx.pause(2000)?;
    // As the fork's: its line, stamped when it looked, is said once its answer is in
    // (seen in the suite 21 ms behind the main's lines when it was not expected).
    let news = ctx.expect_news();
    let child = ctx.spawn("spawned", "spawned", serde_json::json!({}))?;
    let seen = seen_of(&child)?;
    let shown = observe_child(ctx, "spawn", &seen, None);
    drop(news);
    ctx.pause(1500)?;
    say!(ctx, "spawn_after", &[]);
    ctx.show(2500)?;
    Ok((child, shown))
}

/// `forkserver`: the server is started, its child shown, then the three side by side
/// and the cost of each; whatever happened, the server is ended and reaped (its children
/// die with it).
fn by_forkserver(
    ctx: &mut Ctx<'_>,
    rounds: usize,
    fork: (Shown, Waiting),
    spawn: (ChildProc, Shown),
    holder: Holder,
) -> Result<()> {
    let main = ctx.main_pid;
    step!(ctx, "forkserver", &[("main", &main)])?;
    say!(ctx, "server_intro", &[]);
    ctx.pause(2000)?;
    let server = ctx.spawn("server", "server", serde_json::json!({}))?;
    let result = served_and_after(ctx, rounds, &server, fork, spawn, holder);
    let _ = server.send(Down::Stop);
    let code = ctx.join_within(server.pid, TIMEOUT)?;
    result?;
    if code != 0 {
        bail!("the server (PID {}) exited with {code}, not 0", server.pid);
    }
    Ok(())
}

/// The server's child, then the three side by side and let go, the cost of each, with the
/// lock let go once the three children have looked.
fn served_and_after(
    ctx: &mut Ctx<'_>,
    rounds: usize,
    server: &ChildProc,
    fork: (Shown, Waiting),
    spawn: (ChildProc, Shown),
    holder: Holder,
) -> Result<()> {
    let main = ctx.main_pid;
    let spid = server.pid.as_raw();
    let (threads, rss_kib) = match server.decode(&server.reply(TIMEOUT)?)? {
        Reply::Ready { threads, rss_kib } => (threads, rss_kib),
        other => bail!("the server (PID {spid}) answered {other:?}"),
    };
    say!(
        ctx,
        "server_ready",
        &[
            ("pid", &spid),
            ("threads", &threads),
            ("mib", &mib(rss_kib))
        ],
    );
    ctx.observe("server_threads", threads);
    ctx.pause(2500)?;
    // The server forks the child and sends its `spawn` before its answer: until the
    // answer is in, nothing stamped after the request is written (seen in the suite: the
    // spawn, stamped in a server slow to run, 340 ms behind the main's next lines).
    let news = ctx.expect_news();
    server.send(Down::Value(ObsValue::Str(SHOW.into())))?;
    let seen = seen_of(server)?;
    ctx.watch(seen.pid, "served");
    // The server is not the main process (a spawn of it), so == server is != main.
    let parent = Expect::eq(spid)
        .of("the server")
        .note(format!("!= the main process ({main})"));
    let served = observe_child(ctx, "forkserver", &seen, Some(parent));
    drop(news);
    let ppid = served.ppid.unwrap_or(0);
    // waitpid() on a process that is not my child: ECHILD, however long I wait.
    let answer = nix::sys::wait::waitpid(
        Pid::from_raw(seen.pid),
        Some(nix::sys::wait::WaitPidFlag::WNOHANG),
    );
    let errno = match answer {
        Err(nix::errno::Errno::ECHILD) => "ECHILD",
        Err(e) => e.desc(),
        Ok(_) => "a status",
    };
    ctx.pause(1500)?;
    say!(
        ctx,
        "served_parent",
        &[
            ("ppid", &ppid),
            ("main", &main),
            ("pid", &seen.pid),
            ("errno", &errno)
        ],
    );
    ctx.claim("main_waitpid_served", errno, Expect::eq("ECHILD"));
    ctx.pause(2000)?;
    side_by_side(ctx, server, fork, spawn, served)?;
    drop(holder);
    cost(ctx, rounds, server)
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// The three in a table, and the step's pause with all three alive; then each is let go
/// and its exit learnt: the forked and the spawned by `waitpid`, the served one from
/// the server.
fn side_by_side(
    ctx: &mut Ctx<'_>,
    server: &ChildProc,
    (forked, fork_gate): (Shown, Waiting),
    (spawn_child, spawned): (ChildProc, Shown),
    served: Shown,
) -> Result<()> {
    say!(ctx, "table_head", &[]);
    for (method, shown) in METHODS.iter().zip([&forked, &spawned, &served]) {
        let ppid = shown.ppid.unwrap_or(0);
        let setting = format!(
            "{:<10}",
            format!("\"{}\"", setting_name(shown.seen.setting))
        );
        let args: crate::words::Args<'_> = &[
            ("method", &format!("{method:<10}")),
            ("ppid", &format!("{ppid:>7}")),
            ("setting", &setting),
        ];
        if shown.seen.lock_held {
            say!(ctx, "row_held", args);
        } else {
            say!(ctx, "row_free", args);
        }
    }
    ctx.show(3000)?;
    procs::open_gate(&fork_gate.gate)?;
    let fork_code = ctx.join_within(fork_gate.pid, TIMEOUT)?;
    spawn_child.send(Down::Go)?;
    let spawn_code = ctx.join_within(spawn_child.pid, TIMEOUT)?;
    // The server reaps it: no sample of it may come after the server's `exit`.
    ctx.unwatch(served.seen.pid);
    // Its `exit` comes from the server, before the answer: held for like the spawn.
    let news = ctx.expect_news();
    server.send(Down::Go)?;
    let served_code = match server.decode(&server.reply(TIMEOUT)?)? {
        Reply::Exited { pid, exitcode } if pid == served.seen.pid => exitcode,
        other => bail!("the server (PID {}) answered {other:?}", server.pid),
    };
    drop(news);
    ctx.settle()?;
    say!(
        ctx,
        "exits",
        &[
            ("fork", &fork_code),
            ("spawn", &spawn_code),
            ("served", &served_code),
            ("server", &server.pid),
        ],
    );
    ctx.claim("served_exitcode_from_server", served_code, Expect::eq(0));
    ctx.show(2500)
}

/// Median of a set of timings.
fn median(mut us: Vec<f64>) -> f64 {
    us.sort_by(f64::total_cmp);
    us[us.len() / 2]
}

/// Microseconds from `from` to `to` (`CLOCK_MONOTONIC`, one clock for all processes).
fn us(from: u64, to: u64) -> f64 {
    to.saturating_sub(from) as f64 / 1000.0
}

/// What each costs to start: `rounds` children of each method, from the request to the
/// child's first line.
fn cost(ctx: &mut Ctx<'_>, rounds: usize, server: &ChildProc) -> Result<()> {
    step!(ctx, "cost", &[])?;
    say!(ctx, "cost_intro", &[("rounds", &rounds)]);
    ctx.show(1500)?;
    let (mut fork_us, mut spawn_us, mut served_us) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let t0 = now_ns();
        let name = format!("fork-{round}");
        let fork = |body: &dyn Fn() -> i32| {
            // SAFETY: the child only makes the async-signal-safe calls of `child_body`.
            unsafe { ctx.fork(&name, body) }
        };
        let (seen, child) = fork_looker(fork, false)?;
        fork_us.push(us(t0, seen.t_ns));
        drop(child.gate);
        ctx.join_within(child.pid, TIMEOUT)?;

        let t0 = now_ns();
        let child = ctx.spawn("spawned", &format!("spawn-{round}"), serde_json::json!({}))?;
        // Let go and joined whatever it answered.
        let seen = seen_of(&child);
        let _ = child.send(Down::Go);
        ctx.join_within(child.pid, TIMEOUT)?;
        spawn_us.push(us(t0, seen?.t_ns));

        let t0 = now_ns();
        // The child's spawn and exit come from the server, before its answers.
        let news = ctx.expect_news();
        server.send(Down::Value(ObsValue::Str(TIME.into())))?;
        let seen = seen_of(server)?;
        served_us.push(us(t0, seen.t_ns));
        match server.decode(&server.reply(TIMEOUT)?)? {
            Reply::Exited { exitcode: 0, .. } => {}
            other => bail!("the server (PID {}) answered {other:?}", server.pid),
        }
        drop(news);
    }
    let tenth = |x: f64| (x * 10.0).round() / 10.0;
    let (fork, spawn, served) = (
        tenth(median(fork_us)),
        tenth(median(spawn_us)),
        tenth(median(served_us)),
    );
    ctx.settle()?;
    for (method, us) in METHODS.iter().zip([fork, spawn, served]) {
        say!(
            ctx,
            "cost_row",
            &[("us", &format!("{us:>8.1}")), ("method", method)]
        );
    }
    ctx.observe("fork_start_us", fork);
    ctx.observe("spawn_start_us", spawn);
    ctx.claim(
        "forkserver_start_us",
        served,
        Expect::lt(spawn).of("spawn_start_us"),
    );
    ctx.pause(2500)?;
    let main = ctx.main_pid;
    say!(
        ctx,
        "cost_after",
        &[
            (
                "main_mib",
                &mib(crate::sys::proc::rss_kib(main).unwrap_or(0))
            ),
            ("main_threads", &crate::sys::proc::threads(main)),
        ],
    );
    ctx.show(2500)
}

/// The defaults, and what this machine's `python3` says.
fn defaults(ctx: &mut Ctx<'_>) -> Result<()> {
    step!(ctx, "defaults", &[])?;
    say!(ctx, "defaults", &[]);
    ctx.pause(3000)?;
    let output = python_or_say!(
        ctx,
        &["-c".as_ref(), PY_ASK.as_ref()],
        PYTHON_TIMEOUT,
        |_, _| {}
    );
    if let Some(out) = output {
        let parsed: Option<serde_json::Value> = serde_json::from_str(&out.stdout).ok();
        let field = |name: &str| {
            parsed
                .as_ref()
                .and_then(|v| v.get(name))
                .and_then(|v| v.as_str())
                .map(String::from)
        };
        let all = parsed
            .as_ref()
            .and_then(|v| v.get("all"))
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            });
        match (out.exitcode, field("version"), field("default"), all) {
            (0, Some(version), Some(default), Some(all)) => {
                say!(
                    ctx,
                    "python_default",
                    &[
                        ("pid", &out.pid),
                        ("version", &version),
                        ("default", &default),
                        ("all", &all)
                    ],
                );
                ctx.observe("python_version", version.as_str());
                ctx.observe("python_start_method", default.as_str());
            }
            (code, ..) => say!(
                ctx,
                "python_failed",
                &[("why", &format!("exitcode {code}"))]
            ),
        }
    }
    ctx.pause(2500)?;
    say!(ctx, "guard", &[]);
    ctx.show(3000)
}
