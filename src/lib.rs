//! mp-demo: teaches multiprocessing by running it.
//!
//! `main` parses the command line, runs what was asked and maps the outcome to an exit
//! code: 0 every claim held, 1 a claim failed or a system call failed, 2 usage error,
//! 128+N stopped by signal N (130 for Ctrl-C), 0 when the output was closed.

#![deny(
    unsafe_op_in_unsafe_fn,
    unreachable_pub,
    clippy::undocumented_unsafe_blocks
)]

pub mod child;
pub mod cli;
pub mod ctx;
pub mod event;
pub mod lessons;
pub mod narrate;
pub mod observe;
pub mod oom;
pub mod procs;
pub mod quiz;
pub mod sys;
pub mod term;
pub mod voice;
pub mod words;

use anyhow::{Context, Result};

#[global_allocator]
static ALLOCATOR: oom::Watched = oom::Watched;
use clap::FromArgMatches;
use colored::Colorize;
use event::{Event, Kind};
use lessons::{LessonDef, Opts};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use words::Lang;

/// The program: parse, run, exit code.
pub fn main() -> ExitCode {
    procs::fit_malloc_to_address_space();
    // Hidden roles of this program, routed before clap parses, so that no help,
    // completion or error message offers them: a lesson's re-executed child (see
    // `child::CHILD_ARG`) and a re-started janitor (see `procs::mind_janitor`).
    let mut argv = std::env::args_os().skip(1);
    match (argv.next(), argv.next()) {
        (Some(cmd), arg) if cmd == child::CHILD_ARG => {
            let json = arg
                .map(|a| a.to_string_lossy().into_owned())
                .unwrap_or_default();
            return run_child(&json);
        }
        (Some(cmd), Some(dir)) if cmd == "__janitor" => return procs::janitor_main(&dir),
        _ => {}
    }
    let matches = match cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => return clap_exit(&e),
    };
    let globals = match cli::Globals::from_arg_matches(&matches) {
        Ok(g) => g,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(2);
        }
    };
    set_color(&globals);
    let lang = globals.lang();
    let Some((sub, m)) = matches.subcommand() else {
        return ExitCode::from(2);
    };
    let result = match sub {
        "list" if globals.json => print_out(list_json(lang)),
        "list" => print_out(list(lang)),
        "explain" => {
            let name = m
                .get_one::<String>("lesson")
                .map(String::as_str)
                .unwrap_or("");
            match lessons::find(name) {
                Some(def) if m.get_flag("python") => python_script(def).and_then(print_out),
                Some(def) => explain(def, lang).and_then(print_out),
                None => Ok(()),
            }
        }
        "completions" => {
            let shell = *m
                .get_one::<clap_complete::Shell>("shell")
                .expect("required by clap");
            // Into a buffer, then written like any output: clap_complete's own writes
            // panic on a full device or a closed pipe.
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut cli::command(), "mp-demo", &mut out);
            print_out(String::from_utf8_lossy(&out).into_owned())
        }
        "tour" => {
            let all: Vec<_> = lessons::LESSONS
                .iter()
                .map(|&def| (def, Opts::defaults(def)))
                .collect();
            return run_lessons(&all, &globals, true);
        }
        name => match lessons::find(name) {
            Some(def) => {
                let opts = cli::lesson_opts(def, m);
                return run_lessons(&[(def, opts)], &globals, false);
            }
            None => Ok(()),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            procs::diag(format_args!("mp-demo: error: {e:#}"));
            ExitCode::from(1)
        }
    }
}

/// A command-line error: help and version as clap prints them; a usage error as one
/// line (clap's, naming the option) plus its usage hint, exit 2. Write errors ignored.
fn clap_exit(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let code = ExitCode::from(e.exit_code().clamp(0, 255) as u8);
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return code;
    }
    let text = e.render().to_string();
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    if let Some(first) = lines.next() {
        procs::diag(format_args!("{first}"));
    }
    if let Some(usage) = lines.find(|l| l.starts_with("Usage:")) {
        procs::diag(format_args!("{usage}"));
    }
    code
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn print_out(text: String) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("writing to stdout")?;
    Ok(())
}

