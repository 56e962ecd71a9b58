//! Lesson `fork`: Python's `Process`, `start`, `is_alive`, `join`, `exitcode` and
//! `terminate`, on a real `fork()`.
//!
//! The two forked children only do async-signal-safe work (write a note, block in `read`
//! or `pause`, `_exit`): the parent is multi-threaded. The third child is spawned
//! (fork + exec of this binary), to show the other way of starting a process.

use super::{LessonDef, Opts};
use crate::child::ChildCtx;
use crate::ctx::{Ctx, Expect};
use crate::event::How;
use crate::procs::{self, Note};
use crate::{say, say_for, step};
use anyhow::{Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

/// This lesson's words, whose keys the word macros check at compile time.
const WORDS: &crate::words::keys::Table = &crate::words::keys::FORK;

pub static LESSON: LessonDef = LessonDef {
    name: "fork",
    words_src: include_str!("../../lessons/fork.toml"),
    options: &[],
    run,
    validate: None,
    roles: &[("spawned", spawned)],
};

/// How long the kernel gets to reach a state we wait for; far more than it needs.
const STATE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the spawned child tells the parent: it is running, and its parent is `ppid`.
#[derive(serde::Serialize, serde::Deserialize, Debug)]
enum Reply {
    Hello { ppid: i32 },
}

fn run(ctx: &mut Ctx<'_>, _opts: &Opts) -> Result<()> {
    let child = fork_child(ctx)?;
    let zombie = alive_then_zombie(ctx, &child)?;
    join(ctx, child.pid, zombie)?;
    terminate(ctx)?;
    spawn(ctx)?;
    Ok(())
}

/// The forked child of the first phases, and the pipes to and from it.
struct Child {
    pid: Pid,
    /// Its notes: the hello, then the goodbye before it exits.
    note_r: OwnedFd,
    /// Our copy of the write end, held until the lesson ends (a missing goodbye is waited
    /// for, not cut short by end of file).
    _note_w: OwnedFd,
    /// A byte here lets it exit.
    go_w: OwnedFd,
}

/// `Process.start()`: fork a child; both sides narrate, each line stamped where it
/// happened; the child's parent is the main process.
fn fork_child(ctx: &mut Ctx<'_>) -> Result<Child> {
    let me = ctx.main_pid;
    let my_parent = nix::unistd::getppid().as_raw();
    let janitor = ctx.janitor();
    step!(ctx, "start", &[("main", &me), ("janitor", &janitor)])?;
    say!(ctx, "parent_intro", &[("pid", &me), ("ppid", &my_parent)]);
    ctx.pause(1200)?;
    say!(ctx, "about_to_fork", &[]);
    ctx.pause(1200)?;

    // The child tells us about itself through a pipe, and waits on another for "go".
    let (note_r, note_w) = procs::pipe()?;
    let (go_r, go_w) = procs::pipe()?;
    let (note_fd, go_fd) = (note_w.as_raw_fd(), go_r.as_raw_fd());
    let child_body = move || {
        Note::send(note_fd, 0, 0);
        let mut byte = [0u8; 1];
        // SAFETY: read(2) into a stack buffer; async-signal-safe.
        unsafe { nix::libc::read(go_fd, byte.as_mut_ptr().cast(), 1) };
        Note::send(note_fd, 1, 0);
        0
    };
    // SAFETY: the child only calls Note::send (clock_gettime, getpid, getppid, write) and
    // read(2), all async-signal-safe, then returns its exit status to _exit.
    let child = unsafe { ctx.fork("child", child_body) }?;
    let returned_at = crate::event::now_ns();
    drop(go_r);
    let hello = Note::recv(&note_r, STATE_TIMEOUT)?.context("the child did not write its note")?;
    // Both sides narrate; each line is stamped where it happened, and told in that order.
    let parent_line = |ctx: &Ctx<'_>| {
        say_for!(
            ctx,
            me,
            returned_at,
            "parent_after_fork",
            &[("child", &child)]
        );
    };
    let child_line = |ctx: &Ctx<'_>| {
        say_for!(
            ctx,
            hello.pid,
            hello.t_ns,
            "child_hello",
            &[("pid", &hello.pid), ("ppid", &hello.ppid)],
        );
    };
    if returned_at <= hello.t_ns {
        parent_line(ctx);
        child_line(ctx);
    } else {
        child_line(ctx);
        parent_line(ctx);
    }
    ctx.observe("parent_pid", me);
    ctx.observe("child_pid", hello.pid);
    ctx.claim("child_ppid", hello.ppid, Expect::eq(me).of("parent_pid"));
    ctx.show(2000)?;
    Ok(Child {
        pid: child,
        note_r,
        _note_w: note_w,
        go_w,
    })
}

