//! The human renderer: narration for a terminal (or a projector).
//!
//! Every line starts with the time since the lesson began and the process it is about:
//! its role and PID in that process's own colour, indented under its parent, so parent
//! and child are told apart at a glance. The Python line and the system call are shown
//! under the sentence that uses them. Observations are gathered and shown as a table,
//! with a verdict, when the lesson ends.

pub(crate) mod fold;
mod panel;
mod text;
mod verdict;

pub use text::{visible_width, wrap};

use super::{timeline, Render};
use crate::event::{Event, How, Kind, ObsValue};
use crate::words::{self, Lang};
use colored::{Color, Colorize};
use fold::Fold;
use panel::Live;
use std::collections::HashMap;
use std::io::{self, Write};
use unicode_width::UnicodeWidthStr;
use verdict::Obs;

/// Colours of child processes, in order of appearance (the main process is cyan).
const PALETTE: &[Color] = &[
    Color::Yellow,
    Color::Magenta,
    Color::Green,
    Color::Blue,
    Color::Red,
    Color::BrightYellow,
    Color::BrightMagenta,
    Color::BrightGreen,
    Color::BrightBlue,
    Color::BrightRed,
];
/// Width of the "time" column (`121.3ms`, `12.345s`, and a space).
const TIME_W: usize = 8;
/// Width of the "process" column (`└ consumer-2 4337` and a space); a deeper or
/// longer label pushes its line's text a little to the right.
pub(super) const LABEL_W: usize = 18;
/// Below this width the time column goes and the process gets a line of its own.
const NARROW_W: usize = 60;

/// The Python line and the system call under a sentence.
type Refs = (Option<String>, Option<String>);

struct Proc {
    name: String,
    depth: usize,
    color: Color,
    /// Its parent, as its start said (0 when not known).
    ppid: i32,
}

pub struct Human<W: Write + Send> {
    out: W,
    /// What one event writes, handed to `out` at once (above the live panel).
    buf: Vec<u8>,
    /// The quiz's judgements, which the stream has before `lesson_end`: told after the
    /// verdict, which they refer to.
    quizzes: Vec<Vec<(String, ObsValue)>>,
    live: Option<Live>,
    /// This lesson's events, for the timeline.
    history: Vec<Event>,
    lang: Lang,
    /// Wrap lines at this width (a terminal); `None` writes lines whole.
    width: Option<usize>,
    lesson: String,
    /// The running lesson's words: its own labels of the events it adds.
    lesson_words: Option<crate::words::Words>,
    t0_ns: u64,
    procs: HashMap<i32, Proc>,
    next_color: usize,
    observations: Vec<Obs>,
    /// Every event as it comes (`--verbose`), or one line per thing that happened.
    verbose: bool,
    fold: Fold,
    /// The process the last line was about (a narrow layout names it once for its lines).
    last_pid: Option<i32>,
    /// The Python line and system call shown in this step under each sentence (by its
    /// key): the same again (eight buyers reading alike) is not repeated unless verbose.
    refs_shown: HashMap<String, Refs>,
    /// The start methods explained in full so far in this lesson.
    how_told: std::collections::HashSet<&'static str>,
    /// The kernel states whose meaning a line has said in this lesson: after the first
    /// `S: sleeping: blocked, waiting for something`, an `S` line is just `S (where)`.
    states_told: std::collections::HashSet<String>,
    /// The current step's command to try, printed at its pause.
    hint: Option<String>,
    /// Whether this lesson has said who the janitor is (the first hint that shows it).
    janitor_named: bool,
    /// The janitor's PID, as the lesson's start says.
    janitor: Option<i32>,
}

