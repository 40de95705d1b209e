//! `subcenter_arcface`'s corpus cases (SPEC §4, §5): random batches, a target sub-center
//! near a tie with another sub-center of its class (the maximum switching sides), K = 1
//! (plain arcface), and the `thmm` switch on the selected cosines.

use crate::corpus::generate::{push, rows_json, Generated, Regime};
use crate::spec::{Dtype, LossId};
use serde_json::{json, Value};

/// Every regime of the max over sub-centers and of arcface's rule on it.
pub(crate) fn cases(dtype: Dtype, out: &mut Vec<Generated>) {
    let variants = [
        (
            "subcenter_arcface",
            json!({"scale": 64, "margin": 0.5, "subcenters": 3}),
        ),
        (
            "subcenter_arcface-thmm-k2",
            json!({"scale": 32, "margin": 0.5, "subcenters": 2, "boundary": "thmm"}),
        ),
        (
            "subcenter_arcface-k1",
            json!({"scale": 64, "margin": 0.5, "subcenters": 1}),
        ),
    ];
    for (name, params) in variants {
        let Value::Object(params) = params else {
            unreachable!("params are objects")
        };
        let k = params["subcenters"].as_u64().unwrap_or(1) as usize;
        let mut regimes = vec![Regime::Random, Regime::Dominant];
        if k > 1 {
            regimes.push(Regime::NearTie);
        }
        if params.get("boundary").is_some() {
            regimes.push(Regime::ThmmSwitch);
        }
        for regime in regimes {
            push(
                out,
                dtype,
                name,
                LossId::SubcenterArcFace,
                regime,
                2,
                &[],
                |draw, _| {
                    let (n, c, d) = (4, 5, 6);
                    let w = draw.normal_rows(c * k, d, 1.0);
                    // distinct labels, so that each target class's sub-centers serve one row
                    let first = draw.index(c);
                    let labels: Vec<usize> = (0..n).map(|i| (first + i) % c).collect();
                    // each target placed against its class's first sub-center
                    let targets: Vec<usize> = labels.iter().map(|&y| y * k).collect();
                    let (near, far) = if dtype == Dtype::Float32 {
                        (1e-5, 1e-3)
                    } else {
                        (1e-11, 1e-4)
                    };
                    let (angles, what): (Vec<f64>, String) = match regime {
                        Regime::Dominant => (
                            (0..n).map(|_| draw.uniform(0.95, 0.999)).collect(),
                            "uniform[0.95, 0.999]".into(),
                        ),
                        Regime::ThmmSwitch => (
                            (0..n)
                                .map(|_| {
                                    (std::f64::consts::PI - 0.5
                                        + draw.side() * draw.log_uniform(near, far))
                                    .cos()
                                })
                                .collect(),
                            format!("cos(π − m ± log-uniform[{near:e}, {far:e}])"),
                        ),
                        _ => (
                            (0..n).map(|_| draw.uniform(-0.5, 0.9)).collect(),
                            "uniform[−0.5, 0.9]".into(),
                        ),
                    };
                    let pairs: Vec<(f64, f64)> = angles
                        .iter()
                        .map(|&c| (c, (1.0 - c * c).max(0.0).sqrt()))
                        .collect();
                    let x = draw.features_at_angles(&w, &targets, &pairs, (0.5, 2.0));
                    let mut w = w;
                    // the target class's other sub-centers behind the placed one (w_0 − t·x, t > 0,
                    // turns away from x), so that the placed cosine is the class's maximum and the
                    // regime is the class cosine's; in `edge:near-tie` the pair below is the maximum
                    if regime != Regime::Random {
                        let behind = if regime == Regime::NearTie { 2 } else { 1 };
                        for (i, &y) in labels.iter().enumerate() {
                            let w0 = w[y * k].clone();
                            let norm = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>().sqrt();
                            let ratio = norm(&w0) / norm(&x[i]);
                            for q in behind..k {
                                let t = draw.uniform(0.5, 2.0) * ratio;
                                w[y * k + q] = w0
                                    .iter()
                                    .zip(&x[i])
                                    .map(|(a, b)| dtype.round(a - t * b))
                                    .collect();
                            }
                        }
                    }
                    if regime == Regime::NearTie {
                        // the second sub-center of each target's class: the first, turned by a
                        // tiny angle, so the two cosines to the feature nearly tie
                        for (i, &y) in labels.iter().enumerate() {
                            let first = w[y * k].clone();
                            let tilt = draw.side() * draw.log_uniform(near, far);
                            let other: Vec<f64> = first
                                .iter()
                                .zip(&x[i])
                                .map(|(a, b)| dtype.round(a + tilt * b))
                                .collect();
                            w[y * k + 1] = other;
                        }
                    }
                    let mut described = json!({"weights": "normal(0, 1)", "target_cos": what, "feature_norms": "uniform[0.5, 2]"});
                    if regime == Regime::NearTie {
                        described["near_tie"] = json!(format!(
                        "sub-center 1 of each target's class = sub-center 0 + t·x_i, |t| log-uniform[{near:e}, {far:e}]"
                    ));
                    }
                    (
                        params.clone(),
                        json!({"features": rows_json(&x), "weights": rows_json(&w), "labels": labels}),
                        described,
                    )
                },
            );
        }
    }
}

/// None yet: the special-angle construction of `crate::corpus::exact_zero` is for one
/// weight per class.
pub(crate) fn exact_zero_cases(_: Dtype) -> Vec<Generated> {
    Vec::new()
}
