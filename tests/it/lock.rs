//! Lesson `lock`: the staged ticket race, checked from the events themselves.

use crate::common;

use common::{Act, Ev, How, Run};
use std::collections::HashSet;

/// PIDs of the spawned buyers (real children of the main process, started by spawn).
fn buyer_pids(r: &Run) -> HashSet<i64> {
    let main = r.main_pid();
    r.spawns()
        .into_iter()
        .filter(|s| s.name.starts_with("buyer-"))
        .map(|s| {
            assert_eq!(s.ppid, main, "a buyer is a child of main: {s}");
            assert_eq!(s.how, How::Spawn, "buyers are spawned: {s}");
            s.pid
        })
        .collect()
}

fn in_phase<'a>(r: &'a Run, kind: &str, phase: &str) -> Vec<Ev<'a, Act>> {
    r.acts(kind)
        .into_iter()
        .filter(|e| e.str("phase") == phase)
        .collect()
}

/// Every claim of a run with `tickets` and `buyers`, recomputed from its events.
fn check(r: &Run, tickets: i64, buyers: i64) {
    r.assert_code(0);
    let show = r.show();
    assert_eq!(r.obs("buyers"), buyers, "{show}");
    assert_eq!(r.obs("tickets"), tickets, "{show}");
    assert_eq!(r.obs("sold_without_lock"), buyers, "{show}");
    assert_eq!(r.obs("sold_with_lock"), tickets, "{show}");
    assert_eq!(r.obs("waiters_seen_asleep"), buyers - 1, "{show}");
    for say in r.says() {
        assert!(!say.text.starts_with('<'), "missing words: {say}");
    }

    // Two rounds of buyers, every one a real spawned child, every one ended well.
    let pids = buyer_pids(r);
    assert_eq!(pids.len() as i64, 2 * buyers, "{show}");
    for kind in ["read", "buy", "acquire", "release", "wait"] {
        for e in r.acts(kind) {
            assert!(pids.contains(&e.pid), "{kind} from a non-buyer: {e}");
        }
    }
    for e in r.exits() {
        if pids.contains(&e.pid) {
            assert_eq!(e.exitcode, 0, "{e}");
        }
    }
    let exited = r.exits().len() as i64;
    assert_eq!(exited, 2 * buyers, "every buyer was joined\n{show}");

    // Without the lock: every buyer read the full count before any buyer wrote.
    let reads = in_phase(r, "read", "no_lock");
    let buys = in_phase(r, "buy", "no_lock");
    assert_eq!(reads.len() as i64, buyers, "{show}");
    assert!(reads.iter().all(|e| e.int("value") == tickets), "{show}");
    let last_read = reads.iter().map(|e| e.t_ms).fold(f64::MIN, f64::max);
    let first_buy = buys.iter().map(|e| e.t_ms).fold(f64::MAX, f64::min);
    assert!(
        last_read < first_buy,
        "a buyer wrote before all had read\n{show}"
    );
    assert_eq!(buys.len() as i64, buyers, "sold without the lock\n{show}");
    assert!(buys.len() as i64 > tickets, "oversold\n{show}");

    // With the lock: one holder at a time, each buyer once, exactly `tickets` sold.
    assert_eq!(common::max_concurrent(r, "acquire", "release"), 1, "{show}");
    let acquires = r.acts("acquire");
    let releases = r.acts("release");
    assert_eq!(acquires.len() as i64, buyers, "{show}");
    assert_eq!(releases.len() as i64, buyers, "{show}");
    assert!(acquires
        .iter()
        .chain(&releases)
        .all(|e| e.str("what") == "flock"));
    let holders: HashSet<i64> = acquires.iter().map(|e| e.pid).collect();
    assert_eq!(
        holders.len() as i64,
        buyers,
        "each buyer held the lock once\n{show}"
    );
    let sold = in_phase(r, "buy", "lock");
    assert_eq!(sold.len() as i64, tickets, "sold with the lock\n{show}");
    for b in &sold {
        let a = acquires.iter().find(|e| e.pid == b.pid).unwrap();
        let rel = releases.iter().find(|e| e.pid == b.pid).unwrap();
        assert!(
            a.t_ms <= b.t_ms && b.t_ms <= rel.t_ms,
            "a sale outside the lock: {b}\n{show}"
        );
    }

    // While the first holder held the lock, every other buyer was seen waiting, asleep.
    let first = acquires
        .iter()
        .min_by(|a, b| a.t_ms.partial_cmp(&b.t_ms).unwrap())
        .unwrap();
    let holder = first.pid;
    let first_release = releases.iter().find(|e| e.pid == holder).unwrap();
    let waits = r.acts("wait");
    assert_eq!(waits.len() as i64, buyers - 1, "{show}");
    let waiters: HashSet<i64> = waits.iter().map(|e| e.pid).collect();
    assert_eq!(waiters.len() as i64, buyers - 1, "{show}");
    assert!(!waiters.contains(&holder), "{show}");
    for w in &waits {
        assert_eq!(w.int("holder"), holder, "{w}");
        assert_eq!(w.str("state"), "S", "{w}");
        assert!(
            first.t_ms < w.t_ms && w.t_ms < first_release.t_ms,
            "wait outside the hold: {w}"
        );
    }
}

#[test]
fn oversold_without_a_lock_exact_with_flock_every_run() {
    for _ in 0..3 {
        let r = common::lesson_json("lock", &[]);
        check(&r, 1, 8);
    }
}

#[test]
fn other_sizes_hold_too() {
    let r = common::lesson_json("lock", &["--tickets", "3", "--buyers", "5"]);
    check(&r, 3, 5);
    let r = common::lesson_json("lock", &["--tickets", "1", "--buyers", "2"]);
    check(&r, 1, 2);
}

#[test]
fn tickets_must_be_fewer_than_buyers() {
    let r = common::run(&[
        "--speed",
        "0",
        "--json",
        "lock",
        "--tickets",
        "8",
        "--buyers",
        "8",
    ]);
    r.assert_code(2);
    assert!(r.stderr.contains("--tickets"), "{}", r.show());
    assert_eq!(r.stderr.lines().count(), 1, "one line\n{}", r.show());
    // Found before anything starts: no stream at all, not a lesson_start left alone.
    assert!(r.stdout.is_empty(), "no stream\n{}", r.show());
}

#[test]
fn out_of_range_options_are_usage_errors() {
    for args in [
        ["--buyers", "1"],
        ["--buyers", "65"],
        ["--tickets", "0"],
        ["--tickets", "64"],
    ] {
        let mut all = vec!["--speed", "0", "--json", "lock"];
        all.extend_from_slice(&args);
        common::run(&all).assert_code(2);
    }
}
