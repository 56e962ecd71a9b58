//! The `Event`: the one thing every part of mp-demo speaks.
//!
//! Lessons, child processes and the observer all emit events; renderers turn them into
//! coloured narration, JSON Lines, timelines or traces. An event is stamped with
//! `CLOCK_MONOTONIC` where it happened (in the child, for a child's event), so ordering
//! across processes is the kernel's, not the order in which messages arrived.
//!
//! Events cross process boundaries through ipc-channel, which encodes with postcard: so the
//! enum is externally tagged (postcard cannot decode internally tagged or untagged enums)
//! and nothing is skipped when serialising. The JSON shape of DESIGN.md's contract is made
//! from it by [`Event::to_json`].

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

/// The version of the `--json` stream's shape, carried by every `lesson_start` as
/// `schema`. `docs/events.md` ("The schema version") says what changes bump it.
pub const SCHEMA: u32 = 1;

/// Nanoseconds on `CLOCK_MONOTONIC`: the same clock in every process of the machine.
pub fn now_ns() -> u64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always available");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

/// How a process was started: a bare `fork()` (a copy of the parent) or a spawn
/// (fork + exec of a fresh program, as Python's `spawn` start method and Windows'
/// `CreateProcess` do).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum How {
    Fork,
    Spawn,
}

impl How {
    pub fn as_str(self) -> &'static str {
        match self {
            How::Fork => "fork",
            How::Spawn => "spawn",
        }
    }
}

/// One thing that happened, to or in one process.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// `CLOCK_MONOTONIC` in nanoseconds, taken where the event happened.
    pub t_ns: u64,
    /// The process the event is about.
    pub pid: i32,
    pub kind: Kind,
}

impl Kind {
    /// A quantity of the lesson as it now stands (`act = "gauge"`: tasks done, items in a
    /// queue, free permits), reported by the process `name`: a bar in the live panel.
    pub fn gauge(name: &str, gauge: &str, value: i64, max: i64) -> Kind {
        Kind::Act {
            act: "gauge".into(),
            fields: vec![
                ("name".into(), name.into()),
                ("gauge".into(), gauge.into()),
                ("value".into(), value.into()),
                ("max".into(), max.into()),
            ],
        }
    }
}

impl Event {
    /// An event stamped now.
    pub fn now(pid: i32, kind: Kind) -> Event {
        Event {
            t_ns: now_ns(),
            pid,
            kind,
        }
    }

    /// The JSON Lines object of DESIGN.md's contract: `t_ms` (since `t0_ns`, microsecond
    /// precision), `lesson`, `kind`, `pid`, then the kind's own fields. `null` fields are
    /// left out.
    pub fn to_json(&self, lesson: &str, t0_ns: u64) -> Value {
        let mut obj = Map::new();
        let t_ms = (self.t_ns as i128 - t0_ns as i128) as f64 / 1e6;
        obj.insert("t_ms".into(), json_number((t_ms * 1000.0).round() / 1000.0));
        obj.insert("lesson".into(), Value::from(lesson));
        let (kind, fields) = match &self.kind {
            Kind::Observation {
                name,
                value,
                expected,
                claim,
                holds,
            } => {
                let mut fields = Map::new();
                fields.insert("name".into(), Value::from(name.as_str()));
                fields.insert("value".into(), value.to_json());
                if let Some(e) = expected {
                    fields.insert("expected".into(), Value::from(e.as_str()));
                }
                if let Some(c) = claim {
                    fields.insert("claim".into(), c.to_json());
                }
                if let Some(h) = holds {
                    fields.insert("holds".into(), Value::from(*h));
                }
                ("observation".to_string(), fields)
            }
            Kind::Act { act, fields } => (
                act.clone(),
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect::<Map<_, _>>(),
            ),
            other => match serde_json::to_value(other).expect("events always serialise") {
                Value::String(kind) => (kind, Map::new()),
                Value::Object(outer) => {
                    let (kind, inner) = outer.into_iter().next().expect("one variant");
                    match inner {
                        Value::Object(fields) => (kind, fields),
                        _ => (kind, Map::new()),
                    }
                }
                _ => unreachable!("an externally tagged enum is a string or an object"),
            },
        };
        // The version of this JSON shape, which is the contract (the postcard form that
        // crosses ipc-channel is the program's own): so it is added here, where the shape
        // is made, and not carried by every `lesson_start` across processes.
        let start = kind == "lesson_start";
        obj.insert("kind".into(), Value::from(kind));
        obj.insert("pid".into(), Value::from(self.pid));
        if start {
            obj.insert("schema".into(), Value::from(SCHEMA));
        }
        for (k, v) in fields {
            if !v.is_null() {
                obj.insert(k, v);
            }
        }
        Value::Object(obj)
    }
}

