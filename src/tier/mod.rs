//! Precision tiers (SPEC §6): how a results file says it computed (`"pipeline"`), and the
//! tolerance each tier derives for every value from the unit roundoffs of its stages.
//!
//! **Pipelines.** A results file may declare `"pipeline"`: one name, several joined by `+`
//! (`"amp+tf32"`), or a list of names. Each name sets one of three independent choices:
//! * for the 16-bit cases (`bfloat16`, `float16`): `native` (the default: every tensor in
//!   the case's dtype, each kernel's output rounded to it, arithmetic inside kernels in
//!   float32: F.cross_entropy on bf16 tensors, optax on bf16 arrays) or `amp` (16-bit
//!   inputs and matrix products, float32 softmax, log-sum-exp and loss, the loss returned
//!   in float32 and the gradients in the 16-bit dtype: torch.autocast, insightface's
//!   `logits.float()`, fused cross-entropy kernels);
//! * for the float32 cases, the precision of the matrix products X·Wᵀ and of the backward
//!   products: `highest` (the default: float32 operands), `tf32` (operands to 11
//!   significant bits), `bf16x3` (each operand a sum of two bfloat16s, the third product
//!   dropped: 16 bits), `bf16` (8 bits), accumulation in float32 for all;
//! * `ftz`: subnormal results flushed to zero, for every dtype (XLA on CPU and TPU).
//!
//! 16-bit accumulation (a softmax's sum over C classes added in bfloat16 or float16) has
//! no tier: a results file that declares it (`accumulate16`) has every value of its 16-bit
//! cases reported as failing by design.
//!
//! **The tolerance of a tier** ([`TierRule::limit`]), for a value v with error scale S(v)
//! (SPEC §4, [`crate::tolerance`]):
//!
//!   A = F·g(n)·ulp_{float32}(S(v))                          the arithmetic ([`stages::arithmetic`])
//!   L = ρ(σ·δ)·S(v) + [a backward product]·(2u + u²)·S(v)   the roundings before it
//!   O = ½·ulp_{out}(|v| + A + L), floored                   the output's rounding
//!   |got − v| ≤ A + L + O
//!
//! where δ is the logit error of the tier's stages, Σ_stage u_stage·c_stage (plus each
//! rounding's absolute part below the normal range, η = half the smallest subnormal) with the
//! coefficients c_stage that the loss's family states ([`LogitStages`]), σ the family's
//! sensitivity (how many softmaxes a logit error goes through), ρ(δ) = e^{2δ} − 1
//! ([`stages::softmax_propagation`]), u the unit roundoff of the stage (2⁻⁸ bfloat16,
//! 2⁻¹¹ float16 and TF32, 2⁻¹⁵ bf16x3, 2⁻²⁴ float32) and `out` the format the value is
//! returned in. The stages of each tier:
//!
//! | tier | before the softmax (δ) | backward products | returned in |
//! |---|---|---|---|
//! | 16-bit `native` | u₁₆·(operands + product + logits + log-probabilities) | u₁₆ | the 16-bit dtype |
//! | 16-bit `amp` | u₁₆·(operands + product) | u₁₆ | float32 (outputs), the 16-bit dtype (gradients) |
//! | float32 `tf32`, `bf16x3`, `bf16` | u_mm·operands | u_mm | float32 |
//! | `ftz` | — | — | floored at the smallest normal |
//!
//! A float32 or float64 case under no declared tier is judged by SPEC §4's model alone.

pub mod corpus;
pub mod stages;

use crate::error::{Error, Result};
use crate::spec::Dtype;
use serde_json::Value;
use std::fmt;

/// SPEC §6's `amp` results of a case computed in float32: for a 16-bit `dtype`, the
/// gradients rounded once to it (the `half` crate's conversion) and the outputs kept in
/// float32; for another dtype, the results as they are. What `lossref report` runs.
pub fn amp_results(mut groups: crate::check::Groups, dtype: Dtype) -> crate::check::Groups {
    if dtype.is_half() {
        for (name, (_, values)) in groups.iter_mut() {
            if name.starts_with("gradients/") {
                values.iter_mut().for_each(|v| *v = dtype.round(*v));
            }
        }
    }
    groups
}

/// How a 16-bit case is computed (SPEC §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HalfPipeline {
    /// Every tensor in the case's dtype.
    Native,
    /// 16-bit inputs and products, float32 softmax and loss.
    Amp,
    /// Sums over the classes accumulated in the 16-bit dtype: no tier admits it (SPEC §6),
    /// and every value of such a results file fails by design.
    Accumulate16,
}

