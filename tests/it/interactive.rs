//! `--step`, `--quiz` and the tour, driven through a pseudo-terminal as a person would:
//! keys pressed, pauses that really wait, `q` (quietly, exit 0) and Ctrl-C (exit 130) that
//! stop at once with the terminal restored.

use crate::common;

use rexpect::session::{spawn_command, PtySession};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

fn tag() -> String {
    format!("mp-demo-pty-{}-{:?}", std::process::id(), Instant::now())
}

/// `mp-demo args` on a pseudo-terminal, tagged, without colours (also used by `pauses`).
pub(crate) fn session(args: &[&str], tag: &str) -> PtySession {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mp-demo"));
    cmd.args(common::paced(args))
        .env("MP_DEMO_TEST_TAG", tag)
        .env("TERM", "xterm")
        .env("NO_COLOR", "1");
    spawn_command(cmd, Some(10_000)).expect("a pseudo-terminal")
}

/// Everything the program writes during `dur`, without pressing anything.
fn quiet_for(p: &mut PtySession, dur: Duration) -> String {
    let mut got = String::new();
    let deadline = Instant::now() + dur;
    while Instant::now() < deadline {
        match p.try_read() {
            Some(c) => got.push(c),
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    got
}

fn exit_code(p: &PtySession) -> String {
    format!("{:?}", p.process().wait().expect("the exit status"))
}

/// The pty's terminal settings have canonical mode and signals back on (raw mode
/// undone). Echo is not checked: rexpect turns it off itself.
fn assert_terminal_restored(p: &PtySession) {
    let f = p.process().get_file_handle().expect("the pty");
    let t = nix::sys::termios::tcgetattr(&f).expect("tcgetattr");
    use nix::sys::termios::LocalFlags;
    assert!(
        t.local_flags
            .contains(LocalFlags::ICANON | LocalFlags::ISIG | LocalFlags::IEXTEN),
        "raw mode left on: {:?}",
        t.local_flags
    );
}

fn assert_nothing_left(tag: &str) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !common::tagged_processes(tag).is_empty() {
        assert!(
            Instant::now() < deadline,
            "left: {:?}",
            common::tagged_processes(tag)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The run waits at `prompt`: nothing of `not_yet` is written while nobody presses a key.
fn waits_at(p: &mut PtySession, prompt: &str, not_yet: &str) {
    p.exp_string(prompt).unwrap();
    let during = quiet_for(p, Duration::from_millis(700));
    assert!(
        !during.contains(not_yet),
        "went on without a key: {during}"
    );
}

/// `key` pressed at `prompt`.
fn press_at(p: &mut PtySession, prompt: &str, key: &str) {
    p.exp_string(prompt).unwrap();
    p.send(key).unwrap();
    p.flush().unwrap();
}

/// The run that ended ended with exit `code`, the terminal restored and nothing of it left.
fn ended(p: &PtySession, t: &str, code: i32) {
    let status = exit_code(p);
    assert!(status.ends_with(&format!(", {code})")), "{status}");
    assert_terminal_restored(p);
    assert_nothing_left(t);
}

#[test]
fn step_waits_for_a_key_and_then_goes_on() {
    let t = tag();
    let mut p = session(&["--step", "--speed", "0", "isolation"], &t);
    p.exp_string("Step 1").unwrap();
    // Paused: nothing more is written while nobody presses a key.
    waits_at(&mut p, "Space or Enter", "Step 2");
    p.send(" ").unwrap();
    p.flush().unwrap();
    p.exp_string("Step 2").unwrap();
    for _ in 0..2 {
        p.exp_string("Space or Enter").unwrap();
        p.send("\r").unwrap();
        p.flush().unwrap();
    }
    p.exp_string("Every claim held").unwrap();
    p.exp_eof().unwrap();
    ended(&p, &t, 0);
}

#[test]
fn q_during_a_pause_stops_at_once_and_restores_the_terminal() {
    let t = tag();
    let mut p = session(&["--step", "fork"], &t);
    p.exp_string("Space or Enter").unwrap();
    p.send(" ").unwrap();
    p.flush().unwrap();
    p.exp_string("Step 2").unwrap();
    p.exp_string("Space or Enter").unwrap();
    let asked = Instant::now();
    p.send("q").unwrap();
    p.flush().unwrap();
    // `q` is the person's choice, not an interruption: one quiet line, exit 0.
    let rest = p.exp_string("stopped (q)").unwrap();
    assert!(!rest.contains("interrupted"), "{rest}");
    p.exp_eof().unwrap();
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "took {:?}",
        asked.elapsed()
    );
    ended(&p, &t, 0);
}

/// `q` at `prompt` ends the run quietly: one line, no interruption, exit 0. What the run
/// wrote after the prompt, up to that line.
fn q_at(args: &[&str], prompt: &str) -> String {
    let t = tag();
    let mut p = session(args, &t);
    press_at(&mut p, prompt, "q");
    let before = p.exp_string("stopped (q)").unwrap();
    assert!(!before.contains("interrupted"), "{before}");
    p.exp_eof().unwrap();
    ended(&p, &t, 0);
    before
}

/// Ctrl-C at `prompt` (raw mode reads it as a byte) is an interrupt, as outside one.
fn ctrl_c_at(args: &[&str], prompt: &str) {
    let t = tag();
    let mut p = session(args, &t);
    p.exp_string(prompt).unwrap();
    p.send_control('c').unwrap();
    p.exp_string("interrupted").unwrap();
    p.exp_eof().unwrap();
    ended(&p, &t, 130);
}

#[test]
fn ctrl_c_during_a_pause_stops_at_once_and_restores_the_terminal() {
    ctrl_c_at(&["--step", "fork"], "Space or Enter");
}

#[test]
fn the_tour_waits_for_enter_between_lessons_and_sums_up_at_the_end() {
    let t = tag();
    let mut p = session(&["--speed", "0", "tour", "isolation", "fork"], &t);
    p.exp_string("lesson 1 of 2: isolation").unwrap();
    // The card says what the lesson shows: its summary.
    p.exp_string("The child sets n = 0").unwrap();
    p.exp_string("lesson 2 of 2: fork").unwrap();
    p.exp_string("A real fork()").unwrap();
    // Waiting: the second lesson has not started while nobody presses a key.
    waits_at(&mut p, "Enter for the next lesson, q to stop", "mp-demo fork");
    press_at(&mut p, "", "\r");
    p.exp_string("mp-demo fork").unwrap();
    let (_, summary) = p
        .exp_regex(r"Tour over: 2 of 2 lessons run, (\d+) of (\d+) claims held, in [0-9.]+ s\.")
        .unwrap();
    let n: Vec<&str> = summary.split(' ').collect();
    assert_eq!(n[7], n[9], "every claim held: {summary}");
    p.exp_eof().unwrap();
    ended(&p, &t, 0);
}

#[test]
fn q_at_the_tours_prompt_ends_quietly_with_what_ran() {
    let before = q_at(
        &["--speed", "0", "tour", "--from", "shared"],
        "Enter for the next lesson",
    );
    assert!(before.contains("Tour over: 1 of "), "{before}");
}

#[test]
fn ctrl_c_at_the_tours_prompt_is_an_interrupt() {
    ctrl_c_at(
        &["--speed", "0", "tour", "isolation", "fork"],
        "Enter for the next lesson",
    );
}

#[test]
fn quiz_asks_first_and_judges_against_the_run() {
    let t = tag();
    let mut p = session(&["--quiz", "--speed", "0", "isolation"], &t);
    p.exp_string("parent print for n").unwrap();
    // Nothing of the lesson has run yet: no step, no process.
    let before = quiet_for(&mut p, Duration::from_millis(300));
    assert!(
        !before.contains("Step 1"),
        "ran before the answer: {before}"
    );
    p.send("2").unwrap(); // 100: right
    p.flush().unwrap();
    p.exp_string("MAP_SHARED").unwrap();
    p.send("2").unwrap(); // 100: wrong
    p.flush().unwrap();
    p.exp_string("Step 1").unwrap();
    // Judged after the verdict it refers to, in the lesson's words ([verdict.*]), each
    // with the observation's name.
    p.exp_string("What this run observed").unwrap();
    p.exp_string("Right. In this run:").unwrap();
    p.exp_string("(parent_value_after)").unwrap();
    p.exp_string("Not this time. In this run:").unwrap();
    p.exp_string("(shared_value_after)").unwrap();
    p.exp_eof().unwrap();
    assert!(exit_code(&p).ends_with(", 0)"), "{}", exit_code(&p));
    assert_nothing_left(&t);
}

#[test]
fn the_quiz_is_judged_in_the_stream_before_lesson_end() {
    let t = tag();
    let mut p = session(&["--quiz", "--json", "--speed", "0", "isolation"], &t);
    p.exp_string("parent print for n").unwrap();
    p.send("2").unwrap();
    p.flush().unwrap();
    p.exp_string("MAP_SHARED").unwrap();
    p.send("1").unwrap();
    p.flush().unwrap();
    let (stream, _) = p.exp_regex(r#""kind":"lesson_end"[^\n]*"#).unwrap();
    let quizzes = stream.matches(r#""kind":"quiz""#).count();
    assert_eq!(quizzes, 2, "both judged before lesson_end: {stream}");
    p.exp_eof().unwrap();
    assert_nothing_left(&t);
}

#[test]
fn q_at_a_quiz_question_ends_quietly_before_anything_ran() {
    let before = q_at(&["--quiz", "--speed", "0", "isolation"], "parent print for n");
    assert!(!before.contains("Step 1"), "{before}");
}

#[test]
fn step_and_quiz_without_a_terminal_are_refused_quickly() {
    for flag in ["--step", "--quiz"] {
        let started = Instant::now();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mp-demo"));
        cmd.args([flag, "fork"]).stdin(std::process::Stdio::null());
        // A new session has no controlling terminal.
        // SAFETY: setsid is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                Ok(())
            });
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("needs a terminal") && err.lines().count() == 1,
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}

/// A fresh pseudo-terminal (of `size`, if given): its master, not inherited by a child (or
/// the child itself would keep its terminal open), and its slave.
pub(crate) fn pty_pair(size: Option<&nix::pty::Winsize>) -> (std::fs::File, std::fs::File) {
    let pty = nix::pty::openpty(size, None).expect("openpty");
    nix::fcntl::fcntl(
        &pty.master,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .expect("FD_CLOEXEC");
    (pty.master.into(), pty.slave.into())
}

/// `mp-demo <args>` on a fresh pseudo-terminal that is its controlling terminal (its own
/// session), optionally with SIGHUP blocked so the kernel's hang-up signal never arrives
/// and only the terminal itself (EOF, EIO, POLLHUP) can tell. Reads the output until
/// `until` appears, then closes the terminal (the master: a window closed, `tmux
/// kill-session`) and returns how long the whole process tree took to be gone.
fn hang_up_after(args: &[&str], until: &str, block_sighup: bool) -> Duration {
    use std::io::Read;
    let t = tag();
    let (master, slave) = pty_pair(None);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mp-demo"));
    cmd.args(common::paced(args))
        .env("MP_DEMO_TEST_TAG", &t)
        .env("TERM", "xterm")
        .env("NO_COLOR", "1")
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave.try_clone().unwrap());
    // SAFETY: between fork and exec only setsid, ioctl and sigprocmask, all
    // async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            nix::unistd::setsid()?;
            if nix::libc::ioctl(0, nix::libc::TIOCSCTTY, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if block_sighup {
                let mut set = nix::sys::signal::SigSet::empty();
                set.add(nix::sys::signal::Signal::SIGHUP);
                set.thread_block()?;
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("mp-demo on a pty");
    drop(cmd); // it holds the slave's clones
    drop(slave);
    // One descriptor of the master, read here with poll: a clone kept anywhere would
    // keep the terminal open after the drop below.
    let mut master = master;
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    while !seen.contains(until) {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        assert!(
            Instant::now() < deadline,
            "no {until:?} within 10 s; saw: {seen}"
        );
        let mut fds = [PollFd::new(
            std::os::fd::AsFd::as_fd(&master),
            PollFlags::POLLIN,
        )];
        if poll(&mut fds, PollTimeout::from(100u16)).unwrap_or(0) > 0 {
            match master.read(&mut buf) {
                Ok(n) if n > 0 => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
                _ => panic!("the terminal ended before {until:?}; saw: {seen}"),
            }
        }
    }
    let hung = Instant::now();
    drop(master);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let took = hung.elapsed();
            use std::os::unix::process::ExitStatusExt;
            assert_ne!(status.code(), Some(101), "panicked: {status:?}");
            assert_ne!(status.signal(), Some(6), "aborted: {status:?}");
            assert_nothing_left(&t);
            return took;
        }
        if hung.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            panic!("still running 5 s after the terminal closed; saw: {seen}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_terminal_closed_at_a_step_pause_ends_the_run_within_two_seconds() {
    let took = hang_up_after(&["--step", "fork"], "Space or Enter", false);
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[test]
fn a_terminal_closed_at_a_step_pause_ends_the_run_even_without_sighup() {
    let took = hang_up_after(&["--step", "fork"], "Space or Enter", true);
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[test]
fn a_terminal_closed_at_a_quiz_prompt_ends_the_run_within_two_seconds() {
    for block in [false, true] {
        let took = hang_up_after(&["--quiz", "fork"], "> ", block);
        assert!(
            took < Duration::from_secs(2),
            "took {took:?} (SIGHUP blocked: {block})"
        );
    }
}

#[test]
fn a_terminal_closed_while_a_lesson_runs_ends_the_run_within_two_seconds() {
    for block in [false, true] {
        let took = hang_up_after(&["fork"], "PID", block);
        assert!(
            took < Duration::from_secs(2),
            "took {took:?} (SIGHUP blocked: {block})"
        );
    }
}

/// The live panel stays on the screen during a pause: the room compares it with `ps`.
/// At lock's second pause every buyer is there, asleep, as the kernel says; at its
/// fourth, the one holding the lock and the two waiting for it are marked so.
#[test]
fn a_pause_keeps_the_panel_on_the_screen() {
    let t = tag();
    let mut p = session(&["--step", "lock", "--buyers", "3"], &t);
    press_at(&mut p, "Space or Enter", " ");
    let (before, _) = p.exp_regex("Space or Enter").unwrap();
    let (_, panel) = before
        .rsplit_once("now, as the kernel shows it:")
        .unwrap_or_else(|| panic!("no panel at the pause: {before}"));
    for n in 1..=3 {
        let line = panel
            .lines()
            .find(|l| l.contains(&format!("buyer-{n} ")))
            .unwrap_or_else(|| panic!("buyer-{n} is not in the panel: {panel}"));
        assert!(line.contains(" S "), "buyer-{n} asleep: {line}");
    }
    // Pause 4, the lock taken: its holder is marked, and so is each waiter.
    p.send(" ").unwrap();
    p.flush().unwrap();
    press_at(&mut p, "Space or Enter", " ");
    let (before, _) = p.exp_regex("Space or Enter").unwrap();
    let (_, panel) = before
        .rsplit_once("now, as the kernel shows it:")
        .unwrap_or_else(|| panic!("no panel at the pause: {before}"));
    let marked = |mark: &str| panel.lines().filter(|l| l.contains(mark)).count();
    assert_eq!(marked("holds the lock"), 1, "one holder: {panel}");
    assert_eq!(marked("waits for the lock"), 2, "two waiters: {panel}");
    p.send("q").unwrap();
    p.flush().unwrap();
    p.exp_eof().unwrap();
    ended(&p, &t, 0);
}
