//! Lesson `queue`: the observations, and every claim recomputed from the event stream
//! itself (stamps and pids), on the defaults and on other sizes, three times over.

use crate::common;

use common::{lesson_json, max_concurrent, Act, Ev, How, Run};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// The lesson's named semaphores exist for a fraction of a millisecond, and every run
/// checks that none is left in /dev/shm when it ends: runs of this file take turns, so
/// one run's check never sees another run's semaphore in the middle of its life.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn queue_run(extra: &[&str]) -> Run {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    lesson_json("queue", extra)
}

fn item<'a>(e: &Ev<'a, Act>) -> &'a str {
    e.what().str("item")
}

/// Pids of the processes whose spawn name starts with one of `prefixes`.
fn pids_named(r: &Run, prefixes: &[&str]) -> HashSet<i64> {
    r.spawns()
        .into_iter()
        .filter(|e| prefixes.iter().any(|p| e.name.starts_with(p)))
        .map(|e| e.pid)
        .collect()
}

fn pid_of(r: &Run, name: &str) -> i64 {
    r.spawns()
        .into_iter()
        .find(|e| e.name == name)
        .map(|e| e.pid)
        .unwrap_or_else(|| panic!("no process named {name}\n{}", r.show()))
}

/// Items in the queue at time `at`, from the stamps: puts before it minus gets before it.
fn fill_at(r: &Run, at: f64) -> i64 {
    let before = |kind: &str| r.acts(kind).iter().filter(|e| e.t_ms < at).count() as i64;
    before("put") - before("get")
}

