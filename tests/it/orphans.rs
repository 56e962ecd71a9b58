//! Lesson `orphans`: the observations, and the same claims recomputed from the events.
use crate::common;

use common::{Act, Ev, How, Observation, Run};

/// The one event of the lesson's kind `kind` about `p`.
fn one_of<'a>(r: &'a Run, kind: &str, p: i64) -> Ev<'a, Act> {
    let e: Vec<_> = r.acts(kind).into_iter().filter(|e| e.pid == p).collect();
    assert_eq!(e.len(), 1, "one {kind} of PID {p}\n{}", r.show());
    e[0]
}

fn observation<'a>(r: &'a Run, name: &str) -> Ev<'a, Observation> {
    r.observation(name)
        .unwrap_or_else(|| panic!("no observation {name}\n{}", r.show()))
}

/// The kernel showed `p` as a zombie before it was reaped.
fn zombie_before_reap(r: &Run, p: i64) {
    let z = r
        .states()
        .into_iter()
        .find(|e| e.pid == p && e.to == "Z")
        .unwrap_or_else(|| panic!("no state Z for PID {p}\n{}", r.show()));
    assert!(
        z.t_ms <= r.exit_of(p).t_ms,
        "Z before the reap\n{}",
        r.show()
    );
}

fn check(r: &Run, children: i64) {
    r.assert_code(0);
    common::assert_words_complete(r);
    let main = r.main_pid();
    let show = r.show();

    // The observations of the brief.
    assert_eq!(r.obs("main_pid"), main, "{show}");
    assert_eq!(r.obs("children"), children, "{show}");
    assert_eq!(r.obs("zombies_seen"), children, "{show}");
    assert_eq!(r.obs("reaped"), children, "{show}");
    assert_eq!(r.obs("orphan_ppid_after"), main, "{show}");
    assert_eq!(r.obs("grandchild_alive_after_terminate"), true, "{show}");
    assert_eq!(r.obs("terminated_exitcode"), -15, "{show}");
    assert_eq!(r.obs("lock_acquired_after_holder_died"), false, "{show}");
    assert_eq!(r.obs("lock_value_after"), 0, "{show}");

    // 1. Zombies: every quick child is a real fork of main, seen Z, reaped by main, and
    // all of them were zombies at once (every Z before the first reap).
    let mut first_reap = f64::MAX;
    let mut last_z: f64 = 0.0;
    for i in 1..=children {
        let s = r.spawn_of(&format!("child-{i}"));
        assert_eq!(s.ppid, main);
        assert_eq!(s.how, How::Fork);
        let p = s.pid;
        zombie_before_reap(r, p);
        let z = r
            .states()
            .into_iter()
            .find(|e| e.pid == p && e.to == "Z")
            .unwrap();
        last_z = last_z.max(z.t_ms);
        let x = r.exit_of(p);
        assert_eq!(x.exitcode, 0);
        assert_eq!(x.reaped_by, main);
        first_reap = first_reap.min(x.t_ms);
    }
    assert!(last_z <= first_reap, "the zombies piled up\n{show}");
    assert!(
        observation(r, "zombies_seen").t_ms >= last_z,
        "counted after the kernel showed them\n{show}"
    );

    // 2. The orphan: the grandchild is the child's child, re-parented to main once the
    // child exited, and reaped by main as a zombie of its own.
    let child = r.spawn_of("child");
    assert_eq!(child.ppid, main);
    let c = child.pid;
    let gc = r.spawn_of("grandchild");
    assert_eq!(gc.ppid, c, "the grandchild is the child's child");
    assert!(gc.t_ms > child.t_ms, "the parent is started first\n{show}");
    let g = gc.pid;
    assert_eq!(r.obs("orphan_ppid_before"), c, "{show}");
    let rep = one_of(r, "reparent", g);
    assert_eq!(rep.int("from"), c);
    assert_eq!(rep.int("to"), main, "adopted by the subreaper");
    assert!(
        observation(r, "orphan_ppid_before").t_ms < rep.t_ms,
        "{show}"
    );
    assert_eq!(r.exit_of(c).exitcode, 0);
    let gx = r.exit_of(g);
    assert_eq!(gx.reaped_by, main, "the adopter reaps it");
    assert_eq!(gx.exitcode, 0);
    assert!(rep.t_ms < gx.t_ms);
    zombie_before_reap(r, g);

    // 3. terminate(): the worker ends with -15, its helper outlives it (it is ended
    // later, by the lesson, with a signal of its own).
    let worker = r.spawn_of("worker");
    assert_eq!(worker.ppid, main);
    let w = worker.pid;
    let helper = r.spawn_of("helper");
    assert_eq!(helper.ppid, w, "the helper is the worker's child");
    assert!(
        helper.t_ms > worker.t_ms,
        "the parent is started first\n{show}"
    );
    let h = helper.pid;
    let wx = r.exit_of(w);
    assert_eq!(wx.exitcode, -15);
    let hrep = one_of(r, "reparent", h);
    assert_eq!(hrep.int("from"), w);
    assert_eq!(hrep.int("to"), main);
    let hx = r.exit_of(h);
    assert_eq!(hx.exitcode, -15, "still alive, so ended by a signal");
    assert_eq!(hx.reaped_by, main);
    let alive = observation(r, "grandchild_alive_after_terminate");
    assert!(wx.t_ms < alive.t_ms && alive.t_ms < hx.t_ms, "{show}");
    assert!(hrep.t_ms < hx.t_ms);

    // 4. The lock: the holder acquires, is terminated holding it (no release), and the
    // next process's timed wait, started after the holder was reaped, returns false
    // after its whole timeout.
    let holder = r.spawn_of("holder");
    let ho = holder.pid;
    let acq = one_of(r, "acquire", ho);
    assert_eq!(acq.str("what"), "lock");
    assert_eq!(acq.int("value"), 0);
    assert!(r.acts("release").is_empty(), "nobody released\n{show}");
    let hox = r.exit_of(ho);
    assert_eq!(hox.exitcode, -15);
    assert!(acq.t_ms < hox.t_ms);
    let next = r.spawn_of("next");
    assert_eq!(next.ppid, main);
    let n = next.pid;
    assert!(
        next.t_ms > hox.t_ms,
        "the next process came after the holder died"
    );
    let wait = one_of(r, "wait", n);
    assert_eq!(wait.int("holder"), ho);
    let done = one_of(r, "wait_done", n);
    assert!(!done.bool("result"));
    let timeout = wait.num("timeout_ms");
    assert!(
        done.t_ms - wait.t_ms >= timeout - 1.0,
        "it waited the whole timeout\n{show}"
    );
    assert_eq!(r.exit_of(n).exitcode, 0);

    // Every process the lesson started ended, reaped by main.
    for s in r.spawns() {
        assert_eq!(r.exit_of(s.pid).reaped_by, main);
    }
}

#[test]
fn every_claim_holds_and_matches_the_events() {
    for _ in 0..3 {
        check(&common::lesson_json("orphans", &[]), 3);
    }
}

#[test]
fn other_sizes_hold_too() {
    check(&common::lesson_json("orphans", &["--children", "1"]), 1);
    check(&common::lesson_json("orphans", &["--children", "8"]), 8);
}

#[test]
fn out_of_range_options_are_usage_errors() {
    for n in ["0", "9"] {
        common::run(&["--speed", "0", "--json", "orphans", "--children", n]).assert_code(2);
    }
}
