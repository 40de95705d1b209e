//! Reference `curricularface`, `adaface`, `magface` and `adacos` (SPEC §5) on the certified
//! interval core, by the plain formulas, one MPFR operation per term.
//!
//! The batch state is computed first, as enclosures: t', μ and σ (σ the unbiased standard
//! deviation, so N ≥ 2), ẑ_i, s' (its lower median θ_med the ⌊(N − 1)/2⌋-th order
//! statistic of the enclosures of θ_iy, which encloses the median whatever the order of
//! the exact angles). Each row then gives its logits z_ij and slopes σ_ij = ∂z_ij/∂c_ij
//! (the module docs of [`super`]), its cross-entropy and ∂CE/∂z, and
//!
//! G_ij = r·∂CE/∂z_ij·σ_ij,   ∂L/∂x_ik = Σ_j G_ij·(‖x_i‖²w_jk − d_ij x_ik)/(‖w_j‖‖x_i‖³) + ρ_i·x_ik/‖x_i‖,
//! ∂L/∂w_jk = Σ_i G_ij·(‖w_j‖²x_ik − d_ij w_jk)/(‖x_i‖‖w_j‖³),
//!
//! with ρ_i = r·(∂CE/∂z_iy·∂z_iy/∂‖x_i‖ + ∂(own term)/∂‖x_i‖), MagFace's radial term (0
//! elsewhere). A pair with cos θ exactly ±1 contributes the exact 0, as in the margin
//! family's reference.
//!
//! A switch whose two sides the enclosures do not separate takes the hull of both branches
//! (value and slope), which the escalation loop refines; the comparisons of algebraic
//! numbers (a cosine against 1 − eps, a norm against l_a, two cosines at m = 0) are decided
//! in rationals there, and an exact tie is an error naming the row.

use super::{AdaptiveCase, AdaptiveRule, Convention};
use crate::answer::{Answer, Tensor};
use crate::error::{Error, Result};
use crate::family::normalized::reference::target;
use crate::matrix::Matrix;
use crate::mp::interval::Interval;
use crate::reference::geometry::{cosine, direction_numerator, row_norms, Cosine, RowNorm};
use crate::reference::per_sample;
use crate::reference::softmax::{ce_row, points, reduce};
use crate::spec::{Boundary, Margin, MarginGrad};
use rug::{Float, Rational};
use std::cmp::Ordering;

/// The batch state as enclosures.
struct State {
    t_next: Option<Interval>,
    mean: Option<Interval>,
    std: Option<Interval>,
    /// ẑ_i and whether h·(n_i − μ)/(σ + eps) is inside (−1, 1) and n_i inside its clamp
    /// (AdaFace; `None` where the enclosures do not tell).
    zhat: Vec<(Interval, Option<bool>)>,
    scale_next: Option<Interval>,
    /// MagFace's a_i, whether its clamp is inactive, and m(a_i).
    magface: Vec<(Interval, bool, Interval)>,
}

fn num(prec: u32, x: f64) -> Interval {
    Interval::from_f64(prec, x)
}

/// v clamped to [lo, hi] (monotone: its ends clamped).
fn clamp(v: &Interval, lo: &Interval, hi: &Interval) -> Interval {
    let p = v.prec();
    let end = |e: &Float| -> Float {
        let mut e = e.clone();
        if e < *lo.lo() {
            e = Float::with_val(p, lo.lo());
        }
        if e > *hi.hi() {
            e = Float::with_val(p, hi.hi());
        }
        e
    };
    // a monotone map keeps the ends in order
    Interval::new(end(v.lo()), end(v.hi())).expect("ordered ends")
}

/// The k-th smallest of the values enclosed by `items` (an order statistic is monotone in
/// each argument, so the k-th smallest lower end and upper end enclose it).
fn order_statistic(items: &[Interval], k: usize) -> Interval {
    let mut lo: Vec<Float> = items.iter().map(|v| v.lo().clone()).collect();
    let mut hi: Vec<Float> = items.iter().map(|v| v.hi().clone()).collect();
    lo.sort_by(|a, b| a.partial_cmp(b).unwrap_or(Ordering::Equal));
    hi.sort_by(|a, b| a.partial_cmp(b).unwrap_or(Ordering::Equal));
    Interval::new(lo[k].clone(), hi[k].clone()).expect("ordered ends")
}

