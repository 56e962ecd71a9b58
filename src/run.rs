//! Running lessons: refuse what cannot work before anything starts (a missing
//! terminal, options that do not fit together, an unwritable trace), set up the session,
//! the narrator and the observer, run each lesson in turn, and map how the run ended to
//! the exit code.

use crate::event::{Event, Kind};
use crate::lessons::{LessonDef, Opts};
use crate::words::Lang;
use crate::{cli, ctx, event, narrate, observe, procs, quiz, term};
use anyhow::Result;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// A usage error found before anything runs: one line, exit 2.
pub(crate) fn usage_error(msg: &str) -> ExitCode {
    procs::diag(format_args!("mp-demo: error: {msg}"));
    ExitCode::from(2)
}

/// `mp-demo tour`, `tour --from lock`, `tour fork lock pool`: the lessons chosen, each
/// with its defaults; a name that is no lesson is a usage error (one line, a suggestion).
pub(crate) fn tour(m: &clap::ArgMatches, g: &cli::Globals) -> ExitCode {
    match cli::tour_lessons(m) {
        Ok(defs) => {
            let all: Vec<_> = defs.into_iter().map(|d| (d, Opts::defaults(d))).collect();
            run_lessons(&all, g, true)
        }
        Err(msg) => usage_error(&msg),
    }
}

