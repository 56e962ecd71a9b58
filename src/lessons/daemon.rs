//! Lesson `daemon`: the two meanings of the word.
//!
//! First Python's `p.daemon = True`: two spawned children, one daemonic, one not. The
//! daemonic one refuses to start a child, as CPython's `BaseProcess.start()` does (the
//! check runs in the process that calls `start()`, which knows it is daemonic); the normal
//! one may. When the main code ends, the main process does what CPython's exit handler
//! (`multiprocessing.util._exit_function`) does: `terminate()` every daemonic child still
//! running, then `join()` every child. So the daemonic child ends with -15, the other is
//! waited for and ends with 0.
//!
//! Then the Unix daemon: a forked child calls `setsid()` and forks again; its child
//! detaches (`chdir("/")`, standard streams on `/dev/null`) and is re-parented when its
//! creator exits: to the main process here, which is a child subreaper (on a normal system:
//! init or a `systemd --user` subreaper). The session, process group and terminal of both
//! are read from `/proc`, and the lesson stops the daemon with SIGTERM and reaps it.
//!
//! Both Unix processes are bare forks of this multi-threaded program: they only make
//! async-signal-safe calls (setsid, fork, getppid, prctl, chdir, umask, open, dup2, close,
//! nanosleep, pause, write).

use super::{LessonDef, Opts};
use crate::child::{ChildCtx, Down};
use crate::ctx::{ChildProc, Ctx};
use crate::event::{now_ns, Event, How, Kind, ObsValue};
use crate::procs::{self, Note};
use crate::sys::proc::Ids;
use crate::{say, say_for, step};
use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// This lesson's words, whose keys the word macros check at compile time.
const WORDS: &crate::words::keys::Table = &crate::words::keys::DAEMON;

pub static LESSON: LessonDef = LessonDef {
    name: "daemon",
    words_src: include_str!("../../lessons/daemon.toml"),
    options: &[],
    run,
    validate: None,
    roles: &[("process", process)],
};

/// The message of CPython's assertion in `BaseProcess.start()`.
pub const DAEMON_CHILD_ERROR: &str = "daemonic processes are not allowed to have children";
/// The type of what CPython raises.
const DAEMON_CHILD_ERROR_TYPE: &str = "AssertionError";

/// How long the kernel gets to reach a state we wait for; far more than it needs.
const STATE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a child gets to answer.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the normal child's job takes at `--speed 1`, in milliseconds.
const JOB_MS: u64 = 7000;

/// The command that asks a child to start a child of its own.
const START_CHILD: &str = "start_child";

crate::note_kinds! {
    /// What a note of the daemon's processes says (`Note::a`).
    enum Said {
        /// What the notes of the Unix daemon's processes say (`Note::a`).
        Setsid = 1,
        Forked = 2,
        Hello = 3,
        Reparented = 4,
        Detached = 5,
    }
}

fn run(ctx: &mut Ctx<'_>, _opts: &Opts) -> Result<()> {
    python_daemon(ctx)?;
    ctx.pause(2500)?;
    unix_daemon(ctx)
}

/// Python's two children: one daemonic, one not, and how long the normal one's job lasts.
struct Pair {
    daemonic: ChildProc,
    worker: ChildProc,
    task_ms: u64,
}

/// Part one: Python's `daemon=True`.
fn python_daemon(ctx: &mut Ctx<'_>) -> Result<()> {
    let pair = start_pair(ctx)?;
    let me = ctx.main_pid;
    step!(
        ctx,
        "children",
        &[
            ("main", &me),
            ("daemonic", &pair.daemonic.pid),
            ("worker", &pair.worker.pid),
        ],
    )?;
    worker_starts_child(ctx, &pair.worker)?;
    daemonic_refuses(ctx, &pair.daemonic)?;
    exit_handler(ctx, pair)
}

