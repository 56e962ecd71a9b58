//! Lesson `semaphore`: at most `permits` inside at once, recomputed from the stamps of
//! every P and V; the rest waited, asleep.

use crate::common;

use common::{Act, Ev, How, Run};
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
    for say in r.says() {
        assert!(!say.text.starts_with('<'), "missing words: {say}");
    }
    assert!(
        r.said("unlinked"),
        "the name was gone from /dev/shm once unlinked\n{show}"
    );

    // Every worker is a real spawned child of the main process, and ended well.
    let main = r.main_pid();
    let workers_pids: HashSet<i64> = r
        .spawns()
        .into_iter()
        .map(|s| {
            assert_eq!(s.ppid, main, "{s}");
            assert_eq!(s.how, How::Spawn, "{s}");
            s.pid
        })
        .collect();
    assert_eq!(workers_pids.len() as i64, workers, "{show}");
    for e in r.exits() {
        assert!(workers_pids.contains(&e.pid), "{e}");
        assert_eq!(e.exitcode, 0, "{e}");
    }
    assert_eq!(r.exits().len() as i64, workers, "{show}");

    // The largest number inside at once, recomputed from the stamps.
    assert_eq!(
        common::max_concurrent(r, "acquire", "release") as i64,
        inside_at_most,
        "{show}"
    );

    // Each worker: one P, then one V, both stamped in that worker.
    let acquires = r.acts("acquire");
    let releases = r.acts("release");
    assert_eq!(acquires.len() as i64, workers, "{show}");
    assert_eq!(releases.len() as i64, workers, "{show}");
    let acq: HashMap<i64, Ev<Act>> = acquires.iter().map(|e| (e.pid, *e)).collect();
    let rel: HashMap<i64, Ev<Act>> = releases.iter().map(|e| (e.pid, *e)).collect();
    assert_eq!(acq.len() as i64, workers, "one acquire each\n{show}");
    for (p, a) in &acq {
        assert!(workers_pids.contains(p), "{a}");
        assert_eq!(a.str("what"), "semaphore", "{a}");
        assert!(a.int("value") >= 0, "{a}");
        assert!(a.t_ms < rel[p].t_ms, "release before acquire: {a}");
    }

    // Those that found the counter at 0 said so before sleeping, and got in later.
    let waits = r.acts("wait");
    assert_eq!(waits.len() as i64, must_wait, "{show}");
    let waited: HashSet<i64> = waits.iter().map(|e| e.pid).collect();
    assert_eq!(waited.len() as i64, must_wait, "{show}");
    for w in &waits {
        assert_eq!(w.str("errno"), "EAGAIN", "{w}");
        assert_eq!(w.int("value"), 0, "{w}");
        let a = acq[&w.pid];
        assert!(a.bool("waited"), "{a}");
        assert!(w.t_ms < a.t_ms, "{w}");
    }
    let flagged = acquires.iter().filter(|a| a.bool("waited")).count() as i64;
    assert_eq!(flagged, must_wait, "{show}");
    // A waiter only got in after somebody left.
    let first_release = releases.iter().map(|e| e.t_ms).fold(f64::MAX, f64::min);
    for p in &waited {
        assert!(acq[p].t_ms > first_release, "{}", acq[p]);
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
