//! Part one: Python's `p.daemon = True`. Two spawned children, one daemonic, one not; the
//! daemonic one refuses to start a child, and CPython's exit handler terminates it and
//! joins the other.

use super::*;
use crate::child::{ChildCtx, Down};
use crate::ctx::{ChildProc, Expect};
use crate::event::{now_ns, Event, How, Kind, ObsValue};
use crate::procs::{self, Note};
use crate::{say, say_for, step};
use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use std::os::fd::AsRawFd;
use std::time::Instant;

/// The message of CPython's assertion in `BaseProcess.start()`.
const DAEMON_CHILD_ERROR: &str = "daemonic processes are not allowed to have children";
/// The type of what CPython raises.
const DAEMON_CHILD_ERROR_TYPE: &str = "AssertionError";

/// How long a child gets to answer.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the normal child's job takes at `--speed 1`, in milliseconds: longer than
/// the reading the lesson waits for between its start and its join (~16 s in English,
/// ~20 s in Chinese), so that join() is seen waiting, ~10 s more.
const JOB_MS: u64 = 30_000;

/// The command that asks a child to start a child of its own.
const START_CHILD: &str = "start_child";

/// What a Python child tells the parent: it has introduced itself (and waits for a
/// command); asked to start a child, it started `pid` (its fork stamped `t_forked`) and
/// joined it (`exitcode`, reaped at `t_reaped`), or CPython refused (`error`, the message
/// of the `AssertionError`), or starting it failed (`error`); its job has started.
#[derive(serde::Serialize, serde::Deserialize, Debug)]
enum Reply {
    Hello,
    Started {
        pid: i32,
        t_forked: u64,
        exitcode: i32,
        t_reaped: u64,
    },
    Refused {
        error: String,
    },
    Failed {
        error: String,
    },
    Working,
}

/// The child's next reply, decoded.
fn next(child: &ChildProc) -> Result<Reply> {
    child.decode(&child.reply(REPLY_TIMEOUT)?)
}

/// Python's two children: one daemonic, one not.
struct Pair {
    daemonic: ChildProc,
    worker: ChildProc,
}

/// Part one: Python's `daemon=True`.
pub(super) fn python_daemon(ctx: &mut Ctx<'_>) -> Result<()> {
    let pair = start_pair(ctx)?;
    let me = ctx.main_pid;
    let janitor = ctx.janitor();
    step!(
        ctx,
        "children",
        &[
            ("main", &me),
            ("janitor", &janitor),
            ("daemonic", &pair.daemonic.pid),
            ("worker", &pair.worker.pid),
        ],
    )?;
    worker_starts_child(ctx, &pair.worker)?;
    daemonic_refuses(ctx, &pair.daemonic)?;
    ctx.show(0)?;
    exit_handler(ctx, pair)
}

/// The flag: two spawned children, one daemonic, one not; to the kernel both are
/// ordinary processes, asleep alike.
fn start_pair(ctx: &mut Ctx<'_>) -> Result<Pair> {
    let me = ctx.main_pid;
    step!(ctx, "flag", &[("main", &me)])?;
    say!(ctx, "intro", &[("pid", &me)]);
    ctx.pause(2000)?;
    // The normal child's job lasts long enough to be still running when the main code
    // ends and when it is joined, at every speed (see JOB_MS). Whether it still was is
    // read from /proc, not assumed.
    let task_ms = ((JOB_MS as f64 * ctx.speed) as u64).max(150);
    let args = |daemon: bool| serde_json::json!({ "daemon": daemon, "task_ms": task_ms });
    // One after the other: each answers once it has introduced itself (then it waits for
    // a command), and the next starts once the reader has read that.
    let hello = |c: &ChildProc| match next(c)? {
        Reply::Hello => Ok(()),
        other => bail!("{} answered {other:?} instead of its hello", c.name),
    };
    let daemonic = ctx.spawn("process", "daemonic", args(true))?;
    hello(&daemonic)?;
    ctx.keep_up();
    let worker = ctx.spawn("process", "worker", args(false))?;
    hello(&worker)?;
    let ds = state_letter(ctx.wait_state(daemonic.pid, &['S'], STATE_TIMEOUT)?);
    let ws = state_letter(ctx.wait_state(worker.pid, &['S'], STATE_TIMEOUT)?);
    ctx.pause(1500)?;
    say!(
        ctx,
        "both_ordinary",
        &[
            ("main", &me),
            ("daemonic", &daemonic.pid),
            ("worker", &worker.pid),
            ("dstate", &ds),
            ("wstate", &ws),
        ],
    );
    ctx.pause(3000)?;
    Ok(Pair { daemonic, worker })
}

