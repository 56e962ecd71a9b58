//! `mp-demo replay FILE`: a recorded `--json` stream (or `--record FILE`'s) shown as the
//! human view, at the recorded pace (`--speed` scales it; 0 shows it at once), with
//! `--step` waiting at each step's pause. Nothing is run: no process, no session, no
//! observer; so a recording made on Linux can be shown on any machine.
//!
//! The human view is a function of the stream alone: the live view sees every event as
//! the stream has it ([`crate::narrate::AsStreamed`]), so a replay renders what the run
//! showed, line for line (`tests/it/replay.rs` compares them on every lesson).

use crate::event::{Event, Kind};
use crate::narrate::{human::Human, Render};
use crate::words::Lang;
use crate::{cli, procs, term};
use std::io::BufRead;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How often a replay waiting for the next event lets the view release what it holds.
const SLICE: Duration = Duration::from_millis(50);

/// The signal that asked the replay to stop (0: none yet).
static STOP: std::sync::LazyLock<std::sync::Arc<std::sync::atomic::AtomicUsize>> =
    std::sync::LazyLock::new(Default::default);

/// The signal that stopped the replay: one it caught, or Ctrl-C read as a key at a pause.
fn stopped_by() -> Option<i32> {
    match STOP.load(std::sync::atomic::Ordering::Relaxed) {
        0 => procs::stop_reason().filter(|&r| r == nix::libc::SIGINT),
        sig => Some(sig as i32),
    }
}

/// The events of a recording, in its order, each with its lesson; or the one line that
/// says why it is not one (the file, the line, what is wrong).
fn read(path: &std::path::Path) -> Result<Vec<Event>, String> {
    let name = path.display();
    let input: Box<dyn BufRead> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(path).map_err(|e| format!("{name}: cannot read it: {e}"))?;
        Box::new(std::io::BufReader::new(f))
    };
    let mut events = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let line = line.map_err(|e| format!("{name}: reading line {} failed: {e}", i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let not_ours = |why: String| {
            format!(
                "{name}, line {}: not an event of mp-demo --json: {why}",
                i + 1
            )
        };
        let value: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| not_ours(e.to_string()))?;
        let (_, ev) = Event::from_json(&value, 0).map_err(not_ours)?;
        events.push(ev);
    }
    if !events
        .iter()
        .any(|e| matches!(e.kind, Kind::LessonStart { .. }))
    {
        return Err(format!(
            "{name}: no lesson_start in it: record one with `mp-demo --json LESSON > FILE` or `mp-demo --record FILE LESSON`"
        ));
    }
    Ok(events)
}

/// The language the recording was narrated in (its first `lesson_start`), else the one
/// asked for.
fn recorded_lang(events: &[Event], g: &cli::Globals) -> Lang {
    events
        .iter()
        .find_map(|e| match &e.kind {
            Kind::LessonStart { lang, .. } if lang == "zh" => Some(Lang::Zh),
            Kind::LessonStart { lang, .. } if lang == "en" => Some(Lang::En),
            _ => None,
        })
        .unwrap_or_else(|| g.lang())
}

