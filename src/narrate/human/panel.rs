//! The live panel of the human renderer (a terminal only): a line per live process with
//! its state in words, and a bar per gauge a lesson reports, updated in place while the
//! narration scrolls above it.

use super::{Human, LABEL_W};
use crate::event::ObsValue;
use crate::words;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::{self, Write};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// The live panel (a terminal only): a line per live process with its state in words,
/// and a bar per gauge a lesson reports (queue fill, permits, tasks done). Narration
/// scrolls above it.
pub(super) struct Live {
    multi: MultiProgress,
    procs: HashMap<i32, ProgressBar>,
    gauges: HashMap<String, ProgressBar>,
    /// Each process's state line as last read, and what it holds or waits for (from
    /// its `acquire`, `wait` and `release`): `S sleeping · waits for the lock`.
    states: HashMap<i32, String>,
    marks: HashMap<i32, String>,
}

impl Live {
    /// A process's line: its state, then its mark, cut to `room` columns.
    fn show(&self, pid: i32, room: usize) {
        let Some(pb) = self.procs.get(&pid) else {
            return;
        };
        let state = self.states.get(&pid).cloned().unwrap_or_default();
        // The mark right after the state's letter, where a cut line still shows it.
        let mut msg = match (self.marks.get(&pid), state.split_once(' ')) {
            (Some(mark), Some((letter, words))) => format!("{letter} {mark} · {words}"),
            (Some(mark), None) => format!("{state} {mark}"),
            (None, _) => state,
        };
        if msg.width() > room {
            let mut used = 0;
            msg = msg
                .chars()
                .take_while(|c| {
                    used += c.width().unwrap_or(0);
                    used < room
                })
                .collect::<String>()
                + "…";
        }
        pb.set_message(msg);
    }
}

impl Live {
    /// Run `f` (a write of the narration, a key read) with the panel out of the way.
    pub(super) fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.multi.suspend(f)
    }

    /// The panel as it stands, as plain lines (gauges first, then the processes in PID
    /// order): what a pause leaves on the screen, for the room to compare with `ps`.
    pub(super) fn snapshot(&self) -> Vec<String> {
        let mut gauges: Vec<_> = self.gauges.iter().collect();
        gauges.sort_by(|a, b| a.0.cmp(b.0));
        let mut procs: Vec<_> = self.procs.iter().collect();
        procs.sort_by_key(|(pid, _)| **pid);
        let gauges = gauges.into_iter().map(|(name, pb)| {
            format!(
                "  {name:>18} {}/{}",
                pb.position(),
                pb.length().unwrap_or(0)
            )
        });
        let procs = procs
            .into_iter()
            .map(|(_, pb)| format!("  {} {}", pb.prefix(), pb.message()));
        gauges.chain(procs).collect()
    }
}

/// The live panel's terminal: stdout, with write errors swallowed. indicatif unwraps
/// the draw target's errors inside `suspend` (a panic on a hung-up terminal, then an
/// abort on its poisoned lock); the panel is a display, not the record, and a failed
/// write of the narration itself is still seen and reported by [`Human::commit`].
#[derive(Debug)]
struct PanelTerm(console::Term);

/// `TermLike` methods that hand the call to the terminal and swallow its error.
macro_rules! swallowing {
    ($($name:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $name(&self $(, $arg: $ty)*) -> io::Result<()> {
            let _ = self.0.$name($($arg),*);
            Ok(())
        }
    )*};
}

impl indicatif::TermLike for PanelTerm {
    fn width(&self) -> u16 {
        self.0.size().1
    }
    fn height(&self) -> u16 {
        self.0.size().0
    }
    swallowing! {
        move_cursor_up(n: usize);
        move_cursor_down(n: usize);
        move_cursor_right(n: usize);
        move_cursor_left(n: usize);
        write_line(s: &str);
        write_str(s: &str);
        clear_line();
        flush();
    }
}

