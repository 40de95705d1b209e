//! `lossref bench LOSS --batch B --dim D --classes C --dtype f32|f64 [--threads T]`: the
//! fused forward + backward of a normalized-margin loss (or an adaptive margin of SPEC §5,
//! through the catalogue's fast path) against its three GEMMs, as JSON;
//! with `--reference`, the certified evaluation against the fast f64 path on the same inputs.

use crate::bench::{time, time_against_gemms, Inputs, Timing};
use crate::case::margin_params;
use crate::cli::progress::Spinner;
use crate::error::{Error, Result};
use crate::family::adaptive::AdaptiveFamily;
use crate::family::normalized::NormalizedFamily;
use crate::family::LossFamily;
use crate::fast::{MarginLoss, Real};
use crate::spec::{LossId, Margin};
use serde_json::{json, Value};

/// What to measure.
#[derive(Clone, Debug)]
pub struct Request {
    /// A normalized-margin loss id.
    pub loss: String,
    /// SPEC §3 parameters as a JSON object (defaults when empty).
    pub params: String,
    /// B.
    pub batch: usize,
    /// D.
    pub dim: usize,
    /// C.
    pub classes: usize,
    /// `f32` or `f64`.
    pub dtype: String,
    /// Threads (0: all cores).
    pub threads: usize,
    /// The most logits the fused path holds at once.
    pub tile_logits: usize,
    /// Untimed rounds.
    pub warmup: usize,
    /// Timed rounds.
    pub repeats: usize,
    /// Seed of the generated inputs.
    pub seed: u64,
    /// The best row kernels to use (`avx512`, `avx2`, `portable`; [`crate::fast::simd`]).
    pub kernels: String,
    /// Time the certified reference (and the fast path in f64) instead of the GEMMs.
    pub reference: bool,
}

/// Runs the benchmark and returns its JSON report.
///
/// The most values (inputs, logits and gradients) `lossref bench` allocates: 2^31.
pub const MAX_BENCH_VALUES: usize = 1 << 31;

/// # Errors
/// An unknown or unsupported loss, bad parameters, a zero dimension, sizes whose products
/// exceed [`MAX_BENCH_VALUES`], or an unknown dtype.
pub fn run(r: &Request) -> Result<String> {
    use crate::fast::simd::{limit_kernels, Kernels};
    let cap = Kernels::parse(&r.kernels).ok_or_else(|| {
        let names: Vec<&str> = Kernels::ALL.iter().map(|k| k.as_str()).collect();
        Error::invalid(
            "--kernels",
            format!(
                "`{}` is not a kernel set: one of {}{}",
                r.kernels,
                names.join(", "),
                crate::suggest::did_you_mean(&r.kernels, names.iter().copied())
            ),
        )
    })?;
    limit_kernels(cap);
    if r.loss == "softmax_ce" && r.reference {
        return softmax_ce_reference(r);
    }
    if let Some(loss) =
        LossId::from_name(&r.loss).filter(|l| AdaptiveFamily::LOSSES.contains(l) && !r.reference)
    {
        return adaptive(loss, r);
    }
    let loss = LossId::from_name(&r.loss)
        .filter(|l| NormalizedFamily::LOSSES.contains(l))
        .ok_or_else(|| {
            Error::invalid(
                "LOSS",
                format!(
                    "`{}`: bench times the GEMM-based losses normface, cosface, amsoftmax, arcface, combined, curricularface, adaface, magface, adacos (and, with --reference, the normalized-margin losses and softmax_ce)",
                    r.loss
                ),
            )
        })?;
    let params = request_params(r)?;
    let (scale, margin, reduction) = margin_params(loss, &params)?;
    check_sizes(r)?;
    let fused = MarginLoss {
        scale,
        margin,
        reduction,
    };
    if r.reference {
        return reference(loss, scale, margin, reduction, r);
    }
    let pool = thread_pool(r)?;
    let threads = pool.current_num_threads();
    let timing = match r.dtype.as_str() {
        "f32" => pool.install(|| measure::<f32>(&fused, r, threads))?,
        "f64" => pool.install(|| measure::<f64>(&fused, r, threads))?,
        other => return Err(bad_dtype(other)),
    };
    Ok(timing_report(
        loss,
        describe(scale, &margin, reduction.as_str()),
        r,
        threads,
        &timing,
    ))
}

