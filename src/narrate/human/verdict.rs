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
        // Kept after the end: the quiz, judged next, says its observation in words too.
        let obs = std::mem::take(&mut self.observations);
        // Each claim is its sentence; what has none (a fact, or a claim without words)
        // is a row of the compact table under them.
        let (said, rows): (Vec<_>, Vec<_>) = obs
            .iter()
            .map(|o| (o, self.said(o, &obs)))
            .partition(|(o, text)| o.holds.is_some() && text.is_some());
        for (o, text) in &said {
            self.claim_row(o, text.as_deref().unwrap_or_default())?;
        }
        let name_w = rows.iter().map(|(o, _)| o.name.width()).max().unwrap_or(0);
        for (o, _) in &rows {
            self.observation(o, name_w)?;
        }
        self.observations = obs;
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
            !self.verbose,
        );
        for mut line in lines {
            let over = visible_width(&line).saturating_sub(width);
            // A legend line too wide wraps, two columns in (its colour kept at its
            // head); the rows of the chart (lanes, steps, axis) give way instead.
            let legend = over > 0
                && !line.contains('│')
                && !line.contains("──")
                && line[colour_lead(&line).len()..].starts_with("  ");
            if over > 0 && !legend {
                line = narrower(&line, over);
            }
            let lead = colour_lead(&line);
            let text = &line[lead.len()..];
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

    /// What observation `o` showed in the lesson's words (`[verdict.<name>]`), filled
    /// with this run's observations `all`; `None` if the lesson has no sentence for it.
    fn said(&self, o: &Obs, all: &[Obs]) -> Option<String> {
        let line = self.lesson_words.as_ref()?.verdict.get(&o.name)?;
        let values: Vec<(&str, &dyn std::fmt::Display)> = all
            .iter()
            .map(|a| (a.name.as_str(), &a.value as &dyn std::fmt::Display))
            .collect();
        Some(line.text(self.lang, o.holds, &values))
    }

    /// A claim in words: its mark, its sentence (wrapped under itself), then, dim, the
    /// observation's name (of a claim that held: where it fits, or `--verbose`) and, if
    /// it failed, what was expected.
    fn claim_row(&mut self, o: &Obs, text: &str) -> io::Result<()> {
        let mark = if o.holds == Some(true) {
            "✓".green().bold().to_string()
        } else {
            "✗".red().bold().to_string()
        };
        let mut tail = o.name.clone();
        if let (Some(e), Some(false)) = (&o.expected, o.holds) {
            tail = format!(
                "{tail} · {}",
                crate::ui!(self.lang, "expected", &[("what", e)])
            );
        }
        const PAD: usize = 4;
        let mut lines = self.wrap(text, PAD);
        let last = lines.pop().unwrap_or_default();
        for (i, part) in lines.iter().enumerate() {
            let lead = if i == 0 {
                format!("  {mark} ")
            } else {
                " ".repeat(PAD)
            };
            writeln!(self.buf, "{lead}{part}")?;
        }
        let lead = if lines.is_empty() {
            format!("  {mark} ")
        } else {
            " ".repeat(PAD)
        };
        let one = format!("{last}  {tail}");
        if self.width.is_none_or(|w| PAD + visible_width(&one) <= w) {
            writeln!(self.buf, "{lead}{last}  {}", tail.dimmed())
        } else if o.holds == Some(true) && !self.verbose {
            // The sentence says it; the name (for the stream's reader) only where it
            // fits, unless verbose: a line of its own under every row is a wall.
            writeln!(self.buf, "{lead}{last}")
        } else {
            writeln!(self.buf, "{lead}{last}")?;
            for part in self.wrap(&tail, PAD + 2) {
                writeln!(self.buf, "{}{}", " ".repeat(PAD + 2), part.dimmed())?;
            }
            Ok(())
        }
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

    /// A quiz's prediction judged (`right`) against observation `name`, valued
    /// `observed` in this run, under the answer: said in the lesson's words when it has
    /// them, wrapped under itself.
    pub(super) fn quiz_verdict(
        &mut self,
        name: &str,
        right: Option<ObsValue>,
        observed: &str,
    ) -> io::Result<()> {
        let lang = self.lang;
        let said = (self.observations.iter())
            .find(|o| o.name == name)
            .and_then(|o| self.said(o, &self.observations));
        let right = match right {
            Some(ObsValue::Bool(r)) => Some(r),
            _ => None,
        };
        let text = match (right, said) {
            (Some(true), Some(what)) => {
                crate::ui!(lang, "quiz_right_said", &[("what", &what), ("name", &name)])
            }
            (Some(false), Some(what)) => {
                crate::ui!(lang, "quiz_wrong_said", &[("what", &what), ("name", &name)])
            }
            (Some(true), None) => {
                crate::ui!(lang, "quiz_right", &[("name", &name), ("value", &observed)])
            }
            (Some(false), None) => {
                crate::ui!(lang, "quiz_wrong", &[("name", &name), ("value", &observed)])
            }
            (None, _) => crate::ui!(lang, "quiz_unjudged", &[("name", &name)]),
        };
        for part in self.wrap(&text, 4) {
            let part = match right {
                Some(true) => part.green().bold(),
                Some(false) => part.red().bold(),
                None => part.dimmed(),
            };
            writeln!(self.buf, "    {part}")?;
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
