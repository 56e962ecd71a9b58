//! Lesson `states`: the claims recomputed from the events themselves: the scheduler's
//! clocks the main process read (`sched`), the kernel states the observer sampled, and
//! the exit codes `waitpid` collected, each about a real forked child.

use crate::common;

use common::{Act, Ev, How, State};
use std::collections::BTreeMap;

fn check(r: &common::Run) {
    r.assert_code(0);
    common::assert_words_complete(r);
    let main = r.main_pid();

    // Every child is a fork of the main process; each ended the way its name says.
    let want: BTreeMap<&str, i64> = [
        ("reader", 0),
        ("cpu-1", 0),
        ("cpu-2", 0),
        ("normal", 0),
        ("error", 1),
        ("fatal", -11),
        ("killed", -9),
    ]
    .into_iter()
    .collect();
    let mut pid_of: BTreeMap<String, i64> = BTreeMap::new();
    for s in r.spawns() {
        assert_eq!(s.how, How::Fork, "{s}");
        assert_eq!(s.ppid, main, "{s}");
        pid_of.insert(s.name.clone(), s.pid);
    }
    assert_eq!(
        pid_of.keys().map(String::as_str).collect::<Vec<_>>(),
        want.keys().copied().collect::<Vec<_>>(),
        "{}",
        r.show()
    );
    for (name, code) in &want {
        let exit = r
            .exits()
            .into_iter()
            .find(|e| e.pid == pid_of[*name])
            .unwrap_or_else(|| panic!("no exit for {name}\n{}", r.show()));
        assert_eq!(exit.exitcode, *code, "{name}: {exit}");
        assert_eq!(exit.reaped_by, main, "{exit}");
    }
    for (obs, name) in [
        ("exit_normal", "normal"),
        ("exit_error", "error"),
        ("exit_fatal", "fatal"),
        ("exit_killed", "killed"),
    ] {
        assert_eq!(r.obs(obs), want[name], "{obs}");
    }

    // Running and ready: the clocks of each CPU-bound process, as read, grew from the
    // first reading to the last, and every reading said R.
    let hogs = [pid_of["cpu-1"], pid_of["cpu-2"]];
    let sched = r.acts("sched");
    assert!(sched.iter().all(|e| hogs.contains(&e.pid)));
    assert!(sched.iter().all(|e| e.str("state") == "R"), "{}", r.show());
    let mut ready_sum = 0.0;
    for pid in hogs {
        let mine: Vec<&Ev<Act>> = sched.iter().filter(|e| e.pid == pid).collect();
        assert!(mine.len() >= 5, "at least 5 readings of {pid}");
        for w in mine.windows(2) {
            for field in ["cpu_ms", "ready_ms", "turns"] {
                assert!(
                    w[1].num(field) >= w[0].num(field),
                    "a clock went back: {w:?}"
                );
            }
        }
        let (a, b) = (mine[0], mine[mine.len() - 1]);
        assert!(
            b.num("cpu_ms") > a.num("cpu_ms"),
            "{pid} never ran\n{}",
            r.show()
        );
        assert!(
            b.num("ready_ms") > a.num("ready_ms"),
            "{pid} never waited ready\n{}",
            r.show()
        );
        ready_sum += b.num("ready_ms") - a.num("ready_ms");
        // The observer agrees: it last saw the process R before the first reading, and
        // saw no other letter until the last one.
        let states: Vec<Ev<State>> = r.states().into_iter().filter(|s| s.pid == pid).collect();
        let before = states
            .iter()
            .rev()
            .find(|s| s.t_ms <= a.t_ms)
            .expect("a state");
        assert_eq!(before.to, "R", "{before}");
        assert!(states
            .iter()
            .filter(|s| s.t_ms > a.t_ms && s.t_ms <= b.t_ms)
            .all(|s| s.to == "R"));
    }
    assert_eq!(r.obs("running_and_ready"), true);
    let ready_ms = r.obs("ready_ms").as_f64().unwrap();
    assert!(
        (ready_ms - ready_sum).abs() < 0.05,
        "ready_ms {ready_ms} vs {ready_sum}"
    );

    // Blocked, then woken: the observer saw the reader asleep in a pipe read before the
    // write, and runnable after it, then a zombie.
    let reader = pid_of["reader"];
    let wake = r
        .says()
        .into_iter()
        .find(|s| s.key == "wake")
        .expect("the write");
    let states: Vec<Ev<State>> = r.states().into_iter().filter(|s| s.pid == reader).collect();
    let asleep = states
        .iter()
        .find(|s| s.to == "S")
        .unwrap_or_else(|| panic!("reader never S\n{}", r.show()));
    assert!(asleep.t_ms < wake.t_ms);
    // Where it sleeps: the kernel function, when the kernel told it (a sample taken as
    // the process was just going to sleep may not have it yet).
    for s in states.iter().filter(|s| s.t_ms < wake.t_ms) {
        if let Some(w) = &s.waiting_in {
            assert!(w.contains("pipe"), "{s}");
        }
    }
    let wchan = r.obs("blocked_wchan").as_str().unwrap();
    assert!(wchan == "?" || wchan.contains("pipe"), "{wchan}");
    assert!(
        states
            .iter()
            .filter(|s| s.t_ms > asleep.t_ms && s.t_ms < wake.t_ms)
            .all(|s| s.to == "S"),
        "the reader woke before the write\n{}",
        r.show()
    );
    let woken = states
        .iter()
        .find(|s| s.to == "R" && s.t_ms >= wake.t_ms)
        .unwrap_or_else(|| panic!("reader never R after the write\n{}", r.show()));
    let zombie = states.iter().find(|s| s.to == "Z").expect("a zombie");
    assert!(woken.t_ms < zombie.t_ms);
    assert_eq!(r.obs("blocked_state"), "S");
    assert_eq!(r.obs("woken_state"), "R");
    assert!(r.obs("woken_ready_ms").as_f64().unwrap() >= 0.0);
}

#[test]
fn running_ready_blocked_and_four_endings_hold_on_every_run() {
    for _ in 0..3 {
        check(&common::lesson_json("states", &[]));
    }
}

/// The fatal child writes no core file, even where core files are allowed: run with
/// RLIMIT_CORE raised as far as the hard limit lets, in an empty directory.
#[test]
fn the_fatal_error_leaves_no_core_file() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mp-demo"));
    cmd.args(["--speed", "0", "--json", "states"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null());
    // SAFETY: between fork and exec, only getrlimit/setrlimit (system calls).
    unsafe {
        cmd.pre_exec(|| {
            use nix::sys::resource::{getrlimit, setrlimit, Resource};
            let (_, hard) = getrlimit(Resource::RLIMIT_CORE)?;
            setrlimit(Resource::RLIMIT_CORE, hard, hard)?;
            Ok(())
        });
    }
    let status = cmd.status().unwrap();
    assert!(status.success(), "{status:?}");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "files left: {left:?}");
}

#[test]
fn chinese_words_are_complete_and_options_are_refused() {
    let r = common::run(&["--speed", "0", "--json", "--lang", "zh", "states"]);
    r.assert_code(0);
    common::assert_words_complete(&r);
    assert!(r.says().iter().any(|s| s.text.contains("就绪")));
    let bad = common::run(&["states", "--workers", "2"]);
    bad.assert_code(2);
    assert!(!bad.stderr.contains("panicked"), "{}", bad.show());
}
