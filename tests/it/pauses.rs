//! `--step` through a pseudo-terminal, as a student with a second terminal would: at every
//! pause the hint's command, parsed from the screen, is run with `sh -c` while the lesson
//! waits. It must succeed and show what the step names: the PIDs in the command, every
//! child of the run still alive when the command lists children, the janitor when the
//! hint names it; then Enter goes on. Every step gets its pause, and every wait is
//! bounded (10 s for the screen, 5 s for a command).

use crate::common;

use crate::interactive::session;
use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

/// How long the test waits at each pause, as a student reading would.
const READING: Duration = Duration::from_millis(300);

/// One pause, as the screen showed it and as the hint's command found the processes.
#[derive(Debug)]
struct Pause {
    /// The title of the step this pause belongs to.
    title: String,
    hint: Option<String>,
    /// What the hint's command printed (stdout and stderr).
    output: String,
    /// The run's children started so far and not yet gone, by the screen.
    alive: BTreeSet<i32>,
}

impl Pause {
    /// The `ps` row of `pid` in the output: its words.
    fn row(&self, pid: i32) -> Vec<&str> {
        self.output
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|w| w.first() == Some(&pid.to_string().as_str()))
            .unwrap_or_else(|| panic!("no row of {pid} in {}", self.output))
    }
}

