//! A lesson's processes: the handle on a spawned child (commands down, typed replies up,
//! every wait bounded), and the `Ctx` calls that fork, spawn, reap and watch them.

use super::*;
use crate::child::{Down, Up};
use crate::event::{now_ns, Event, How, Kind, ObsValue};
use crate::procs;
use anyhow::{anyhow, bail, Context, Result};
use ipc_channel::ipc::IpcSender;
use nix::unistd::Pid;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a spawned child may take to connect before it is declared dead.
const BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(10);

/// A lesson's handle on a spawned (re-executed) child.
pub struct ChildProc {
    pub pid: Pid,
    pub name: String,
    down: IpcSender<Down>,
    replies: mpsc::Receiver<ObsValue>,
}

impl ChildProc {
    /// Send the child a command.
    pub fn send(&self, cmd: Down) -> Result<()> {
        self.down
            .send(cmd)
            .map_err(|e| anyhow!("sending to {} (PID {}): {e}", self.name, self.pid))
    }

    /// Wait for the child's next reply.
    pub fn reply(&self, timeout: Duration) -> Result<ObsValue> {
        let deadline = Instant::now() + timeout;
        loop {
            if procs::stop_reason().is_some() {
                return Err(Stopped.into());
            }
            match self.replies.recv_timeout(Duration::from_millis(50)) {
                Ok(v) => return Ok(v),
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    bail!(
                        "{} (PID {}) did not answer within {timeout:?}",
                        self.name,
                        self.pid
                    )
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    if procs::stop_reason().is_some() {
                        return Err(Stopped.into());
                    }
                    bail!("{} (PID {}) ended without answering", self.name, self.pid)
                }
            }
        }
    }

    /// A reply of this child decoded as the lesson's `Reply` type (sent with
    /// [`ChildCtx::tell`](crate::child::ChildCtx::tell)).
    pub fn decode<R: serde::de::DeserializeOwned>(&self, v: &ObsValue) -> Result<R> {
        let ObsValue::Str(text) = v else {
            bail!("{} (PID {}) answered {v}, not a reply", self.name, self.pid);
        };
        serde_json::from_str(text)
            .with_context(|| format!("{} (PID {}) answered {text:?}", self.name, self.pid))
    }

    /// Read this child's replies until one is what `want` says (skipping the others), and
    /// return it; an undecodable reply is an error; bounded by `timeout` in all.
    pub fn expect<R: serde::de::DeserializeOwned>(
        &self,
        timeout: Duration,
        want: impl Fn(&R) -> bool,
    ) -> Result<R> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let reply: R = self.decode(&self.reply(left.max(Duration::from_millis(1)))?)?;
            if want(&reply) {
                return Ok(reply);
            }
        }
    }

    /// The child's next reply if one has already arrived, without waiting.
    pub fn try_reply(&self) -> Result<Option<ObsValue>> {
        match self.replies.try_recv() {
            Ok(v) => Ok(Some(v)),
            Err(mpsc::TryRecvError::Empty) => Ok(None),
            Err(mpsc::TryRecvError::Disconnected) => {
                if procs::stop_reason().is_some() {
                    return Err(Stopped.into());
                }
                bail!("{} (PID {}) ended without answering", self.name, self.pid)
            }
        }
    }
}

/// Wait (bounded) for the first reply from any of `children`, when the lesson cannot know
/// which one will answer (whoever got the lock, whoever a semaphore woke): the index of
/// the child that answered, and its reply.
pub fn reply_any(children: &[&ChildProc], timeout: Duration) -> Result<(usize, ObsValue)> {
    let deadline = Instant::now() + timeout;
    loop {
        for (i, c) in children.iter().enumerate() {
            if let Some(v) = c.try_reply()? {
                return Ok((i, v));
            }
        }
        if Instant::now() > deadline {
            let names: Vec<String> = children
                .iter()
                .map(|c| format!("{} (PID {})", c.name, c.pid))
                .collect();
            bail!("none of {} answered within {timeout:?}", names.join(", "));
        }
        if !procs::sleep(Duration::from_millis(1)) {
            return Err(Stopped.into());
        }
    }
}

