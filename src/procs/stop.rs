//! Stopping a run: the stop flag (a signal, a closed pipe, a failure), the signal handlers
//! and the watchdog's hard exit, and the one writer of diagnostics that never panics.

use super::*;
use anyhow::{Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Why the run must stop: 0 not at all, a signal number, or [`STOP_BROKEN_PIPE`].
pub(super) static STOP: AtomicI32 = AtomicI32::new(0);

/// The output was closed (`mp-demo … | head -1`): stop quietly.
pub const STOP_BROKEN_PIPE: i32 = -1;

/// The run failed from outside the lesson (its output could not be written, a child
/// stayed stopped): stop, and exit 1 with [`failure`]'s message.
pub const STOP_FAILED: i32 = -2;

/// What failed, when the stop is [`STOP_FAILED`].
pub(super) static FAILURE: OnceLock<String> = OnceLock::new();

/// End the run as failed, `msg` saying why (one line): every child is killed at once, so
/// every wait of the lesson on one returns.
pub fn fail_run(msg: String) {
    let _ = FAILURE.set(msg);
    request_stop(STOP_FAILED);
    kill_children();
}

/// The message of a [`STOP_FAILED`] stop.
pub fn failure() -> Option<&'static str> {
    FAILURE.get().map(String::as_str)
}

/// Whether a `--step` pause is waiting for a key (a stopped child is no hang then).
pub(super) static PAUSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn set_paused(on: bool) {
    PAUSED.store(on, Ordering::SeqCst);
}

pub fn paused() -> bool {
    PAUSED.load(Ordering::SeqCst)
}

/// Ask the whole run to stop (a signal, or a closed output). The first reason wins.
pub fn request_stop(reason: i32) {
    let _ = STOP.compare_exchange(0, reason, Ordering::SeqCst, Ordering::SeqCst);
}

/// The reason the run must stop, if it must.
pub fn stop_reason() -> Option<i32> {
    match STOP.load(Ordering::SeqCst) {
        0 => None,
        r => Some(r),
    }
}

/// Sleep up to `dur`, waking early if a stop is requested. Returns false if stopped.
///
/// It really sleeps (`nanosleep`, in slices of at most 100 ms), so the kernel shows the
/// pacing for what it is: a process sleeping on a timer.
pub fn sleep(dur: Duration) -> bool {
    let deadline = Instant::now() + dur;
    loop {
        if stop_reason().is_some() {
            return false;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}

/// SIGINT, SIGTERM, SIGHUP: request a stop, kill the children so every blocking call of
/// the lesson returns, and start a watchdog in case the main thread does not finish.
pub(super) fn install_signal_handlers() -> Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]).context("signal setup")?;
    thread("signals", move || {
        for sig in signals.forever() {
            let first = stop_reason().is_none();
            request_stop(sig);
            kill_children();
            if first {
                // The promise is "within a second or two": cleanup normally takes
                // milliseconds; past 2 s, end it from here (children killed, files removed).
                let _ = thread("watchdog", move || {
                    std::thread::sleep(Duration::from_secs(2));
                    hard_exit(128 + sig);
                });
            } else {
                hard_exit(128 + sig);
            }
        }
    })?;
    Ok(())
}

/// The last resort: the main thread did not finish. Restore the terminal, kill what is
/// left, remove our files, and exit.
pub(super) fn hard_exit(code: i32) -> ! {
    let _ = crossterm::terminal::disable_raw_mode();
    kill_children();
    if let Some(dir) = RUN_DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
    // The directory is gone, so the janitor's work is done; a stopped one would stay.
    if let Some(pid) = janitor_pid() {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    // The main thread may have said how the run ended already, and be slow to exit only
    // (seen in CI: 10 lessons at once, each in D in the kernel's exit for 2 s): one line.
    last_word(format_args!("mp-demo: interrupted"));
    #[allow(clippy::disallowed_methods)] // the one hard exit: see clippy.toml
    std::process::exit(code)
}

/// Whether the run's last line on stderr, the one saying how it ended, is written.
static SPOKEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The line saying how the run ended: written once, by the main thread or by the
/// watchdog's [`hard_exit`], whichever comes first; the other says nothing.
pub fn last_word(line: std::fmt::Arguments<'_>) {
    if !SPOKEN.swap(true, Ordering::SeqCst) {
        diag(line);
    }
}

/// Write one line to stderr, ignoring a failure: the diagnostic path must never panic
/// (`eprintln!` does, on a hung-up terminal's EIO or a full device), or the thread that
/// should end the process dies instead.
pub fn diag(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(line).and_then(|()| err.write_all(b"\n"));
    let _ = err.flush();
}
