//! `--trace FILE`: the run as Chrome trace events, to open in Perfetto or
//! `chrome://tracing`. One track per real PID, named by its role; a span for every state
//! the kernel reported; an instant for every spawn, exit, narration line and lesson event
//! (send, receive, acquire, release…).

use super::Render;
use crate::event::{Event, Kind};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{self, Write};

pub struct Trace<W: Write + Send> {
    out: Option<W>,
    /// The first lesson's start: time zero of the trace.
    t0_ns: Option<u64>,
    lesson: String,
    events: Vec<Value>,
    /// The open state span of each pid: (letter, since µs).
    open: BTreeMap<i32, (String, f64)>,
    named: BTreeMap<i32, String>,
}

impl<W: Write + Send> Trace<W> {
    pub fn new(out: W) -> Self {
        Trace {
            out: Some(out),
            t0_ns: None,
            lesson: String::new(),
            events: Vec::new(),
            open: BTreeMap::new(),
            named: BTreeMap::new(),
        }
    }

    fn us(&self, t_ns: u64) -> f64 {
        (t_ns as i128 - self.t0_ns.unwrap_or(t_ns) as i128) as f64 / 1e3
    }

    fn name_track(&mut self, pid: i32, name: &str) {
        if self.named.get(&pid).is_some_and(|n| n == name) {
            return;
        }
        self.named.insert(pid, name.to_string());
        let label = format!("{name} {pid} ({})", self.lesson);
        for (meta, key) in [("process_name", "name"), ("thread_name", "name")] {
            self.events.push(json!({
                "ph": "M", "name": meta, "pid": pid, "tid": pid, "args": { key: label },
            }));
        }
    }

    fn close_span(&mut self, pid: i32, at: f64) {
        if let Some((state, since)) = self.open.remove(&pid) {
            self.events.push(json!({
                "ph": "X", "name": state_name(&state), "cat": "state",
                "pid": pid, "tid": pid, "ts": since, "dur": (at - since).max(0.0),
                "args": { "state": state },
            }));
        }
    }

    fn instant(&mut self, pid: i32, ts: f64, name: &str, cat: &str, args: Value) {
        self.events.push(json!({
            "ph": "i", "s": "t", "name": name, "cat": cat,
            "pid": pid, "tid": pid, "ts": ts, "args": args,
        }));
    }
}

fn state_name(letter: &str) -> &'static str {
    match letter {
        "R" => "R running",
        "S" => "S sleeping",
        "D" => "D disk wait",
        "T" | "t" => "T stopped",
        "Z" => "Z zombie",
        _ => "other",
    }
}

impl<W: Write + Send> Render for Trace<W> {
    fn event(&mut self, ev: &Event) -> io::Result<()> {
        if self.t0_ns.is_none() {
            self.t0_ns = Some(ev.t_ns);
        }
        let ts = self.us(ev.t_ns);
        let pid = ev.pid;
        match &ev.kind {
            Kind::LessonStart { lesson, title } => {
                self.lesson = lesson.clone();
                self.named.remove(&pid);
                self.name_track(pid, "main");
                self.events.push(json!({
                    "ph": "i", "s": "g", "name": format!("lesson {lesson}"), "cat": "lesson",
                    "pid": pid, "tid": pid, "ts": ts, "args": { "title": title },
                }));
            }
            Kind::Spawn { ppid, name, how } => {
                self.name_track(pid, name);
                self.instant(
                    pid,
                    ts,
                    "spawn",
                    "process",
                    json!({ "ppid": ppid, "how": how.as_str() }),
                );
            }
            Kind::State { name, to, .. } => {
                self.name_track(pid, name);
                self.close_span(pid, ts);
                self.open.insert(pid, (to.clone(), ts));
            }
            Kind::Exit {
                exitcode,
                reaped_by,
                ..
            } => {
                self.close_span(pid, ts);
                self.instant(
                    pid,
                    ts,
                    "exit",
                    "process",
                    json!({ "exitcode": exitcode, "reaped_by": reaped_by }),
                );
            }
            Kind::Say { key, text, .. } => {
                self.instant(pid, ts, key, "say", json!({ "text": text }));
            }
            Kind::Step { n, title, .. } => {
                self.events.push(json!({
                    "ph": "i", "s": "g", "name": format!("step {n}: {title}"), "cat": "step",
                    "pid": pid, "tid": pid, "ts": ts,
                }));
            }
            Kind::Observation {
                name, value, holds, ..
            } => {
                self.instant(
                    pid,
                    ts,
                    name,
                    "observation",
                    json!({ "value": value.to_json(), "holds": holds }),
                );
            }
            Kind::LessonEnd { ok, .. } => {
                let pids: Vec<i32> = self.open.keys().copied().collect();
                for p in pids {
                    self.close_span(p, ts);
                }
                self.instant(pid, ts, "lesson_end", "lesson", json!({ "ok": ok }));
            }
            Kind::Act { act, fields } if act == "gauge" => {
                // A counter track: the quantity over time.
                let get = |k: &str| {
                    fields
                        .iter()
                        .find(|(n, _)| n == k)
                        .map(|(_, v)| v.to_json())
                };
                let name = get("gauge").and_then(|v| v.as_str().map(String::from));
                self.events.push(json!({
                    "ph": "C", "name": name.unwrap_or_default(), "pid": pid, "ts": ts,
                    "args": { "value": get("value"), "max": get("max") },
                }));
            }
            Kind::Act { act, fields } => {
                let args: serde_json::Map<String, Value> = fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect();
                self.instant(pid, ts, act, "act", Value::Object(args));
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        let Some(mut out) = self.out.take() else {
            return Ok(());
        };
        let doc = json!({ "traceEvents": self.events, "displayTimeUnit": "ms" });
        serde_json::to_writer(&mut out, &doc)?;
        out.write_all(b"\n")?;
        out.flush()
    }
}
