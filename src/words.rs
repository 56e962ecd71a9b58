//! Words are data: every sentence mp-demo says lives in `lessons/*.toml`, in English and
//! Chinese, embedded in the binary. The code names keys and arguments; this module finds
//! the line in the chosen language and fills in `{placeholders}`.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Display;

/// The language of the narration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    En,
    Zh,
}

impl Lang {
    /// The language the environment asks for: the first of `LC_ALL`, `LC_MESSAGES`,
    /// `LANG` that is set and not empty; Chinese if it starts with `zh`.
    pub fn from_env() -> Lang {
        for var in ["LC_ALL", "LC_MESSAGES", "LANG"] {
            if let Ok(v) = std::env::var(var) {
                if !v.is_empty() {
                    return if v.to_ascii_lowercase().starts_with("zh") {
                        Lang::Zh
                    } else {
                        Lang::En
                    };
                }
            }
        }
        Lang::En
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
    }
}

/// One sentence in both languages, with what it points at.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    pub en: String,
    pub zh: String,
    /// The Python line this sentence is about (language-independent).
    pub python: Option<String>,
    /// The system call underneath.
    pub syscall: Option<String>,
    /// For steps: a command a student can run to see it from outside.
    pub hint: Option<String>,
    /// For an event kind's label (`[ui.act_<kind>]`): its one-character mark on the
    /// timeline; none for a kind the timeline does not mark.
    pub mark: Option<String>,
    /// For steps that repeat something many times (timed rounds): what the step's own
    /// sentences sum up, so the default view does not tell it one by one (`--verbose`
    /// does; the stream and the timeline carry all of it): act kinds (`task_start`),
    /// `children` for the processes the step starts (their start, states and end), and
    /// `states` for every process's changes of state while the step lasts.
    #[serde(default)]
    pub sums_up: Vec<String>,
}

impl Line {
    pub fn get(&self, lang: Lang) -> &str {
        match lang {
            Lang::En => &self.en,
            Lang::Zh => &self.zh,
        }
    }
}

/// A quiz question: asked before the run, judged against what the run observed.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    /// The observation the answer is judged against.
    pub observation: String,
    pub ask: Line,
    /// The choices: each a sentence and the observed value it stands for.
    pub choices: Vec<Choice>,
    pub explain: Line,
}

/// One answer of a question, and the observations it predicts: an exact `value`, a
/// number `above` or `below` a bound, equal to another observation (`same_as`), or a
/// number greater or less than another observation (`greater_than`, `less_than`: the
/// bound moves with the options, e.g. "more than the tickets").
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Choice {
    pub en: String,
    pub zh: String,
    pub value: Option<toml::Value>,
    pub above: Option<f64>,
    pub below: Option<f64>,
    pub same_as: Option<String>,
    pub greater_than: Option<String>,
    pub less_than: Option<String>,
}

/// The head of a lesson's words file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    pub title: Line,
    pub summary: Line,
    pub concept: Line,
    /// The Python it mirrors: a whole script that runs as printed under CPython 3.11+,
    /// with the start method as its optional first argument
    /// (`python3 demo.py spawn`); `mp-demo explain <lesson> --python` prints it alone.
    pub python: String,
    /// What the script prints that this lesson also observes: observation name -> the
    /// start methods under which the script's `name = value` line must equal the
    /// lesson's own `--json` observation (`tests/python.rs` runs both and compares).
    #[serde(default)]
    pub python_checks: BTreeMap<String, Vec<String>>,
    /// The system calls underneath, e.g. `["fork(2)", "waitpid(2)"]`.
    pub syscalls: Vec<String>,
    /// Where this lesson's processes sleep for the staging, not for the story: kernel
    /// wait channels (`waiting_in` of a `state` event, e.g. `anon_pipe_read` for a gate
    /// the children wait at), each a prefix. The default view does not narrate a sleep
    /// there (`--verbose` does); the stream still carries it.
    #[serde(default)]
    pub staging: Vec<String>,
}