/// `--color`, `NO_COLOR` and `CLICOLOR_FORCE`, decided once for the whole program.
fn set_color(g: &cli::Globals) {
    let on = match g.color {
        cli::ColorChoice::Always => true,
        cli::ColorChoice::Never => false,
        cli::ColorChoice::Auto => {
            let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty() && v != "0");
            if set("CLICOLOR_FORCE") {
                true
            } else if set("NO_COLOR") {
                false
            } else {
                std::io::stdout().is_terminal()
                    && std::env::var("TERM").map_or(true, |t| t != "dumb")
            }
        }
    };
    colored::control::set_override(on && !g.json);
}

/// `mp-demo list`.
fn list(lang: Lang) -> String {
    let mut out = format!("{}\n", crate::ui!(lang, "list_header", &[]));
    let width = lessons::LESSONS
        .iter()
        .map(|l| l.name.len())
        .max()
        .unwrap_or(0);
    for def in lessons::LESSONS {
        let summary = def.summary(lang);
        out.push_str(&format!("  {:<width$}  {summary}\n", def.name.bold()));
    }
    out
}

/// `mp-demo --json list`: one object per lesson, with its options and their ranges, for
/// scripts and graders.
fn list_json(lang: Lang) -> String {
    let mut out = String::new();
    for def in lessons::LESSONS {
        let summary = def.summary(lang);
        let options: Vec<serde_json::Value> = def
            .options
            .iter()
            .map(|o| serde_json::json!({ "name": o.name, "default": o.default, "min": o.min, "max": o.max }))
            .collect();
        let line =
            serde_json::json!({ "lesson": def.name, "summary": summary, "options": options });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

/// `mp-demo explain <lesson>`: the concept wrapped to the terminal, `code` highlighted,
/// the Python it mirrors, the system calls underneath.
fn explain(def: &LessonDef, lang: Lang) -> Result<String> {
    let words = def.words()?;
    let Some(meta) = words.meta else {
        return Ok(String::new());
    };
    let width = if std::io::stdout().is_terminal() {
        crossterm::terminal::size()
            .ok()
            .map(|(w, _)| usize::from(w))
            .filter(|&w| w > 20)
            .unwrap_or(80)
            .min(100)
    } else {
        80
    };
    let mut out = String::new();
    out.push_str(&format!(
        "{}\n{}\n\n",
        format!("mp-demo {} · {}", def.name, meta.title.get(lang)).bold(),
        meta.summary.get(lang).italic()
    ));
    for para in meta.concept.get(lang).trim().split("\n\n") {
        let text = highlight_code(para.trim());
        for line in narrate::human::wrap(&text, width - 2) {
            out.push_str(&format!("  {line}\n"));
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "{}\n",
        crate::ui!(lang, "explain_python", &[]).bold()
    ));
    for line in meta.python.trim_end().lines() {
        out.push_str(&format!("    {}\n", line.bright_white()));
    }
    out.push('\n');
    let file = def.name.replace('-', "_");
    let run = crate::ui!(
        lang,
        "explain_python_run",
        &[("lesson", &def.name), ("file", &file)],
    );
    for line in narrate::human::wrap(&run, width - 2) {
        out.push_str(&format!("  {}\n", line.dimmed()));
    }
    out.push_str(&format!(
        "\n{}\n    {}\n\n{}\n",
        crate::ui!(lang, "explain_syscalls", &[]).bold(),
        meta.syscalls.join(", "),
        crate::ui!(lang, "explain_run", &[("lesson", &def.name)]).dimmed()
    ));
    Ok(out)
}

/// `mp-demo explain <lesson> --python`: the lesson's Python script alone, as a file
/// to save and run.
fn python_script(def: &LessonDef) -> Result<String> {
    let words = def.words()?;
    let python = words.meta.map(|m| m.python).unwrap_or_default();
    Ok(format!("{}\n", python.trim()))
}

/// `code` spans in bright white, without the backticks (when colours are on).
fn highlight_code(text: &str) -> String {
    if !colored::control::SHOULD_COLORIZE.should_colorize() {
        return text.to_string();
    }
    let mut out = String::new();
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str(&part.bright_white().bold().to_string());
        } else {
            out.push_str(part);
        }
    }
    out
}