/// `--params` as a JSON object (empty: SPEC §1's defaults).
fn request_params(r: &Request) -> Result<Value> {
    if r.params.trim().is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_str(&r.params)
        .map_err(|e| Error::invalid("--params", format!("not valid JSON: {e}")))
}

/// The sizes of a benchmark: every dimension at least 1, C ≥ 2, at most
/// [`MAX_BENCH_VALUES`] values, at least one timed round.
fn check_sizes(r: &Request) -> Result<()> {
    for (name, v) in [
        ("--batch", r.batch),
        ("--dim", r.dim),
        ("--classes", r.classes),
    ] {
        if v == 0 {
            return Err(Error::invalid(name, "must be at least 1"));
        }
    }
    if r.classes < 2 {
        return Err(Error::invalid("--classes", "a softmax needs C ≥ 2"));
    }
    // B·D + C·D + B·C values must exist before anything is allocated
    let values = [(r.batch, r.dim), (r.classes, r.dim), (r.batch, r.classes)]
        .iter()
        .try_fold(0usize, |acc, &(a, b)| {
            a.checked_mul(b).and_then(|p| acc.checked_add(p))
        });
    match values {
        Some(v) if v <= MAX_BENCH_VALUES => {}
        _ => {
            return Err(Error::invalid(
                "--batch",
                format!(
                    "B·D + C·D + B·C = {} values is more than the {MAX_BENCH_VALUES} a benchmark allocates",
                    values.map_or("more than usize".into(), |v| v.to_string())
                ),
            ))
        }
    }
    if r.repeats == 0 {
        return Err(Error::invalid("--repeats", "must be at least 1"));
    }
    Ok(())
}

/// The pool of `--threads` threads.
fn thread_pool(r: &Request) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(r.threads)
        .build()
        .map_err(|e| Error::invalid("--threads", format!("cannot start the thread pool: {e}")))
}

fn bad_dtype(other: &str) -> Error {
    Error::invalid("--dtype", format!("must be f32 or f64, got {other:?}"))
}

/// An adaptive margin of SPEC §5 (`curricularface`, `adaface`, `magface`, `adacos`): the
/// catalogue's fast path ([`crate::fast::dispatch::evaluate`]) on generated inputs, the
/// state before the step at its defaults, against the three GEMMs of the same shapes.
fn adaptive(loss: LossId, r: &Request) -> Result<String> {
    let params = request_params(r)?;
    check_sizes(r)?;
    let pool = thread_pool(r)?;
    let threads = pool.current_num_threads();
    fn run<T: Real>(loss: LossId, params: &Value, r: &Request, threads: usize) -> Result<Timing> {
        use crate::npz::{Array, Data};
        let inputs = Inputs::<T>::generate(r.batch, r.dim, r.classes, r.seed);
        let wide = |v: &[T], rows: usize| Array {
            shape: vec![rows, r.dim],
            data: Data::Float(v.iter().map(|x| x.as_f64()).collect()),
            was_f32: T::NAME == "f32",
        };
        let arrays = [
            ("features".to_string(), wide(&inputs.features, r.batch)),
            ("weights".to_string(), wide(&inputs.weights, r.classes)),
            (
                "labels".to_string(),
                Array {
                    shape: vec![r.batch],
                    data: Data::Int(inputs.labels.iter().map(|&y| y as i64).collect()),
                    was_f32: false,
                },
            ),
        ]
        .into_iter()
        .collect();
        let case = crate::case::case_from_arrays(
            &json!({"loss": loss.as_str(), "params": params}),
            arrays,
            "bench",
        )
        .map_err(|e| Error::new(e.kind, format!("--params: {}", e.place), e.reason))?;
        let fused = || -> Result<f64> {
            let a = crate::fast::dispatch::evaluate::<T>(&case)?;
            Ok(a.loss().copied().unwrap_or(f64::NAN))
        };
        time_against_gemms(fused, &inputs, threads, r.warmup, r.repeats)
    }
    let timing = match r.dtype.as_str() {
        "f32" => pool.install(|| run::<f32>(loss, &params, r, threads))?,
        "f64" => pool.install(|| run::<f64>(loss, &params, r, threads))?,
        other => return Err(bad_dtype(other)),
    };
    Ok(timing_report(loss, params, r, threads, &timing))
}