/// The flag: two spawned children, one daemonic, one not; to the kernel both are
/// ordinary processes, asleep alike.
fn start_pair(ctx: &mut Ctx<'_>) -> Result<Pair> {
    let me = ctx.main_pid;
    step!(ctx, "flag", &[("main", &me)])?;
    say!(ctx, "intro", &[("pid", &me)]);
    ctx.pause(2000)?;
    // The normal child's job lasts long enough to be still running when the main code
    // ends and when it is joined, at every speed (the pacing from its start to its join
    // is 5 s at --speed 1). Whether it still was is read from /proc, not assumed.
    let task_ms = ((JOB_MS as f64 * ctx.speed) as u64).max(150);
    let args = |daemon: bool| serde_json::json!({ "daemon": daemon, "task_ms": task_ms });
    let daemonic = ctx.spawn("process", "daemonic", args(true))?;
    let worker = ctx.spawn("process", "worker", args(false))?;
    // Each answers once it has introduced itself; then it waits for a command.
    daemonic.reply(REPLY_TIMEOUT)?;
    worker.reply(REPLY_TIMEOUT)?;
    let ds = state_letter(ctx.wait_state(daemonic.pid, &['S'], STATE_TIMEOUT)?);
    let ws = state_letter(ctx.wait_state(worker.pid, &['S'], STATE_TIMEOUT)?);
    ctx.pause(1500)?;
    say!(
        ctx,
        "both_ordinary",
        &[
            ("main", &me),
            ("daemonic", &daemonic.pid),
            ("worker", &worker.pid),
            ("dstate", &ds),
            ("wstate", &ws),
        ],
    );
    ctx.pause(3000)?;
    Ok(Pair {
        daemonic,
        worker,
        task_ms,
    })
}

/// The normal child may start a child of its own: it forks one, which ends, and joins
/// it; their events carry the worker's own stamps.
fn worker_starts_child(ctx: &mut Ctx<'_>, worker: &ChildProc) -> Result<()> {
    worker.send(Down::Value(START_CHILD.into()))?;
    let grandchild = worker.reply_int(REPLY_TIMEOUT)?;
    let t_forked = worker.reply_int(REPLY_TIMEOUT)? as u64;
    let code = worker.reply_int(REPLY_TIMEOUT)?;
    let t_reaped = worker.reply_int(REPLY_TIMEOUT)? as u64;
    let w = worker.pid.as_raw();
    say_for!(
        ctx,
        w,
        t_forked,
        "worker_started",
        &[("child", &grandchild), ("pid", &w)],
    );
    // The worker started and reaped it: its events, with the worker's own stamps.
    ctx.emit(Event {
        t_ns: t_forked,
        pid: grandchild as i32,
        kind: Kind::Spawn {
            ppid: w,
            name: "child".into(),
            how: How::Fork,
        },
    });
    ctx.emit(Event {
        t_ns: t_reaped,
        pid: grandchild as i32,
        kind: Kind::Exit {
            name: "child".into(),
            exitcode: code as i32,
            reaped_by: w,
        },
    });
    say_for!(
        ctx,
        w,
        t_reaped,
        "worker_joined",
        &[("child", &grandchild), ("code", &code)],
    );
    ctx.pause(2500)
}

/// The daemonic child may not: CPython's `start()` raises before any fork, and the
/// kernel shows it has no child.
fn daemonic_refuses(ctx: &mut Ctx<'_>, daemonic: &ChildProc) -> Result<()> {
    daemonic.send(Down::Value(START_CHILD.into()))?;
    let error = match daemonic.reply(REPLY_TIMEOUT)? {
        ObsValue::Str(s) => s,
        other => bail!("the daemonic child answered {other} instead of an error"),
    };
    let kids = crate::sys::proc::children(daemonic.pid.as_raw()).len();
    say!(
        ctx,
        "no_grandchild",
        &[("pid", &daemonic.pid), ("kids", &kids)]
    );
    ctx.claim(
        "daemon_child_error",
        error.as_str(),
        &format!("== \"{DAEMON_CHILD_ERROR}\""),
        error == DAEMON_CHILD_ERROR,
    );
    ctx.claim("daemon_children", kids, "== 0", kids == 0);
    ctx.pause(3000)
}