/// min(v, w) on enclosures.
fn min(v: &Interval, w: &Interval) -> Interval {
    let lo = if v.lo() < w.lo() { v.lo() } else { w.lo() };
    let hi = if v.hi() < w.hi() { v.hi() } else { w.hi() };
    Interval::new(lo.clone(), hi.clone()).expect("ordered ends")
}

/// An exact rational of a binary64 value.
fn exact(v: f64) -> Rational {
    Rational::from_f64(v).unwrap_or_default()
}

/// Σ a_k b_k exactly.
fn exact_dot(a: &[f64], b: &[f64]) -> Rational {
    a.iter()
        .zip(b)
        .fold(Rational::new(), |acc, (p, q)| acc + exact(*p) * exact(*q))
}

/// cos(x, w) against the rational `bound`, exactly: sign(x·w)(x·w)² against
/// sign(b)·b²‖x‖²‖w‖².
fn cos_against(x: &[f64], w: &[f64], bound: &Rational) -> Ordering {
    let d = exact_dot(x, w);
    let signed = |v: Rational| -> Rational {
        let neg = v < 0;
        let sq = v.clone() * v;
        if neg {
            -sq
        } else {
            sq
        }
    };
    let lhs = signed(d);
    let rhs = signed(bound.clone()) * exact_dot(x, x) * exact_dot(w, w);
    lhs.cmp(&rhs)
}

/// ‖x‖ against the binary64 `bound` > 0, exactly: ‖x‖² against bound².
fn norm_against(x: &[f64], bound: f64) -> Ordering {
    let b = exact(bound);
    exact_dot(x, x).cmp(&(b.clone() * b))
}

/// An undefined point at a clamp or mask tie.
fn tie(i: usize, what: String) -> Error {
    Error::invalid(
        format!("inputs.features[{i}]"),
        format!("{what}: the gradient's slope jumps there and does not exist (SPEC §5, undefined points)"),
    )
}

fn batch_state(
    c: &AdaptiveCase,
    conv: Convention,
    xs: &[RowNorm],
    cos: &Matrix<Cosine>,
    prec: u32,
) -> Result<State> {
    let n = c.labels.len();
    let one = Interval::from_i64(prec, 1);
    let mut st = State {
        t_next: None,
        mean: None,
        std: None,
        zhat: Vec::new(),
        scale_next: None,
        magface: Vec::new(),
    };
    let targets: Vec<Interval> = (0..n)
        .map(|i| cos.get(i, c.labels[i]).value.clone())
        .collect();
    match c.rule {
        AdaptiveRule::CurricularFace { momentum, t, .. } => {
            let mean = Interval::sum(prec, &targets).div_i64(n as i64);
            let mo = num(prec, momentum);
            st.t_next = Some(mo.mul(&mean).add(&one.sub(&mo).mul(&num(prec, t))));
        }
        AdaptiveRule::AdaFace {
            h,
            t_alpha,
            eps,
            batch_mean,
            batch_std,
            ..
        } => {
            let (lo, hi) = (num(prec, 0.001), num(prec, 100.0));
            let norms: Vec<Interval> = xs.iter().map(|v| clamp(&v.norm, &lo, &hi)).collect();
            let mean = Interval::sum(prec, &norms).div_i64(n as i64);
            let squares: Vec<Interval> = norms
                .iter()
                .map(|v| {
                    let d = v.sub(&mean);
                    d.mul(&d)
                })
                .collect();
            let sd = Interval::sum(prec, &squares).div_i64(n as i64 - 1).sqrt();
            let ta = num(prec, t_alpha);
            let rest = one.sub(&ta);
            let mu = ta.mul(&mean).add(&rest.mul(&num(prec, batch_mean)));
            let sigma = ta.mul(&sd).add(&rest.mul(&num(prec, batch_std)));
            let denominator = sigma.add(&num(prec, eps));
            let (minus, plus) = (Interval::from_i64(prec, -1), one.clone());
            st.zhat = norms
                .iter()
                .zip(xs)
                .map(|(v, x)| {
                    let raw = num(prec, h).mul(&v.sub(&mu)).div(&denominator);
                    let free = match (
                        raw.compare(&minus),
                        raw.compare(&plus),
                        x.norm.compare(&lo),
                        x.norm.compare(&hi),
                    ) {
                        (
                            Some(Ordering::Greater),
                            Some(Ordering::Less),
                            Some(Ordering::Greater),
                            Some(Ordering::Less),
                        ) => Some(true),
                        (Some(Ordering::Less), ..)
                        | (_, Some(Ordering::Greater), ..)
                        | (_, _, Some(Ordering::Less), _)
                        | (_, _, _, Some(Ordering::Greater)) => Some(false),
                        _ => None,
                    };
                    (clamp(&raw, &minus, &plus), free)
                })
                .collect();
            st.mean = Some(mu);
            st.std = Some(sigma);
        }
        AdaptiveRule::MagFace {
            l_a, u_a, l_m, u_m, ..
        } => {
            let (la, ua) = (num(prec, l_a), num(prec, u_a));
            let k = num(prec, u_m).sub(&num(prec, l_m)).div(&ua.sub(&la));
            for (i, x) in xs.iter().enumerate() {
                let row = c.features.row(i);
                let side = |bound: &Interval, b: f64| -> Result<Ordering> {
                    match x.norm.compare(bound) {
                        Some(o) if o != Ordering::Equal => Ok(o),
                        _ => match norm_against(row, b) {
                            Ordering::Equal => Err(tie(
                                i,
                                format!(
                                    "‖x‖ is exactly {b}, where MagFace's a = clamp(‖x‖, l_a, u_a) \
                                     stops following it"
                                ),
                            )),
                            o => Ok(o),
                        },
                    }
                };
                let below = side(&la, l_a)? == Ordering::Less;
                let above = side(&ua, u_a)? == Ordering::Greater;
                let a = if below {
                    la.clone()
                } else if above {
                    ua.clone()
                } else {
                    x.norm.clone()
                };
                let m = k.mul(&a.sub(&la)).add(&num(prec, l_m));
                st.magface.push((a, !below && !above, m));
            }
        }
        AdaptiveRule::AdaCos => {
            let s_old = num(prec, c.scale);
            let mut terms = Vec::with_capacity(n * cos.cols());
            for i in 0..n {
                for j in (0..cos.cols()).filter(|&j| j != c.labels[i]) {
                    terms.push(s_old.mul(&cos.get(i, j).value).exp());
                }
            }
            let b = Interval::sum(prec, &terms).div_i64(n as i64);
            let theta: Vec<Interval> = targets.iter().map(Interval::acos).collect();
            let k = super::rule::lower_median_index(n);
            let median = if conv == Convention::AdaCosAveragedMedian && n % 2 == 0 {
                order_statistic(&theta, k)
                    .add(&order_statistic(&theta, k + 1))
                    .div_i64(2)
            } else {
                order_statistic(&theta, k)
            };
            let quarter = Interval::pi(prec).div_i64(4);
            st.scale_next = Some(b.ln().div(&min(&median, &quarter).cos()));
        }
    }
    Ok(st)
}