/// The kinds of [`Kind`] other than [`Kind::Act`], by their names in the stream (the
/// schema's test holds it to the enum).
pub const CORE_KINDS: &[&str] = &[
    "lesson_start",
    "spawn",
    "state",
    "exit",
    "say",
    "step",
    "pause",
    "observation",
    "lesson_end",
    "tour_start",
    "tour_end",
];

impl Event {
    /// The event a line of the stream is ([`Event::to_json`]'s inverse), and its
    /// lesson: stamped at `t0_ns` plus its `t_ms` (to the microsecond the stream keeps).
    /// A kind that is not a core kind is a lesson's own ([`Kind::Act`]), its fields in
    /// the order of the line.
    pub fn from_json(line: &Value, t0_ns: u64) -> Result<(String, Event), String> {
        let Value::Object(obj) = line else {
            return Err("not a JSON object".into());
        };
        let t_ms = obj.get("t_ms").and_then(Value::as_f64).ok_or("no `t_ms`")?;
        let lesson = obj
            .get("lesson")
            .and_then(Value::as_str)
            .ok_or("no `lesson`")?;
        let kind = obj.get("kind").and_then(Value::as_str).ok_or("no `kind`")?;
        let pid = obj
            .get("pid")
            .and_then(Value::as_i64)
            .and_then(|p| i32::try_from(p).ok())
            .ok_or("no `pid`")?;
        let micros = (t_ms * 1000.0).round() as i64;
        let t_ns = (t0_ns as i64 + micros * 1000).max(0) as u64;
        let body = if CORE_KINDS.contains(&kind) {
            // Every field but the common ones, the lesson too (`lesson_start` has it).
            let fields: Map<String, Value> = obj
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "t_ms" | "kind" | "pid"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            // A claim is written in its own shape ([`Criterion::to_json`]), not serde's.
            let mut fields = fields;
            let claim = match fields.remove("claim") {
                Some(c) => Some(Criterion::from_json(&c)?),
                None => None,
            };
            let mut tagged = Map::new();
            tagged.insert(kind.to_string(), Value::Object(fields));
            let mut body = serde_json::from_value::<Kind>(Value::Object(tagged))
                .map_err(|e| format!("a `{kind}` event that does not fit its kind: {e}"))?;
            if let Kind::Observation { claim: c, .. } = &mut body {
                *c = claim;
            }
            body
        } else {
            let fields = obj
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "t_ms" | "lesson" | "kind" | "pid"))
                .map(|(k, v)| {
                    let value = match v {
                        Value::Bool(b) => ObsValue::Bool(*b),
                        Value::Number(n) if n.is_i64() => ObsValue::Int(n.as_i64().unwrap_or(0)),
                        Value::Number(n) => ObsValue::Float(n.as_f64().unwrap_or(f64::NAN)),
                        Value::String(s) => ObsValue::Str(s.clone()),
                        _ => return Err(format!("`{kind}`'s field `{k}` is not a scalar")),
                    };
                    Ok((k.clone(), value))
                })
                .collect::<Result<_, String>>()?;
            Kind::Act {
                act: kind.to_string(),
                fields,
            }
        };
        Ok((
            lesson.to_string(),
            Event {
                t_ns,
                pid,
                kind: body,
            },
        ))
    }
}

