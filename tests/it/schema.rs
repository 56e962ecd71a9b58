//! The stream as a versioned contract (issue 16, item 3): its `schema` version, its
//! claims as data, the tour's frame, and its JSON Schema.

use crate::common;

/// The schema version `docs/events.md` states ("The current version is **N**").
fn documented_version() -> u32 {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/events.md"))
        .expect("docs/events.md");
    let (_, rest) = doc
        .split_once("The current version is **")
        .expect("docs/events.md states the current schema version");
    rest.split("**").next().unwrap().parse().expect("a number")
}

#[test]
fn every_lesson_start_carries_the_documented_schema_version() {
    let version = documented_version();
    for (lesson, _) in common::lessons() {
        let run = common::lesson_json_shared(&lesson);
        let start = run.one::<common::LessonStart>();
        assert_eq!(start.schema, version, "{lesson}: {start}");
    }
}

/// `holds` recomputed from an observation's `value` and its `claim` alone, as
/// `docs/events.md` defines the ops: numbers compare by value (an integer equals the same
/// float), booleans and strings by equality; a value of another type than the target is
/// never `==` and always `!=`; `between` includes both ends; `starts_with` is for strings;
/// and every condition in `and` must have held too. `None`: an op the docs do not define.
fn recompute(value: &serde_json::Value, claim: &common::Claim) -> Option<bool> {
    use serde_json::Value;
    let num = Value::as_f64;
    let same = |a: &Value, b: &Value| match (num(a), num(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    };
    let t = &claim.value;
    let compares = match claim.op.as_str() {
        "==" => same(value, t),
        "!=" => !same(value, t),
        "between" => {
            let pair = t.as_array().filter(|p| p.len() == 2)?;
            match (num(value), num(&pair[0]), num(&pair[1])) {
                (Some(x), Some(lo), Some(hi)) => lo <= x && x <= hi,
                _ => false,
            }
        }
        "starts_with" => match (value.as_str(), t.as_str()) {
            (Some(s), Some(p)) => s.starts_with(p),
            _ => false,
        },
        op @ ("<" | "<=" | ">" | ">=") => match (num(value), num(t)) {
            (Some(x), Some(y)) => match op {
                "<" => x < y,
                "<=" => x <= y,
                ">" => x > y,
                _ => x >= y,
            },
            _ => false,
        },
        _ => return None,
    };
    Some(compares && claim.and.iter().flatten().all(|(_, held)| *held))
}

fn json_of(v: &common::Val) -> serde_json::Value {
    match v {
        common::Val::Bool(b) => (*b).into(),
        common::Val::Int(i) => (*i).into(),
        common::Val::Float(x) => (*x).into(),
        common::Val::Str(s) => s.as_str().into(),
    }
}

#[test]
fn every_claim_of_every_lesson_is_data_that_recomputes_its_holds() {
    let mut problems = Vec::new();
    let mut claims = 0;
    let runs: Vec<&common::Run> = common::lessons()
        .iter()
        .map(|(lesson, _)| common::lesson_json_shared(lesson))
        .collect();
    let mut ops = std::collections::BTreeSet::new();
    for run in runs {
        for o in run.observations() {
            if let Some(c) = &o.claim {
                ops.insert(c.op.clone());
            }
            match (&o.claim, o.holds, &o.expected) {
                (None, None, None) => {}
                (Some(claim), Some(holds), Some(_)) => {
                    claims += 1;
                    match recompute(&json_of(&o.value), claim) {
                        Some(h) if h == holds => {}
                        Some(h) => problems.push(format!("holds is {holds}, recomputed {h}: {o}")),
                        None => problems.push(format!("an op docs/events.md does not define: {o}")),
                    }
                }
                _ => problems.push(format!(
                    "`claim`, `holds` and `expected` come together or not at all: {o}"
                )),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(claims > 50, "only {claims} claims in every lesson's run");
    // (`between` is claimed only with fewer tasks than workers, in pool: it is checked
    // on lines made by hand, below, rather than by one more CPU-bound run beside the
    // shared ones, whose timing claims, cost's and pool's, it would disturb.)
    for op in ["==", "!=", "<", ">", ">=", "starts_with"] {
        assert!(ops.contains(op), "no claim with op {op} among {ops:?}");
    }
}

/// The recomputation itself, on lines made by hand: a claim that fails, the ops and the
/// conditions.
#[test]
fn a_claim_recomputes_as_documented() {
    let claim = |json: &str| serde_json::from_str::<common::Claim>(json).unwrap();
    let v = |json: &str| serde_json::from_str::<serde_json::Value>(json).unwrap();
    for (value, c, want) in [
        ("8", r#"{"op":">","value":1}"#, true),
        ("1", r#"{"op":">","value":1}"#, false),
        ("1.0", r#"{"op":"==","value":1}"#, true),
        ("\"S\"", r#"{"op":"==","value":"S"}"#, true),
        ("\"1\"", r#"{"op":"==","value":1}"#, false),
        ("\"1\"", r#"{"op":"!=","value":1}"#, true),
        ("3", r#"{"op":"between","value":[2,4]}"#, true),
        ("5", r#"{"op":"between","value":[2,4]}"#, false),
        ("\"ValueError: x\"", r#"{"op":"starts_with","value":"ValueError"}"#, true),
        ("-15", r#"{"op":"==","value":-15,"and":{"daemon_gone":false}}"#, false),
        ("-15", r#"{"op":"==","value":-15,"and":{"daemon_gone":true}}"#, true),
    ] {
        assert_eq!(recompute(&v(value), &claim(c)), Some(want), "{value} {c}");
    }
}

/// `tour --json` is framed: `tour_start` (its lessons, in order) first, `tour_end` (`ok`
/// and each lesson's result, as its `lesson_end` said) last, both on the tour's clock
/// (`lesson` is `tour`), and the lessons' own streams between them.
#[test]
fn a_tour_in_json_is_framed_by_tour_start_and_tour_end() {
    let chosen = ["fork", "isolation", "lock"];
    let mut args = vec!["--speed", "0", "--json", "tour"];
    args.extend(chosen);
    let r = common::run(&args);
    r.assert_code(0);
    common::check_contract(&r);
    let events = r.events();
    let (first, last) = (&events[0], &events[events.len() - 1]);
    let start = first.get::<common::TourStart>().unwrap_or_else(|| {
        panic!("the first line is tour_start\n{}", r.show());
    });
    let end = last.get::<common::TourEnd>().unwrap_or_else(|| {
        panic!("the last line is tour_end\n{}", r.show());
    });
    assert_eq!(start.lessons, chosen, "{start}");
    for frame in [first, last] {
        assert_eq!(frame.lesson, "tour", "{frame}");
        assert_eq!(frame.pid, r.main_pid(), "{frame}");
    }
    assert_eq!(start.t_ms, 0.0, "{start}");
    assert_eq!(r.all::<common::TourStart>().len(), 1, "{}", r.show());
    assert_eq!(r.all::<common::TourEnd>().len(), 1, "{}", r.show());
    // Each lesson's result is what its own lesson_end said, in the tour's order.
    let ends: Vec<(String, bool)> = r
        .ends()
        .iter()
        .map(|e| (e.lesson.to_string(), e.ok))
        .collect();
    let results: Vec<(String, bool)> = end
        .results
        .iter()
        .map(|x| (x.lesson.clone(), x.ok))
        .collect();
    assert_eq!(results, ends, "{end}");
    assert_eq!(end.ok, ends.iter().all(|(_, ok)| *ok), "{end}");
    assert!(end.ok, "{end}");
    // The tour's clock runs over the lessons' (each of which starts at 0 on its own).
    let lessons_ms: f64 = r.ends().iter().map(|e| e.elapsed_ms).sum();
    assert!(end.t_ms >= lessons_ms, "{end}: the lessons took {lessons_ms} ms");
}

/// A tour stopped half-way ends with `tour_end`, `ok` false, after the stopped lesson's
/// `lesson_end`; only the lessons that ran are in its results.
#[test]
fn a_tour_stopped_by_a_signal_still_ends_with_tour_end() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    use std::time::Duration;
    let mut live = common::Live::start(&["--speed", "0.2", "--json", "tour", "fork", "lock"]);
    live.wait_for(Duration::from_secs(10), |e| {
        e.is::<common::LessonStart>() && e.lesson == "fork"
    });
    std::thread::sleep(Duration::from_millis(200));
    kill(Pid::from_raw(live.pid()), Signal::SIGINT).unwrap();
    let mut rest = Vec::new();
    while let Some(e) = live.next(Duration::from_secs(10)) {
        rest.push(e);
    }
    live.wait_exit(Duration::from_secs(10));
    live.assert_clean(Duration::from_secs(2));
    let last = rest.last().expect("events after the signal");
    let end = last
        .get::<common::TourEnd>()
        .unwrap_or_else(|| panic!("the last line is tour_end: {last}"));
    assert!(!end.ok, "{end}");
    assert_eq!(end.results.len(), 1, "{end}");
    assert_eq!(
        (end.results[0].lesson.as_str(), end.results[0].ok),
        ("fork", false),
        "{end}"
    );
}

/// `docs/events.schema.json`, as committed.
fn committed_schema() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/events.schema.json");
    let text = std::fs::read_to_string(path).expect("docs/events.schema.json");
    serde_json::from_str(&text).expect("docs/events.schema.json is JSON")
}

/// The committed schema's validator (JSON Schema draft 2020-12).
fn validator() -> jsonschema::Validator {
    jsonschema::draft202012::new(&committed_schema()).expect("the schema is a valid JSON Schema")
}

/// Every line of `r` that the schema refuses, with why.
fn refused(v: &jsonschema::Validator, r: &common::Run) -> Vec<String> {
    r.stdout
        .lines()
        .filter_map(|line| {
            let event: serde_json::Value = serde_json::from_str(line).ok()?;
            let why: Vec<String> = v.iter_errors(&event).map(|e| e.to_string()).collect();
            (!why.is_empty()).then(|| format!("{line}\n  {}", why.join("\n  ")))
        })
        .collect()
}

#[test]
fn the_committed_schema_is_the_one_the_event_types_make() {
    let r = common::run(&["schema"]);
    r.assert_code(0);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/events.schema.json");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        r.stdout == committed,
        "docs/events.schema.json is not what the event types make: regenerate it with\n  \
         cargo run --release -- schema > docs/events.schema.json\nand commit it"
    );
}

#[test]
fn every_lesson_stream_and_a_tour_validate_against_the_schema() {
    let v = validator();
    let mut problems = Vec::new();
    for (lesson, _) in common::lessons() {
        problems.extend(refused(&v, common::lesson_json_shared(&lesson)));
    }
    let tour = common::run(&["--speed", "0", "--json", "tour", "isolation", "fork"]);
    tour.assert_code(0);
    problems.extend(refused(&v, &tour));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The schema is not a blank cheque: lines a strict reader would refuse, it refuses.
#[test]
fn the_schema_refuses_what_the_contract_does_not_allow() {
    let v = validator();
    let ok = r#"{"t_ms":1.5,"lesson":"fork","kind":"spawn","pid":12,"ppid":11,"name":"child","how":"fork"}"#;
    let claim = r#"{"t_ms":2,"lesson":"lock","kind":"observation","pid":1,"name":"sold_without_lock","value":8,"expected":"> tickets (1)","claim":{"op":">","value":1},"holds":true}"#;
    let act = r#"{"t_ms":3,"lesson":"lock","kind":"acquire","pid":5,"name":"buyer-1","what":"flock"}"#;
    let between = r#"{"t_ms":96.451,"lesson":"pool","kind":"observation","pid":27781,"name":"distinct_worker_pids","value":4,"expected":"between 2 and 4 (the busy workers and pool_size)","claim":{"op":"between","value":[2,4]},"holds":true}"#;
    let and = r#"{"t_ms":216.535,"lesson":"daemon","kind":"observation","pid":17391,"name":"unix_daemon_exitcode","value":-15,"expected":"== -15 (SIGTERM), and daemon_gone","claim":{"op":"==","value":-15,"and":{"daemon_gone":true}},"holds":true}"#;
    for good in [ok, claim, act, between, and] {
        let line: serde_json::Value = serde_json::from_str(good).unwrap();
        assert!(v.is_valid(&line), "{good}");
    }
    for bad in [
        // a misspelled field of a core kind
        r#"{"t_ms":1.5,"lesson":"fork","kind":"spawn","pid":12,"ppid":11,"name":"child","hwo":"fork"}"#,
        // a start method that is none
        r#"{"t_ms":1.5,"lesson":"fork","kind":"spawn","pid":12,"ppid":11,"name":"child","how":"clone"}"#,
        // null for a field without a value
        r#"{"t_ms":0,"lesson":"fork","kind":"state","pid":12,"name":"child","from":"","to":"S","waiting_in":null}"#,
        // lesson_start without its version
        r#"{"t_ms":0,"lesson":"fork","kind":"lesson_start","pid":11,"title":"Fork"}"#,
        // an op that is none
        r#"{"t_ms":2,"lesson":"lock","kind":"observation","pid":1,"name":"x","value":8,"expected":"~ 1","claim":{"op":"~","value":1},"holds":true}"#,
        // a lesson's kind without `name`, or with a field that is not a scalar
        r#"{"t_ms":3,"lesson":"lock","kind":"acquire","pid":5,"what":"flock"}"#,
        r#"{"t_ms":3,"lesson":"lock","kind":"acquire","pid":5,"name":"buyer-1","what":["flock"]}"#,
        // no stamp
        r#"{"lesson":"fork","kind":"exit","pid":12,"name":"child","exitcode":0,"reaped_by":11}"#,
    ] {
        let line: serde_json::Value = serde_json::from_str(bad).unwrap();
        assert!(!v.is_valid(&line), "accepted: {bad}");
    }
}