/// One row's logits and slopes, as enclosures.
struct Row {
    logits: Vec<Interval>,
    slopes: Vec<Interval>,
    target_norm_slope: Option<Interval>,
    own: Option<Interval>,
    own_norm_slope: Option<Interval>,
}

/// MagFace's target at margin `m` (an enclosure): g, dg/dcos θ and ∂g/∂m under `boundary`.
fn magface_target(
    c: &Cosine,
    m: &Interval,
    boundary: Boundary,
    i: usize,
    y: usize,
) -> Result<(Interval, Interval, Interval)> {
    let prec = c.value.prec();
    let one = Interval::from_i64(prec, 1);
    let zero = Interval::from_i64(prec, 0);
    let margin_branch = || -> Result<(Interval, Interval, Interval)> {
        let angle = c.value.acos().add(m);
        let slope = if c.pole.is_some() {
            return Err(Error::invalid(
                format!("inputs.features[{i}]"),
                format!(
                    "cos θ to its class weight inputs.weights[{y}] is exactly ±1, where MagFace's \
                     cos(θ + m(a)) has no derivative with respect to cos θ: the gradient does not \
                     exist (SPEC §1, undefined points)"
                ),
            ));
        } else {
            let sin_theta = one.sub(&c.value).mul(&one.add(&c.value)).sqrt();
            angle.sin().div(&sin_theta)
        };
        Ok((angle.cos(), slope, angle.sin().neg()))
    };
    let (fallback, threshold) = match boundary {
        Boundary::None => return margin_branch(),
        Boundary::Thmm => (
            (
                c.value.sub(&m.mul(&m.sin())),
                one.clone(),
                m.sin().add(&m.mul(&m.cos())).neg(),
            ),
            Interval::pi(prec).sub(m).cos(),
        ),
        Boundary::Easy => ((c.value.clone(), one.clone(), zero.clone()), zero.clone()),
    };
    match c.value.compare(&threshold) {
        Some(Ordering::Greater) => margin_branch(),
        Some(Ordering::Equal) if boundary == Boundary::Easy => Err(tie(
            i,
            format!(
                "cos θ to its class weight inputs.weights[{y}] is exactly 0, MagFace's `easy` \
                 switch, where the target logit jumps from cos θ to cos(θ + m(a))"
            ),
        )),
        Some(_) => Ok(fallback),
        None => {
            let (g, s, d) = margin_branch()?;
            Ok((
                g.hull(&fallback.0),
                s.hull(&fallback.1),
                d.hull(&fallback.2),
            ))
        }
    }
}

