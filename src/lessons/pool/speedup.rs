//! The speed-up: the same CPU-bound work in one process, then on the pool, timed in
//! rounds, and whether the machine let the claim be made (free CPUs, cores not shared).

use super::*;
use crate::ctx::{Ctx, Expect};
use crate::procs;
use crate::{say, step};
use anyhow::Result;
use std::time::Instant;

/// The best of the timed rounds, each side's own best: wall and CPU time of the work in
/// the one process and on the pool, whether every round gave the same results both
/// ways, and every result the pool gave.
struct Best {
    serial_ms: f64,
    serial_cpu_ms: f64,
    pool_ms: f64,
    pool_cpu_ms: f64,
    same: bool,
    parallel: Vec<Done>,
}

/// What the best rounds come to: the speed-up, how many CPUs' worth of time the workers
/// really got, and what the work cost them in CPU time against the one process.
struct Measured {
    speedup: f64,
    cpus_used: f64,
    cost: f64,
}

/// The speed-up: the same CPU-bound work in one process, then on the pool.
pub(super) fn speedup(ctx: &mut Ctx<'_>, pool: &mut Pool, p: &Plan) -> Result<Vec<Done>> {
    let Plan {
        me,
        usable,
        size,
        tasks,
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
    let best = rounds(ctx, pool, p, &vec![timed_n; timed_tasks])?;
    let m = report(ctx, p, lanes, &best)?;
    verdict(ctx, p, lanes, &best, &m);
    ctx.pause(2500)?;
    Ok(best.parallel)
}

/// The timed rounds: each times the work `timed` in this process, then as one `map` on
/// the pool, and checks that both gave the same results; each side keeps its best.
fn rounds(ctx: &mut Ctx<'_>, pool: &mut Pool, p: &Plan, timed: &[u64]) -> Result<Best> {
    let mut best = Best {
        serial_ms: f64::MAX,
        serial_cpu_ms: 0.0,
        pool_ms: f64::MAX,
        pool_cpu_ms: 0.0,
        same: true,
        parallel: Vec::new(),
    };
    for round in 1..=TIMED_ROUNDS {
        let started = Instant::now();
        let cpu0 = procs::thread_cpu_ns();
        let serial: Vec<u64> = timed.iter().map(|&n| work(n)).collect();
        let s_cpu = procs::thread_cpu_ns().saturating_sub(cpu0) as f64 / 1e6;
        let s_ms = ms_since(started);
        let (job, r, started) = call(ctx, pool, "map", timed, None)?;
        let results = r.get(p.bound)?;
        let p_ms = ms_since(started);
        returned(ctx, "map", job);
        best.same &= results.iter().map(|d| d.result).eq(serial.iter().copied());
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
        if s_ms < best.serial_ms {
            (best.serial_ms, best.serial_cpu_ms) = (s_ms, s_cpu);
        }
        if p_ms < best.pool_ms {
            (best.pool_ms, best.pool_cpu_ms) = (p_ms, p_cpu);
        }
        best.parallel.extend(results);
        ctx.pause(600)?;
    }
    Ok(best)
}

/// Both sides' best times, the CPU time the workers got, and the speed-up against the
/// ideal (one per worker that can run at the same time, `lanes`), said and observed.
fn report(ctx: &mut Ctx<'_>, p: &Plan, lanes: usize, best: &Best) -> Result<Measured> {
    let Plan {
        me, usable, size, ..
    } = *p;
    say!(
        ctx,
        "serial_done",
        &[
            ("ms", &fmt_ms(best.serial_ms)),
            ("cpu_ms", &fmt_ms(best.serial_cpu_ms)),
            ("pid", &me),
        ],
    );
    // How many CPUs' worth of time the workers really got during their best map: the
    // CPU time they spent computing, over its wall time.
    let cpus_used = best.pool_cpu_ms / best.pool_ms.max(1e-3);
    say!(
        ctx,
        "pool_done",
        &[
            ("ms", &fmt_ms(best.pool_ms)),
            ("size", &size),
            ("same", &py_bool(best.same)),
            ("cpu_ms", &fmt_ms(best.pool_cpu_ms)),
            ("used", &format!("{cpus_used:.2}")),
        ],
    );
    let speedup = best.serial_ms / best.pool_ms.max(1e-3);
    // What the same work cost in CPU time on the pool, against in the one process.
    let cost = best.pool_cpu_ms / best.serial_cpu_ms.max(1e-3);
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
    ctx.observe("serial_ms", (best.serial_ms * 10.0).round() / 10.0);
    ctx.observe("pool_ms", (best.pool_ms * 10.0).round() / 10.0);
    ctx.observe("cpus_used", (cpus_used * 100.0).round() / 100.0);
    Ok(Measured {
        speedup,
        cpus_used,
        cost,
    })
}

/// The claims: the same results both ways, and the speed-up, claimed only when the
/// machine let it be made (two CPUs for two workers, free CPUs, cores not shared);
/// otherwise it is only observed, with the reason said.
fn verdict(ctx: &mut Ctx<'_>, p: &Plan, lanes: usize, best: &Best, m: &Measured) {
    let Plan { usable, size, .. } = *p;
    let Measured {
        speedup,
        cpus_used,
        cost,
    } = *m;
    ctx.claim("same_results", best.same, Expect::eq(true));
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
        let held = speedup_r > SPEEDUP_CLAIM;
        say!(
            ctx,
            if (held) {
                "speedup_parallel"
            } else {
                "speedup_low"
            },
            &[],
        );
        ctx.claim(
            "speedup",
            speedup_r,
            Expect::gt(SPEEDUP_CLAIM).note(format!("{usable} CPUs, {size} workers")),
        );
    }
}