/// `mp-demo __child <JSON>`: find the lesson and the role in the registry, run it.
fn run_child(json: &str) -> ExitCode {
    let run = || -> Result<i32> {
        let a = child::ChildArgs::parse(json)?;
        let def = lessons::find(&a.lesson)
            .ok_or_else(|| anyhow::anyhow!("no lesson named {}", a.lesson))?;
        let Some(&(_, role)) = def.roles.iter().find(|(name, _)| *name == a.role) else {
            anyhow::bail!("lesson {} has no child role {}", a.lesson, a.role);
        };
        child::main(a, role, def.words()?)
    };
    match run() {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            if !e.chain().any(|c| c.is::<child::ParentGone>()) {
                procs::diag(format_args!("mp-demo child: error: {e:#}"));
            }
            ExitCode::from(1)
        }
    }
}

/// A usage error found before anything runs: one line, exit 2.
fn usage_error(msg: &str) -> ExitCode {
    procs::diag(format_args!("mp-demo: error: {msg}"));
    ExitCode::from(2)
}

/// Run lessons one after another in one session (`tour` runs them all, with a title card
/// between them); the exit code of the whole.
pub fn run_lessons(defs: &[(&'static LessonDef, Opts)], g: &cli::Globals, tour: bool) -> ExitCode {
    let lang = g.lang();
    // Refuse what cannot work before anything starts.
    for (def, opts) in defs {
        if let Some(Err(msg)) = def.validate.map(|check| check(opts)) {
            return usage_error(&msg);
        }
    }
    for (flag, on) in [("--step", g.step), ("--quiz", g.quiz)] {
        if on && !term::has_terminal() {
            return usage_error(&crate::ui!(lang, "needs_terminal", &[("option", &flag)]));
        }
    }
    let trace_file = match &g.trace {
        // Only a regular file (new or old): a FIFO with no reader would block open()
        // for ever, and a device (/dev/full) is no place for a trace.
        Some(path) if std::fs::metadata(path).is_ok_and(|m| !m.file_type().is_file()) => {
            return usage_error(&format!(
                "--trace {}: not a regular file (a FIFO, device or directory cannot hold a trace)",
                path.display()
            ))
        }
        Some(path) => match std::fs::File::create(path) {
            Ok(f) => Some(f),
            Err(e) => {
                return usage_error(&format!(
                    "--trace {}: cannot write there: {e}",
                    path.display()
                ))
            }
        },
        None => None,
    };
    // Then, before any thread exists: subreaper, private directory, janitor, signals.
    let mut session = match procs::Session::start() {
        Ok(s) => s,
        Err(e) => {
            procs::diag(format_args!("mp-demo: error: {e:#}"));
            return ExitCode::from(1);
        }
    };
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
        let human = narrate::human::Human::new(std::io::stdout(), lang, width);
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
    let step_prompt = g.step.then(|| crate::ui!(lang, "step_prompt", &[]));
    let outcome = (|| -> Result<bool> {
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
    })();
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
    // --quiz: predictions first, before anything of the lesson runs.
    let answers = if g.quiz {
        sink.flush();
        let mut out: Box<dyn Write> = if g.json {
            Box::new(std::io::stderr())
        } else {
            Box::new(std::io::stdout())
        };
        match quiz::ask(&mut out, &words.quiz, lang)? {
            Some(a) => a,
            None => {
                procs::request_stop(nix::libc::SIGINT);
                return Err(ctx::Stopped.into());
            }
        }
    } else {
        Vec::new()
    };
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
    for a in &answers {
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
    sink.flush();
    Ok(ok)
}
