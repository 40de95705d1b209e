//! SPEC §5's cross-entropy family (`softmax_ce` with class weights, ignored rows, label
//! smoothing and soft targets; `focal`; `poly1`): every analytic reference gradient against
//! central differences of the loss evaluated from its definition (`common::gradient`), on
//! random batches of every logit regime with random options, and the errors that name
//! their place.

use crate::common;

use common::gradient::check_gradient;
use common::{any_batch, Batch};
use lossref::case::parse_case;
use lossref::matrix::Matrix;
use lossref::mp::certify::CertifiedAnswer;
use lossref::mp::interval::Interval;
use lossref::reference::certified;
use lossref::spec::{Case, CeOptions, FocalCase, Reduction, SoftmaxCeCase, TargetRule};
use proptest::prelude::*;

/// Bits beyond the quotient's precision for the definitions' own cancellation: ln Σ e^z − z_y
/// of a target that dominates by a gap G loses about 1.44·G bits (G ≤ 10³ here).
const DEFINITION_BITS: u32 = 3072;

/// log p_j = z_j − ln Σ_k e^{z_k} of one row, by the definition.
fn log_softmax(row: &[Interval], prec: u32) -> Vec<Interval> {
    let zero = Interval::from_i64(prec, 0);
    let row: Vec<Interval> = row.iter().map(|z| z.add(&zero)).collect();
    let e: Vec<Interval> = row.iter().map(Interval::exp).collect();
    let lse = Interval::sum(prec, &e).ln();
    row.iter().map(|z| z.sub(&lse)).collect()
}

/// The options' loss from SPEC §5's definition: Σ_i [(1 − ε)·w_y·(−log p_y) + ε/C·Σ_c
/// w_c·(−log p_c)] for labels (ignored rows 0), Σ_i −Σ_c w_c·((1 − ε)·t_c + ε/C)·log p_c for
/// soft targets; `mean` over Σ w_y (labels) or N (soft).
fn options_loss(case: &SoftmaxCeCase, z: &Matrix<Interval>, prec: u32) -> Interval {
    let prec = prec + DEFINITION_BITS;
    let o = &case.options;
    let c = z.cols();
    let num = |x: f64| Interval::from_f64(prec, x);
    let w = |k: usize| num(o.weight.as_ref().map_or(1.0, |w| w[k]));
    let eps = num(o.label_smoothing);
    let keep = num(1.0).sub(&eps);
    let share = eps.div_i64(c as i64);
    let mut total = num(0.0);
    let mut divisor = num(0.0);
    for (i, row) in z.iter_rows().enumerate() {
        let lp = log_softmax(row, prec);
        match &o.targets {
            Some(t) => {
                for (k, l) in lp.iter().enumerate() {
                    let q = keep.mul(&num(*t.get(i, k))).add(&share);
                    total = total.sub(&w(k).mul(&q).mul(l));
                }
                divisor = divisor.add(&num(1.0));
            }
            None if o.ignored_rows.get(i).copied().unwrap_or(false) => {}
            None => {
                let y = case.labels[i];
                total = total.sub(&keep.mul(&w(y)).mul(&lp[y]));
                for (k, l) in lp.iter().enumerate() {
                    total = total.sub(&share.mul(&w(k)).mul(l));
                }
                divisor = divisor.add(&w(y));
            }
        }
    }
    match case.reduction {
        Reduction::Mean => total.div(&divisor),
        Reduction::Sum => total,
    }
}

/// focal's and poly1's loss from their definitions, 1 − p_y as written.
fn focal_loss(case: &FocalCase, z: &Matrix<Interval>, prec: u32) -> Interval {
    let prec = prec + DEFINITION_BITS;
    let num = |x: f64| Interval::from_f64(prec, x);
    let mut total = num(0.0);
    for (row, &y) in z.iter_rows().zip(&case.labels) {
        let lp = log_softmax(row, prec)[y].clone();
        let rest = num(1.0).sub(&lp.exp());
        let term = match &case.rule {
            TargetRule::Focal { gamma, alpha } => {
                let a = num(alpha.as_ref().map_or(1.0, |a| a[y]));
                let power = if *gamma == 0.0 {
                    num(1.0)
                } else {
                    rest.ln().mul(&num(*gamma)).exp()
                };
                a.mul(&power).mul(&lp).neg()
            }
            TargetRule::Poly1 { epsilon } => lp.neg().add(&num(*epsilon).mul(&rest)),
        };
        total = total.add(&term);
    }
    match case.reduction {
        Reduction::Mean => total.div_i64(z.rows() as i64),
        Reduction::Sum => total,
    }
}

