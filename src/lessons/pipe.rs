//! Lesson `pipe`: Python's `Pipe(duplex=True)` and `Pipe(duplex=False)`, `send`/`recv` of
//! objects; the raw OS pipe underneath (bytes, and end of file only once every write end
//! is closed, with the classic hang when one is left open); and the shell's
//! `tail -f access.log | grep 404` as two real programs joined by a pipe.
//!
//! - The object channels are ipc-channel channels (serde, like pickle, over a Unix
//!   socket) handed to a spawned child: a [`Conn`] holds a sender, a receiver or both,
//!   like Python's `Connection`.
//! - The raw pipe's reader and writer are forked children that only do async-signal-safe
//!   work (`read`, `write`, `close`, [`Note::send`]).
//! - `tail` and `grep` are the real programs, started without a shell.

use super::{LessonDef, OptSpec, Opts};
use crate::child::ChildCtx;
use crate::ctx::{ChildProc, Ctx, Stopped};
use crate::event::{now_ns, How, ObsValue};
use crate::procs::{self, Note};
use crate::sys::proc::{self, Call};
use crate::{say, say_for, step};
use anyhow::{anyhow, bail, Context, Result};
use ipc_channel::ipc::{self, IpcReceiver, IpcSender};
use ipc_channel::{IpcError, TryRecvError};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

/// This lesson's words, whose keys the word macros check at compile time.
const WORDS: &crate::words::keys::Table = &crate::words::keys::PIPE;

pub static LESSON: LessonDef = LessonDef {
    name: "pipe",
    words_src: include_str!("../../lessons/pipe.toml"),
    options: &[OptSpec {
        name: "messages",
        default: 3,
        min: 1,
        max: 50,
        help: "objects sent through the one-way Pipe(duplex=False)",
    }],
    run,
    validate: None,
    roles: &[("duplex", duplex_child), ("reader", reader_child)],
};

/// Far more than the kernel or a child needs to get anywhere we wait for.
const TIMEOUT: Duration = Duration::from_secs(5);

/// What the raw pipe's writer writes: bytes, not objects.
static RAW_TEXT: &[u8] = b"GET /index.html 200\nGET /missing 404\n";

/// The log `tail -f` follows: what is there before it starts…
const LOG_BEFORE: &[&str] = &[
    r#"203.0.113.7 - - "GET /index.html HTTP/1.1" 200 5120"#,
    r#"198.51.100.23 - - "GET /favicon.ico HTTP/1.1" 404 209"#,
    r#"203.0.113.7 - - "GET /style.css HTTP/1.1" 200 1733"#,
];
/// …and what the lesson appends while it runs.
const LOG_LIVE: &[&str] = &[
    r#"192.0.2.41 - - "GET /about HTTP/1.1" 200 2311"#,
    r#"192.0.2.41 - - "GET /old-page HTTP/1.1" 404 209"#,
    r#"198.51.100.23 - - "POST /login HTTP/1.1" 302 0"#,
    r#"203.0.113.99 - - "GET /wp-admin HTTP/1.1" 404 209"#,
    r#"192.0.2.41 - - "GET /contact HTTP/1.1" 200 1877"#,
];
const PATTERN: &str = "404";

// ---------------------------------------------------------------------------------------
// The object channel: Python's Connection on ipc-channel.

/// The object sent through the pipe: what Python would pickle, serde encodes.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Msg {
    id: u32,
    op: String,
    args: Vec<i64>,
    pid: i32,
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
struct Conn {
    tx: Option<IpcSender<Msg>>,
    rx: Option<IpcReceiver<Msg>>,
}

/// Python's `OSError` for a one-way end used the wrong way.
const READ_ONLY: &str = "OSError: connection is read-only";
const WRITE_ONLY: &str = "OSError: connection is write-only";