/// `mp-demo replay FILE`: the exit code is the recorded run's (0 when every lesson ended
/// with every claim held, 1 when one did not or the recording stops before its end), 2
/// for a usage error, 1 for a file that is no recording.
pub(crate) fn replay(m: &clap::ArgMatches, g: &cli::Globals) -> ExitCode {
    let usage = crate::run::usage_error;
    for (flag, on) in [
        ("--json", g.json),
        ("--quiz", g.quiz),
        ("--trace", g.trace.is_some()),
        ("--record", g.record.is_some()),
    ] {
        if on {
            return usage(&format!(
                "{flag} does not go with replay: it shows a recorded run, it does not run one"
            ));
        }
    }
    let path: &std::path::PathBuf = m.get_one("file").expect("required by clap");
    let events = match read(path) {
        Ok(e) => e,
        Err(msg) => {
            procs::diag(format_args!("mp-demo: error: {msg}"));
            return ExitCode::from(1);
        }
    };
    let lang = recorded_lang(&events, g);
    if g.step && !term::has_terminal() {
        return usage(&crate::ui!(
            lang,
            "needs_terminal",
            &[("option", &"--step")]
        ));
    }
    let width = crate::run::terminal_width();
    let mut human = Human::new(std::io::stdout(), lang, width).verbose(g.verbose);
    // The live panel, as a run shows it on a terminal: it is drawn from the events too.
    let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
    if width.is_some() && !dumb && !g.no_progress {
        human = human.with_live_panel();
    }
    let prompt = crate::ui!(lang, "step_prompt", &[]);
    // Ctrl-C, SIGTERM, a hang-up: the replay stops between two events (the panel cleared),
    // as a run does, with its exit code.
    for sig in [nix::libc::SIGINT, nix::libc::SIGTERM, nix::libc::SIGHUP] {
        let _ = signal_hook::flag::register_usize(sig, STOP.clone(), sig as usize);
    }
    match show(&mut human, &events, g, &prompt) {
        Ok(true) => {}
        // Ctrl-C at a pause (read as a key there), or a signal: an interrupt, as in a run.
        Ok(false) if stopped_by().is_some() => {
            let sig = stopped_by().unwrap_or(nix::libc::SIGINT);
            let name = crate::run::signal_name(sig);
            procs::last_word(format_args!(
                "mp-demo: {}",
                crate::ui!(lang, "replay_interrupted", &[("signal", &name)])
            ));
            return ExitCode::from((128 + sig) as u8);
        }
        // `q` at a pause: the person's choice, one quiet line.
        Ok(false) => {
            procs::last_word(format_args!(
                "mp-demo: {}",
                crate::ui!(lang, "replay_quit", &[])
            ));
            return ExitCode::SUCCESS;
        }
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return ExitCode::SUCCESS,
        Err(e) => {
            procs::diag(format_args!(
                "mp-demo: error: writing the replay to stdout failed: {e}"
            ));
            return ExitCode::from(1);
        }
    }
    let ends: Vec<bool> = events
        .iter()
        .filter_map(|e| match e.kind {
            Kind::LessonEnd { ok, .. } => Some(ok),
            _ => None,
        })
        .collect();
    let starts = events
        .iter()
        .filter(|e| matches!(e.kind, Kind::LessonStart { .. }))
        .count();
    if ends.len() == starts && ends.iter().all(|&ok| ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Render the events, each at its recorded moment (scaled by `--speed`), waiting for a
/// key at each pause with `--step`. False if the person pressed q.
fn show(
    human: &mut Human<std::io::Stdout>,
    events: &[Event],
    g: &cli::Globals,
    prompt: &str,
) -> std::io::Result<bool> {
    // The stamp of the event before, unless what came between was no part of the run's
    // pace: a new lesson (its stamps start again), or a person's wait at a key.
    let mut last: Option<u64> = None;
    for ev in events {
        if stopped_by().is_some() {
            human.finish()?;
            return Ok(false);
        }
        if let (Some(prev), false, true) = (
            last,
            matches!(ev.kind, Kind::LessonStart { .. }),
            g.speed > 0.0,
        ) {
            wait(human, prev, ev.t_ns.saturating_sub(prev), g.speed)?;
        }
        last = match ev.kind {
            Kind::Pause { waits: true, .. } => None,
            _ => Some(ev.t_ns),
        };
        human.event(ev)?;
        match ev.kind {
            Kind::Pause { .. } if g.step => {
                human.flush()?;
                let go = human.suspended(&mut || term::pause(prompt))?;
                if !go || procs::stop_reason().is_some() {
                    human.finish()?;
                    return Ok(false);
                }
            }
            // As the live run does once a lesson has ended.
            Kind::LessonEnd { .. } => human.flush()?,
            _ => {}
        }
    }
    human.finish()?;
    Ok(true)
}

/// Wait out `gap` ns of the recording at `speed`, letting the view release what it
/// holds (a sentence waiting for its siblings) as the recorded time goes by.
fn wait(
    human: &mut Human<std::io::Stdout>,
    from: u64,
    gap: u64,
    speed: f64,
) -> std::io::Result<()> {
    let real = Duration::from_nanos(gap).mul_f64(speed);
    let began = Instant::now();
    loop {
        let gone = began.elapsed();
        if gone >= real || stopped_by().is_some() {
            return Ok(());
        }
        std::thread::sleep((real - gone).min(SLICE));
        let recorded = began.elapsed().as_secs_f64() / speed;
        human.tick(from + (recorded * 1e9) as u64)?;
    }
}
