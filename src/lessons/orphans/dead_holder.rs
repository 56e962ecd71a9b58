//! Part four of `orphans`: a lock (a POSIX named semaphore, like Python's
//! `multiprocessing.Lock`) taken by a child that is then terminated is never released: the
//! next `acquire(timeout=…)` (`sem_timedwait`) returns False.

use super::{expect_note, letter, Said, TIMEOUT, WORDS};
use crate::ctx::{Ctx, Expect};
use crate::procs::{self, Note};
use crate::sys::proc::Call;
use crate::sys::sem::{NamedSem, RawSem};
use crate::{say, say_for, step};
use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// The lock and the pipe its users report on, shared by the phases of [`dead_holder`].
struct Lock {
    sem: NamedSem,
    /// `sem`, for the forked children.
    raw: RawSem,
    /// Notes from the holder and from the next process.
    note_r: OwnedFd,
    /// The write end of `note_r`'s pipe, as the children see it.
    note_fd: RawFd,
}

/// Part four: a lock whose holder was terminated stays taken.
pub(super) fn dead_holder(ctx: &mut Ctx<'_>) -> Result<()> {
    step!(ctx, "lock", &[])?;
    say!(ctx, "lock_intro", &[]);
    ctx.pause(2000)?;
    // Like CPython's SemLock under the fork start method: created with an unguessable
    // name and unlinked at once; the children share it because fork copies the mapping.
    let mut sem = NamedSem::fresh("lock", 1)?;
    let name = sem.name().to_string();
    sem.unlink()?;
    say!(
        ctx,
        "lock_created",
        &[("name", &name), ("value", &sem.value())]
    );
    ctx.pause(2000)?;

    let (note_r, note_w) = procs::pipe()?;
    let lock = Lock {
        raw: sem.raw(),
        sem,
        note_r,
        note_fd: note_w.as_raw_fd(),
    };
    let holder = take_and_hold(ctx, &lock)?;
    terminate_holder(ctx, &lock, holder)?;
    let got = next_acquire(ctx, &lock, holder, note_w)?;
    let value = lock.sem.value();
    drop(lock.sem);
    ctx.claim("lock_acquired_after_holder_died", got, Expect::eq(false));
    ctx.observe("lock_value_after", value);
    say!(ctx, "never_released", &[]);
    ctx.pause(2500)?;
    say!(ctx, "flock_contrast", &[]);
    Ok(())
}

/// The holder takes the free lock and sleeps holding it (`S`). Its PID.
fn take_and_hold(ctx: &mut Ctx<'_>, lock: &Lock) -> Result<Pid> {
    let (raw, note_fd) = (lock.raw, lock.note_fd);
    let child_body = move || {
        let got = raw.try_acquire();
        Note::tell(note_fd, Said::Acquired, i64::from(got));
        loop {
            nix::unistd::pause();
        }
    };
    // SAFETY: the holder only calls sem_trywait (atomic operations on the shared mapping,
    // no allocation, no lock), Note::send (clock_gettime, getpid, getppid, write) and
    // pause(2); a signal ends it.
    let holder = unsafe { ctx.fork("holder", child_body) }?;
    let note = expect_note(&lock.note_r, Said::Acquired, "the holder's acquire")?;
    if note.b != 1 {
        bail!("the holder (PID {holder}) could not take a free lock");
    }
    ctx.act_at(
        holder.as_raw(),
        note.t_ns,
        "acquire",
        &[("what", "lock".into()), ("value", lock.sem.value().into())],
    );
    say_for!(ctx, holder.as_raw(), note.t_ns, "holder_acquired", &[]);
    let hs = letter(ctx.wait_state(holder, &['S'], TIMEOUT)?);
    say!(ctx, "holder_holds", &[("pid", &holder), ("state", &hs)]);
    ctx.pause(2500)?;
    Ok(holder)
}

