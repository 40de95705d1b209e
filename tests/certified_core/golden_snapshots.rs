//! Snapshots of the exact reference outputs of the golden set in `fixtures/golden/`: every
//! value as its certified 36-digit decimal and as the hexadecimal binary64 it rounds to.
//! Never rounded floats; CI compares and never accepts (INSTA_UPDATE=no). The answers are
//! `lossref eval`'s own (`certified_rounded`: a block of rows at a time where the family
//! splits so).

use lossref::case::parse_case;
use lossref::reference::blocks::certified_rounded;
use lossref::report::eval_json;

#[test]
fn golden_reference_values() {
    let mut files: Vec<_> = std::fs::read_dir("fixtures/golden")
        .expect("fixtures/golden exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "the golden set has {} cases", files.len());
    for path in files {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let case = parse_case(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let answer =
            certified_rounded(&case, true).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let json = serde_json::to_string_pretty(&eval_json(case.loss(), &answer, true)).unwrap();
        insta::assert_snapshot!(name, json);
    }
}

/// Coverage: every loss that `lossref eval` accepts has at least one golden case.
#[test]
fn every_implemented_loss_has_a_golden_case() {
    let losses: Vec<lossref::spec::LossId> = std::fs::read_dir("fixtures/golden")
        .expect("fixtures/golden exists")
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .filter_map(|text| parse_case(&text).ok())
        .map(|case| case.loss())
        .collect();
    for loss in lossref::spec::LossId::ALL {
        assert!(
            losses.contains(loss),
            "no golden case for `{loss}` in fixtures/golden/"
        );
    }
}
