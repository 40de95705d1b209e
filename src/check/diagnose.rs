//! Diagnosis: which known convention would make a failing implementation pass. Each
//! candidate is found by re-evaluating the reference under that convention (or combining
//! reference answers, for a missing factor) and judging the results against it with the
//! same tolerance model, never by guessing from the size of the error.

use super::{groups_of, judge_group, CaseReport, Corpus, Loaded, Results, Verdict};
use crate::answer::{Answer, Tensor};
use crate::error::Result;
use crate::reference::evaluate;
use crate::spec::Dtype;
use crate::spec::{Case, Reduction};
use crate::tolerance::Rule;
use crate::tolerance::{scales, Group};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// At most this many failing cases of a loss are re-evaluated.
pub const CASES_PER_LOSS: usize = 12;

/// One convention's evidence over the examined cases of a loss.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// The convention, in words.
    pub convention: String,
    /// The examined failing cases whose results it explains.
    pub cases: usize,
    /// The ids of those cases, in the order examined.
    pub ids: Vec<String>,
    /// The examined failing cases where its reference differs from the case's own by more
    /// than the tolerance (the only cases where it was tried).
    pub differing: usize,
}

/// What explains a loss's failures.
#[derive(Clone, Debug)]
pub struct Diagnosis {
    /// The loss id.
    pub loss: String,
    /// Failing cases examined.
    pub examined: usize,
    /// Conventions, each with how many of the examined cases it explains and on how many
    /// it differs from the case's own convention at all (SPEC §4: a convention is evidence
    /// only where the two differ by more than the tolerance; on the others it is never
    /// tried), best first.
    pub explained_by: Vec<Explanation>,
    /// The examined cases that no convention explains but whose verdict is UNSTABLE: the
    /// named formula's reason, and how many cases it explains (SPEC §4: such cases are
    /// reported as explained by the instability, never as unexplained).
    pub unstable: Vec<(String, usize)>,
    /// The examined cases that no convention or instability explains and whose results
    /// are NaN or ±∞ where the reference is finite: a bug named by what it returns (the
    /// ids, in corpus order).
    pub non_finite: Vec<String>,
    /// The examined cases that nothing above explains.
    pub unexplained: usize,
}

impl Diagnosis {
    /// One line: the best explanation, the cases a named instability explains, and how
    /// many nothing explains.
    pub fn text(&self) -> String {
        let n = self.examined;
        let unstable: usize = self.unstable.iter().map(|(_, k)| k).sum();
        let instability = || {
            // each formula once, though cases name several
            let mut why: Vec<&str> = Vec::new();
            for w in self.unstable.iter().flat_map(|(w, _)| w.split("; ")) {
                if !why.contains(&w) {
                    why.push(w);
                }
            }
            format!("UNSTABLE by a named formula ({})", why.join("; "))
        };
        let non_finite = || {
            format!(
                "{} return NaN or ±∞ where the reference is finite (first: {})",
                self.non_finite.len(),
                self.non_finite.first().map_or("", String::as_str)
            )
        };
        // the conventions after the best that explain cases it does not, each with those
        let mut covered: Vec<&String> = self
            .explained_by
            .first()
            .map_or(Vec::new(), |e| e.ids.iter().collect());
        let mut others = Vec::new();
        for e in self.explained_by.iter().skip(1) {
            let new: Vec<&String> = e.ids.iter().filter(|id| !covered.contains(id)).collect();
            if !new.is_empty() {
                others.push(format!(
                    "{} more match if {} (first: {})",
                    new.len(),
                    e.convention,
                    new[0]
                ));
                covered.extend(new);
            }
        }
        // NaN or ±∞ results are all there is to say: they lead the line
        let only_non_finite =
            self.explained_by.is_empty() && self.unexplained == 0 && unstable == 0;
        let mut text = match self.explained_by.first() {
            Some(e) if e.cases == n => {
                return format!("matches if {} ({n} of {n} failing cases examined)", e.convention)
            }
            Some(e) => format!(
                "{} of {n} failing cases examined match if {} (of the {} where it differs from the case's own convention)",
                e.cases, e.convention, e.differing
            ),
            None if unstable == n => {
                return format!(
                    "the {n} failing cases examined are {}: right in absolute terms, with a formula that loses accuracy on them",
                    instability()
                )
            }
            None if only_non_finite => {
                format!("of the {n} failing cases examined, {}", non_finite())
            }
            None => format!(
                "no known convention explains {} of the {n} failing cases examined",
                self.unexplained
            ),
        };
        for o in others {
            text.push_str(&format!("; {o}"));
        }
        if unstable > 0 {
            text.push_str(&format!("; {unstable} are {}", instability()));
        }
        if !self.non_finite.is_empty() && !only_non_finite {
            text.push_str(&format!("; {}", non_finite()));
        }
        if !self.explained_by.is_empty() && self.unexplained > 0 {
            text.push_str(&format!(
                "; no known convention explains {}",
                self.unexplained
            ));
        }
        text
    }