/// `terminate()` of the holder: it ends with the lock still taken (value 0).
fn terminate_holder(ctx: &mut Ctx<'_>, lock: &Lock, holder: Pid) -> Result<()> {
    step!(ctx, "holder_terminated", &[("pid", &holder)])?;
    // The holder as it is terminated: asleep, the lock still taken.
    ctx.show(0)?;
    say!(ctx, "terminate_holder", &[("pid", &holder)]);
    kill(holder, Signal::SIGTERM).context("kill(SIGTERM) of the holder")?;
    // Its end (exitcode -15, reaped by main) is the exit line just before.
    ctx.join(holder)?;
    let value = lock.sem.value();
    say!(ctx, "holder_gone", &[("value", &value)]);
    ctx.pause(2500)?;
    Ok(())
}

/// How long the next process waits for the dead holder's lock at `--speed 1`, and at
/// least at every speed (long enough for the observer to see it asleep).
const ACQUIRE_TIMEOUT_MS: u64 = 2500;
const ACQUIRE_TIMEOUT_MIN_MS: u64 = 60;

/// The next process: `acquire(timeout=…)` sleeps in the futex wait and times out.
/// Whether it got the lock. `note_w`, our copy of the notes' write end, is closed once it
/// is forked.
fn next_acquire(ctx: &mut Ctx<'_>, lock: &Lock, holder: Pid, note_w: OwnedFd) -> Result<bool> {
    let (raw, note_fd) = (lock.raw, lock.note_fd);
    let timeout_ms = ((ACQUIRE_TIMEOUT_MS as f64 * ctx.speed) as u64).max(ACQUIRE_TIMEOUT_MIN_MS);
    // The next process is part of the same step: the lock its holder never gave back.
    let child_body = move || {
        Note::tell(note_fd, Said::Waiting, timeout_ms as i64);
        let got = raw.acquire_within(timeout_ms);
        Note::tell(note_fd, Said::Waited, got);
        0
    };
    // SAFETY: the next process only calls Note::send, sem_timedwait (clock_gettime,
    // atomic operations on the shared mapping and a futex wait: no allocation, no lock)
    // and returns its result to _exit.
    let next = unsafe { ctx.fork("next", child_body) }?;
    drop(note_w);
    let waiting = expect_note(&lock.note_r, Said::Waiting, "the next process")?;
    ctx.act_at(
        next.as_raw(),
        waiting.t_ns,
        "wait",
        &[
            ("what", "lock".into()),
            ("timeout_ms", (timeout_ms as i64).into()),
            ("holder", holder.as_raw().into()),
        ],
    );
    say_for!(
        ctx,
        next.as_raw(),
        waiting.t_ns,
        "next_acquire",
        &[("ms", &timeout_ms), ("s", &(timeout_ms as f64 / 1000.0))],
    );
    // Seen asleep inside the futex wait, by a fresh read of /proc (not a stale S). Looked
    // for no longer than the wait lasts: on a busy machine it may end unseen.
    let window = Duration::from_millis(timeout_ms);
    if let Some((state, wchan)) = ctx.wait_blocked_in(next, Call::Futex, window)? {
        say!(
            ctx,
            "next_asleep",
            &[("pid", &next), ("state", &state), ("wchan", &wchan)],
        );
    }
    let waited = expect_note(&lock.note_r, Said::Waited, "the next process's acquire")?;
    let got = match waited.b {
        1 => true,
        0 => false,
        e => bail!(
            "sem_timedwait() failed in the next process (PID {next}): {}",
            Errno::from_raw(-e as i32)
        ),
    };
    ctx.act_at(
        next.as_raw(),
        waited.t_ns,
        "wait_done",
        &[("what", "lock".into()), ("result", got.into())],
    );
    say_for!(
        ctx,
        next.as_raw(),
        waited.t_ns,
        if (got) { "next_got" } else { "next_timed_out" },
        &[("ms", &timeout_ms)],
    );
    let code = ctx.join(next)?;
    if code != 0 {
        bail!("the next process (PID {next}) exited with {code}");
    }
    Ok(got)
}
