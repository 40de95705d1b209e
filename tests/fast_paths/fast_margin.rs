//! The fast normalized-margin path (`lossref::fast::MarginLoss`) as a training loop uses
//! it: every invalid input is an error naming the place, never a panic or a NaN; reusing a
//! workspace changes nothing; and the results do not depend on the tile size beyond
//! rounding. (Accuracy against the reference: `tests/fast_paths/precision_table_margin.rs`.)

use lossref::fast::{MarginLoss, Workspace};
use lossref::spec::{Boundary, Margin, MarginGrad, Reduction};

fn cosface() -> MarginLoss {
    MarginLoss {
        scale: 64.0,
        margin: Margin::Additive { m: 0.35 },
        reduction: Reduction::Mean,
    }
}

fn error(loss: &MarginLoss, x: &[f64], w: &[f64], labels: &[usize], dim: usize) -> String {
    match loss.forward_backward(x, w, labels, dim, 1) {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.to_string(),
    }
}

const X: [f64; 4] = [0.5, -1.25, 2.0, 0.75];
const W: [f64; 6] = [1.0, 0.0, 0.0, 1.0, -1.0, -1.0];

#[test]
fn invalid_inputs_are_errors_that_name_the_place() {
    let l = cosface();
    assert!(error(&l, &X, &W, &[0, 3], 2).starts_with("labels[1]: label 3 is out of range 0..3"));
    assert!(error(&l, &X, &W, &[0], 2)
        .starts_with("features: has 4 values, but N = 1 labels × D = 2 needs 2"));
    assert!(error(&l, &X, &W[..5], &[0, 1], 2)
        .starts_with("weights: has 5 values, not a multiple of D = 2"));
    assert!(error(&l, &X, &W[..2], &[0, 0], 2).starts_with("weights: has C = 1 class(es)"));
    assert!(error(&l, &X, &W, &[], 2).starts_with("features: is empty"));
    let mut w = W;
    w[2] = 0.0;
    w[3] = -0.0;
    assert!(error(&l, &X, &w, &[0, 2], 2).starts_with("weights[1]: is a zero-norm row"));
    let mut x = X;
    x[3] = f64::NAN;
    assert!(error(&l, &x, &W, &[0, 2], 2).starts_with("features[1]: has a non-finite entry"));
    let bad_scale = MarginLoss { scale: -1.0, ..l };
    assert!(error(&bad_scale, &X, &W, &[0, 2], 2)
        .starts_with("scale: must be a finite number > 0, got -1"));
    let bad_margin = MarginLoss {
        margin: Margin::Additive { m: f64::NAN },
        ..l
    };
    assert!(error(&bad_margin, &X, &W, &[0, 2], 2).starts_with("margin: must be finite"));
    let mut w = W;
    w[0] = f64::INFINITY;
    assert!(error(&l, &X, &w, &[0, 2], 2).starts_with("weights[0]: has a non-finite entry"));
}

#[test]
fn a_target_parallel_to_its_weight_is_an_error_for_arcface_and_fine_when_detached() {
    let x = [3.0, 0.0, 2.0, 0.75];
    let arc = |grad| MarginLoss {
        scale: 64.0,
        margin: Margin::Angular {
            m: 0.5,
            boundary: Boundary::None,
            grad,
        },
        reduction: Reduction::Sum,
    };
    let e = error(&arc(MarginGrad::Full), &x, &W, &[0, 2], 2);
    assert!(
        e.starts_with(
            "features[0]: its angle to its class weight weights[0] is θ = 0 (cos θ = 1 in f64)"
        ),
        "{e}"
    );
    let ok = arc(MarginGrad::Detached)
        .forward_backward(&x, &W, &[0, 2], 2, 1)
        .unwrap();
    assert!(ok.loss.is_finite() && ok.features.iter().chain(&ok.weights).all(|v| v.is_finite()));
}

