//! Lesson `pool`: every claim recomputed from the events themselves (the workers' own
//! `task_start`/`task_done` stamps, the `spawn` and `exit` events, the callbacks), on the
//! default pool and on sizes given by options.

use crate::common;

use common::{Act, Ev, How, Observation};
use std::collections::{BTreeMap, BTreeSet};

/// The CPUs this test may use, from the kernel (`Cpus_allowed_list` in /proc): what
/// `Pool()` should count.
fn usable_cpus() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list")
        .trim();
    list.split(',')
        .map(|part| match part.split_once('-') {
            Some((a, b)) => b.parse::<i64>().unwrap() - a.parse::<i64>().unwrap() + 1,
            None => 1,
        })
        .sum()
}

/// Everything the lesson claims, from the stream, for a pool of `size` and `tasks`.
fn check(r: &common::Run, size: i64, tasks: i64) {
    // The only claim allowed to fail is the speed-up (and only on a busy machine, which
    // the lesson detects itself); every other claim must hold.
    let failed: Vec<Ev<Observation>> = r
        .observations()
        .into_iter()
        .filter(|o| o.holds == Some(false))
        .collect();
    assert!(
        failed.iter().all(|o| o.name == "speedup"),
        "claims failed: {failed:?}\n{}",
        r.show()
    );
    r.assert_code(if failed.is_empty() { 0 } else { 1 });
    let main = r.main_pid();
    assert_eq!(r.obs("pool_size"), size, "{}", r.show());
    assert_eq!(r.obs("tasks"), tasks);
    assert_eq!(r.obs("callback_pid"), main);
    assert_eq!(r.obs("map_callback_pid"), main);
    assert_eq!(
        r.obs("join_before_close_error"),
        "ValueError: Pool is still running"
    );
    assert!(r.obs("speedup").as_f64().unwrap() > 0.0);
    for s in r.says() {
        assert!(!s.text.starts_with('<'), "missing words: {s}");
    }

    // The workers: spawned (fork + exec) by the main process, one initializer each.
    let workers: BTreeSet<i64> = r
        .spawns()
        .iter()
        .filter(|s| s.name.starts_with("worker-"))
        .map(|s| {
            assert_eq!(s.how, How::Spawn, "{s}");
            assert_eq!(s.ppid, main, "{s}");
            s.pid
        })
        .collect();
    assert_eq!(
        workers.len() as i64,
        size,
        "one spawn per worker\n{}",
        r.show()
    );

    let starts = r.acts("task_start");
    let dones = r.acts("task_done");
    // apply, apply_async, map and map_async of `tasks` each, then three timed maps of
    // `tasks` rounded up to a multiple of the workers that can run at once.
    let timed = r.obs("timed_tasks").as_i64().unwrap();
    let lanes = size.min(usable_cpus());
    assert!(timed >= tasks && timed % lanes == 0 && timed - tasks < lanes);
    assert_eq!(
        starts.len() as i64,
        2 + 2 * tasks + 3 * timed,
        "{}",
        r.show()
    );
    let ran: BTreeSet<i64> = starts.iter().map(|e| e.pid).collect();
    assert!(ran.is_subset(&workers), "a task ran outside the pool");
    if tasks >= size {
        assert_eq!(ran.len() as i64, size, "every worker ran tasks");
    }
    assert_eq!(r.obs("distinct_worker_pids"), ran.len() as i64);

    for w in &workers {
        let inits: Vec<Ev<Act>> = r
            .acts("initializer")
            .into_iter()
            .filter(|e| e.pid == *w)
            .collect();
        assert_eq!(inits.len(), 1, "initializer once in worker {w}");
        if let Some(first) = starts
            .iter()
            .filter(|e| e.pid == *w)
            .map(|e| e.t_ms)
            .reduce(f64::min)
        {
            assert!(
                inits[0].t_ms <= first,
                "initializer before worker {w}'s first task"
            );
        }
    }

    // Every task started once and done once, by the same worker, in that order.
    let mut started: BTreeMap<i64, Ev<Act>> = BTreeMap::new();
    for s in &starts {
        assert!(
            started.insert(s.int("task"), *s).is_none(),
            "task started twice: {s}"
        );
    }
    let mut finished = BTreeSet::new();
    for d in &dones {
        let id = d.int("task");
        assert!(finished.insert(id), "task done twice: {d}");
        let s = started
            .get(&id)
            .unwrap_or_else(|| panic!("done, never started: {d}"));
        assert_eq!(s.pid, d.pid);
        assert!(s.t_ms <= d.t_ms);
    }
    assert_eq!(finished.len(), started.len());

    // Never more tasks running at once than workers, and one at a time per worker.
    assert!(common::max_concurrent(r, "task_start", "task_done") as i64 <= size);
    for w in &workers {
        let mut iv: Vec<(f64, f64)> = dones
            .iter()
            .filter(|d| d.pid == *w)
            .map(|d| (started[&d.int("task")].t_ms, d.t_ms))
            .collect();
        iv.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
        assert!(
            iv.windows(2).all(|p| p[0].1 <= p[1].0),
            "worker {w} overlapped itself"
        );
    }

    // The calls: apply returned only after its task was done; callbacks ran in the main
    // process, after every task of their call.
    let done_of_job = |job: i64| -> Vec<f64> {
        dones
            .iter()
            .filter(|d| d.int("job") == job)
            .map(|d| d.t_ms)
            .collect()
    };
    let call = |name: &str, kind: &str| -> Vec<Ev<Act>> {
        r.acts(kind)
            .into_iter()
            .filter(|e| e.str("call") == name)
            .collect()
    };
    let apply = call("apply", "returned");
    assert_eq!(apply.len(), 1);
    let apply_done = done_of_job(apply[0].int("job"));
    assert_eq!(apply_done.len(), 1);
    assert!(
        apply[0].t_ms >= apply_done[0],
        "apply returned before its task was done"
    );
    let callbacks = r.acts("callback");
    assert_eq!(
        callbacks.len(),
        2,
        "one callback for apply_async, one for map_async"
    );
    for cb in &callbacks {
        assert_eq!(cb.pid, main, "a callback outside the main process: {cb}");
        let job_done = done_of_job(cb.int("job"));
        assert!(!job_done.is_empty());
        assert!(
            job_done.iter().all(|&d| d <= cb.t_ms),
            "callback before its tasks: {cb}"
        );
        let ret = call(cb.str("call"), "returned");
        assert!(
            ret[0].t_ms <= cb.t_ms,
            "the async call returned after its callback: {cb}"
        );
    }

    // close + join: every worker exited 0, reaped by the main process.
    for w in &workers {
        let exit = r
            .exits()
            .into_iter()
            .find(|e| e.pid == *w)
            .unwrap_or_else(|| panic!("worker {w} never exited\n{}", r.show()));
        assert_eq!(exit.exitcode, 0);
        assert_eq!(exit.reaped_by, main);
    }
}

