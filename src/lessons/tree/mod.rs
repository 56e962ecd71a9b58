//! Lesson `tree`: the process tree and process groups.
//!
//! The main process forks two children; each forks a child of its own. The children put
//! themselves in a process group of their own (`setpgid`, from both sides, as a shell does
//! for a pipeline), which the grandchildren inherit; the main process stays in its own
//! group. The tree is then read back from the kernel (`/proc/<pid>/stat`: ppid, pgrp,
//! session, state) and drawn like `ps --forest`, with the main process's ancestors up to
//! PID 1.
//!
//! Then Ctrl-C, done by hand: one grandchild first moves to a group of its own, and
//! `killpg(group, SIGINT)` ends every member of the children's group at once (exitcode
//! -2), but neither the main process nor the grandchild that left. The survivor is
//! re-parented to the main process (a child subreaper) and ended with a signal to its own
//! group.
//!
//! All four processes are bare forks of this multi-threaded program: they only make
//! async-signal-safe calls (setpgid, getpgrp, getpid, getppid, fork, pipe, poll, read,
//! close, prctl, nanosleep, pause, write, _exit). None outlives the run: the children and
//! the first grandchild die with their parent (`PR_SET_PDEATHSIG`); the grandchild that
//! must survive its parent instead watches a pipe only its parent holds, and once its
//! parent is gone it either finds the main process as its new parent (and then dies with
//! it) or exits.

use super::{LessonDef, Opts};
use crate::ctx::{Ctx, Expect};
use crate::event::{now_ns, How, ObsValue};
use crate::procs::{self, Note};
use crate::sys::proc::Ids;
use crate::{say, say_for, step};
use anyhow::{bail, Context, Result};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

mod forked;
mod read;

use forked::*;
use read::*;

/// This lesson's words, whose keys the word macros check at compile time.
const WORDS: &crate::words::keys::Table = &crate::words::keys::TREE;

pub static LESSON: LessonDef = LessonDef {
    name: "tree",
    words_src: include_str!("../../../lessons/tree.toml"),
    options: &[],
    run,
    validate: None,
    roles: &[],
};

/// How long a process gets to report or to reach a state; far more than it needs.
const TIMEOUT: Duration = Duration::from_secs(5);

crate::note_kinds! {
    /// What a note of the tree's processes says (`Note::a`); `b` is the number after it.
    enum Said {
        /// `b` = the process group the writer is in after `setpgid`.
        Hello = 1,
        /// `b` = the pid `fork()` returned.
        Forked = 2,
        /// `b` = the new process group, after `setpgid(0, 0)`.
        Moved = 3,
        /// The writer has a new parent (`Note::ppid`).
        Reparented = 4,
        /// A call failed: `b` = errno.
        ForkFailed = -1,
        SetpgidFailed = -2,
    }
}

/// The names of the four processes.
const CHILDREN: [&str; 2] = ["child-1", "child-2"];
const GRANDCHILDREN: [&str; 2] = ["gchild-1", "gchild-2"];

fn run(ctx: &mut Ctx<'_>, _opts: &Opts) -> Result<()> {
    let me = ctx.main_pid;
    let mine = crate::sys::proc::ids(me).context("reading /proc/self/stat")?;
    step!(ctx, "build", &[("main", &me)])?;
    say!(
        ctx,
        "intro",
        &[("pid", &me), ("pgid", &mine.pgid), ("sid", &mine.sid)],
    );
    ctx.pause(2500)?;

    let tree = build(ctx)?;
    ctx.pause(2500)?;

    // Everyone sits in pause() (state S) before the tree is read and the step shown.
    for &pid in tree.children.iter().chain(&tree.grandchildren) {
        ctx.wait_state(pid, &['S'], TIMEOUT)?;
    }
    step!(ctx, "read", &[("main", &me), ("sid", &mine.sid)])?;
    read_tree(ctx, &tree)?;
    ctx.show(4000)?;

    let story = Groups {
        group: tree.children[0],
        survivor: tree.grandchildren[1],
        tree,
        mine,
    };
    leave_group(ctx, &story)?;
    let members = members(ctx, &story)?;
    ctrl_c(ctx, &story, &members)?;
    // After the group signal: the survivor, adopted, in a group of its own.
    ctx.show(3000)?;
    end_survivor(ctx, &story, &members)?;

    step!(ctx, "windows", &[])?;
    say!(ctx, "windows", &[]);
    // The last step's pause, once its story is told.
    ctx.show(0)
}

