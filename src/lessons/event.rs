//! Lesson `event`: Python's `Event()` across processes: waiters asleep in `wait()`, one
//! `set()` that wakes them all, `clear()`, and a `wait(timeout)` that gives up with False.
//!
//! The mechanism is the one CPython's `multiprocessing.Event` comes down to on Linux: it is
//! a `Condition` and a `Semaphore`, which are POSIX semaphores in a shared page of
//! `/dev/shm`, and glibc makes a process sleep on one with `futex(FUTEX_WAIT)` on a word of
//! that page. Here the layers are peeled off: a file in the run's directory, mapped
//! `MAP_SHARED` by every process, holds the flag and a futex word. A waiter sleeps in
//! `FUTEX_WAIT` (the kernel shows `S`, and `/proc/<pid>/syscall` names the futex call and
//! the very word); `set()` raises the flag, bumps the word and `FUTEX_WAKE`s every sleeper.
//! The futex is not the `_PRIVATE` kind, so the kernel finds the same word through the
//! file's page in every process, at whatever address each mapped it.

use super::{LessonDef, OptSpec, Opts};
use crate::child::{ChildCtx, Down};
use crate::ctx::{ChildProc, Ctx, Expect};
use crate::event::{now_ns, ObsValue};
use crate::sys::proc::{self, Call};
use crate::sys::shared::{Shared, SharedPage};
use crate::{say, step};
use anyhow::{bail, Context, Result};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// This lesson's words, whose keys the word macros check at compile time.
const WORDS: &crate::words::keys::Table = &crate::words::keys::EVENT;

pub static LESSON: LessonDef = LessonDef {
    name: "event",
    words_src: include_str!("../../lessons/event.toml"),
    options: &[OptSpec {
        name: "waiters",
        default: 3,
        min: 1,
        max: 16,
        help: "processes that block in wait() until the event is set",
    }],
    run,
    validate: None,
    roles: &[("waiter", waiter), ("setter", setter)],
};

/// How long the kernel gets to reach a state we wait for; far more than it needs.
const STATE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a child gets to answer.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

fn hex(addr: usize) -> String {
    format!("{addr:#x}")
}

/// What a child tells the parent. A waiter: it is about to call `wait()` on the futex
/// word at `addr` (in its own address space); its `wait()` returned (woken or timed out).
/// The setter: it has mapped the page; its `set()` is done, stamped `t_set` right before,
/// and the kernel woke `woke` sleepers.
#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Eq)]
enum Reply {
    Waiting { addr: usize },
    Returned(WaitDone),
    Mapped,
    Set { t_set: u64, woke: i64 },
}

/// The child's next reply, which must be the one `pick` takes (`what` it should have
/// said): a reply that does not decode, or another one, is an error.
fn next<T>(child: &ChildProc, what: &str, pick: impl FnOnce(Reply) -> Option<T>) -> Result<T> {
    let reply: Reply = child.decode(&child.reply(REPLY_TIMEOUT)?)?;
    let shown = format!("{reply:?}");
    pick(reply).with_context(|| {
        format!(
            "{} (PID {}) answered {shown}, not {what}",
            child.name, child.pid
        )
    })
}

/// What the phases share: the event's page, its path, and how many wait on it.
struct Scene {
    n: usize,
    path: PathBuf,
    /// The path as the narration shows it (and the children get it).
    shown: String,
    event: SharedEvent,
}

impl Scene {
    /// The arguments of every child: where the page is.
    fn args(&self) -> serde_json::Value {
        serde_json::json!({ "path": self.shown })
    }
}

fn run(ctx: &mut Ctx<'_>, opts: &Opts) -> Result<()> {
    let n = opts.get("waiters") as usize;
    if !cfg!(target_os = "linux") {
        bail!("the event lesson needs Linux: it sleeps in futex(2) and reads /proc");
    }
    let scene = create(ctx, n)?;
    let (waiters, addrs) = start_waiters(ctx, &scene)?;
    show_blocked(ctx, &scene, &waiters, &addrs)?;
    set(ctx, &scene, &waiters)?;
    clear(ctx, &scene)?;
    timed_wait(ctx, &waiters[0])?;
    for w in &waiters {
        w.send(Down::Stop)?;
    }
    for w in &waiters {
        ctx.join(w.pid)?;
    }
    let Scene {
        path, shown, event, ..
    } = scene;
    drop(event);
    std::fs::remove_file(&path).with_context(|| format!("removing {shown}"))?;
    say!(ctx, "moral", &[]);
    // The last step's pause, once its story is told.
    ctx.show(0)
}

