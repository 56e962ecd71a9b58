//! Lesson `states`: the study notes' three process states (running, ready, blocked) on
//! real processes, and the four ways a process ends.
//!
//! - Running and ready: two CPU-bound processes pinned to one CPU with
//!   `sched_setaffinity`. The kernel shows both as `R` (runnable), so the difference is
//!   read from its own accounting, `/proc/<pid>/schedstat`: time on the CPU and time
//!   spent waiting on a run queue. Both clocks of both processes advance: at any moment
//!   one runs while the other is ready.
//! - Blocked: a third process reads an empty pipe (`S`, its `wchan` says where). A write
//!   wakes it: blocked -> ready (it joins the run queue of the same CPU, `R`) -> running;
//!   it computes a little, then exits.
//! - Ending: four children, one per way the notes list: a normal exit (0), an error exit
//!   (1), a fatal error (an illegal memory access: SIGSEGV, -11) and a kill by another
//!   process (SIGKILL, -9), each exit code collected with `waitpid`.
//!
//! Every child here is forked and does only async-signal-safe work (read, poll, write,
//! open, setrlimit, prctl, pause, clock_gettime, arithmetic): the main process is
//! multi-threaded.

use super::{LessonDef, Opts};
use crate::ctx::{Ctx, Expect};
use crate::event::{now_ns, ObsValue};
use crate::procs::{self, Note};
use crate::sys::proc::{self, Call, Sched};
use crate::{say, say_for, step};
use anyhow::{Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// This lesson's words, whose keys the word macros check at compile time.
const WORDS: &crate::words::keys::Table = &crate::words::keys::STATES;

pub static LESSON: LessonDef = LessonDef {
    name: "states",
    words_src: include_str!("../../lessons/states.toml"),
    options: &[],
    run,
    validate: None,
    roles: &[],
};

/// How long anything here may take before it is an error; far more than it needs.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The scheduler's clocks are read this many times, this far apart at `--speed 0`
/// (scaled up at normal speed so that a person can follow them) ...
const SAMPLES: usize = 5;
const SAMPLE_MS: f64 = 8.0;
/// ... and, if a clock has not moved by then (a very idle or very odd scheduler), up
/// to this many times in all.
const MAX_SAMPLES: usize = 40;
/// CPU time the woken reader computes before it exits: long enough for the observer
/// (every 2 ms) to see it runnable.
const WAKE_CPU_NS: u64 = 6_000_000;

crate::note_kinds! {
    /// What a note of this lesson's children says (`Note::a`).
    enum Said {
        /// Note kinds of the reader.
        ReaderWoke = 1,
        /// Note kinds of the children that end.
        EndingHello = 0,
    }
}

/// A little pure computation on the stack, so that the CPU has work to do.
fn churn(x: &mut u64) {
    for _ in 0..2000 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
    }
}

/// Milliseconds, rounded to 0.01 ms, for events and observations.
fn ms(ns: u64) -> f64 {
    (ns as f64 / 1e4).round() / 100.0
}

fn fmt_ms(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1e6)
}

fn run(ctx: &mut Ctx<'_>, _opts: &Opts) -> Result<()> {
    three_states(ctx)?;
    ctx.pause(2500)?;
    endings(ctx)?;
    ctx.pause(1500)?;
    say!(ctx, "moral", &[]);
    // The last step's pause, once its story is told.
    ctx.show(0)
}

/// Running, ready and blocked, on three real processes.
fn three_states(ctx: &mut Ctx<'_>) -> Result<()> {
    let cpu = *crate::procs::allowed_cpus(Pid::from_raw(0))
        .first()
        .context("sched_getaffinity() gave no CPU")?;
    step!(ctx, "three", &[])?;
    say!(ctx, "three_intro", &[("cpu", &cpu)]);
    ctx.pause(1200)?;
    let three = fork_three(ctx, cpu)?;
    blocked(ctx, &three)?;
    open_gate(ctx, &three)?;
    running_and_ready(ctx, &three)?;
    wake(ctx, &three)?;

    say!(ctx, "stop_hogs", &[]);
    nix::unistd::write(&three.stop_w, b"s").context("write() to the stop pipe")?;
    for &pid in &three.hogs {
        ctx.join(pid)?;
    }
    ctx.pause(1500)?;
    say!(ctx, "diagram", &[]);
    Ok(())
}

