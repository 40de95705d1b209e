//! The corpus's cases (SPEC §4): every loss and variant of SPEC §1, both dtypes, in the
//! regimes where implementations break, each generated on purpose by a named generator
//! that draws from named distributions (statrs, on a ChaCha8 stream seeded by the case id)
//! and records them in the case's `generator`.
//!
//! A float32 case rounds every drawn number, and every parameter, to binary32, so the case
//! is exact in both dtypes. Drawing uses `ln`, `exp`, `sin` and `cos` from the platform's
//! libm (through statrs' samplers): the committed corpus is the ground truth, and `lossref
//! corpus verify` recomputes it on the machine it runs on.

pub use crate::spec::Dtype;
use crate::spec::{Boundary, LossId, MarginGrad};
use rand::distributions::Distribution;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};
use statrs::distribution::{Normal, Uniform};
use std::f64::consts::PI;

/// One generated case: its identity, provenance and the §3 case itself.
#[derive(Clone, Debug, PartialEq)]
pub struct Generated {
    /// `loss/regime/dtype-k`, stable.
    pub id: String,
    /// The dtype the case is meant for.
    pub dtype: Dtype,
    /// Why the case exists.
    pub tags: Vec<String>,
    /// The generator and its distributions.
    pub generator: Value,
    /// The seed of the generator's stream.
    pub seed: u64,
    /// The SPEC §3 case (`loss`, `params`, `inputs` inline).
    pub case: Value,
}

/// FNV-1a of the id: the seed of a case's stream, the same on every machine.
pub fn seed_of(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Draws from named distributions and rounds to the case's dtype.
struct Draw {
    rng: ChaCha8Rng,
    dtype: Dtype,
}

impl Draw {
    fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        let d = Normal::new(mean, sd).expect("a valid normal");
        self.dtype.round(d.sample(&mut self.rng))
    }

    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        Uniform::new(lo, hi)
            .expect("a valid uniform")
            .sample(&mut self.rng)
    }

    /// e^U with U uniform on [ln lo, ln hi]: a scale spread evenly over decades.
    fn log_uniform(&mut self, lo: f64, hi: f64) -> f64 {
        self.uniform(lo.ln(), hi.ln()).exp()
    }

    fn index(&mut self, n: usize) -> usize {
        (self.uniform(0.0, n as f64) as usize).min(n - 1)
    }

    fn normal_rows(&mut self, rows: usize, cols: usize, sd: f64) -> Vec<Vec<f64>> {
        (0..rows)
            .map(|_| (0..cols).map(|_| self.normal(0.0, sd)).collect())
            .collect()
    }

    fn labels(&mut self, n: usize, c: usize) -> Vec<usize> {
        (0..n).map(|_| self.index(c)).collect()
    }

    /// Features at target cosines `cos[i]` to their class weights, with norms from `norm`:
    /// x_i = ‖x_i‖·(c·ŵ + √(1 − c²)·u), u a normal direction orthogonal to ŵ (binary64,
    /// then rounded to the dtype, which moves cos θ by about one rounding).
    fn features_at(
        &mut self,
        weights: &[Vec<f64>],
        labels: &[usize],
        cos: &[f64],
        norm: (f64, f64),
    ) -> Vec<Vec<f64>> {
        let d = weights[0].len();
        labels
            .iter()
            .zip(cos)
            .map(|(&y, &c)| {
                let w = &weights[y];
                let wn = w.iter().map(|a| a * a).sum::<f64>().sqrt();
                let what: Vec<f64> = w.iter().map(|a| a / wn).collect();
                let mut u: Vec<f64> = (0..d)
                    .map(|_| Normal::new(0.0, 1.0).expect("normal").sample(&mut self.rng))
                    .collect();
                let along: f64 = u.iter().zip(&what).map(|(a, b)| a * b).sum();
                u.iter_mut().zip(&what).for_each(|(a, b)| *a -= along * b);
                let un = u
                    .iter()
                    .map(|a| a * a)
                    .sum::<f64>()
                    .sqrt()
                    .max(f64::MIN_POSITIVE);
                let s = (1.0 - c * c).max(0.0).sqrt();
                let r = self.log_uniform(norm.0, norm.1);
                what.iter()
                    .zip(&u)
                    .map(|(a, b)| self.dtype.round(r * (c * a + s * b / un)))
                    .collect()
            })
            .collect()
    }
}

