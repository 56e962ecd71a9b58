//! The soak (issue 7): the tour many times in a row at `--speed 0`; all pass, and the
//! open file descriptors of this process, the processes, temporary files and `/dev/shm`
//! semaphores are the same after as before. A file of its own, so that no other test runs
//! in this process at the same time and moves the counts.

mod common;

use common::Live;
use std::time::Duration;

fn soak(rounds: usize) {
    let fds_before = std::fs::read_dir("/proc/self/fd").unwrap().count();
    let shm_before = std::fs::read_dir("/dev/shm").map_or(0, |d| d.count());
    for round in 0..rounds {
        let mut live = Live::start(&["--json", "--speed", "0", "tour"]);
        let status = live.wait_exit(Duration::from_secs(60));
        assert_eq!(status.code(), Some(0), "round {round}: {}", live.stderr());
        live.assert_clean(Duration::from_secs(1));
    }
    assert_eq!(
        std::fs::read_dir("/proc/self/fd").unwrap().count(),
        fds_before
    );
    assert_eq!(
        std::fs::read_dir("/dev/shm").map_or(0, |d| d.count()),
        shm_before
    );
}

/// The tour twice in a row: both pass, nothing accumulates (a second round is what
/// shows a leak; the thirty rounds below are the soak proper).
#[test]
fn soak_the_tour_twice() {
    soak(2);
}

/// The full soak: `cargo test --release --test soak -- --ignored`.
#[test]
#[ignore]
fn soak_the_tour_thirty_times() {
    soak(30);
}
