//! The certified matrix products of `src/mp/products.rs` (proofs/certified_products.md):
//! binary64 products are exact, checked against exact rational arithmetic (rug's `Rational`,
//! not the code under test) on matrices whose rows mix magnitudes, signs, zeros and
//! subnormals; enclosure products contain every product of points of the enclosures and
//! are as tight as the slicing promises.

use lossref::matrix::Matrix;
use lossref::mp::interval::Interval;
use lossref::mp::products::{product, slice_bits, Slices};
use proptest::prelude::*;
use rug::{Float, Rational};

/// A binary64 of about 2^e with a random 53-bit mantissa (0 for a draw of `zero`).
fn value(mantissa: u64, e: i32, negative: bool, zero: bool) -> f64 {
    if zero {
        return 0.0;
    }
    let m = (mantissa | (1 << 52)) & ((1 << 53) - 1);
    let x = (m as f64) * 2f64.powi(e - 52);
    if negative {
        -x
    } else {
        x
    }
}

fn entries(len: usize, spread: i32) -> impl Strategy<Value = Vec<f64>> {
    proptest::collection::vec((any::<u64>(), -spread..=spread, any::<bool>(), 0u8..8), len)
        .prop_map(|v| {
            v.into_iter()
                .map(|(m, e, neg, z)| value(m, e, neg, z == 0))
                .collect()
        })
}

fn exact_dot(x: &[f64], w: &[f64]) -> Rational {
    x.iter()
        .zip(w)
        .map(|(&a, &b)| Rational::from_f64(a).unwrap() * Rational::from_f64(b).unwrap())
        .sum()
}

