//! The exact zero test for sums of softmax probabilities (proofs/exact_zeros.md, steps
//! 1, 3 and 4).
//!
//! Every gradient of SPEC §1 that can vanish is, up to a nonzero factor, a combination
//!
//! V = Σ_r Σ_l p_rl·B_rl,   p_rl = e^{z_rl} / Σ_k e^{z_rk},
//!
//! over softmax rows r with logits z_rl and coefficients B_rl (the constant terms of
//! p − onehot are folded in with Σ_l p_rl = 1). Rows whose logit multisets are equal (up
//! to a common shift, when the logits are rational) share their probabilities value by
//! value, so V = Σ_G Σ_ζ (e^ζ/S_G)·Σ_{r∈G} Σ_{l: z_rl = ζ} B_rl over row groups G and
//! distinct logit values ζ. Hence:
//!
//! * **Sufficient (sound):** if every bracket Σ_{r∈G} Σ_{l: z_rl = ζ} B_rl is 0, then V = 0.
//!   This needs only that logits put in one class are truly equal, which `Logit::equals`
//!   decides exactly or answers "not known equal"; a true class split in two makes the
//!   test stricter, never wrong.
//! * **Complete for algebraic data (Lindemann–Weierstrass):** for one row group with
//!   algebraic logits and algebraic coefficients, the e^ζ of distinct algebraic ζ are
//!   linearly independent over the algebraic numbers, so V = 0 only if every bracket is 0.
//!
//! Coefficients may hold a symbol σ(c): the target rule's slope dg/dcos θ at cos θ = c
//! when it is transcendental (arcface, combined). A bracket is 0 when it is 0 as a
//! polynomial in those symbols; equal c give equal σ(c), so symbols are merged by exact
//! equality of c.

use crate::exact::surd::Surd;
use crate::mp::interval::Interval;
use rug::Rational;
use std::cell::OnceCell;
use std::cmp::Ordering;

/// The precision of the enclosures that only pre-sort logits before the exact tests.
const PROBE_BITS: u32 = 96;

/// A logit as the zero test sees it.
#[derive(Clone, Debug)]
pub enum Logit {
    /// An algebraic number, held exactly.
    Algebraic(Surd),
    /// A target logit s·g(θ) that is transcendental or not held exactly (arcface's
    /// cos(θ + m), combined): equal to another logit only when both come from the same
    /// `rule` at the same cos θ = `cos` (the scale is one constant per case).
    Target {
        /// Which function of cos θ this is (a branch of the case's target rule).
        rule: u8,
        /// cos θ at the target, exactly.
        cos: Surd,
    },
}

impl Logit {
    /// Exactly equal (`false` means "not known equal").
    fn equals(&self, other: &Logit) -> bool {
        match (self, other) {
            (Logit::Algebraic(a), Logit::Algebraic(b)) => a.sub(b).is_zero(),
            (Logit::Target { rule: r, cos: a }, Logit::Target { rule: s, cos: b }) => {
                r == s && a.sub(b).is_zero()
            }
            _ => false,
        }
    }

    /// An enclosure at `prec` bits; `target(rule, cos)` encloses a [`Logit::Target`].
    pub fn enclose(&self, prec: u32, target: &dyn Fn(u8, &Surd) -> Interval) -> Interval {
        match self {
            Logit::Algebraic(a) => a.enclose(prec),
            Logit::Target { rule, cos } => target(*rule, cos),
        }
    }

    /// A coarse enclosure used to sort logits before exact comparison (an algebraic logit
    /// by its value, a target logit by its cos θ): equal logits have overlapping probes.
    fn probe(&self) -> (u8, Interval) {
        match self {
            Logit::Algebraic(a) => (u8::MAX, a.enclose(PROBE_BITS)),
            Logit::Target { rule, cos } => (*rule, cos.enclose(PROBE_BITS)),
        }
    }
}

/// α + Σ β_c·σ(c): an exact coefficient, possibly linear in the target rule's slopes.
#[derive(Clone, Debug, Default)]
pub struct Coefficient {
    plain: Surd,
    /// (c, β_c), one entry per distinct c.
    slopes: Vec<(Surd, Surd)>,
}

impl Coefficient {
    /// The exact number `a`.
    pub fn plain(a: Surd) -> Coefficient {
        Coefficient {
            plain: a,
            slopes: Vec::new(),
        }
    }

