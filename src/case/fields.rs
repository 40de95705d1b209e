//! The keys of one JSON object read one by one (`params`, or a case's top level): typed
//! parameters with their defaults and ranges, and leftovers reported by name.

use crate::error::{Error, Result};

use super::inputs::number;
use super::MAX_INTEGER_MARGIN;
use crate::spec::Reduction;
use serde_json::{Map, Value};

/// A short description of a JSON value's kind, for messages.
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.len() <= 40 => format!("the string {s:?}"),
        Value::String(_) => "a string".into(),
        Value::Array(a) => format!("an array of {} items", a.len()),
        Value::Object(_) => "an object".into(),
    }
}

/// The keys of one JSON object, read one by one so that leftovers can be reported.
pub(crate) struct Fields<'a> {
    map: &'a Map<String, Value>,
    path: &'static str,
    taken: Vec<&'static str>,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(value: &'a Value, path: &'static str) -> Result<Fields<'a>> {
        match value {
            Value::Object(map) => Ok(Fields {
                map,
                path,
                taken: Vec::new(),
            }),
            other => Err(Error::invalid(
                path,
                format!("expected a JSON object, got {}", describe(other)),
            )),
        }
    }

    pub(crate) fn place(&self, key: &str) -> String {
        if self.path == "case" {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub(crate) fn optional(&mut self, key: &'static str) -> Option<&'a Value> {
        self.taken.push(key);
        self.map.get(key)
    }

    /// The value of `key`, if given, without marking it read.
    pub(crate) fn peek(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key)
    }

    /// Whether `key` is given (without reading it).
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    pub(crate) fn required(&mut self, key: &'static str) -> Result<&'a Value> {
        self.optional(key).ok_or_else(|| {
            // a given key that is not one this object takes, near the missing one
            let given = self
                .map
                .keys()
                .map(String::as_str)
                .filter(|k| !self.taken.contains(k))
                .find(|k| crate::suggest::nearest(k, [key]).is_some());
            let reason = match given {
                Some(k) => format!("missing; `{k}` is given (did you mean `{key}`?)"),
                None => "missing".to_string(),
            };
            Error::invalid(self.place(key), reason)
        })
    }

    pub(crate) fn taken(&self) -> String {
        if self.taken.is_empty() {
            "none".into()
        } else {
            self.taken.join(", ")
        }
    }

    /// Rejects any key that was never read.
    pub(crate) fn finish(&self, allowed: &str) -> Result<()> {
        match self.map.keys().find(|k| !self.taken.contains(&k.as_str())) {
            Some(extra) => Err(Error::invalid(
                self.place(extra),
                format!(
                    "unknown key{}; {allowed}",
                    crate::suggest::did_you_mean(extra, self.taken.iter().copied())
                ),
            )),
            None => Ok(()),
        }
    }

    /// A finite real parameter > 0.
    pub(crate) fn positive(&mut self, key: &'static str, default: f64) -> Result<f64> {
        let Some(v) = self.optional(key) else {
            return Ok(default);
        };
        let place = self.place(key);
        let x = number(v, &place)?;
        if x > 0.0 {
            Ok(x)
        } else {
            Err(Error::invalid(
                place,
                format!("must be a number > 0, got {x}"),
            ))
        }
    }

    /// A real parameter in [0, 1].
    pub(crate) fn unit_interval(&mut self, key: &'static str, default: f64) -> Result<f64> {
        let Some(v) = self.optional(key) else {
            return Ok(default);
        };
        let place = self.place(key);
        let x = number(v, &place)?;
        if (0.0..=1.0).contains(&x) {
            Ok(x)
        } else {
            Err(Error::invalid(place, format!("must be in [0, 1], got {x}")))
        }
    }

    /// A finite real parameter ≥ 0.
    pub(crate) fn non_negative(&mut self, key: &'static str, default: f64) -> Result<f64> {
        let Some(v) = self.optional(key) else {
            return Ok(default);
        };
        let place = self.place(key);
        let x = number(v, &place)?;
        if x >= 0.0 {
            Ok(x)
        } else {
            Err(Error::invalid(
                place,
                format!("must be a number ≥ 0, got {x}"),
            ))
        }
    }

    /// The integer margin m of L-Softmax / A-Softmax: 1 ≤ m ≤ [`MAX_INTEGER_MARGIN`].
    pub(crate) fn integer_margin(&mut self, default: u32) -> Result<u32> {
        let Some(v) = self.optional("margin") else {
            return Ok(default);
        };
        let place = self.place("margin");
        let x = number(v, &place)?;
        if x.fract() == 0.0 && (1.0..=f64::from(MAX_INTEGER_MARGIN)).contains(&x) {
            Ok(x as u32)
        } else {
            Err(Error::invalid(
                place,
                format!("must be an integer from 1 to {MAX_INTEGER_MARGIN}, got {x}"),
            ))
        }
    }

    /// An integer parameter or `null`; `None` when omitted or null.
    pub(crate) fn optional_integer(&mut self, key: &'static str) -> Result<Option<i64>> {
        let place = self.place(key);
        match self.optional(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| {
                Error::invalid(place, format!("must be an integer or null, got {n}"))
            }),
            Some(v) => Err(Error::invalid(
                place,
                format!("must be an integer or null, got {}", describe(v)),
            )),
        }
    }

    /// A finite real parameter (any sign).
    pub(crate) fn finite(&mut self, key: &'static str, default: f64) -> Result<f64> {
        match self.optional(key) {
            Some(v) => number(v, &self.place(key)),
            None => Ok(default),
        }
    }

    /// A string parameter from a fixed set; `None` when omitted.
    pub(crate) fn choice<T>(
        &mut self,
        key: &'static str,
        parse: fn(&str) -> Option<T>,
        allowed: &str,
    ) -> Result<Option<T>> {
        let Some(v) = self.optional(key) else {
            return Ok(None);
        };
        v.as_str().and_then(parse).map(Some).ok_or_else(|| {
            Error::invalid(
                self.place(key),
                format!("must be {allowed}, got {}", describe(v)),
            )
        })
    }

    /// `reduction`: `mean` (default) or `sum`.
    pub(crate) fn reduction(&mut self) -> Result<Reduction> {
        Ok(self
            .choice("reduction", Reduction::from_name, "\"mean\" or \"sum\"")?
            .unwrap_or_default())
    }
}