/// The JSON report of a timing: medians, their ratio and every run.
fn timing_report(
    loss: LossId,
    params: Value,
    r: &Request,
    threads: usize,
    timing: &Timing,
) -> String {
    let flops = 6.0 * r.batch as f64 * r.classes as f64 * r.dim as f64;
    let ms = |v: &[f64]| v.iter().map(|s| s * 1e3).collect::<Vec<f64>>();
    let report = json!({
        "loss": loss.as_str(),
        "params": params,
        "dtype": r.dtype,
        "batch": r.batch,
        "dim": r.dim,
        "classes": r.classes,
        "threads": threads,
        "tile_logits": r.tile_logits,
        "kernels": crate::fast::simd::kernels().as_str(),
        "warmup": r.warmup,
        "repeats": r.repeats,
        "fused_ms": timing.fused() * 1e3,
        "gemms_ms": timing.gemms() * 1e3,
        "ratio": timing.ratio(),
        "fused_gflops": flops / timing.fused() / 1e9,
        "gemms_gflops": flops / timing.gemms() / 1e9,
        "runs": {"fused_ms": ms(&timing.fused_runs), "gemms_ms": ms(&timing.gemm_runs)},
        "note": "medians; fused = forward + backward of the loss; gemms = X·Wᵀ, G·W, Gᵀ·X of the same shapes, timed alternately in the same run; ratio = fused / gemms",
    });
    serde_json::to_string_pretty(&report).unwrap_or_else(|_| report.to_string())
}