/// `Event()`: the page with the flag and the futex word, in a file of the run's directory.
fn create(ctx: &mut Ctx<'_>, n: usize) -> Result<Scene> {
    step!(ctx, "create", &[])?;
    // The run's own directory is private and new, so a short name is unique and keeps
    // the `od` command a student is asked to type short enough for one line.
    let path = ctx.dir.join("event.page");
    let event = SharedEvent::create(&path)?;
    let shown = path.display().to_string();
    say!(
        ctx,
        "create",
        &[("path", &shown), ("addr", &hex(event.word_addr()))],
    );
    ctx.observe("waiters", n);
    ctx.pause(3000)?;
    Ok(Scene {
        n,
        path,
        shown,
        event,
    })
}

/// The waiters start and call `wait()`: each tells where its futex word is, right before
/// it calls it. The waiters, and the address of the word in each.
fn start_waiters(ctx: &mut Ctx<'_>, scene: &Scene) -> Result<(Vec<ChildProc>, Vec<usize>)> {
    let n = scene.n;
    step!(ctx, "wait", &[("n", &n)])?;
    let args = scene.args();
    let mut waiters = Vec::with_capacity(n);
    for i in 1..=n {
        waiters.push(ctx.spawn("waiter", &format!("waiter-{i}"), args.clone())?);
    }
    let addrs = waiters.iter().map(waiting_at).collect::<Result<_>>()?;
    Ok((waiters, addrs))
}

/// A waiter's word of where it is about to sleep: its futex word's address.
fn waiting_at(w: &ChildProc) -> Result<usize> {
    next(w, "where it waits", |r| match r {
        Reply::Waiting { addr } => Some(addr),
        _ => None,
    })
}

/// The kernel's view before the `set()`: every waiter asleep (`S`) in `futex()` on its
/// word, using no CPU.
fn show_blocked(
    ctx: &mut Ctx<'_>,
    scene: &Scene,
    waiters: &[ChildProc],
    addrs: &[usize],
) -> Result<()> {
    let n = scene.n;
    let pids = waiters
        .iter()
        .map(|w| w.pid.to_string())
        .collect::<Vec<_>>()
        .join(",");
    step!(ctx, "blocked", &[("pids", &pids)])?;
    let mut blocked_state = "S".to_string();
    for (w, &addr) in waiters.iter().zip(addrs) {
        let seen = blocked_in_futex(ctx, w.pid, addr, STATE_TIMEOUT)?;
        if seen.in_futex && seen.state == 'S' {
            say!(
                ctx,
                "blocked",
                &[
                    ("pid", &w.pid),
                    ("state", &seen.state),
                    ("wchan", &seen.wchan),
                    ("addr", &hex(addr)),
                ],
            );
        } else {
            say!(
                ctx,
                "not_blocked",
                &[("pid", &w.pid), ("state", &seen.state)]
            );
            if blocked_state == "S" {
                blocked_state = seen.state.to_string();
            }
        }
    }
    say!(ctx, "no_cpu", &[("n", &n)]);
    ctx.claim(
        "blocked_state_before_set",
        blocked_state.as_str(),
        Expect::eq("S"),
    );
    ctx.show(3500)
}

