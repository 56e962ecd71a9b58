//! The human renderer: narration for a terminal (or a projector).
//!
//! Every line starts with the time since the lesson began and the process it is about:
//! its role and PID in that process's own colour, indented under its parent, so parent
//! and child are told apart at a glance. The Python line and the system call are shown
//! under the sentence that uses them. Observations are gathered and shown as a table,
//! with a verdict, when the lesson ends.

use super::{timeline, Render};
use crate::event::{Event, Kind, ObsValue};
use crate::words::{self, ui, Lang};
use colored::{Color, Colorize};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::{self, Write};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

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
/// Width of the "time" column.
const TIME_W: usize = 9;
/// Width of the "process" column.
const LABEL_W: usize = 20;

struct Proc {
    name: String,
    depth: usize,
    color: Color,
}

struct Obs {
    name: String,
    value: ObsValue,
    expected: Option<String>,
    holds: Option<bool>,
}

/// The live panel (a terminal only): a line per live process with its state in words,
/// and a bar per gauge a lesson reports (queue fill, permits, tasks done). Narration
/// scrolls above it.
struct Live {
    multi: MultiProgress,
    procs: HashMap<i32, ProgressBar>,
    gauges: HashMap<String, ProgressBar>,
}

/// The live panel's terminal: stdout, with write errors swallowed. indicatif unwraps
/// the draw target's errors inside `suspend` (a panic on a hung-up terminal, then an
/// abort on its poisoned lock); the panel is a display, not the record, and a failed
/// write of the narration itself is still seen and reported by [`Human::commit`].
#[derive(Debug)]
struct PanelTerm(console::Term);

impl indicatif::TermLike for PanelTerm {
    fn width(&self) -> u16 {
        self.0.size().1
    }
    fn height(&self) -> u16 {
        self.0.size().0
    }
    fn move_cursor_up(&self, n: usize) -> io::Result<()> {
        let _ = self.0.move_cursor_up(n);
        Ok(())
    }
    fn move_cursor_down(&self, n: usize) -> io::Result<()> {
        let _ = self.0.move_cursor_down(n);
        Ok(())
    }
    fn move_cursor_right(&self, n: usize) -> io::Result<()> {
        let _ = self.0.move_cursor_right(n);
        Ok(())
    }
    fn move_cursor_left(&self, n: usize) -> io::Result<()> {
        let _ = self.0.move_cursor_left(n);
        Ok(())
    }
    fn write_line(&self, s: &str) -> io::Result<()> {
        let _ = self.0.write_line(s);
        Ok(())
    }
    fn write_str(&self, s: &str) -> io::Result<()> {
        let _ = self.0.write_str(s);
        Ok(())
    }
    fn clear_line(&self) -> io::Result<()> {
        let _ = self.0.clear_line();
        Ok(())
    }
    fn flush(&self) -> io::Result<()> {
        let _ = self.0.flush();
        Ok(())
    }
}

pub struct Human<W: Write + Send> {
    out: W,
    /// What one event writes, handed to `out` at once (above the live panel).
    buf: Vec<u8>,
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
}

impl<W: Write + Send> Human<W> {
    pub fn new(out: W, lang: Lang, width: Option<usize>) -> Self {
        Human {
            out,
            buf: Vec::new(),
            live: None,
            history: Vec::new(),
            lang,
            width: width.map(|w| w.max(60)),
            lesson: String::new(),
            lesson_words: None,
            t0_ns: 0,
            procs: HashMap::new(),
            next_color: 0,
            observations: Vec::new(),
        }
    }