/// The main code ends and CPython's exit handler runs: `terminate()` the daemonic child
/// (-15), then `join()` the other, which is waited for until its job is done (0).
fn exit_handler(ctx: &mut Ctx<'_>, pair: Pair) -> Result<()> {
    let Pair {
        daemonic,
        worker,
        task_ms,
    } = pair;
    step!(
        ctx,
        "exit",
        &[("daemonic", &daemonic.pid), ("worker", &worker.pid)],
    )?;
    worker.send(Down::Go)?;
    worker.reply(REPLY_TIMEOUT)?; // its job has started
    say!(ctx, "main_code_ends", &[("ms", &task_ms)]);
    ctx.pause(2000)?;
    say!(ctx, "exit_handler", &[]);
    ctx.pause(1500)?;
    let ds = state_letter(ctx.wait_state(daemonic.pid, &['S'], STATE_TIMEOUT)?);
    say!(
        ctx,
        "terminate_daemonic",
        &[("pid", &daemonic.pid), ("state", &ds)],
    );
    kill(daemonic.pid, Signal::SIGTERM).context("kill(SIGTERM) of the daemonic child")?;
    let dcode = ctx.join(daemonic.pid)?;
    say!(ctx, "daemonic_terminated", &[("code", &dcode)]);
    ctx.pause(1500)?;
    let busy = matches!(crate::sys::proc::state(worker.pid.as_raw()), Some(s) if s != 'Z');
    ctx.say(
        if busy {
            "join_worker_busy"
        } else {
            "join_worker_done"
        },
        &[("pid", &worker.pid)],
    );
    let started = Instant::now();
    let wcode = ctx.join(worker.pid)?;
    let waited = started.elapsed().as_millis();
    say!(ctx, "worker_exited", &[("code", &wcode), ("ms", &waited)]);
    ctx.claim("daemon_exitcode", dcode, "== -15 (SIGTERM)", dcode == -15);
    ctx.claim("non_daemon_exitcode", wcode, "== 0", wcode == 0);
    Ok(())
}

/// The Unix daemon's first child and the pipes to it: its processes' notes come up
/// `notes`; a byte on `go` lets the first child exit.
struct Forks {
    first: Pid,
    notes: OwnedFd,
    go: OwnedFd,
}

/// Part two: the Unix daemon.
fn unix_daemon(ctx: &mut Ctx<'_>) -> Result<()> {
    let mine = main_ids(ctx)?;
    let forks = fork_first(ctx)?;
    let daemon = second_fork(ctx, &forks)?;
    first_exits(ctx, &forks, daemon)?;
    inspect(ctx, &mine, forks.first, daemon)?;
    stop(ctx, daemon)
}

/// The main process's own session, process group and terminal, read from `/proc`.
fn main_ids(ctx: &mut Ctx<'_>) -> Result<Ids> {
    step!(ctx, "unix", &[])?;
    say!(ctx, "unix_intro", &[]);
    ctx.pause(2500)?;
    let mine = crate::sys::proc::ids(ctx.main_pid).context("reading /proc/self/stat")?;
    if mine.tty_nr == 0 {
        say!(
            ctx,
            "main_ids_notty",
            &[("sid", &mine.sid), ("pgid", &mine.pgid)],
        );
    } else {
        say!(
            ctx,
            "main_ids",
            &[("sid", &mine.sid), ("pgid", &mine.pgid), ("tty", &mine.tty)],
        );
    }
    ctx.pause(2500)?;
    Ok(mine)
}

