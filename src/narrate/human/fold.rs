//! The default view: one line per thing that happened. An act that a sentence of the
//! same process tells is folded into that sentence; the starts (and ends) of many alike
//! children arriving together are one line; the staging's own sleeps (a child waiting on
//! its socket for the word to start, disk waits) are not narrated. `--verbose` shows
//! every event as it comes.

use super::Human;
use crate::event::{Event, How, Kind, ObsValue};
use std::collections::{HashMap, HashSet};
use std::io;

/// An act followed this soon by a sentence of the same process is what it tells.
const FOLD_BEFORE_NS: u64 = 5_000_000;
/// An act this soon after a sentence of its process is what the sentence announced
/// ("I release the lock", then the release).
const FOLD_AFTER_NS: u64 = 1_000_000;
/// The state remembered for a sleep not told: the kernel named nothing it waits in.
const UNTOLD_SLEEP: &str = "S?";
/// Starts and ends of children within this time of the first are told together.
const GROUP_NS: u64 = 2_000_000_000;
/// The same sentence of another process this soon after the last one joins its line;
/// later, the line is written (on the next event, or when nothing comes).
const SAYS_NS: u64 = 250_000_000;
/// At most this many values of a field are listed in a summary line; more make a range.
const LIST_MAX: usize = 12;

/// Alike acts in a row: of one process, or of alike processes one act each (eight
/// buyers waiting); their fields; the first stamp.
struct Run<'a> {
    pids: Vec<i32>,
    act: &'a str,
    fields: Vec<&'a [(String, ObsValue)]>,
    t_ns: u64,
}

/// What the default view holds back a moment, to tell it as one line or not at all.
#[derive(Default)]
pub(super) struct Fold {
    /// Acts waiting for a sentence of their process (then they are not shown).
    held: Vec<Event>,
    /// Acts of roles that do not tell their acts in words: told as one line per process
    /// and kind (`• task done × 6 · task 2 4 6 …`) before the next thing shown.
    quiet: Vec<Event>,
    /// Starts and ends of children in a row, nothing else shown between: told as one
    /// line for each alike kind (`+ 8 buyers started`, `✝ 40 forks gone`).
    group: Vec<Event>,
    /// The stamp of each process's last sentence.
    said: HashMap<i32, u64>,
    /// The main process's acts since its last sentence: none yet (`Some(None)`), or
    /// only acts of one kind (`Some(Some(act))`). The main process waits for the reader
    /// after a sentence, so the act it announced ("I send …", then the send) comes
    /// later than [`FOLD_AFTER_NS`]; the acts right after it, alike, are what it told.
    main_after_say: Option<Option<String>>,
    /// Whether the last act of a role was told by a sentence (then its acts are held
    /// for one; else they are summarised in order).
    tells: HashMap<String, bool>,
    /// The last state shown of each process: a change back to it tells nothing new.
    shown: HashMap<i32, String>,
    /// A child's sentence, and the same sentence of other processes after it, nothing
    /// shown between: told as one line (`└ 8 buyers │ I read the file: 1 left.`).
    says: Vec<Event>,
    /// What the current step sums up in its own sentences (`[step.*] sums_up`).
    sums_up: Vec<String>,
    /// The processes started in a step that sums up its `children`: not told.
    summed: HashSet<i32>,
}

impl Fold {
    pub(super) fn clear(&mut self) {
        *self = Fold::default();
    }
}

/// A child's role without its number: `buyer-3` → `buyer`.
pub(crate) fn role(name: &str) -> &str {
    match name.rsplit_once('-') {
        Some((stem, n)) if !stem.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => stem,
        _ => name,
    }
}

/// Several processes of one role, as a count names them: `buyers`, `children`; in
/// Chinese the role as it is (`8 个 buyer`).
pub(crate) fn roles(lang: crate::words::Lang, role: &str) -> String {
    if lang == crate::words::Lang::Zh {
        return role.to_string();
    }
    if role.ends_with("child") {
        format!("{role}ren")
    } else if ["s", "x", "sh", "ch"].iter().any(|e| role.ends_with(e)) {
        format!("{role}es")
    } else {
        format!("{role}s")
    }
}

/// What alike starts (or ends) share: the kind, the parent (or reaper), the role, how
/// it was started (or its exit code).
fn group_key(ev: &Event) -> Option<(u8, i32, &str, i64)> {
    match &ev.kind {
        Kind::Spawn { ppid, name, how } => Some((0, *ppid, role(name), (*how == How::Fork) as i64)),
        Kind::Exit {
            name,
            exitcode,
            reaped_by,
            ..
        } => Some((1, *reaped_by, role(name), i64::from(*exitcode))),
        _ => None,
    }
}