/// The screen's text: rexpect hands over each byte as a char; this is the UTF-8 it was,
/// without the terminal's escape sequences (the live panel's cursor moves).
fn text(raw: &str) -> String {
    let bytes: Vec<u8> = raw.chars().map(|c| c as u32 as u8).collect();
    let s = String::from_utf8_lossy(&bytes);
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            // CSI: parameters, then one final letter.
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The number `s` starts with, if any.
fn leading_number(s: &str) -> Option<i32> {
    let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Every number of three digits or more in `s` outside a path (`/proc/N/fd`, a run
/// directory with digits in its random name): the PIDs and inodes a command names.
fn named_numbers(s: &str) -> Vec<String> {
    s.split_whitespace()
        .filter(|word| !word.contains('/'))
        .flat_map(|word| word.split(|c: char| !c.is_ascii_digit()))
        .filter(|n| n.len() >= 3)
        .map(str::to_string)
        .collect()
}

/// What one line of the screen says: a step's number and title, a child started, a
/// child gone, a hint.
fn read_line(line: &str, s: &mut Seen) {
    if let Some((_, rest)) = line.split_once("Step ") {
        if let (Some(n), Some((_, t))) = (leading_number(rest), rest.split_once(" · ")) {
            s.steps = n as usize;
            s.title = t.split(" ─").next().unwrap_or(t).trim().to_string();
        }
    }
    if let Some((_, rest)) = line.split_once("+ started: PID ") {
        s.alive.extend(leading_number(rest));
    }
    if let Some((who, _)) = line.split_once("│ ✝ gone") {
        let pid = who.split_whitespace().last().and_then(leading_number);
        if let Some(pid) = pid {
            s.alive.remove(&pid);
        }
    }
    // The hint: a label line, then the command alone on the next line (or after the
    // label, on its line, when both fit), then (the first
    // time its output shows mp-demo's cleanup helper) a note naming it, kept as ` # note`.
    if line.trim_end().ends_with("in another terminal:") {
        s.hint_next = true;
    } else if let Some((_, cmd)) = line.split_once("in another terminal: ") {
        s.hint = Some(cmd.trim().to_string());
    } else if s.hint_next && !line.trim().is_empty() {
        s.hint = Some(line.trim().to_string());
        s.hint_next = false;
    } else if line.contains("is the janitor") {
        if let Some(h) = &mut s.hint {
            h.push_str(" # ");
            h.push_str(line.trim());
        }
    }
}

/// What the screen has said so far.
#[derive(Default)]
struct Seen {
    steps: usize,
    title: String,
    alive: BTreeSet<i32>,
    /// The hint printed since the last pause.
    hint: Option<String>,
    /// The last line was the hint's label: the command comes next.
    hint_next: bool,
}

/// `sh -c cmd`, bounded: its exit code and everything it printed.
fn run_hint(cmd: &str) -> (Option<i32>, String) {
    let out = Command::new("timeout")
        .args(["5", "sh", "-c", cmd])
        .output()
        .expect("sh");
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code(), s)
}

/// Step through `args` (a lesson with `--step`), running each pause's hint. Checks, for
/// every hint: it exits 0; each number of three digits or more in the command, outside
/// a path, is in its output (PIDs, an inode); a command that lists children (`--ppid`,
/// `pstree`) shows every child still alive; a number in the hint's note (`# N is the
/// janitor`) is in the output too. And that there were as many pauses as steps, and
/// that every claim held ("Every claim held" is what the loop waits for at the end).
fn step_through(args: &[&str]) -> Vec<Pause> {
    let tag = format!("mp-demo-pauses-{}-{:?}", std::process::id(), Instant::now());
    // Read line by line: every start and end on a line of its own (`--verbose`; the
    // default view tells alike ones as one line).
    let args: Vec<&str> = std::iter::once("--verbose").chain(args.iter().copied()).collect();
    let mut p = session(&args, &tag);
    let mut seen = Seen::default();
    let mut pauses = Vec::new();
    loop {
        let (raw, matched) = p
            .exp_regex("Space or Enter|Every claim held")
            .expect("a pause or the verdict within 10 s");
        seen.hint = None;
        for line in text(&raw).split(['\r', '\n']) {
            read_line(line, &mut seen);
        }
        if matched.contains("Every claim held") {
            break;
        }
        let (title, alive) = (seen.title.clone(), &seen.alive);
        let mut pause = Pause {
            title: title.clone(),
            hint: seen.hint.clone(),
            output: String::new(),
            alive: alive.clone(),
        };
        if let Some(cmd) = &seen.hint {
            let (code, out) = run_hint(cmd);
            assert_eq!(code, Some(0), "step {title:?}: `{cmd}` failed:\n{out}");
            let (command, note) = cmd.split_once(" #").unwrap_or((cmd, ""));
            for n in named_numbers(command).into_iter().chain(named_numbers(note)) {
                assert!(out.contains(&n), "step {title:?}: `{cmd}` shows no {n}:\n{out}");
            }
            if command.contains("--ppid") || command.contains("pstree") {
                for pid in alive {
                    let pid = pid.to_string();
                    assert!(
                        out.contains(&pid),
                        "step {title:?}: `{cmd}` does not show the child {pid}:\n{out}"
                    );
                }
            }
            pause.output = out;
        }
        pauses.push(pause);
        // A student reads before going on: what the lesson times must leave this out.
        std::thread::sleep(READING);
        p.send("\r").unwrap();
        p.flush().unwrap();
    }
    p.exp_eof().expect("the end within 10 s");
    assert_eq!(pauses.len(), seen.steps, "one pause a step: {pauses:#?}");
    let deadline = Instant::now() + Duration::from_secs(2);
    while !common::tagged_processes(&tag).is_empty() {
        assert!(Instant::now() < deadline, "left: {:?}", common::tagged_processes(&tag));
        std::thread::sleep(Duration::from_millis(20));
    }
    pauses
}

/// The pause of the step whose title starts with `title`.
fn pause<'a>(pauses: &'a [Pause], title: &str) -> &'a Pause {
    pauses
        .iter()
        .find(|p| p.title.starts_with(title))
        .unwrap_or_else(|| panic!("no pause for {title:?}: {pauses:#?}"))
}

