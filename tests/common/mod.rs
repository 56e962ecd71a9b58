//! Shared helpers of the integration tests: run the built binary, read its JSON Lines
//! stream, and check that nothing it started outlives it.
#![allow(dead_code)]
// Test threads may panic when they cannot start: that fails the test, as it should.
#![allow(clippy::disallowed_methods)]

mod event;

#[allow(unused_imports)] // each test binary uses its own part
pub use event::{
    Act, Body, Claim, Ev, Event, Exit, How, Kind, LessonEnd, LessonStart, Observation, Quiz, Say,
    Spawn, State, Step, TourEnd, TourStart, Val,
};

use serde::Deserialize;
use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// One finished run of mp-demo.
pub struct Run {
    pub args: Vec<String>,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// stdout decoded as events, on first use.
    events: OnceLock<Vec<Event>>,
}

impl Run {
    /// A run that printed `stdout` and `stderr` and ended with `code`.
    pub fn new(args: &[&str], code: i32, stdout: String, stderr: String) -> Run {
        Run {
            args: args.iter().map(|s| s.to_string()).collect(),
            code,
            stdout,
            stderr,
            events: OnceLock::new(),
        }
    }

    /// A description for failure messages: the command, its exit code, stdout, stderr.
    pub fn show(&self) -> String {
        format!(
            "command: mp-demo {}\nexit code: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.args.join(" "),
            self.code,
            truncate(&self.stdout),
            truncate(&self.stderr)
        )
    }

    /// stdout as events, one a line (none when stdout is empty). A line that is not an
    /// event of the contract fails the test, with the line and the run shown.
    pub fn events(&self) -> &[Event] {
        self.events.get_or_init(|| {
            self.stdout
                .lines()
                .enumerate()
                .map(|(i, line)| {
                    Event::decode(line).unwrap_or_else(|e| {
                        panic!(
                            "stdout line {} is not an event: {e}\n{line}\n{}",
                            i + 1,
                            self.show()
                        )
                    })
                })
                .collect()
        })
    }

