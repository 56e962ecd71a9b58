//! The tree read back from the kernel (`/proc/<pid>/stat`) and drawn like `ps --forest`:
//! up, the main process's ancestors to PID 1; down, every descendant.

use super::*;
use crate::ctx::Expect;
use crate::sys::proc::Ids;

/// Read the tree back from `/proc` and draw it; the claims about its shape.
pub(super) fn read_tree(ctx: &mut Ctx<'_>, tree: &Tree) -> Result<()> {
    let me = ctx.main_pid;
    let mine = crate::sys::proc::ids(me).context("reading /proc/self/stat")?;
    let sid = mine.sid;
    let mine_comm = mine.comm.clone();
    ancestors(ctx, &mine)?;

    // Down: every descendant, depth first, as the kernel has them.
    let below = descendants(me);
    let janitor = procs::janitor_pid();
    let rows = rows(me, mine, &below);
    draw(ctx, &rows, janitor);
    // The other threads of this process: pstree shows them in braces.
    let threads = crate::sys::proc::threads(me);
    if threads > 1 {
        let braces = format!("{{{}}}", mine_comm);
        say!(
            ctx,
            "threads",
            &[("n", &(threads - 1)), ("braces", &braces), ("pid", &me)],
        );
    }
    let same_session = rows.iter().all(|(_, _, _, s)| s.sid == sid);
    say!(
        ctx,
        if (same_session) {
            "session"
        } else {
            "sessions"
        },
        &[("sid", &sid)],
    );
    ctx.pause(3000)?;
    shape(ctx, tree, &below, janitor);
    Ok(())
}

/// Up: the parent chain from the main process (`mine`) to PID 1, drawn and observed.
fn ancestors(ctx: &mut Ctx<'_>, mine: &Ids) -> Result<()> {
    let mut chain = vec![(ctx.main_pid, mine.comm.clone())];
    let mut ppid = mine.ppid;
    while ppid > 0 && chain.len() < 64 {
        match crate::sys::proc::ids(ppid) {
            Some(s) => {
                chain.push((ppid, s.comm));
                ppid = s.ppid;
            }
            None => {
                chain.push((ppid, "?".into()));
                break;
            }
        }
    }
    chain.reverse();
    let drawn = chain
        .iter()
        .map(|(pid, comm)| format!("{comm}({pid})"))
        .collect::<Vec<_>>()
        .join(" → ");
    let root = chain.first().map_or(0, |(pid, _)| *pid);
    say!(
        ctx,
        "chain",
        &[("chain", &drawn), ("n", &(chain.len() - 1))]
    );
    ctx.observe(
        "ancestors",
        chain
            .iter()
            .map(|(pid, _)| pid.to_string())
            .collect::<Vec<_>>()
            .join(" → "),
    );
    ctx.observe("root_pid", root);
    ctx.pause(3000)?;
    Ok(())
}

/// A row of the drawn tree: the PID, its depth (0 for the main process), whether it is
/// the last child of its parent, and its ids as `/proc` has them.
type Row = (i32, usize, bool, Ids);

/// The rows: the main process (`me`, `mine`), then each of `below` that `/proc` still has.
fn rows(me: i32, mine: Ids, below: &[(i32, usize)]) -> Vec<Row> {
    let mut rows = vec![(me, 0usize, true, mine)];
    for (i, &(pid, depth)) in below.iter().enumerate() {
        let last = !below[i + 1..]
            .iter()
            .take_while(|&&(_, d)| d >= depth)
            .any(|&(_, d)| d == depth);
        if let Some(s) = crate::sys::proc::ids(pid) {
            rows.push((pid, depth, last, s));
        }
    }
    rows
}

/// Draw `rows` as a table with the branches of `ps --forest`; the janitor by its name.
fn draw(ctx: &mut Ctx<'_>, rows: &[Row], janitor: Option<i32>) {
    let width = rows
        .iter()
        .map(|(pid, _, _, s)| pid.to_string().len().max(s.ppid.to_string().len()))
        .max()
        .unwrap_or(5)
        .max(4);
    say!(
        ctx,
        "tree_header",
        &[
            ("pid", &format!("{:>width$}", "PID")),
            ("ppid", &format!("{:>width$}", "PPID")),
            ("pgid", &format!("{:>width$}", "PGID")),
        ],
    );
    let mut lasts = Vec::new();
    for (pid, depth, last, s) in rows {
        // The branch: for each level above, a bar if that level has more to come.
        lasts.truncate(depth.saturating_sub(1));
        let mut branch = String::new();
        if *depth > 0 {
            for &more in &lasts {
                branch.push_str(if more { "│  " } else { "   " });
            }
            branch.push_str(if *last { "└─ " } else { "├─ " });
            lasts.push(!*last);
        }
        let name = if Some(*pid) == janitor {
            "janitor".to_string()
        } else {
            ctx.name_of(*pid)
        };
        say!(
            ctx,
            "tree_row",
            &[
                ("pid", &format!("{pid:>width$}")),
                ("ppid", &format!("{:>width$}", s.ppid)),
                ("pgid", &format!("{:>width$}", s.pgid)),
                ("stat", &s.state),
                ("branch", &branch),
                ("name", &name),
            ],
        );
    }
}

/// The claims about the tree's shape: four processes below the main one (`below`, but
/// the janitor), each grandchild's parent its child.
fn shape(ctx: &mut Ctx<'_>, tree: &Tree, below: &[(i32, usize)], janitor: Option<i32>) {
    let me = ctx.main_pid;
    let tree_processes = below.iter().filter(|(p, _)| Some(*p) != janitor).count();
    let ppids_ok = tree
        .grandchildren
        .iter()
        .zip(&tree.children)
        .all(|(gc, c)| crate::sys::proc::ids(gc.as_raw()).is_some_and(|s| s.ppid == c.as_raw()));
    let gc_ppids = tree
        .grandchildren
        .iter()
        .map(|gc| {
            crate::sys::proc::ids(gc.as_raw())
                .map_or(-1, |s| s.ppid)
                .to_string()
        })
        .collect::<Vec<_>>()
        .join(", ");
    say!(
        ctx,
        "grandparents",
        &[
            ("gc1", &tree.grandchildren[0]),
            ("c1", &tree.children[0]),
            ("main", &me),
        ],
    );
    ctx.claim(
        "tree_processes",
        tree_processes,
        Expect::eq(4).note("2 children, 2 grandchildren"),
    );
    ctx.claim(
        "grandchild_ppid_is_child",
        ppids_ok,
        Expect::eq(true).note(format!("ppid {gc_ppids}")),
    );
}
