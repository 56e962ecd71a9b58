//! Lesson `tree`: the observations, and the same claims recomputed from the events: the
//! tree drawn from /proc against the spawn events, the group signal against the exits.
use crate::common;

use common::{Event, How, Live, Run, Say};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::time::Duration;

/// A row of the drawn tree: pid, ppid, pgid, state letter, name.
struct Row {
    pid: i64,
    ppid: i64,
    pgid: i64,
    state: String,
    name: String,
}

/// The rows of the tree the lesson drew (`tree_row` lines), in order.
fn rows(r: &Run) -> Vec<Row> {
    r.says()
        .into_iter()
        .filter(|e| e.key == "tree_row")
        .map(|e| {
            let text = &e.text;
            let w: Vec<&str> = text.split_whitespace().collect();
            assert!(w.len() >= 5, "a tree row: {text}");
            Row {
                pid: w[0].parse().unwrap(),
                ppid: w[1].parse().unwrap(),
                pgid: w[2].parse().unwrap(),
                state: w[3].to_string(),
                name: w[w.len() - 1].to_string(),
            }
        })
        .collect()
}

fn check(r: &Run) {
    r.assert_code(0);
    let main = r.main_pid();

    // The observations the brief asks for.
    assert_eq!(r.obs("tree_processes"), 4, "{}", r.show());
    assert_eq!(r.obs("grandchild_ppid_is_child"), true);
    assert_eq!(r.obs("group_members"), 3);
    assert_eq!(r.obs("ended_by_group_signal"), 3);
    assert_eq!(r.obs("other_group_survived"), true);
    assert_eq!(r.obs("main_not_signalled"), true);
    assert_eq!(r.obs("root_pid"), 1, "the parent chain ends at PID 1");

    // The tree: two forked children of main, each with a forked child of its own.
    let c1 = r.spawn_of("child-1");
    let c2 = r.spawn_of("child-2");
    let g1 = r.spawn_of("gchild-1");
    let g2 = r.spawn_of("gchild-2");
    for s in [c1, c2, g1, g2] {
        assert_eq!(s.how, How::Fork, "{s}");
    }
    assert_eq!(c1.ppid, main);
    assert_eq!(c2.ppid, main);
    assert_eq!(g1.ppid, c1.pid, "gchild-1 is child-1's child");
    assert_eq!(g2.ppid, c2.pid, "gchild-2 is child-2's child");
    assert!(
        c1.t_ms <= g1.t_ms && c2.t_ms <= g2.t_ms,
        "a parent starts before its child"
    );
    let group = c1.pid;

    // Each child put itself in the new group named after child-1.
    let setpgid = r.acts("setpgid");
    assert_eq!(setpgid.len(), 3, "{}", r.show());
    let pgid_of = |p: i64| -> Vec<i64> {
        setpgid
            .iter()
            .filter(|e| e.pid == p)
            .map(|e| e.int("pgid"))
            .collect()
    };
    assert_eq!(pgid_of(c1.pid), [group]);
    assert_eq!(pgid_of(c2.pid), [group]);
    assert_eq!(
        pgid_of(g2.pid),
        [g2.pid],
        "gchild-2 moved to a group of its own"
    );

    // The drawn tree agrees with the spawn events: the same PIDs, parents and groups.
    let rows = rows(r);
    assert_eq!(rows[0].pid, main, "main is the root of the drawn tree");
    assert_ne!(rows[0].pgid, group, "main is not in the children's group");
    let row = |p: i64| {
        rows.iter()
            .find(|w| w.pid == p)
            .unwrap_or_else(|| panic!("PID {p} in the drawn tree\n{}", r.show()))
    };
    for s in [c1, c2, g1, g2] {
        let w = row(s.pid);
        assert_eq!(w.ppid, s.ppid, "ppid of {s}");
        assert_eq!(w.pgid, group, "all four in one group before the move: {s}");
        assert_eq!(w.name, s.name);
        assert_eq!(w.state, "S", "asleep in pause() or poll(): {s}");
    }
    // Below main: the four, and nothing else but mp-demo's janitor.
    let below: Vec<&Row> = rows[1..].iter().filter(|w| w.name != "janitor").collect();
    assert_eq!(below.len(), 4, "{}", r.show());
    // Depth first: each grandchild is drawn right after its parent.
    let at = |p: i64| rows.iter().position(|w| w.pid == p).unwrap();
    assert_eq!(at(g1.pid), at(c1.pid) + 1);
    assert_eq!(at(g2.pid), at(c2.pid) + 1);

    // Ctrl-C by hand: one killpg to the group, then one to the survivor's group of one.
    let killpg = r.acts("killpg");
    assert_eq!(killpg.len(), 2, "{}", r.show());
    assert_eq!(killpg[0].int("pgid"), group);
    assert_eq!(killpg[0].str("signal"), "SIGINT");
    assert_eq!(killpg[1].int("pgid"), g2.pid);
    let members: Vec<i64> = vec![c1.pid, c2.pid, g1.pid];
    assert_eq!(killpg[0].int("members"), members.len() as i64);
    let moved = pgid_of(g2.pid);
    assert!(
        setpgid.iter().find(|e| e.pid == g2.pid).unwrap().t_ms < killpg[0].t_ms,
        "gchild-2 moved before the signal ({moved:?})"
    );
    // Every member ended with -2 after the group signal and was reaped by main.
    let ended = members
        .iter()
        .filter(|&&p| {
            let e = r.exit_of(p);
            e.exitcode == -2 && e.reaped_by == main && e.t_ms > killpg[0].t_ms
        })
        .count();
    assert_eq!(ended, members.len(), "{}", r.show());
    // The survivor outlived the group signal: re-parented to main, ended only by the
    // second signal.
    let survivor = r.exit_of(g2.pid);
    assert!(survivor.t_ms > killpg[1].t_ms, "{}", r.show());
    assert_eq!(survivor.exitcode, -2);
    let reparent = r.acts("reparent");
    assert_eq!(reparent.len(), 1);
    assert_eq!(reparent[0].pid, g2.pid);
    assert_eq!(reparent[0].int("from"), c2.pid);
    assert_eq!(reparent[0].int("to"), main);
    assert!(reparent[0].t_ms < killpg[1].t_ms);
    // Main was not signalled: the run ended normally, with its summary.
    assert!(r.end().ok);

    // Every process the lesson started ended, and every narration line was found.
    for s in r.spawns() {
        r.exit_of(s.pid);
    }
    common::assert_words_complete(r);
}

