//! The demonstration process: a re-executed child whose threads are only the lesson's
//! (mp-demo's main process has its own: the observer, the channels' readers, signal
//! handling), driven part by part by the lesson. Its threads tell their TIDs
//! (`gettid`), write the global `n`, spin on two CPUs, and play Python's daemon thread
//! against a joined one.

use super::{Reply, DAEMON_WORK_MS, EXIT, SPIN, WRITE};
use crate::child::{ChildCtx, Down, ThreadLink};
use crate::event::{now_ns, ObsValue};
use crate::procs;
use anyhow::{bail, Context, Result};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The global `n`. An atomic only so the compiler cannot assume its value: every read
/// really reads memory.
static N: AtomicI64 = AtomicI64::new(100);

/// How long a parked thread waits for the gate at most.
const PARK_BOUND: Duration = Duration::from_secs(60);
/// How long the spinning threads spin at least (so that their CPU time means
/// something), and at most (whatever the parent says).
const SPIN_MIN: Duration = Duration::from_millis(200);
const SPIN_MAX: Duration = Duration::from_secs(30);

fn tid() -> i32 {
    nix::unistd::gettid().as_raw()
}

/// A gate the parked threads sleep on (a mutex and a condition variable, as Python's
/// `threading.Event`): `S` in `/proc`, asleep in `futex()`.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
}

impl Gate {
    fn wait(&self) {
        let Ok(guard) = self.open.lock() else { return };
        let _ = self.cv.wait_timeout_while(guard, PARK_BOUND, |open| !*open);
    }

    fn open(&self) {
        if let Ok(mut open) = self.open.lock() {
            *open = true;
        }
        self.cv.notify_all();
    }
}

/// The `process` role: the four parts, in the order the lesson asks for them.
pub(super) fn process(c: &mut ChildCtx) -> Result<i32> {
    parked(c)?;
    loop {
        match c.recv()? {
            Down::Value(ObsValue::Str(cmd)) if cmd == WRITE => write_n(c)?,
            Down::Value(ObsValue::Str(cmd)) if cmd == SPIN => spin(c)?,
            Down::Value(ObsValue::Str(cmd)) if cmd == EXIT => {
                let work_ms = c.arg_i64("work_ms")?.max(1) as u64;
                return daemon_and_worker(c, work_ms);
            }
            Down::Stop => return Ok(0),
            other => bail!("the process was sent {other:?}"),
        }
    }
}

/// Two threads, started and parked; their TIDs told; released and joined on `Go`.
fn parked(c: &ChildCtx) -> Result<()> {
    let gate = Arc::new(Gate::default());
    let (tx, rx) = std::sync::mpsc::channel();
    let mut threads = Vec::new();
    for i in 1..=2 {
        let (gate, tx) = (gate.clone(), tx.clone());
        threads.push(procs::thread(&format!("thread-{i}"), move || {
            let _ = tx.send(tid());
            gate.wait();
        })?);
    }
    let mut tids = vec![tid()];
    for _ in 0..2 {
        tids.push(
            rx.recv_timeout(Duration::from_secs(5))
                .context("a thread did not tell its TID")?,
        );
    }
    tids[1..].sort_unstable();
    c.tell(&Reply::Parked { tids })?;
    let go = c.expect_go();
    gate.open();
    for t in threads {
        let _ = t.join();
    }
    go?;
    c.tell(&Reply::Released)
}

/// `n = 100` in the main thread; on `Go` a thread sets it to 0; after `join()` the main
/// thread reads it again, at the same address.
fn write_n(c: &ChildCtx) -> Result<()> {
    N.store(100, Ordering::SeqCst);
    let addr = &N as *const AtomicI64 as u64;
    c.tell(&Reply::Global {
        n: N.load(Ordering::SeqCst),
        addr,
        t_ns: now_ns(),
    })?;
    c.expect_go()?;
    let writer = procs::thread("writer", || {
        N.store(0, Ordering::SeqCst);
        (tid(), &N as *const AtomicI64 as u64, now_ns())
    })?;
    let (wtid, thread_addr, t_set) = writer
        .join()
        .map_err(|_| anyhow::anyhow!("the writing thread panicked"))?;
    let after = N.load(Ordering::SeqCst);
    c.tell(&Reply::Written {
        tid: wtid,
        thread_addr,
        t_set,
        after,
        main_addr: addr,
        t_read: now_ns(),
    })
}

