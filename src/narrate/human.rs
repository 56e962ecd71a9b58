//! The human renderer: narration for a terminal (or a projector).
//!
//! Every line starts with the time since the lesson began and the process it is about:
//! its role and PID in that process's own colour, indented under its parent, so parent
//! and child are told apart at a glance. The Python line and the system call are shown
//! under the sentence that uses them. Observations are gathered and shown as a table,
//! with a verdict, when the lesson ends.

use super::Render;
use crate::event::{Event, Kind, ObsValue};
use crate::words::{self, ui, Lang};
use colored::{Color, Colorize};
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

pub struct Human<W: Write + Send> {
    out: W,
    lang: Lang,
    /// Wrap lines at this width (a terminal); `None` writes lines whole.
    width: Option<usize>,
    lesson: String,
    t0_ns: u64,
    procs: HashMap<i32, Proc>,
    next_color: usize,
    observations: Vec<Obs>,
}

impl<W: Write + Send> Human<W> {
    pub fn new(out: W, lang: Lang, width: Option<usize>) -> Self {
        Human {
            out,
            lang,
            width: width.map(|w| w.max(60)),
            lesson: String::new(),
            t0_ns: 0,
            procs: HashMap::new(),
            next_color: 0,
            observations: Vec::new(),
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
                writeln!(self.out, "{time} {label}{bar} {part}")?;
                first = false;
            } else {
                writeln!(self.out, "{indent}{bar} {part}")?;
            }
        }
        Ok(())
    }

    /// Split `text` into pieces that fit after a prefix of `used` columns.
    fn wrap(&self, text: &str, used: usize) -> Vec<String> {
        let Some(width) = self.width else {
            return vec![text.to_string()];
        };
        let room = width.saturating_sub(used).max(20);
        let mut lines = Vec::new();
        let mut cur = String::new();
        let mut cur_w = 0;
        for word in split_words(text) {
            let w = word.width();
            if cur_w + w > room && !cur.is_empty() {
                lines.push(cur.trim_end().to_string());
                cur.clear();
                cur_w = 0;
                if word == " " {
                    continue;
                }
            }
            cur.push_str(&word);
            cur_w += w;
        }
        if !cur.is_empty() || lines.is_empty() {
            lines.push(cur.trim_end().to_string());
        }
        lines
    }

    fn rule(&mut self, title: &str) -> io::Result<()> {
        let width = self.width.unwrap_or(78);
        let head = format!("── {title} ");
        let fill = width.saturating_sub(head.width());
        writeln!(self.out)?;
        writeln!(self.out, "{}", format!("{head}{}", "─".repeat(fill)).bold())
    }

    fn lesson_start(&mut self, ev: &Event, lesson: &str, title: &str) -> io::Result<()> {
        self.lesson = lesson.to_string();
        self.t0_ns = ev.t_ns;
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
        writeln!(self.out, "{}", "═".repeat(width).cyan())?;
        writeln!(self.out, "{}", banner.bold())?;
        writeln!(self.out, "{}", "═".repeat(width).cyan())?;
        let legend = ui(
            self.lang,
            "legend",
            &[("pid", &ev.pid), ("main", &"main".cyan().bold())],
        );
        for part in self.wrap(&legend, 0) {
            writeln!(self.out, "{}", part.dimmed())?;
        }
        Ok(())
    }

    fn lesson_end(&mut self, ok: bool, elapsed_ms: f64) -> io::Result<()> {
        let title = ui(self.lang, "observed", &[]);
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
            let expected = match (&o.expected, o.holds) {
                (Some(e), Some(_)) => ui(self.lang, "expected", &[("what", e)])
                    .dimmed()
                    .to_string(),
                _ => String::new(),
            };
            writeln!(
                self.out,
                "  {mark} {:<name_w$}  {:<8} {expected}",
                o.name,
                value.bold()
            )?;
        }
        let verdict = if ok {
            ui(
                self.lang,
                "all_held",
                &[("ms", &format!("{elapsed_ms:.0}"))],
            )
            .green()
            .bold()
        } else {
            ui(
                self.lang,
                "claim_failed",
                &[("ms", &format!("{elapsed_ms:.0}"))],
            )
            .red()
            .bold()
        };
        writeln!(self.out)?;
        writeln!(self.out, "{verdict}")?;
        writeln!(self.out)
    }
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
                let text = ui(
                    lang,
                    "spawned",
                    &[("pid", &ev.pid), ("ppid", ppid), ("how", &how_words)],
                );
                self.line(ev.t_ns, ev.pid, &format!("{} {}", "+".green().bold(), text))?;
            }
            Kind::State { from, to, .. } => {
                let arrow = if from.is_empty() {
                    to.clone()
                } else {
                    format!("{from} → {to}")
                };
                let text = ui(
                    lang,
                    "state_change",
                    &[
                        ("change", &arrow.bold()),
                        ("words", &words::state_words(lang, to)),
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
                let text = ui(lang, "exited", &[("code", exitcode), ("reaper", reaped_by)]);
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
                if let Some(py) = python {
                    refs.push(format!(
                        "{} {}",
                        ui(lang, "python_label", &[]).dimmed(),
                        py.bright_white()
                    ));
                }
                if let Some(sys) = syscall {
                    refs.push(format!(
                        "{} {}",
                        ui(lang, "syscall_label", &[]).dimmed(),
                        sys.bright_white()
                    ));
                }
                if !refs.is_empty() {
                    let indent = " ".repeat(TIME_W + LABEL_W);
                    writeln!(self.out, "{indent}{}   {}", "│".dimmed(), refs.join("   "))?;
                }
            }
            Kind::Step { n, title, hint, .. } => {
                let head = ui(lang, "step", &[("n", n), ("title", title)]);
                self.rule(&head)?;
                if let Some(hint) = hint {
                    let text = ui(lang, "try_this", &[("cmd", &hint.bright_white())]);
                    writeln!(self.out, "   {}", text.dimmed())?;
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
            Kind::LessonEnd { ok, elapsed_ms } => self.lesson_end(*ok, *elapsed_ms)?,
            Kind::Act { act, fields } => {
                let label = match words::common().ui.get(&format!("act_{act}")) {
                    Some(l) => l.get(lang).to_string(),
                    None => act.clone(),
                };
                let detail: Vec<String> = fields
                    .iter()
                    .filter(|(k, _)| k != "name")
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                let text = format!("{} {}", label.bold(), detail.join(" ").dimmed());
                self.line(ev.t_ns, ev.pid, &format!("{} {}", "•".dimmed(), text))?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
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
