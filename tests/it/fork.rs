//! Lesson `fork`: the JSON contract and every observation, checked from the events.

use crate::common;

use common::How;

#[test]
fn fork_observations_hold_and_match_the_events() {
    let r = common::lesson_json("fork", &[]);
    r.assert_code(0);
    let main = r.main_pid();
    assert_eq!(r.obs("parent_pid"), main);
    assert_eq!(r.obs("child_ppid"), main);
    assert_eq!(r.obs("child_exitcode"), 0);
    assert_eq!(r.obs("zombie_observed"), true);
    assert_eq!(r.obs("terminated_exitcode"), -15);

    // The child the lesson names is the one it forked, and the kernel really showed it as
    // a zombie before its exit event (the reap).
    let child = r.obs("child_pid").as_i64().unwrap();
    let spawn = r
        .spawns()
        .into_iter()
        .find(|e| e.pid == child)
        .unwrap_or_else(|| panic!("no spawn of the child\n{}", r.show()));
    assert_eq!(spawn.how, How::Fork);
    assert_eq!(spawn.ppid, main);
    let zombie = r
        .states()
        .into_iter()
        .find(|e| e.pid == child && e.to == "Z")
        .unwrap_or_else(|| panic!("no state Z for the child\n{}", r.show()));
    let exit = r
        .exits()
        .into_iter()
        .find(|e| e.pid == child)
        .unwrap_or_else(|| panic!("no exit for the child\n{}", r.show()));
    assert!(zombie.t_ms <= exit.t_ms, "Z must be seen before the reap");
    assert_eq!(exit.exitcode, 0);
    assert_eq!(exit.reaped_by, main);

    // The terminated child's exit event says -15 too.
    let sleeper = r
        .spawns()
        .into_iter()
        .find(|e| e.name == "sleeper")
        .expect("a sleeper")
        .pid;
    let sleeper_exit = r
        .exits()
        .into_iter()
        .find(|e| e.pid == sleeper)
        .expect("sleeper exit");
    assert_eq!(sleeper_exit.exitcode, -15);

    // Both ways of starting a process appear, and every started process was reaped.
    let hows: Vec<How> = r.spawns().iter().map(|e| e.how).collect();
    assert!(
        hows.contains(&How::Fork) && hows.contains(&How::Spawn),
        "{hows:?}"
    );
    for s in r.spawns() {
        assert!(r.exits().iter().any(|e| e.pid == s.pid), "no exit for {s}");
    }
    assert!(r.end().ok);
}

#[test]
fn the_child_narrates_its_own_pid_and_parent() {
    let r = common::lesson_json("fork", &[]);
    let child = r.obs("child_pid").as_i64().unwrap();
    let hello = r.say("child_hello");
    assert_eq!(hello.pid, child, "the child's line is about the child");
    let text = &hello.text;
    assert!(text.contains(&child.to_string()) && text.contains(&r.main_pid().to_string()));
}
