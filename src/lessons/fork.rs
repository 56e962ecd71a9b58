//! Lesson `fork`: Python's `Process`, `start`, `is_alive`, `join`, `exitcode` and
//! `terminate`, on a real `fork()`.
//!
//! The two forked children only do async-signal-safe work (write a note, block in `read`
//! or `pause`, `_exit`): the parent is multi-threaded. The third child is spawned
//! (fork + exec of this binary), to show the other way of starting a process.

use super::{LessonDef, Opts};
use crate::child::ChildCtx;
use crate::ctx::Ctx;
use crate::event::{How, ObsValue};
use crate::procs::{self, Note};
use crate::{say, say_for, step};
use anyhow::{Context, Result};
use nix::sys::signal::{kill, Signal};
use std::os::fd::AsRawFd;
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

fn run(ctx: &mut Ctx<'_>, _opts: &Opts) -> Result<()> {
    let me = ctx.main_pid;
    let my_parent = nix::unistd::getppid().as_raw();
    step!(ctx, "start", &[("main", &me)])?;
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
    ctx.claim(
        "child_ppid",
        hello.ppid,
        &format!("== parent_pid ({me})"),
        hello.ppid == me,
    );
    ctx.pause(2000)?;

    step!(ctx, "alive", &[("pid", &child)])?;
    let state = ctx.wait_state(child, &['S'], STATE_TIMEOUT)?;
    say!(
        ctx,
        "is_alive",
        &[("pid", &child), ("state", &state.map_or('?', |s| s))],
    );
    ctx.pause(2500)?;

    nix::unistd::write(&go_w, b"g").context("write() to the child's pipe")?;
    say!(ctx, "go", &[("pid", &child)]);
    if let Some(bye) = Note::recv(&note_r, STATE_TIMEOUT)? {
        say_for!(ctx, bye.pid, bye.t_ns, "child_exit", &[]);
    }
    let zombie = ctx.wait_state(child, &['Z'], STATE_TIMEOUT)? == Some('Z');
    // The step (and its --step pause) comes once the child is a zombie, so the suggested
    // `ps` shows Z <defunct>, not the S of a child that has not exited yet.
    step!(ctx, "zombie", &[("pid", &child)])?;
    if zombie {
        say!(ctx, "zombie", &[("pid", &child)]);
    } else {
        say!(ctx, "no_zombie", &[("pid", &child)]);
    }
    ctx.pause(3000)?;

    step!(ctx, "join", &[("pid", &child)])?;
    say!(ctx, "join", &[("pid", &child)]);
    let code = ctx.join(child)?;
    let gone = crate::sys::proc::state(child.as_raw()).is_none();
    say!(ctx, "exitcode", &[("code", &code), ("pid", &child)]);
    ctx.claim("child_exitcode", code, "== 0", code == 0);
    ctx.claim("zombie_observed", zombie, "== true", zombie);
    ctx.claim("gone_after_join", gone, "== true", gone);
    ctx.pause(2000)?;

    step!(ctx, "terminate", &[])?;
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
    ctx.pause(1500)?;
    say!(ctx, "terminate", &[("pid", &sleeper)]);
    kill(sleeper, Signal::SIGTERM).context("kill(SIGTERM)")?;
    let code = ctx.join(sleeper)?;
    say!(ctx, "terminated", &[("code", &code)]);
    ctx.claim("terminated_exitcode", code, "== -15 (SIGTERM)", code == -15);
    ctx.pause(2000)?;

    step!(ctx, "spawn", &[])?;
    say!(ctx, "spawn_intro", &[]);
    ctx.pause(1500)?;
    let spawned = ctx.spawn("spawned", "spawned", serde_json::json!({}))?;
    let their_ppid = spawned.reply(STATE_TIMEOUT)?;
    let code = ctx.join(spawned.pid)?;
    say!(ctx, "spawn_done", &[("pid", &spawned.pid), ("code", &code)]);
    ctx.claim(
        "spawned_ppid",
        their_ppid.clone(),
        &format!("== parent_pid ({me})"),
        their_ppid == ObsValue::from(me),
    );
    ctx.pause(1500)?;
    say!(
        ctx,
        "which_way",
        &[
            ("fork", &How::Fork.as_str()),
            ("spawn", &How::Spawn.as_str()),
        ],
    );
    Ok(())
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
    c.reply(ppid)?;
    Ok(0)
}