/// What the phases about process groups share.
struct Groups {
    tree: Tree,
    /// The main process's ids, as read at the start.
    mine: Ids,
    /// The children's process group (named after child-1).
    group: Pid,
    /// gchild-2, which leaves the group before the Ctrl-C and so survives it.
    survivor: Pid,
}

/// The children's group as the kernel has it once gchild-2 has left it.
struct Members {
    /// Every descendant of the main process in the group.
    pids: Vec<i32>,
    /// gchild-2's process group (-1 if it could not be read).
    survivor_pgid: i32,
}

/// The children's group, and the main process's own; gchild-2 moves to a group of its
/// own (`setpgid(0, 0)`).
fn leave_group(ctx: &mut Ctx<'_>, story: &Groups) -> Result<()> {
    step!(ctx, "groups", &[])?;
    say!(
        ctx,
        "groups_intro",
        &[("group", &story.group), ("mine", &story.mine.pgid)]
    );
    ctx.pause(4000)?;
    say!(ctx, "ask_move", &[("pid", &story.survivor)]);
    nix::unistd::write(&story.tree.move_w, b"m").context("write() to gchild-2's pipe")?;
    let moved = story
        .tree
        .note(&[Said::Moved], "gchild-2's setpgid(0, 0)")?;
    ctx.act_at(
        moved.pid,
        moved.t_ns,
        "setpgid",
        &[("pgid", ObsValue::Int(moved.b))],
    );
    say_for!(ctx, moved.pid, moved.t_ns, "moved", &[("pgid", &moved.b)]);
    ctx.pause(2500)?;
    Ok(())
}

/// Who is in the children's group now, read from `/proc`.
fn members(ctx: &mut Ctx<'_>, story: &Groups) -> Result<Members> {
    let group = story.group;
    let pids: Vec<i32> = descendants(ctx.main_pid)
        .into_iter()
        .filter(|&(pid, _)| crate::sys::proc::ids(pid).is_some_and(|s| s.pgid == group.as_raw()))
        .map(|(pid, _)| pid)
        .collect();
    let names = pids
        .iter()
        .map(|&p| format!("{} {p}", ctx.name_of(p)))
        .collect::<Vec<_>>()
        .join(", ");
    let survivor_pgid = crate::sys::proc::ids(story.survivor.as_raw()).map_or(-1, |s| s.pgid);
    say!(
        ctx,
        "members",
        &[
            ("group", &group),
            ("n", &pids.len()),
            ("members", &names),
            ("mine", &story.mine.pgid),
            ("other", &survivor_pgid),
        ],
    );
    ctx.pause(3000)?;
    Ok(Members {
        pids,
        survivor_pgid,
    })
}

