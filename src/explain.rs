//! What mp-demo says about its lessons without running one: `list` (for a person and,
//! with `--json`, for a script) and `explain` (the concept, the Python script it mirrors,
//! the system calls; `--python` prints the script alone, to save and run).

use crate::lessons::{self, LessonDef};
use crate::narrate;
use crate::words::Lang;
use anyhow::Result;
use colored::Colorize;
use std::io::IsTerminal;

/// `mp-demo list`.
pub(crate) fn list(lang: Lang) -> String {
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
pub(crate) fn list_json(lang: Lang) -> String {
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
pub(crate) fn explain(def: &LessonDef, lang: Lang) -> Result<String> {
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
pub(crate) fn python_script(def: &LessonDef) -> Result<String> {
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