fn json_number(x: f64) -> Value {
    serde_json::Number::from_f64(x)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// What happened. The core kinds of DESIGN.md, plus [`Kind::Act`] for the kinds a lesson
/// adds (`acquire`, `release`, `send`, `recv`, `put`, `get`, `task_start`, …). Its doc
/// comments are the descriptions of `docs/events.schema.json` (see `crate::schema`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The lesson begins; `pid` is the main process. `lang` is the language of its
    /// narration (`en`, `zh`): what a replay of the stream renders it in. `janitor` is
    /// mp-demo's cleanup helper, a child of the main process that `pstree` shows.
    LessonStart {
        lesson: String,
        title: String,
        #[schemars(extend("enum" = ["en", "zh"]))]
        lang: String,
        janitor: Option<i32>,
    },
    /// A process was started by `ppid`.
    Spawn { ppid: i32, name: String, how: How },
    /// The kernel's state letter of a process changed (read from `/proc/<pid>/stat`).
    /// `waiting_in` is the kernel function a sleeping process is blocked in
    /// (`/proc/<pid>/wchan`, e.g. `pipe_read`, `do_wait`), when the kernel tells.
    State {
        name: String,
        from: String,
        to: String,
        waiting_in: Option<String>,
    },
    /// A process ended and was reaped. `exitcode` follows Python: the exit status, or
    /// `-N` when signal N ended it.
    Exit {
        name: String,
        exitcode: i32,
        reaped_by: i32,
    },
    /// A narration line, in the chosen language. `python` and `syscall` name the Python
    /// line and the system call where they happen.
    Say {
        key: String,
        text: String,
        python: Option<String>,
        syscall: Option<String>,
    },
    /// A step boundary: a title, and a command a student may run to see it from outside.
    Step {
        n: u32,
        key: String,
        title: String,
        hint: Option<String>,
    },
    /// The pause of step `step`, once its action has made what the step's hint names:
    /// the human view prints the hint here; `waits` when the run waits here for a key
    /// (`--step`), so that the next event came after a person's wait.
    Pause { step: u32, waits: bool },
    /// Something the lesson measured, and whether it agrees with the lesson's claim
    /// (`holds` is absent for values that claim nothing).
    Observation {
        name: String,
        value: ObsValue,
        expected: Option<String>,
        /// The claim as data (`expected` is its prose): `holds` is `value <op> target`
        /// and every `and` true, which anyone can recompute from the line alone.
        claim: Option<Criterion>,
        holds: Option<bool>,
    },
    /// The lesson is over: `ok` is true when every claim held. A run that failed or was
    /// stopped ends too, `ok` false, with `error` (the one-line message) or `signal`
    /// (`SIGINT`, `SIGTERM`, `SIGHUP`, or `q` for the person's quiet stop).
    LessonEnd {
        ok: bool,
        elapsed_ms: f64,
        error: Option<String>,
        #[schemars(extend("enum" = ["SIGINT", "SIGTERM", "SIGHUP", "q"]))]
        signal: Option<String>,
    },
    /// `mp-demo tour --json`: the tour begins, with the lessons it will run, in order.
    /// Its `lesson` in JSON is `tour`, its `t_ms` 0 (the tour's own clock).
    TourStart { lessons: Vec<String> },
    /// The tour is over (however it ended): `ok` when every lesson chosen ran and ended
    /// `ok`; `results`, each lesson that ran, with its `lesson_end`'s `ok`.
    TourEnd { ok: bool, results: Vec<TourResult> },
    /// A lesson's own kind, named by `act`, with its fields.
    Act {
        act: String,
        fields: Vec<(String, ObsValue)>,
    },
}

/// One lesson of a tour, as it ended.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TourResult {
    pub lesson: String,
    pub ok: bool,
}

/// How a claim compares an observation's value with its target.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub enum Op {
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    /// Within `[low, high]`, both included; the target is the pair.
    #[serde(rename = "between")]
    Between,
    /// A string that begins with the target.
    #[serde(rename = "starts_with")]
    StartsWith,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Between => "between",
            Op::StartsWith => "starts_with",
        }
    }
}