impl HalfPipeline {
    /// `native`, `amp` or `accumulate16`.
    pub fn name(self) -> &'static str {
        match self {
            HalfPipeline::Native => "native",
            HalfPipeline::Amp => "amp",
            HalfPipeline::Accumulate16 => "accumulate16",
        }
    }
}

/// The precision of float32 matrix products (SPEC §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MatmulPrecision {
    /// float32 operands.
    Highest,
    /// bf16x3: each operand the sum of two bfloat16s, the product of the low parts dropped.
    Bf16x3,
    /// TF32: operands rounded to 11 significant bits.
    Tf32,
    /// bfloat16 operands.
    Bf16,
}

impl MatmulPrecision {
    /// The unit roundoff of the operands: 0 for `highest` (the arithmetic stage holds
    /// float32's), 2⁻¹¹ for TF32, 2⁻⁸ for bfloat16, and 2⁻¹⁵ for bf16x3: an operand is
    /// hi + lo to within 2⁻¹⁶ of itself, and the dropped lo·lo′ is another 2⁻¹⁶ of the
    /// product, so each product's error is within (2·2⁻¹⁵ + 2⁻³⁰)·|a·b|.
    pub fn unit_roundoff(self) -> f64 {
        match self {
            MatmulPrecision::Highest => 0.0,
            MatmulPrecision::Bf16x3 => (-15f64).exp2(),
            MatmulPrecision::Tf32 => (-11f64).exp2(),
            MatmulPrecision::Bf16 => Dtype::BFloat16.unit_roundoff(),
        }
    }

    /// η, half the smallest subnormal of the operands' format (float32's exponent range:
    /// 2⁻¹⁵⁰ for float32 and bf16x3's parts, 2⁻¹³⁷ for TF32's 10 stored bits, 2⁻¹³⁴ for
    /// bfloat16's 7).
    pub fn subnormal_half(self) -> f64 {
        match self {
            MatmulPrecision::Highest | MatmulPrecision::Bf16x3 => (-150f64).exp2(),
            MatmulPrecision::Tf32 => (-137f64).exp2(),
            MatmulPrecision::Bf16 => (-134f64).exp2(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            MatmulPrecision::Highest => "highest",
            MatmulPrecision::Bf16x3 => "bf16x3",
            MatmulPrecision::Tf32 => "tf32",
            MatmulPrecision::Bf16 => "bf16",
        }
    }
}

/// A results file's declared pipeline (SPEC §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pipeline {
    /// How the 16-bit cases are computed.
    pub half: HalfPipeline,
    /// The float32 cases' matrix products.
    pub matmul: MatmulPrecision,
    /// Subnormals flushed.
    pub ftz: bool,
}

impl Default for Pipeline {
    fn default() -> Pipeline {
        Pipeline::DEFAULT
    }
}

/// Every name a pipeline is made of.
pub const NAMES: [&str; 8] = [
    "native",
    "amp",
    "accumulate16",
    "highest",
    "tf32",
    "bf16x3",
    "bf16",
    "ftz",
];

impl Pipeline {
    /// `native`, `highest`, no `ftz`: what a results file that declares nothing is judged as.
    pub const DEFAULT: Pipeline = Pipeline {
        half: HalfPipeline::Native,
        matmul: MatmulPrecision::Highest,
        ftz: false,
    };

