//! Lesson `shared`: the claims, and the same claims recomputed from the event stream.
//! Without the lock every round loses all but one update (the staging makes it the same
//! on every run); with the lock at most one worker is inside at a time and the writes
//! count 1, 2, … up to the expected total.

use crate::common;

use common::{by_time, Act, Ev, How, Run};
use std::collections::HashMap;

fn check(r: &Run, workers: i64, increments: i64) {
    r.assert_code(0);
    let expected = workers * increments;
    assert_eq!(r.obs("expected"), expected, "{}", r.show());
    let without = r.obs("final_without_lock").as_i64().unwrap();
    let with = r.obs("final_with_lock").as_i64().unwrap();
    assert!(without < expected, "{}", r.show());
    assert_eq!(with, expected, "{}", r.show());
    assert_eq!(r.obs("increments_done_without_lock"), expected);

    // The workers: spawned processes named worker-N, 2 × workers of them, all exit 0.
    let main = r.main_pid();
    let spawns = r.spawns();
    assert_eq!(spawns.len() as i64, 2 * workers, "{}", r.show());
    let worker_pids: Vec<i64> = spawns
        .iter()
        .map(|s| {
            assert_eq!(s.how, How::Spawn);
            assert_eq!(s.ppid, main);
            assert!(s.name.starts_with("worker-"));
            s.pid
        })
        .collect();
    for e in r.exits() {
        assert_eq!(e.exitcode, 0, "{e}");
    }
    assert_eq!(r.exits().len(), worker_pids.len());
    for kind in ["read", "write", "acquire", "release", "wait"] {
        for e in r.acts(kind) {
            let pid = e.pid;
            assert!(
                worker_pids.contains(&pid),
                "{kind} from a worker, not {pid}"
            );
        }
    }

    // Without the lock: every increment was written, yet the value only rose by one per
    // round: all workers read the same value before any of them wrote.
    let pick = |kind: &str, lock: bool| -> Vec<Ev<Act>> {
        by_time(
            r.acts(kind)
                .into_iter()
                .filter(|e| e.bool("lock") == lock)
                .collect(),
        )
    };
    let (reads, writes) = (pick("read", false), pick("write", false));
    assert_eq!(writes.len() as i64, expected);
    assert_eq!(reads.len() as i64, expected);
    let last_written = writes.last().unwrap().int("value");
    assert_eq!(last_written, without, "the value is what was written last");
    for round in 0..increments as usize {
        let n = workers as usize;
        let rs = &reads[round * n..(round + 1) * n];
        let ws = &writes[round * n..(round + 1) * n];
        let v = round as i64;
        assert!(
            rs.iter().all(|e| e.int("value") == v),
            "round {round}: all read {v}"
        );
        assert!(
            ws.iter().all(|e| e.int("value") == v + 1),
            "round {round}: all wrote {}",
            v + 1
        );
        let last_read = rs.iter().map(|e| e.t_ms).fold(0.0, f64::max);
        let first_write = ws.iter().map(|e| e.t_ms).fold(f64::INFINITY, f64::min);
        assert!(
            last_read < first_write,
            "round {round}: every read before any write"
        );
    }
    assert_eq!(
        without, increments,
        "the staging loses the same updates on every run"
    );

    // With the lock: one holder at a time, and the writes count up 1..=expected, each
    // the holder's own read plus one.
    assert_eq!(
        common::max_concurrent(r, "acquire", "release"),
        1,
        "{}",
        r.show()
    );
    let locked = by_time(
        r.events()
            .iter()
            .filter_map(|e| e.act("read").or_else(|| e.act("write")))
            .filter(|e| e.bool("lock"))
            .collect(),
    );
    assert_eq!(locked.len() as i64, 2 * expected);
    for (i, pair) in locked.chunks(2).enumerate() {
        let (rd, wr) = (pair[0], pair[1]);
        assert_eq!(rd.kind, "read");
        assert_eq!(wr.kind, "write");
        assert_eq!(rd.pid, wr.pid, "read and write by the lock holder");
        assert_eq!(rd.int("value"), i as i64);
        assert_eq!(wr.int("value"), i as i64 + 1);
    }
    let mut acquires: HashMap<i64, usize> = HashMap::new();
    for e in r.acts("acquire") {
        *acquires.entry(e.pid).or_default() += 1;
    }
    assert_eq!(acquires.len() as i64, workers, "every worker held the lock");
    assert!(acquires.values().all(|&n| n as i64 == increments));
    assert_eq!(r.acts("release").len() as i64, expected);
    assert_eq!(r.obs("lock_waits"), r.acts("wait").len() as i64);

    // The first holder kept the lock until every other worker was seen asleep at it: each
    // of them announced a wait before the first release.
    assert_eq!(
        r.obs("waiters_blocked_state").as_str(),
        Some("S".repeat(workers as usize - 1).as_str()),
        "{}",
        r.show()
    );
    let releases = by_time(r.acts("release"));
    let first_release = releases[0].t_ms;
    let first_holder = releases[0].pid;
    let mut early_waiters: Vec<i64> = r
        .acts("wait")
        .into_iter()
        .filter(|e| e.t_ms < first_release)
        .map(|e| e.pid)
        .collect();
    early_waiters.sort_unstable();
    early_waiters.dedup();
    assert_eq!(early_waiters.len() as i64, workers - 1, "{}", r.show());
    assert!(!early_waiters.contains(&first_holder));
}

#[test]
fn lost_without_the_lock_exact_with_it_every_run() {
    for _ in 0..3 {
        let r = common::lesson_json("shared", &[]);
        check(&r, 3, 4);
    }
}

#[test]
fn other_sizes() {
    let r = common::lesson_json("shared", &["--workers", "2", "--increments", "7"]);
    check(&r, 2, 7);
    let r = common::lesson_json("shared", &["--workers", "5", "--increments", "1"]);
    check(&r, 5, 1);
}

#[test]
fn out_of_range_options_exit_2() {
    for args in [
        ["--workers", "1"],
        ["--workers", "9"],
        ["--increments", "0"],
        ["--increments", "201"],
    ] {
        let mut all = vec!["--speed", "0", "--json", "shared"];
        all.extend(args);
        common::run(&all).assert_code(2);
    }
}