/// What the phases of [`three_states`] share: the three children, all pinned to one CPU,
/// and the pipes that move them on.
struct Three {
    cpu: usize,
    /// Blocked in read() until a byte comes on `data_w`; then it computes, writes one
    /// note on `note_r`'s pipe and exits.
    reader: Pid,
    data_w: OwnedFd,
    note_r: OwnedFd,
    /// The two CPU-bound processes: held until a byte on `gate_w`, computing until a byte
    /// on `stop_w`.
    hogs: Vec<Pid>,
    gate_w: OwnedFd,
    stop_w: OwnedFd,
}

/// Fork the reader and the two CPU-bound processes, each pinned to `cpu` once forked.
fn fork_three(ctx: &mut Ctx<'_>, cpu: usize) -> Result<Three> {
    // The reader: blocked in read() on an empty pipe until we write to it.
    let (data_r, data_w) = procs::pipe()?;
    let (note_r, note_w) = procs::pipe()?;
    let reader = fork_reader(ctx, data_r.as_raw_fd(), note_w.as_raw_fd())?;
    drop(data_r);
    crate::procs::pin(reader, cpu)?;

    // Two CPU-bound processes, held at a start gate, computing until told to stop.
    let (gate_r, gate_w) = procs::pipe()?;
    let (stop_r, stop_w) = procs::pipe()?;
    let mut hogs = Vec::new();
    for i in 1..=2u64 {
        let pid = fork_hog(ctx, i, gate_r.as_raw_fd(), stop_r.as_raw_fd())?;
        crate::procs::pin(pid, cpu)?;
        hogs.push(pid);
    }
    drop(gate_r);
    drop(stop_r);
    drop(note_w);
    Ok(Three {
        cpu,
        reader,
        data_w,
        note_r,
        hogs,
        gate_w,
        stop_w,
    })
}

/// Fork the reader: it blocks reading one byte from `rfd`, then computes for
/// [`WAKE_CPU_NS`] and tells `nfd` what read() returned.
fn fork_reader(ctx: &mut Ctx<'_>, rfd: RawFd, nfd: RawFd) -> Result<Pid> {
    let child_body = move || {
        let mut byte = [0u8; 1];
        // SAFETY: read(2) into a stack buffer of the length passed; async-signal-safe.
        let n = unsafe { nix::libc::read(rfd, byte.as_mut_ptr().cast(), 1) };
        // Woken: some work for the CPU, so that it is runnable for a while.
        let start = crate::procs::thread_cpu_ns();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        while crate::procs::thread_cpu_ns().saturating_sub(start) < WAKE_CPU_NS {
            churn(&mut x);
        }
        std::hint::black_box(x);
        Note::tell(nfd, Said::ReaderWoke, n as i64);
        0
    };
    // SAFETY: the child calls read(2), clock_gettime and Note::send only and computes on
    // the stack: all async-signal-safe, no allocation. It returns its status to _exit.
    unsafe { ctx.fork("reader", child_body) }
}

/// Fork CPU-bound process `cpu-<i>`: it waits for a byte on `gfd`, then computes until
/// `sfd` is readable.
fn fork_hog(ctx: &mut Ctx<'_>, i: u64, gfd: RawFd, sfd: RawFd) -> Result<Pid> {
    let child_body = move || {
        let mut byte = [0u8; 1];
        // SAFETY: read(2) into a stack buffer of the length passed; async-signal-safe.
        unsafe { nix::libc::read(gfd, byte.as_mut_ptr().cast(), 1) };
        let mut x: u64 = 0x2545_F491_4F6C_DD1D ^ i;
        loop {
            churn(&mut x);
            // A zero timeout: poll() never sleeps, so the process stays runnable.
            let mut pfd = nix::libc::pollfd {
                fd: sfd,
                events: nix::libc::POLLIN,
                revents: 0,
            };
            // SAFETY: poll(2) on one pollfd on the stack, zero timeout; async-signal-safe.
            if unsafe { nix::libc::poll(&mut pfd, 1, 0) } != 0 {
                break;
            }
        }
        std::hint::black_box(x);
        0
    };
    // SAFETY: the child calls read(2) and poll(2) only and computes on the stack: all
    // async-signal-safe, no allocation. It returns its status to _exit.
    unsafe { ctx.fork(&format!("cpu-{i}"), child_body) }
}