/// Two threads that spin, each kept on a CPU of its own (`sched_setaffinity` of its TID:
/// on a busy machine the kernel may otherwise stack both on one CPU for seconds, and the
/// lesson would show only a queue), until told to stop
/// (at least [`SPIN_MIN`], at most [`SPIN_MAX`]); then their CPU times against the wall.
fn spin(c: &ChildCtx) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let started = Instant::now();
    let cpus = procs::allowed_cpus(nix::unistd::Pid::from_raw(0));
    let mut threads = Vec::new();
    for i in 1..=2 {
        let (stop, tx) = (stop.clone(), tx.clone());
        let cpu = cpus.get(i - 1).copied();
        threads.push(procs::thread(&format!("spin-{i}"), move || {
            let me = tid();
            if let Some(cpu) = cpu {
                // Best effort: unpinned, the demonstration may only take longer to see.
                let _ = procs::pin(nix::unistd::Pid::from_raw(me), cpu);
            }
            let _ = tx.send(me);
            let t0 = Instant::now();
            let mut x: u64 = 1;
            loop {
                for _ in 0..10_000 {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
                let spun = t0.elapsed();
                if (stop.load(Ordering::Relaxed) && spun >= SPIN_MIN) || spun >= SPIN_MAX {
                    break;
                }
            }
            procs::thread_cpu_ns()
        })?);
    }
    let mut tids = Vec::new();
    for _ in 0..2 {
        tids.push(
            rx.recv_timeout(Duration::from_secs(5))
                .context("a spinning thread did not tell its TID")?,
        );
    }
    c.tell(&Reply::Spinning { tids })?;
    let told = c.recv();
    stop.store(true, Ordering::Relaxed);
    let mut cpu_ns = Vec::new();
    for t in threads {
        cpu_ns.push(
            t.join()
                .map_err(|_| anyhow::anyhow!("a spinning thread panicked"))?,
        );
    }
    let wall_ns = started.elapsed().as_nanos() as u64;
    told?;
    c.tell(&Reply::Spun { wall_ns, cpu_ns })
}

/// Python's daemon thread against a normal one: both start; on `Go` the main code
/// ends, and the normal thread is joined, as CPython's `threading._shutdown()` joins
/// every non-daemon thread at exit; the daemon thread is not. On `Stop` the process
/// exits, daemon thread and all.
fn daemon_and_worker(c: &ChildCtx, work_ms: u64) -> Result<i32> {
    // Each thread tells its TID once its job has begun (its `thread_start` sent).
    let (daemon_tx, daemon_rx) = std::sync::mpsc::channel();
    let link = c.link();
    // Never joined: it is still asleep in its work when the process exits, and its last
    // event and reply are never sent.
    let _daemon = procs::thread("daemon", move || {
        work(&link, DAEMON_WORK_MS, true, || {
            let _ = daemon_tx.send(tid());
        });
        let _ = link.tell(&Reply::DaemonDone);
    })?;
    let (worker_tx, worker_rx) = std::sync::mpsc::channel();
    let link = c.link();
    let worker_done = Arc::new(AtomicBool::new(false));
    let done = worker_done.clone();
    let worker = procs::thread("worker", move || {
        work(&link, work_ms, false, || {
            let _ = worker_tx.send(tid());
        });
        done.store(true, Ordering::SeqCst);
    })?;
    let bound = Duration::from_secs(5);
    let daemon = daemon_rx.recv_timeout(bound).context("the daemon thread")?;
    let worker_tid = worker_rx.recv_timeout(bound).context("the worker thread")?;
    c.tell(&Reply::Started {
        daemon,
        worker: worker_tid,
    })?;
    c.expect_go()?;
    c.act("main_code_ends", &[])?;
    worker
        .join()
        .map_err(|_| anyhow::anyhow!("the worker thread panicked"))?;
    c.tell(&Reply::Joined {
        worker_done: worker_done.load(Ordering::SeqCst),
        t_ns: now_ns(),
    })?;
    // The process stays until told to exit, so that the lesson can show it with its
    // daemon thread still working; then it returns, and exit_group() ends every thread.
    match c.recv()? {
        Down::Stop => Ok(0),
        other => bail!("the process was sent {other:?} instead of Stop"),
    }
}

/// A thread's job: `ms` of naps, between a `thread_start` and a `thread_done` sent from
/// the thread itself; `started` runs once the `thread_start` is sent.
fn work(link: &ThreadLink, ms: u64, daemon: bool, started: impl FnOnce()) {
    let me = tid();
    let fields = |extra: Option<i64>| {
        let mut f = vec![
            ("tid", ObsValue::from(me as i64)),
            ("daemon", daemon.into()),
        ];
        if let Some(ms) = extra {
            f.push(("ms", ms.into()));
        }
        f
    };
    let _ = link.act_at(now_ns(), "thread_start", &fields(Some(ms as i64)));
    started();
    let until = Instant::now() + Duration::from_millis(ms);
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10).min(until - Instant::now().min(until)));
    }
    let _ = link.act_at(now_ns(), "thread_done", &fields(None));
}
