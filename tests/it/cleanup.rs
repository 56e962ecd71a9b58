//! Cleanup from day one: SIGINT, SIGTERM and SIGKILL of the main process in the middle
//! of a lesson leave no process and no temporary file behind.

use crate::common;

use common::{Event, Live, Spawn};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::time::Duration;

fn start(lesson: &str) -> Live {
    let live = Live::start(&["--json", "--speed", "0.05", lesson]);
    live.wait_for(Duration::from_secs(10), Event::is::<Spawn>);
    live
}

#[test]
fn sigint_ends_the_run_with_130_and_cleans_up() {
    let mut live = start("fork");
    kill(Pid::from_raw(live.pid()), Signal::SIGINT).unwrap();
    let status = live.wait_exit(Duration::from_secs(3));
    assert_eq!(status.code(), Some(130));
    let err = live.stderr();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(!err.contains("panicked"), "{err}");
    live.assert_clean(Duration::from_secs(1));
}

#[test]
fn ctrl_c_to_the_whole_process_group_cleans_up() {
    let mut live = start("fork");
    killpg(Pid::from_raw(live.pid()), Signal::SIGINT).unwrap();
    let status = live.wait_exit(Duration::from_secs(3));
    assert_eq!(status.code(), Some(130));
    live.assert_clean(Duration::from_secs(1));
}

#[test]
fn sigterm_ends_the_run_with_143_and_cleans_up() {
    let mut live = start("isolation");
    kill(Pid::from_raw(live.pid()), Signal::SIGTERM).unwrap();
    let status = live.wait_exit(Duration::from_secs(3));
    assert_eq!(status.code(), Some(143));
    live.assert_clean(Duration::from_secs(1));
}

#[test]
fn sigkill_of_the_main_process_takes_every_child_and_file_with_it() {
    let mut live = start("fork");
    kill(Pid::from_raw(live.pid()), Signal::SIGKILL).unwrap();
    live.wait_exit(Duration::from_secs(2));
    live.assert_clean(Duration::from_secs(1));
}