/// Blocked: the kernel's word for the reader (`S`), and where it sleeps (`wchan`).
fn blocked(ctx: &mut Ctx<'_>, three: &Three) -> Result<()> {
    let (reader, hogs) = (three.reader, &three.hogs);
    step!(
        ctx,
        "blocked",
        &[("pid", &reader), ("a", &hogs[0]), ("b", &hogs[1])],
    )?;
    let blocked = ctx.wait_blocked_in(reader, Call::Read, TIMEOUT)?;
    let blocked_state = blocked.as_ref().map_or('?', |b| b.0);
    let wchan = blocked.map_or_else(|| "?".to_string(), |b| b.1);
    if blocked_state == 'S' {
        say!(
            ctx,
            "blocked_seen",
            &[
                ("pid", &reader),
                ("state", &blocked_state),
                ("wchan", &wchan),
            ],
        );
    } else {
        say!(ctx, "blocked_not_seen", &[("pid", &reader)]);
    }
    ctx.claim("blocked_state", blocked_state.to_string(), Expect::eq("S"));
    ctx.observe("blocked_wchan", wchan);
    ctx.show(2000)?;
    say!(ctx, "blocked_own_doing", &[]);
    ctx.pause(2500)?;
    Ok(())
}

/// Running and ready, the start: open the gate, and wait until both CPU-bound processes
/// have passed it: both runnable, one CPU for the two.
fn open_gate(ctx: &mut Ctx<'_>, three: &Three) -> Result<()> {
    let hogs = &three.hogs;
    step!(ctx, "go", &[])?;
    say!(
        ctx,
        "hogs_intro",
        &[("a", &hogs[0]), ("b", &hogs[1]), ("cpu", &three.cpu)],
    );
    ctx.pause(1500)?;
    say!(ctx, "gate", &[]);
    let at_gate: Vec<u64> = hogs
        .iter()
        .map(|p| proc::schedstat(p.as_raw()).map_or(0, |s| s.cpu_ns))
        .collect();
    nix::unistd::write(&three.gate_w, b"gg").context("write() to the start gate")?;
    for &pid in hogs {
        ctx.wait_state(pid, &['R'], TIMEOUT)?;
    }
    // The window starts once both have passed the gate: each seen R in a fresh read of
    // /proc and its CPU clock past where it stood at the gate. (A hog seen R as it
    // started, before it slept at the gate, may not have been woken yet: one run in
    // about forty on a loaded machine caught it S in the first sample.)
    let deadline = Instant::now() + TIMEOUT;
    while !hogs.iter().zip(&at_gate).all(|(p, &before)| {
        proc::state(p.as_raw()) == Some('R')
            && proc::schedstat(p.as_raw()).is_some_and(|s| s.cpu_ns > before)
    }) {
        if Instant::now() > deadline {
            break; // the samples below will show what the kernel said
        }
        procs::sleep(Duration::from_millis(1));
        ctx.check()?;
    }
    say!(ctx, "both_r", &[]);
    Ok(())
}

/// Running and ready, the clocks: both `R` all along, and both the CPU clock and the
/// run-queue clock of each advanced: at any moment one ran while the other was ready.
fn running_and_ready(ctx: &mut Ctx<'_>, three: &Three) -> Result<()> {
    let hogs = &three.hogs;
    step!(ctx, "clocks", &[("a", &hogs[0]), ("b", &hogs[1])])?;
    let sample_ms = if ctx.speed > 0.0 {
        (350.0 * ctx.speed).max(SAMPLE_MS)
    } else {
        SAMPLE_MS
    };
    let (samples, watched_ns) = sample_clocks(ctx, hogs, sample_ms)?;
    let (first, last) = (&samples[0], &samples[samples.len() - 1]);
    let all_r = samples.iter().all(|s| s.iter().all(|(st, _)| *st == 'R'));
    let mut ready_ns = 0;
    let mut both_moved = true;
    for (k, &pid) in hogs.iter().enumerate() {
        let (a, b) = (first[k].1, last[k].1);
        let (ran, waited) = (b.cpu_ns - a.cpu_ns, b.wait_ns - a.wait_ns);
        both_moved &= ran > 0 && waited > 0;
        ready_ns += waited;
        say_for!(
            ctx,
            pid.as_raw(),
            now_ns(),
            "hog_clocks",
            &[
                ("window", &fmt_ms(watched_ns)),
                ("ran", &fmt_ms(ran)),
                ("waited", &fmt_ms(waited)),
            ],
        );
        ctx.settle()?;
    }
    let holds = all_r && both_moved;
    if holds {
        say!(ctx, "running_and_ready", &[("cpu", &three.cpu)]);
    } else {
        say!(ctx, "not_running_and_ready", &[]);
    }
    ctx.claim(
        "running_and_ready",
        holds,
        Expect::eq(true).note("both R, both schedstat clocks advanced"),
    );
    ctx.observe("ready_ms", ms(ready_ns));
    ctx.show(2500)?;
    say!(ctx, "scheduler_doing", &[]);
    ctx.pause(3000)?;
    Ok(())
}

