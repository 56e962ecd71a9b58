//! Lesson `sync-vs-async`: the study notes' three distinctions, each on real processes
//! and real clocks.
//!
//! - synchronous against asynchronous calls: three sleeping jobs one after another (the
//!   sum of their times), then all at once, told by an event as each ends (the longest);
//! - blocking against non-blocking: a `read()` on an empty pipe that the kernel puts to
//!   sleep (`S`, seen in `/proc`) and an `O_NONBLOCK` read that returns `EAGAIN` at once;
//! - concurrency against parallelism: two CPU-bound processes pinned to one CPU with
//!   `sched_setaffinity` (they take turns, shown by their progress stamps) and then to a
//!   CPU each.
//!
//! Every child here is forked and does only async-signal-safe work (nanosleep, read,
//! fcntl, clock_gettime, arithmetic, write): the main process is multi-threaded.

use super::{LessonDef, Opts};
use crate::ctx::{Ctx, Expect};
use crate::event::{now_ns, ObsValue};
use crate::procs::{self, Note};
use crate::{say, say_for, step};
use anyhow::{bail, Context, Result};
use nix::unistd::Pid;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// This lesson's words, whose keys the word macros check at compile time.
const WORDS: &crate::words::keys::Table = &crate::words::keys::SYNC_VS_ASYNC;

pub static LESSON: LessonDef = LessonDef {
    name: "sync-vs-async",
    words_src: include_str!("../../lessons/sync-vs-async.toml"),
    options: &[],
    run,
    validate: None,
    roles: &[],
};

/// The jobs' lengths at `--speed 0`, in milliseconds; scaled up at normal speed so that
/// a person can watch them (the comparison holds at any scale).
const JOB_MS: [u64; 3] = [30, 50, 70];
/// CPU time each CPU-bound process computes, and how often it reports its progress.
const HOG_CPU_MS: u64 = 30;
const CHUNK_NS: u64 = 5_000_000;
/// A jump of a process's wall clock longer than this, between two looks a few
/// microseconds of computation apart, means it was taken off the CPU.
const GAP_NS: u64 = 100_000;
/// The bars: columns of this many nanoseconds, this many columns (15 ms in all; 42
/// characters with the edges, so a bar fits beside the gutter in 80 columns).
const BAR_COL_NS: u64 = 375_000;
const BAR_COLS: u64 = 40;
/// How long anything here may take before it is an error; far more than it needs.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Note kinds (`Note::a`) of a job.
const JOB_STARTED: i64 = -1;
const JOB_ENDED: i64 = -2;
/// Note kinds of a CPU-bound process; positive values are progress reports.
const HOG_STARTED: i64 = 0;
const HOG_GAP: i64 = -3;