/// The regimes the corpus generates (each a tag `edge:…`, `scale:…` or `random`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Regime {
    Random,
    NearTie,
    Dominant,
    HugeLogit,
    SmallTemperature,
    LargeTemperature,
    AlphaZero,
    AlphaOne,
    PsiBoundary,
    TinyNorm,
    HugeNorm,
    AcosNearOne,
    AcosNearMinusOne,
    ThmmSwitch,
    EasySwitch,
    LargeC,
}

impl Regime {
    fn tag(self) -> &'static str {
        match self {
            Regime::Random => "random",
            Regime::NearTie => "edge:near-tie",
            Regime::Dominant => "edge:dominant-target",
            Regime::HugeLogit => "edge:huge-logit",
            Regime::SmallTemperature => "edge:small-temperature",
            Regime::LargeTemperature => "edge:large-temperature",
            Regime::AlphaZero => "edge:alpha-0",
            Regime::AlphaOne => "edge:alpha-1",
            Regime::PsiBoundary => "edge:psi-boundary",
            Regime::TinyNorm => "edge:tiny-norm",
            Regime::HugeNorm => "edge:huge-norm",
            Regime::AcosNearOne => "edge:acos-near-1",
            Regime::AcosNearMinusOne => "edge:acos-near-minus-1",
            Regime::ThmmSwitch => "edge:thmm-switch",
            Regime::EasySwitch => "edge:easy-switch",
            Regime::LargeC => "scale:large-C",
        }
    }

    /// The id segment: the tag without its prefix.
    fn slug(self) -> String {
        let t = self.tag();
        t.split_once(':').map_or(t.to_string(), |(kind, rest)| {
            if kind == "edge" {
                format!("edge-{rest}")
            } else {
                format!("{kind}-{}", rest.to_lowercase())
            }
        })
    }
}

/// A variant: a loss with fixed parameters, and a name for its id.
pub(crate) struct Variant {
    pub(crate) loss: LossId,
    pub(crate) name: String,
    pub(crate) params: Map<String, Value>,
}

pub(crate) fn variant(loss: LossId, name: &str, params: Value) -> Variant {
    let Value::Object(params) = params else {
        unreachable!("params are objects")
    };
    Variant {
        loss,
        name: name.to_string(),
        params,
    }
}

/// The variants of the normalized-margin family: every loss, every ArcFace boundary and
/// margin gradient (all parameters exact in binary32).
fn margin_variants() -> Vec<Variant> {
    margin_variants_with(vec![variant(
        LossId::Combined,
        "combined",
        json!({"scale": 64, "m1": 1.25, "m2": 0.25, "m3": 0.125}),
    )])
}

/// normface, cosface, amsoftmax, the given `combined` variants, and ArcFace with every
/// boundary and margin gradient.
pub(crate) fn margin_variants_with(combined: Vec<Variant>) -> Vec<Variant> {
    let mut v = vec![
        variant(LossId::NormFace, "normface", json!({"scale": 16})),
        variant(
            LossId::CosFace,
            "cosface",
            json!({"scale": 64, "margin": 0.375}),
        ),
        variant(
            LossId::AmSoftmax,
            "amsoftmax",
            json!({"scale": 30, "margin": 0.375}),
        ),
    ];
    v.extend(combined);
    for boundary in Boundary::ALL {
        for grad in MarginGrad::ALL {
            v.push(variant(
                LossId::ArcFace,
                &format!("arcface-{}-{}", boundary.as_str(), grad.as_str()),
                json!({"scale": 64, "margin": 0.5, "boundary": boundary.as_str(), "margin_grad": grad.as_str()}),
            ));
        }
    }
    v
}

