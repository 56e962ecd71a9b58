//! Shared helpers of the integration tests: run the built binary, read its JSON Lines
//! stream, and check that nothing it started outlives it.
#![allow(dead_code)]
// Test threads may panic when they cannot start: that fails the test, as it should.
#![allow(clippy::disallowed_methods)]

use serde_json::Value;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// One finished run of mp-demo.
pub struct Run {
    pub args: Vec<String>,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// stdout parsed as JSON Lines (empty when it is not JSON).
    pub events: Vec<Value>,
}

impl Run {
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

    /// The value of observation `name` (panics with the run shown if absent).
    pub fn obs(&self, name: &str) -> &Value {
        self.events
            .iter()
            .find(|e| e["kind"] == "observation" && e["name"] == name)
            .map(|e| &e["value"])
            .unwrap_or_else(|| panic!("no observation {name}\n{}", self.show()))
    }

    /// Every event of `kind`.
    pub fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.events.iter().filter(|e| e["kind"] == kind).collect()
    }

    /// The lesson's main process (the pid of `lesson_start`).
    pub fn main_pid(&self) -> i64 {
        self.of_kind("lesson_start")[0]["pid"].as_i64().unwrap()
    }

    /// Assert the exit code, showing the run if it differs.
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "unexpected exit code\n{}", self.show());
        self
    }
}

fn truncate(s: &str) -> String {
    if s.len() > 6000 {
        // At a character boundary: the narration is often Chinese, or box drawing.
        let mut end = 6000;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}\n…[{} more bytes]", &s[..end], s.len() - end)
    } else {
        s.to_string()
    }
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
    let out = cmd.output().expect("mp-demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let events = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect();
    let run = Run {
        args: args.iter().map(|s| s.to_string()).collect(),
        code: out.status.code().unwrap_or(-1),
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        events,
    };
    assert_nothing_left(&tag, &run);
    run
}