/// Everything the lesson claims, checked from the stream.
fn check(r: &Run, producers: usize, consumers: usize, maxsize: usize) {
    r.assert_code(0);
    let show = r.show();
    let m = maxsize as i64;
    let per = maxsize + 1;
    let n_items = producers * per;
    let main = r.main_pid();

    // The observations, as DESIGN.md names them.
    assert_eq!(r.obs("maxsize"), m, "{show}");
    assert_eq!(r.obs("produced"), n_items, "{show}");
    assert_eq!(r.obs("consumed"), n_items, "{show}");
    assert_eq!(r.obs("fifo_per_producer"), true, "{show}");
    assert_eq!(r.obs("producer_blocked_when_full"), true, "{show}");
    assert_eq!(r.obs("put_nowait_full_error"), "Full", "{show}");
    assert_eq!(r.obs("get_nowait_empty_error"), "Empty", "{show}");
    assert_eq!(r.obs("join_after_all_done"), true, "{show}");
    assert_eq!(r.obs("consumers_blocked_when_empty"), true, "{show}");
    assert_eq!(
        r.obs("task_done_extra_error"),
        "ValueError: task_done() called too many times",
        "{show}"
    );
    assert!(r.end().ok, "{show}");

    // Every worker is a spawned (fork + exec) child of the main process, and was reaped.
    let prods = pids_named(r, &["producer"]);
    let conss = pids_named(r, &["consumer", "worker"]);
    assert_eq!(prods.len(), producers + 1, "{show}");
    assert_eq!(conss.len(), consumers * 2, "{show}");
    for s in r.spawns() {
        assert_eq!(s.how, How::Spawn, "{s}\n{show}");
        assert_eq!(s.ppid, main, "{s}\n{show}");
    }
    let exits: HashMap<i64, i64> = r.exits().iter().map(|e| (e.pid, e.exitcode)).collect();
    for p in prods.iter().chain(conss.iter()) {
        let workers = pids_named(r, &["worker"]);
        let want = if workers.contains(p) { -15 } else { 0 };
        assert_eq!(exits.get(p), Some(&want), "exit of {p}\n{show}");
    }

    // Puts come from producers, gets and task_done from consumers; none from main.
    let puts = r.acts("put");
    let gets = r.acts("get");
    for e in &puts {
        assert!(
            prods.contains(&e.pid),
            "a put not from a producer: {e}\n{show}"
        );
    }
    for e in gets.iter().chain(r.acts("task_done").iter()) {
        assert!(conss.contains(&e.pid), "not from a consumer: {e}\n{show}");
        assert_ne!(e.pid, main, "{show}");
    }

    // Every item put is got exactly once; one sentinel per consumer, each to one consumer.
    let mut put_items: Vec<&str> = puts
        .iter()
        .map(|e| item(e))
        .filter(|&i| i != "None")
        .collect();
    let mut got_items: Vec<&str> = gets
        .iter()
        .map(|e| item(e))
        .filter(|&i| i != "None")
        .collect();
    put_items.sort_unstable();
    got_items.sort_unstable();
    assert_eq!(put_items, got_items, "{show}");
    assert_eq!(put_items.len(), n_items + maxsize, "{show}");
    let none_puts = puts.iter().filter(|e| item(e) == "None").count();
    let none_getters: Vec<i64> = gets
        .iter()
        .filter(|e| item(e) == "None")
        .map(|e| e.pid)
        .collect();
    assert_eq!(none_puts, consumers, "{show}");
    assert_eq!(
        none_getters.iter().collect::<HashSet<_>>().len(),
        consumers,
        "each consumer gets exactly one sentinel\n{show}"
    );

    // Order per producer: its items leave the queue in the order it put them.
    for p in &prods {
        let mut mine: Vec<Ev<Act>> = puts.iter().copied().filter(|e| e.pid == *p).collect();
        mine.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
        let order: Vec<&str> = mine
            .iter()
            .map(|e| item(e))
            .filter(|&i| i != "None")
            .collect();
        let mut out: Vec<Ev<Act>> = gets
            .iter()
            .copied()
            .filter(|e| order.contains(&item(e)))
            .collect();
        out.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
        let out: Vec<&str> = out.iter().map(|e| item(e)).collect();
        assert_eq!(order, out, "FIFO for producer {p}\n{show}");
    }

    // The queue never held more than maxsize: neither by the size in the events, nor by
    // counting puts and gets from their stamps.
    for e in puts.iter().chain(gets.iter()) {
        let size = e.int("size");
        assert!((0..=m).contains(&size), "size out of range: {e}\n{show}");
    }
    let most = max_concurrent(r, "put", "get");
    assert!(
        most as i64 <= m,
        "{most} items at once > maxsize {m}\n{show}"
    );

    // producer-1 was seen asleep with the queue full, in the put of its last item.
    let p1 = pid_of(r, "producer-1");
    let blocked = r.acts("blocked");
    let b1 = blocked
        .iter()
        .find(|e| e.pid == p1)
        .unwrap_or_else(|| panic!("producer-1 never seen blocked\n{show}"));
    assert_eq!(b1.str("state"), "S", "{show}");
    assert!(
        b1.str("syscall") == "futex" || b1.str("syscall") == "?",
        "{b1}\n{show}"
    );
    assert_eq!(
        fill_at(r, b1.t_ms),
        m,
        "the queue was not full when producer-1 slept\n{show}"
    );
    let put_t = |name: &str| puts.iter().find(|e| item(e) == name).unwrap().t_ms;
    assert!(put_t(&format!("p1.{}", maxsize - 1)) < b1.t_ms, "{show}");
    assert!(b1.t_ms < put_t(&format!("p1.{maxsize}")), "{show}");
    // Its last put could only finish after a consumer freed a slot.
    let first_get = gets.iter().map(|e| e.t_ms).fold(f64::MAX, f64::min);
    assert!(put_t(&format!("p1.{maxsize}")) > first_get, "{show}");

    // The consumers were seen asleep with the queue empty: after the last real item was
    // got, before the first sentinel was put. One sleeps in read() holding the reader
    // lock; the others wait for that lock in flock().
    let last_item_got = gets
        .iter()
        .filter(|e| item(e).starts_with('p'))
        .map(|e| e.t_ms)
        .fold(0.0, f64::max);
    let first_sentinel = puts
        .iter()
        .filter(|e| item(e) == "None")
        .map(|e| e.t_ms)
        .fold(f64::MAX, f64::min);
    let plain_consumers = pids_named(r, &["consumer"]);
    let mut calls = Vec::new();
    for c in &plain_consumers {
        let b = blocked
            .iter()
            .find(|e| e.pid == *c)
            .unwrap_or_else(|| panic!("consumer {c} never seen blocked\n{show}"));
        assert_eq!(b.str("state"), "S", "{show}");
        assert!(
            last_item_got < b.t_ms && b.t_ms < first_sentinel,
            "{b}\n{show}"
        );
        assert_eq!(fill_at(r, b.t_ms), 0, "{show}");
        calls.push(b.str("syscall").to_string());
    }
    if !calls.contains(&"?".to_string()) {
        assert_eq!(
            calls.iter().filter(|c| *c == "read").count(),
            1,
            "{calls:?}\n{show}"
        );
        assert_eq!(
            calls.iter().filter(|c| *c == "flock").count(),
            consumers - 1,
            "{calls:?}\n{show}"
        );
    }

    // JoinableQueue: join() slept while tasks were unfinished and returned only after
    // the last task_done().
    let boss = pid_of(r, "producer");
    let task_done = r.acts("task_done");
    assert_eq!(task_done.len(), maxsize, "{show}");
    let joins = r.acts("queue_join");
    assert_eq!(joins.len(), 1, "{show}");
    assert_eq!(joins[0].pid, boss, "{show}");
    assert_eq!(joins[0].int("unfinished"), 0, "{show}");
    let last_done = task_done.iter().map(|e| e.t_ms).fold(0.0, f64::max);
    assert!(
        joins[0].t_ms > last_done,
        "join returned before the last task_done\n{show}"
    );
    let bb = blocked
        .iter()
        .find(|e| e.pid == boss)
        .unwrap_or_else(|| panic!("the JoinableQueue producer never seen blocked\n{show}"));
    let first_done = task_done.iter().map(|e| e.t_ms).fold(f64::MAX, f64::min);
    assert!(bb.t_ms < first_done, "{show}");

    // Every sentence the lesson said exists in its words.
    for s in r.says() {
        assert!(!s.text.starts_with('<'), "missing words: {s}");
    }
}

