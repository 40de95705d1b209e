//! softmax_ce forward+backward, fast path against a baseline measured in the same run: the
//! naive three-pass formula (max, Σ e^{z−m}, then p − onehot) that most hand-written
//! implementations use. The figure of merit is the ratio fast / naive per shape and dtype.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lossref::family::softmax::fast::softmax_ce_into;
use lossref::fast::Real;
use lossref::spec::Reduction;

/// The baseline: stable but uncompensated, log(Σ) instead of ln1p, no exact splitting.
fn naive<T: Real>(z: &[T], cols: usize, labels: &[usize], grad: &mut [T]) -> T {
    let n = T::of_usize(labels.len());
    let mut loss = T::zero();
    for ((row, g), &y) in z
        .chunks_exact(cols)
        .zip(grad.chunks_exact_mut(cols))
        .zip(labels)
    {
        let m = row.iter().fold(T::neg_infinity(), |a, &b| a.max(b));
        let mut s = T::zero();
        for (gj, &zj) in g.iter_mut().zip(row) {
            *gj = (zj - m).exp();
            s += *gj;
        }
        loss = loss + s.ln() + m - row[y];
        for gj in g.iter_mut() {
            *gj = *gj / s / n;
        }
        g[y] -= T::one() / n;
    }
    loss / n
}

fn inputs<T: Real>(n: usize, c: usize) -> (Vec<T>, Vec<usize>) {
    // A fixed pseudo-random pattern (an LCG), so every run measures the same data.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 11) as f64 / (1u64 << 53) as f64) * 20.0 - 10.0
    };
    let z = (0..n * c).map(|_| T::of_f64(next())).collect();
    let labels = (0..n).map(|i| (i * 7919) % c).collect();
    (z, labels)
}

fn bench_dtype<T: Real>(crit: &mut Criterion) {
    let mut group = crit.benchmark_group(format!("softmax_ce_{}", T::NAME));
    for (n, c) in [(256usize, 1000usize), (64, 10_000)] {
        let (z, labels) = inputs::<T>(n, c);
        let mut grad = vec![T::zero(); n * c];
        group.throughput(Throughput::Elements((n * c) as u64));
        let shape = format!("{n}x{c}");
        group.bench_with_input(BenchmarkId::new("fast", &shape), &(), |b, _| {
            b.iter(|| {
                softmax_ce_into(black_box(&z), c, &labels, Reduction::Mean, &mut grad)
                    .expect("valid")
            })
        });
        group.bench_with_input(BenchmarkId::new("naive_baseline", &shape), &(), |b, _| {
            b.iter(|| naive(black_box(&z), c, &labels, &mut grad))
        });
    }
    group.finish();
}

fn benches(crit: &mut Criterion) {
    bench_dtype::<f32>(crit);
    bench_dtype::<f64>(crit);
}

criterion_group!(softmax_ce, benches);
criterion_main!(softmax_ce);