/// The bits of the analytic enclosures: far past the certified answer's own (which stops
/// once each value's roundings are decided), so that a gradient entry that cancels (a
/// near-tie under ε = 1: p_j − 1/C) is still narrow enough to compare to 40 digits;
/// doubled, up to [`MOST_ANALYTIC_BITS`], while an entry is not (a gradient of 10⁻³⁷⁸
/// formed beside terms of size 1 keeps an absolute width of 2^−1024 at 1024 bits).
const ANALYTIC_BITS: u32 = 1024;

/// The most bits [`check_case`] gives the analytic enclosures.
const MOST_ANALYTIC_BITS: u32 = 16_384;

fn check_case(case: &Case) {
    // the certified answer (its proven exact zeros are points at 0) ...
    let cert: CertifiedAnswer = certified(case).unwrap_or_else(|e| panic!("{case:?}: {e}"));
    // ... and the reference's formulas at a precision that resolves every cancellation here:
    // each nonzero entry narrower than the checker's 10^−45 relative
    let proven_zero: Vec<bool> = cert
        .answer
        .gradient("logits")
        .unwrap()
        .values()
        .iter()
        .map(|c| c.enclosure.is_point() && c.enclosure.lo().is_zero())
        .collect();
    let narrow = |a: &lossref::answer::Answer<Interval>| {
        let values = a.gradient("logits").unwrap().values();
        values.iter().zip(&proven_zero).all(|(g, &zero)| {
            zero || (!g.contains_zero()
                && rug::Float::with_val(64, g.width() / g.mid().abs()) < 1e-45)
        })
    };
    let mut bits = ANALYTIC_BITS;
    let mut ans = lossref::reference::evaluate(case, bits).unwrap();
    while !narrow(&ans) && bits < MOST_ANALYTIC_BITS {
        bits *= 2;
        ans = lossref::reference::evaluate(case, bits).unwrap();
    }
    let loss = &ans.output("loss").unwrap().values()[0].clone();
    let grads: Vec<Interval> = ans
        .gradient("logits")
        .unwrap()
        .values()
        .iter()
        .zip(cert.answer.gradient("logits").unwrap().values())
        .map(|(wide, c)| {
            let zero = c.enclosure.is_point() && c.enclosure.lo().is_zero();
            if zero {
                c.enclosure.clone()
            } else {
                wide.clone()
            }
        })
        .collect();
    let what = format!("{case:?}");
    match case {
        Case::SoftmaxCe(c) => check_gradient(&what, loss, &grads, &c.logits, |z, prec| {
            options_loss(c, z, prec)
        }),
        Case::Focal(c) => check_gradient(&what, loss, &grads, &c.logits, |z, prec| {
            focal_loss(c, z, prec)
        }),
        _ => unreachable!("the cross-entropy family"),
    }
}

