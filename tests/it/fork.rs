//! Lesson `fork`: the JSON contract and every observation, checked from the events.

use crate::common;

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
        .of_kind("spawn")
        .into_iter()
        .find(|e| e["pid"] == child)
        .unwrap_or_else(|| panic!("no spawn of the child\n{}", r.show()));
    assert_eq!(spawn["how"], "fork");
    assert_eq!(spawn["ppid"], main);
    let t = |e: &serde_json::Value| e["t_ms"].as_f64().unwrap();
    let zombie = r
        .of_kind("state")
        .into_iter()
        .find(|e| e["pid"] == child && e["to"] == "Z")
        .unwrap_or_else(|| panic!("no state Z for the child\n{}", r.show()));
    let exit = r
        .of_kind("exit")
        .into_iter()
        .find(|e| e["pid"] == child)
        .unwrap_or_else(|| panic!("no exit for the child\n{}", r.show()));
    assert!(t(zombie) <= t(exit), "Z must be seen before the reap");
    assert_eq!(exit["exitcode"], 0);
    assert_eq!(exit["reaped_by"], main);

    // The terminated child's exit event says -15 too.
    let sleeper = r
        .of_kind("spawn")
        .into_iter()
        .find(|e| e["name"] == "sleeper")
        .expect("a sleeper")["pid"]
        .clone();
    let sleeper_exit = r
        .of_kind("exit")
        .into_iter()
        .find(|e| e["pid"] == sleeper)
        .expect("sleeper exit");
    assert_eq!(sleeper_exit["exitcode"], -15);

    // Both ways of starting a process appear, and every started process was reaped.
    let hows: Vec<&str> = r
        .of_kind("spawn")
        .iter()
        .map(|e| e["how"].as_str().unwrap())
        .collect();
    assert!(
        hows.contains(&"fork") && hows.contains(&"spawn"),
        "{hows:?}"
    );
    for s in r.of_kind("spawn") {
        assert!(
            r.of_kind("exit").iter().any(|e| e["pid"] == s["pid"]),
            "no exit for {s}"
        );
    }
    let end = r.of_kind("lesson_end");
    assert_eq!(end[0]["ok"], true);
}

#[test]
fn the_child_narrates_its_own_pid_and_parent() {
    let r = common::lesson_json("fork", &[]);
    let child = r.obs("child_pid").as_i64().unwrap();
    let hello = r
        .of_kind("say")
        .into_iter()
        .find(|e| e["key"] == "child_hello")
        .expect("the child's hello");
    assert_eq!(hello["pid"], child, "the child's line is about the child");
    let text = hello["text"].as_str().unwrap();
    assert!(text.contains(&child.to_string()) && text.contains(&r.main_pid().to_string()));
}
