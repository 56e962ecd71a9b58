//! mp-demo: teaches multiprocessing by running it.
//!
//! `main` parses the command line, runs what was asked and maps the outcome to an exit
//! code: 0 every claim held, 1 a claim failed or a system call failed, 2 usage error,
//! 128+N stopped by signal N (130 for Ctrl-C), 0 when the output was closed.

pub mod child;
pub mod cli;
pub mod ctx;
pub mod event;
pub mod lessons;
pub mod narrate;
pub mod observe;
pub mod procs;
pub mod words;

use anyhow::Result;
use clap::FromArgMatches;
use colored::Colorize;
use event::{Event, Kind};
use lessons::{LessonDef, Opts};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use words::{ui, Lang};

/// The program: parse, run, exit code.
pub fn main() -> ExitCode {
    let matches = match cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
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
        "list" => print_out(list(lang)),
        "explain" => {
            let name = m
                .get_one::<String>("lesson")
                .map(String::as_str)
                .unwrap_or("");
            match lessons::find(name) {
                Some(def) => explain(def, lang).and_then(print_out),
                None => Ok(()),
            }
        }
        "completions" => {
            let shell = *m
                .get_one::<clap_complete::Shell>("shell")
                .expect("required by clap");
            let mut out = std::io::stdout();
            clap_complete::generate(shell, &mut cli::command(), "mp-demo", &mut out);
            Ok(())
        }
        "__child" => {
            let get = |k: &str| m.get_one::<String>(k).cloned().unwrap_or_default();
            let args = child::ChildArgs {
                lesson: get("lesson"),
                role: get("role"),
                ipc: get("ipc"),
                name: get("name"),
                args: get("args"),
                lang,
                speed: globals.speed,
            };
            return match child::main(args) {
                Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
                Err(e) => {
                    eprintln!("mp-demo child: error: {e:#}");
                    ExitCode::from(1)
                }
            };
        }
        name => match lessons::find(name) {
            Some(def) => {
                let opts = cli::lesson_opts(def, m);
                return run_lessons(&[(def, opts)], &globals);
            }
            None => Ok(()),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mp-demo: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn print_out(text: String) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
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
    let mut out = format!("{}\n", ui(lang, "list_header", &[]));
    let width = lessons::LESSONS
        .iter()
        .map(|l| l.name.len())
        .max()
        .unwrap_or(0);
    for def in lessons::LESSONS {
        let summary = def
            .words()
            .ok()
            .and_then(|w| w.meta)
            .map(|m| m.summary.get(lang).to_string())
            .unwrap_or_default();
        out.push_str(&format!("  {:<width$}  {summary}\n", def.name.bold()));
    }
    out
}

/// `mp-demo explain <lesson>`.
fn explain(def: &LessonDef, lang: Lang) -> Result<String> {
    let words = def.words()?;
    let Some(meta) = words.meta else {
        return Ok(String::new());
    };
    let mut out = String::new();
    out.push_str(&format!(
        "{}\n{}\n\n",
        format!("mp-demo {} · {}", def.name, meta.title.get(lang)).bold(),
        meta.summary.get(lang).italic()
    ));
    for para in meta.concept.get(lang).trim().split("\n\n") {
        out.push_str(&format!("{}\n\n", para.trim()));
    }
    out.push_str(&format!("{}\n", ui(lang, "explain_python", &[]).bold()));
    for line in meta.python.trim_end().lines() {
        out.push_str(&format!("    {}\n", line.bright_white()));
    }
    out.push_str(&format!(
        "\n{}\n    {}\n\n{}\n",
        ui(lang, "explain_syscalls", &[]).bold(),
        meta.syscalls.join(", "),
        ui(lang, "explain_run", &[("lesson", &def.name)]).dimmed()
    ));
    Ok(out)
}

/// Run lessons one after another in one session; the exit code of the whole.
pub fn run_lessons(defs: &[(&'static LessonDef, Opts)], g: &cli::Globals) -> ExitCode {
    // First, before any thread exists: subreaper, private directory, janitor, signals.
    let mut session = match procs::Session::start() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mp-demo: error: {e:#}");
            return ExitCode::from(1);
        }
    };
    let lang = g.lang();
    let render: Box<dyn narrate::Render> = if g.json {
        Box::new(narrate::json::Json::new(std::io::stdout()))
    } else {
        let width = if std::io::stdout().is_terminal() {
            crossterm::terminal::size()
                .ok()
                .map(|(w, _)| usize::from(w))
                .filter(|&w| w > 0)
        } else {
            None
        };
        Box::new(narrate::human::Human::new(std::io::stdout(), lang, width))
    };
    let outcome = (|| -> Result<bool> {
        let narrator = narrate::Narrator::start(render)?;
        let mut observer = observe::Observer::start(narrator.sink())?;
        let mut all_ok = true;
        let mut result = Ok(());
        for (def, opts) in defs {
            match run_one(def, opts, g, lang, session.dir(), &narrator, &observer) {
                Ok(ok) => all_ok &= ok,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
            procs::kill_and_reap_all();
        }
        observer.stop();
        drop(observer);
        narrator.finish();
        result.map(|()| all_ok)
    })();
    session.cleanup();
    match (procs::stop_reason(), outcome) {
        (Some(procs::STOP_BROKEN_PIPE), _) => ExitCode::SUCCESS,
        (Some(sig), _) => {
            let name = nix::sys::signal::Signal::try_from(sig)
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|_| format!("signal {sig}"));
            eprintln!("mp-demo: {}", ui(lang, "interrupted", &[("signal", &name)]));
            ExitCode::from((128 + sig).clamp(0, 255) as u8)
        }
        (None, Ok(true)) => ExitCode::SUCCESS,
        (None, Ok(false)) => ExitCode::from(1),
        (None, Err(e)) if e.is::<ctx::UsageError>() => {
            eprintln!("mp-demo: error: {e:#}");
            ExitCode::from(2)
        }
        (None, Err(e)) => {
            eprintln!("mp-demo: error: {e:#}");
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
    sink.flush();
    Ok(ok)
}