/// Blocked -> ready -> running: the data comes, the reader is seen runnable, computes,
/// reports and is reaped.
fn wake(ctx: &mut Ctx<'_>, three: &Three) -> Result<()> {
    let (reader, cpu) = (three.reader, three.cpu);
    step!(ctx, "wake", &[("pid", &reader)])?;
    let before = proc::schedstat(reader.as_raw()).unwrap_or_default();
    say!(ctx, "wake", &[("pid", &reader)]);
    nix::unistd::write(&three.data_w, b"x").context("write() to the reader's pipe")?;
    let woken = ctx.wait_state(reader, &['R', 'Z'], TIMEOUT)?;
    let woken_state = woken.unwrap_or('?');
    if woken_state == 'R' {
        say!(ctx, "woken_seen", &[("pid", &reader), ("cpu", &cpu)]);
    } else {
        say!(
            ctx,
            "woken_not_seen",
            &[("pid", &reader), ("state", &woken_state)],
        );
    }
    let done = Note::recv(&three.note_r, TIMEOUT)?.context("the reader did not report")?;
    // Its clocks, once it has exited (a zombie keeps them until it is reaped).
    ctx.wait_state(reader, &['Z'], TIMEOUT)?;
    let after = proc::schedstat(reader.as_raw()).unwrap_or_default();
    let woken_wait = after.wait_ns.saturating_sub(before.wait_ns);
    say_for!(
        ctx,
        done.pid,
        done.t_ns,
        "reader_done",
        &[
            ("n", &done.b),
            ("ran", &fmt_ms(after.cpu_ns.saturating_sub(before.cpu_ns))),
            ("waited", &fmt_ms(woken_wait)),
        ],
    );
    // Done, a zombie until it is reaped: the hint shows it so.
    ctx.show(0)?;
    ctx.claim("woken_state", woken_state.to_string(), Expect::eq("R"));
    ctx.observe("woken_ready_ms", ms(woken_wait));
    ctx.join(reader)?;
    ctx.pause(2000)?;
    Ok(())
}

/// One reading of the state and clocks of each CPU-bound process.
type Row = Vec<(char, Sched)>;

/// Read the state and the scheduler's clocks of `hogs` every `every_ms`, emitting a
/// `sched` event for each, at least [`SAMPLES`] times and until both clocks of both have
/// moved (at most [`MAX_SAMPLES`] times). The readings, and the wall time from the first
/// to the last.
///
/// The kernel brings a process's clocks up to date when it leaves or gets a CPU (and at
/// timer ticks), so the clocks of the one on the CPU at a reading may lag a little; over
/// the whole window that evens out.
fn sample_clocks(ctx: &Ctx<'_>, hogs: &[Pid], every_ms: f64) -> Result<(Vec<Row>, u64)> {
    let mut samples: Vec<Row> = Vec::new();
    let t0 = now_ns();
    loop {
        let mut row = Vec::new();
        for &pid in hogs {
            let clocks = proc::schedstat(pid.as_raw()).context("reading /proc/<pid>/schedstat")?;
            let state = crate::sys::proc::state(pid.as_raw()).unwrap_or('?');
            ctx.act_at(
                pid.as_raw(),
                now_ns(),
                "sched",
                &[
                    ("state", state.to_string().into()),
                    ("cpu_ms", ObsValue::from(ms(clocks.cpu_ns))),
                    ("ready_ms", ObsValue::from(ms(clocks.wait_ns))),
                    ("turns", ObsValue::from(clocks.turns as i64)),
                ],
            );
            row.push((state, clocks));
        }
        samples.push(row);
        let n = samples.len();
        let moved = (0..hogs.len()).all(|k| {
            let (a, b) = (samples[0][k].1, samples[n - 1][k].1);
            b.cpu_ns > a.cpu_ns && b.wait_ns > a.wait_ns
        });
        if n >= MAX_SAMPLES || (n >= SAMPLES && moved) {
            return Ok((samples, now_ns().saturating_sub(t0)));
        }
        if !procs::sleep(Duration::from_secs_f64(every_ms / 1000.0)) {
            ctx.check()?;
        }
    }
}