impl Ctx<'_> {
    /// A process started: emit `spawn` and start watching its state.
    pub fn spawned(&mut self, pid: i32, ppid: i32, name: &str, how: How) {
        self.spawned_at(now_ns(), pid, ppid, name, how);
    }

    /// A process started, stamped at `t_ns`.
    pub fn spawned_at(&mut self, t_ns: u64, pid: i32, ppid: i32, name: &str, how: How) {
        self.names.insert(pid, name.to_string());
        self.sink.emit(Event {
            t_ns,
            pid,
            kind: Kind::Spawn {
                ppid,
                name: name.into(),
                how,
            },
        });
        self.observer.watch(pid, name);
    }

    /// A process one of the run's children started and has told the stream of (its
    /// `spawn` already sent, by `ChildCtx::forked_at`): watch its state too, and know it
    /// by `name`, as the processes the lesson starts itself.
    pub fn watch(&mut self, pid: i32, name: &str) {
        self.names.insert(pid, name.to_string());
        self.observer.watch(pid, name);
    }

    /// Stop watching `pid`, a process another process will reap (see [`Ctx::watch`]):
    /// called before it is let go, so that no sample of it is stamped after its reaper's
    /// `exit`, which this process cannot order against.
    pub fn unwatch(&mut self, pid: i32) {
        self.observer.forget(pid);
    }

    /// `fork()` a child named `name` that runs `child` and `_exit`s with its return.
    ///
    /// # Safety
    /// `child` runs in the forked copy of this multi-threaded process: it may only call
    /// async-signal-safe functions (no allocation, no locks, no printing).
    pub unsafe fn fork(&mut self, name: &str, child: impl FnOnce() -> i32) -> Result<Pid> {
        self.check()?;
        // Stamped before the fork: whatever the child does (fork a grandchild, say
        // something) is stamped after the spawn that names it.
        let t_ns = now_ns();
        let expecting = self.sink.expect(t_ns);
        // SAFETY: the caller's promise about `child`.
        let pid = unsafe { procs::fork_child(child) }?;
        self.spawned_at(t_ns, pid.as_raw(), self.main_pid, name, How::Fork);
        drop(expecting);
        Ok(pid)
    }

    /// Spawn this binary again as `role` of this lesson, named `name`, with `args`;
    /// wait (bounded) until it has connected over ipc-channel.
    pub fn spawn(&mut self, role: &str, name: &str, args: serde_json::Value) -> Result<ChildProc> {
        self.check()?;
        let (server, server_name) = procs::ipc_server::<Up>()?;
        let exe = std::env::current_exe().context("finding this program's path")?;
        let mut cmd = crate::child::ChildArgs {
            lesson: self.lesson.to_string(),
            role: role.to_string(),
            ipc: server_name.clone(),
            name: name.to_string(),
            args,
            lang: self.lang,
            speed: self.speed,
        }
        .command(&exe)?;
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null());
        procs::die_with_parent(&mut cmd);
        // Stamped before the spawn, as a fork is: whatever the child says is stamped in
        // the child, after this (stamped after `spawn()` returned, a child's first line
        // could come before the spawn that names it).
        let t_ns = now_ns();
        // Command::spawn returns once the exec has succeeded (tens of ms under load):
        // what happens meanwhile is held until the spawn is in the stream.
        let expecting = self.sink.expect(t_ns);
        let child = cmd.spawn().map_err(|e| match e.raw_os_error() {
            Some(code) if code == nix::libc::ENOENT => anyhow!(
                "spawning a child (fork + exec of {}) failed: ENOENT: this program's file is \
                 gone (rebuilt or removed while the run went on); run it again",
                cmd.get_program().to_string_lossy()
            ),
            Some(code) => procs::fork_error(
                "spawning a child (fork + exec)",
                nix::errno::Errno::from_raw(code),
            ),
            None => anyhow!("spawning a child: {e}"),
        })?;
        let pid = Pid::from_raw(child.id() as i32);
        drop(child); // reaped with waitpid by `join`, not by std
        self.spawned_at(t_ns, pid.as_raw(), self.main_pid, name, How::Spawn);
        drop(expecting);

        let (tx, rx) = mpsc::channel();
        let accept = procs::thread("ipc-accept", move || {
            let _ = tx.send(server.accept());
        });
        let deadline = Instant::now() + BOOTSTRAP_TIMEOUT;
        let mut dead_rounds = 0;
        // Every way this can fail ends below: the child killed and reaped.
        let failure = match accept {
            Err(e) => e,
            Ok(_) => loop {
                match rx.recv_timeout(Duration::from_millis(20)) {
                    Ok(Ok((receiver, Up::Hello { down, .. }))) => {
                        let (reply_tx, replies) = mpsc::channel();
                        let sink = self.sink.clone();
                        let reader = procs::thread(&format!("from-{name}"), move || {
                            while let Ok(msg) = receiver.recv() {
                                match msg {
                                    Up::Event(ev) => sink.emit_arrived(ev),
                                    Up::Reply(v) => {
                                        let _ = reply_tx.send(v);
                                    }
                                    Up::Hello { .. } | Up::Abort => {}
                                }
                            }
                        });
                        match reader {
                            Ok(_) => {
                                return Ok(ChildProc {
                                    pid,
                                    name: name.to_string(),
                                    down,
                                    replies,
                                })
                            }
                            Err(e) => break e,
                        }
                    }
                    Ok(Ok(_)) => break anyhow!("{name} (PID {pid}) did not say hello first"),
                    Ok(Err(e)) => break anyhow!("ipc-channel accept failed: {e:?}"),
                    Err(_) => {
                        // A child that said hello and ended at once is gone before its hello
                        // is read: give the accept thread a few more rounds before saying so.
                        let dead =
                            matches!(crate::sys::proc::state(pid.as_raw()), None | Some('Z'));
                        if dead {
                            dead_rounds += 1;
                            if dead_rounds > 10 {
                                break anyhow!("{name} (PID {pid}) died before it connected");
                            }
                        }
                        if procs::stop_reason().is_some() {
                            break Stopped.into();
                        }
                        if Instant::now() > deadline {
                            break anyhow!(
                                "{name} (PID {pid}) did not connect within {BOOTSTRAP_TIMEOUT:?}"
                            );
                        }
                    }
                }
            },
        };
        // Unblock the accept thread (accept has no timeout) by connecting ourselves.
        if let Ok(s) = IpcSender::<Up>::connect(server_name) {
            let _ = s.send(Up::Abort);
        }
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.join(pid);
        Err(failure)
    }

    /// Python's `join()`: `waitpid` until `pid` ends, reap it, emit `exit`. Its exitcode.
    pub fn join(&mut self, pid: Pid) -> Result<i32> {
        let code = procs::reap(pid)?;
        self.reaped(pid, code);
        Ok(code)
    }

    /// `join()` with a bound: reap `pid` if it ends within `timeout`, else SIGKILL it and
    /// reap it (a child that has sent its last reply and should be gone). Emits `exit`.
    /// Its Python exitcode.
    pub fn join_within(&mut self, pid: Pid, timeout: Duration) -> Result<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(code) = procs::try_reap(pid)? {
                self.reaped(pid, code);
                return Ok(code);
            }
            if Instant::now() >= deadline || procs::stop_reason().is_some() {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                let code = procs::reap(pid)?;
                self.reaped(pid, code);
                self.check()?;
                return Ok(code);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Emit `exit` for a process this process has just reaped.
    pub fn reaped(&mut self, pid: Pid, exitcode: i32) {
        self.observer.forget(pid.as_raw());
        self.sink.emit(Event::now(
            pid.as_raw(),
            Kind::Exit {
                name: self.name_of(pid.as_raw()),
                exitcode,
                reaped_by: self.main_pid,
            },
        ));
    }

    /// Wait until the kernel says `pid` is in one of `states`; the letter, or `None` after
    /// `timeout`. Err([`Stopped`]) if the run is stopping.
    pub fn wait_state(&self, pid: Pid, states: &[char], timeout: Duration) -> Result<Option<char>> {
        let s = self.observer.wait_for(pid.as_raw(), states, timeout);
        self.check()?;
        Ok(s)
    }

    /// Wait until the observer sees `pid` asleep (`S`) *inside* system call `call` (read
    /// from `/proc/<pid>/syscall`), so that a stale `S` from an earlier wait does not
    /// count. The letter seen and the kernel function it sleeps in
    /// (`/proc/<pid>/wchan`, `?` if hidden); where the kernel does not show the system
    /// call, the state alone. `None` after `timeout`.
    pub fn wait_blocked_in(
        &self,
        pid: Pid,
        call: crate::sys::proc::Call,
        timeout: Duration,
    ) -> Result<Option<(char, String)>> {
        use crate::sys::proc;
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(letter) = self.wait_state(pid, &['S'], left)? else {
                return Ok(None);
            };
            let sleeps_in = proc::syscall(pid.as_raw());
            let now = proc::state(pid.as_raw());
            if now == Some('S') && (sleeps_in.is(call) || sleeps_in == proc::Syscall::Unavailable) {
                let wchan = proc::wchan(pid.as_raw()).unwrap_or_else(|| "?".into());
                return Ok(Some((letter, wchan)));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Whether the observer ever saw `pid` in `state`.
    pub fn ever_in(&self, pid: Pid, state: char) -> bool {
        self.observer.ever(pid.as_raw(), state)
    }
}
