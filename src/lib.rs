//! mp-demo: teaches multiprocessing by running it.
//!
//! `main` routes the hidden roles (a lesson's child, a re-started janitor), parses the
//! command line and dispatches: `list` and `explain` (`explain.rs`), a lesson or the tour
//! (`run.rs`, which maps the outcome to the exit code: 0 every claim held, 1 a claim
//! failed or a system call failed, 2 usage error, 128+N stopped by signal N (130 for
//! Ctrl-C), 0 when the output was closed).

#![deny(
    unsafe_op_in_unsafe_fn,
    unreachable_pub,
    clippy::undocumented_unsafe_blocks
)]

pub mod child;
pub mod cli;
pub mod ctx;
pub mod event;
mod explain;
pub mod lessons;
pub mod narrate;
pub mod observe;
pub mod oom;
pub mod procs;
pub mod quiz;
mod replay;
mod run;
pub mod schema;
pub mod sys;
pub mod term;
pub mod voice;
pub mod words;

use anyhow::{Context, Result};

#[global_allocator]
static ALLOCATOR: oom::Watched = oom::Watched;
use clap::FromArgMatches;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

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
    let matches = match cli::command()
        .color(cli::help_color(std::env::args_os()))
        .try_get_matches()
    {
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
        "list" if globals.json => explain::list_json(lang).and_then(print_out),
        "list" => print_out(explain::list(lang)),
        "explain" => {
            let name = m
                .get_one::<String>("lesson")
                .map(String::as_str)
                .unwrap_or("");
            match lessons::find(name) {
                Some(def) if m.get_flag("python") => {
                    explain::python_script(def).and_then(print_out)
                }
                Some(def) if m.get_flag("events") => explain::events(def).and_then(print_out),
                Some(def) => explain::explain(def, lang).and_then(print_out),
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
            let mut script = String::from_utf8_lossy(&out).into_owned();
            // clap_complete spells the bash name of a hyphenated program two ways
            // (clap-rs/clap#6421): the words typed lead to `mp__demo__subcmd__lock`, the
            // cases are `mp__subcmd__demo__subcmd__lock`, and nothing below the top level
            // completed. One spelling (tests/it/cli.rs completes through bash itself).
            if shell == clap_complete::Shell::Bash {
                script = script.replace("mp__subcmd__demo", "mp__demo");
            }
            print_out(script)
        }
        "man" => {
            // Into a buffer, then written like any output (a full device, a closed pipe).
            let mut out = Vec::new();
            clap_mangen::Man::new(cli::command())
                .render(&mut out)
                .context("rendering the man page")
                .and_then(|()| print_out(String::from_utf8_lossy(&out).into_owned()))
        }
        "tour" => return run::tour(m, &globals),
        "replay" => return replay::replay(m, &globals),
        "schema" => print_out(schema::events_text()),
        name => match lessons::find(name) {
            Some(def) => {
                let opts = cli::lesson_opts(def, m);
                return run::run_lessons(&[(def, opts)], &globals, false);
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