impl<W: Write + Send> Human<W> {
    /// A renderer writing to `out`, wrapped at `width` (a terminal's; off a terminal,
    /// `COLUMNS` if set, else lines are written whole).
    pub fn new(out: W, lang: Lang, width: Option<usize>) -> Self {
        let columns = || std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok());
        Human {
            out,
            buf: Vec::new(),
            quizzes: Vec::new(),
            live: None,
            history: Vec::new(),
            lang,
            width: width.or_else(columns).map(|w: usize| w.max(40)),
            lesson: String::new(),
            lesson_words: None,
            t0_ns: 0,
            procs: HashMap::new(),
            next_color: 0,
            observations: Vec::new(),
            verbose: false,
            fold: Fold::default(),
            last_pid: None,
            refs_shown: HashMap::new(),
            how_told: Default::default(),
            states_told: Default::default(),
            hint: None,
            janitor_named: false,
            janitor: None,
        }
    }

    /// Show every event as it comes, acts and plumbing too (`--verbose`).
    pub fn verbose(mut self, verbose: bool) -> Self {
        self.verbose = verbose;
        self
    }

    /// Below 60 columns: no time column, the process on a line of its own.
    fn narrow(&self) -> bool {
        self.width.is_some_and(|w| w < NARROW_W)
    }

    /// Hand what this event wrote to the output, above the live panel.
    fn commit(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.buf);
        let out = &mut self.out;
        match &self.live {
            Some(live) => live.suspend(|| out.write_all(&buf).and_then(|()| out.flush())),
            None => out.write_all(&buf),
        }
    }

    fn proc_of(&mut self, pid: i32) -> &Proc {
        if !self.procs.contains_key(&pid) {
            let color = PALETTE[self.next_color % PALETTE.len()];
            self.next_color += 1;
            self.procs.insert(
                pid,
                Proc {
                    name: "?".into(),
                    depth: 1,
                    color,
                    ppid: 0,
                },
            );
        }
        &self.procs[&pid]
    }

    fn time(&self, t_ns: u64) -> String {
        let ms = (t_ns as i128 - self.t0_ns as i128) as f64 / 1e6;
        // Never wider than the column: fewer decimals as the seconds grow (a lesson
        // paused at --step for minutes pushed every line's text a column right, and
        // its wrapping, made for the column, cut words in two).
        let secs = ms / 1000.0;
        let s = match ms.abs() {
            m if m < 1000.0 => format!("{ms:.1}ms"),
            m if m < 100_000.0 => format!("{secs:.3}s"),
            m if m < 1_000_000.0 => format!("{secs:.2}s"),
            m if m < 10_000_000.0 => format!("{secs:.1}s"),
            _ => format!("{secs:.0}s"),
        };
        format!("{s:>w$}", w = TIME_W - 1)
    }

    /// How deep under the main process `pid` is (0: the main process itself).
    pub(super) fn proc_depth(&self, pid: i32) -> usize {
        self.procs.get(&pid).map_or(1, |p| p.depth)
    }

    fn label(&mut self, pid: i32) -> String {
        let who = format!("{} {pid}", self.proc_of(pid).name);
        self.label_as(pid, &who)
    }

    /// The process column for `pid`'s place and colour, naming it `who`.
    fn label_as(&mut self, pid: i32, who: &str) -> String {
        let p = self.proc_of(pid);
        // Two columns a level; one when that would not fit the column (a grandchild with
        // a five-digit PID), so that the bar after it stays in line.
        let mut text = if p.depth == 0 {
            who.to_string()
        } else {
            format!("{}└ {who}", "  ".repeat(p.depth - 1))
        };
        if text.width() >= LABEL_W && p.depth > 1 {
            text = format!("{}└ {who}", " ".repeat(p.depth - 1));
        }
        let pad = LABEL_W.saturating_sub(text.width()).max(1);
        let colored = if p.depth == 0 {
            text.color(p.color).bold().to_string()
        } else {
            text.color(p.color).to_string()
        };
        format!("{colored}{}", " ".repeat(pad))
    }

    /// One narration line (wrapped on a terminal), prefixed by time and process; in a
    /// narrow layout the process is named on a line of its own when it changes.
    fn line(&mut self, t_ns: u64, pid: i32, text: &str) -> io::Result<()> {
        let label = self.label(pid);
        self.line_as(t_ns, pid, label, text)
    }

    /// [`Self::line`] under the process column `label`.
    fn line_as(&mut self, t_ns: u64, pid: i32, label: String, text: &str) -> io::Result<()> {
        if self.narrow() {
            if self.last_pid != Some(pid) {
                writeln!(self.buf, "{}", label.trim_end())?;
            }
            self.last_pid = Some(pid);
            let bar = "│".dimmed();
            for part in self.wrap(text, 2) {
                writeln!(self.buf, "{bar} {part}")?;
            }
            return Ok(());
        }
        let time = self.time(t_ns).dimmed().to_string();
        let bar = "│".dimmed();
        let indent = " ".repeat(TIME_W + LABEL_W);
        let mut first = true;
        for part in self.wrap(text, TIME_W + LABEL_W + 2) {
            if first {
                writeln!(self.buf, "{time} {label}{bar} {part}")?;
                first = false;
            } else {
                writeln!(self.buf, "{indent}{bar} {part}")?;
            }
        }
        Ok(())
    }

    /// Split `text` into pieces that fit after a prefix of `used` columns.
    fn wrap(&self, text: &str, used: usize) -> Vec<String> {
        match self.width {
            Some(width) => wrap(text, width.saturating_sub(used).max(10)),
            None => vec![text.to_string()],
        }
    }

    fn rule(&mut self, title: &str) -> io::Result<()> {
        let width = self.width.unwrap_or(78);
        let head = format!("── {title}");
        self.last_pid = None;
        self.refs_shown.clear();
        writeln!(self.buf)?;
        // The rule fills the title's last line.
        let parts = self.wrap(&head, 0);
        for (i, part) in parts.iter().enumerate() {
            let fill = if i + 1 == parts.len() {
                width.saturating_sub(part.width() + 1)
            } else {
                0
            };
            let line = format!("{part} {}", "─".repeat(fill));
            writeln!(self.buf, "{}", line.trim_end().bold())?;
        }
        Ok(())
    }

    fn lesson_start(&mut self, ev: &Event, lesson: &str, title: &str) -> io::Result<()> {
        self.lesson = lesson.to_string();
        // The lesson's own words label the event kinds and fields it adds.
        self.lesson_words = crate::lessons::find(lesson).and_then(|d| d.words().ok());
        self.t0_ns = ev.t_ns;
        self.janitor_named = false;
        self.history.clear();
        self.history.push(ev.clone());
        self.observations.clear();
        self.fold.clear();
        self.last_pid = None;
        self.refs_shown.clear();
        self.how_told.clear();
        self.states_told.clear();
        self.procs.clear();
        self.next_color = 0;
        self.procs.insert(
            ev.pid,
            Proc {
                name: "main".into(),
                depth: 0,
                color: Color::Cyan,
                ppid: 0,
            },
        );
        let width = self.width.unwrap_or(78);
        let banner = format!(" mp-demo {lesson} · {title} ");
        writeln!(self.buf, "{}", "═".repeat(width).cyan())?;
        for part in self.wrap(&banner, 0) {
            writeln!(self.buf, "{}", part.bold())?;
        }
        writeln!(self.buf, "{}", "═".repeat(width).cyan())?;
        let legend = crate::ui!(
            self.lang,
            "legend",
            &[("pid", &ev.pid), ("main", &"main".cyan().bold())],
        );
        for part in self.wrap(&legend, 0) {
            writeln!(self.buf, "{}", part.dimmed())?;
        }
        Ok(())
    }
}

