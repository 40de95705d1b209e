//! `lossref bound NAME [options]`: a theorem bound of SPEC §2, certified to any number of
//! digits, one value, a sweep over the number of classes, or a plot.

use crate::bounds::evidence::evidence;
use crate::bounds::plot::svg;
use crate::bounds::{
    bound_json, log_spaced, parse_classes, parse_range, Bound, BoundId, ExactNumber,
};
use crate::error::{Error, ErrorKind, Result};
use crate::mp::certify::{CertifiedAnswer, Goal, Tier, DECIMAL_DIGITS, MAX_DIGITS};
use serde_json::{json, Map, Value};

/// The sweep a plot draws when no `--table` range is given: 2 to 10^5 classes, which holds
/// every paper's point.
pub const DEFAULT_PLOT_RANGE: (u64, u64) = (2, 100_000);

/// The least number of digits `--digits` accepts (SPEC §3 promises at least 34).
pub const MIN_DIGITS: usize = 34;

/// The command line of `lossref bound`, as typed. Every number is a string parsed here, so
/// that a bad one is a clean error naming the option, with exit status 1.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct Request {
    /// normface, normface-ceiling, cosface-scale or adacos-scale.
    pub name: String,
    /// The number of classes, n or C (an integer ≥ 2).
    #[arg(long, allow_hyphen_values = true)]
    pub classes: Option<String>,
    /// normface: the scale s = ℓ² ≥ 0 (ℓ the norm of every feature and weight).
    #[arg(long, allow_hyphen_values = true)]
    pub scale: Option<String>,
    /// cosface-scale: the target posterior P, 0 < P < 1.
    #[arg(long, allow_hyphen_values = true)]
    pub posterior: Option<String>,
    /// Significant digits of every value (34 to 100000; 36 by default).
    #[arg(long, allow_hyphen_values = true)]
    pub digits: Option<String>,
    /// Sweep the number of classes over FROM..TO (log-spaced) and print a table.
    #[arg(long, value_name = "FROM..TO")]
    pub table: Option<String>,
    /// Rows of the --table sweep (13 by default).
    #[arg(long, allow_hyphen_values = true)]
    pub points: Option<String>,
    /// Draw the bound against the number of classes (the --table range, or 2..100000) into
    /// an SVG file, with the papers' points marked.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<String>,
    /// Print the --table sweep as JSON.
    #[arg(long)]
    pub json: bool,
    /// Check the theorem on the spot with the reference normface loss (up to 64 classes):
    /// where the bound is tight and, for T1, a certified descent that tries to cross it.
    #[arg(long)]
    pub evidence: bool,
    /// The dimension D of T1's evidence (n − 1 by default).
    #[arg(long, allow_hyphen_values = true)]
    pub dim: Option<String>,
}

fn parse_count(place: &str, text: &str, least: usize, most: usize) -> Result<usize> {
    let n: usize = text
        .trim()
        .parse()
        .map_err(|_| Error::invalid(place, format!("expected a whole number, got `{text}`")))?;
    if !(least..=most).contains(&n) {
        return Err(Error::invalid(
            place,
            format!("must be between {least} and {most}, got {n}"),
        ));
    }
    Ok(n)
}

