//! Starting, reaping and cleaning up processes, with one guarantee: nothing outlives a run.
//!
//! - The main process is a child subreaper, so every orphaned descendant is re-parented
//!   to it and can be reaped by it.
//! - Every child gets `PR_SET_PDEATHSIG(SIGKILL)` (checked against the `getppid()` race),
//!   so a SIGKILL of the main process takes its children with it.
//! - The run's temporary files and sockets live in one private directory (mode 0700,
//!   unpredictable name) that `TMPDIR` points at, so ipc-channel's sockets land there
//!   too. A tiny *janitor*, forked before any thread exists, waits for the main process to
//!   die, however it dies, and removes that directory.
//! - SIGINT, SIGTERM and SIGHUP stop the lesson: children are killed at once, the lesson's
//!   blocking calls return, the main thread cleans up; a watchdog ends the process if the
//!   main thread does not within a few seconds.
//!
//! Forked children (`fork_child`) run in a copy of a multi-threaded process: they may
//! only do async-signal-safe work and must `_exit`. Anything richer is a spawned child
//! (see `child.rs`), which re-executes this binary.

use anyhow::{anyhow, Context, Result};
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{getpid, Pid};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Why the run must stop: 0 not at all, a signal number, or [`STOP_BROKEN_PIPE`].
static STOP: AtomicI32 = AtomicI32::new(0);
/// The output was closed (`mp-demo … | head -1`): stop quietly.
pub const STOP_BROKEN_PIPE: i32 = -1;
/// The run failed from outside the lesson (its output could not be written, a child
/// stayed stopped): stop, and exit 1 with [`failure`]'s message.
pub const STOP_FAILED: i32 = -2;
/// What failed, when the stop is [`STOP_FAILED`].
static FAILURE: OnceLock<String> = OnceLock::new();

/// End the run as failed, `msg` saying why (one line): every child is killed at once, so
/// every wait of the lesson on one returns.
pub fn fail_run(msg: String) {
    let _ = FAILURE.set(msg);
    request_stop(STOP_FAILED);
    kill_children();
}

/// The message of a [`STOP_FAILED`] stop.
pub fn failure() -> Option<&'static str> {
    FAILURE.get().map(String::as_str)
}

/// Whether a `--step` pause is waiting for a key (a stopped child is no hang then).
static PAUSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn set_paused(on: bool) {
    PAUSED.store(on, Ordering::SeqCst);
}

pub fn paused() -> bool {
    PAUSED.load(Ordering::SeqCst)
}

/// Whether `pid` exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    crate::sys::proc::state(pid).is_some_and(|s| s != 'Z')
}

/// Every descendant of this process (children, theirs, …), the janitor aside.
pub fn descendants() -> Vec<i32> {
    let janitor = JANITOR.load(Ordering::SeqCst);
    let mut out = Vec::new();
    let mut next = vec![getpid().as_raw()];
    while let Some(p) = next.pop() {
        for c in crate::sys::proc::children(p) {
            if c != janitor && !out.contains(&c) && out.len() < 4096 {
                out.push(c);
                next.push(c);
            }
        }
    }
    out
}

/// The janitor's pid, never killed by the sweeps (0: none).
static JANITOR: AtomicI32 = AtomicI32::new(0);
/// The write end of the janitor's pipe, closed by forked children.
static JANITOR_FD: AtomicI32 = AtomicI32::new(-1);
/// The run's private directory, for the watchdog's last-resort cleanup.
static RUN_DIR: OnceLock<PathBuf> = OnceLock::new();
/// True in a bare forked child (in its own copy of this memory): a panic there must end
/// the child at once, never print or unwind into the copied frames of the parent (whose
/// destructors would join threads the child does not have and remove the run's
/// directory).
static FORKED_CHILD: AtomicBool = AtomicBool::new(false);
/// The exit status of a forked child that panicked: Rust's own for a panic.
pub const EXIT_PANICKED: i32 = 101;

/// Ask the whole run to stop (a signal, or a closed output). The first reason wins.
pub fn request_stop(reason: i32) {
    let _ = STOP.compare_exchange(0, reason, Ordering::SeqCst, Ordering::SeqCst);
}

/// The reason the run must stop, if it must.
pub fn stop_reason() -> Option<i32> {
    match STOP.load(Ordering::SeqCst) {
        0 => None,
        r => Some(r),
    }
}