/// All the words of one lesson (or the common words of the program).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Words {
    pub meta: Option<Meta>,
    #[serde(default)]
    pub say: BTreeMap<String, Line>,
    #[serde(default)]
    pub step: BTreeMap<String, Line>,
    #[serde(default)]
    pub ui: BTreeMap<String, Line>,
    #[serde(default)]
    pub quiz: Vec<Question>,
    /// The event kinds this lesson adds to the `--json` stream (`[events.<kind>]`), each
    /// with its meaning for this lesson: the contract `docs/events.md` points to.
    #[serde(default)]
    pub events: BTreeMap<String, EventDoc>,
    /// The observations this lesson reports (`[observations.<name>]`), each with its
    /// type, meaning and claim: the contract of its `observation` events.
    #[serde(default)]
    pub observations: BTreeMap<String, ObsDoc>,
    /// Each claim of the lesson in words (`[verdict.<observation>]`), and each fact a
    /// quiz asks about: what the verdict and the quiz say of it.
    #[serde(default)]
    pub verdict: BTreeMap<String, Verdict>,
}

/// What an observation showed, in words: its `{placeholders}` are observation names of
/// the same run (`{tickets}`), so a sentence can say the value and what it is compared
/// with. True whether the claim held or not (the ✓ or ✗ says which), or with a `failed`
/// variant for when it did not.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verdict {
    pub en: String,
    pub zh: String,
    /// Said instead when the claim did not hold.
    pub failed: Option<Sentence>,
}

/// One sentence in both languages.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sentence {
    pub en: String,
    pub zh: String,
}

impl Verdict {
    /// The sentence in `lang` for a claim that held (or a fact: `holds` is `None`), or
    /// its `failed` variant, filled with the run's observations (`values`).
    pub fn text(&self, lang: Lang, holds: Option<bool>, values: Args<'_>) -> String {
        let (en, zh) = match (&self.failed, holds) {
            (Some(f), Some(false)) => (&f.en, &f.zh),
            _ => (&self.en, &self.zh),
        };
        fill(if lang == Lang::En { en } else { zh }, values)
    }
}

/// One kind of event a lesson emits, as its words file documents it (in English: it is
/// the contract for graders and developers). Every such event also carries `name`, the
/// role of its process (`docs/events.md`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventDoc {
    /// The process the event is about (its `pid`), e.g. "a buyer".
    pub pid: String,
    /// Where and when it is stamped.
    pub stamped: String,
    /// What it means, and what a reader may count on (staging, order, counts).
    pub about: String,
    /// Its own fields (besides `t_ms`, `lesson`, `kind`, `pid`, `name`) and their meaning.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// Emitted only on some runs (`about` says when).
    #[serde(default)]
    pub optional: bool,
    /// Fields that not every event of the kind carries (their meaning says when); every
    /// other field is on every one.
    #[serde(default)]
    pub optional_fields: Vec<String>,
}

/// One observation a lesson reports, as its words file documents it (in English, like
/// [`EventDoc`]: the contract for graders).
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ObsDoc {
    /// The JSON type of its `value`: `boolean`, `integer`, `number` or `string`.
    #[serde(rename = "type")]
    pub value_type: String,
    /// What it is: what was measured, where, and in what unit.
    pub about: String,
    /// The claim about it (the `op` and what the target is, e.g. `> tickets`), when it
    /// is a claim; none for a fact.
    pub claim: Option<String>,
    /// Claimed only on some runs (`claim` says when), reported as a fact on the others.
    #[serde(default)]
    pub claim_optional: bool,
    /// Reported only on some runs (`about` says when).
    #[serde(default)]
    pub optional: bool,
}

impl Words {
    /// Parse a words file, and check that every line has the same placeholders in both
    /// languages (a `{pid}` lost in translation would silently print nothing).
    pub fn parse(name: &str, src: &str) -> Result<Words> {
        let words: Words =
            toml::from_str(src).with_context(|| format!("parsing lessons/{name}.toml"))?;
        for (section, map) in [
            ("say", &words.say),
            ("step", &words.step),
            ("ui", &words.ui),
        ] {
            for (key, line) in map {
                let (en, zh) = (placeholders(&line.en), placeholders(&line.zh));
                if en != zh {
                    bail!(
                        "lessons/{name}.toml [{section}.{key}]: placeholders differ: en {en:?}, zh {zh:?}"
                    );
                }
            }
        }
        for (key, v) in &words.verdict {
            let pairs =
                std::iter::once((&v.en, &v.zh)).chain(v.failed.as_ref().map(|f| (&f.en, &f.zh)));
            for (en, zh) in pairs {
                let (en, zh) = (placeholders(en), placeholders(zh));
                if en != zh {
                    bail!(
                        "lessons/{name}.toml [verdict.{key}]: placeholders differ: en {en:?}, zh {zh:?}"
                    );
                }
            }
        }
        if let Some(meta) = &words.meta {
            for (obs, methods) in &meta.python_checks {
                if let Some(m) = methods
                    .iter()
                    .find(|m| !START_METHODS.contains(&m.as_str()))
                {
                    bail!("lessons/{name}.toml [meta.python_checks] {obs}: {m} is not a start method (fork, spawn, forkserver)");
                }
            }
        }
        Ok(words)
    }
}

