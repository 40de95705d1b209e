//! Fast f32/f64 `center` loss (SPEC §1, Wen et al.): r·Σ_i ½‖x_i − c_{y_i}‖², its
//! gradients r·(x_i − c_{y_i}) and −r·Σ_{i: y_i = j}(x_i − c_j), and the update
//! `centers_next` = c_j − α·Σ_{i: y_i = j}(c_j − x_i)/(1 + n_j). Sums are compensated.

use crate::error::{Error, Result};
use crate::fast::real::{compensated_sum, Real};
use crate::spec::Reduction;

/// The loss, its gradients and the updated centers.
#[derive(Clone, Debug, PartialEq)]
pub struct CenterOutput<T> {
    /// The reduced loss.
    pub loss: T,
    /// ∂L/∂features, N×D.
    pub features: Vec<T>,
    /// ∂L/∂centers, C×D.
    pub centers: Vec<T>,
    /// The centers after one update step, C×D.
    pub centers_next: Vec<T>,
}

/// Center loss for N×D features, C×D centers and N labels, with update rate `alpha`.
///
/// One sample x = (2, 4) of class 0, whose center is the origin: L = ½‖x − c₀‖² = 10,
/// ∂L/∂x = x − c₀, ∂L/∂c₀ = −(x − c₀), and the update moves c₀ by α·(x − c₀)/(1 + n₀):
///
/// ```
/// use lossref::family::center::fast::center;
/// use lossref::spec::Reduction;
///
/// let out = center(&[2.0, 4.0], &[0.0, 0.0, 1.0, 1.0], &[0], 2, 0.5, Reduction::Mean).unwrap();
/// assert_eq!(out.loss, 10.0);
/// assert_eq!(out.features, [2.0, 4.0]);
/// assert_eq!(out.centers, [-2.0, -4.0, 0.0, 0.0]);
/// assert_eq!(out.centers_next, [0.5, 1.0, 1.0, 1.0]);
/// ```
///
/// # Errors
/// Shapes that disagree, a label out of range, or α outside [0, 1].
pub fn center<T: Real>(
    features: &[T],
    centers: &[T],
    labels: &[usize],
    dim: usize,
    alpha: f64,
    reduction: Reduction,
) -> Result<CenterOutput<T>> {
    let n = labels.len();
    if n == 0 {
        return Err(Error::invalid(
            "labels",
            "the batch is empty (N = 0); SPEC §1 defines no loss without samples",
        ));
    }
    if dim == 0 || n.checked_mul(dim) != Some(features.len()) || centers.len() % dim != 0 {
        return Err(Error::invalid(
            "features",
            format!(
                "N = {n} labels and D = {dim} do not match {} features and {} center values",
                features.len(),
                centers.len()
            ),
        ));
    }
    if !(0.0..=1.0).contains(&alpha) {
        return Err(Error::invalid(
            "alpha",
            format!("must be in [0, 1], got {alpha}"),
        ));
    }
    for (name, m) in [("features", features), ("centers", centers)] {
        if let Some(k) = m.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid(
                format!("{name}[{}][{}]", k / dim, k % dim),
                "is not finite",
            ));
        }
    }
    let classes = centers.len() / dim;
    if let Some((i, &y)) = labels.iter().enumerate().find(|&(_, &y)| y >= classes) {
        return Err(Error::invalid(
            format!("labels[{i}]"),
            format!("label {y} is out of range 0..{classes}"),
        ));
    }
    let r = match reduction {
        Reduction::Mean => T::one() / T::of_usize(n),
        Reduction::Sum => T::one(),
    };
    let half = T::of_f64(0.5);
    let diff = |i: usize, k: usize| features[i * dim + k] - centers[labels[i] * dim + k];
    let loss = compensated_sum(
        (0..n).map(|i| half * compensated_sum((0..dim).map(|k| diff(i, k) * diff(i, k)))),
    ) * r;
    let grad_features = (0..n * dim).map(|e| diff(e / dim, e % dim) * r).collect();
    let mut members = vec![Vec::new(); classes];
    for (i, &y) in labels.iter().enumerate() {
        members[y].push(i);
    }
    let mut grad_centers = vec![T::zero(); centers.len()];
    let mut centers_next = centers.to_vec();
    let a = T::of_f64(alpha);
    for (j, m) in members.iter().enumerate() {
        if m.is_empty() {
            continue;
        }
        let count = T::of_usize(1 + m.len());
        for k in 0..dim {
            let s = compensated_sum(m.iter().map(|&i| diff(i, k)));
            grad_centers[j * dim + k] = -(s * r);
            // Δc = Σ(c − x)/(1 + n) = −s/(1 + n)
            centers_next[j * dim + k] = centers[j * dim + k] + a * (s / count);
        }
    }
    Ok(CenterOutput {
        loss,
        features: grad_features,
        centers: grad_centers,
        centers_next,
    })
}
