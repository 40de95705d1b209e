//! Sub-center ArcFace (SPEC §5, `subcenter_arcface`; Deng et al., ECCV 2020): every class
//! has K sub-centers, rows j·K + k of the (C·K)×D weights, and its cosine is the largest of
//! theirs, cos θ_ij = max_k cos(x_i, w_{jK+k}); then `arcface` (all its parameters) on
//! those cosines. The gradient reaches the maximizing sub-center only.
//!
//! **The maximum, decided exactly** ([`select`]). Which sub-center is the largest is a
//! comparison of algebraic numbers: cos(x, a) > cos(x, b) exactly when
//! sign(x·a)(x·a)²‖b‖² > sign(x·b)(x·b)²‖a‖², all rational in the binary64 inputs. A
//! binary64 estimate decides where the two cosines are more than its error apart, and
//! rational arithmetic decides the rest. An exact tie of the maximum is an undefined point
//! of the gradient (the sub-gradient is not unique): an error naming the row and the two
//! sub-centers. K = 1 is `arcface` (T7).
//!
//! **One arcface row per sample.** With the maximizing sub-centers σ(i, j) decided, row i's
//! loss is `arcface` of x_i against the C rows w_{σ(i, j)}: each layer evaluates those
//! one-row cases (`row_case`, reduction `sum`), multiplies by the reduction's weight r
//! (1/N for `mean`), and adds each row's weight gradient into the sub-centers it selected;
//! a sub-center no row selects has the exact gradient 0. The fast path is one GEMM over the
//! C·K rows instead ([`crate::fast::MarginLoss::forward_backward_subcenters`]).

mod corpus;

use crate::answer::{Answer, Tensor};
use crate::case::validate;
use crate::case::{Fields, Inputs};
use crate::check::diagnose::{lower_precision_params, reevaluated, Alternative, Param};
use crate::corpus::generate::Generated;
use crate::error::{Error, Result};
use crate::exact::lindemann::{Combination, Row};
use crate::exact::ExactForm;
use crate::family::normalized::{self, NormalizedCase, NormalizedFamily};
use crate::family::{LossFamily, SwitchPoint, TableRows};
use crate::fast::dispatch::{narrow, widen};
use crate::fast::{MarginLoss, Real};
use crate::matrix::Matrix;
use crate::mp::interval::Interval;
use crate::precision::{scaled_norm, Entry, LossOutput, Quantity};
use crate::reference::per_sample;
use crate::spec::{Arithmetic, Boundary, Case, Dtype, LossId, Margin, MarginGrad, Reduction};
use crate::tier::LogitStages;
use crate::tolerance::Scale;
use rug::Rational;
use serde_json::Value;
use std::cmp::Ordering;

/// A `subcenter_arcface` case (SPEC §5).
#[derive(Clone, Debug, PartialEq)]
pub struct SubcenterCase {
    /// s > 0 (64).
    pub scale: f64,
    /// ArcFace's rule on the classes' cosines: `Margin::Angular` (m 0.5, its boundary and
    /// margin gradient).
    pub margin: Margin,
    /// `mean` (default) or `sum`.
    pub reduction: Reduction,
    /// N×D features, every row of non-zero norm.
    pub features: Matrix<f64>,
    /// (C·K)×D sub-centers, row j·K + k being sub-center k of class j; C ≥ 2, every row of
    /// non-zero norm.
    pub weights: Matrix<f64>,
    /// N labels in `0..C`.
    pub labels: Vec<usize>,
    /// K ≥ 1 (3).
    pub subcenters: usize,
}

impl SubcenterCase {
    /// The number of classes C = rows of the weights / K.
    pub fn classes(&self) -> usize {
        self.weights.rows() / self.subcenters.max(1)
    }
}

impl From<SubcenterCase> for Case {
    fn from(case: SubcenterCase) -> Case {
        Case::Subcenter(case)
    }
}

/// `subcenter_arcface`'s rows of the precision table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubcenterOutput(pub LossOutput);