    /// Every event of kind `K`, in the order of the stream.
    pub fn all<K: Kind>(&self) -> Vec<Ev<'_, K>> {
        self.events().iter().filter_map(Event::get).collect()
    }

    /// The one event of kind `K` (a run of one lesson has one `lesson_end`).
    pub fn one<K: Kind>(&self) -> Ev<'_, K> {
        let all = self.all::<K>();
        assert_eq!(all.len(), 1, "one {} event\n{}", K::NAME, self.show());
        all[0]
    }

    pub fn spawns(&self) -> Vec<Ev<'_, Spawn>> {
        self.all()
    }

    pub fn exits(&self) -> Vec<Ev<'_, Exit>> {
        self.all()
    }

    pub fn states(&self) -> Vec<Ev<'_, State>> {
        self.all()
    }

    pub fn says(&self) -> Vec<Ev<'_, Say>> {
        self.all()
    }

    pub fn steps(&self) -> Vec<Ev<'_, Step>> {
        self.all()
    }

    pub fn observations(&self) -> Vec<Ev<'_, Observation>> {
        self.all()
    }

    pub fn starts(&self) -> Vec<Ev<'_, LessonStart>> {
        self.all()
    }

    pub fn ends(&self) -> Vec<Ev<'_, LessonEnd>> {
        self.all()
    }

    /// The one `lesson_end` of a run of one lesson.
    pub fn end(&self) -> Ev<'_, LessonEnd> {
        self.one()
    }

    /// Every event of the lesson's own kind `kind` (`acquire`, `put`, …). A kind that no
    /// lesson documents (a misspelled one) fails, rather than finding nothing.
    pub fn acts(&self, kind: &str) -> Vec<Ev<'_, Act>> {
        assert!(
            documented_kinds().contains(kind),
            "no lesson documents a kind `{kind}` (mp-demo --json list)"
        );
        self.events().iter().filter_map(|e| e.act(kind)).collect()
    }

    /// The one event of the lesson's own kind `kind`.
    pub fn act(&self, kind: &str) -> Ev<'_, Act> {
        let all = self.acts(kind);
        assert_eq!(all.len(), 1, "one {kind} event\n{}", self.show());
        all[0]
    }

    /// The first observation called `name`, if there is one.
    pub fn observation(&self, name: &str) -> Option<Ev<'_, Observation>> {
        self.observations().into_iter().find(|o| o.name == name)
    }

    /// The value of observation `name` (panics with the run shown if absent).
    pub fn obs(&self, name: &str) -> &Val {
        let o = self
            .observation(name)
            .unwrap_or_else(|| panic!("no observation {name}\n{}", self.show()));
        &o.what().value
    }

    /// The first line said with `key` (panics with the run shown if none).
    pub fn say(&self, key: &str) -> Ev<'_, Say> {
        self.says()
            .into_iter()
            .find(|s| s.key == key)
            .unwrap_or_else(|| panic!("no say {key}\n{}", self.show()))
    }

    /// Whether a line was said with `key`.
    pub fn said(&self, key: &str) -> bool {
        self.says().iter().any(|s| s.key == key)
    }

    /// The lesson's main process (the pid of the first `lesson_start`).
    pub fn main_pid(&self) -> i64 {
        self.starts()
            .first()
            .unwrap_or_else(|| panic!("no lesson_start\n{}", self.show()))
            .pid
    }

    /// The one `spawn` event of the process called `name`.
    pub fn spawn_of(&self, name: &str) -> Ev<'_, Spawn> {
        let s: Vec<_> = self
            .spawns()
            .into_iter()
            .filter(|s| s.name == name)
            .collect();
        assert_eq!(s.len(), 1, "one spawn named {name}\n{}", self.show());
        s[0]
    }

    /// The one `spawn` event of `pid`.
    pub fn spawn_of_pid(&self, pid: i64) -> Ev<'_, Spawn> {
        let s: Vec<_> = self.spawns().into_iter().filter(|s| s.pid == pid).collect();
        assert_eq!(s.len(), 1, "one spawn of PID {pid}\n{}", self.show());
        s[0]
    }

    /// The one `exit` event of `pid`.
    pub fn exit_of(&self, pid: i64) -> Ev<'_, Exit> {
        let e: Vec<_> = self.exits().into_iter().filter(|e| e.pid == pid).collect();
        assert_eq!(e.len(), 1, "one exit for PID {pid}\n{}", self.show());
        e[0]
    }

    /// Assert the exit code, showing the run if it differs.
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "unexpected exit code\n{}", self.show());
        self
    }
}

