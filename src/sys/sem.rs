//! POSIX semaphores. Named ones (`sem_open`), shared by the lessons that need one:
//! `semaphore` (a counter of rooms), `orphans` (a lock a terminated holder never gives
//! back), `queue` (CPython's `SemLock`s of a `Queue` and a `JoinableQueue`). Names are
//! unguessable ([`NamedSem::fresh`]) and unlinked as soon as every process has it open, so
//! nothing is left in /dev/shm. And an unnamed one in a shared page ([`PageSem`],
//! `sem_init` with `pshared = 1`): the `shared` lesson's lock of its value.

use anyhow::{bail, Result};
use nix::errno::Errno;
use nix::libc;
use std::ffi::CString;

/// P without blocking: `sem_trywait`. False if the counter was 0 (EAGAIN).
///
/// # Safety
/// `sem` points to a live semaphore (open, or in a live mapping) that was initialised.
unsafe fn try_wait_at(sem: *mut libc::sem_t) -> Result<bool> {
    loop {
        // SAFETY: the caller's promise.
        if unsafe { libc::sem_trywait(sem) } == 0 {
            return Ok(true);
        }
        match Errno::last() {
            Errno::EAGAIN => return Ok(false),
            Errno::EINTR => continue,
            e => bail!("sem_trywait failed: {e}"),
        }
    }
}

/// P: `sem_wait`, asleep in the kernel (`futex`) until the counter is above 0.
///
/// # Safety
/// As [`try_wait_at`].
unsafe fn wait_at(sem: *mut libc::sem_t) -> Result<()> {
    loop {
        // SAFETY: the caller's promise.
        if unsafe { libc::sem_wait(sem) } == 0 {
            return Ok(());
        }
        match Errno::last() {
            Errno::EINTR => continue,
            e => bail!("sem_wait failed: {e}"),
        }
    }
}

/// V: `sem_post`.
///
/// # Safety
/// As [`try_wait_at`].
unsafe fn post_at(sem: *mut libc::sem_t) -> Result<()> {
    // SAFETY: the caller's promise.
    if unsafe { libc::sem_post(sem) } != 0 {
        bail!("sem_post failed: {}", Errno::last());
    }
    Ok(())
}

/// A POSIX named semaphore (`sem_open`), closed when dropped, and unlinked then too if
/// this process created it and has not unlinked it yet.
pub struct NamedSem {
    sem: *mut libc::sem_t,
    name: CString,
    linked: bool,
}

impl NamedSem {
    /// The semaphore as a forked child uses it ([`RawSem`]): valid while this stays open.
    pub fn raw(&self) -> RawSem {
        RawSem(self.sem)
    }

    /// A fresh, unguessable name: `/mp-demo-<pid>-<16 random hex digits>-<what>`, where
    /// pid is the process that makes it (a lesson's main process): so what a run leaves
    /// in /dev/shm, if ever, says whose it was.
    pub fn fresh_name(what: &str) -> Result<String> {
        Ok(format!(
            "/mp-demo-{}-{}-{what}",
            nix::unistd::getpid(),
            crate::procs::random_hex(8)?
        ))
    }

    /// A new semaphore under a [fresh name](NamedSem::fresh_name).
    pub fn fresh(what: &str, value: u32) -> Result<NamedSem> {
        NamedSem::create(&NamedSem::fresh_name(what)?, value)
    }

    /// Its name, for the processes that open it.
    pub fn name(&self) -> &str {
        self.name.to_str().unwrap_or("?")
    }

    /// `sem_open(name, O_CREAT | O_EXCL, 0600, value)`: a new semaphore, never an old one.
    pub fn create(name: &str, value: u32) -> Result<NamedSem> {
        let c = CString::new(name)?;
        // SAFETY: `c` is a valid NUL-terminated string; with O_CREAT, sem_open reads
        // exactly two more arguments, a mode_t and an unsigned int, which we pass.
        let sem = unsafe {
            libc::sem_open(
                c.as_ptr(),
                libc::O_CREAT | libc::O_EXCL,
                0o600 as libc::c_uint,
                value as libc::c_uint,
            )
        };
        if sem == libc::SEM_FAILED {
            bail!("sem_open({name}, O_CREAT|O_EXCL) failed: {}", Errno::last());
        }
        Ok(NamedSem {
            sem,
            name: c,
            linked: true,
        })
    }

