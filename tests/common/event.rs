//! The events of `mp-demo --json`, as `docs/events.md` documents them, decoded on the
//! tests' own terms (not with `src/event.rs`: the tests check that contract, they do not
//! share it).
//!
//! Decoding is strict. Every line has `t_ms`, `lesson`, `kind` and `pid`; no field is
//! `null`. A core kind (`spawn`, `exit`, `observation`, …) has exactly the fields the
//! contract lists, so a field renamed, missing or added fails. The kinds lessons add are
//! open-ended: an [`Act`] keeps its fields, and each getter ([`Act::int`], [`Act::str`],
//! …) fails on a field that is not there, never reads it as absent.

use serde::de::{DeserializeOwned, Deserializer, Error as _};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::fmt;

/// One line of the stream: its stamp, its lesson, its process and what happened.
#[derive(Clone)]
pub struct Event {
    pub t_ms: f64,
    pub lesson: String,
    pub pid: i64,
    pub body: Body,
    /// The line as JSON, for failure messages.
    line: String,
}

/// A kind of event, decoded with its own fields: one of the core kinds, each its own
/// type, and `Act` for the lesson's own kinds.
pub trait Kind: Sized {
    /// The name of the kind in the stream (`spawn`, `lesson_end`, …).
    const NAME: &'static str;
    fn of(body: &Body) -> Option<&Self>;
}

/// The core kinds: one table for the enum, the decoding and [`Kind`].
macro_rules! core_kinds {
    ($($variant:ident = $name:literal),* $(,)?) => {
        /// What happened: a core kind of `docs/events.md`, or a lesson's own kind.
        #[derive(Clone, Debug, PartialEq)]
        pub enum Body {
            $($variant($variant),)*
            Act(Act),
        }

        /// The names of the core kinds.
        pub const CORE: &[&str] = &[$($name),*];

        impl Body {
            /// The kind's name in the stream.
            pub fn kind(&self) -> &str {
                match self {
                    $(Body::$variant(_) => $name,)*
                    Body::Act(a) => &a.kind,
                }
            }

            fn decode(kind: &str, fields: Map<String, Value>) -> Result<Body, String> {
                match kind {
                    $($name => strict(fields).map(Body::$variant),)*
                    _ => Act::decode(kind, fields).map(Body::Act),
                }
            }
        }

        $(impl Kind for $variant {
            const NAME: &'static str = $name;
            fn of(body: &Body) -> Option<&Self> {
                match body {
                    Body::$variant(k) => Some(k),
                    _ => None,
                }
            }
        })*
    };
}

core_kinds! {
    LessonStart = "lesson_start",
    Spawn = "spawn",
    State = "state",
    Exit = "exit",
    Say = "say",
    Step = "step",
    Pause = "pause",
    Observation = "observation",
    LessonEnd = "lesson_end",
    Quiz = "quiz",
    TourStart = "tour_start",
    TourEnd = "tour_end",
}

/// `tour_start` (`tour --json`): the lessons the tour will run, in order.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TourStart {
    pub lessons: Vec<String>,
}

/// `tour_end`: `ok` when every lesson chosen ran and ended ok; each one that ran.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TourEnd {
    pub ok: bool,
    pub results: Vec<TourResult>,
}

/// One lesson of a tour, as it ended.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TourResult {
    pub lesson: String,
    pub ok: bool,
}

/// `lesson_start`: the lesson begins; `pid` is the main process.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LessonStart {
    pub title: String,
    /// The language of the narration: `en` or `zh`.
    pub lang: String,
    /// mp-demo's cleanup helper, a child of the main process.
    pub janitor: Option<i64>,
    /// The version of the stream's shape (`docs/events.md`, "The schema version").
    pub schema: u32,
}

/// How a process was started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum How {
    Fork,
    Spawn,
}

/// `spawn`: the process `pid` was started by `ppid`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spawn {
    pub ppid: i64,
    pub name: String,
    pub how: How,
}

/// `state`: the observer read a new state letter (or a new wait channel).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub name: String,
    /// Empty for the first sample.
    pub from: String,
    pub to: String,
    pub waiting_in: Option<String>,
}

/// `exit`: the process ended and was reaped.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exit {
    pub name: String,
    /// The status, or `-N` for signal N.
    pub exitcode: i64,
    pub reaped_by: i64,
}

/// `say`: a line of narration.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Say {
    pub key: String,
    pub text: String,
    pub python: Option<String>,
    pub syscall: Option<String>,
}

