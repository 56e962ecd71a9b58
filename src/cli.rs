//! The command line, in one definition from which help and shell completions are both
//! made. Global options are a derived struct; the subcommands come from the lesson
//! registry, so a new lesson appears here (with its options and their ranges) by itself.

use crate::lessons::{LessonDef, Opts, LESSONS};
use crate::words::Lang;
use clap::{value_parser, Arg, ArgAction, ArgMatches, Args, Command};

/// When to colour the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour when stdout is a terminal, unless NO_COLOR is set (CLICOLOR_FORCE forces it)
    Auto,
    Always,
    Never,
}

// Options that apply to every subcommand. (A plain comment: clap's derive would make a
// doc comment here the program's `about`.)
#[derive(Args, Clone, Debug)]
pub struct Globals {
    /// JSON Lines on stdout: one event per line, nothing else there
    #[arg(long, global = true)]
    pub json: bool,

    /// Scale the pacing delays: 1 normal, 2 slower, 0 no pacing (the demonstration still holds)
    #[arg(long, global = true, value_name = "F", default_value = "1", value_parser = parse_speed, allow_negative_numbers = true)]
    pub speed: f64,

    /// Language of the narration [default: from LC_ALL, LC_MESSAGES or LANG]
    #[arg(long, global = true, value_enum)]
    pub lang: Option<Lang>,

    /// Colour the output
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    /// No live progress display, plain lines only
    #[arg(long, global = true)]
    pub no_progress: bool,

    /// Show every event: each act beside its sentence, each start, every kernel state
    #[arg(short, long, global = true)]
    pub verbose: bool,

    /// Pause at every step until a key is pressed (Space/Enter go on, q stops); needs a terminal
    #[arg(long, global = true)]
    pub step: bool,

    /// Predict the outcome before the run, then be judged against what it observed; needs a terminal
    #[arg(long, global = true)]
    pub quiz: bool,

    /// Write the run as Chrome trace events to FILE (open in Perfetto or chrome://tracing); - for stdout, instead of the narration
    #[arg(long, global = true, value_name = "FILE")]
    pub trace: Option<std::path::PathBuf>,

    /// Record the run's --json stream to FILE while it is shown (mp-demo replay FILE shows it again)
    #[arg(long, global = true, value_name = "FILE")]
    pub record: Option<std::path::PathBuf>,
}

impl Globals {
    pub fn lang(&self) -> Lang {
        self.lang.unwrap_or_else(Lang::from_env)
    }
}

fn parse_speed(s: &str) -> Result<f64, String> {
    let x: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number (try 0, 0.5, 1 or 2)"))?;
    if !x.is_finite() || !(0.0..=20.0).contains(&x) {
        return Err(format!(
            "{s} is out of range: the speed factor goes from 0 to 20"
        ));
    }
    Ok(x)
}

/// A lesson's size option: a whole number from `min` to `max`, the range said in words
/// (not Rust's `2..=64`).
fn parse_count(s: &str, min: u32, max: u32) -> Result<u32, String> {
    let n: u32 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number from {min} to {max}"))?;
    if !(min..=max).contains(&n) {
        return Err(format!("{n} is out of range: it goes from {min} to {max}"));
    }
    Ok(n)
}

/// How clap colours its own help and errors, which it writes before `--color` is parsed:
/// as `--color` says (the last one given), else clap's own choice (a terminal, unless
/// `NO_COLOR`).
pub fn help_color(args: impl IntoIterator<Item = std::ffi::OsString>) -> clap::ColorChoice {
    let args: Vec<String> = args
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut choice = None;
    for (i, a) in args.iter().enumerate() {
        let value = match a.strip_prefix("--color") {
            Some("") => args.get(i + 1).map(String::as_str),
            Some(v) => v.strip_prefix('='),
            None => None,
        };
        choice = match value {
            Some("never") => Some(clap::ColorChoice::Never),
            Some("always") => Some(clap::ColorChoice::Always),
            Some("auto") => Some(clap::ColorChoice::Auto),
            _ => choice,
        };
    }
    choice.unwrap_or(clap::ColorChoice::Auto)
}

