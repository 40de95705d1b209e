//! One case judged: each value group's verdict against the reference with the tolerance
//! model of [`crate::tolerance`].

use crate::answer::Tensor;
use crate::check::{at, detail, Corpus, CorpusCase, Groups};
use crate::error::Result;
use crate::precision::Quantity;
use crate::spec::{Case, Dtype};
use crate::tier::{HalfPipeline, Pipeline, Tier};
use crate::tolerance::{scales, Rule, Scale, ILL_CONDITIONED};

/// How a value group (or a case) fared.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Within tolerance.
    Pass,
    /// Beyond tolerance.
    Fail,
    /// Beyond tolerance, but within what a named unstable formula gives on this case, or
    /// only by flushed subnormals ([`FLUSHED_SUBNORMALS`]); the reasons, joined.
    Unstable(String),
    /// The group is missing from the results.
    Missing(String),
    /// The group has another shape than the reference's (expected and given, in words):
    /// its values are not compared.
    WrongShape(String),
    /// The case is not in the results.
    NotRun,
    /// Failed, as an expectation said, with its reason.
    Xfail(String),
    /// Passed although an expectation said it fails.
    UnexpectedPass(String),
    /// Skipped by an expectation.
    Skipped(String),
}

impl Verdict {
    /// True for the verdicts that make `lossref check` exit 1.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Verdict::Fail
                | Verdict::Unstable(_)
                | Verdict::Missing(_)
                | Verdict::WrongShape(_)
                | Verdict::UnexpectedPass(_)
        )
    }

    /// How bad a failing verdict is, for a case made of several groups: a missing value,
    /// then a plain failure, then an unstable formula (0 for the others).
    pub fn severity(&self) -> u8 {
        match self {
            Verdict::Missing(_) | Verdict::WrongShape(_) => 3,
            Verdict::Fail => 2,
            Verdict::Unstable(_) => 1,
            _ => 0,
        }
    }

    /// Whether the group's values were compared with the reference at all (not absent and
    /// of the reference's shape).
    pub fn compared(&self) -> bool {
        !matches!(
            self,
            Verdict::Missing(_) | Verdict::WrongShape(_) | Verdict::NotRun
        )
    }

    /// A short word for tables.
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "FAIL",
            Verdict::Unstable(_) => "UNSTABLE",
            Verdict::Missing(_) => "MISSING",
            Verdict::WrongShape(_) => "WRONG SHAPE",
            Verdict::NotRun => "not run",
            Verdict::Xfail(_) => "xfail",
            Verdict::UnexpectedPass(_) => "UNEXPECTED PASS",
            Verdict::Skipped(_) => "skip",
        }
    }
}

/// The judgement of one value group of one case.
#[derive(Clone, Debug)]
pub struct GroupReport {
    /// `outputs/loss`, `gradients/features`, …
    pub group: String,
    /// The precision table's function (`cosface.grad`).
    pub function: String,
    /// The verdict.
    pub verdict: Verdict,
    /// The largest error in units of the tolerance (1 = at the tolerance).
    pub worst_units: f64,
    /// The error in ulps of the exact value at the worst point, in the case's dtype (0 where
    /// the exact value is 0: see [`crate::check::CheckReport`]'s table).
    pub worst_ulps: f64,
    /// Where the largest error is, e.g. `[3][1]`.
    pub worst_at: String,
    /// The largest condition number met in the group.
    pub kappa: f64,
    /// Every value's (error in tolerance units, condition number), for plots and statistics.
    pub points: Vec<(f64, f64)>,
    /// For a failing group judged in a precision tier (SPEC §6): the tiers it does meet,
    /// or why none does; empty otherwise.
    pub tier_note: String,
}

