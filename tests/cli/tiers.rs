//! SPEC §6's precision tiers: each stage's bound against a hand derivation and against the
//! roundings it bounds, pipelines as results files declare them, and the judge on
//! implementations of each tier written here (a careful bfloat16 `native` cross-entropy,
//! a float16 softmax that exponentiates first, a float32 CosFace with TF32 products).

use lossref::check::{check, groups_of, Corpus, CorpusCase, Groups, Results, Verdict};
use lossref::fast::dispatch::evaluate;
use lossref::spec::{Case, Dtype, Reduction};
use lossref::tier::stages::{
    arithmetic, held_rounding, operand_rounding, output_rounding, softmax_propagation,
    subnormal_operands,
};
use lossref::tier::{HalfPipeline, LogitStages, MatmulPrecision, Pipeline, Tier, TierRule};
use proptest::prelude::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;

fn corpus() -> Corpus {
    Corpus::load(Some(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/corpus"),
    ))
    .unwrap()
}

fn pipeline(name: &str) -> Pipeline {
    Pipeline::parse(&json!(name), "test").unwrap()
}

#[test]
fn each_stage_is_its_hand_derived_bound() {
    let u = 2f64.powi(-8);
    // (1 + α)(1 + β) − 1 ≤ 2u + u² per product, summed over |a·b|
    assert_eq!(operand_rounding(u, 3.0), 3.0 * (2.0 * u + u * u));
    assert_eq!(held_rounding(2f64.powi(-11), 0.0, 64.0), 64.0 / 2048.0);
    // below the normal range the error is absolute: half float16's smallest subnormal
    assert_eq!(
        held_rounding(2f64.powi(-11), 2f64.powi(-25), 0.0),
        2f64.powi(-25)
    );
    // η(1 + u)·(‖a‖₁ + ‖b‖₁) + n·η²
    assert_eq!(
        subnormal_operands(0.5, 0.25, 8.0, 2),
        0.25 * 1.5 * 8.0 + 2.0 * 0.0625
    );
    // ρ(δ) = e^{2δ} − 1: at δ = 1/8, e^¼ − 1
    assert_eq!(softmax_propagation(0.125), 0.25f64.exp_m1());
    assert_eq!(softmax_propagation(0.0), 0.0);
    // F·g(n)·ulp(S): g(64) = 2, ulp_f32(1) = 2^−23
    assert_eq!(
        arithmetic(4.0, 64, 1.0, Dtype::Float32),
        8.0 * 2f64.powi(-23)
    );
    assert_eq!(
        arithmetic(4.0, 4, 1.0, Dtype::Float32),
        4.0 * 2f64.powi(-23)
    );
    // half an ulp of 1 in float16 (2^−10 apart) and bfloat16 (2^−7)
    assert_eq!(
        output_rounding(Dtype::Float16, 1.0, 0.0, false),
        2f64.powi(-11)
    );
    assert_eq!(
        output_rounding(Dtype::BFloat16, -1.5, 0.0, false),
        2f64.powi(-8)
    );
    // a value below the format: half its smallest subnormal, or its smallest normal (ftz)
    assert_eq!(
        output_rounding(Dtype::Float16, 1e-12, 0.0, false),
        2f64.powi(-25)
    );
    assert_eq!(
        output_rounding(Dtype::Float16, 1e-12, 0.0, true),
        2f64.powi(-14)
    );
    // the errors before it count: 1 + 1 is in [2, 4), whose ulp is twice 1's
    assert_eq!(
        output_rounding(Dtype::Float16, 1.0, 1.0, false),
        2f64.powi(-10)
    );
    // the formats' unit roundoffs are SPEC §6's
    assert_eq!(Dtype::BFloat16.unit_roundoff(), 2f64.powi(-8));
    assert_eq!(Dtype::Float16.unit_roundoff(), 2f64.powi(-11));
    assert_eq!(Dtype::Float32.unit_roundoff(), 2f64.powi(-24));
    assert_eq!(MatmulPrecision::Tf32.unit_roundoff(), 2f64.powi(-11));
    assert_eq!(MatmulPrecision::Bf16.unit_roundoff(), 2f64.powi(-8));
}

