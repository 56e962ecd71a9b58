//! Resource limits and failures said in words: which limit an errno points at, the limits
//! checked before a run starts, space allocated before a mapping is touched.

use anyhow::{anyhow, Result};
use nix::errno::Errno;

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

/// The fewest descriptors a run needs (the largest lessons hold about 40 at once).
pub(super) const MIN_NOFILE: u64 = 64;

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
pub(super) const MIN_ADDRESS_SPACE: u64 = 64 << 20;

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