/// Ctrl-C by hand: `killpg(group, SIGINT)` ends every member at once (exitcode -2), but
/// not the main process, which is in a group of its own.
fn ctrl_c(ctx: &mut Ctx<'_>, story: &Groups, members: &Members) -> Result<()> {
    let (me, group, mine) = (ctx.main_pid, story.group, &story.mine);
    let survivor_pgid = members.survivor_pgid;
    let members = &members.pids;
    step!(ctx, "killpg", &[("group", &group), ("sid", &mine.sid)])?;
    say!(ctx, "killpg", &[("group", &group), ("n", &members.len())]);
    ctx.pause(1500)?;
    ctx.act_at(
        me,
        now_ns(),
        "killpg",
        &[
            ("pgid", group.as_raw().into()),
            ("signal", "SIGINT".into()),
            ("members", members.len().into()),
        ],
    );
    let sent = Instant::now();
    // The survivor's adoption, which its note tells only after the reaping (and, at a
    // reading pace, after lines said meanwhile), is expected from the signal on: what
    // is stamped after it waits for it, in stamp order.
    let adoption = ctx.expect_news();
    killpg(group, Signal::SIGINT).context("killpg(SIGINT) of the children's group")?;
    // The children first: once a child is reaped, its children have been handed to us
    // (the subreaper), so we may wait for them too.
    let mut order: Vec<i32> = members.clone();
    order.sort_by_key(|p| !story.tree.children.iter().any(|c| c.as_raw() == *p));
    let mut codes = Vec::new();
    for &pid in &order {
        codes.push(ctx.join(Pid::from_raw(pid))?);
    }
    let took_ms = sent.elapsed().as_secs_f64() * 1000.0;
    // The survivor was handed to us while we reaped its parent: it says so first.
    survived(ctx, story, survivor_pgid)?;
    drop(adoption);
    let ended = codes.iter().filter(|&&c| c == -2).count();
    say!(
        ctx,
        "all_ended",
        &[
            ("n", &ended),
            ("ms", &format!("{took_ms:.1}")),
            ("group", &group),
        ],
    );
    let main_not_signalled = procs::stop_reason().is_none() && mine.pgid != group.as_raw();
    ctx.claim(
        "group_members",
        members.len(),
        Expect::eq(3).note("child-1, child-2, gchild-1"),
    );
    ctx.claim(
        "ended_by_group_signal",
        ended,
        Expect::eq(members.len())
            .of("group_members")
            .note("each exitcode -2")
            .and("each_member_joined", codes.len() == members.len()),
    );
    ctx.claim("main_not_signalled", main_not_signalled, Expect::eq(true));
    ctx.pause(2500)?;
    Ok(())
}

/// The survivor lost its parent (child-2) and was handed to us; the group signal did not
/// reach it.
fn survived(ctx: &mut Ctx<'_>, story: &Groups, survivor_pgid: i32) -> Result<()> {
    let survivor = story.survivor;
    let parent = story.tree.children[1];
    let n = story
        .tree
        .note(&[Said::Reparented], "gchild-2 after its parent's end")?;
    let alive = matches!(crate::sys::proc::state(survivor.as_raw()), Some(s) if s != 'Z');
    ctx.act_at(
        n.pid,
        n.t_ns,
        "reparent",
        &[("from", parent.as_raw().into()), ("to", n.ppid.into())],
    );
    say_for!(
        ctx,
        n.pid,
        n.t_ns,
        "survived",
        &[
            ("group", &story.group),
            ("pgid", &survivor_pgid),
            ("ppid", &n.ppid),
            ("parent", &parent),
        ],
    );
    let survived = alive && survivor_pgid == survivor.as_raw();
    ctx.claim("other_group_survived", survived, Expect::eq(true));
    Ok(())
}

/// The survivor ends with a signal to its own group.
fn end_survivor(ctx: &mut Ctx<'_>, story: &Groups, members: &Members) -> Result<()> {
    let (survivor, survivor_pgid) = (story.survivor, members.survivor_pgid);
    step!(ctx, "end", &[("pid", &survivor)])?;
    // The survivor, before the signal to its own group ends it.
    ctx.show(0)?;
    say!(ctx, "end_survivor", &[("pgid", &survivor_pgid)]);
    ctx.act_at(
        ctx.main_pid,
        now_ns(),
        "killpg",
        &[
            ("pgid", survivor_pgid.into()),
            ("signal", "SIGINT".into()),
            ("members", 1.into()),
        ],
    );
    killpg(Pid::from_raw(survivor_pgid), Signal::SIGINT)
        .context("killpg(SIGINT) of gchild-2's group")?;
    let code = ctx.join(survivor)?;
    say!(ctx, "survivor_ended", &[("code", &code)]);
    ctx.observe("survivor_exitcode", code);
    ctx.pause(2500)?;
    Ok(())
}