/// Runs `lossref bound` and returns what it prints.
///
/// # Errors
/// An unknown bound, an invalid or missing option (naming it), a value that cannot be
/// certified, or a plot file that cannot be written.
pub fn run(req: &Request) -> Result<String> {
    let id = BoundId::from_name(&req.name).ok_or_else(|| {
        let known: Vec<&str> = BoundId::ALL.iter().map(|b| b.as_str()).collect();
        Error::invalid(
            "bound",
            format!(
                "unknown bound `{}`; lossref bound knows {}",
                req.name,
                known.join(", ")
            ),
        )
    })?;
    let digits = match &req.digits {
        Some(t) => parse_count("--digits", t, MIN_DIGITS, MAX_DIGITS)?,
        None => DECIMAL_DIGITS,
    };
    let goal = Goal::digits(digits);
    let scale = req
        .scale
        .as_deref()
        .map(|t| ExactNumber::parse("--scale", t))
        .transpose()?;
    let posterior = req
        .posterior
        .as_deref()
        .map(|t| ExactNumber::parse("--posterior", t))
        .transpose()?;
    let range = req.table.as_deref().map(parse_range).transpose()?;
    let points = match &req.points {
        Some(t) => {
            if range.is_none() {
                return Err(Error::invalid(
                    "--points",
                    "is the number of rows of --table FROM..TO; give --table too",
                ));
            }
            parse_count("--points", t, 2, 10_000)?
        }
        None => 13,
    };
    let classes =
        match (&req.classes, range) {
            (Some(_), Some(_)) => return Err(Error::invalid(
                "--classes",
                "--table FROM..TO sweeps the number of classes; give one of --classes and --table",
            )),
            (Some(t), None) => parse_classes("--classes", t)?,
            (None, Some((from, _))) => from,
            (None, None) if req.plot.is_some() => DEFAULT_PLOT_RANGE.0,
            (None, None) => {
                return Err(Error::invalid(
                    "--classes",
                    format!(
                    "`{id}` needs the number of classes: --classes N (or a sweep, --table FROM..TO)"
                ),
                ))
            }
        };
    let bound = Bound::new(id, classes, scale, posterior)?;
    if req.evidence && range.is_some() {
        return Err(Error::invalid(
            "--evidence",
            "checks one bound at one number of classes; give --classes, not --table",
        ));
    }
    let dim = match &req.dim {
        Some(t) if req.evidence && id == BoundId::NormFace => {
            Some(parse_count("--dim", t, 1, 100_000)?)
        }
        Some(_) => {
            return Err(Error::invalid(
                "--dim",
                "is the dimension of `normface --evidence`; give --evidence too",
            ))
        }
        None => None,
    };
    if let Some(path) = &req.plot {
        let (from, to) = range.unwrap_or(DEFAULT_PLOT_RANGE);
        let text = svg(&bound, from, to)?;
        std::fs::write(path, text).map_err(|e| {
            Error::new(
                ErrorKind::Io,
                path.as_str(),
                format!("cannot write the plot: {e}"),
            )
        })?;
    }
    match range {
        Some((from, to)) => {
            let ns = log_spaced(from, to, points);
            let rows: Vec<(u64, CertifiedAnswer)> = ns
                .iter()
                .map(|&n| Ok((n, bound.with_classes(n).certified(goal)?)))
                .collect::<Result<_>>()?;
            Ok(if req.json {
                let v = table_json(&bound, (from, to), &rows, goal);
                serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string())
            } else {
                table_text(&bound, &rows, goal)
            })
        }
        None if req.plot.is_some() && req.classes.is_none() => Ok(String::new()),
        None => {
            let answer = bound.certified(goal)?;
            let mut v = bound_json(&bound, &answer, goal);
            if req.evidence {
                v["evidence"] = evidence(&bound, dim, goal)?;
            }
            Ok(serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string()))
        }
    }
}

fn weakest(rows: &[(u64, CertifiedAnswer)]) -> (Tier, u32) {
    let tier = rows
        .iter()
        .map(|(_, a)| a.certificate.tier)
        .min()
        .unwrap_or(Tier::CorrectlyRounded);
    let bits = rows
        .iter()
        .map(|(_, a)| a.certificate.precision_bits)
        .max()
        .unwrap_or(0);
    (tier, bits)
}

fn fixed_inputs(bound: &Bound) -> Map<String, Value> {
    let mut inputs = match bound.inputs_json() {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    inputs.remove("classes");
    inputs
}

fn table_json(
    bound: &Bound,
    (from, to): (u64, u64),
    rows: &[(u64, CertifiedAnswer)],
    goal: crate::mp::certify::Goal,
) -> Value {
    let id = bound.id();
    let (tier, bits) = weakest(rows);
    let rows: Vec<Value> = rows
        .iter()
        .map(|(n, a)| {
            let mut row = Map::new();
            row.insert("classes".into(), json!(n));
            for (name, t) in &a.answer.outputs {
                row.insert((*name).into(), Value::String(t.values()[0].decimal.clone()));
            }
            Value::Object(row)
        })
        .collect();
    json!({
        "bound": id.as_str(),
        "theorem": id.theorem(),
        "formula": id.formula(),
        "inputs": Value::Object(fixed_inputs(bound)),
        "sweep": {"classes_from": from, "classes_to": to, "spacing": "log"},
        "rows": rows,
        "certificate": {"tier": tier.as_str(), "precision_bits": bits, "digits": goal.digits},
    })
}

fn table_text(bound: &Bound, rows: &[(u64, CertifiedAnswer)], goal: Goal) -> String {
    let id = bound.id();
    let (tier, bits) = weakest(rows);
    let fixed: Vec<String> = fixed_inputs(bound)
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    let mut out = format!(
        "# {} ({}): {}{}\n# {} significant digits, every value {} (precision up to {} bits)\n",
        id.as_str(),
        id.theorem(),
        id.formula(),
        if fixed.is_empty() {
            String::new()
        } else {
            format!(", {}", fixed.join(", "))
        },
        goal.digits,
        tier.as_str(),
        bits
    );
    let names: Vec<&str> = rows
        .first()
        .map(|(_, a)| a.answer.outputs.iter().map(|(n, _)| *n).collect())
        .unwrap_or_default();
    let n_width = rows
        .iter()
        .map(|(n, _)| n.to_string().len())
        .max()
        .unwrap_or(1)
        .max(1);
    let value_width = goal.digits + 8;
    let mut header = format!("{:>n_width$}", id.classes_symbol());
    for name in &names {
        header.push_str(&format!("  {name:<value_width$}"));
    }
    out.push_str(header.trim_end());
    out.push('\n');
    for (n, a) in rows {
        let mut line = format!("{n:>n_width$}");
        for (_, t) in &a.answer.outputs {
            line.push_str(&format!("  {:<value_width$}", t.values()[0].decimal));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.trim_end().to_string()
}