impl GroupReport {
    /// The verdict in words: `FAIL (2.1e3× the tolerance at [0][4]): …`, naming an
    /// ill-conditioned case and the verdict's detail.
    pub fn summary(&self) -> String {
        let why = match (detail(&self.verdict), self.kappa > ILL_CONDITIONED) {
            (d, true) => format!(
                ": ill-conditioned case (condition number {:.1e}){}",
                self.kappa,
                if d.is_empty() {
                    String::new()
                } else {
                    format!("; {d}")
                }
            ),
            (d, false) if d.is_empty() => String::new(),
            (d, false) => format!(": {d}"),
        };
        let why = if self.tier_note.is_empty() {
            why
        } else if why.is_empty() {
            format!(": {}", self.tier_note)
        } else {
            format!("{why}; {}", self.tier_note)
        };
        if !self.verdict.compared() {
            // no error to state: `MISSING: missing from the results`, `WRONG SHAPE: has shape …`
            return format!("{}{why}", self.verdict.word());
        }
        format!(
            "{} ({:.3e}× the tolerance{}){why}",
            self.verdict.word(),
            self.worst_units,
            at(&self.worst_at)
        )
    }

    /// A group the implementation declares it does not compute: not run.
    fn not_computed(group: &str, function: String) -> GroupReport {
        GroupReport {
            verdict: Verdict::NotRun,
            worst_units: 0.0,
            worst_ulps: 0.0,
            ..GroupReport::missing(group, function, String::new())
        }
    }

    /// A group the results lack (or, with its verdict replaced, hold in another shape).
    fn missing(group: &str, function: String, why: String) -> GroupReport {
        GroupReport {
            group: group.to_string(),
            function,
            verdict: Verdict::Missing(why),
            worst_units: f64::INFINITY,
            worst_ulps: f64::INFINITY,
            worst_at: String::new(),
            kappa: 1.0,
            points: vec![],
            tier_note: String::new(),
        }
    }
}

/// The judgement of one case.
#[derive(Clone, Debug)]
pub struct CaseReport {
    /// The id.
    pub id: String,
    /// The loss id.
    pub loss: String,
    /// The case's dtype.
    pub dtype: Dtype,
    /// The tier it was judged in (SPEC §6): its dtype alone for SPEC §4's plain model
    /// (`float32`), else with the pipeline's choices (`bfloat16 amp`, `float32 tf32`).
    pub tier: Tier,
    /// The case's tags.
    pub tags: Vec<String>,
    /// The case's verdict (its worst group's).
    pub verdict: Verdict,
    /// Per group.
    pub groups: Vec<GroupReport>,
}

/// The reason given when a value's error is below a few of the dtype's smallest normal
/// numbers: subnormal results or intermediates were flushed to zero.
pub const FLUSHED_SUBNORMALS: &str = "subnormals flushed to zero: the error is below the \
    dtype's smallest normal number (2^−126 in float32, 2^−1022 in float64) times the \
    tolerance, lost from the value or from each probability it is made of and scaled as \
    the value scales it, as when XLA on CPU or CUDA's fast math flushes subnormal results";