/// Options drawn for a batch: weights (with a zero), ε, an ignored row, soft targets.
fn options_for(b: &Batch) -> impl Strategy<Value = (Vec<usize>, CeOptions)> {
    let (n, c) = (b.logits.rows(), b.logits.cols());
    let labels = b.labels.clone();
    (
        proptest::option::of(proptest::collection::vec(
            prop_oneof![Just(0.0), 1e-3f64..1e3],
            c,
        )),
        prop_oneof![Just(0.0), Just(1.0), 0.0f64..1.0],
        any::<bool>(),
        proptest::option::of(proptest::collection::vec(0.0f64..2.0, n * c)),
    )
        .prop_map(move |(weight, eps, ignore_first, soft)| match soft {
            Some(t) => (
                Vec::new(),
                CeOptions {
                    weight,
                    label_smoothing: eps,
                    targets: Matrix::from_vec(n, c, t),
                    ..CeOptions::default()
                },
            ),
            None => {
                let ignored: Vec<bool> = (0..n).map(|i| ignore_first && i == 0 && n > 1).collect();
                let any = ignored.iter().any(|&x| x);
                // a `mean` needs a kept row with a positive weight: the last row's class keeps 1
                let weight = weight.map(|mut w| {
                    w[labels[n - 1]] = 1.0;
                    w
                });
                (
                    labels.clone(),
                    CeOptions {
                        weight,
                        ignore_index: any.then_some(-100),
                        ignored_rows: if any { ignored } else { Vec::new() },
                        label_smoothing: eps,
                        targets: None,
                    },
                )
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(12)))]

    #[test]
    fn softmax_ce_options_gradient_matches_numdiff(
        (b, (labels, options)) in any_batch(false).prop_flat_map(|b| { let o = options_for(&b); (Just(b), o) }),
        sum in any::<bool>(),
    ) {
        let case = Case::new(SoftmaxCeCase {
            reduction: if sum { Reduction::Sum } else { Reduction::Mean },
            logits: b.logits.clone(),
            labels,
            options,
        }).unwrap();
        check_case(&case);
    }

    #[test]
    fn focal_and_poly1_gradients_match_numdiff(
        b in any_batch(false),
        gamma in prop_oneof![Just(0.0), Just(2.0), 0.1f64..5.0],
        epsilon in prop_oneof![Just(0.0), Just(-1.0), -1.0f64..3.0],
        alpha in any::<bool>(),
        sum in any::<bool>(),
    ) {
        let reduction = if sum { Reduction::Sum } else { Reduction::Mean };
        let c = b.logits.cols();
        let alpha = alpha.then(|| (0..c).map(|k| 0.25 + k as f64).collect());
        for rule in [TargetRule::Focal { gamma, alpha }, TargetRule::Poly1 { epsilon }] {
            let case = Case::new(FocalCase { rule, reduction, logits: b.logits.clone(), labels: b.labels.clone() }).unwrap();
            check_case(&case);
        }
    }
}

/// Each malformed option is refused with its place and reason (SPEC §5: weights of the wrong
/// length or negative, ignore_index with soft targets, a `mean` with nothing to average,
/// targets of the wrong shape, labels and targets together, α of the wrong length).
#[test]
fn malformed_options_are_refused_naming_their_place() {
    let cases = [
        (r#"{"loss": "softmax_ce", "inputs": {"logits": [[1, 2, 3]], "labels": [0], "weight": [1, 2]}}"#,
         "inputs.weight: has 2 entries but needs one per class (3)"),
        (r#"{"loss": "softmax_ce", "inputs": {"logits": [[1, 2, 3]], "labels": [0], "weight": [1, -2, 0]}}"#,
         "inputs.weight[1]: class weight -2 is negative; weights must be ≥ 0"),
        (r#"{"loss": "softmax_ce", "params": {"ignore_index": -100}, "inputs": {"logits": [[1, 2, 3]], "targets": [[1, 0, 0]]}}"#,
         "params.ignore_index: is -100, but soft targets have no labels to ignore"),
        (r#"{"loss": "softmax_ce", "params": {"ignore_index": -100}, "inputs": {"logits": [[1, 2, 3], [0, 0, 0]], "labels": [-100, -100]}}"#,
         "params.reduction: `mean` divides by Σ w_(y_i) over the rows not ignored, which is 0 here (every row is ignored)"),
        (r#"{"loss": "softmax_ce", "inputs": {"logits": [[1, 2, 3]], "labels": [1], "weight": [1, 0, 1]}}"#,
         "params.reduction: `mean` divides by Σ w_(y_i) over the rows not ignored, which is 0 here (every row not ignored has a class weight of 0)"),
        (r#"{"loss": "softmax_ce", "inputs": {"logits": [[1, 2, 3]], "targets": [[1, 0]]}}"#,
         "inputs.targets: has shape 1×2 but the logits are 1×3"),
        (r#"{"loss": "softmax_ce", "inputs": {"logits": [[1, 2, 3]], "labels": [0], "targets": [[1, 0, 0]]}}"#,
         "inputs.targets: given with labels"),
        (r#"{"loss": "softmax_ce", "inputs": {"logits": [[1, 2, 3]], "labels": [-100]}}"#,
         "inputs.labels[0]: label -100 is out of range 0..3 (C = 3) (a negative label marks an ignored row only with params.ignore_index)"),
        (r#"{"loss": "softmax_ce", "params": {"label_smoothing": 1.5}, "inputs": {"logits": [[1, 2, 3]], "labels": [0]}}"#,
         "params.label_smoothing: must be in [0, 1], got 1.5"),
        (r#"{"loss": "softmax_ce", "params": {"ignore_index": 0.5}, "inputs": {"logits": [[1, 2, 3]], "labels": [0]}}"#,
         "params.ignore_index: must be an integer or null, got 0.5"),
        (r#"{"loss": "focal", "inputs": {"logits": [[1, 2, 3]], "labels": [0], "alpha": [1, 1]}}"#,
         "inputs.alpha: has 2 entries but needs one per class (3)"),
        (r#"{"loss": "focal", "params": {"gamma": -1}, "inputs": {"logits": [[1, 2, 3]], "labels": [0]}}"#,
         "params.gamma: must be a number ≥ 0, got -1"),
        (r#"{"loss": "poly1", "params": {"epsilon": "two"}, "inputs": {"logits": [[1, 2, 3]], "labels": [0]}}"#,
         "params.epsilon: expected a number, got the string \"two\""),
        (r#"{"loss": "focal", "params": {"gama": 1}, "inputs": {"logits": [[1, 2, 3]], "labels": [0]}}"#,
         "params.gama: unknown key (did you mean `gamma`?)"),
    ];
    for (text, want) in cases {
        let err = parse_case(text).expect_err(text).to_string();
        assert!(
            err.starts_with(want),
            "{text}\n  got:  {err}\n  want: {want}…"
        );
    }
}