/// The values of one field over alike acts: the one value they share, or the list of
/// them, or (durations, long lists) the range.
fn merge(field: &str, values: &[&ObsValue]) -> String {
    let first = values.first().map(|v| v.to_string()).unwrap_or_default();
    if values.iter().all(|v| v.to_string() == first) {
        return first;
    }
    let nums: Vec<f64> = values
        .iter()
        .filter_map(|v| match v {
            ObsValue::Int(i) => Some(*i as f64),
            ObsValue::Float(x) => Some(*x),
            _ => None,
        })
        .collect();
    let range = nums.len() == values.len() && (field.ends_with("ms") || values.len() > LIST_MAX);
    if range {
        let lo = nums.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = nums.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let show = |x: f64| match values[0] {
            ObsValue::Int(_) => format!("{x:.0}"),
            _ => format!("{x:.2}"),
        };
        return format!("{}–{}", show(lo), show(hi));
    }
    // 2 3 4 5 6 7: a run of whole numbers reads best as 2–7.
    let ints: Vec<i64> = values
        .iter()
        .filter_map(|v| match v {
            ObsValue::Int(i) => Some(*i),
            _ => None,
        })
        .collect();
    if ints.len() == values.len() && ints.len() > 2 && ints.windows(2).all(|w| w[1] == w[0] + 1) {
        return format!("{}–{}", ints[0], ints[ints.len() - 1]);
    }
    let list: Vec<String> = values.iter().map(|v| v.to_string()).collect();
    if list.len() > LIST_MAX {
        format!(
            "{} … {}",
            list[..LIST_MAX - 1].join(" "),
            list[list.len() - 1]
        )
    } else {
        list.join(" ")
    }
}

/// A sleep of the staging, not of the story: a first sight of a process running (its
/// start said so), a disk wait, a wait on the socket the lesson talks to its children
/// over.
pub(super) fn plumbing(from: &str, to: &str, waiting_in: Option<&str>) -> bool {
    let socket = waiting_in.is_some_and(|w| {
        ["unix_stream", "sock", "skb", "recv"]
            .iter()
            .any(|s| w.contains(s))
    });
    (from.is_empty() && to == "R") || to == "D" || socket || told_otherwise(to)
}

/// A change the story tells without it: waking up (`R`: the lesson's next sentence
/// says what the process does, the live panel and the timeline show it run), and
/// becoming a zombie (`Z`: its end comes next, `✝ gone … reaped by`, and a lesson about
/// zombies says so in words).
fn told_otherwise(to: &str) -> bool {
    matches!(to, "R" | "Z")
}

impl<W: io::Write + Send> Human<W> {
    /// The role of a process, as named when it started.
    fn role_of(&self, pid: i32) -> String {
        self.procs
            .get(&pid)
            .map_or_else(|| "?".to_string(), |p| role(&p.name).to_string())
    }