/// Sleep up to `dur`, waking early if a stop is requested. Returns false if stopped.
///
/// It really sleeps (`nanosleep`, in slices of at most 100 ms), so the kernel shows the
/// pacing for what it is: a process sleeping on a timer.
pub fn sleep(dur: Duration) -> bool {
    let deadline = Instant::now() + dur;
    loop {
        if stop_reason().is_some() {
            return false;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}

/// Python's `exitcode` from a wait status: the exit status, or `-N` for signal N.
pub fn python_exitcode(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(-(sig as i32)),
        _ => None,
    }
}

/// `waitpid(pid)`: block until the child ends and reap it; its Python `exitcode`.
pub fn reap(pid: Pid) -> Result<i32> {
    loop {
        match waitpid(pid, None) {
            Ok(status) => {
                if let Some(code) = python_exitcode(status) {
                    return Ok(code);
                }
            }
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(anyhow!("waitpid({pid}) failed: {e}")),
        }
    }
}

/// Reap `pid` if it ends within `within` (polling `waitpid(WNOHANG)`); whether it did.
pub fn reap_within(pid: Pid, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => {}
            Ok(_) | Err(_) => return true,
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `waitpid(pid, WNOHANG)`: reap it if it has ended.
pub fn try_reap(pid: Pid) -> Result<Option<i32>> {
    match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::StillAlive) => Ok(None),
        Ok(status) => Ok(python_exitcode(status)),
        Err(e) => Err(anyhow!("waitpid({pid}, WNOHANG) failed: {e}")),
    }
}

/// Kill every child of this process (not the janitor) with SIGKILL. Returns how many.
pub fn kill_children() -> usize {
    let me = getpid().as_raw();
    let janitor = JANITOR.load(Ordering::SeqCst);
    let mut n = 0;
    for pid in crate::sys::proc::children(me) {
        if pid != janitor && kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok() {
            n += 1;
        }
    }
    n
}

/// Kill and reap every descendant, until none is left (orphaned grandchildren are
/// re-parented to us as the subreaper, so each round finds the next generation).
/// Returns how many processes were reaped.
pub fn kill_and_reap_all() -> usize {
    let me = getpid().as_raw();
    let janitor = JANITOR.load(Ordering::SeqCst);
    let mut reaped = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let kids: Vec<i32> = crate::sys::proc::children(me)
            .into_iter()
            .filter(|&p| p != janitor)
            .collect();
        if kids.is_empty() || Instant::now() > deadline {
            return reaped;
        }
        for &pid in &kids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        for &pid in &kids {
            if waitpid(Pid::from_raw(pid), None).is_ok() {
                reaped += 1;
            }
        }
    }
}

/// In a freshly forked child: die with the parent, and do not take the parent's signal
/// handlers along (they would write to the parent's signal pipe).
///
/// # Safety
/// Only async-signal-safe calls: sigaction, prctl, getppid, close, _exit.
unsafe fn child_after_fork(parent: Pid) {
    use nix::sys::signal::{signal, SigHandler};
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: resetting to the default disposition is async-signal-safe.
        let _ = unsafe { signal(sig, SigHandler::SigDfl) };
    }
    let fd = JANITOR_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: close(2) is async-signal-safe; the fd is ours and not used again here.
        unsafe { nix::libc::close(fd) };
    }
    set_pdeathsig_or_exit(parent);
}

/// `PR_SET_PDEATHSIG(SIGKILL)`, then check the parent is still the one we expect: if it
/// died before the prctl, the signal will never come, so exit now.
fn set_pdeathsig_or_exit(parent: Pid) {
    #[cfg(target_os = "linux")]
    {
        let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    }
    if nix::unistd::getppid() != parent {
        // SAFETY: _exit is async-signal-safe and ends only this process.
        unsafe { nix::libc::_exit(1) };
    }
}

/// Fork a child that runs `child` and `_exit`s with its return value.
///
/// # Safety
/// `child` runs in the forked copy of a multi-threaded process: it must only call
/// async-signal-safe functions (no allocation, no locks, no `println!`).
pub unsafe fn fork_child(child: impl FnOnce() -> i32) -> Result<Pid> {
    let parent = getpid();
    // SAFETY: the child branch only calls async-signal-safe functions (the caller's
    // promise for `child`, and `child_after_fork`), then `_exit`s.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            FORKED_CHILD.store(true, Ordering::Relaxed);
            // SAFETY: see above.
            unsafe { child_after_fork(parent) };
            // Should `child` panic anyway, the hook (`guard_forked_panics`) ends the child
            // before anything is printed; without the hook, this guard ends it before the
            // unwinding leaves this frame.
            let guard = ExitOnUnwind;
            let code = child();
            std::mem::forget(guard);
            // SAFETY: _exit ends the child without running the parent's atexit handlers.
            unsafe { nix::libc::_exit(code) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => Ok(child),
        Err(e) => Err(fork_error("fork()", e)),
    }
}

/// Ends a forked child whose body is unwinding (see [`fork_child`]).
struct ExitOnUnwind;

impl Drop for ExitOnUnwind {
    fn drop(&mut self) {
        // SAFETY: _exit is async-signal-safe and ends only this (forked) process.
        unsafe { nix::libc::_exit(EXIT_PANICKED) }
    }
}