/// SPEC §5's exact zeros: A·p_j − a_j vanishes where p_j = a_j/A (ε = 1 on a row of equal
/// logits, uniform soft targets on equal logits), and the certified answer proves it (a
/// point at 0, tier `correctly_rounded`); one ulp off those logits, no zero is claimed.
#[test]
fn the_options_exact_zeros_are_proven_and_never_claimed_off_them() {
    use lossref::mp::certify::Tier;
    let is_zero =
        |c: &lossref::mp::certify::Certified| c.enclosure.is_point() && c.enclosure.lo().is_zero();
    let cases = [
        r#"{"loss": "softmax_ce", "params": {"label_smoothing": 1}, "inputs": {"logits": [[2, 2, 2, 2]], "labels": [1], "weight": [3, 3, 3, 3]}}"#,
        r#"{"loss": "softmax_ce", "params": {"reduction": "sum"}, "inputs": {"logits": [[0.5, 0.5, 0.5]], "targets": [[0.25, 0.25, 0.25]]}}"#,
    ];
    for text in cases {
        let case = parse_case(text).unwrap();
        let ans = certified(&case).unwrap();
        assert_eq!(ans.certificate.tier, Tier::CorrectlyRounded, "{text}");
        assert!(
            ans.answer
                .gradient("logits")
                .unwrap()
                .values()
                .iter()
                .all(is_zero),
            "{text}"
        );
        // the first logit one ulp up: p_0 > 1/C, so no entry of that row vanishes
        let nudged = text
            .replacen(
                "[[2, 2",
                &format!("[[{}, 2", f64::from_bits(2f64.to_bits() + 1)),
                1,
            )
            .replacen(
                "[[0.5, 0.5",
                &format!("[[{}, 0.5", f64::from_bits(0.5f64.to_bits() + 1)),
                1,
            );
        let ans = certified(&parse_case(&nudged).unwrap()).unwrap();
        assert!(
            ans.answer
                .gradient("logits")
                .unwrap()
                .values()
                .iter()
                .all(|c| !is_zero(c)),
            "{nudged}"
        );
    }
}

/// Promoted from `tests/proptest-regressions/cross_entropy_family.txt`: a weighted,
/// smoothed row whose only weighted class dominates by 868, so that its gradient is
/// −3.3·10⁻³⁷⁸ formed beside terms of size 1: at 1024 bits its enclosure was ±2^−1024, too
/// wide for the 40-digit comparison, and the check now gives the formulas the bits they
/// need (the certified answer escalates to 1536 bits by itself).
#[test]
fn a_gradient_of_1e_minus_378_beside_terms_of_one_is_checked_to_40_digits() {
    let case = Case::new(SoftmaxCeCase {
        reduction: Reduction::Mean,
        logits: Matrix::from_rows(vec![vec![
            -625.0191996339855,
            -337.2767904240133,
            531.3395129129145,
        ]])
        .unwrap(),
        labels: vec![2],
        options: CeOptions {
            weight: Some(vec![0.0, 0.0, 1.0]),
            ignore_index: None,
            ignored_rows: vec![],
            label_smoothing: 0.6379537957442037,
            targets: None,
        },
    })
    .unwrap();
    check_case(&case);
}
