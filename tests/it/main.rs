//! The integration tests: one binary that runs the built `mp-demo` and reads what it
//! does (its `--json` stream, its exit code, its processes, its terminal), one module per
//! topic. One binary, not one per file: the suite links once, and its tests share the
//! machine's cores. The soak (`tests/soak.rs`) stays a binary of its own, since it counts
//! this process's descriptors and would see other tests' runs.

#[path = "../common/mod.rs"]
mod common;

mod cleanup;
mod cli;
mod cost;
mod daemon;
mod decode;
mod event;
mod events_doc;
mod faults;
mod fork;
mod interactive;
mod isolation;
mod lock;
mod orphans;
mod pipe;
mod pool;
mod python;
mod queue;
mod semaphore;
mod shared;
mod states;
mod sync_vs_async;
mod teaching;
mod tree;
