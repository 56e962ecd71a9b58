//! Lesson `threads`: one PID and three TIDs, a thread's write seen, two threads on two
//! CPUs, a daemon thread ended at exit; each claim recomputed from the events.

use crate::common;

#[test]
fn one_pid_shared_memory_two_cpus_and_a_daemon_thread_left_behind() {
    let r = common::lesson_json("threads", &[]);
    r.assert_code(0);
    let process = r.spawn_of("process");
    let pid = process.pid;

    // One PID, three TIDs: the first is the PID itself (the main thread).
    let tids: Vec<_> = r
        .acts("task")
        .into_iter()
        .filter(|t| t.str("phase") == "tids")
        .collect();
    assert_eq!(tids.len(), 3);
    assert_eq!(r.obs("tids"), 3);
    assert!(tids.iter().all(|t| t.pid == pid));
    assert!(tids.iter().any(|t| t.int("tid") == pid));

    // The thread wrote 0 where the main thread then read 0: the same address.
    let write = r.acts("write").into_iter().next().expect("a write");
    let read = r.acts("read").into_iter().next().expect("a read");
    assert_eq!(write.int("value"), 0);
    assert_eq!(read.int("value"), 0);
    assert_eq!(write.str("addr"), read.str("addr"));
    assert_ne!(write.int("tid"), read.int("tid"));
    assert_eq!(read.int("tid"), pid);
    assert_eq!(r.obs("thread_write_seen"), true);
    assert_eq!(r.obs("same_address"), true);

    // Two spinning threads, both R, on two different CPUs in one sample (with 2 CPUs).
    let spin: Vec<_> = r
        .acts("task")
        .into_iter()
        .filter(|t| t.str("phase") == "spin")
        .collect();
    assert_eq!(spin.len(), 2);
    if r.obs("cpus_usable").as_i64().unwrap_or(0) >= 2 {
        assert!(spin.iter().all(|t| t.str("state") == "R"));
        assert_ne!(spin[0].int("cpu"), spin[1].int("cpu"));
        assert_eq!(r.obs("both_running_on_two_cpus"), true);
    }

    // The normal thread's job ended before the process exited; the daemon thread's
    // never did, though it was still there once the normal one was joined.
    let starts = r.acts("thread_start");
    let done = r.acts("thread_done");
    let daemon = starts.iter().find(|s| s.bool("daemon")).expect("a daemon thread");
    let worker = starts.iter().find(|s| !s.bool("daemon")).expect("a normal thread");
    assert!(done.iter().any(|d| d.int("tid") == worker.int("tid")));
    assert!(done.iter().all(|d| d.int("tid") != daemon.int("tid")));
    let left: Vec<i64> = r
        .acts("task")
        .into_iter()
        .filter(|t| t.str("phase") == "exit")
        .map(|t| t.int("tid"))
        .collect();
    assert!(left.contains(&daemon.int("tid")), "{left:?}");
    assert!(!left.contains(&worker.int("tid")), "{left:?}");
    assert_eq!(r.obs("joined_thread_finished"), true);
    assert_eq!(r.obs("daemon_thread_finished"), false);
    let exit = r
        .exits()
        .into_iter()
        .find(|e| e.pid == pid)
        .expect("the process was reaped");
    assert_eq!(exit.exitcode, 0);
}
