//! The corpus's cases (SPEC §4): every loss and variant of SPEC §1, both dtypes, in the
//! regimes where implementations break, each generated on purpose by a named generator
//! that draws from named distributions (statrs, on a ChaCha8 stream seeded by the case id)
//! and records them in the case's `generator`.
//!
//! A float32 case rounds every drawn number, and every parameter, to binary32, so the case
//! is exact in both dtypes. Drawing uses `ln`, `exp`, `sin` and `cos` from the platform's
//! libm (through statrs' samplers): the committed corpus is the ground truth, and `lossref
//! corpus verify` recomputes it on the machine it runs on.

use crate::spec::{Dtype, LossId};
use rand::distributions::Distribution;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};
use statrs::distribution::{Normal, Uniform};

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
pub(crate) struct Draw {
    rng: ChaCha8Rng,
    pub(crate) dtype: Dtype,
}

impl Draw {
    pub(crate) fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        let d = Normal::new(mean, sd).expect("a valid normal");
        self.dtype.round(d.sample(&mut self.rng))
    }

    pub(crate) fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        Uniform::new(lo, hi)
            .expect("a valid uniform")
            .sample(&mut self.rng)
    }

    /// e^U with U uniform on [ln lo, ln hi]: a scale spread evenly over decades.
    pub(crate) fn log_uniform(&mut self, lo: f64, hi: f64) -> f64 {
        self.uniform(lo.ln(), hi.ln()).exp()
    }

    /// −1 or +1 with equal odds: the side of a switch point a case is drawn on.
    pub(crate) fn side(&mut self) -> f64 {
        if self.uniform(0.0, 1.0) < 0.5 {
            -1.0
        } else {
            1.0
        }
    }

    pub(crate) fn index(&mut self, n: usize) -> usize {
        (self.uniform(0.0, n as f64) as usize).min(n - 1)
    }

    pub(crate) fn normal_rows(&mut self, rows: usize, cols: usize, sd: f64) -> Vec<Vec<f64>> {
        (0..rows)
            .map(|_| (0..cols).map(|_| self.normal(0.0, sd)).collect())
            .collect()
    }

    pub(crate) fn labels(&mut self, n: usize, c: usize) -> Vec<usize> {
        (0..n).map(|_| self.index(c)).collect()
    }

    /// Features at target cosines `cos[i]` to their class weights, with norms from `norm`:
    /// x_i = ‖x_i‖·(c·ŵ + √(1 − c²)·u), u a normal direction orthogonal to ŵ (binary64,
    /// then rounded to the dtype, which moves cos θ by about one rounding).
    pub(crate) fn features_at(
        &mut self,
        weights: &[Vec<f64>],
        labels: &[usize],
        cos: &[f64],
        norm: (f64, f64),
    ) -> Vec<Vec<f64>> {
        let angles: Vec<(f64, f64)> = cos
            .iter()
            .map(|&c| (c, (1.0 - c * c).max(0.0).sqrt()))
            .collect();
        self.features_at_angles(weights, labels, &angles, norm)
    }

    /// As [`Draw::features_at`], each row's angle to its class weight given as (cos θ, sin θ):
    /// what reaches θ far below √ε, where 1 − cos θ is not representable.
    pub(crate) fn features_at_angles(
        &mut self,
        weights: &[Vec<f64>],
        labels: &[usize],
        angles: &[(f64, f64)],
        norm: (f64, f64),
    ) -> Vec<Vec<f64>> {
        let d = weights[0].len();
        labels
            .iter()
            .zip(angles)
            .map(|(&y, &(c, s))| {
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
pub(crate) enum Regime {
    Random,
    NearTie,
    Dominant,
    HugeLogit,
    LargeLoss,
    SmallTemperature,
    LargeTemperature,
    AlphaZero,
    AlphaOne,
    PsiBoundary,
    TinyNorm,
    HugeNorm,
    AcosNearOne,
    AcosNearMinusOne,
    CosRoundsToOne,
    CosRoundsToMinusOne,
    ParamPrecision,
    ThmmSwitch,
    EasySwitch,
    LargeC,
    WideWeights,
    MostlyIgnored,
    SmoothingNearZero,
    SmoothingOne,
    SoftOneHot,
    SoftUnnormalized,
    SoftZeroAtTinyP,
    SampleMargins,
    ClassSubset,
    HardNegatives,
    NormClamp,
    ScalerClamp,
    CosClamp,
    MedianAngle,
}

impl Regime {
    fn tag(self) -> &'static str {
        match self {
            Regime::Random => "random",
            Regime::NearTie => "edge:near-tie",
            Regime::Dominant => "edge:dominant-target",
            Regime::HugeLogit => "edge:huge-logit",
            Regime::LargeLoss => "edge:large-loss",
            Regime::SmallTemperature => "edge:small-temperature",
            Regime::LargeTemperature => "edge:large-temperature",
            Regime::AlphaZero => "edge:alpha-0",
            Regime::AlphaOne => "edge:alpha-1",
            Regime::PsiBoundary => "edge:psi-boundary",
            Regime::TinyNorm => "edge:tiny-norm",
            Regime::HugeNorm => "edge:huge-norm",
            Regime::AcosNearOne => "edge:acos-near-1",
            Regime::AcosNearMinusOne => "edge:acos-near-minus-1",
            Regime::CosRoundsToOne => "edge:cos-rounds-to-1",
            Regime::CosRoundsToMinusOne => "edge:cos-rounds-to-minus-1",
            Regime::ParamPrecision => "edge:param-precision",
            Regime::ThmmSwitch => "edge:thmm-switch",
            Regime::EasySwitch => "edge:easy-switch",
            Regime::LargeC => "scale:large-C",
            Regime::WideWeights => "edge:wide-weights",
            Regime::MostlyIgnored => "edge:mostly-ignored",
            Regime::SmoothingNearZero => "edge:smoothing-near-0",
            Regime::SmoothingOne => "edge:smoothing-1",
            Regime::SoftOneHot => "edge:soft-one-hot",
            Regime::SoftUnnormalized => "edge:soft-unnormalized",
            Regime::SoftZeroAtTinyP => "edge:soft-zero-at-tiny-p",
            Regime::SampleMargins => "input:per-sample-margins",
            Regime::ClassSubset => "input:class-subset",
            Regime::HardNegatives => "edge:hard-negatives",
            Regime::NormClamp => "edge:norm-clamp",
            Regime::ScalerClamp => "edge:margin-scaler-clamp",
            Regime::CosClamp => "edge:cos-clamp",
            Regime::MedianAngle => "edge:median-angle",
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

/// A real parameter of an `edge:param-precision` case: `decimal` (which no binary format
/// holds exactly) in `dtype`, checked not to be representable in the dtype's lower
/// precision ([`Dtype::round_lower`]), so that an implementation holding its parameters
/// there is off on every one of them (SPEC §4).
pub(crate) fn unrepresentable_param(dtype: Dtype, decimal: f64) -> f64 {
    let x = dtype.round(decimal);
    assert_ne!(
        dtype.round_lower(x),
        x,
        "{decimal} is representable in {}",
        dtype.lower_name()
    );
    x
}

/// The class count of the largest `scale:large-C` cases (corpus 0.7.0): a face-recognition
/// head's, where the certified evaluation streams over blocks of classes, or a language
/// model's vocabulary.
pub(crate) const LARGEST_C: usize = 100_000;

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

pub(crate) fn rows_json(rows: &[Vec<f64>]) -> Value {
    Value::Array(rows.iter().map(|r| json!(r)).collect())
}

/// Adds `count` cases of `name` in `regime`, each from `build(draw, k)` → (params, inputs,
/// generator description).
#[allow(clippy::too_many_arguments)]
pub(crate) fn push(
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

pub(crate) fn params(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The id of case `k` of `name`'s exact-zero cases in `dtype`.
pub(crate) fn exact_zero_id(name: &str, dtype: Dtype, k: usize) -> String {
    format!("{name}/edge-exact-zero/{}-{k:04}", dtype.short())
}

/// One exact-zero case: tag `edge:exact-zero`, seeded by its id, `description` added to
/// its generator.
pub(crate) fn exact_zero_case(
    id: String,
    dtype: Dtype,
    loss: LossId,
    params: Value,
    inputs: Value,
    description: Value,
) -> Generated {
    let mut generator = json!({"name": format!("{}/edge-exact-zero", loss.as_str())});
    if let (Value::Object(g), Value::Object(d)) = (&mut generator, description) {
        g.extend(d);
    }
    Generated {
        seed: seed_of(&id),
        id,
        dtype,
        tags: vec!["edge:exact-zero".to_string()],
        generator,
        case: json!({"loss": loss.as_str(), "params": Value::Object(params_map(params)), "inputs": inputs}),
    }
}

/// `v` as a JSON object (empty for anything else).
fn params_map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}
