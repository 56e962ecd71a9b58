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

/// A usage error found before anything runs: one line, exit 2.
fn usage_error(msg: &str) -> ExitCode {
    procs::diag(format_args!("mp-demo: error: {msg}"));
    ExitCode::from(2)
}

/// Run lessons one after another in one session (`tour` runs them all, with a title card
/// between them); the exit code of the whole.
pub(crate) fn run_lessons(
    defs: &[(&'static LessonDef, Opts)],
    g: &cli::Globals,
    tour: bool,
) -> ExitCode {
    let lang = g.lang();
    let trace_file = match preflight(defs, g, lang) {
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
    let renders = renderers(g, lang, trace_file);
    let outcome = run_all(defs, g, tour, lang, &session, renders);
    session.cleanup();
    if let (Some(path), false) = (&g.trace, g.json) {
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
/// error's exit code, or the trace file, opened.
fn preflight(
    defs: &[(&'static LessonDef, Opts)],
    g: &cli::Globals,
    lang: Lang,
) -> Result<Option<std::fs::File>, ExitCode> {
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
    match &g.trace {
        // Only a regular file (new or old): a FIFO with no reader would block open()
        // for ever, and a device (/dev/full) is no place for a trace.
        Some(path) if std::fs::metadata(path).is_ok_and(|m| !m.file_type().is_file()) => {
            Err(usage_error(&format!(
                "--trace {}: not a regular file (a FIFO, device or directory cannot hold a trace)",
                path.display()
            )))
        }
        Some(path) => match std::fs::File::create(path) {
            Ok(f) => Ok(Some(f)),
            Err(e) => Err(usage_error(&format!(
                "--trace {}: cannot write there: {e}",
                path.display()
            ))),
        },
        None => Ok(None),
    }
}

/// The renderers: JSON Lines, or the human narration (with the live panel on a terminal
/// that can show it); and the trace, if one was asked for.
fn renderers(
    g: &cli::Globals,
    lang: Lang,
    trace_file: Option<std::fs::File>,
) -> Vec<Box<dyn narrate::Render>> {
    let stdout_tty = std::io::stdout().is_terminal();
    let mut renders: Vec<Box<dyn narrate::Render>> = Vec::new();
    if g.json {
        renders.push(Box::new(narrate::json::Json::new(std::io::stdout())));
    } else {
        let width = if stdout_tty {
            crossterm::terminal::size()
                .ok()
                .map(|(w, _)| usize::from(w))
                .filter(|&w| w > 0)
        } else {
            None
        };
        let human = narrate::human::Human::new(std::io::stdout(), lang, width).verbose(g.verbose);
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        renders.push(if stdout_tty && !dumb && !g.no_progress {
            Box::new(human.with_live_panel())
        } else {
            Box::new(human)
        });
    }
    if let (Some(f), Some(path)) = (trace_file, &g.trace) {
        renders.push(Box::new(narrate::Named {
            what: format!("the trace to {}", path.display()),
            render: narrate::trace::Trace::new(std::io::BufWriter::new(f)),
        }));
    }
    renders
}

/// The lessons in turn, under one narrator and one observer (in a tour, each after its
/// title card and, from the second on, a pause): whether every claim held.
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
    let mut all_ok = true;
    let mut result = Ok(());
    for (i, (def, opts)) in defs.iter().enumerate() {
        if tour {
            if !g.json {
                narrator.sink().emit(Event::now(
                    nix::unistd::getpid().as_raw(),
                    Kind::Act {
                        act: "tour_card".into(),
                        fields: vec![
                            ("i".into(), (i + 1).into()),
                            ("n".into(), defs.len().into()),
                            ("lesson".into(), def.name.into()),
                        ],
                    },
                ));
            }
            if i > 0 && !narrator.sink().pause() {
                procs::request_stop(nix::libc::SIGINT);
                result = Err(ctx::Stopped.into());
                break;
            }
        }
        let outcome = run_one(def, opts, g, lang, session.dir(), &narrator, &observer);
        // Before anything else: a child left running (a lesson that failed half-way)
        // would keep its reader thread, and with it the narrator, alive.
        procs::kill_and_reap_all();
        match outcome {
            Ok(ok) => all_ok &= ok,
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    observer.stop();
    drop(observer);
    narrator.finish();
    result.map(|()| all_ok)
}

/// How the run ended, as its exit code (and its one line on stderr): a closed pipe is
/// success, a failure 1, a signal 128 + its number; else 0 if every claim held, 1 if not.
fn exit_code(lang: Lang, outcome: Result<bool>) -> ExitCode {
    match (procs::stop_reason(), outcome) {
        (Some(procs::STOP_BROKEN_PIPE), _) => ExitCode::SUCCESS,
        (Some(procs::STOP_FAILED), _) => {
            let msg = procs::failure().unwrap_or("the run failed");
            procs::diag(format_args!("mp-demo: error: {msg}"));
            ExitCode::from(1)
        }
        (Some(sig), _) => {
            let name = nix::sys::signal::Signal::try_from(sig)
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|_| format!("signal {sig}"));
            procs::diag(format_args!(
                "mp-demo: {}",
                crate::ui!(lang, "interrupted", &[("signal", &name)])
            ));
            ExitCode::from((128 + sig).clamp(0, 255) as u8)
        }
        (None, Ok(true)) => ExitCode::SUCCESS,
        (None, Ok(false)) => ExitCode::from(1),
        (None, Err(e)) => {
            procs::diag(format_args!("mp-demo: error: {e:#}"));
            ExitCode::from(1)
        }
    }
}

/// One lesson: `lesson_start`, the story, `lesson_end`. Whether every claim held.
fn run_one(
    def: &'static LessonDef,
    opts: &Opts,
    g: &cli::Globals,
    lang: Lang,
    dir: &std::path::Path,
    narrator: &narrate::Narrator,
    observer: &observe::Observer,
) -> Result<bool> {
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
    run?;
    let ok = ctx.all_held();
    let end = event::now_ns();
    sink.emit(Event {
        t_ns: end,
        pid: ctx.main_pid,
        kind: Kind::LessonEnd {
            ok,
            elapsed_ms: ((end - t0) as f64 / 1e3).round() / 1e3,
        },
    });
    judged(&ctx, &answers, lang, &sink);
    sink.flush();
    Ok(ok)
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
            procs::request_stop(nix::libc::SIGINT);
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