#[test]
fn defaults_hold_every_claim_three_times() {
    for _ in 0..3 {
        let r = queue_run(&[]);
        check(&r, 2, 2, 2);
    }
}

#[test]
fn other_sizes_hold_too() {
    for (p, c, m) in [(1, 3, 1), (4, 1, 8), (3, 4, 3)] {
        let (ps, cs, ms) = (p.to_string(), c.to_string(), m.to_string());
        let r = queue_run(&["--producers", &ps, "--consumers", &cs, "--maxsize", &ms]);
        check(&r, p, c, m);
    }
}

#[test]
fn chinese_words_are_complete() {
    let r = queue_run(&["--lang", "zh"]);
    r.assert_code(0);
    let says = r.says();
    assert!(says.len() > 20, "{}", r.show());
    for s in says {
        let text = &s.text;
        assert!(!text.starts_with('<'), "missing words: {s}");
        assert!(
            text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
            "{s}"
        );
    }
}

#[test]
fn out_of_range_options_are_usage_errors() {
    for args in [
        ["--producers", "0"],
        ["--producers", "5"],
        ["--consumers", "0"],
        ["--consumers", "5"],
        ["--maxsize", "0"],
        ["--maxsize", "9"],
    ] {
        let mut all = vec!["--speed", "0", "--json", "queue"];
        all.extend_from_slice(&args);
        common::run(&all).assert_code(2);
    }
}

#[test]
fn the_human_narration_runs_too() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let r = common::run(&["--speed", "0", "--color", "never", "queue"]);
    r.assert_code(0);
    for word in [
        "queue.Full",
        "queue.Empty",
        "ValueError",
        "put_nowait_full_error",
    ] {
        assert!(r.stdout.contains(word), "{word} missing\n{}", r.show());
    }
}