/// CPython's three start methods, the ones a snippet's checks may name.
pub const START_METHODS: [&str; 3] = ["fork", "spawn", "forkserver"];

impl Words {
    /// A `say` event for `key`: the line in `lang`, filled, with its Python and syscall.
    pub fn say(&self, lang: Lang, key: &str, args: Args<'_>) -> crate::event::Kind {
        let (text, python, syscall) = match self.say.get(key) {
            Some(line) => (
                fill(line.get(lang), args),
                line.python.as_deref().map(|p| fill(p, args)),
                line.syscall.as_deref().map(|s| fill(s, args)),
            ),
            None => (format!("<{key}>"), None, None),
        };
        crate::event::Kind::Say {
            key: key.to_string(),
            text,
            python,
            syscall,
        }
    }
}

/// The `{names}` in a template, sorted.
pub fn placeholders(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let name = &after[..close];
                out.push(name.split('|').next().unwrap_or(name).to_string());
                rest = &after[close + 1..];
            }
            None => break,
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Arguments of a template: `&[("pid", &4242)]`.
pub type Args<'a> = &'a [(&'a str, &'a dyn Display)];

/// Fill `{name}` placeholders from `args`; an unknown placeholder is left as it is.
/// `{name|one|many}` is a word that agrees with the number `name`: `one` when it is 1,
/// else `many` (`{n} {n|waiter|waiters} asleep`); Chinese needs none.
pub fn fill(template: &str, args: Args<'_>) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let name = &after[..close];
        let mut forms = name.split('|');
        let var = forms.next().unwrap_or(name);
        let (one, many) = (forms.next(), forms.next());
        match args.iter().find(|(k, _)| *k == var) {
            Some((_, v)) => match (one, many) {
                (Some(one), Some(many)) => {
                    out.push_str(if v.to_string() == "1" { one } else { many })
                }
                _ => out.push_str(&v.to_string()),
            },
            None => {
                out.push('{');
                out.push_str(name);
                out.push('}');
            }
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

/// The words every lesson shares: labels, state names, messages.
pub const COMMON_SRC: &str = include_str!("../lessons/common.toml");

/// The common words, parsed once.
pub fn common() -> &'static Words {
    static COMMON: std::sync::OnceLock<Words> = std::sync::OnceLock::new();
    COMMON.get_or_init(|| Words::parse("common", COMMON_SRC).expect("lessons/common.toml is valid"))
}

/// A common UI string in `lang`, filled with `args`. A missing key shows itself rather
/// than panicking; [`ui!`](crate::ui!) checks a literal key at compile time.
pub fn ui(lang: Lang, key: &str, args: Args<'_>) -> String {
    match common().ui.get(key) {
        Some(line) => fill(line.get(lang), args),
        None => format!("<{key}>"),
    }
}

/// A label of the stream's vocabulary (`act_<kind>`, `field_<name>`, `gauge_<name>`): the
/// lesson's own words first (each lesson labels the event kinds and fields it adds), then
/// the common words, else `fallback`.
pub fn label(lang: Lang, lesson: Option<&Words>, key: &str, fallback: &str) -> String {
    match lesson.and_then(|w| w.ui.get(key)) {
        Some(line) => line.get(lang).to_string(),
        None => ui_or(lang, key, fallback),
    }
}

/// The timeline mark of event kind `act`: the lesson's `[ui.act_<kind>] mark`, then the
/// common one.
pub fn mark(lesson: Option<&Words>, act: &str) -> Option<char> {
    let key = format!("act_{act}");
    lesson
        .and_then(|w| w.ui.get(&key))
        .or_else(|| common().ui.get(&key))
        .and_then(|line| line.mark.as_deref())
        .and_then(|m| m.chars().next())
}

/// The common UI string `key` in `lang` if there is one (labels that may be missing,
/// such as a lesson event's field), else `fallback`.
pub fn ui_or(lang: Lang, key: &str, fallback: &str) -> String {
    match common().ui.get(key) {
        Some(line) => line.get(lang).to_string(),
        None => fallback.to_string(),
    }
}

/// A state letter from `/proc/<pid>/stat` in words ("sleeping", "zombie", …).
pub fn state_words(lang: Lang, letter: &str) -> String {
    if !matches!(letter, "R" | "S" | "D" | "T" | "t" | "Z" | "X" | "x" | "I") {
        return letter.to_string();
    }
    crate::ui!(
        lang,
        match (letter) {
            "R" => "state_R",
            "S" => "state_S",
            "D" => "state_D",
            "T" | "t" => "state_T",
            "Z" => "state_Z",
            "X" | "x" => "state_X",
            _ => "state_I",
        },
        &[]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_replaces_known_and_keeps_unknown() {
        assert_eq!(
            fill("pid {pid} of {ppid} {x}", &[("pid", &1), ("ppid", &"2")]),
            "pid 1 of 2 {x}"
        );
        assert_eq!(fill("no braces", &[]), "no braces");
        assert_eq!(fill("open { only", &[]), "open { only");
    }

    #[test]
    fn placeholders_are_found() {
        assert_eq!(placeholders("{b} and {a} and {b}"), vec!["a", "b"]);
        assert_eq!(placeholders("{n} {n|waiter|waiters}"), vec!["n"]);
    }

    #[test]
    fn a_word_agrees_with_its_number() {
        let t = "{n} {n|waiter|waiters} asleep";
        assert_eq!(fill(t, &[("n", &1)]), "1 waiter asleep");
        assert_eq!(fill(t, &[("n", &3)]), "3 waiters asleep");
    }

    #[test]
    fn a_verdict_says_its_failed_variant_only_when_the_claim_failed() {
        let src = "[verdict.sold]\nen = \"{sold} of {tickets}\"\nzh = \"{tickets} 张中的 {sold} 张\"\nfailed.en = \"not {sold}\"\nfailed.zh = \"不是 {sold}\"\n";
        let w = Words::parse("t", src).unwrap();
        let v = &w.verdict["sold"];
        let args: Args<'_> = &[("sold", &1), ("tickets", &2)];
        assert_eq!(v.text(Lang::En, Some(true), args), "1 of 2");
        assert_eq!(v.text(Lang::En, None, args), "1 of 2");
        assert_eq!(v.text(Lang::Zh, Some(false), args), "不是 1");
        let lost = "[verdict.x]\nen = \"{a}\"\nzh = \"{b}\"\n";
        assert!(Words::parse("t", lost).is_err());
    }

    #[test]
    fn common_words_parse() {
        assert!(common().ui.contains_key("state_Z"));
    }
}

/// The keys of every words file and the placeholders of each line, made by `build.rs`
/// from `lessons/*.toml`, and the compile-time checks the word macros run on them.
pub mod keys {
    /// One words file: each section's keys, each with the placeholders of its line.
    pub struct Table {
        pub say: &'static [(&'static str, &'static [&'static str])],
        pub step: &'static [(&'static str, &'static [&'static str])],
        pub ui: &'static [(&'static str, &'static [&'static str])],
    }

    include!(concat!(env!("OUT_DIR"), "/keys.rs"));

    const fn same(a: &str, b: &str) -> bool {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        let mut i = 0;
        while i < a.len() {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }

    const fn find(
        section: &'static [(&'static str, &'static [&'static str])],
        key: &str,
    ) -> Option<&'static [&'static str]> {
        let mut i = 0;
        while i < section.len() {
            if same(section[i].0, key) {
                return Some(section[i].1);
            }
            i += 1;
        }
        None
    }

    /// At compile time: `key` is in `section`, and when `given` is known, every
    /// placeholder of its line is among `given`. Panics (a compile error at the call)
    /// otherwise.
    pub const fn check(
        section: &'static [(&'static str, &'static [&'static str])],
        key: &str,
        given: Option<&[&str]>,
    ) {
        let Some(wanted) = find(section, key) else {
            panic!("this word key is not in the lesson's words file (lessons/*.toml)");
        };
        let Some(given) = given else {
            return;
        };
        let mut i = 0;
        while i < wanted.len() {
            let mut j = 0;
            let mut found = false;
            while j < given.len() {
                if same(wanted[i], given[j]) {
                    found = true;
                }
                j += 1;
            }
            if !found {
                panic!("a placeholder of this line is not given: see its words file");
            }
            i += 1;
        }
    }
}