/// The normal child may start a child of its own: it forks one, which ends, and joins
/// it; their events carry the worker's own stamps.
fn worker_starts_child(ctx: &mut Ctx<'_>, worker: &ChildProc) -> Result<()> {
    // The child's spawn and exit are learnt from the worker's answer, after they happened.
    let news = ctx.expect_news();
    worker.send(Down::Value(START_CHILD.into()))?;
    let (grandchild, t_forked, code, t_reaped) = match next(worker)? {
        Reply::Started {
            pid,
            t_forked,
            exitcode,
            t_reaped,
        } => (pid, t_forked, exitcode, t_reaped),
        other => bail!("the worker answered {other:?} instead of the child it started"),
    };
    let w = worker.pid.as_raw();
    say_for!(
        ctx,
        w,
        t_forked,
        "worker_started",
        &[("child", &grandchild)],
    );
    // The worker started and reaped it: its events, with the worker's own stamps.
    ctx.emit(Event {
        t_ns: t_forked,
        pid: grandchild,
        kind: Kind::Spawn {
            ppid: w,
            name: "child".into(),
            how: How::Fork,
        },
    });
    ctx.emit(Event {
        t_ns: t_reaped,
        pid: grandchild,
        kind: Kind::Exit {
            name: "child".into(),
            exitcode: code,
            reaped_by: w,
        },
    });
    say_for!(ctx, w, t_reaped, "worker_joined", &[("child", &grandchild)]);
    drop(news);
    ctx.pause(2500)
}

/// The daemonic child may not: CPython's `start()` raises before any fork, and the
/// kernel shows it has no child.
fn daemonic_refuses(ctx: &mut Ctx<'_>, daemonic: &ChildProc) -> Result<()> {
    daemonic.send(Down::Value(START_CHILD.into()))?;
    let error = match next(daemonic)? {
        Reply::Refused { error } => error,
        other => bail!("the daemonic child answered {other:?} instead of an error"),
    };
    let kids = crate::sys::proc::children(daemonic.pid.as_raw()).len();
    say!(
        ctx,
        "no_grandchild",
        &[("pid", &daemonic.pid), ("kids", &kids)]
    );
    ctx.claim(
        "daemon_child_error",
        error.as_str(),
        Expect::eq(DAEMON_CHILD_ERROR),
    );
    ctx.claim("daemon_children", kids, Expect::eq(0));
    ctx.pause(3000)
}

/// The main code ends and CPython's exit handler runs: `terminate()` the daemonic child
/// (-15), then `join()` the other, which is waited for until its job is done (0).
fn exit_handler(ctx: &mut Ctx<'_>, pair: Pair) -> Result<()> {
    let Pair { daemonic, worker } = pair;
    step!(
        ctx,
        "exit",
        &[("daemonic", &daemonic.pid), ("worker", &worker.pid)],
    )?;
    worker.send(Down::Go)?;
    match next(&worker)? {
        Reply::Working => {} // its job has started
        other => bail!("the worker answered {other:?} instead of starting its job"),
    }
    say!(ctx, "main_code_ends", &[]);
    ctx.show(1500)?;
    let ds = state_letter(ctx.wait_state(daemonic.pid, &['S'], STATE_TIMEOUT)?);
    say!(
        ctx,
        "terminate_daemonic",
        &[("pid", &daemonic.pid), ("state", &ds)],
    );
    kill(daemonic.pid, Signal::SIGTERM).context("kill(SIGTERM) of the daemonic child")?;
    let dcode = ctx.join(daemonic.pid)?;
    say!(ctx, "daemonic_terminated", &[("code", &dcode)]);
    ctx.pause(1500)?;
    let busy = matches!(crate::sys::proc::state(worker.pid.as_raw()), Some(s) if s != 'Z');
    say!(
        ctx,
        if (busy) {
            "join_worker_busy"
        } else {
            "join_worker_done"
        },
        &[("pid", &worker.pid)],
    );
    let started = Instant::now();
    let wcode = ctx.join(worker.pid)?;
    let waited = started.elapsed().as_millis();
    say!(ctx, "worker_exited", &[("code", &wcode), ("ms", &waited)]);
    ctx.claim("daemon_exitcode", dcode, Expect::eq(-15).note("SIGTERM"));
    ctx.claim("non_daemon_exitcode", wcode, Expect::eq(0));
    Ok(())
}

