//! Lesson `daemon`: the observations, and the same claims recomputed from the events.
use crate::common;

use common::{How, Run};

const ERROR: &str = "daemonic processes are not allowed to have children";

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
    let daemonic = r.spawn_of("daemonic");
    let worker = r.spawn_of("worker");
    for s in [daemonic, worker] {
        assert_eq!(s.ppid, main, "{s}");
        assert_eq!(s.how, How::Spawn, "{s}");
    }
    let (d, w) = (daemonic.pid, worker.pid);

    // The refusal was raised in the daemonic child, and it never had a child.
    let exc = r.act("exception");
    assert_eq!(exc.pid, d, "raised by the daemonic child: {exc}");
    assert_eq!(exc.str("type"), "AssertionError");
    assert_eq!(exc.str("message"), ERROR);
    assert_eq!(r.obs("daemon_children"), 0);
    assert!(
        r.spawns().iter().all(|s| s.ppid != d),
        "the daemonic child started nothing\n{}",
        r.show()
    );
    // The normal child could: a forked child of the worker, reaped by the worker.
    let kids: Vec<_> = r.spawns().into_iter().filter(|s| s.ppid == w).collect();
    assert_eq!(kids.len(), 1, "the worker started one child\n{}", r.show());
    let kid_exit = r.exit_of(kids[0].pid);
    assert_eq!(kid_exit.reaped_by, w);
    assert_eq!(kid_exit.exitcode, 0);

    // At the main code's end: the daemonic child terminated (-15) while the worker was
    // still at work, then the worker joined (0) after its job was done.
    let d_exit = r.exit_of(d);
    let w_exit = r.exit_of(w);
    assert_eq!(d_exit.exitcode, -15);
    assert_eq!(d_exit.reaped_by, main);
    assert_eq!(w_exit.exitcode, 0);
    assert_eq!(w_exit.reaped_by, main);
    let start = r.act("task_start");
    let done = r.act("task_done");
    assert_eq!(start.pid, w);
    assert_eq!(done.pid, w);
    assert!(
        start.t_ms < d_exit.t_ms,
        "the worker was working when the daemonic child was terminated\n{}",
        r.show()
    );
    assert!(
        d_exit.t_ms < w_exit.t_ms,
        "terminated first, joined after\n{}",
        r.show()
    );
    assert!(
        done.t_ms <= w_exit.t_ms,
        "the worker finished its job before it exited\n{}",
        r.show()
    );

    // The Unix daemon: fork, setsid, fork, re-parented to main.
    let first = r.spawn_of("first");
    assert_eq!(first.ppid, main);
    assert_eq!(first.how, How::Fork);
    let f = first.pid;
    let setsid = r.act("setsid");
    assert_eq!(setsid.pid, f);
    assert_eq!(
        setsid.int("sid"),
        f,
        "setsid() makes a session named after its leader"
    );
    let daemon = r.spawn_of("daemon");
    assert_eq!(daemon.ppid, f, "the daemon is the first child's child");
    let g = daemon.pid;
    let reparent = r.act("reparent");
    assert_eq!(reparent.pid, g);
    assert_eq!(reparent.int("from"), f);
    assert_eq!(reparent.int("to"), main, "re-parented to the subreaper");
    assert_eq!(r.exit_of(f).exitcode, 0);
    assert_eq!(
        r.obs("daemon_sid"),
        f,
        "the daemon is in the first child's session"
    );
    assert_ne!(r.obs("daemon_sid"), r.obs("main_sid"));
    assert_eq!(r.obs("daemon_tty_nr"), 0, "no controlling terminal");
    assert_eq!(r.obs("daemon_ppid"), main);
    let g_exit = r.exit_of(g);
    assert_eq!(g_exit.exitcode, -15, "the lesson stopped its daemon");
    assert_eq!(g_exit.reaped_by, main);

    // Every process the lesson started ended, and every narration line was found.
    for s in r.spawns() {
        r.exit_of(s.pid);
    }
    for s in r.says() {
        assert!(!s.text.starts_with('<'), "missing words: {s}");
    }
    assert!(r.end().ok);
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