/// The whole command line.
pub fn command() -> Command {
    let lesson_names: Vec<&'static str> = LESSONS.iter().map(|l| l.name).collect();
    let mut cmd = Command::new("mp-demo")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Teaches multiprocessing by running it: real processes, their PIDs and states, narrated live")
        .long_about(
            "Teaches multiprocessing by running it. Every lesson starts real child processes and \
             narrates what the kernel does to them: PIDs and parents, states read from /proc, who \
             blocks on whom, what crosses between them. It ends with what it observed and exits \
             non-zero if the lesson's claim did not hold.",
        )
        .subcommand_required(true)
        .arg_required_else_help(true)
        .after_help("Exit codes: 0 every claim held; 1 a claim failed or a system call failed; 2 usage error; 130 interrupted.");
    cmd = Globals::augment_args(cmd);
    cmd = cmd
        .subcommand(Command::new("list").about("List the lessons, one line each"))
        .subcommand(tour_command())
        // The JSON Schema of the --json stream, for graders and for
        // docs/events.schema.json (docs/events.md says how): JSON, not words, so hidden
        // from the help rather than offered there in one language.
        .subcommand(Command::new("schema").hide(true))
        .subcommand(
            Command::new("explain")
                .about("The concept, the Python it mirrors and the system calls underneath")
                .arg(
                    Arg::new("lesson")
                        .required(true)
                        .value_parser(clap::builder::PossibleValuesParser::new(lesson_names)),
                )
                .arg(
                    Arg::new("python")
                        .long("python")
                        .action(ArgAction::SetTrue)
                        .help("Print only the runnable Python script (python3 FILE [fork|spawn|forkserver])"),
                )
                .arg(
                    Arg::new("events")
                        .long("events")
                        .action(ArgAction::SetTrue)
                        .conflicts_with("python")
                        .help("Print the event kinds the lesson adds to the --json stream: process, stamp, fields"),
                ),
        )
        .subcommand(
            Command::new("replay")
                .about("Show a recorded run (--record FILE, or --json > FILE) as it ran: at its pace, or --speed, with --step")
                .arg(
                    Arg::new("file")
                        .value_name("FILE")
                        .required(true)
                        .value_parser(value_parser!(std::path::PathBuf))
                        .help("The recording: the run's --json stream (- for stdin)"),
                ),
        )
        .subcommand(Command::new("man").about("Print the man page (roff): mp-demo man > mp-demo.1"))
        .subcommand(
            Command::new("completions")
                .about("Print shell completions")
                .arg(
                    Arg::new("shell")
                        .required(true)
                        .value_parser(value_parser!(clap_complete::Shell)),
                ),
        )
        ;
    for def in LESSONS {
        cmd = cmd.subcommand(lesson_command(def));
    }
    cmd
}

/// `tour`, `tour --from lock`, `tour fork lock pool`. The names are checked by
/// [`tour_lessons`], not by clap, so that an unknown one is one line with a suggestion.
fn tour_command() -> Command {
    Command::new("tour")
        .about("Every lesson in order, with a title card between them (or some: --from LESSON, or LESSON…)")
        .arg(
            Arg::new("lessons")
                .value_name("LESSON")
                .num_args(0..)
                .help("Only these lessons, in the order given"),
        )
        .arg(
            Arg::new("from")
                .long("from")
                .value_name("LESSON")
                .conflicts_with("lessons")
                .help("From this lesson to the end of the tour"),
        )
}

