//! Lesson `sync-vs-async`: the claims recomputed from the events themselves: the jobs'
//! own start and end stamps, the kernel states the observer read, the CPU-bound
//! processes' progress stamps.

use crate::common;

use serde_json::Value;

fn t(e: &Value) -> f64 {
    e["t_ms"].as_f64().unwrap()
}

fn check(r: &common::Run) {
    r.assert_code(0);
    let main = r.main_pid();
    for s in r.of_kind("say") {
        assert!(
            !s["text"].as_str().unwrap().starts_with('<'),
            "missing words: {s}"
        );
    }
    // Every child is a fork of the main process, and ended with exit code 0.
    for s in r.of_kind("spawn") {
        assert_eq!(s["how"], "fork", "{s}");
        assert_eq!(s["ppid"], main, "{s}");
        let exit = r
            .of_kind("exit")
            .into_iter()
            .find(|e| e["pid"] == s["pid"])
            .unwrap_or_else(|| panic!("no exit for {s}"));
        assert_eq!(exit["exitcode"], 0);
    }

    // Synchronous: each job starts only after the previous one is done.
    let jobs = |mode: &str, kind: &str| -> Vec<&Value> {
        let mut v: Vec<&Value> = r
            .of_kind(kind)
            .into_iter()
            .filter(|e| e["mode"] == mode)
            .collect();
        v.sort_by(|a, b| a["job"].as_i64().cmp(&b["job"].as_i64()));
        v
    };
    let (s_start, s_done) = (jobs("sync", "job_start"), jobs("sync", "job_done"));
    assert_eq!((s_start.len(), s_done.len()), (3, 3), "{}", r.show());
    for k in 1..3 {
        assert!(
            t(s_start[k]) > t(s_done[k - 1]),
            "sync job {} overlapped",
            k + 1
        );
    }
    let sum: f64 = s_done.iter().map(|e| e["ms"].as_f64().unwrap()).sum();
    let longest = s_done
        .iter()
        .map(|e| e["ms"].as_f64().unwrap())
        .fold(0.0, f64::max);
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
    let first_end = a_done.iter().map(|e| t(e)).fold(f64::MAX, f64::min);
    assert!(
        a_start.iter().all(|s| t(s) < first_end),
        "async jobs did not overlap"
    );
    let told = r.of_kind("callback");
    assert_eq!(told.len(), 3);
    for c in &told {
        assert_eq!(c["pid"], main);
        let done = a_done.iter().find(|d| d["job"] == c["job"]).unwrap();
        assert!(t(c) >= t(done));
    }

    // Blocking: the observer saw the reader asleep; non-blocking: EAGAIN.
    assert_eq!(r.obs("blocking_read_state"), "S");
    let reader = r
        .of_kind("spawn")
        .into_iter()
        .find(|s| s["name"] == "reader")
        .expect("a reader")["pid"]
        .clone();
    assert!(
        r.of_kind("state")
            .iter()
            .any(|s| s["pid"] == reader && s["to"] == "S"),
        "the kernel never showed the reader asleep\n{}",
        r.show()
    );
    assert_eq!(r.obs("eagain_seen"), true);
    let nb = r
        .of_kind("say")
        .into_iter()
        .find(|s| s["key"] == "eagain")
        .expect("the EAGAIN line");
    assert!(r
        .of_kind("spawn")
        .iter()
        .any(|s| s["pid"] == nb["pid"] && s["name"] == "nb-reader"));

    // Concurrency on one CPU: the two processes' progress events take turns (3 runs or
    // more); each reported all its progress.
    for phase in ["one_cpu", "all_cpus"] {
        let mut p: Vec<&Value> = r
            .of_kind("progress")
            .into_iter()
            .filter(|e| e["phase"] == phase)
            .collect();
        p.sort_by(|a, b| t(a).partial_cmp(&t(b)).unwrap());
        let pids: std::collections::BTreeSet<i64> =
            p.iter().map(|e| e["pid"].as_i64().unwrap()).collect();
        assert_eq!(pids.len(), 2, "{phase}: two processes");
        for pid in &pids {
            let mine: Vec<f64> = p
                .iter()
                .filter(|e| e["pid"] == *pid)
                .map(|e| e["cpu_ms"].as_f64().unwrap())
                .collect();
            assert_eq!(mine.len(), 6, "{phase}: every 5 ms of 30");
            assert!(mine.windows(2).all(|w| w[0] < w[1]));
        }
        if phase == "one_cpu" {
            let runs = 1 + p.windows(2).filter(|w| w[0]["pid"] != w[1]["pid"]).count();
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
    assert!(r
        .of_kind("say")
        .iter()
        .any(|s| s["text"].as_str().unwrap().contains("阻塞")));
    let bad = common::run(&["sync-vs-async", "--workers", "2"]);
    bad.assert_code(2);
    assert!(!bad.stderr.contains("panicked"), "{}", bad.show());
}
