//! Lesson `isolation`: copy-on-write and MAP_SHARED, checked from the events.

use crate::common;

use common::How;

#[test]
fn the_parent_keeps_100_and_the_shared_page_shows_0() {
    let r = common::lesson_json("isolation", &[]);
    r.assert_code(0);
    assert_eq!(r.obs("parent_value_before"), 100);
    assert_eq!(r.obs("child_value"), 0);
    assert_eq!(r.obs("parent_value_after"), 100);
    assert_eq!(r.obs("same_virtual_address"), true);
    assert_eq!(r.obs("shared_value_after"), 0);

    // The addresses printed by parent and child are literally the same text, and the
    // child's lines come from forked children of the main process.
    let addr = |text: &str| {
        text.split_whitespace()
            .find(|w| w.starts_with("0x"))
            .map(|w| w.trim_end_matches(['.', ',', ':', '。', '，']).to_string())
            .expect("an address")
    };
    let parent_addr = addr(&r.say("global").text);
    let child_line = r.say("child_set");
    assert_eq!(addr(&child_line.text), parent_addr);
    let spawn = r
        .spawns()
        .into_iter()
        .find(|e| e.pid == child_line.pid)
        .expect("the child was spawned");
    assert_eq!(spawn.how, How::Fork);
    assert_eq!(spawn.ppid, r.main_pid());
}