    /// Show a live panel of processes and gauges, updated in place, on stdout.
    pub fn with_live_panel(mut self) -> Self {
        self.live = Some(Live {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::term_like_with_hz(
                Box::new(PanelTerm(console::Term::buffered_stdout())),
                20,
            )),
            procs: HashMap::new(),
            gauges: HashMap::new(),
        });
        self
    }

    /// Hand what this event wrote to the output, above the live panel.
    fn commit(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.buf);
        let out = &mut self.out;
        match &self.live {
            Some(live) => live
                .multi
                .suspend(|| out.write_all(&buf).and_then(|()| out.flush())),
            None => out.write_all(&buf),
        }
    }

    fn live_state(&mut self, pid: i32, letter: &str, waiting: &str) {
        let lang = self.lang;
        let label = self.label(pid);
        let room = self.width.unwrap_or(80).saturating_sub(LABEL_W + 4);
        let Some(live) = &mut self.live else {
            return;
        };
        let bar = live.procs.entry(pid).or_insert_with(|| {
            let pb = live.multi.add(ProgressBar::new_spinner());
            pb.set_style(
                ProgressStyle::with_template("  {prefix} {msg}").expect("a valid template"),
            );
            pb.set_prefix(label);
            pb
        });
        let mut msg = format!(
            "{letter} {}{waiting}",
            ui(lang, &format!("short_{letter}"), &[])
        );
        if msg.width() > room {
            let mut used = 0;
            msg = msg
                .chars()
                .take_while(|c| {
                    used += c.width().unwrap_or(0);
                    used < room
                })
                .collect::<String>()
                + "…";
        }
        bar.set_message(msg);
    }

    fn live_gone(&mut self, pid: i32) {
        if let Some(live) = &mut self.live {
            if let Some(pb) = live.procs.remove(&pid) {
                pb.finish_and_clear();
                live.multi.remove(&pb);
            }
        }
    }

    fn live_clear(&mut self) {
        if let Some(live) = &mut self.live {
            for pb in live
                .procs
                .drain()
                .map(|(_, p)| p)
                .chain(live.gauges.drain().map(|(_, p)| p))
            {
                pb.finish_and_clear();
                live.multi.remove(&pb);
            }
            let _ = live.multi.clear();
        }
    }

    /// A gauge (`act = "gauge"`, fields `gauge`, `value`, `max`): a bar in the live
    /// panel. Nothing in plain output: the narration already says it (the acquire, the
    /// put, the task done), and a line per change would only repeat it.
    fn gauge(&mut self, fields: &[(String, ObsValue)]) {
        let Some(live) = &mut self.live else {
            return;
        };
        let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let name = get("gauge").map(|v| v.to_string()).unwrap_or_default();
        let name = words::label(
            self.lang,
            self.lesson_words.as_ref(),
            &format!("gauge_{name}"),
            &name,
        );
        let value = get("value").and_then(|v| v.as_i64()).unwrap_or(0).max(0) as u64;
        let max = get("max").and_then(|v| v.as_i64()).unwrap_or(0).max(1) as u64;
        let pb = live.gauges.entry(name.clone()).or_insert_with(|| {
            let pb = live.multi.insert(0, ProgressBar::new(max));
            pb.set_style(
                ProgressStyle::with_template("  {prefix:>18} {bar:30.cyan/blue} {pos}/{len}")
                    .expect("a valid template")
                    .progress_chars("█▉▊▋▌▍▎▏ "),
            );
            pb.set_prefix(name.clone());
            pb
        });
        pb.set_length(max);
        pb.set_position(value.min(max));
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
                },
            );
        }
        &self.procs[&pid]
    }

    fn time(&self, t_ns: u64) -> String {
        let ms = (t_ns as i128 - self.t0_ns as i128) as f64 / 1e6;
        let s = if ms.abs() < 1000.0 {
            format!("{ms:.1}ms")
        } else {
            format!("{:.3}s", ms / 1000.0)
        };
        format!("{s:>w$}", w = TIME_W - 1)
    }

    fn label(&mut self, pid: i32) -> String {
        let p = self.proc_of(pid);
        let text = if p.depth == 0 {
            format!("{} {pid}", p.name)
        } else {
            format!("{}└ {} {pid}", "  ".repeat(p.depth - 1), p.name)
        };
        let pad = LABEL_W.saturating_sub(text.width());
        let colored = if p.depth == 0 {
            text.color(p.color).bold().to_string()
        } else {
            text.color(p.color).to_string()
        };
        format!("{colored}{}", " ".repeat(pad))
    }

    /// One narration line (wrapped on a terminal), prefixed by time and process.
    fn line(&mut self, t_ns: u64, pid: i32, text: &str) -> io::Result<()> {
        let time = self.time(t_ns).dimmed().to_string();
        let label = self.label(pid);
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
            Some(width) => wrap(text, width.saturating_sub(used).max(20)),
            None => vec![text.to_string()],
        }
    }

    fn rule(&mut self, title: &str) -> io::Result<()> {
        let width = self.width.unwrap_or(78);
        let head = format!("── {title} ");
        let fill = width.saturating_sub(head.width());
        writeln!(self.buf)?;
        writeln!(self.buf, "{}", format!("{head}{}", "─".repeat(fill)).bold())
    }

    fn lesson_start(&mut self, ev: &Event, lesson: &str, title: &str) -> io::Result<()> {
        self.lesson = lesson.to_string();
        // The lesson's own words label the event kinds and fields it adds.
        self.lesson_words = crate::lessons::find(lesson).and_then(|d| d.words().ok());
        self.t0_ns = ev.t_ns;
        self.history.clear();
        self.history.push(ev.clone());
        self.observations.clear();
        self.procs.clear();
        self.next_color = 0;
        self.procs.insert(
            ev.pid,
            Proc {
                name: "main".into(),
                depth: 0,
                color: Color::Cyan,
            },
        );
        let width = self.width.unwrap_or(78);
        let banner = format!(" mp-demo {lesson} · {title} ");
        writeln!(self.buf, "{}", "═".repeat(width).cyan())?;
        writeln!(self.buf, "{}", banner.bold())?;
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

    fn lesson_end(&mut self, t_ns: u64, ok: bool, elapsed_ms: f64) -> io::Result<()> {
        self.live_clear();
        let width = self.width.unwrap_or(80).min(80);
        for line in timeline::draw(
            &self.history,
            self.t0_ns,
            t_ns,
            width,
            self.lang,
            self.lesson_words.as_ref(),
        ) {
            writeln!(self.buf, "{line}")?;
        }
        self.history.clear();
        let title = crate::ui!(self.lang, "observed", &[]);
        self.rule(&title)?;
        let name_w = self
            .observations
            .iter()
            .map(|o| o.name.width())
            .max()
            .unwrap_or(0);
        let obs = std::mem::take(&mut self.observations);
        for o in &obs {
            let value = o.value.to_string();
            let mark = match o.holds {
                Some(true) => "✓".green().bold().to_string(),
                Some(false) => "✗".red().bold().to_string(),
                None => " ".to_string(),
            };
            // A claim that held and only restates the value (`== "…"`) says nothing more.
            let restates = |e: &str| {
                let v = value.trim_matches('"');
                e == format!("== {v}") || e == format!("== \"{v}\"")
            };
            let expected = match (&o.expected, o.holds) {
                (Some(e), Some(true)) if value.width() > 12 && restates(e) => String::new(),
                (Some(e), Some(_)) => crate::ui!(self.lang, "expected", &[("what", e)])
                    .dimmed()
                    .to_string(),
                _ => String::new(),
            };
            // name, value and claim on one line when they fit; else the claim goes
            // under the value, and a long value or claim wraps there.
            let head = format!("  {mark} {:<name_w$}  ", o.name);
            let pad = 2 + 2 + name_w + 2;
            let one = format!("{head}{:<8} {expected}", value.bold());
            if self.width.is_none_or(|w| visible_width(&one) <= w) {
                writeln!(self.buf, "{}", one.trim_end())?;
            } else {
                for (i, part) in self.wrap(&value, pad).into_iter().enumerate() {
                    let lead = if i == 0 {
                        head.clone()
                    } else {
                        " ".repeat(pad)
                    };
                    writeln!(self.buf, "{lead}{}", part.bold())?;
                }
                for part in self.wrap(&expected, pad) {
                    writeln!(self.buf, "{}{part}", " ".repeat(pad))?;
                }
            }
        }
        let verdict = if ok {
            crate::ui!(
                self.lang,
                "all_held",
                &[("ms", &format!("{elapsed_ms:.0}"))],
            )
            .green()
            .bold()
        } else {
            crate::ui!(
                self.lang,
                "claim_failed",
                &[("ms", &format!("{elapsed_ms:.0}"))],
            )
            .red()
            .bold()
        };
        writeln!(self.buf)?;
        writeln!(self.buf, "{verdict}")?;
        writeln!(self.buf)
    }
}