/// `is_alive()` while it waits (`S`); told to go, it exits and is a zombie (`Z`) until
/// joined. Whether the zombie was seen.
fn alive_then_zombie(ctx: &mut Ctx<'_>, child: &Child) -> Result<bool> {
    let pid = child.pid;
    step!(ctx, "alive", &[("pid", &pid)])?;
    let state = ctx.wait_state(pid, &['S'], STATE_TIMEOUT)?;
    say!(
        ctx,
        "is_alive",
        &[("pid", &pid), ("state", &state.map_or('?', |s| s))],
    );
    ctx.show(2500)?;

    // Said before the write: the child's answer comes at once, and is told after it.
    say!(ctx, "go", &[("pid", &pid)]);
    nix::unistd::write(&child.go_w, b"g").context("write() to the child's pipe")?;
    if let Some(bye) = Note::recv(&child.note_r, STATE_TIMEOUT)? {
        say_for!(ctx, bye.pid, bye.t_ns, "child_exit", &[]);
    }
    let zombie = ctx.wait_state(pid, &['Z'], STATE_TIMEOUT)? == Some('Z');
    // The step comes once the child is a zombie, so the suggested `ps` shows
    // Z <defunct>, not the S of a child that has not exited yet.
    step!(ctx, "zombie", &[("pid", &pid)])?;
    if zombie {
        say!(ctx, "zombie", &[("pid", &pid)]);
    } else {
        say!(ctx, "no_zombie", &[("pid", &pid)]);
    }
    ctx.show(3000)?;
    Ok(zombie)
}

/// `join()` reaps the zombie: its `exitcode`, and the process is gone.
fn join(ctx: &mut Ctx<'_>, child: Pid, zombie: bool) -> Result<()> {
    step!(ctx, "join", &[("pid", &child)])?;
    say!(ctx, "join", &[("pid", &child)]);
    let code = ctx.join(child)?;
    let gone = crate::sys::proc::state(child.as_raw()).is_none();
    ctx.settle()?;
    say!(ctx, "exitcode", &[("code", &code), ("pid", &child)]);
    ctx.claim("child_exitcode", code, Expect::eq(0));
    ctx.claim("zombie_observed", zombie, Expect::eq(true));
    ctx.claim("gone_after_join", gone, Expect::eq(true));
    ctx.show(2000)?;
    Ok(())
}

/// `terminate()`: SIGTERM to a child asleep in pause(); its exitcode is -15.
fn terminate(ctx: &mut Ctx<'_>) -> Result<()> {
    let me = ctx.main_pid;
    step!(ctx, "terminate", &[("main", &me)])?;
    let (note2_r, note2_w) = procs::pipe()?;
    let note2_fd = note2_w.as_raw_fd();
    let child_body = move || {
        Note::send(note2_fd, 0, 0);
        loop {
            nix::unistd::pause();
        }
    };
    // SAFETY: the child writes a note and then only calls pause(2), all async-signal-safe.
    let sleeper = unsafe { ctx.fork("sleeper", child_body) }?;
    drop(note2_w);
    let hello2 =
        Note::recv(&note2_r, STATE_TIMEOUT)?.context("the sleeper did not write its note")?;
    say_for!(ctx, hello2.pid, hello2.t_ns, "sleeper_hello", &[]);
    ctx.wait_state(sleeper, &['S'], STATE_TIMEOUT)?;
    ctx.show(1500)?;
    say!(ctx, "terminate", &[("pid", &sleeper)]);
    kill(sleeper, Signal::SIGTERM).context("kill(SIGTERM)")?;
    let code = ctx.join(sleeper)?;
    say!(ctx, "terminated", &[("code", &code)]);
    ctx.claim("terminated_exitcode", code, Expect::eq(-15).note("SIGTERM"));
    ctx.pause(2000)?;
    Ok(())
}

/// The other way to start a process: spawn (fork + exec of this binary); its parent is
/// the main process too.
fn spawn(ctx: &mut Ctx<'_>) -> Result<()> {
    let me = ctx.main_pid;
    step!(ctx, "spawn", &[])?;
    say!(ctx, "spawn_intro", &[]);
    ctx.pause(1500)?;
    let spawned = ctx.spawn("spawned", "spawned", serde_json::json!({}))?;
    let Reply::Hello { ppid: their_ppid } = spawned.decode(&spawned.reply(STATE_TIMEOUT)?)?;
    let code = ctx.join(spawned.pid)?;
    ctx.settle()?;
    say!(ctx, "spawn_done", &[("pid", &spawned.pid), ("code", &code)]);
    ctx.claim("spawned_ppid", their_ppid, Expect::eq(me).of("parent_pid"));
    ctx.pause(1500)?;
    say!(
        ctx,
        "which_way",
        &[
            ("fork", &How::Fork.as_str()),
            ("spawn", &How::Spawn.as_str()),
        ],
    );
    ctx.show(0)
}

/// The spawned child: a fresh program, connected back over ipc-channel.
fn spawned(c: &mut ChildCtx) -> Result<i32> {
    let exe = crate::sys::proc::link(c.pid, "exe").unwrap_or_else(|| "mp-demo".into());
    let ppid = nix::unistd::getppid().as_raw();
    say!(
        c,
        "spawned_hello",
        &[("pid", &c.pid), ("ppid", &ppid), ("exe", &exe)],
    )?;
    c.tell(&Reply::Hello { ppid })?;
    Ok(0)
}