/// Sleep `ms` milliseconds with nanosleep(2). Async-signal-safe.
fn nap(ms: u64) {
    let mut req = nix::libc::timespec {
        tv_sec: (ms / 1000) as nix::libc::time_t,
        tv_nsec: ((ms % 1000) * 1_000_000) as nix::libc::c_long,
    };
    let mut rem = nix::libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: nanosleep reads and writes our stack timespecs; async-signal-safe. Resumed
    // with the remainder if a signal interrupts it.
    while unsafe { nix::libc::nanosleep(&req, &mut rem) } == -1
        && nix::errno::Errno::last() == nix::errno::Errno::EINTR
    {
        req = rem;
    }
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

fn fmt_ms(x: f64) -> String {
    format!("{x:.1}")
}

fn run(ctx: &mut Ctx<'_>, _opts: &Opts) -> Result<()> {
    let scale = if ctx.speed > 0.0 {
        (ctx.speed * 5.0).clamp(1.0, 20.0)
    } else {
        1.0
    };
    let jobs: Vec<u64> = JOB_MS
        .iter()
        .map(|&m| (m as f64 * scale).round() as u64)
        .collect();
    let sync_ms = synchronous(ctx, &jobs)?;
    asynchronous(ctx, &jobs, sync_ms)?;
    blocking(ctx)?;
    nonblocking(ctx)?;
    cpu_bound(ctx)?;
    ctx.pause(2000)?;
    say!(ctx, "moral", &[]);
    Ok(())
}

/// Synchronous: the jobs (`jobs`, their lengths in ms) called one after another, each
/// waited for; the time of the whole, about the sum of theirs.
fn synchronous(ctx: &mut Ctx<'_>, jobs: &[u64]) -> Result<f64> {
    let me = ctx.main_pid;
    let jobs_text = format!("{jobs:?}").trim_matches(['[', ']']).to_string();
    let sum: u64 = jobs.iter().sum();
    step!(ctx, "sync", &[("main", &me), ("janitor", &ctx.janitor())])?;
    say!(ctx, "sync_intro", &[("jobs", &jobs_text)]);
    ctx.pause(1500)?;
    let timing = ctx.timing();
    let mut t0 = Instant::now();
    for (i, &len) in jobs.iter().enumerate() {
        let (note_r, note_w) = procs::pipe()?;
        let pid = fork_job(ctx, i, len, &note_w)?;
        drop(note_w);
        let mut call = Instant::now();
        for _ in 0..2 {
            let n = Note::recv(&note_r, TIMEOUT)?.context("a job did not report")?;
            job_event(ctx, &n, len, "sync");
        }
        // Job 1 has ended, not yet reaped, and job 2 not started: the hint shows it alone.
        let waited = ctx.show_timed()?;
        (t0, call) = (t0 + waited, call + waited);
        ctx.join(pid)?;
        say!(
            ctx,
            "sync_returned",
            &[
                ("job", &(i + 1)),
                ("ms", &fmt_ms(call.elapsed().as_secs_f64() * 1000.0)),
            ],
        );
    }
    let sync_ms = t0.elapsed().as_secs_f64() * 1000.0;
    drop(timing);
    say!(
        ctx,
        "sync_total",
        &[("ms", &fmt_ms(sync_ms)), ("sum", &sum)]
    );
    ctx.observe("sync_elapsed_ms", (sync_ms * 10.0).round() / 10.0);
    ctx.pause(2500)?;
    Ok(sync_ms)
}

/// Asynchronous: the same jobs all started at once, each told by an event as it ends
/// (a callback in the main process); the time of the whole, about the longest, against
/// `sync_ms`.
fn asynchronous(ctx: &mut Ctx<'_>, jobs: &[u64], sync_ms: f64) -> Result<()> {
    let me = ctx.main_pid;
    let longest = jobs.iter().copied().max().unwrap_or(0);
    step!(ctx, "async", &[("main", &me)])?;
    say!(ctx, "async_intro", &[]);
    ctx.pause(1500)?;
    let timing = ctx.timing();
    let mut t0 = Instant::now();
    let (note_r, note_w) = procs::pipe()?;
    let mut pids = Vec::new();
    for (i, &len) in jobs.iter().enumerate() {
        pids.push(fork_job(ctx, i, len, &note_w)?);
    }
    drop(note_w);
    let started_ms = t0.elapsed().as_secs_f64() * 1000.0;
    say!(ctx, "async_started", &[("ms", &format!("{started_ms:.2}"))]);
    let mut ended = 0;
    while ended < jobs.len() {
        let n = Note::recv(&note_r, TIMEOUT)?.context("a job did not report")?;
        let len = jobs.get(n.b as usize).copied().unwrap_or(0);
        job_event(ctx, &n, len, "async");
        if n.a == JOB_ENDED {
            ended += 1;
            // The event handler runs here, in the main process, as the news arrives.
            ctx.act_at(
                me,
                now_ns(),
                "callback",
                &[("job", (n.b + 1).into()), ("mode", "async".into())],
            );
            say!(
                ctx,
                "async_told",
                &[
                    ("job", &(n.b + 1)),
                    ("ms", &fmt_ms(t0.elapsed().as_secs_f64() * 1000.0)),
                ],
            );
        }
    }
    t0 += ctx.show_timed()?; // every job has ended, none is reaped yet
    for pid in pids {
        ctx.join(pid)?;
    }
    let async_ms = t0.elapsed().as_secs_f64() * 1000.0;
    drop(timing);
    say!(
        ctx,
        "async_total",
        &[
            ("ms", &fmt_ms(async_ms)),
            ("longest", &longest),
            ("sync", &fmt_ms(sync_ms)),
        ],
    );
    ctx.observe("async_elapsed_ms", (async_ms * 10.0).round() / 10.0);
    ctx.claim(
        "async_faster_than_sync",
        async_ms < sync_ms,
        Expect::eq(true).note("async_elapsed_ms < sync_elapsed_ms"),
    );
    ctx.pause(1500)?;
    say!(ctx, "sync_moral", &[]);
    ctx.pause(2500)
}

/// Fork job `i`: it notes its start, sleeps `len` ms (like waiting for a disk or the
/// network), notes its end and exits.
fn fork_job(ctx: &mut Ctx<'_>, i: usize, len: u64, note_w: &OwnedFd) -> Result<Pid> {
    let fd = note_w.as_raw_fd();
    let child_body = move || {
        Note::send(fd, JOB_STARTED, i as i64);
        nap(len);
        Note::send(fd, JOB_ENDED, i as i64);
        0
    };
    // SAFETY: the child only calls Note::send (clock_gettime, getpid, getppid, write) and
    // nanosleep, all async-signal-safe, then returns its status to _exit.
    unsafe { ctx.fork(&format!("job-{}", i + 1), child_body) }
}

/// A job's note as its event: `job_start` / `job_done`, stamped in the job.
fn job_event(ctx: &Ctx<'_>, n: &Note, len: u64, mode: &str) {
    let kind = if n.a == JOB_STARTED {
        "job_start"
    } else {
        "job_done"
    };
    ctx.act_at(
        n.pid,
        n.t_ns,
        kind,
        &[
            ("job", (n.b + 1).into()),
            ("ms", (len as i64).into()),
            ("mode", mode.into()),
        ],
    );
}

/// A blocking read: the kernel puts the reader to sleep until data comes.
fn blocking(ctx: &mut Ctx<'_>) -> Result<()> {
    let me = ctx.main_pid;
    step!(ctx, "blocking", &[("main", &me)])?;
    let (data_r, data_w) = procs::pipe()?;
    let (note_r, note_w) = procs::pipe()?;
    let (rfd, nfd) = (data_r.as_raw_fd(), note_w.as_raw_fd());
    let child_body = move || {
        Note::send(nfd, 0, 0);
        let mut byte = [0u8; 1];
        let t0 = now_ns();
        // SAFETY: read(2) into a stack buffer of the length passed; async-signal-safe.
        let n = unsafe { nix::libc::read(rfd, byte.as_mut_ptr().cast(), 1) };
        let slept = now_ns().saturating_sub(t0);
        Note::send(nfd, n as i64, slept as i64);
        0
    };
    // SAFETY: the child calls Note::send, clock_gettime and read(2) only, all
    // async-signal-safe, then returns its status to _exit.
    let reader = unsafe { ctx.fork("reader", child_body) }?;
    drop(note_w);
    drop(data_r);
    say!(ctx, "blocking_intro", &[("pid", &reader)]);
    // The reader's first note says it is about to read: from then on, S means read().
    Note::recv(&note_r, TIMEOUT)?.context("the reader did not start")?;
    let state = ctx.wait_state(reader, &['S'], TIMEOUT)?;
    match state {
        Some(s) => say!(ctx, "blocked_seen", &[("pid", &reader), ("state", &s)]),
        None => say!(ctx, "blocked_not_seen", &[("pid", &reader)]),
    }
    ctx.claim(
        "blocking_read_state",
        state.map_or("?".to_string(), |s| s.to_string()),
        Expect::eq("S"),
    );
    step!(ctx, "blocked", &[("pid", &reader)])?;
    ctx.show(2500)?;
    say!(ctx, "wake", &[("pid", &reader)]);
    nix::unistd::write(&data_w, b"x").context("write() to the reader's pipe")?;
    let done = Note::recv(&note_r, TIMEOUT)?.context("the reader did not report")?;
    say_for!(
        ctx,
        done.pid,
        done.t_ns,
        "woke",
        &[("ms", &fmt_ms(done.b as f64 / 1e6)), ("n", &done.a)],
    );
    ctx.join(reader)?;
    ctx.pause(2000)?;
    Ok(())
}

/// A non-blocking read: `EAGAIN` at once instead of sleep.
fn nonblocking(ctx: &mut Ctx<'_>) -> Result<()> {
    let me = ctx.main_pid;
    step!(ctx, "nonblocking", &[("main", &me)])?;
    // A pipe of its own: O_NONBLOCK belongs to the open file, shared by every copy of
    // the descriptor, so it must not touch the blocking reader's pipe.
    let (data_r, data_w) = procs::pipe()?;
    let (note_r, note_w) = procs::pipe()?;
    // A gate: the child reads once my line about it has been said, not before.
    let (gate_r, gate_w) = procs::pipe()?;
    let (rfd, nfd, gfd) = (data_r.as_raw_fd(), note_w.as_raw_fd(), gate_r.as_raw_fd());
    let child_body = move || {
        if !procs::wait_byte(gfd) {
            return 5;
        }
        // SAFETY: fcntl(2) on a descriptor this child owns; async-signal-safe.
        let flags = unsafe { nix::libc::fcntl(rfd, nix::libc::F_GETFL) };
        // SAFETY: fcntl(2) on a descriptor this child owns; async-signal-safe.
        unsafe { nix::libc::fcntl(rfd, nix::libc::F_SETFL, flags | nix::libc::O_NONBLOCK) };
        let mut byte = [0u8; 1];
        let t0 = now_ns();
        // SAFETY: read(2) into a stack buffer of the length passed; async-signal-safe.
        let n = unsafe { nix::libc::read(rfd, byte.as_mut_ptr().cast(), 1) };
        let errno = if n < 0 {
            nix::errno::Errno::last_raw()
        } else {
            0
        };
        let took = now_ns().saturating_sub(t0);
        Note::send(nfd, i64::from(errno), took as i64);
        0
    };
    // SAFETY: the child calls read (the gate's, then the pipe's), fcntl, clock_gettime
    // and Note::send only, all async-signal-safe (errno is a thread-local read), then
    // returns to _exit.
    let reader = unsafe { ctx.fork("nb-reader", child_body) }?;
    drop(note_w);
    drop(gate_r);
    say!(ctx, "nonblocking_intro", &[("pid", &reader)]);
    ctx.keep_up();
    procs::open_gate(&gate_w)?;
    let n = Note::recv(&note_r, TIMEOUT)?.context("the non-blocking reader did not report")?;
    let eagain = n.a == i64::from(nix::libc::EAGAIN);
    let us = format!("{:.1}", n.b as f64 / 1e3);
    if eagain {
        say_for!(
            ctx,
            n.pid,
            n.t_ns,
            "eagain",
            &[("us", &us), ("errno", &n.a)]
        );
    } else {
        say_for!(ctx, n.pid, n.t_ns, "no_eagain", &[("errno", &n.a)]);
    }
    ctx.join(reader)?;
    drop((data_r, data_w));
    ctx.claim("eagain_seen", eagain, Expect::eq(true));
    ctx.pause(2500)?;
    say!(ctx, "sync_not_blocking", &[]);
    ctx.pause(2500)?;
    Ok(())
}

/// One progress event of a CPU-bound process.
struct Stamp {
    pid: i32,
    t_ns: u64,
}

/// What one CPU-bound process reported: when it started and ended, and the times it was
/// off the CPU (a jump of its wall clock that its CPU clock did not make).
#[derive(Default)]
struct Track {
    start: u64,
    end: u64,
    gaps: Vec<(u64, u64)>,
}

impl Track {
    /// How much of `[a, b)` the process spent on a CPU.
    fn on_cpu(&self, a: u64, b: u64) -> u64 {
        let (lo, hi) = (a.max(self.start), b.min(self.end));
        if hi <= lo {
            return 0;
        }
        let off: u64 = self
            .gaps
            .iter()
            .map(|&(g0, g1)| g1.min(hi).saturating_sub(g0.max(lo)))
            .sum();
        (hi - lo).saturating_sub(off)
    }

    fn off_ms(&self) -> f64 {
        ms(self.gaps.iter().map(|(a, b)| b - a).sum())
    }
}

/// What one run of the two CPU-bound processes showed.
struct HogRun {
    elapsed_ms: f64,
    /// How many runs of one process there are in the progress events, in stamp order.
    turns: usize,
}

/// Concurrency on one CPU, then parallelism on a CPU each.
fn cpu_bound(ctx: &mut Ctx<'_>) -> Result<()> {
    let me = ctx.main_pid;
    let cpus = procs::allowed_cpus(Pid::from_raw(0));
    if cpus.is_empty() {
        bail!("sched_getaffinity() gave no CPU");
    }
    ctx.observe("cpus_usable", cpus.len());

    // The step's title says how much each computes.
    step!(
        ctx,
        "concurrency",
        &[("main", &me), ("cpu_ms", &HOG_CPU_MS)]
    )?;
    ctx.pause(1000)?;
    let one = hogs(ctx, "one_cpu", &[cpus[0], cpus[0]])?;
    let interleaved = one.turns >= 3;
    if interleaved {
        say!(
            ctx,
            "one_cpu_result",
            &[("turns", &one.turns), ("ms", &fmt_ms(one.elapsed_ms))],
        );
    } else {
        say!(ctx, "one_cpu_not_interleaved", &[("turns", &one.turns)]);
    }
    ctx.claim(
        "one_cpu_interleaved",
        interleaved,
        Expect::eq(true).note("at least 3 turns"),
    );
    ctx.observe("one_cpu_elapsed_ms", (one.elapsed_ms * 10.0).round() / 10.0);
    ctx.pause(3000)?;

    step!(ctx, "parallelism", &[("main", &me)])?;
    let spread = [cpus[0], cpus[1 % cpus.len()]];
    // A CPU each: the step's title says it, and the kernel's answer (pinned_each) next.
    if cpus.len() == 1 {
        say!(ctx, "spread_one", &[]);
    }
    ctx.pause(1500)?;
    let all = hogs(ctx, "all_cpus", &spread)?;
    ctx.observe(
        "all_cpus_elapsed_ms",
        (all.elapsed_ms * 10.0).round() / 10.0,
    );
    if cpus.len() > 1 && all.elapsed_ms < 0.75 * one.elapsed_ms {
        say!(
            ctx,
            "parallel_result",
            &[
                ("ms", &fmt_ms(all.elapsed_ms)),
                ("one", &fmt_ms(one.elapsed_ms)),
            ],
        );
    } else if cpus.len() > 1 {
        say!(
            ctx,
            "parallel_contended",
            &[
                ("ms", &fmt_ms(all.elapsed_ms)),
                ("one", &fmt_ms(one.elapsed_ms)),
            ],
        );
    } else {
        say!(ctx, "parallel_one_cpu", &[("ms", &fmt_ms(all.elapsed_ms))]);
    }
    Ok(())
}

/// The two CPU-bound processes of one run, as the phases of [`hogs`] share them: which
/// run this is, their PIDs, how many progress reports each makes, the write end of
/// their start gate and the read end of their reports.
struct Hogs<'a> {
    phase: &'a str,
    pids: Vec<Pid>,
    chunks: u64,
    gate_w: OwnedFd,
    note_r: OwnedFd,
}