impl<W: Write + Send> Render for Human<W> {
    fn event(&mut self, ev: &Event) -> io::Result<()> {
        if matches!(
            ev.kind,
            Kind::Spawn { .. }
                | Kind::State { .. }
                | Kind::Exit { .. }
                | Kind::Act { .. }
                | Kind::Step { .. }
        ) {
            self.history.push(ev.clone());
        }
        if let Kind::Act { act, fields } = &ev.kind {
            self.live_mark(ev.pid, act, fields);
        }
        if self.verbose {
            self.render(ev)?;
        } else {
            self.folded(ev)?;
        }
        self.commit()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.release(u64::MAX)?;
        self.hint_now()?;
        self.commit()?;
        self.out.flush()
    }

    fn finish(&mut self) -> io::Result<()> {
        self.live_clear();
        self.flush()
    }

    fn tick(&mut self, now_ns: u64) -> io::Result<()> {
        if !self.verbose {
            self.quiet_at(now_ns)?;
        }
        self.commit()
    }

    fn suspended(&mut self, f: &mut dyn FnMut() -> io::Result<bool>) -> io::Result<bool> {
        match &self.live {
            // The panel stays on the screen while the lesson waits: as lines above the
            // prompt, since the prompt takes the panel's place.
            Some(live) => {
                let now = live.snapshot();
                let head = crate::ui!(self.lang, "paused_now", &[]);
                live.suspend(|| {
                    if !now.is_empty() {
                        let mut out = io::stdout().lock();
                        let _ = writeln!(out, "  {}", head.dimmed());
                        for line in &now {
                            let _ = writeln!(out, "{line}");
                        }
                        let _ = out.flush();
                    }
                    f()
                })
            }
            None => f(),
        }
    }
}