/// The product of binary64 matrices is the exact product rounded outward: the tightest
/// enclosure of the exact rational, every entry.
fn assert_exact(x: &Matrix<f64>, w: &Matrix<f64>, prec: u32) {
    let d = x.cols();
    let a = Slices::binary64(x.rows(), d, |r, c| *x.get(r, c)).expect("sliceable");
    let b = Slices::binary64(w.rows(), d, |r, c| *w.get(r, c)).expect("sliceable");
    assert!(a.is_exact() && b.is_exact());
    let p = product(&a, &b, prec);
    for i in 0..x.rows() {
        for j in 0..w.rows() {
            let q = exact_dot(x.row(i), w.row(j));
            let want = Interval::from_rational(prec, &q);
            assert_eq!(p.get(i, j), &want, "entry ({i}, {j}) of X·Wᵀ");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Rows mixing magnitudes over 2^±spread (up to 2^±40, so up to 133 bits of spread in
    /// one row: several slices), signs and zeros.
    #[test]
    fn binary64_products_are_exact(
        (rows, cols, dim, xs, ws) in (1usize..6, 1usize..6, 1usize..40, 0i32..40)
            .prop_flat_map(|(rows, cols, dim, spread)| {
                (Just(rows), Just(cols), Just(dim), entries(rows * dim, spread), entries(cols * dim, spread))
            }),
    ) {
        assert_exact(
            &Matrix::from_vec(rows, dim, xs).unwrap(),
            &Matrix::from_vec(cols, dim, ws).unwrap(),
            192,
        );
    }
}

#[test]
fn extreme_rows_are_exact_or_refused() {
    // Subnormals, the largest finite values, and exact cancellation to 0.
    let x = Matrix::from_rows(vec![
        vec![f64::MIN_POSITIVE / 8.0, 5e-324, -3e-310, 0.0],
        vec![1.0, -1.0, 1.0, -1.0],
        vec![1e300, 1e300, -1e300, 0.0],
    ])
    .unwrap();
    let w = Matrix::from_rows(vec![
        vec![1e-310, 2e-320, 1.5e-315, 0.0],
        vec![1.0, 1.0, 1.0, 1.0],
        vec![1e-8, -1e-8, 1e-8, 3.0],
    ])
    .unwrap();
    // Rows 0 are subnormal (products below 2^−2000, still exact); row 2 of x cancels.
    assert_exact(&x, &w, 192);
    assert_exact(&x, &w, 64);
    // A row spanning 2^−1074 … 2^1023 needs ~2100 bits: refused, so the caller falls back.
    let wide = Matrix::from_rows(vec![vec![5e-324, 1e300]]).unwrap();
    assert!(Slices::binary64(1, 2, |r, c| *wide.get(r, c)).is_none());
}

#[test]
fn long_inner_dimensions_keep_the_gemm_exact() {
    // n = 5000 inner terms: β = (53 − 13)/2 = 20, every partial sum below 2^53.
    assert_eq!(slice_bits(5000), 20);
    assert_eq!(slice_bits(512), 22);
    assert_eq!(slice_bits(1), 26);
    let n = 5000;
    let x = Matrix::from_fn(2, n, |i, k| {
        let t = (i * n + k) as f64;
        (t * 0.618_033_988_749_894_9).fract() - 0.5 + 1e-9 * (t * 0.3).sin()
    });
    let w = Matrix::from_fn(3, n, |j, k| {
        ((j * 7 + k) as f64 * 0.754_877_666).fract() * 3.0 - 1.5
    });
    assert_exact(&x, &w, 192);
}

#[test]
fn enclosure_products_contain_every_point_product_and_are_tight() {
    let prec = 192;
    let (m, n, p) = (3, 7, 4);
    // Enclosures: exact thirds and sevenths at `prec` bits, some widened by 2^−150.
    let a = Matrix::from_fn(m, n, |i, k| {
        let q = Rational::from((i as i64 * 11 - k as i64 * 5 + 3, 3 + (k as i64 % 5)));
        let iv = Interval::from_rational(prec, &q);
        if (i + k) % 3 == 0 {
            let r = Float::with_val(prec, 1) >> 150;
            Interval::new(
                Float::with_val(prec, iv.lo() - &r),
                Float::with_val(prec, iv.hi() + &r),
            )
            .unwrap()
        } else {
            iv
        }
    });
    let b = Matrix::from_fn(p, n, |j, k| ((j * 13 + k * 3) as f64 - 20.0) / 16.0);
    for bits in [64, 120, 200] {
        let sa = Slices::enclosures(m, n, bits, |r, c| a.get(r, c)).unwrap();
        let sb = Slices::binary64(p, n, |r, c| *b.get(r, c)).unwrap();
        let prod = product(&sa, &sb, prec);
        for i in 0..m {
            for j in 0..p {
                let got = prod.get(i, j);
                // Every corner choice of the enclosures' ends gives a product inside.
                for pick in 0..4u32 {
                    let exact: Rational = (0..n)
                        .map(|k| {
                            let end = if (pick >> (k % 2)) & 1 == 0 {
                                a.get(i, k).lo()
                            } else {
                                a.get(i, k).hi()
                            };
                            end.to_rational().unwrap() * Rational::from_f64(*b.get(j, k)).unwrap()
                        })
                        .sum();
                    let point = Float::with_val(4096, &exact);
                    assert!(
                        got.contains(&point),
                        "bits {bits}: ({i},{j}) {got:?} misses a point product"
                    );
                }
                // Width: twice the designed bound e_i·Σ|b_j|, with e_i the row's widest
                // enclosure plus one unit of the last slice (2^(E − β·count) ≤ 2·max|a|·2^−bits),
                // plus the outward rounding at `prec` bits.
                let sum_abs: f64 = (0..n).map(|k| b.get(j, k).abs()).sum();
                let widest = (0..n)
                    .map(|k| a.get(i, k).width().to_f64())
                    .fold(0.0, f64::max);
                let largest = (0..n)
                    .map(|k| a.get(i, k).mag().to_f64())
                    .fold(0.0, f64::max);
                let e = widest + 2.0 * largest * 2f64.powi(-(bits as i32));
                let allowed = 2.0 * sum_abs * e * (1.0 + 1e-9)
                    + got.mag().to_f64() * 2f64.powi(2 - prec as i32);
                let width = got.width().to_f64();
                assert!(
                    width <= allowed,
                    "bits {bits}: ({i},{j}) width {width:e} > {allowed:e}"
                );
            }
        }
    }
}
