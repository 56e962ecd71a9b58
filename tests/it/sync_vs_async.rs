//! Lesson `sync-vs-async`: the claims recomputed from the events themselves: the jobs'
//! own start and end stamps, the kernel states the observer read, the CPU-bound
//! processes' progress stamps.

use crate::common;

use common::{Act, Ev, How};

fn check(r: &common::Run) {
    r.assert_code(0);
    let main = r.main_pid();
    for s in r.says() {
        assert!(!s.text.starts_with('<'), "missing words: {s}");
    }
    // Every child is a fork of the main process, and ended with exit code 0.
    for s in r.spawns() {
        assert_eq!(s.how, How::Fork, "{s}");
        assert_eq!(s.ppid, main, "{s}");
        let exit = r
            .exits()
            .into_iter()
            .find(|e| e.pid == s.pid)
            .unwrap_or_else(|| panic!("no exit for {s}"));
        assert_eq!(exit.exitcode, 0);
    }

    // Synchronous: each job starts only after the previous one is done.
    let jobs = |mode: &str, kind: &str| -> Vec<Ev<Act>> {
        let mut v: Vec<Ev<Act>> = r
            .acts(kind)
            .into_iter()
            .filter(|e| e.str("mode") == mode)
            .collect();
        v.sort_by_key(|e| e.int("job"));
        v
    };
    let (s_start, s_done) = (jobs("sync", "job_start"), jobs("sync", "job_done"));
    assert_eq!((s_start.len(), s_done.len()), (3, 3), "{}", r.show());
    for k in 1..3 {
        assert!(
            s_start[k].t_ms > s_done[k - 1].t_ms,
            "sync job {} overlapped",
            k + 1
        );
    }
    let sum: f64 = s_done.iter().map(|e| e.num("ms")).sum();
    let longest = s_done.iter().map(|e| e.num("ms")).fold(0.0, f64::max);
    let sync_ms = r.obs("sync_elapsed_ms").as_f64().unwrap();
    let async_ms = r.obs("async_elapsed_ms").as_f64().unwrap();
    // Sleeps last at least as long as asked: the sum, the longest.
    assert!(sync_ms >= sum, "sync {sync_ms} < sum {sum}");
    assert!(async_ms >= longest, "async {async_ms} < longest {longest}");
    assert!(
        async_ms < sync_ms,
        "async {async_ms} not below sync {sync_ms}"
    );

    // Asynchronous: every job was started before the first one ended; the main process
    // was told of each end after it happened.
    let (a_start, a_done) = (jobs("async", "job_start"), jobs("async", "job_done"));
    assert_eq!((a_start.len(), a_done.len()), (3, 3));
    let first_end = a_done.iter().map(|e| e.t_ms).fold(f64::MAX, f64::min);
    assert!(
        a_start.iter().all(|s| s.t_ms < first_end),
        "async jobs did not overlap"
    );
    let told = r.acts("callback");
    assert_eq!(told.len(), 3);
    for c in &told {
        assert_eq!(c.pid, main);
        let done = a_done
            .iter()
            .find(|d| d.int("job") == c.int("job"))
            .unwrap();
        assert!(c.t_ms >= done.t_ms);
    }

    // Blocking: the observer saw the reader asleep; non-blocking: EAGAIN.
    assert_eq!(r.obs("blocking_read_state"), "S");
    let reader = r
        .spawns()
        .into_iter()
        .find(|s| s.name == "reader")
        .expect("a reader")
        .pid;
    assert!(
        r.states().iter().any(|s| s.pid == reader && s.to == "S"),
        "the kernel never showed the reader asleep\n{}",
        r.show()
    );
    assert_eq!(r.obs("eagain_seen"), true);
    let nb = r
        .says()
        .into_iter()
        .find(|s| s.key == "eagain")
        .expect("the EAGAIN line");
    assert!(r
        .spawns()
        .iter()
        .any(|s| s.pid == nb.pid && s.name == "nb-reader"));

    // Concurrency on one CPU: the two processes' progress events take turns (3 runs or
    // more); each reported all its progress.
    for phase in ["one_cpu", "all_cpus"] {
        let mut p: Vec<Ev<Act>> = r
            .acts("progress")
            .into_iter()
            .filter(|e| e.str("phase") == phase)
            .collect();
        p.sort_by(|a, b| a.t_ms.partial_cmp(&b.t_ms).unwrap());
        let pids: std::collections::BTreeSet<i64> = p.iter().map(|e| e.pid).collect();
        assert_eq!(pids.len(), 2, "{phase}: two processes");
        for pid in &pids {
            let mine: Vec<f64> = p
                .iter()
                .filter(|e| e.pid == *pid)
                .map(|e| e.num("cpu_ms"))
                .collect();
            assert_eq!(mine.len(), 6, "{phase}: every 5 ms of 30");
            assert!(mine.windows(2).all(|w| w[0] < w[1]));
        }
        if phase == "one_cpu" {
            let runs = 1 + p.windows(2).filter(|w| w[0].pid != w[1].pid).count();
            assert!(runs >= 3, "one CPU: only {runs} runs\n{}", r.show());
            assert_eq!(r.obs("one_cpu_interleaved"), true);
        }
    }
    assert!(r.obs("one_cpu_elapsed_ms").as_f64().unwrap() > 0.0);
    assert!(r.obs("all_cpus_elapsed_ms").as_f64().unwrap() > 0.0);
}

#[test]
fn sync_sums_async_overlaps_blocking_sleeps_one_cpu_takes_turns() {
    for _ in 0..3 {
        check(&common::lesson_json("sync-vs-async", &[]));
    }
}

#[test]
fn chinese_words_are_complete_and_options_are_refused() {
    let r = common::run(&["--speed", "0", "--json", "--lang", "zh", "sync-vs-async"]);
    r.assert_code(0);
    assert!(r.says().iter().any(|s| s.text.contains("阻塞")));
    let bad = common::run(&["sync-vs-async", "--workers", "2"]);
    bad.assert_code(2);
    assert!(!bad.stderr.contains("panicked"), "{}", bad.show());
}
