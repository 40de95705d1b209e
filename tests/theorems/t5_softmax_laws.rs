//! SPEC §2 T5, checked on the certified reference: shift invariance, the max-shifted
//! formula equals the definition, ∂CE/∂z = p − onehot with rows summing to 0, and
//! mean = sum / N. Each law is a step of `proofs/t5_softmax.md`.

use crate::common;

use common::{any_batch, certify_ce, certify_softmax, values, Batch};
use lossref::matrix::Matrix;
use lossref::mp::interval::Interval;
use lossref::spec::Reduction;
use proptest::prelude::*;
use rug::Float;

/// Logits on a 2^−10 grid within ±1000, so that adding an integer shift is exact in binary64.
fn grid_batch() -> impl Strategy<Value = (Batch, i32)> {
    (1usize..=3, 2usize..=8)
        .prop_flat_map(|(n, c)| {
            (
                proptest::collection::vec(-1_024_000i32..=1_024_000, n * c),
                proptest::collection::vec(0..c, n),
                -1000i32..=1000,
                Just((n, c)),
            )
        })
        .prop_map(|(ticks, labels, shift, (n, c))| {
            let data = ticks.into_iter().map(|t| f64::from(t) / 1024.0).collect();
            (
                Batch {
                    logits: Matrix::from_vec(n, c, data).unwrap(),
                    labels,
                },
                shift,
            )
        })
}

fn shifted(b: &Batch, c: i32) -> Batch {
    Batch {
        logits: b.logits.map(|&z| z + f64::from(c)),
        labels: b.labels.clone(),
    }
}

fn bits(xs: &[lossref::mp::certify::Certified]) -> Vec<(u64, String)> {
    xs.iter()
        .map(|c| (c.f64.to_bits(), c.decimal.clone()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(48)))]

    /// T5: softmax(z + c) = softmax(z), so the certified roundings agree bit for bit.
    #[test]
    fn t5_softmax_is_shift_invariant((b, c) in grid_batch(), t in prop_oneof![Just(1.0), Just(0.25), Just(3.0)]) {
        let a = certify_softmax(&b.logits, t);
        let s = certify_softmax(&shifted(&b, c).logits, t);
        prop_assert_eq!(bits(values(&a, "outputs", "probabilities")), bits(values(&s, "outputs", "probabilities")));
        prop_assert_eq!(bits(values(&a, "outputs", "log_probabilities")), bits(values(&s, "outputs", "log_probabilities")));
    }

    /// T5: CE and its gradient are shift invariant too.
    #[test]
    fn t5_softmax_ce_is_shift_invariant((b, c) in grid_batch()) {
        let a = certify_ce(&b, Reduction::Mean);
        let s = certify_ce(&shifted(&b, c), Reduction::Mean);
        prop_assert_eq!(bits(values(&a, "outputs", "loss")), bits(values(&s, "outputs", "loss")));
        prop_assert_eq!(bits(values(&a, "gradients", "logits")), bits(values(&s, "gradients", "logits")));
    }

    /// T5: the max-shifted formula (the reference) equals the definition e^{z_j}/Σ e^{z_k},
    /// evaluated here on intervals with no shift: the enclosures must overlap.
    #[test]
    fn t5_max_shifted_formula_equals_definition(b in any_batch(false)) {
        let ans = certify_softmax(&b.logits, 1.0);
        let prec = 8192;
        for (i, row) in b.logits.iter_rows().enumerate() {
            let e: Vec<Interval> = row.iter().map(|&z| Interval::from_f64(prec, z).exp()).collect();
            let total = Interval::sum(prec, &e);
            for (j, term) in e.iter().enumerate() {
                let definition = term.div(&total);
                let reference = &values(&ans, "outputs", "probabilities")[i * row.len() + j].enclosure;
                prop_assert!(definition.overlaps(reference), "row {} col {}: {:?} vs {:?}", i, j, definition, reference);
            }
        }
    }

    /// T5: ∂CE/∂z = (p − onehot)/N for mean, p − onehot for sum, and each row sums to 0.
    #[test]
    fn t5_gradient_is_p_minus_onehot_and_rows_sum_to_zero(b in any_batch(false), sum in any::<bool>()) {
        let reduction = if sum { Reduction::Sum } else { Reduction::Mean };
        let ce = certify_ce(&b, reduction);
        let soft = certify_softmax(&b.logits, 1.0);
        let grads = values(&ce, "gradients", "logits");
        let probs = values(&soft, "outputs", "probabilities");
        let (n, c) = (b.logits.rows(), b.logits.cols());
        for i in 0..n {
            let mut row_sum = Interval::from_i64(64, 0);
            let mut scale = Float::with_val(64, 0);
            for j in 0..c {
                let k = i * c + j;
                let mut want = probs[k].enclosure.clone();
                if j == b.labels[i] {
                    want = want.sub(&Interval::from_i64(64, 1));
                }
                if !sum {
                    want = want.div_i64(n as i64);
                }
                let g = &grads[k].enclosure;
                prop_assert!(g.overlaps(&want), "entry [{}][{}]: {:?} vs p − onehot {:?}", i, j, g, want);
                row_sum = row_sum.add(g);
                scale = scale.max(&g.mag());
            }
            // The row sum's enclosure contains 0 and is tiny against the entries.
            prop_assert!(row_sum.contains_zero(), "row {} sums to {:?}", i, row_sum);
            let mut tol = scale;
            tol >>= 120;
            prop_assert!(row_sum.mag() <= tol, "row {} sum {:?} is not near 0", i, row_sum);
        }
    }

    /// T5 / SPEC §1: mean = sum / N.
    #[test]
    fn mean_is_sum_over_n(b in any_batch(false)) {
        let mean = values(&certify_ce(&b, Reduction::Mean), "outputs", "loss")[0].enclosure.clone();
        let sum = values(&certify_ce(&b, Reduction::Sum), "outputs", "loss")[0].enclosure.clone();
        let n = b.logits.rows() as i64;
        prop_assert!(sum.div_i64(n).overlaps(&mean), "sum/N {:?} vs mean {:?}", sum.div_i64(n), mean);
    }
}
