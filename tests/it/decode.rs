//! The tests' own reading of the stream is strict: a core event with a field renamed,
//! missing, added or `null` does not decode; a lesson's own kind keeps its fields, and
//! asking one for a field it does not have fails instead of reading nothing.

use crate::common;

use common::{Event, Exit, How, Observation, Run, Spawn, Val};

const SPAWN: &str =
    r#"{"t_ms":1.5,"lesson":"fork","kind":"spawn","pid":12,"ppid":11,"name":"child","how":"fork"}"#;

fn decodes(line: &str) -> Event {
    Event::decode(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

fn refused(line: &str) -> String {
    match Event::decode(line) {
        Ok(e) => panic!("decoded, but should not: {e:?}"),
        Err(e) => e,
    }
}

#[test]
fn a_core_event_decodes_into_its_type() {
    let e = decodes(SPAWN);
    let s = e.get::<Spawn>().expect("a spawn");
    assert_eq!((s.t_ms, s.pid, s.lesson), (1.5, 12, "fork"));
    assert_eq!((s.ppid, s.name.as_str(), s.how), (11, "child", How::Fork));
    assert!(e.get::<Exit>().is_none() && e.act("acquire").is_none());
    assert_eq!(e.kind(), "spawn");
    assert_eq!(format!("{s}"), format!("{e}"), "shown as its line");
}

#[test]
fn a_core_event_with_a_field_renamed_missing_added_or_null_is_refused() {
    for (line, says) in [
        (SPAWN.replace("\"ppid\"", "\"parent\""), "parent"),
        (SPAWN.replace(",\"how\":\"fork\"", ""), "how"),
        (
            SPAWN.replace("\"how\":\"fork\"", "\"how\":\"clone\""),
            "clone",
        ),
        (SPAWN.replace("}", ",\"extra\":1}"), "extra"),
        (SPAWN.replace("\"ppid\":11", "\"ppid\":null"), "ppid"),
        (SPAWN.replace("\"pid\":12,", ""), "pid"),
        (SPAWN.replace("\"t_ms\":1.5", "\"t_ms\":\"1.5\""), "t_ms"),
        (SPAWN.replace("\"ppid\":11", "\"ppid\":11.5"), "11.5"),
    ] {
        let why = refused(&line);
        assert!(why.contains(says), "{why} should name {says}: {line}");
    }
    assert!(Event::decode("not json").is_err());
    assert!(Event::decode("").is_err());
}

#[test]
fn optional_fields_may_be_left_out_but_not_misspelled() {
    let base = r#"{"t_ms":2,"lesson":"x","kind":"observation","pid":1,"name":"n","value":3"#;
    let fact = decodes(&format!("{base}}}"));
    let o = fact.get::<Observation>().unwrap();
    assert_eq!((o.holds, o.expected.as_deref()), (None, None));
    let claim = decodes(&format!("{base},\"expected\":\"== 3\",\"holds\":true}}"));
    assert_eq!(claim.get::<Observation>().unwrap().holds, Some(true));
    refused(&format!("{base},\"hold\":true}}"));
}

#[test]
fn observation_values_compare_as_json_values_do() {
    let v = |json: &str| -> Val { serde_json::from_str(json).unwrap() };
    assert_eq!(v("3"), 3);
    assert_eq!(v("3"), 3.0);
    assert!(v("3.0") != 3, "a float is not an integer observation");
    assert_eq!(v("true"), true);
    assert_eq!(v("\"S\""), "S");
    assert!(v("\"3\"") != 3);
    assert!(serde_json::from_str::<Val>("null").is_err());
    assert!(serde_json::from_str::<Val>("[1]").is_err());
}

#[test]
fn a_lessons_own_kind_keeps_its_fields() {
    let e = decodes(
        r#"{"t_ms":3,"lesson":"lock","kind":"acquire","pid":7,"name":"buyer-1","what":"flock","value":2,"waited":true,"cpu_ms":1.25}"#,
    );
    let a = e.act("acquire").expect("an acquire");
    assert_eq!((a.name.as_str(), a.pid), ("buyer-1", 7));
    assert_eq!(a.str("what"), "flock");
    assert_eq!(a.int("value"), 2);
    assert_eq!(a.num("value"), 2.0);
    assert_eq!(a.num("cpu_ms"), 1.25);
    assert!(a.bool("waited") && a.has("waited") && !a.has("eof"));
    assert!(e.act("release").is_none());
    // Every lesson's kind names its process; its fields are scalars.
    refused(r#"{"t_ms":3,"lesson":"lock","kind":"acquire","pid":7,"what":"flock"}"#);
    refused(r#"{"t_ms":3,"lesson":"lock","kind":"acquire","pid":7,"name":"b","v":[1]}"#);
}

#[test]
#[should_panic(expected = "no integer field `valeu`")]
fn a_field_an_act_does_not_have_fails() {
    let e = decodes(r#"{"t_ms":3,"lesson":"lock","kind":"buy","pid":7,"name":"b","read":1}"#);
    e.act("buy").unwrap().int("valeu");
}

#[test]
#[should_panic(expected = "stdout line 2 is not an event")]
fn a_run_whose_stdout_has_a_line_that_is_no_event_fails_with_the_line() {
    let stdout = format!("{SPAWN}\n{{\"t_ms\":1}}\n");
    Run::new(&["--json", "fork"], 0, stdout, String::new()).events();
}

#[test]
fn a_run_reads_its_events_through_typed_accessors() {
    let exit = r#"{"t_ms":4,"lesson":"fork","kind":"exit","pid":12,"name":"child","exitcode":-15,"reaped_by":11}"#;
    let start = r#"{"t_ms":0,"lesson":"fork","kind":"lesson_start","pid":11,"schema":1,"title":"Fork","lang":"en"}"#;
    let stdout = format!("{start}\n{SPAWN}\n{exit}\n");
    let r = Run::new(&["--json", "fork"], 0, stdout, String::new());
    assert_eq!(r.main_pid(), 11);
    assert_eq!(r.spawn_of("child").pid, 12);
    assert_eq!(r.spawn_of_pid(12).name, "child");
    let x = r.exit_of(12);
    assert_eq!((x.exitcode, x.reaped_by, x.t_ms), (-15, 11, 4.0));
    assert_eq!(r.events().len(), 3);
    assert!(r.acts("acquire").is_empty());
}

#[test]
#[should_panic(expected = "is a core kind")]
fn a_core_kind_is_not_asked_for_as_a_lessons_own() {
    decodes(SPAWN).act("spawn");
}

#[test]
#[should_panic(expected = "no lesson documents a kind `aquire`")]
fn a_kind_no_lesson_documents_is_not_looked_for() {
    Run::new(&["--json", "lock"], 0, SPAWN.to_string(), String::new()).acts("aquire");
}