/// The lessons a `tour` runs: all of them in the tour's order; from `--from` to the end;
/// or the ones named, in the order given (the person chose that order, and may mean it:
/// a lecture may want `pool` before `fork`; `list` shows the tour's order to copy).
/// An unknown name, or one given twice, is a usage error: its one line.
pub fn tour_lessons(m: &ArgMatches) -> Result<Vec<&'static LessonDef>, String> {
    let find = |name: &str| {
        crate::lessons::find(name).ok_or_else(|| {
            let near = LESSONS
                .iter()
                .map(|l| (edit_distance(name, l.name), l.name))
                .filter(|&(d, l)| d <= 2.max(l.len() / 3))
                .min();
            match near {
                Some((_, l)) => {
                    format!(
                        "no lesson named '{name}' (did you mean '{l}'? `mp-demo list` lists them)"
                    )
                }
                None => format!("no lesson named '{name}' (`mp-demo list` lists them)"),
            }
        })
    };
    if let Some(from) = m.get_one::<String>("from") {
        let first = find(from)?;
        let at = LESSONS.iter().position(|l| std::ptr::eq(*l, first));
        return Ok(LESSONS[at.unwrap_or(0)..].to_vec());
    }
    let Some(names) = m.get_many::<String>("lessons") else {
        return Ok(LESSONS.to_vec());
    };
    let mut defs: Vec<&'static LessonDef> = Vec::new();
    for name in names {
        let def = find(name)?;
        if defs.iter().any(|d| std::ptr::eq(*d, def)) {
            return Err(format!("lesson '{name}' is named twice"));
        }
        defs.push(def);
    }
    Ok(defs)
}

/// How many single-character edits turn `a` into `b` (Levenshtein), for a suggestion.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diag + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

fn lesson_command(def: &LessonDef) -> Command {
    let about = def.summary(Lang::En);
    let mut cmd = Command::new(def.name).about(about);
    for o in def.options {
        cmd = cmd.arg(
            Arg::new(o.name)
                .long(o.name)
                .value_name("N")
                .allow_negative_numbers(true)
                .help_heading("Lesson options")
                .help(format!("{} ({}–{})", o.help, o.min, o.max))
                .default_value(o.default.to_string())
                .value_parser({
                    let (min, max) = (o.min, o.max);
                    move |s: &str| parse_count(s, min, max)
                }),
        );
    }
    cmd
}

/// The option values a lesson's subcommand was given.
pub fn lesson_opts(def: &LessonDef, m: &ArgMatches) -> Opts {
    let mut opts = Opts::defaults(def);
    for o in def.options {
        if let Some(v) = m.get_one::<u32>(o.name) {
            opts.0.insert(o.name, *v);
        }
    }
    opts
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        super::command().debug_assert();
    }

    #[test]
    fn a_near_miss_is_suggested() {
        assert_eq!(super::edit_distance("lok", "lock"), 1);
        assert_eq!(super::edit_distance("pool", "pool"), 0);
        assert_eq!(super::edit_distance("", "fork"), 4);
        let m = |args: &[&str]| {
            let all = super::command().get_matches_from(args);
            let (_, m) = all.subcommand().unwrap();
            super::tour_lessons(m).map(|d| d.iter().map(|d| d.name).collect::<Vec<_>>())
        };
        let e = m(&["mp-demo", "tour", "lok"]).unwrap_err();
        assert!(e.contains("did you mean 'lock'"), "{e}");
        assert!(!m(&["mp-demo", "tour", "xyzzy"])
            .unwrap_err()
            .contains("mean"));
        let some = m(&["mp-demo", "tour", "pool", "fork"]).unwrap();
        assert_eq!(some, ["pool", "fork"]);
        let from = m(&["mp-demo", "tour", "--from", "lock"]).unwrap();
        assert_eq!(from[0], "lock");
        assert_eq!(from.last(), super::LESSONS.last().map(|l| &l.name));
        assert!(m(&["mp-demo", "tour", "fork", "fork"]).is_err());
    }

    #[test]
    fn help_is_coloured_as_color_says() {
        let choice = |args: &[&str]| super::help_color(args.iter().map(|a| a.into()));
        assert_eq!(
            choice(&["mp-demo", "--color", "never", "--help"]),
            clap::ColorChoice::Never
        );
        assert_eq!(
            choice(&["mp-demo", "lock", "--color=always", "-h"]),
            clap::ColorChoice::Always
        );
        assert_eq!(choice(&["mp-demo", "--help"]), clap::ColorChoice::Auto);
    }

    #[test]
    fn speed_is_checked() {
        assert!(super::parse_speed("0").is_ok());
        assert!(super::parse_speed("NaN").is_err());
        assert!(super::parse_speed("-1").is_err());
        assert!(super::parse_speed("inf").is_err());
        assert!(super::parse_speed("fast").is_err());
    }
}