/// Fork two CPU-bound processes held at a start gate, pin process i to `on[i]`, open
/// the gate, and follow their reports until both are done.
fn hogs(ctx: &mut Ctx<'_>, phase: &str, on: &[usize; 2]) -> Result<HogRun> {
    let h = fork_hogs(ctx, phase)?;
    pin_hogs(ctx, &h, on)?;
    let timing = ctx.timing(); // the hogs' reports are read as they come
    let t0 = now_ns();
    nix::unistd::write(&h.gate_w, b"gg").context("write() to the start gate")?;
    say!(ctx, "hogs_go", &[]);
    let (tracks, stamps) = follow_hogs(ctx, &h)?;
    drop(timing);
    // A bar is about its process: said before the reap (no event follows an exit).
    hog_bars(ctx, &h.pids, &tracks, t0, h.phase == "one_cpu");
    for &pid in &h.pids {
        ctx.join(pid)?;
    }
    let t_end = tracks.iter().map(|t| t.end).max().unwrap_or(t0);
    let elapsed_ms = ms(t_end.saturating_sub(t0));
    let turns = count_turns(&stamps);
    Ok(HogRun { elapsed_ms, turns })
}

/// Fork the two CPU-bound processes, `cpu-1` and `cpu-2`, each waiting at the start
/// gate (a pipe nobody has written to yet).
fn fork_hogs<'a>(ctx: &mut Ctx<'_>, phase: &'a str) -> Result<Hogs<'a>> {
    let (gate_r, gate_w) = procs::pipe()?;
    let (note_r, note_w) = procs::pipe()?;
    let (gfd, nfd) = (gate_r.as_raw_fd(), note_w.as_raw_fd());
    let chunks = HOG_CPU_MS * 1_000_000 / CHUNK_NS;
    let mut pids = Vec::new();
    for i in 1..=2 {
        let child_body = move || hog(i, gfd, nfd, chunks);
        // SAFETY: the child calls read, clock_gettime and Note::send only and computes
        // on the stack: all async-signal-safe, no allocation. It returns to _exit.
        let pid = unsafe { ctx.fork(&format!("cpu-{i}"), child_body) }?;
        pids.push(pid);
    }
    drop(note_w);
    drop(gate_r);
    Ok(Hogs {
        phase,
        pids,
        chunks,
        gate_w,
        note_r,
    })
}