    /// `sem_open(name, 0)`: open a semaphore another process created.
    pub fn open(name: &str) -> Result<NamedSem> {
        let c = CString::new(name)?;
        // SAFETY: `c` is a valid NUL-terminated string; without O_CREAT no more
        // arguments are read.
        let sem = unsafe { libc::sem_open(c.as_ptr(), 0) };
        if sem == libc::SEM_FAILED {
            bail!("sem_open({name}) failed: {}", Errno::last());
        }
        Ok(NamedSem {
            sem,
            name: c,
            linked: false,
        })
    }

    /// `sem_unlink`: the name goes; the semaphore lives on while anyone has it open.
    pub fn unlink(&mut self) -> Result<()> {
        // SAFETY: a valid NUL-terminated name.
        if unsafe { libc::sem_unlink(self.name.as_ptr()) } != 0 {
            bail!("sem_unlink({:?}) failed: {}", self.name, Errno::last());
        }
        self.linked = false;
        Ok(())
    }

    /// P without blocking: `sem_trywait`. False if the counter was 0 (EAGAIN).
    pub fn try_wait(&self) -> Result<bool> {
        // SAFETY: `sem` came from a successful sem_open and is not closed yet.
        unsafe { try_wait_at(self.sem) }
    }

    /// P: `sem_wait`, asleep in the kernel until the counter is above 0.
    pub fn wait(&self) -> Result<()> {
        // SAFETY: `sem` came from a successful sem_open and is not closed yet.
        unsafe { wait_at(self.sem) }
    }

    /// V: `sem_post`.
    pub fn post(&self) -> Result<()> {
        // SAFETY: `sem` came from a successful sem_open and is not closed yet.
        unsafe { post_at(self.sem) }
    }

