//! The catalogue (`lossref::family`) is the one list of losses: every loss id belongs to
//! exactly one family, in SPEC §1's order, and every loss reaches every layer through it
//! (parsing, the certified reference, the fast f32/f64 paths, the precision table's
//! measures, the tolerance scales and the corpus generators), with one value group per
//! table row. A loss that a layer lacks fails here (and, for the matches over families,
//! does not compile).

use lossref::answer::Answer;
use lossref::case::case_from_json;
use lossref::corpus::all_cases;
use lossref::fast::dispatch;
use lossref::precision::{measures, quantities};
use lossref::reference::certified;
use lossref::spec::{Dtype, LossId, SPEC_LOSSES};
use lossref::tolerance::scales;

#[test]
fn every_loss_id_is_in_exactly_one_family_in_catalogue_order() {
    let listed: Vec<LossId> = lossref::family::LOSSES
        .iter()
        .flat_map(|family| family.iter().copied())
        .collect();
    assert_eq!(listed, LossId::ALL, "the catalogue's families, flattened");
    let names: Vec<&str> = LossId::ALL.iter().map(|l| l.as_str()).collect();
    assert_eq!(names, SPEC_LOSSES);
    for name in SPEC_LOSSES {
        assert_eq!(LossId::from_name(name).map(LossId::as_str), Some(*name));
    }
}

#[test]
fn every_loss_reaches_every_layer_through_the_catalogue() {
    let generated = all_cases();
    for loss in LossId::ALL {
        let cases: Vec<_> = generated
            .iter()
            .filter(|g| g.case["loss"] == loss.as_str())
            .collect();
        assert!(
            cases.len() >= 4,
            "{loss}: the corpus generators give {} cases",
            cases.len()
        );
        let g = cases
            .iter()
            .find(|g| g.tags.iter().any(|t| t == "random"))
            .unwrap_or_else(|| panic!("{loss}: no random case"));
        let case = case_from_json(&g.case).unwrap_or_else(|e| panic!("{}: {e}", g.id));
        assert_eq!(case.loss(), *loss);
        let exact = certified(&case).unwrap_or_else(|e| panic!("{}: {e}", g.id));
        let exact: Answer<f64> = exact.answer.try_map(|_, v| Ok::<_, ()>(v.f64)).unwrap();
        let groups: Vec<String> = exact
            .sections()
            .map(|(s, n, _)| format!("{s}/{n}"))
            .collect();
        let listed: Vec<String> = quantities(&case)
            .iter()
            .map(|(g, _)| g.to_string())
            .collect();
        assert_eq!(
            groups, listed,
            "{loss}: the reference's value groups and the table's rows"
        );
        for dtype in Dtype::ALL {
            let fast = match dtype {
                Dtype::Float32 => dispatch::evaluate::<f32>(&case),
                Dtype::Float64 => dispatch::evaluate::<f64>(&case),
            }
            .unwrap_or_else(|e| panic!("{}: fast {dtype:?}: {e}", g.id));
            let fast_groups: Vec<String> = fast
                .sections()
                .map(|(s, n, _)| format!("{s}/{n}"))
                .collect();
            assert_eq!(fast_groups, groups, "{loss}: the fast path's value groups");
            for m in measures(&case, &exact, dtype) {
                let values = exact.group(m.group).map_or(0, |t| t.values().len());
                assert_eq!(m.scales.len(), values, "{loss}: {} measures", m.group);
            }
        }
        for group in scales(&case, &exact) {
            let values = exact.group(&group.name).map_or(0, |t| t.values().len());
            assert_eq!(group.scales.len(), values, "{loss}: {} scales", group.name);
        }
    }
}