/// The four ways a process ends, one child each, every exit code read with waitpid.
fn endings(ctx: &mut Ctx<'_>) -> Result<()> {
    step!(ctx, "endings", &[])?;
    say!(ctx, "endings_intro", &[]);
    ctx.pause(2000)?;
    let (note_r, note_w) = procs::pipe()?;
    let nfd = note_w.as_raw_fd();
    // Each child waits for a byte on `go` before it speaks, so that what it says is
    // stamped after its `spawn` event (stamped when fork() returned in the parent).
    let (go_r, go_w) = procs::pipe()?;
    let gfd = go_r.as_raw_fd();
    let go = |pid: Pid| -> Result<Pid> {
        nix::unistd::write(&go_w, b"g").context("write() to the children's gate")?;
        Ok(pid)
    };

    let child_body = move || {
        wait_for_go(gfd);
        Note::tell(nfd, Said::EndingHello, 0);
        0
    };
    // 1. Normal exit: the work is done.
    // Each child's line is said with its own stamp once its note is read: until then,
    // nothing stamped after its fork is written (the observer's samples of it were,
    // 4 ms before the fatal child's line, in a clean-clone CI).
    let news = ctx.expect_news();
    // SAFETY: the child calls read(2) and Note::send only (async-signal-safe), then
    // returns to _exit.
    let normal = go(unsafe { ctx.fork("normal", child_body) }?)?;
    let hello = Note::recv(&note_r, TIMEOUT)?.context("the normal child did not report")?;
    say_for!(ctx, hello.pid, hello.t_ns, "normal_child", &[]);
    drop(news);
    let code = ctx.join(normal)?;
    say!(ctx, "normal_joined", &[("pid", &normal), ("code", &code)]);
    ctx.claim("exit_normal", code, Expect::eq(0));
    ctx.pause(2500)?;

    // 2. Error exit: the program sees it cannot go on and says so with its exit code.
    let missing = ctx.dir.join("a.py");
    let path = std::ffi::CString::new(missing.as_os_str().as_encoded_bytes())
        .context("the run directory's path holds a NUL byte")?;
    let path_ptr = path.as_ptr();
    let child_body = move || {
        wait_for_go(gfd);
        // SAFETY: open(2) of a NUL-terminated path the parent keeps alive until it reaps
        // this child; async-signal-safe.
        let fd = unsafe { nix::libc::open(path_ptr, nix::libc::O_RDONLY) };
        if fd >= 0 {
            // SAFETY: close(2) of a descriptor this forked child owns; async-signal-safe.
            unsafe { nix::libc::close(fd) };
            Note::tell(nfd, Said::EndingHello, 0);
            return 0;
        }
        Note::tell(
            nfd,
            Said::EndingHello,
            i64::from(nix::errno::Errno::last_raw()),
        );
        1
    };
    let news = ctx.expect_news();
    // SAFETY: the child calls read(2), open(2), close(2), Note::send (errno is a
    // thread-local read), all async-signal-safe, then returns its status to _exit. `path`
    // outlives the fork: it is dropped after the child is reaped.
    let error = go(unsafe { ctx.fork("error", child_body) }?)?;
    let hello = Note::recv(&note_r, TIMEOUT)?.context("the error child did not report")?;
    let errno = nix::errno::Errno::from_raw(hello.b as i32);
    say_for!(
        ctx,
        hello.pid,
        hello.t_ns,
        "error_child",
        &[("errno", &format!("{errno:?}"))],
    );
    drop(news);
    let code = ctx.join(error)?;
    drop(path);
    say!(ctx, "error_joined", &[("pid", &error), ("code", &code)]);
    ctx.claim("exit_error", code, Expect::eq(1));
    ctx.pause(2500)?;

    // 3. Fatal error: an illegal memory access, ended by the kernel with SIGSEGV.
    let news = ctx.expect_news();
    let fatal = go(fork_fatal(ctx, gfd, nfd)?)?;
    let hello = Note::recv(&note_r, TIMEOUT)?.context("the fatal child did not report")?;
    say_for!(
        ctx,
        hello.pid,
        hello.t_ns,
        "fatal_child",
        &[("addr", &format!("{:#x}", hello.b))],
    );
    drop(news);
    let code = ctx.join(fatal)?;
    say!(ctx, "fatal_joined", &[("pid", &fatal), ("code", &code)]);
    ctx.claim("exit_fatal", code, Expect::eq(-11).note("SIGSEGV"));
    ctx.pause(2500)?;

    let child_body = move || {
        wait_for_go(gfd);
        Note::tell(nfd, Said::EndingHello, 0);
        loop {
            nix::unistd::pause();
        }
    };
    // 4. Killed by another process: kill -9.
    let news = ctx.expect_news();
    // SAFETY: the child calls read(2), Note::send and pause(2) only, all
    // async-signal-safe.
    let victim = go(unsafe { ctx.fork("killed", child_body) }?)?;
    let hello = Note::recv(&note_r, TIMEOUT)?.context("the last child did not report")?;
    say_for!(ctx, hello.pid, hello.t_ns, "killed_child", &[]);
    drop(news);
    ctx.wait_state(victim, &['S'], TIMEOUT)?;
    step!(ctx, "kill", &[("pid", &victim)])?;
    // The victim, asleep, before the signal that ends it.
    ctx.show(1500)?;
    say!(ctx, "kill", &[("pid", &victim)]);
    kill(victim, Signal::SIGKILL).context("kill(SIGKILL)")?;
    let code = ctx.join(victim)?;
    say!(ctx, "killed_joined", &[("pid", &victim), ("code", &code)]);
    ctx.claim("exit_killed", code, Expect::eq(-9).note("SIGKILL"));
    drop((note_w, go_r));
    ctx.pause(2000)?;
    say!(ctx, "voluntary", &[]);
    Ok(())
}