/// Events in the order of their stamps (the stream's order is the order they reached the
/// main process).
pub fn by_time<T>(mut v: Vec<Ev<'_, T>>) -> Vec<Ev<'_, T>> {
    v.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
    v
}

/// A long output cut in the middle: its beginning, and its end (where a lesson's
/// verdict and a failed claim are: seen in CI, a cut end hid which claim failed).
fn truncate(s: &str) -> String {
    const HEAD: usize = 2000;
    const TAIL: usize = 5000;
    if s.len() <= HEAD + TAIL {
        return s.to_string();
    }
    // At character boundaries: the narration is often Chinese, or box drawing.
    let mut head = HEAD;
    while !s.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = s.len() - TAIL;
    while !s.is_char_boundary(tail) {
        tail += 1;
    }
    format!(
        "{}\n…[{} bytes left out]…\n{}",
        &s[..head],
        tail - head,
        &s[tail..]
    )
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// Run mp-demo with `args` (and `env`), in a process group of its own, then check that
/// no process of that group, and no process carrying this run's tag, is left.
pub fn run_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let tag = format!(
        "mp-demo-test-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mp-demo"));
    cmd.args(args)
        .env("MP_DEMO_TEST_TAG", &tag)
        .env_remove("CLICOLOR_FORCE")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("mp-demo runs");
    let pid = child.id();
    let out = child.wait_with_output().expect("mp-demo's output");
    let run = Run::new(
        args,
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_nothing_left(&tag, Some(pid), &run);
    run
}

pub fn run(args: &[&str]) -> Run {
    run_env(args, &[])
}

/// A run that several tests read and none changes: `mp-demo <args>` with `env`, run
/// the first time a test asks for it and shared by every later test of this binary
/// that asks for the same. The suite runs each lesson many ways; the ways that are
/// only read (a lesson's stream, its human view at a width) run once. `check` runs on
/// it once, when it is made: a run that fails it fails the test that made it and is
/// not kept (the next test that asks runs it again), so that one bad run is one
/// failure, not one in every test that reads it.
pub fn shared_env(args: &[&str], env: &[(&str, &str)], check: fn(&Run)) -> &'static Run {
    type Key = (Vec<String>, Vec<(String, String)>);
    static RUNS: OnceLock<Mutex<HashMap<Key, &'static OnceLock<Run>>>> = OnceLock::new();
    let key: Key = (
        args.iter().map(|a| a.to_string()).collect(),
        env.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    let cell: &'static OnceLock<Run> = RUNS
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .entry(key)
        .or_insert_with(|| Box::leak(Box::default()));
    cell.get_or_init(|| {
        let r = run_env(args, env);
        check(&r);
        r
    })
}

/// [`lesson_json`] with no options, shared (see [`shared_env`]).
pub fn lesson_json_shared(lesson: &str) -> &'static Run {
    shared_env(&["--speed", "0", "--json", lesson], &[], check_contract)
}

/// The human view of `lesson` in `lang` at `columns`, colours forced, at `--speed 0`,
/// shared (see [`shared_env`]); `extra` options go before the lesson. The run records
/// its stream too ([`human_recording`]).
pub fn human_shared(lesson: &str, lang: &str, columns: usize, extra: &[&str]) -> &'static Run {
    let cols = columns.to_string();
    let record = human_recording(lesson, lang, columns, extra);
    let record = record
        .to_str()
        .expect("the target directory's path is UTF-8");
    let mut args = vec!["--speed", "0", "--color", "always", "--lang", lang];
    args.extend_from_slice(&["--record", record]);
    args.extend_from_slice(extra);
    args.push(lesson);
    shared_env(&args, &[("COLUMNS", &cols)], |_| {})
}

/// Where [`human_shared`]'s run of the same arguments records its `--json` stream
/// (`--record`): in cargo's scratch directory for the tests, one file for each run.
pub fn human_recording(lesson: &str, lang: &str, columns: usize, extra: &[&str]) -> PathBuf {
    let extra: String = extra
        .concat()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("human-{lesson}-{lang}-{columns}-{extra}.jsonl"))
}

/// `text` without its colour sequences (each `ESC[…m` up to its letter).
pub fn plain(text: &str) -> String {
    text.split('\x1b')
        .enumerate()
        .map(|(i, piece)| match i {
            0 => piece,
            _ => piece
                .find(|c: char| c.is_ascii_alphabetic())
                .map_or("", |end| &piece[end + 1..]),
        })
        .collect()
}

/// `mp-demo --speed 0 --json <lesson> <extra…>`, checked against the JSON contract.
pub fn lesson_json(lesson: &str, extra: &[&str]) -> Run {
    let mut args = vec!["--speed", "0", "--json", lesson];
    args.extend_from_slice(extra);
    let r = run(&args);
    check_contract(&r);
    r
}