fn rows_json(rows: &[Vec<f64>]) -> Value {
    Value::Array(rows.iter().map(|r| json!(r)).collect())
}

/// Softmax-family logits in a regime: (logits, description of the draw).
fn logits(
    draw: &mut Draw,
    regime: Regime,
    n: usize,
    c: usize,
    labels: &[usize],
) -> (Vec<Vec<f64>>, Value) {
    match regime {
        Regime::NearTie => {
            let rows = (0..n)
                .map(|_| {
                    let base = draw.normal(0.0, 4.0);
                    (0..c)
                        .map(|_| {
                            draw.dtype
                                .round(base * (1.0 + draw.uniform(-1.0, 1.0) * 1e-6))
                        })
                        .collect()
                })
                .collect();
            (
                rows,
                json!({"logits": "z₀·(1 + uniform[−1e−6, 1e−6]), z₀ ~ normal(0, 4)"}),
            )
        }
        Regime::Dominant => {
            let gap = if draw.dtype == Dtype::Float32 {
                (20.0, 100.0)
            } else {
                (20.0, 700.0)
            };
            let mut rows = draw.normal_rows(n, c, 1.0);
            for (row, &y) in rows.iter_mut().zip(labels) {
                let g = draw.uniform(gap.0, gap.1);
                row[y] = draw.dtype.round(row[y] + g);
            }
            (
                rows,
                json!({"logits": "normal(0, 1)", "target": format!("+ uniform[{}, {}]", gap.0, gap.1)}),
            )
        }
        Regime::HugeLogit => {
            let sd = if draw.dtype == Dtype::Float32 {
                1e4
            } else {
                1e6
            };
            (
                draw.normal_rows(n, c, sd),
                json!({"logits": format!("normal(0, {sd:e})")}),
            )
        }
        _ => (
            draw.normal_rows(n, c, 3.0),
            json!({"logits": "normal(0, 3)"}),
        ),
    }
}