    /// The default view of one event: held, folded away, or told (after what it
    /// releases).
    pub(super) fn folded(&mut self, ev: &Event) -> io::Result<()> {
        if self.summed_up(ev) {
            // Not told, yet known: a sentence it says later is under its own name (not
            // `?`), and it leaves the live panel when it is gone.
            if matches!(ev.kind, Kind::Spawn { .. } | Kind::Exit { .. }) {
                self.arrived(ev);
            }
            return Ok(());
        }
        match &ev.kind {
            Kind::Act { act, .. } if !matches!(act.as_str(), "gauge" | "tour_card" | "quiz") => {
                let role = self.role_of(ev.pid);
                let told = self.fold.said.get(&ev.pid);
                let announced = self.proc_depth(ev.pid) == 0
                    && match self.fold.main_after_say.take() {
                        Some(None) => true,
                        Some(Some(last)) => &last == act,
                        None => false,
                    };
                if announced {
                    self.fold.main_after_say = Some(Some(act.clone()));
                    return Ok(());
                }
                if told.is_some_and(|&t| ev.t_ns.saturating_sub(t) <= FOLD_AFTER_NS) {
                    self.fold.tells.insert(role, true);
                } else if self.fold.tells.get(&role) == Some(&false) {
                    self.fold.quiet.push(ev.clone());
                } else {
                    self.fold.held.push(ev.clone());
                }
                return Ok(());
            }
            Kind::Spawn { .. } | Kind::Exit { .. } => {
                let joins = self
                    .fold
                    .group
                    .first()
                    .is_some_and(|first| ev.t_ns.saturating_sub(first.t_ns) <= GROUP_NS);
                if !joins {
                    self.release(ev.t_ns)?;
                }
                self.arrived(ev);
                self.fold.group.push(ev.clone());
                return Ok(());
            }
            Kind::Say { .. } => {
                let (pid, t) = (ev.pid, ev.t_ns);
                let before = self.fold.held.len() + self.fold.quiet.len();
                let untold =
                    |a: &Event| !(a.pid == pid && t.saturating_sub(a.t_ns) <= FOLD_BEFORE_NS);
                self.fold.held.retain(untold);
                self.fold.quiet.retain(untold);
                if self.fold.held.len() + self.fold.quiet.len() < before {
                    let role = self.role_of(pid);
                    self.fold.tells.insert(role, true);
                }
                self.fold.said.insert(pid, t);
                if self.proc_depth(pid) == 0 {
                    self.fold.main_after_say = Some(None);
                }
                if self.says_join(ev) {
                    self.fold.says.push(ev.clone());
                    return Ok(());
                }
            }
            _ => {}
        }
        // What this event says comes after what was held before it.
        let ends = matches!(ev.kind, Kind::Step { .. } | Kind::LessonEnd { .. });
        if ends {
            self.fold.main_after_say = None;
            self.release(u64::MAX)?;
        } else if self.shows(ev) {
            self.release(ev.t_ns)?;
        } else if self.says_old(ev.t_ns) {
            self.release_says()?;
        }
        // A child's sentence waits a moment for the same sentence of its siblings.
        if matches!(ev.kind, Kind::Say { .. }) && self.proc_depth(ev.pid) > 0 {
            self.fold.says.push(ev.clone());
            return Ok(());
        }
        self.render(ev)
    }

    /// Whether `ev`, a sentence, is the one held, said again by another process soon
    /// after.
    fn says_join(&self, ev: &Event) -> bool {
        let (Some(first), Some(last)) = (self.fold.says.first(), self.fold.says.last()) else {
            return false;
        };
        fn text(e: &Event) -> Option<&str> {
            match &e.kind {
                Kind::Say { text, .. } => Some(text),
                _ => None,
            }
        }
        text(first) == text(ev)
            && ev.t_ns.saturating_sub(last.t_ns) <= SAYS_NS
            && self.fold.says.iter().all(|e| e.pid != ev.pid)
    }

    /// Whether the sentence held is older than anything alike that may still join it.
    fn says_old(&self, now: u64) -> bool {
        self.fold
            .says
            .last()
            .is_some_and(|last| now.saturating_sub(last.t_ns) > SAYS_NS)
    }

    /// The sentence held: as it is when one process said it, else one line for all.
    pub(super) fn release_says(&mut self) -> io::Result<()> {
        let says = std::mem::take(&mut self.fold.says);
        match says.as_slice() {
            [] => Ok(()),
            [one] => self.render(one),
            many => self.says_line(many),
        }
    }

    /// Nothing came for a while: what is held and can no longer be joined goes out;
    /// only once no event that could still join it can be on its way (the narrator holds
    /// events up to `MAX_HOLD`), so that when nothing comes changes when a line is
    /// written, never what it says (a replay, which has no such quiet, writes the same).
    pub(super) fn quiet_at(&mut self, now: u64) -> io::Result<()> {
        let max_hold = crate::narrate::MAX_HOLD.as_nanos() as u64;
        if self.says_old(now.saturating_sub(max_hold)) {
            self.release_says()?;
        }
        Ok(())
    }

    /// Whether `ev` (not an act, a start or an end) writes a line.
    fn shows(&self, ev: &Event) -> bool {
        match &ev.kind {
            Kind::Observation { .. } => false,
            Kind::Act { act, .. } => act != "gauge",
            Kind::State {
                from,
                to,
                waiting_in,
                ..
            } => self.state_shown(ev.pid, from, to, waiting_in.as_deref()),
            _ => true,
        }
    }