/// The body of CPU-bound process `i`: wait at the gate (`gfd`), then compute `chunks`
/// chunks of CPU time, reporting on `nfd` each chunk done and each time the wall clock
/// jumped (it was off the CPU). Async-signal-safe: read, clock_gettime, Note::send and
/// arithmetic on the stack.
fn hog(i: i32, gfd: RawFd, nfd: RawFd, chunks: u64) -> i32 {
    let mut byte = [0u8; 1];
    // SAFETY: read(2) into a stack buffer of the length passed; async-signal-safe.
    unsafe { nix::libc::read(gfd, byte.as_mut_ptr().cast(), 1) };
    Note::send(nfd, HOG_STARTED, 0);
    let start = procs::thread_cpu_ns();
    let mut last = now_ns();
    let mut x: u64 = 0x2545_F491_4F6C_DD1D ^ i as u64;
    let mut next = 1u64;
    while next <= chunks {
        for _ in 0..200 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        // The wall clock jumped while I was computing: I was off the CPU.
        let now = now_ns();
        if now - last > GAP_NS {
            Note::send(nfd, HOG_GAP, last as i64);
        }
        last = now_ns();
        let cpu = procs::thread_cpu_ns().saturating_sub(start);
        if cpu >= next * CHUNK_NS {
            Note::send(nfd, next as i64, cpu as i64);
            next += 1;
        }
    }
    std::hint::black_box(x);
    0
}