/// `step`: a step boundary.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub n: u32,
    pub key: String,
    pub title: String,
    pub hint: Option<String>,
}

/// `pause`: the pause of step `step`, once its action has run (where its hint is
/// printed, and `--step` waits).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pause {
    pub step: u32,
    /// Whether the run waited here for a key (`--step`).
    pub waits: bool,
}

/// `observation`: something the lesson measured; `holds` only for a claim.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Observation {
    pub name: String,
    pub value: Val,
    pub expected: Option<String>,
    /// The claim as data; `holds` is its test of `value`.
    pub claim: Option<Claim>,
    pub holds: Option<bool>,
}

/// An observation's claim, as `docs/events.md` documents it: `value <op> target`, and
/// the other conditions it rests on.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    /// `==`, `!=`, `<`, `<=`, `>`, `>=`, `between`, `starts_with`.
    pub op: String,
    /// The target: a scalar, or `[low, high]` for `between`.
    pub value: Value,
    /// Other conditions, each measured in the run: name → whether it held.
    pub and: Option<std::collections::BTreeMap<String, bool>>,
}

/// `lesson_end`: `ok` when every claim held; a run that failed or was stopped ends too,
/// `ok` false, with `error` (its message) or `signal` (`SIGINT`, …, `q`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LessonEnd {
    pub ok: bool,
    pub elapsed_ms: f64,
    pub error: Option<String>,
    pub signal: Option<String>,
}

/// `quiz` (with `--quiz`, before `lesson_end`): a question, the answer picked, and the
/// run's judgement.
/// run's judgement (`docs/events.md`, "Kinds the program adds").
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quiz {
    pub question: String,
    pub answer: String,
    pub observation: String,
    pub explain: String,
    pub observed: Option<Val>,
    pub right: Option<bool>,
}

/// A kind a lesson adds (`acquire`, `put`, `reparent`, …): `name` (the role of the
/// process, which every one of them carries) and its other fields.
#[derive(Clone, Debug, PartialEq)]
pub struct Act {
    pub kind: String,
    pub name: String,
    pub fields: Map<String, Value>,
}

/// A value of an observation: a JSON scalar, never `null`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Val {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

fn strict<T: DeserializeOwned>(fields: Map<String, Value>) -> Result<T, String> {
    serde_json::from_value(Value::Object(fields)).map_err(|e| e.to_string())
}

/// Take field `key` out of `map` as a `T`.
fn take<T: DeserializeOwned>(map: &mut Map<String, Value>, key: &str) -> Result<T, String> {
    let v = map.remove(key).ok_or_else(|| format!("no `{key}`"))?;
    serde_json::from_value(v).map_err(|e| format!("`{key}`: {e}"))
}

impl Event {
    /// Decode one line of the stream.
    pub fn decode(line: &str) -> Result<Event, String> {
        serde_json::from_str(line).map_err(|e| e.to_string())
    }

    fn from_map(mut map: Map<String, Value>) -> Result<Event, String> {
        let line = Value::Object(map.clone()).to_string();
        if let Some((k, _)) = map.iter().find(|(_, v)| v.is_null()) {
            return Err(format!(
                "`{k}` is null: a field without a value is left out"
            ));
        }
        let t_ms = take(&mut map, "t_ms")?;
        let lesson = take(&mut map, "lesson")?;
        let kind: String = take(&mut map, "kind")?;
        let pid = take(&mut map, "pid")?;
        let body = Body::decode(&kind, map).map_err(|e| format!("{kind}: {e}"))?;
        Ok(Event {
            t_ms,
            lesson,
            pid,
            body,
            line,
        })
    }

    /// This event as a `K`, if it is one.
    pub fn get<K: Kind>(&self) -> Option<Ev<'_, K>> {
        K::of(&self.body).map(|what| Ev {
            t_ms: self.t_ms,
            pid: self.pid,
            lesson: &self.lesson,
            event: self,
            what,
        })
    }

    /// Whether this event is a `K`.
    pub fn is<K: Kind>(&self) -> bool {
        K::of(&self.body).is_some()
    }

    /// This event as the lesson's own kind `kind`, if it is one. A core kind never is
    /// one (it has its own type): asking for one fails.
    pub fn act(&self, kind: &str) -> Option<Ev<'_, Act>> {
        assert!(
            !CORE.contains(&kind),
            "`{kind}` is a core kind: read it as its own type"
        );
        self.get::<Act>().filter(|a| a.kind == kind)
    }

    /// The name of its kind.
    pub fn kind(&self) -> &str {
        self.body.kind()
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Event::from_map(Map::deserialize(d)?).map_err(D::Error::custom)
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line)
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line)
    }
}