impl TableRows for SubcenterOutput {
    const ALL: &'static [SubcenterOutput] = &[
        SubcenterOutput(LossOutput::Loss),
        SubcenterOutput(LossOutput::Grad),
    ];

    fn loss(self) -> &'static str {
        "subcenter_arcface"
    }

    fn output(self) -> &'static str {
        self.0.as_str()
    }

    fn entry(self, dtype: Arithmetic) -> Entry {
        match (self.0, dtype) {
            (LossOutput::Loss, Arithmetic::Float64) => Entry {
                max_ulps: 3.5,
                reason:
                    "as arcface.loss: the max over K sub-centers is exact on the GEMM's cosines",
            },
            (LossOutput::Loss, Arithmetic::Float32) => Entry {
                max_ulps: 2.0,
                reason: "as for f64; the rule and the row's ln in f64",
            },
            (LossOutput::Grad, Arithmetic::Float64) => Entry {
                max_ulps: 180.0,
                reason:
                    "as arcface.grad, the gradient placed at each class's maximizing sub-center",
            },
            (LossOutput::Grad, Arithmetic::Float32) => Entry {
                max_ulps: 160.0,
                reason: "as for f64",
            },
        }
    }
}

/// The sub-center ArcFace family.
pub struct SubcenterFamily;

/// Per batch row, the weight row of each class's largest sub-center (SPEC §5), decided
/// exactly (module docs).
///
/// # Errors
/// An exact tie of the maximum, naming the row, the class and the two sub-centers.
pub fn select(c: &SubcenterCase) -> Result<Vec<Vec<usize>>> {
    let (k, d) = (c.subcenters, c.features.cols());
    // the binary64 cosine of two unit rows is within (D + 4)·ε of the exact one
    let slack = 8.0 * (d as f64 + 4.0) * f64::EPSILON;
    estimated_cosines(c)
        .iter()
        .enumerate()
        .map(|(i, all)| {
            let x = c.features.row(i);
            (0..c.classes())
                .map(|j| {
                    let rows = j * k..(j + 1) * k;
                    let cos = &all[rows.clone()];
                    let mut best = j * k;
                    for r in rows.clone().skip(1) {
                        let (a, b) = (cos[r - j * k], cos[best - j * k]);
                        let order = if (a - b).abs() > slack {
                            a.partial_cmp(&b).unwrap_or(Ordering::Equal)
                        } else {
                            exact_order(x, c.weights.row(r), c.weights.row(best))
                        };
                        match order {
                            Ordering::Greater => best = r,
                            Ordering::Less => {}
                            Ordering::Equal => {
                                // a tie below the maximum is harmless; decide at the end
                            }
                        }
                    }
                    // an exact tie at the maximum: another row equal to the best
                    for r in rows.filter(|&r| r != best) {
                        let near = (cos[r - j * k] - cos[best - j * k]).abs() <= slack;
                        if near
                            && exact_order(x, c.weights.row(r), c.weights.row(best))
                                == Ordering::Equal
                        {
                            let (a, b) = (best.min(r), best.max(r));
                            return Err(Error::invalid(
                                format!("inputs.features[{i}]"),
                                format!(
                                    "its cosines to the sub-centers inputs.weights[{a}] and \
                                     inputs.weights[{b}] of class {j} tie exactly at the class's \
                                     maximum: the gradient, which reaches the maximizing \
                                     sub-center only, does not exist (SPEC §5, undefined points)"
                                ),
                            ));
                        }
                    }
                    Ok(best)
                })
                .collect()
        })
        .collect()
}

/// cos(x_i, w_r) in binary64 for every batch row and weight row, as products of unit rows.
fn estimated_cosines(c: &SubcenterCase) -> Vec<Vec<f64>> {
    let units: Vec<Vec<f64>> = c.weights.iter_rows().map(unit).collect();
    c.features
        .iter_rows()
        .map(|x| {
            let xu = unit(x);
            units
                .iter()
                .map(|w| xu.iter().zip(w).map(|(a, b)| a * b).sum())
                .collect()
        })
        .collect()
}

