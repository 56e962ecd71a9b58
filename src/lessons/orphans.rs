//! Lesson `orphans`: what happens to a process whose parent does not wait for it, or
//! does not outlive it, and what ending a parent does not end.
//!
//! 1. Zombies: `--children` forked children exit at once; the kernel keeps each one's exit
//!    status (state `Z`) until the parent's `waitpid` (Python's `join()`) reaps it.
//! 2. Orphans: a child forks a grandchild and exits; the kernel gives the grandchild a new
//!    parent, the nearest child subreaper (mp-demo's main process), read from `/proc`
//!    before and after. The adopter then reaps it.
//! 3. `terminate()` sends SIGTERM to the child only: the grandchild it started runs on,
//!    adopted like the orphan above, until the lesson ends it.
//! 4. A lock (a POSIX named semaphore, like Python's `multiprocessing.Lock`) taken by a
//!    child that is then terminated is never released: the next `acquire(timeout=…)`
//!    (`sem_timedwait`) returns False.
//!
//! Every process here is a bare fork of this multi-threaded program: it only makes
//! async-signal-safe calls (fork, pipe, read, write, close, getppid, prctl, nanosleep,
//! pause, clock_gettime, and the semaphore's atomic operations and futex waits). A
//! grandchild cannot die with its first parent (that is the lesson), so it sets
//! `PR_SET_PDEATHSIG` only once it has been adopted by the main process, and checks
//! `getppid()` after: nothing outlives the run, even a SIGKILL of the main process.

use super::{LessonDef, OptSpec, Opts};
use crate::ctx::{Ctx, Expect};
use crate::event::How;
use crate::procs::{self, Note};
use crate::{say, say_for, step};
use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::libc;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

mod dead_holder;

use dead_holder::dead_holder;

/// This lesson's words, whose keys the word macros check at compile time.
const WORDS: &crate::words::keys::Table = &crate::words::keys::ORPHANS;

pub static LESSON: LessonDef = LessonDef {
    name: "orphans",
    words_src: include_str!("../../lessons/orphans.toml"),
    options: &[OptSpec {
        name: "children",
        default: 3,
        min: 1,
        max: 8,
        help: "Children that exit at once and wait, as zombies, to be reaped",
    }],
    run,
    validate: None,
    roles: &[],
};

/// How long the kernel gets to reach a state, or a process to write its note; far more
/// than either needs, so a timeout means something is broken, not slow.
const TIMEOUT: Duration = Duration::from_secs(5);

crate::note_kinds! {
    /// What a note of this lesson's processes says (`Note::a`).
    enum Said {
        Forked = 1,
        Hello = 2,
        Reparented = 3,
        Acquired = 4,
        Waiting = 5,
        Waited = 6,
        Failed = -1,
    }
}

fn run(ctx: &mut Ctx<'_>, opts: &Opts) -> Result<()> {
    let children = opts.get("children") as usize;
    ctx.observe("main_pid", ctx.main_pid);
    ctx.observe("children", children);
    zombies(ctx, children)?;
    ctx.pause(2500)?;
    orphan(ctx)?;
    ctx.pause(2500)?;
    terminate(ctx)?;
    ctx.pause(2500)?;
    dead_holder(ctx)?;
    ctx.pause(2000)?;
    say!(ctx, "moral", &[]);
    // The last step's pause, once its story is told.
    ctx.show(0)
}

/// Part one: children that exit at once are zombies until their parent waits.
fn zombies(ctx: &mut Ctx<'_>, n: usize) -> Result<()> {
    let me = ctx.main_pid;
    let janitor = ctx.janitor();
    step!(
        ctx,
        "zombies",
        &[("n", &n), ("main", &me), ("janitor", &janitor)]
    )?;
    say!(ctx, "zombies_intro", &[("n", &n)]);
    ctx.pause(2000)?;
    let mut kids = Vec::with_capacity(n);
    for i in 1..=n {
        let child_body = || 0;
        // SAFETY: the child does nothing at all: it returns 0 to _exit.
        kids.push(unsafe { ctx.fork(&format!("child-{i}"), child_body) }?);
    }
    let mut seen = 0usize;
    for &kid in &kids {
        if ctx.wait_state(kid, &['Z'], TIMEOUT)? == Some('Z') {
            seen += 1;
        }
    }
    // Their PIDs are in the start line just before.
    say!(ctx, "zombies_seen", &[("seen", &seen), ("n", &n)]);
    ctx.pause(3000)?;

    // The reaping belongs to the same step, whose hint shows one reaped, the rest Z.
    say!(ctx, "reap_intro", &[]);
    ctx.pause(1500)?;
    let mut reaped = 0usize;
    for (i, &kid) in kids.iter().enumerate() {
        let code = ctx.join(kid)?;
        let gone = crate::sys::proc::state(kid.as_raw()).is_none();
        if gone {
            reaped += 1;
        }
        let left = kids[i + 1..]
            .iter()
            .filter(|p| crate::sys::proc::state(p.as_raw()) == Some('Z'))
            .count();
        // The exit lines tell each reap (and the verdict that /proc lost them all); a
        // sentence only for one still in /proc.
        if !gone {
            say!(
                ctx,
                "reaped_not_gone",
                &[("pid", &kid), ("code", &code), ("left", &left)],
            );
        }
        if i == 0 {
            // One reaped, the others still zombies: the hint shows both.
            ctx.show(0)?;
        }
        ctx.pause(900)?;
    }
    ctx.claim("zombies_seen", seen, Expect::eq(n).of("children"));
    ctx.claim("reaped", reaped, Expect::eq(n).of("children"));
    Ok(())
}