/// What a claim says of its observation, as data: `value <op> target` and, for the few
/// claims that rest on more than the one value, every other condition the lesson
/// measured (`and`: name → whether it held). In JSON:
/// `{"op": ">", "value": 1}`, `{"op": "between", "value": [2, 4]}`,
/// `{"op": "==", "value": -15, "and": {"daemon_gone": true}}`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Criterion {
    pub op: Op,
    /// The target: one scalar, or `[low, high]` for `between`.
    pub value: Vec<ObsValue>,
    /// Other conditions of the claim, each measured in the run; absent when none.
    pub and: Option<Vec<(String, bool)>>,
}

/// The JSON of [`Criterion::to_json`] (not serde's: the target is a scalar or a pair).
impl JsonSchema for Criterion {
    fn schema_name() -> Cow<'static, str> {
        "Claim".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let op = generator.subschema_for::<Op>();
        let scalar = generator.subschema_for::<ObsValue>();
        json_schema!({
            "description": "The claim as data: `holds` is `value <op> target`, and every `and` true (docs/events.md, \"Claims\").",
            "type": "object",
            "properties": {
                "op": op,
                "value": {
                    "description": "The target: a scalar; for `between`, the pair [low, high].",
                    "oneOf": [
                        scalar,
                        {"type": "array", "items": scalar, "minItems": 2, "maxItems": 2},
                    ],
                },
                "and": {
                    "description": "The other conditions the claim rests on, measured in the run: name → whether it held.",
                    "type": "object",
                    "additionalProperties": {"type": "boolean"},
                },
            },
            "required": ["op", "value"],
            "additionalProperties": false,
        })
    }
}

impl Criterion {
    /// Whether `value` satisfies the claim, compared as the JSON values a grader reads
    /// (a float as written, to a thousandth): numbers by value (an integer equals the
    /// same float), booleans and strings by equality only; a value of another type than
    /// the target never satisfies `==`, and always `!=`.
    pub fn test(&self, value: &ObsValue) -> bool {
        let v = value.to_json();
        let t: Vec<Value> = self.value.iter().map(ObsValue::to_json).collect();
        let num = |x: &Value| x.as_f64();
        let same = |a: &Value, b: &Value| match (num(a), num(b)) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        };
        let compares = match (self.op, t.as_slice()) {
            (Op::Eq, [t]) => same(&v, t),
            (Op::Ne, [t]) => !same(&v, t),
            (Op::Between, [lo, hi]) => match (num(&v), num(lo), num(hi)) {
                (Some(x), Some(lo), Some(hi)) => lo <= x && x <= hi,
                _ => false,
            },
            (Op::StartsWith, [t]) => match (v.as_str(), t.as_str()) {
                (Some(s), Some(p)) => s.starts_with(p),
                _ => false,
            },
            (op, [t]) => match (num(&v), num(t)) {
                (Some(x), Some(y)) => match op {
                    Op::Lt => x < y,
                    Op::Le => x <= y,
                    Op::Gt => x > y,
                    Op::Ge => x >= y,
                    _ => false,
                },
                _ => false,
            },
            _ => false,
        };
        compares && self.and.iter().flatten().all(|(_, held)| *held)
    }

    /// The JSON object of the contract: `op`, `value` (a scalar, or the pair of
    /// `between`), `and` (an object) when there are other conditions.
    pub fn to_json(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("op".into(), Value::from(self.op.as_str()));
        let value = match self.value.as_slice() {
            [one] => one.to_json(),
            many => Value::Array(many.iter().map(ObsValue::to_json).collect()),
        };
        obj.insert("value".into(), value);
        if let Some(and) = &self.and {
            let conds = and
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(*v)))
                .collect();
            obj.insert("and".into(), Value::Object(conds));
        }
        Value::Object(obj)
    }

    /// [`Criterion::to_json`]'s inverse (a replay reads a claim back from its line).
    pub fn from_json(v: &Value) -> Result<Criterion, String> {
        let op: Op = serde_json::from_value(v.get("op").cloned().unwrap_or(Value::Null))
            .map_err(|e| format!("a claim's `op`: {e}"))?;
        let scalar = |x: &Value| {
            serde_json::from_value::<ObsValue>(x.clone())
                .map_err(|e| format!("a claim's `value`: {e}"))
        };
        let value = match v.get("value") {
            Some(Value::Array(pair)) => pair.iter().map(scalar).collect::<Result<_, _>>()?,
            Some(one) => vec![scalar(one)?],
            None => return Err("a claim with no `value`".into()),
        };
        let and = match v.get("and") {
            Some(Value::Object(conds)) => Some(
                conds
                    .iter()
                    .map(|(k, held)| match held {
                        Value::Bool(b) => Ok((k.clone(), *b)),
                        _ => Err(format!("a claim's `and.{k}` is not true or false")),
                    })
                    .collect::<Result<_, String>>()?,
            ),
            Some(_) => return Err("a claim's `and` is not an object".into()),
            None => None,
        };
        Ok(Criterion { op, value, and })
    }
}