/// Processes still alive (or zombies) that carry `tag` in their environment. Zombies
/// have no environment, so a zombie mp-demo whose parent is gone shows up through the
/// check of re-parented children in `assert_nothing_left`.
pub fn tagged_processes(tag: &str) -> Vec<(i32, String)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let needle = format!("MP_DEMO_TEST_TAG={tag}");
        if env.split(|&b| b == 0).any(|kv| kv == needle.as_bytes()) {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            out.push((pid, stat));
        }
    }
    out
}

/// Wait up to two seconds for every process of the run to be gone; fail otherwise.
/// `pid`: the run's main process (mp-demo itself), whose semaphores are looked for; with
/// `None`, every semaphore of mp-demo is.
pub fn assert_nothing_left(tag: &str, pid: Option<u32>, run: &Run) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let left = tagged_processes(tag);
        if left.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            for (pid, _) in &left {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
            panic!("processes left behind: {left:?}\n{}", run.show());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // A semaphore's name carries the pid of the main process that made it
    // (`/mp-demo-<pid>-<random>-<what>`): this run's are the ones with its pid (other
    // tests' runs go on at the same time). Each one seen now must be gone within a second
    // (a child may still be closing it).
    let mine = pid
        .map(|p| format!("sem.mp-demo-{p}-"))
        .unwrap_or_else(|| "sem.mp-demo-".into());
    let sems = || -> Vec<String> {
        std::fs::read_dir("/dev/shm")
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&mine))
                    .collect()
            })
            .unwrap_or_default()
    };
    let seen = sems();
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let left: Vec<String> = sems().into_iter().filter(|n| seen.contains(n)).collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "semaphores left in /dev/shm: {left:?}\n{}",
            run.show()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The JSON Lines contract (`docs/events.md`), checked on every event of a run: each
/// line decodes as an event (strictly: see `event.rs`), every `lesson_start` has its
/// `lesson_end`, and every process started has a parent known to the lesson.
pub fn check_contract(r: &Run) {
    assert!(!r.events().is_empty(), "no JSON events\n{}", r.show());
    let starts = r.starts();
    assert_eq!(
        starts.len(),
        r.ends().len(),
        "every lesson_start has a lesson_end\n{}",
        r.show()
    );
    // Every process the lesson started is a real child of a process of the lesson.
    let mut known: Vec<i64> = starts.iter().map(|e| e.pid).collect();
    for s in r.spawns() {
        assert!(
            known.contains(&s.ppid),
            "spawn from an unknown parent: {s}\n{}",
            r.show()
        );
        known.push(s.pid);
    }
    // Causes before effects: a process's `spawn` comes before every other event about
    // it, in the stream's order and by its stamp (a spawned child's first line used to
    // be stamped before the spawn that names it).
    let mut spawned_at: std::collections::HashMap<i64, f64> =
        starts.iter().map(|e| (e.pid, e.t_ms)).collect();
    // And nothing about a process after its exit (its reaping); and the lines in stamp
    // order, within a lesson (each lesson's stamps start at 0).
    let mut exited_at: std::collections::HashMap<i64, f64> = Default::default();
    let mut last: Option<(&str, f64)> = None;
    for e in r.events() {
        if let Some((lesson, t)) = last {
            assert!(
                lesson != e.lesson || e.t_ms >= t,
                "out of stamp order (after {t} ms): {e}\n{}",
                r.show()
            );
        }
        last = Some((e.lesson.as_str(), e.t_ms));
        if matches!(e.body, Body::Spawn(_)) {
            spawned_at.insert(e.pid, e.t_ms);
            exited_at.remove(&e.pid); // a PID used again, later in a tour
            continue;
        }
        if let Some(&gone) = exited_at.get(&e.pid) {
            panic!(
                "an event about a PID after its exit (at {gone} ms): {e}\n{}",
                r.show()
            );
        }
        if matches!(e.body, Body::Exit(_)) {
            exited_at.insert(e.pid, e.t_ms);
        }
        let Some(&t) = spawned_at.get(&e.pid) else {
            panic!("an event about a PID before its spawn: {e}\n{}", r.show());
        };
        assert!(
            e.t_ms >= t,
            "an event stamped before its process's spawn: {e}\n{}",
            r.show()
        );
    }
    // A step's pause comes after its step, before the next one, once at most.
    let mut step: Option<(&str, u32, bool)> = None;
    for e in r.events() {
        match &e.body {
            Body::LessonStart(_) => step = None,
            Body::Step(s) => step = Some((e.lesson.as_str(), s.n, false)),
            Body::Pause(p) => match &mut step {
                Some((lesson, n, paused)) if *lesson == e.lesson && *n == p.step && !*paused => {
                    *paused = true
                }
                _ => panic!(
                    "a pause not of the step before it, or twice: {e}\n{}",
                    r.show()
                ),
            },
            _ => {}
        }
    }
}