    /// Reads a `"pipeline"` value: a name, names joined by `+`, or a list of names.
    ///
    /// # Errors
    /// Anything else, or an unknown name (with the nearest valid one), or two names that
    /// set the same choice, naming `place`.
    pub fn parse(value: &Value, place: &str) -> Result<Pipeline> {
        let names: Vec<String> = match value {
            Value::String(s) => s.split('+').map(|n| n.trim().to_string()).collect(),
            Value::Array(a) => a
                .iter()
                .map(|v| {
                    v.as_str().map(str::to_string).ok_or_else(|| {
                        Error::invalid(place, format!("expected names of tiers, got {v}"))
                    })
                })
                .collect::<Result<_>>()?,
            other => {
                return Err(Error::invalid(
                    place,
                    format!("expected a tier name such as \"amp\" or a list of them, got {other}"),
                ))
            }
        };
        let mut p = Pipeline::DEFAULT;
        let (mut half, mut matmul, mut ftz) = (None, None, false);
        for name in &names {
            let clash = |what: &str| {
                Error::invalid(place, format!("`{name}` sets the {what} a second time"))
            };
            match name.as_str() {
                "native" | "amp" | "accumulate16" => {
                    if half.is_some() {
                        return Err(clash("16-bit pipeline"));
                    }
                    let h = match name.as_str() {
                        "amp" => HalfPipeline::Amp,
                        "accumulate16" => HalfPipeline::Accumulate16,
                        _ => HalfPipeline::Native,
                    };
                    half = Some(h);
                    p.half = h;
                }
                "highest" | "tf32" | "bf16x3" | "bf16" => {
                    if matmul.is_some() {
                        return Err(clash("matrix-product precision"));
                    }
                    let m = [
                        MatmulPrecision::Highest,
                        MatmulPrecision::Tf32,
                        MatmulPrecision::Bf16x3,
                        MatmulPrecision::Bf16,
                    ]
                    .into_iter()
                    .find(|m| m.name() == name)
                    .unwrap_or(MatmulPrecision::Highest);
                    matmul = Some(m);
                    p.matmul = m;
                }
                "ftz" => {
                    if ftz {
                        return Err(clash("flushing of subnormals"));
                    }
                    ftz = true;
                    p.ftz = true;
                }
                _ => {
                    return Err(Error::invalid(
                        place,
                        format!(
                            "unknown tier `{name}`{}; the tiers are {} (SPEC §6)",
                            crate::suggest::did_you_mean(name, NAMES),
                            NAMES.join(", ")
                        ),
                    ))
                }
            }
        }
        Ok(p)
    }

    /// The tier a case of `dtype` is judged in under this pipeline.
    pub fn tier(self, dtype: Dtype) -> Tier {
        Tier {
            dtype,
            half: dtype.is_half().then_some(self.half),
            matmul: if dtype == Dtype::Float32 {
                self.matmul
            } else {
                MatmulPrecision::Highest
            },
            ftz: self.ftz,
        }
    }
}

impl fmt::Display for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = vec![self.half.name()];
        if self.matmul != MatmulPrecision::Highest {
            parts.push(self.matmul.name());
        }
        if self.ftz {
            parts.push("ftz");
        }
        f.write_str(&parts.join("+"))
    }
}

/// The tier one case is judged in: its dtype and the choices of the pipeline that apply
/// to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tier {
    /// The case's dtype.
    pub dtype: Dtype,
    /// For a 16-bit case, how it is computed.
    pub half: Option<HalfPipeline>,
    /// For a float32 case, the precision of its matrix products.
    pub matmul: MatmulPrecision,
    /// Subnormals flushed.
    pub ftz: bool,
}

impl Tier {
    /// Whether SPEC §4's model alone judges the case (a float32 or float64 case with
    /// float32 products and subnormals kept).
    pub fn is_plain(self) -> bool {
        self.half.is_none() && self.matmul == MatmulPrecision::Highest && !self.ftz
    }

    /// The tiers a case of this dtype could be judged in other than this one, loosest
    /// last: what a failing value is tried under to say which tier it does meet.
    pub fn others(self) -> Vec<Tier> {
        let mut out = Vec::new();
        for ftz in [false, true] {
            if self.half.is_some() {
                for h in [HalfPipeline::Amp, HalfPipeline::Native] {
                    out.push(Tier {
                        half: Some(h),
                        ftz,
                        ..self
                    });
                }
            } else if self.dtype == Dtype::Float32 {
                for m in [
                    MatmulPrecision::Highest,
                    MatmulPrecision::Bf16x3,
                    MatmulPrecision::Tf32,
                    MatmulPrecision::Bf16,
                ] {
                    out.push(Tier {
                        matmul: m,
                        ftz,
                        ..self
                    });
                }
            } else {
                out.push(Tier { ftz, ..self });
            }
        }
        out.retain(|t| *t != self);
        out
    }
}

impl fmt::Display for Tier {
    /// `bfloat16 amp`, `float32 tf32`, `float16 native+ftz`, `float64`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<&str> = Vec::new();
        if let Some(h) = self.half {
            parts.push(h.name());
        }
        if self.matmul != MatmulPrecision::Highest {
            parts.push(self.matmul.name());
        }
        if self.ftz {
            parts.push("ftz");
        }
        if parts.is_empty() {
            f.write_str(self.dtype.as_str())
        } else {
            write!(f, "{} {}", self.dtype.as_str(), parts.join("+"))
        }
    }
}