/// Split `text` into lines of at most `room` columns (colour sequences take no room,
/// Chinese characters take two and may break anywhere, but as Chinese typesetting wants:
/// no line starts with a closing mark such as `，` `。` `）` and none ends with an opening
/// one such as `（` `“`; the character before is carried down with it instead).
pub fn wrap(text: &str, room: usize) -> Vec<String> {
    const NO_START: &str = "，。、；：？！）》」』”’…%,.;:?!)]}";
    const NO_END: &str = "（《「『“‘([{";
    let starts_bad = |w: &str| w.chars().next().is_some_and(|c| NO_START.contains(c));
    let ends_bad = |w: &str| w.chars().last().is_some_and(|c| NO_END.contains(c));
    let mut lines = Vec::new();
    let mut cur: Vec<String> = Vec::new();
    let mut cur_w = 0;
    for word in split_words(text) {
        let w = visible_width(&word);
        if cur_w + w > room && !cur.is_empty() {
            // Carry the tail down while the break would fall in a forbidden place,
            // keeping at least one piece on the line.
            let mut carried: Vec<String> = Vec::new();
            let mut next = word.clone();
            while cur.len() > 1 {
                let last = cur.last().map(String::as_str).unwrap_or("");
                if (starts_bad(&next) && last != " ") || ends_bad(last) {
                    let piece = cur.pop().unwrap_or_default();
                    next = piece.clone();
                    carried.insert(0, piece);
                } else {
                    break;
                }
            }
            lines.push(cur.concat().trim_end().to_string());
            cur = carried;
            cur_w = cur.iter().map(|p| visible_width(p)).sum();
            if word == " " && cur.is_empty() {
                continue;
            }
        }
        cur.push(word);
        cur_w += w;
    }
    if !cur.is_empty() || lines.is_empty() {
        lines.push(cur.concat().trim_end().to_string());
    }
    lines
}

