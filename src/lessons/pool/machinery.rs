//! The pool in the main process, CPython's way: workers fed by one task channel each, and
//! a handler thread that collects results, runs callbacks and sets `AsyncResult`s.

use super::*;
use crate::child::Down;
use crate::ctx::{ChildProc, Ctx, Stopped};
use crate::procs;
use crate::voice::Voice;
use anyhow::{anyhow, bail, Result};
use nix::unistd::Pid;
use std::collections::{HashMap, VecDeque};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A callback, run by the handler thread in the main process with a call's results.
pub(super) type Callback = Box<dyn FnOnce(&[Done]) + Send>;

/// What the handler thread is told.
pub(super) enum Msg {
    /// Queue the tasks of one call.
    Submit {
        job: u32,
        tasks: Vec<Task>,
        callback: Option<Callback>,
        results: mpsc::Sender<Vec<Done>>,
    },
    /// A worker's answer (or why it has none).
    Result { worker: usize, reply: Result<Reply> },
    /// `close()`: no more tasks.
    Close,
}

pub(super) struct Job {
    pub(super) results: Vec<Option<Done>>,
    pub(super) first_id: u32,
    pub(super) left: usize,
    pub(super) callback: Option<Callback>,
    pub(super) deliver: mpsc::Sender<Vec<Done>>,
}

/// Python's `AsyncResult`: the results of a call, once they are all in.
pub(super) struct AsyncResult {
    pub(super) rx: mpsc::Receiver<Vec<Done>>,
    pub(super) got: Option<Vec<Done>>,
}

impl AsyncResult {
    /// `ready()`: are the results in (without waiting)?
    pub(super) fn ready(&mut self) -> bool {
        if self.got.is_none() {
            if let Ok(v) = self.rx.try_recv() {
                self.got = Some(v);
            }
        }
        self.got.is_some()
    }

    /// `get(timeout)`: wait for the results (bounded; `Stopped` if the run stops).
    pub(super) fn get(mut self, timeout: Duration) -> Result<Vec<Done>> {
        if let Some(v) = self.got.take() {
            return Ok(v);
        }
        let deadline = Instant::now() + timeout;
        loop {
            if procs::stop_reason().is_some() {
                return Err(Stopped.into());
            }
            // A long tick: the main process shows as asleep while it waits, as it is.
            // A stop still ends the wait at once: the handler drops the sender.
            match self.rx.recv_timeout(Duration::from_millis(500)) {
                Ok(v) => return Ok(v),
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    bail!("the pool gave no result within {timeout:?}")
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    if procs::stop_reason().is_some() {
                        return Err(Stopped.into());
                    }
                    bail!("the pool stopped before the result came (a worker died?)")
                }
            }
        }
    }
}

/// CPython's `ValueError` from `join()` on a pool that was not closed.
#[derive(Debug, thiserror::Error)]
#[error("ValueError: Pool is still running")]
pub(super) struct StillRunning;

/// A pool of spawned workers.
pub(super) struct Pool {
    pub(super) pids: Vec<Pid>,
    pub(super) names: Vec<String>,
    pub(super) tx: mpsc::Sender<Msg>,
    pub(super) handler: Option<JoinHandle<Result<()>>>,
    pub(super) next_job: u32,
    pub(super) next_task: u32,
    pub(super) running: bool,
}

impl Pool {
    /// `Pool(size, initializer=…)`: spawn `size` workers (from the main thread, so that
    /// `PR_SET_PDEATHSIG` ties them to this process), then start the handler thread.
    /// Each worker's start-up time (fork + exec + connect) is returned beside it.
    pub(super) fn new(ctx: &mut Ctx<'_>, size: usize) -> Result<(Pool, Vec<f64>)> {
        let mut children: Vec<ChildProc> = Vec::with_capacity(size);
        let mut costs = Vec::with_capacity(size);
        for i in 1..=size {
            let t = Instant::now();
            let child = ctx.spawn("worker", &format!("worker-{i}"), serde_json::json!({}))?;
            costs.push(t.elapsed().as_secs_f64() * 1000.0);
            children.push(child);
        }
        let pids = children.iter().map(|c| c.pid).collect();
        let names = children.iter().map(|c| c.name.clone()).collect();
        let (tx, rx) = mpsc::channel::<Msg>();
        let mut proxies = Vec::with_capacity(size);
        let mut proxy_threads = Vec::with_capacity(size);
        for (w, child) in children.into_iter().enumerate() {
            let (ptx, prx) = mpsc::channel::<Option<String>>();
            let up = tx.clone();
            let name = format!("pool-{}", child.name);
            let t = procs::thread(&name, move || proxy(w, &child, &prx, &up))?;
            proxies.push(ptx);
            proxy_threads.push(t);
        }
        // The handler narrates the pool's progress as the main process.
        let gauge = ctx.voice();
        let handler = procs::thread("pool-handler", move || {
            handle(&rx, &proxies, proxy_threads, &gauge)
        })?;
        Ok((
            Pool {
                pids,
                names,
                tx,
                handler: Some(handler),
                next_job: 0,
                next_task: 0,
                running: true,
            },
            costs,
        ))
    }