impl Kind for Act {
    const NAME: &'static str = "(a lesson's own kind)";
    fn of(body: &Body) -> Option<&Self> {
        match body {
            Body::Act(a) => Some(a),
            _ => None,
        }
    }
}

/// One event of kind `T`: its stamp and process, and (through `Deref`) its fields.
/// Shown (`{}`, `{:?}`) as its line.
pub struct Ev<'a, T> {
    pub t_ms: f64,
    pub pid: i64,
    pub lesson: &'a str,
    pub event: &'a Event,
    what: &'a T,
}

impl<'a, T> Ev<'a, T> {
    /// Its fields, borrowed for as long as the run (not only as long as this `Ev`).
    pub fn what(&self) -> &'a T {
        self.what
    }
}

impl<T> Clone for Ev<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Ev<'_, T> {}

impl<T> std::ops::Deref for Ev<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.what
    }
}

impl<T> fmt::Display for Ev<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.event, f)
    }
}

impl<T> fmt::Debug for Ev<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.event, f)
    }
}

impl Act {
    fn decode(kind: &str, mut fields: Map<String, Value>) -> Result<Act, String> {
        let name = take(&mut fields, "name")?;
        if let Some((k, v)) = fields.iter().find(|(_, v)| !is_scalar(v)) {
            return Err(format!("`{k}` is not a scalar: {v}"));
        }
        Ok(Act {
            kind: kind.to_string(),
            name,
            fields,
        })
    }

    /// Whether it has field `f`.
    pub fn has(&self, f: &str) -> bool {
        self.fields.contains_key(f)
    }

    fn field(&self, f: &str, what: &str) -> ! {
        panic!(
            "`{}` of {}: no {what} field `{f}` in {}",
            self.kind,
            self.name,
            Value::Object(self.fields.clone())
        )
    }

    /// Field `f`, an integer.
    pub fn int(&self, f: &str) -> i64 {
        self.fields
            .get(f)
            .and_then(Value::as_i64)
            .unwrap_or_else(|| self.field(f, "integer"))
    }

    /// Field `f`, a number (integer or not).
    pub fn num(&self, f: &str) -> f64 {
        self.fields
            .get(f)
            .and_then(Value::as_f64)
            .unwrap_or_else(|| self.field(f, "number"))
    }

    /// Field `f`, a string.
    pub fn str(&self, f: &str) -> &str {
        self.fields
            .get(f)
            .and_then(Value::as_str)
            .unwrap_or_else(|| self.field(f, "string"))
    }

    /// Field `f`, a boolean.
    pub fn bool(&self, f: &str) -> bool {
        self.fields
            .get(f)
            .and_then(Value::as_bool)
            .unwrap_or_else(|| self.field(f, "boolean"))
    }
}

fn is_scalar(v: &Value) -> bool {
    matches!(v, Value::Bool(_) | Value::Number(_) | Value::String(_))
}

impl Val {
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Val::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// A number, integer or not.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Val::Int(i) => Some(*i as f64),
            Val::Float(x) => Some(*x),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Val::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Display for Val {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Val::Bool(b) => write!(f, "{b}"),
            Val::Int(i) => write!(f, "{i}"),
            Val::Float(x) => write!(f, "{x}"),
            Val::Str(s) => write!(f, "{s:?}"),
        }
    }
}

/// `obs == 3`, `obs == true`, `obs == "S"`, as with a JSON value: an integer equals only
/// an integer observation; a float compares with any number.
macro_rules! val_eq {
    ($($t:ty => |$v:ident, $o:ident| $e:expr;)*) => {$(
        impl PartialEq<$t> for Val {
            fn eq(&self, other: &$t) -> bool {
                let ($v, $o) = (self, other);
                $e
            }
        }
        impl PartialEq<$t> for &Val {
            fn eq(&self, other: &$t) -> bool {
                **self == *other
            }
        }
    )*};
}

val_eq! {
    i32 => |v, o| v.as_i64() == Some(i64::from(*o));
    i64 => |v, o| v.as_i64() == Some(*o);
    usize => |v, o| v.as_i64() == i64::try_from(*o).ok();
    f64 => |v, o| v.as_f64() == Some(*o);
    bool => |v, o| v.as_bool() == Some(*o);
    &str => |v, o| v.as_str() == Some(*o);
    String => |v, o| v.as_str() == Some(o.as_str());
}