/// v/‖v‖ in binary64, scaled by its largest |entry| first (no overflow or underflow).
fn unit(v: &[f64]) -> Vec<f64> {
    let n = scaled_norm(v);
    v.iter()
        .map(|e| if n == 0.0 { 0.0 } else { e / n })
        .collect()
}

/// cos(x, a) against cos(x, b), exactly: sign(x·a)(x·a)²‖b‖² against sign(x·b)(x·b)²‖a‖².
pub(crate) fn exact_order(x: &[f64], a: &[f64], b: &[f64]) -> Ordering {
    let exact = |v: f64| Rational::from_f64(v).unwrap_or_default();
    let dot = |u: &[f64], v: &[f64]| -> Rational {
        u.iter()
            .zip(v)
            .fold(Rational::new(), |acc, (p, q)| acc + exact(*p) * exact(*q))
    };
    let signed_square = |d: Rational| -> Rational {
        let negative = d < 0;
        let sq = d.clone() * d;
        if negative {
            -sq
        } else {
            sq
        }
    };
    let (xa, xb) = (dot(x, a), dot(x, b));
    let (na, nb) = (dot(a, a), dot(b, b));
    (signed_square(xa) * nb).cmp(&(signed_square(xb) * na))
}

/// Row i as an `arcface` case: x_i against the C selected sub-centers `rows`, reduction
/// `sum` (the caller weighs it by r).
pub(crate) fn row_case(c: &SubcenterCase, i: usize, rows: &[usize]) -> NormalizedCase {
    let d = c.features.cols();
    NormalizedCase {
        loss: LossId::ArcFace,
        scale: c.scale,
        margin: c.margin,
        reduction: Reduction::Sum,
        features: Matrix::from_fn(1, d, |_, k| *c.features.get(i, k)),
        weights: Matrix::from_fn(rows.len(), d, |j, k| *c.weights.get(rows[j], k)),
        labels: vec![c.labels[i]],
        margins: None,
        margins_as: Default::default(),
        classes: None,
    }
}

/// An error of row i's arcface case, placed in the whole case: its row is `features[i]`, and
/// the class weight it names is the selected sub-center.
fn placed(e: Error, i: usize, rows: &[usize], y: usize) -> Error {
    let place = e
        .place
        .replace("inputs.features[0]", &format!("inputs.features[{i}]"));
    let reason = e.reason.replace(
        &format!("inputs.weights[{y}]"),
        &format!(
            "inputs.weights[{}] (the largest sub-center of class {y})",
            rows[y]
        ),
    );
    Error::new(e.kind, place, reason)
}

/// Each weight row's entries as the terms that the batch rows selecting it contribute:
/// what [`combined`] and [`combined_scales`] add up.
struct SelectedTerms<V> {
    /// terms[r][k]: the contributions to entry (r, k).
    terms: Vec<Vec<Vec<V>>>,
    d: usize,
}

impl<V: Clone> SelectedTerms<V> {
    fn new(rows: usize, d: usize) -> SelectedTerms<V> {
        SelectedTerms {
            terms: vec![vec![Vec::new(); d]; rows],
            d,
        }
    }

    /// One batch row's C×D values (row-major), class j's going to its selected row `rows[j]`.
    fn add(&mut self, rows: &[usize], values: &[V]) {
        for (e, v) in values.iter().enumerate() {
            self.terms[rows[e / self.d]][e % self.d].push(v.clone());
        }
    }

    /// Every entry, row-major: `weigh` of the `add` of its terms, or `zero` where no batch
    /// row selected its row.
    fn reduced(&self, zero: &V, add: impl Fn(&[V]) -> V, weigh: impl Fn(&V) -> V) -> Vec<V> {
        self.terms
            .iter()
            .flat_map(|row| row.iter())
            .map(|t| {
                if t.is_empty() {
                    zero.clone()
                } else {
                    weigh(&add(t))
                }
            })
            .collect()
    }
}

