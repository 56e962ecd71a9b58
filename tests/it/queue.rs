//! Lesson `queue`: the observations, and every claim recomputed from the event stream
//! itself (stamps and pids), on the defaults and on other sizes, three times over.

use crate::common;

use common::{lesson_json, max_concurrent, Run};
use serde_json::Value;
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

fn t(e: &Value) -> f64 {
    e["t_ms"].as_f64().unwrap()
}

fn pid(e: &Value) -> i64 {
    e["pid"].as_i64().unwrap()
}

fn item(e: &Value) -> &str {
    e["item"].as_str().unwrap()
}

/// Pids of the processes whose spawn name starts with one of `prefixes`.
fn pids_named(r: &Run, prefixes: &[&str]) -> HashSet<i64> {
    r.of_kind("spawn")
        .into_iter()
        .filter(|e| {
            let name = e["name"].as_str().unwrap();
            prefixes.iter().any(|p| name.starts_with(p))
        })
        .map(pid)
        .collect()
}

fn pid_of(r: &Run, name: &str) -> i64 {
    r.of_kind("spawn")
        .into_iter()
        .find(|e| e["name"] == name)
        .map(pid)
        .unwrap_or_else(|| panic!("no process named {name}\n{}", r.show()))
}

/// Items in the queue at time `at`, from the stamps: puts before it minus gets before it.
fn fill_at(r: &Run, at: f64) -> i64 {
    let before = |kind: &str| r.of_kind(kind).iter().filter(|e| t(e) < at).count() as i64;
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
    assert_eq!(r.obs("maxsize"), &Value::from(m), "{show}");
    assert_eq!(r.obs("produced"), &Value::from(n_items), "{show}");
    assert_eq!(r.obs("consumed"), &Value::from(n_items), "{show}");
    assert_eq!(r.obs("fifo_per_producer"), &Value::from(true), "{show}");
    assert_eq!(
        r.obs("producer_blocked_when_full"),
        &Value::from(true),
        "{show}"
    );
    assert_eq!(r.obs("put_nowait_full_error"), "Full", "{show}");
    assert_eq!(r.obs("get_nowait_empty_error"), "Empty", "{show}");
    assert_eq!(r.obs("join_after_all_done"), &Value::from(true), "{show}");
    assert_eq!(
        r.obs("consumers_blocked_when_empty"),
        &Value::from(true),
        "{show}"
    );
    assert_eq!(
        r.obs("task_done_extra_error"),
        "ValueError: task_done() called too many times",
        "{show}"
    );
    assert_eq!(r.of_kind("lesson_end")[0]["ok"], true, "{show}");

    // Every worker is a spawned (fork + exec) child of the main process, and was reaped.
    let prods = pids_named(r, &["producer"]);
    let conss = pids_named(r, &["consumer", "worker"]);
    assert_eq!(prods.len(), producers + 1, "{show}");
    assert_eq!(conss.len(), consumers * 2, "{show}");
    for s in r.of_kind("spawn") {
        assert_eq!(s["how"], "spawn", "{s}\n{show}");
        assert_eq!(s["ppid"].as_i64(), Some(main), "{s}\n{show}");
    }
    let exits: HashMap<i64, i64> = r
        .of_kind("exit")
        .iter()
        .map(|e| (pid(e), e["exitcode"].as_i64().unwrap()))
        .collect();
    for p in prods.iter().chain(conss.iter()) {
        let workers = pids_named(r, &["worker"]);
        let want = if workers.contains(p) { -15 } else { 0 };
        assert_eq!(exits.get(p), Some(&want), "exit of {p}\n{show}");
    }

    // Puts come from producers, gets and task_done from consumers; none from main.
    let puts = r.of_kind("put");
    let gets = r.of_kind("get");
    for e in &puts {
        assert!(
            prods.contains(&pid(e)),
            "a put not from a producer: {e}\n{show}"
        );
    }
    for e in gets.iter().chain(r.of_kind("task_done").iter()) {
        assert!(conss.contains(&pid(e)), "not from a consumer: {e}\n{show}");
        assert_ne!(pid(e), main, "{show}");
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
        .map(|e| pid(e))
        .collect();
    assert_eq!(none_puts, consumers, "{show}");
    assert_eq!(
        none_getters.iter().collect::<HashSet<_>>().len(),
        consumers,
        "each consumer gets exactly one sentinel\n{show}"
    );

    // Order per producer: its items leave the queue in the order it put them.
    for p in &prods {
        let mut mine: Vec<&Value> = puts.iter().copied().filter(|e| pid(e) == *p).collect();
        mine.sort_by(|a, b| t(a).total_cmp(&t(b)));
        let order: Vec<&str> = mine
            .iter()
            .map(|e| item(e))
            .filter(|&i| i != "None")
            .collect();
        let mut out: Vec<&Value> = gets
            .iter()
            .copied()
            .filter(|e| order.contains(&item(e)))
            .collect();
        out.sort_by(|a, b| t(a).total_cmp(&t(b)));
        let out: Vec<&str> = out.iter().map(|e| item(e)).collect();
        assert_eq!(order, out, "FIFO for producer {p}\n{show}");
    }

    // The queue never held more than maxsize: neither by the size in the events, nor by
    // counting puts and gets from their stamps.
    for e in puts.iter().chain(gets.iter()) {
        let size = e["size"].as_i64().unwrap();
        assert!((0..=m).contains(&size), "size out of range: {e}\n{show}");
    }
    let most = max_concurrent(r, "put", "get");
    assert!(
        most as i64 <= m,
        "{most} items at once > maxsize {m}\n{show}"
    );

    // producer-1 was seen asleep with the queue full, in the put of its last item.
    let p1 = pid_of(r, "producer-1");
    let blocked = r.of_kind("blocked");
    let b1 = blocked
        .iter()
        .find(|e| pid(e) == p1)
        .unwrap_or_else(|| panic!("producer-1 never seen blocked\n{show}"));
    assert_eq!(b1["state"], "S", "{show}");
    assert!(
        b1["syscall"] == "futex" || b1["syscall"] == "?",
        "{b1}\n{show}"
    );
    assert_eq!(
        fill_at(r, t(b1)),
        m,
        "the queue was not full when producer-1 slept\n{show}"
    );
    let put_t = |name: &str| t(puts.iter().find(|e| item(e) == name).unwrap());
    assert!(put_t(&format!("p1.{}", maxsize - 1)) < t(b1), "{show}");
    assert!(t(b1) < put_t(&format!("p1.{maxsize}")), "{show}");
    // Its last put could only finish after a consumer freed a slot.
    let first_get = gets.iter().map(|e| t(e)).fold(f64::MAX, f64::min);
    assert!(put_t(&format!("p1.{maxsize}")) > first_get, "{show}");

    // The consumers were seen asleep with the queue empty: after the last real item was
    // got, before the first sentinel was put. One sleeps in read() holding the reader
    // lock; the others wait for that lock in flock().
    let last_item_got = gets
        .iter()
        .filter(|e| item(e).starts_with('p'))
        .map(|e| t(e))
        .fold(0.0, f64::max);
    let first_sentinel = puts
        .iter()
        .filter(|e| item(e) == "None")
        .map(|e| t(e))
        .fold(f64::MAX, f64::min);
    let plain_consumers = pids_named(r, &["consumer"]);
    let mut calls = Vec::new();
    for c in &plain_consumers {
        let b = blocked
            .iter()
            .find(|e| pid(e) == *c)
            .unwrap_or_else(|| panic!("consumer {c} never seen blocked\n{show}"));
        assert_eq!(b["state"], "S", "{show}");
        assert!(last_item_got < t(b) && t(b) < first_sentinel, "{b}\n{show}");
        assert_eq!(fill_at(r, t(b)), 0, "{show}");
        calls.push(b["syscall"].as_str().unwrap().to_string());
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
    let task_done = r.of_kind("task_done");
    assert_eq!(task_done.len(), maxsize, "{show}");
    let joins = r.of_kind("queue_join");
    assert_eq!(joins.len(), 1, "{show}");
    assert_eq!(pid(joins[0]), boss, "{show}");
    assert_eq!(joins[0]["unfinished"], 0, "{show}");
    let last_done = task_done.iter().map(|e| t(e)).fold(0.0, f64::max);
    assert!(
        t(joins[0]) > last_done,
        "join returned before the last task_done\n{show}"
    );
    let bb = blocked
        .iter()
        .find(|e| pid(e) == boss)
        .unwrap_or_else(|| panic!("the JoinableQueue producer never seen blocked\n{show}"));
    let first_done = task_done.iter().map(|e| t(e)).fold(f64::MAX, f64::min);
    assert!(t(bb) < first_done, "{show}");

    // Every sentence the lesson said exists in its words.
    for s in r.of_kind("say") {
        assert!(
            !s["text"].as_str().unwrap().starts_with('<'),
            "missing words: {s}"
        );
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
    let says = r.of_kind("say");
    assert!(says.len() > 20, "{}", r.show());
    for s in says {
        let text = s["text"].as_str().unwrap();
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
