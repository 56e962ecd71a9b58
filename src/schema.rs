//! The JSON Schema of the `--json` stream (`docs/events.schema.json`, and `mp-demo
//! schema`), generated from the event types so that it cannot drift from them.
//!
//! `schemars` describes [`Kind`] as serde sees it, which is the form that crosses
//! ipc-channel: an externally tagged enum (`{"spawn": {"ppid": …}}`), `null` for a field
//! without a value. The contract is another shape, made by [`crate::event::Event::to_json`]:
//! one flat object per line, `t_ms`, `lesson`, `kind` and `pid` first, the variant's fields
//! beside them, fields without a value left out. So the generated schema of each variant
//! is reshaped here into the schema of its line: the same fields and descriptions, the
//! common ones added, `kind` its name, no `null`; `lesson_start` gets the `schema` version
//! `to_json` adds; and a lesson's own kind ([`Kind::Act`], whose fields are data) becomes
//! "any other `kind`, with `name` and scalar fields". `quiz`, the one kind the program
//! emits as an `Act` without `name`, is described by hand, from `docs/events.md`.

use crate::event::{Kind, SCHEMA};
use serde_json::{json, Map, Value};

/// The variant of [`Kind`] whose fields are a lesson's own, and its kind in the stream.
const ACT: &str = "act";

/// The JSON Schema (draft 2020-12) of one line of `mp-demo --json`.
pub fn events() -> Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    let root = generator.into_root_schema_for::<Kind>().to_value();
    let defs = root.get("$defs").cloned().unwrap_or_else(|| json!({}));
    let mut kinds = Vec::new();
    let mut names = Vec::new();
    for variant in root["oneOf"].as_array().into_iter().flatten() {
        let Some((name, inner)) = variant["properties"]
            .as_object()
            .and_then(|p| p.iter().next())
        else {
            continue;
        };
        if name == ACT {
            continue;
        }
        let inner = resolve(inner, &defs);
        let description = variant
            .get("description")
            .or_else(|| inner.get("description"))
            .cloned();
        kinds.push(line(name, description, &inner));
        names.push(name.clone());
    }
    kinds.push(quiz());
    names.push("quiz".into());
    kinds.push(lesson_kind(&names));
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "mp-demo --json: one line of the stream",
        "description": format!(
            "One event of `mp-demo --json` (schema version {SCHEMA}, the `schema` of \
             `lesson_start`), as docs/events.md documents it. Generated from the event \
             types (src/schema.rs): regenerate with `cargo run --release -- schema > \
             docs/events.schema.json`."
        ),
        "type": "object",
        "oneOf": kinds,
        "$defs": defs,
    })
}

/// A `$ref` into `$defs`, followed; anything else as it is.
fn resolve(schema: &Value, defs: &Value) -> Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => r
            .strip_prefix("#/$defs/")
            .and_then(|name| defs.get(name))
            .cloned()
            .unwrap_or_else(|| schema.clone()),
        None => schema.clone(),
    }
}

/// The fields every line has, in the order `to_json` writes them.
fn common(kind: Value) -> Map<String, Value> {
    let mut p = Map::new();
    p.insert(
        "t_ms".into(),
        json!({"type": "number", "description": "Milliseconds since the lesson started (the tour, for tour_start and tour_end), CLOCK_MONOTONIC, microsecond precision."}),
    );
    p.insert(
        "lesson".into(),
        json!({"type": "string", "description": "The lesson the event belongs to (`tour` for the tour's frame)."}),
    );
    p.insert("kind".into(), kind);
    p.insert(
        "pid".into(),
        json!({"type": "integer", "description": "The process the event is about."}),
    );
    p
}

const COMMON: [&str; 4] = ["t_ms", "lesson", "kind", "pid"];

/// The line of core kind `name`: the common fields, then the variant's own, none null.
fn line(name: &str, description: Option<Value>, inner: &Value) -> Value {
    let mut props = common(json!({"const": name}));
    let mut required: Vec<Value> = COMMON.iter().map(|&c| c.into()).collect();
    if name == "lesson_start" {
        props.insert(
            "schema".into(),
            json!({"const": SCHEMA, "description": "The version of the stream's shape (docs/events.md, \"The schema version\")."}),
        );
        required.push("schema".into());
    }
    for (field, schema) in inner["properties"].as_object().into_iter().flatten() {
        // The variant's own `lesson` (lesson_start) is the common field, said once.
        if !props.contains_key(field) {
            props.insert(field.clone(), without_null(schema.clone()));
        }
    }
    for field in inner["required"].as_array().into_iter().flatten() {
        if !required.contains(field) {
            required.push(field.clone());
        }
    }
    let mut obj = json!({
        "title": name,
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": false,
    });
    if let Some(d) = description {
        obj["description"] = d;
    }
    obj
}

