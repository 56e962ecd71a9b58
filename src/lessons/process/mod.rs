//! Lesson `process`: Python's `Process` object itself, on real processes.
//!
//! `p.run()` is a plain call: the main process runs the target and `/proc/self` says so.
//! `p.start()` forks a child (the `fork` start method), named like CPython's first
//! `Process` (`Process-1`); it forks a child of its own (`Process-1:1`), and the kernel
//! shows both as the program (`/proc/<pid>/comm`), not as those names. The main process
//! made 32 random bytes before it started them (CPython's `authkey`, `os.urandom(32)`);
//! both report their inherited copy, which the main process compares byte for byte. Then
//! `join(timeout)` as CPython does it: `poll()` on the child's sentinel pipe (its write
//! end held only by the child) for 0.2 s, which times out while the child works (blocked
//! in `read()` until the parent says go); `is_alive()` is `waitpid(WNOHANG)`, and `/proc`
//! gives the state. A plain `join()` reaps it. Last, the mistakes only CPython can make
//! (`join()` of a process never started, `Process(f)`, `args=("lzd")`) are run in
//! `python3` when it is on the `PATH` (see [`cpython`]).
//!
//! The two forked processes only make async-signal-safe calls (write, read, fork,
//! waitpid, close, prctl, getppid, clock_gettime): the parent is multi-threaded.

use super::{LessonDef, Opts};
use crate::ctx::{Ctx, Expect};
use crate::event::{Event, Kind};
use crate::note_kinds;
use crate::procs::{self, Note};
use crate::{say, say_for, step};
use anyhow::{bail, Context, Result};
use nix::unistd::Pid;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

mod cpython;

/// This lesson's words, whose keys the word macros check at compile time.
const WORDS: &crate::words::keys::Table = &crate::words::keys::PROCESS;

pub static LESSON: LessonDef = LessonDef {
    name: "process",
    words_src: include_str!("../../../lessons/process.toml"),
    options: &[],
    run,
    validate: None,
    roles: &[],
};

/// How long a child gets to write a note or reach a state; far more than it needs.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The `timeout` of the lesson's `p.join(timeout)`, in milliseconds, as in the snippet's
/// `p.join(0.2)`. Real time, not scaled by `--speed`: the child cannot end before the
/// parent says go, so the wait gives up at every speed.
const JOIN_TIMEOUT_MS: u64 = 200;

/// CPython's names for the started process and for its own first child.
const CHILD_NAME: &str = "Process-1";
const GRANDCHILD_NAME: &str = "Process-1:1";

note_kinds! {
    /// What the forked processes write to the main process.
    enum Said {
        /// I run (a note's `pid` and `ppid` say who I am).
        Hello = 1,
        /// Eight bytes of my copy of the authkey (`b`, little-endian), four notes in order.
        Key = 2,
        /// I forked my own child, PID `b`.
        Forked = 3,
        /// My fork failed, errno `b`.
        ForkFailed = 4,
        /// I reaped my child: its exitcode is `b`.
        Reaped = 5,
    }
}

/// The authkey in four notes, from a forked process: async-signal-safe.
fn send_key(fd: RawFd, key: &[u8; 32]) {
    for chunk in key.chunks_exact(8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        Note::tell(fd, Said::Key, i64::from_le_bytes(word));
    }
}

/// The started process, as the main process holds it.
struct Child {
    pid: Pid,
    notes: OwnedFd,
    /// One byte: fork your child; a second: your key; a third: finish your work.
    gate: OwnedFd,
    /// One byte: the grandchild's key; a second: it may end.
    grand_gate: OwnedFd,
    /// CPython's `p.sentinel`: end of file once the child is gone.
    sentinel: OwnedFd,
    /// Every note read so far.
    seen: Vec<Note>,
}

