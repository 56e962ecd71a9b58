//! The shell's `tail -f access.log | grep 404`: two real programs joined by a pipe, and
//! the lines read back from `grep` with every wait bounded.

use super::*;
use crate::ctx::{Ctx, Expect, Stopped};
use crate::event::{now_ns, How};
use crate::procs::{self};
use crate::sys::proc::Call;
use crate::{say, step};
use anyhow::{anyhow, bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Lines from a file descriptor, each wait bounded.
pub(super) struct Lines {
    pub(super) fd: OwnedFd,
    pub(super) buf: Vec<u8>,
}

pub(super) enum Got {
    Line(String),
    Eof,
    Timeout,
}

impl Lines {
    pub(super) fn next(&mut self, timeout: Duration) -> Result<Got> {
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
pub(super) fn start_program(
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

pub(super) fn append(log: &Path, line: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    // One write(2) per line, O_APPEND: tail sees whole lines.
    f.write_all(format!("{line}\n").as_bytes())
        .with_context(|| format!("appending to {}", log.display()))
}

/// The pipeline once both programs run: the log `tail` follows, the two processes, grep's
/// output, and the tally of the lines that came out of it.
struct Pipeline {
    log: PathBuf,
    tail: Pid,
    grep: Pid,
    lines: Lines,
    /// grep's lines that were the expected ones, in order.
    matched: usize,
    /// The 404 lines written so far, that grep should pass on.
    expected: usize,
    in_order: bool,
}

impl Pipeline {
    /// grep should pass `line` on next: read its line and count it.
    fn expect_line(&mut self, ctx: &mut Ctx<'_>, line: &str) -> Result<()> {
        self.expected += 1;
        if read_grep_line(ctx, &mut self.lines, self.grep, line)? {
            self.matched += 1;
        } else {
            self.in_order = false;
        }
        Ok(())
    }
}

/// The shell's `tail -f access.log | grep 404`, with the pipe made here.
pub(super) fn shell_pipeline(ctx: &mut Ctx<'_>) -> Result<()> {
    let log = write_log(ctx)?;
    let Some(mut p) = start_pipeline(ctx, log)? else {
        return Ok(());
    };
    backlog(ctx, &mut p)?;
    live(ctx, &mut p)?;
    end_pipeline(ctx, p)
}

/// The log as it is before `tail` starts.
fn write_log(ctx: &mut Ctx<'_>) -> Result<PathBuf> {
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
    Ok(log)
}

/// The pipe made like the shell makes it for `|`, `tail -f` on its write end and grep on
/// its read end. `None` (said) if either program is missing.
fn start_pipeline(ctx: &mut Ctx<'_>, log: PathBuf) -> Result<Option<Pipeline>> {
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
        return Ok(None);
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
        return Ok(None);
    };
    let grep_pid = Pid::from_raw(grep.id() as i32);
    let out: OwnedFd = grep.stdout.take().context("grep's standard output")?.into();
    drop((tail, grep)); // reaped with waitpid below, not by std
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
    Ok(Some(Pipeline {
        log,
        tail: tail_pid,
        grep: grep_pid,
        lines: Lines {
            fd: out,
            buf: Vec::new(),
        },
        matched: 0,
        expected: 0,
        in_order: true,
    }))
}

/// tail first prints the last lines already there; grep lets the 404 ones through, then
/// both sleep: grep in read() on the pipe, tail waiting for the log to grow.
fn backlog(ctx: &mut Ctx<'_>, p: &mut Pipeline) -> Result<()> {
    let (tail_pid, grep_pid) = (p.tail, p.grep);
    for line in LOG_BEFORE.iter().filter(|l| l.contains(PATTERN)) {
        p.expect_line(ctx, line)?;
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
    Ok(())
}

/// Lines appended while both run: each 404 one comes out of grep as it is written.
fn live(ctx: &mut Ctx<'_>, p: &mut Pipeline) -> Result<()> {
    let me = ctx.main_pid;
    // The sentence after the loop is about the appended lines only; `matched` also counts
    // the 404 grep passed on from the lines already in the log.
    let matched_before = p.matched;
    for line in LOG_LIVE {
        ctx.act_at(
            me,
            now_ns(),
            "write",
            &[("file", "access.log".into()), ("line", (*line).into())],
        );
        append(&p.log, line)?;
        if line.contains(PATTERN) {
            p.expect_line(ctx, line)?;
        }
        ctx.pause(1200)?;
    }
    say!(
        ctx,
        "shell_filtered",
        &[
            ("n", &(p.matched - matched_before)),
            ("total", &LOG_LIVE.len()),
        ],
    );
    ctx.show(2000)?;
    Ok(())
}

/// Ctrl-C in a shell signals both; here: end tail, and grep ends by itself at EOF. The
/// claims: every 404 line came out, in order; grep exited 0 at end of file.
fn end_pipeline(ctx: &mut Ctx<'_>, mut p: Pipeline) -> Result<()> {
    let (tail_pid, grep_pid) = (p.tail, p.grep);
    step!(ctx, "shell_end", &[])?;
    say!(ctx, "shell_kill", &[("tail", &tail_pid)]);
    kill(tail_pid, Signal::SIGTERM).context("kill(tail, SIGTERM)")?;
    let tail_code = ctx.join_within(tail_pid, TIMEOUT)?;
    let eof = matches!(p.lines.next(TIMEOUT)?, Got::Eof);
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
        p.matched,
        Expect::eq(p.expected).and("in_order", p.in_order),
    );
    ctx.claim(
        "grep_exit_at_eof",
        grep_code,
        Expect::eq(0).and("eof_seen", eof),
    );
    Ok(())
}

/// Read grep's next output line and check it is `expected`. Emits `read`.
pub(super) fn read_grep_line(
    ctx: &mut Ctx<'_>,
    lines: &mut Lines,
    grep: Pid,
    expected: &str,
) -> Result<bool> {
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
    pub(super) fn objects_print_like_python_dicts() {
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
    pub(super) fn one_way_ends_refuse_the_other_direction() {
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
    pub(super) fn the_log_matches_only_404_lines() {
        for l in LOG_BEFORE.iter().chain(LOG_LIVE) {
            let is_404 = l.contains("\" 404 ");
            assert_eq!(l.contains(PATTERN), is_404, "{l}");
        }
    }
}
