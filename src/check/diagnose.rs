//! Diagnosis: which known convention would make a failing implementation pass. Each
//! candidate is found by re-evaluating the reference under that convention (or combining
//! reference answers, for a missing factor) and judging the results against it with the
//! same tolerance model, never by guessing from the size of the error.

use super::{judge_group, CaseReport, Corpus, Loaded, Results, Verdict};
use crate::answer::{Answer, Tensor};
use crate::corpus::generate::Dtype;
use crate::error::Result;
use crate::reference::evaluate;
use crate::spec::{Boundary, Case, Margin, MarginGrad, Reduction, SoftTerm};
use crate::tolerance::scales;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// At most this many failing cases of a loss are re-evaluated.
pub const CASES_PER_LOSS: usize = 12;

/// What explains a loss's failures.
#[derive(Clone, Debug)]
pub struct Diagnosis {
    /// The loss id.
    pub loss: String,
    /// Failing cases examined.
    pub examined: usize,
    /// Conventions and how many of the examined cases each explains.
    pub explained_by: Vec<(String, usize)>,
}

impl Diagnosis {
    /// One line: the best explanation, or that none is known.
    pub fn text(&self) -> String {
        match self.explained_by.first() {
            Some((what, k)) if *k == self.examined => format!("matches if {what} ({k} of {} failing cases examined)", self.examined),
            Some((what, k)) => format!("{k} of {} failing cases examined match if {what}; no known convention explains the rest", self.examined),
            None => format!("no known convention explains this ({} failing cases examined)", self.examined),
        }
    }

    /// As JSON.
    pub fn json(&self) -> Value {
        json!({"loss": self.loss, "examined": self.examined, "text": self.text(),
               "explained_by": self.explained_by.iter().map(|(w, k)| json!({"convention": w, "cases": k})).collect::<Vec<_>>()})
    }
}

fn midpoints(case: &Case) -> Option<Answer<f64>> {
    let a = evaluate(case, 160).ok()?;
    a.try_map(|_, iv| Ok::<f64, ()>(iv.mid().to_f64())).ok()
}

fn scaled(a: &Answer<f64>, factor: f64, keep: &[&str]) -> Answer<f64> {
    a.try_map(|place, v| {
        Ok::<f64, ()>(if keep.iter().any(|k| place.contains(k)) {
            *v
        } else {
            v * factor
        })
    })
    .unwrap_or_else(|()| a.clone())
}

fn combine(a: &Answer<f64>, b: &Answer<f64>, wa: f64, wb: f64) -> Answer<f64> {
    let mut values = Vec::new();
    for (_, _, t) in b.sections() {
        values.extend(t.values().iter().copied());
    }
    let mut k = 0;
    a.try_map(|_, v| {
        let r = wa * v + wb * values.get(k).copied().unwrap_or(0.0);
        k += 1;
        Ok::<f64, ()>(r)
    })
    .unwrap_or_else(|()| a.clone())
}

