//! The speed-up: the same CPU-bound work in one process, then on the pool, timed in
//! rounds, and whether the machine let the claim be made (free CPUs, cores not shared).

use super::*;
use crate::ctx::Ctx;
use crate::procs;
use crate::{say, step};
use anyhow::Result;
use std::time::Instant;

/// The speed-up: the same CPU-bound work in one process, then on the pool.
pub(super) fn speedup(ctx: &mut Ctx<'_>, pool: &mut Pool, p: &Plan) -> Result<Vec<Done>> {
    let Plan {
        me,
        usable,
        size,
        tasks,
        bound,
        timed_n,
        ..
    } = *p;
    step!(ctx, "speedup", &[("main", &me)])?;
    // As many tasks as --tasks, rounded up so that each worker that can run at the same
    // time gets as many: no CPU sits idle at the end of the map.
    let lanes = size.min(usable).max(1);
    let timed_tasks = tasks.div_ceil(lanes) * lanes;
    say!(
        ctx,
        "speedup_intro",
        &[
            ("tasks", &timed_tasks),
            ("n", &timed_n),
            ("size", &size),
            ("rounds", &TIMED_ROUNDS),
        ],
    );
    ctx.observe("timed_tasks", timed_tasks);
    ctx.pause(1500)?;
    let timed = vec![timed_n; timed_tasks];
    let (mut serial_ms, mut serial_cpu_ms) = (f64::MAX, 0.0);
    let (mut pool_ms, mut pool_cpu_ms) = (f64::MAX, 0.0);
    let mut same = true;
    let mut parallel = Vec::new();
    for round in 1..=TIMED_ROUNDS {
        let started = Instant::now();
        let cpu0 = procs::thread_cpu_ns();
        let serial: Vec<u64> = timed.iter().map(|&n| work(n)).collect();
        let s_cpu = procs::thread_cpu_ns().saturating_sub(cpu0) as f64 / 1e6;
        let s_ms = ms_since(started);
        let (job, r, started) = call(ctx, pool, "map", &timed, None)?;
        let results = r.get(bound)?;
        let p_ms = ms_since(started);
        returned(ctx, "map", job);
        same &= results.iter().map(|d| d.result).eq(serial.iter().copied());
        // The CPU time the workers spent computing during this map.
        let p_cpu = results.iter().map(|d| d.cpu_ns).sum::<u64>() as f64 / 1e6;
        say!(
            ctx,
            "timed_round",
            &[
                ("round", &round),
                ("serial", &fmt_ms(s_ms)),
                ("pool", &fmt_ms(p_ms)),
            ],
        );
        if s_ms < serial_ms {
            (serial_ms, serial_cpu_ms) = (s_ms, s_cpu);
        }
        if p_ms < pool_ms {
            (pool_ms, pool_cpu_ms) = (p_ms, p_cpu);
        }
        parallel.extend(results);
        ctx.pause(600)?;
    }
    say!(
        ctx,
        "serial_done",
        &[
            ("ms", &fmt_ms(serial_ms)),
            ("cpu_ms", &fmt_ms(serial_cpu_ms)),
            ("pid", &me),
        ],
    );
    // How many CPUs' worth of time the workers really got during their best map: the
    // CPU time they spent computing, over its wall time.
    let cpus_used = pool_cpu_ms / pool_ms.max(1e-3);
    say!(
        ctx,
        "pool_done",
        &[
            ("ms", &fmt_ms(pool_ms)),
            ("size", &size),
            ("same", &py_bool(same)),
            ("cpu_ms", &fmt_ms(pool_cpu_ms)),
            ("used", &format!("{cpus_used:.2}")),
        ],
    );
    let speedup = serial_ms / pool_ms.max(1e-3);
    // What the same work cost in CPU time on the pool, against in the one process.
    let cost = pool_cpu_ms / serial_cpu_ms.max(1e-3);
    let ideal = lanes as f64;
    ctx.pause(800)?;
    say!(
        ctx,
        "speedup",
        &[
            ("speedup", &format!("{speedup:.2}")),
            ("cpus", &usable),
            ("ideal", &format!("{ideal:.1}")),
            ("size", &size),
        ],
    );
    ctx.observe("serial_ms", (serial_ms * 10.0).round() / 10.0);
    ctx.observe("pool_ms", (pool_ms * 10.0).round() / 10.0);
    ctx.observe("cpus_used", (cpus_used * 100.0).round() / 100.0);
    ctx.claim("same_results", same, "== true", same);
    let speedup_r = (speedup * 100.0).round() / 100.0;
    if lanes < 2 {
        say!(ctx, "speedup_none", &[("cpus", &usable), ("size", &size)]);
        ctx.observe("speedup", speedup_r);
    } else if speedup <= SPEEDUP_CLAIM && cpus_used < FREE_CPUS {
        // Other programs held the CPUs: the premise of the claim (several free CPUs)
        // did not hold in this run, so report the speed-up without claiming it.
        say!(
            ctx,
            "speedup_contended",
            &[("used", &format!("{cpus_used:.2}")), ("cpus", &usable)],
        );
        ctx.observe("speedup", speedup_r);
    } else if speedup <= SPEEDUP_CLAIM && cost > MAX_COST {
        // A CPU-millisecond in a worker did less work than in the one process: the CPUs
        // slow each other down (hyperthreads of one core, or a busy virtual machine
        // host), so the premise of the claim did not hold either.
        say!(
            ctx,
            "speedup_shared_core",
            &[("cost", &format!("{cost:.2}")), ("cpus", &usable)],
        );
        ctx.observe("speedup", speedup_r);
    } else {
        let held = speedup > SPEEDUP_CLAIM;
        ctx.say(
            if held {
                "speedup_parallel"
            } else {
                "speedup_low"
            },
            &[],
        );
        ctx.claim(
            "speedup",
            speedup_r,
            &format!("> {SPEEDUP_CLAIM} ({usable} CPUs, {size} workers)"),
            held,
        );
    }
    ctx.pause(2500)?;
    Ok(parallel)
}