    /// Queue one call's tasks (`work(n)` for each `n`); its results will arrive together.
    pub(super) fn submit(
        &mut self,
        ns: &[u64],
        callback: Option<Callback>,
    ) -> Result<(u32, AsyncResult)> {
        if !self.running {
            bail!("ValueError: Pool not running");
        }
        self.next_job += 1;
        let job = self.next_job;
        let tasks: Vec<Task> = ns
            .iter()
            .map(|&n| {
                let id = self.next_task;
                self.next_task += 1;
                Task { id, job, n }
            })
            .collect();
        let (results, rx) = mpsc::channel();
        self.tx
            .send(Msg::Submit {
                job,
                tasks,
                callback,
                results,
            })
            .map_err(|_| anyhow!("the pool's handler thread is gone"))?;
        Ok((job, AsyncResult { rx, got: None }))
    }

    /// `close()`: no more tasks; once the queue is empty the workers get their sentinel.
    pub(super) fn close(&mut self) {
        self.running = false;
        let _ = self.tx.send(Msg::Close);
    }

    /// `join()`: wait until every worker has exited, and reap them. Like CPython, refuse
    /// while the pool is running: the workers would never be told to leave.
    pub(super) fn join(&mut self, ctx: &mut Ctx<'_>, timeout: Duration) -> Result<()> {
        if self.running {
            return Err(StillRunning.into());
        }
        if let Some(h) = self.handler.take() {
            let deadline = Instant::now() + timeout;
            while !h.is_finished() {
                ctx.check()?;
                if Instant::now() > deadline {
                    bail!("the pool's workers did not finish within {timeout:?}");
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            h.join()
                .map_err(|_| anyhow!("the pool's handler thread panicked"))??;
        }
        for &pid in &self.pids {
            ctx.join(pid)?;
        }
        Ok(())
    }
}

/// A proxy thread: carries tasks down to one worker and its results up to the handler.
/// `None` is the sentinel: tell the worker to stop.
pub(super) fn proxy(
    w: usize,
    child: &ChildProc,
    tasks: &mpsc::Receiver<Option<String>>,
    up: &mpsc::Sender<Msg>,
) {
    while let Ok(Some(task)) = tasks.recv() {
        let reply = child
            .send(Down::Value(task.into()))
            .and_then(|()| child.expect(WAIT_BOUND * 2, |r: &Reply| matches!(r, Reply::Done(_))));
        let failed = reply.is_err();
        if up.send(Msg::Result { worker: w, reply }).is_err() || failed {
            return;
        }
    }
    let _ = child.send(Down::Stop);
}

/// The handler thread: CPython's task handler and result handler in one. It hands each
/// queued task to an idle worker, gathers results per call, and runs the callbacks.
pub(super) fn handle(
    rx: &mpsc::Receiver<Msg>,
    proxies: &[mpsc::Sender<Option<String>>],
    proxy_threads: Vec<JoinHandle<()>>,
    gauge: &Voice,
) -> Result<()> {
    let (mut submitted, mut finished) = (0_i64, 0_i64);
    let mut idle: VecDeque<usize> = (0..proxies.len()).collect();
    let mut queue: VecDeque<Task> = VecDeque::new();
    let mut jobs: HashMap<u32, Job> = HashMap::new();
    let mut closed = false;
    loop {
        while !queue.is_empty() && !idle.is_empty() {
            let (Some(w), Some(task)) = (idle.pop_front(), queue.pop_front()) else {
                break;
            };
            let text = serde_json::to_string(&task)?;
            proxies[w]
                .send(Some(text))
                .map_err(|_| anyhow!("a pool proxy thread is gone"))?;
        }
        if closed && queue.is_empty() && idle.len() == proxies.len() {
            break;
        }
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(Msg::Submit {
                job,
                tasks,
                callback,
                results,
            }) => {
                jobs.insert(
                    job,
                    Job {
                        results: vec![None; tasks.len()],
                        first_id: tasks.first().map_or(0, |t| t.id),
                        left: tasks.len(),
                        callback,
                        deliver: results,
                    },
                );
                // The gauge counts the tasks of the calls in flight: a call made once
                // the pool is idle starts it again (map's 12 tasks show as 0/12, not
                // as 2/14 after apply and apply_async).
                if finished == submitted {
                    (submitted, finished) = (0, 0);
                }
                submitted += tasks.len() as i64;
                gauge.gauge("tasks", finished, submitted);
                queue.extend(tasks);
            }
            Ok(Msg::Result { worker, reply }) => {
                idle.push_back(worker);
                let Reply::Done(done) = reply?;
                let Some(j) = jobs.get_mut(&done.job) else {
                    bail!("a result for an unknown call {}", done.job);
                };
                let slot = (done.id - j.first_id) as usize;
                if slot < j.results.len() && j.results[slot].is_none() {
                    j.results[slot] = Some(done.clone());
                    j.left -= 1;
                    finished += 1;
                    gauge.gauge("tasks", finished, submitted);
                }
                if j.left == 0 {
                    if let Some(mut j) = jobs.remove(&done.job) {
                        let all: Vec<Done> = j.results.drain(..).flatten().collect();
                        if let Some(cb) = j.callback.take() {
                            cb(&all);
                        }
                        let _ = j.deliver.send(all);
                    }
                }
            }
            Ok(Msg::Close) => closed = true,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if procs::stop_reason().is_some() {
                    return Err(Stopped.into());
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    for p in proxies {
        let _ = p.send(None);
    }
    for t in proxy_threads {
        let _ = t.join();
    }
    Ok(())
}
