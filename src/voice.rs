//! The main process's voice: narration lines, a lesson's own events, gauges.
//!
//! `Ctx` speaks through it, and a lesson hands a clone to a thread of its own (a pool's
//! result handler, a callback) so that the thread narrates as the main process without
//! touching the narrator's sink or the lesson's words. A child speaks through its
//! `ChildCtx`, which sends the same events over its channel.

use crate::event::{now_ns, Event, Kind, ObsValue};
use crate::narrate::Sink;
use crate::words::{Args, Lang, Words};
use std::sync::Arc;

/// Cloneable and `Send`: one per run of a lesson, shared by `Ctx` and its threads.
#[derive(Clone)]
pub struct Voice {
    sink: Sink,
    words: Arc<Words>,
    lang: Lang,
    /// The main process: what `say` is about.
    main: i32,
}

impl Voice {
    pub fn new(sink: Sink, words: Words, lang: Lang, main: i32) -> Voice {
        Voice {
            sink,
            words: Arc::new(words),
            lang,
            main,
        }
    }

    /// The lesson's words.
    pub fn words(&self) -> &Words {
        &self.words
    }

    /// Any event, as it is.
    pub fn emit(&self, ev: Event) {
        self.sink.emit(ev);
    }

    /// The main process narrates a line, now.
    #[allow(clippy::disallowed_methods)] // hands a key already checked by the macro
    pub fn say(&self, key: &str, args: Args<'_>) {
        self.say_for(self.main, now_ns(), key, args);
    }

    /// A line about `pid`, stamped at `t_ns` (where it happened: a forked child's own
    /// stamp, say).
    pub fn say_for(&self, pid: i32, t_ns: u64, key: &str, args: Args<'_>) {
        self.emit(Event {
            t_ns,
            pid,
            kind: self.words.say(self.lang, key, args),
        });
    }

    /// A lesson's own event (`acquire`, `callback`…) about `pid`, called `name`, stamped
    /// at `t_ns`.
    pub fn act_at(&self, pid: i32, name: &str, t_ns: u64, act: &str, fields: &[(&str, ObsValue)]) {
        let mut all = vec![("name".to_string(), ObsValue::from(name))];
        all.extend(fields.iter().map(|(k, v)| (k.to_string(), v.clone())));
        self.emit(Event {
            t_ns,
            pid,
            kind: Kind::Act {
                act: act.into(),
                fields: all,
            },
        });
    }

    /// A quantity of the lesson (tasks done, items in the queue, free permits) as it now
    /// stands, about the main process: a bar in the live panel.
    pub fn gauge(&self, gauge: &str, value: i64, max: i64) {
        let kind = Kind::gauge("main", gauge, value, max);
        self.emit(Event::now(self.main, kind));
    }
}