/// The answers of every row's arcface case by `evaluate`, combined: the loss and ∂L/∂x_i
/// weighed by r, each row's ∂L/∂w added into the sub-centers it selected, `zero` at the
/// others.
fn combined<V: Clone>(
    c: &SubcenterCase,
    selected: &[Vec<usize>],
    mut evaluate: impl FnMut(&NormalizedCase) -> Result<Answer<V>>,
    (zero, add, weigh): (V, impl Fn(&[V]) -> V, impl Fn(&V) -> V),
) -> Result<Answer<V>> {
    let (n, d) = (c.labels.len(), c.features.cols());
    let mut losses = Vec::with_capacity(n);
    let mut features = Vec::with_capacity(n * d);
    let mut terms = SelectedTerms::new(c.weights.rows(), d);
    for (i, rows) in selected.iter().enumerate() {
        let answer =
            evaluate(&row_case(c, i, rows)).map_err(|e| placed(e, i, rows, c.labels[i]))?;
        losses.push(answer.loss().cloned().unwrap_or_else(|| zero.clone()));
        if let Some(Tensor::Matrix(g)) = answer.gradient("features") {
            features.extend(g.row(0).iter().map(&weigh));
        }
        if let Some(Tensor::Matrix(g)) = answer.gradient("weights") {
            terms.add(rows, g.as_slice());
        }
    }
    let loss = weigh(&add(&losses));
    let weights = terms.reduced(&zero, &add, &weigh);
    let matrix = |rows: usize, v: Vec<V>| {
        Tensor::Matrix(Matrix::from_vec(rows, d, v).expect("one value per entry"))
    };
    Ok(Answer {
        outputs: vec![("loss", Tensor::Scalar(loss))],
        gradients: vec![
            ("features", matrix(n, features)),
            ("weights", matrix(c.weights.rows(), weights)),
        ],
    })
}

/// The certified enclosures at `prec` bits (module docs).
fn reference_at(
    c: &SubcenterCase,
    prec: u32,
    evaluate: fn(&NormalizedCase, u32) -> Result<Answer<Interval>>,
) -> Result<Answer<Interval>> {
    let selected = select(c)?;
    let one = Interval::from_i64(prec, 1);
    let r = per_sample(&one, c.reduction, c.labels.len());
    combined(
        c,
        &selected,
        |row| evaluate(row, prec),
        (
            Interval::from_i64(prec, 0),
            |v: &[Interval]| Interval::sum(prec, v),
            |v: &Interval| v.mul(&r),
        ),
    )
}

/// The selection where it is decided, else each class's binary64 argmax (for the scales,
/// which never fail).
fn selection_or_estimate(c: &SubcenterCase) -> Vec<Vec<usize>> {
    select(c).unwrap_or_else(|_| {
        let k = c.subcenters;
        estimated_cosines(c)
            .iter()
            .map(|cos| {
                (0..c.classes())
                    .map(|j| {
                        (j * k..(j + 1) * k)
                            .max_by(|&a, &b| cos[a].partial_cmp(&cos[b]).unwrap_or(Ordering::Equal))
                            .unwrap_or(j * k)
                    })
                    .collect()
            })
            .collect()
    })
}

/// The per-row scales of `f` (a family's measures or tolerance columns: loss, features,
/// weights) combined as [`combined`] combines values: features weighed by r, each weight
/// row the sum of its selectors', `fill` where no row selects it; the loss column is
/// `loss_scale`.
fn combined_scales<S: Clone>(
    c: &SubcenterCase,
    selected: &[Vec<usize>],
    f: impl Fn(&NormalizedCase) -> Vec<Vec<S>>,
    loss_scale: S,
    (fill, add, weigh): (S, impl Fn(&[S]) -> S, impl Fn(&S) -> S),
) -> Vec<Vec<S>> {
    let mut features = Vec::new();
    let mut terms = SelectedTerms::new(c.weights.rows(), c.features.cols());
    for (i, rows) in selected.iter().enumerate() {
        let columns = f(&row_case(c, i, rows));
        features.extend(columns[1].iter().map(&weigh));
        terms.add(rows, &columns[2]);
    }
    let weights = terms.reduced(&fill, add, weigh);
    vec![vec![loss_scale], features, weights]
}

