//! The terminal, for `--step` and `--quiz`: is there one, and what key was pressed.
//!
//! crossterm's raw mode turns Ctrl-C into a key event (no SIGINT) and stops `\n` from
//! returning the carriage, so raw mode is entered only around a key read, and left on
//! every path by a guard. Key waits poll, so a stop requested meanwhile (SIGTERM from
//! another terminal) ends them too, and a terminal that hung up ends the run.

use std::io::{self, Write};
use std::os::fd::AsFd;

/// The stop reason when the person asked to stop at a prompt (`q`, Esc, Ctrl-D): not a
/// signal, not a failure, so the run ends quietly with exit 0. (`procs::request_stop`
/// takes any reason; -1 and -2 are its own.)
pub const STOP_QUIT: i32 = -3;

/// The person pressed `q` (or Esc, Ctrl-D) at a prompt: stop the run quietly. A reason
/// already given (Ctrl-C, a signal) wins.
pub fn quit() {
    crate::procs::request_stop(STOP_QUIT);
}

/// Whether there is a terminal to read keys from (`/dev/tty`).
pub fn has_terminal() -> bool {
    open_tty().is_ok()
}

fn open_tty() -> io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
}

/// Raw mode for as long as it lives.
struct RawMode;

impl RawMode {
    fn enter() -> io::Result<RawMode> {
        crossterm::terminal::enable_raw_mode()?;
        Ok(RawMode)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

/// A key that matters to mp-demo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    /// Space or Enter: go on.
    Go,
    /// `q`, Esc or Ctrl-D: stop, as the person chose.
    Quit,
    /// Ctrl-C (raw mode turns it into a byte): never returned by [`wait_key`], which
    /// stops the run as the SIGINT it stands for would.
    Interrupt,
    /// A digit (a quiz answer).
    Digit(u8),
    Other,
}

/// The key in the bytes one read returned: in raw mode a key press arrives as one read,
/// so a lone ESC is the Esc key and ESC followed by more is an arrow or function key.
fn classify(bytes: &[u8]) -> Key {
    match bytes {
        [0x1b] => Key::Quit,
        [0x1b, ..] => Key::Other,
        [0x03, ..] => Key::Interrupt, // Ctrl-C (raw mode: no SIGINT)
        [0x04, ..] => Key::Quit,      // Ctrl-D
        [b' ' | b'\r' | b'\n', ..] => Key::Go,
        [b'q' | b'Q', ..] => Key::Quit,
        [d @ b'0'..=b'9', ..] => Key::Digit(d - b'0'),
        _ => Key::Other,
    }
}

/// The terminal hung up (its window closed, `tmux kill-session`): stop the run as a
/// SIGHUP would, through the signal thread, so children are killed and the watchdog set.
fn hung_up() -> io::Result<Option<Key>> {
    let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGHUP);
    crate::procs::request_stop(nix::libc::SIGHUP);
    Ok(None)
}

/// Wait for a key, in raw mode, after dropping keys pressed before the wait (so an
/// impatient double press does not skip a step). `None` if the run is stopping (Ctrl-C
/// pressed now is that: a stop for SIGINT, exit 130, as outside raw mode).
///
/// The terminal is read directly (`poll` + `read` on `/dev/tty`), not through crossterm's
/// event reader: on a hung-up terminal that reader loops for ever on `read` returning 0 or
/// EIO (the fault suite's 100% CPU immortal process). Here end of file, EIO and POLLHUP
/// are the hang-up they mean, and every poll is bounded, so a stop requested meanwhile
/// (SIGTERM from another terminal) ends the wait too.
pub fn wait_key() -> io::Result<Option<Key>> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let Ok(tty) = open_tty() else {
        return hung_up();
    };
    let _raw = match RawMode::enter() {
        Ok(r) => r,
        Err(e) if e.raw_os_error() == Some(nix::libc::EIO) => return hung_up(),
        Err(e) => return Err(e),
    };
    let mut buf = [0u8; 64];
    let mut drained = false;
    loop {
        if crate::procs::stop_reason().is_some() {
            return Ok(None);
        }
        let wait = if drained { 100u16 } else { 0 };
        let mut fds = [PollFd::new(tty.as_fd(), PollFlags::POLLIN)];
        let ready = match poll(&mut fds, PollTimeout::from(wait)) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        if ready == 0 {
            drained = true;
            continue;
        }
        let revents = fds[0].revents().unwrap_or(PollFlags::empty());
        if revents.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL)
            && !revents.contains(PollFlags::POLLIN)
        {
            return hung_up();
        }
        match nix::unistd::read(&tty, &mut buf) {
            Ok(0) | Err(nix::errno::Errno::EIO) => return hung_up(),
            Ok(n) if drained => match classify(&buf[..n]) {
                Key::Interrupt => {
                    crate::procs::request_stop(nix::libc::SIGINT);
                    return Ok(None);
                }
                key => return Ok(Some(key)),
            },
            Ok(_) => {} // pressed before the wait: dropped
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Show `prompt` on stderr, wait for Go or Quit, erase the prompt. True to go on.
/// The prompt is diagnostic output: a failed write of it (stderr closed or hung up) is
/// ignored, and the key wait finds out whether a terminal is still there.
pub fn pause(prompt: &str) -> io::Result<bool> {
    let mut err = io::stderr();
    let _ = write!(err, "{prompt}").and_then(|()| err.flush());
    crate::procs::set_paused(true);
    let go = loop {
        match wait_key() {
            Ok(Some(Key::Go)) => break Ok(true),
            Ok(Some(Key::Quit) | None) => break Ok(false),
            Ok(Some(_)) => {}
            Err(e) => break Err(e),
        }
    };
    crate::procs::set_paused(false);
    let go = go?;
    let _ = write!(err, "\r\x1b[2K").and_then(|()| err.flush());
    Ok(go)
}

/// Ask for a number from 1 to `n` (or Quit). `None` means stop.
pub fn choose(n: usize) -> io::Result<Option<usize>> {
    loop {
        match wait_key()? {
            Some(Key::Digit(d)) if (1..=n).contains(&usize::from(d)) => {
                return Ok(Some(usize::from(d)))
            }
            Some(Key::Quit) | None => return Ok(None),
            _ => {}
        }
    }
}
