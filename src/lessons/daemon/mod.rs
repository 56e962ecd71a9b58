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
use crate::ctx::Ctx;
use anyhow::Result;
use std::time::Duration;

mod python;
mod unix;

/// This lesson's words, whose keys the word macros check at compile time.
const WORDS: &crate::words::keys::Table = &crate::words::keys::DAEMON;

pub static LESSON: LessonDef = LessonDef {
    name: "daemon",
    words_src: include_str!("../../../lessons/daemon.toml"),
    options: &[],
    run,
    validate: None,
    roles: &[("process", python::process)],
};

/// How long the kernel gets to reach a state we wait for; far more than it needs.
const STATE_TIMEOUT: Duration = Duration::from_secs(5);

fn run(ctx: &mut Ctx<'_>, _opts: &Opts) -> Result<()> {
    python::python_daemon(ctx)?;
    ctx.pause(2500)?;
    unix::unix_daemon(ctx)?;
    // The last step's pause, once its story is told.
    ctx.show(0)
}

fn state_letter(s: Option<char>) -> char {
    s.unwrap_or('?')
}
