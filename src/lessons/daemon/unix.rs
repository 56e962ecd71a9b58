//! Part two: the Unix daemon. A forked child calls `setsid()` and forks again; its child
//! detaches and is re-parented to the main process (a subreaper) when its creator exits.
//! Both are bare forks: async-signal-safe calls only.

use super::*;
use crate::ctx::Expect;
use crate::event::{How, ObsValue};
use crate::procs::{self, Note};
use crate::sys::proc::Ids;
use crate::{say, say_for, step};
use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

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

/// The Unix daemon's first child and the pipes to it: its processes' notes come up
/// `notes`; a byte on `go` lets the first child exit.
struct Forks {
    first: Pid,
    notes: OwnedFd,
    go: OwnedFd,
}

/// Part two: the Unix daemon.
pub(super) fn unix_daemon(ctx: &mut Ctx<'_>) -> Result<()> {
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
    // Each step of the children waits at the gate until the reader has read the last.
    procs::open_gate(&go_w)?;
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
    ctx.keep_up();
    // The daemon's spawn is learnt from the notes, after it happened.
    let news = ctx.expect_news();
    procs::open_gate(&forks.go)?;
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
    drop(news);
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
    procs::open_gate(&forks.go)?;
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
    // Its new parent, and what it did at once when adopted (await_adoption).
    say_for!(ctx, n.pid, n.t_ns, "reparented", &[("ppid", &n.ppid)]);
    ctx.pause(2000)?;
    ctx.keep_up();
    // What the daemon does is learnt from its note, after it happened.
    let news = ctx.expect_news();
    procs::open_gate(&forks.go)?;
    let n = next_note(&forks.notes, "the daemon's detaching")?;
    if n.kind() != Some(Said::Detached) {
        bail!("the daemon (PID {daemon}) could not detach");
    }
    say_for!(ctx, n.pid, n.t_ns, "detach", &[]);
    drop(news);
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
    say!(
        ctx,
        if (theirs.tty_nr == 0) {
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
    say!(ctx, "compare", &[("msid", &mine.sid), ("sid", &theirs.sid)]);
    ctx.show(0)?;
    let differs = theirs.sid != mine.sid;
    ctx.observe("main_sid", mine.sid);
    ctx.observe("daemon_sid", theirs.sid);
    ctx.claim(
        "daemon_sid_differs",
        differs,
        Expect::eq(true).note(format!("{} ≠ {}", theirs.sid, mine.sid)),
    );
    ctx.claim("daemon_tty_nr", theirs.tty_nr, Expect::eq(0));
    ctx.claim("daemon_ppid", theirs.ppid, Expect::eq(me).of("main_pid"));
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
    ctx.show(0)?;
    ctx.claim(
        "unix_daemon_exitcode",
        code,
        Expect::eq(-15).note("SIGTERM").and("daemon_gone", gone),
    );
    Ok(())
}

fn next_note(r: &std::os::fd::OwnedFd, what: &str) -> Result<Note> {
    Note::recv(r, STATE_TIMEOUT)?.with_context(|| format!("no word from {what}"))
}

/// The first child: a new session, then the second fork, then its exit, each at the
/// lesson's word (the gate), so that the reader has read one before the next comes and
/// the daemon's hello shows its first parent.
fn first_child(main: i32, note_fd: RawFd, go_fd: RawFd) -> i32 {
    if !procs::wait_byte(go_fd) {
        return 4;
    }
    let sid = match nix::unistd::setsid() {
        Ok(sid) => i64::from(sid.as_raw()),
        Err(_) => -1,
    };
    Note::tell(note_fd, Said::Setsid, sid);
    if sid < 0 {
        return 2;
    }
    if !procs::wait_byte(go_fd) {
        return 4;
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
            daemon_child(main, note_fd, go_fd, alive[0])
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            // SAFETY: close(2) of our copy of the read end; async-signal-safe.
            unsafe { nix::libc::close(alive[0]) };
            Note::tell(note_fd, Said::Forked, i64::from(child.as_raw()));
            procs::wait_byte(go_fd);
            0
        }
        Err(errno) => {
            Note::send(note_fd, -1, errno as i64);
            3
        }
    }
}

/// The daemon: say hello, wait to be re-parented, detach (at the lesson's word on
/// `go_fd`), then wait for a signal. `creator_alive` reads end of file once the first
/// child has exited.
fn daemon_child(main: i32, note_fd: RawFd, go_fd: RawFd, creator_alive: RawFd) -> ! {
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
    if !procs::wait_byte(go_fd) {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(4) };
    }
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