/// The largest number of intervals open at once, from the lesson's `open`/`close`
/// events, sorted by their stamps. A close and an open at the same stamp count the close
/// first: stamped intervals lie inside the real ones.
pub fn max_concurrent(r: &Run, open: &str, close: &str) -> usize {
    let mut marks: Vec<(f64, i32)> = r
        .acts(open)
        .iter()
        .map(|e| (e.t_ms, 1))
        .chain(r.acts(close).iter().map(|e| (e.t_ms, -1)))
        .collect();
    marks.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut cur, mut max) = (0i32, 0i32);
    for (_, d) in marks {
        cur += d;
        max = max.max(cur);
    }
    max as usize
}

/// What the reader thread of a [`Live`] run hands over: an event, or a line that is not
/// one (with why).
type Line = Result<Event, String>;

/// A run watched while it goes: its events, decoded as they are written.
pub struct Live {
    pub child: std::process::Child,
    pub tag: String,
    /// The run's TMPDIR: empty again once the run is over.
    pub tmp: tempfile::TempDir,
    args: Vec<String>,
    /// `None` once [`Live::stop_reading`] closed the output.
    events: Option<std::sync::mpsc::Receiver<Line>>,
    /// The reader thread; it returns the first line that was not an event, if any.
    reader: Option<std::thread::JoinHandle<Option<String>>>,
}

impl Live {
    /// Start `mp-demo <args>` (with `--json` among them: its stdout must be events) in
    /// its own process group, with a private TMPDIR and a tag.
    pub fn start(args: &[&str]) -> Live {
        Live::start_with(args, |_| {})
    }

