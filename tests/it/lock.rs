//! Lesson `lock`: the staged ticket race, checked from the events themselves.

use crate::common;

use common::Run;
use serde_json::Value;
use std::collections::HashSet;

/// PIDs of the spawned buyers (real children of the main process, started by spawn).
fn buyer_pids(r: &Run) -> HashSet<i64> {
    let main = r.main_pid();
    r.of_kind("spawn")
        .into_iter()
        .filter(|s| s["name"].as_str().unwrap_or("").starts_with("buyer-"))
        .map(|s| {
            assert_eq!(s["ppid"], main, "a buyer is a child of main: {s}");
            assert_eq!(s["how"], "spawn", "buyers are spawned: {s}");
            s["pid"].as_i64().unwrap()
        })
        .collect()
}

fn t(e: &Value) -> f64 {
    e["t_ms"].as_f64().unwrap()
}

fn in_phase<'a>(r: &'a Run, kind: &str, phase: &str) -> Vec<&'a Value> {
    r.of_kind(kind)
        .into_iter()
        .filter(|e| e["phase"] == phase)
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
    for say in r.of_kind("say") {
        assert!(
            !say["text"].as_str().unwrap().starts_with('<'),
            "missing words: {say}"
        );
    }

    // Two rounds of buyers, every one a real spawned child, every one ended well.
    let pids = buyer_pids(r);
    assert_eq!(pids.len() as i64, 2 * buyers, "{show}");
    for kind in ["read", "buy", "acquire", "release", "wait"] {
        for e in r.of_kind(kind) {
            assert!(
                pids.contains(&e["pid"].as_i64().unwrap()),
                "{kind} from a non-buyer: {e}"
            );
        }
    }
    for e in r.of_kind("exit") {
        if pids.contains(&e["pid"].as_i64().unwrap()) {
            assert_eq!(e["exitcode"], 0, "{e}");
        }
    }
    let exited = r.of_kind("exit").len() as i64;
    assert_eq!(exited, 2 * buyers, "every buyer was joined\n{show}");

    // Without the lock: every buyer read the full count before any buyer wrote.
    let reads = in_phase(r, "read", "no_lock");
    let buys = in_phase(r, "buy", "no_lock");
    assert_eq!(reads.len() as i64, buyers, "{show}");
    assert!(reads.iter().all(|e| e["value"] == tickets), "{show}");
    let last_read = reads.iter().map(|e| t(e)).fold(f64::MIN, f64::max);
    let first_buy = buys.iter().map(|e| t(e)).fold(f64::MAX, f64::min);
    assert!(
        last_read < first_buy,
        "a buyer wrote before all had read\n{show}"
    );
    assert_eq!(buys.len() as i64, buyers, "sold without the lock\n{show}");
    assert!(buys.len() as i64 > tickets, "oversold\n{show}");

    // With the lock: one holder at a time, each buyer once, exactly `tickets` sold.
    assert_eq!(common::max_concurrent(r, "acquire", "release"), 1, "{show}");
    let acquires = r.of_kind("acquire");
    let releases = r.of_kind("release");
    assert_eq!(acquires.len() as i64, buyers, "{show}");
    assert_eq!(releases.len() as i64, buyers, "{show}");
    assert!(acquires
        .iter()
        .chain(&releases)
        .all(|e| e["what"] == "flock"));
    let holders: HashSet<i64> = acquires
        .iter()
        .map(|e| e["pid"].as_i64().unwrap())
        .collect();
    assert_eq!(
        holders.len() as i64,
        buyers,
        "each buyer held the lock once\n{show}"
    );
    let sold = in_phase(r, "buy", "lock");
    assert_eq!(sold.len() as i64, tickets, "sold with the lock\n{show}");
    for b in &sold {
        let pid = &b["pid"];
        let a = acquires.iter().find(|e| &e["pid"] == pid).unwrap();
        let rel = releases.iter().find(|e| &e["pid"] == pid).unwrap();
        assert!(
            t(a) <= t(b) && t(b) <= t(rel),
            "a sale outside the lock: {b}\n{show}"
        );
    }

    // While the first holder held the lock, every other buyer was seen waiting, asleep.
    let first = acquires
        .iter()
        .min_by(|a, b| t(a).partial_cmp(&t(b)).unwrap())
        .unwrap();
    let holder = first["pid"].as_i64().unwrap();
    let first_release = releases.iter().find(|e| e["pid"] == holder).unwrap();
    let waits = r.of_kind("wait");
    assert_eq!(waits.len() as i64, buyers - 1, "{show}");
    let waiters: HashSet<i64> = waits.iter().map(|e| e["pid"].as_i64().unwrap()).collect();
    assert_eq!(waiters.len() as i64, buyers - 1, "{show}");
    assert!(!waiters.contains(&holder), "{show}");
    for w in &waits {
        assert_eq!(w["holder"], holder, "{w}");
        assert_eq!(w["state"], "S", "{w}");
        assert!(
            t(first) < t(w) && t(w) < t(first_release),
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