#[test]
fn each_tier_sums_the_stages_it_holds() {
    let stages = LogitStages {
        operands: 64.0,
        product: 60.0,
        per_product: 0.0,
        operand_l1: 0.0,
        terms: 0,
        logits: 50.0,
        log_probabilities: 20.0,
        sensitivity: 1.5,
        backward_products: true,
        largest: 40.0,
    };
    let u = 2f64.powi(-8);
    let half = |h| Tier {
        dtype: Dtype::BFloat16,
        half: Some(h),
        matmul: MatmulPrecision::Highest,
        ftz: false,
    };
    let native = TierRule::new(half(HalfPipeline::Native), &stages);
    let by_hand = (64.0 * (2.0 * u + u * u) + 60.0 * u + 50.0 * u + 20.0 * u) * 1.5;
    assert!((native.delta - by_hand).abs() <= 1e-15 * by_hand);
    let amp = TierRule::new(half(HalfPipeline::Amp), &stages);
    let by_hand = (64.0 * (2.0 * u + u * u) + 60.0 * u) * 1.5;
    assert!((amp.delta - by_hand).abs() <= 1e-15 * by_hand);
    // amp returns the loss in float32 and the gradients in the case's dtype
    assert_eq!(amp.returned_in("outputs/loss"), Dtype::Float32);
    assert_eq!(amp.returned_in("gradients/features"), Dtype::BFloat16);
    assert_eq!(native.returned_in("outputs/loss"), Dtype::BFloat16);
    let tf32 = TierRule::new(
        Tier {
            dtype: Dtype::Float32,
            half: None,
            matmul: MatmulPrecision::Tf32,
            ftz: false,
        },
        &stages,
    );
    let u = 2f64.powi(-11);
    assert!((tf32.delta - 64.0 * (2.0 * u + u * u) * 1.5).abs() < 1e-15);
    assert_eq!(tf32.backward_u, u);
}

/// x rounded to `bits` significant bits, to nearest with ties to even (TF32: 11).
fn round_bits(x: f64, bits: i32) -> f64 {
    if x == 0.0 {
        return 0.0;
    }
    let e = x.abs().log2().floor() as i32;
    let q = 2f64.powi(e - bits + 1);
    let k = x / q;
    let r = k.round();
    // ties to even
    let r = if (k - k.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        r - k.signum()
    } else {
        r
    };
    r * q
}

/// log softmax(v) in binary64 to a few ulps of each entry, a dominant one's tiny
/// −log p included: (v_j − max) − log1p(Σ_{k≠argmax} e^{v_k − max}).
fn log_softmax(v: &[f64]) -> Vec<f64> {
    let top = (0..v.len()).fold(0, |m, j| if v[j] > v[m] { j } else { m });
    let rest: f64 = (0..v.len())
        .filter(|&k| k != top)
        .map(|k| (v[k] - v[top]).exp())
        .sum();
    v.iter().map(|x| (x - v[top]) - rest.ln_1p()).collect()
}

/// The shrunk case of `logit_errors_move_softmax_values_by_at_most_rho` (a dominant
/// target, one other logit moved): it failed only while the test's own log-softmax
/// subtracted log Σ from the logits, losing a dominant log p's relative accuracy.
#[test]
fn a_dominant_log_probability_moves_by_at_most_rho_of_itself() {
    let z = [24.151285131645952, -28.4984184525568, -1.1533510636231188];
    let delta = 1e-4;
    let moved = [z[0], z[1], z[2] - 0.8460824753940888 * delta];
    let (a, b) = (log_softmax(&z), log_softmax(&moved));
    // log p_0 ≈ −e^{−25.3}: it moves by p_2·Δ, far below ρ(δ) of itself
    assert!(a[0] < 0.0 && a[0] > -1e-10);
    assert!((a[0] - b[0]).abs() <= softmax_propagation(delta) * a[0].abs());
}

