//! The bookkeeping shared by the precision-table tests: a fast answer measured against the
//! certified one with the measures of `lossref::precision` (one per value group), the worst
//! error per (quantity, dtype) with the input that produced it, and the two-way judgement of
//! the table (an entry below the measured maximum fails, so does one more than
//! `STALE_FACTOR` above it, and so does an entry that is never measured).

use lossref::answer::Answer;
use lossref::mp::certify::CertifiedAnswer;
use lossref::precision::{entry, error_ulps, judge, measures, Quantity};
use lossref::spec::{Case, Dtype};
use std::collections::BTreeMap;

/// The losses whose rows `fast_paths/precision_table.rs` measures.
pub const SOFTMAX_FAMILIES: [&str; 4] = ["softmax", "softmax_ce", "focal", "poly1"];
/// The losses whose rows `fast_paths/precision_table_margin.rs` measures.
pub const MARGIN_FAMILIES: [&str; 5] = [
    "normface",
    "cosface",
    "arcface",
    "combined",
    "subcenter_arcface",
];
/// The losses whose rows `fast_paths/precision_table_adaptive.rs` measures.
pub const ADAPTIVE_FAMILIES: [&str; 4] = ["curricularface", "adaface", "magface", "adacos"];
/// The losses whose rows `fast_paths/precision_table_seed_losses.rs` measures.
pub const SEED_FAMILIES: [&str; 4] = ["distill", "center", "lsoftmax", "sphereface"];

/// The worst error seen for one (quantity, dtype), with its witness.
#[derive(Clone, Debug, Default)]
pub struct Worst {
    pub ulps: f64,
    pub witness: String,
}

/// Worst errors by (quantity, dtype).
#[derive(Clone, Debug, Default)]
pub struct Worsts(pub BTreeMap<(Quantity, Dtype), Worst>);

impl Worsts {
    /// Records an error; the witness is formatted only when it is a new maximum.
    pub fn record(
        &mut self,
        quantity: Quantity,
        dtype: Dtype,
        err: f64,
        witness: impl FnOnce() -> String,
    ) {
        let w = self.0.entry((quantity, dtype)).or_default();
        if err > w.ulps || w.witness.is_empty() {
            w.ulps = w.ulps.max(err);
            w.witness = witness();
        }
    }

    /// Measures every value group of a fast answer (`got`, widened exactly to f64) against
    /// the certified `exact` answer of `case`, in the table's measures for `dtype`
    /// ([`errors`]), and records each error. `context` describes the input for the witness.
    pub fn measure(
        &mut self,
        case: &Case,
        dtype: Dtype,
        exact: &CertifiedAnswer,
        got: &Answer<f64>,
        context: &dyn Fn() -> String,
    ) {
        for e in errors(case, dtype, exact, got, context) {
            self.record(e.quantity, dtype, e.ulps, || {
                format!("{}: {}", context(), e.at)
            });
        }
    }

    /// Judges every measurement against its entry, and every quantity that `owns` claims
    /// against the measurements in both dtypes; prints the maxima and panics with every
    /// failure, `failures` included.
    pub fn enforce(&self, owns: impl Fn(Quantity) -> bool, mut failures: Vec<String>) {
        for ((quantity, dtype), w) in &self.0 {
            if let Err(msg) = judge(*quantity, *dtype, w.ulps) {
                failures.push(format!("{msg}\n    worst input: {}", w.witness));
            }
        }
        for quantity in Quantity::ALL.into_iter().filter(|q| owns(*q)) {
            for dtype in Dtype::ALL {
                if !self.0.contains_key(&(quantity, dtype)) {
                    failures.push(format!(
                        "table entry {quantity} {} is never measured: test it",
                        dtype.short()
                    ));
                }
            }
        }
        let summary: Vec<String> = self
            .0
            .iter()
            .map(|((q, d), w)| format!("{q} {}: {:.3} ulps  ({})", d.short(), w.ulps, w.witness))
            .collect();
        eprintln!("measured maxima:\n  {}", summary.join("\n  "));
        assert!(
            failures.is_empty(),
            "precision table violations:\n  {}",
            failures.join("\n  ")
        );
    }
}

/// One value's error in the table's measure.
pub struct ValueError {
    pub quantity: Quantity,
    pub ulps: f64,
    /// The group, the index, what was got and what was wanted.
    pub at: String,
}

/// The error of every value of a fast answer (`got`, widened exactly to f64) against the
/// certified `exact` answer of `case`, in the table's measures for `dtype`. Every group the
/// measures name must be in `got` with the reference's size, and `got` may hold no other
/// group; `context` describes the input for those failures.
pub fn errors(
    case: &Case,
    dtype: Dtype,
    exact: &CertifiedAnswer,
    got: &Answer<f64>,
    context: &dyn Fn() -> String,
) -> Vec<ValueError> {
    let rounded = exact
        .answer
        .try_map(|_, c| Ok::<f64, ()>(c.f64))
        .expect("infallible");
    let groups = measures(case, &rounded, dtype);
    for (section, name, _) in got.sections() {
        let group = format!("{section}/{name}");
        assert!(
            groups.iter().any(|m| m.group == group),
            "{}: the fast answer's {group} has no measure",
            context()
        );
    }
    let mut out = Vec::new();
    for m in groups {
        let want = exact
            .answer
            .group(m.group)
            .unwrap_or_else(|| panic!("{}: no reference {}", context(), m.group))
            .values();
        let have = got
            .group(m.group)
            .unwrap_or_else(|| panic!("{}: the fast answer has no {}", context(), m.group))
            .values();
        assert_eq!(
            (have.len(), want.len()),
            (m.scales.len(), m.scales.len()),
            "{}: {} sizes",
            context(),
            m.group
        );
        for (k, ((g, w), scale)) in have.iter().zip(want).zip(&m.scales).enumerate() {
            out.push(ValueError {
                quantity: m.quantity,
                ulps: error_ulps(*g, &w.enclosure.mid(), *scale, dtype),
                at: format!(
                    "{}[{k}] got {} want {}",
                    m.group,
                    super::show(*g),
                    w.decimal
                ),
            });
        }
    }
    out
}

/// `Err` naming the worst value when any value of `got` is beyond its table entry.
pub fn within_table(
    case: &Case,
    dtype: Dtype,
    exact: &CertifiedAnswer,
    got: &Answer<f64>,
) -> Result<(), String> {
    let context = || format!("{case:?}");
    let worst = errors(case, dtype, exact, got, &context)
        .into_iter()
        .map(|e| (e.ulps / entry(e.quantity, dtype).max_ulps, e))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match worst {
        Some((units, e)) if units > 1.0 => Err(format!(
            "{} {}: {:.3} ulps, beyond the table's {} ({})",
            e.quantity,
            dtype.short(),
            e.ulps,
            entry(e.quantity, dtype).max_ulps,
            e.at
        )),
        _ => Ok(()),
    }
}
