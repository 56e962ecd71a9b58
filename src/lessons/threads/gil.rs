//! CPython's GIL, timed: when `python3` is on the `PATH`, a fixed script runs a
//! CPU-bound function twice, one call after the other, in two threads, and in two
//! processes, and prints the times. The sequential time is CPU time (a busy machine
//! cannot stretch it), the others wall time, each the best of [`ROUNDS`]: a busy moment
//! can only make threads or processes look slower, never make threads look faster than
//! the GIL lets them be.

use super::WORDS;
use crate::ctx::{Ctx, Expect};
use crate::python_or_say;
use crate::say;
use anyhow::{Context, Result};
use std::time::Duration;

/// Rounds of the three, and the length of one call (seconds of CPU): ~0.6 s in all.
const ROUNDS: u32 = 3;
const CALL_S: f64 = 0.03;
/// How long CPython may take before it is given up on.
const PYTHON_TIMEOUT: Duration = Duration::from_secs(20);
/// The claim about threads, with room for noise: with the GIL, two threads together
/// run no faster than one after the other (about 1.0×).
pub(super) const GIL_BOUND: f64 = 1.3;

/// The script, fixed text, written into the run's directory and run as a file (under
/// `spawn` and `forkserver` a child re-imports the main module, which `-c` has not).
const GIL_PY: &str = r#"
import json, multiprocessing as mp, os, sys, threading, time

def burn(n):
    x = 0
    for i in range(n):
        x += i * i
    return x

def both(start):
    ws = [start(target=burn, args=(N,)) for _ in range(2)]
    for w in ws: w.start()
    for w in ws: w.join()

if __name__ == "__main__":
    call_s, rounds = float(sys.argv[1]), int(sys.argv[2])
    n = 20_000
    while True:
        t = time.process_time(); burn(n); took = time.process_time() - t
        if took > 0.01: break
        n *= 2
    N = max(1, int(n * call_s / took))
    seq, thr, pro, par = [], [], [], []
    for _ in range(rounds):
        t = time.process_time(); burn(N); burn(N); seq.append(time.process_time() - t)
        t, c = time.perf_counter(), time.process_time(); both(threading.Thread)
        w = time.perf_counter() - t; thr.append(w); par.append((time.process_time() - c) / w)
        t = time.perf_counter(); both(mp.Process); pro.append(time.perf_counter() - t)
    gil = sys._is_gil_enabled() if hasattr(sys, "_is_gil_enabled") else True  # 3.13+
    print(json.dumps({"seq_ms": min(seq) * 1e3, "threads_ms": min(thr) * 1e3,
                      "processes_ms": min(pro) * 1e3, "threads_cpus": max(par), "gil": gil,
                      "version": sys.version.split()[0], "start_method": mp.get_start_method(),
                      "switch_ms": sys.getswitchinterval() * 1e3}))
"#;

/// What the script printed.
#[derive(serde::Deserialize, Debug)]
struct Timings {
    seq_ms: f64,
    threads_ms: f64,
    processes_ms: f64,
    /// The most CPUs the two threads kept busy at once (their CPU time over the wall
    /// time), of the rounds: with the GIL about 1, whatever the machine's load.
    threads_cpus: f64,
    gil: bool,
    version: String,
    start_method: String,
    switch_ms: f64,
}

/// The GIL part: run the script, say what it measured, claim what holds anywhere.
pub(super) fn gil(ctx: &mut Ctx<'_>, cpus: usize) -> Result<()> {
    let Some(t) = run_script(ctx)? else {
        return Ok(());
    };
    let threads = t.seq_ms / t.threads_ms.max(1e-3);
    let processes = t.seq_ms / t.processes_ms.max(1e-3);
    let f0 = |x: f64| format!("{x:.0}");
    let f1 = |x: f64| format!("{x:.1}");
    say!(
        ctx,
        "gil_rows",
        &[
            ("seq", &f0(t.seq_ms)),
            ("thr", &f0(t.threads_ms)),
            ("x", &f1(threads)),
            ("pro", &f0(t.processes_ms)),
            ("y", &f1(processes)),
            ("method", &t.start_method),
        ],
    );
    ctx.observe("processes_speedup", (processes * 100.0).round() / 100.0);
    ctx.observe("python_gil_enabled", t.gil);
    ctx.pause(2500)?;
    if t.gil {
        say!(
            ctx,
            "gil_threads",
            &[("x", &f1(threads)), ("switch", &f0(t.switch_ms))],
        );
        // The speed-up compares two measurements that load can move apart (the CPU
        // time of calls in a row is stretched too when another program shares the
        // core's caches or its hyperthread); the CPUs the threads used at once cannot
        // exceed 1 under the GIL, however busy the machine.
        ctx.observe("gil_threads_speedup", (threads * 100.0).round() / 100.0);
        ctx.claim(
            "gil_threads_cpus",
            (t.threads_cpus * 100.0).round() / 100.0,
            Expect::lt(GIL_BOUND).note("the GIL: one thread at a time"),
        );
        ctx.pause(2000)?;
        say!(
            ctx,
            "gil_processes",
            &[("y", &f1(processes)), ("cpus", &cpus)],
        );
    } else {
        ctx.observe("gil_threads_speedup", (threads * 100.0).round() / 100.0);
        ctx.observe("gil_threads_cpus", (t.threads_cpus * 100.0).round() / 100.0);
        say!(
            ctx,
            "gil_off",
            &[("version", &t.version), ("x", &f1(threads))],
        );
    }
    ctx.pause(2000)?;
    say!(ctx, "free_threaded", &[]);
    ctx.pause(2500)
}

/// Run the script with `python3`, bounded; `None` (said why) when it could not be had.
fn run_script(ctx: &mut Ctx<'_>) -> Result<Option<Timings>> {
    let file = ctx.dir.join("gil.py");
    std::fs::write(&file, GIL_PY).with_context(|| format!("writing {}", file.display()))?;
    let (call_s, rounds) = (CALL_S.to_string(), ROUNDS.to_string());
    let started = |ctx: &mut Ctx<'_>, pid: i32| {
        say!(ctx, "python_intro", &[("pid", &pid), ("rounds", &ROUNDS)]);
    };
    let args = [file.as_os_str(), call_s.as_ref(), rounds.as_ref()];
    let Some(output) = python_or_say!(ctx, &args, PYTHON_TIMEOUT, started) else {
        return Ok(None);
    };
    let code = output.exitcode;
    match serde_json::from_str::<Timings>(&output.stdout) {
        Ok(t) if code == 0 => Ok(Some(t)),
        _ => {
            say!(
                ctx,
                "python_failed",
                &[("why", &format!("exitcode {code}"))]
            );
            Ok(None)
        }
    }
}
