//! Lesson `cost`: the JSON contract, the coarse orderings it claims (recomputed from its
//! observations and from the timed children's own stamps), and that every timed process
//! was a real child, started and reaped by its parent (the main process or the timer). No absolute timing is asserted: that lives in the benchmark.

use crate::common;

use common::{Ev, How, Run, Spawn};
use std::collections::HashSet;

fn num(r: &Run, name: &str) -> f64 {
    r.obs(name)
        .as_f64()
        .unwrap_or_else(|| panic!("{name} is not a number\n{}", r.show()))
}

/// The spawn events whose name is `prefix` followed by a try number, in order.
fn rounds_of<'a>(r: &'a Run, prefix: &str) -> Vec<Ev<'a, Spawn>> {
    r.spawns()
        .into_iter()
        .filter(|e| {
            e.name
                .strip_prefix(prefix)
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .collect()
}

/// Everything a run of `rounds` rounds must show.
fn check(r: &Run, rounds: usize) {
    r.assert_code(0);
    let main = r.main_pid();
    assert_eq!(r.obs("rounds"), rounds as i64);

    // The orderings, from the measured medians themselves.
    let fork = num(r, "fork_us");
    let spawn = num(r, "spawn_us");
    let thread = num(r, "thread_us");
    let pool = num(r, "pool_task_us");
    let pipe = num(r, "pipe_roundtrip_us");
    for x in [fork, spawn, thread, pool, pipe] {
        assert!(x > 0.0, "a time is not positive\n{}", r.show());
    }
    assert!(spawn > fork, "spawn {spawn} <= fork {fork}\n{}", r.show());
    assert!(
        fork > thread,
        "fork {fork} <= thread {thread}\n{}",
        r.show()
    );
    assert!(pool < spawn, "pool {pool} >= spawn {spawn}\n{}", r.show());
    for claim in [
        "spawn_costs_more_than_fork",
        "process_costs_more_than_thread",
        "pool_task_cheaper_than_spawn",
    ] {
        assert_eq!(r.obs(claim), true, "{claim}\n{}", r.show());
    }

    // The timer: a spawned child of main, with one thread (a fresh, small process).
    let timer = r.spawn_of("timer");
    assert_eq!(timer.ppid, main);
    assert_eq!(timer.how, How::Spawn);
    assert_eq!(r.obs("timer_threads"), 1, "{}", r.show());
    assert!(r.obs("main_threads").as_i64().unwrap() > 1, "{}", r.show());

    // Every timed process was a real child: a spawn of main, a fork of the timer, started
    // the way the lesson says, one at a time, and reaped by its parent with exit code 0
    // before the next one started. A round keeps the faster of two tries. A spawn's two
    // stamps lie inside its timed interval, so the median over rounds of the shorter
    // life of each pair cannot exceed the median reported; a fork's stamps are the
    // timer's clock itself, so its median life is the median reported (stamps and the
    // median are rounded to 1 µs and 0.1 µs).
    let mut pids = HashSet::new();
    let lives_of = |prefix: &str, how: How, parent: i64, pids: &mut HashSet<i64>| {
        let started = rounds_of(r, prefix);
        let mut lives = Vec::new();
        let mut last_exit = f64::MIN;
        for s in started {
            assert_eq!(s.how, how, "{s}");
            assert_eq!(s.ppid, parent, "{s}");
            assert_ne!(s.pid, main);
            assert!(pids.insert(s.pid), "PID reused: {s}");
            let e = r.exit_of(s.pid);
            assert_eq!(e.exitcode, 0, "{e}");
            assert_eq!(e.reaped_by, parent, "{e}");
            assert!(
                s.t_ms >= last_exit,
                "{s} started before the last one was reaped"
            );
            assert!(e.t_ms >= s.t_ms, "{e} before {s}");
            last_exit = e.t_ms;
            lives.push((e.t_ms - s.t_ms) * 1000.0);
        }
        lives
    };
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for (prefix, how, parent, reported) in [
        ("fork-", How::Fork, timer.pid, fork),
        ("spawn-", How::Spawn, main, spawn),
    ] {
        let lives = lives_of(prefix, how, parent, &mut pids);
        assert_eq!(lives.len(), 2 * rounds, "{prefix}*\n{}", r.show());
        let life = median(lives.chunks(2).map(|p| p[0].min(p[1])).collect());
        assert!(
            life <= reported + 2.0,
            "{prefix}: median life {life} µs > reported median {reported} µs\n{}",
            r.show()
        );
        if how == How::Fork {
            assert!(
                (life - reported).abs() <= 2.0,
                "{prefix}: median life {life} µs, reported {reported} µs\n{}",
                r.show()
            );
        }
    }

    // A larger parent forks more slowly: 5 forks of the timer at each size. Their start
    // is stamped when fork() returned (the copy of the page tables is behind it), so a
    // life in the stream is the child's exit and reap only, inside the time reported;
    // and that part alone already grows with the parent (the copy is torn down again).
    let grown = lives_of("grown-", How::Fork, timer.pid, &mut pids);
    assert_eq!(grown.len(), 15, "{}", r.show());
    let by_size: Vec<f64> = grown.chunks(5).map(|c| median(c.to_vec())).collect();
    for (mib, life) in [1, 64, 512].iter().zip(&by_size) {
        let reported = num(r, &format!("fork_{mib}mib_us"));
        assert!(
            *life <= reported + 2.0,
            "{mib} MiB: median life {life} µs > reported {reported} µs\n{}",
            r.show()
        );
    }
    assert!(
        num(r, "fork_512mib_us") > num(r, "fork_1mib_us"),
        "{}",
        r.show()
    );
    assert_eq!(
        r.obs("fork_dearer_with_memory"),
        by_size[2] > by_size[0],
        "{}",
        r.show()
    );
    assert_eq!(r.obs("fork_dearer_with_memory"), true, "{}", r.show());

    // The pool's worker (main's) and the echo child (the timer's): started once, reaped
    // by their parent with exit code 0.
    for (name, how, parent) in [("worker", How::Spawn, main), ("echo", How::Fork, timer.pid)] {
        let s = r
            .spawns()
            .into_iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("no {name}\n{}", r.show()));
        assert_eq!(s.how, how);
        assert_eq!(s.ppid, parent);
        let e = r.exit_of(s.pid);
        assert_eq!(e.exitcode, 0, "{e}");
        assert_eq!(e.reaped_by, parent, "{e}");
    }

    // CPython: measured (a real python3 child, reaped with 0) or said why not.
    let python = r.observation("python_process_us");
    let says = |key: &str| r.said(key);
    match python {
        Some(o) => {
            assert!(o.value.as_f64().unwrap() > 0.0);
            let s = r
                .spawns()
                .into_iter()
                .find(|e| e.name == "python3")
                .unwrap_or_else(|| panic!("no python3 child\n{}", r.show()));
            assert_eq!(r.exit_of(s.pid).exitcode, 0);
            assert!(says("row_python"), "{}", r.show());
        }
        None => assert!(
            says("python_missing") || says("python_failed"),
            "{}",
            r.show()
        ),
    }

    // Every process started was reaped, and the table has its rows.
    for s in r.spawns() {
        r.exit_of(s.pid);
    }
    for key in [
        "row_spawn",
        "row_fork",
        "row_thread",
        "row_pool",
        "row_pipe",
    ] {
        assert!(says(key), "no {key}\n{}", r.show());
    }
    assert!(r.end().ok);
}

#[test]
fn orderings_hold_and_every_timed_process_was_a_reaped_child() {
    let r = common::lesson_json("cost", &[]);
    check(&r, 20);
}

#[test]
fn the_orderings_hold_every_run_at_the_fewest_rounds() {
    for _ in 0..2 {
        let r = common::lesson_json("cost", &["--rounds", "5"]);
        check(&r, 5);
    }
}

#[test]
fn without_python3_it_says_so_and_measures_the_rest() {
    let empty = tempfile::tempdir().unwrap();
    let path = empty.path().to_str().unwrap();
    let r = common::run_env(
        &["--speed", "0", "--json", "cost", "--rounds", "5"],
        &[("PATH", path)],
    );
    common::check_contract(&r);
    check(&r, 5);
    assert!(r.said("python_missing"), "{}", r.show());
    assert!(r.observation("python_process_us").is_none(), "{}", r.show());
    assert!(!r.spawns().iter().any(|e| e.name == "python3"));
}

#[test]
fn out_of_range_rounds_are_usage_errors() {
    for rounds in ["4", "201"] {
        let r = common::run(&["--speed", "0", "--json", "cost", "--rounds", rounds]);
        r.assert_code(2);
        assert!(r.spawns().is_empty(), "{}", r.show());
    }
}
