//! Lesson `event`: the observations, and the same claims recomputed from the events.
use crate::common;

use common::{How, Run};

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
    let spawns = r.spawns();
    let waiters: Vec<i64> = spawns
        .iter()
        .filter(|s| s.name.starts_with("waiter-"))
        .map(|s| {
            assert_eq!(s.ppid, main, "{s}");
            assert_eq!(s.how, How::Spawn, "{s}");
            s.pid
        })
        .collect();
    assert_eq!(waiters.len(), n, "{}", r.show());
    let setters: Vec<i64> = spawns
        .iter()
        .filter(|s| s.name == "setter")
        .map(|s| s.pid)
        .collect();
    assert_eq!(setters.len(), 1, "{}", r.show());

    // One set(), by the setter; the kernel woke every waiter.
    let set = r.act("set");
    assert_eq!(set.pid, setters[0], "set() called by the setter: {set}");
    assert_eq!(
        set.int("woke"),
        n as i64,
        "FUTEX_WAKE woke every waiter: {set}"
    );
    assert_eq!(r.obs("futex_wake_count"), n);

    // Before the set, every waiter had called wait() and the kernel had seen it asleep.
    for &w in &waiters {
        let wait = r
            .acts("wait")
            .into_iter()
            .find(|e| e.pid == w)
            .unwrap_or_else(|| panic!("waiter {w} called wait()\n{}", r.show()));
        assert!(
            !wait.has("timeout_ms"),
            "the first wait() has no timeout: {wait}"
        );
        assert!(
            wait.t_ms < set.t_ms,
            "waiter {w} waited before the set\n{}",
            r.show()
        );
        assert!(
            r.states()
                .iter()
                .any(|s| s.pid == w && s.to == "S" && s.t_ms < set.t_ms),
            "waiter {w} seen in S before the set\n{}",
            r.show()
        );
    }

    // woken_after_set, recomputed from the waiters' own stamps.
    let mut woken: Vec<i64> = r
        .acts("wait_done")
        .into_iter()
        .filter(|e| e.bool("result") && e.t_ms > set.t_ms)
        .map(|e| e.pid)
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
    let clear = r.act("clear");
    assert!(clear.t_ms > set.t_ms);
    let timed: Vec<_> = r
        .acts("wait")
        .into_iter()
        .filter(|e| e.has("timeout_ms"))
        .collect();
    assert_eq!(timed.len(), 1, "{}", r.show());
    let timed = timed[0];
    assert!(
        timed.t_ms > clear.t_ms,
        "the timed wait comes after clear()"
    );
    let gave_up = r
        .acts("wait_done")
        .into_iter()
        .find(|e| e.pid == timed.pid && e.t_ms > timed.t_ms)
        .unwrap_or_else(|| panic!("the timed wait returned\n{}", r.show()));
    assert!(!gave_up.bool("result"));
    let timeout = timed.num("timeout_ms");
    assert!(gave_up.t_ms - timed.t_ms >= timeout, "{gave_up} {timed}");

    // Every process ended normally, reaped by main; every line found its words.
    for s in &spawns {
        let exit = r
            .exits()
            .into_iter()
            .find(|e| e.pid == s.pid)
            .unwrap_or_else(|| panic!("{s} never exited\n{}", r.show()));
        assert_eq!(exit.exitcode, 0, "{exit}");
        assert_eq!(exit.reaped_by, main, "{exit}");
    }
    for s in r.says() {
        assert!(!s.text.starts_with('<'), "missing words: {s}");
    }
    assert!(r.end().ok);
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
