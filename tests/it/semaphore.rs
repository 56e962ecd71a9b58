//! Lesson `semaphore`: at most `permits` inside at once, recomputed from the stamps of
//! every P and V; the rest waited, asleep.

use crate::common;

use common::Run;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// `common` checks that no `sem.mp-demo*` is left in /dev/shm after each run; runs of
/// this file are serialised so that one run's semaphore (linked for about a millisecond)
/// is not mistaken for another's leftover.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn lesson(extra: &[&str]) -> Run {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    common::lesson_json("semaphore", extra)
}

fn t(e: &Value) -> f64 {
    e["t_ms"].as_f64().unwrap()
}

fn pid(e: &Value) -> i64 {
    e["pid"].as_i64().unwrap()
}

/// Every claim of a run with `workers` and `permits`, recomputed from its events.
fn check(r: &Run, workers: i64, permits: i64) {
    r.assert_code(0);
    let show = r.show();
    let inside_at_most = permits.min(workers);
    let must_wait = (workers - permits).max(0);
    assert_eq!(r.obs("workers"), workers, "{show}");
    assert_eq!(r.obs("permits"), permits, "{show}");
    assert_eq!(r.obs("max_concurrent"), inside_at_most, "{show}");
    assert_eq!(r.obs("waited"), must_wait, "{show}");
    assert_eq!(r.obs("waiters_seen_asleep"), must_wait, "{show}");
    for say in r.of_kind("say") {
        assert!(
            !say["text"].as_str().unwrap().starts_with('<'),
            "missing words: {say}"
        );
    }
    assert!(
        r.of_kind("say").iter().any(|s| s["key"] == "unlinked"),
        "the name was gone from /dev/shm once unlinked\n{show}"
    );

    // Every worker is a real spawned child of the main process, and ended well.
    let main = r.main_pid();
    let workers_pids: HashSet<i64> = r
        .of_kind("spawn")
        .into_iter()
        .map(|s| {
            assert_eq!(s["ppid"], main, "{s}");
            assert_eq!(s["how"], "spawn", "{s}");
            pid(s)
        })
        .collect();
    assert_eq!(workers_pids.len() as i64, workers, "{show}");
    for e in r.of_kind("exit") {
        assert!(workers_pids.contains(&pid(e)), "{e}");
        assert_eq!(e["exitcode"], 0, "{e}");
    }
    assert_eq!(r.of_kind("exit").len() as i64, workers, "{show}");

    // The largest number inside at once, recomputed from the stamps.
    assert_eq!(
        common::max_concurrent(r, "acquire", "release") as i64,
        inside_at_most,
        "{show}"
    );

    // Each worker: one P, then one V, both stamped in that worker.
    let acquires = r.of_kind("acquire");
    let releases = r.of_kind("release");
    assert_eq!(acquires.len() as i64, workers, "{show}");
    assert_eq!(releases.len() as i64, workers, "{show}");
    let acq: HashMap<i64, &Value> = acquires.iter().map(|e| (pid(e), *e)).collect();
    let rel: HashMap<i64, &Value> = releases.iter().map(|e| (pid(e), *e)).collect();
    assert_eq!(acq.len() as i64, workers, "one acquire each\n{show}");
    for (p, a) in &acq {
        assert!(workers_pids.contains(p), "{a}");
        assert_eq!(a["what"], "semaphore", "{a}");
        assert!(a["value"].as_i64().unwrap() >= 0, "{a}");
        assert!(t(a) < t(rel[p]), "release before acquire: {a}");
    }

    // Those that found the counter at 0 said so before sleeping, and got in later.
    let waits = r.of_kind("wait");
    assert_eq!(waits.len() as i64, must_wait, "{show}");
    let waited: HashSet<i64> = waits.iter().map(|e| pid(e)).collect();
    assert_eq!(waited.len() as i64, must_wait, "{show}");
    for w in &waits {
        assert_eq!(w["errno"], "EAGAIN", "{w}");
        assert_eq!(w["value"], 0, "{w}");
        let a = acq[&pid(w)];
        assert_eq!(a["waited"], true, "{a}");
        assert!(t(w) < t(a), "{w}");
    }
    let flagged = acquires.iter().filter(|a| a["waited"] == true).count() as i64;
    assert_eq!(flagged, must_wait, "{show}");
    // A waiter only got in after somebody left.
    let first_release = releases.iter().map(|e| t(e)).fold(f64::MAX, f64::min);
    for p in &waited {
        assert!(t(acq[p]) > first_release, "{}", acq[p]);
    }
}

#[test]
fn at_most_permits_inside_every_run() {
    for _ in 0..3 {
        let r = lesson(&[]);
        check(&r, 6, 2);
    }
}

#[test]
fn other_sizes_hold_too() {
    check(&lesson(&["--workers", "9", "--permits", "4"]), 9, 4);
    check(&lesson(&["--workers", "2", "--permits", "1"]), 2, 1);
    // More rooms than people: nobody waits.
    check(&lesson(&["--workers", "3", "--permits", "5"]), 3, 5);
}

#[test]
fn out_of_range_options_are_usage_errors() {
    for args in [
        ["--permits", "0"],
        ["--permits", "17"],
        ["--workers", "1"],
        ["--workers", "33"],
    ] {
        let mut all = vec!["--speed", "0", "--json", "semaphore"];
        all.extend_from_slice(&args);
        common::run(&all).assert_code(2);
    }
}