/// The alternative answers of the conventions that apply to `case`: (description, answer,
/// the case whose scales judge it).
fn alternatives(loaded: &Loaded, dtype: Dtype) -> Vec<(String, Answer<f64>, Case)> {
    let case = &loaded.case;
    let mut out = Vec::new();
    let mut with = |what: &str, c: Case| {
        if let Some(a) = midpoints(&c) {
            out.push((what.to_string(), a, c));
        }
    };
    // every loss but softmax: the other reduction
    let mut flipped = case.clone();
    if let Some(r) = flipped.reduction_mut() {
        let asked = *r;
        *r = asked.other();
        with(
            if asked == Reduction::Mean {
                "the loss is a sum over the batch, not a mean"
            } else {
                "the loss is a mean over the batch, not a sum"
            },
            flipped,
        );
    }
    match case.clone() {
        Case::Distill(c) => {
            let mut d = c.clone();
            d.soft = if c.soft == SoftTerm::Kl {
                SoftTerm::Ce
            } else {
                SoftTerm::Kl
            };
            with(
                if c.soft == SoftTerm::Kl {
                    "the soft term is the cross-entropy −Σ q_t log q_s, not KL(q_t ‖ q_s)"
                } else {
                    "the soft term is KL(q_t ‖ q_s), not the cross-entropy"
                },
                Case::Distill(d),
            );
            // missing T²: α·soft + (1 − α)·CE = α/T²·(T²·soft) + (1 − α)·CE
            let (mut soft, mut hard) = (c.clone(), c.clone());
            soft.alpha = 1.0;
            hard.alpha = 0.0;
            if let (Some(s), Some(h)) = (
                midpoints(&Case::Distill(soft)),
                midpoints(&Case::Distill(hard)),
            ) {
                let t2 = c.temperature * c.temperature;
                out.push((
                    "the soft term is missing its T² factor".into(),
                    combine(&s, &h, c.alpha / t2, 1.0 - c.alpha),
                    case.clone(),
                ));
            }
        }
        Case::Center(_) => {
            if let Some(a) = midpoints(case) {
                out.push((
                    "the loss is missing its ½ (‖x − c‖² instead of ½‖x − c‖²)".into(),
                    scaled(&a, 2.0, &["centers_next"]),
                    case.clone(),
                ));
            }
        }
        Case::Normalized(c) => {
            let degrees = std::f64::consts::PI / 180.0;
            match c.margin {
                Margin::Additive { m } => {
                    let mut d = c.clone();
                    d.margin = Margin::Additive { m: m / c.scale };
                    with(
                        "the target logit is s·cos θ − m, not s·(cos θ − m)",
                        Case::Normalized(d),
                    );
                    let mut d = c.clone();
                    d.margin = Margin::Additive { m: m * degrees };
                    with("the margin is read in degrees", Case::Normalized(d));
                }
                Margin::Angular { m, boundary, grad } => {
                    let mut d = c.clone();
                    d.margin = Margin::Angular {
                        m: m * degrees,
                        boundary,
                        grad,
                    };
                    with("the margin is read in degrees", Case::Normalized(d));
                    for other in Boundary::ALL.into_iter().filter(|b| *b != boundary) {
                        let mut d = c.clone();
                        d.margin = Margin::Angular {
                            m,
                            boundary: other,
                            grad,
                        };
                        with(
                            &format!(
                                "ArcFace's boundary is `{}`, not `{}`",
                                other.as_str(),
                                boundary.as_str()
                            ),
                            Case::Normalized(d),
                        );
                    }
                    let other = if grad == MarginGrad::Full {
                        MarginGrad::Detached
                    } else {
                        MarginGrad::Full
                    };
                    let mut d = c.clone();
                    d.margin = Margin::Angular {
                        m,
                        boundary,
                        grad: other,
                    };
                    with(
                        &format!(
                            "the margin gradient is `{}`, not `{}`",
                            other.as_str(),
                            grad.as_str()
                        ),
                        Case::Normalized(d),
                    );
                }
                Margin::Combined { m1, m2, m3 } => {
                    let mut d = c.clone();
                    d.margin = Margin::Combined {
                        m1,
                        m2: m2 * degrees,
                        m3,
                    };
                    with(
                        "the angular margin m2 is read in degrees",
                        Case::Normalized(d),
                    );
                }
                Margin::None => {}
            }
        }
        // the reduction is their only convention
        Case::SoftmaxCe(_) | Case::Multiplicative(_) => {}
        Case::Softmax(_) => {
            // log(softmax(z)) in the dtype: −∞ wherever the probability underflows there
            if let Some(a) = midpoints(case) {
                let p: Vec<f64> = a
                    .output("probabilities")
                    .map(|t| t.values().to_vec())
                    .unwrap_or_default();
                let mut k = 0;
                let alt = a
                    .try_map(|place, v| {
                        Ok::<f64, ()>(if place.starts_with("outputs.log_probabilities") {
                            let pk = p.get(k).copied().unwrap_or(0.0);
                            k += 1;
                            dtype.round(pk).ln()
                        } else {
                            *v
                        })
                    })
                    .unwrap_or_else(|()| a.clone());
                out.push(("the log-probabilities are log(softmax(z)), which underflows, not log_softmax(z)".into(), alt, case.clone()));
            }
        }
    }
    out
}

