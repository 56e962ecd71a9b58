//! `cargo bench`: how fast mp-demo is, measured on this machine.
//!
//! - start-up: `mp-demo list` against `true` (the cost of the program itself);
//! - every lesson at `--speed 0 --json` (the demonstration without pacing);
//! - the tour, when there is one;
//! - `cost`'s bare figures (fork, thread, pipe round trip) against a C reference built
//!   here when a C compiler (`cc`) is there: each should be within 1.5x of it.
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
    if want("cost against C") {
        cost_against_c(exe, runs.div_ceil(3));
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

/// The observations named `names` of one `--speed 0 --json` run of `lesson`.
fn observations(exe: &str, lesson: &str, names: &[&str]) -> Vec<Option<f64>> {
    let out = Command::new(exe)
        .args(["--speed", "0", "--json", lesson])
        .stderr(Stdio::null())
        .output()
        .expect("the command runs");
    let mut found = vec![None; names.len()];
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(e) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if e["kind"] == "observation" {
            if let Some(i) = names.iter().position(|n| e["name"] == *n) {
                found[i] = e["value"].as_f64();
            }
        }
    }
    found
}

/// `cost`'s fork, thread and pipe figures against the C reference's, `runs` runs of each
/// taken in turns (so a busy moment weighs on both), medians of the runs.
fn cost_against_c(exe: &str, runs: usize) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let src = dir.path().join("cost_reference.c");
    let bin = dir.path().join("cost_reference");
    std::fs::write(&src, include_str!("cost_reference.c")).expect("writing the C source");
    let built = Command::new("cc")
        .args(["-O2", "-pthread", "-o"])
        .arg(&bin)
        .arg(&src)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !built {
        println!("cost against C: no C compiler (cc) here, left out");
        return;
    }
    let names = ["fork_us", "thread_us", "pipe_roundtrip_us"];
    let mut ours: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut theirs: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for _ in 0..runs {
        for (v, x) in ours.iter_mut().zip(observations(exe, "cost", &names)) {
            v.extend(x);
        }
        let out = Command::new(&bin)
            .arg("20")
            .output()
            .expect("the C reference runs");
        let e: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("the C reference prints JSON");
        for (v, n) in theirs.iter_mut().zip(names) {
            v.extend(e[n].as_f64());
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    println!(
        "{:<28} {:>10} {:>10} {:>10}",
        "cost against C (µs)", "mp-demo", "C", "ratio"
    );
    for ((n, o), t) in names.iter().zip(ours).zip(theirs) {
        if let (Some(o), Some(t)) = (median(o), median(t)) {
            let ratio = o / t;
            println!(
                "{:<28} {o:>10.1} {t:>10.1} {ratio:>9.2}x  {}",
                format!("cost: {n}"),
                if ratio <= 1.5 { "ok" } else { "OVER 1.5x" }
            );
        }
    }
}