/// Install the panic hook that ends a panicking forked child at once, with
/// [`EXIT_PANICKED`], before the default hook would print (locks, allocation: unsafe
/// after fork in a threaded program). Elsewhere the previous hook runs as before.
pub fn guard_forked_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if FORKED_CHILD.load(Ordering::Relaxed) {
            // SAFETY: _exit is async-signal-safe and ends only this (forked) process.
            unsafe { nix::libc::_exit(EXIT_PANICKED) }
        }
        previous(info);
    }));
}

/// The type of `getrlimit`'s resource argument (glibc has its own).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub type RlimitResource = nix::libc::__rlimit_resource_t;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub type RlimitResource = nix::libc::c_int;

/// The soft limit `resource` (`RLIMIT_*`), `None` if unlimited.
pub fn soft_limit(resource: RlimitResource) -> Option<u64> {
    let mut lim = nix::libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    let r = unsafe { nix::libc::getrlimit(resource, &mut lim) };
    (r == 0 && lim.rlim_cur != nix::libc::RLIM_INFINITY).then_some(lim.rlim_cur)
}

/// Which limit an errno of a failed process, thread or descriptor creation points at,
/// in words: EAGAIN is RLIMIT_NPROC, or RLIMIT_AS when one is set (a thread's stack that
/// cannot be mapped is EAGAIN too); ENOMEM is memory or RLIMIT_AS; EMFILE RLIMIT_NOFILE.
pub fn limit_hint(e: Errno) -> String {
    let address_space = soft_limit(nix::libc::RLIMIT_AS).map(|b| {
        format!(
            "the address-space limit (RLIMIT_AS, `ulimit -v`: {} KiB)",
            b / 1024
        )
    });
    match e {
        Errno::EAGAIN => match address_space {
            Some(asl) => format!(
                "EAGAIN: {asl} or the process limit (RLIMIT_NPROC, see `ulimit -u`) is reached"
            ),
            None => "EAGAIN: the process limit (RLIMIT_NPROC, see `ulimit -u`) is reached".into(),
        },
        Errno::ENOMEM => match address_space {
            Some(asl) => format!("ENOMEM: out of memory: {asl} is reached"),
            None => "ENOMEM: out of memory".into(),
        },
        Errno::EMFILE => format!(
            "EMFILE: too many open files: the open-file limit (RLIMIT_NOFILE, `ulimit -n`: {}) is reached",
            soft_limit(nix::libc::RLIMIT_NOFILE).map_or("unlimited".into(), |n| n.to_string())
        ),
        Errno::ENFILE => "ENFILE: the system-wide limit of open files is reached".into(),
        e => format!("{e}: {}", e.desc()),
    }
}

/// A clear message for a failed process creation.
pub fn fork_error(call: &str, e: Errno) -> anyhow::Error {
    anyhow!("{call} failed: {}", limit_hint(e))
}

/// The fewest descriptors a run needs (the largest lessons hold about 40 at once).
const MIN_NOFILE: u64 = 64;

/// Refuse at once, naming RLIMIT_NOFILE, a descriptor limit too low for any lesson,
/// instead of failing later with "Bad file descriptor" or after a timeout.
pub fn check_nofile() -> Result<()> {
    match soft_limit(nix::libc::RLIMIT_NOFILE) {
        Some(n) if n < MIN_NOFILE => anyhow::bail!(
            "the open-file limit (RLIMIT_NOFILE, `ulimit -n`) is {n}; a lesson needs at least {MIN_NOFILE} descriptors (try `ulimit -n 1024`)"
        ),
        _ => Ok(()),
    }
}

/// The least address space a run needs (`ulimit -v`), measured: every lesson and the tour
/// run from about 40 MiB once malloc keeps to one arena; below that, thread starts fail,
/// and glibc itself aborts ("failed to register TLS destructor") where Rust could have
/// said so.
const MIN_ADDRESS_SPACE: u64 = 64 << 20;

/// Under an address-space limit (`ulimit -v`), keep malloc to one arena: glibc reserves
/// 64 MiB of address space for each thread's arena, so a limit of a few hundred MiB
/// failed at random as threads started (found by the fault suite), while one arena runs
/// every lesson from 40 MiB. Without a limit nothing changes. Call it before any thread
/// starts.
pub fn fit_malloc_to_address_space() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if soft_limit(nix::libc::RLIMIT_AS).is_some() {
        // SAFETY: mallopt with a documented parameter; no thread exists yet.
        unsafe { nix::libc::mallopt(nix::libc::M_ARENA_MAX, 1) };
    }
}

/// Refuse at once, naming RLIMIT_AS, an address-space limit too low for any lesson,
/// instead of a thread failing to start halfway, or glibc aborting.
pub fn check_address_space() -> Result<()> {
    match soft_limit(nix::libc::RLIMIT_AS) {
        Some(n) if n < MIN_ADDRESS_SPACE => anyhow::bail!(
            "the address-space limit (RLIMIT_AS, `ulimit -v`) is {} KiB; a lesson needs at least {} KiB (try `ulimit -v unlimited`)",
            n / 1024,
            MIN_ADDRESS_SPACE / 1024
        ),
        _ => Ok(()),
    }
}