/// max(1, max_i 1/sin θ_i) to the targets' selected sub-centers: the angular rule's
/// condition number (`normalized`'s scales).
fn kappa_max(c: &SubcenterCase, selected: &[Vec<usize>]) -> f64 {
    (0..c.labels.len()).fold(1.0f64, |k, i| {
        let w = c.weights.row(selected[i][c.labels[i]]);
        let (_, sin) = normalized::angle(c.features.row(i), w);
        k.max(1.0 / sin.max(1e-300))
    })
}

impl LossFamily for SubcenterFamily {
    type Case = SubcenterCase;

    const NAME: &'static str = "subcenter";

    const LOSSES: &'static [LossId] = &[LossId::SubcenterArcFace];

    fn parse(_: LossId, params: &mut Fields, inputs: &mut Inputs) -> Result<SubcenterCase> {
        let subcenters = match params.optional_integer("subcenters")? {
            None => 3,
            Some(k) => usize::try_from(k).ok().filter(|&k| k >= 1).ok_or_else(|| {
                Error::invalid(
                    params.place("subcenters"),
                    format!("must be an integer ≥ 1 (K sub-centers per class), got {k}"),
                )
            })?,
        };
        let (scale, margin, reduction) = normalized::read_margin_params(LossId::ArcFace, params)?;
        let features = inputs.unit_rows("features")?;
        let weights = inputs.unit_rows("weights")?;
        validate::classes(&features, &weights, &inputs.place("weights"))?;
        divides(weights.rows(), subcenters, &inputs.place("weights"))?;
        let labels = inputs.labels("labels", features.rows(), weights.rows() / subcenters)?;
        Ok(SubcenterCase {
            scale,
            margin,
            reduction,
            features,
            weights,
            labels,
            subcenters,
        })
    }

    fn loss(_: &SubcenterCase) -> LossId {
        LossId::SubcenterArcFace
    }

    fn validate(c: &SubcenterCase) -> Result<()> {
        let Margin::Angular { m, .. } = c.margin else {
            return Err(Error::invalid(
                "margin",
                format!(
                    "{:?} is not arcface's rule (Angular), which subcenter_arcface applies",
                    c.margin
                ),
            ));
        };
        validate::finite("params.margin", m)?;
        validate::positive("params.scale", c.scale)?;
        validate::finite_matrix("features", &c.features)?;
        validate::unit_rows("features", &c.features)?;
        validate::finite_matrix("weights", &c.weights)?;
        validate::unit_rows("weights", &c.weights)?;
        validate::classes(&c.features, &c.weights, "weights")?;
        divides(c.weights.rows(), c.subcenters, "inputs.weights")?;
        validate::labels("labels", &c.labels, c.features.rows(), c.classes())
    }

    fn reduction_mut(c: &mut SubcenterCase) -> Option<&mut Reduction> {
        Some(&mut c.reduction)
    }

    fn reference(c: &SubcenterCase, prec: u32) -> Result<Answer<Interval>> {
        reference_at(c, prec, normalized::reference::evaluate)
    }

    fn reference_plain(c: &SubcenterCase, prec: u32) -> Result<Answer<Interval>> {
        reference_at(c, prec, normalized::reference::evaluate_plain)
    }

