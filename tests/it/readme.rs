//! The README's sample output is a real run's: this runs the README's command as a person
//! sees it, in an 80-column terminal, and compares what it printed with the README's block.
//!
//! `MP_DEMO_WRITE_README=1 cargo test --test it readme::` writes this run's output into
//! the README instead (after a change to what the lesson prints).

use crate::common;

use std::io::Read;
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The command the README shows, as it writes it (the line above its block).
const MARK: &str = "`mp-demo --speed 0 --lang en fork`";
const ARGS: [&str; 5] = ["--speed", "0", "--lang", "en", "fork"];
/// Where the README's sample says the spawned child's program is (`cargo install --path .`
/// puts it there); a test run's is wherever cargo built it.
const README_EXE: &str = "/home/you/.cargo/bin/mp-demo";

/// The README, the lines of its sample block, and where they are (first line, end).
fn readme_block() -> (Vec<String>, std::ops::Range<usize>) {
    let text = std::fs::read_to_string("README.md").expect("README.md");
    let lines: Vec<String> = text.lines().map(String::from).collect();
    let mark = lines
        .iter()
        .position(|l| l.contains(MARK))
        .unwrap_or_else(|| panic!("the README names no {MARK}"));
    let fence_after = |at: usize| {
        at + 1
            + lines[at + 1..]
                .iter()
                .position(|l| l.starts_with("```"))
                .expect("a fenced block after the command, and its end")
    };
    let open = fence_after(mark);
    let close = fence_after(open);
    (lines, open + 1..close)
}

/// `mp-demo ARGS` on a pseudo-terminal of 80 columns (so it wraps as on a screen), with
/// `TERM=dumb` (no colour, no live panel: the lines alone); stderr apart.
fn run_at_80_columns() -> common::Run {
    let tag = format!("mp-demo-readme-{}", std::process::id());
    let size = nix::pty::Winsize {
        ws_row: 24,
        ws_col: 80,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // The run's end is the end of the terminal's output: the master is not inherited.
    let (mut master, slave) = crate::interactive::pty_pair(Some(&size));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mp-demo"));
    cmd.args(ARGS)
        .env("MP_DEMO_TEST_TAG", &tag)
        .env("TERM", "dumb")
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .stdin(Stdio::null())
        .stdout(slave)
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("mp-demo on a pty");
    drop(cmd); // it holds the slave
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 4096];
    loop {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "no end within 30 s; saw: {}",
                String::from_utf8_lossy(&out)
            );
        }
        let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, PollTimeout::from(100u16)).unwrap_or(0) == 0 {
            continue;
        }
        match master.read(&mut buf) {
            Ok(n) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ => break, // EIO: every holder of the terminal is gone
        }
    }
    let status = child.wait().expect("the exit status");
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let stdout = String::from_utf8_lossy(&out).replace("\r\n", "\n");
    let run = common::Run::new(&ARGS, status.code().unwrap_or(-1), stdout, err);
    common::assert_nothing_left(&tag, Some(child.id()), &run);
    run
}

/// What of a run's output every run shares. Compared as it is, a real run differs from
/// the README's in what varies from run to run, so (on both sides):
/// - every run of digits becomes `N`: PIDs, times, durations;
/// - a narration line and its continuation lines (`│ …`) are joined into one, and every
///   run of spaces becomes one: where a line wraps and how columns align follow the
///   widths of those numbers;
/// - the observer's samples (`◆ kernel state …`) and the timeline's lanes are left out:
///   which states a sample catches between two of the lesson's moments (an `R` before
///   the `S`, or not), and where they fall in a lane, vary from run to run;
/// - within a step, lines are compared per process, in that process's own order: after
///   `fork()` parent and child narrate at once, and which comes first is the race itself.
fn normalized(text: &str) -> Vec<String> {
    let mask = |s: &str| -> String {
        let mut out = String::new();
        let (mut in_digits, mut in_spaces) = (false, false);
        for c in s.chars() {
            let skip = (c.is_ascii_digit() && in_digits) || (c == ' ' && in_spaces);
            in_digits = c.is_ascii_digit();
            in_spaces = c == ' ';
            if !skip {
                out.push(if in_digits { 'N' } else { c });
            }
        }
        out.trim().to_string()
    };
    // Entries: a line and the continuation lines under it.
    let mut entries: Vec<String> = Vec::new();
    for line in text.lines() {
        // A wrapped note under a hint, `   (… janitor …` until its `)`, continues too.
        let open_note = entries
            .last()
            .is_some_and(|l| l.starts_with("   (") && !l.trim_end().ends_with(')'));
        let continues = line.starts_with(' ')
            && (line.trim_start().starts_with('│') || open_note);
        match entries.last_mut() {
            Some(last) if continues => {
                last.push(' ');
                last.push_str(line.trim_start().trim_start_matches('│'));
            }
            _ => entries.push(line.to_string()),
        }
    }
    let is_lane = |l: &str| {
        !l.starts_with(' ') && l.contains('│') && l.trim_end().ends_with('│')
    };
    // A narration entry starts with its time: `   5.3ms main 27663   │ …`.
    let label = |l: &str| -> Option<String> {
        let (head, _) = l.split_once('│')?;
        let mut words = head.split_whitespace();
        let time = words.next()?;
        time.ends_with('s')
            .then(|| mask(&words.collect::<Vec<_>>().join(" ")))
    };
    let mut out = Vec::new();
    let mut step: Vec<(String, String)> = Vec::new();
    let flush = |step: &mut Vec<(String, String)>, out: &mut Vec<String>| {
        step.sort_by(|a, b| a.0.cmp(&b.0)); // stable: each process keeps its order
        out.extend(step.drain(..).map(|(_, e)| e));
    };
    for e in entries {
        if e.contains("◆ kernel state") || is_lane(&e) {
            continue;
        }
        match label(&e) {
            Some(who) => step.push((who, mask(&e))),
            None => {
                flush(&mut step, &mut out);
                out.push(mask(&e));
            }
        }
    }
    flush(&mut step, &mut out);
    // The block's last blank line is the fence's business.
    while out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    out
}

#[test]
fn masking_keeps_what_every_run_shares() {
    let a = "   5.3ms main 27663          │ I am PID 27663. My\n                             │ parent is N.\n";
    let b = "  15.4ms main 9          │ I am PID 9. My parent is N.\n";
    assert_eq!(normalized(a), normalized(b));
    assert_eq!(
        normalized(a),
        ["N.Nms main N │ I am PID N. My parent is N."]
    );
    assert_ne!(normalized(a), normalized("   5.3ms main 1 │ I am PID 1.\n"));
}

#[test]
fn the_readmes_sample_output_is_this_programs() {
    let run = run_at_80_columns();
    run.assert_code(0);
    let real = run
        .stdout
        .replace(env!("CARGO_BIN_EXE_mp-demo"), README_EXE);
    let (mut lines, block) = readme_block();
    if std::env::var_os("MP_DEMO_WRITE_README").is_some() {
        lines.splice(block, real.lines().map(String::from));
        std::fs::write("README.md", lines.join("\n") + "\n").expect("README.md written");
        return;
    }
    let readme = lines[block].join("\n");
    assert!(readme.contains("Every claim held"), "{readme}");
    assert_eq!(
        normalized(&readme),
        normalized(&real),
        "the README's sample is not what {MARK} prints now (masked as `normalized` says). \
         This run printed:\n{real}\n\
         MP_DEMO_WRITE_README=1 cargo test --test it readme:: writes it into the README."
    );
}