/// The width of `s` on screen: ANSI colour sequences take no room.
pub fn visible_width(s: &str) -> usize {
    let mut w = 0;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            w += c.width().unwrap_or(0);
        }
    }
    w
}

/// Words and single CJK characters, with spaces kept as their own pieces.
fn split_words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        if c == ' ' {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            out.push(" ".into());
        } else if c.width().unwrap_or(0) == 2 {
            // A wide character may break anywhere.
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            out.push(c.to_string());
        } else {
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

impl<W: Write + Send> Render for Human<W> {
    fn event(&mut self, ev: &Event) -> io::Result<()> {
        if matches!(
            ev.kind,
            Kind::Spawn { .. } | Kind::State { .. } | Kind::Exit { .. } | Kind::Act { .. }
        ) {
            self.history.push(ev.clone());
        }
        self.render(ev)?;
        self.commit()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.commit()?;
        self.out.flush()
    }

    fn finish(&mut self) -> io::Result<()> {
        self.live_clear();
        self.flush()
    }

    fn suspended(&mut self, f: &mut dyn FnMut() -> io::Result<bool>) -> io::Result<bool> {
        match &self.live {
            Some(live) => live.multi.suspend(f),
            None => f(),
        }
    }
}

/// What a sleeping process is blocked in, in words, from the kernel's wchan.
fn wchan_words(lang: Lang, wchan: &str) -> String {
    // futex first: its wait functions are called futex_do_wait and the like.
    let key = if wchan.contains("futex") {
        "wchan_futex"
    } else if wchan.contains("pipe") {
        "wchan_pipe"
    } else if wchan.contains("wait4") || wchan.contains("do_wait") || wchan.contains("waitid") {
        "wchan_wait"
    } else if wchan.contains("nanosleep") || wchan.contains("hrtimer") {
        "wchan_timer"
    } else if ["unix_stream", "sock", "recv", "skb"]
        .iter()
        .any(|w| wchan.contains(w))
    {
        "wchan_socket"
    } else if wchan.contains("lock")
        && (wchan.contains("flock") || wchan.contains("locks") || wchan.contains("file"))
    {
        "wchan_flock"
    } else if wchan.contains("poll") || wchan.contains("select") || wchan.contains("epoll") {
        "wchan_poll"
    } else if wchan.contains("pause") || wchan.contains("sigsuspend") {
        "wchan_pause"
    } else {
        "wchan_other"
    };
    ui(lang, key, &[("wchan", &wchan)])
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
        let verdict = match get("right") {
            Some(ObsValue::Bool(true)) => crate::ui!(
                lang,
                "quiz_right",
                &[("name", &name), ("value", &text("observed"))],
            )
            .green()
            .bold(),
            Some(ObsValue::Bool(false)) => crate::ui!(
                lang,
                "quiz_wrong",
                &[("name", &name), ("value", &text("observed"))],
            )
            .red()
            .bold(),
            _ => crate::ui!(lang, "quiz_unjudged", &[("name", &name)]).dimmed(),
        };
        writeln!(self.buf, "    {verdict}")?;
        for part in self.wrap(&text("explain"), 4) {
            writeln!(self.buf, "    {}", part.dimmed())?;
        }
        Ok(())
    }

    fn render(&mut self, ev: &Event) -> io::Result<()> {
        let lang = self.lang;
        match &ev.kind {
            Kind::LessonStart { lesson, title } => self.lesson_start(ev, lesson, title)?,
            Kind::Spawn { ppid, name, how } => {
                let depth = self.procs.get(ppid).map_or(1, |p| p.depth + 1);
                let color = PALETTE[self.next_color % PALETTE.len()];
                self.next_color += 1;
                self.procs.insert(
                    ev.pid,
                    Proc {
                        name: name.clone(),
                        depth,
                        color,
                    },
                );
                let how_words = ui(lang, &format!("how_{}", how.as_str()), &[]);
                let text = crate::ui!(
                    lang,
                    "spawned",
                    &[("pid", &ev.pid), ("ppid", ppid), ("how", &how_words)],
                );
                self.line(ev.t_ns, ev.pid, &format!("{} {}", "+".green().bold(), text))?;
            }
            Kind::State {
                from,
                to,
                waiting_in,
                ..
            } => {
                let arrow = if from.is_empty() {
                    to.clone()
                } else {
                    format!("{from} → {to}")
                };
                let waiting = waiting_in
                    .as_deref()
                    .map(|w| crate::ui!(lang, "waiting_in", &[("what", &wchan_words(lang, w))]))
                    .unwrap_or_default();
                self.live_state(ev.pid, to, &waiting);
                // Asleep somewhere else now (S → S): the live view says so; the lesson's
                // own narration tells the story.
                if from == to {
                    return Ok(());
                }
                // The main process wakes and sleeps all the time (pacing, its own
                // threads): in the narration, only say where it blocks on something
                // that matters (waitpid, a pipe…). Everything stays in the timeline.
                let is_main = self.procs.get(&ev.pid).is_some_and(|p| p.depth == 0);
                let pacing = waiting_in.as_deref().is_some_and(|w| {
                    w.contains("nanosleep") || w.contains("hrtimer") || w.contains("futex")
                });
                if is_main && (to != "S" || pacing) {
                    return Ok(());
                }
                let text = crate::ui!(
                    lang,
                    "state_change",
                    &[
                        ("change", &arrow.bold()),
                        (
                            "words",
                            &format!("{}{waiting}", words::state_words(lang, to)),
                        ),
                    ],
                );
                self.line(
                    ev.t_ns,
                    ev.pid,
                    &format!("{} {}", "◆".dimmed(), text.dimmed()),
                )?;
            }
            Kind::Exit {
                exitcode,
                reaped_by,
                ..
            } => {
                self.live_gone(ev.pid);
                let text = crate::ui!(lang, "exited", &[("code", exitcode), ("reaper", reaped_by)]);
                self.line(ev.t_ns, ev.pid, &format!("{} {}", "✝".red(), text))?;
            }
            Kind::Say {
                text,
                python,
                syscall,
                ..
            } => {
                self.line(ev.t_ns, ev.pid, text)?;
                let mut refs = Vec::new();
                // "Python: x" but "Python：x": a full-width colon carries its own space.
                let labelled = |key: &str, text: &str| {
                    let label = ui(lang, key, &[]);
                    let gap = if label.ends_with('：') { "" } else { " " };
                    format!("{}{gap}{}", label.dimmed(), text.bright_white())
                };
                if let Some(py) = python {
                    refs.push(labelled("python_label", py));
                }
                if let Some(sys) = syscall {
                    refs.push(labelled("syscall_label", sys));
                }
                if !refs.is_empty() {
                    let indent = " ".repeat(TIME_W + LABEL_W);
                    let used = TIME_W + LABEL_W + 4;
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
            }
            Kind::Step { n, title, hint, .. } => {
                let head = crate::ui!(lang, "step", &[("n", n), ("title", title)]);
                self.rule(&head)?;
                if let Some(hint) = hint {
                    let text = crate::ui!(lang, "try_this", &[("cmd", &hint.bright_white())]);
                    for part in self.wrap(&text, 3) {
                        writeln!(self.buf, "   {}", part.dimmed())?;
                    }
                }
            }
            Kind::Observation {
                name,
                value,
                expected,
                holds,
            } => self.observations.push(Obs {
                name: name.clone(),
                value: value.clone(),
                expected: expected.clone(),
                holds: *holds,
            }),
            Kind::LessonEnd { ok, elapsed_ms } => self.lesson_end(ev.t_ns, *ok, *elapsed_ms)?,
            Kind::Act { act, fields } if act == "gauge" => self.gauge(fields),
            Kind::Act { act, fields } if act == "tour_card" => self.tour_card(fields)?,
            Kind::Act { act, fields } if act == "quiz" => self.quiz_result(fields)?,
            Kind::Act { act, fields } => {
                let label =
                    words::label(lang, self.lesson_words.as_ref(), &format!("act_{act}"), act);
                // "call: apply · job 1": a field named like the act is its value.
                let mut head = label.bold().to_string();
                let mut detail = Vec::new();
                for (k, v) in fields.iter().filter(|(k, _)| k != "name") {
                    if k == act {
                        head = format!("{head}: {}", v.to_string().bold());
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
                self.line(ev.t_ns, ev.pid, &format!("{} {}", "•".dimmed(), text))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::How;

    #[test]
    fn wrapping_fits_and_keeps_chinese_punctuation_off_the_line_start() {
        let text =
            "它一个接一个地放入自己的数据项。每次调用都先拿走一个槽位（信号量减一），然后写入。";
        for room in 20..40 {
            let lines = wrap(text, room);
            assert_eq!(lines.concat(), text, "nothing lost or added at {room}");
            for (i, l) in lines.iter().enumerate() {
                assert!(visible_width(l) <= room, "{l:?} fits {room}");
                let first = l.chars().next().unwrap();
                assert!(
                    !"，。）".contains(first),
                    "line {i} at {room} starts with {first}"
                );
                let last = l.chars().last().unwrap();
                assert!(last != '（', "line {i} at {room} ends with （");
            }
        }
        assert_eq!(wrap("a b c", 3), vec!["a b", "c"]);
    }

    fn render(events: &[Event], lang: Lang) -> String {
        colored::control::set_override(false);
        let mut h = Human::new(Vec::new(), lang, Some(80));
        for e in events {
            h.event(e).unwrap();
        }
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
    fn wide_text_wraps_within_the_width() {
        let h = Human::new(Vec::new(), Lang::Zh, Some(60));
        let text =
            "子进程退出了，但父进程还没有调用 waitpid 收尸，所以内核把它保留为僵尸进程。".repeat(2);
        for line in h.wrap(&text, 30) {
            assert!(line.width() <= 30, "{line}");
        }
    }
}