    /// As JSON.
    pub fn json(&self) -> Value {
        json!({"loss": self.loss, "examined": self.examined, "text": self.text(),
               "explained_by": self.explained_by.iter().map(|e| json!({"convention": e.convention, "cases": e.cases, "ids": e.ids, "differing": e.differing})).collect::<Vec<_>>(),
               "unstable": self.unstable.iter().map(|(w, k)| json!({"formula": w, "cases": k})).collect::<Vec<_>>(),
               "non_finite": self.non_finite,
               "unexplained": self.unexplained})
    }
}

/// The reference's answer at 160 bits, each value its enclosure's midpoint: what a
/// convention's re-evaluation is judged against.
pub(crate) fn midpoints(case: &Case) -> Option<Answer<f64>> {
    midpoints_of(&evaluate(case, 160).ok()?)
}

/// Every value of `a` as its enclosure's midpoint in binary64: how a convention that a
/// family's reference evaluates (not a case of its own) becomes an answer to judge.
pub(crate) fn midpoints_of(a: &Answer<crate::mp::interval::Interval>) -> Option<Answer<f64>> {
    a.try_map(|_, iv| Ok::<f64, ()>(iv.mid().to_f64())).ok()
}

/// `a` with every value times `factor`, except those whose place names one of `keep`.
pub(crate) fn scaled(a: &Answer<f64>, factor: f64, keep: &[&str]) -> Answer<f64> {
    a.try_map(|place, v| {
        Ok::<f64, ()>(if keep.iter().any(|k| place.contains(k)) {
            *v
        } else {
            v * factor
        })
    })
    .unwrap_or_else(|()| a.clone())
}