/// `set()`, from another process: one `FUTEX_WAKE` wakes every waiter, each after the
/// setter's stamp.
fn set(ctx: &mut Ctx<'_>, scene: &Scene, waiters: &[ChildProc]) -> Result<()> {
    let n = scene.n;
    step!(ctx, "set", &[("path", &scene.shown)])?;
    let setter_proc = ctx.spawn("setter", "setter", scene.args())?;
    next(&setter_proc, "that it has mapped the page", |r| {
        (r == Reply::Mapped).then_some(())
    })?;
    say!(ctx, "about_to_set", &[("pid", &setter_proc.pid), ("n", &n)]);
    ctx.pause(2000)?;
    setter_proc.send(Down::Go)?;
    let (t_set, kernel_woke) = next(&setter_proc, "its set()", |r| match r {
        Reply::Set { t_set, woke } => Some((t_set, woke)),
        _ => None,
    })?;
    let mut woken_after_set = 0;
    for w in waiters {
        let done = wait_result(w)?;
        if done.result && done.t_done > t_set {
            woken_after_set += 1;
        }
    }
    ctx.join(setter_proc.pid)?;
    say!(
        ctx,
        "all_woke",
        &[
            ("woken", &woken_after_set),
            ("n", &n),
            ("kernel", &kernel_woke),
        ],
    );
    ctx.claim(
        "woken_after_set",
        woken_after_set,
        Expect::eq(n).of("waiters"),
    );
    ctx.observe("futex_wake_count", kernel_woke);
    ctx.show(3000)
}

/// `clear()`: the flag goes down; nobody needs waking.
fn clear(ctx: &mut Ctx<'_>, scene: &Scene) -> Result<()> {
    step!(ctx, "clear", &[("path", &scene.shown)])?;
    scene.event.clear();
    ctx.act_at(ctx.main_pid, now_ns(), "clear", &[]);
    say!(
        ctx,
        "cleared",
        &[("is_set", &python_bool(scene.event.is_set()))]
    );
    ctx.show(2000)
}

/// `wait(timeout)` on the cleared event: the first waiter sleeps in `futex()` again, and
/// gives up with False once the timeout has passed.
fn timed_wait(ctx: &mut Ctx<'_>, first: &ChildProc) -> Result<()> {
    // Long enough for the observer to see the sleep, at every speed.
    let timeout_ms = ((2000.0 * ctx.speed) as u64).max(200);
    say!(
        ctx,
        "timed_wait",
        &[
            ("pid", &first.pid),
            ("ms", &timeout_ms),
            ("secs", &(timeout_ms as f64 / 1000.0)),
        ],
    );
    first.send(Down::Value(ObsValue::Int(timeout_ms as i64)))?;
    let addr = waiting_at(first)?;
    let seen = blocked_in_futex(ctx, first.pid, addr, Duration::from_millis(timeout_ms))?;
    if seen.in_futex {
        say!(
            ctx,
            "timed_blocked",
            &[("pid", &first.pid), ("state", &seen.state)],
        );
    }
    let done = wait_result(first)?;
    let elapsed_ms = (done.t_done.saturating_sub(done.t_start)) as f64 / 1e6;
    say!(
        ctx,
        "timed_out",
        &[
            ("result", &python_bool(done.result)),
            ("ms", &format!("{elapsed_ms:.1}")),
        ],
    );
    ctx.claim("wait_timeout_result", done.result, Expect::eq(false));
    ctx.claim(
        "wait_timeout_elapsed_ms",
        (elapsed_ms * 10.0).round() / 10.0,
        Expect::ge(timeout_ms as i64).of("timeout"),
    );
    ctx.pause(2500)
}

fn python_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

/// What a waiter reports after its `wait()` returned: its own stamps (right before the
/// call, right after it) and the result.
#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Eq)]
struct WaitDone {
    t_start: u64,
    t_done: u64,
    result: bool,
}

fn wait_result(w: &ChildProc) -> Result<WaitDone> {
    next(w, "what its wait() returned", |r| match r {
        Reply::Returned(done) => Some(done),
        _ => None,
    })
}

/// What the kernel said about a waiter.
struct Blocked {
    /// The state letter the observer saw.
    state: char,
    /// `/proc/<pid>/syscall` named `futex` on the event's word.
    in_futex: bool,
    /// `/proc/<pid>/wchan`: where in the kernel it sleeps.
    wchan: String,
}