impl<W: Write + Send> Human<W> {
    /// Show a live panel of processes and gauges, updated in place, on stdout.
    pub fn with_live_panel(mut self) -> Self {
        self.live = Some(Live {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::term_like_with_hz(
                Box::new(PanelTerm(console::Term::buffered_stdout())),
                20,
            )),
            procs: HashMap::new(),
            gauges: HashMap::new(),
            states: HashMap::new(),
            marks: HashMap::new(),
        });
        self
    }

    /// A process's line in the panel: its state letter, in words, and where it waits.
    pub(super) fn live_state(&mut self, pid: i32, letter: &str, waiting: &str) {
        let lang = self.lang;
        let label = self.label(pid);
        let room = self.width.unwrap_or(80).saturating_sub(LABEL_W + 4);
        let Some(live) = &mut self.live else {
            return;
        };
        live.procs.entry(pid).or_insert_with(|| {
            let pb = live.multi.add(ProgressBar::new_spinner());
            pb.set_style(
                ProgressStyle::with_template("  {prefix} {msg}").expect("a valid template"),
            );
            pb.set_prefix(label);
            pb
        });
        let msg = format!(
            "{letter} {}{waiting}",
            crate::ui!(
                lang,
                match (letter) {
                    "R" => "short_R",
                    "S" => "short_S",
                    "D" => "short_D",
                    "T" | "t" => "short_T",
                    "Z" => "short_Z",
                    "X" | "x" => "short_X",
                    _ => "short_other",
                },
                &[]
            )
        );
        live.states.insert(pid, msg);
        live.show(pid, room);
    }

    /// A lesson's act, for the panel: an `acquire` marks its process as holding the
    /// lock (or a permit) until its `release`; a `wait`, as waiting for it.
    pub(super) fn live_mark(&mut self, pid: i32, act: &str, fields: &[(String, ObsValue)]) {
        let lang = self.lang;
        let room = self.width.unwrap_or(80).saturating_sub(LABEL_W + 4);
        let Some(live) = &mut self.live else {
            return;
        };
        let what = fields
            .iter()
            .find(|(k, _)| k == "what" || k == "for")
            .map(|(_, v)| v.to_string());
        let permit = what.as_deref() == Some("semaphore");
        let mark = match act {
            "acquire" => Some(crate::ui!(
                lang,
                if (permit) {
                    "mark_holds_permit"
                } else {
                    "mark_holds_lock"
                },
                &[]
            )),
            "wait" => Some(crate::ui!(
                lang,
                match (what.as_deref()) {
                    Some("semaphore") => "mark_waits_permit",
                    None => "mark_waits_event",
                    _ => "mark_waits_lock",
                },
                &[]
            )),
            "release" => None,
            _ => return,
        };
        match mark {
            Some(m) => live.marks.insert(pid, m),
            None => live.marks.remove(&pid),
        };
        live.show(pid, room);
    }

    /// A process is gone: its line goes.
    pub(super) fn live_gone(&mut self, pid: i32) {
        if let Some(live) = &mut self.live {
            live.states.remove(&pid);
            live.marks.remove(&pid);
            if let Some(pb) = live.procs.remove(&pid) {
                pb.finish_and_clear();
                live.multi.remove(&pb);
            }
        }
    }

    /// The lesson is over: the panel goes.
    pub(super) fn live_clear(&mut self) {
        if let Some(live) = &mut self.live {
            live.states.clear();
            live.marks.clear();
            for pb in live
                .procs
                .drain()
                .map(|(_, p)| p)
                .chain(live.gauges.drain().map(|(_, p)| p))
            {
                pb.finish_and_clear();
                live.multi.remove(&pb);
            }
            let _ = live.multi.clear();
        }
    }

    /// A gauge (`act = "gauge"`, fields `gauge`, `value`, `max`): a bar in the live
    /// panel. Nothing in plain output: the narration already says it (the acquire, the
    /// put, the task done), and a line per change would only repeat it.
    pub(super) fn gauge(&mut self, fields: &[(String, ObsValue)]) {
        let Some(live) = &mut self.live else {
            return;
        };
        let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let name = get("gauge").map(|v| v.to_string()).unwrap_or_default();
        let name = words::label(
            self.lang,
            self.lesson_words.as_ref(),
            &format!("gauge_{name}"),
            &name,
        );
        let value = get("value").and_then(|v| v.as_i64()).unwrap_or(0).max(0) as u64;
        let max = get("max").and_then(|v| v.as_i64()).unwrap_or(0).max(1) as u64;
        let pb = live.gauges.entry(name.clone()).or_insert_with(|| {
            let pb = live.multi.insert(0, ProgressBar::new(max));
            pb.set_style(
                ProgressStyle::with_template("  {prefix:>18} {bar:30.cyan/blue} {pos}/{len}")
                    .expect("a valid template")
                    .progress_chars("█▉▊▋▌▍▎▏ "),
            );
            pb.set_prefix(name.clone());
            pb
        });
        pb.set_length(max);
        pb.set_position(value.min(max));
    }
}