/// What a loss's family states about its logits for SPEC §6's stages: the logit error
/// each stage puts in per unit roundoff (its coefficient c_stage), and how a logit error
/// reaches the values. Each family computes it in its home (`logit_stages`).
#[derive(Clone, Debug, PartialEq)]
pub struct LogitStages {
    /// The logits' error per unit roundoff of the operands of the matrix product they come
    /// from: max |∂z/∂c|·Σ_k|a_k b_k| over the products c = Σ a_k b_k (with
    /// [`stages::operand_rounding`]'s 2u + u² per unit); 0 where the logits are inputs.
    pub operands: f64,
    /// Per unit roundoff of that product held in a 16-bit format (an autocast GEMM's
    /// output): max |∂z/∂c|·|c|; 0 where the logits are inputs.
    pub product: f64,
    /// Per unit roundoff of the elementwise stages between the product (or the input
    /// logits) and the softmax held in the format (`native`): the margin, the scale, 1/T,
    /// z − max: the largest of their sizes in logit units.
    pub logits: f64,
    /// Per unit roundoff of the log-probabilities held in the format (`native`'s
    /// log_softmax output): max |log p| + 1 (the + 1: the rounding of Σ e^{z − max}).
    pub log_probabilities: f64,
    /// σ: the multiple of the logit error that reaches the values (1 for a cross-entropy;
    /// 1 + γ for focal, whose (1 − p)^γ carries γ times p's relative change; 2 for
    /// distillation, whose two softmaxes both move).
    pub sensitivity: f64,
    /// max |∂z/∂c|: the logits' change per unit change of a product c they come from
    /// (for the absolute, subnormal part of its roundings); 0 where the logits are inputs.
    pub per_product: f64,
    /// The largest ‖a‖₁ + ‖b‖₁ over those products c = Σ_k a_k b_k.
    pub operand_l1: f64,
    /// Their length (D).
    pub terms: usize,
    /// Whether the logits come from a matrix product, so that the gradients of its
    /// operands (`gradients/features`, `gradients/weights`) are matrix products with the
    /// logits' gradient too (∂L/∂x = G·W, ∂L/∂W = Gᵀ·X), whose operands are rounded to the
    /// product's precision.
    pub backward_products: bool,
    /// The largest logit, where a softmax that exponentiates before subtracting the
    /// maximum first overflows (e^z past the format's largest finite number); −∞ for a
    /// loss without logits.
    pub largest: f64,
}

impl LogitStages {
    /// A family whose logits are inputs: only the elementwise stages and the
    /// log-probabilities apply.
    pub fn of_input_logits(logits: f64, log_probabilities: f64) -> LogitStages {
        LogitStages {
            operands: 0.0,
            product: 0.0,
            per_product: 0.0,
            operand_l1: 0.0,
            terms: 0,
            logits,
            log_probabilities,
            sensitivity: 1.0,
            backward_products: false,
            largest: f64::NEG_INFINITY,
        }
    }

    /// The coefficients of softmax rows `rows` (each at temperature `t`) whose logits are
    /// inputs: z − max and log p held (the largest |z − max|/T, and max |log p| + 1).
    pub fn of_logit_rows<'a>(rows: impl IntoIterator<Item = &'a [f64]>, t: f64) -> LogitStages {
        let (mut logits, mut log_p, mut largest) = (0.0f64, 0.0f64, f64::NEG_INFINITY);
        for row in rows {
            let top = row.iter().copied().fold(f64::MIN, f64::max);
            largest = largest.max(top / t);
            for (z, lp) in row.iter().zip(crate::precision::log_softmax_row(row, t)) {
                logits = logits.max((top - z).abs() / t);
                log_p = log_p.max(lp.abs());
            }
        }
        LogitStages {
            largest,
            ..LogitStages::of_input_logits(logits, log_p + 1.0)
        }
    }

    /// A family whose logits come from matrix products c = Σ_k a_k b_k (the margin losses,
    /// L-/A-Softmax): the logit error per unit roundoff of the operands and of the held
    /// product (`per_unit`), max |∂z/∂c| (`per_product`), the products' largest
    /// ‖a‖₁ + ‖b‖₁ (`operand_l1`) and length (`terms`); the held logits' and
    /// log-probabilities' coefficients and the largest logit come from the logit `rows`.
    pub fn of_products(
        rows: impl IntoIterator<Item = Vec<f64>>,
        per_unit: f64,
        per_product: f64,
        operand_l1: f64,
        terms: usize,
    ) -> LogitStages {
        let (mut logits, mut log_p, mut largest) = (0.0f64, 0.0f64, f64::NEG_INFINITY);
        for z in rows {
            for (zj, lp) in z.iter().zip(crate::precision::log_softmax_row(&z, 1.0)) {
                logits = logits.max(zj.abs());
                largest = largest.max(*zj);
                log_p = log_p.max(lp.abs());
            }
        }
        LogitStages {
            operands: per_unit,
            product: per_unit,
            per_product,
            operand_l1,
            terms,
            logits,
            log_probabilities: log_p + 1.0,
            sensitivity: 1.0,
            backward_products: true,
            largest,
        }
    }

    /// The larger coefficient of each stage, and the larger sensitivity.
    pub fn max(self, other: LogitStages) -> LogitStages {
        LogitStages {
            operands: self.operands.max(other.operands),
            product: self.product.max(other.product),
            per_product: self.per_product.max(other.per_product),
            operand_l1: self.operand_l1.max(other.operand_l1),
            terms: self.terms.max(other.terms),
            logits: self.logits.max(other.logits),
            log_probabilities: self.log_probabilities.max(other.log_probabilities),
            sensitivity: self.sensitivity.max(other.sensitivity),
            backward_products: self.backward_products || other.backward_products,
            largest: self.largest.max(other.largest),
        }
    }
}

