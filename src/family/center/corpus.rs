//! `center`'s corpus cases (SPEC §4): the regimes its implementations meet, and the
//! exact-zero construction.

use crate::corpus::generate::{exact_zero_case as generated, exact_zero_id as id};
use crate::corpus::generate::{params, push, rows_json, Generated, Regime};
use crate::spec::{Dtype, LossId};
use serde_json::json;

/// The regimes of center loss: random, tiny and huge norms.
pub(crate) fn cases(dtype: Dtype, out: &mut Vec<Generated>) {
    for (regime, sd) in [
        (Regime::Random, 1.0),
        (Regime::TinyNorm, 1e-12),
        (Regime::HugeNorm, 1e12),
    ] {
        push(
            out,
            dtype,
            "center",
            LossId::Center,
            regime,
            2,
            &[],
            |draw, _| {
                let (n, c, d) = (5, 3, 4);
                let x = draw.normal_rows(n, d, sd);
                let centers = draw.normal_rows(c, d, sd);
                let labels = draw.labels(n, c);
                (
                    params(json!({"alpha": 0.5})),
                    json!({"features": rows_json(&x), "centers": rows_json(&centers), "labels": labels}),
                    json!({"features": format!("normal(0, {sd:e})"), "centers": format!("normal(0, {sd:e})")}),
                )
            },
        );
    }
}

/// Two samples symmetric about their center, one at its center: exact zeros in every
/// gradient.
pub(crate) fn exact_zero_cases(dtype: Dtype) -> Vec<Generated> {
    let mut out = Vec::new();
    out.push(generated(
        id("center", dtype, 0),
        dtype,
        LossId::Center,
        json!({"alpha": 0.5}),
        json!({"features": [[1.5, -2.0, 0.25], [0.5, 0.0, -0.25], [3.0, 3.0, 3.0]],
               "centers": [[1.0, -1.0, 0.0], [3.0, 3.0, 3.0]],
               "labels": [0, 0, 1]}),
        json!({"construction": "two samples symmetric about their center, one at its center"}),
    ));
    out
}