    /// Before what is shown at `now` (everything with `now == u64::MAX`): the held
    /// group, and the held acts no sentence will fold, in stamp order.
    pub(super) fn release(&mut self, now: u64) -> io::Result<()> {
        // An act stays held past what is shown now only if its role tells its acts
        // (its sentence may still come); else it is told now, in its place.
        let held = std::mem::take(&mut self.fold.held);
        let (old, young): (Vec<Event>, Vec<Event>) = held.into_iter().partition(|a| {
            now == u64::MAX
                || a.t_ns.saturating_add(FOLD_BEFORE_NS) < now
                || self.fold.tells.get(&self.role_of(a.pid)) != Some(&true)
        });
        self.fold.held = young;
        for a in &old {
            let role = self.role_of(a.pid);
            self.fold.tells.insert(role, false);
        }
        let mut quiet = std::mem::take(&mut self.fold.quiet);
        quiet.extend(old);
        quiet.sort_by_key(|a| a.t_ns);
        let group = std::mem::take(&mut self.fold.group);
        let group_first = group.first().map_or(u64::MAX, |e| e.t_ns);
        let quiet_first = quiet.first().map_or(u64::MAX, |e| e.t_ns);
        let says_first = self.fold.says.first().map_or(u64::MAX, |e| e.t_ns);
        if says_first <= group_first.min(quiet_first) {
            self.release_says()?;
        }
        if quiet_first < group_first {
            self.summary(&quiet)?;
        }
        // Alike ones together, in the order each kind first came, starts before ends.
        let mut kinds: Vec<Vec<Event>> = Vec::new();
        for ev in group {
            match kinds
                .iter_mut()
                .find(|k| group_key(&k[0]) == group_key(&ev))
            {
                Some(k) => k.push(ev),
                None => kinds.push(vec![ev]),
            }
        }
        kinds.sort_by_key(|k| matches!(k[0].kind, Kind::Exit { .. }));
        for alike in kinds {
            match alike.len() {
                1 => self.told(&alike[0])?,
                _ => self.group_line(&alike)?,
            }
        }
        if quiet_first >= group_first {
            self.summary(&quiet)?;
        }
        self.release_says()
    }

    /// Acts in a row, one line per process and kind: an act alone as it is, alike acts
    /// as `• task done × 6` with each field's values (one, a list, or a range).
    fn summary(&mut self, acts: &[Event]) -> io::Result<()> {
        let mut runs: Vec<Run<'_>> = Vec::new();
        for a in acts {
            let Kind::Act { act, fields } = &a.kind else {
                continue;
            };
            match runs.iter_mut().find(|r| r.pids == [a.pid] && r.act == act) {
                Some(run) => run.fields.push(fields),
                None => runs.push(Run {
                    pids: vec![a.pid],
                    act,
                    fields: vec![fields],
                    t_ns: a.t_ns,
                }),
            }
        }
        // One act each of alike processes: one line for them all.
        let mut told: Vec<Run<'_>> = Vec::new();
        for run in runs {
            let role = self.role_of(run.pids[0]);
            let alike = told.iter_mut().find(|t| {
                run.fields.len() == 1
                    && t.fields.len() == t.pids.len()
                    && t.act == run.act
                    && self.role_of(t.pids[0]) == role
            });
            match alike {
                Some(t) => {
                    t.pids.extend(run.pids);
                    t.fields.extend(run.fields);
                }
                None => told.push(run),
            }
        }
        for run in told {
            self.run_line(&run)?;
        }
        Ok(())
    }

    /// One line for a run of acts: under its process, or, for several, under their
    /// parent with their PIDs.
    fn run_line(&mut self, run: &Run<'_>) -> io::Result<()> {
        let all = &run.fields;
        let mut merged: Vec<(String, String)> = all[0]
            .iter()
            .map(|(k, _)| {
                let values: Vec<&ObsValue> = all
                    .iter()
                    .filter_map(|f| f.iter().find(|(n, _)| n == k).map(|(_, v)| v))
                    .collect();
                (k.clone(), merge(k, &values))
            })
            .collect();
        let mut pid = run.pids[0];
        if run.pids.len() > 1 {
            let pids: Vec<String> = run.pids.iter().map(i32::to_string).collect();
            merged.insert(0, ("pids".to_string(), pids.join(" ")));
            pid = self
                .procs
                .get(&pid)
                .map_or(pid, |p| if p.ppid > 0 { p.ppid } else { pid });
        }
        self.act_line(run.t_ns, pid, run.act, all.len(), &merged)
    }

