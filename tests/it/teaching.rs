//! The teaching layer off a terminal: the tour, the trace, the timeline.

use crate::common;

use std::collections::BTreeSet;

#[test]
fn tour_json_is_one_stream_covering_every_lesson() {
    let list = common::run(&["list"]);
    let names: Vec<String> = list
        .stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect();
    let r = common::run(&["--speed", "0", "--json", "tour"]);
    common::check_contract(&r);
    r.assert_code(0);
    let started: Vec<String> = r.starts().iter().map(|e| e.lesson.to_string()).collect();
    assert_eq!(
        started, names,
        "the tour runs every lesson of `list`, in order"
    );
    for end in r.ends() {
        assert!(end.ok, "{end}");
    }
    // Events carry the lesson they belong to; the tour's frame (`tour_start`,
    // `tour_end`) is the tour's own.
    for e in r.events() {
        let frame = e.is::<common::TourStart>() || e.is::<common::TourEnd>();
        assert!(names.contains(&e.lesson) != frame, "{e}");
        assert_eq!(frame, e.lesson == "tour", "{e}");
    }
    common::assert_words_complete(&r);
    for name in &names {
        quiz_is_answerable_from_the_run(name, &r);
    }
}

// The whole tour in Chinese (every line exists, every placeholder is filled) is run
// once, on a busy machine: `faults::every_claim_holds_on_a_busy_machine_in_chinese`.

/// Every lesson has a quiz (issue 6), and this run can judge it: the observation each
/// question is about, and those its choices compare with, are in the run's stream, and
/// exactly one choice is right about what the run observed.
fn quiz_is_answerable_from_the_run(lesson: &str, r: &common::Run) {
    let src = std::fs::read_to_string(format!("lessons/{lesson}.toml")).unwrap();
    let words: toml::Value = toml::from_str(&src).unwrap();
    let quiz = words
        .get("quiz")
        .and_then(|q| q.as_array())
        .unwrap_or_else(|| panic!("{lesson}: no [[quiz]] question"));
    assert!(!quiz.is_empty(), "{lesson}: no [[quiz]] question");
    let observed = |name: &str| -> common::Val {
        r.observations()
            .into_iter()
            .find(|o| o.lesson == lesson && o.name == name)
            .unwrap_or_else(|| panic!("{lesson}: the quiz asks about {name}, never observed"))
            .value
            .clone()
    };
    for q in quiz {
        let about = q["observation"].as_str().unwrap();
        let seen = observed(about);
        for lang in ["en", "zh"] {
            assert!(
                q["ask"][lang].is_str() && q["explain"][lang].is_str(),
                "{lesson}: {q}"
            );
        }
        let right = q["choices"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| {
                let num = |v: &common::Val| v.as_f64();
                let mut ok = true;
                if let Some(v) = c.get("value") {
                    ok &= match v {
                        toml::Value::Boolean(b) => seen == *b,
                        toml::Value::Integer(i) => num(&seen) == Some(*i as f64),
                        toml::Value::String(t) => seen == t.as_str(),
                        other => panic!("{lesson}: a choice's value {other}"),
                    };
                }
                if let Some(other) = c.get("same_as") {
                    ok &= seen == observed(other.as_str().unwrap());
                }
                if let Some(other) = c.get("greater_than") {
                    ok &= num(&seen) > num(&observed(other.as_str().unwrap()));
                }
                if let Some(other) = c.get("less_than") {
                    ok &= num(&seen) < num(&observed(other.as_str().unwrap()));
                }
                ok
            })
            .count();
        assert_eq!(
            right, 1,
            "{lesson}: {about} = {seen}: one choice must be right"
        );
    }
}