proptest! {
    /// A dot product of operands rounded once each, to bfloat16, float16 or TF32, moves by
    /// at most `operand_rounding` of the magnitudes it sums (computed in binary64, where
    /// products of 11-bit numbers are exact).
    #[test]
    fn rounded_operands_stay_within_their_stage_bound(
        a in prop::collection::vec(-4.0f64..4.0, 1..24),
        b in prop::collection::vec(-4.0f64..4.0, 24),
        format in 0usize..3,
    ) {
        // each format's rounding, unit roundoff and η, half its smallest subnormal
        let (round, u, eta): (Box<dyn Fn(f64) -> f64>, f64, f64) = match format {
            0 => (Box::new(|x| Dtype::BFloat16.round(x)), 2f64.powi(-8), 2f64.powi(-134)),
            1 => (Box::new(|x| Dtype::Float16.round(x)), 2f64.powi(-11), 2f64.powi(-25)),
            _ => (Box::new(|x| round_bits(x, 11)), 2f64.powi(-11), 0.0),
        };
        let b = &b[..a.len()];
        let exact: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let rounded: f64 = a.iter().zip(b).map(|(x, y)| round(*x) * round(*y)).sum();
        let magnitude: f64 = a.iter().zip(b).map(|(x, y)| (x * y).abs()).sum();
        let l1: f64 = a.iter().chain(b).map(|x| x.abs()).sum();
        // the sums themselves round in binary64: a few ulps of the magnitude
        let slack = 64.0 * f64::EPSILON * magnitude;
        let bound = operand_rounding(u, magnitude) + subnormal_operands(u, eta, l1, a.len());
        prop_assert!((rounded - exact).abs() <= bound + slack);
        for x in &a {
            prop_assert!((round(*x) - x).abs() <= held_rounding(u, eta, x.abs()));
        }
    }

    /// SPEC §6's propagation: logit errors of at most δ move every probability, every
    /// 1 − p_y, every log-probability and the cross-entropy by at most ρ(δ) of themselves
    /// (binary64 here, with Σ_{j≠y} p_j for 1 − p_y).
    #[test]
    fn logit_errors_move_softmax_values_by_at_most_rho(
        z in prop::collection::vec(-30.0f64..30.0, 2..12),
        noise in prop::collection::vec(-1.0f64..1.0, 12),
        delta in prop::sample::select(vec![1e-4, 1e-2, 0.125, 0.5, 1.0]),
        y in 0usize..12,
    ) {
        let y = y % z.len();
        let moved: Vec<f64> = z.iter().zip(&noise).map(|(v, e)| v + delta * e).collect();
        let (a, b) = (log_softmax(&z), log_softmax(&moved));
        let rho = softmax_propagation(delta);
        // 1e-12 relative: binary64's own roundings of these few terms
        let within = |x: f64, y: f64| (x - y).abs() <= rho * x.abs() + 1e-12 * x.abs().max(1e-300);
        for j in 0..z.len() {
            prop_assert!(within(a[j].exp(), b[j].exp()), "p_{} moved too far", j);
            prop_assert!(within(a[j], b[j]), "log p_{} moved too far", j);
        }
        let rest = |l: &[f64]| (0..l.len()).filter(|&j| j != y).map(|j| l[j].exp()).sum::<f64>();
        prop_assert!(within(rest(&a), rest(&b)), "1 − p_y moved too far");
        prop_assert!(within(-a[y], -b[y]), "the loss moved too far");
    }
}

