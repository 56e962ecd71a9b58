//! The command line: usage errors, languages, colours, words.

use crate::common;

#[test]
fn unknown_lesson_is_a_usage_error_with_a_suggestion() {
    let r = common::run(&["forkk"]);
    r.assert_code(2);
    assert!(r.stderr.contains("fork"), "{}", r.show());
    assert!(!r.stderr.contains("panicked"), "{}", r.show());
}

#[test]
fn bad_global_options_exit_2_without_panic() {
    for args in [
        &["--speed", "fast", "fork"][..],
        &["--speed", "NaN", "fork"],
        &["--speed", "-1", "fork"],
        &["--speed", "1e9", "fork"],
        &["--lang", "fr", "fork"],
        &["--color", "sometimes", "fork"],
        &["explain", "nope"],
        &["completions", "tcsh"],
        &[],
    ] {
        let r = common::run(args);
        r.assert_code(2);
        assert!(!r.stderr.contains("panicked"), "{}", r.show());
    }
}

#[test]
fn list_names_every_lesson() {
    let r = common::run(&["list"]);
    r.assert_code(0);
    for name in ["fork", "isolation"] {
        assert!(r.stdout.contains(name), "{}", r.show());
    }
}

#[test]
fn explain_shows_python_and_syscalls_in_both_languages() {
    let en = common::run(&["--lang", "en", "explain", "fork"]);
    en.assert_code(0);
    assert!(
        en.stdout.contains("p.start()") && en.stdout.contains("fork(2)"),
        "{}",
        en.show()
    );
    let zh = common::run(&["--lang", "zh", "explain", "fork"]);
    zh.assert_code(0);
    assert!(zh.stdout.contains("进程"), "{}", zh.show());
}

#[test]
fn lang_zh_narrates_in_chinese() {
    let r = common::run(&["--speed", "0", "--json", "--lang", "zh", "isolation"]);
    r.assert_code(0);
    let say = r.says();
    assert!(!say.is_empty());
    assert!(
        say.iter().all(|e| e
            .text
            .chars()
            .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))),
        "every line is Chinese\n{}",
        r.show()
    );
    let human = common::run_env(&["--speed", "0", "isolation"], &[("LANG", "zh_CN.UTF-8")]);
    human.assert_code(0);
    assert!(
        human.stdout.contains("本次运行观察到的结果"),
        "{}",
        human.show()
    );
}

#[test]
fn no_color_means_no_escape_codes_and_always_means_escape_codes() {
    let plain = common::run_env(&["--speed", "0", "isolation"], &[("NO_COLOR", "1")]);
    plain.assert_code(0);
    assert!(!plain.stdout.contains('\x1b'), "{}", plain.show());
    let never = common::run(&["--speed", "0", "--color", "never", "isolation"]);
    assert!(!never.stdout.contains('\x1b'));
    let always = common::run_env(
        &["--speed", "0", "--color", "always", "isolation"],
        &[("NO_COLOR", "1")],
    );
    always.assert_code(0);
    assert!(always.stdout.contains("\x1b["), "{}", always.show());
    let forced = common::run_env(&["--speed", "0", "isolation"], &[("CLICOLOR_FORCE", "1")]);
    assert!(forced.stdout.contains("\x1b["), "{}", forced.show());
}

#[test]
fn json_stdout_has_nothing_but_json() {
    let r = common::run(&["--speed", "0", "--json", "--color", "always", "fork"]);
    r.assert_code(0);
    assert!(!r.stdout.contains('\x1b'));
    common::check_contract(&r);
}

#[test]
fn completions_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let r = common::run(&["completions", shell]);
        r.assert_code(0);
        assert!(r.stdout.contains("isolation"), "{}", r.show());
        assert!(!r.stdout.contains("__child"), "{shell}: offers the hidden role");
    }
}

/// What bash itself completes with the script sourced, at the top level and below it
/// (subcommands, a lesson's options, `explain`'s lesson names, a hyphenated lesson).
#[test]
fn bash_completes_subcommands_options_and_lesson_names() {
    let r = common::run(&["completions", "bash"]);
    r.assert_code(0);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("mp-demo.bash");
    std::fs::write(&script, &r.stdout).unwrap();
    // COMP_* as bash sets them for the line typed so far, then the function `complete`
    // names for mp-demo.
    let complete = r#"
source "$1"; line="$2"
fn=$(complete -p mp-demo | sed -E 's/.* -F ([^ ]+) .*/\1/')
read -ra COMP_WORDS <<< "$line"; [[ "$line" == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMP_LINE="$line"; COMP_POINT=${#line}
"$fn" mp-demo "${COMP_WORDS[-1]}" "${COMP_WORDS[-2]}"
printf '%s\n' "${COMPREPLY[@]}"
"#;
    let offers = |line: &str| -> Vec<String> {
        let out = std::process::Command::new("bash")
            .args(["-c", complete, "bash", script.to_str().unwrap(), line])
            .output()
            .expect("bash runs");
        assert!(out.status.success(), "{line}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect()
    };
    for (line, wanted) in [
        ("mp-demo lo", "lock"),
        ("mp-demo re", "replay"),
        ("mp-demo lock --b", "--buyers"),
        ("mp-demo explain ", "pool"),
        ("mp-demo sync-vs-async --", "--json"),
        ("mp-demo tour --", "--from"),
    ] {
        let got = offers(line);
        assert!(got.iter().any(|w| w == wanted), "{line:?} offers {got:?}, not {wanted}");
        assert!(!got.iter().any(|w| w.contains("__child")), "{line:?} offers {got:?}");
    }
}

#[test]
fn a_size_out_of_range_says_its_range_in_words_on_one_line() {
    for (value, says) in [
        ("99", "99 is out of range: it goes from 2 to 64"),
        ("-1", "\"-1\" is not a whole number from 2 to 64"),
        ("x", "\"x\" is not a whole number from 2 to 64"),
    ] {
        let r = common::run(&["lock", "--buyers", value]);
        r.assert_code(2);
        assert!(r.stderr.contains(says), "{}", r.show());
        assert!(!r.stderr.contains("..="), "{}", r.show());
        assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.show());
    }
}

/// `--color` applies to clap's help too (it is written before `--color` is parsed).
#[test]
fn help_is_coloured_only_when_asked() {
    let coloured = common::run(&["--color", "always", "--help"]);
    coloured.assert_code(0);
    assert!(coloured.stdout.contains("\x1b["), "{}", coloured.show());
    let plain = common::run(&["lock", "--color", "never", "--help"]);
    plain.assert_code(0);
    assert!(!plain.stdout.contains("\x1b["), "{}", plain.show());
}

/// `mp-demo man` prints a man page (roff) naming every subcommand.
#[test]
fn man_prints_a_man_page() {
    let r = common::run(&["man"]);
    r.assert_code(0);
    assert!(r.stdout.contains(".TH mp-demo 1"), "{}", r.show());
    for sub in ["replay", "tour", "explain", "lock"] {
        assert!(r.stdout.contains(sub), "no {sub} in the man page");
    }
}
