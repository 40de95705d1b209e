//! Every proof in `proofs/` ties its steps to tests by naming them in backticks. This test
//! keeps those names honest: each one must be a `#[test]` function (plain, proptest or
//! quickcheck) somewhere in `tests/` or `src/`, not marked `#[ignore]`, so that CI runs it.
//! A backticked snake_case word that is not a test must be one of the few code words the
//! proofs use ([`VOCABULARY`]); anything else (a typo, a renamed test, a name split over
//! two lines or abbreviated with "…") fails here.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

/// Backticked snake_case words in the proofs that are code, not tests.
const VOCABULARY: &[&str] = &[
    "softmax_ce",        // a loss id
    "margin_grad",       // a parameter
    "correctly_rounded", // a tier
];

/// The theorems of SPEC §2, each with its proof.
const THEOREMS: &[&str] = &["t1_", "t2_", "t3_", "t4_", "t5_", "t6_", "t7_"];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The names of the functions marked `#[test]` (and not `#[ignore]`) in `text`.
fn test_functions(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(k) = rest.find("#[test]") {
        rest = &rest[k + "#[test]".len()..];
        let Some(f) = rest.find("fn ") else { break };
        let between = &rest[..f];
        let name: String = rest[f + 3..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !between.contains("#[ignore") && !name.is_empty() {
            names.push(name);
        }
    }
    names
}

/// Every backticked span of a Markdown text (code spans may run over a line break).
fn code_spans(text: &str) -> Vec<String> {
    let mut spans = Vec::new();
    let mut parts = text.split('`');
    parts.next();
    while let (Some(inside), Some(_)) = (parts.next(), parts.next()) {
        spans.push(inside.to_string());
    }
    spans
}

/// A span that names (or tries to name) a test: snake_case with at least one underscore,
/// possibly broken by a line break or an ellipsis.
fn looks_like_a_test_name(span: &str) -> bool {
    let compact: String = span.split_whitespace().collect();
    compact.contains('_')
        && compact.starts_with(|c: char| c.is_ascii_lowercase())
        && compact
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '…')
}

#[test]
fn every_test_a_proof_names_exists_and_runs_in_ci() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("tests"), &mut files);
    rust_files(&root.join("src"), &mut files);
    let tests: BTreeSet<String> = files
        .iter()
        .flat_map(|f| test_functions(&fs::read_to_string(f).unwrap()))
        .collect();
    assert!(tests.contains("every_test_a_proof_names_exists_and_runs_in_ci"));
    let mut proofs: Vec<_> = fs::read_dir(root.join("proofs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    proofs.sort();
    let mut failures = Vec::new();
    for theorem in THEOREMS {
        let has_proof = proofs.iter().any(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(theorem))
        });
        if !has_proof {
            failures.push(format!("no proof file proofs/{theorem}*.md"));
        }
    }
    for proof in &proofs {
        let text = fs::read_to_string(proof).unwrap();
        let name = proof.file_name().unwrap().to_string_lossy().to_string();
        let mut named = 0;
        for span in code_spans(&text) {
            if !looks_like_a_test_name(&span) || VOCABULARY.contains(&span.as_str()) {
                continue;
            }
            if tests.contains(&span) {
                named += 1;
            } else {
                failures.push(format!(
                    "{name}: `{span}` is not a test function that CI runs"
                ));
            }
        }
        if named == 0 {
            failures.push(format!("{name}: names no test"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_name_finder_sees_plain_proptest_and_ignored_tests() {
    let text = "#[test]\nfn plain() {}\nproptest! {\n    #[test]\n    fn law(x in 0..3) {}\n}\n#[test]\n#[ignore]\nfn slow() {}\n";
    assert_eq!(test_functions(text), vec!["plain", "law"]);
    assert!(looks_like_a_test_name("t6_…_psi_1_is_cos"));
    assert!(looks_like_a_test_name(
        "lsoftmax_gradients_match_numerical_\n  differentiation"
    ));
    assert!(!looks_like_a_test_name("tests/theorems/t5_softmax_laws.rs"));
    assert!(!looks_like_a_test_name("reduction = mean"));
}
