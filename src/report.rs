//! The JSON that `lossref eval` prints (SPEC §3): `loss`, `outputs`, `gradients`,
//! `certificate`, every value a decimal string of at least 34 significant digits.

use crate::answer::{Answer, Tensor};
use crate::mp::certify::{CertifiedAnswer, Rounded};
use crate::npz::{Array, Data};
use crate::spec::{Dtype, LossId};
use serde_json::{json, Map, Value};

fn tensor_json<V>(t: &Tensor<V>, value: &impl Fn(&V) -> Value) -> Value {
    match t {
        Tensor::Scalar(v) => value(v),
        Tensor::Matrix(m) => Value::Array(
            m.iter_rows()
                .map(|r| Value::Array(r.iter().map(value).collect()))
                .collect(),
        ),
    }
}

fn section<V>(items: &[(&'static str, Tensor<V>)], value: &impl Fn(&V) -> Value) -> Value {
    let mut map = Map::new();
    for (name, t) in items {
        map.insert((*name).to_string(), tensor_json(t, value));
    }
    Value::Object(map)
}

/// `{"outputs": {…}, "gradients": {…}}` with every certified value mapped by `value`
/// (scalars stay scalars, matrices become nested arrays).
pub fn sections<V>(answer: &Answer<V>, value: &impl Fn(&V) -> Value) -> Value {
    json!({
        "outputs": section(&answer.outputs, value),
        "gradients": section(&answer.gradients, value),
    })
}

/// The SPEC §3 object for a certified answer. With `with_binary64`, a further key
/// `binary64` repeats every value as its binary64 rounding in hexadecimal floating point
/// (SPEC §3 allows added keys, never changed ones). The values must keep their decimal
/// strings (a value without one prints as `null`).
pub fn eval_json(loss: LossId, certified: &CertifiedAnswer<Rounded>, with_binary64: bool) -> Value {
    let Answer { outputs, gradients } = &certified.answer;
    let decimal = |c: &Rounded| c.decimal.clone().map_or(Value::Null, Value::String);
    let mut out = json!({
        "loss": loss.as_str(),
        "outputs": section(outputs, &decimal),
        "gradients": section(gradients, &decimal),
        "certificate": {
            "tier": certified.certificate.tier.as_str(),
            "precision_bits": certified.certificate.precision_bits,
        },
    });
    if with_binary64 {
        out["binary64"] = sections(&certified.answer, &|c: &Rounded| {
            Value::String(hex_f64(c.f64))
        });
    }
    out
}

/// A binary64 in C99 hexadecimal notation (`0x1.8p+1`, `-0x0.0000000000001p-1022`,
/// `0x0p+0`): exact, unlike any rounded decimal.
pub fn hex_f64(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    let sign = if x.is_sign_negative() { "-" } else { "" };
    if x.is_infinite() {
        return format!("{sign}inf");
    }
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1u64 << 52) - 1);
    if exp == 0 && frac == 0 {
        return format!("{sign}0x0p+0");
    }
    let (lead, e) = if exp == 0 {
        (0, -1022)
    } else {
        (1, exp - 1023)
    };
    let digits = format!("{frac:013x}");
    let digits = digits.trim_end_matches('0');
    if digits.is_empty() {
        format!("{sign}0x{lead}p{e:+}")
    } else {
        format!("{sign}0x{lead}.{digits}p{e:+}")
    }
}

/// A tensor's array shape: `[]` for a scalar, `[rows, cols]` for a matrix.
fn shape<V>(t: &Tensor<V>) -> Vec<usize> {
    match t {
        Tensor::Scalar(_) => vec![],
        Tensor::Matrix(m) => vec![m.rows(), m.cols()],
    }
}

/// The roundings of a certified answer to the 16-bit `dtype` (SPEC §6), as float32 arrays
/// (exact: every bfloat16 and float16 is a float32) named `<dtype>/outputs/NAME` and
/// `<dtype>/gradients/NAME`: what a corpus case of that dtype stores beside its binary64
/// and binary32 roundings.
pub fn half_arrays(answer: &CertifiedAnswer<Rounded>, dtype: Dtype) -> Vec<(String, Array)> {
    answer
        .answer
        .sections()
        .map(|(section, name, t)| {
            let values = t.values().iter().map(|c| c.half.of(dtype, c.f32)).collect();
            (
                format!("{}/{section}/{name}", dtype.as_str()),
                Array {
                    shape: shape(t),
                    data: Data::Float(values),
                    was_f32: true,
                },
            )
        })
        .collect()
}

/// The arrays of a certified answer as `lossref eval --output` writes them (SPEC §3):
/// `outputs/NAME` and `gradients/NAME` (binary64), `binary32/…` (binary32) and, with
/// `decimals`, `decimal/…` (the decimal strings, where the values kept them).
pub fn answer_arrays(answer: &CertifiedAnswer<Rounded>, decimals: bool) -> Vec<(String, Array)> {
    let mut out = Vec::new();
    for (section, name, t) in answer.answer.sections() {
        let values = t.values();
        out.push((
            format!("{section}/{name}"),
            Array {
                shape: shape(t),
                data: Data::Float(values.iter().map(|c| c.f64).collect()),
                was_f32: false,
            },
        ));
        out.push((
            format!("binary32/{section}/{name}"),
            Array {
                shape: shape(t),
                data: Data::Float(values.iter().map(|c| f64::from(c.f32)).collect()),
                was_f32: true,
            },
        ));
        let kept: Option<Vec<String>> = values.iter().map(|c| c.decimal.clone()).collect();
        if let (true, Some(text)) = (decimals, kept) {
            out.push((
                format!("decimal/{section}/{name}"),
                Array {
                    shape: shape(t),
                    data: Data::Text(text),
                    was_f32: false,
                },
            ));
        }
    }
    out
}
