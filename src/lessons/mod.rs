//! The registry of lessons: the command line, `list`, `explain`, the tour, the child
//! entry and the tests all read [`LESSONS`]. Adding a lesson is one file of code here,
//! one file of words in `lessons/<name>.toml`, and one line in [`LESSONS`].

use crate::child::RoleFn;
use crate::ctx::Ctx;
use crate::words::Words;
use anyhow::Result;
use std::collections::BTreeMap;

pub mod cost;
pub mod daemon;
pub mod event;
pub mod fork;
pub mod isolation;
pub mod lock;
pub mod orphans;
pub mod pipe;
pub mod pool;
pub mod process;
pub mod queue;
pub mod semaphore;
pub mod shared;
pub mod start_methods;
pub mod states;
pub mod sync_vs_async;
pub mod threads;
pub mod tree;

/// A size option of a lesson (`--workers`, `--buyers`, …) with its range.
pub struct OptSpec {
    pub name: &'static str,
    pub default: u32,
    pub min: u32,
    pub max: u32,
    pub help: &'static str,
}

/// The option values a lesson runs with.
#[derive(Clone, Debug, Default)]
pub struct Opts(pub BTreeMap<&'static str, u32>);

impl Opts {
    /// The value of option `name`, which the lesson declares (a name it does not
    /// declare is a bug, caught by any test run of the lesson).
    pub fn get(&self, name: &str) -> u32 {
        let value = self.0.get(name).copied();
        debug_assert!(value.is_some(), "option --{name} is not declared");
        value.unwrap_or_default()
    }

    /// The defaults of a lesson.
    pub fn defaults(def: &LessonDef) -> Opts {
        Opts(def.options.iter().map(|o| (o.name, o.default)).collect())
    }
}

/// A check across a lesson's options: `Err` is the one-line usage message.
pub type Validate = fn(&Opts) -> std::result::Result<(), String>;

/// A lesson: its name, its words, its options, its story, and its child roles.
pub struct LessonDef {
    pub name: &'static str,
    /// `lessons/<name>.toml`, embedded.
    pub words_src: &'static str,
    pub options: &'static [OptSpec],
    pub run: fn(&mut Ctx<'_>, &Opts) -> Result<()>,
    /// Checks across options that clap's ranges cannot express (`--tickets` fewer than
    /// `--buyers`): run before anything starts, so a usage error prints no stream at all.
    /// The message is one line, naming the options.
    pub validate: Option<Validate>,
    /// Roles a re-executed child of this lesson can play.
    pub roles: &'static [(&'static str, RoleFn)],
}

impl LessonDef {
    pub fn words(&self) -> Result<Words> {
        Words::parse(self.name, self.words_src)
    }

    /// The one-line summary in `lang`, read from the `[meta.summary]` table of the words
    /// file alone: every start builds the command line from every lesson's summary, and
    /// parsing only that table keeps it cheap (the whole files are ~190 KB of TOML). A
    /// test checks it against the summary of the whole file.
    pub fn summary(&self, lang: crate::words::Lang) -> String {
        let src = self.words_src;
        let Some(start) = src.find("\n[meta.summary]\n") else {
            return self
                .words()
                .ok()
                .and_then(|w| w.meta)
                .map(|m| m.summary.get(lang).to_string())
                .unwrap_or_default();
        };
        let body = &src[start + "\n[meta.summary]\n".len()..];
        let end = body.find("\n[").map_or(body.len(), |i| i + 1);
        toml::from_str::<crate::words::Line>(&body[..end])
            .map(|line| line.get(lang).to_string())
            .unwrap_or_default()
    }
}

/// Every lesson, in the order of the tour.
pub static LESSONS: &[&LessonDef] = &[
    &fork::LESSON,
    &process::LESSON,
    &isolation::LESSON,
    &start_methods::LESSON,
    &states::LESSON,
    &tree::LESSON,
    &orphans::LESSON,
    &daemon::LESSON,
    &lock::LESSON,
    &pipe::LESSON,
    &queue::LESSON,
    &event::LESSON,
    &semaphore::LESSON,
    &shared::LESSON,
    &cost::LESSON,
    &pool::LESSON,
    &sync_vs_async::LESSON,
    &threads::LESSON,
];

/// The lesson called `name`.
pub fn find(name: &str) -> Option<&'static LessonDef> {
    LESSONS.iter().copied().find(|l| l.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_from_the_head_is_the_summary_of_the_whole_file() {
        for def in LESSONS {
            let meta = def.words().unwrap().meta.unwrap();
            for lang in [crate::words::Lang::En, crate::words::Lang::Zh] {
                assert_eq!(def.summary(lang), meta.summary.get(lang), "{}", def.name);
            }
        }
    }

    #[test]
    fn every_words_file_parses_with_matching_placeholders() {
        for def in LESSONS {
            let words = def
                .words()
                .unwrap_or_else(|e| panic!("{}: {e:#}", def.name));
            let meta = words
                .meta
                .unwrap_or_else(|| panic!("{}: no [meta]", def.name));
            assert!(!meta.title.en.is_empty() && !meta.title.zh.is_empty());
            assert!(!meta.concept.zh.is_empty() && !meta.python.is_empty());
        }
    }

    #[test]
    fn lesson_names_are_unique() {
        let mut names: Vec<_> = LESSONS.iter().map(|l| l.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), LESSONS.len());
    }
}
