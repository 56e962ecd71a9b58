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
//!
//! One module a concern: [`stop`], [`reap`], [`fork`], [`session`], [`limits`], [`sched`].

mod fork;
mod limits;
mod reap;
mod sched;
mod session;
mod stop;

pub use fork::*;
pub use limits::*;
pub use reap::*;
pub use sched::*;
pub use session::*;
pub use stop::*;