    fn fast<T: Real>(c: &SubcenterCase) -> Result<Answer<f64>> {
        let d = c.features.cols();
        let rule = MarginLoss {
            scale: c.scale,
            margin: c.margin,
            reduction: c.reduction,
        };
        let g = rule.forward_backward_subcenters(
            &narrow::<T>(&c.features),
            &narrow::<T>(&c.weights),
            &c.labels,
            c.subcenters,
            d,
            0,
        )?;
        Ok(Answer {
            outputs: vec![("loss", Tensor::Scalar(g.loss.as_f64()))],
            gradients: vec![
                ("features", widen(c.features.rows(), d, g.features)),
                ("weights", widen(c.weights.rows(), d, g.weights)),
            ],
        })
    }

    fn quantities(_: &SubcenterCase) -> Vec<(&'static str, Quantity)> {
        let (loss, grad) = (
            Quantity::Subcenter(SubcenterOutput(LossOutput::Loss)),
            Quantity::Subcenter(SubcenterOutput(LossOutput::Grad)),
        );
        vec![
            ("outputs/loss", loss),
            ("gradients/features", grad),
            ("gradients/weights", grad),
        ]
    }

    /// `arcface`'s measures of each row's case, combined ([`combined_scales`]); the loss in
    /// ulps of max(|L|, s·κ).
    fn measures(c: &SubcenterCase, exact: &Answer<f64>, dtype: Dtype) -> Vec<Vec<f64>> {
        let selected = selection_or_estimate(c);
        let loss = exact
            .loss()
            .map_or(0.0, |l| l.abs())
            .max(c.scale * kappa_max(c, &selected));
        let r = c.reduction.weight(c.labels.len());
        let exact_row = Answer {
            outputs: vec![("loss", Tensor::Scalar(0.0))],
            gradients: Vec::new(),
        };
        combined_scales(
            c,
            &selected,
            |row| NormalizedFamily::measures(row, &exact_row, dtype),
            loss,
            (
                f64::MIN_POSITIVE,
                |v: &[f64]| v.iter().sum(),
                |v: &f64| v * r,
            ),
        )
    }

    /// `arcface`'s tolerance scales of each row's case, combined ([`combined_scales`]):
    /// each weight row's scale, naive scale and flush factor summed over the rows that
    /// select it, its κ the largest; the loss's max(|L|, s·κ) with κ kept.
    fn tolerance(c: &SubcenterCase, exact: &Answer<f64>, dtype: Dtype) -> Vec<Vec<Scale>> {
        let (n, d) = (c.labels.len(), c.features.cols());
        let selected = selection_or_estimate(c);
        let kappa = kappa_max(c, &selected);
        let mut loss = Scale::plain(
            exact.loss().map_or(0.0, |l| l.abs()).max(c.scale * kappa),
            c.classes().max(d),
        );
        loss.kappa = kappa;
        let r = c.reduction.weight(n);
        let exact_row = Answer {
            outputs: vec![("loss", Tensor::Scalar(0.0))],
            gradients: Vec::new(),
        };
        let add = |v: &[Scale]| -> Scale {
            let mut total = v[0];
            total.scale = v.iter().map(|s| s.scale).sum();
            total.kappa = v.iter().fold(1.0f64, |k, s| k.max(s.kappa));
            total.flush = v.iter().map(|s| s.flush).sum();
            total.terms = n.max(d);
            total.unstable = v.iter().any(|s| s.unstable.is_some()).then(|| {
                let naive = v.iter().map(|s| s.unstable.map_or(s.scale, |u| u.0)).sum();
                let why = v.iter().find_map(|s| s.unstable).map_or("", |u| u.1);
                (naive, why)
            });
            total
        };
        let weigh = move |s: &Scale| -> Scale {
            let mut w = *s;
            w.scale *= r;
            w.unstable = w.unstable.map(|(naive, why)| (naive * r, why));
            w.flush = (w.flush * r).max(1.0);
            w
        };
        combined_scales(
            c,
            &selected,
            |row| NormalizedFamily::tolerance(row, &exact_row, dtype),
            loss,
            (Scale::plain(f64::MIN_POSITIVE, 1), add, weigh),
        )
    }