    /// β·σ(c): β times the (transcendental) slope at cos θ = c.
    pub fn slope(c: Surd, beta: Surd) -> Coefficient {
        let mut k = Coefficient::default();
        k.add_slope(c, beta);
        k
    }

    fn add_slope(&mut self, c: Surd, beta: Surd) {
        if beta.is_zero() {
            return;
        }
        if let Some(k) = self.slopes.iter().position(|(d, _)| d.sub(&c).is_zero()) {
            let sum = self.slopes[k].1.add(&beta);
            if sum.is_zero() {
                self.slopes.swap_remove(k);
            } else {
                self.slopes[k].1 = sum;
            }
        } else {
            self.slopes.push((c, beta));
        }
    }

    /// `self + other`.
    pub fn add(&self, other: &Coefficient) -> Coefficient {
        let mut k = Coefficient {
            plain: self.plain.add(&other.plain),
            slopes: self.slopes.clone(),
        };
        for (c, beta) in &other.slopes {
            k.add_slope(c.clone(), beta.clone());
        }
        k
    }

    /// `−self`.
    pub fn neg(&self) -> Coefficient {
        Coefficient {
            plain: self.plain.neg(),
            slopes: self
                .slopes
                .iter()
                .map(|(c, b)| (c.clone(), b.neg()))
                .collect(),
        }
    }

    /// `self · q` for a rational q.
    pub fn scale(&self, q: &Rational) -> Coefficient {
        let mut k = Coefficient::plain(self.plain.scale(q));
        for (c, beta) in &self.slopes {
            k.add_slope(c.clone(), beta.scale(q));
        }
        k
    }

    /// An enclosure at `prec` bits; `slope(c)` encloses σ(c).
    pub fn enclose(&self, prec: u32, slope: &dyn Fn(&Surd) -> Interval) -> Interval {
        self.slopes
            .iter()
            .fold(self.plain.enclose(prec), |acc, (c, beta)| {
                acc.add(&beta.enclose(prec).mul(&slope(c)))
            })
    }

    /// 0 as a polynomial in the slope symbols.
    pub fn is_zero(&self) -> bool {
        self.plain.is_zero() && self.slopes.is_empty()
    }
}

/// One softmax row: its logits, exactly.
#[derive(Clone, Debug)]
pub struct Row {
    logits: Vec<Logit>,
    /// The partition of the classes into classes of equal logits, computed on demand.
    classes: OnceCell<Partition>,
}

#[derive(Clone, Debug)]
struct Partition {
    /// For each logit value: its classes (column indices), in increasing order.
    members: Vec<Vec<usize>>,
    /// Each column's probe (see `Logit::probe`).
    probes: Vec<(u8, Interval)>,
    /// For each column: the index of its class in `members`.
    of: Vec<usize>,
}

impl Row {
    /// A row of logits. When every logit is rational they are shifted by their maximum,
    /// which changes no probability and lets rows equal up to a shift be grouped.
    pub fn new(mut logits: Vec<Logit>) -> Row {
        let rationals: Option<Vec<Rational>> = logits
            .iter()
            .map(|z| match z {
                Logit::Algebraic(a) => a.as_rational(),
                Logit::Target { .. } => None,
            })
            .collect();
        if let Some(qs) = rationals {
            if let Some(top) = qs.iter().max().cloned() {
                logits = qs
                    .into_iter()
                    .map(|q| Logit::Algebraic(Surd::rational(q - &top)))
                    .collect();
            }
        }
        Row {
            logits,
            classes: OnceCell::new(),
        }
    }

    /// The logits (shifted by their maximum when all are rational).
    pub fn logits(&self) -> &[Logit] {
        &self.logits
    }

    /// The number of logits.
    pub fn len(&self) -> usize {
        self.logits.len()
    }

    /// True for a row without logits.
    pub fn is_empty(&self) -> bool {
        self.logits.is_empty()
    }

