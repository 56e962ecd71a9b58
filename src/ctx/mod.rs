//! What a lesson works with: its words, the event sink, the observer, and the calls that
//! start, watch and reap processes while narrating them. Narration is here (through the
//! [`Voice`]), processes in [`children`], the verdict (observations and claims) in
//! [`verdict`].
//!
//! Every call that blocks is bounded and returns [`Stopped`] once the run must stop
//! (Ctrl-C, SIGTERM, `q` in step mode, a closed output), so a lesson never hangs.

use crate::event::{Event, Kind, ObsValue};
use crate::narrate::Sink;
use crate::observe::Observer;
use crate::procs;
use crate::voice::Voice;
use crate::words::{fill, Args, Lang, Words};
use anyhow::Result;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

mod children;
mod python;
mod verdict;

pub use children::{reply_any, ChildProc};
pub use python::{NoPython, PyOut};
pub use verdict::{Claim, Expect};

/// The run must stop (a signal, `q` at a step, or a closed output). `main` maps it to
/// the exit code of the reason.
#[derive(Debug, thiserror::Error)]
#[error("the run was stopped")]
pub struct Stopped;

/// A timed stretch of the lesson ([`Ctx::timing`]); it ends when dropped.
pub struct Timing(std::rc::Rc<std::cell::Cell<u32>>);

impl Drop for Timing {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

/// The context of one lesson run.
pub struct Ctx<'a> {
    pub lesson: &'static str,
    pub lang: Lang,
    pub speed: f64,
    pub main_pid: i32,
    /// The run's private directory (mode 0700): lesson files go here.
    pub dir: PathBuf,
    sink: Sink,
    voice: Voice,
    observer: &'a Observer,
    step_n: u32,
    /// A step was emitted and its pause (`show`) has not come yet.
    unshown: std::cell::Cell<bool>,
    /// Timed stretches open ([`Ctx::timing`]).
    timing: std::rc::Rc<std::cell::Cell<u32>>,
    names: HashMap<i32, String>,
    pub claims: Vec<Claim>,
}

