//! The system layer: what the lessons use of the kernel, each mechanism in one place
//! with its SAFETY reasoning, so that a lesson holds its story and calls these.
//!
//! - [`proc`]: everything read from `/proc` (states, where a sleeper waits, clocks,
//!   descriptors, threads, children, flocks).

pub mod proc;