/// The first fork: a child that calls `setsid()`, a new session of its own.
fn fork_first(ctx: &mut Ctx<'_>) -> Result<Forks> {
    let me = ctx.main_pid;
    step!(ctx, "double_fork", &[])?;
    let (note_r, note_w) = procs::pipe()?;
    let (go_r, go_w) = procs::pipe()?;
    let (note_fd, go_fd) = (note_w.as_raw_fd(), go_r.as_raw_fd());
    let child_body = move || first_child(me, note_fd, go_fd);
    // SAFETY: `first_child` and `daemon_child` only make async-signal-safe calls (setsid,
    // fork, getppid, getsid, prctl, chdir, umask, open, dup2, close, nanosleep, pause,
    // read, and Note::send's clock_gettime/getpid/write), allocate nothing, and end in
    // _exit or in a pause() loop that only a signal ends.
    let first = unsafe { ctx.fork("first", child_body) }?;
    drop(note_w);
    drop(go_r);
    say!(ctx, "fork1", &[("pid", &first)]);
    let note = next_note(&note_r, "setsid() in the first child")?;
    ctx.act_at(
        note.pid,
        note.t_ns,
        "setsid",
        &[("sid", ObsValue::Int(note.b))],
    );
    if note.kind() != Some(Said::Setsid) || note.b < 0 {
        bail!("setsid() failed in the first child (PID {first})");
    }
    say_for!(
        ctx,
        note.pid,
        note.t_ns,
        "first_setsid",
        &[("sid", &note.b)]
    );
    ctx.pause(2000)?;
    Ok(Forks {
        first,
        notes: note_r,
        go: go_w,
    })
}

/// The second fork: the first child forks the daemon, which says hello. The daemon's PID.
fn second_fork(ctx: &mut Ctx<'_>, forks: &Forks) -> Result<Pid> {
    let first = forks.first;
    // The first child's "I forked" and the daemon's hello come in either order.
    let (mut forked, mut hello) = (None, None);
    for _ in 0..2 {
        let n = next_note(&forks.notes, "the second fork()")?;
        match n.kind() {
            Some(Said::Forked) => forked = Some(n),
            Some(Said::Hello) => hello = Some(n),
            _ => {
                return Err(procs::fork_error(
                    &format!("the second fork() in the first child (PID {first})"),
                    nix::errno::Errno::from_raw(n.b as i32),
                ))
            }
        }
    }
    let (forked, hello) = (
        forked.context("the first child did not report its fork")?,
        hello.context("the daemon did not say hello")?,
    );
    let daemon = Pid::from_raw(forked.b as i32);
    ctx.spawned_at(
        forked.t_ns.min(hello.t_ns),
        daemon.as_raw(),
        first.as_raw(),
        "daemon",
        How::Fork,
    );
    say_for!(
        ctx,
        hello.pid,
        hello.t_ns,
        "unix_hello",
        &[
            ("pid", &hello.pid),
            ("ppid", &hello.ppid),
            ("sid", &hello.b),
        ],
    );
    ctx.pause(2500)?;
    Ok(daemon)
}

/// The first child exits: the daemon is re-parented to the main process (the subreaper),
/// then detaches from everything it inherited.
fn first_exits(ctx: &mut Ctx<'_>, forks: &Forks, daemon: Pid) -> Result<()> {
    let (me, first) = (ctx.main_pid, forks.first);
    say!(
        ctx,
        "first_exits",
        &[("first", &first), ("daemon", &daemon)]
    );
    nix::unistd::write(&forks.go, b"g").context("write() to the first child's pipe")?;
    let first_code = ctx.join(first)?;
    if first_code != 0 {
        bail!("the first child (PID {first}) exited with {first_code}");
    }
    let n = next_note(&forks.notes, "the daemon's re-parenting")?;
    if n.kind() != Some(Said::Reparented) {
        bail!("the daemon (PID {daemon}) was not re-parented to PID {me}");
    }
    ctx.act_at(
        n.pid,
        n.t_ns,
        "reparent",
        &[("from", first.as_raw().into()), ("to", n.ppid.into())],
    );
    say_for!(ctx, n.pid, n.t_ns, "reparented", &[("ppid", &n.ppid)]);
    say_for!(ctx, n.pid, n.t_ns, "pdeathsig", &[("first", &first)]);
    ctx.pause(2000)?;
    let n = next_note(&forks.notes, "the daemon's detaching")?;
    if n.kind() != Some(Said::Detached) {
        bail!("the daemon (PID {daemon}) could not detach");
    }
    say_for!(ctx, n.pid, n.t_ns, "detach", &[]);
    ctx.pause(2000)
}