impl<'a> Ctx<'a> {
    pub fn new(
        lesson: &'static str,
        words: Words,
        lang: Lang,
        speed: f64,
        dir: PathBuf,
        sink: Sink,
        observer: &'a Observer,
    ) -> Ctx<'a> {
        let main_pid = nix::unistd::getpid().as_raw();
        sink.read_at(speed);
        let mut names = HashMap::new();
        names.insert(main_pid, "main".to_string());
        Ctx {
            lesson,
            lang,
            speed,
            main_pid,
            dir,
            voice: Voice::new(sink.clone(), words, lang, main_pid),
            sink,
            observer,
            step_n: 0,
            unshown: std::cell::Cell::new(false),
            timing: Default::default(),
            names,
            claims: Vec::new(),
        }
    }

    /// Err([`Stopped`]) once the run must stop.
    pub fn check(&self) -> Result<()> {
        match procs::stop_reason() {
            Some(_) => Err(Stopped.into()),
            None => Ok(()),
        }
    }

    pub fn emit(&self, ev: Event) {
        self.sink.emit(ev);
    }

    /// Events about to be learnt late, stamped from now on (a grandchild's `spawn`, read
    /// from a note after the child forked it): until the guard is dropped, once they are
    /// emitted, nothing stamped from now on is rendered, so they keep their place in
    /// stamp order ([`crate::narrate::Sink::expect`]).
    pub fn expect_news(&self) -> crate::narrate::Expecting {
        self.sink.expect(crate::event::now_ns())
    }

    /// The name a pid was given when it started.
    pub fn name_of(&self, pid: i32) -> String {
        self.names
            .get(&pid)
            .cloned()
            .unwrap_or_else(|| format!("pid-{pid}"))
    }

    /// The main process's voice, for a thread of the lesson to narrate with.
    pub fn voice(&self) -> Voice {
        self.voice.clone()
    }

    /// The main process narrates a line (through `say!`, which checks the key), at
    /// reading pace: before it, and again after it, it waits until the reader is at most
    /// [`crate::narrate::SAY_AHEAD`] behind, so that lines said in a row, and what the
    /// children say in answer to the lesson's next act, come no faster than they are
    /// read. Not inside a timed stretch ([`Ctx::timing`]), where a wait would count in
    /// what the lesson measures.
    #[allow(clippy::disallowed_methods)] // hands a key already checked by the macro
    pub fn say(&self, key: &str, args: Args<'_>) {
        self.keep_up();
        self.voice.say(key, args);
        self.keep_up();
    }

    /// Narrate a line about `pid`, stamped at `t_ns` (a forked child's own stamp). It
    /// never waits: its stamp is often in the past, and a wait before or after it would
    /// print it, or the next such line, after events stamped later. A lesson that says
    /// lines stamped now through it paces them with [`Ctx::keep_up`].
    #[allow(clippy::disallowed_methods)] // hands a key already checked by the macro
    pub fn say_for(&self, pid: i32, t_ns: u64, key: &str, args: Args<'_>) {
        self.voice.say_for(pid, t_ns, key, args);
    }

    /// The reading pace of [`Ctx::say`]: wait until the reader is at most
    /// [`crate::narrate::SAY_AHEAD`] behind (not inside a timed stretch). A stop ends the
    /// wait; the lesson's next bounded call returns [`Stopped`].
    pub fn keep_up(&self) {
        if self.timing.get() == 0 {
            let _ = self.sink.keep_up();
        }
    }

    /// A timed stretch: until the guard is dropped, [`Ctx::say`] does not wait for the
    /// reader (the lesson measures across its own lines; it paces with
    /// [`Ctx::show_timed`] at moments when nothing timed runs).
    pub fn timing(&self) -> Timing {
        self.timing.set(self.timing.get() + 1);
        Timing(self.timing.clone())
    }

    /// A quantity of the lesson (tasks done, items in the queue, free permits) as it now
    /// stands: a bar in the live panel. `gauge` names it (`ui.gauge_<gauge>` labels it).
    pub fn gauge(&self, gauge: &str, value: i64, max: i64) {
        self.voice.gauge(gauge, value, max);
    }

    /// A lesson's own event about `pid`, stamped at `t_ns`.
    pub fn act_at(&self, pid: i32, t_ns: u64, act: &str, fields: &[(&str, ObsValue)]) {
        self.voice
            .act_at(pid, &self.name_of(pid), t_ns, act, fields);
    }

    /// A step: its title (and hint) in the stream, at the start of the step's action.
    /// The step's pause comes later, at [`Ctx::show`], once the action has made what the
    /// hint names; a step not shown by then pauses at the next step. Either way the
    /// reader first finishes what was said before (`show(0)` is a pause): a step is
    /// where a phase ends.
    pub fn step(&mut self, key: &str, args: Args<'_>) -> Result<()> {
        self.check()?;
        self.show(0)?;
        self.step_n += 1;
        let (title, hint) = match self.voice.words().step.get(key) {
            Some(line) => (
                fill(line.get(self.lang), args),
                line.hint.as_deref().map(|h| fill(h, args)),
            ),
            None => (format!("<{key}>"), None),
        };
        self.sink.emit(Event::now(
            self.main_pid,
            Kind::Step {
                n: self.step_n,
                key: key.into(),
                title,
                hint,
            },
        ));
        self.unshown.set(true);
        self.check()
    }

    /// The pause of the current step, once its action has run: the human view prints
    /// the step's hint ("try this: …") here, and with `--step` the lesson waits here for
    /// a key, with every process really sitting where the hint shows it (nothing more if
    /// the step was shown already). Then a pacing pause of `ms`, as [`Ctx::pause`].
    pub fn show(&self, ms: u64) -> Result<()> {
        if self.unshown.replace(false) && !self.sink.pause(self.main_pid, self.step_n) {
            crate::term::quit(); // `q`: the person's choice, a quiet stop (Ctrl-C stays SIGINT)
        }
        self.check()?;
        self.pause(ms)
    }

    /// [`Ctx::show`] inside a timed stretch, at a moment when nothing timed runs: how
    /// long the pause took, for the lesson to leave the student's wait out of its times.
    pub fn show_timed(&self) -> Result<Duration> {
        let paused = std::time::Instant::now();
        self.show(0)?;
        Ok(paused.elapsed())
    }

    /// The janitor's pid (mp-demo's cleanup helper, a child of the main process that
    /// every `pstree` shows), for the first hint that shows it to name it; 0 if none.
    pub fn janitor(&self) -> i32 {
        procs::janitor_pid().unwrap_or(0)
    }

    /// A pacing pause: `ms` milliseconds at `--speed 1`, or as long as the reader still
    /// needs to read what was said so far, whichever is longer (both scaled by
    /// `--speed`); none at `--speed 0`. Pacing only: nothing may rely on how long it lasts.
    pub fn pause(&self, ms: u64) -> Result<()> {
        if self.speed > 0.0 {
            self.sink
                .wait_for_reader(Duration::from_secs_f64(ms as f64 * self.speed / 1000.0));
        }
        self.check()
    }

    /// A settle point: wait until the reader has read what was said so far (`pause(0)`),
    /// where a phase that waits nowhere ends.
    pub fn settle(&self) -> Result<()> {
        self.pause(0)
    }
}
