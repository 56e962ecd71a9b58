//! Lesson `isolation`: the global `n = 100` that the child sets to 0 while the parent
//! still prints 100, at the very same virtual address (copy-on-write); then the contrast,
//! a `MAP_SHARED` page (Python's `Value`) where the child's write is seen.

use super::{LessonDef, Opts};
use crate::ctx::{Ctx, Expect};
use crate::procs::{self, Note};
use crate::sys::shared::Shared;
use crate::{say, say_for, step};
use anyhow::{Context, Result};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// This lesson's words, whose keys the word macros check at compile time.
const WORDS: &crate::words::keys::Table = &crate::words::keys::ISOLATION;

pub static LESSON: LessonDef = LessonDef {
    name: "isolation",
    words_src: include_str!("../../lessons/isolation.toml"),
    options: &[],
    run,
    validate: None,
    roles: &[],
};

/// The global `n`. An atomic only so the compiler cannot assume its value: every read
/// really reads memory.
static N: AtomicI64 = AtomicI64::new(100);

const NOTE_TIMEOUT: Duration = Duration::from_secs(5);

fn hex(addr: usize) -> String {
    format!("{addr:#x}")
}

fn run(ctx: &mut Ctx<'_>, _opts: &Opts) -> Result<()> {
    let addr = &N as *const AtomicI64 as usize;
    N.store(100, Ordering::SeqCst); // the tour may run this lesson twice in one process
    let before = N.load(Ordering::SeqCst);
    step!(ctx, "global", &[])?;
    say!(ctx, "global", &[("n", &before), ("addr", &hex(addr))]);
    ctx.observe("parent_value_before", before);
    ctx.pause(1500)?;

    step!(ctx, "fork", &[])?;
    say!(ctx, "fork", &[]);
    ctx.pause(1000)?;
    let (note_r, note_w) = procs::pipe()?;
    let fd = note_w.as_raw_fd();
    let child_body = move || {
        N.store(0, Ordering::SeqCst);
        let seen = N.load(Ordering::SeqCst);
        Note::send(fd, seen, &N as *const AtomicI64 as i64);
        0
    };
    // SAFETY: the child stores to an atomic, takes an address and writes a note
    // (clock_gettime, getpid, getppid, write): all async-signal-safe, no allocation.
    let child = unsafe { ctx.fork("child", child_body) }?;
    drop(note_w);
    let note = Note::recv(&note_r, NOTE_TIMEOUT)?.context("the child did not write its note")?;
    let child_addr = note.b as usize;
    say_for!(
        ctx,
        note.pid,
        note.t_ns,
        "child_set",
        &[
            ("pid", &note.pid),
            ("n", &note.a),
            ("addr", &hex(child_addr)),
        ],
    );
    ctx.pause(1500)?;
    ctx.join(child)?;
    let after = N.load(Ordering::SeqCst);
    say!(ctx, "parent_after", &[("n", &after), ("addr", &hex(addr))]);
    ctx.pause(1500)?;
    let same = child_addr == addr;
    say!(ctx, "cow", &[]);
    ctx.settle()?;
    say!(ctx, "other_methods", &[]);
    ctx.claim("child_value", note.a, Expect::eq(0));
    ctx.claim("parent_value_after", after, Expect::eq(100));
    ctx.claim("same_virtual_address", same, Expect::eq(true));
    ctx.pause(2500)?;

    step!(ctx, "shared", &[])?;
    // Python's Value lives in a MAP_SHARED mapping too (of a /dev/shm file); here an
    // anonymous page that fork() shares with the child, at the same address.
    let page = Shared::<AtomicI64>::anonymous()?;
    page.get().store(100, Ordering::SeqCst);
    let shared_addr = page.addr();
    say!(ctx, "shared_intro", &[("addr", &hex(shared_addr))]);
    ctx.pause(1500)?;
    let (note_r, note_w) = procs::pipe()?;
    let fd = note_w.as_raw_fd();
    let value = page.get();
    let child_body = move || {
        // An atomic store and load on the shared page: async-signal-safe.
        value.store(0, Ordering::SeqCst);
        Note::send(fd, value.load(Ordering::SeqCst), shared_addr as i64);
        0
    };
    // SAFETY: the child writes through the shared mapping (inherited by fork) and writes
    // a note: no allocation, only async-signal-safe calls.
    let child = unsafe { ctx.fork("child", child_body) }?;
    drop(note_w);
    let note = Note::recv(&note_r, NOTE_TIMEOUT)?.context("the child did not write its note")?;
    say_for!(
        ctx,
        note.pid,
        note.t_ns,
        "child_shared",
        &[("pid", &note.pid), ("addr", &hex(note.b as usize))],
    );
    ctx.pause(1500)?;
    ctx.join(child)?;
    let shared_after = value.load(Ordering::SeqCst);
    drop(page);
    say!(ctx, "shared_after", &[("v", &shared_after)]);
    ctx.claim("shared_value_after", shared_after, Expect::eq(0));
    ctx.pause(1500)?;
    say!(ctx, "moral", &[]);
    // The last step's pause, once its story is told.
    ctx.show(0)
}
