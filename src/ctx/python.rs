//! CPython itself, run by a lesson: `python3 ARGS…` as a real child of the
//! lesson (in the stream, reaped, killed at its bound or when the run stops), its output
//! handed back to the lesson to tell. Lessons that show what CPython does (`cost`'s
//! timing, `process`'s mistakes) run it here, once, the same way.

use super::{Ctx, Stopped};
use crate::event::How;
use crate::procs;
use anyhow::{Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a run of `python3` gave: its exit code (Python's convention: `-N` for signal N),
/// and what it wrote.
pub struct PyOut {
    pub pid: i32,
    pub exitcode: i32,
    pub stdout: String,
    pub stderr: String,
}

/// [`Ctx::python`], with the lesson's line that says why there is no CPython to show
/// said here: `python_missing` (no `python3` on the `PATH`) or `python_failed` (with
/// `{why}`), keys of the calling lesson's words, checked at compile time like any
/// `say!`. `Some(output)` when it ran; `None` when it could not (said); `?` on errors.
/// `python_or_say!(ctx, &args, bound, started)`.
#[macro_export]
macro_rules! python_or_say {
    ($ctx:expr, $args:expr, $bound:expr, $started:expr $(,)?) => {
        match $ctx.python($args, $bound, $started)? {
            Ok(out) => Some(out),
            Err($crate::ctx::NoPython::Missing) => {
                $crate::say!($ctx, "python_missing", &[]);
                None
            }
            Err($crate::ctx::NoPython::Failed(why)) => {
                $crate::say!($ctx, "python_failed", &[("why", &why)]);
                None
            }
        }
    };
}

/// Why there is no [`PyOut`]: not there, or could not be started.
pub enum NoPython {
    /// No `python3` on `PATH`.
    Missing,
    /// It is there but could not be started (the reason, one line).
    Failed(String),
}

impl Ctx<'_> {
    /// Run `python3 args…` (`-c SCRIPT …`, or a script written to `self.dir`), in the
    /// run's directory and writing no bytecode there, as a child named `python3`, killed once `bound` has
    /// passed (its exit code is then `-9`), and the run stopped if the run must stop.
    /// `started` is called once it runs, with its PID (the lesson says what it runs).
    /// `Ok(Err(_))` when there is no `python3` to run: the lesson says so.
    pub fn python(
        &mut self,
        args: &[&std::ffi::OsStr],
        bound: Duration,
        started: impl FnOnce(&mut Self, i32),
    ) -> Result<std::result::Result<PyOut, NoPython>> {
        let mut cmd = Command::new("python3");
        cmd.args(args)
            .current_dir(&self.dir)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        procs::die_with_parent(&mut cmd);
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Err(NoPython::Missing))
            }
            Err(e) => return Ok(Err(NoPython::Failed(e.to_string()))),
        };
        let pid = Pid::from_raw(child.id() as i32);
        self.spawned(pid.as_raw(), self.main_pid, "python3", How::Spawn);
        started(self, pid.as_raw());
        // The output is read (and the child reaped) on a thread, so that this one can
        // give up when the run is stopped or CPython takes far too long.
        let (tx, rx) = std::sync::mpsc::channel();
        if let Err(e) = procs::thread("python3-wait", move || {
            let _ = tx.send(child.wait_with_output());
        }) {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = self.join(pid);
            return Err(e);
        }
        let deadline = Instant::now() + bound;
        let output = loop {
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(out) => break out,
                Err(_) if procs::stop_reason().is_some() => {
                    let _ = kill(pid, Signal::SIGKILL);
                    return Err(Stopped.into());
                }
                Err(_) if Instant::now() > deadline => {
                    let _ = kill(pid, Signal::SIGKILL);
                }
                Err(_) => {}
            }
        };
        let output = output.context("waiting for python3")?;
        let exitcode = {
            use std::os::unix::process::ExitStatusExt;
            output
                .status
                .code()
                .or_else(|| output.status.signal().map(|s| -s))
                .unwrap_or(-1)
        };
        self.reaped(pid, exitcode);
        Ok(Ok(PyOut {
            pid: pid.as_raw(),
            exitcode,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }))
    }
}
