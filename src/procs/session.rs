//! The run's session: subreaper, private directory, janitor (and its restart), and the
//! ipc-channel servers whose sockets must fit inside the directory.

use super::*;
use anyhow::{anyhow, Context, Result};
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// The janitor's pid, never killed by the sweeps (0: none).
pub(super) static JANITOR: AtomicI32 = AtomicI32::new(0);

/// The write end of the janitor's pipe, closed by forked children.
pub(super) static JANITOR_FD: AtomicI32 = AtomicI32::new(-1);

/// The run's private directory, for the watchdog's last-resort cleanup.
pub(super) static RUN_DIR: OnceLock<PathBuf> = OnceLock::new();

/// The machinery of one run of lessons: subreaper, private directory, janitor, signals.
/// Dropping it kills and reaps every descendant and removes every file.
pub struct Session {
    dir: Option<tempfile::TempDir>,
}

/// The write end of the live janitor's pipe (its end of file is the janitor's signal).
pub(super) static JANITOR_PIPE: std::sync::Mutex<Option<OwnedFd>> = std::sync::Mutex::new(None);

pub(super) fn janitor_pipe() -> std::sync::MutexGuard<'static, Option<OwnedFd>> {
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
pub(super) const SUN_PATH_MAX: usize = 107;

/// What ipc-channel adds to `TMPDIR` for a one-shot server's socket:
/// `/.tmpXXXXXX/socket` (tempfile's default name, then the socket's).
pub(super) const IPC_SOCKET_TAIL: usize = "/.tmpXXXXXX/socket".len();

/// What the run adds to the base directory: `/mp-demo-XXXXXX`.
pub(super) const RUN_DIR_TAIL: usize = "/mp-demo-XXXXXX".len();

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

/// The run's private directory: `$TMPDIR/mp-demo-XXXXXX`, mode 0700 (explicitly:
/// tempfile's default follows the umask), so the run's sockets are reachable by no other
/// user. When `TMPDIR` is too long for the socket paths, a short private directory under
/// `/tmp` instead, and a line on stderr says so.
pub(super) fn private_dir() -> Result<tempfile::TempDir> {
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
pub(super) fn spawn_janitor(dir: PathBuf) -> Result<(Pid, OwnedFd)> {
    let (r, w) = pipe()?;
    // SAFETY: called before any thread is started (Session::start is the first thing a
    // run does), so the child is a copy of a single-threaded process and may allocate.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            ignore_terminal_signals();
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

/// The janitor outlives the terminal and its Ctrl-C: it ignores what the terminal sends
/// (SIGINT, SIGTERM, SIGHUP, SIGQUIT) and ends only at the end of file it waits for.
fn ignore_terminal_signals() {
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
}

/// `mp-demo __janitor <dir>`: a re-started janitor. It ignores the terminal's signals,
/// waits for end of file on stdin (a pipe whose write end the main process holds), and
/// removes `dir` — only a private run directory (`mp-demo-…`, 0700, ours), so the hidden
/// command cannot be turned against any other directory.
pub fn janitor_main(dir: &std::ffi::OsStr) -> std::process::ExitCode {
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    ignore_terminal_signals();
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