/// Fork the child that writes to memory it may not touch: a page mapped with no access
/// at all (`PROT_NONE`). The kernel answers the fault with SIGSEGV. No core file is
/// written: the child sets `RLIMIT_CORE` to 0 and (on Linux) makes itself not dumpable
/// first, which also keeps a core-dump helper (systemd-coredump, apport) out of it.
fn fork_fatal(ctx: &mut Ctx<'_>, gfd: i32, nfd: i32) -> Result<Pid> {
    let page = crate::sys::shared::NoAccessPage::new()?;
    let addr = page.addr();
    let child_body = move || {
        wait_for_go(gfd);
        let none = nix::libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: setrlimit(2) with a struct on the stack; async-signal-safe.
        unsafe { nix::libc::setrlimit(nix::libc::RLIMIT_CORE, &none) };
        // SAFETY: prctl(2) with plain integers; async-signal-safe.
        #[cfg(target_os = "linux")]
        unsafe {
            nix::libc::prctl(nix::libc::PR_SET_DUMPABLE, 0, 0, 0, 0)
        };
        Note::tell(nfd, Said::EndingHello, addr as i64);
        // SAFETY: a store to a page this process mapped PROT_NONE on purpose: the
        // kernel answers with SIGSEGV, which is what this child is for; no Rust value lives
        // there.
        unsafe { (addr as *mut u8).write_volatile(1) };
        0
    };
    // SAFETY: the child calls read(2), setrlimit, prctl and Note::send (thin system-call wrappers,
    // no allocation, no locks), then stores through a pointer to a mapping outside any
    // Rust allocation with a volatile write: the store really happens, and the kernel
    // ends the process with SIGSEGV at that instruction. It never returns from it.
    let child = unsafe { ctx.fork("fatal", child_body) };
    drop(page); // our copy of the mapping: the child has its own
    child
}

/// In a forked child: wait for one byte on `fd`. Async-signal-safe (read(2)).
fn wait_for_go(fd: i32) {
    let mut byte = [0u8; 1];
    // SAFETY: read(2) into a stack buffer; async-signal-safe.
    unsafe { nix::libc::read(fd, byte.as_mut_ptr().cast(), 1) };
}