    /// Whether the current step sums `ev` up in its own sentences (then it is not told
    /// by itself); a step event makes its own list the current one.
    fn summed_up(&mut self, ev: &Event) -> bool {
        let f = &mut self.fold;
        match &ev.kind {
            Kind::Step { key, .. } => {
                f.sums_up = self
                    .lesson_words
                    .as_ref()
                    .and_then(|w| w.step.get(key))
                    .map(|l| l.sums_up.clone())
                    .unwrap_or_default();
                false
            }
            Kind::Act { act, .. } => f.sums_up.contains(act),
            Kind::Spawn { .. } if f.sums_up.iter().any(|k| k == "children") => {
                f.summed.insert(ev.pid);
                true
            }
            Kind::State { .. } if f.sums_up.iter().any(|k| k == "states") => true,
            Kind::State { .. } | Kind::Exit { .. } => f.summed.contains(&ev.pid),
            _ => false,
        }
    }

    /// A state change worth a line in the default view: not the staging's plumbing,
    /// and not back to the state last shown.
    pub(super) fn state_news(
        &self,
        pid: i32,
        from: &str,
        to: &str,
        waiting_in: Option<&str>,
    ) -> bool {
        self.verbose
            || !(plumbing(from, to, waiting_in)
                || self.staging(waiting_in)
                || self.fold.shown.get(&pid).is_some_and(|s| s == to))
    }

    /// A sleep the lesson names as its staging (`[meta] staging`: a gate).
    fn staging(&self, waiting_in: Option<&str>) -> bool {
        let staging = self
            .lesson_words
            .as_ref()
            .and_then(|w| w.meta.as_ref())
            .map_or(&[][..], |m| m.staging.as_slice());
        waiting_in.is_some_and(|w| staging.iter().any(|s| w.starts_with(s.as_str())))
    }

    /// Remember the state a reader now believes a process is in: the one shown, or,
    /// from its first sight, the one it was seen in; a sleep not told because the
    /// kernel named nothing is remembered as untold.
    pub(super) fn state_seen(
        &mut self,
        pid: i32,
        from: &str,
        to: &str,
        waiting_in: Option<&str>,
        shown: bool,
    ) {
        if !shown && to == "S" && waiting_in.is_none() {
            self.fold.shown.insert(pid, UNTOLD_SLEEP.to_string());
        } else if shown || from.is_empty() {
            self.fold.shown.insert(pid, to.to_string());
        }
    }

    /// Whether the process sleeps in a sleep not told yet (the kernel named nothing).
    pub(super) fn sleep_untold(&self, pid: i32) -> bool {
        !self.verbose && self.fold.shown.get(&pid).is_some_and(|s| s == UNTOLD_SLEEP)
    }

    /// `+ 8 buyers started: PIDs …` on the parent's line, or `✝ 8 buyers gone: …` on
    /// the reaper's.
    fn group_line(&mut self, group: &[Event]) -> io::Result<()> {
        let first = &group[0];
        let (spawn, name, who, what) = match &first.kind {
            Kind::Spawn { ppid, name, how } => (true, name, *ppid, self.how_words(*how)),
            Kind::Exit {
                name,
                exitcode,
                reaped_by,
                ..
            } => (false, name, *reaped_by, exitcode.to_string()),
            _ => return Ok(()),
        };
        let mut pids = String::new();
        for e in group {
            pids = format!("{pids} {}", e.pid);
        }
        let text = crate::ui!(
            self.lang,
            if (spawn) {
                "spawned_many"
            } else {
                "exited_many"
            },
            &[
                ("n", &group.len()),
                ("roles", &roles(self.lang, role(name))),
                ("pids", &pids.trim_start()),
                ("who", &who),
                ("what", &what)
            ],
        );
        let text = if spawn {
            super::spawn_mark(&text)
        } else {
            super::exit_mark(&text)
        };
        self.line(first.t_ns, who, &text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_drop_their_number_only() {
        assert_eq!(role("buyer-3"), "buyer");
        assert_eq!(role("nb-reader"), "nb-reader");
        assert_eq!(role("child"), "child");
        assert_eq!(role("fork-12"), "fork");
    }

    #[test]
    fn alike_values_merge_into_one_a_list_or_a_range() {
        let (a, b, c) = (ObsValue::Int(2), ObsValue::Int(4), ObsValue::Float(1.5));
        assert_eq!(merge("job", &[&a, &a]), "2");
        assert_eq!(merge("task", &[&a, &b]), "2 4");
        let run = [ObsValue::Int(2), ObsValue::Int(3), ObsValue::Int(4)];
        assert_eq!(merge("nth", &run.iter().collect::<Vec<_>>()), "2–4");
        assert_eq!(merge("cpu_ms", &[&c, &ObsValue::Float(2.25)]), "1.50–2.25");
    }
}