    fn exact_form(c: &SubcenterCase, prec: u32) -> Option<Box<dyn ExactForm>> {
        let selected = select(c).ok()?;
        let forms = selected
            .iter()
            .enumerate()
            .map(|(i, rows)| NormalizedFamily::exact_form(&row_case(c, i, rows), prec))
            .collect::<Option<Vec<_>>>()?;
        Some(Box::new(SubcenterForm::new(forms, selected, c)))
    }

    /// Arcface's: the margin read in degrees, the other boundaries and margin gradient, the
    /// sub-centers laid out sub-center-major (row k·C + j) instead of class-major, and the
    /// parameters held in a lower precision.
    fn conventions(c: &SubcenterCase, whole: &Case, dtype: Dtype) -> Vec<Alternative> {
        let mut out = Vec::new();
        let Margin::Angular { m, boundary, grad } = c.margin else {
            return out;
        };
        let with = |out: &mut Vec<Alternative>, what: &str, margin: Margin| {
            let d = SubcenterCase {
                margin,
                ..c.clone()
            };
            out.extend(reevaluated(what, Case::Subcenter(d)));
        };
        with(
            &mut out,
            "the margin is read in degrees",
            Margin::Angular {
                m: m.to_radians(),
                boundary,
                grad,
            },
        );
        for other in Boundary::ALL.into_iter().filter(|b| *b != boundary) {
            with(
                &mut out,
                &format!(
                    "ArcFace's boundary is `{}`, not `{}`",
                    other.as_str(),
                    boundary.as_str()
                ),
                Margin::Angular {
                    m,
                    boundary: other,
                    grad,
                },
            );
        }
        let other = if grad == MarginGrad::Full {
            MarginGrad::Detached
        } else {
            MarginGrad::Full
        };
        with(
            &mut out,
            &format!(
                "the margin gradient is `{}`, not `{}`",
                other.as_str(),
                grad.as_str()
            ),
            Margin::Angular {
                m,
                boundary,
                grad: other,
            },
        );
        if c.subcenters > 1 {
            out.extend(transposed_layout(c));
        }
        out.extend(lower_precision_params(whole, dtype, &real_params(c)));
        out
    }

    fn corpus_cases(dtype: Dtype, out: &mut Vec<Generated>) {
        corpus::cases(dtype, out);
    }

    fn exact_zero_cases(dtype: Dtype) -> Vec<Generated> {
        corpus::exact_zero_cases(dtype)
    }

    /// `arcface`'s points (SPEC §1), on the classes' cosines.
    fn switch_points(_: LossId, params: &Value) -> Result<Vec<SwitchPoint>> {
        let mut p = params.clone();
        if let Value::Object(map) = &mut p {
            map.remove("subcenters");
        }
        NormalizedFamily::switch_points(LossId::ArcFace, &p)
    }

    /// Each row's arcface stages, the largest of each.
    fn logit_stages(c: &SubcenterCase, u: f64) -> LogitStages {
        let selected = selection_or_estimate(c);
        selected
            .iter()
            .enumerate()
            .map(|(i, rows)| NormalizedFamily::logit_stages(&row_case(c, i, rows), u))
            .reduce(LogitStages::max)
            .expect("a case has a row")
    }
}

/// K ≥ 1 divides the `rows` of the weights (SPEC §5).
fn divides(rows: usize, k: usize, place: &str) -> Result<()> {
    if k == 0 || rows % k != 0 {
        return Err(Error::invalid(
            place,
            format!(
                "has {rows} rows, which params.subcenters = {k} does not divide: the weights \
                 hold K sub-centers per class (C·K rows)"
            ),
        ));
    }
    if rows / k < 2 {
        return Err(Error::invalid(
            place,
            format!(
                "holds C = {} class(es) of K = {k} sub-centers; a softmax needs C ≥ 2",
                rows / k
            ),
        ));
    }
    Ok(())
}

