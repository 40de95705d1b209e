//! The figure of merit of the fused normalized-margin path: its forward + backward time
//! against the three plain GEMMs of the same shapes, measured in the same run
//! (`lossref bench`, and the criterion benches under `benches/`).
//!
//! A fused loss cannot beat its GEMMs — X·Wᵀ (B×C logits), G·W (B×D) and Gᵀ·X (C×D) are
//! 3 × 2·B·C·D flops whatever the loss — so the ratio fused/GEMMs says how much the
//! normalization, the margin, the softmax and the tiling cost on top of them.

use crate::error::{Error, Result};
use crate::fast::{MarginLoss, Real, Workspace};
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use std::time::Instant;

/// Inputs of a benchmark: B×D features, C×D weights and B labels, from a fixed seed.
#[derive(Clone, Debug)]
pub struct Inputs<T> {
    /// B×D, row-major.
    pub features: Vec<T>,
    /// C×D, row-major.
    pub weights: Vec<T>,
    /// B labels in 0..C.
    pub labels: Vec<usize>,
    /// D.
    pub dim: usize,
}

impl<T: Real> Inputs<T> {
    /// Gaussian-like features and weights (sums of uniforms), uniform labels.
    pub fn generate(batch: usize, dim: usize, classes: usize, seed: u64) -> Inputs<T> {
        let mut state = seed;
        let mut next = move || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let mut normal = move || {
            let u: f64 = (0..4)
                .map(|_| (next() >> 11) as f64 / (1u64 << 53) as f64)
                .sum();
            T::of_f64(u - 2.0)
        };
        let features = (0..batch * dim).map(|_| normal()).collect();
        let weights = (0..classes * dim).map(|_| normal()).collect();
        let mut pick = {
            let mut s = seed ^ 0x5555;
            move || {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (s >> 33) as usize
            }
        };
        let labels = (0..batch).map(|_| pick() % classes).collect();
        Inputs {
            features,
            weights,
            labels,
            dim,
        }
    }
}

/// Medians (seconds) of the fused forward + backward and of the three GEMMs, with every
/// run kept.
#[derive(Clone, Debug)]
pub struct Timing {
    /// Each fused run, seconds.
    pub fused_runs: Vec<f64>,
    /// Each run of the three GEMMs, seconds.
    pub gemm_runs: Vec<f64>,
}

impl Timing {
    /// Median fused time.
    pub fn fused(&self) -> f64 {
        median(&self.fused_runs)
    }

    /// Median time of the three GEMMs.
    pub fn gemms(&self) -> f64 {
        median(&self.gemm_runs)
    }

    /// fused / GEMMs: the figure of merit (1 is the floor).
    pub fn ratio(&self) -> f64 {
        self.fused() / self.gemms()
    }
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => 0.5 * (v[n / 2 - 1] + v[n / 2]),
    }
}

/// The three GEMMs of a fused step, on buffers of the same shapes: logits = X·Wᵀ,
/// dX = G·W, dW = Gᵀ·X (G is the logits buffer).
pub struct Gemms<T> {
    logits: Vec<T>,
    dx: Vec<T>,
    dw: Vec<T>,
}

impl<T: Real> Gemms<T> {
    /// Buffers for B×C logits, B×D and C×D gradients.
    pub fn new(batch: usize, dim: usize, classes: usize) -> Gemms<T> {
        Gemms {
            logits: vec![T::zero(); batch * classes],
            dx: vec![T::zero(); batch * dim],
            dw: vec![T::zero(); classes * dim],
        }
    }

    /// Runs the three GEMMs once.
    pub fn run(&mut self, inputs: &Inputs<T>, par: Par) {
        let (b, d) = (inputs.labels.len(), inputs.dim);
        let c = inputs.weights.len() / d;
        let x = MatRef::from_row_major_slice(&inputs.features, b, d);
        let w = MatRef::from_row_major_slice(&inputs.weights, c, d);
        matmul(
            MatMut::from_row_major_slice_mut(&mut self.logits, b, c),
            Accum::Replace,
            x,
            w.transpose(),
            T::one(),
            par,
        );
        let g = MatRef::from_row_major_slice(&self.logits, b, c);
        matmul(
            MatMut::from_row_major_slice_mut(&mut self.dx, b, d),
            Accum::Replace,
            g,
            w,
            T::one(),
            par,
        );
        matmul(
            MatMut::from_row_major_slice_mut(&mut self.dw, c, d),
            Accum::Replace,
            g.transpose(),
            x,
            T::one(),
            par,
        );
    }
}

/// Times `loss` (forward + backward) and the three GEMMs, alternating them so that both
/// see the same machine state: `warmup` untimed rounds, then `repeats` timed ones.
///
/// # Errors
/// A failure of the fused path (which the generated inputs do not provoke).
pub fn time<T: Real>(
    loss: &MarginLoss,
    inputs: &Inputs<T>,
    threads: usize,
    tile_logits: usize,
    warmup: usize,
    repeats: usize,
) -> Result<Timing> {
    let (b, d) = (inputs.labels.len(), inputs.dim);
    let c = inputs.weights.len() / d;
    // Buffers are reused across rounds on both sides, as in a training loop.
    let mut ws = Workspace::<T>::with_tile_logits(tile_logits);
    let mut gx = vec![T::zero(); b * d];
    let mut gw = vec![T::zero(); c * d];
    let fused = || -> Result<f64> {
        let (value, _) = loss.forward_backward_into(
            &mut ws,
            &inputs.features,
            &inputs.weights,
            &inputs.labels,
            d,
            threads,
            &mut gx,
            &mut gw,
        )?;
        Ok(value.as_f64())
    };
    time_against_gemms(fused, inputs, threads, warmup, repeats)
}

/// Times `fused` (one forward + backward, returning its loss) and the three GEMMs of
/// `inputs`' shapes, alternating them: `warmup` untimed rounds, then `repeats` timed ones.
/// The fast path of any GEMM-based loss of the catalogue is timed this way.
///
/// # Errors
/// A failure of `fused`, or a loss that is not finite.
pub fn time_against_gemms<T: Real>(
    mut fused: impl FnMut() -> Result<f64>,
    inputs: &Inputs<T>,
    threads: usize,
    warmup: usize,
    repeats: usize,
) -> Result<Timing> {
    let (b, d) = (inputs.labels.len(), inputs.dim);
    let c = inputs.weights.len() / d;
    let par = Par::rayon(threads);
    let mut gemms = Gemms::new(b, d, c);
    let mut timing = Timing {
        fused_runs: Vec::with_capacity(repeats),
        gemm_runs: Vec::with_capacity(repeats),
    };
    for round in 0..warmup + repeats.max(1) {
        let start = Instant::now();
        let value = fused()?;
        let fused_time = start.elapsed().as_secs_f64();
        if !value.is_finite() {
            return Err(Error::invalid("bench", "the fused loss is not finite"));
        }
        let start = Instant::now();
        gemms.run(inputs, par);
        let plain = start.elapsed().as_secs_f64();
        if round >= warmup {
            timing.fused_runs.push(fused_time);
            timing.gemm_runs.push(plain);
        }
    }
    Ok(timing)
}