/// The tolerance rule of one case in one tier: its logit error and the rounding of each
/// group's output.
#[derive(Clone, Debug, PartialEq)]
pub struct TierRule {
    /// The tier.
    pub tier: Tier,
    /// σ·δ, the logit error of the stages before the softmax, times the sensitivity.
    pub delta: f64,
    /// The unit roundoff of the backward products' operands (0 where there are none).
    pub backward_u: f64,
}

impl TierRule {
    /// The unit roundoff of the stages before the softmax in `tier`: the 16-bit dtype's
    /// for a 16-bit case, the matrix products' for a float32 one (0 for `highest`).
    pub fn stage_roundoff(tier: Tier) -> f64 {
        if tier.half.is_some() {
            tier.dtype.unit_roundoff()
        } else {
            tier.matmul.unit_roundoff()
        }
    }

    /// The rule of `tier` for a case whose family states `stages` (at
    /// [`TierRule::stage_roundoff`]).
    pub fn new(tier: Tier, stages: &LogitStages) -> TierRule {
        let u = TierRule::stage_roundoff(tier);
        let eta = if tier.half.is_some() {
            0.5 * tier.dtype.ulp(0.0)
        } else {
            tier.matmul.subnormal_half()
        };
        // the matrix product's operands rounded, in logit units
        let operands = stages::operand_rounding(u, stages.operands)
            + stages.per_product
                * stages::subnormal_operands(u, eta, stages.operand_l1, stages.terms);
        // the product held in 16 bits (an autocast GEMM's output), in logit units
        let product = stages::held_rounding(u, eta * stages.per_product, stages.product);
        let delta = match tier.half {
            Some(HalfPipeline::Native | HalfPipeline::Accumulate16) => {
                operands
                    + product
                    + stages::held_rounding(u, eta, stages.logits)
                    + stages::held_rounding(u, eta, stages.log_probabilities)
            }
            Some(HalfPipeline::Amp) => operands + product,
            None => operands,
        };
        TierRule {
            tier,
            delta: delta * stages.sensitivity,
            backward_u: if stages.backward_products { u } else { 0.0 },
        }
    }

    /// The format a value of `group` (`outputs/…`, `gradients/…`) is returned in.
    pub fn returned_in(&self, group: &str) -> Dtype {
        match self.tier.half {
            Some(HalfPipeline::Native | HalfPipeline::Accumulate16) => self.tier.dtype,
            Some(HalfPipeline::Amp) if group.starts_with("gradients/") => self.tier.dtype,
            _ => self.tier.dtype.arithmetic(),
        }
    }

    /// The largest error allowed for a value `want` of `group` whose error scale is
    /// `scale` and longest sum `terms`, with `allowed` ulps of the table (the module docs'
    /// A + L + O).
    pub fn limit(&self, group: &str, allowed: f64, terms: usize, scale: f64, want: f64) -> f64 {
        let a = stages::arithmetic(allowed, terms, scale, self.tier.dtype.arithmetic());
        let backward = if matches!(group, "gradients/features" | "gradients/weights") {
            stages::operand_rounding(self.backward_u, scale)
        } else {
            0.0
        };
        let l = stages::softmax_propagation(self.delta) * scale + backward;
        a + l + stages::output_rounding(self.returned_in(group), want, a + l, self.tier.ftz)
    }
}