/// Judges one group's values against the reference with the case's scales, by `rule`.
pub(crate) fn judge_group(
    group: &str,
    quantity: Quantity,
    rule: &Rule,
    got: &[f64],
    want: &[f64],
    scales: &[Scale],
    cols: usize,
) -> GroupReport {
    let dtype = rule.dtype();
    let mut worst = (0.0f64, 0.0f64, 0usize);
    // the named reasons of the failing points (a textbook formula, flushed subnormals)
    let mut reasons: Vec<&'static str> = Vec::new();
    let mut kappa: f64 = 1.0;
    let mut points = Vec::with_capacity(got.len());
    let mut within_unstable = true;
    for (k, ((g, w), s)) in got.iter().zip(want).zip(scales).enumerate() {
        let limit = rule.limit(group, quantity, s.scale, s.terms, *w);
        let err = if g.is_nan() || (g.is_infinite() && *g != *w) {
            f64::INFINITY
        } else if g == w {
            0.0
        } else {
            (g - w).abs()
        };
        let units = err / limit;
        // ulps of an exact 0 are the format's smallest subnormal, which measures nothing
        // useful: exact zeros are judged by their tolerance alone and left out of this
        let ulps = if *w == 0.0 { 0.0 } else { err / dtype.ulp(*w) };
        let cond = (s.scale / w.abs().max(f64::MIN_POSITIVE)).max(s.kappa);
        kappa = kappa.max(s.kappa);
        points.push((units, cond));
        if units > 1.0 {
            let why = match s.unstable {
                Some((naive, why)) if err <= rule.limit(group, quantity, naive, s.terms, *w) => {
                    Some(why)
                }
                _ if err <= rule.flushed_limit(group, quantity, s, *w) => Some(FLUSHED_SUBNORMALS),
                _ => None,
            };
            match why {
                Some(why) if !reasons.contains(&why) => reasons.push(why),
                Some(_) => {}
                None => within_unstable = false,
            }
        }
        if units > worst.0 || k == 0 {
            worst = (units.max(worst.0), ulps, k);
        }
    }
    let failed = points.iter().any(|p| p.0 > 1.0);
    let verdict = if !failed {
        Verdict::Pass
    } else if within_unstable && !reasons.is_empty() {
        Verdict::Unstable(reasons.join("; "))
    } else {
        Verdict::Fail
    };
    let at = match worst.2.checked_div(cols) {
        Some(row) => format!("[{row}][{}]", worst.2 % cols),
        None => String::new(),
    };
    GroupReport {
        group: group.to_string(),
        function: quantity.name(),
        verdict,
        worst_units: worst.0,
        worst_ulps: worst.1,
        worst_at: at,
        kappa,
        points,
        tier_note: String::new(),
    }
}

/// Why every value of a 16-bit case declared `accumulate16` fails.
pub const ACCUMULATE16: &str = "declared `accumulate16`: a softmax's sum over the classes \
    accumulated in 16 bits has no tier, and fails by design (SPEC §6)";

/// How a tier note that names the tiers a failing value meets begins.
pub const WITHIN_ANOTHER_TIER: &str = "within the tolerance of ";

/// For a group that fails in `tier`: the other tiers of its dtype whose limits it meets.
#[allow(clippy::too_many_arguments)]
fn tier_note(
    group: &str,
    quantity: Quantity,
    tier: Tier,
    case: &Case,
    got: &[f64],
    want: &[f64],
    scales: &[Scale],
    cols: usize,
) -> String {
    let passes = |rule: &Rule| {
        judge_group(group, quantity, rule, got, want, scales, cols).verdict == Verdict::Pass
    };
    // the tiers it meets; those with subnormals flushed only where no other is met
    let met: Vec<Tier> = tier
        .others()
        .into_iter()
        .filter(|t| passes(&Rule::of(case, *t)))
        .collect();
    let kept: Vec<Tier> = met
        .iter()
        .copied()
        .filter(|t| !t.ftz || t.ftz == tier.ftz)
        .collect();
    let within: Vec<String> = if kept.is_empty() { met } else { kept }
        .into_iter()
        .map(|t| format!("`{t}`"))
        .collect();
    if let Some(first) = within.first() {
        let rest = if within.len() > 1 {
            format!(" (and {})", within[1..].join(", "))
        } else {
            String::new()
        };
        return format!(
            "{WITHIN_ANOTHER_TIER}{first}{rest}, not of the declared `{tier}` (SPEC §6)"
        );
    }
    format!(
        "fails `{tier}` and every other tier of {}",
        tier.dtype.as_str()
    )
}

