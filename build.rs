//! Turns the words (`lessons/*.toml`) into a table of their keys and placeholders
//! (`$OUT_DIR/keys.rs`), so that `say!`, `say_for!`, `step!` and `ui!` check at compile
//! time that a key exists and that every `{placeholder}` of its line is given: a
//! misspelled key or a forgotten argument fails `cargo build`, on the line that has it.
//!
//! It also lists the integration tests' modules (`$OUT_DIR/it_mods.rs`, every
//! `tests/it/*.rs` but `main.rs`), which `tests/it/main.rs` includes: a lesson's test file
//! is found by being there, as its words file is.

use std::collections::BTreeSet;
use std::fmt::Write as _;

/// The `{names}` of a template (the same rule as `words::placeholders`).
fn placeholders(template: &str, into: &mut BTreeSet<String>) {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                // `{n|waiter|waiters}` names `n` (the English plural, see words::fill).
                let name = &after[..close];
                into.insert(name.split('|').next().unwrap_or(name).to_string());
                rest = &after[close + 1..];
            }
            None => break,
        }
    }
}

/// One section (`say`, `step`, `ui`) as Rust: `&[("key", &["a", "b"]), …]`.
fn section(words: &toml::Table, name: &str) -> String {
    let mut out = String::from("&[");
    if let Some(t) = words.get(name).and_then(|v| v.as_table()) {
        for (key, line) in t {
            let mut names = BTreeSet::new();
            if let Some(line) = line.as_table() {
                for field in ["en", "zh", "hint", "python", "syscall"] {
                    if let Some(text) = line.get(field).and_then(|v| v.as_str()) {
                        placeholders(text, &mut names);
                    }
                }
            }
            let names: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
            write!(out, "({key:?}, &[{}]), ", names.join(", ")).unwrap();
        }
    }
    out.push(']');
    out
}

fn main() {
    println!("cargo:rerun-if-changed=lessons");
    let mut files: Vec<_> = std::fs::read_dir("lessons")
        .expect("the lessons directory")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut out = String::new();
    for path in files {
        println!("cargo:rerun-if-changed={}", path.display());
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        let src = std::fs::read_to_string(&path).unwrap();
        // A file that does not parse is reported by the program's own parse (with
        // line and column); here it simply has no keys.
        let words: toml::Table = src.parse().unwrap_or_default();
        let ident = stem.replace('-', "_").to_uppercase();
        writeln!(
            out,
            "/// The keys of `lessons/{stem}.toml`.\npub const {ident}: Table = Table {{ say: {}, step: {}, ui: {} }};",
            section(&words, "say"),
            section(&words, "step"),
            section(&words, "ui"),
        )
        .unwrap();
    }
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap());
    std::fs::write(out_dir.join("keys.rs"), out).unwrap();
    std::fs::write(out_dir.join("it_mods.rs"), test_modules()).unwrap();
}

/// `#[path = "…/tests/it/x.rs"] mod x;` for every module of the integration tests.
fn test_modules() -> String {
    println!("cargo:rerun-if-changed=tests/it");
    let dir = std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("tests/it");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter_map(|f| f.strip_suffix(".rs").map(str::to_string))
                .filter(|n| n != "main")
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut out = String::new();
    for n in names {
        let path = dir.join(format!("{n}.rs"));
        writeln!(out, "#[path = {:?}]\nmod {n};", path.display().to_string()).unwrap();
    }
    out
}