/// The convention "sub-center-major layout": row k·C + j read as sub-center k of class j
/// (a `view(-1, K, C)` where the weights are `view(-1, C, K)`), its weight gradient laid
/// back in the case's order.
fn transposed_layout(c: &SubcenterCase) -> Option<Alternative> {
    let (k, classes, d) = (c.subcenters, c.classes(), c.features.cols());
    // case row j·K + q holds what the implementation reads as class-major row q·C + j
    let read = |row: usize| (row % k) * classes + row / k;
    let permuted = SubcenterCase {
        weights: Matrix::from_fn(c.weights.rows(), d, |row, e| *c.weights.get(read(row), e)),
        ..c.clone()
    };
    let (what, mut answer, _) = reevaluated(
        "the sub-centers are laid out sub-center-major (row k·C + j), not class-major (row j·K + k)",
        Case::Subcenter(permuted),
    )?;
    for (name, tensor) in &mut answer.gradients {
        if *name == "weights" {
            if let Tensor::Matrix(g) = tensor {
                let mut back = g.clone();
                for row in 0..g.rows() {
                    for e in 0..d {
                        *back.get_mut(read(row), e) = *g.get(row, e);
                    }
                }
                *g = back;
            }
        }
    }
    Some((what, answer, None))
}

/// The real parameters (s, m), for the lower-precision conventions (SPEC §4).
fn real_params(c: &SubcenterCase) -> Vec<Param<'static>> {
    fn on(case: &mut Case, set: impl FnOnce(&mut SubcenterCase)) {
        if let Case::Subcenter(d) = case {
            set(d);
        }
    }
    let mut out: Vec<Param<'static>> = vec![("s", c.scale, &|k, v| on(k, |d| d.scale = v))];
    if let Margin::Angular { m, .. } = c.margin {
        out.push(("m", m, &|k, v| {
            on(k, |d| {
                if let Margin::Angular { m, .. } = &mut d.margin {
                    *m = v;
                }
            })
        }));
    }
    out
}

/// The exact form of a sub-center case: each row's arcface form, its rows numbered by the
/// batch, ∂L/∂w_r the sum of the selecting rows' terms (all with the factor s/‖w_r‖ of the
/// one-row forms, so their sum is the value up to that factor), and the empty combination
/// (an exact 0) for a sub-center no row selects.
struct SubcenterForm {
    forms: Vec<Box<dyn ExactForm>>,
    rows: Vec<Row>,
    /// (batch row, class) of every selection of each weight row.
    selectors: Vec<Vec<(usize, usize)>>,
    d: usize,
}

impl SubcenterForm {
    fn new(
        forms: Vec<Box<dyn ExactForm>>,
        selected: Vec<Vec<usize>>,
        c: &SubcenterCase,
    ) -> SubcenterForm {
        let rows = forms
            .iter()
            .flat_map(|f| f.rows().iter().cloned())
            .collect();
        let mut selectors = vec![Vec::new(); c.weights.rows()];
        for (i, sel) in selected.iter().enumerate() {
            for (j, &r) in sel.iter().enumerate() {
                selectors[r].push((i, j));
            }
        }
        SubcenterForm {
            forms,
            rows,
            selectors,
            d: c.features.cols().max(1),
        }
    }

    /// Row i's combination `name`[index] with its row renumbered to i.
    fn of_row(&self, i: usize, name: &str, index: usize) -> Option<Combination> {
        let mut c = self.forms[i].gradient(name, index)?;
        for t in &mut c.terms {
            t.row = i;
        }
        Some(c)
    }
}

impl ExactForm for SubcenterForm {
    fn rows(&self) -> &[Row] {
        &self.rows
    }

    fn gradient(&self, name: &str, index: usize) -> Option<Combination> {
        let (row, k) = (index / self.d, index % self.d);
        match name {
            "features" => self.of_row(row, "features", k),
            "weights" => {
                let mut total = Combination::default();
                for &(i, j) in self.selectors.get(row)? {
                    total
                        .terms
                        .extend(self.of_row(i, "weights", j * self.d + k)?.terms);
                }
                Some(total)
            }
            _ => None,
        }
    }
}