/// The processes the lesson made, and the pipes it talks to them through.
struct Tree {
    children: [Pid; 2],
    grandchildren: [Pid; 2],
    /// Notes from all four.
    note_r: OwnedFd,
    /// One byte here asks gchild-2 to move to a group of its own.
    move_w: OwnedFd,
}

impl Tree {
    /// The next note, which must be one of `kinds` (a failure's note becomes its error).
    /// Waits in short slices, so that a stop of the run (Ctrl-C) ends the wait at once:
    /// the survivor holds its copy of the pipe until the very end.
    fn note(&self, kinds: &[Said], what: &str) -> Result<Note> {
        let deadline = Instant::now() + TIMEOUT;
        let n = loop {
            if procs::stop_reason().is_some() {
                return Err(crate::ctx::Stopped.into());
            }
            // A note is written with one write(2) of less than PIPE_BUF bytes: once the
            // pipe is readable, the whole note is there.
            if let Some(n) = Note::recv(&self.note_r, Duration::from_millis(20))? {
                break n;
            }
            if Instant::now() > deadline {
                bail!("no word from {what}");
            }
            std::thread::sleep(Duration::from_millis(1)); // end of file: do not spin
        };
        check_note(&n)?;
        if !n.kind().is_some_and(|k| kinds.contains(&k)) {
            bail!(
                "unexpected note {} from PID {} while waiting for {what}",
                n.a,
                n.pid
            );
        }
        Ok(n)
    }
}

/// A note that reports a failure, as an error.
fn check_note(n: &Note) -> Result<()> {
    let errno = nix::errno::Errno::from_raw(n.b as i32);
    match n.kind() {
        Some(Said::ForkFailed) => Err(procs::fork_error(
            &format!("fork() in PID {}", n.pid),
            errno,
        )),
        Some(Said::SetpgidFailed) => bail!("setpgid() in PID {} failed: {errno}", n.pid),
        _ => Ok(()),
    }
}

/// Fork the two children (each forks a grandchild), one after the other, and narrate
/// what each did with its own stamp: a child says hello and waits at a gate until the
/// reader has read it; then it forks, and its child says hello. So no two lines come at
/// once.
fn build(ctx: &mut Ctx<'_>) -> Result<Tree> {
    let (note_r, note_w) = procs::pipe()?;
    let (move_r, move_w) = procs::pipe()?;
    let (gate_r, gate_w) = procs::pipe()?;
    let (note_fd, move_fd, gate_fd) = (note_w.as_raw_fd(), move_r.as_raw_fd(), gate_r.as_raw_fd());
    let main = ctx.main_pid;
    let mut tree = Tree {
        children: [Pid::from_raw(0); 2],
        grandchildren: [Pid::from_raw(0); 2],
        note_r,
        move_w,
    };
    for (i, name) in CHILDREN.iter().enumerate() {
        // Child-1 leads a new group (0: named after itself); child-2 joins it.
        let group = if i == 0 { 0 } else { tree.children[0].as_raw() };
        let mover = (i == 1).then_some(move_fd);
        let child_body = move || child(group, main, note_fd, gate_fd, mover);
        // Ctx::fork stamps the spawn right before fork(), not after it returned: the
        // child may run (and fork its own child) before its parent is scheduled again,
        // and a stream must never show a grandchild started before its parent.
        // SAFETY: `child` only makes async-signal-safe calls (setpgid, getpgrp, getpid,
        // read, fork, pipe, close, pause, and Note::send's clock_gettime/getpid/getppid/
        // write), and so does the grandchild it forks (see `grandchild`); nothing
        // allocates.
        let c = unsafe { ctx.fork(name, child_body) }?;
        tree.children[i] = c;
        // As a shell does: the parent calls setpgid too, so that the group exists before
        // anything else happens, whichever of the two runs first. The child's own call is
        // the one that counts; if it fails, its note says why (so the parent's error is
        // ignored).
        let _ = nix::unistd::setpgid(c, Pid::from_raw(if i == 0 { c.as_raw() } else { group }));
        let hello = tree.note(&[Said::Hello], name)?;
        ctx.act_at(
            hello.pid,
            hello.t_ns,
            "setpgid",
            &[("pgid", ObsValue::Int(hello.b))],
        );
        say_for!(
            ctx,
            hello.pid,
            hello.t_ns,
            if (i == 0) { "c1_hello" } else { "c2_hello" },
            &[
                ("pid", &hello.pid),
                ("ppid", &hello.ppid),
                ("pgid", &hello.b)
            ],
        );
        ctx.keep_up();
        // The gate: one byte lets this child fork.
        procs::open_gate(&gate_w)?;
        tree.grandchildren[i] = grandchild_of(ctx, &tree, i)?;
        ctx.keep_up();
    }
    drop(note_w);
    drop(move_r);
    drop(gate_r);
    let [c1, c2] = tree.children;
    let group = c1.as_raw();
    say!(
        ctx,
        "parent_setpgid",
        &[("c1", &c1), ("c2", &c2), ("group", &group)],
    );
    Ok(tree)
}