#[test]
fn pipelines_are_read_as_declared_and_mistakes_are_named() {
    assert_eq!(pipeline("amp").half, HalfPipeline::Amp);
    let p = Pipeline::parse(&json!(["native", "tf32", "ftz"]), "p").unwrap();
    assert_eq!(
        (p.half, p.matmul, p.ftz),
        (HalfPipeline::Native, MatmulPrecision::Tf32, true)
    );
    assert_eq!(pipeline("amp+bf16x3").to_string(), "amp+bf16x3");
    assert_eq!(Pipeline::DEFAULT.to_string(), "native");
    let e = Pipeline::parse(&json!("amq"), "results.json: pipeline").unwrap_err();
    assert!(e.to_string().contains("did you mean `amp`"), "{e}");
    assert!(e.to_string().contains("results.json: pipeline"), "{e}");
    let e = Pipeline::parse(&json!("amp+native"), "p").unwrap_err();
    assert!(e.to_string().contains("a second time"), "{e}");
    let e = Pipeline::parse(&json!(3), "p").unwrap_err();
    assert!(e.to_string().contains("expected a tier name"), "{e}");
    // a results file says it, and a wrong one is refused with its place
    let r = Results::parse(r#"{"results": {}, "pipeline": "amp+tf32"}"#, "r.json").unwrap();
    assert_eq!(r.pipeline, Some(pipeline("amp+tf32")));
    let e = Results::parse(r#"{"results": {}, "pipeline": "tf23"}"#, "r.json").unwrap_err();
    assert!(e.to_string().contains("did you mean `tf32`"), "{e}");
}

fn results(name: &str, values: BTreeMap<String, Groups>, p: &str) -> Results {
    Results {
        implementation: name.into(),
        values,
        computes: None,
        pipeline: Some(pipeline(p)),
    }
}

/// Every failing case of `report`, with its groups' verdicts in words.
fn failures(report: &lossref::check::CheckReport) -> Vec<String> {
    report
        .cases
        .iter()
        .filter(|c| c.verdict.is_failure())
        .map(|c| {
            let groups: Vec<String> = c.groups.iter().map(|g| g.summary()).collect();
            format!("{}: {groups:?}", c.id)
        })
        .collect()
}

/// The plain `softmax_ce` cases of `dtype` (no class weights, smoothing or soft targets).
fn plain_ce(corpus: &Corpus, dtype: Dtype) -> Vec<(CorpusCase, lossref::spec::SoftmaxCeCase)> {
    corpus
        .cases
        .iter()
        .filter(|c| c.loss == "softmax_ce" && c.dtype == dtype)
        .filter_map(|c| match corpus.load_case(c).unwrap().case {
            Case::SoftmaxCe(s) if s.options.is_plain() => Some((c.clone(), s)),
            _ => None,
        })
        .collect()
}

/// A cross-entropy's values as results: the loss and the N×C gradient.
fn cross_entropy_groups(loss: f64, (n, cols): (usize, usize), grad: Vec<f64>) -> Groups {
    let mut g = Groups::new();
    g.insert("outputs/loss".into(), (vec![], vec![loss]));
    g.insert("gradients/logits".into(), (vec![n, cols], grad));
    g
}

/// A careful bfloat16 `native` cross-entropy, as PyTorch's CPU kernels compute one on
/// bf16 tensors: log_softmax in float32 with the maximum subtracted, its output rounded to
/// bfloat16; the loss −mean(log p_y) accumulated in float32 and rounded to bfloat16; the
/// gradient (e^{log p} − onehot)·r in float32 from the rounded log-probabilities, rounded.
fn native_bf16_ce(c: &lossref::spec::SoftmaxCeCase) -> Groups {
    let bf16 = |x: f32| Dtype::BFloat16.round(f64::from(x)) as f32;
    let (n, cols) = (c.labels.len(), c.logits.cols());
    let r = if c.reduction == Reduction::Mean {
        1.0 / n as f32
    } else {
        1.0
    };
    let mut loss = 0f32;
    let mut grad = Vec::with_capacity(n * cols);
    for (row, &y) in c.logits.iter_rows().zip(&c.labels) {
        let z: Vec<f32> = row.iter().map(|v| *v as f32).collect();
        let top = z.iter().copied().fold(f32::MIN, f32::max);
        let lse = z.iter().map(|v| (v - top).exp()).sum::<f32>().ln();
        let log_p: Vec<f32> = z.iter().map(|v| bf16(v - top - lse)).collect();
        loss -= log_p[y];
        for (j, lp) in log_p.iter().enumerate() {
            let onehot = if j == y { 1.0 } else { 0.0 };
            grad.push(f64::from(bf16((lp.exp() - onehot) * r)));
        }
    }
    cross_entropy_groups(f64::from(bf16(loss * r)), (n, cols), grad)
}

#[test]
fn a_bf16_log_softmax_whose_loss_is_rounded_is_native_and_not_amp() {
    let corpus = corpus();
    let cases = plain_ce(&corpus, Dtype::BFloat16);
    assert!(cases.len() >= 20, "the corpus has bf16 cross-entropy cases");
    let values: BTreeMap<String, Groups> = cases
        .iter()
        .map(|(c, s)| (c.id.clone(), native_bf16_ce(s)))
        .collect();
    let native = check(
        &corpus,
        &results("bf16 native", values.clone(), "native"),
        &[],
        true,
    )
    .unwrap();
    let failing = failures(&native);
    assert!(failing.is_empty(), "native fails: {failing:#?}");
    let amp = check(&corpus, &results("bf16 native", values, "amp"), &[], true).unwrap();
    let losses: Vec<_> = amp
        .cases
        .iter()
        .flat_map(|c| c.groups.iter().map(move |g| (c, g)))
        .filter(|(_, g)| g.group == "outputs/loss" && g.verdict == Verdict::Fail)
        .collect();
    // a loss rounded to bfloat16 is 2^−9 of itself off at worst, float32 arithmetic 2^−24
    assert!(
        losses.len() * 2 >= cases.len(),
        "amp rejects most rounded losses: {} of {}",
        losses.len(),
        cases.len()
    );
    for (c, g) in &losses {
        assert_eq!(c.tier.to_string(), "bfloat16 amp");
        assert!(
            g.tier_note.contains("`bfloat16 native`")
                && g.tier_note.contains("declared `bfloat16 amp`"),
            "{}: {}",
            c.id,
            g.summary()
        );
    }
    let text = amp.text();
    assert!(text.contains("(pipeline amp, SPEC §6)"), "{text}");
    let d = amp
        .diagnoses
        .iter()
        .find(|d| d.loss == "softmax_ce")
        .unwrap();
    assert_eq!(
        d.explained_by[0].convention,
        "computed in the `native` pipeline, not the declared `amp` (SPEC §6)"
    );
}

/// A float16 softmax cross-entropy that exponentiates before subtracting the maximum:
/// e^z in float16 (∞ past 11.09), Σ e in float32, p = e/Σ, loss −log p_y.
fn exp_first_f16_ce(c: &lossref::spec::SoftmaxCeCase) -> Groups {
    let f16 = |x: f32| Dtype::Float16.round(f64::from(x)) as f32;
    let (n, cols) = (c.labels.len(), c.logits.cols());
    let r = 1.0 / n as f32;
    let mut loss = 0f32;
    let mut grad = Vec::new();
    for (row, &y) in c.logits.iter_rows().zip(&c.labels) {
        let e: Vec<f32> = row.iter().map(|v| f16((*v as f32).exp())).collect();
        let total: f32 = e.iter().sum();
        let p: Vec<f32> = e.iter().map(|v| f16(v / total)).collect();
        loss -= p[y].ln();
        for (j, pj) in p.iter().enumerate() {
            let onehot = if j == y { 1.0 } else { 0.0 };
            grad.push(f64::from(f16((pj - onehot) * r)));
        }
    }
    cross_entropy_groups(f64::from(f16(loss * r)), (n, cols), grad)
}

#[test]
fn an_exp_first_float16_softmax_overflows_and_is_diagnosed_only_there() {
    let corpus = corpus();
    let cases: Vec<_> = plain_ce(&corpus, Dtype::Float16)
        .into_iter()
        .filter(|(_, s)| s.reduction == Reduction::Mean)
        .collect();
    let reach = |s: &lossref::spec::SoftmaxCeCase| {
        s.logits.as_slice().iter().copied().fold(f64::MIN, f64::max)
    };
    let limit = 65504f64.ln();
    let overflowing = cases.iter().filter(|(_, s)| reach(s) > limit).count();
    assert!(
        overflowing >= 5,
        "the corpus has logits past float16's exp range"
    );
    let values: BTreeMap<String, Groups> = cases
        .iter()
        .map(|(c, s)| (c.id.clone(), exp_first_f16_ce(s)))
        .collect();
    let report = check(
        &corpus,
        &results("f16 exp first", values, "native"),
        &[],
        true,
    )
    .unwrap();
    for c in &report.cases {
        let Some((_, s)) = cases.iter().find(|(k, _)| k.id == c.id) else {
            continue;
        };
        if reach(s) > limit {
            assert_eq!(c.verdict, Verdict::Fail, "{}: overflows", c.id);
        }
    }
    let d = report
        .diagnoses
        .iter()
        .find(|d| d.loss == "softmax_ce")
        .unwrap();
    let overflow = d
        .explained_by
        .iter()
        .find(|e| {
            e.convention
                .contains("exponentiates before subtracting the maximum")
        })
        .unwrap_or_else(|| panic!("{}", d.text()));
    assert!(
        overflow.convention.contains("float16 past z = 11.09"),
        "{}",
        overflow.convention
    );
    for id in &overflow.ids {
        let (_, s) = cases.iter().find(|(k, _)| &k.id == id).unwrap();
        assert!(
            reach(s) > limit,
            "{id}: claimed without logits past the range"
        );
    }
    // the claim needs its evidence: NaN where every logit is within the range is not it
    let within: BTreeMap<String, Groups> = cases
        .iter()
        .filter(|(_, s)| reach(s) < 5.0)
        .map(|(c, s)| {
            let mut g = exp_first_f16_ce(s);
            g.get_mut("outputs/loss").unwrap().1[0] = f64::NAN;
            (c.id.clone(), g)
        })
        .collect();
    assert!(!within.is_empty());
    let report = check(&corpus, &results("NaN", within, "native"), &[], true).unwrap();
    for d in &report.diagnoses {
        assert!(
            d.explained_by
                .iter()
                .all(|e| !e.convention.contains("exponentiates")),
            "{}",
            d.text()
        );
    }
}

/// lossref's fast float32 path on the case with its features and class weights rounded to
/// TF32's 11 bits: what X·Wᵀ with TF32 operands computes, forward and backward.
fn tf32_operands(case: &Case) -> Option<Groups> {
    let Case::Normalized(n) = case else {
        return None;
    };
    let mut n = n.clone();
    n.features = n.features.map(|v| round_bits(*v, 11));
    n.weights = n.weights.map(|v| round_bits(*v, 11));
    evaluate::<f32>(&Case::Normalized(n))
        .ok()
        .map(|a| groups_of(&a))
}

#[test]
fn tf32_products_pass_tf32_and_fail_float32_naming_the_tier() {
    let corpus = corpus();
    let values: BTreeMap<String, Groups> = corpus
        .cases
        .iter()
        .filter(|c| {
            c.dtype == Dtype::Float32
                && ["cosface", "normface", "amsoftmax", "arcface", "combined"]
                    .contains(&c.loss.as_str())
        })
        .filter(|c| {
            c.tags
                .iter()
                .any(|t| t == "random" || t == "edge:dominant-target")
        })
        .filter_map(|c| {
            Some((
                c.id.clone(),
                tf32_operands(&corpus.load_case(c).unwrap().case)?,
            ))
        })
        .collect();
    assert!(values.len() >= 10);
    let tf32 = check(
        &corpus,
        &results("tf32 cosface", values.clone(), "tf32"),
        &[],
        true,
    )
    .unwrap();
    let failing = failures(&tf32);
    assert!(failing.is_empty(), "{failing:#?}");
    // declared as float32 (`highest`): the 2^−11 operands fail it, and the message says
    // which tier they meet
    let highest = check(
        &corpus,
        &results("tf32 cosface", values, "highest"),
        &[],
        true,
    )
    .unwrap();
    let failed: Vec<_> = highest
        .cases
        .iter()
        .filter(|c| c.verdict.is_failure())
        .collect();
    assert!(
        failed.len() * 2
            >= highest
                .cases
                .iter()
                .filter(|c| c.verdict != Verdict::NotRun)
                .count()
    );
    for c in failed {
        for g in c.groups.iter().filter(|g| g.verdict.is_failure()) {
            assert!(
                g.tier_note
                    .contains("within the tolerance of `float32 tf32")
                    || g.tier_note
                        .contains("within the tolerance of `float32 bf16x3")
                    || g.tier_note
                        .contains("within the tolerance of `float32 ftz`"),
                "{}: {}",
                c.id,
                g.summary()
            );
        }
    }
}
