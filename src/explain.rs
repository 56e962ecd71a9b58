//! What mp-demo says about its lessons without running one: `list` (for a person and,
//! with `--json`, for a script) and `explain` (the concept, the Python script it mirrors,
//! the system calls; `--python` prints the script alone, to save and run; `--events` the
//! event kinds the lesson adds to the `--json` stream, from its words file).

use crate::lessons::{self, LessonDef};
use crate::narrate;
use crate::words::{EventDoc, Lang};
use anyhow::Result;
use colored::Colorize;
use std::io::IsTerminal;

/// `mp-demo list`.
pub(crate) fn list(lang: Lang) -> String {
    // The terminal's width; off a terminal, COLUMNS; else lines whole (one a lesson,
    // for scripts).
    let columns = if std::io::stdout().is_terminal() {
        crossterm::terminal::size()
            .ok()
            .map(|(w, _)| usize::from(w))
    } else {
        std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok())
    }
    .filter(|&w| w > 0)
    .map_or(usize::MAX / 2, |w: usize| w.max(40));
    let mut out = String::new();
    for line in narrate::human::wrap(&crate::ui!(lang, "list_header", &[]), columns) {
        out.push_str(&format!("{line}\n"));
    }
    let width = lessons::LESSONS
        .iter()
        .map(|l| l.name.len())
        .max()
        .unwrap_or(0);
    // Each summary wrapped beside its name; below 60 columns, under it.
    let (hang, room) = if columns < 60 {
        (4, columns - 4)
    } else {
        (width + 4, columns - width - 4)
    };
    for def in lessons::LESSONS {
        let summary = narrate::human::wrap(&def.summary(lang), room);
        if columns < 60 {
            out.push_str(&format!("  {}\n", def.name.bold()));
        }
        for (i, part) in summary.iter().enumerate() {
            if i == 0 && columns >= 60 {
                let pad = " ".repeat(width - def.name.len());
                out.push_str(&format!("  {}{pad}  {part}\n", def.name.bold()));
            } else {
                out.push_str(&format!("{}{part}\n", " ".repeat(hang)));
            }
        }
    }
    out
}