#[test]
fn huge_and_tiny_rows_are_normalized_without_overflow() {
    let l = cosface();
    let base = l.forward_backward(&X, &W, &[0, 2], 2, 1).unwrap();
    // Rescaling a row by 2^k changes the loss not at all and its gradient by 2^−k.
    for k in [-1000, -300, 300, 1000] {
        let s = 2f64.powi(k);
        let x: Vec<f64> = X
            .iter()
            .enumerate()
            .map(|(i, v)| if i < 2 { v * s } else { *v })
            .collect();
        let got = l.forward_backward(&x, &W, &[0, 2], 2, 1).unwrap();
        assert_eq!(got.loss, base.loss, "k = {k}");
        for (a, b) in got.features[..2].iter().zip(&base.features[..2]) {
            assert!(
                (a * s - b).abs() <= 1e-15 * b.abs().max(1.0),
                "k = {k}: {a} × 2^{k} vs {b}"
            );
        }
    }
}

#[test]
fn a_reused_workspace_and_any_tile_size_give_the_same_answer() {
    let (n, c, d) = (7, 13, 5);
    let x: Vec<f32> = (0..n * d)
        .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
        .collect();
    let w: Vec<f32> = (0..c * d)
        .map(|i| ((i * 53 % 29) as f32 - 14.0) / 9.0)
        .collect();
    let labels: Vec<usize> = (0..n).map(|i| (i * 5) % c).collect();
    let l = MarginLoss {
        scale: 30.0,
        margin: Margin::Angular {
            m: 0.5,
            boundary: Boundary::Thmm,
            grad: MarginGrad::Full,
        },
        reduction: Reduction::Mean,
    };
    let whole = l.forward_backward(&x, &w, &labels, d, 1).unwrap();
    let mut ws = Workspace::<f32>::with_tile_logits(2 * c);
    let (mut gx, mut gw) = (vec![0.0; x.len()], vec![0.0; w.len()]);
    for _ in 0..3 {
        let (loss, scale) = l
            .forward_backward_into(&mut ws, &x, &w, &labels, d, 1, &mut gx, &mut gw)
            .unwrap();
        assert_eq!(scale, None);
        // The row pass is identical; the GEMMs may sum in another order for another tile
        // shape (a one-row tile is a GEMV), and Gᵀ·X̂ sums its tiles. Orders of summation
        // differ by a few ulps of the magnitudes summed: G is of order r·s = 30/7 per row,
        // over C = 13 classes.
        assert_eq!(loss, whole.loss);
        let tol = 32.0 * f32::EPSILON * 30.0 / 7.0;
        for (a, b) in gx
            .iter()
            .zip(&whole.features)
            .chain(gw.iter().zip(&whole.weights))
        {
            assert!((a - b).abs() <= tol, "{a} vs {b}");
        }
    }
    let e = l
        .forward_backward_into(&mut ws, &x, &w, &labels, d, 1, &mut gx[1..], &mut gw)
        .unwrap_err();
    assert!(e
        .to_string()
        .starts_with("gradients: the gradient buffers must have the lengths"));
}

/// Deterministic inputs of any shape: features, weights and labels from a small LCG.
fn batch<T: lossref::fast::Real>(n: usize, c: usize, d: usize) -> (Vec<T>, Vec<T>, Vec<usize>) {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 11) as f64 / (1u64 << 53) as f64) * 4.0 - 2.0
    };
    let x = (0..n * d).map(|_| T::of_f64(next())).collect();
    let w = (0..c * d).map(|_| T::of_f64(next())).collect();
    let labels = (0..n).map(|i| (i * 7 + 3) % c).collect();
    (x, w, labels)
}

fn bits<T: lossref::fast::Real>(v: &[T]) -> Vec<u64> {
    v.iter().map(|x| x.as_f64().to_bits()).collect()
}

/// Runs `f` on a rayon pool of `threads` threads.
fn on_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a thread pool")
        .install(f)
}