    /// The counter now (`sem_getvalue`), -1 where the system cannot say.
    #[cfg(target_os = "linux")]
    pub fn value(&self) -> i64 {
        let mut v: libc::c_int = 0;
        // SAFETY: `sem` is open; `v` is a valid place for the result.
        match unsafe { libc::sem_getvalue(self.sem, &mut v) } {
            0 => i64::from(v),
            _ => -1,
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub fn value(&self) -> i64 {
        -1
    }
}

impl Drop for NamedSem {
    fn drop(&mut self) {
        if self.linked {
            let _ = self.unlink();
        }
        // SAFETY: `sem` came from a successful sem_open and is closed only here.
        unsafe { libc::sem_close(self.sem) };
    }
}

/// A named semaphore as a forked child uses it: the `sem_open` mapping is shared
/// (`MAP_SHARED`) and copied by fork, so the pointer is valid in the child too, and the
/// two calls below are async-signal-safe in practice (glibc: atomic operations on the
/// shared counter, `clock_gettime` and a futex wait; no allocation, no lock).
#[derive(Clone, Copy)]
pub struct RawSem(*mut libc::sem_t);

// SAFETY: a POSIX semaphore is made to be used from several threads and processes at
// once; the pointer is only used while the NamedSem it came from is open.
unsafe impl Send for RawSem {}

impl RawSem {
    /// `lock.acquire(block=False)`: `sem_trywait`.
    pub fn try_acquire(self) -> bool {
        // SAFETY: `self.0` points into a live semaphore mapping (see RawSem).
        unsafe { libc::sem_trywait(self.0) == 0 }
    }

    /// `lock.acquire(timeout=ms/1000)`: `sem_timedwait` until now + `ms`
    /// (CLOCK_REALTIME, as POSIX says). 1 acquired, 0 timed out, -errno for any other
    /// failure (a number, not an error: the caller is a forked child that may not
    /// allocate).
    #[cfg(target_os = "linux")]
    pub fn acquire_within(self, ms: u64) -> i64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes into our stack timespec; async-signal-safe.
        unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
        ts.tv_sec += (ms / 1000) as libc::time_t;
        ts.tv_nsec += ((ms % 1000) * 1_000_000) as libc::c_long;
        if ts.tv_nsec >= 1_000_000_000 {
            ts.tv_nsec -= 1_000_000_000;
            ts.tv_sec += 1;
        }
        loop {
            // SAFETY: `self.0` points into a live semaphore mapping; `ts` is valid.
            if unsafe { libc::sem_timedwait(self.0, &ts) } == 0 {
                return 1;
            }
            match Errno::last() {
                Errno::EINTR => continue,
                Errno::ETIMEDOUT => return 0,
                e => return -(e as i64),
            }
        }
    }

    /// macOS has no `sem_timedwait`.
    #[cfg(not(target_os = "linux"))]
    pub fn acquire_within(self, _ms: u64) -> i64 {
        -(Errno::ENOSYS as i64)
    }
}

/// An unnamed POSIX semaphore that lives in a page shared by processes: a field of a
/// [`SharedPage`](super::shared::SharedPage), initialised once with `pshared = 1`
/// ([`PageSem::init`]), so that every process that maps the page uses the same
/// semaphore, at whatever address it mapped it (the kernel's futex is not the
/// `_PRIVATE` kind: it finds the word through the page). Linux only: macOS has no
/// process-shared `sem_init`.
///
/// It is only ever touched through the `sem_*` calls below, on a pointer into the page,
/// which is live as long as the `&PageSem` (a `Shared` hands out no reference that
/// outlives its mapping). All-zero bytes, a new page, are what glibc and musl read as a
/// process-shared semaphore at 0, and `init` comes before the page is shown to any other
/// process, so every call finds a semaphore.
#[cfg(target_os = "linux")]
#[repr(transparent)]
pub struct PageSem(std::cell::UnsafeCell<libc::sem_t>);

// SAFETY: a POSIX semaphore is made for concurrent use by threads and processes, and the
// cell is only reached through the sem_* calls (see PageSem).
#[cfg(target_os = "linux")]
unsafe impl Sync for PageSem {}

#[cfg(target_os = "linux")]
impl PageSem {
    /// `sem_init(&sem, pshared = 1, value)`: done once, by the process that created the
    /// page.
    ///
    /// # Safety
    /// No process uses the semaphore yet (nor until this returns).
    pub unsafe fn init(&self, value: u32) -> Result<()> {
        // SAFETY: the semaphore lies in a live mapping (see PageSem), unused (the
        // caller's promise).
        if unsafe { libc::sem_init(self.0.get(), 1, value) } != 0 {
            bail!("sem_init(pshared=1) failed: {}", Errno::last());
        }
        Ok(())
    }

    /// `sem_destroy`.
    ///
    /// # Safety
    /// No process uses the semaphore any more, nor will (every one that did is reaped).
    pub unsafe fn destroy(&self) {
        // SAFETY: a live mapping (see PageSem), unused from now on (the caller's promise).
        unsafe { libc::sem_destroy(self.0.get()) };
    }

    /// P without blocking: `sem_trywait`. False if another process holds it.
    pub fn try_wait(&self) -> Result<bool> {
        // SAFETY: a semaphore in a live mapping (see PageSem).
        unsafe { try_wait_at(self.0.get()) }
    }

    /// P: `sem_wait`, asleep in `futex()` until it is free.
    pub fn wait(&self) -> Result<()> {
        // SAFETY: a semaphore in a live mapping (see PageSem).
        unsafe { wait_at(self.0.get()) }
    }

    /// V: `sem_post`.
    pub fn post(&self) -> Result<()> {
        // SAFETY: a semaphore in a live mapping (see PageSem).
        unsafe { post_at(self.0.get()) }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn page_sem_is_a_lock() {
        // SAFETY: all-zero bytes are a valid sem_t (see PageSem); only used below.
        let sem: PageSem = unsafe { std::mem::zeroed() };
        // SAFETY: nobody else uses it.
        unsafe { sem.init(1) }.unwrap();
        assert!(sem.try_wait().unwrap());
        assert!(!sem.try_wait().unwrap());
        sem.post().unwrap();
        sem.wait().unwrap();
        sem.post().unwrap();
        // SAFETY: nobody uses it any more.
        unsafe { sem.destroy() };
    }
}