impl Child {
    /// Read notes until `done` says enough was seen; bounded by [`TIMEOUT`].
    fn read_until(&mut self, what: &str, done: impl Fn(&[Note]) -> bool) -> Result<()> {
        let deadline = Instant::now() + TIMEOUT;
        while !done(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            match Note::recv(&self.notes, left)? {
                Some(note) => self.seen.push(note),
                None => bail!("{CHILD_NAME} (PID {}) did not report {what}", self.pid),
            }
        }
        Ok(())
    }

    fn first(&self, pid: i32, kind: Said) -> Option<Note> {
        self.seen
            .iter()
            .find(|n| n.pid == pid && n.kind::<Said>() == Some(kind))
            .copied()
    }

    /// The 32 bytes `pid` reported, once all four notes came.
    fn key_of(&self, pid: i32) -> Option<[u8; 32]> {
        key_in(&self.seen, pid)
    }
}

/// The 32 bytes `pid` reported in `seen`, once all four notes came.
fn key_in(seen: &[Note], pid: i32) -> Option<[u8; 32]> {
    {
        let words: Vec<i64> = seen
            .iter()
            .filter(|n| n.pid == pid && n.kind::<Said>() == Some(Said::Key))
            .map(|n| n.b)
            .collect();
        if words.len() < 4 {
            return None;
        }
        let mut key = [0u8; 32];
        for (i, w) in words.iter().take(4).enumerate() {
            key[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
        Some(key)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn run(ctx: &mut Ctx<'_>, _opts: &Opts) -> Result<()> {
    // CPython makes the authkey when multiprocessing is imported, in the main process.
    let authkey = random_key()?;
    run_is_a_call(ctx)?;
    let mut child = start(ctx, authkey)?;
    let grand = name(ctx, &mut child)?;
    authkey_inherited(ctx, &mut child, grand, &authkey)?;
    join_timeout(ctx, &mut child, grand)?;
    join(ctx, child)?;
    cpython::mistakes(ctx)?;
    ctx.pause(1500)?;
    say!(ctx, "moral", &[]);
    // The last step's pause, once its story is told.
    ctx.show(0)
}

/// 32 bytes from the kernel's random source, as `os.urandom(32)`.
fn random_key() -> Result<[u8; 32]> {
    use std::io::Read;
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .context("reading /dev/urandom")?;
    Ok(key)
}

/// The target of the run() part: where it runs, as the kernel says (`/proc/self`).
fn where_am_i() -> Result<i32> {
    crate::sys::proc::myself().context("reading /proc/self")
}

/// `p.run()`: the target is called by the main process itself.
fn run_is_a_call(ctx: &mut Ctx<'_>) -> Result<()> {
    let me = ctx.main_pid;
    step!(ctx, "run", &[])?;
    say!(ctx, "run_intro", &[]);
    ctx.pause(1500)?;
    let ran_in = where_am_i()?;
    say!(ctx, "run_here", &[("pid", &ran_in)]);
    ctx.claim("run_pid", ran_in, Expect::eq(me).of("the main process"));
    ctx.pause(1500)?;
    say!(ctx, "run_join", &[]);
    ctx.show(2000)
}

/// `p.start()`: fork the child, which says where it runs and holds its copy of the key.
fn start(ctx: &mut Ctx<'_>, key: [u8; 32]) -> Result<Child> {
    let me = ctx.main_pid;
    let janitor = ctx.janitor();
    step!(ctx, "start", &[("main", &me), ("janitor", &janitor)])?;
    say!(ctx, "start_intro", &[]);
    ctx.pause(1200)?;
    let (notes, note_w) = procs::pipe()?;
    let (gate_r, gate) = procs::pipe()?;
    let (grand_gate_r, grand_gate) = procs::pipe()?;
    let (sentinel, sentinel_w) = procs::pipe()?;
    let (note_fd, gate_fd, grand_fd, sentinel_fd) = (
        note_w.as_raw_fd(),
        gate_r.as_raw_fd(),
        grand_gate_r.as_raw_fd(),
        sentinel_w.as_raw_fd(),
    );
    let child_body = move || child_process(note_fd, gate_fd, grand_fd, sentinel_fd, &key);
    // SAFETY: the child and its own child only call async-signal-safe functions (see
    // `child_process`), then return their status to _exit.
    let pid = unsafe { ctx.fork(CHILD_NAME, child_body) }?;
    // Only the child holds the write ends now: the sentinel ends when it does.
    drop((note_w, gate_r, grand_gate_r, sentinel_w));
    let mut child = Child {
        pid,
        notes,
        gate,
        grand_gate,
        sentinel,
        seen: Vec::new(),
    };
    let c = pid.as_raw();
    child.read_until("its hello", |seen| {
        seen.iter()
            .any(|n| n.pid == c && n.kind() == Some(Said::Hello))
    })?;
    let hello = child.first(c, Said::Hello).context("no hello")?;
    say_for!(
        ctx,
        c,
        hello.t_ns,
        "child_hello",
        &[("pid", &hello.pid), ("ppid", &hello.ppid)],
    );
    ctx.claim(
        "start_pid",
        hello.pid,
        Expect::ne(me)
            .of("run_pid")
            .and("its_ppid_is_run_pid", hello.ppid == me),
    );
    ctx.show(2000)?;
    Ok(child)
}

/// The started process: hello; at the gate, fork `Process-1:1`; at the gate again, its
/// key, then join its child; at the gate a third time, end. The grandchild: hello; at
/// its gate, its key; at its gate again, end. Async-signal-safe only (forks of a
/// threaded program).
fn child_process(
    note_fd: RawFd,
    gate_fd: RawFd,
    grand_fd: RawFd,
    sentinel_fd: RawFd,
    key: &[u8; 32],
) -> i32 {
    use nix::libc;
    Note::tell(note_fd, Said::Hello, 0);
    if !procs::wait_byte(gate_fd) {
        return 5;
    }
    let me = nix::unistd::getpid().as_raw();
    // SAFETY: this process is a fork of a multi-threaded one, with one thread left; the
    // grandchild only makes async-signal-safe calls, then _exits.
    let grand = match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            // SAFETY: close(2) of the inherited sentinel: only Process-1 holds it, so it
            // ends when Process-1 does. Async-signal-safe.
            unsafe { libc::close(sentinel_fd) };
            procs::die_with_parent_now(me);
            Note::tell(note_fd, Said::Hello, 0);
            let mut code = 5;
            if procs::wait_byte(grand_fd) {
                send_key(note_fd, key);
                if procs::wait_byte(grand_fd) {
                    code = 0;
                }
            }
            // SAFETY: _exit is async-signal-safe and ends only the grandchild.
            unsafe { libc::_exit(code) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => child,
        Err(errno) => {
            Note::tell(note_fd, Said::ForkFailed, errno as i64);
            return 3;
        }
    };
    Note::tell(note_fd, Said::Forked, i64::from(grand.as_raw()));
    if !procs::wait_byte(gate_fd) {
        return 5;
    }
    send_key(note_fd, key);
    // Python's g.join(): waitpid(2), async-signal-safe.
    let code = loop {
        match nix::sys::wait::waitpid(grand, None) {
            Ok(status) => break procs::python_exitcode(status).unwrap_or(-1),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break -1,
        }
    };
    Note::tell(note_fd, Said::Reaped, i64::from(code));
    // My own work: until the parent says go.
    if !procs::wait_byte(gate_fd) {
        return 5;
    }
    0
}

/// `p.name`: the child forks `Process-1:1`; the kernel calls both by the program's name.
/// The grandchild's PID.
fn name(ctx: &mut Ctx<'_>, child: &mut Child) -> Result<i32> {
    let c = child.pid.as_raw();
    step!(ctx, "name", &[("child", &c)])?;
    say!(ctx, "name_intro", &[]);
    ctx.pause(1500)?;
    procs::open_gate(&child.gate)?;
    child.read_until("its own child", |seen| {
        let forked = seen
            .iter()
            .find(|n| n.pid == c && matches!(n.kind(), Some(Said::Forked | Said::ForkFailed)));
        match forked {
            Some(f) if f.kind() == Some(Said::Forked) => {
                let g = f.b as i32;
                seen.iter()
                    .any(|n| n.pid == g && n.kind() == Some(Said::Hello))
            }
            Some(_) => true,
            None => false,
        }
    })?;
    let forked = match child.first(c, Said::Forked) {
        Some(f) => f,
        None => {
            let errno = child.first(c, Said::ForkFailed).map_or(0, |n| n.b as i32);
            bail!(
                "{CHILD_NAME} (PID {c}): {}",
                procs::fork_error("fork()", nix::errno::Errno::from_raw(errno))
            );
        }
    };
    let g = forked.b as i32;
    let hello = child.first(g, Said::Hello).context("no hello")?;
    // Its spawn, stamped at the first of the two moments known of it (the fork returned
    // in its parent, it wrote its hello), so that it comes before anything about it.
    ctx.emit(Event {
        t_ns: forked.t_ns.min(hello.t_ns),
        pid: g,
        kind: Kind::Spawn {
            ppid: c,
            name: GRANDCHILD_NAME.into(),
            how: crate::event::How::Fork,
        },
    });
    say_for!(ctx, c, forked.t_ns, "child_forks", &[("pid", &g)]);
    ctx.pause(1500)?;
    let comm = |pid: i32| crate::sys::proc::ids(pid).map(|i| i.comm);
    let (child_comm, grand_comm) = (comm(c), comm(g));
    let grand_ppid = crate::sys::proc::ids(g).map(|i| i.ppid);
    let shown = child_comm.clone().unwrap_or_else(|| "?".into());
    say!(
        ctx,
        "comm",
        &[("child", &c), ("grand", &g), ("comm", &shown)],
    );
    ctx.observe("comm", shown.as_str());
    let named =
        child_comm.as_deref() == Some(CHILD_NAME) || grand_comm.as_deref() == Some(GRANDCHILD_NAME);
    let read = child_comm.is_some() && grand_comm.is_some();
    ctx.claim(
        "comm_is_name",
        named,
        Expect::eq(false)
            .note("the program's name")
            .and("comm_read", read),
    );
    ctx.claim(
        "grandchild_ppid",
        grand_ppid.unwrap_or(0),
        Expect::eq(c).of(&format!("{CHILD_NAME}'s PID")),
    );
    ctx.show(2500)?;
    Ok(g)
}

/// `p.authkey`: both processes hold the main process's 32 bytes.
fn authkey_inherited(
    ctx: &mut Ctx<'_>,
    child: &mut Child,
    grand: i32,
    key: &[u8; 32],
) -> Result<()> {
    let c = child.pid.as_raw();
    step!(ctx, "authkey", &[])?;
    say!(ctx, "authkey_main", &[("key", &hex(&key[..8]))]);
    ctx.pause(1500)?;
    procs::open_gate(&child.gate)?;
    procs::open_gate(&child.grand_gate)?;
    child.read_until("their authkeys", |seen| {
        key_in(seen, c).is_some() && key_in(seen, grand).is_some()
    })?;
    let mut same = true;
    for pid in [c, grand] {
        let theirs = child
            .key_of(pid)
            .with_context(|| format!("PID {pid} did not report its authkey"))?;
        let last = child
            .seen
            .iter()
            .filter(|n| n.pid == pid && n.kind() == Some(Said::Key))
            .map(|n| n.t_ns)
            .max()
            .unwrap_or_default();
        say_for!(
            ctx,
            pid,
            last,
            "authkey_child",
            &[("key", &hex(&theirs[..8]))]
        );
        same &= theirs == *key;
    }
    ctx.observe("authkey_len", key.len());
    ctx.claim(
        "authkey_inherited",
        same,
        Expect::eq(true).note("all 32 bytes"),
    );
    ctx.pause(1500)?;
    say!(
        ctx,
        if (same) {
            "authkey_same"
        } else {
            "authkey_differs"
        },
        &[]
    );
    ctx.show(2500)
}

/// `p.join(0.2)`: once Process-1 has joined its own child and works on, the wait on its
/// sentinel gives up; `is_alive()` and `exitcode` (`waitpid(WNOHANG)`) and `/proc` say it
/// still runs.
fn join_timeout(ctx: &mut Ctx<'_>, child: &mut Child, grand: i32) -> Result<()> {
    let c = child.pid.as_raw();
    step!(ctx, "join_timeout", &[("child", &c)])?;
    procs::open_gate(&child.grand_gate)?;
    child.read_until("that it joined its child", |seen| {
        seen.iter()
            .any(|n| n.pid == c && n.kind() == Some(Said::Reaped))
    })?;
    let reaped = child.first(c, Said::Reaped).context("no reap")?;
    let code = reaped.b as i32;
    // Process-1 reaped it: its exit, with Process-1's own stamp.
    ctx.emit(Event {
        t_ns: reaped.t_ns,
        pid: grand,
        kind: Kind::Exit {
            name: GRANDCHILD_NAME.into(),
            exitcode: code,
            reaped_by: c,
        },
    });
    say_for!(ctx, c, reaped.t_ns, "grand_joined", &[("code", &code)]);
    ctx.pause(1500)?;
    say!(ctx, "join_timeout_intro", &[("ms", &JOIN_TIMEOUT_MS)]);
    let started = Instant::now();
    let ended = crate::sys::fd::readable_within(
        child.sentinel.as_fd(),
        Duration::from_millis(JOIN_TIMEOUT_MS),
    )?;
    let waited = started.elapsed().as_millis();
    // p.is_alive() and p.exitcode: waitpid(WNOHANG), which would reap a finished child.
    let exitcode = procs::try_reap(child.pid)?;
    if let Some(code) = exitcode {
        ctx.reaped(child.pid, code);
    }
    let alive = exitcode.is_none();
    let state = if alive {
        ctx.wait_state(child.pid, &['R', 'S'], TIMEOUT)?
    } else {
        None
    };
    let shown = exitcode.map_or_else(|| "None".to_string(), |c| c.to_string());
    if alive && !ended {
        say!(
            ctx,
            "join_timed_out",
            &[("ms", &waited), ("state", &state.unwrap_or('?'))],
        );
    } else {
        say!(ctx, "join_ended", &[("ms", &waited), ("code", &shown)]);
    }
    ctx.claim(
        "alive_after_join_timeout",
        alive && !ended,
        Expect::eq(true).and("state_sampled", state.is_some()),
    );
    ctx.claim("exitcode_while_running", shown.as_str(), Expect::eq("None"));
    ctx.show(2500)
}

/// A plain `p.join()`: the child is let go; the wait on its sentinel ends, and
/// `waitpid()` reaps it.
fn join(ctx: &mut Ctx<'_>, child: Child) -> Result<()> {
    let c = child.pid.as_raw();
    step!(ctx, "join", &[("child", &c)])?;
    say!(ctx, "join_intro", &[]);
    ctx.pause(1200)?;
    // It may have been reaped already, were the claim above to fail.
    if crate::sys::proc::state(c).is_some() {
        procs::open_gate(&child.gate)?;
        if !crate::sys::fd::readable_within(child.sentinel.as_fd(), TIMEOUT)? {
            bail!("{CHILD_NAME} (PID {c}) did not end within {TIMEOUT:?}");
        }
        let code = ctx.join(child.pid)?;
        ctx.settle()?;
        say!(ctx, "joined", &[("code", &code)]);
        ctx.claim("child_exitcode", code, Expect::eq(0));
    }
    ctx.show(2000)
}