/// wa·a + wb·b, value by value in answer order.
pub(crate) fn combine(a: &Answer<f64>, b: &Answer<f64>, wa: f64, wb: f64) -> Answer<f64> {
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

/// A convention's answer: (description, answer, the case whose scales judge it). `None`:
/// no case of SPEC §1 computes this answer (a convention that changes the formula, not a
/// parameter), and each value is judged by the case's own scale, at least the largest
/// |value| of its row (the own scales follow the own answer's magnitudes, which such a
/// convention moves; a row's largest value bounds the terms that its entries sum).
pub(crate) type Alternative = (String, Answer<f64>, Option<Case>);

/// The convention `what`, whose answer is the reference's under `case`; `None` where the
/// reference is undefined there.
pub(crate) fn reevaluated(what: &str, case: Case) -> Option<Alternative> {
    midpoints(&case).map(|a| (what.to_string(), a, Some(case)))
}

/// The tolerance scales that judge an alternative answer ([`Alternative`]).
fn alternative_scales(
    own: &Case,
    answer: &Answer<f64>,
    scale_case: Option<&Case>,
    dtype: Dtype,
) -> Vec<Group> {
    let Some(case) = scale_case else {
        let mut groups = scales(own, answer, dtype);
        for g in &mut groups {
            let (section, name) = g.name.split_once('/').unwrap_or(("", ""));
            let values = if section == "outputs" {
                answer.output(name)
            } else {
                answer.gradient(name)
            };
            let Some(values) = values else { continue };
            let width = match values {
                Tensor::Scalar(_) => 1,
                Tensor::Matrix(m) => m.cols().max(1),
            };
            for (row, scales) in values
                .values()
                .chunks(width)
                .zip(g.scales.chunks_mut(width))
            {
                let top = row.iter().fold(0.0f64, |a, v| a.max(v.abs()));
                for s in scales {
                    s.scale = s.scale.max(top);
                }
            }
        }
        return groups;
    };
    scales(case, answer, dtype)
}

/// A real parameter of a case for [`lower_precision_params`]: its name, its value, and
/// how to set it on the case.
pub(crate) type Param<'a> = (&'a str, f64, &'a dyn Fn(&mut Case, f64));

/// The conventions "parameters held in a lower precision" (SPEC §4: a margin, scale,
/// temperature or α held in float32 inside a float64 computation, or in bfloat16 inside a
/// float32 one): for each parameter of `params` that `dtype`'s lower precision does not
/// hold, the case with it rounded there, and, when several are, all of them at once. Each
/// names the rounded value.
pub(crate) fn lower_precision_params(
    case: &Case,
    dtype: Dtype,
    params: &[Param],
) -> Vec<Alternative> {
    let lower = dtype.lower_name();
    let moved: Vec<&Param> = params
        .iter()
        .filter(|(_, v, _)| dtype.round_lower(*v) != *v)
        .collect();
    let mut out = Vec::new();
    let describe = |(name, v, _): &&Param| format!("{name} {v} → {}", dtype.round_lower(*v));
    for p in &moved {
        let mut c = case.clone();
        (p.2)(&mut c, dtype.round_lower(p.1));
        out.extend(reevaluated(
            &format!("the parameter {} is held in {lower} ({})", p.0, describe(p)),
            c,
        ));
    }
    if moved.len() > 1 {
        let mut c = case.clone();
        for p in &moved {
            (p.2)(&mut c, dtype.round_lower(p.1));
        }
        let all: Vec<String> = moved.iter().map(describe).collect();
        out.extend(reevaluated(
            &format!(
                "every real parameter is held in {lower} ({})",
                all.join(", ")
            ),
            c,
        ));
    }
    out
}

/// The alternative answers of the conventions that apply to `case`: the other reduction
/// here, and each family's own (`crate::family`'s `conventions`).
fn alternatives(loaded: &Loaded, dtype: Dtype) -> Vec<Alternative> {
    let case = &loaded.case;
    let mut out = Vec::new();
    // every loss but softmax: the other reduction
    let mut flipped = case.clone();
    if let Some(r) = flipped.reduction_mut() {
        let asked = *r;
        *r = asked.other();
        let what = if asked == Reduction::Mean {
            "the loss is a sum over the batch, not a mean"
        } else {
            "the loss is a mean over the batch, not a sum"
        };
        out.extend(reevaluated(what, flipped));
    }
    out.extend(crate::family::conventions(case, dtype));
    out
}

/// Whether the results of one case match an alternative answer: every group within the
/// tolerance of `groups`, the alternative's scales (`crate::tolerance::scales`).
fn matches(
    results: &super::Groups,
    answer: &Answer<f64>,
    groups: &[Group],
    rule: &Rule,
    transpose_weights: bool,
) -> bool {
    let mut judged = 0;
    for scale_group in groups {
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
            rule,
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

/// SPEC §6's explanation of a failing case judged in a tier, before any convention: every
/// FAIL value meets another tier (the pipeline is that one, not the declared one),
/// claimed only where the other tier's limits hold for every FAIL value of the case.
fn tier_explanation(r: &CaseReport) -> Option<String> {
    // the FAIL values: an UNSTABLE one is within a named formula's error scale (SPEC §4),
    // explained by it, and is no evidence either way
    let failing: Vec<_> = r
        .groups
        .iter()
        .filter(|g| g.verdict.is_failure() && !matches!(g.verdict, Verdict::Unstable(_)))
        .collect();
    if failing.is_empty() {
        return None;
    }
    let other = |g: &&super::GroupReport| {
        g.tier_note
            .strip_prefix(super::WITHIN_ANOTHER_TIER)
            .and_then(|rest| rest.strip_prefix('`'))
            .and_then(|rest| rest.split_once('`'))
            .map(|(name, _)| name.to_string())
    };
    let tiers: Vec<Option<String>> = failing.iter().map(other).collect();
    // `bfloat16 native` → `native`: the pipeline, the same explanation in every dtype
    let pipeline = |tier: &str| {
        tier.split_once(' ')
            .map_or("highest", |(_, p)| p)
            .to_string()
    };
    if let Some(Some(first)) = tiers.first() {
        if tiers.iter().all(|t| t.as_ref() == Some(first)) {
            return Some(format!(
                "computed in the `{}` pipeline, not the declared `{}` (SPEC §6)",
                pipeline(first),
                pipeline(&r.tier.to_string())
            ));
        }
    }
    None
}

/// A 16-bit case whose results are NaN or ±∞, that no convention explains, with a logit
/// past the format's exp range (SPEC §6): the softmax exponentiates before subtracting the
/// maximum, and e^z overflows. Claimed only on that evidence: a logit beyond ln(largest
/// finite number), which a softmax that subtracts the maximum never exponentiates.
fn overflow_explanation(dtype: crate::spec::Dtype, loaded: &Loaded) -> Option<String> {
    if !dtype.is_half() {
        return None;
    }
    let reach = crate::family::logit_stages(&loaded.case, 0.0).largest;
    let limit = dtype.max_finite().ln();
    (reach > limit).then(|| {
        format!(
            "the softmax exponentiates before subtracting the maximum: e^z overflows {} past \
             z = {limit:.2} (SPEC §6)",
            dtype.as_str()
        )
    })
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
    // values that were compared, and the one shape a convention explains (D×C weights):
    // an absent value or another wrong shape is no evidence of any convention
    for r in reports.iter().filter(|r| match &r.verdict {
        Verdict::Fail | Verdict::Unstable(_) => true,
        Verdict::WrongShape(why) => why.contains("transpose"),
        _ => false,
    }) {
        by_loss.entry(r.loss.clone()).or_default().push(r);
    }
    let mut out = Vec::new();
    for (loss, failing) in by_loss {
        // per convention: (cases explained, cases where it differs from the case's own)
        let mut explained: BTreeMap<String, (usize, usize, Vec<String>)> = BTreeMap::new();
        let mut unstable: BTreeMap<String, usize> = BTreeMap::new();
        let mut unexplained = 0;
        let mut non_finite = Vec::new();
        // the failures first, then the UNSTABLE cases: what a user must fix is explained
        // before what a named formula already explains
        let mut failing = failing;
        failing.sort_by_key(|r| matches!(r.verdict, Verdict::Unstable(_)));
        let examined: Vec<&&CaseReport> = failing.iter().take(CASES_PER_LOSS).collect();
        for r in &examined {
            // a case that no convention explains is explained by its named instability,
            // if it has one, and otherwise by nothing
            let mut by_convention = false;
            let mut account = |by_convention: bool| {
                if by_convention {
                    return;
                }
                // a value that is NaN or ±∞ (its error is infinite), not merely absent
                let nan = r
                    .groups
                    .iter()
                    .any(|g| g.worst_units.is_infinite() && g.verdict.compared());
                match &r.verdict {
                    Verdict::Unstable(why) => *unstable.entry(why.clone()).or_default() += 1,
                    _ if nan => non_finite.push(r.id.clone()),
                    _ => unexplained += 1,
                }
            };
            let Some(case) = corpus.cases.iter().find(|c| c.id == r.id) else {
                account(false);
                continue;
            };
            let Some(got) = results.values.get(&r.id) else {
                account(false);
                continue;
            };
            let loaded = corpus.load_case(case)?;
            if let Some(what) = tier_explanation(r) {
                let e = explained.entry(what).or_default();
                e.0 += 1;
                e.1 += 1;
                e.2.push(r.id.clone());
                continue;
            }
            let transposed = r.groups.iter().any(
                |g| matches!(&g.verdict, Verdict::WrongShape(why) if why.contains("transpose")),
            );
            let reference = if case.dtype == Dtype::Float32 {
                &loaded.reference32
            } else {
                &loaded.reference
            };
            let rule = Rule::of(
                &loaded.case,
                results.pipeline.unwrap_or_default().tier(case.dtype),
            );
            let strict = Rule::Plain(case.dtype.arithmetic());
            if transposed
                && matches(
                    got,
                    reference,
                    &scales(&loaded.case, reference, case.dtype),
                    &rule,
                    true,
                )
            {
                let e = explained
                    .entry("the weights are laid out D×C (transposed), not C×D".into())
                    .or_default();
                e.0 += 1;
                e.1 += 1;
                e.2.push(r.id.clone());
                continue;
            }
            // the case's own answer, as results: a convention under which it passes gives
            // (within the tolerance) the same values here, and is no evidence on this case
            let own = groups_of(reference);
            for (what, answer, scale_case) in alternatives(&loaded, case.dtype) {
                // the alternative's tolerance scales, for both judgements
                let groups =
                    alternative_scales(&loaded.case, &answer, scale_case.as_ref(), case.dtype);
                // whether the two conventions differ is a question of mathematics: beyond
                // the arithmetic's tolerance, not a tier's (SPEC §6), which only says how
                // far an implementation's roundings may take it
                if matches(&own, &answer, &groups, &strict, false) {
                    continue;
                }
                let e = explained.entry(what).or_default();
                e.1 += 1;
                if matches(got, &answer, &groups, &rule, transposed) {
                    e.0 += 1;
                    e.2.push(r.id.clone());
                    by_convention = true;
                }
            }
            let non_finite_values = r
                .groups
                .iter()
                .any(|g| g.worst_units.is_infinite() && g.verdict.compared());
            if !by_convention && non_finite_values {
                if let Some(what) = overflow_explanation(case.dtype, &loaded) {
                    let e = explained.entry(what).or_default();
                    e.0 += 1;
                    e.1 += 1;
                    e.2.push(r.id.clone());
                    continue;
                }
            }
            account(by_convention);
        }
        let mut explained_by: Vec<Explanation> = explained
            .into_iter()
            .filter(|(_, (cases, _, _))| *cases > 0)
            .map(|(convention, (cases, differing, ids))| Explanation {
                convention,
                cases,
                ids,
                differing,
            })
            .collect();
        explained_by.sort_by(|a, b| b.cases.cmp(&a.cases).then(a.convention.cmp(&b.convention)));
        out.push(Diagnosis {
            loss,
            examined: examined.len(),
            explained_by,
            unstable: unstable.into_iter().collect(),
            non_finite,
            unexplained,
        });
    }
    Ok(out)
}