#[test]
fn trace_is_chrome_trace_json_with_the_runs_real_pids() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.json");
    let r = common::run(&[
        "--speed",
        "0",
        "--json",
        "--trace",
        path.to_str().unwrap(),
        "fork",
    ]);
    r.assert_code(0);
    let events = trace_events(&std::fs::read_to_string(&path).unwrap(), true);
    let named: BTreeSet<i64> = events
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "process_name")
        .map(|e| e["pid"].as_i64().unwrap())
        .collect();
    let spawned: BTreeSet<i64> = r.spawns().iter().map(|e| e.pid).collect();
    assert!(
        spawned.is_subset(&named),
        "spawned {spawned:?}, tracks {named:?}"
    );
    assert!(named.contains(&r.main_pid()));
    // A zombie span for the child.
    let child = r.obs("child_pid").as_i64().unwrap();
    assert!(events
        .iter()
        .any(|e| e["ph"] == "X" && e["pid"] == child && e["args"]["state"] == "Z"));
    // A flow arrow from parent to child for every spawn.
    for sp in r.spawns() {
        let id = format!("fork-spawn-{}", sp.pid);
        let end = |ph: &str, pid: i64| {
            events
                .iter()
                .any(|e| e["ph"] == ph && e["id"] == id.as_str() && e["pid"] == pid)
        };
        assert!(end("s", sp.ppid) && end("f", sp.pid), "no flow for {sp}");
    }
}

/// A trace file: Chrome's JSON Array Format, one event a line; `closed`: it must end
/// with its `]` (a killed run's may not).
fn trace_events(text: &str, closed: bool) -> Vec<serde_json::Value> {
    assert!(text.starts_with("[\n"), "{text:?}");
    let body = match text.strip_suffix("\n]\n") {
        Some(body) => body,
        None => {
            assert!(!closed, "no closing bracket: {:?}", &text[text.len().saturating_sub(200)..]);
            text
        }
    };
    serde_json::from_str(&format!("{body}\n]")).unwrap_or_else(|e| panic!("{e}: {text:?}"))
}

/// Each message's `send` → `recv` is an arrow (pipe), and a gauge is one counter of the
/// lesson's main process, whichever child moved it (queue).
#[test]
fn trace_draws_messages_as_arrows_and_a_gauge_on_one_track() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.json");
    let p = path.to_str().unwrap();
    let r = common::run(&["--speed", "0", "--json", "--trace", p, "pipe"]);
    r.assert_code(0);
    let events = trace_events(&std::fs::read_to_string(&path).unwrap(), true);
    let ids = |ph: &str| -> BTreeSet<String> {
        events
            .iter()
            .filter(|e| e["ph"] == ph && e["name"] == "message")
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect()
    };
    let recvs = r.acts("recv").iter().filter(|a| a.has("id")).count();
    assert!(recvs > 0, "{}", r.show());
    assert_eq!(ids("f").len(), recvs, "one arrow per message received");
    assert!(ids("f").is_subset(&ids("s")), "every arrow starts at a send");
    let r = common::run(&["--speed", "0", "--json", "--trace", p, "queue"]);
    r.assert_code(0);
    let events = trace_events(&std::fs::read_to_string(&path).unwrap(), true);
    let gauges: BTreeSet<i64> = events
        .iter()
        .filter(|e| e["ph"] == "C")
        .map(|e| e["pid"].as_i64().unwrap())
        .collect();
    assert_eq!(gauges, BTreeSet::from([r.main_pid()]), "{}", r.show());
}