/// Pin each process to its CPU, show the affinity the kernel now reports for each, and
/// stop at the step before the gate opens.
fn pin_hogs(ctx: &mut Ctx<'_>, h: &Hogs<'_>, on: &[usize; 2]) -> Result<()> {
    let pids = &h.pids;
    for (pid, &cpu) in pids.iter().zip(on) {
        crate::procs::pin(*pid, cpu)?;
    }
    let seen: Vec<String> = pids
        .iter()
        .map(|p| {
            procs::allowed_cpus(*p)
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    say!(
        ctx,
        if (on[0] == on[1]) {
            "pinned_one"
        } else {
            "pinned_each"
        },
        &[
            ("a", &pids[0]),
            ("b", &pids[1]),
            ("cpu_a", &seen[0]),
            ("cpu_b", &seen[1]),
        ],
    );
    step!(
        ctx,
        if (h.phase == "one_cpu") {
            "pinned"
        } else {
            "spread_go"
        },
        &[("a", &pids[0]), ("b", &pids[1])]
    )?;
    ctx.show(1000)
}

/// Follow the processes' reports until both are done: each chunk a `progress` event, and
/// per process its start, end and the gaps it was off the CPU.
fn follow_hogs(ctx: &Ctx<'_>, h: &Hogs<'_>) -> Result<(Vec<Track>, Vec<Stamp>)> {
    let mut stamps: Vec<Stamp> = Vec::new();
    let mut tracks: Vec<Track> = h.pids.iter().map(|_| Track::default()).collect();
    let mut finished = 0;
    while finished < 2 {
        let n = Note::recv(&h.note_r, TIMEOUT)?.context("a CPU-bound process did not report")?;
        let Some(k) = h.pids.iter().position(|p| p.as_raw() == n.pid) else {
            continue;
        };
        let track = &mut tracks[k];
        match n.a {
            HOG_STARTED => track.start = n.t_ns,
            HOG_GAP => track.gaps.push((n.b as u64, n.t_ns)),
            chunk => {
                ctx.act_at(
                    n.pid,
                    n.t_ns,
                    "progress",
                    &[
                        ("phase", h.phase.into()),
                        ("cpu_ms", ObsValue::from(n.b as f64 / 1e6)),
                    ],
                );
                stamps.push(Stamp {
                    pid: n.pid,
                    t_ns: n.t_ns,
                });
                if chunk as u64 == h.chunks {
                    track.end = n.t_ns;
                    finished += 1;
                }
            }
        }
    }
    Ok((tracks, stamps))
}

/// The bars: the first BAR_COLS columns of BAR_COL_NS each from the gate's opening at
/// `t0`; `#` where the process was on a CPU for most of the column, `.` where it was not.
fn hog_bars(ctx: &Ctx<'_>, pids: &[Pid], tracks: &[Track], t0: u64, first: bool) {
    // The scale is the same for both runs: told once, before the first bars.
    if first {
        say!(
            ctx,
            "bars_scale",
            &[
                ("window", &fmt_ms(ms(BAR_COL_NS * BAR_COLS))),
                ("col", &format!("{:.2}", ms(BAR_COL_NS))),
            ],
        );
    }
    for (&pid, track) in pids.iter().zip(tracks) {
        let bar: String = (0..BAR_COLS)
            .map(|c| {
                let a = t0 + c * BAR_COL_NS;
                if track.on_cpu(a, a + BAR_COL_NS) * 2 > BAR_COL_NS {
                    '#'
                } else {
                    '.'
                }
            })
            .collect();
        ctx.keep_up(); // stamped now: it may wait before, at reading pace
        say_for!(
            ctx,
            pid.as_raw(),
            now_ns(),
            "bar",
            &[
                ("bar", &bar),
                ("cpu", &HOG_CPU_MS),
                ("wall", &fmt_ms(ms(track.end.saturating_sub(t0)))),
                ("gaps", &track.gaps.len()),
                ("off", &fmt_ms(track.off_ms())),
            ],
        );
    }
}

/// Runs of one process in the `progress` events, in stamp order, the same rule a reader
/// of the JSON stream can apply: 2 means one ran to the end before the other started,
/// 3 or more that they took turns.
fn count_turns(stamps: &[Stamp]) -> usize {
    let mut evs: Vec<&Stamp> = stamps.iter().collect();
    evs.sort_by_key(|s| s.t_ns);
    let mut runs = 0;
    let mut prev = None;
    for s in evs {
        if prev != Some(s.pid) {
            runs += 1;
            prev = Some(s.pid);
        }
    }
    runs
}