/// The key of a `say!`, `say_for!` or `step!` line, in one of three forms, each checked at
/// compile time (the key exists, and every placeholder of its line is among the names
/// given):
///
/// - a literal: `"key"`;
/// - one of two: `if (cond) { "key_a" } else { "key_b" }`;
/// - one of several: `match (value) { Pattern => "key_a", _ if cond => "key_b", _ => "key_c" }`.
///
/// A key is never held in a variable: what cannot be seen here cannot be checked.
#[doc(hidden)]
#[macro_export]
macro_rules! __speak {
    ([$table:expr] [$($call:tt)+] [$($pre:expr),*]
     $key:literal, &[$(($name:literal, $value:expr)),* $(,)?] $(,)?) => {{
        const _: () = $crate::words::keys::check($table, $key, Some(&[$($name),*]));
        // The one place the unchecked call is made (clippy.toml bans it elsewhere).
        #[allow(clippy::disallowed_methods)]
        let said = $($call)+($($pre,)* $key, &[$(($name, $value)),*]);
        said
    }};
    ([$table:expr] [$($call:tt)+] [$($pre:expr),*] $key:literal, $args:expr $(,)?) => {{
        const _: () = $crate::words::keys::check($table, $key, None);
        // The one place the unchecked call is made (clippy.toml bans it elsewhere).
        #[allow(clippy::disallowed_methods)]
        let said = $($call)+($($pre,)* $key, $args);
        said
    }};
    ([$table:expr] [$($call:tt)+] [$($pre:expr),*]
     if ($c:expr) { $a:literal } else { $b:literal },
     &[$(($name:literal, $value:expr)),* $(,)?] $(,)?) => {{
        let key = if $c {
            const _: () = $crate::words::keys::check($table, $a, Some(&[$($name),*]));
            $a
        } else {
            const _: () = $crate::words::keys::check($table, $b, Some(&[$($name),*]));
            $b
        };
        // The one place the unchecked call is made (clippy.toml bans it elsewhere).
        #[allow(clippy::disallowed_methods)]
        let said = $($call)+($($pre,)* key, &[$(($name, $value)),*]);
        said
    }};
    ([$table:expr] [$($call:tt)+] [$($pre:expr),*]
     match ($e:expr) { $($p:pat $(if $g:expr)? => $k:literal),+ $(,)? },
     &[$(($name:literal, $value:expr)),* $(,)?] $(,)?) => {{
        const GIVEN: &[&str] = &[$($name),*];
        let key = match $e {
            $($p $(if $g)? => {
                const _: () = $crate::words::keys::check($table, $k, Some(GIVEN));
                $k
            })+
        };
        // The one place the unchecked call is made (clippy.toml bans it elsewhere).
        #[allow(clippy::disallowed_methods)]
        let said = $($call)+($($pre,)* key, &[$(($name, $value)),*]);
        said
    }};
}