/// Every case of the corpus, in a fixed order.
pub fn all_cases() -> Vec<Generated> {
    let mut out = Vec::new();
    for dtype in Dtype::ALL {
        softmax_cases(dtype, &mut out);
        distill_cases(dtype, &mut out);
        psi_cases(dtype, &mut out);
        center_cases(dtype, &mut out);
        margin_cases(dtype, &mut out);
        out.extend(crate::corpus::exact_zero::corpus_cases(dtype));
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// Adds `count` cases of `name` in `regime`, each from `build(draw, k)` → (params, inputs,
/// generator description).
#[allow(clippy::too_many_arguments)]
fn push(
    out: &mut Vec<Generated>,
    dtype: Dtype,
    name: &str,
    loss: LossId,
    regime: Regime,
    count: usize,
    extra_tags: &[&str],
    mut build: impl FnMut(&mut Draw, usize) -> (Map<String, Value>, Value, Value),
) {
    for k in 0..count {
        let id = format!("{name}/{}/{}-{k:04}", regime.slug(), dtype.short());
        let seed = seed_of(&id);
        let mut draw = Draw {
            rng: ChaCha8Rng::seed_from_u64(seed),
            dtype,
        };
        let (params, inputs, description) = build(&mut draw, k);
        let mut generator = json!({"name": format!("{}/{}", loss.as_str(), regime.slug()), "rng": "ChaCha8, seeded by FNV-1a of the id"});
        if let (Value::Object(g), Value::Object(d)) = (&mut generator, description) {
            g.extend(d);
        }
        let mut tags = vec![regime.tag().to_string()];
        tags.extend(extra_tags.iter().map(|t| t.to_string()));
        out.push(Generated {
            id,
            dtype,
            tags,
            generator,
            seed,
            case: json!({"loss": loss.as_str(), "params": Value::Object(params), "inputs": inputs}),
        });
    }
}

fn params(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn softmax_cases(dtype: Dtype, out: &mut Vec<Generated>) {
    for (regime, t) in [
        (Regime::Random, 1.0),
        (Regime::NearTie, 1.0),
        (Regime::HugeLogit, 1.0),
        (Regime::SmallTemperature, 1.0 / 64.0),
        (Regime::LargeTemperature, 100.0),
    ] {
        push(
            out,
            dtype,
            "softmax",
            LossId::Softmax,
            regime,
            2,
            &[],
            |draw, _| {
                let (n, c) = (3, 7);
                let (z, d) = logits(draw, regime, n, c, &[0; 3]);
                (
                    params(json!({"temperature": t})),
                    json!({"logits": rows_json(&z)}),
                    d,
                )
            },
        );
    }
    for regime in [
        Regime::Random,
        Regime::NearTie,
        Regime::Dominant,
        Regime::HugeLogit,
        Regime::LargeC,
    ] {
        for reduction in ["mean", "sum"] {
            if regime == Regime::LargeC && reduction == "sum" {
                continue;
            }
            let name = format!("softmax_ce-{reduction}");
            push(
                out,
                dtype,
                &name,
                LossId::SoftmaxCe,
                regime,
                2,
                &[],
                |draw, _| {
                    let (n, c) = if regime == Regime::LargeC {
                        (2, 10_000)
                    } else {
                        (4, 9)
                    };
                    let labels = draw.labels(n, c);
                    let (z, d) = logits(draw, regime, n, c, &labels);
                    (
                        params(json!({"reduction": reduction})),
                        json!({"logits": rows_json(&z), "labels": labels}),
                        d,
                    )
                },
            );
        }
    }
}

fn distill_cases(dtype: Dtype, out: &mut Vec<Generated>) {
    for (regime, t, alpha) in [
        (Regime::Random, 4.0, 0.875),
        (Regime::SmallTemperature, 0.125, 0.5),
        (Regime::LargeTemperature, 64.0, 0.875),
        (Regime::AlphaZero, 4.0, 0.0),
        (Regime::AlphaOne, 4.0, 1.0),
    ] {
        for soft in ["kl", "ce"] {
            push(
                out,
                dtype,
                &format!("distill-{soft}"),
                LossId::Distill,
                regime,
                2,
                &[],
                |draw, _| {
                    let (n, c) = (3, 6);
                    let labels = draw.labels(n, c);
                    let s = draw.normal_rows(n, c, 3.0);
                    let t_logits = draw.normal_rows(n, c, 3.0);
                    (
                        params(json!({"temperature": t, "alpha": alpha, "soft": soft})),
                        json!({"student_logits": rows_json(&s), "teacher_logits": rows_json(&t_logits), "labels": labels}),
                        json!({"student_logits": "normal(0, 3)", "teacher_logits": "normal(0, 3)"}),
                    )
                },
            );
        }
    }
}

fn psi_cases(dtype: Dtype, out: &mut Vec<Generated>) {
    for (loss, m, lambda) in [
        (LossId::LSoftmax, 1, 0.0),
        (LossId::LSoftmax, 2, 0.0),
        (LossId::LSoftmax, 3, 1.5),
        (LossId::SphereFace, 4, 0.0),
        (LossId::SphereFace, 4, 5.0),
    ] {
        let name = format!("{}-m{m}-lambda{lambda}", loss.as_str());
        for regime in [
            Regime::Random,
            Regime::PsiBoundary,
            Regime::TinyNorm,
            Regime::HugeNorm,
        ] {
            if regime == Regime::PsiBoundary && m == 1 {
                continue;
            }
            push(out, dtype, &name, loss, regime, 2, &[], |draw, _| {
                let (n, c, d) = (3, 5, 4);
                let w = draw.normal_rows(c, d, 1.0);
                let labels = draw.labels(n, c);
                let (x, desc) = match regime {
                    Regime::PsiBoundary => {
                        let eps = if dtype == Dtype::Float32 {
                            (1e-4, 1e-2)
                        } else {
                            (1e-10, 1e-3)
                        };
                        let cos: Vec<f64> = (0..n)
                            .map(|_| {
                                let k = 1 + draw.index(m as usize - 1);
                                let side = if draw.uniform(0.0, 1.0) < 0.5 {
                                    -1.0
                                } else {
                                    1.0
                                };
                                (k as f64 * PI / m as f64 + side * draw.log_uniform(eps.0, eps.1))
                                    .cos()
                            })
                            .collect();
                        (
                            draw.features_at(&w, &labels, &cos, (0.5, 2.0)),
                            json!({"target_theta": format!("kπ/m ± log-uniform[{:e}, {:e}]", eps.0, eps.1), "feature_norms": "log-uniform[0.5, 2]"}),
                        )
                    }
                    Regime::TinyNorm | Regime::HugeNorm => {
                        let r = match (regime, dtype) {
                            (Regime::TinyNorm, Dtype::Float32) => (1e-15, 1e-12),
                            (Regime::TinyNorm, Dtype::Float64) => (1e-100, 1e-90),
                            (_, Dtype::Float32) => (1e3, 1e5),
                            _ => (1e4, 1e6),
                        };
                        let cos: Vec<f64> = (0..n).map(|_| draw.uniform(-1.0, 1.0)).collect();
                        (
                            draw.features_at(&w, &labels, &cos, r),
                            json!({"target_cos": "uniform[−1, 1]", "feature_norms": format!("log-uniform[{:e}, {:e}]", r.0, r.1)}),
                        )
                    }
                    _ => (
                        draw.normal_rows(n, d, 1.0),
                        json!({"features": "normal(0, 1)"}),
                    ),
                };
                let mut desc = desc;
                desc["weights"] = json!("normal(0, 1)");
                (
                    params(json!({"margin": m, "lambda": lambda})),
                    json!({"features": rows_json(&x), "weights": rows_json(&w), "labels": labels}),
                    desc,
                )
            });
        }
    }
}

fn center_cases(dtype: Dtype, out: &mut Vec<Generated>) {
    for (regime, sd) in [
        (Regime::Random, 1.0),
        (Regime::TinyNorm, 1e-12),
        (Regime::HugeNorm, 1e12),
    ] {
        push(
            out,
            dtype,
            "center",
            LossId::Center,
            regime,
            2,
            &[],
            |draw, _| {
                let (n, c, d) = (5, 3, 4);
                let x = draw.normal_rows(n, d, sd);
                let centers = draw.normal_rows(c, d, sd);
                let labels = draw.labels(n, c);
                (
                    params(json!({"alpha": 0.5})),
                    json!({"features": rows_json(&x), "centers": rows_json(&centers), "labels": labels}),
                    json!({"features": format!("normal(0, {sd:e})"), "centers": format!("normal(0, {sd:e})")}),
                )
            },
        );
    }
}

fn margin_cases(dtype: Dtype, out: &mut Vec<Generated>) {
    for v in margin_variants() {
        let angular = v.loss == LossId::ArcFace || v.loss == LossId::Combined;
        let detached = v.params.get("margin_grad").and_then(Value::as_str) == Some("detached");
        let boundary = v
            .params
            .get("boundary")
            .and_then(Value::as_str)
            .unwrap_or("");
        let mut regimes = vec![
            Regime::Random,
            Regime::Dominant,
            Regime::TinyNorm,
            Regime::HugeNorm,
            Regime::AcosNearOne,
        ];
        // acos near −1 needs a margin that stays defined there: the affine rules, or a
        // detached ArcFace gradient
        if !angular || detached {
            regimes.push(Regime::AcosNearMinusOne);
        }
        match boundary {
            "thmm" => regimes.push(Regime::ThmmSwitch),
            "easy" => regimes.push(Regime::EasySwitch),
            _ => {}
        }
        if matches!(
            v.name.as_str(),
            "normface" | "cosface" | "arcface-none-full"
        ) {
            regimes.push(Regime::LargeC);
        }
        for regime in regimes {
            let margin = v
                .params
                .get("margin")
                .and_then(Value::as_f64)
                .unwrap_or(0.0);
            push(
                out,
                dtype,
                &v.name,
                v.loss,
                regime,
                if regime == Regime::LargeC { 1 } else { 2 },
                &[],
                |draw, _| {
                    let (n, c, d) = if regime == Regime::LargeC {
                        (2, 10_000, 4)
                    } else {
                        (3, 6, 5)
                    };
                    let w = draw.normal_rows(c, d, 1.0);
                    let labels = draw.labels(n, c);
                    // how far from the thmm switch θ = π − m
                    let switch = if dtype == Dtype::Float32 {
                        (1e-4, 1e-2)
                    } else {
                        (1e-9, 1e-3)
                    };
                    let (near, far) = if dtype == Dtype::Float32 {
                        (1e-6, 1e-3)
                    } else {
                        (1e-12, 1e-4)
                    };
                    let (cos, what): (Vec<f64>, String) = match regime {
                        Regime::AcosNearOne => (
                            (0..n).map(|_| 1.0 - draw.log_uniform(near, far)).collect(),
                            format!("1 − log-uniform[{near:e}, {far:e}]"),
                        ),
                        Regime::AcosNearMinusOne => (
                            (0..n).map(|_| -1.0 + draw.log_uniform(near, far)).collect(),
                            format!("−1 + log-uniform[{near:e}, {far:e}]"),
                        ),
                        Regime::ThmmSwitch => (
                            (0..n)
                                .map(|_| {
                                    let side = if draw.uniform(0.0, 1.0) < 0.5 {
                                        -1.0
                                    } else {
                                        1.0
                                    };
                                    (PI - margin + side * draw.log_uniform(switch.0, switch.1))
                                        .cos()
                                })
                                .collect(),
                            format!("cos(π − m ± log-uniform[{:e}, {:e}])", switch.0, switch.1),
                        ),
                        Regime::EasySwitch => (
                            (0..n)
                                .map(|_| {
                                    let side = if draw.uniform(0.0, 1.0) < 0.5 {
                                        -1.0
                                    } else {
                                        1.0
                                    };
                                    side * draw.log_uniform(near, far)
                                })
                                .collect(),
                            format!("± log-uniform[{near:e}, {far:e}]"),
                        ),
                        Regime::Dominant => (
                            (0..n).map(|_| draw.uniform(0.95, 0.999)).collect(),
                            "uniform[0.95, 0.999]".into(),
                        ),
                        _ => (
                            (0..n).map(|_| draw.uniform(-0.9, 0.9)).collect(),
                            "uniform[−0.9, 0.9]".into(),
                        ),
                    };
                    let norms = match (regime, dtype) {
                        (Regime::TinyNorm, Dtype::Float32) => (1e-15, 1e-12),
                        (Regime::TinyNorm, Dtype::Float64) => (1e-150, 1e-140),
                        (Regime::HugeNorm, Dtype::Float32) => (1e12, 1e15),
                        (Regime::HugeNorm, Dtype::Float64) => (1e140, 1e150),
                        _ => (0.5, 2.0),
                    };
                    let x = draw.features_at(&w, &labels, &cos, norms);
                    let mut p = v.params.clone();
                    if regime == Regime::Dominant {
                        p.insert("reduction".into(), json!("sum"));
                    }
                    (
                        p,
                        json!({"features": rows_json(&x), "weights": rows_json(&w), "labels": labels}),
                        json!({"weights": "normal(0, 1)", "target_cos": what, "feature_norms": format!("log-uniform[{:e}, {:e}]", norms.0, norms.1)}),
                    )
                },
            );
        }
    }
}
