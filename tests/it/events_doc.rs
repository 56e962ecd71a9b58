//! The events a lesson documents (`[events.<kind>]` in its words file, as `mp-demo --json
//! list` gives them) are the events its `--json` stream has: every kind beyond the core
//! ones, and every field it carries, is documented; every documented kind and field is
//! seen in a run, unless marked optional.

use crate::common;
use common::{Act, DocKind};
use std::collections::{BTreeMap, BTreeSet};

/// The fields every lesson kind carries, documented once in `docs/events.md`.
const COMMON_FIELDS: [&str; 5] = ["t_ms", "lesson", "kind", "pid", "name"];

/// Each lesson's documented kinds, from `mp-demo --json list`: kind -> its entry.
fn documented() -> Vec<(String, BTreeMap<String, DocKind>)> {
    common::listed()
        .into_iter()
        .map(|lesson| {
            let kinds = lesson
                .events
                .into_iter()
                .map(|d| (d.kind.clone(), d))
                .collect();
            (lesson.lesson, kinds)
        })
        .collect()
}

/// The names of a documented entry's fields.
fn fields(doc: &DocKind) -> BTreeSet<String> {
    doc.fields.keys().cloned().collect()
}

/// The names of the fields only some runs carry.
fn optional_fields(doc: &DocKind) -> BTreeSet<String> {
    doc.optional_fields.iter().cloned().collect()
}

#[test]
fn every_kind_and_field_a_lesson_emits_is_documented_and_seen() {
    // A set: one line per problem, not one per event that shows it.
    let mut problems = BTreeSet::new();
    for (lesson, docs) in documented() {
        for (kind, doc) in &docs {
            for (key, text) in [
                ("pid", &doc.pid),
                ("stamped", &doc.stamped),
                ("about", &doc.about),
            ] {
                if text.is_empty() {
                    problems.insert(format!("{lesson} {kind}: no `{key}`"));
                }
            }
            let fields = fields(doc);
            if let Some(f) = COMMON_FIELDS.iter().find(|f| fields.contains(**f)) {
                problems.insert(format!("{lesson} {kind}: `{f}` is common, not the kind's"));
            }
            for f in optional_fields(doc).difference(&fields) {
                problems.insert(format!(
                    "{lesson} {kind}: optional field `{f}` is not a field"
                ));
            }
        }
        let run = common::lesson_json_shared(&lesson);
        run.assert_code(0);
        let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        // The core kinds are the decoder's own; every other one decodes as an `Act`, and
        // only with its `name` (an event without it fails the run's decoding).
        for a in run.all::<Act>() {
            let kind = a.kind.as_str();
            let carried: BTreeSet<String> = a
                .fields
                .keys()
                .filter(|k| !COMMON_FIELDS.contains(&k.as_str()))
                .cloned()
                .collect();
            match docs.get(kind) {
                None => {
                    problems.insert(format!("{lesson}: kind `{kind}` is not documented"));
                }
                Some(doc) => {
                    for f in carried.difference(&fields(doc)) {
                        problems.insert(format!("{lesson} {kind}: field `{f}` is not documented"));
                    }
                    // A grader may count on every field not listed as optional.
                    let optional = optional_fields(doc);
                    for f in fields(doc).difference(&carried) {
                        if !optional.contains(f) {
                            problems.insert(format!(
                                "{lesson} {kind}: an event without `{f}`, which is not in optional_fields"
                            ));
                        }
                    }
                }
            }
            seen.entry(kind.to_string()).or_default().extend(carried);
        }
        for (kind, doc) in &docs {
            let Some(carried) = seen.get(kind) else {
                if !doc.optional {
                    problems.insert(format!("{lesson}: documented kind `{kind}` never emitted"));
                }
                continue;
            };
            let optional = optional_fields(doc);
            for f in fields(doc) {
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

/// The JSON type of an observation's value, as the words files name it.
fn type_of(v: &common::Val) -> &'static str {
    match v {
        common::Val::Bool(_) => "boolean",
        common::Val::Int(_) => "integer",
        common::Val::Float(_) => "number",
        common::Val::Str(_) => "string",
    }
}

/// Every observation a lesson reports is documented in its words file (as `mp-demo --json
/// list` gives them) with its type, its meaning and, for a claim, the claim; every
/// documented one is reported (unless marked optional), and claimed when documented as a
/// claim (unless `claim_optional`).
#[test]
fn every_observation_a_lesson_reports_is_documented_with_its_type_and_claim() {
    let mut problems = BTreeSet::new();
    for lesson in common::listed() {
        let name = &lesson.lesson;
        let docs: BTreeMap<&str, &common::DocObs> = lesson
            .observations
            .iter()
            .map(|d| (d.name.as_str(), d))
            .collect();
        for d in &lesson.observations {
            if d.about.trim().is_empty() {
                problems.insert(format!("{name} {}: no `about`", d.name));
            }
            if !["boolean", "integer", "number", "string"].contains(&d.value_type.as_str()) {
                problems.insert(format!("{name} {}: no such type {}", d.name, d.value_type));
            }
        }
        let run = common::lesson_json_shared(name);
        let mut seen = BTreeSet::new();
        for o in run.observations() {
            seen.insert(o.name.clone());
            let Some(doc) = docs.get(o.name.as_str()) else {
                problems.insert(format!("{name}: observation `{}` is not documented", o.name));
                continue;
            };
            let t = type_of(&o.value);
            // An integer is a number too (a number that happens to be whole).
            if t != doc.value_type && !(t == "integer" && doc.value_type == "number") {
                problems.insert(format!(
                    "{name} {}: documented as {}, reported as {t}: {o}",
                    o.name, doc.value_type
                ));
            }
            match (&o.claim, &doc.claim) {
                (Some(_), None) => {
                    problems.insert(format!("{name} {}: a claim documented as a fact", o.name));
                }
                (None, Some(_)) if doc.claim_optional != Some(true) => {
                    problems.insert(format!(
                        "{name} {}: documented as a claim, reported as a fact",
                        o.name
                    ));
                }
                _ => {}
            }
        }
        for d in &lesson.observations {
            if !d.optional && !seen.contains(&d.name) {
                problems.insert(format!("{name}: documented observation `{}` never reported", d.name));
            }
        }
    }
    let problems: Vec<String> = problems.into_iter().collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn explain_events_prints_every_documented_observation() {
    for lesson in common::listed() {
        let r = common::run(&["explain", &lesson.lesson, "--events"]);
        r.assert_code(0);
        for o in &lesson.observations {
            assert!(
                r.stdout.lines().any(|l| l == o.name),
                "{}: `{}` missing\n{}",
                lesson.lesson,
                o.name,
                r.show()
            );
        }
    }
}

#[test]
fn list_json_gives_each_option_its_help() {
    for (lesson, options) in common::lessons() {
        for o in options {
            assert!(!o.help.trim().is_empty(), "{lesson} --{}: no help", o.name);
        }
    }
}