/// Part two: a child forks a grandchild and exits; the kernel finds the orphan a parent.
fn orphan(ctx: &mut Ctx<'_>) -> Result<()> {
    let me = ctx.main_pid;
    step!(ctx, "orphan", &[])?;
    say!(ctx, "orphan_intro", &[]);
    ctx.pause(2000)?;
    let family = start_family(ctx, "child", "grandchild", Ending::WhenTold)?;
    let (child, gc) = (family.child, family.grandchild);
    let before = ppid_of(gc).context("reading the grandchild's /proc/<pid>/stat")?;
    say_for!(
        ctx,
        gc.as_raw(),
        family.hello.t_ns,
        "gc_hello",
        &[("pid", &gc), ("ppid", &family.hello.ppid)],
    );
    say!(ctx, "ppid_before", &[("pid", &gc), ("ppid", &before)]);
    ctx.claim(
        "orphan_ppid_before",
        before,
        Expect::eq(child.as_raw())
            .of("the child's PID")
            .and("its_note_says_so", family.hello.ppid == child.as_raw()),
    );
    ctx.pause(2500)?;

    step!(ctx, "adopted", &[("child", &child), ("gc", &gc)])?;
    say!(ctx, "child_exits", &[("child", &child), ("gc", &gc)]);
    nix::unistd::write(&family.go, b"g").context("write() to the child's pipe")?;
    // Its end (exitcode, reaped by main) is the exit line: no sentence of its own.
    ctx.join(child)?;
    let adopted = reparented(ctx, &family, true)?;
    let after = ppid_of(gc).context("reading the grandchild's /proc/<pid>/stat")?;
    say!(
        ctx,
        "ppid_after",
        &[("pid", &gc), ("ppid", &after), ("main", &me)],
    );
    ctx.claim(
        "orphan_ppid_after",
        after,
        Expect::eq(me)
            .of("main_pid")
            .and("adopted_by_main", adopted == me),
    );
    ctx.pause(3000)?;

    // The adopter's reaping belongs to the same step: its hint shows the orphan as a
    // zombie of its new parent, and its old parent gone.
    say!(ctx, "adopter_reaps", &[("pid", &gc)]);
    nix::unistd::write(&family.gc_go, b"g").context("write() to the grandchild's pipe")?;
    let zombie = ctx.wait_state(gc, &['Z'], TIMEOUT)? == Some('Z');
    ctx.show(0)?;
    let code = ctx.join(gc)?;
    say!(
        ctx,
        if (zombie) {
            "orphan_reaped"
        } else {
            "orphan_reaped_unseen"
        },
        &[("pid", &gc), ("code", &code)],
    );
    Ok(())
}

