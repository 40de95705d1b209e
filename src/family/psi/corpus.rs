//! lsoftmax's and sphereface's corpus cases (SPEC §4). Their exact-zero cases are the
//! special-angle construction of `crate::corpus::exact_zero`, shared with the
//! normalized-margin family.

use super::PsiFamily;
use crate::corpus::generate::{params, push, rows_json, Generated, Regime};
use crate::family::LossFamily;
use crate::spec::{Dtype, LossId};
use serde_json::json;

/// Every margin and λ variant, at ψ's segment boundaries and at tiny and huge norms.
pub(crate) fn cases(dtype: Dtype, out: &mut Vec<Generated>) {
    for (loss, m, lambda) in [
        (LossId::LSoftmax, 1, 0.0),
        (LossId::LSoftmax, 2, 0.0),
        (LossId::LSoftmax, 3, 1.5),
        (LossId::SphereFace, 4, 0.0),
        (LossId::SphereFace, 4, 5.0),
    ] {
        let name = format!("{}-m{m}-lambda{lambda}", loss.as_str());
        // ψ_m's segment boundaries kπ/m, as the family states them
        let boundaries = PsiFamily::switch_points(loss, &json!({"margin": m, "lambda": lambda}))
            .expect("the corpus variants' parameters are valid");
        for regime in [
            Regime::Random,
            Regime::PsiBoundary,
            Regime::TinyNorm,
            Regime::HugeNorm,
        ] {
            if regime == Regime::PsiBoundary && boundaries.is_empty() {
                continue;
            }
            push(out, dtype, &name, loss, regime, 2, &[], |draw, _| {
                let (n, c, d) = (3, 5, 4);
                let w = draw.normal_rows(c, d, 1.0);
                let labels = draw.labels(n, c);
                let (x, desc) = match regime {
                    Regime::PsiBoundary => {
                        let eps = if dtype == Dtype::Float32 {
                            (1e-4, 1e-2)
                        } else {
                            (1e-10, 1e-3)
                        };
                        let cos: Vec<f64> = (0..n)
                            .map(|_| {
                                let at = boundaries[draw.index(boundaries.len())].theta;
                                let side = draw.side();
                                (at + side * draw.log_uniform(eps.0, eps.1)).cos()
                            })
                            .collect();
                        (
                            draw.features_at(&w, &labels, &cos, (0.5, 2.0)),
                            json!({"target_theta": format!("kπ/m ± log-uniform[{:e}, {:e}]", eps.0, eps.1), "feature_norms": "log-uniform[0.5, 2]"}),
                        )
                    }
                    Regime::TinyNorm | Regime::HugeNorm => {
                        let r = match (regime, dtype) {
                            (Regime::TinyNorm, Dtype::Float32) => (1e-15, 1e-12),
                            (Regime::TinyNorm, Dtype::Float64) => (1e-100, 1e-90),
                            (_, Dtype::Float32) => (1e3, 1e5),
                            _ => (1e4, 1e6),
                        };
                        let cos: Vec<f64> = (0..n).map(|_| draw.uniform(-1.0, 1.0)).collect();
                        (
                            draw.features_at(&w, &labels, &cos, r),
                            json!({"target_cos": "uniform[−1, 1]", "feature_norms": format!("log-uniform[{:e}, {:e}]", r.0, r.1)}),
                        )
                    }
                    _ => (
                        draw.normal_rows(n, d, 1.0),
                        json!({"features": "normal(0, 1)"}),
                    ),
                };
                let mut desc = desc;
                desc["weights"] = json!("normal(0, 1)");
                (
                    params(json!({"margin": m, "lambda": lambda})),
                    json!({"features": rows_json(&x), "weights": rows_json(&w), "labels": labels}),
                    desc,
                )
            });
        }
    }
}