fn row_rule(
    c: &AdaptiveCase,
    conv: Convention,
    st: &State,
    i: usize,
    cos: &[Cosine],
    prec: u32,
) -> Result<Row> {
    let y = c.labels[i];
    let s = num(prec, c.scale);
    let one = Interval::from_i64(prec, 1);
    let zero = Interval::from_i64(prec, 0);
    let classes = cos.len();
    let mut row = Row {
        logits: Vec::with_capacity(classes),
        slopes: Vec::with_capacity(classes),
        target_norm_slope: None,
        own: None,
        own_norm_slope: None,
    };
    let x = c.features.row(i);
    match c.rule {
        AdaptiveRule::CurricularFace { m, t, .. } => {
            let margin = Margin::Angular {
                m,
                boundary: Boundary::Thmm,
                grad: MarginGrad::Full,
            };
            // arcface's rule with the `thmm` boundary, its message in CurricularFace's words
            // (no `margin_grad` to detach it)
            let (g, slope) = target(&margin, &cos[y], i, y).map_err(|e| {
                Error::new(
                    e.kind,
                    e.place,
                    e.reason
                        .replace("arcface's cos(θ + m)", "CurricularFace's target cos(θ + m)")
                        .replace("; margin_grad = \"detached\" defines it", ""),
                )
            })?;
            let threshold = if conv == Convention::CurricularMaskAgainstTarget {
                g.clone()
            } else {
                cos[y].value.acos().add(&num(prec, m)).cos()
            };
            let weight = if conv == Convention::CurricularOldT {
                num(prec, t)
            } else {
                st.t_next.clone().expect("CurricularFace's t'")
            };
            for (j, cj) in cos.iter().enumerate() {
                if j == y {
                    row.logits.push(s.mul(&g));
                    row.slopes.push(s.mul(&slope));
                    continue;
                }
                let v = &cj.value;
                let hard = (
                    s.mul(v).mul(&weight.add(v)),
                    s.mul(&weight.add(&v.mul_f64(2.0))),
                );
                let easy = (s.mul(v), s.clone());
                let side = match v.compare(&threshold) {
                    Some(Ordering::Equal) => None,
                    Some(o) => Some(o),
                    None if m == 0.0 && conv == Convention::Spec => {
                        Some(crate::family::subcenter::exact_order(
                            x,
                            c.weights.row(j),
                            c.weights.row(y),
                        ))
                    }
                    None => Some(Ordering::Equal),
                };
                let (z, sl) = match side {
                    Some(Ordering::Greater) => hard,
                    Some(Ordering::Less) => easy,
                    // undecided with a transcendental threshold: both branches' hull
                    Some(Ordering::Equal) if m != 0.0 || conv != Convention::Spec => {
                        (hard.0.hull(&easy.0), hard.1.hull(&easy.1))
                    }
                    _ => {
                        return Err(tie(
                            i,
                            format!(
                                "its cosine to inputs.weights[{j}] equals cos(θ + m) to its class \
                                 weight inputs.weights[{y}] exactly, CurricularFace's hard-negative \
                                 mask"
                            ),
                        ))
                    }
                };
                row.logits.push(z);
                row.slopes.push(sl);
            }
        }
        AdaptiveRule::AdaFace { m, eps, h, .. } => {
            let lo = num(prec, -1.0).add(&num(prec, eps));
            let hi = one.sub(&num(prec, eps));
            let (lo_q, hi_q) = (exact(eps) - 1u32, 1u32 - exact(eps));
            let (zhat, z_free) = &st.zhat[i];
            let m_iv = num(prec, m);
            for (j, cj) in cos.iter().enumerate() {
                let w = c.weights.row(j);
                let v = &cj.value;
                // which side of each clamp bound, exactly where the enclosures overlap
                let side = |bound: &Interval, q: &Rational, name: &str| -> Result<Ordering> {
                    match v.compare(bound) {
                        Some(o) if o != Ordering::Equal => Ok(o),
                        _ => match cos_against(x, w, q) {
                            Ordering::Equal => Err(tie(
                                i,
                                format!(
                                    "its cosine to inputs.weights[{j}] is exactly {name}, AdaFace's \
                                     clamp bound"
                                ),
                            )),
                            o => Ok(o),
                        },
                    }
                };
                let above = side(&hi, &hi_q, "1 − eps")? == Ordering::Greater;
                let below = side(&lo, &lo_q, "−1 + eps")? == Ordering::Less;
                let free = !above && !below;
                let cc = if above {
                    hi.clone()
                } else if below {
                    lo.clone()
                } else {
                    v.clone()
                };
                if j != y {
                    row.logits.push(s.mul(&cc));
                    row.slopes.push(if free { s.clone() } else { zero.clone() });
                    continue;
                }
                let theta = cc.acos();
                let phi = theta.sub(&m_iv.mul(zhat));
                let (e_lo, e_hi) = (num(prec, eps), Interval::pi(prec).sub(&num(prec, eps)));
                let inside = (phi.compare(&e_lo), phi.compare(&e_hi));
                let sin_theta = one.sub(&cc).mul(&one.add(&cc)).sqrt();
                let free_branch = (
                    phi.cos(),
                    if free {
                        phi.sin().div(&sin_theta)
                    } else {
                        zero.clone()
                    },
                    m_iv.mul(&phi.sin()).sub(&m_iv),
                );
                let clamped_at = |b: &Interval| (b.cos(), zero.clone(), m_iv.neg());
                let (value, slope, d_zhat) = match inside {
                    (Some(Ordering::Greater), Some(Ordering::Less)) => free_branch,
                    (Some(Ordering::Less), _) => clamped_at(&e_lo),
                    (_, Some(Ordering::Greater)) => clamped_at(&e_hi),
                    // undecided (never an exact tie: cos of an algebraic angle ≠ 0 is transcendental)
                    (None, _) => {
                        let b = clamped_at(&e_lo);
                        (
                            free_branch.0.hull(&b.0),
                            free_branch.1.hull(&b.1),
                            free_branch.2.hull(&b.2),
                        )
                    }
                    _ => {
                        let b = clamped_at(&e_hi);
                        (
                            free_branch.0.hull(&b.0),
                            free_branch.1.hull(&b.1),
                            free_branch.2.hull(&b.2),
                        )
                    }
                };
                let shift = m_iv.add(&m_iv.mul(zhat));
                row.logits.push(s.mul(&value.sub(&shift)));
                row.slopes.push(s.mul(&slope));
                if conv == Convention::AdaFaceNormsFull && z_free.unwrap_or(true) {
                    let sigma = st.std.clone().expect("AdaFace's σ");
                    row.target_norm_slope = Some(
                        s.mul(&d_zhat)
                            .mul(&num(prec, h))
                            .div(&sigma.add(&num(prec, eps))),
                    );
                }
            }
        }
        AdaptiveRule::MagFace {
            u_a,
            l_a,
            u_m,
            l_m,
            lambda_g,
            boundary,
        } => {
            let (a, free, m) = &st.magface[i];
            let (g, slope, dg_dm) = magface_target(&cos[y], m, boundary, i, y)?;
            for (j, cj) in cos.iter().enumerate() {
                if j == y {
                    row.logits.push(s.mul(&g));
                    row.slopes.push(s.mul(&slope));
                } else {
                    row.logits.push(s.mul(&cj.value));
                    row.slopes.push(s.clone());
                }
            }
            let lam = num(prec, lambda_g);
            let ua2 = num(prec, u_a).powi(2);
            row.own = Some(lam.mul(&a.div(&ua2).add(&one.div(a))));
            if *free {
                let k = num(prec, u_m)
                    .sub(&num(prec, l_m))
                    .div(&num(prec, u_a).sub(&num(prec, l_a)));
                row.target_norm_slope = Some(s.mul(&dg_dm).mul(&k));
                row.own_norm_slope = Some(lam.mul(&one.div(&ua2).sub(&one.div(&a.powi(2)))));
            }
        }
        AdaptiveRule::AdaCos => {
            let scale = if conv == Convention::AdaCosOldScale {
                s.clone()
            } else {
                st.scale_next.clone().expect("AdaCos's s'")
            };
            for cj in cos {
                row.logits.push(scale.mul(&cj.value));
                row.slopes.push(scale.clone());
            }
        }
    }
    Ok(row)
}

