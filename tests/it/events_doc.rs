//! The events a lesson documents (`[events.<kind>]` in its words file, as `mp-demo --json
//! list` gives them) are the events its `--json` stream has: every kind beyond the core
//! ones, and every field it carries, is documented; every documented kind and field is
//! seen in a run, unless marked optional.

use crate::common;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// The kinds `docs/events.md` documents for every lesson.
const CORE: [&str; 8] = [
    "lesson_start",
    "spawn",
    "state",
    "exit",
    "say",
    "step",
    "observation",
    "lesson_end",
];

/// The fields every lesson kind carries, documented once in `docs/events.md`.
const COMMON_FIELDS: [&str; 5] = ["t_ms", "lesson", "kind", "pid", "name"];

/// Each lesson's documented kinds, from `mp-demo --json list`: kind -> its entry.
fn documented() -> Vec<(String, BTreeMap<String, Value>)> {
    let list = common::run(&["--json", "list"]);
    list.assert_code(0);
    list.events
        .iter()
        .map(|lesson| {
            let kinds = lesson["events"]
                .as_array()
                .unwrap_or_else(|| panic!("no events array: {lesson}"))
                .iter()
                .map(|d| (d["kind"].as_str().unwrap().to_string(), d.clone()))
                .collect();
            (lesson["lesson"].as_str().unwrap().to_string(), kinds)
        })
        .collect()
}

/// The names in a documented entry's `fields` object, or in its `optional_fields` array.
fn names(doc: &Value, key: &str) -> BTreeSet<String> {
    match &doc[key] {
        Value::Object(m) => m.keys().cloned().collect(),
        Value::Array(a) => a.iter().map(|v| v.as_str().unwrap().to_string()).collect(),
        _ => BTreeSet::new(),
    }
}

#[test]
fn every_kind_and_field_a_lesson_emits_is_documented_and_seen() {
    // A set: one line per problem, not one per event that shows it.
    let mut problems = BTreeSet::new();
    for (lesson, docs) in documented() {
        for (kind, doc) in &docs {
            for key in ["pid", "stamped", "about"] {
                if doc[key].as_str().is_none_or(str::is_empty) {
                    problems.insert(format!("{lesson} {kind}: no `{key}`"));
                }
            }
            let fields = names(doc, "fields");
            if let Some(f) = COMMON_FIELDS.iter().find(|f| fields.contains(**f)) {
                problems.insert(format!("{lesson} {kind}: `{f}` is common, not the kind's"));
            }
            for f in names(doc, "optional_fields").difference(&fields) {
                problems.insert(format!(
                    "{lesson} {kind}: optional field `{f}` is not a field"
                ));
            }
        }
        let run = common::lesson_json(&lesson, &[]);
        run.assert_code(0);
        let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for e in &run.events {
            let kind = e["kind"].as_str().unwrap();
            if CORE.contains(&kind) {
                continue;
            }
            if !e["name"].is_string() {
                problems.insert(format!("{lesson} {kind}: an event without `name`"));
            }
            let carried: BTreeSet<String> = e
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| !COMMON_FIELDS.contains(&k.as_str()))
                .cloned()
                .collect();
            match docs.get(kind) {
                None => {
                    problems.insert(format!("{lesson}: kind `{kind}` is not documented"));
                }
                Some(doc) => {
                    for f in carried.difference(&names(doc, "fields")) {
                        problems.insert(format!("{lesson} {kind}: field `{f}` is not documented"));
                    }
                }
            }
            seen.entry(kind.to_string()).or_default().extend(carried);
        }
        for (kind, doc) in &docs {
            let Some(carried) = seen.get(kind) else {
                if doc["optional"] != true {
                    problems.insert(format!("{lesson}: documented kind `{kind}` never emitted"));
                }
                continue;
            };
            let optional = names(doc, "optional_fields");
            for f in names(doc, "fields") {
                if !carried.contains(&f) && !optional.contains(&f) {
                    problems.insert(format!(
                        "{lesson} {kind}: documented field `{f}` never seen"
                    ));
                }
            }
        }
    }
    let problems: Vec<String> = problems.into_iter().collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn explain_events_prints_every_documented_kind() {
    for (lesson, docs) in documented() {
        let r = common::run(&["explain", &lesson, "--events"]);
        r.assert_code(0);
        for kind in docs.keys() {
            assert!(
                r.stdout.lines().any(|l| l == kind),
                "{lesson}: `{kind}` missing\n{}",
                r.show()
            );
        }
    }
}