/// Part three: `terminate()` ends the child, not the grandchild it started.
fn terminate(ctx: &mut Ctx<'_>) -> Result<()> {
    let me = ctx.main_pid;
    step!(ctx, "terminate", &[])?;
    say!(ctx, "terminate_intro", &[]);
    ctx.pause(2000)?;
    let family = start_family(ctx, "worker", "helper", Ending::Never)?;
    let (worker, helper) = (family.child, family.grandchild);
    say_for!(
        ctx,
        helper.as_raw(),
        family.hello.t_ns,
        "helper_hello",
        &[("pid", &helper), ("ppid", &family.hello.ppid)],
    );
    let ws = letter(ctx.wait_state(worker, &['S'], TIMEOUT)?);
    let hs = letter(ctx.wait_state(helper, &['S'], TIMEOUT)?);
    say!(
        ctx,
        "both_running",
        &[
            ("worker", &worker),
            ("helper", &helper),
            ("ws", &ws),
            ("hs", &hs),
        ],
    );
    ctx.pause(2500)?;

    step!(
        ctx,
        "terminated",
        &[("worker", &worker), ("helper", &helper)]
    )?;
    say!(ctx, "terminate_worker", &[("pid", &worker)]);
    kill(worker, Signal::SIGTERM).context("kill(SIGTERM) of the worker")?;
    // Its end (exitcode -15, reaped by main) is the exit line: no sentence of its own.
    let code = ctx.join(worker)?;
    ctx.claim("terminated_exitcode", code, Expect::eq(-15).note("SIGTERM"));
    // Its adoption is told by the next sentence (the grandchild's one part before).
    let adopted = reparented(ctx, &family, false)?;
    let state = ctx.wait_state(helper, &['S', 'R'], TIMEOUT)?;
    let ppid = ppid_of(helper).unwrap_or(-1);
    let alive = matches!(state, Some(s) if s != 'Z') && ppid == me && adopted == me;
    say!(
        ctx,
        if (alive) {
            "helper_alive"
        } else {
            "helper_not_alive"
        },
        &[
            ("pid", &helper),
            ("state", &letter(state)),
            ("ppid", &ppid),
            ("worker", &worker),
        ],
    );
    ctx.claim("grandchild_alive_after_terminate", alive, Expect::eq(true));
    ctx.show(3500)?;

    // The orphan's end belongs to the same step: the lesson ends it itself.
    say!(ctx, "cleanup", &[("pid", &helper)]);
    kill(helper, Signal::SIGTERM).context("kill(SIGTERM) of the helper")?;
    // Reaped by main, its adopter: the exit line says so.
    ctx.join(helper)?;
    ctx.show(0)
}

/// How the grandchild of a family ends.
#[derive(Clone, Copy, PartialEq)]
enum Ending {
    /// It exits 0 when the main process writes a byte to its pipe.
    WhenTold,
    /// It runs until a signal ends it.
    Never,
}

/// A child of the main process and the grandchild it forked.
struct Family {
    child: Pid,
    grandchild: Pid,
    /// The grandchild's first note, written by it, with its parent then.
    hello: Note,
    notes: OwnedFd,
    /// The first byte here lets the child fork; the second ends it (with
    /// [`Ending::WhenTold`]).
    go: OwnedFd,
    /// A byte here ends the grandchild (with [`Ending::WhenTold`]).
    gc_go: OwnedFd,
}

/// Fork `child_name`, which forks `gc_name`; wait for both to report.
fn start_family(
    ctx: &mut Ctx<'_>,
    child_name: &str,
    gc_name: &str,
    ending: Ending,
) -> Result<Family> {
    let main = ctx.main_pid;
    let (note_r, note_w) = procs::pipe()?;
    let (go_r, go_w) = procs::pipe()?;
    let (gc_go_r, gc_go_w) = procs::pipe()?;
    let (note_fd, go_fd, gc_go_fd) = (note_w.as_raw_fd(), go_r.as_raw_fd(), gc_go_r.as_raw_fd());
    let child_body = move || middle(main, note_fd, go_fd, gc_go_fd, ending);
    // SAFETY: `middle` and `grandchild` only make async-signal-safe calls (pipe, fork,
    // close, read, getppid, prctl, nanosleep, pause, and Note::send's clock_gettime,
    // getpid and write), allocate nothing, and end in _exit or in a pause() loop that
    // only a signal ends.
    let child = unsafe { ctx.fork(child_name, child_body) }?;
    drop(note_w);
    drop(go_r);
    drop(gc_go_r);
    // The child forks only now, once its own `spawn` is stamped: the grandchild's is
    // stamped later, so every reader of the stream meets the parent first.
    nix::unistd::write(&go_w, b"f").context("write() to the child's pipe")?;
    // The child's "I forked" and the grandchild's hello come in either order.
    let (mut forked, mut hello) = (None, None);
    for _ in 0..2 {
        let n = Note::recv(&note_r, TIMEOUT)?
            .with_context(|| format!("no word from {child_name} (PID {child}) and its child"))?;
        match n.kind() {
            Some(Said::Forked) => forked = Some(n),
            Some(Said::Hello) => hello = Some(n),
            _ => {
                return Err(procs::fork_error(
                    &format!("fork() in {child_name} (PID {child})"),
                    Errno::from_raw(n.b as i32),
                ))
            }
        }
    }
    let forked = forked.with_context(|| format!("{child_name} did not report its fork"))?;
    let hello = hello.with_context(|| format!("{gc_name} did not say hello"))?;
    let grandchild = Pid::from_raw(forked.b as i32);
    ctx.spawned_at(
        forked.t_ns.min(hello.t_ns),
        grandchild.as_raw(),
        child.as_raw(),
        gc_name,
        How::Fork,
    );
    Ok(Family {
        child,
        grandchild,
        hello,
        notes: note_r,
        go: go_w,
        gc_go: gc_go_w,
    })
}