    fn partition(&self) -> &Partition {
        self.classes.get_or_init(|| {
            // Sort by probe, sweep clusters of overlapping probes, split each cluster by
            // exact equality. Equal logits have equal kinds and overlapping probes.
            let probes: Vec<(u8, Interval)> = self.logits.iter().map(Logit::probe).collect();
            let mut order: Vec<usize> = (0..self.logits.len()).collect();
            order.sort_by(|&a, &b| {
                probes[a].0.cmp(&probes[b].0).then(
                    probes[a]
                        .1
                        .lo()
                        .partial_cmp(probes[b].1.lo())
                        .unwrap_or(Ordering::Equal),
                )
            });
            let mut members: Vec<Vec<usize>> = Vec::new();
            let mut of = vec![0; self.logits.len()];
            let mut cluster_start = 0;
            let mut reach: Option<(u8, rug::Float)> = None;
            for &l in &order {
                let (kind, ref iv) = probes[l];
                let joins = reach
                    .as_ref()
                    .is_some_and(|(k, hi)| *k == kind && iv.lo() <= hi);
                if !joins {
                    cluster_start = members.len();
                    reach = Some((kind, iv.hi().clone()));
                } else if let Some((_, hi)) = reach.as_mut() {
                    if iv.hi() > hi {
                        *hi = iv.hi().clone();
                    }
                }
                let found = (cluster_start..members.len())
                    .find(|&c| self.logits[members[c][0]].equals(&self.logits[l]));
                match found {
                    Some(c) => {
                        members[c].push(l);
                        of[l] = c;
                    }
                    None => {
                        of[l] = members.len();
                        members.push(vec![l]);
                    }
                }
            }
            for m in &mut members {
                m.sort_unstable();
            }
            Partition {
                members,
                probes,
                of,
            }
        })
    }

    /// For each class of `self`, the equal class of `other`, when the two rows hold the
    /// same multiset of logits (so the same probabilities, value by value).
    fn matching(&self, other: &Row) -> Option<Vec<usize>> {
        if self.len() != other.len() {
            return None;
        }
        let (a, b) = (self.partition(), other.partition());
        if a.members.len() != b.members.len() {
            return None;
        }
        let mut used = vec![false; b.members.len()];
        let mut map = Vec::with_capacity(a.members.len());
        for class in &a.members {
            let z = &self.logits[class[0]];
            let (kind, probe) = &a.probes[class[0]];
            let found = (0..b.members.len()).find(|&c| {
                if used[c] || b.members[c].len() != class.len() {
                    return false;
                }
                let first = b.members[c][0];
                let (k2, p2) = &b.probes[first];
                k2 == kind && p2.overlaps(probe) && z.equals(&other.logits[first])
            })?;
            used[found] = true;
            map.push(found);
        }
        Some(map)
    }
}

/// One row's part of a combination: B_l = `base` + `at[l]` (`at` sparse).
#[derive(Clone, Debug)]
pub struct RowTerm {
    /// The row.
    pub row: usize,
    /// Added to every class's coefficient.
    pub base: Coefficient,
    /// Per-class coefficients (class, coefficient); a class may appear more than once.
    pub at: Vec<(usize, Coefficient)>,
}

impl RowTerm {
    /// The term of row `row` in a value that depends on one class's logit only:
    /// Σ_l (p_l − δ_{l,y})·[l = class]·a, that is B_l = a·[l = class] − a·[class = y]
    /// (`target` says whether `class` is the row's label y).
    pub fn one_class(row: usize, class: usize, a: Coefficient, target: bool) -> RowTerm {
        let base = if target {
            a.neg()
        } else {
            Coefficient::default()
        };
        RowTerm {
            row,
            base,
            at: vec![(class, a)],
        }
    }
}

/// V = Σ_r Σ_l p_rl·B_rl, up to a nonzero factor.
#[derive(Clone, Debug, Default)]
pub struct Combination {
    /// The rows' parts.
    pub terms: Vec<RowTerm>,
}

impl Combination {
    /// Σ_l (p_l − δ_{l,label})·A_l over one row, with A_l = `at` (every class, in order):
    /// B_l = A_l − A_label.
    pub fn one_row(row: usize, label: usize, at: Vec<(usize, Coefficient)>) -> Combination {
        let base = at[label].1.neg();
        Combination {
            terms: vec![RowTerm { row, base, at }],
        }
    }
}