/// The role of both Python children: `daemon` says which one it is.
pub(super) fn process(c: &mut ChildCtx) -> Result<i32> {
    // CPython copies the flag into the child's own configuration at start
    // (`_current_process._config['daemon']`): the child knows it is daemonic.
    let daemonic = c
        .args
        .get("daemon")
        .and_then(|v| v.as_bool())
        .context("child argument daemon is missing")?;
    let task_ms = c.arg_i64("task_ms")?.max(0) as u64;
    let ppid = nix::unistd::getppid().as_raw();
    say!(
        c,
        if (daemonic) { "d_hello" } else { "w_hello" },
        &[("pid", &c.pid), ("ppid", &ppid)],
    )?;
    c.tell(&Reply::Hello)?;
    loop {
        match c.recv()? {
            Down::Value(ObsValue::Str(cmd)) if cmd == START_CHILD => {
                match start_process(daemonic) {
                    Ok(started) => {
                        c.tell(&started)?;
                    }
                    Err(StartError::Refused(msg)) => {
                        c.act(
                            "exception",
                            &[
                                ("type", DAEMON_CHILD_ERROR_TYPE.into()),
                                ("message", msg.into()),
                            ],
                        )?;
                        say!(
                            c,
                            "d_refused",
                            &[("type", &DAEMON_CHILD_ERROR_TYPE), ("error", &msg)],
                        )?;
                        c.tell(&Reply::Refused { error: msg.into() })?;
                    }
                    Err(StartError::Failed(e)) => {
                        c.tell(&Reply::Failed {
                            error: format!("{e:#}"),
                        })?;
                        return Err(e);
                    }
                }
            }
            Down::Go => {
                // The job: time passing, standing in for real work.
                c.act("task_start", &[("ms", (task_ms as i64).into())])?;
                say!(c, "w_work", &[("ms", &task_ms)])?;
                c.tell(&Reply::Working)?;
                std::thread::sleep(Duration::from_millis(task_ms));
                c.act("task_done", &[])?;
                say!(c, "w_done", &[])?;
                return Ok(0);
            }
            Down::Stop => return Ok(0),
            Down::Value(_) => {}
        }
    }
}

enum StartError {
    /// What CPython's `start()` raises in a daemonic process.
    Refused(&'static str),
    Failed(anyhow::Error),
}

/// `Process(target=f).start()` then `join()`, in a child of the lesson: a
/// [`Reply::Started`].
fn start_process(daemonic: bool) -> Result<Reply, StartError> {
    // CPython, BaseProcess.start():
    //     assert not _current_process._config.get('daemon'), \
    //            'daemonic processes are not allowed to have children'
    // The check comes before any fork: nothing is created.
    if daemonic {
        return Err(StartError::Refused(DAEMON_CHILD_ERROR));
    }
    let go = || -> Result<Reply> {
        let (r, w) = procs::pipe()?;
        let fd = w.as_raw_fd();
        let child_body = move || {
            Note::send(fd, 0, 0);
            0
        };
        // SAFETY: the child writes one note (clock_gettime, getpid, getppid, write) and
        // returns 0 to _exit: async-signal-safe only.
        let pid = unsafe { procs::fork_child(child_body) }?;
        drop(w);
        let t_forked = match Note::recv(&r, STATE_TIMEOUT)? {
            Some(n) => n.t_ns,
            None => now_ns(),
        };
        let exitcode = procs::reap(pid)?;
        Ok(Reply::Started {
            pid: pid.as_raw(),
            t_forked,
            exitcode,
            t_reaped: now_ns(),
        })
    };
    go().map_err(StartError::Failed)
}