/// Wait for the grandchild's word that the kernel gave it a new parent; emit `reparent`,
/// and, with `tell`, the grandchild's sentence. The new parent, as `getppid()` told the
/// grandchild.
fn reparented(ctx: &mut Ctx<'_>, family: &Family, tell: bool) -> Result<i32> {
    let gc = family.grandchild;
    let n = Note::recv(&family.notes, TIMEOUT)?
        .with_context(|| format!("no word from PID {gc} after its parent ended"))?;
    if n.kind() != Some(Said::Reparented) {
        bail!("PID {gc} was not re-parented to the main process");
    }
    ctx.act_at(
        gc.as_raw(),
        n.t_ns,
        "reparent",
        &[
            ("from", family.child.as_raw().into()),
            ("to", n.ppid.into()),
        ],
    );
    if tell {
        say_for!(
            ctx,
            gc.as_raw(),
            n.t_ns,
            "gc_reparented",
            &[("ppid", &n.ppid)]
        );
    }
    Ok(n.ppid)
}

/// The first generation: when told, fork the grandchild and report it; then exit when
/// told again (or wait for a signal).
fn middle(main: i32, note_fd: RawFd, go_fd: RawFd, gc_go_fd: RawFd, ending: Ending) -> i32 {
    // The first byte: fork now (see `start_family`).
    read_byte(go_fd);
    // A pipe whose write end only this process holds: the grandchild reads end of file
    // the moment this process is gone, without polling.
    let mut alive: [libc::c_int; 2] = [-1, -1];
    // SAFETY: pipe(2) into a stack array; async-signal-safe.
    if unsafe { libc::pipe(alive.as_mut_ptr()) } != 0 {
        alive = [-1, -1];
    }
    // SAFETY: this process is a fork of a multi-threaded one, with a single thread; the
    // new child only makes async-signal-safe calls (see `grandchild`).
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            let gc_go = if ending == Ending::WhenTold {
                gc_go_fd
            } else {
                -1
            };
            // SAFETY: close(2) of our copies of descriptors this process does not use.
            unsafe {
                libc::close(alive[1]);
                libc::close(go_fd);
                if gc_go < 0 {
                    libc::close(gc_go_fd);
                }
            }
            grandchild(main, note_fd, alive[0], gc_go)
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            // SAFETY: close(2) of our copies of descriptors this process does not use.
            unsafe {
                libc::close(alive[0]);
                libc::close(gc_go_fd);
            }
            Note::tell(note_fd, Said::Forked, i64::from(child.as_raw()));
            match ending {
                Ending::WhenTold => {
                    read_byte(go_fd);
                    0
                }
                Ending::Never => loop {
                    nix::unistd::pause();
                },
            }
        }
        Err(errno) => {
            Note::tell(note_fd, Said::Failed, errno as i64);
            3
        }
    }
}

/// The second generation: say hello, wait to be orphaned and adopted by `main`, then
/// exit when told on `go_fd` (or, if it is -1, wait for a signal).
fn grandchild(main: i32, note_fd: RawFd, creator_alive: RawFd, go_fd: RawFd) -> ! {
    let creator = nix::unistd::getppid().as_raw();
    Note::tell(note_fd, Said::Hello, 0);
    if creator_alive >= 0 {
        read_byte(creator_alive);
        // SAFETY: close(2) of our own descriptor; async-signal-safe.
        unsafe { libc::close(creator_alive) };
    }
    // The pipe closes a moment before the exiting process hands its children over: wait
    // (bounded) for the new parent. Any other one means the main process is gone.
    crate::procs::await_adoption(creator, main);
    Note::tell(note_fd, Said::Reparented, i64::from(creator));
    if go_fd >= 0 {
        read_byte(go_fd);
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(0) };
    }
    loop {
        nix::unistd::pause();
    }
}

/// Block in read(2) until one byte or end of file; async-signal-safe.
fn read_byte(fd: RawFd) {
    let mut byte = [0u8; 1];
    loop {
        // SAFETY: read(2) into a stack buffer; async-signal-safe.
        let n = unsafe { libc::read(fd, byte.as_mut_ptr().cast(), 1) };
        if n >= 0 || Errno::last() != Errno::EINTR {
            return;
        }
    }
}

fn expect_note(r: &OwnedFd, want: Said, what: &str) -> Result<Note> {
    let n = Note::recv(r, TIMEOUT)?.with_context(|| format!("no word from {what}"))?;
    if n.kind() != Some(want) {
        bail!("unexpected word from {what}");
    }
    Ok(n)
}

/// The parent of `pid` as the kernel records it (`/proc/<pid>/stat`, field 4).
fn ppid_of(pid: Pid) -> Option<i32> {
    crate::sys::proc::ids(pid.as_raw()).map(|ids| ids.ppid)
}

fn letter(s: Option<char>) -> char {
    s.unwrap_or('?')
}
