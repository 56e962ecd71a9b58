//! Re-executed child roles: the spawn way of starting a process.
//!
//! A lesson that needs a worker richer than what is safe after a bare `fork()` starts
//! this very binary again with the hidden subcommand `__child <lesson> <role>`, like
//! Python's `spawn` start method or Windows' `CreateProcess`. The child connects to the
//! parent's ipc-channel one-shot server, says hello with a sender for commands, then
//! sends its events up (stamped where they happen) and receives commands down.

use crate::event::{now_ns, Event, Kind, ObsValue};
use crate::words::{Args, Lang, Words};
use anyhow::{bail, Context, Result};
use ipc_channel::ipc::{self, IpcReceiver, IpcSender};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// From a child to its parent.
#[derive(Serialize, Deserialize, Debug)]
pub enum Up {
    /// The first message: who I am, and where to send me commands.
    Hello { pid: i32, down: IpcSender<Down> },
    /// Something happened in me.
    Event(Event),
    /// An answer the lesson waits for.
    Reply(ObsValue),
    /// Sent by the parent to itself to end a bootstrap that will never complete.
    Abort,
}

/// From the parent to a child.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum Down {
    /// Go on (a start gate, a step).
    Go,
    /// A value for the role.
    Value(ObsValue),
    /// Finish now.
    Stop,
}

/// What a role sees: its words, its arguments, and the channels to its parent.
pub struct ChildCtx {
    pub pid: i32,
    pub name: String,
    pub lang: Lang,
    pub speed: f64,
    pub args: serde_json::Value,
    words: Words,
    up: IpcSender<Up>,
    down: IpcReceiver<Down>,
}

/// A role: the code a re-executed child runs. Its return value is the exit status.
pub type RoleFn = fn(&mut ChildCtx) -> Result<i32>;

impl ChildCtx {
    /// Send an event about myself, stamped now.
    pub fn emit(&self, kind: Kind) -> Result<()> {
        self.up
            .send(Up::Event(Event::now(self.pid, kind)))
            .map_err(|e| parent_gone("sending an event to the parent", e))
    }

    /// Narrate a line from my words.
    pub fn say(&self, key: &str, args: Args<'_>) -> Result<()> {
        self.emit(self.words.say(self.lang, key, args))
    }

    /// A lesson's own event (`acquire`, `put`, …) with my name, stamped now.
    pub fn act(&self, act: &str, fields: &[(&str, ObsValue)]) -> Result<()> {
        self.act_at(now_ns(), act, fields)
    }

    /// A child I forked, into the stream: `pid`, named `name`, stamped `t_ns` (taken
    /// right before or right after the `fork()`), before anything else about it is sent.
    pub fn forked_at(&self, t_ns: u64, pid: i32, name: &str) -> Result<()> {
        self.send_about(
            t_ns,
            pid,
            Kind::Spawn {
                ppid: self.pid,
                name: name.into(),
                how: crate::event::How::Fork,
            },
        )
    }

    /// A child of mine I reaped, stamped `t_ns` (right after `waitpid()` returned).
    pub fn reaped_at(&self, t_ns: u64, pid: i32, name: &str, exitcode: i32) -> Result<()> {
        self.send_about(
            t_ns,
            pid,
            Kind::Exit {
                name: name.into(),
                exitcode,
                reaped_by: self.pid,
            },
        )
    }

    fn send_about(&self, t_ns: u64, pid: i32, kind: Kind) -> Result<()> {
        self.up
            .send(Up::Event(Event { t_ns, pid, kind }))
            .map_err(|e| parent_gone("sending an event to the parent", e))
    }

    /// A quantity of the lesson as this process sees it now: a bar in the live panel
    /// (see `Ctx::gauge`).
    pub fn gauge(&self, gauge: &str, value: i64, max: i64) -> Result<()> {
        self.emit(Kind::gauge(&self.name, gauge, value, max))
    }

    /// A lesson's own event stamped at `t_ns` (taken right where the call returned).
    pub fn act_at(&self, t_ns: u64, act: &str, fields: &[(&str, ObsValue)]) -> Result<()> {
        send_act(&self.up, self.pid, &self.name, t_ns, act, fields)
    }

    /// A link to the parent for a thread of this role: its own events and replies,
    /// sent from that thread the moment they happen.
    pub fn link(&self) -> ThreadLink {
        ThreadLink {
            pid: self.pid,
            name: self.name.clone(),
            up: self.up.clone(),
        }
    }

    /// Answer the lesson: a typed reply (the lesson's own `Reply` enum), carried as its
    /// JSON text, so that the parent decodes exactly what was meant or fails with the
    /// reply in hand, never a free-text parse that turns a garbled reply into a 0. The
    /// only way a child answers: there is no untyped reply.
    pub fn tell<R: serde::Serialize>(&self, reply: &R) -> Result<()> {
        send_reply(&self.up, reply)
    }

    /// Wait for the parent's next command.
    pub fn recv(&self) -> Result<Down> {
        self.down
            .recv()
            .map_err(|e| parent_gone("waiting for the parent's command", e))
    }

    /// Wait for the parent's next `Go` (a gate); any other command is an error.
    pub fn expect_go(&self) -> Result<()> {
        match self.recv()? {
            Down::Go => Ok(()),
            _ => bail!(
                "{} (PID {}) expected the parent's go, got another command",
                self.name,
                self.pid
            ),
        }
    }