/// Make `cmd` die with this process (`PR_SET_PDEATHSIG`), checked against the race.
pub fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let parent = getpid();
    // SAFETY: the closure runs between fork and exec and only calls prctl, getppid and
    // _exit, all async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            set_pdeathsig_or_exit(parent);
            Ok(())
        });
    }
}

/// Start a named thread. A thread is a task too: under `RLIMIT_NPROC` its creation
/// fails like a fork does, and the message says so.
pub fn thread<F, T>(name: &str, f: F) -> Result<std::thread::JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|e| match e.raw_os_error() {
            Some(code) => anyhow!(
                "starting the {name} thread failed: {}",
                limit_hint(Errno::from_raw(code))
            ),
            None => anyhow!("starting the {name} thread failed: {e}"),
        })
}

/// A pipe whose ends are closed on exec.
pub fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe2() failed")
}

/// A fixed-size note a forked child can write with one async-signal-safe `write(2)`:
/// when it was written, by whom, and two numbers.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct Note {
    pub t_ns: u64,
    pub pid: i32,
    pub ppid: i32,
    pub a: i64,
    pub b: i64,
}

const NOTE_SIZE: usize = std::mem::size_of::<Note>();

/// What a lesson's notes say: an enum of its own, declared with [`note_kinds!`], carried
/// in [`Note::a`] as its number.
pub trait NoteKind: Copy + Eq + Sized {
    fn code(self) -> i64;
    fn from_code(code: i64) -> Option<Self>;
}

/// Declare the kinds of note a lesson's forked children write:
/// `note_kinds! { enum Said { Hello = 1, Forked = 2 } }`.
#[macro_export]
macro_rules! note_kinds {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $v:ident = $n:expr),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        $vis enum $name { $($(#[$vmeta])* $v),+ }

        impl $crate::procs::NoteKind for $name {
            fn code(self) -> i64 {
                match self { $($name::$v => $n),+ }
            }
            fn from_code(code: i64) -> Option<Self> {
                $(if code == $n { return Some($name::$v); })+
                None
            }
        }
    };
}

impl Note {
    /// A note of kind `kind` with the number `b`, from a forked child: [`Note::send`].
    pub fn tell(fd: RawFd, kind: impl NoteKind, b: i64) {
        Note::send(fd, kind.code(), b);
    }

    /// What this note says, if it is one of `K`'s kinds.
    pub fn kind<K: NoteKind>(&self) -> Option<K> {
        K::from_code(self.a)
    }

    /// Stamp and write a note to `fd`, from a forked child.
    /// Async-signal-safe: clock_gettime, getpid, getppid, write.
    pub fn send(fd: RawFd, a: i64, b: i64) {
        let mut ts = nix::libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes into our stack timespec; async-signal-safe.
        unsafe { nix::libc::clock_gettime(nix::libc::CLOCK_MONOTONIC, &mut ts) };
        let note = Note {
            t_ns: ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64,
            pid: nix::unistd::getpid().as_raw(),
            ppid: nix::unistd::getppid().as_raw(),
            a,
            b,
        };
        // SAFETY: Note is repr(C) plain data; we write exactly its bytes (< PIPE_BUF, so
        // atomically) with write(2), which is async-signal-safe.
        unsafe {
            nix::libc::write(fd, (&note as *const Note).cast(), NOTE_SIZE);
        }
    }

    /// Read one note, waiting at most `timeout`. `None` on timeout or end of file.
    pub fn recv(fd: &OwnedFd, timeout: Duration) -> Result<Option<Note>> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let mut buf = [0u8; NOTE_SIZE];
        let mut got = 0;
        let deadline = Instant::now() + timeout;
        while got < NOTE_SIZE {
            let left = deadline.saturating_duration_since(Instant::now());
            let ms = PollTimeout::try_from(left.as_millis().min(60_000) as i32)
                .unwrap_or(PollTimeout::NONE);
            let mut fds = [PollFd::new(std::os::fd::AsFd::as_fd(fd), PollFlags::POLLIN)];
            match poll(&mut fds, ms) {
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(anyhow!("poll() failed: {e}")),
            }
            match nix::unistd::read(fd, &mut buf[got..]) {
                Ok(0) => return Ok(None),
                Ok(n) => got += n,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(anyhow!("read() failed: {e}")),
            }
        }
        // SAFETY: the buffer holds exactly the bytes of a Note written by Note::send.
        Ok(Some(unsafe {
            std::ptr::read_unaligned(buf.as_ptr().cast::<Note>())
        }))
    }
}

/// The machinery of one run of lessons: subreaper, private directory, janitor, signals.
/// Dropping it kills and reaps every descendant and removes every file.
pub struct Session {
    dir: Option<tempfile::TempDir>,
}

