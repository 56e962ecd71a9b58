//! Lesson `pipe`: the claims, and the same claims recomputed from the event stream:
//! every object received was sent before, by the other process, in order; the reader was
//! seen asleep before anything was sent to it; the raw pipe's end of file came only after
//! the parent closed its write end; grep let through exactly the 404 lines, in order.

use crate::common;

use common::{Act, Ev, How, Run};

/// The pid of the process started as `name` the way `how`.
fn spawned(r: &Run, name: &str, how: How) -> i64 {
    let found: Vec<i64> = r
        .spawns()
        .iter()
        .filter(|e| e.name == name && e.how == how)
        .map(|e| e.pid)
        .collect();
    assert_eq!(found.len(), 1, "one {how:?} named {name}\n{}", r.show());
    found[0]
}

fn exitcode(r: &Run, pid: i64) -> i64 {
    let exit = r.exit_of(pid);
    assert_eq!(exit.reaped_by, r.main_pid());
    exit.exitcode
}

/// Objects on `channel`: each `recv` matches an earlier `send` of the same object, from
/// the process it names, to the process that received it.
fn check_objects<'a>(r: &'a Run, channel: &str) -> (Vec<Ev<'a, Act>>, Vec<Ev<'a, Act>>) {
    let sends: Vec<Ev<Act>> = r
        .acts("send")
        .into_iter()
        .filter(|e| e.str("channel") == channel)
        .collect();
    let mut recvs: Vec<Ev<Act>> = r
        .acts("recv")
        .into_iter()
        .filter(|e| e.str("channel") == channel)
        .collect();
    recvs.sort_by(|a, b| a.t_ms.partial_cmp(&b.t_ms).unwrap());
    assert_eq!(
        sends.len(),
        recvs.len(),
        "{channel}: as many recv as send\n{}",
        r.show()
    );
    for rv in &recvs {
        let s = sends
            .iter()
            .find(|s| s.str("obj") == rv.str("obj") && s.int("to") == rv.pid)
            .unwrap_or_else(|| panic!("{channel}: recv without a send: {rv}\n{}", r.show()));
        assert_eq!(
            s.pid,
            rv.int("from"),
            "sent by the process recv names: {rv}"
        );
        assert_ne!(s.pid, rv.pid, "an object crosses between processes: {rv}");
        assert!(s.t_ms < rv.t_ms, "sent before received: {s} {rv}");
    }
    (sends, recvs)
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

fn check_run(r: &Run, messages: usize) {
    r.assert_code(0);
    let main = r.main_pid();
    assert_eq!(r.obs("duplex_roundtrip"), true, "{}", r.show());
    assert_eq!(r.obs("simplex_ok"), true, "{}", r.show());
    assert_eq!(r.obs("eof_after_close"), true, "{}", r.show());
    assert_eq!(r.obs("reader_blocked_state"), "S", "{}", r.show());

    // Duplex: one object to the child, one back, between the main process and the child.
    let child = spawned(r, "child", How::Spawn);
    let (sends, recvs) = check_objects(r, "duplex");
    assert_eq!(sends.len(), 2, "{}", r.show());
    assert_eq!(recvs[0].pid, child);
    assert_eq!(recvs[1].pid, main);
    assert!(
        recvs[1].str("obj").contains("'args': [12]"),
        "the child's answer is the sum 3 + 4 + 5: {}",
        recvs[1]
    );
    assert_eq!(exitcode(r, child), 0);

    // One way: every object from the main process to the reader, in order.
    let reader = spawned(r, "reader", How::Spawn);
    let (sends, recvs) = check_objects(r, "simplex");
    assert_eq!(recvs.len(), messages, "{}", r.show());
    assert!(sends.iter().all(|s| s.pid == main && s.int("to") == reader));
    let ids: Vec<i64> = recvs.iter().map(|e| e.int("id")).collect();
    assert_eq!(ids, (1..=messages as i64).collect::<Vec<_>>(), "FIFO order");
    // The reader was seen asleep in recv before the first object was sent.
    let first_send = sends.iter().map(|s| s.t_ms).fold(f64::INFINITY, f64::min);
    let blocked = r
        .says()
        .into_iter()
        .find(|e| e.key == "simplex_blocked")
        .unwrap_or_else(|| panic!("the reader was never seen blocked\n{}", r.show()));
    assert!(
        blocked.t_ms < first_send,
        "seen asleep before anything was sent"
    );
    assert!(
        r.states()
            .iter()
            .any(|e| e.pid == reader && e.to == "S" && e.t_ms < first_send),
        "a state event shows the reader asleep before the first send\n{}",
        r.show()
    );
    assert_eq!(exitcode(r, reader), 0);

    // The raw pipe: the bytes written arrive; EOF only after the parent's close.
    let writer = spawned(r, "writer", How::Fork);
    let raw_reader = spawned(r, "reader", How::Fork);
    let writes: Vec<Ev<Act>> = r
        .acts("write")
        .into_iter()
        .filter(|e| e.pid == writer)
        .collect();
    assert_eq!(writes.len(), 1, "{}", r.show());
    let reads: Vec<Ev<Act>> = r
        .acts("read")
        .into_iter()
        .filter(|e| e.pid == raw_reader)
        .collect();
    let data: Vec<&Ev<Act>> = reads.iter().filter(|e| !e.has("eof")).collect();
    let eofs: Vec<&Ev<Act>> = reads
        .iter()
        .filter(|e| e.has("eof") && e.bool("eof"))
        .collect();
    let bytes: i64 = data.iter().map(|e| e.int("bytes")).sum();
    assert_eq!(bytes, writes[0].int("bytes"), "every byte arrived");
    assert_eq!(eofs.len(), 1, "one end of file\n{}", r.show());
    let closes: Vec<Ev<Act>> = r
        .acts("close")
        .into_iter()
        .filter(|e| e.pid == main && e.str("end") == "write")
        .collect();
    assert_eq!(closes.len(), 1, "{}", r.show());
    let last_data = data.iter().map(|e| e.t_ms).fold(0.0, f64::max);
    assert!(eofs[0].t_ms > closes[0].t_ms, "EOF only after the close");
    assert!(
        closes[0].t_ms - last_data >= 100.0,
        "the reader waited (the staged hang) before the close: {} ms",
        closes[0].t_ms - last_data
    );
    assert_eq!(exitcode(r, writer), 0);
    assert_eq!(exitcode(r, raw_reader), 0);

    // tail -f access.log | grep 404, when both programs are installed.
    if !(on_path("tail") && on_path("grep")) {
        return;
    }
    let tail = spawned(r, "tail", How::Spawn);
    let grep = spawned(r, "grep", How::Spawn);
    let logged: Vec<Ev<Act>> = r
        .acts("write")
        .into_iter()
        .filter(|e| e.pid == main && e.str("file") == "access.log")
        .collect();
    let passed: Vec<Ev<Act>> = r
        .acts("read")
        .into_iter()
        .filter(|e| e.pid == main && e.int("from") == grep)
        .collect();
    assert!(
        logged.len() > passed.len() && !passed.is_empty(),
        "{}",
        r.show()
    );
    assert!(passed.iter().all(|e| e.str("line").contains("404")));
    // Every 404 line appended while the pipeline ran came out of grep, in order, after
    // it was written.
    let live_404: Vec<&Ev<Act>> = logged
        .iter()
        .filter(|e| e.str("line").contains("404"))
        .collect();
    let tail_of_passed = &passed[passed.len() - live_404.len()..];
    for (w, p) in live_404.iter().zip(tail_of_passed) {
        assert_eq!(w.str("line"), p.str("line"));
        assert!(w.t_ms < p.t_ms, "written before grep passed it on");
    }
    assert_eq!(r.obs("pipeline_lines").as_i64(), Some(passed.len() as i64));
    assert_eq!(exitcode(r, tail), -15, "tail ended by SIGTERM");
    assert_eq!(exitcode(r, grep), 0, "grep ended by itself at EOF");
    assert_eq!(r.obs("grep_exit_at_eof"), 0);
}

#[test]
fn objects_eof_and_the_pipeline_every_run() {
    for messages in [1usize, 3, 7] {
        let n = messages.to_string();
        let r = common::lesson_json("pipe", &["--messages", &n]);
        check_run(&r, messages);
    }
}

#[test]
fn every_process_is_reaped_and_every_spawn_ends() {
    let r = common::lesson_json("pipe", &[]);
    r.assert_code(0);
    for s in r.spawns() {
        exitcode(&r, s.pid);
    }
}

#[test]
fn out_of_range_options_exit_2() {
    for bad in ["0", "51", "many"] {
        let r = common::run(&["--speed", "0", "--json", "pipe", "--messages", bad]);
        r.assert_code(2);
    }
}
