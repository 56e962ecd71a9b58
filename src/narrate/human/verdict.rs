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
        // The timeline takes the terminal's width (it stops at 160 columns itself).
        let width = self.width.unwrap_or(80);
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
            self.observation(o, name_w)?;
        }
        self.verdict(ok, elapsed_ms)
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
        writeln!(self.buf, "{verdict}")?;
        writeln!(self.buf)
    }
}