    pub fn start_with(args: &[&str], adjust: impl FnOnce(&mut Command)) -> Live {
        let tag = format!(
            "mp-demo-live-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let tmp = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mp-demo"));
        cmd.args(args)
            .env("MP_DEMO_TEST_TAG", &tag)
            .env("TMPDIR", tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null())
            .process_group(0);
        adjust(&mut cmd);
        let mut child = cmd.spawn().unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || read_events(out, tx));
        Live {
            child,
            tag,
            tmp,
            args: args.iter().map(|s| s.to_string()).collect(),
            events: Some(rx),
            reader: Some(reader),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// An event, or the failure of a line that is not one, with the command shown.
    fn decoded(&self, line: Line) -> Event {
        line.unwrap_or_else(|e| panic!("{e}\ncommand: mp-demo {}", self.args.join(" ")))
    }

    fn receiver(&self) -> &std::sync::mpsc::Receiver<Line> {
        self.events.as_ref().expect("the output is still read")
    }

    /// The next event, waiting at most `within`; `None` if none came (or the output is
    /// over).
    pub fn next(&self, within: Duration) -> Option<Event> {
        let line = self.receiver().recv_timeout(within).ok()?;
        Some(self.decoded(line))
    }

    /// The events that have arrived and not been taken yet, without waiting.
    pub fn drain(&self) -> Vec<Event> {
        let lines: Vec<Line> = self.receiver().try_iter().collect();
        lines.into_iter().map(|l| self.decoded(l)).collect()
    }

    /// Read no more of the output: the pipe closes once the reader thread sees that
    /// (`mp-demo … | head`).
    pub fn stop_reading(&mut self) {
        self.events = None;
    }

    /// Wait (at most `within`) for an event that satisfies `want`; the events seen.
    pub fn wait_for(&self, within: Duration, want: impl Fn(&Event) -> bool) -> Vec<Event> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.receiver().recv_timeout(left) {
                Ok(line) => {
                    let ev = self.decoded(line);
                    let hit = want(&ev);
                    seen.push(ev);
                    if hit {
                        return seen;
                    }
                }
                Err(_) => panic!("no such event within {within:?}; saw {} events", seen.len()),
            }
        }
    }
    /// Wait for the exit (at most `within`); its status.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                // Where it hangs: each thread's state and kernel wait, and its children.
                let pid = self.pid();
                let mut threads = String::new();
                if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
                    for t in dir.flatten() {
                        let p = t.path();
                        let read = |f: &str| {
                            std::fs::read_to_string(p.join(f))
                                .unwrap_or_default()
                                .trim()
                                .to_string()
                        };
                        let stat = read("stat");
                        let state = stat.rsplit(')').next().unwrap_or("").trim();
                        threads.push_str(&format!(
                            "\n  {} {} {}",
                            read("comm"),
                            state.split(' ').next().unwrap_or(""),
                            read("wchan")
                        ));
                    }
                }
                let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                    .unwrap_or_default();
                let _ = self.child.kill();
                panic!(
                    "mp-demo (PID {pid}) did not end within {within:?}; threads:{threads}\n  children: {children}"
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// What the run wrote on stderr (after it ended).
    pub fn stderr(&mut self) -> String {
        let mut err = String::new();
        if let Some(e) = self.child.stderr.as_mut() {
            let _ = std::io::Read::read_to_string(e, &mut err);
        }
        err
    }

    /// No process of the run and no file in its TMPDIR after `within`; and every line it
    /// wrote, read or not, was an event.
    pub fn assert_clean(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let left = tagged_processes(&self.tag);
            let files: Vec<_> = std::fs::read_dir(self.tmp.path())
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .collect();
            if left.is_empty() && files.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                for (pid, _) in &left {
                    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                }
                panic!("left behind after {within:?}: processes {left:?}, files {files:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.assert_every_line_an_event();
    }

    /// Every line the run wrote was an event, whether or not the test took it. Waits a
    /// moment for the reader thread to see the end of the output (every process of the
    /// run is gone by now, so it comes at once).
    fn assert_every_line_an_event(&mut self) {
        let Some(reader) = self.reader.take() else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(2);
        while !reader.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if reader.is_finished() {
            if let Some(bad) = reader.join().expect("the reader thread") {
                panic!("{bad}\ncommand: mp-demo {}", self.args.join(" "));
            }
        }
    }
}

/// The reader thread of a [`Live`] run: each line of `out`, decoded, to `tx`, until the
/// output ends or nobody reads any more. A last line without its newline was cut by a
/// kill (SIGKILL of the main process) and is not taken. Returns the first line that was
/// not an event.
fn read_events(
    out: std::process::ChildStdout,
    tx: std::sync::mpsc::Sender<Line>,
) -> Option<String> {
    use std::io::BufRead;
    let mut out = std::io::BufReader::new(out);
    let mut first_bad = None;
    loop {
        let mut line = String::new();
        match out.read_line(&mut line) {
            Ok(0) => return first_bad,
            Err(e) => {
                return first_bad.or_else(|| Some(format!("the output is not text: {e}")));
            }
            Ok(_) if !line.ends_with('\n') => return first_bad,
            Ok(_) => {}
        }
        let line = line.trim_end_matches('\n');
        let ev = Event::decode(line).map_err(|e| format!("a line is not an event: {e}\n{line}"));
        if let Err(bad) = &ev {
            first_bad.get_or_insert_with(|| bad.clone());
        }
        if tx.send(ev).is_err() {
            return first_bad;
        }
    }
}

/// One line of `mp-demo --json list`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listed {
    pub lesson: String,
    pub summary: String,
    pub options: Vec<OptSpec>,
    /// The kinds the lesson adds, as its words file documents them.
    pub events: Vec<DocKind>,
    /// The observations it reports, as its words file documents them.
    pub observations: Vec<DocObs>,
}