/// `mp-demo --json list`: one object per lesson, with its options and their ranges and
/// the event kinds it adds (as its words file documents them), for scripts and graders.
pub(crate) fn list_json(lang: Lang) -> Result<String> {
    let mut out = String::new();
    for def in lessons::LESSONS {
        let summary = def.summary(lang);
        let options: Vec<serde_json::Value> = def
            .options
            .iter()
            .map(|o| serde_json::json!({ "name": o.name, "default": o.default, "min": o.min, "max": o.max, "help": o.help }))
            .collect();
        let words = def.words()?;
        let events: Vec<serde_json::Value> = words
            .events
            .iter()
            .map(|(kind, doc)| event_json(kind, doc))
            .collect();
        let observations: Vec<serde_json::Value> = words
            .observations
            .iter()
            .map(|(name, doc)| observation_json(name, doc))
            .collect();
        let line = serde_json::json!({
            "lesson": def.name,
            "summary": summary,
            "options": options,
            "events": events,
            "observations": observations,
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    Ok(out)
}

/// One `[events.<kind>]` of a words file as an entry of `--json list`'s `events`.
fn event_json(kind: &str, doc: &EventDoc) -> serde_json::Value {
    serde_json::json!({
        "kind": kind,
        "pid": doc.pid,
        "about": doc.about,
        "stamped": doc.stamped,
        "fields": doc.fields,
        "optional": doc.optional,
        "optional_fields": doc.optional_fields,
    })
}

/// One `[observations.<name>]` of a words file as an entry of `--json list`'s
/// `observations`: `claim` is absent for a fact.
fn observation_json(name: &str, doc: &crate::words::ObsDoc) -> serde_json::Value {
    let mut entry = serde_json::json!({
        "name": name,
        "type": doc.value_type,
        "about": doc.about,
        "optional": doc.optional,
    });
    if let Some(claim) = &doc.claim {
        entry["claim"] = claim.as_str().into();
        entry["claim_optional"] = doc.claim_optional.into();
    }
    entry
}

/// The room for text: the terminal's width (20 to 100 columns), or 80 off a terminal.
fn text_width() -> usize {
    if std::io::stdout().is_terminal() {
        crossterm::terminal::size()
            .ok()
            .map(|(w, _)| usize::from(w))
            .filter(|&w| w > 20)
            .unwrap_or(80)
            .min(100)
    } else {
        80
    }
}

/// `mp-demo explain <lesson>`: the concept wrapped to the terminal, `code` highlighted,
/// the Python it mirrors, the system calls underneath.
pub(crate) fn explain(def: &LessonDef, lang: Lang) -> Result<String> {
    let words = def.words()?;
    let Some(meta) = words.meta else {
        return Ok(String::new());
    };
    let width = text_width();
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
        // The terminal's own foreground: bright white vanishes on a light background.
        out.push_str(&format!("    {line}\n"));
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

/// `mp-demo explain <lesson> --events`: the event kinds the lesson adds to the `--json`
/// stream, each with its process, its stamp, its meaning and its fields, from the
/// lesson's words file. In English, like `docs/events.md`: the contract, not narration.
pub(crate) fn events(def: &LessonDef) -> Result<String> {
    let words = def.words()?;
    let width = text_width();
    let mut out = format!(
        "{}\n\n",
        format!("mp-demo {} · the events it adds", def.name).bold()
    );
    let intro = if words.events.is_empty() {
        format!(
            "Lesson {} adds no kind of its own: its `--json` stream has only the core kinds \
             of docs/events.md.",
            def.name
        )
    } else {
        "Besides the core kinds of docs/events.md, its `--json` stream has these. Each event \
         carries `t_ms`, `lesson`, `kind`, `pid` (the process it is about) and `name` (that \
         process's role), then the fields below."
            .to_string()
    };
    push_wrapped(&mut out, "", &intro, width);
    for (kind, doc) in &words.events {
        out.push_str(&format!("\n{}\n", kind.bold()));
        push_wrapped(&mut out, "  ", &doc.about, width);
        let only = |yes: bool| if yes { " (only on some runs)" } else { "" };
        let pid = format!("{}{}", doc.pid, only(doc.optional));
        push_wrapped(&mut out, "  pid      ", &pid, width);
        push_wrapped(&mut out, "  stamped  ", &doc.stamped, width);
        let name_width = doc.fields.keys().map(String::len).max().unwrap_or(0);
        let mut head = "  fields   ".to_string();
        if doc.fields.is_empty() {
            push_wrapped(&mut out, &head, "none", width);
        }
        for (field, meaning) in &doc.fields {
            head.push_str(&format!("{field:<name_width$}  "));
            let optional = doc.optional_fields.contains(field);
            push_wrapped(
                &mut out,
                &head,
                &format!("{meaning}{}", only(optional)),
                width,
            );
            head = " ".repeat(11);
        }
    }
    if !words.observations.is_empty() {
        out.push_str(&format!("\n{}\n\n", "The observations it reports".bold()));
        push_wrapped(
            &mut out,
            "",
            "Each is an `observation` event with `name` and `value`; a claim also has \
             `expected`, `claim` and `holds` (docs/events.md, \"Claims\").",
            width,
        );
    }
    for (name, doc) in &words.observations {
        out.push_str(&format!("\n{}\n", name.bold()));
        push_wrapped(&mut out, "  ", &doc.about, width);
        let only = |yes: bool| if yes { " (only on some runs)" } else { "" };
        let kind = format!("{}{}", doc.value_type, only(doc.optional));
        push_wrapped(&mut out, "  type     ", &kind, width);
        let claim = match &doc.claim {
            Some(c) => format!("{c}{}", only(doc.claim_optional)),
            None => "none: a fact".to_string(),
        };
        push_wrapped(&mut out, "  claim    ", &claim, width);
    }
    Ok(out)
}

/// `text`, its `code` highlighted, wrapped to `width`: the first line behind `head` (plain
/// ASCII), the others behind as many spaces.
fn push_wrapped(out: &mut String, head: &str, text: &str, width: usize) {
    let hang = " ".repeat(head.len());
    let room = width.saturating_sub(head.len()).max(20);
    for (i, line) in narrate::human::wrap(&highlight_code(text), room)
        .iter()
        .enumerate()
    {
        out.push_str(if i == 0 { head } else { &hang });
        out.push_str(line);
        out.push('\n');
    }
}

/// `code` spans in bright white, without the backticks (when colours are on).
fn highlight_code(text: &str) -> String {
    if !colored::control::SHOULD_COLORIZE.should_colorize() {
        return text.to_string();
    }
    let mut out = String::new();
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str(&part.bold().to_string());
        } else {
            out.push_str(part);
        }
    }
    out
}