/// `+ started…`: a process came.
fn spawn_mark(text: &str) -> String {
    format!("{} {text}", "+".green().bold())
}

/// `✝ gone…`: a process went.
fn exit_mark(text: &str) -> String {
    format!("{} {text}", "✝".red())
}

/// What a sleeping process is blocked in, in words, from the kernel's wchan.
fn wchan_words(lang: Lang, wchan: &str) -> String {
    // futex first: its wait functions are called futex_do_wait and the like.
    crate::ui!(
        lang,
        match (()) {
            _ if wchan.contains("futex") => "wchan_futex",
            _ if wchan.contains("pipe") => "wchan_pipe",
            _ if wchan.contains("wait4")
                || wchan.contains("do_wait")
                || wchan.contains("waitid") =>
                "wchan_wait",
            _ if wchan.contains("nanosleep") || wchan.contains("hrtimer") => "wchan_timer",
            _ if ["unix_stream", "sock", "recv", "skb"]
                .iter()
                .any(|w| wchan.contains(w)) =>
                "wchan_socket",
            _ if wchan.contains("lock")
                && (wchan.contains("flock")
                    || wchan.contains("locks")
                    || wchan.contains("file")) =>
                "wchan_flock",
            _ if wchan.contains("poll") || wchan.contains("select") || wchan.contains("epoll") =>
                "wchan_poll",
            _ if wchan.contains("pause") || wchan.contains("sigsuspend") => "wchan_pause",
            _ => "wchan_other",
        },
        &[("wchan", &wchan)]
    )
}