impl Combination {
    /// An enclosure of V = Σ_r Σ_l p_rl·B_rl at `prec` bits, with the target logits and the
    /// slopes enclosed by the caller: the numerical meaning of the form, which the tests
    /// hold against the reference's gradients.
    pub fn enclose(
        &self,
        rows: &[Row],
        prec: u32,
        target: &dyn Fn(u8, &Surd) -> Interval,
        slope: &dyn Fn(&Surd) -> Interval,
    ) -> Interval {
        let mut total = Interval::from_i64(prec, 0);
        for term in &self.terms {
            let z: Vec<Interval> = rows[term.row]
                .logits
                .iter()
                .map(|l| l.enclose(prec, target))
                .collect();
            // p_l = e^{z_l} / Σ_k e^{z_k}, with the exponents shifted by an exact number
            let shift = Interval::from_float(
                z.iter()
                    .map(|iv| iv.hi().clone())
                    .fold(rug::Float::with_val(prec, f64::NEG_INFINITY), |a, b| {
                        a.max(&b)
                    }),
            );
            let e: Vec<Interval> = z.iter().map(|iv| iv.sub(&shift).exp()).collect();
            let sum = Interval::sum(prec, &e);
            let base = term.base.enclose(prec, slope);
            // Σ_l p_l·base = base
            total = total.add(&base);
            for (l, k) in &term.at {
                total = total.add(&e[*l].div(&sum).mul(&k.enclose(prec, slope)));
            }
        }
        total
    }
}

/// True when the combination is proven to be exactly 0 (see the module docs); `false`
/// means "not proven", which for algebraic data means "not 0".
pub fn vanishes(rows: &[Row], combination: &Combination) -> bool {
    // Row groups: each member with the map from the leader's classes to its own.
    let mut groups: Vec<Vec<(usize, Option<Vec<usize>>)>> = Vec::new();
    for (t, term) in combination.terms.iter().enumerate() {
        let row = &rows[term.row];
        let joined = groups.iter_mut().find_map(|g| {
            let leader = &rows[combination.terms[g[0].0].row];
            leader.matching(row).map(|m| (g, m))
        });
        match joined {
            Some((g, m)) => g.push((t, Some(m))),
            None => groups.push(vec![(t, None)]),
        }
    }
    groups.iter().all(|group| {
        let leader = &rows[combination.terms[group[0].0].row];
        let classes = leader.partition().members.len();
        let mut brackets = vec![Coefficient::default(); classes];
        for (t, map) in group {
            let term = &combination.terms[*t];
            let part = rows[term.row].partition();
            for (c, bracket) in brackets.iter_mut().enumerate() {
                // the member's class equal to the leader's class c
                let own = map.as_ref().map_or(c, |m| m[c]);
                let count = part.members[own].len();
                *bracket = bracket.add(&term.base.scale(&Rational::from(count)));
            }
            for (l, k) in &term.at {
                let own = part.of[*l];
                let c = match map {
                    None => own,
                    Some(m) => m.iter().position(|&x| x == own).unwrap_or(own),
                };
                brackets[c] = brackets[c].add(k);
            }
        }
        brackets.iter().all(Coefficient::is_zero)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(n: i64) -> Surd {
        Surd::rational(Rational::from(n))
    }

    #[test]
    fn equal_logits_with_opposite_coefficients_vanish() {
        // p_0·1 + p_1·(−1) with z_0 = z_1 = 2, z_2 = 5: exactly 0
        let rows = vec![Row::new(vec![
            Logit::Algebraic(r(2)),
            Logit::Algebraic(r(2)),
            Logit::Algebraic(r(5)),
        ])];
        let plus = |l, n| (l, Coefficient::plain(r(n)));
        let zero_sum = Combination {
            terms: vec![RowTerm {
                row: 0,
                base: Coefficient::default(),
                at: vec![plus(0, 1), plus(1, -1)],
            }],
        };
        assert!(vanishes(&rows, &zero_sum));
        let unequal = Combination {
            terms: vec![RowTerm {
                row: 0,
                base: Coefficient::default(),
                at: vec![plus(0, 1), plus(2, -1)],
            }],
        };
        assert!(!vanishes(&rows, &unequal));
    }

    #[test]
    fn permuted_rows_share_probabilities() {
        // rows [0, 1, 3] and [3 + 7, 0 + 7, 1 + 7]: p_00 − p_11 = 0 (same value, shifted)
        let row = |v: [i64; 3]| Row::new(v.iter().map(|&n| Logit::Algebraic(r(n))).collect());
        let rows = vec![row([0, 1, 3]), row([10, 7, 8])];
        let c = |row, l, n| RowTerm {
            row,
            base: Coefficient::default(),
            at: vec![(l, Coefficient::plain(r(n)))],
        };
        assert!(vanishes(
            &rows,
            &Combination {
                terms: vec![c(0, 0, 1), c(1, 1, -1)]
            }
        ));
        assert!(!vanishes(
            &rows,
            &Combination {
                terms: vec![c(0, 0, 1), c(1, 0, -1)]
            }
        ));
    }
}
