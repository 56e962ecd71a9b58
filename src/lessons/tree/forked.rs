//! The tree's forked processes: each child joins its group and forks a grandchild; each
//! grandchild waits for a signal (one of them first leaves the group). Async-signal-safe
//! only: they run in copies of a multi-threaded process.

use super::*;
use crate::procs::Note;
use std::os::fd::RawFd;

/// A child: join process group `group` (0: a new one, named after itself), say hello,
/// wait at the gate (one byte on `gate_fd`), fork a grandchild, wait for a signal.
/// `mover`: the pipe on which the grandchild will be asked to leave the group (only
/// child-2's grandchild has one).
pub(super) fn child(
    group: i32,
    main: i32,
    note_fd: RawFd,
    gate_fd: RawFd,
    mover: Option<RawFd>,
) -> i32 {
    use nix::libc;
    // SAFETY: setpgid(2) and getpgrp(2) are async-signal-safe.
    if unsafe { libc::setpgid(0, group) } != 0 {
        Note::tell(
            note_fd,
            Said::SetpgidFailed,
            nix::errno::Errno::last_raw() as i64,
        );
        return 2;
    }
    // SAFETY: as above.
    Note::tell(note_fd, Said::Hello, i64::from(unsafe { libc::getpgrp() }));
    // The gate: the main process writes one byte once my hello has been read. End of
    // file (the main process is gone) or an error: end here.
    if !crate::procs::wait_byte(gate_fd) {
        return 5;
    }
    let me = nix::unistd::getpid().as_raw();
    // For the grandchild that will outlive this process: a pipe whose write end only this
    // process holds, so the grandchild reads end of file the moment this process ends.
    let mut alive: [libc::c_int; 2] = [-1, -1];
    // SAFETY: pipe(2) into a stack array; async-signal-safe.
    if mover.is_some() && unsafe { libc::pipe(alive.as_mut_ptr()) } != 0 {
        Note::tell(
            note_fd,
            Said::ForkFailed,
            nix::errno::Errno::last_raw() as i64,
        );
        return 3;
    }
    // SAFETY: this process is a fork of a multi-threaded one, with a single thread; the
    // grandchild only makes async-signal-safe calls (see `grandchild`).
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            if alive[1] >= 0 {
                // SAFETY: close(2) of our copy of the write end; async-signal-safe.
                unsafe { libc::close(alive[1]) };
            }
            grandchild(me, main, note_fd, mover.map(|m| (m, alive[0])))
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            if alive[0] >= 0 {
                // SAFETY: close(2) of our copy of the read end; async-signal-safe.
                unsafe { libc::close(alive[0]) };
            }
            Note::tell(note_fd, Said::Forked, i64::from(child.as_raw()));
            loop {
                nix::unistd::pause();
            }
        }
        Err(errno) => {
            Note::tell(note_fd, Said::ForkFailed, errno as i64);
            3
        }
    }
}

/// A grandchild: say hello, wait for a signal. With `mover` = (the move pipe, the pipe
/// its parent holds open), it may be asked to move to a group of its own, and it must
/// outlive its parent: instead of dying with it (`PR_SET_PDEATHSIG`), it waits for the
/// parent's end, then for its new parent, and dies with that one if it is the main
/// process, or exits at once if it is not (the main process is gone).
pub(super) fn grandchild(
    parent: i32,
    main: i32,
    note_fd: RawFd,
    mover: Option<(RawFd, RawFd)>,
) -> ! {
    use nix::libc;
    let Some((move_fd, alive_fd)) = mover else {
        crate::procs::die_with_parent_now(parent);
        // SAFETY: getpgrp(2) is async-signal-safe.
        Note::tell(note_fd, Said::Hello, i64::from(unsafe { libc::getpgrp() }));
        loop {
            nix::unistd::pause();
        }
    };
    // SAFETY: getpgrp(2) is async-signal-safe.
    Note::tell(note_fd, Said::Hello, i64::from(unsafe { libc::getpgrp() }));
    let mut fds = [
        libc::pollfd {
            fd: move_fd,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: alive_fd,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: poll(2) on a stack array; async-signal-safe.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            if nix::errno::Errno::last() == nix::errno::Errno::EINTR {
                continue;
            }
            // SAFETY: _exit is async-signal-safe.
            unsafe { libc::_exit(4) };
        }
        if fds[0].revents != 0 {
            let mut byte = [0u8; 1];
            // SAFETY: read(2) into a stack buffer; async-signal-safe.
            if unsafe { libc::read(move_fd, byte.as_mut_ptr().cast(), 1) } == 1 {
                // SAFETY: setpgid(2), getpgrp(2): async-signal-safe.
                if unsafe { libc::setpgid(0, 0) } == 0 {
                    // SAFETY: getpgrp(2): async-signal-safe.
                    let group = unsafe { libc::getpgrp() };
                    Note::tell(note_fd, Said::Moved, i64::from(group));
                } else {
                    let e = nix::errno::Errno::last_raw() as i64;
                    Note::tell(note_fd, Said::SetpgidFailed, e);
                }
            }
            fds[0].fd = -1; // asked once: poll() skips a negative descriptor
        }
        if fds[1].revents != 0 {
            break; // end of file: the parent is gone
        }
    }
    // The pipe closes a moment before the exiting parent hands its children over: wait
    // (bounded) for the new parent.
    crate::procs::await_adoption(parent, main);
    Note::tell(note_fd, Said::Reparented, 0);
    loop {
        nix::unistd::pause();
    }
}
