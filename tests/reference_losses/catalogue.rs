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
use lossref::spec::{Arithmetic, Dtype, LossId, SPEC_LOSSES};
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
            let fast = match dtype.column() {
                Arithmetic::Float32 => dispatch::evaluate::<f32>(&case),
                Arithmetic::Float64 => dispatch::evaluate::<f64>(&case),
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
        for dtype in Dtype::ALL {
            for group in scales(&case, &exact, dtype) {
                let values = exact.group(&group.name).map_or(0, |t| t.values().len());
                assert_eq!(group.scales.len(), values, "{loss}: {} scales", group.name);
            }
        }
    }
}

/// Cases built by hand through the public fields are checked by every entry point: each
/// is refused with the same message, never a panic (a bad label used to index out of
/// bounds in the center reference) or an inconsistent answer (a cosface whose margin is
/// ArcFace's).
#[test]
fn cases_built_by_hand_are_validated_by_every_entry_point() {
    use lossref::matrix::Matrix;
    use lossref::spec::{
        Boundary, Case, CenterCase, DistillCase, Margin, MarginGrad, MultiplicativeCase,
        NormalizedCase, Reduction, SoftTerm, SoftmaxCase, SoftmaxCeCase,
    };
    let m = |rows, cols, v: Vec<f64>| Matrix::from_vec(rows, cols, v).unwrap();
    let unit = || m(2, 2, vec![1.0, 0.0, 0.0, 1.0]);
    let bad: Vec<(Case, &str)> = vec![
        (
            Case::Softmax(SoftmaxCase {
                temperature: 0.0,
                logits: m(1, 2, vec![0.0, 1.0]),
            }),
            "params.temperature: must be a number > 0, got 0",
        ),
        (
            Case::SoftmaxCe(SoftmaxCeCase {
                reduction: Reduction::Mean,
                logits: m(1, 2, vec![0.0, f64::NAN]),
                labels: vec![0],
                options: Default::default(),
            }),
            "logits[0][1]: is NaN; inputs must be finite",
        ),
        (
            Case::Distill(DistillCase {
                temperature: 4.0,
                alpha: 0.5,
                soft: SoftTerm::Kl,
                reduction: Reduction::Sum,
                student: m(1, 3, vec![0.0, 1.0, 2.0]),
                teacher: m(1, 2, vec![0.0, 1.0]),
                labels: vec![0],
            }),
            "teacher_logits: is 1×2 but student_logits is 1×3; both are N×C",
        ),
        (
            Case::Multiplicative(MultiplicativeCase {
                loss: LossId::LSoftmax,
                margin: 2,
                lambda: 0.0,
                reduction: Reduction::Mean,
                features: m(1, 2, vec![1.0, 1.0]),
                weights: m(2, 2, vec![1.0, 0.0, 0.0, 0.0]),
                labels: vec![1],
            }),
            "weights[1]: is a zero-norm row and a label's class: cos θ to it is undefined (SPEC §1, undefined points)",
        ),
        (
            Case::Center(CenterCase {
                alpha: 0.5,
                reduction: Reduction::Mean,
                features: m(1, 2, vec![1.0, 2.0]),
                centers: unit(),
                labels: vec![5],
            }),
            "labels[0]: label 5 is out of range 0..2 (C = 2)",
        ),
        (
            Case::SoftmaxCe(SoftmaxCeCase {
                reduction: Reduction::Mean,
                logits: m(1, 2, vec![0.0, 1.0]),
                labels: vec![0],
                options: lossref::spec::CeOptions {
                    weight: Some(vec![1.0, 2.0, 3.0]),
                    ..Default::default()
                },
            }),
            "inputs.weight: has 3 entries but needs one per class (2)",
        ),
        (
            Case::SoftmaxCe(SoftmaxCeCase {
                reduction: Reduction::Mean,
                logits: m(2, 2, vec![0.0, 1.0, 2.0, 3.0]),
                labels: vec![0, 0],
                options: lossref::spec::CeOptions {
                    ignore_index: Some(-100),
                    ignored_rows: vec![true, true],
                    ..Default::default()
                },
            }),
            "params.reduction: `mean` divides by Σ w_(y_i) over the rows not ignored, which is 0 here (every row is ignored)",
        ),
        (
            Case::Focal(lossref::spec::FocalCase {
                rule: lossref::spec::TargetRule::Focal {
                    gamma: 2.0,
                    alpha: Some(vec![1.0, -1.0]),
                },
                reduction: Reduction::Mean,
                logits: m(1, 2, vec![0.0, 1.0]),
                labels: vec![0],
            }),
            "inputs.alpha[1]: class weight -1 must be finite and ≥ 0",
        ),
        (
            Case::Normalized(NormalizedCase {
                loss: LossId::CosFace,
                scale: 64.0,
                margin: Margin::Angular {
                    m: 0.5,
                    boundary: Boundary::None,
                    grad: MarginGrad::Full,
                },
                reduction: Reduction::Mean,
                features: m(1, 2, vec![1.0, 2.0]),
                weights: unit(),
                labels: vec![0],
                margins: None,
                margins_as: Default::default(),
                classes: None,
            }),
            "margin: Angular { m: 0.5, boundary: None, grad: Full } is not the rule of `cosface`",
        ),
        (
            Case::Normalized(NormalizedCase {
                loss: LossId::NormFace,
                scale: 16.0,
                margin: Margin::None,
                reduction: Reduction::Mean,
                features: m(1, 2, vec![0.0, 0.0]),
                weights: unit(),
                labels: vec![0],
                margins: None,
                margins_as: Default::default(),
                classes: None,
            }),
            "features[0]: is a zero-norm row",
        ),
        (
            Case::Subcenter(lossref::spec::SubcenterCase {
                scale: 64.0,
                margin: Margin::Angular {
                    m: 0.5,
                    boundary: Boundary::None,
                    grad: MarginGrad::Full,
                },
                reduction: Reduction::Mean,
                features: m(1, 2, vec![1.0, 2.0]),
                weights: m(3, 2, vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0]),
                labels: vec![0],
                subcenters: 2,
            }),
            "inputs.weights: has 3 rows, which params.subcenters = 2 does not divide",
        ),
        (
            Case::Adaptive(lossref::spec::AdaptiveCase {
                scale: 64.0,
                rule: lossref::spec::AdaptiveRule::AdaFace {
                    m: 0.4,
                    h: 0.333,
                    t_alpha: 0.01,
                    eps: 1e-3,
                    batch_mean: 20.0,
                    batch_std: 100.0,
                },
                reduction: Reduction::Mean,
                features: m(1, 2, vec![1.0, 2.0]),
                weights: unit(),
                labels: vec![0],
            }),
            "inputs.features: has N = 1 row; adaface's σ is the unbiased standard deviation",
        ),
    ];
    let families: std::collections::BTreeSet<&str> = bad
        .iter()
        .map(|(c, _)| {
            lossref::family::FAMILIES
                .iter()
                .find(|(_, losses)| losses.contains(&c.loss()))
                .unwrap()
                .0
        })
        .collect();
    assert_eq!(
        families.len(),
        lossref::family::FAMILIES.len(),
        "one bad case per family at least"
    );
    for (case, want) in bad {
        let messages = [
            case.validate().map(|_| ()),
            certified(&case).map(|_| ()),
            lossref::reference::certified_plain(&case).map(|_| ()),
            lossref::reference::evaluate(&case, 128).map(|_| ()),
            dispatch::evaluate::<f32>(&case).map(|_| ()),
            dispatch::evaluate::<f64>(&case).map(|_| ()),
        ]
        .map(|r| r.expect_err(want).to_string());
        for got in messages {
            assert!(
                got.starts_with(want),
                "{got}\n  does not start with\n{want}"
            );
        }
    }
}