#[test]
fn default_pool_is_the_usable_cpus_and_reuses_them_every_time() {
    let cpus = usable_cpus().min(16);
    for _ in 0..3 {
        let r = common::lesson_json("pool", &[]);
        assert_eq!(r.obs("cpus_usable"), usable_cpus(), "{}", r.show());
        check(&r, cpus, 12);
    }
}

#[test]
fn options_set_the_pool_and_the_tasks() {
    check(
        &common::lesson_json("pool", &["--workers", "3", "--tasks", "7"]),
        3,
        7,
    );
    let one = common::lesson_json("pool", &["--workers", "1", "--tasks", "2"]);
    check(&one, 1, 2);
    // One worker cannot run anything in parallel: the speed-up is only reported.
    let speedup = one.observation("speedup").unwrap();
    assert!(speedup.holds.is_none(), "{speedup}");
}

#[test]
fn out_of_range_options_are_usage_errors() {
    for args in [
        &["pool", "--workers", "17"][..],
        &["pool", "--tasks", "0"],
        &["pool", "--tasks", "65"],
        &["pool", "--workers", "-1"],
        &["pool", "--workers", "many"],
    ] {
        let r = common::run(args);
        r.assert_code(2);
        assert!(!r.stderr.contains("panicked"), "{}", r.show());
    }
}
