//! `cargo bench`: how fast mp-demo is, measured on this machine.
//!
//! - start-up: `mp-demo list` against `true` (the cost of the program itself);
//! - every lesson at `--speed 0 --json` (the demonstration without pacing);
//! - the tour, when there is one.
//!
//! Each figure is the median wall time of several runs, with the minimum and maximum.
//! Timing claims live here, not in the tests. Set `MP_DEMO_BENCH_RUNS` to change the count.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn time_runs(
    runs: usize,
    mut cmd: impl FnMut() -> Command,
) -> (Duration, Duration, Duration, bool) {
    let mut times = Vec::with_capacity(runs);
    let mut all_ok = true;
    for _ in 0..runs {
        let mut c = cmd();
        c.stdout(Stdio::null())
            .stderr(Stdio::null())
            .stdin(Stdio::null());
        let t = Instant::now();
        let status = c.status().expect("the command runs");
        times.push(t.elapsed());
        all_ok &= status.success();
    }
    times.sort();
    (
        times[times.len() / 2],
        times[0],
        times[times.len() - 1],
        all_ok,
    )
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn row(name: &str, (median, min, max, ok): (Duration, Duration, Duration, bool)) {
    println!(
        "{name:<28} {:>10} {:>10} {:>10}  {}",
        ms(median),
        ms(min),
        ms(max),
        if ok { "ok" } else { "FAILED" }
    );
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument is a filter on the row names.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let want = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    let exe = env!("CARGO_BIN_EXE_mp-demo");
    let runs: usize = std::env::var("MP_DEMO_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    println!(
        "mp-demo speed, {runs} runs each, wall time in ms ({} CPUs)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:<28} {:>10} {:>10} {:>10}",
        "what", "median", "min", "max"
    );
    if want("startup") {
        row(
            "startup: true",
            time_runs(runs * 3, || Command::new("true")),
        );
        row(
            "startup: mp-demo list",
            time_runs(runs * 3, || {
                let mut c = Command::new(exe);
                c.arg("list");
                c
            }),
        );
    }
    for def in mp_demo::lessons::LESSONS {
        let name = format!("lesson: {}", def.name);
        if want(&name) {
            row(
                &name,
                time_runs(runs, || {
                    let mut c = Command::new(exe);
                    c.args(["--speed", "0", "--json", def.name]);
                    c
                }),
            );
        }
    }
    if want("pool speed-up") {
        pool_speedup(exe, runs);
    }
    let has_tour = Command::new(exe)
        .args(["tour", "--help"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if has_tour && want("tour") {
        row(
            "tour (--speed 0 --json)",
            time_runs(runs.div_ceil(3), || {
                let mut c = Command::new(exe);
                c.args(["--speed", "0", "--json", "tour"]);
                c
            }),
        );
    }
}

/// The `pool` lesson's speed-up (one process against the pool, same CPU-bound tasks) and
/// the CPUs' worth of time its workers really got, over several runs: the timing claim
/// the tests leave to the benchmark.
fn pool_speedup(exe: &str, runs: usize) {
    let mut speedups = Vec::new();
    let mut used = Vec::new();
    for _ in 0..runs {
        let out = Command::new(exe)
            .args(["--speed", "0", "--json", "pool"])
            .stderr(Stdio::null())
            .output()
            .expect("the command runs");
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Ok(e) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if e["kind"] == "observation" {
                match (e["name"].as_str(), e["value"].as_f64()) {
                    (Some("speedup"), Some(v)) => speedups.push(v),
                    (Some("cpus_used"), Some(v)) => used.push(v),
                    _ => {}
                }
            }
        }
    }
    for (name, mut v) in [
        ("pool speed-up (x)", speedups),
        ("pool workers' CPUs used", used),
    ] {
        if v.is_empty() {
            continue;
        }
        v.sort_by(f64::total_cmp);
        println!(
            "{name:<28} {:>10.2} {:>10.2} {:>10.2}",
            v[v.len() / 2],
            v[0],
            v[v.len() - 1]
        );
    }
}
