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
use crate::ctx::{Ctx, Expect};
use crate::event::now_ns;
use crate::procs::{self, Note};
use crate::sys::proc::{self, Call};
use crate::{say, say_for, step};
use anyhow::{bail, Context, Result};
use nix::unistd::Pid;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

mod conn;
mod shell;

use conn::*;
use shell::*;

/// This lesson's words, whose keys the word macros check at compile time.
const WORDS: &crate::words::keys::Table = &crate::words::keys::PIPE;

pub static LESSON: LessonDef = LessonDef {
    name: "pipe",
    words_src: include_str!("../../../lessons/pipe.toml"),
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

/// What a spawned child of the lesson tells the parent: the name of the one-shot server
/// to send its end of the pipe to; (the reader) the error its read-only end raised on
/// `send`, then the ids of the objects it received, in order, once `recv()` saw end of
/// file.
#[derive(serde::Serialize, serde::Deserialize, Debug)]
enum Reply {
    Server {
        name: String,
    },
    /// The duplex child has said it holds its end (its line is on the screen first).
    HasConn,
    /// The duplex child has said what it answers (its line is heard before my next one).
    Answered,
    Refused {
        error: String,
    },
    Received {
        ids: Vec<u32>,
    },
}

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
// The lesson.

fn run(ctx: &mut Ctx<'_>, opts: &Opts) -> Result<()> {
    let roundtrip = duplex(ctx)?;
    ctx.claim("duplex_roundtrip", roundtrip, Expect::eq(true));
    ctx.pause(2000)?;

    let (simplex_ok, letter) = simplex(ctx, opts.get("messages"))?;
    ctx.claim("simplex_ok", simplex_ok, Expect::eq(true));
    ctx.claim("reader_blocked_state", letter.to_string(), Expect::eq("S"));
    ctx.pause(2000)?;

    let eof = raw_pipe(ctx)?;
    ctx.claim("eof_after_close", eof, Expect::eq(true));
    ctx.pause(2000)?;

    shell_pipeline(ctx)?;
    // The last step's pause, once its story is told.
    ctx.show(0)
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
    // The child says it has its end before I say so and send: else, on a busy machine,
    // its line and its answer come at once.
    child.expect(TIMEOUT, |r: &Reply| matches!(r, Reply::HasConn))?;
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
    // Its answer can come before its line about it: wait for the line, so that mine is
    // paced after it (on a busy machine, else, both were on the screen at once).
    child.expect(TIMEOUT, |r: &Reply| matches!(r, Reply::Answered))?;
    // The reader's pace first, then the receive and the line that tells it, together
    // (a wait for the reader between them would leave the receive on a line of its own).
    ctx.keep_up();
    ctx.act_at(
        me,
        now_ns(),
        "recv",
        &msg_fields("duplex", ("from", answer.pid), &answer),
    );
    let expected_sum: i64 = request.args.iter().sum();
    say_for!(
        ctx,
        me,
        now_ns(),
        "duplex_answer",
        &[("obj", &answer), ("sum", &expected_sum)]
    );
    ctx.keep_up();
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
    c.tell(&Reply::HasConn)?;
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
        c.tell(&Reply::Answered)?;
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
    let refused_in_child = match reader.decode(&reader.reply(TIMEOUT)?)? {
        Reply::Refused { error } => error,
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
    // Before the first send: the reader asleep in recv().
    ctx.show(2500)?;

    // Said first, and then done at once: the sends are what the line told, and the
    // reader's receives and its end of file come together, with its line about them.
    say!(ctx, "simplex_close", &[("n", &messages)]);
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
        sent.push(m.id);
    }
    drop(w);
    let got = match reader.decode(&reader.reply(TIMEOUT)?)? {
        Reply::Received { ids } => ids,
        other => bail!("the reader sent {other:?}"),
    };
    let code = ctx.join_within(rpid, TIMEOUT)?;
    let in_order = got == sent;
    // Shown as "1, 2, 3".
    let shown = |ids: &[u32]| {
        ids.iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    say!(
        ctx,
        "simplex_done",
        &[
            ("got", &shown(&got)),
            ("sent", &shown(&sent)),
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
    c.tell(&Reply::Refused { error: refused })?;
    say!(c, "reader_waits", &[])?;
    let mut ids = Vec::new();
    while let Some(m) = r.recv()? {
        c.act_at(
            now_ns(),
            "recv",
            &msg_fields("simplex", ("from", m.pid), &m),
        )?;
        ids.push(m.id);
    }
    say!(c, "reader_eof", &[("n", &ids.len())])?;
    c.tell(&Reply::Received { ids })?;
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

/// What the phases of the raw pipe share: the pipe (its inode and the parent's descriptor
/// numbers, which the children inherited), the read end of the children's notes, and the
/// two children.
struct RawPipe {
    me: i32,
    inode: u64,
    rfd: i32,
    wfd: i32,
    notes: OwnedFd,
    reader: Pid,
    writer: Pid,
}

/// `os.pipe()`: a writer child writes bytes and exits; a reader child reads until end
/// of file, which comes only once the parent closes its own copy of the write end.
fn raw_pipe(ctx: &mut Ctx<'_>) -> Result<bool> {
    let (r, w, inode) = raw_open(ctx)?;
    let raw = raw_fork(ctx, r, &w, inode)?;
    let (delivered, early_eof) = raw_transfer(ctx, &raw)?;
    let (ends, quiet) = raw_hang(ctx, &raw)?;
    let (ends_after, eof) = raw_close(ctx, &raw, w)?;
    // Where /proc tells, the only write end left during the hang was mine, and none after.
    let ends_ok = !cfg!(target_os = "linux")
        || (!ends.is_empty()
            && ends.iter().all(|&(pid, _)| pid == raw.me)
            && ends_after.is_empty());
    Ok(quiet && !early_eof && eof && ends_ok && delivered)
}

/// The pipe made: two descriptors, one inode, no file.
fn raw_open(ctx: &mut Ctx<'_>) -> Result<(OwnedFd, OwnedFd, u64)> {
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
    Ok((r, w, inode))
}

/// The reader and the writer forked, each with a copy of both ends, each closing the end
/// it does not use; the parent keeps only its write end `w`.
fn raw_fork(ctx: &mut Ctx<'_>, r: OwnedFd, w: &OwnedFd, inode: u64) -> Result<RawPipe> {
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
    Ok(RawPipe {
        me: ctx.main_pid,
        inode,
        rfd,
        wfd,
        notes: note_r,
        reader,
        writer,
    })
}

/// The writer's note, then the reader's, until every byte has arrived; the writer reaped.
/// Whether every byte came and the writer exited 0; whether the reader saw an end of file
/// too early.
fn raw_transfer(ctx: &mut Ctx<'_>, raw: &RawPipe) -> Result<(bool, bool)> {
    let (rfd, wfd) = (raw.rfd, raw.wfd);
    let (rpid, wpid) = (raw.reader.as_raw(), raw.writer.as_raw());
    let mut read_total = 0i64;
    let mut early_eof = false;
    let mut seen_write = false;
    while !seen_write || read_total < RAW_TEXT.len() as i64 {
        let note =
            Note::recv(&raw.notes, TIMEOUT)?.context("the pipe's reader or writer went silent")?;
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
    let writer_code = ctx.join_within(raw.writer, TIMEOUT)?;
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
    Ok((
        read_total == RAW_TEXT.len() as i64 && writer_code == 0,
        early_eof,
    ))
}

/// The writer is gone. The reader goes back to read(): no EOF, because the parent holds a
/// write end. The write ends /proc shows, and whether nothing came in a whole window.
fn raw_hang(ctx: &mut Ctx<'_>, raw: &RawPipe) -> Result<(Vec<(i32, i32)>, bool)> {
    let (me, reader, rpid) = (raw.me, raw.reader, raw.reader.as_raw());
    step!(ctx, "hang", &[("pid", &rpid), ("main", &me)])?;
    let blocked = ctx.wait_blocked_in(reader, Call::Read, TIMEOUT)?;
    let ends = proc::pipe_write_ends(raw.inode, &lesson_pids(me));
    say!(
        ctx,
        "hang_blocked",
        &[
            ("pid", &rpid),
            ("state", &blocked.as_ref().map_or('?', |b| b.0)),
            ("ends", &describe_ends(ctx, &ends)),
        ],
    );
    ctx.show(1500)?;
    let window = Duration::from_millis(if ctx.speed > 0.0 {
        (3000.0 * ctx.speed) as u64
    } else {
        150
    });
    say!(ctx, "hang_wait", &[("ms", &window.as_millis())]);
    let during = Note::recv(&raw.notes, window)?;
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
    Ok((ends, during.is_none()))
}

/// The parent closes its write end `w`: the last one, so the reader's read() returns 0
/// and it exits. The write ends /proc shows after the close; whether the reader saw the
/// end of file and exited 0.
fn raw_close(ctx: &mut Ctx<'_>, raw: &RawPipe, w: OwnedFd) -> Result<(Vec<(i32, i32)>, bool)> {
    let (me, rfd, wfd) = (raw.me, raw.rfd, raw.wfd);
    let (reader, rpid) = (raw.reader, raw.reader.as_raw());
    step!(ctx, "close", &[("pid", &rpid)])?;
    // The close line is stamped at the close (the /proc read after it confirms what it
    // says), so that the reader's end of file, which the close causes, comes after it.
    ctx.keep_up();
    let t_close = now_ns();
    ctx.act_at(
        me,
        t_close,
        "close",
        &[("fd", wfd.into()), ("end", "write".into())],
    );
    drop(w);
    let ends_after = proc::pipe_write_ends(raw.inode, &lesson_pids(me));
    if ends_after.is_empty() {
        say_for!(ctx, me, t_close, "close_done", &[("w", &wfd)]);
    } else {
        let left = describe_ends(ctx, &ends_after);
        say_for!(
            ctx,
            me,
            t_close,
            "close_done_left",
            &[("w", &wfd), ("ends", &left)]
        );
    }
    let eof_note = Note::recv(&raw.notes, TIMEOUT)?;
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
    Ok((ends_after, eof && reader_code == 0))
}
