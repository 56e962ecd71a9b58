//! Where a sleeper sleeps, from `/proc`: the system call and the descriptor it waits on.

use super::*;
use crate::ctx::Ctx;
use crate::event::now_ns;
use crate::procs::{self};
use crate::say;
use crate::sys::proc::{self, Call};
use anyhow::Result;
use nix::unistd::Pid;
use std::time::{Duration, Instant};

/// A process seen asleep, and where.
pub(super) struct Blocked {
    /// The system call, when `/proc/<pid>/syscall` could be read.
    pub(super) call: Option<Call>,
    /// Its first argument: a descriptor for `read` and `flock`.
    pub(super) arg0: u64,
}

impl Blocked {
    pub(super) fn call(&self) -> String {
        match self.call {
            Some(c @ (Call::Read | Call::Flock)) => format!("{}({})", c.name(), self.arg0),
            Some(c) => format!("{}()", c.name()),
            None => "?".into(),
        }
    }

    pub(super) fn name(&self) -> &'static str {
        self.call.map_or("?", Call::name)
    }
}

/// Wait until the observer sees `pid` asleep (`S`) and a fresh look at `/proc` confirms
/// it sleeps in one of `expected` system calls (when `/proc/<pid>/syscall` can be read);
/// then emit a `blocked` event about it. If it never does within the timeout, say so
/// and return `None`.
pub(super) fn wait_blocked(
    ctx: &Ctx<'_>,
    pid: Pid,
    expected: &[Call],
    waits_for: &str,
) -> Result<Option<Blocked>> {
    let deadline = Instant::now() + STATE_TIMEOUT;
    let mut last = String::from("-");
    if ctx.wait_state(pid, &['S'], STATE_TIMEOUT)?.is_some() {
        loop {
            let state = proc::state(pid.as_raw());
            let (seen, matches) = match proc::syscall(pid.as_raw()) {
                proc::Syscall::Unavailable => (
                    Blocked {
                        call: None,
                        arg0: 0,
                    },
                    true,
                ),
                proc::Syscall::Running => (
                    Blocked {
                        call: None,
                        arg0: 0,
                    },
                    false,
                ),
                proc::Syscall::In { nr, arg0 } => {
                    let call = Call::from_nr(nr);
                    let matches = call.is_some_and(|c| expected.contains(&c));
                    (Blocked { call, arg0 }, matches)
                }
            };
            if state == Some('S') && matches {
                let t = now_ns();
                ctx.act_at(
                    pid.as_raw(),
                    t,
                    "blocked",
                    &[
                        ("state", "S".into()),
                        ("syscall", seen.name().into()),
                        ("waits_for", waits_for.into()),
                    ],
                );
                return Ok(Some(seen));
            }
            last = format!("{} {}", state.unwrap_or('?'), seen.call());
            if Instant::now() > deadline {
                break;
            }
            ctx.check()?;
            procs::sleep(Duration::from_millis(1));
        }
    }
    say!(ctx, "not_blocked", &[("pid", &pid), ("seen", &last)]);
    Ok(None)
}

/// What descriptor `fd` of `pid` is: `pipe:[1234]`, or a file's name.
pub(super) fn fd_target(pid: Pid, fd: u64) -> String {
    i32::try_from(fd)
        .ok()
        .and_then(|fd| proc::fd_target(pid.as_raw(), fd))
        .unwrap_or_else(|| "?".into())
}