/// Run lessons one after another in one session (a tour, with a title card between them
/// and a summary at the end); the exit code of the whole.
pub(crate) fn run_lessons(
    defs: &[(&'static LessonDef, Opts)],
    g: &cli::Globals,
    tour: bool,
) -> ExitCode {
    let lang = g.lang();
    let files = match preflight(defs, g, lang) {
        Ok(f) => f,
        Err(code) => return code,
    };
    // Then, before any thread exists: subreaper, private directory, janitor, signals.
    let mut session = match procs::Session::start() {
        Ok(s) => s,
        Err(e) => {
            procs::diag(format_args!("mp-demo: error: {e:#}"));
            return ExitCode::from(1);
        }
    };
    let renders = renderers(g, lang, files);
    let outcome = run_all(defs, g, tour, lang, &session, renders);
    session.cleanup();
    if let (Some(path), false) = (g.trace.as_ref().filter(|p| p.as_os_str() != "-"), g.json) {
        if !matches!(
            procs::stop_reason(),
            Some(procs::STOP_BROKEN_PIPE | procs::STOP_FAILED)
        ) {
            procs::diag(format_args!(
                "{}",
                crate::ui!(lang, "trace_written", &[("path", &path.display())])
            ));
        }
    }
    exit_code(lang, outcome)
}

/// Refuse what cannot work before anything starts (options that do not fit together,
/// `--step` or `--quiz` without a terminal, a trace that cannot be written): the usage
/// error's exit code, or the files to write (trace, recording), opened.
fn preflight(
    defs: &[(&'static LessonDef, Opts)],
    g: &cli::Globals,
    lang: Lang,
) -> Result<Files, ExitCode> {
    for (def, opts) in defs {
        if let Some(Err(msg)) = def.validate.map(|check| check(opts)) {
            return Err(usage_error(&msg));
        }
    }
    for (flag, on) in [("--step", g.step), ("--quiz", g.quiz)] {
        if on && !term::has_terminal() {
            return Err(usage_error(&crate::ui!(
                lang,
                "needs_terminal",
                &[("option", &flag)]
            )));
        }
    }
    // `--trace -`: the trace is the run's stdout (no narration), which --json wants too.
    let trace = match g.trace.as_deref() {
        Some(p) if p.as_os_str() == "-" && g.json => {
            return Err(usage_error(
                "--trace - writes the trace to stdout, where --json writes its stream: use one of them, or give the trace a file (--trace run.json)",
            ))
        }
        Some(p) if p.as_os_str() == "-" => None,
        path => output_file("--trace", path, "run.json")?,
    };
    let record = output_file("--record", g.record.as_deref(), "run.jsonl")?;
    Ok(Files { trace, record })
}

/// The files a run writes beside stdout, opened before anything starts.
struct Files {
    trace: Option<std::fs::File>,
    record: Option<std::fs::File>,
}

/// The file of `--trace FILE` or `--record FILE`, created (emptied), or the usage error
/// that says why it cannot be.
fn output_file(
    flag: &str,
    path: Option<&std::path::Path>,
    example: &str,
) -> Result<Option<std::fs::File>, ExitCode> {
    match path {
        Some(path) if path.as_os_str() == "-" => Err(usage_error(&format!(
            "{flag} -: it needs a file (stdout carries the narration): give it a name, e.g. {flag} {example}"
        ))),
        // Only a regular file (new or old): a FIFO with no reader would block open()
        // for ever, and a device (/dev/full) is no place for it.
        Some(path) if std::fs::metadata(path).is_ok_and(|m| !m.file_type().is_file()) => {
            Err(usage_error(&format!(
                "{flag} {}: not a regular file (a FIFO, device or directory cannot hold it)",
                path.display()
            )))
        }
        Some(path) => match std::fs::File::create(path) {
            Ok(f) => Ok(Some(f)),
            Err(e) => Err(usage_error(&format!(
                "{flag} {}: cannot write there: {e}",
                path.display()
            ))),
        },
        None => Ok(None),
    }
}

/// The renderers: JSON Lines, or the human narration (with the live panel on a terminal
/// that can show it; seeing each event as the stream has it, so that a replay of the
/// recording shows the same); and the trace and the recording, if asked for.
fn renderers(g: &cli::Globals, lang: Lang, files: Files) -> Vec<Box<dyn narrate::Render>> {
    let stdout_tty = std::io::stdout().is_terminal();
    let mut renders: Vec<Box<dyn narrate::Render>> = Vec::new();
    if g.trace.as_ref().is_some_and(|p| p.as_os_str() == "-") {
        // `--trace -`: stdout carries the trace, and only it.
        renders.push(Box::new(narrate::Named {
            what: "the trace to stdout".into(),
            render: narrate::trace::Trace::new(std::io::BufWriter::new(std::io::stdout())),
        }));
    } else if g.json {
        renders.push(Box::new(narrate::json::Json::new(std::io::stdout())));
    } else {
        let human = narrate::human::Human::new(std::io::stdout(), lang, terminal_width())
            .verbose(g.verbose);
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        renders.push(if stdout_tty && !dumb && !g.no_progress {
            Box::new(narrate::AsStreamed::new(human.with_live_panel()))
        } else {
            Box::new(narrate::AsStreamed::new(human))
        });
    }
    if let (Some(f), Some(path)) = (files.record, &g.record) {
        renders.push(Box::new(narrate::Named {
            what: format!("the recording to {}", path.display()),
            render: narrate::json::Json::new(f),
        }));
    }
    if let (Some(f), Some(path)) = (files.trace, &g.trace) {
        renders.push(Box::new(narrate::Named {
            what: format!("the trace to {}", path.display()),
            render: narrate::trace::Trace::new(std::io::BufWriter::new(f)),
        }));
    }
    renders
}

/// What the lessons run so far came to, for the tour's closing summary.
#[derive(Default)]
struct Tally {
    ran: usize,
    held: usize,
    claims: usize,
    /// The lessons' own time: the waits at the tour's prompt are not in it.
    took: Duration,
}

/// The width of the terminal stdout is, if it is one (lines are wrapped to it).
pub(crate) fn terminal_width() -> Option<usize> {
    std::io::stdout()
        .is_terminal()
        .then(crossterm::terminal::size)
        .and_then(Result::ok)
        .map(|(w, _)| usize::from(w))
        .filter(|&w| w > 0)
}

/// The lessons in turn, under one narrator and one observer (in a tour, each after its
/// title card and, from the second on, a wait; a summary at the end): whether every
/// claim held.
fn run_all(
    defs: &[(&'static LessonDef, Opts)],
    g: &cli::Globals,
    tour: bool,
    lang: Lang,
    session: &procs::Session,
    renders: Vec<Box<dyn narrate::Render>>,
) -> Result<bool> {
    let step_prompt = g.step.then(|| crate::ui!(lang, "step_prompt", &[]));
    let narrator = narrate::Narrator::start(Box::new(narrate::Tee(renders)), step_prompt)?;
    let mut observer = observe::Observer::start(narrator.sink(), lang)?;
    let mut tally = Tally::default();
    let mut result = Ok(());
    // `--json` frames a tour (the human view has its title cards and summary instead).
    let framed = tour && g.json;
    let me = nix::unistd::getpid().as_raw();
    let mut results = Vec::new();
    if framed {
        let lessons = defs.iter().map(|(d, _)| d.name.to_string()).collect();
        narrator
            .sink()
            .emit(Event::now(me, Kind::TourStart { lessons }));
    }
    for (i, (def, opts)) in defs.iter().enumerate() {
        if tour && !tour_card(&narrator.sink(), g, lang, (i, defs.len()), def) {
            result = Err(ctx::Stopped.into());
            break;
        }
        let started = Instant::now();
        let outcome = run_one(def, opts, g, lang, session.dir(), &narrator, &observer);
        // Before anything else: a child left running (a lesson that failed half-way)
        // would keep its reader thread, and with it the narrator, alive.
        procs::kill_and_reap_all();
        let ok = matches!(outcome, Ok((held, claims)) if held == claims)
            && procs::stop_reason().is_none();
        results.push(event::TourResult {
            lesson: def.name.into(),
            ok,
        });
        match outcome {
            Ok((held, claims)) => {
                tally.ran += 1;
                tally.held += held;
                tally.claims += claims;
                tally.took += started.elapsed();
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    if framed {
        let ok = results.len() == defs.len() && results.iter().all(|r| r.ok);
        narrator
            .sink()
            .emit(Event::now(me, Kind::TourEnd { ok, results }));
    }
    observer.stop();
    drop(observer);
    narrator.finish();
    if tour && !g.json {
        tour_summary(lang, defs.len(), &tally);
    }
    result.map(|()| tally.held == tally.claims)
}

/// A tour's title card before lesson `i` of `n` (its summary says what it shows; not
/// under `--json`, whose stream is the lessons' own), then, from the second lesson on,
/// a wait: for Enter when a person is at the terminal (stdin and stdout both one), so
/// that the card is read and the lesson starts when they are ready; else the `--step`
/// pause as at any step, and none without `--step`. False if the person chose to stop.
fn tour_card(
    sink: &narrate::Sink,
    g: &cli::Globals,
    lang: Lang,
    (i, n): (usize, usize),
    def: &LessonDef,
) -> bool {
    if !g.json {
        sink.emit(Event::now(
            nix::unistd::getpid().as_raw(),
            Kind::Act {
                act: "tour_card".into(),
                fields: vec![
                    ("i".into(), (i + 1).into()),
                    ("n".into(), n.into()),
                    ("lesson".into(), def.name.into()),
                    ("summary".into(), def.summary(lang).into()),
                ],
            },
        ));
    }
    if i == 0 {
        return true;
    }
    let person_here = !g.json
        && std::io::stdin().is_terminal()
        && std::io::stdout().is_terminal()
        && term::has_terminal();
    let go = if person_here {
        sink.flush(); // the card is on the screen, and nothing is drawn below the prompt
                      // A terminal that cannot be read (no raw mode) is no reason to stop: no wait.
        term::pause(&crate::ui!(lang, "tour_prompt", &[])).unwrap_or(true)
    } else {
        sink.wait_key()
    };
    if !go {
        term::quit();
    }
    go
}

/// The tour's last line (human view): lessons run of those chosen, claims held of those
/// made, the lessons' time. Written once the narrator has finished (stdout is no one
/// else's then); not when the run was interrupted, failed, or lost its output.
fn tour_summary(lang: Lang, n: usize, tally: &Tally) {
    use colored::Colorize;
    if !matches!(procs::stop_reason(), None | Some(term::STOP_QUIT)) {
        return;
    }
    let secs = tally.took.as_secs_f64();
    let time = if secs < 60.0 {
        crate::ui!(lang, "tour_time_s", &[("s", &format!("{secs:.1}"))])
    } else {
        let whole = secs.round() as u64;
        crate::ui!(
            lang,
            "tour_time_min",
            &[("m", &(whole / 60)), ("s", &(whole % 60))]
        )
    };
    let line = crate::ui!(
        lang,
        "tour_summary",
        &[
            ("ran", &tally.ran),
            ("n", &n),
            ("held", &tally.held),
            ("claims", &tally.claims),
            ("time", &time),
        ]
    );
    let lines = match terminal_width() {
        Some(w) => narrate::human::wrap(&line, w),
        None => vec![line],
    };
    let mut out = std::io::stdout().lock();
    let written = writeln!(out).and_then(|()| {
        lines
            .iter()
            .try_for_each(|l| writeln!(out, "{}", l.bold()))
            .and_then(|()| out.flush())
    });
    match written {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            procs::fail_run(format!("writing the tour's summary to stdout failed: {e}"));
        }
        _ => {}
    }
}

/// How the run ended, as its exit code (and its one line on stderr): a closed pipe is
/// success, a failure 1, a signal 128 + its number; else 0 if every claim held, 1 if not.
fn exit_code(lang: Lang, outcome: Result<bool>) -> ExitCode {
    match (procs::stop_reason(), outcome) {
        (Some(procs::STOP_BROKEN_PIPE), _) => ExitCode::SUCCESS,
        // `q` at a prompt: the person's choice, not an interruption.
        (Some(term::STOP_QUIT), _) => {
            procs::last_word(format_args!(
                "mp-demo: {}",
                crate::ui!(lang, "quit_done", &[])
            ));
            ExitCode::SUCCESS
        }
        (Some(procs::STOP_FAILED), _) => {
            let msg = procs::failure().unwrap_or("the run failed");
            procs::last_word(format_args!("mp-demo: error: {msg}"));
            ExitCode::from(1)
        }
        (Some(sig), _) => {
            let name = signal_name(sig);
            procs::last_word(format_args!(
                "mp-demo: {}",
                crate::ui!(lang, "interrupted", &[("signal", &name)])
            ));
            ExitCode::from((128 + sig).clamp(0, 255) as u8)
        }
        (None, Ok(true)) => ExitCode::SUCCESS,
        (None, Ok(false)) => ExitCode::from(1),
        (None, Err(e)) => {
            procs::last_word(format_args!("mp-demo: error: {e:#}"));
            ExitCode::from(1)
        }
    }
}

/// One lesson: `lesson_start`, the story, `lesson_end`. How many claims held, of how
/// many made (every one held when the two are equal).
fn run_one(
    def: &'static LessonDef,
    opts: &Opts,
    g: &cli::Globals,
    lang: Lang,
    dir: &std::path::Path,
    narrator: &narrate::Narrator,
    observer: &observe::Observer,
) -> Result<(usize, usize)> {
    let words = def.words()?;
    let title = words
        .meta
        .as_ref()
        .map(|m| m.title.get(lang).to_string())
        .unwrap_or_default();
    let sink = narrator.sink();
    let answers = predictions(g, &words.quiz, lang, &sink)?;
    let start = Event::now(
        nix::unistd::getpid().as_raw(),
        Kind::LessonStart {
            lesson: def.name.into(),
            title,
            lang: lang.code().into(),
            janitor: procs::janitor_pid(),
        },
    );
    let t0 = start.t_ns;
    sink.emit(start);
    let mut ctx = ctx::Ctx::new(
        def.name,
        words,
        lang,
        g.speed,
        dir.to_path_buf(),
        sink.clone(),
        observer,
    );
    observer.watch(ctx.main_pid, "main");
    let run = (def.run)(&mut ctx, opts);
    observer.forget(ctx.main_pid);
    // The quiz is judged inside the lesson's stream, before its end (a grader reading
    // up to `lesson_end` has it all); the human view tells it after the verdict.
    if run.is_ok() && procs::stop_reason().is_none() {
        judged(&ctx, &answers, lang, &sink);
    }
    let end = event::now_ns();
    let (error, signal) = match (&run, procs::stop_reason()) {
        (_, Some(reason)) => ended_by(reason),
        (Err(e), None) => (Some(format!("{e:#}")), None),
        (Ok(()), None) => (None, None),
    };
    sink.emit(Event {
        t_ns: end,
        pid: ctx.main_pid,
        kind: Kind::LessonEnd {
            ok: run.is_ok() && error.is_none() && signal.is_none() && ctx.all_held(),
            elapsed_ms: ((end - t0) as f64 / 1e3).round() / 1e3,
            error,
            signal,
        },
    });
    if run.is_err() {
        sink.flush();
    }
    run?;
    sink.flush();
    let claims = ctx.claims.iter().filter_map(|c| c.holds);
    Ok((claims.clone().filter(|&h| h).count(), claims.count()))
}

/// `SIGINT` for 2: the name of a stop signal, as stderr and `lesson_end` say it.
pub(crate) fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {sig}"))
}

/// Why a stopped run ended, for its `lesson_end`: the failure's message, or the signal
/// (`q` for the person's quiet stop); nothing when its output is gone (it cannot be
/// written).
fn ended_by(reason: i32) -> (Option<String>, Option<String>) {
    match reason {
        procs::STOP_BROKEN_PIPE => (None, None),
        term::STOP_QUIT => (None, Some("q".into())),
        procs::STOP_FAILED => (
            Some(procs::failure().unwrap_or("the run failed").to_string()),
            None,
        ),
        sig => (None, Some(signal_name(sig))),
    }
}

/// `--quiz`: the student's predictions, asked first, before anything of the lesson runs
/// (on stderr under `--json`, whose stdout holds only events); none without `--quiz`.
fn predictions(
    g: &cli::Globals,
    questions: &[crate::words::Question],
    lang: Lang,
    sink: &narrate::Sink,
) -> Result<Vec<quiz::Answer>> {
    if !g.quiz {
        return Ok(Vec::new());
    }
    sink.flush();
    let mut out: Box<dyn Write> = if g.json {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::stdout())
    };
    match quiz::ask(&mut out, questions, lang)? {
        Some(a) => Ok(a),
        None => {
            term::quit(); // `q`: quietly (Ctrl-C at the prompt already stopped as SIGINT)
            Err(ctx::Stopped.into())
        }
    }
}

/// Each prediction judged against what this run observed: a `quiz` event each.
fn judged(ctx: &ctx::Ctx<'_>, answers: &[quiz::Answer], lang: Lang, sink: &narrate::Sink) {
    for a in answers {
        let q = &a.question;
        let choice = &q.choices[a.picked - 1];
        let observed = ctx
            .claims
            .iter()
            .find(|c| c.name == q.observation)
            .map(|c| c.value.clone());
        let mut fields = vec![
            ("question".to_string(), q.ask.get(lang).into()),
            ("answer".to_string(), quiz::choice_text(choice, lang).into()),
            ("observation".to_string(), q.observation.as_str().into()),
            ("explain".to_string(), q.explain.get(lang).into()),
        ];
        if let Some(v) = observed {
            fields.push(("observed".into(), v));
        }
        if let Some(right) = quiz::judge(choice, &q.observation, &ctx.claims) {
            fields.push(("right".into(), right.into()));
        }
        sink.emit(Event::now(
            ctx.main_pid,
            Kind::Act {
                act: "quiz".into(),
                fields,
            },
        ));
    }
}
