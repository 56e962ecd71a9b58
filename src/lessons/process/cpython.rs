//! The mistakes only CPython can make, made by CPython: `join()` of a process that was
//! only `run()`, `Process(f)` (where `f` lands in `group`), and the notes' own
//! `args=("lzd")` (a string, so `tuple(args)` gives the target three arguments). A fixed
//! script is written to the run's directory and run by `python3` with its default start
//! method, bounded in time; its results come back as `mp-demo: {json}` lines, and the
//! last line of the failed child's traceback from its standard error. Without `python3`
//! the lesson says so: these cannot be shown here.

use super::*;
use crate::ctx::Expect;
use crate::python_or_say;

/// How long CPython may take before it is given up on (it needs well under a second).
const PYTHON_TIMEOUT: Duration = Duration::from_secs(20);

/// The three lines, and the report of what each did. A file (not `-c`): under spawn and
/// forkserver the child imports the main module to find `print_name`.
const SCRIPT: &str = r#"import json, multiprocessing as mp, sys

def print_name(name):
    print(name)

def report(**kw):
    print("mp-demo:", json.dumps(kw), flush=True)

if __name__ == "__main__":
    report(version=sys.version.split()[0], method=mp.get_start_method())
    p = mp.Process(target=print_name, args=("lzd",))
    p.run()
    try:
        p.join()
    except AssertionError as e:
        report(join=str(e))
    try:
        mp.Process(print_name)
    except AssertionError as e:
        report(group=str(e))
    q = mp.Process(target = print_name,args=("lzd"))
    q.start()
    q.join()
    report(args=q.exitcode)
"#;

/// What the script reported.
#[derive(Default)]
struct Report {
    version: String,
    method: String,
    join: Option<String>,
    group: Option<String>,
    args: Option<i64>,
}

fn parse(stdout: &str) -> Report {
    let mut r = Report::default();
    for line in stdout.lines() {
        let Some(json) = line.strip_prefix("mp-demo: ") else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else {
            continue;
        };
        let text = |k: &str| v.get(k).and_then(|s| s.as_str()).map(String::from);
        if let Some(s) = text("version") {
            r.version = s;
        }
        if let Some(s) = text("method") {
            r.method = s;
        }
        r.join = text("join").or(r.join);
        r.group = text("group").or(r.group);
        r.args = v.get("args").and_then(|c| c.as_i64()).or(r.args);
    }
    r
}

/// The last line of a traceback: the exception (`TypeError: …`).
fn last_line(stderr: &str) -> String {
    stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("?")
        .trim()
        .to_string()
}

/// Run the script in `python3` when it is there, and tell what CPython did.
pub(super) fn mistakes(ctx: &mut Ctx<'_>) -> Result<()> {
    step!(ctx, "mistakes", &[])?;
    let file = ctx.dir.join("process_mistakes.py");
    std::fs::write(&file, SCRIPT).with_context(|| format!("writing {}", file.display()))?;
    let Some(output) = python_or_say!(ctx, &[file.as_os_str()], PYTHON_TIMEOUT, |_, _| {}) else {
        return ctx.show(1500);
    };
    let (pid, code) = (output.pid, output.exitcode);
    let report = parse(&output.stdout);
    let (Some(join), Some(group), Some(args), 0) = (report.join, report.group, report.args, code)
    else {
        say!(
            ctx,
            "python_failed",
            &[("why", &format!("python3 exited with {code}"))]
        );
        return ctx.show(1500);
    };
    say!(
        ctx,
        "python_ran",
        &[
            ("pid", &pid),
            ("version", &report.version),
            ("method", &report.method),
        ],
    );
    ctx.pause(1200)?;
    say!(ctx, "py_join", &[("error", &join)]);
    ctx.observe("join_unstarted_error", join.as_str());
    ctx.pause(1500)?;
    say!(ctx, "py_group", &[("error", &group)]);
    ctx.observe("group_error", group.as_str());
    ctx.pause(1500)?;
    let last = last_line(&output.stderr);
    say!(ctx, "py_args", &[("last", &last), ("code", &args)]);
    ctx.claim("args_str_exitcode", args, Expect::eq(1));
    ctx.show(2500)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_and_the_traceback_are_read() {
        let out = "mp-demo: {\"version\": \"3.11.7\", \"method\": \"fork\"}\nlzd\n\
                   mp-demo: {\"join\": \"can only join a started process\"}\n\
                   mp-demo: {\"args\": 1}\n";
        let r = parse(out);
        assert_eq!((r.version.as_str(), r.method.as_str()), ("3.11.7", "fork"));
        assert_eq!(r.join.as_deref(), Some("can only join a started process"));
        assert_eq!((r.group, r.args), (None, Some(1)));
        let err = "Process Process-2:\nTraceback (most recent call last):\n  File \"x\"\n\
                   TypeError: print_name() takes 1 positional argument but 3 were given\n\n";
        assert!(last_line(err).starts_with("TypeError: print_name()"));
    }
}
