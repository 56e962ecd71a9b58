//! The stream as a versioned contract (issue 16, item 3): its `schema` version, its
//! claims as data, the tour's frame, and its JSON Schema.

use crate::common;

/// The schema version `docs/events.md` states ("The current version is **N**").
fn documented_version() -> u32 {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/events.md"))
        .expect("docs/events.md");
    let (_, rest) = doc
        .split_once("The current version is **")
        .expect("docs/events.md states the current schema version");
    rest.split("**").next().unwrap().parse().expect("a number")
}

#[test]
fn every_lesson_start_carries_the_documented_schema_version() {
    let version = documented_version();
    for (lesson, _) in common::lessons() {
        let run = common::lesson_json_shared(&lesson);
        let start = run.one::<common::LessonStart>();
        assert_eq!(start.schema, version, "{lesson}: {start}");
    }
}
