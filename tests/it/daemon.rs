//! Lesson `daemon`: the observations, and the same claims recomputed from the events.
use crate::common;

use common::{exit_of, pid_of as pid, spawn_of, t_ms as t};

use common::Run;
use serde_json::Value;

const ERROR: &str = "daemonic processes are not allowed to have children";

fn one<'a>(r: &'a Run, kind: &str) -> &'a Value {
    let e = r.of_kind(kind);
    assert_eq!(e.len(), 1, "one {kind} event\n{}", r.show());
    e[0]
}

/// Every claim of the lesson, checked from the stream.
fn check(r: &Run) {
    r.assert_code(0);
    let main = r.main_pid();

    // The observations DESIGN.md asks for.
    assert_eq!(r.obs("daemon_exitcode"), -15, "{}", r.show());
    assert_eq!(r.obs("non_daemon_exitcode"), 0, "{}", r.show());
    assert_eq!(r.obs("daemon_child_error"), ERROR, "{}", r.show());
    assert_eq!(r.obs("daemon_sid_differs"), true, "{}", r.show());

    // Python's daemon flag: two spawned children of main.
    let daemonic = spawn_of(r, "daemonic");
    let worker = spawn_of(r, "worker");
    for s in [daemonic, worker] {
        assert_eq!(s["ppid"], main, "{s}");
        assert_eq!(s["how"], "spawn", "{s}");
    }
    let (d, w) = (pid(daemonic), pid(worker));

    // The refusal was raised in the daemonic child, and it never had a child.
    let exc = one(r, "exception");
    assert_eq!(pid(exc), d, "raised by the daemonic child: {exc}");
    assert_eq!(exc["type"], "AssertionError");
    assert_eq!(exc["message"], ERROR);
    assert_eq!(r.obs("daemon_children"), 0);
    assert!(
        r.of_kind("spawn").iter().all(|s| s["ppid"] != d),
        "the daemonic child started nothing\n{}",
        r.show()
    );
    // The normal child could: a forked child of the worker, reaped by the worker.
    let kids: Vec<_> = r
        .of_kind("spawn")
        .into_iter()
        .filter(|s| s["ppid"] == w)
        .collect();
    assert_eq!(kids.len(), 1, "the worker started one child\n{}", r.show());
    let kid_exit = exit_of(r, pid(kids[0]));
    assert_eq!(kid_exit["reaped_by"], w);
    assert_eq!(kid_exit["exitcode"], 0);

    // At the main code's end: the daemonic child terminated (-15) while the worker was
    // still at work, then the worker joined (0) after its job was done.
    let d_exit = exit_of(r, d);
    let w_exit = exit_of(r, w);
    assert_eq!(d_exit["exitcode"], -15);
    assert_eq!(d_exit["reaped_by"], main);
    assert_eq!(w_exit["exitcode"], 0);
    assert_eq!(w_exit["reaped_by"], main);
    let start = one(r, "task_start");
    let done = one(r, "task_done");
    assert_eq!(pid(start), w);
    assert_eq!(pid(done), w);
    assert!(
        t(start) < t(d_exit),
        "the worker was working when the daemonic child was terminated\n{}",
        r.show()
    );
    assert!(
        t(d_exit) < t(w_exit),
        "terminated first, joined after\n{}",
        r.show()
    );
    assert!(
        t(done) <= t(w_exit),
        "the worker finished its job before it exited\n{}",
        r.show()
    );

    // The Unix daemon: fork, setsid, fork, re-parented to main.
    let first = spawn_of(r, "first");
    assert_eq!(first["ppid"], main);
    assert_eq!(first["how"], "fork");
    let f = pid(first);
    let setsid = one(r, "setsid");
    assert_eq!(pid(setsid), f);
    assert_eq!(
        setsid["sid"], f,
        "setsid() makes a session named after its leader"
    );
    let daemon = spawn_of(r, "daemon");
    assert_eq!(daemon["ppid"], f, "the daemon is the first child's child");
    let g = pid(daemon);
    let reparent = one(r, "reparent");
    assert_eq!(pid(reparent), g);
    assert_eq!(reparent["from"], f);
    assert_eq!(reparent["to"], main, "re-parented to the subreaper");
    assert_eq!(exit_of(r, f)["exitcode"], 0);
    assert_eq!(
        r.obs("daemon_sid"),
        f,
        "the daemon is in the first child's session"
    );
    assert_ne!(r.obs("daemon_sid"), r.obs("main_sid"));
    assert_eq!(r.obs("daemon_tty_nr"), 0, "no controlling terminal");
    assert_eq!(r.obs("daemon_ppid"), main);
    let g_exit = exit_of(r, g);
    assert_eq!(g_exit["exitcode"], -15, "the lesson stopped its daemon");
    assert_eq!(g_exit["reaped_by"], main);

    // Every process the lesson started ended, and every narration line was found.
    for s in r.of_kind("spawn") {
        exit_of(r, pid(s));
    }
    for s in r.of_kind("say") {
        assert!(
            !s["text"].as_str().unwrap().starts_with('<'),
            "missing words: {s}"
        );
    }
    assert_eq!(one(r, "lesson_end")["ok"], true);
}

#[test]
fn daemon_claims_hold_and_are_seen_in_the_events() {
    check(&common::lesson_json("daemon", &[]));
}

#[test]
fn daemon_is_deterministic() {
    for _ in 0..3 {
        check(&common::lesson_json("daemon", &[]));
    }
}

#[test]
fn daemon_reads_in_chinese() {
    let r = common::run(&["--speed", "0", "--lang", "zh", "daemon"]);
    r.assert_code(0);
    assert!(r.stdout.contains("守护进程"), "{}", r.show());
    assert!(
        r.stdout.contains(ERROR),
        "the error is CPython's own text\n{}",
        r.show()
    );
}

#[test]
fn daemon_takes_no_size_options() {
    common::run(&["--speed", "0", "--json", "daemon", "--workers", "3"]).assert_code(2);
}
