//! The terminal, for `--step` and `--quiz`: is there one, and what key was pressed.
//!
//! crossterm's raw mode turns Ctrl-C into a key event (no SIGINT) and stops `\n` from
//! returning the carriage, so raw mode is entered only around a key read, and left on
//! every path by a guard. Key waits poll, so a stop requested meanwhile (SIGTERM from
//! another terminal) ends them too.

use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use std::io::{self, Write};
use std::time::Duration;

/// Whether there is a terminal to read keys from (crossterm reads `/dev/tty`).
pub fn has_terminal() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .is_ok()
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
    /// `q`, Esc or Ctrl-C: stop.
    Quit,
    /// A digit (a quiz answer).
    Digit(u8),
    Other,
}

fn classify(k: KeyEvent) -> Key {
    if k.modifiers.contains(KeyModifiers::CONTROL)
        && matches!(k.code, KeyCode::Char('c') | KeyCode::Char('d'))
    {
        return Key::Quit;
    }
    match k.code {
        KeyCode::Char(' ') | KeyCode::Enter => Key::Go,
        KeyCode::Char('q') | KeyCode::Char('Q') | KeyCode::Esc => Key::Quit,
        KeyCode::Char(c) if c.is_ascii_digit() => Key::Digit(c as u8 - b'0'),
        _ => Key::Other,
    }
}

/// Wait for a key, in raw mode, after dropping keys pressed before the wait (so an
/// impatient double press does not skip a step). `None` if the run is stopping.
pub fn wait_key() -> io::Result<Option<Key>> {
    let _raw = RawMode::enter()?;
    for _ in 0..256 {
        if !event::poll(Duration::ZERO)? {
            break;
        }
        let _ = event::read()?;
    }
    let mut idle = 0u32;
    loop {
        if crate::procs::stop_reason().is_some() {
            return Ok(None);
        }
        if event::poll(Duration::from_millis(100))? {
            match event::read()? {
                Event::Key(k) if k.kind != KeyEventKind::Release => return Ok(Some(classify(k))),
                _ => idle += 1,
            }
        }
        // A terminal that hung up (its window closed) reads as endless nothing: treat it
        // as the hang-up it is rather than spin.
        if idle > 64 {
            if !has_terminal() {
                crate::procs::request_stop(nix::libc::SIGHUP);
                return Ok(None);
            }
            idle = 0;
        }
    }
}

/// Show `prompt` on stderr, wait for Go or Quit, erase the prompt. True to go on.
pub fn pause(prompt: &str) -> io::Result<bool> {
    let mut err = io::stderr();
    write!(err, "{prompt}")?;
    err.flush()?;
    let go = loop {
        match wait_key()? {
            Some(Key::Go) => break true,
            Some(Key::Quit) | None => break false,
            Some(_) => {}
        }
    };
    write!(err, "\r\x1b[2K")?;
    err.flush()?;
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
