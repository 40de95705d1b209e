//! `distill`'s corpus cases (SPEC §4): the temperature and α regimes its implementations
//! meet, and the exact-zero construction.

use crate::corpus::generate::{exact_zero_case as generated, exact_zero_id as id};
use crate::corpus::generate::{params, push, rows_json, unrepresentable_param, Generated, Regime};
use crate::spec::{Dtype, LossId};
use serde_json::json;

/// Every temperature and α regime, both soft terms.
pub(crate) fn cases(dtype: Dtype, out: &mut Vec<Generated>) {
    for (regime, t, alpha) in [
        (Regime::Random, 4.0, 0.875),
        (Regime::SmallTemperature, 0.125, 0.5),
        (Regime::LargeTemperature, 64.0, 0.875),
        (Regime::AlphaZero, 4.0, 0.0),
        (Regime::AlphaOne, 4.0, 1.0),
        (
            Regime::ParamPrecision,
            unrepresentable_param(dtype, 2.3),
            unrepresentable_param(dtype, 0.7),
        ),
    ] {
        for soft in ["kl", "ce"] {
            push(
                out,
                dtype,
                &format!("distill-{soft}"),
                LossId::Distill,
                regime,
                2,
                &[],
                |draw, _| {
                    let (n, c) = (3, 6);
                    let labels = draw.labels(n, c);
                    let s = draw.normal_rows(n, c, 3.0);
                    let t_logits = draw.normal_rows(n, c, 3.0);
                    (
                        params(json!({"temperature": t, "alpha": alpha, "soft": soft})),
                        json!({"student_logits": rows_json(&s), "teacher_logits": rows_json(&t_logits), "labels": labels}),
                        json!({"student_logits": "normal(0, 3)", "teacher_logits": "normal(0, 3)"}),
                    )
                },
            );
        }
    }
}

/// A teacher that is a shifted permutation of the student keeping some classes in place:
/// q_s − q_t vanishes there.
pub(crate) fn exact_zero_cases(dtype: Dtype) -> Vec<Generated> {
    let mut out = Vec::new();
    for (k, (temperature, soft, alpha)) in [
        (1.0, "kl", 1.0),
        (4.0, "kl", 1.0),
        (4.0, "ce", 1.0),
        (0.5, "kl", 1.0),
    ]
    .into_iter()
    .enumerate()
    {
        out.push(generated(
            id("distill", dtype, k),
            dtype,
            LossId::Distill,
            json!({"temperature": temperature, "soft": soft, "alpha": alpha}),
            json!({"student_logits": [[0.0, 1.0, 2.0, 1.0], [2.0, -1.0, 0.5, 0.5]],
                   "teacher_logits": [[3.0, 5.0, 4.0, 4.0], [0.5, -1.0, 2.0, 0.5]],
                   "labels": [0, 2]}),
            json!({"construction": "teacher = a permutation of the student (+3 in row 0) fixing classes 0 and 3 (row 0) and 1 and 3 (row 1)"}),
        ));
    }
    out
}
