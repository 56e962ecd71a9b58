//! The system layer: what the lessons use of the kernel, each mechanism in one place
//! with its SAFETY reasoning, so that a lesson holds its story and calls these.
//!
//! - [`proc`]: everything read from `/proc` (states, where a sleeper waits, clocks,
//!   descriptors, threads, children, flocks).
//! - [`sem`]: POSIX semaphores: named (`NamedSem`, and `RawSem` for a forked child) and
//!   unnamed in a shared page (`PageSem`).
//! - [`flock`]: a file lock taken and given back many times.
//! - [`shared`]: a page shared by processes (`mmap(MAP_SHARED)`), `Shared<T>`.
//! - [`fd`]: whole reads and writes on a descriptor, and "is there anything to read?".

pub mod fd;
pub mod flock;
pub mod proc;
pub mod sem;
pub mod shared;
