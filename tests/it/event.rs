//! Lesson `event`: the observations, and the same claims recomputed from the events.
use crate::common;

use common::Run;
use serde_json::Value;

fn t(e: &Value) -> f64 {
    e["t_ms"].as_f64().unwrap()
}

fn pid(e: &Value) -> i64 {
    e["pid"].as_i64().unwrap()
}

/// Every claim of the lesson with `n` waiters, checked from the stream.
fn check(r: &Run, n: usize) {
    r.assert_code(0);
    let main = r.main_pid();

    // The observations DESIGN.md asks for.
    assert_eq!(r.obs("waiters"), n, "{}", r.show());
    assert_eq!(r.obs("woken_after_set"), n, "{}", r.show());
    assert_eq!(r.obs("blocked_state_before_set"), "S", "{}", r.show());
    assert_eq!(r.obs("wait_timeout_result"), false, "{}", r.show());

    // The waiters and the setter are spawned children of main.
    let spawns = r.of_kind("spawn");
    let waiters: Vec<i64> = spawns
        .iter()
        .filter(|s| s["name"].as_str().unwrap().starts_with("waiter-"))
        .map(|s| {
            assert_eq!(s["ppid"], main, "{s}");
            assert_eq!(s["how"], "spawn", "{s}");
            pid(s)
        })
        .collect();
    assert_eq!(waiters.len(), n, "{}", r.show());
    let setters: Vec<i64> = spawns
        .iter()
        .filter(|s| s["name"] == "setter")
        .map(|s| pid(s))
        .collect();
    assert_eq!(setters.len(), 1, "{}", r.show());

    // One set(), by the setter; the kernel woke every waiter.
    let sets = r.of_kind("set");
    assert_eq!(sets.len(), 1, "{}", r.show());
    let set = sets[0];
    assert_eq!(pid(set), setters[0], "set() called by the setter: {set}");
    assert_eq!(set["woke"], n, "FUTEX_WAKE woke every waiter: {set}");
    assert_eq!(r.obs("futex_wake_count"), n);

    // Before the set, every waiter had called wait() and the kernel had seen it asleep.
    for &w in &waiters {
        let wait = r
            .of_kind("wait")
            .into_iter()
            .find(|e| pid(e) == w)
            .unwrap_or_else(|| panic!("waiter {w} called wait()\n{}", r.show()));
        assert!(
            wait.get("timeout_ms").is_none(),
            "the first wait() has no timeout: {wait}"
        );
        assert!(
            t(wait) < t(set),
            "waiter {w} waited before the set\n{}",
            r.show()
        );
        assert!(
            r.of_kind("state")
                .iter()
                .any(|s| pid(s) == w && s["to"] == "S" && t(s) < t(set)),
            "waiter {w} seen in S before the set\n{}",
            r.show()
        );
    }

    // woken_after_set, recomputed from the waiters' own stamps.
    let mut woken: Vec<i64> = r
        .of_kind("wait_done")
        .into_iter()
        .filter(|e| e["result"] == true && t(e) > t(set))
        .map(pid)
        .collect();
    woken.sort_unstable();
    let mut expected = waiters.clone();
    expected.sort_unstable();
    assert_eq!(
        woken,
        expected,
        "each waiter woke once, after the set\n{}",
        r.show()
    );

    // clear(), then a timed wait that returns False no sooner than its timeout.
    let clears = r.of_kind("clear");
    assert_eq!(clears.len(), 1, "{}", r.show());
    let clear = clears[0];
    assert!(t(clear) > t(set));
    let timed: Vec<_> = r
        .of_kind("wait")
        .into_iter()
        .filter(|e| e.get("timeout_ms").is_some())
        .collect();
    assert_eq!(timed.len(), 1, "{}", r.show());
    let timed = timed[0];
    assert!(t(timed) > t(clear), "the timed wait comes after clear()");
    let gave_up = r
        .of_kind("wait_done")
        .into_iter()
        .find(|e| pid(e) == pid(timed) && t(e) > t(timed))
        .unwrap_or_else(|| panic!("the timed wait returned\n{}", r.show()));
    assert_eq!(gave_up["result"], false);
    let timeout = timed["timeout_ms"].as_f64().unwrap();
    assert!(t(gave_up) - t(timed) >= timeout, "{gave_up} {timed}");

    // Every process ended normally, reaped by main; every line found its words.
    for s in &spawns {
        let exit = r
            .of_kind("exit")
            .into_iter()
            .find(|e| pid(e) == pid(s))
            .unwrap_or_else(|| panic!("{s} never exited\n{}", r.show()));
        assert_eq!(exit["exitcode"], 0, "{exit}");
        assert_eq!(exit["reaped_by"], main, "{exit}");
    }
    for s in r.of_kind("say") {
        assert!(
            !s["text"].as_str().unwrap().starts_with('<'),
            "missing words: {s}"
        );
    }
    assert_eq!(r.of_kind("lesson_end")[0]["ok"], true);
}

#[test]
fn event_claims_hold_and_are_seen_in_the_events() {
    check(&common::lesson_json("event", &[]), 3);
}

#[test]
fn event_wakes_many_waiters_and_one() {
    check(&common::lesson_json("event", &["--waiters", "8"]), 8);
    check(&common::lesson_json("event", &["--waiters", "1"]), 1);
}

#[test]
fn event_is_deterministic() {
    for _ in 0..3 {
        check(&common::lesson_json("event", &[]), 3);
    }
}

#[test]
fn event_reads_in_chinese() {
    let r = common::run(&["--speed", "0", "--lang", "zh", "event"]);
    r.assert_code(0);
    assert!(r.stdout.contains("等待者"), "{}", r.show());
}

#[test]
fn event_waiters_out_of_range_is_a_usage_error() {
    for n in ["0", "17", "x"] {
        common::run(&["--speed", "0", "--json", "event", "--waiters", n]).assert_code(2);
    }
}
