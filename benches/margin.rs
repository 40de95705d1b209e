//! The fused normalized-margin forward + backward (cosface, arcface) against the three plain
//! GEMMs of the same shapes, measured in the same run, at the shapes of a face-recognition
//! head: B=256, D=512, C=10k and B=1024, D=512, C=100k. The figure of merit is the ratio
//! fused / GEMMs (`lossref bench` prints it directly).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use faer::Par;
use lossref::bench::{Gemms, Inputs};
use lossref::fast::{MarginLoss, Real, Workspace};
use lossref::spec::{Boundary, Margin, MarginGrad, Reduction};
use std::hint::black_box;
use std::time::Duration;

fn shapes(c: &mut Criterion) {
    let losses = [
        ("cosface", Margin::Additive { m: 0.35 }),
        (
            "arcface",
            Margin::Angular {
                m: 0.5,
                boundary: Boundary::None,
                grad: MarginGrad::Full,
            },
        ),
    ];
    for (b, d, classes, samples) in [(256, 512, 10_000, 20), (1024, 512, 100_000, 10)] {
        bench::<f32>(c, &losses, b, d, classes, samples);
    }
    bench::<f64>(c, &losses, 256, 512, 10_000, 10);
}

fn bench<T: Real>(
    c: &mut Criterion,
    losses: &[(&str, Margin)],
    b: usize,
    d: usize,
    classes: usize,
    samples: usize,
) {
    let inputs = Inputs::<T>::generate(b, d, classes, 1);
    let mut group = c.benchmark_group(format!("margin_{}_B{b}_D{d}_C{classes}", T::NAME));
    group
        .sample_size(samples)
        .measurement_time(Duration::from_secs(if classes > 10_000 { 60 } else { 10 }));
    group.throughput(Throughput::Elements((6 * b * classes * d) as u64));
    let mut gemms = Gemms::<T>::new(b, d, classes);
    group.bench_function(BenchmarkId::new("three_gemms", "baseline"), |bench| {
        bench.iter(|| gemms.run(black_box(&inputs), Par::rayon(0)))
    });
    for (name, margin) in losses {
        let loss = MarginLoss {
            scale: 64.0,
            margin: *margin,
            reduction: Reduction::Mean,
        };
        // Buffers reused across iterations, as in a training loop (and as the GEMMs' are).
        let mut ws = Workspace::<T>::default();
        let (mut gx, mut gw) = (vec![T::zero(); b * d], vec![T::zero(); classes * d]);
        group.bench_function(BenchmarkId::new("fused", name), |bench| {
            bench.iter(|| {
                loss.forward_backward_into(
                    &mut ws,
                    black_box(&inputs.features),
                    &inputs.weights,
                    &inputs.labels,
                    d,
                    0,
                    &mut gx,
                    &mut gw,
                )
                .expect("generated inputs are valid")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, shapes);
criterion_main!(benches);
