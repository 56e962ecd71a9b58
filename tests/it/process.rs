//! Lesson `process`: every claim recomputed from the stream (PIDs of the spawns against
//! the main process, exit codes and reapers of the exits, states before the join, the
//! authkey prefixes each process said), and CPython's part when `python3` is there.

use crate::common;

use common::How;

#[test]
fn run_is_the_main_pid_start_a_new_one_and_join_timeout_leaves_it_running() {
    let r = common::lesson_json("process", &[]);
    r.assert_code(0);
    common::check_contract(&r);
    let main = r.main_pid();

    // run(): the target ran in the main process, and said so with its PID.
    assert_eq!(r.obs("run_pid"), main);
    let here = r.say("run_here");
    assert_eq!(here.pid, main);
    assert!(here.text.contains(&main.to_string()), "{}", here.text);

    // start(): a forked child of the main process, another PID, named Process-1.
    let child = r.obs("start_pid").as_i64().unwrap();
    assert_ne!(child, main);
    let spawn = r.spawn_of_pid(child);
    assert_eq!((spawn.ppid, spawn.how, spawn.name.as_str()), (main, How::Fork, "Process-1"));
    assert_eq!(r.say("child_hello").pid, child);

    // Its own child, Process-1:1: forked and reaped by Process-1, not by the main process.
    let grand = r.spawn_of("Process-1:1");
    assert_eq!((grand.ppid, grand.how), (child, How::Fork));
    assert_eq!(r.obs("grandchild_ppid"), child);
    let grand_exit = r.exit_of(grand.pid);
    assert_eq!((grand_exit.exitcode, grand_exit.reaped_by), (0, child));
    assert!(grand.t_ms <= grand_exit.t_ms);

    // The names are Python's: the kernel's comm is the program.
    assert_eq!(r.obs("comm_is_name"), false);
    let comm = r.obs("comm").as_str().unwrap().to_string();
    assert!(comm != "Process-1" && !comm.is_empty(), "{comm}");
    assert!(r.say("comm").text.contains(&comm));

    // authkey: each child said a prefix of its copy, the main process's prefix, and
    // exactly the two children said it.
    assert_eq!(r.obs("authkey_len"), 32);
    assert_eq!(r.obs("authkey_inherited"), true);
    let hex = |text: &str| {
        text.split(|c: char| !c.is_ascii_hexdigit())
            .find(|w| w.len() == 16)
            .map(String::from)
            .unwrap_or_else(|| panic!("no 16-digit hex prefix in {text:?}"))
    };
    let key = hex(&r.say("authkey_main").text);
    let mut sayers: Vec<i64> = r
        .says()
        .into_iter()
        .filter(|s| s.key == "authkey_child")
        .map(|s| {
            assert_eq!(hex(&s.text), key, "{}", s.text);
            s.pid
        })
        .collect();
    sayers.sort_unstable();
    let mut both = vec![child, grand.pid];
    both.sort_unstable();
    assert_eq!(sayers, both);

    // join(0.2): it gave up after at least the timeout, while the child ran (R or S in
    // /proc, no exit yet); the child's exit came only with the plain join, reaped by main.
    assert_eq!(r.obs("alive_after_join_timeout"), true);
    assert_eq!(r.obs("exitcode_while_running"), "None");
    let (asked, gave_up) = (r.say("join_timeout_intro"), r.say("join_timed_out"));
    assert!(
        gave_up.t_ms - asked.t_ms >= 190.0,
        "join(0.2) returned after {} ms",
        gave_up.t_ms - asked.t_ms
    );
    let exit = r.exit_of(child);
    assert!(exit.t_ms > gave_up.t_ms, "the child ended before join(0.2) gave up");
    let running = r
        .states()
        .into_iter()
        .rfind(|s| s.pid == child && s.t_ms <= gave_up.t_ms)
        .unwrap_or_else(|| panic!("no state of the child before the timeout\n{}", r.show()));
    assert!(matches!(running.to.as_str(), "R" | "S"), "{running}");
    assert!(gave_up.text.contains(&format!("says {}", running.to)), "{}", gave_up.text);
    assert_eq!((exit.exitcode, exit.reaped_by), (0, main));
    assert_eq!(r.obs("child_exitcode"), 0);

    // Every process started was reaped, and the verdict held.
    for s in r.spawns() {
        r.exit_of(s.pid);
    }
    assert!(r.end().ok);
}

#[test]
fn cpython_shows_the_three_mistakes_when_python3_is_there() {
    let r = common::lesson_json("process", &[]);
    r.assert_code(0);
    let has_python = std::process::Command::new("python3")
        .arg("-c")
        .arg("pass")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_python {
        assert!(r.said("python_missing") || r.said("python_failed"), "{}", r.show());
        assert!(r.observation("args_str_exitcode").is_none());
        eprintln!("python3 is not here: only its absence was checked");
        return;
    }
    // CPython ran as a child of the main process, and was reaped.
    let py = r.spawn_of("python3");
    assert_eq!((py.ppid, py.how), (r.main_pid(), How::Spawn));
    assert_eq!(r.exit_of(py.pid).exitcode, 0);
    assert_eq!(r.obs("join_unstarted_error"), "can only join a started process");
    assert_eq!(r.obs("group_error"), "group argument must be None for now");
    assert_eq!(r.obs("args_str_exitcode"), 1);
    let args = r.say("py_args");
    assert!(args.text.contains("TypeError: print_name()"), "{}", args.text);
    assert!(r.say("python_ran").text.contains(&py.pid.to_string()));
}

#[test]
fn the_lesson_takes_no_options() {
    common::run(&["process", "--workers", "2"]).assert_code(2);
}