    /// A pacing pause, scaled by `--speed`.
    pub fn pause(&self, ms: u64) {
        if self.speed > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(ms as f64 * self.speed / 1000.0));
        }
    }

    /// An integer argument given by the lesson.
    pub fn arg_i64(&self, name: &str) -> Result<i64> {
        self.args
            .get(name)
            .and_then(|v| v.as_i64())
            .with_context(|| format!("child argument {name} is missing"))
    }

    /// A string argument given by the lesson.
    pub fn arg_str(&self, name: &str) -> Result<String> {
        self.args
            .get(name)
            .and_then(|v| v.as_str())
            .map(String::from)
            .with_context(|| format!("child argument {name} is missing"))
    }
}

/// What a thread of a role sends its parent, without the role's `ChildCtx` (which has
/// the one receiver of commands): events stamped in that thread, and typed replies.
/// The threads lesson's threads report through it, each on its own.
#[derive(Clone)]
pub struct ThreadLink {
    pid: i32,
    name: String,
    up: IpcSender<Up>,
}

impl ThreadLink {
    /// A lesson's own event stamped at `t_ns`, with the process's name.
    pub fn act_at(&self, t_ns: u64, act: &str, fields: &[(&str, ObsValue)]) -> Result<()> {
        send_act(&self.up, self.pid, &self.name, t_ns, act, fields)
    }

    /// A typed reply to the lesson (see [`ChildCtx::tell`]).
    pub fn tell<R: serde::Serialize>(&self, reply: &R) -> Result<()> {
        send_reply(&self.up, reply)
    }
}

/// A lesson's own event about process `pid`, named `name`, stamped at `t_ns`, sent up.
fn send_act(
    up: &IpcSender<Up>,
    pid: i32,
    name: &str,
    t_ns: u64,
    act: &str,
    fields: &[(&str, ObsValue)],
) -> Result<()> {
    let mut all = vec![("name".to_string(), ObsValue::from(name))];
    all.extend(fields.iter().map(|(k, v)| (k.to_string(), v.clone())));
    let kind = Kind::Act {
        act: act.into(),
        fields: all,
    };
    up.send(Up::Event(Event { t_ns, pid, kind }))
        .map_err(|e| parent_gone("sending an event to the parent", e))
}

/// A typed reply, carried as its JSON text (see [`ChildCtx::tell`]), sent up.
fn send_reply<R: serde::Serialize>(up: &IpcSender<Up>, reply: &R) -> Result<()> {
    let text = serde_json::to_string(reply)?;
    up.send(Up::Reply(ObsValue::Str(text)))
        .map_err(|e| parent_gone("replying to the parent", e))
}

/// The argument that makes this program a lesson's child: `mp-demo __child <JSON>`. It is
/// routed before the command line is parsed, so no help, completion or error message
/// ever offers it.
pub const CHILD_ARG: &str = "__child";

/// How a child was asked to run: its whole command line, as one JSON argument. This is
/// its one definition: the parent builds it ([`ChildArgs::command`]), the child reads it
/// ([`ChildArgs::parse`]).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct ChildArgs {
    pub lesson: String,
    pub role: String,
    /// The parent's ipc-channel one-shot server to connect to.
    pub ipc: String,
    pub name: String,
    pub args: serde_json::Value,
    pub lang: Lang,
    pub speed: f64,
}

impl ChildArgs {
    /// The command that starts `exe` as this child.
    pub fn command(&self, exe: &std::path::Path) -> Result<std::process::Command> {
        let mut cmd = std::process::Command::new(exe);
        cmd.arg(CHILD_ARG).arg(serde_json::to_string(self)?);
        Ok(cmd)
    }

    /// The child's side: what [`ChildArgs::command`] wrote.
    pub fn parse(json: &str) -> Result<ChildArgs> {
        serde_json::from_str(json).context("the child's arguments are not what the parent writes")
    }
}

/// The parent's end of the channel is gone: the parent gave up on this child (a failed
/// lesson, an interrupt) and is about to kill it. Not worth a message of its own: the
/// parent reports what went wrong.
#[derive(Debug)]
pub struct ParentGone;

impl std::fmt::Display for ParentGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the parent went away")
    }
}

impl std::error::Error for ParentGone {}

fn parent_gone(doing: &str, e: impl std::fmt::Debug) -> anyhow::Error {
    anyhow::Error::new(ParentGone).context(format!("{doing}: {e:?}"))
}

/// The entry of a re-executed child: connect, say hello, run `role` with the lesson's
/// `words`. The caller looks both up in the registry, so this module needs no lesson.
pub fn main(a: ChildArgs, role: RoleFn, words: Words) -> Result<i32> {
    let up = IpcSender::<Up>::connect(a.ipc.clone())
        .map_err(|e| parent_gone(&format!("connecting to the parent at {}", a.ipc), e))?;
    let (down_tx, down) = ipc::channel::<Down>().context("creating the command channel")?;
    let pid = nix::unistd::getpid().as_raw();
    up.send(Up::Hello { pid, down: down_tx })
        .map_err(|e| parent_gone("saying hello to the parent", e))?;
    let mut ctx = ChildCtx {
        pid,
        name: a.name,
        lang: a.lang,
        speed: a.speed,
        args: a.args,
        words,
        up,
        down,
    };
    role(&mut ctx)
}