/// The daemon as the kernel sees it: another session, no terminal, the main process as
/// its parent, `/dev/null` and `/` for its streams and directory.
fn inspect(ctx: &mut Ctx<'_>, mine: &Ids, first: Pid, daemon: Pid) -> Result<()> {
    let me = ctx.main_pid;
    step!(
        ctx,
        "detached",
        &[("main", &me), ("daemon", &daemon), ("first", &first)],
    )?;
    let state = state_letter(ctx.wait_state(daemon, &['S'], STATE_TIMEOUT)?);
    let theirs = crate::sys::proc::ids(daemon.as_raw()).context("reading /proc/<daemon>/stat")?;
    let link =
        |what: &str| crate::sys::proc::link(daemon.as_raw(), what).unwrap_or_else(|| "?".into());
    ctx.say(
        if theirs.tty_nr == 0 {
            "seen"
        } else {
            "seen_tty"
        },
        &[
            ("pid", &daemon),
            ("ppid", &theirs.ppid),
            ("sid", &theirs.sid),
            ("pgid", &theirs.pgid),
            ("tty", &theirs.tty),
            ("tty_nr", &theirs.tty_nr),
            ("fd0", &link("fd/0")),
            ("cwd", &link("cwd")),
            ("state", &state),
        ],
    );
    say!(
        ctx,
        "compare",
        &[("msid", &mine.sid), ("sid", &theirs.sid), ("pid", &daemon)],
    );
    let differs = theirs.sid != mine.sid;
    ctx.observe("main_sid", mine.sid);
    ctx.observe("daemon_sid", theirs.sid);
    ctx.claim(
        "daemon_sid_differs",
        differs,
        &format!("== true ({} ≠ {})", theirs.sid, mine.sid),
        differs,
    );
    ctx.claim("daemon_tty_nr", theirs.tty_nr, "== 0", theirs.tty_nr == 0);
    ctx.claim(
        "daemon_ppid",
        theirs.ppid,
        &format!("== main_pid ({me})"),
        theirs.ppid == me,
    );
    ctx.pause(4000)
}

/// Stop the daemon as a service manager does: SIGTERM, and reap it.
fn stop(ctx: &mut Ctx<'_>, daemon: Pid) -> Result<()> {
    step!(ctx, "stop", &[("pid", &daemon)])?;
    say!(ctx, "stop", &[("pid", &daemon)]);
    kill(daemon, Signal::SIGTERM).context("kill(SIGTERM) of the daemon")?;
    let code = ctx.join(daemon)?;
    let gone = crate::sys::proc::state(daemon.as_raw()).is_none();
    say!(ctx, "stopped", &[("pid", &daemon), ("code", &code)]);
    ctx.claim(
        "unix_daemon_exitcode",
        code,
        "== -15 (SIGTERM)",
        code == -15 && gone,
    );
    Ok(())
}

fn state_letter(s: Option<char>) -> char {
    s.unwrap_or('?')
}

fn next_note(r: &std::os::fd::OwnedFd, what: &str) -> Result<Note> {
    Note::recv(r, STATE_TIMEOUT)?.with_context(|| format!("no word from {what}"))
}