/// The write end of the live janitor's pipe (its end of file is the janitor's signal).
static JANITOR_PIPE: std::sync::Mutex<Option<OwnedFd>> = std::sync::Mutex::new(None);

fn janitor_pipe() -> std::sync::MutexGuard<'static, Option<OwnedFd>> {
    JANITOR_PIPE.lock().unwrap_or_else(|e| e.into_inner())
}

impl Session {
    /// Set everything up. Call it before any other thread starts: the janitor is forked
    /// from a single-threaded process so it may do ordinary work.
    pub fn start() -> Result<Session> {
        guard_forked_panics();
        check_nofile()?;
        check_address_space()?;
        #[cfg(target_os = "linux")]
        nix::sys::prctl::set_child_subreaper(true).context("prctl(PR_SET_CHILD_SUBREAPER)")?;
        let dir = private_dir()?;
        let _ = RUN_DIR.set(dir.path().to_path_buf());
        // ipc-channel creates its sockets under the temp directory: make that ours.
        // Single-threaded here, so changing the environment is sound.
        std::env::set_var("TMPDIR", dir.path());
        let (_, w) = spawn_janitor(dir.path().to_path_buf())?;
        *janitor_pipe() = Some(w);
        install_signal_handlers()?;
        Ok(Session { dir: Some(dir) })
    }

    /// The run's private directory (mode 0700).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.as_ref().expect("the session is live").path()
    }

    /// Kill and reap every descendant and remove the private directory. Idempotent.
    pub fn cleanup(&mut self) -> usize {
        let reaped = kill_and_reap_all();
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
        let fd = janitor_pipe().take();
        if let (Some(fd), Some(pid)) = (fd, janitor_pid()) {
            let pid = Pid::from_raw(pid);
            drop(fd); // end of file: the janitor finds the directory gone and exits
                      // Bounded: a janitor stopped (SIGSTOP) or slow must neither hang a finished
                      // run nor be left behind. Its work is done (the directory is gone already).
            if !reap_within(pid, Duration::from_millis(500)) {
                let _ = kill(pid, Signal::SIGKILL);
                let _ = reap_within(pid, Duration::from_secs(1));
            }
            JANITOR.store(0, Ordering::SeqCst);
            JANITOR_FD.store(-1, Ordering::SeqCst);
        }
        reaped
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// The longest path a Unix socket may have: `sun_path` is 108 bytes with its NUL.
const SUN_PATH_MAX: usize = 107;
/// What ipc-channel adds to `TMPDIR` for a one-shot server's socket:
/// `/.tmpXXXXXX/socket` (tempfile's default name, then the socket's).
const IPC_SOCKET_TAIL: usize = "/.tmpXXXXXX/socket".len();
/// What the run adds to the base directory: `/mp-demo-XXXXXX`.
const RUN_DIR_TAIL: usize = "/mp-demo-XXXXXX".len();

/// Whether every socket of a run whose private directory is `dir` fits in `sun_path`.
/// ipc-channel cuts a longer path silently, which put sockets outside the private
/// directory (the fault suite found `$TMPDIR/mp-dem` left behind, mode 0755).
pub fn sockets_fit(dir: &std::path::Path) -> bool {
    dir.as_os_str().len() + IPC_SOCKET_TAIL <= SUN_PATH_MAX
}

/// `IpcOneShotServer::new()`, once its socket path is known to fit in `sun_path` (it
/// lands under `TMPDIR`, the run's private directory), with the error said plainly.
pub fn ipc_server<T>() -> Result<(ipc_channel::ipc::IpcOneShotServer<T>, String)>
where
    T: for<'de> serde::Deserialize<'de> + serde::Serialize,
{
    let tmp = std::env::temp_dir();
    if !sockets_fit(&tmp) {
        anyhow::bail!(
            "creating an ipc-channel server: the socket path under {} would be longer than {SUN_PATH_MAX} bytes",
            tmp.display()
        );
    }
    // ipc-channel panics (an assertion in its error conversion) when its temporary
    // directory cannot be made, e.g. no inode left in TMPDIR: find that out first.
    tempfile::Builder::new().tempdir_in(&tmp).map_err(|e| {
        anyhow!(
            "creating an ipc-channel server in {}: cannot create a directory there: {}",
            tmp.display(),
            plain_io(&e)
        )
    })?;
    ipc_channel::ipc::IpcOneShotServer::<T>::new().map_err(|e| {
        anyhow!(
            "creating an ipc-channel server in {}: {}",
            tmp.display(),
            crate::procs::plain_io(&e)
        )
    })
}

/// Give `file` `len` bytes of real disk blocks (`posix_fallocate`), not a sparse hole
/// (`ftruncate`): a `MAP_SHARED` mapping of a hole the filesystem cannot fill (a full
/// tmpfs) kills the process that touches it with SIGBUS; allocated first, a full
/// filesystem is ENOSPC here, one clear line.
#[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
pub fn allocate(file: &std::fs::File, len: usize, path: &std::path::Path) -> Result<()> {
    file.set_len(len as u64)
        .map_err(|e| anyhow!("ftruncate() of {} failed: {}", path.display(), plain_io(&e)))
}

#[cfg(any(target_os = "linux", target_os = "freebsd"))]
pub fn allocate(file: &std::fs::File, len: usize, path: &std::path::Path) -> Result<()> {
    loop {
        match nix::fcntl::posix_fallocate(file, 0, len as nix::libc::off_t) {
            Ok(()) => return Ok(()),
            Err(Errno::EINTR) => continue,
            // A filesystem without fallocate: size it and hope, as before.
            Err(Errno::EOPNOTSUPP | Errno::EINVAL) => {
                return file.set_len(len as u64).map_err(|e| {
                    anyhow!("ftruncate() of {} failed: {}", path.display(), plain_io(&e))
                })
            }
            Err(e) => {
                return Err(anyhow!(
                    "posix_fallocate() of {} ({len} bytes) failed: {e}{}",
                    path.display(),
                    if e == Errno::ENOSPC {
                        ": the filesystem of TMPDIR is full"
                    } else {
                        ""
                    }
                ))
            }
        }
    }
}

/// An I/O error as one plain line: the errno's name and the OS's words (found through
/// any context wrapped around it), never Debug; ENOSPC says it may be inodes.
pub fn plain_io(e: &std::io::Error) -> String {
    let mut code = e.raw_os_error();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = e.get_ref().map(|r| r as _);
    while code.is_none() {
        let Some(err) = cur else { break };
        code = err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error);
        cur = err.source();
    }
    if code.is_none() && e.kind() == std::io::ErrorKind::StorageFull {
        code = Some(nix::libc::ENOSPC);
    }
    match code.map(Errno::from_raw) {
        Some(Errno::ENOSPC) => {
            "ENOSPC: No space left on device (no free block or no free inode: see `df -h` and `df -i`)".into()
        }
        Some(errno) => errno.to_string(),
        None => e.to_string(),
    }
}