/// A SIGKILL of the main process mid-lesson leaves a trace of everything rendered so far
/// that loads once its missing `]` is added, as Perfetto does.
#[test]
fn a_killed_run_leaves_a_loadable_trace() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("killed.json");
    let mut live = common::Live::start(&common::paced(&[
        "--json",
        "--trace",
        path.to_str().unwrap(),
        "lock",
    ]));
    // Well into the lesson: its buyers started.
    live.wait_for(std::time::Duration::from_secs(20), |e| {
        e.is::<common::Spawn>() && e.get::<common::Spawn>().is_some_and(|s| s.name.starts_with("buyer"))
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(live.pid()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    live.wait_exit(std::time::Duration::from_secs(5));
    live.assert_clean(std::time::Duration::from_secs(2));
    let events = trace_events(&std::fs::read_to_string(&path).unwrap(), false);
    assert!(
        events.iter().any(|e| e["name"] == "lesson lock"),
        "{events:?}"
    );
    assert!(events.iter().any(|e| e["name"] == "spawn"), "{events:?}");
}

#[test]
fn a_trace_is_written_even_when_the_narration_is_cut_short_by_head() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.json");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mp-demo"))
        .args(["--speed", "0", "--trace", path.to_str().unwrap(), "lock"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // `| head -1`: one line read, then the pipe closed.
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(!first.is_empty() && status.code().is_some(), "{status:?}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!trace_events(&text, true).is_empty(), "{text}");
}

/// `--trace -` writes the trace to stdout, and only it (no file named `-`); beside
/// `--json`, which wants stdout too, it is a usage error.
#[test]
fn trace_dash_writes_the_trace_to_stdout_and_refuses_json_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_mp-demo"))
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let out = run(&["--speed", "0", "--trace", "-", "fork"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!trace_events(&text, true).is_empty(), "{text}");
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!dir.path().join("-").exists());
    let out = run(&["--speed", "0", "--json", "--trace", "-", "fork"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}

#[test]
fn an_unwritable_trace_path_is_refused_before_the_lesson_starts() {
    let r = common::run(&["--trace", "/nonexistent-dir/x/trace.json", "fork"]);
    r.assert_code(2);
    assert!(r.stdout.is_empty(), "nothing ran: {}", r.show());
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.show());
}

#[test]
fn every_lesson_ends_with_a_timeline_that_fits_80_columns() {
    for (lang, title) in [("en", "Timeline"), ("zh", "时间线")] {
        let r = common::run_env(
            &["--speed", "0", "--lang", lang, "fork"],
            &[("NO_COLOR", "1")],
        );
        r.assert_code(0);
        let lines: Vec<&str> = r.stdout.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.contains(title))
            .unwrap_or_else(|| panic!("no {title}\n{}", r.show()));
        let child = r
            .stdout
            .lines()
            .find(|l| l.starts_with("child "))
            .expect("a child lane");
        assert!(
            child.contains('z'),
            "the zombie shows in the timeline: {child}"
        );
        for l in &lines[at..at + 6] {
            assert!(
                unicode_width::UnicodeWidthStr::width(*l) <= 80,
                "too wide: {l}"
            );
        }
    }
}

/// Off a terminal (stdin not one) the tour does not wait between lessons; it shows each
/// lesson's card with its summary and ends with the tally of what ran.
#[test]
fn a_tour_off_a_terminal_runs_through_and_sums_up() {
    let r = common::run_env(
        &["--speed", "0", "tour", "fork", "isolation"],
        &[("NO_COLOR", "1")],
    );
    r.assert_code(0);
    for card in ["lesson 1 of 2: fork", "lesson 2 of 2: isolation"] {
        assert!(r.stdout.contains(card), "{card}\n{}", r.show());
    }
    assert!(r.stdout.contains("  A real fork()"), "{}", r.show());
    let last = r.stdout.lines().last().unwrap_or_default();
    let words: Vec<&str> = last.split(' ').collect();
    assert!(
        last.starts_with("Tour over: 2 of 2 lessons run, ") && words[7] == words[9],
        "{last}\n{}",
        r.show()
    );
    let zh = common::run_env(
        &["--speed", "0", "--lang", "zh", "tour", "fork"],
        &[("NO_COLOR", "1")],
    );
    zh.assert_code(0);
    assert!(zh.stdout.contains("巡览结束：1 课中运行了 1 课"), "{}", zh.show());
}

/// `tour --from L` runs from L to the end, in the tour's order; `tour A B` runs A then
/// B, as given; a name that is no lesson is one line with a suggestion, exit 2.
#[test]
fn a_tour_runs_the_part_it_is_given() {
    let order: Vec<String> = common::lessons().into_iter().map(|(n, _)| n).collect();
    // From pool: the last three lessons, not the second half of the tour (seconds).
    let from = order.iter().position(|n| n == "pool").unwrap();
    assert!(order.len() - from >= 2, "{order:?}");
    let r = common::run(&["--speed", "0", "--json", "tour", "--from", "pool"]);
    r.assert_code(0);
    let ran: Vec<String> = r.starts().iter().map(|e| e.lesson.to_string()).collect();
    assert_eq!(ran, order[from..], "{}", r.show());
    let r = common::run(&["--speed", "0", "--json", "tour", "isolation", "fork"]);
    r.assert_code(0);
    let ran: Vec<String> = r.starts().iter().map(|e| e.lesson.to_string()).collect();
    assert_eq!(ran, ["isolation", "fork"], "{}", r.show());
    for bad in [&["tour", "lok"][..], &["tour", "--from", "forc"]] {
        let r = common::run(bad);
        r.assert_code(2);
        assert!(r.stdout.is_empty(), "nothing ran: {}", r.show());
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.show());
        assert!(r.stderr.contains("did you mean"), "{}", r.show());
    }
}
