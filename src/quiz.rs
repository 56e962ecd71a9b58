//! `--quiz`: before a lesson runs, ask the student to predict what it will show; after it
//! ran, judge each prediction against what *this run* observed (never a stored answer)
//! and explain.

use crate::ctx::Claim;
use crate::event::ObsValue;
use crate::words::{Choice, Lang, Question};
use colored::Colorize;
use std::io::{self, Write};

/// A question and the number of the choice the student picked (1-based).
pub struct Answer {
    pub question: Question,
    pub picked: usize,
}

/// Ask every question of a lesson on `out` and read the answers from the terminal.
/// `None` if the student quit.
pub fn ask(
    out: &mut dyn Write,
    questions: &[Question],
    lang: Lang,
) -> io::Result<Option<Vec<Answer>>> {
    let mut answers = Vec::new();
    if questions.is_empty() {
        return Ok(Some(answers));
    }
    let width = crossterm::terminal::size()
        .ok()
        .map(|(w, _)| usize::from(w))
        .filter(|&w| w > 0);
    // `text` after `head`, wrapped to the terminal, continuation lines under the text.
    let put = |out: &mut dyn Write, head: &str, text: &str, bold: bool| -> io::Result<()> {
        let pad = crate::narrate::human::visible_width(head);
        let lines = match width {
            Some(w) => crate::narrate::human::wrap(text, w.saturating_sub(pad + 1).max(20)),
            None => vec![text.to_string()],
        };
        for (i, line) in lines.iter().enumerate() {
            let line = if bold {
                line.bold().to_string()
            } else {
                line.clone()
            };
            if i == 0 {
                writeln!(out, "{head}{line}")?;
            } else {
                writeln!(out, "{}{line}", " ".repeat(pad))?;
            }
        }
        Ok(())
    };
    writeln!(out)?;
    put(out, "", &crate::ui!(lang, "quiz_intro", &[]), true)?;
    for (qi, q) in questions.iter().enumerate() {
        writeln!(out)?;
        put(out, &format!("  {}. ", qi + 1), q.ask.get(lang), true)?;
        for (i, c) in q.choices.iter().enumerate() {
            put(
                out,
                &format!("     {}) ", i + 1),
                choice_text(c, lang),
                false,
            )?;
        }
        write!(out, "  > ")?;
        out.flush()?;
        let Some(picked) = crate::term::choose(q.choices.len())? else {
            writeln!(out)?;
            return Ok(None);
        };
        writeln!(out, "{picked}")?;
        answers.push(Answer {
            question: q.clone(),
            picked,
        });
    }
    writeln!(out)?;
    out.flush()?;
    Ok(Some(answers))
}

pub fn choice_text(c: &Choice, lang: Lang) -> &str {
    match lang {
        Lang::En => &c.en,
        Lang::Zh => &c.zh,
    }
}

/// Whether `c` predicted what was observed. `None` if the run did not report it.
pub fn judge(c: &Choice, observation: &str, claims: &[Claim]) -> Option<bool> {
    let find = |name: &str| claims.iter().find(|cl| cl.name == name).map(|cl| &cl.value);
    let seen = find(observation)?;
    let num = |v: &ObsValue| match v {
        ObsValue::Int(i) => Some(*i as f64),
        ObsValue::Float(f) => Some(*f),
        _ => None,
    };
    let mut ok = true;
    if let Some(v) = &c.value {
        ok &= match (v, seen) {
            (toml::Value::Boolean(b), ObsValue::Bool(s)) => b == s,
            (toml::Value::Integer(i), s) => num(s) == Some(*i as f64),
            (toml::Value::Float(f), s) => num(s).is_some_and(|x| (x - f).abs() < 1e-9),
            (toml::Value::String(t), ObsValue::Str(s)) => t == s,
            _ => false,
        };
    }
    if let Some(a) = c.above {
        ok &= num(seen).is_some_and(|x| x > a);
    }
    if let Some(b) = c.below {
        ok &= num(seen).is_some_and(|x| x < b);
    }
    if let Some(other) = &c.same_as {
        ok &= find(other).is_some_and(|o| o == seen);
    }
    let other = |name: &Option<String>| name.as_deref().map(|n| find(n).and_then(num));
    if let Some(bound) = other(&c.greater_than) {
        ok &= matches!((num(seen), bound), (Some(x), Some(b)) if x > b);
    }
    if let Some(bound) = other(&c.less_than) {
        ok &= matches!((num(seen), bound), (Some(x), Some(b)) if x < b);
    }
    Some(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(name: &str, value: ObsValue) -> Claim {
        Claim {
            name: name.into(),
            value,
            holds: None,
        }
    }

    fn choice(toml_src: &str) -> Choice {
        toml::from_str(&format!("en = \"a\"\nzh = \"b\"\n{toml_src}")).unwrap()
    }

    #[test]
    fn choices_are_judged_against_the_observations() {
        let claims = vec![
            claim("n", ObsValue::Int(100)),
            claim("sold", ObsValue::Int(5)),
            claim("tickets", ObsValue::Int(1)),
            claim("z", ObsValue::Bool(true)),
        ];
        assert_eq!(judge(&choice("value = 100"), "n", &claims), Some(true));
        assert_eq!(judge(&choice("value = 0"), "n", &claims), Some(false));
        assert_eq!(judge(&choice("above = 1.0"), "sold", &claims), Some(true));
        assert_eq!(
            judge(&choice("same_as = \"tickets\""), "sold", &claims),
            Some(false)
        );
        assert_eq!(
            judge(&choice("greater_than = \"tickets\""), "sold", &claims),
            Some(true)
        );
        assert_eq!(
            judge(&choice("less_than = \"tickets\""), "sold", &claims),
            Some(false)
        );
        assert_eq!(
            judge(&choice("greater_than = \"nothing\""), "sold", &claims),
            Some(false)
        );
        assert_eq!(judge(&choice("value = true"), "z", &claims), Some(true));
        assert_eq!(judge(&choice("value = 1"), "missing", &claims), None);
    }
}