/// The run's private directory: `$TMPDIR/mp-demo-XXXXXX`, mode 0700 (explicitly:
/// tempfile's default follows the umask), so the run's sockets are reachable by no other
/// user. When `TMPDIR` is too long for the socket paths, a short private directory under
/// `/tmp` instead, and a line on stderr says so.
fn private_dir() -> Result<tempfile::TempDir> {
    let make = |base: &std::path::Path| {
        tempfile::Builder::new()
            .prefix("mp-demo-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir_in(base)
            .with_context(|| format!("creating the run's private directory in {}", base.display()))
    };
    let base = std::env::temp_dir();
    if base.as_os_str().len() + RUN_DIR_TAIL + IPC_SOCKET_TAIL <= SUN_PATH_MAX {
        return make(&base);
    }
    let short = std::path::Path::new("/tmp");
    diag(format_args!(
        "mp-demo: note: TMPDIR ({} characters) is too long for the run's socket paths (at most {} bytes); using a private directory in {} instead",
        base.as_os_str().len(),
        SUN_PATH_MAX,
        short.display()
    ));
    let dir = make(short)?;
    if !sockets_fit(dir.path()) {
        anyhow::bail!(
            "no directory short enough for the run's socket paths: {} is {} characters",
            dir.path().display(),
            dir.path().as_os_str().len()
        );
    }
    Ok(dir)
}

/// Fork the janitor: it waits for end of file on a pipe (the main process died or is
/// done) and removes the run's directory. It ignores the terminal's signals so that a
/// Ctrl-C to the whole process group cannot stop it before it has cleaned up.
fn spawn_janitor(dir: PathBuf) -> Result<(Pid, OwnedFd)> {
    let (r, w) = pipe()?;
    // SAFETY: called before any thread is started (Session::start is the first thing a
    // run does), so the child is a copy of a single-threaded process and may allocate.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            use nix::sys::signal::{signal, SigHandler};
            for sig in [
                Signal::SIGINT,
                Signal::SIGTERM,
                Signal::SIGHUP,
                Signal::SIGQUIT,
            ] {
                // SAFETY: ignoring a signal installs no handler code.
                let _ = unsafe { signal(sig, SigHandler::SigIgn) };
            }
            drop(w);
            // Do not hold the caller's terminal or pipes open.
            if let Ok(null) = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
            {
                for fd in 0..3 {
                    // SAFETY: dup2 onto the standard descriptors of this process only.
                    unsafe { nix::libc::dup2(null.as_raw_fd(), fd) };
                }
            }
            let mut byte = [0u8; 1];
            while !matches!(nix::unistd::read(&r, &mut byte), Ok(0) | Err(Errno::EBADF)) {}
            let _ = std::fs::remove_dir_all(&dir);
            // SAFETY: ends the janitor without running anything inherited from the parent.
            unsafe { nix::libc::_exit(0) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            drop(r);
            JANITOR.store(child.as_raw(), Ordering::SeqCst);
            JANITOR_FD.store(w.as_raw_fd(), Ordering::SeqCst);
            Ok((child, w))
        }
        Err(e) => Err(fork_error("fork() of the cleanup process", e)),
    }
}

