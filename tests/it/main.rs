//! The integration tests: one binary that runs the built `mp-demo` and reads what it
//! does (its `--json` stream, its exit code, its processes, its terminal), one module per
//! topic. One binary, not one per file: the suite links once, and its tests share the
//! machine's cores. The soak (`tests/soak.rs`) stays a binary of its own, since it counts
//! this process's descriptors and would see other tests' runs.

#[path = "../common/mod.rs"]
mod common;

// One module per file of this folder, listed by build.rs (a new lesson's test file is
// found by being here: nothing to add).
include!(concat!(env!("OUT_DIR"), "/it_mods.rs"));
