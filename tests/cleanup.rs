//! Cleanup from day one: SIGINT, SIGTERM and SIGKILL of the main process in the middle
//! of a lesson leave no process and no temporary file behind.

mod common;

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Live {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<Value>,
    tag: String,
    tmp: tempfile::TempDir,
}

/// Start `mp-demo --json <lesson>` at normal speed with a private TMPDIR, and wait until
/// it has started a child process.
fn start(lesson: &str) -> Live {
    let tag = format!(
        "mp-demo-cleanup-{}-{lesson}-{:?}",
        std::process::id(),
        Instant::now()
    );
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mp-demo"))
        .args(["--json", "--speed", "0.25", lesson])
        .env("MP_DEMO_TEST_TAG", &tag)
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                let _ = tx.send(v);
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ev = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the lesson starts a child");
        if ev["kind"] == "spawn" {
            break;
        }
    }
    Live {
        child,
        lines: rx,
        tag,
        tmp,
    }
}

fn wait_exit(live: &mut Live, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = live.child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "mp-demo did not end within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn assert_clean(live: &Live, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let left = common::tagged_processes(&live.tag);
        let files: Vec<_> = std::fs::read_dir(live.tmp.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        if left.is_empty() && files.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            for (pid, _) in &left {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(*pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            panic!("left behind after {within:?}: processes {left:?}, files {files:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn signal(live: &Live, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(live.child.id() as i32), sig).unwrap();
}

#[test]
fn sigint_ends_the_run_with_130_and_cleans_up() {
    let mut live = start("fork");
    signal(&live, nix::sys::signal::Signal::SIGINT);
    let status = wait_exit(&mut live, Duration::from_secs(3));
    assert_eq!(status.code(), Some(130));
    let mut err = String::new();
    std::io::Read::read_to_string(live.child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_clean(&live, Duration::from_secs(1));
    drop(live.lines);
}

#[test]
fn ctrl_c_to_the_whole_process_group_cleans_up() {
    let mut live = start("fork");
    let pgid = nix::unistd::Pid::from_raw(live.child.id() as i32);
    nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = wait_exit(&mut live, Duration::from_secs(3));
    assert_eq!(status.code(), Some(130));
    assert_clean(&live, Duration::from_secs(1));
}

#[test]
fn sigterm_ends_the_run_with_143_and_cleans_up() {
    let mut live = start("isolation");
    signal(&live, nix::sys::signal::Signal::SIGTERM);
    let status = wait_exit(&mut live, Duration::from_secs(3));
    assert_eq!(status.code(), Some(143));
    assert_clean(&live, Duration::from_secs(1));
}

#[test]
fn sigkill_of_the_main_process_takes_every_child_and_file_with_it() {
    let mut live = start("fork");
    signal(&live, nix::sys::signal::Signal::SIGKILL);
    wait_exit(&mut live, Duration::from_secs(2));
    assert_clean(&live, Duration::from_secs(1));
}