#[test]
fn lock_hints_show_the_file_the_buyers_asleep_and_the_lock_table() {
    let pauses = step_through(&["--step", "--speed", "0", "lock", "--buyers", "4"]);
    let office = pause(&pauses, "The ticket office");
    assert!(
        office.output.trim().parse::<i64>().is_ok(),
        "the count file: {}",
        office.output
    );
    // Every buyer has read and waits at the write gate: asleep, S.
    let no_lock = pause(&pauses, "Without a lock");
    let buyers: Vec<i32> = no_lock.alive.iter().copied().collect();
    assert!(buyers.len() >= 4, "buyers: {no_lock:#?}");
    for &b in &buyers {
        let row = no_lock.row(b);
        assert!(row[2].starts_with('S'), "buyer {b} is not asleep: {row:?}");
    }
    assert!(no_lock.hint.as_deref().unwrap().contains("janitor"));
    // One holder and three waiters in the kernel's lock table.
    let waiters = pause(&pauses, "Who holds the lock");
    let blocked = waiters.output.lines().filter(|l| l.contains("->")).count();
    assert_eq!(blocked, 3, "{}", waiters.output);
}

#[test]
fn pool_hints_show_the_workers() {
    let pauses = step_through(&["--step", "--speed", "0", "pool", "--workers", "2"]);
    let create = pause(&pauses, "Creating the workers");
    assert!(create.alive.len() >= 2, "{create:#?}");
    for p in ["pool.apply()", "pool.map()", "pool.close()"] {
        let at = pause(&pauses, p);
        for &w in &create.alive {
            let row = at.row(w);
            assert!(row[2].starts_with('S'), "{p}: worker {w} not idle: {row:?}");
        }
    }
}

#[test]
fn fork_hints_show_the_child_the_zombie_its_end_and_the_sleeper() {
    let pauses = step_through(&["--step", "--speed", "0", "fork"]);
    let start = pause(&pauses, "p.start()");
    assert_eq!(start.alive.len(), 1, "{start:#?}");
    let child = *start.alive.first().unwrap();
    let alive = pause(&pauses, "p.is_alive()");
    assert!(alive.row(child)[2].starts_with('S'), "{alive:#?}");
    let zombie = pause(&pauses, "The child has exited");
    assert!(zombie.row(child)[2].starts_with('Z'), "{zombie:#?}");
    let join = pause(&pauses, "p.join()");
    assert!(join.output.contains("gone"), "{join:#?}");
    // The sleeper is there, asleep, before terminate() ends it.
    let term = pause(&pauses, "p.terminate()");
    let sleeper = *term.alive.iter().find(|&&p| p != child).expect("the sleeper");
    assert!(term.row(sleeper)[2].starts_with('S'), "{term:#?}");
}


#[test]
fn process_hints_show_both_names_as_the_program_and_the_child_running_after_join_timeout() {
    let pauses = step_through(&["--step", "--speed", "0", "process"]);
    let start = pause(&pauses, "p.start()");
    assert_eq!(start.alive.len(), 1, "{start:#?}");
    let child = *start.alive.first().unwrap();
    // pstree of Process-1 draws it and Process-1:1 by the program's name.
    let name = pause(&pauses, "p.name");
    assert_eq!(name.alive.len(), 2, "{name:#?}");
    assert_eq!(name.output.matches("mp-demo(").count(), 2, "{name:#?}");
    // After join(0.2) gave up, the child is still there, asleep in its work.
    let timed_out = pause(&pauses, "p.join(0.2)");
    assert!(timed_out.row(child)[2].starts_with('S'), "{timed_out:#?}");
    let join = pause(&pauses, "p.join():");
    assert!(join.output.contains("gone"), "{join:#?}");
}

#[test]
fn sync_vs_async_hints_show_the_jobs_and_the_timings_leave_the_pauses_out() {
    // The jobs last 30 to 70 ms: were the 300 ms at a pause timed, async would not be
    // faster than sync, and the claim would fail.
    let pauses = step_through(&["--step", "--speed", "0", "sync-vs-async"]);
    let sync = pause(&pauses, "Synchronous");
    let asyn = pause(&pauses, "Asynchronous");
    let jobs = |p: &Pause| {
        p.alive
            .iter()
            .filter(|&&pid| p.output.contains(&format!("{pid} ")))
            .count()
    };
    // One job at a time; then the three at once.
    assert_eq!(jobs(sync), 1, "{sync:#?}");
    assert_eq!(jobs(asyn), 3, "{asyn:#?}");
}