/// `--reference`: the certified evaluation of one generated case (loss and both
/// gradients, tier `correctly_rounded` or `faithful`) timed once, and, in the same run, the
/// fast f64 forward + backward on the same inputs (median of `repeats` after `warmup`).
fn reference(
    loss: LossId,
    scale: f64,
    margin: Margin,
    reduction: crate::spec::Reduction,
    r: &Request,
) -> Result<String> {
    let inputs = Inputs::<f64>::generate(r.batch, r.dim, r.classes, r.seed);
    let matrix = |rows: usize, v: &[f64]| {
        crate::matrix::Matrix::from_vec(rows, r.dim, v.to_vec())
            .ok_or_else(|| Error::invalid("--dim", "the generated inputs do not fit the shape"))
    };
    let case = crate::spec::Case::Normalized(crate::spec::NormalizedCase {
        loss,
        scale,
        margin,
        reduction,
        features: matrix(r.batch, &inputs.features)?,
        weights: matrix(r.classes, &inputs.weights)?,
        labels: inputs.labels.clone(),
        margins: None,
        margins_as: Default::default(),
        classes: None,
    });
    let fused = MarginLoss {
        scale,
        margin,
        reduction,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(r.threads)
        .build()
        .map_err(|e| Error::invalid("--threads", format!("cannot start the thread pool: {e}")))?;
    let threads = pool.current_num_threads();
    let fast = median_seconds(r, || {
        let out = pool.install(|| {
            fused.forward_backward(
                &inputs.features,
                &inputs.weights,
                &inputs.labels,
                r.dim,
                threads,
            )
        })?;
        std::hint::black_box(out);
        Ok(())
    })?;
    let (answer, certified) = timed_certification(&pool, &case)?;
    let head = json!({
        "loss": loss.as_str(),
        "params": describe(scale, &margin, reduction.as_str()),
        "batch": r.batch,
        "dim": r.dim,
        "classes": r.classes,
        "threads": threads,
    });
    let note = "reference = the certified loss and both gradients (lossref eval: with decimal strings where it prints JSON, only the roundings for an answer of more than 100 000 values, which it writes with --output), timed once; fast = the f64 forward + backward on the same inputs, the median of the timed rounds, in the same run";
    Ok(reference_report(head, &answer, certified, fast, note))
}

/// `softmax_ce --reference`: the certified evaluation of B×C generated logits (normal with
/// σ = 3, a fixed stream per seed; `--dim` is not used) timed once, and in the same run the
/// fast f64 forward + backward on the same logits (median of `repeats` after `warmup`).
fn softmax_ce_reference(r: &Request) -> Result<String> {
    use crate::family::softmax::fast::softmax_ce_into;
    use crate::spec::{Reduction, SoftmaxCeCase};
    let params = request_params(r)?;
    let reduction = match params.get("reduction").map(Value::as_str) {
        None | Some(Some("mean")) => Reduction::Mean,
        Some(Some("sum")) => Reduction::Sum,
        Some(other) => {
            return Err(Error::invalid(
                "--params",
                format!("reduction must be \"mean\" or \"sum\", not {other:?}"),
            ))
        }
    };
    if r.batch == 0 || r.classes < 2 {
        return Err(Error::invalid(
            "--classes",
            "softmax_ce needs B ≥ 1 and C ≥ 2",
        ));
    }
    let values = r
        .batch
        .checked_mul(r.classes)
        .filter(|v| *v <= MAX_BENCH_VALUES);
    let Some(values) = values else {
        return Err(Error::invalid(
            "--batch",
            format!("B·C is more than the {MAX_BENCH_VALUES} values a benchmark allocates"),
        ));
    };
    if r.repeats == 0 {
        return Err(Error::invalid("--repeats", "must be at least 1"));
    }
    // Box–Muller on a SplitMix64 stream: normal(0, 3) logits, the same for every run.
    let mut state = r.seed ^ 0x9e37_79b9_7f4a_7c15;
    let mut uniform = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    let logits: Vec<f64> = (0..values)
        .map(|_| {
            let (u, v) = (uniform().max(f64::MIN_POSITIVE), uniform());
            3.0 * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        })
        .collect();
    let labels: Vec<usize> = (0..r.batch).map(|i| (i * 7919) % r.classes).collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(r.threads)
        .build()
        .map_err(|e| Error::invalid("--threads", format!("cannot start the thread pool: {e}")))?;
    let threads = pool.current_num_threads();
    let mut grad = vec![0.0; values];
    let fast = median_seconds(r, || {
        let loss = softmax_ce_into(&logits, r.classes, &labels, reduction, &mut grad)?;
        std::hint::black_box(loss);
        Ok(())
    })?;
    let case = crate::spec::Case::SoftmaxCe(SoftmaxCeCase {
        reduction,
        logits: crate::matrix::Matrix::from_vec(r.batch, r.classes, logits).ok_or_else(|| {
            Error::invalid("--classes", "the generated logits do not fit the shape")
        })?,
        labels,
        options: Default::default(),
    });
    let (answer, certified) = timed_certification(&pool, &case)?;
    let head = json!({
        "loss": "softmax_ce",
        "params": {"reduction": reduction.as_str()},
        "batch": r.batch,
        "classes": r.classes,
        "threads": threads,
    });
    let note = "reference = the certified loss and gradient (lossref eval: with decimal strings where it prints JSON, only the roundings for an answer of more than 100 000 values, which it writes with --output), timed once; fast = the f64 forward + backward (one thread) on the same logits, the median of the timed rounds, in the same run";
    Ok(reference_report(head, &answer, certified, fast, note))
}

/// The JSON of a `--reference` timing: `head` (the case), then the certified time, tier and
/// precision, the fast time, their ratio, the peak memory and the note.
fn reference_report(
    mut head: Value,
    answer: &crate::mp::certify::CertifiedAnswer<crate::mp::certify::Rounded>,
    certified: f64,
    fast: f64,
    note: &str,
) -> String {
    let tail = json!({
        "reference_s": certified,
        "reference_tier": answer.certificate.tier.as_str(),
        "reference_precision_bits": answer.certificate.precision_bits,
        "reference_decimals": answer
            .answer
            .sections()
            .all(|(_, _, t)| t.values().iter().all(|v| v.decimal.is_some())),
        "fast_f64_ms": fast * 1e3,
        "ratio": certified / fast,
        "peak_memory_mb": peak_memory_mb(),
        "note": format!("{note}; ratio = reference / fast; peak_memory_mb = the process's peak resident memory (Linux VmHWM), null where unknown"),
    });
    if let (Some(h), Value::Object(t)) = (head.as_object_mut(), tail) {
        h.extend(t);
    }
    serde_json::to_string_pretty(&head).unwrap_or_else(|_| head.to_string())
}

/// The median wall time in seconds of `r.repeats` runs of `run` after `r.warmup` untimed
/// ones.
fn median_seconds(r: &Request, mut run: impl FnMut() -> Result<()>) -> Result<f64> {
    let mut runs = Vec::with_capacity(r.repeats);
    for k in 0..r.warmup + r.repeats {
        let start = std::time::Instant::now();
        run()?;
        if k >= r.warmup {
            runs.push(start.elapsed().as_secs_f64());
        }
    }
    runs.sort_by(f64::total_cmp);
    Ok(runs[runs.len() / 2])
}

/// The certified answer of `case` as `lossref eval` computes it (a block of rows at a time
/// where the family splits so) in `pool` and its wall time in seconds (once), with a spinner
/// on a terminal.
fn timed_certification(
    pool: &rayon::ThreadPool,
    case: &crate::spec::Case,
) -> Result<(
    crate::mp::certify::CertifiedAnswer<crate::mp::certify::Rounded>,
    f64,
)> {
    let start = std::time::Instant::now();
    let spinner = Spinner::after_a_second(format!("certifying {}", case.loss().as_str()));
    let decimals = prints_decimals(case);
    let answer = pool.install(|| {
        use crate::reference::blocks::{certified_rounded, certified_streaming, BLOCK_VALUES};
        // A case that streams over classes: its streamed gradient is certified and let go
        // block by block (`eval --output` writes it to the archive), so that the benchmark's
        // memory is eval's.
        let streamed = certified_streaming(case, decimals, BLOCK_VALUES, &mut |_, block| {
            drop(block);
            Ok(())
        })?;
        match streamed {
            Some((answer, _)) => Ok(answer),
            None => certified_rounded(case, decimals),
        }
    });
    drop(spinner);
    Ok((answer?, start.elapsed().as_secs_f64()))
}

/// Whether `lossref eval` keeps the case's decimal strings: an answer it prints as JSON
/// (at most [`crate::cli::eval::MAX_PRINTED_VALUES`] values) has them; a larger one goes to
/// `--output FILE.npz`, without them unless `--decimals` asks. The benchmark certifies what
/// `eval` would.
fn prints_decimals(case: &crate::spec::Case) -> bool {
    // the gradients (normface's ∂L/∂s where it learns its scale), and the loss
    let gradients = match case {
        crate::spec::Case::Normalized(c) => {
            c.features.as_slice().len() + c.weights.as_slice().len() + usize::from(c.learns_scale())
        }
        crate::spec::Case::SoftmaxCe(c) => c.logits.as_slice().len(),
        _ => 0,
    };
    gradients < crate::cli::eval::MAX_PRINTED_VALUES
}

/// The process's peak resident set in MiB (Linux `VmHWM`), or `None` elsewhere.
fn peak_memory_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some((kib / 1024.0).round())
}

fn measure<T: Real>(fused: &MarginLoss, r: &Request, threads: usize) -> Result<Timing> {
    let inputs = Inputs::<T>::generate(r.batch, r.dim, r.classes, r.seed);
    time(fused, &inputs, threads, r.tile_logits, r.warmup, r.repeats)
}

fn describe(scale: f64, margin: &Margin, reduction: &str) -> Value {
    let mut v = match *margin {
        Margin::None => json!({}),
        Margin::Additive { m } => json!({"margin": m}),
        Margin::Angular { m, boundary, grad } => {
            json!({"margin": m, "boundary": boundary.as_str(), "margin_grad": grad.as_str()})
        }
        Margin::Combined { m1, m2, m3 } => json!({"m1": m1, "m2": m2, "m3": m3}),
    };
    v["scale"] = json!(scale);
    v["reduction"] = json!(reduction);
    v
}
