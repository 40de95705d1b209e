//! The certified reference (`reference::certified`: exact products on binary64 GEMMs, one
//! exponential per logit, rows in parallel) against the plain MPFR path
//! (`reference::certified_plain`, one MPFR operation per term) on the same cases in the same
//! run: the figure of merit is the ratio plain / batch-scale per loss and shape. Both print
//! identical answers (tests/certified_core/plain_and_fast_reference.rs); a third variant
//! times what `lossref eval` runs (`reference::blocks::certified_rounded`: blocks of rows,
//! `softmax_ce`'s first round on balls, proofs/certified_products.md §11). A second group
//! times a case streamed over blocks of classes against the same case held whole.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use lossref::bench::Inputs;
use lossref::matrix::Matrix;
use lossref::reference::blocks::certified_rounded;
use lossref::reference::{certified, certified_plain};
use lossref::spec::{Case, LossId, Margin, NormalizedCase, Reduction, SoftmaxCeCase};

fn cosface(batch: usize, dim: usize, classes: usize) -> Case {
    let inputs = Inputs::<f64>::generate(batch, dim, classes, 7);
    Case::Normalized(NormalizedCase {
        loss: LossId::CosFace,
        scale: 64.0,
        margin: Margin::Additive { m: 0.35 },
        reduction: Reduction::Mean,
        features: Matrix::from_vec(batch, dim, inputs.features).expect("shape"),
        weights: Matrix::from_vec(classes, dim, inputs.weights).expect("shape"),
        labels: inputs.labels,
        margins: None,
        margins_as: Default::default(),
        classes: None,
    })
}

fn softmax_ce(rows: usize, classes: usize) -> Case {
    // A fixed pseudo-random pattern (an LCG) of logits in [−10, 10].
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let logits = Matrix::from_fn(rows, classes, |_, _| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 11) as f64 / (1u64 << 53) as f64) * 20.0 - 10.0
    });
    Case::SoftmaxCe(SoftmaxCeCase {
        logits,
        labels: (0..rows).map(|i| (i * 7919) % classes).collect(),
        reduction: Reduction::Mean,
        options: Default::default(),
    })
}

fn bench_reference(crit: &mut Criterion) {
    let mut group = crit.benchmark_group("certified_reference");
    group.sample_size(10);
    let cases = [
        ("cosface_8x64x100", cosface(8, 64, 100)),
        ("softmax_ce_16x1000", softmax_ce(16, 1000)),
    ];
    for (shape, case) in &cases {
        group.bench_with_input(BenchmarkId::new("batch_scale", shape), case, |b, case| {
            b.iter(|| certified(black_box(case)).expect("certifies"))
        });
        group.bench_with_input(BenchmarkId::new("plain", shape), case, |b, case| {
            b.iter(|| certified_plain(black_box(case)).expect("certifies"))
        });
        // what `lossref eval` runs: blocks of rows, and softmax_ce's first round on balls
        group.bench_with_input(BenchmarkId::new("eval", shape), case, |b, case| {
            b.iter(|| certified_rounded(black_box(case), true).expect("certifies"))
        });
    }
    group.finish();
}

/// A normalized-margin case past one block of classes, certified streamed over blocks
/// (`reference::blocks::certified_rounded`, what `lossref eval` does: two passes, bounded
/// memory) against the whole case at once (`reference::certified`), in the same run.
fn bench_class_blocks(crit: &mut Criterion) {
    use lossref::reference::blocks::{certified_rounded, streamed_shape, BLOCK_VALUES};
    let mut group = crit.benchmark_group("class_blocks");
    group.sample_size(10);
    let case = cosface(64, 128, 2000);
    assert!(
        streamed_shape(&case, BLOCK_VALUES).is_some(),
        "the case streams"
    );
    group.bench_function("streamed/cosface_64x128x2000", |b| {
        b.iter(|| certified_rounded(black_box(&case), false).expect("certifies"))
    });
    group.bench_function("whole/cosface_64x128x2000", |b| {
        b.iter(|| certified(black_box(&case)).expect("certifies"))
    });
    group.finish();
}

criterion_group!(benches, bench_reference, bench_class_blocks);
criterion_main!(benches);