/// An adaptive-margin case under `conv` at `prec` bits: outputs `loss` and the state
/// outputs; gradients `features` and `weights` (module docs).
///
/// # Errors
/// An undefined point (a pole where a rule goes through θ, an exact tie at a clamp or the
/// mask), naming the row.
pub(crate) fn evaluate(c: &AdaptiveCase, conv: Convention, prec: u32) -> Result<Answer<Interval>> {
    let features = points(&c.features, prec);
    let weights = points(&c.weights, prec);
    let (n, classes, d) = (features.rows(), weights.rows(), features.cols());
    let xs = row_norms(&features, prec);
    let ws = row_norms(&weights, prec);
    let pairs = Matrix::from_fn(n, classes, |i, j| {
        cosine(features.row(i), weights.row(j), &xs[i], &ws[j], prec)
    });
    let dots = pairs.map(|(d, _)| d.clone());
    let cos = pairs.map(|(_, c)| c.clone());
    let zero = Interval::from_i64(prec, 0);
    let one = Interval::from_i64(prec, 1);
    let r = per_sample(&one, c.reduction, n);
    let st = batch_state(c, conv, &xs, &cos, prec)?;
    let mut losses = Vec::with_capacity(n);
    let mut owns = Vec::new();
    let mut g = Vec::with_capacity(n);
    let mut radial = Vec::with_capacity(n);
    for i in 0..n {
        let y = c.labels[i];
        let row = row_rule(c, conv, &st, i, cos.row(i), prec)?;
        let (loss, dz) = ce_row(&row.logits, y);
        losses.push(loss);
        owns.extend(row.own.clone());
        g.push(
            dz.iter()
                .zip(&row.slopes)
                .map(|(a, b)| r.mul(&a.mul(b)))
                .collect::<Vec<_>>(),
        );
        let mut rho = zero.clone();
        if let Some(t) = &row.target_norm_slope {
            rho = rho.add(&dz[y].mul(t));
        }
        if let Some(o) = &row.own_norm_slope {
            rho = rho.add(o);
        }
        radial.push(rho.mul(&r));
    }
    let mut loss = reduce(&losses, c.reduction);
    if !owns.is_empty() {
        loss = loss.add(&reduce(&owns, c.reduction));
    }
    // Σ over the other side's rows q of G·(‖v‖²u_qk − d v_k)/(‖u_q‖‖v‖³) for own row v (a
    // pair at a pole adds nothing: its direction term vanishes)
    let along = |own: (&Matrix<Interval>, &[RowNorm]),
                 other: (&Matrix<Interval>, &[RowNorm]),
                 r: usize,
                 k: usize,
                 pair: &dyn Fn(usize) -> (usize, usize)| {
        let mut acc = zero.clone();
        for q in 0..other.0.rows() {
            let (i, j) = pair(q);
            if cos.get(i, j).pole.is_none() {
                let num = direction_numerator(
                    own.0.row(r),
                    other.0.row(q),
                    &own.1[r].squared,
                    dots.get(i, j),
                    k,
                    prec,
                );
                acc = acc.add(&g[i][j].div(&other.1[q].norm).mul(&num));
            }
        }
        acc.div(&own.1[r].cubed)
    };
    let grad_features = Matrix::from_fn(n, d, |i, k| {
        let sum = along((&features, &xs), (&weights, &ws), i, k, &|j| (i, j));
        if radial[i].is_point() && radial[i].lo().is_zero() {
            sum
        } else {
            sum.add(&radial[i].mul(features.get(i, k)).div(&xs[i].norm))
        }
    });
    let grad_weights = Matrix::from_fn(classes, d, |j, k| {
        along((&weights, &ws), (&features, &xs), j, k, &|i| (i, j))
    });
    let mut outputs = vec![("loss", Tensor::Scalar(loss))];
    let state = [
        ("t_next", st.t_next),
        ("batch_mean_next", st.mean),
        ("batch_std_next", st.std),
        ("scale_next", st.scale_next),
    ];
    for (name, v) in state {
        if let Some(v) = v {
            outputs.push((name, Tensor::Scalar(v)));
        }
    }
    Ok(Answer {
        outputs,
        gradients: vec![
            ("features", Tensor::Matrix(grad_features)),
            ("weights", Tensor::Matrix(grad_weights)),
        ],
    })
}