/// If the janitor died (a SIGKILL aimed at it), start another at once, so a SIGKILL of
/// the main process afterwards still leaves no run directory behind (the fault suite
/// found it left, 3 of 3). Threads run by now, so this one is re-executed, not forked:
/// `mp-demo __janitor <dir>` reading its pipe on stdin ([`janitor_main`]).
pub fn mind_janitor() {
    let Some(pid) = janitor_pid() else { return };
    if !matches!(
        waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)),
        Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) | Err(Errno::ECHILD)
    ) {
        return;
    }
    let mut pipe_w = janitor_pipe();
    JANITOR.store(0, Ordering::SeqCst);
    JANITOR_FD.store(-1, Ordering::SeqCst);
    *pipe_w = None;
    let (Some(dir), Ok(exe)) = (RUN_DIR.get(), std::env::current_exe()) else {
        return;
    };
    let Ok((r, w)) = self::pipe() else { return };
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("__janitor")
        .arg(dir)
        .stdin(std::process::Stdio::from(r))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    if let Ok(child) = cmd.spawn() {
        JANITOR.store(child.id() as i32, Ordering::SeqCst);
        JANITOR_FD.store(w.as_raw_fd(), Ordering::SeqCst);
        *pipe_w = Some(w);
    }
}

/// `mp-demo __janitor <dir>`: a re-started janitor. It ignores the terminal's signals,
/// waits for end of file on stdin (a pipe whose write end the main process holds), and
/// removes `dir` — only a private run directory (`mp-demo-…`, 0700, ours), so the hidden
/// command cannot be turned against any other directory.
pub fn janitor_main(dir: &std::ffi::OsStr) -> std::process::ExitCode {
    use nix::sys::signal::{signal, SigHandler};
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        // SAFETY: ignoring a signal installs no handler code.
        let _ = unsafe { signal(sig, SigHandler::SigIgn) };
    }
    let stdin = std::io::stdin();
    let is_pipe = std::fs::metadata("/dev/stdin").is_ok_and(|m| m.file_type().is_fifo());
    let dir = std::path::Path::new(dir);
    // SAFETY: geteuid cannot fail and touches no memory.
    let euid = unsafe { nix::libc::geteuid() };
    let ours = dir
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("mp-demo-"))
        && std::fs::symlink_metadata(dir).is_ok_and(|m| {
            m.is_dir() && m.permissions().mode() & 0o777 == 0o700 && m.uid() == euid
        });
    if !is_pipe || !ours {
        return std::process::ExitCode::from(2);
    }
    let mut byte = [0u8; 1];
    while !matches!(
        nix::unistd::read(&stdin, &mut byte),
        Ok(0) | Err(Errno::EBADF)
    ) {}
    let _ = std::fs::remove_dir_all(dir);
    std::process::ExitCode::SUCCESS
}

/// SIGINT, SIGTERM, SIGHUP: request a stop, kill the children so every blocking call of
/// the lesson returns, and start a watchdog in case the main thread does not finish.
fn install_signal_handlers() -> Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]).context("signal setup")?;
    thread("signals", move || {
        for sig in signals.forever() {
            let first = stop_reason().is_none();
            request_stop(sig);
            kill_children();
            if first {
                // The promise is "within a second or two": cleanup normally takes
                // milliseconds; past 2 s, end it from here (children killed, files removed).
                let _ = thread("watchdog", move || {
                    std::thread::sleep(Duration::from_secs(2));
                    hard_exit(128 + sig);
                });
            } else {
                hard_exit(128 + sig);
            }
        }
    })?;
    Ok(())
}

