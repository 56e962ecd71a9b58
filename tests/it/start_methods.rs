//! Lesson `start-methods`: every claim recomputed from the stream: who started each
//! child and how (the spawns), who reaped it (the exits), what each child said it saw
//! (the keys of its own lines), and the timing rounds' processes.

use crate::common;

use common::How;

/// What the child `pid` said it saw, from the key of its one line
/// (`seen_{changed|module}_{held|free}`): (sees the parent's change, finds the lock held).
fn seen_by(r: &common::Run, pid: i64) -> (bool, bool) {
    let keys: Vec<String> = r
        .says()
        .into_iter()
        .filter(|s| s.pid == pid && s.key.starts_with("seen_"))
        .map(|s| s.key.clone())
        .collect();
    let [key] = keys.as_slice() else {
        panic!("PID {pid} said {keys:?}\n{}", r.show());
    };
    let (setting, lock) = key["seen_".len()..].split_once('_').unwrap();
    assert!(matches!(setting, "changed" | "module") && matches!(lock, "held" | "free"), "{key}");
    (setting == "changed", lock == "held")
}

#[test]
fn fork_copies_spawn_and_forkserver_start_fresh_and_the_server_is_the_parent() {
    let r = common::lesson_json("start-methods", &["--rounds", "3"]);
    r.assert_code(0);
    common::check_contract(&r);
    let main = r.main_pid();

    // fork: a copy made by the main process, reaped by it; it saw the change and the lock held.
    let forked = r.spawn_of("forked");
    assert_eq!((forked.ppid, forked.how), (main, How::Fork));
    assert_eq!(r.exit_of(forked.pid).reaped_by, main);
    assert_eq!(seen_by(&r, forked.pid), (true, true));
    assert_eq!(r.obs("sees_parent_change_fork"), true);
    assert_eq!(r.obs("lock_held_in_fork"), true);
    assert_eq!(r.obs("fork_child_ppid"), main);

    // spawn: a fresh program (fork + exec) of the main process; module value, free lock.
    let spawned = r.spawn_of("spawned");
    assert_eq!((spawned.ppid, spawned.how), (main, How::Spawn));
    assert_eq!(r.exit_of(spawned.pid).reaped_by, main);
    assert_eq!(seen_by(&r, spawned.pid), (false, false));
    assert_eq!(r.obs("sees_parent_change_spawn"), false);
    assert_eq!(r.obs("lock_held_in_spawn"), false);

    // forkserver: the server is spawned by the main process; its child is forked and
    // reaped by the server, never by the main process.
    let server = r.spawn_of("server");
    assert_eq!((server.ppid, server.how), (main, How::Spawn));
    assert_eq!(r.exit_of(server.pid).reaped_by, main);
    let served = r.spawn_of("served");
    assert_eq!((served.ppid, served.how), (server.pid, How::Fork));
    let served_exit = r.exit_of(served.pid);
    assert_eq!(served_exit.reaped_by, server.pid);
    assert_eq!(seen_by(&r, served.pid), (false, false));
    assert_eq!(r.obs("sees_parent_change_forkserver"), false);
    assert_eq!(r.obs("lock_held_in_forkserver"), false);
    assert_eq!(r.obs("forkserver_child_ppid"), server.pid);
    assert_ne!(server.pid, main);
    assert_eq!(r.obs("main_waitpid_served"), "ECHILD");
    assert_eq!(r.obs("served_exitcode_from_server"), served_exit.exitcode);
    assert_eq!(r.obs("server_threads"), 1);

    // The table says each child's parent, in the order fork, spawn, forkserver.
    let rows: Vec<String> = r
        .says()
        .into_iter()
        .filter(|s| s.key.starts_with("row_"))
        .map(|s| s.text.clone())
        .collect();
    assert_eq!(rows.len(), 3, "{rows:?}");
    for (row, parent) in rows.iter().zip([main, main, server.pid]) {
        assert!(row.contains(&parent.to_string()), "{row} (parent {parent})");
    }

    // The timing rounds: 3 children of each method, started and reaped by their parents.
    for (prefix, parent, how) in [
        ("fork-", main, How::Fork),
        ("spawn-", main, How::Spawn),
        ("child-", server.pid, How::Fork),
    ] {
        let timed: Vec<_> = r
            .spawns()
            .into_iter()
            .filter(|s| s.name.starts_with(prefix))
            .collect();
        assert_eq!(timed.len(), 3, "{prefix}: {}", r.show());
        for s in timed {
            assert_eq!((s.ppid, s.how), (parent, how), "{}", s.name);
            let exit = r.exit_of(s.pid);
            assert_eq!((exit.exitcode, exit.reaped_by), (0, parent), "{}", s.name);
        }
    }
    let us = |name: &str| r.obs(name).as_f64().unwrap();
    let (fork, spawn, served) = (
        us("fork_start_us"),
        us("spawn_start_us"),
        us("forkserver_start_us"),
    );
    assert!(fork > 0.0 && spawn > 0.0 && served > 0.0);
    // The only timing claim is the one that holds on a busy machine, by far.
    let claim = r
        .observations()
        .into_iter()
        .find(|o| o.name == "forkserver_start_us")
        .unwrap();
    assert_eq!(claim.holds, Some(served < spawn));

    for s in r.spawns() {
        r.exit_of(s.pid);
    }
    assert!(r.end().ok, "{}", r.show());
}

#[test]
fn this_machines_python_default_is_what_python3_says() {
    let out = std::process::Command::new("python3")
        .args(["-c", "import multiprocessing as mp; print(mp.get_start_method())"])
        .output();
    let r = common::lesson_json("start-methods", &["--rounds", "3"]);
    r.assert_code(0);
    match out {
        Ok(o) if o.status.success() => {
            let method = String::from_utf8_lossy(&o.stdout).trim().to_string();
            assert_eq!(r.obs("python_start_method"), method.as_str());
            let py = r.spawn_of("python3");
            assert_eq!((py.ppid, py.how), (r.main_pid(), How::Spawn));
            assert!(r.say("python_default").text.contains(&method));
        }
        _ => {
            assert!(r.said("python_missing") || r.said("python_failed"));
            eprintln!("python3 is not here: only its absence was checked");
        }
    }
}

#[test]
fn rounds_out_of_range_is_a_usage_error() {
    common::run(&["start-methods", "--rounds", "2"]).assert_code(2);
}
