//! `mp-demo replay FILE` (issue 16): the human view is a function of the stream alone, so
//! a recording shows again exactly what its run showed; at its pace, or at `--speed`;
//! and a file that is no recording gets one line.

use crate::common;

use std::time::{Duration, Instant};

fn lessons() -> Vec<String> {
    common::lessons().into_iter().map(|(name, _)| name).collect()
}

/// `mp-demo <args>` with `COLUMNS` set, colours forced.
fn replay(file: &std::path::Path, columns: usize, extra: &[&str]) -> common::Run {
    let cols = columns.to_string();
    let mut args = vec!["--color", "always"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["replay", file.to_str().expect("a UTF-8 path")]);
    common::run_env(&args, &[("COLUMNS", &cols)])
}

/// Every way the suite shows every lesson (both languages at 80 columns, English at 50
/// and 40, Chinese at 40, and three lessons `--verbose`), replayed from the run's own
/// recording (`--record`), is the run's output, byte for byte: colours, the hints at
/// their pauses, the verdict, the timeline.
#[test]
fn a_replay_shows_what_the_run_showed() {
    let mut ways: Vec<(String, &str, usize, Vec<&str>)> = Vec::new();
    for lesson in lessons() {
        for (lang, columns) in [("en", 80), ("zh", 80), ("en", 50), ("en", 40), ("zh", 40)] {
            ways.push((lesson.clone(), lang, columns, vec![]));
        }
    }
    for lesson in ["lock", "pool", "fork"] {
        ways.push((lesson.into(), "en", 80, vec!["--verbose"]));
    }
    for (lesson, lang, columns, extra) in &ways {
        let live = common::human_shared(lesson, lang, *columns, extra);
        live.assert_code(0);
        let file = common::human_recording(lesson, lang, *columns, extra);
        // The language is the recording's: no --lang is given.
        let again = replay(&file, *columns, extra);
        again.assert_code(0);
        if again.stdout != live.stdout {
            let (a, b): (Vec<_>, Vec<_>) = (live.stdout.lines().collect(), again.stdout.lines().collect());
            let at = a.iter().zip(&b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
            panic!(
                "{lesson} {lang} {columns} {extra:?}: the replay differs from the run at line {}:\n run:    {:?}\n replay: {:?}",
                at + 1,
                a.get(at),
                b.get(at)
            );
        }
    }
}

/// At `--speed 1` a replay keeps the recorded pace (a run recorded at a slow pace takes
/// at least as long again); `--speed 0` shows it at once.
#[test]
fn a_replay_keeps_the_recorded_pace_or_goes_at_speed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fork.jsonl");
    let args = ["--speed", "0.05", "--json", "fork"];
    let rec = common::run(&args);
    rec.assert_code(0);
    std::fs::write(&file, &rec.stdout).unwrap();
    let took = rec.ends()[0].elapsed_ms;
    assert!(took > 500.0, "a paced run takes a while: {took} ms");
    let t = Instant::now();
    replay(&file, 80, &["--speed", "1"]).assert_code(0);
    let paced = t.elapsed();
    assert!(
        paced >= Duration::from_secs_f64(took / 1000.0 * 0.9),
        "replayed in {paced:?}, recorded in {took} ms"
    );
    let t = Instant::now();
    replay(&file, 80, &["--speed", "0"]).assert_code(0);
    assert!(t.elapsed() < paced / 2, "--speed 0 is not at once: {:?}", t.elapsed());
}

/// What is no recording, or cannot be one, gets one line: a missing file, a line that
/// is no event, a file with no lesson; a run's own options are refused (exit 2). A
/// recording of a run that did not end well replays what it has, exit 1.
#[test]
fn what_is_no_recording_gets_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let one_line = |r: &common::Run, code: i32, says: &str| {
        r.assert_code(code);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.show());
        assert!(r.stderr.contains(says), "{}", r.show());
        assert!(!r.stderr.contains("panicked"), "{}", r.show());
    };
    one_line(&replay(&dir.path().join("none.jsonl"), 80, &[]), 1, "cannot read it");
    let junk = dir.path().join("junk.jsonl");
    std::fs::write(&junk, "{\"t_ms\":0}\nnot json\n").unwrap();
    one_line(&replay(&junk, 80, &[]), 1, "line 1");
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    one_line(&replay(&empty, 80, &[]), 1, "no lesson_start");
    let rec = common::lesson_json_shared("isolation");
    let file = dir.path().join("isolation.jsonl");
    std::fs::write(&file, &rec.stdout).unwrap();
    for opt in ["--json", "--quiz"] {
        one_line(&replay(&file, 80, &[opt]), 2, "does not go with replay");
    }
    // Cut before its end: shown as far as it goes, and not a success.
    let half: String = rec.stdout.lines().take(rec.events().len() / 2).map(|l| format!("{l}\n")).collect();
    let cut = dir.path().join("cut.jsonl");
    std::fs::write(&cut, half).unwrap();
    let r = replay(&cut, 80, &[]);
    r.assert_code(1);
    assert!(r.stdout.contains("isolation"), "{}", r.show());
    assert!(r.stderr.is_empty(), "{}", r.show());
}

/// `replay --step` on a terminal waits at every pause the run had, goes on at a key, and
/// ends as the run did; `q` stops it quietly.
#[test]
fn a_replay_steps_at_the_runs_pauses() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("isolation.jsonl");
    let rec = common::lesson_json_shared("isolation");
    std::fs::write(&file, &rec.stdout).unwrap();
    let pauses = rec.stdout.lines().filter(|l| l.contains("\"kind\":\"pause\"")).count();
    assert!(pauses >= 2, "{}", rec.show());
    let f = file.to_str().unwrap();
    let tag = "mp-demo-replay-pty";
    let mut p = crate::interactive::session(&["--speed", "0", "replay", "--step", f], tag);
    for _ in 0..pauses {
        p.exp_string("Space or Enter").unwrap();
        p.send("\r").unwrap();
        p.flush().unwrap();
    }
    p.exp_string("Every claim held").unwrap();
    p.exp_eof().unwrap();
    let status = format!("{:?}", p.process().wait().unwrap());
    assert!(status.ends_with(", 0)"), "{status}");
    let mut p = crate::interactive::session(&["--speed", "0", "replay", "--step", f], tag);
    p.exp_string("Space or Enter").unwrap();
    p.send("q").unwrap();
    p.flush().unwrap();
    p.exp_eof().unwrap();
    let status = format!("{:?}", p.process().wait().unwrap());
    assert!(status.ends_with(", 0)"), "{status}");
}