/// The fast margin losses give the same bits on 1, 2, 3 or 8 threads, for every tile size:
/// faer's GEMMs split rows and columns among threads, never the sum over k, and every
/// reduction of ours (the loss, ∂L/∂s, the tiles' Gᵀ·X̂) runs in a fixed order. A tile
/// size changes the bits of ∂L/∂W only (its sum over the batch is split at tile
/// boundaries; see `fast::normalized`), and a one-row tile (a GEMV) may change ∂L/∂X too.
#[test]
fn fast_margin_losses_are_bit_identical_for_any_thread_count() {
    fn check<T: lossref::fast::Real>() {
        // large enough that faer runs its GEMMs in parallel
        let (n, c, d) = (96, 301, 130);
        let (x, w, labels) = batch::<T>(n, c, d);
        for margin in [
            Margin::None,
            Margin::Additive { m: 0.35 },
            Margin::Angular {
                m: 0.5,
                boundary: Boundary::Thmm,
                grad: MarginGrad::Full,
            },
            Margin::Combined {
                m1: 1.0,
                m2: 0.3,
                m3: 0.2,
            },
        ] {
            let loss = MarginLoss {
                scale: 30.0,
                margin,
                reduction: Reduction::Mean,
            };
            for tile_rows in [n, 17, 2] {
                let run = |threads: usize| {
                    on_threads(threads, || {
                        loss.forward_backward_tiled(&x, &w, &labels, d, 0, tile_rows * c)
                            .expect("a valid batch")
                    })
                };
                let one = run(1);
                for threads in [2, 3, 8] {
                    let many = run(threads);
                    assert_eq!(one.loss.as_f64().to_bits(), many.loss.as_f64().to_bits());
                    assert_eq!(
                        one.scale.map(|s| s.as_f64().to_bits()),
                        many.scale.map(|s| s.as_f64().to_bits())
                    );
                    assert!(
                        bits(&one.features) == bits(&many.features),
                        "{margin:?}, {threads} threads, tiles of {tile_rows} rows: ∂L/∂X"
                    );
                    assert!(
                        bits(&one.weights) == bits(&many.weights),
                        "{margin:?}, {threads} threads, tiles of {tile_rows} rows: ∂L/∂W"
                    );
                }
            }
        }
    }
    check::<f32>();
    check::<f64>();
}

/// Which outputs a tile size changes: never the loss or ∂L/∂s (per-row values summed in
/// row order), ∂L/∂X not while tiles hold two rows or more, ∂L/∂W by rounding only.
#[test]
fn a_tile_size_changes_only_the_bits_of_the_weight_gradient() {
    let (n, c, d) = (96, 301, 130);
    let (x, w, labels) = batch::<f64>(n, c, d);
    let loss = MarginLoss {
        scale: 16.0,
        margin: Margin::None,
        reduction: Reduction::Sum,
    };
    let whole = loss
        .forward_backward_tiled(&x, &w, &labels, d, 1, n * c)
        .expect("a valid batch");
    for tile_rows in [48, 17, 2, 1] {
        let tiled = loss
            .forward_backward_tiled(&x, &w, &labels, d, 1, tile_rows * c)
            .expect("a valid batch");
        assert_eq!(tiled.loss.to_bits(), whole.loss.to_bits(), "{tile_rows}");
        assert_eq!(
            tiled.scale.map(f64::to_bits),
            whole.scale.map(f64::to_bits),
            "{tile_rows}"
        );
        if tile_rows >= 2 {
            assert!(
                bits(&tiled.features) == bits(&whole.features),
                "tiles of {tile_rows} rows: ∂L/∂X"
            );
        }
        // ∂L/∂W: the same sum in another grouping, within a few ulps of Σ|terms|
        let scale = whole.weights.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (a, b) in tiled.weights.iter().zip(&whole.weights) {
            assert!((a - b).abs() <= 64.0 * f64::EPSILON * scale, "{a} vs {b}");
        }
    }
}