#[test]
fn the_tree_and_the_group_signal_hold_on_every_run() {
    for _ in 0..4 {
        check(&common::lesson_json("tree", &[]));
    }
}

#[test]
fn the_tree_in_chinese_has_every_line() {
    let r = common::run(&["--speed", "0", "--json", "--lang", "zh", "tree"]);
    check(&r);
}

#[test]
fn the_hints_name_real_pids() {
    let r = common::lesson_json("tree", &[]);
    let main = r.main_pid();
    let hints: Vec<String> = r
        .steps()
        .into_iter()
        .filter_map(|e| e.hint.clone())
        .collect();
    assert!(
        hints
            .iter()
            .any(|h| h.contains(&format!("pstree -p {main}"))),
        "{hints:?}"
    );
}

#[test]
fn an_option_it_does_not_have_is_a_usage_error() {
    let r = common::run(&["--speed", "0", "--json", "tree", "--workers", "3"]);
    r.assert_code(2);
}

/// A test of the events: the moment has come.
type Moment = fn(&Event) -> bool;

/// Whether `e` is a line said with `key`.
fn said(e: &Event, key: &str) -> bool {
    e.get::<Say>().is_some_and(|s| s.key == key)
}

/// The moments when the tree's processes stand in different places: all in the group
/// (each dies with its parent), gchild-2 in its own group (it watches its parent's pipe
/// instead), gchild-2 re-parented to main (it dies with main).
fn moments() -> [(&'static str, Moment); 3] {
    [
        ("built", |e| said(e, "tree_row")),
        ("moved", |e| said(e, "moved")),
        ("re-parented", |e| e.act("reparent").is_some()),
    ]
}

/// Start the lesson (paced, so that each moment lasts), wait for `moment`, `hit` main.
fn hit_at(moment: Moment, hit: impl FnOnce(i32)) -> Live {
    let live = Live::start(&["--json", "--speed", "0.05", "tree"]);
    live.wait_for(Duration::from_secs(10), moment);
    hit(live.pid());
    live
}

#[test]
fn sigkill_of_main_leaves_no_process_of_the_tree_at_any_moment() {
    std::thread::scope(|s| {
        for (name, moment) in moments() {
            s.spawn(move || {
                let mut live = hit_at(moment, |p| kill(Pid::from_raw(p), Signal::SIGKILL).unwrap());
                live.wait_exit(Duration::from_secs(2));
                live.assert_clean(Duration::from_secs(1));
                eprintln!("SIGKILL when {name}: clean");
            });
        }
    });
}

#[test]
fn ctrl_c_to_main_s_group_ends_the_run_with_130_and_leaves_nothing_at_any_moment() {
    std::thread::scope(|s| {
        for (name, moment) in moments() {
            s.spawn(move || {
                let mut live = hit_at(moment, |p| {
                    killpg(Pid::from_raw(p), Signal::SIGINT).unwrap()
                });
                let status = live.wait_exit(Duration::from_secs(3));
                assert_eq!(
                    status.code(),
                    Some(130),
                    "Ctrl-C when {name}: {}",
                    live.stderr()
                );
                live.assert_clean(Duration::from_secs(1));
            });
        }
    });
}
