//! The conventions of `focal`'s real implementations that the diagnosis tries (SPEC §5).

use super::{FocalCase, TargetRule};
use crate::check::diagnose::{midpoints, reevaluated, scaled, Alternative};
use crate::spec::{Case, Reduction};

/// kornia's and MONAI's focal loss keep the per-class terms −α_c(1 − p_c)^γ·t_c·log p_c as
/// an N×C tensor and average it over N·C (the loss and every gradient entry 1/C of the
/// per-sample mean); kornia puts 1 − a on class 0 and a on the others, so a case with the
/// two-level α [u, v, …, v] is tried with the levels swapped.
pub(crate) fn conventions(c: &FocalCase, whole: &Case) -> Vec<Alternative> {
    let mut out = Vec::new();
    let TargetRule::Focal { alpha, .. } = &c.rule else {
        return out;
    };
    let cols = c.logits.cols();
    if c.reduction == Reduction::Mean {
        if let Some(a) = midpoints(whole) {
            out.push((
                format!("the loss is the mean of the unsummed N×C per-class focal terms (kornia, MONAI): 1/C = 1/{cols} of the per-sample mean"),
                scaled(&a, 1.0 / cols as f64, &[]),
                None,
            ));
        }
    }
    if let Some(a) = alpha {
        let (u, v) = (a[0], a[1]);
        if u != v && a[1..].iter().all(|&x| x == v) {
            let mut swapped = c.clone();
            swapped.rule = TargetRule::Focal {
                gamma: match c.rule {
                    TargetRule::Focal { gamma, .. } => gamma,
                    TargetRule::Poly1 { .. } => 0.0,
                },
                alpha: Some((0..cols).map(|k| if k == 0 { v } else { u }).collect()),
            };
            out.extend(reevaluated(
                &format!("α is {v} on class 0 and {u} on the others, the case's levels swapped (kornia's α on class 0 vs 1 − α on the rest)"),
                Case::Focal(swapped),
            ));
        }
    }
    out
}