/// Wait (bounded) until the kernel shows `pid` asleep (`S`) in `futex()` on the word at
/// `addr`. The observer's letter alone is not enough: the child was asleep before too
/// (waiting for its parent's commands), so `/proc/<pid>/syscall` must also name the futex
/// call on that very word.
fn blocked_in_futex(ctx: &Ctx<'_>, pid: Pid, addr: usize, timeout: Duration) -> Result<Blocked> {
    let deadline = Instant::now() + timeout;
    let mut state = '?';
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Some(s) = ctx.wait_state(pid, &['S'], left)? {
            state = s;
            if in_futex_on(pid.as_raw(), addr) {
                let wchan = proc::wchan(pid.as_raw()).unwrap_or_else(|| "?".into());
                return Ok(Blocked {
                    state,
                    in_futex: true,
                    wchan,
                });
            }
        } else if let Some(s) = proc::state(pid.as_raw()) {
            state = s;
        }
        if Instant::now() >= deadline {
            return Ok(Blocked {
                state,
                in_futex: false,
                wchan: String::new(),
            });
        }
        if !crate::procs::sleep(Duration::from_millis(1)) {
            ctx.check()?;
        }
    }
}

/// `/proc/<pid>/syscall` says `pid` is blocked in `futex()` with `addr` as its word.
fn in_futex_on(pid: i32, addr: usize) -> bool {
    match proc::syscall(pid) {
        proc::Syscall::In { nr, arg0 } => {
            Call::from_nr(nr) == Some(Call::Futex) && usize::try_from(arg0) == Ok(addr)
        }
        _ => false,
    }
}

/// The role of a waiter: map the event, then `wait()`; after it returns, `wait(timeout)`
/// again if the lesson asks.
fn waiter(c: &mut ChildCtx) -> Result<i32> {
    let path = c.arg_str("path")?;
    let event = SharedEvent::open(Path::new(&path))?;
    let addr = event.word_addr();
    say!(c, "waiter_hello", &[("addr", &hex(addr))])?;
    let mut timeout: Option<Duration> = None;
    loop {
        let t_start = now_ns();
        match timeout {
            Some(t) => c.act_at(
                t_start,
                "wait",
                &[("timeout_ms", (t.as_millis() as i64).into())],
            ),
            None => c.act_at(t_start, "wait", &[]),
        }?;
        c.tell(&Reply::Waiting { addr })?;
        let result = event.wait(timeout)?;
        let t_done = now_ns();
        c.act_at(t_done, "wait_done", &[("result", result.into())])?;
        say!(
            c,
            if (result) { "woken" } else { "gave_up" },
            &[("result", &python_bool(result))],
        )?;
        c.tell(&Reply::Returned(WaitDone {
            t_start,
            t_done,
            result,
        }))?;
        match c.recv()? {
            Down::Value(ObsValue::Int(ms)) => {
                timeout = Some(Duration::from_millis(ms.max(0) as u64));
            }
            _ => return Ok(0),
        }
    }
}

/// The role of the setter: map the event, then `set()` when told.
fn setter(c: &mut ChildCtx) -> Result<i32> {
    let path = c.arg_str("path")?;
    let event = SharedEvent::open(Path::new(&path))?;
    say!(
        c,
        "setter_hello",
        &[("pid", &c.pid), ("addr", &hex(event.word_addr()))],
    )?;
    c.tell(&Reply::Mapped)?;
    if c.recv()? != Down::Go {
        return Ok(0);
    }
    say!(c, "set", &[])?;
    // Stamped right before set(): every wake-up it causes comes after this stamp.
    let t_set = now_ns();
    let woke = event.set()?;
    c.act_at(t_set, "set", &[("woke", woke.into())])?;
    c.tell(&Reply::Set { t_set, woke })?;
    Ok(0)
}

/// The shared page: the flag and the futex word, in that order.
#[repr(C)]
struct Page {
    /// 1 when the event is set.
    flag: AtomicU32,
    /// Bumped by every `set()`; waiters sleep on it.
    seq: AtomicU32,
}

// SAFETY: two atomics, valid when zero (the event unset), written by every process.
unsafe impl SharedPage for Page {}

/// `multiprocessing.Event`, on one page of a file mapped `MAP_SHARED` by each process.
struct SharedEvent {
    page: Shared<Page>,
}