/// A value in an observation or a lesson's own event: plain JSON scalars.
///
/// In JSON it is the bare scalar; across ipc-channel (postcard, not human-readable) it
/// keeps its tag, since postcard cannot decode untagged values.
#[derive(Clone, Debug, PartialEq)]
pub enum ObsValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

/// In JSON, the bare scalar.
impl JsonSchema for ObsValue {
    fn schema_name() -> Cow<'static, str> {
        "Scalar".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A JSON scalar: a boolean, a number or a string (never null).",
            "type": ["boolean", "number", "string"],
        })
    }
}

#[derive(Serialize, Deserialize)]
enum Tagged {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl ObsValue {
    pub fn to_json(&self) -> Value {
        match self {
            ObsValue::Bool(b) => Value::from(*b),
            ObsValue::Int(i) => Value::from(*i),
            ObsValue::Float(f) => json_number((*f * 1000.0).round() / 1000.0),
            ObsValue::Str(s) => Value::from(s.as_str()),
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            ObsValue::Int(i) => Some(*i),
            _ => None,
        }
    }
}

impl fmt::Display for ObsValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObsValue::Bool(b) => write!(f, "{b}"),
            ObsValue::Int(i) => write!(f, "{i}"),
            ObsValue::Float(x) => write!(f, "{x:.2}"),
            ObsValue::Str(s) => write!(f, "{s}"),
        }
    }
}

impl Serialize for ObsValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            return self.to_json().serialize(s);
        }
        match self.clone() {
            ObsValue::Bool(b) => Tagged::Bool(b),
            ObsValue::Int(i) => Tagged::Int(i),
            ObsValue::Float(x) => Tagged::Float(x),
            ObsValue::Str(t) => Tagged::Str(t),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for ObsValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            return Ok(match Value::deserialize(d)? {
                Value::Bool(b) => ObsValue::Bool(b),
                Value::Number(n) if n.is_i64() => ObsValue::Int(n.as_i64().unwrap_or(0)),
                Value::Number(n) => ObsValue::Float(n.as_f64().unwrap_or(f64::NAN)),
                Value::String(s) => ObsValue::Str(s),
                other => ObsValue::Str(other.to_string()),
            });
        }
        Ok(match Tagged::deserialize(d)? {
            Tagged::Bool(b) => ObsValue::Bool(b),
            Tagged::Int(i) => ObsValue::Int(i),
            Tagged::Float(x) => ObsValue::Float(x),
            Tagged::Str(t) => ObsValue::Str(t),
        })
    }
}