/// A schema without `null`: a field without a value is left out of the line, never
/// written as `null` (serde's `Option` allows `null`, which the line never has).
fn without_null(mut schema: Value) -> Value {
    let is_null = |s: &Value| s.get("type").and_then(Value::as_str) == Some("null");
    if let Some(types) = schema.get_mut("type").and_then(Value::as_array_mut) {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            schema["type"] = types[0].clone();
        }
    }
    for key in ["anyOf", "oneOf"] {
        let Some(options) = schema.get(key).and_then(Value::as_array).cloned() else {
            continue;
        };
        let left: Vec<Value> = options.into_iter().filter(|s| !is_null(s)).collect();
        let obj = schema
            .as_object_mut()
            .expect("a schema with anyOf is an object");
        obj.remove(key);
        if let [one] = left.as_slice() {
            // `{"anyOf": [{"$ref": …}, {"type": "null"}], "description": …}`: the one left,
            // with the description kept.
            for (k, v) in one.as_object().into_iter().flatten() {
                obj.entry(k.clone()).or_insert_with(|| v.clone());
            }
        } else {
            obj.insert(key.into(), Value::Array(left));
        }
    }
    schema
}

/// `quiz`: emitted by the program as a lesson-like kind, without `name` (docs/events.md,
/// "Kinds the program adds").
fn quiz() -> Value {
    let mut props = common(json!({"const": "quiz"}));
    for (field, what) in [
        ("question", "The question, in the run's language."),
        ("answer", "The choice picked, in words."),
        ("observation", "The name of the observation it predicts."),
        ("explain", "Why, in the run's language."),
    ] {
        props.insert(field.into(), json!({"type": "string", "description": what}));
    }
    props.insert(
        "observed".into(),
        json!({"$ref": "#/$defs/Scalar", "description": "Its value in this run."}),
    );
    props.insert(
        "right".into(),
        json!({"type": "boolean", "description": "Whether the prediction held."}),
    );
    json!({
        "title": "quiz",
        "description": "With --quiz: one per question, after the lesson's last observation and before its lesson_end.",
        "type": "object",
        "properties": props,
        "required": ["t_ms", "lesson", "kind", "pid", "question", "answer", "observation", "explain"],
        "additionalProperties": false,
    })
}

/// Any kind a lesson adds (`acquire`, `put`, …, documented in its words file and in
/// `mp-demo --json list`): not a core kind, with `name` and scalar fields.
fn lesson_kind(core: &[String]) -> Value {
    let mut props = common(json!({
        "type": "string",
        "not": {"enum": core},
        "description": "The lesson's own kind, documented per lesson (mp-demo --json list, `events`).",
    }));
    props.insert(
        "name".into(),
        json!({"type": "string", "description": "The role of the process `pid` (e.g. `buyer-3`, `main`)."}),
    );
    json!({
        "title": "a lesson's own kind",
        "description": "A kind a lesson adds: the common fields, `name`, and the kind's own fields, each a scalar.",
        "type": "object",
        "properties": props,
        "required": ["t_ms", "lesson", "kind", "pid", "name"],
        "additionalProperties": {"$ref": "#/$defs/Scalar"},
    })
}

/// The schema as it is committed: pretty, with a final newline.
pub fn events_text() -> String {
    let mut text = serde_json::to_string_pretty(&events()).expect("a schema serialises");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_core_kind_is_described_as_a_flat_line() {
        let s = events();
        let kinds: Vec<&str> = s["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|k| k["properties"]["kind"]["const"].as_str())
            .collect();
        // Every core kind, and no other (a variant missing from CORE_KINDS would be read
        // back from a recording as a lesson's own kind), then quiz.
        let core: Vec<&str> = kinds.iter().copied().filter(|k| *k != "quiz").collect();
        assert_eq!(core, crate::event::CORE_KINDS);
        assert!(kinds.contains(&"quiz"), "{kinds:?}");
        let text = s.to_string();
        assert!(!text.contains("\"null\""), "no null anywhere: {text}");
    }
}