impl SharedEvent {
    /// Create the page (zeroed: the event starts unset) and map it.
    fn create(path: &Path) -> Result<SharedEvent> {
        Ok(SharedEvent {
            page: Shared::create(path)?,
        })
    }

    /// Map the page another process created.
    fn open(path: &Path) -> Result<SharedEvent> {
        Ok(SharedEvent {
            page: Shared::open(path)?,
        })
    }

    fn page(&self) -> &Page {
        self.page.get()
    }

    /// The address of the futex word in this process.
    fn word_addr(&self) -> usize {
        self.page().seq.as_ptr() as usize
    }

    /// `e.is_set()`.
    fn is_set(&self) -> bool {
        self.page().flag.load(Ordering::SeqCst) == 1
    }

    /// `e.set()`: raise the flag, bump the word, wake every sleeper. How many the kernel
    /// woke.
    fn set(&self) -> Result<i64> {
        let p = self.page();
        p.flag.store(1, Ordering::SeqCst);
        p.seq.fetch_add(1, Ordering::SeqCst);
        futex::wake_all(&p.seq).context("futex(FUTEX_WAKE)")
    }

    /// `e.clear()`: lower the flag. Nobody needs waking.
    fn clear(&self) {
        self.page().flag.store(0, Ordering::SeqCst);
    }

    /// `e.wait(timeout)`: if the flag is down, sleep until a `set()` or the timeout; then
    /// return the flag, as CPython does (False when it timed out).
    fn wait(&self, timeout: Option<Duration>) -> Result<bool> {
        let p = self.page();
        let deadline = timeout.map(|t| Instant::now() + t);
        // Read the word before the flag: a set() after this point changes the word, so
        // FUTEX_WAIT below returns at once instead of sleeping through it.
        let seq = p.seq.load(Ordering::SeqCst);
        if self.is_set() {
            return Ok(true);
        }
        while p.seq.load(Ordering::SeqCst) == seq {
            let left = match deadline {
                None => None,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => break,
                },
            };
            // Returns when woken, when the word already changed, at the timeout, or on a
            // signal: the loop looks again.
            futex::wait(&p.seq, seq, left).context("futex(FUTEX_WAIT)")?;
        }
        Ok(self.is_set())
    }
}

/// The futex system call, on a word shared between processes (so not `_PRIVATE`).
#[cfg(target_os = "linux")]
mod futex {
    use nix::libc;
    use std::io;
    use std::sync::atomic::AtomicU32;
    use std::time::Duration;

    /// Sleep while `*word == expected`, at most `timeout`. Waking, a changed word, the
    /// timeout and a signal all return Ok: the caller looks at the word again.
    pub(crate) fn wait(
        word: &AtomicU32,
        expected: u32,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        let ts = timeout.map(|d| libc::timespec {
            tv_sec: d.as_secs() as _,
            tv_nsec: d.subsec_nanos() as _,
        });
        let tsp = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `word` is a live, aligned u32 (in a shared mapping); the kernel only
        // reads it; `tsp` is null or points at a timespec on this stack.
        let r = unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT,
                expected,
                tsp,
                std::ptr::null::<u32>(),
                0,
            )
        };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN | libc::ETIMEDOUT | libc::EINTR) => Ok(()),
            _ => Err(e),
        }
    }

    /// Wake every process sleeping on `word`; how many the kernel woke.
    pub(crate) fn wake_all(word: &AtomicU32) -> io::Result<i64> {
        // SAFETY: `word` is a live, aligned u32; FUTEX_WAKE only uses its address.
        let r = unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAKE,
                i32::MAX,
                std::ptr::null::<libc::timespec>(),
                std::ptr::null::<u32>(),
                0,
            )
        };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r as i64)
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod futex {
    use std::io;
    use std::sync::atomic::AtomicU32;
    use std::time::Duration;

    pub fn wait(_: &AtomicU32, _: u32, _: Option<Duration>) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "futex(2) is Linux only",
        ))
    }

    pub fn wake_all(_: &AtomicU32) -> io::Result<i64> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "futex(2) is Linux only",
        ))
    }
}
