//! Lesson `orphans`: the observations, and the same claims recomputed from the events.
use crate::common;

use common::{exit_of, pid_of as pid, spawn_of, t_ms as t};

use common::Run;
use serde_json::Value;

/// The one event of `kind` about `p`.
fn one_of<'a>(r: &'a Run, kind: &str, p: i64) -> &'a Value {
    let e: Vec<_> = r
        .of_kind(kind)
        .into_iter()
        .filter(|e| pid(e) == p)
        .collect();
    assert_eq!(e.len(), 1, "one {kind} of PID {p}\n{}", r.show());
    e[0]
}

fn observation<'a>(r: &'a Run, name: &str) -> &'a Value {
    r.events
        .iter()
        .find(|e| e["kind"] == "observation" && e["name"] == name)
        .unwrap_or_else(|| panic!("no observation {name}\n{}", r.show()))
}

/// The kernel showed `p` as a zombie before it was reaped.
fn zombie_before_reap(r: &Run, p: i64) {
    let z = r
        .of_kind("state")
        .into_iter()
        .find(|e| pid(e) == p && e["to"] == "Z")
        .unwrap_or_else(|| panic!("no state Z for PID {p}\n{}", r.show()));
    assert!(t(z) <= t(exit_of(r, p)), "Z before the reap\n{}", r.show());
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
        let s = spawn_of(r, &format!("child-{i}"));
        assert_eq!(s["ppid"], main);
        assert_eq!(s["how"], "fork");
        let p = pid(s);
        zombie_before_reap(r, p);
        let z = r
            .of_kind("state")
            .into_iter()
            .find(|e| pid(e) == p && e["to"] == "Z")
            .unwrap();
        last_z = last_z.max(t(z));
        let x = exit_of(r, p);
        assert_eq!(x["exitcode"], 0);
        assert_eq!(x["reaped_by"], main);
        first_reap = first_reap.min(t(x));
    }
    assert!(last_z <= first_reap, "the zombies piled up\n{show}");
    assert!(
        t(observation(r, "zombies_seen")) >= last_z,
        "counted after the kernel showed them\n{show}"
    );

    // 2. The orphan: the grandchild is the child's child, re-parented to main once the
    // child exited, and reaped by main as a zombie of its own.
    let child = spawn_of(r, "child");
    assert_eq!(child["ppid"], main);
    let c = pid(child);
    let gc = spawn_of(r, "grandchild");
    assert_eq!(gc["ppid"], c, "the grandchild is the child's child");
    assert!(t(gc) > t(child), "the parent is started first\n{show}");
    let g = pid(gc);
    assert_eq!(r.obs("orphan_ppid_before"), c, "{show}");
    let rep = one_of(r, "reparent", g);
    assert_eq!(rep["from"], c);
    assert_eq!(rep["to"], main, "adopted by the subreaper");
    assert!(t(observation(r, "orphan_ppid_before")) < t(rep), "{show}");
    assert_eq!(exit_of(r, c)["exitcode"], 0);
    let gx = exit_of(r, g);
    assert_eq!(gx["reaped_by"], main, "the adopter reaps it");
    assert_eq!(gx["exitcode"], 0);
    assert!(t(rep) < t(gx));
    zombie_before_reap(r, g);

    // 3. terminate(): the worker ends with -15, its helper outlives it (it is ended
    // later, by the lesson, with a signal of its own).
    let worker = spawn_of(r, "worker");
    assert_eq!(worker["ppid"], main);
    let w = pid(worker);
    let helper = spawn_of(r, "helper");
    assert_eq!(helper["ppid"], w, "the helper is the worker's child");
    assert!(t(helper) > t(worker), "the parent is started first\n{show}");
    let h = pid(helper);
    let wx = exit_of(r, w);
    assert_eq!(wx["exitcode"], -15);
    let hrep = one_of(r, "reparent", h);
    assert_eq!(hrep["from"], w);
    assert_eq!(hrep["to"], main);
    let hx = exit_of(r, h);
    assert_eq!(hx["exitcode"], -15, "still alive, so ended by a signal");
    assert_eq!(hx["reaped_by"], main);
    let alive = observation(r, "grandchild_alive_after_terminate");
    assert!(t(wx) < t(alive) && t(alive) < t(hx), "{show}");
    assert!(t(hrep) < t(hx));

    // 4. The lock: the holder acquires, is terminated holding it (no release), and the
    // next process's timed wait, started after the holder was reaped, returns false
    // after its whole timeout.
    let holder = spawn_of(r, "holder");
    let ho = pid(holder);
    let acq = one_of(r, "acquire", ho);
    assert_eq!(acq["what"], "lock");
    assert_eq!(acq["value"], 0);
    assert!(r.of_kind("release").is_empty(), "nobody released\n{show}");
    let hox = exit_of(r, ho);
    assert_eq!(hox["exitcode"], -15);
    assert!(t(acq) < t(hox));
    let next = spawn_of(r, "next");
    assert_eq!(next["ppid"], main);
    let n = pid(next);
    assert!(
        t(next) > t(hox),
        "the next process came after the holder died"
    );
    let wait = one_of(r, "wait", n);
    assert_eq!(wait["holder"], ho);
    let done = one_of(r, "wait_done", n);
    assert_eq!(done["result"], false);
    let timeout = wait["timeout_ms"].as_f64().unwrap();
    assert!(
        t(done) - t(wait) >= timeout - 1.0,
        "it waited the whole timeout\n{show}"
    );
    assert_eq!(exit_of(r, n)["exitcode"], 0);

    // Every process the lesson started ended, reaped by main.
    for s in r.of_kind("spawn") {
        assert_eq!(exit_of(r, pid(s))["reaped_by"], main);
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