impl From<bool> for ObsValue {
    fn from(b: bool) -> Self {
        ObsValue::Bool(b)
    }
}
impl From<i64> for ObsValue {
    fn from(i: i64) -> Self {
        ObsValue::Int(i)
    }
}
impl From<i32> for ObsValue {
    fn from(i: i32) -> Self {
        ObsValue::Int(i.into())
    }
}
impl From<u32> for ObsValue {
    fn from(i: u32) -> Self {
        ObsValue::Int(i.into())
    }
}
impl From<usize> for ObsValue {
    fn from(i: usize) -> Self {
        ObsValue::Int(i as i64)
    }
}
impl From<f64> for ObsValue {
    fn from(x: f64) -> Self {
        ObsValue::Float(x)
    }
}
impl From<&str> for ObsValue {
    fn from(s: &str) -> Self {
        ObsValue::Str(s.to_string())
    }
}
impl From<String> for ObsValue {
    fn from(s: String) -> Self {
        ObsValue::Str(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape_follows_the_contract() {
        let ev = Event {
            t_ns: 1_500_123_456,
            pid: 42,
            kind: Kind::Spawn {
                ppid: 41,
                name: "child".into(),
                how: How::Fork,
            },
        };
        let v = ev.to_json("fork", 1_000_000_000);
        assert_eq!(v["t_ms"], 500.123);
        assert_eq!(v["lesson"], "fork");
        assert_eq!(v["kind"], "spawn");
        assert_eq!(v["pid"], 42);
        assert_eq!(v["ppid"], 41);
        assert_eq!(v["how"], "fork");
    }

    #[test]
    fn lesson_start_carries_the_schema_version() {
        let ev = Event {
            t_ns: 7,
            pid: 1,
            kind: Kind::LessonStart {
                lesson: "fork".into(),
                title: "Fork".into(),
                lang: "en".into(),
                janitor: None,
            },
        };
        let v = ev.to_json("fork", 7);
        assert_eq!(v["schema"], SCHEMA);
        assert_eq!(v["kind"], "lesson_start");
    }

    #[test]
    fn acts_flatten_their_fields_and_nulls_are_dropped() {
        let ev = Event {
            t_ns: 0,
            pid: 7,
            kind: Kind::Act {
                act: "acquire".into(),
                fields: vec![("what".into(), "lock".into())],
            },
        };
        let v = ev.to_json("lock", 0);
        assert_eq!(v["kind"], "acquire");
        assert_eq!(v["what"], "lock");
        let say = Event {
            t_ns: 0,
            pid: 7,
            kind: Kind::Say {
                key: "k".into(),
                text: "t".into(),
                python: None,
                syscall: Some("fork()".into()),
            },
        };
        let v = say.to_json("fork", 0);
        assert!(v.get("python").is_none());
        assert_eq!(v["syscall"], "fork()");
    }

    #[test]
    fn a_line_of_the_stream_is_read_back_as_its_event() {
        let t0 = 5_000_000_000;
        let kinds = [
            Kind::LessonStart {
                lesson: "lock".into(),
                title: "Lock".into(),
                lang: "zh".into(),
                janitor: Some(9),
            },
            Kind::Say {
                key: "k".into(),
                text: "t".into(),
                python: Some("p.start()".into()),
                syscall: None,
            },
            Kind::Pause {
                step: 2,
                waits: false,
            },
            Kind::Observation {
                name: "sold".into(),
                value: 2.5.into(),
                expected: Some("between 2 and 4".into()),
                claim: Some(Criterion {
                    op: Op::Between,
                    value: vec![2i64.into(), 4i64.into()],
                    and: Some(vec![("gone".into(), true)]),
                }),
                holds: Some(true),
            },
            Kind::Act {
                act: "read".into(),
                fields: vec![
                    ("name".into(), "buyer-1".into()),
                    ("value".into(), 1i64.into()),
                ],
            },
        ];
        for kind in kinds {
            let ev = Event {
                t_ns: t0 + 1_234_000,
                pid: 7,
                kind,
            };
            let (lesson, back) = Event::from_json(&ev.to_json("lock", t0), t0).unwrap();
            assert_eq!(lesson, "lock");
            assert_eq!(back, ev);
        }
        let line = serde_json::json!({"t_ms": 1, "lesson": "x", "kind": "spawn", "pid": 3});
        assert!(Event::from_json(&line, 0).unwrap_err().contains("spawn"));
    }

    #[test]
    fn events_cross_ipc_channel() {
        let (tx, rx) = ipc_channel::ipc::channel::<Event>().unwrap();
        let ev = Event::now(
            1,
            Kind::Act {
                act: "put".into(),
                fields: vec![("item".into(), 3i64.into()), ("ok".into(), true.into())],
            },
        );
        tx.send(ev.clone()).unwrap();
        assert_eq!(rx.recv().unwrap(), ev);
    }
}
