//! The verdict in words (issue 14, item 7): every claim of every lesson has a sentence
//! in its words file (`[verdict.<observation>]`, en and zh, and optionally `failed`),
//! whose placeholders are observations of the same run, and the human view says it,
//! filled, in both languages.

use crate::common;

use std::collections::BTreeSet;

/// A lesson's words file, `lessons/<lesson>.toml`.
fn words(lesson: &str) -> toml::Table {
    let path = format!("{}/lessons/{lesson}.toml", env!("CARGO_MANIFEST_DIR"));
    toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// A lesson's `[verdict.*]` table: observation name → its sentences (en, zh, and the
/// `failed` en and zh when it has them).
fn sentences(lesson: &str) -> toml::Table {
    words(lesson)
        .get("verdict")
        .and_then(|v| v.as_table())
        .cloned()
        .unwrap_or_default()
}

/// The template of `line` in `lang`, for a claim that held or (`failed`) did not.
fn template<'a>(line: &'a toml::Value, lang: &str, failed: bool) -> &'a str {
    let variant = if failed { line.get("failed") } else { None };
    variant
        .unwrap_or(line)
        .get(lang)
        .and_then(|t| t.as_str())
        .unwrap_or_else(|| panic!("no {lang} in {line:?}"))
}

/// The `{names}` of a template.
fn placeholders(template: &str) -> Vec<&str> {
    template
        .split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
        .collect()
}

/// Whether `text` is `template` with each `{placeholder}` filled by some text that is
/// not empty and has no `{` (the values differ from run to run: only the words are
/// compared).
fn filled(template: &str, text: &str) -> bool {
    match template.split_once('{') {
        None => text == template,
        Some((lit, rest)) => {
            let Some(after) = text.strip_prefix(lit) else {
                return false;
            };
            let Some((_, tail)) = rest.split_once('}') else {
                return false;
            };
            // The value ends where the rest of the template can start: try each place.
            (1..=after.len())
                .filter(|&i| after.is_char_boundary(i))
                .take_while(|&i| !after[..i].contains('{'))
                .any(|i| filled(tail, &after[i..]))
        }
    }
}

/// Every claim of `lesson` (in its `--json` stream), and every observation its quiz asks
/// about, has a sentence whose placeholders are observations of the run; returns the
/// claims' names.
fn every_claim_has_words(lesson: &str, table: &toml::Table) -> BTreeSet<String> {
    let r = common::lesson_json_shared(lesson);
    let names: BTreeSet<String> = r.observations().iter().map(|o| o.name.clone()).collect();
    // The claims, and the observations the quiz judges in words too.
    let quizzed = quiz_observations(lesson);
    let mut claims = BTreeSet::new();
    for o in r.observations().iter() {
        let Some(line) = table.get(&o.name) else {
            assert!(
                o.holds.is_none() && !quizzed.contains(&o.name),
                "lessons/{lesson}.toml has no [verdict.{}]",
                o.name
            );
            continue;
        };
        for (lang, failed) in [("en", false), ("zh", false), ("en", true), ("zh", true)] {
            for p in placeholders(template(line, lang, failed)) {
                assert!(
                    names.contains(p),
                    "lessons/{lesson}.toml [verdict.{}] {lang}: {{{p}}} is not an observation of the run ({names:?})",
                    o.name
                );
            }
        }
        if o.holds.is_some() {
            claims.insert(o.name.clone());
        }
    }
    claims
}

/// The observations the lesson's `[[quiz]]` questions are judged against.
fn quiz_observations(lesson: &str) -> BTreeSet<String> {
    let quiz = words(lesson).get("quiz").and_then(|q| q.as_array()).cloned();
    (quiz.unwrap_or_default().iter())
        .filter_map(|q| q.get("observation").and_then(|o| o.as_str()))
        .map(str::to_string)
        .collect()
}

/// The human view of `lesson` in `lang` says each claim's sentence, filled, on the row
/// that ends with the claim's name (the variant its mark ✓ or ✗ calls for).
fn human_says_each(lesson: &str, lang: &str, table: &toml::Table, claims: &BTreeSet<String>) {
    let r = common::run_env(&["--speed", "0", "--lang", lang, lesson], &[("NO_COLOR", "1")]);
    let out = &r.stdout;
    for name in claims {
        let tail = format!("  {name}");
        let row = out.lines().find(|l| {
            let l = l.trim_start();
            (l.starts_with('✓') || l.starts_with('✗'))
                && (l.ends_with(&tail) || l.contains(&format!("{tail} · ")))
        });
        // A claim of one run may be a fact in another (pool's speedup on one usable
        // CPU): then it is a row of the table of facts.
        let fact = || out.lines().any(|l| l.starts_with(&format!("    {name} ")));
        let Some(row) = row else {
            assert!(fact(), "{lesson} ({lang}): no row for {name}\n{}", r.show());
            continue;
        };
        let failed = row.trim_start().starts_with('✗');
        let text = row.trim_start().trim_start_matches(['✓', '✗']).trim_start();
        let text = &text[..text.rfind(&tail).unwrap()];
        let want = template(&table[name.as_str()], lang, failed);
        assert!(!text.contains('{'), "{lesson} ({lang}): unfilled: {row}");
        assert!(
            filled(want, text),
            "{lesson} ({lang}): the row of {name} is not its sentence\n  row:  {text}\n  want: {want}"
        );
    }
}

#[test]
fn the_template_matcher_matches_filled_sentences_only() {
    assert!(filled("{a} of {b}.", "7 of 8.5."));
    assert!(filled("sold {n}, with {t} on offer.", "sold 8, with 1 on offer."));
    assert!(!filled("sold {n}.", "sold ."));
    assert!(!filled("sold {n}.", "sold {n}."));
    assert!(!filled("sold {n}.", "bought 3."));
}

#[test]
fn every_claim_is_said_in_words_in_both_languages() {
    for (lesson, _) in common::lessons() {
        let table = sentences(&lesson);
        let claims = every_claim_has_words(&lesson, &table);
        for lang in ["en", "zh"] {
            human_says_each(&lesson, lang, &table, &claims);
        }
    }
}