/// An observation a lesson documents (`[observations.<name>]` in its words file).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocObs {
    pub name: String,
    /// The JSON type of its value: `boolean`, `integer`, `number`, `string`.
    #[serde(rename = "type")]
    pub value_type: String,
    pub about: String,
    /// The claim (absent for a fact).
    pub claim: Option<String>,
    /// Claimed on some runs only (present with `claim`).
    pub claim_optional: Option<bool>,
    /// Reported on some runs only.
    pub optional: bool,
}

/// A kind a lesson documents (`[events.<kind>]` in its words file).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocKind {
    pub kind: String,
    /// The process the event is about.
    pub pid: String,
    pub about: String,
    pub stamped: String,
    /// Field name → its meaning.
    pub fields: std::collections::BTreeMap<String, String>,
    /// Only some runs emit it.
    pub optional: bool,
    /// The fields only some runs carry.
    pub optional_fields: Vec<String>,
}

/// A lesson's option and its range.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptSpec {
    pub name: String,
    pub default: i64,
    pub min: i64,
    pub max: i64,
    /// Its help, as `--help` says it.
    pub help: String,
}

/// Every lesson as `mp-demo --json list` describes it.
pub fn listed() -> Vec<Listed> {
    let r = run(&["--json", "list"]);
    r.assert_code(0);
    r.stdout
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not a lesson of the list: {e}\n{l}\n{}", r.show()))
        })
        .collect()
}

/// Every kind some lesson documents, from `mp-demo --json list` (read once).
pub fn documented_kinds() -> &'static std::collections::BTreeSet<String> {
    static KINDS: OnceLock<std::collections::BTreeSet<String>> = OnceLock::new();
    KINDS.get_or_init(|| {
        listed()
            .into_iter()
            .flat_map(|l| l.events.into_iter().map(|d| d.kind))
            .collect()
    })
}

/// Every lesson with its options and their ranges, from `mp-demo --json list`.
pub fn lessons() -> Vec<(String, Vec<OptSpec>)> {
    listed()
        .into_iter()
        .map(|e| (e.lesson, e.options))
        .collect()
}

/// Every line the run said (and every step title) is a real line of words (no
/// `<missing key>`), with every placeholder filled (no `{name}` left).
pub fn assert_words_complete(r: &Run) {
    let says = r.says();
    let steps = r.steps();
    let lines = says
        .iter()
        .map(|s| (s.text.as_str(), s.event))
        .chain(steps.iter().map(|s| (s.title.as_str(), s.event)));
    for (text, e) in lines {
        assert!(
            !(text.starts_with('<') && text.ends_with('>')),
            "missing key: {e}"
        );
        let unfilled = text
            .split('{')
            .skip(1)
            .filter_map(|rest| rest.split_once('}'))
            .any(|(name, _)| {
                !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            });
        assert!(!unfilled, "unfilled placeholder: {e}");
    }
}

/// `args` with `--speed 0.2` first unless they set a speed: a run paced as a person sees
/// it (steps, pauses, children alive for a while), in a fifth of the time. At `--speed 1`
/// a lesson now waits for its reader (a minute or more); the tests that need pacing
/// but not its length use this.
pub fn paced<'a>(args: &[&'a str]) -> Vec<&'a str> {
    if args.contains(&"--speed") {
        args.to_vec()
    } else {
        [&["--speed", "0.2"][..], args].concat()
    }
}