impl<W: Write + Send> Human<W> {
    fn tour_card(&mut self, fields: &[(String, ObsValue)]) -> io::Result<()> {
        let get = |k: &str| {
            fields
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.to_string())
                .unwrap_or_default()
        };
        let width = self.width.unwrap_or(78);
        let text = crate::ui!(
            self.lang,
            "tour_card",
            &[
                ("i", &get("i")),
                ("n", &get("n")),
                ("lesson", &get("lesson")),
            ],
        );
        writeln!(self.buf)?;
        writeln!(self.buf, "{}", "▓".repeat(width).magenta())?;
        writeln!(self.buf, "{}", format!("  {text}").bold())?;
        for part in self.wrap(&get("summary"), 2) {
            writeln!(self.buf, "  {part}")?;
        }
        writeln!(self.buf, "{}", "▓".repeat(width).magenta())?;
        Ok(())
    }

    fn quiz_result(&mut self, fields: &[(String, ObsValue)]) -> io::Result<()> {
        let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let text = |k: &str| get(k).map(|v| v.to_string()).unwrap_or_default();
        let lang = self.lang;
        writeln!(self.buf)?;
        for part in self.wrap(&text("question"), 2) {
            writeln!(self.buf, "  {}", part.bold())?;
        }
        let yours = crate::ui!(lang, "quiz_your_answer", &[("answer", &text("answer"))]);
        for part in self.wrap(&yours, 4) {
            writeln!(self.buf, "    {part}")?;
        }
        let name = text("observation");
        self.quiz_verdict(&name, get("right"), &text("observed"))?;
        for part in self.wrap(&text("explain"), 4) {
            writeln!(self.buf, "    {}", part.dimmed())?;
        }
        Ok(())
    }
    /// One event, written to `buf`: each kind has its own way of being told.
    fn render(&mut self, ev: &Event) -> io::Result<()> {
        match &ev.kind {
            Kind::LessonStart {
                lesson,
                title,
                janitor,
                ..
            } => {
                self.janitor = *janitor;
                self.lesson_start(ev, lesson, title)
            }
            Kind::State {
                from,
                to,
                waiting_in,
                ..
            } => self.state_changed(ev, from, to, waiting_in.as_deref()),
            Kind::Spawn { .. } | Kind::Exit { .. } => {
                self.arrived(ev);
                self.told(ev)
            }
            Kind::Say {
                key,
                text,
                python,
                syscall,
            } => {
                self.line(ev.t_ns, ev.pid, text)?;
                self.say_refs(key, python, syscall)
            }
            Kind::Step { n, title, hint, .. } => self.step_rule(*n, title, hint.as_deref()),
            // The step's pause: what was held is told, then the step's hint.
            Kind::Pause { .. } => {
                self.release(u64::MAX)?;
                self.hint_now()
            }
            Kind::Observation {
                name,
                value,
                expected,
                holds,
                ..
            } => {
                self.observations.push(Obs {
                    name: name.clone(),
                    value: value.clone(),
                    expected: expected.clone(),
                    holds: *holds,
                });
                Ok(())
            }
            Kind::LessonEnd {
                ok,
                elapsed_ms,
                error: None,
                signal: None,
            } => {
                self.lesson_end(ev.t_ns, *ok, *elapsed_ms)?;
                for fields in std::mem::take(&mut self.quizzes) {
                    self.quiz_result(&fields)?;
                }
                Ok(())
            }
            // A run that failed or was stopped: the panel goes; the one line on stderr
            // says why (no verdict of a story cut short).
            Kind::LessonEnd { .. } => {
                self.quizzes.clear();
                self.live_clear();
                Ok(())
            }
            // The `--json` frame of a tour: the human view has its cards and summary.
            Kind::TourStart { .. } | Kind::TourEnd { .. } => Ok(()),
            Kind::Act { act, fields } if act == "gauge" => {
                self.gauge(fields);
                Ok(())
            }
            Kind::Act { act, fields } if act == "tour_card" => self.tour_card(fields),
            Kind::Act { act, fields } if act == "quiz" => {
                self.quizzes.push(fields.clone());
                Ok(())
            }
            Kind::Act { act, fields } => self.act(ev, act, fields),
        }
    }

    /// A sentence's Python line and system call, unless the last sentence of the same
    /// key showed the same ones (the default view).
    fn say_refs(
        &mut self,
        key: &str,
        python: &Option<String>,
        syscall: &Option<String>,
    ) -> io::Result<()> {
        let refs = (python.clone(), syscall.clone());
        if !self.verbose && self.refs_shown.get(key) == Some(&refs) {
            return Ok(());
        }
        self.refs_shown.insert(key.to_string(), refs);
        self.references(python.as_deref(), syscall.as_deref())
    }

    /// One sentence said by several alike processes at once: one line, under their
    /// first, naming how many and their PIDs.
    pub(super) fn says_line(&mut self, says: &[Event]) -> io::Result<()> {
        let first = &says[0];
        let Kind::Say {
            key,
            text,
            python,
            syscall,
        } = &first.kind
        else {
            return Ok(());
        };
        let name = self.proc_of(first.pid).name.clone();
        let pids: Vec<String> = says.iter().map(|e| e.pid.to_string()).collect();
        let lang = self.lang;
        let who = crate::ui!(
            lang,
            "said_by_many",
            &[
                ("n", &says.len()),
                ("roles", &fold::roles(lang, fold::role(&name)))
            ]
        );
        let label = self.label_as(first.pid, &who);
        let by = crate::ui!(lang, "said_by_pids", &[("pids", &pids.join(" "))]);
        self.line_as(
            first.t_ns,
            first.pid,
            label,
            // "… writing. (each of PIDs …)" but "…停一下。（PID …）": a full-width
            // bracket carries its own space.
            &format!(
                "{text}{}{}",
                if by.starts_with('（') { "" } else { " " },
                by.dimmed()
            ),
        )?;
        self.last_pid = None;
        self.say_refs(key, python, syscall)
    }

    /// A process was started: it gets its colour and its place under its parent. A
    /// process is gone: it leaves the live panel.
    fn arrived(&mut self, ev: &Event) {
        match &ev.kind {
            Kind::Spawn { ppid, name, .. } => {
                let depth = self.procs.get(ppid).map_or(1, |p| p.depth + 1);
                let color = PALETTE[self.next_color % PALETTE.len()];
                self.next_color += 1;
                self.procs.insert(
                    ev.pid,
                    Proc {
                        name: name.to_string(),
                        depth,
                        color,
                        ppid: *ppid,
                    },
                );
            }
            Kind::Exit { .. } => self.live_gone(ev.pid),
            _ => {}
        }
    }

    /// The line of a start or an end (the process has arrived or left already).
    fn told(&mut self, ev: &Event) -> io::Result<()> {
        let lang = self.lang;
        match &ev.kind {
            Kind::Spawn { ppid, how, .. } => {
                let how_words = self.how_words(*how);
                let text = crate::ui!(
                    lang,
                    "spawned",
                    &[("pid", &ev.pid), ("ppid", ppid), ("how", &how_words)],
                );
                self.line(ev.t_ns, ev.pid, &spawn_mark(&text))
            }
            Kind::Exit {
                exitcode,
                reaped_by,
                ..
            } => {
                let text = crate::ui!(lang, "exited", &[("code", exitcode), ("reaper", reaped_by)]);
                self.line(ev.t_ns, ev.pid, &exit_mark(&text))
            }
            _ => Ok(()),
        }
    }

    /// How a process was started: said in full the first time in a lesson, then by the
    /// start method's name alone.
    fn how_words(&mut self, how: How) -> String {
        let name = match how {
            How::Fork => "fork",
            How::Spawn => "spawn",
        };
        if !self.how_told.insert(name) && !self.verbose {
            return name.to_string();
        }
        crate::ui!(
            self.lang,
            match (how) {
                How::Fork => "how_fork",
                How::Spawn => "how_spawn",
            },
            &[]
        )
    }

    /// A kernel state change: always in the live panel; in the narration only when it
    /// tells something (not S → S, not the main process's own pacing).
    fn state_changed(
        &mut self,
        ev: &Event,
        from: &str,
        to: &str,
        waiting_in: Option<&str>,
    ) -> io::Result<()> {
        let lang = self.lang;
        let arrow = if from.is_empty() || from == to {
            to.to_string()
        } else {
            format!("{from} → {to}")
        };
        let waiting = waiting_in
            .map(|w| crate::ui!(lang, "waiting_in", &[("what", &wchan_words(lang, w))]))
            .unwrap_or_default();
        self.live_state(ev.pid, to, &waiting);
        if !self.state_shown(ev.pid, from, to, waiting_in) {
            self.state_seen(ev.pid, from, to, waiting_in, false);
            return Ok(());
        }
        self.state_seen(ev.pid, from, to, waiting_in, true);
        let text = if self.states_told.insert(to.to_string()) || self.verbose {
            crate::ui!(
                lang,
                "state_change",
                &[
                    ("change", &arrow.bold()),
                    (
                        "words",
                        &format!("{}{waiting}", words::state_words(lang, to)),
                    ),
                ],
            )
        } else {
            crate::ui!(
                lang,
                "state_change_again",
                &[("change", &arrow.bold()), ("waiting", &waiting)],
            )
        };
        self.line(
            ev.t_ns,
            ev.pid,
            &format!("{} {}", "◆".dimmed(), text.dimmed()),
        )
    }

    /// Whether a state change gets a line in the narration (the live panel shows them
    /// all).
    fn state_shown(&self, pid: i32, from: &str, to: &str, waiting_in: Option<&str>) -> bool {
        // Asleep somewhere else now (S → S): the live view says so; the lesson's
        // own narration tells the story. But a sleep first seen where the kernel
        // named nothing is told once it names where.
        if from == to && !(waiting_in.is_some() && self.sleep_untold(pid)) {
            return false;
        }
        // The main process wakes and sleeps all the time (pacing, its own
        // threads): in the narration, only say where it blocks on something
        // that matters (waitpid, a pipe…). Everything stays in the timeline.
        let is_main = self.procs.get(&pid).is_some_and(|p| p.depth == 0);
        let pacing = waiting_in.is_some_and(|w| {
            w.contains("nanosleep") || w.contains("hrtimer") || w.contains("futex")
        });
        if is_main && (to != "S" || pacing) {
            return false;
        }
        // Asleep in nothing the kernel names: nothing to tell, unless verbose.
        if to == "S" && waiting_in.is_none() && !self.verbose {
            return false;
        }
        self.state_news(pid, from, to, waiting_in)
    }

    /// The Python line and the system call under the sentence that uses them: on one
    /// line if both fit, else one per reference, wrapped if need be.
    fn references(&mut self, python: Option<&str>, syscall: Option<&str>) -> io::Result<()> {
        let lang = self.lang;
        let mut refs = Vec::new();
        // "Python: x" but "Python：x": a full-width colon carries its own space.
        let labelled = |label: String, text: &str| {
            let gap = if label.ends_with('：') { "" } else { " " };
            format!("{}{gap}{text}", label.dimmed())
        };
        if let Some(py) = python {
            refs.push(labelled(crate::ui!(lang, "python_label", &[]), py));
        }
        if let Some(sys) = syscall {
            refs.push(labelled(crate::ui!(lang, "syscall_label", &[]), sys));
        }
        if !refs.is_empty() {
            let indent = " ".repeat(if self.narrow() { 0 } else { TIME_W + LABEL_W });
            let used = indent.len() + 4;
            // One line if both fit, else one per reference, wrapped if need be.
            let joined = refs.join("   ");
            let fits = self
                .width
                .is_none_or(|w| visible_width(&joined) + used <= w);
            let refs = if fits { vec![joined] } else { refs };
            for r in refs {
                for (i, part) in self.wrap(&r, used + 2).into_iter().enumerate() {
                    let pad = if i == 0 { "" } else { "  " };
                    writeln!(self.buf, "{indent}{}   {pad}{part}", "│".dimmed())?;
                }
            }
        }
        Ok(())
    }

    /// A step: a rule with its title; its command to try waits for the step's pause.
    fn step_rule(&mut self, n: u32, title: &str, hint: Option<&str>) -> io::Result<()> {
        self.hint_now()?;
        let head = crate::ui!(self.lang, "step", &[("n", &n), ("title", &title)]);
        self.rule(&head)?;
        self.hint = hint.map(str::to_string);
        Ok(())
    }

    /// The pending step's command to try, at its pause (the lesson's `show`), when what
    /// it names exists: the words dim, the command in the terminal's own colour.
    fn hint_now(&mut self) -> io::Result<()> {
        let Some(hint) = self.hint.take() else {
            return Ok(());
        };
        // The command whole, never wrapped: it is there to be copied. After its label
        // when both fit the line, else on a line of its own.
        let text = crate::ui!(self.lang, "try_this", &[]);
        if 3 + text.width() + 1 + hint.width() <= self.width.unwrap_or(80) {
            writeln!(self.buf, "   {} {hint}", text.dimmed())?;
        } else {
            for part in self.wrap(&text, 3) {
                writeln!(self.buf, "   {}", part.dimmed())?;
            }
            writeln!(self.buf, "     {hint}")?;
        }
        // Its output shows mp-demo's own cleanup helper too: say once what it is.
        let lists_children = hint.contains("pstree") || hint.contains("--ppid");
        if let (false, true, Some(janitor)) = (self.janitor_named, lists_children, self.janitor) {
            self.janitor_named = true;
            let note = crate::ui!(self.lang, "janitor_note", &[("janitor", &janitor)]);
            for part in self.wrap(&note, 3) {
                writeln!(self.buf, "   {}", part.dimmed())?;
            }
        }
        Ok(())
    }

    /// A lesson's own event: its label in the lesson's words, then its fields.
    fn act(&mut self, ev: &Event, act: &str, fields: &[(String, ObsValue)]) -> io::Result<()> {
        let shown: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect();
        self.act_line(ev.t_ns, ev.pid, act, 1, &shown)
    }

    /// `• read · on tickets · value 1`, or `• read × 4 · value 0 1 2 3` for `n` alike
    /// acts told as one (their fields' values already merged).
    fn act_line(
        &mut self,
        t_ns: u64,
        pid: i32,
        act: &str,
        n: usize,
        fields: &[(String, String)],
    ) -> io::Result<()> {
        let lang = self.lang;
        let label = words::label(lang, self.lesson_words.as_ref(), &format!("act_{act}"), act);
        let label = if n > 1 {
            format!("{label} × {n}")
        } else {
            label
        };
        // "call: apply · job 1": a field named like the act is its value.
        let mut head = label.bold().to_string();
        let mut detail = Vec::new();
        for (k, v) in fields.iter().filter(|(k, _)| k != "name") {
            if k == act {
                head = format!("{head}: {}", v.bold());
            } else {
                // `ms`, `cpu_ms`: the unit goes after the number.
                let (key, unit) = match k.strip_suffix("ms") {
                    Some(stem) => (stem.trim_end_matches('_'), " ms"),
                    None => (k.as_str(), ""),
                };
                let field = words::label(
                    lang,
                    self.lesson_words.as_ref(),
                    &format!("field_{key}"),
                    key,
                );
                detail.push(format!("{field} {v}{unit}").trim().to_string());
            }
        }
        let text = if detail.is_empty() {
            head
        } else {
            format!("{head} {}", format!("· {}", detail.join(" · ")).dimmed())
        };
        self.line(t_ns, pid, &format!("{} {}", "•".dimmed(), text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::How;

    fn render(events: &[Event], lang: Lang) -> String {
        colored::control::set_override(false);
        let mut h = Human::new(Vec::new(), lang, Some(80));
        for e in events {
            h.event(e).unwrap();
        }
        h.flush().unwrap();
        String::from_utf8(h.out).unwrap()
    }

    #[test]
    fn lines_name_the_process_and_indent_children() {
        let events = vec![
            Event {
                t_ns: 0,
                pid: 10,
                kind: Kind::LessonStart {
                    lesson: "fork".into(),
                    title: "t".into(),
                    lang: "en".into(),
                    janitor: None,
                },
            },
            Event {
                t_ns: 1_000_000,
                pid: 11,
                kind: Kind::Spawn {
                    ppid: 10,
                    name: "child".into(),
                    how: How::Fork,
                },
            },
            Event {
                t_ns: 2_000_000,
                pid: 11,
                kind: Kind::Say {
                    key: "k".into(),
                    text: "hello from the child".into(),
                    python: Some("p.start()".into()),
                    syscall: None,
                },
            },
        ];
        let out = render(&events, Lang::En);
        assert!(out.contains("└ child 11"), "{out}");
        assert!(out.contains("hello from the child"), "{out}");
        assert!(out.contains("p.start()"), "{out}");
    }

    #[test]
    fn the_time_column_keeps_its_width_however_long_the_lesson() {
        let h = Human::new(Vec::new(), Lang::En, Some(80));
        for (ms, shown) in [
            (121.3, "121.3ms"),
            (12_345.0, "12.345s"),
            (302_549.0, "302.55s"),
            (3_025_490.0, "3025.5s"),
            (30_254_900.0, " 30255s"),
        ] {
            let t = h.time((ms * 1e6) as u64);
            assert_eq!(t, shown);
            assert_eq!(t.len(), TIME_W - 1);
        }
    }

    #[test]
    fn wide_text_wraps_within_the_width() {
        let h = Human::new(Vec::new(), Lang::Zh, Some(60));
        let text =
            "子进程退出了，但父进程还没有调用 waitpid 收尸，所以内核把它保留为僵尸进程。".repeat(2);
        for line in h.wrap(&text, 30) {
            assert!(line.width() <= 30, "{line}");
        }
    }

    #[test]
    fn the_main_process_s_acts_right_after_its_sentence_are_what_it_told() {
        let ev = |t_ms: u64, pid: i32, kind: Kind| Event {
            t_ns: t_ms * 1_000_000,
            pid,
            kind,
        };
        let say = |text: &str| Kind::Say {
            key: "k".into(),
            text: text.into(),
            python: None,
            syscall: None,
        };
        let act = |act: &str, n: i64| Kind::Act {
            act: act.into(),
            fields: vec![("id".into(), ObsValue::Int(n))],
        };
        let start = Kind::LessonStart {
            lesson: "pipe".into(),
            title: "t".into(),
            lang: "en".into(),
            janitor: None,
        };
        // The sentence, then (after the reader's wait) two sends it announced, then a
        // close it did not.
        let events = vec![
            ev(0, 10, start),
            ev(1, 10, say("I send two objects.")),
            ev(200, 10, act("send", 1)),
            ev(201, 10, act("send", 2)),
            ev(202, 10, act("close", 3)),
        ];
        let out = render(&events, Lang::En);
        assert!(out.contains("I send two objects."), "{out}");
        assert!(!out.contains("• send"), "{out}");
        assert!(out.contains("• close"), "{out}");
    }
}
