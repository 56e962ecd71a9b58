//! The end of a lesson in the human renderer: the timeline, the table of what was
//! observed (each claim with its mark and what it expected), and the verdict.

use super::{timeline, visible_width, Human};
use crate::event::ObsValue;
use colored::Colorize;
use std::io::{self, Write};
use unicode_width::UnicodeWidthStr;

/// An observation or claim, kept until the lesson ends.
pub(super) struct Obs {
    pub(super) name: String,
    pub(super) value: ObsValue,
    pub(super) expected: Option<String>,
    pub(super) holds: Option<bool>,
}

impl<W: Write + Send> Human<W> {
    /// The lesson is over: the panel goes, then the timeline, the table of observations
    /// and the verdict.
    pub(super) fn lesson_end(&mut self, t_ns: u64, ok: bool, elapsed_ms: f64) -> io::Result<()> {
        self.live_clear();
        self.timeline(t_ns)?;
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
            self.observation(o, name_w)?;
        }
        self.verdict(ok, elapsed_ms)
    }

    /// The timeline, fitted to the width: a row too wide for its least number of cells
    /// gives way in its label column, a rule in its marks, the legend wraps.
    fn timeline(&mut self, t_ns: u64) -> io::Result<()> {
        // The terminal's width (the timeline stops at 160 columns itself).
        let width = self.width.unwrap_or(80);
        let lines = timeline::draw(
            &self.history,
            self.t0_ns,
            t_ns,
            width,
            self.lang,
            self.lesson_words.as_ref(),
        );
        for mut line in lines {
            let over = visible_width(&line).saturating_sub(width);
            if over > 0 {
                line = narrower(&line, over);
            }
            // The legend wraps, two columns in (its colour kept at its head).
            let lead = colour_lead(&line);
            let text = &line[lead.len()..];
            let legend = !line.contains('│') && !line.contains("──");
            let parts = self.wrap(text.trim_start(), 2);
            if legend && parts.len() > 1 {
                for (i, part) in parts.iter().enumerate() {
                    writeln!(self.buf, "{}  {part}", if i == 0 { lead } else { "" })?;
                }
            } else {
                writeln!(self.buf, "{line}")?;
            }
        }
        Ok(())
    }

    /// One row of the table: mark, name (in a column `name_w` wide), value and claim.
    fn observation(&mut self, o: &Obs, name_w: usize) -> io::Result<()> {
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
        // Too little room right of the names: the value and claim go under them.
        let pad = match 2 + 2 + name_w + 2 {
            pad if self.width.is_some_and(|w| w < pad + 20) => 4,
            pad => pad,
        };
        let one = format!("{head}{:<8} {expected}", value.bold());
        if self.width.is_none_or(|w| visible_width(&one) <= w) {
            writeln!(self.buf, "{}", one.trim_end())?;
        } else {
            let with_value = format!("{}  {}", head.trim_end(), value.bold());
            let value_fits = self.width.is_some_and(|w| visible_width(&with_value) <= w);
            if pad == 4 && value_fits {
                writeln!(self.buf, "{with_value}")?;
            } else if pad == 4 {
                writeln!(self.buf, "{}", head.trim_end())?;
            }
            let value_lines = if pad == 4 && value_fits {
                Vec::new()
            } else {
                self.wrap(&value, pad)
            };
            for (i, part) in value_lines.into_iter().enumerate() {
                let lead = if i == 0 && pad > 4 {
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
        Ok(())
    }

    /// The verdict: every claim held, or one failed, and how long the lesson took.
    fn verdict(&mut self, ok: bool, elapsed_ms: f64) -> io::Result<()> {
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
        for part in self.wrap(&verdict.to_string(), 0) {
            writeln!(self.buf, "{part}")?;
        }
        writeln!(self.buf)
    }
}

/// A timeline row `over` columns narrower: as many spaces fewer at the end of its
/// label column (or of the axis line's lead).
fn narrower(line: &str, over: usize) -> String {
    // A rule: fewer of its last marks.
    if let Some(last) = line.rfind('─').filter(|_| !line.contains('│')) {
        let mut cut = line[..last].to_string();
        for _ in 1..over {
            if cut.ends_with('─') {
                cut.pop();
            }
        }
        return format!("{cut}{}", &line[last + '─'.len_utf8()..]);
    }
    // A row: fewer of the spaces that pad its label (keeping one); the axis: of its lead.
    let end = line.find('│').unwrap_or(line.len());
    let Some(pad) = line[..end].rfind(' ') else {
        return line.to_string();
    };
    let spaces = line[..=pad].len() - line[..=pad].trim_end().len();
    let cut = over.min(spaces.saturating_sub(1));
    format!("{}{}", &line[..=pad - cut], &line[pad + 1..])
}

/// The colour sequences `line` starts with.
fn colour_lead(line: &str) -> &str {
    let mut end = 0;
    while line[end..].starts_with('\x1b') {
        match line[end..].find(|c: char| c.is_ascii_alphabetic()) {
            Some(i) => end += i + 1,
            None => break,
        }
    }
    &line[..end]
}