/// Whether the results of one case match an alternative answer (every group within the
/// tolerance of the alternative's scales).
fn matches(
    results: &super::Groups,
    answer: &Answer<f64>,
    scale_case: &Case,
    dtype: Dtype,
    transpose_weights: bool,
) -> bool {
    let groups = scales(scale_case, answer);
    let mut judged = 0;
    for scale_group in &groups {
        let group = &scale_group.name;
        let (section, name) = group.split_once('/').unwrap_or(("", ""));
        let want = if section == "outputs" {
            answer.output(name)
        } else {
            answer.gradient(name)
        };
        let (Some(want), Some(got)) = (want, results.get(group)) else {
            continue;
        };
        let (cols, values) = match want {
            Tensor::Scalar(v) => (0, vec![*v]),
            Tensor::Matrix(m) => (m.cols(), m.as_slice().to_vec()),
        };
        let mut g = got.1.clone();
        if transpose_weights && group == "gradients/weights" && cols > 0 && g.len() == values.len()
        {
            let rows = values.len() / cols;
            g = (0..values.len())
                .map(|k| got.1[(k % cols) * rows + k / cols])
                .collect();
        } else if g.len() != values.len() {
            return false;
        }
        let r = judge_group(
            group,
            scale_group.quantity,
            dtype,
            &g,
            &values,
            &scale_group.scales,
            cols,
        );
        // within tolerance of the alternative, or off it only as a named unstable formula
        // (or flushed subnormals) would be: the convention still explains the failure
        if !matches!(r.verdict, Verdict::Pass | Verdict::Unstable(_)) {
            return false;
        }
        judged += 1;
    }
    judged > 0
}

/// Diagnoses every loss with failing cases.
///
/// # Errors
/// A corpus case that cannot be loaded.
pub fn diagnose(
    corpus: &Corpus,
    results: &Results,
    reports: &[CaseReport],
) -> Result<Vec<Diagnosis>> {
    let mut by_loss: BTreeMap<String, Vec<&CaseReport>> = BTreeMap::new();
    for r in reports.iter().filter(|r| {
        matches!(
            r.verdict,
            Verdict::Fail | Verdict::Missing(_) | Verdict::Unstable(_)
        )
    }) {
        by_loss.entry(r.loss.clone()).or_default().push(r);
    }
    let mut out = Vec::new();
    for (loss, failing) in by_loss {
        let mut explained: BTreeMap<String, usize> = BTreeMap::new();
        let examined: Vec<&&CaseReport> = failing.iter().take(CASES_PER_LOSS).collect();
        for r in &examined {
            let Some(case) = corpus.cases.iter().find(|c| c.id == r.id) else {
                continue;
            };
            let Some(got) = results.values.get(&r.id) else {
                continue;
            };
            let loaded = corpus.load_case(case)?;
            let transposed = r
                .groups
                .iter()
                .any(|g| matches!(&g.verdict, Verdict::Missing(why) if why.contains("transpose")));
            let reference = if case.dtype == Dtype::Float32 {
                &loaded.reference32
            } else {
                &loaded.reference
            };
            if transposed && matches(got, reference, &loaded.case, case.dtype, true) {
                *explained
                    .entry("the weights are laid out D×C (transposed), not C×D".into())
                    .or_default() += 1;
                continue;
            }
            for (what, answer, scale_case) in alternatives(&loaded, case.dtype) {
                if matches(got, &answer, &scale_case, case.dtype, transposed) {
                    *explained.entry(what).or_default() += 1;
                }
            }
        }
        let mut explained_by: Vec<(String, usize)> = explained.into_iter().collect();
        explained_by.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        out.push(Diagnosis {
            loss,
            examined: examined.len(),
            explained_by,
        });
    }
    Ok(out)
}
