//! The pool's worker: a spawned role that runs tasks (and the initializer) and tells the
//! pool what it did.

use super::*;
use crate::child::{ChildCtx, Down};
use crate::event::{now_ns, ObsValue};
use crate::procs;
use crate::say;
use anyhow::{Context, Result};

/// What a worker tells the pool: a task's result. Sent with `ChildCtx::tell`, read with
/// `ChildProc::expect` by the worker's proxy thread.
#[derive(Serialize, Deserialize, Debug)]
pub(super) enum Reply {
    Done(Done),
}

/// A pool worker: run the initializer once, then take task after task until the sentinel.
pub(super) fn worker(c: &mut ChildCtx) -> Result<i32> {
    // initializer(): once per worker, before any task. Its global lives as long as the
    // worker, so every later task sees it.
    let mut done: u32 = 0;
    c.act("initializer", &[("done", done.into())])?;
    say!(c, "initializer", &[("pid", &c.pid)])?;
    loop {
        let cmd = c.recv()?;
        let t_start = now_ns(); // right after the get returned
        match cmd {
            Down::Value(ObsValue::Str(text)) => {
                let task: Task = serde_json::from_str(&text).context("a task from the pool")?;
                c.act_at(
                    t_start,
                    "task_start",
                    &[("task", task.id.into()), ("job", task.job.into())],
                )?;
                let cpu0 = procs::thread_cpu_ns();
                let result = work(task.n);
                let cpu_ns = procs::thread_cpu_ns().saturating_sub(cpu0);
                done += 1;
                let t_done = now_ns(); // right before the result is put
                c.act_at(
                    t_done,
                    "task_done",
                    &[
                        ("task", task.id.into()),
                        ("job", task.job.into()),
                        ("nth", done.into()),
                        ("cpu_ms", (cpu_ns as f64 / 1e6).into()),
                    ],
                )?;
                let answer = Done {
                    id: task.id,
                    job: task.job,
                    pid: c.pid,
                    result,
                    nth: done,
                    cpu_ns,
                    t_start,
                    t_done,
                };
                c.tell(&Reply::Done(answer))?;
            }
            Down::Stop => {
                say!(c, "worker_exit", &[("count", &done)])?;
                return Ok(0);
            }
            Down::Go | Down::Value(_) => {}
        }
    }
}
