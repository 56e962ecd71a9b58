//! Python's `Connection` on ipc-channel: `send`/`recv` of objects, a channel handed to a
//! spawned child, and what each message carries.

use super::*;
use crate::child::ChildCtx;
use crate::ctx::ChildProc;
use crate::event::ObsValue;
use crate::procs::{self};
use anyhow::{anyhow, bail, Context, Result};
use ipc_channel::ipc::{self, IpcReceiver, IpcSender};
use ipc_channel::{IpcError, TryRecvError};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// The object sent through the pipe: what Python would pickle, serde encodes.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub(super) struct Msg {
    pub(super) id: u32,
    pub(super) op: String,
    pub(super) args: Vec<i64>,
    pub(super) pid: i32,
}

impl fmt::Display for Msg {
    /// Shown the way Python prints the dict it stands for.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let args: Vec<String> = self.args.iter().map(i64::to_string).collect();
        write!(
            f,
            "{{'id': {}, 'op': '{}', 'args': [{}], 'pid': {}}}",
            self.id,
            self.op,
            args.join(", "),
            self.pid
        )
    }
}

/// One end of a `Pipe()`, like Python's `Connection`: it can send, receive, or both.
/// It crosses to a child inside an ipc-channel message (the channels' sockets go along
/// as file descriptors, `SCM_RIGHTS`).
#[derive(Serialize, Deserialize)]
pub(super) struct Conn {
    pub(super) tx: Option<IpcSender<Msg>>,
    pub(super) rx: Option<IpcReceiver<Msg>>,
}

/// Python's `OSError` for a one-way end used the wrong way.
pub(super) const READ_ONLY: &str = "OSError: connection is read-only";
pub(super) const WRITE_ONLY: &str = "OSError: connection is write-only";

impl Conn {
    /// `Pipe(duplex)`: two ends. Duplex: two channels, one each way. One way: `(r, w)`,
    /// where `r` can only receive and `w` can only send.
    pub(super) fn pipe(duplex: bool) -> Result<(Conn, Conn)> {
        let (a_tx, a_rx) = ipc::channel::<Msg>().context("creating an ipc-channel")?;
        if duplex {
            let (b_tx, b_rx) = ipc::channel::<Msg>().context("creating an ipc-channel")?;
            Ok((
                Conn {
                    tx: Some(a_tx),
                    rx: Some(b_rx),
                },
                Conn {
                    tx: Some(b_tx),
                    rx: Some(a_rx),
                },
            ))
        } else {
            Ok((
                Conn {
                    tx: None,
                    rx: Some(a_rx),
                },
                Conn {
                    tx: Some(a_tx),
                    rx: None,
                },
            ))
        }
    }

    /// `conn.send(obj)`.
    pub(super) fn send(&self, m: &Msg) -> Result<()> {
        let tx = self.tx.as_ref().ok_or_else(|| anyhow!(READ_ONLY))?;
        tx.send(m.clone())
            .map_err(|e| anyhow!("ipc-channel send failed: {e}"))
    }

    /// `conn.recv()`: blocks in `recvmsg()` until an object comes. `None` is Python's
    /// `EOFError`: every sender of this channel is gone.
    pub(super) fn recv(&self) -> Result<Option<Msg>> {
        let rx = self.rx.as_ref().ok_or_else(|| anyhow!(WRITE_ONLY))?;
        match rx.recv() {
            Ok(m) => Ok(Some(m)),
            Err(IpcError::Disconnected) => Ok(None),
            Err(e) => Err(anyhow!("ipc-channel recv failed: {e}")),
        }
    }

    /// `conn.poll(timeout)` then `conn.recv()`: what the lesson's own main process uses,
    /// so that it never waits unbounded.
    pub(super) fn recv_timeout(&self, timeout: Duration) -> Result<Option<Msg>> {
        let rx = self.rx.as_ref().ok_or_else(|| anyhow!(WRITE_ONLY))?;
        match rx.try_recv_timeout(timeout) {
            Ok(m) => Ok(Some(m)),
            Err(TryRecvError::IpcError(IpcError::Disconnected)) => Ok(None),
            Err(TryRecvError::Empty) => bail!("nothing came through the pipe within {timeout:?}"),
            Err(e) => Err(anyhow!("ipc-channel recv failed: {e}")),
        }
    }
}

/// In a child: receive my end of the pipe. Python pickles the `Connection` into the
/// `Process` arguments; here the child opens a one-shot server, tells the parent its
/// name, and the parent sends the end through it.
pub(super) fn receive_conn(c: &ChildCtx) -> Result<Conn> {
    let (server, name) = procs::ipc_server::<Conn>()?;
    c.tell(&Reply::Server { name })?;
    // Blocks until the parent connects; if the parent dies first, so do we (PDEATHSIG).
    let (_rx, conn) = server
        .accept()
        .map_err(|e| anyhow!("receiving my end of the pipe: {e}"))?;
    Ok(conn)
}

/// In the parent: give `child` its end of the pipe.
pub(super) fn hand_over(child: &ChildProc, conn: Conn) -> Result<()> {
    let name = match child.decode(&child.reply(TIMEOUT)?)? {
        Reply::Server { name } => name,
        other => bail!("{} sent {other:?}, not a server name", child.name),
    };
    let tx = IpcSender::<Conn>::connect(name).context("connecting to the child's server")?;
    tx.send(conn)
        .map_err(|e| anyhow!("sending {} its end of the pipe: {e:?}", child.name))
}

pub(super) fn msg_fields<'a>(
    channel: &'a str,
    peer: (&'a str, i32),
    m: &Msg,
) -> Vec<(&'a str, ObsValue)> {
    vec![
        ("channel", channel.into()),
        (peer.0, peer.1.into()),
        ("id", m.id.into()),
        ("obj", m.to_string().into()),
    ]
}