/// The two notes of child `i`'s fork, in any order (its fork's result, its child's
/// hello); the grandchild's PID.
fn grandchild_of(ctx: &mut Ctx<'_>, tree: &Tree, i: usize) -> Result<Pid> {
    let child = tree.children[i].as_raw();
    let what = format!("{} and its child", CHILDREN[i]);
    let mut notes = vec![
        tree.note(&[Said::Hello, Said::Forked], &what)?,
        tree.note(&[Said::Hello, Said::Forked], &what)?,
    ];
    notes.sort_by_key(|n| n.t_ns);
    let Some(gc) = notes
        .iter()
        .find(|n| n.pid == child && n.kind() == Some(Said::Forked))
        .map(|n| n.b as i32)
    else {
        bail!("{} (PID {child}) did not report its fork", CHILDREN[i]);
    };
    // The grandchild started when its parent's fork() returned or it said hello,
    // whichever was stamped first.
    let t = notes.iter().map(|n| n.t_ns).min().unwrap_or_else(now_ns);
    ctx.spawned_at(t, gc, child, GRANDCHILDREN[i], How::Fork);
    // The child's fork shows as the grandchild's start; the grandchild says hello.
    for n in &notes {
        if n.pid == gc {
            let parent = ctx.name_of(n.ppid);
            say_for!(
                ctx,
                n.pid,
                n.t_ns,
                "gc_hello",
                &[
                    ("pid", &n.pid),
                    ("ppid", &n.ppid),
                    ("parent", &parent),
                    ("pgid", &n.b),
                ],
            );
        } else if n.pid != child {
            bail!(
                "a note from PID {}, neither {} nor its child",
                n.pid,
                CHILDREN[i]
            );
        }
    }
    Ok(Pid::from_raw(gc))
}

/// Every descendant of `pid` with its depth (1 for a child), depth first, children in
/// PID order: the kernel's tree, from `/proc/<pid>/task/*/children`.
fn descendants(pid: i32) -> Vec<(i32, usize)> {
    fn walk(pid: i32, depth: usize, out: &mut Vec<(i32, usize)>) {
        if depth > 16 {
            return;
        }
        for kid in crate::sys::proc::children(pid) {
            out.push((kid, depth));
            walk(kid, depth + 1, out);
        }
    }
    let mut out = Vec::new();
    walk(pid, 1, &mut out);
    out
}