/// Judges the results of one case (`None`: not in the results).
///
/// # Errors
/// The case cannot be loaded from the corpus.
pub fn judge_case(
    corpus: &Corpus,
    case: &CorpusCase,
    got: Option<&Groups>,
    computes: Option<&[String]>,
    pipeline: Option<Pipeline>,
) -> Result<CaseReport> {
    let tier = pipeline.unwrap_or_default().tier(case.dtype);
    let mut report = CaseReport {
        id: case.id.clone(),
        loss: case.loss.clone(),
        dtype: case.dtype,
        tier,
        tags: case.tags.clone(),
        verdict: Verdict::NotRun,
        groups: vec![],
    };
    let Some(got) = got else { return Ok(report) };
    let loaded = corpus.load_case(case)?;
    let reference = if case.dtype == Dtype::Float32 {
        &loaded.reference32
    } else {
        // a 16-bit case is judged against the exact value: its tier's limit holds the
        // rounding to the format each value is returned in
        &loaded.reference
    };
    let rule = Rule::of(&loaded.case, tier);
    for scale_group in scales(&loaded.case, &loaded.reference, case.dtype) {
        let group = scale_group.name;
        let (section, name) = group.split_once('/').unwrap_or(("", ""));
        let function = scale_group.quantity.name();
        let want = if section == "outputs" {
            reference.output(name)
        } else {
            reference.gradient(name)
        };
        let Some(want) = want else { continue };
        let (rows, cols) = match want {
            Tensor::Scalar(_) => (0, 0),
            Tensor::Matrix(m) => (m.rows(), m.cols()),
        };
        let expected_shape: Vec<usize> = if cols == 0 { vec![] } else { vec![rows, cols] };
        let g = match got.get(&group) {
            None if computes.is_some_and(|c| !c.contains(&group)) => {
                report
                    .groups
                    .push(GroupReport::not_computed(&group, function));
                continue;
            }
            None => {
                let why = "missing from the results".to_string();
                report
                    .groups
                    .push(GroupReport::missing(&group, function, why));
                continue;
            }
            Some(g) => g,
        };
        let shape_ok = g.0 == expected_shape || (expected_shape.is_empty() && g.1.len() == 1);
        if !shape_ok {
            let why = if g.0.len() == 2
                && expected_shape.len() == 2
                && g.0[0] == expected_shape[1]
                && g.0[1] == expected_shape[0]
            {
                format!(
                    "has shape {:?}, the transpose of the reference's {:?}",
                    g.0, expected_shape
                )
            } else {
                format!(
                    "has shape {:?} but the reference's is {:?}",
                    g.0, expected_shape
                )
            };
            report.groups.push(GroupReport {
                verdict: Verdict::WrongShape(why),
                ..GroupReport::missing(&group, function, String::new())
            });
            continue;
        }
        let mut judged = judge_group(
            &group,
            scale_group.quantity,
            &rule,
            &g.1,
            want.values(),
            &scale_group.scales,
            cols,
        );
        // SPEC §6: 16-bit accumulation has no tier, and fails by design
        if tier.half == Some(HalfPipeline::Accumulate16) {
            judged.verdict = Verdict::Fail;
            judged.tier_note = ACCUMULATE16.to_string();
        }
        // the tiers a failing value meets, where a tier applies: a 16-bit case, a pipeline
        // the results declared, or one that changes the float32 rule
        else if (!tier.is_plain() || pipeline.is_some()) && judged.verdict.is_failure() {
            judged.tier_note = tier_note(
                &group,
                scale_group.quantity,
                tier,
                &loaded.case,
                &g.1,
                want.values(),
                &scale_group.scales,
                cols,
            );
        }
        report.groups.push(judged);
    }
    report.verdict = case_verdict(&report.groups);
    Ok(report)
}

/// A case's verdict from its groups': the most severe failure (a FAIL is not hidden behind
/// an UNSTABLE group that happens to come first); else an expected failure; else a pass;
/// else a skip; else (no group computed, or none at all) not run.
pub(crate) fn case_verdict(groups: &[GroupReport]) -> Verdict {
    let first = |wanted: fn(&Verdict) -> bool| {
        groups
            .iter()
            .map(|g| &g.verdict)
            .find(|v| wanted(v))
            .cloned()
    };
    groups
        .iter()
        .map(|g| g.verdict.clone())
        .filter(Verdict::is_failure)
        .max_by_key(Verdict::severity)
        .or_else(|| first(|v| matches!(v, Verdict::Xfail(_))))
        .or_else(|| first(|v| matches!(v, Verdict::Pass)))
        .or_else(|| first(|v| matches!(v, Verdict::Skipped(_))))
        .unwrap_or(Verdict::NotRun)
}