pub fn run(args: &[&str]) -> Run {
    run_env(args, &[])
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
pub fn assert_nothing_left(tag: &str, run: &Run) {
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
    // A semaphore of mp-demo in /dev/shm now may belong to another run going on at the
    // same time (other tests run in parallel), which unlinks it moments later; one this
    // run left behind stays. So: each one seen now must be gone within a second.
    let sems = || -> Vec<String> {
        std::fs::read_dir("/dev/shm")
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("sem.mp-demo"))
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

/// DESIGN.md's JSON Lines contract, checked on every event of a run.
pub fn check_contract(r: &Run) {
    assert!(!r.events.is_empty(), "no JSON events\n{}", r.show());
    assert_eq!(
        r.events.len(),
        r.stdout.lines().count(),
        "every stdout line must be one JSON object\n{}",
        r.show()
    );
    for e in &r.events {
        assert!(e["t_ms"].is_number(), "t_ms missing: {e}");
        assert!(e["lesson"].is_string(), "lesson missing: {e}");
        assert!(e["kind"].is_string(), "kind missing: {e}");
        assert!(e["pid"].is_i64(), "pid missing: {e}");
        match e["kind"].as_str().unwrap() {
            "spawn" => {
                assert!(e["ppid"].is_i64() && e["name"].is_string(), "{e}");
                assert!(e["how"] == "fork" || e["how"] == "spawn", "{e}");
            }
            "state" => assert!(
                e["name"].is_string() && e["from"].is_string() && e["to"].is_string(),
                "{e}"
            ),
            "exit" => assert!(e["exitcode"].is_i64() && e["reaped_by"].is_i64(), "{e}"),
            "say" => assert!(e["key"].is_string() && e["text"].is_string(), "{e}"),
            "observation" => assert!(e["name"].is_string() && !e["value"].is_null(), "{e}"),
            "lesson_end" => assert!(e["ok"].is_boolean() && e["elapsed_ms"].is_number(), "{e}"),
            _ => {}
        }
    }
    let starts = r.of_kind("lesson_start");
    let ends = r.of_kind("lesson_end");
    assert_eq!(
        starts.len(),
        ends.len(),
        "every lesson_start has a lesson_end\n{}",
        r.show()
    );
    // Every process the lesson started is a real child of a process of the lesson, and
    // ended with an exit event.
    let mut known: Vec<i64> = starts.iter().map(|e| e["pid"].as_i64().unwrap()).collect();
    for s in r.of_kind("spawn") {
        let ppid = s["ppid"].as_i64().unwrap();
        assert!(
            known.contains(&ppid),
            "spawn from an unknown parent: {s}\n{}",
            r.show()
        );
        known.push(s["pid"].as_i64().unwrap());
    }
}

/// The largest number of intervals open at once, from `open`/`close` events (matched by
/// pid), sorted by their stamps. A close and an open at the same stamp count the close
/// first: stamped intervals lie inside the real ones.
pub fn max_concurrent(r: &Run, open: &str, close: &str) -> usize {
    let mut marks: Vec<(f64, i32)> = r
        .events
        .iter()
        .filter_map(|e| {
            let t = e["t_ms"].as_f64()?;
            if e["kind"] == open {
                Some((t, 1))
            } else if e["kind"] == close {
                Some((t, -1))
            } else {
                None
            }
        })
        .collect();
    marks.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap().then(a.1.cmp(&b.1)));
    let (mut cur, mut max) = (0i32, 0i32);
    for (_, d) in marks {
        cur += d;
        max = max.max(cur);
    }
    max as usize
}

/// A run watched while it goes: its JSON events arrive on a channel as they are written.
pub struct Live {
    pub child: std::process::Child,
    pub events: std::sync::mpsc::Receiver<Value>,
    pub tag: String,
    /// The run's TMPDIR: empty again once the run is over.
    pub tmp: tempfile::TempDir,
}

impl Live {
    /// Start `mp-demo <args>` (with `--json` among them to get events) in its own process
    /// group, with a private TMPDIR and a tag.
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
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
            }
        });
        Live {
            child,
            events: rx,
            tag,
            tmp,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Wait (at most `within`) for an event that satisfies `want`; the events seen.
    pub fn wait_for(&self, within: Duration, want: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(ev) => {
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

    /// No process of the run and no file in its TMPDIR after `within`.
    pub fn assert_clean(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let left = tagged_processes(&self.tag);
            let files: Vec<_> = std::fs::read_dir(self.tmp.path())
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .collect();
            if left.is_empty() && files.is_empty() {
                return;
            }
            if Instant::now() > deadline {
                for (pid, _) in &left {
                    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                }
                panic!("left behind after {within:?}: processes {left:?}, files {files:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Every lesson with its options and their ranges, from `mp-demo --json list`.
pub fn lessons() -> Vec<(String, Vec<Value>)> {
    let r = run(&["--json", "list"]);
    r.assert_code(0);
    r.events
        .iter()
        .map(|e| {
            (
                e["lesson"].as_str().unwrap().to_string(),
                e["options"].as_array().cloned().unwrap_or_default(),
            )
        })
        .collect()
}

/// Every line the run said is a real line of words (no `<missing key>`), with every
/// placeholder filled (no `{name}` left).
pub fn assert_words_complete(r: &Run) {
    for e in r
        .events
        .iter()
        .filter(|e| e["kind"] == "say" || e["kind"] == "step")
    {
        let text = e
            .get("text")
            .or(e.get("title"))
            .and_then(Value::as_str)
            .unwrap();
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

/// An event's stamp, in milliseconds.
pub fn t_ms(e: &Value) -> f64 {
    e["t_ms"].as_f64().unwrap()
}

/// The process an event is about.
pub fn pid_of(e: &Value) -> i64 {
    e["pid"].as_i64().unwrap()
}

/// The one `spawn` event of the process called `name`.
pub fn spawn_of<'a>(r: &'a Run, name: &str) -> &'a Value {
    let s: Vec<_> = r
        .of_kind("spawn")
        .into_iter()
        .filter(|e| e["name"] == name)
        .collect();
    assert_eq!(s.len(), 1, "one spawn named {name}\n{}", r.show());
    s[0]
}

/// The one `exit` event of `pid`.
pub fn exit_of(r: &Run, p: i64) -> &Value {
    let e: Vec<_> = r
        .of_kind("exit")
        .into_iter()
        .filter(|e| pid_of(e) == p)
        .collect();
    assert_eq!(e.len(), 1, "one exit for PID {p}\n{}", r.show());
    e[0]
}