/// The first child: a new session, then the second fork. Waits for the lesson's word
/// before exiting, so that the daemon's hello shows its first parent.
fn first_child(main: i32, note_fd: RawFd, go_fd: RawFd) -> i32 {
    let sid = match nix::unistd::setsid() {
        Ok(sid) => i64::from(sid.as_raw()),
        Err(_) => -1,
    };
    Note::tell(note_fd, Said::Setsid, sid);
    if sid < 0 {
        return 2;
    }
    // A pipe whose write end only this process holds: its child reads end of file the
    // moment this process exits, without polling.
    let mut alive: [nix::libc::c_int; 2] = [-1, -1];
    // SAFETY: pipe(2) into a stack array; async-signal-safe.
    if unsafe { nix::libc::pipe(alive.as_mut_ptr()) } != 0 {
        alive = [-1, -1];
    }
    // SAFETY: this process is a fork of a multi-threaded one, with a single thread; the
    // new child only makes async-signal-safe calls (see `daemon_child`).
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            // SAFETY: close(2) of our copy of the write end; async-signal-safe.
            unsafe { nix::libc::close(alive[1]) };
            daemon_child(main, note_fd, alive[0])
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            // SAFETY: close(2) of our copy of the read end; async-signal-safe.
            unsafe { nix::libc::close(alive[0]) };
            Note::tell(note_fd, Said::Forked, i64::from(child.as_raw()));
            let mut byte = [0u8; 1];
            // SAFETY: read(2) into a stack buffer; async-signal-safe.
            unsafe { nix::libc::read(go_fd, byte.as_mut_ptr().cast(), 1) };
            0
        }
        Err(errno) => {
            Note::send(note_fd, -1, errno as i64);
            3
        }
    }
}

/// The daemon: say hello, wait to be re-parented, detach, then wait for a signal.
/// `creator_alive` reads end of file once the first child has exited.
fn daemon_child(main: i32, note_fd: RawFd, creator_alive: RawFd) -> ! {
    use nix::libc;
    let creator = nix::unistd::getppid().as_raw();
    let sid = nix::unistd::getsid(None).map_or(-1, |s| i64::from(s.as_raw()));
    Note::tell(note_fd, Said::Hello, sid);
    // Sleep until the first child has exited (end of file on its pipe), then wait
    // (bounded) until the kernel has given us a new parent: the pipe closes a moment
    // before the exiting process hands its children over. PR_SET_PDEATHSIG fires when
    // the parent exits, so setting it before this point would have killed us when the
    // first child exited: set it only now, then check the parent again, in case the main
    // process died in between.
    if creator_alive >= 0 {
        let mut byte = [0u8; 1];
        loop {
            // SAFETY: read(2) into a stack buffer; async-signal-safe.
            let n = unsafe { libc::read(creator_alive, byte.as_mut_ptr().cast(), 1) };
            if n >= 0 || nix::errno::Errno::last() != nix::errno::Errno::EINTR {
                break;
            }
        }
        // SAFETY: close(2) of our own descriptor; async-signal-safe.
        unsafe { libc::close(creator_alive) };
    }
    crate::procs::await_adoption(creator, main);
    Note::tell(note_fd, Said::Reparented, 0);
    // Detach from everything inherited: the working directory, the file mode mask, the
    // terminal or pipes on the standard streams, every other descriptor.
    // SAFETY: chdir, umask, open, dup2 and close are async-signal-safe; the paths are
    // static C strings; only this process's descriptors are touched.
    unsafe {
        libc::chdir(c"/".as_ptr());
        libc::umask(0);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            if null > 2 {
                libc::close(null);
            }
        }
        for fd in 3..1024 {
            if fd != note_fd {
                libc::close(fd);
            }
        }
    }
    Note::tell(note_fd, Said::Detached, 0);
    // SAFETY: close(2) of our own descriptor; async-signal-safe.
    unsafe { libc::close(note_fd) };
    loop {
        // A real daemon would wait for work here (accept, select…): we wait for a signal.
        nix::unistd::pause();
    }
}