impl Conn {
    /// `Pipe(duplex)`: two ends. Duplex: two channels, one each way. One way: `(r, w)`,
    /// where `r` can only receive and `w` can only send.
    fn pipe(duplex: bool) -> Result<(Conn, Conn)> {
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
    fn send(&self, m: &Msg) -> Result<()> {
        let tx = self.tx.as_ref().ok_or_else(|| anyhow!(READ_ONLY))?;
        tx.send(m.clone())
            .map_err(|e| anyhow!("ipc-channel send failed: {e}"))
    }

    /// `conn.recv()`: blocks in `recvmsg()` until an object comes. `None` is Python's
    /// `EOFError`: every sender of this channel is gone.
    fn recv(&self) -> Result<Option<Msg>> {
        let rx = self.rx.as_ref().ok_or_else(|| anyhow!(WRITE_ONLY))?;
        match rx.recv() {
            Ok(m) => Ok(Some(m)),
            Err(IpcError::Disconnected) => Ok(None),
            Err(e) => Err(anyhow!("ipc-channel recv failed: {e}")),
        }
    }

    /// `conn.poll(timeout)` then `conn.recv()`: what the lesson's own main process uses,
    /// so that it never waits unbounded.
    fn recv_timeout(&self, timeout: Duration) -> Result<Option<Msg>> {
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
fn receive_conn(c: &ChildCtx) -> Result<Conn> {
    let (server, name) = procs::ipc_server::<Conn>()?;
    c.reply(name)?;
    // Blocks until the parent connects; if the parent dies first, so do we (PDEATHSIG).
    let (_rx, conn) = server
        .accept()
        .map_err(|e| anyhow!("receiving my end of the pipe: {e}"))?;
    Ok(conn)
}

/// In the parent: give `child` its end of the pipe.
fn hand_over(child: &ChildProc, conn: Conn) -> Result<()> {
    let name = match child.reply(TIMEOUT)? {
        ObsValue::Str(s) => s,
        other => bail!("{} sent {other:?}, not a server name", child.name),
    };
    let tx = IpcSender::<Conn>::connect(name).context("connecting to the child's server")?;
    tx.send(conn)
        .map_err(|e| anyhow!("sending {} its end of the pipe: {e:?}", child.name))
}

fn msg_fields<'a>(channel: &'a str, peer: (&'a str, i32), m: &Msg) -> Vec<(&'a str, ObsValue)> {
    vec![
        ("channel", channel.into()),
        (peer.0, peer.1.into()),
        ("id", m.id.into()),
        ("obj", m.to_string().into()),
    ]
}

// ---------------------------------------------------------------------------------------
// What the kernel says about a blocked process.

// ---------------------------------------------------------------------------------------
// The lesson.

fn run(ctx: &mut Ctx<'_>, opts: &Opts) -> Result<()> {
    let roundtrip = duplex(ctx)?;
    ctx.claim("duplex_roundtrip", roundtrip, "== true", roundtrip);
    ctx.pause(2000)?;

    let (simplex_ok, letter) = simplex(ctx, opts.get("messages"))?;
    ctx.claim("simplex_ok", simplex_ok, "== true", simplex_ok);
    ctx.claim(
        "reader_blocked_state",
        letter.to_string(),
        "== S",
        letter == 'S',
    );
    ctx.pause(2000)?;

    let eof = raw_pipe(ctx)?;
    ctx.claim("eof_after_close", eof, "== true", eof);
    ctx.pause(2000)?;

    shell_pipeline(ctx)?;
    Ok(())
}

/// `parent_conn, child_conn = Pipe()`: a request one way, the answer the other way.
fn duplex(ctx: &mut Ctx<'_>) -> Result<bool> {
    let me = ctx.main_pid;
    step!(ctx, "duplex", &[])?;
    say!(ctx, "duplex_intro", &[]);
    ctx.pause(1500)?;
    let (parent_conn, child_conn) = Conn::pipe(true)?;
    let child = ctx.spawn("duplex", "child", serde_json::json!({}))?;
    let cpid = child.pid.as_raw();
    hand_over(&child, child_conn)?;
    say!(ctx, "duplex_handed", &[("pid", &cpid)]);
    ctx.pause(1500)?;

    let request = Msg {
        id: 1,
        op: "sum".into(),
        args: vec![3, 4, 5],
        pid: me,
    };
    say!(ctx, "duplex_send", &[("obj", &request)]);
    ctx.act_at(
        me,
        now_ns(),
        "send",
        &msg_fields("duplex", ("to", cpid), &request),
    );
    parent_conn.send(&request)?;
    let answer = parent_conn
        .recv_timeout(TIMEOUT)?
        .context("the child closed its end without answering")?;
    ctx.act_at(
        me,
        now_ns(),
        "recv",
        &msg_fields("duplex", ("from", answer.pid), &answer),
    );
    let expected_sum: i64 = request.args.iter().sum();
    say!(
        ctx,
        "duplex_answer",
        &[("obj", &answer), ("sum", &expected_sum)]
    );
    ctx.pause(1500)?;
    let ok = answer.id == request.id && answer.args == [expected_sum] && answer.pid == cpid;

    // Closing my end: the child's next recv() raises EOFError and it returns.
    say!(ctx, "duplex_close", &[("pid", &cpid)]);
    drop(parent_conn);
    let code = ctx.join_within(child.pid, TIMEOUT)?;
    say!(ctx, "duplex_joined", &[("pid", &cpid), ("code", &code)]);
    Ok(ok && code == 0)
}

/// The child end of the duplex pipe: answer each request until EOFError.
fn duplex_child(c: &mut ChildCtx) -> Result<i32> {
    let conn = receive_conn(c)?;
    say!(c, "child_has_conn", &[])?;
    loop {
        let Some(req) = conn.recv()? else {
            say!(c, "child_eof", &[])?;
            return Ok(0);
        };
        c.act_at(
            now_ns(),
            "recv",
            &msg_fields("duplex", ("from", req.pid), &req),
        )?;
        let answer = Msg {
            id: req.id,
            op: "result".into(),
            args: vec![req.args.iter().sum()],
            pid: c.pid,
        };
        say!(c, "child_answers", &[("got", &req), ("obj", &answer)])?;
        c.act_at(
            now_ns(),
            "send",
            &msg_fields("duplex", ("to", req.pid), &answer),
        )?;
        conn.send(&answer)?;
    }
}

/// `r, w = Pipe(duplex=False)`: the child reads, sleeping in recv() until objects come.
/// Whether everything sent arrived, in order, and each end refused the other direction;
/// and the state letter the observer saw while the reader waited.
fn simplex(ctx: &mut Ctx<'_>, messages: u32) -> Result<(bool, char)> {
    let me = ctx.main_pid;
    step!(ctx, "simplex", &[])?;
    say!(ctx, "simplex_intro", &[]);
    ctx.pause(1500)?;
    let (r, w) = Conn::pipe(false)?;
    let reader = ctx.spawn("reader", "reader", serde_json::json!({}))?;
    let rpid = reader.pid;
    hand_over(&reader, r)?;

    // Each end refuses the other direction, as in Python.
    let refused_in_child = match reader.reply(TIMEOUT)? {
        ObsValue::Str(s) => s,
        other => bail!("the reader sent {other:?}"),
    };
    let refused_here = match w.recv_timeout(Duration::ZERO) {
        Err(e) => e.to_string(),
        Ok(_) => "received something".into(),
    };
    say!(
        ctx,
        "simplex_one_way",
        &[
            ("child_error", &refused_in_child),
            ("my_error", &refused_here),
        ],
    );
    let one_way = refused_in_child == READ_ONLY && refused_here == WRITE_ONLY;
    ctx.pause(2000)?;

    // The reader is in recv() now, and nothing has been sent: the kernel puts it to sleep.
    let blocked = ctx.wait_blocked_in(rpid, Call::Recvmsg, TIMEOUT)?;
    let letter = blocked.as_ref().map_or('?', |b| b.0);
    match &blocked {
        Some((letter, wchan)) => say!(
            ctx,
            "simplex_blocked",
            &[("pid", &rpid), ("state", letter), ("wchan", wchan)],
        ),
        None => say!(ctx, "simplex_not_blocked", &[("pid", &rpid)]),
    }
    step!(ctx, "simplex_send", &[("pid", &rpid)])?;
    ctx.pause(2500)?;

    let mut sent = Vec::new();
    for i in 1..=messages {
        let m = Msg {
            id: i,
            op: "log".into(),
            args: vec![i64::from(i) * 100],
            pid: me,
        };
        ctx.act_at(
            me,
            now_ns(),
            "send",
            &msg_fields("simplex", ("to", rpid.as_raw()), &m),
        );
        w.send(&m)?;
        sent.push(m.id.to_string());
        ctx.pause(700)?;
    }
    say!(ctx, "simplex_close", &[("n", &messages)]);
    drop(w);
    let got = match reader.reply(TIMEOUT)? {
        ObsValue::Str(s) => s,
        other => bail!("the reader sent {other:?}"),
    };
    let code = ctx.join_within(rpid, TIMEOUT)?;
    let in_order = got == sent.join(",");
    // Shown as "1, 2, 3": the comma-only form is for the comparison above.
    say!(
        ctx,
        "simplex_done",
        &[
            ("got", &got.replace(',', ", ")),
            ("sent", &sent.join(", ")),
            ("code", &code),
        ],
    );
    Ok((one_way && in_order && code == 0, letter))
}

/// The reader end of the one-way pipe.
fn reader_child(c: &mut ChildCtx) -> Result<i32> {
    let r = receive_conn(c)?;
    // Python: r.send(...) raises OSError on a read-only end.
    let refused = match r.send(&Msg {
        id: 0,
        op: "hello".into(),
        args: vec![],
        pid: c.pid,
    }) {
        Err(e) => e.to_string(),
        Ok(()) => "sent".into(),
    };
    say!(c, "reader_refused", &[("error", &refused)])?;
    c.reply(refused)?;
    say!(c, "reader_waits", &[])?;
    let mut ids = Vec::new();
    while let Some(m) = r.recv()? {
        c.act_at(
            now_ns(),
            "recv",
            &msg_fields("simplex", ("from", m.pid), &m),
        )?;
        ids.push(m.id.to_string());
    }
    say!(c, "reader_eof", &[("n", &ids.len())])?;
    c.reply(ids.join(","))?;
    Ok(0)
}

// ---------------------------------------------------------------------------------------
// The raw OS pipe.

/// The main process and every child of it.
fn lesson_pids(me: i32) -> Vec<i32> {
    let mut pids = vec![me];
    pids.extend(crate::sys::proc::children(me));
    pids
}

fn describe_ends(ctx: &Ctx<'_>, ends: &[(i32, i32)]) -> String {
    if ends.is_empty() {
        return "-".into();
    }
    ends.iter()
        .map(|(pid, fd)| format!("{} {pid} fd {fd}", ctx.name_of(*pid)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `os.pipe()`: a writer child writes bytes and exits; a reader child reads until end
/// of file, which comes only once the parent closes its own copy of the write end.
fn raw_pipe(ctx: &mut Ctx<'_>) -> Result<bool> {
    let me = ctx.main_pid;
    step!(ctx, "raw", &[])?;
    let (r, w) = procs::pipe()?;
    let inode = nix::sys::stat::fstat(r.as_fd())
        .context("fstat() of the pipe")?
        .st_ino as u64;
    say!(
        ctx,
        "raw_intro",
        &[
            ("r", &r.as_raw_fd()),
            ("w", &w.as_raw_fd()),
            ("inode", &inode),
        ],
    );
    ctx.pause(2000)?;

    let (note_r, note_w) = procs::pipe()?;
    let (rfd, wfd, nfd) = (r.as_raw_fd(), w.as_raw_fd(), note_w.as_raw_fd());
    let child_body = move || {
        // SAFETY: close(2) of a descriptor this forked child owns; async-signal-safe.
        unsafe { nix::libc::close(wfd) }; // my copy of the write end: or I would never see EOF
        let mut buf = [0u8; 256];
        let mut total = 0i64;
        loop {
            // SAFETY: read(2) into a stack buffer of the length passed; async-signal-safe.
            let n = unsafe { nix::libc::read(rfd, buf.as_mut_ptr().cast(), buf.len()) };
            if n > 0 {
                total += n as i64;
                Note::send(nfd, n as i64, 0);
            } else if n == 0 {
                Note::send(nfd, total, 1);
                return 0;
            } else if nix::errno::Errno::last() != nix::errno::Errno::EINTR {
                return 1;
            }
        }
    };
    // SAFETY: the reader only calls close(2), read(2) into a stack buffer, reads errno,
    // and Note::send (clock_gettime, getpid, getppid, write): async-signal-safe, no
    // allocation.
    let reader = unsafe { ctx.fork("reader", child_body) }?;
    let child_body = move || {
        // SAFETY: close(2) of a descriptor this forked child owns; async-signal-safe.
        unsafe { nix::libc::close(rfd) };
        Note::send(nfd, RAW_TEXT.len() as i64, 0); // stamped right before write()
                                                   // SAFETY: write(2) from a live buffer of
                                                   // the length passed; async-signal-safe.
        let n = unsafe { nix::libc::write(wfd, RAW_TEXT.as_ptr().cast(), RAW_TEXT.len()) };
        if n == RAW_TEXT.len() as isize {
            0
        } else {
            1
        }
    };
    // SAFETY: the writer only calls close(2), Note::send and write(2) of a static buffer,
    // all async-signal-safe, then returns its status to _exit.
    let writer = unsafe { ctx.fork("writer", child_body) }?;
    drop(note_w);
    drop(r);
    let (rpid, wpid) = (reader.as_raw(), writer.as_raw());

    // The writer's note, then the reader's, until every byte has arrived.
    let mut read_total = 0i64;
    let mut early_eof = false;
    let mut seen_write = false;
    while !seen_write || read_total < RAW_TEXT.len() as i64 {
        let note =
            Note::recv(&note_r, TIMEOUT)?.context("the pipe's reader or writer went silent")?;
        if note.pid == wpid {
            seen_write = true;
            ctx.act_at(
                wpid,
                note.t_ns,
                "write",
                &[("fd", wfd.into()), ("bytes", note.a.into())],
            );
            say_for!(
                ctx,
                wpid,
                note.t_ns,
                "raw_writer",
                &[
                    ("n", &note.a),
                    ("text", &String::from_utf8_lossy(RAW_TEXT).escape_debug()),
                ],
            );
        } else if note.b == 1 {
            early_eof = true;
            break;
        } else {
            read_total += note.a;
            ctx.act_at(
                rpid,
                note.t_ns,
                "read",
                &[("fd", rfd.into()), ("bytes", note.a.into())],
            );
        }
    }
    let writer_code = ctx.join_within(writer, TIMEOUT)?;
    say!(
        ctx,
        "raw_reader_got",
        &[
            ("n", &read_total),
            ("writer", &wpid),
            ("code", &writer_code),
        ],
    );
    ctx.pause(2000)?;

    // The writer is gone. The reader goes back to read(): no EOF, because I hold a write end.
    step!(ctx, "hang", &[("pid", &rpid), ("main", &me)])?;
    let blocked = ctx.wait_blocked_in(reader, Call::Read, TIMEOUT)?;
    let ends = proc::pipe_write_ends(inode, &lesson_pids(me));
    say!(
        ctx,
        "hang_blocked",
        &[
            ("pid", &rpid),
            ("state", &blocked.as_ref().map_or('?', |b| b.0)),
            ("ends", &describe_ends(ctx, &ends)),
        ],
    );
    ctx.pause(1500)?;
    let window = Duration::from_millis(if ctx.speed > 0.0 {
        (3000.0 * ctx.speed) as u64
    } else {
        150
    });
    say!(ctx, "hang_wait", &[("ms", &window.as_millis())]);
    let during = Note::recv(&note_r, window)?;
    let no_eof_while_open = during.is_none() && !early_eof;
    let still = crate::sys::proc::state(rpid);
    say!(
        ctx,
        "hang_nothing",
        &[
            ("ms", &window.as_millis()),
            ("pid", &rpid),
            ("state", &still.unwrap_or('?')),
        ],
    );
    ctx.pause(2000)?;

    step!(ctx, "close", &[("pid", &rpid)])?;
    ctx.act_at(
        me,
        now_ns(),
        "close",
        &[("fd", wfd.into()), ("end", "write".into())],
    );
    drop(w);
    let ends_after = proc::pipe_write_ends(inode, &lesson_pids(me));
    if ends_after.is_empty() {
        say!(ctx, "close_done", &[("w", &wfd)]);
    } else {
        let left = describe_ends(ctx, &ends_after);
        say!(ctx, "close_done_left", &[("w", &wfd), ("ends", &left)]);
    }
    let eof_note = Note::recv(&note_r, TIMEOUT)?;
    let eof = eof_note.is_some_and(|n| n.b == 1);
    if let Some(n) = eof_note.filter(|n| n.b == 1) {
        ctx.act_at(
            rpid,
            n.t_ns,
            "read",
            &[
                ("fd", rfd.into()),
                ("bytes", 0.into()),
                ("eof", true.into()),
            ],
        );
        say_for!(ctx, rpid, n.t_ns, "raw_eof", &[("total", &n.a)]);
    }
    let reader_code = ctx.join_within(reader, TIMEOUT)?;
    say!(ctx, "raw_moral", &[("code", &reader_code)]);
    // Where /proc tells, the only write end left during the hang was mine, and none after.
    let ends_ok = !cfg!(target_os = "linux")
        || (!ends.is_empty() && ends.iter().all(|&(pid, _)| pid == me) && ends_after.is_empty());
    Ok(no_eof_while_open
        && eof
        && ends_ok
        && read_total == RAW_TEXT.len() as i64
        && writer_code == 0
        && reader_code == 0)
}

// ---------------------------------------------------------------------------------------
// tail -f access.log | grep 404

/// Lines from a file descriptor, each wait bounded.
struct Lines {
    fd: OwnedFd,
    buf: Vec<u8>,
}

enum Got {
    Line(String),
    Eof,
    Timeout,
}

impl Lines {
    fn next(&mut self, timeout: Duration) -> Result<Got> {
        use nix::errno::Errno;
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Ok(Got::Line(String::from_utf8_lossy(&line[..i]).into_owned()));
            }
            if procs::stop_reason().is_some() {
                return Err(Stopped.into());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Got::Timeout);
            }
            let ms =
                PollTimeout::try_from(left.as_millis().min(50) as i32).unwrap_or(PollTimeout::ZERO);
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, ms) {
                Ok(0) | Err(Errno::EINTR) => continue,
                Ok(_) => {}
                Err(e) => bail!("poll() failed: {e}"),
            }
            let mut chunk = [0u8; 4096];
            match nix::unistd::read(&self.fd, &mut chunk) {
                Ok(0) => return Ok(Got::Eof),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(Errno::EINTR) => {}
                Err(e) => bail!("read() failed: {e}"),
            }
        }
    }
}

/// Start a real program (no shell): dies with us, reaped by us.
fn start_program(
    ctx: &mut Ctx<'_>,
    mut cmd: std::process::Command,
    name: &str,
) -> Result<Option<std::process::Child>> {
    procs::die_with_parent(&mut cmd);
    match cmd.spawn() {
        Ok(child) => {
            ctx.spawned(child.id() as i32, ctx.main_pid, name, How::Spawn);
            Ok(Some(child))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(match e.raw_os_error() {
            Some(code) => procs::fork_error(
                &format!("starting {name} (fork + exec)"),
                nix::errno::Errno::from_raw(code),
            ),
            None => anyhow!("starting {name}: {e}"),
        }),
    }
}

fn append(log: &Path, line: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    // One write(2) per line, O_APPEND: tail sees whole lines.
    f.write_all(format!("{line}\n").as_bytes())
        .with_context(|| format!("appending to {}", log.display()))
}

/// The shell's `tail -f access.log | grep 404`, with the pipe made here.
fn shell_pipeline(ctx: &mut Ctx<'_>) -> Result<()> {
    let me = ctx.main_pid;
    step!(ctx, "shell", &[])?;
    let log = ctx.dir.join("access.log");
    let mut text = String::new();
    for line in LOG_BEFORE {
        text.push_str(line);
        text.push('\n');
    }
    std::fs::write(&log, text).with_context(|| format!("writing {}", log.display()))?;
    say!(
        ctx,
        "shell_intro",
        &[("log", &log.display()), ("n", &LOG_BEFORE.len())],
    );
    ctx.pause(2000)?;

    // The pipe between the two programs; ours, made like the shell makes it for `|`.
    let (pipe_r, pipe_w) = procs::pipe()?;
    let (pr, pw) = (pipe_r.as_raw_fd(), pipe_w.as_raw_fd());
    let mut tail_cmd = std::process::Command::new("tail");
    tail_cmd
        .arg("-f")
        .arg(&log)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::from(pipe_w))
        .stderr(std::process::Stdio::null());
    let Some(tail) = start_program(ctx, tail_cmd, "tail")? else {
        say!(ctx, "shell_missing", &[("program", &"tail")]);
        return Ok(());
    };
    // `tail_cmd` is gone: my copy of the write end with it. Only tail holds one now.
    let mut grep_cmd = std::process::Command::new("grep");
    grep_cmd
        .arg("--line-buffered")
        .arg(PATTERN)
        .stdin(std::process::Stdio::from(pipe_r))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let tail_pid = Pid::from_raw(tail.id() as i32);
    let Some(mut grep) = start_program(ctx, grep_cmd, "grep")? else {
        say!(ctx, "shell_missing", &[("program", &"grep")]);
        let _ = kill(tail_pid, Signal::SIGKILL);
        ctx.join_within(tail_pid, TIMEOUT)?;
        return Ok(());
    };
    let grep_pid = Pid::from_raw(grep.id() as i32);
    let out: OwnedFd = grep.stdout.take().context("grep's standard output")?.into();
    drop((tail, grep)); // reaped with waitpid below, not by std
    let mut lines = Lines {
        fd: out,
        buf: Vec::new(),
    };
    say!(
        ctx,
        "shell_started",
        &[
            ("tail", &tail_pid),
            ("grep", &grep_pid),
            ("r", &pr),
            ("w", &pw),
        ],
    );
    ctx.pause(2500)?;

    let mut matched = 0usize;
    let mut expected = 0usize;
    let mut in_order = true;
    // tail first prints the last lines already there; grep lets the 404 ones through.
    for line in LOG_BEFORE.iter().filter(|l| l.contains(PATTERN)) {
        expected += 1;
        if read_grep_line(ctx, &mut lines, grep_pid, line)? {
            matched += 1;
        } else {
            in_order = false;
        }
    }
    let grep_state = ctx
        .wait_blocked_in(grep_pid, Call::Read, TIMEOUT)?
        .map(|b| b.0);
    let tail_state = ctx.wait_state(tail_pid, &['S'], TIMEOUT)?;
    say!(
        ctx,
        "shell_waiting",
        &[
            ("grep", &grep_pid),
            ("tail", &tail_pid),
            ("gstate", &grep_state.unwrap_or('?')),
            ("tstate", &tail_state.unwrap_or('?')),
        ],
    );
    step!(
        ctx,
        "shell_live",
        &[("tail", &tail_pid), ("grep", &grep_pid)]
    )?;
    ctx.pause(2000)?;

    // The sentence after the loop is about the appended lines only; `matched` also counts
    // the 404 grep passed on from the lines already in the log.
    let matched_before = matched;
    for line in LOG_LIVE {
        ctx.act_at(
            me,
            now_ns(),
            "write",
            &[("file", "access.log".into()), ("line", (*line).into())],
        );
        append(&log, line)?;
        if line.contains(PATTERN) {
            expected += 1;
            if read_grep_line(ctx, &mut lines, grep_pid, line)? {
                matched += 1;
            } else {
                in_order = false;
            }
        }
        ctx.pause(1200)?;
    }
    say!(
        ctx,
        "shell_filtered",
        &[
            ("n", &(matched - matched_before)),
            ("total", &LOG_LIVE.len()),
        ],
    );
    ctx.pause(2000)?;

    // Ctrl-C in a shell signals both; here: end tail, and grep ends by itself at EOF.
    step!(ctx, "shell_end", &[])?;
    say!(ctx, "shell_kill", &[("tail", &tail_pid)]);
    kill(tail_pid, Signal::SIGTERM).context("kill(tail, SIGTERM)")?;
    let tail_code = ctx.join_within(tail_pid, TIMEOUT)?;
    let eof = matches!(lines.next(TIMEOUT)?, Got::Eof);
    let grep_code = ctx.join_within(grep_pid, TIMEOUT)?;
    say!(
        ctx,
        "shell_grep_eof",
        &[
            ("grep", &grep_pid),
            ("code", &grep_code),
            ("tcode", &tail_code),
        ],
    );
    ctx.claim(
        "pipeline_lines",
        matched,
        &format!("== {expected}"),
        in_order && matched == expected,
    );
    let ended = eof && grep_code == 0;
    ctx.claim("grep_exit_at_eof", grep_code, "== 0", ended);
    Ok(())
}

/// Read grep's next output line and check it is `expected`. Emits `read`.
fn read_grep_line(ctx: &mut Ctx<'_>, lines: &mut Lines, grep: Pid, expected: &str) -> Result<bool> {
    match lines.next(TIMEOUT)? {
        Got::Line(l) => {
            ctx.act_at(
                ctx.main_pid,
                now_ns(),
                "read",
                &[("from", grep.as_raw().into()), ("line", l.as_str().into())],
            );
            say!(ctx, "shell_line", &[("grep", &grep), ("line", &l)]);
            Ok(l == expected)
        }
        Got::Eof => {
            say!(ctx, "shell_no_line", &[("grep", &grep)]);
            Ok(false)
        }
        Got::Timeout => {
            say!(ctx, "shell_no_line", &[("grep", &grep)]);
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_print_like_python_dicts() {
        let m = Msg {
            id: 1,
            op: "sum".into(),
            args: vec![3, 4, 5],
            pid: 42,
        };
        assert_eq!(
            m.to_string(),
            "{'id': 1, 'op': 'sum', 'args': [3, 4, 5], 'pid': 42}"
        );
    }

    #[test]
    fn one_way_ends_refuse_the_other_direction() {
        let (r, w) = Conn::pipe(false).unwrap();
        let m = Msg {
            id: 1,
            op: "x".into(),
            args: vec![],
            pid: 1,
        };
        assert_eq!(r.send(&m).unwrap_err().to_string(), READ_ONLY);
        assert_eq!(
            w.recv_timeout(Duration::ZERO).unwrap_err().to_string(),
            WRITE_ONLY
        );
        w.send(&m).unwrap();
        assert_eq!(r.recv().unwrap(), Some(m));
        drop(w);
        assert_eq!(r.recv().unwrap(), None, "EOFError once the sender is gone");
    }

    #[test]
    fn the_log_matches_only_404_lines() {
        for l in LOG_BEFORE.iter().chain(LOG_LIVE) {
            let is_404 = l.contains("\" 404 ");
            assert_eq!(l.contains(PATTERN), is_404, "{l}");
        }
    }
}