/// The last resort: the main thread did not finish. Restore the terminal, kill what is
/// left, remove our files, and exit.
fn hard_exit(code: i32) -> ! {
    let _ = crossterm::terminal::disable_raw_mode();
    kill_children();
    if let Some(dir) = RUN_DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
    // The directory is gone, so the janitor's work is done; a stopped one would stay.
    if let Some(pid) = janitor_pid() {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    diag(format_args!("mp-demo: interrupted"));
    #[allow(clippy::disallowed_methods)] // the one hard exit: see clippy.toml
    std::process::exit(code)
}

/// Write one line to stderr, ignoring a failure: the diagnostic path must never panic
/// (`eprintln!` does, on a hung-up terminal's EIO or a full device), or the thread that
/// should end the process dies instead.
pub fn diag(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(line).and_then(|()| err.write_all(b"\n"));
    let _ = err.flush();
}

/// `n` random bytes from the kernel as hex: unguessable names (semaphores).
pub fn random_hex(n: usize) -> Result<String> {
    use std::io::Read;
    let mut bytes = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The janitor's pid (see [`Session::start`]), if one runs: a lesson that draws the
/// process tree read from `/proc` finds it among the main process's children and must
/// name it for what it is.
pub fn janitor_pid() -> Option<i32> {
    match JANITOR.load(Ordering::SeqCst) {
        0 => None,
        pid => Some(pid),
    }
}

/// In a forked process whose parent `creator` is ending: wait (bounded, 10 s) until the
/// kernel hands it to `adopter` (the main process, a child subreaper), then die with the
/// adopter from then on (`PR_SET_PDEATHSIG`: set earlier, the creator's exit would have
/// killed it) and check the parent once more, in case the adopter died in between. Any
/// other parent means the main process is gone: `_exit(1)`. Async-signal-safe (getppid,
/// nanosleep, prctl, _exit), so a forked child of a threaded process may call it.
pub fn await_adoption(creator: i32, adopter: i32) {
    let mut waited_ms = 0;
    loop {
        let ppid = nix::unistd::getppid().as_raw();
        if ppid == adopter {
            break;
        }
        if ppid != creator || waited_ms > 10_000 {
            // SAFETY: _exit is async-signal-safe.
            unsafe { nix::libc::_exit(1) };
        }
        let ms = nix::libc::timespec {
            tv_sec: 0,
            tv_nsec: 1_000_000,
        };
        // SAFETY: nanosleep with a stack timespec; async-signal-safe.
        unsafe { nix::libc::nanosleep(&ms, std::ptr::null_mut()) };
        waited_ms += 1;
    }
    die_with_parent_now(adopter);
}

/// `PR_SET_PDEATHSIG` (SIGKILL) for this process, then `_exit(1)` if its parent is no
/// longer `parent` (the race the flag alone cannot close). Async-signal-safe.
pub fn die_with_parent_now(parent: i32) {
    #[cfg(target_os = "linux")]
    {
        let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    }
    if nix::unistd::getppid().as_raw() != parent {
        // SAFETY: _exit is async-signal-safe.
        unsafe { nix::libc::_exit(1) };
    }
}

/// `sched_setaffinity(pid, {cpu})`: `pid` may run on `cpu` only (lessons that make
/// processes take turns on one CPU).
#[cfg(target_os = "linux")]
pub fn pin(pid: Pid, cpu: usize) -> Result<()> {
    use nix::sched::{sched_setaffinity, CpuSet};
    let mut set = CpuSet::new();
    set.set(cpu).context("CPU number out of range")?;
    sched_setaffinity(pid, &set).with_context(|| format!("sched_setaffinity({pid}, {{{cpu}}})"))
}

#[cfg(not(target_os = "linux"))]
pub fn pin(_pid: Pid, _cpu: usize) -> Result<()> {
    anyhow::bail!("sched_setaffinity is Linux-only")
}

/// CPU time of the calling thread in nanoseconds (`CLOCK_THREAD_CPUTIME_ID`): time it
/// really ran on a CPU, whatever else the machine was doing. Async-signal-safe
/// (clock_gettime), so a forked child may use it.
pub fn thread_cpu_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).map_or(0, |t| {
        t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
    })
}

/// The CPUs `pid` may run on (`sched_getaffinity`; 0: this process), in order.
#[cfg(target_os = "linux")]
pub fn allowed_cpus(pid: Pid) -> Vec<usize> {
    use nix::sched::{sched_getaffinity, CpuSet};
    match sched_getaffinity(pid) {
        Ok(set) => (0..CpuSet::count())
            .filter(|&i| set.is_set(i).unwrap_or(false))
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[cfg(not(target_os = "linux"))]
pub fn allowed_cpus(_pid: Pid) -> Vec<usize> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written to by its destructor: had a forked child unwound into this test's frame,
    /// its copy of the value would write `u` into the pipe.
    struct Witness(RawFd);

    impl Drop for Witness {
        fn drop(&mut self) {
            // SAFETY: write(2) of one byte from a static buffer.
            unsafe { nix::libc::write(self.0, b"u".as_ptr().cast(), 1) };
        }
    }

    #[test]
    fn a_forked_child_that_panics_exits_101_without_unwinding_into_the_parent() {
        guard_forked_panics();
        let (r, w) = pipe().unwrap();
        let witness = Witness(w.as_raw_fd());
        let child_body = || -> i32 { panic!("in the child") };
        // SAFETY: the child panics at once; the hook and the guard end it with _exit.
        let pid = unsafe { fork_child(child_body) }.unwrap();
        let status = waitpid(pid, None).unwrap();
        assert_eq!(status, WaitStatus::Exited(pid, EXIT_PANICKED));
        std::mem::forget(witness);
        drop(w);
        let mut buf = [0u8; 1];
        assert_eq!(
            nix::unistd::read(&r, &mut buf).unwrap(),
            0,
            "the child unwound"
        );
    }
}