/// `say!(ctx, "key", &[("name", &value), …])`: `ctx.say(…)` with the key and its
/// placeholders checked at compile time against the lesson's words (`WORDS`, declared
/// at the top of the lesson's file). Works for `Ctx`, `ChildCtx` and `Voice`. The key
/// may also be `if (cond) { "a" } else { "b" }` or `match (v) { P => "a", … }`, each
/// key checked (see `__speak!`).
#[macro_export]
macro_rules! say {
    ($who:expr, $($rest:tt)+) => { $crate::__speak!([WORDS.say] [$who.say] [] $($rest)+) };
}

/// `say_for!(ctx, pid, t_ns, "key", &[…])`: [`say!`] for `Ctx::say_for`.
#[macro_export]
macro_rules! say_for {
    ($who:expr, $pid:expr, $t:expr, $($rest:tt)+) => {
        $crate::__speak!([WORDS.say] [$who.say_for] [$pid, $t] $($rest)+)
    };
}

/// `step!(ctx, "key", &[…])`: [`say!`] for `Ctx::step` (title and hint).
#[macro_export]
macro_rules! step {
    ($who:expr, $($rest:tt)+) => { $crate::__speak!([WORDS.step] [$who.step] [] $($rest)+) };
}

/// `ui!(lang, "key", &[…])`: [`ui`] with the key checked against `lessons/common.toml`
/// (the same three forms of key as [`say!`]).
#[macro_export]
macro_rules! ui {
    ($lang:expr, $($rest:tt)+) => {
        $crate::__speak!(
            [$crate::words::keys::COMMON.ui] [$crate::words::ui] [$lang] $($rest)+
        )
    };
}