/// L-Softmax and SphereFace: the same bits on any number of threads.
#[test]
fn fast_psi_losses_are_bit_identical_for_any_thread_count() {
    use lossref::family::psi::fast::MultiplicativeLoss;
    let (n, c, d) = (96, 301, 130);
    let (x, w, labels) = batch::<f64>(n, c, d);
    for normalized_weights in [false, true] {
        let loss = MultiplicativeLoss {
            margin: 4,
            lambda: 1.5,
            normalized_weights,
            reduction: Reduction::Mean,
        };
        let run = |threads| {
            on_threads(threads, || {
                loss.forward_backward(&x, &w, &labels, d, 0).expect("valid")
            })
        };
        let one = run(1);
        for threads in [2, 3, 8] {
            let many = run(threads);
            assert_eq!(one.loss.to_bits(), many.loss.to_bits());
            assert!(
                bits(&one.features) == bits(&many.features),
                "{threads} threads: ∂L/∂X"
            );
            assert!(
                bits(&one.weights) == bits(&many.weights),
                "{threads} threads: ∂L/∂W"
            );
        }
    }
}

/// The AVX-512 and AVX2 + FMA copies of the row kernels (normalizing, the margin and ψ
/// rows, the projections) give the same bits as their portable copies (`fast::simd`), for
/// every set this CPU runs.
#[test]
fn every_kernel_set_gives_the_portable_bits() {
    use lossref::family::psi::fast::MultiplicativeLoss;
    use lossref::fast::simd::{kernels, limit_kernels, Kernels};
    let best = Kernels::detected();
    if best == Kernels::Portable {
        eprintln!("this CPU has no AVX2 + FMA: only the portable kernels exist");
        return;
    }
    if best < Kernels::Avx512 {
        eprintln!("this CPU has no AVX-512: the AVX2 copies are compared, not the AVX-512 ones");
    }
    let (n, c, d) = (37, 53, 29);
    let (x32, w32, labels) = batch::<f32>(n, c, d);
    let (x64, w64, _) = batch::<f64>(n, c, d);
    let run = || {
        let mut out: Vec<Vec<u64>> = Vec::new();
        for margin in [
            Margin::None,
            Margin::Additive { m: 0.35 },
            Margin::Angular {
                m: 0.5,
                boundary: Boundary::Easy,
                grad: MarginGrad::Detached,
            },
            Margin::Combined {
                m1: 0.9,
                m2: 0.4,
                m3: 0.15,
            },
        ] {
            let loss = MarginLoss {
                scale: 30.0,
                margin,
                reduction: Reduction::Sum,
            };
            let a = loss
                .forward_backward(&x32, &w32, &labels, d, 1)
                .expect("valid");
            let b = loss
                .forward_backward(&x64, &w64, &labels, d, 1)
                .expect("valid");
            out.push(vec![a.loss.to_bits().into(), b.loss.to_bits()]);
            out.extend([
                bits(&a.features),
                bits(&a.weights),
                bits(&b.features),
                bits(&b.weights),
            ]);
        }
        let psi = MultiplicativeLoss {
            margin: 3,
            lambda: 0.5,
            normalized_weights: true,
            reduction: Reduction::Mean,
        };
        let p = psi
            .forward_backward(&x64, &w64, &labels, d, 1)
            .expect("valid");
        out.extend([vec![p.loss.to_bits()], bits(&p.features), bits(&p.weights)]);
        out
    };
    limit_kernels(Kernels::Portable);
    assert_eq!(kernels(), Kernels::Portable);
    let portable = run();
    for set in Kernels::ALL
        .into_iter()
        .filter(|&k| k > Kernels::Portable && k <= best)
    {
        limit_kernels(set);
        assert_eq!(kernels(), set);
        assert!(
            run() == portable,
            "the {set} and portable row kernels differ"
        );
    }
    limit_kernels(Kernels::Avx512);
    assert_eq!(kernels(), best);
}