/// The role of both Python children: `daemon` says which one it is.
fn process(c: &mut ChildCtx) -> Result<i32> {
    // CPython copies the flag into the child's own configuration at start
    // (`_current_process._config['daemon']`): the child knows it is daemonic.
    let daemonic = c
        .args
        .get("daemon")
        .and_then(|v| v.as_bool())
        .context("child argument daemon is missing")?;
    let task_ms = c.arg_i64("task_ms")?.max(0) as u64;
    let ppid = nix::unistd::getppid().as_raw();
    c.say(
        if daemonic { "d_hello" } else { "w_hello" },
        &[("pid", &c.pid), ("ppid", &ppid)],
    )?;
    c.reply(true)?;
    loop {
        match c.recv()? {
            Down::Value(ObsValue::Str(cmd)) if cmd == START_CHILD => {
                match start_process(daemonic) {
                    Ok(started) => {
                        c.reply(started.pid)?;
                        c.reply(started.t_forked as i64)?;
                        c.reply(started.exitcode)?;
                        c.reply(started.t_reaped as i64)?;
                    }
                    Err(StartError::Refused(msg)) => {
                        c.act(
                            "exception",
                            &[
                                ("type", DAEMON_CHILD_ERROR_TYPE.into()),
                                ("message", msg.into()),
                            ],
                        )?;
                        say!(
                            c,
                            "d_refused",
                            &[("type", &DAEMON_CHILD_ERROR_TYPE), ("error", &msg)],
                        )?;
                        c.reply(msg)?;
                    }
                    Err(StartError::Failed(e)) => {
                        c.reply(format!("{e:#}"))?;
                        return Err(e);
                    }
                }
            }
            Down::Go => {
                // The job: time passing, standing in for real work.
                c.act("task_start", &[("ms", (task_ms as i64).into())])?;
                say!(c, "w_work", &[("ms", &task_ms)])?;
                c.reply(true)?;
                std::thread::sleep(Duration::from_millis(task_ms));
                c.act("task_done", &[])?;
                say!(c, "w_done", &[])?;
                return Ok(0);
            }
            Down::Stop => return Ok(0),
            Down::Value(_) => {}
        }
    }
}

/// A child that was started, ran, and was joined.
struct Started {
    pid: i32,
    t_forked: u64,
    exitcode: i32,
    t_reaped: u64,
}

enum StartError {
    /// What CPython's `start()` raises in a daemonic process.
    Refused(&'static str),
    Failed(anyhow::Error),
}

/// `Process(target=f).start()` then `join()`, in a child of the lesson.
fn start_process(daemonic: bool) -> Result<Started, StartError> {
    // CPython, BaseProcess.start():
    //     assert not _current_process._config.get('daemon'), \
    //            'daemonic processes are not allowed to have children'
    // The check comes before any fork: nothing is created.
    if daemonic {
        return Err(StartError::Refused(DAEMON_CHILD_ERROR));
    }
    let go = || -> Result<Started> {
        let (r, w) = procs::pipe()?;
        let fd = w.as_raw_fd();
        let child_body = move || {
            Note::send(fd, 0, 0);
            0
        };
        // SAFETY: the child writes one note (clock_gettime, getpid, getppid, write) and
        // returns 0 to _exit: async-signal-safe only.
        let pid = unsafe { procs::fork_child(child_body) }?;
        drop(w);
        let t_forked = match Note::recv(&r, STATE_TIMEOUT)? {
            Some(n) => n.t_ns,
            None => now_ns(),
        };
        let exitcode = procs::reap(pid)?;
        Ok(Started {
            pid: pid.as_raw(),
            t_forked,
            exitcode,
            t_reaped: now_ns(),
        })
    };
    go().map_err(StartError::Failed)
}
