//! `--trace FILE`: the run as Chrome trace events, to open in Perfetto or
//! `chrome://tracing`. One track per real PID, named by its role; a span for every state
//! the kernel reported; an instant for every spawn, exit, narration line and lesson event
//! (send, receive, acquire, release…); a flow arrow from parent to child at each spawn
//! and from each `send` to the `recv` of the same message; each gauge one counter track
//! of its lesson's main process.
//!
//! Chrome's JSON Array Format, streamed: `[`, then each event on its own line as soon as
//! it is made, then `]` at the end. A run killed on the way (SIGKILL) leaves every event
//! rendered so far, which Perfetto and `chrome://tracing` load without the closing
//! bracket; a run whose narration was cut short (`| head -1`) still ends it.

use super::Render;
use crate::event::{Event, Kind};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{self, Write};

pub struct Trace<W: Write + Send> {
    out: Option<W>,
    /// Whether `[` and a first event are written: the next one needs a comma.
    begun: bool,
    /// The current lesson's main process: its gauges' track.
    main: i32,
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
            begun: false,
            main: 0,
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

    /// Write out what is made so far, one event a line, and hand it to the kernel (so
    /// that a SIGKILL keeps it).
    fn write_out(&mut self) -> io::Result<()> {
        let Some(out) = self.out.as_mut() else {
            self.events.clear();
            return Ok(());
        };
        if self.events.is_empty() {
            return Ok(());
        }
        for ev in self.events.drain(..) {
            out.write_all(if self.begun { b",\n" } else { b"[\n" })?;
            self.begun = true;
            serde_json::to_writer(&mut *out, &ev)?;
        }
        out.flush()
    }

    /// A flow arrow's end (`s` its start, `f` its finish) at `pid`, `ts`.
    fn flow(&mut self, ph: &str, pid: i32, ts: f64, name: &str, id: &str) {
        self.events.push(json!({
            "ph": ph, "name": name, "cat": "flow", "id": id, "bp": "e",
            "pid": pid, "tid": pid, "ts": ts,
        }));
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
            Kind::LessonStart { lesson, title, .. } => {
                self.lesson = lesson.clone();
                self.main = pid;
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
                // Parent → child (ids carry the lesson: a PID may come again in a tour).
                let id = format!("{}-spawn-{pid}", self.lesson);
                self.flow("s", *ppid, ts, "spawn", &id);
                self.flow("f", pid, ts, "spawn", &id);
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
            Kind::Pause { step, .. } => {
                self.instant(
                    pid,
                    ts,
                    &format!("pause {step}"),
                    "step",
                    json!({ "step": step }),
                );
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
            // The tour's frame (under `--json`): its lessons are in the trace already.
            Kind::TourStart { .. } | Kind::TourEnd { .. } => {}
            Kind::Act { act, fields } if act == "gauge" => {
                // A counter track: the quantity over time.
                let get = |k: &str| {
                    fields
                        .iter()
                        .find(|(n, _)| n == k)
                        .map(|(_, v)| v.to_json())
                };
                let name = get("gauge").and_then(|v| v.as_str().map(String::from));
                // One level, whoever changed it (each worker's own track would show
                // each worker's last word): on the lesson's main process.
                self.events.push(json!({
                    "ph": "C", "name": name.unwrap_or_default(), "pid": self.main, "ts": ts,
                    "args": { "value": get("value"), "max": get("max") },
                }));
            }
            Kind::Act { act, fields } => {
                let args: serde_json::Map<String, Value> = fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect();
                let id = args.get("id").map(|v| v.to_string());
                let from = args.get("from").map(|v| v.to_string());
                let channel = args.get("channel").and_then(Value::as_str).unwrap_or("");
                // A message from its `send` to its `recv`: the same `id` from the same
                // sender on the same channel (each sender numbers its own, per channel).
                let key = format!("{}-msg-{channel}", self.lesson);
                self.instant(pid, ts, act, "act", Value::Object(args));
                let flow = match (act.as_str(), id, from) {
                    ("send", Some(id), _) => Some(("s", format!("{key}-{pid}-{id}"))),
                    ("recv", Some(id), Some(from)) => Some(("f", format!("{key}-{from}-{id}"))),
                    _ => None,
                };
                if let Some((ph, id)) = flow {
                    self.flow(ph, pid, ts, "message", &id);
                }
            }
        }
        self.write_out()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_out()
    }

    fn finish(&mut self) -> io::Result<()> {
        self.write_out()?;
        let Some(mut out) = self.out.take() else {
            return Ok(());
        };
        out.write_all(if self.begun { b"\n]\n" } else { b"[]\n" })?;
        out.flush()
    }
}
