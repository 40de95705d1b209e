//! `lossref bound … --plot FILE.svg`: a bound against the number of classes, with the
//! papers' points marked.
//!
//! The curve is the certified binary64 value of the bound at up to [`CURVE_POINTS`]
//! log-spaced integers (the marked class counts included, so the drawn line passes through
//! every on-curve mark). The SVG comes from `plotters`' pure-Rust SVG backend: text is
//! written as `<text>` elements for the viewer to render, so no system font is needed.
//!
//! The marks are the papers' own numbers:
//! * `normface`: n = 10575 (CASIA-WebFace, NormFace's training set), and, at ℓ = 1 (s = 1),
//!   the training losses 9.27 and 8.50 NormFace reports against its bound of 8.2663;
//! * `normface-ceiling`: n = 10 (0.4509) and n = 1000 (0.007342);
//! * `cosface-scale`: C = 10575 (CASIA-WebFace, CosFace's small training set) at the given P;
//! * `adacos-scale`: C = 10575.

use crate::bounds::{Bound, BoundId};
use crate::error::{Error, ErrorKind, Result};
use crate::mp::certify::Goal;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

/// The most points on the drawn curve.
pub const CURVE_POINTS: usize = 240;

/// The number of classes of CASIA-WebFace, on which NormFace's bound figure and CosFace's
/// small-data experiments are stated.
pub const CASIA_WEBFACE_CLASSES: u64 = 10575;

/// One marked point.
#[derive(Clone, Debug, PartialEq)]
pub struct Mark {
    /// n or C.
    pub classes: u64,
    /// The value drawn.
    pub value: f64,
    /// The label written beside it.
    pub label: String,
    /// True when the point is the bound itself (it lies on the curve); false for a reported
    /// number compared against it (NormFace's training losses).
    pub on_curve: bool,
}

fn value_at(bound: &Bound, n: u64) -> Result<f64> {
    let answer = bound.with_classes(n).certified(Goal::EVAL)?;
    let v = answer.answer.output("value").map(|t| t.values()[0].f64);
    v.ok_or_else(|| Error::invalid("value", "the bound has no value"))
}

/// The papers' points for `bound`, between `from` and `to` classes.
///
/// # Errors
/// A bound value that cannot be certified.
pub fn paper_marks(bound: &Bound, from: u64, to: u64) -> Result<Vec<Mark>> {
    let on = |n: u64, label: String| -> Result<Mark> {
        Ok(Mark {
            classes: n,
            value: value_at(bound, n)?,
            label,
            on_curve: true,
        })
    };
    let casia = CASIA_WEBFACE_CLASSES;
    let mut marks = Vec::new();
    match bound {
        Bound::NormFace { scale, .. } => {
            let v = value_at(bound, casia)?;
            marks.push(on(
                casia,
                format!("NormFace, n = {casia}, s = {}: {v:.4}", scale.text),
            )?);
            if scale.value == 1 {
                for reported in [9.27, 8.50] {
                    marks.push(Mark {
                        classes: casia,
                        value: reported,
                        label: format!("NormFace training loss {reported:.2}"),
                        on_curve: false,
                    });
                }
            }
        }
        Bound::NormFaceCeiling { .. } => {
            marks.push(on(10, format!("n = 10: {:.4}", value_at(bound, 10)?))?);
            marks.push(on(
                1000,
                format!("n = 1000: {:.6}", value_at(bound, 1000)?),
            )?);
        }
        Bound::CosFaceScale { posterior, .. } => {
            let v = value_at(bound, casia)?;
            marks.push(on(
                casia,
                format!("CosFace, C = {casia}, P = {}: s ≥ {v:.4}", posterior.text),
            )?);
        }
        Bound::AdaCosScale { .. } => {
            let v = value_at(bound, casia)?;
            marks.push(on(casia, format!("AdaCos, C = {casia}: s = {v:.4}"))?);
        }
    }
    marks.retain(|m| (from..=to).contains(&m.classes));
    Ok(marks)
}

fn plot_error(e: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::Io,
        "--plot",
        format!("cannot draw the plot: {e}"),
    )
}

/// The SVG text of `bound` against n (or C) from `from` to `to` (log-scaled axis), with
/// the papers' points marked (see the module docs).
///
/// # Errors
/// A bound value that cannot be certified, or a drawing failure.
pub fn svg(bound: &Bound, from: u64, to: u64) -> Result<String> {
    let (from, to) = (from.min(to).max(2), from.max(to).max(3));
    let marks = paper_marks(bound, from, to)?;
    let mut ns = crate::bounds::log_spaced(from, to, CURVE_POINTS);
    ns.extend(marks.iter().filter(|m| m.on_curve).map(|m| m.classes));
    ns.sort_unstable();
    ns.dedup();
    let curve: Vec<(f64, f64)> = ns
        .iter()
        .map(|&n| Ok((n as f64, value_at(bound, n)?)))
        .collect::<Result<_>>()?;
    let values = curve
        .iter()
        .map(|p| p.1)
        .chain(marks.iter().map(|m| m.value));
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
        (l.min(v), h.max(v))
    });
    let id = bound.id();
    let x_range = (from as f64..to as f64).log_scale();
    let mut text = String::new();
    if id == BoundId::NormFaceCeiling {
        let y = (lo / 1.5..hi * 1.5).log_scale();
        draw(&mut text, bound, x_range, y, &curve, &marks)?;
    } else {
        let pad = 0.08 * (hi - lo).max(1e-9);
        draw(
            &mut text,
            bound,
            x_range,
            (lo - pad).min(0.0)..hi + pad,
            &curve,
            &marks,
        )?;
    }
    Ok(text)
}

fn draw<X, Y>(
    out: &mut String,
    bound: &Bound,
    x: X,
    y: Y,
    curve: &[(f64, f64)],
    marks: &[Mark],
) -> Result<()>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let id = bound.id();
    let caption = format!("{} ({}): {}", id.as_str(), id.theorem(), id.formula());
    let y_desc = match bound {
        Bound::NormFace { scale, .. } => format!("lower bound on the loss (s = {})", scale.text),
        Bound::NormFaceCeiling { .. } => "ceiling on the target probability".to_string(),
        Bound::CosFaceScale { posterior, .. } => {
            format!("least scale s for posterior P = {}", posterior.text)
        }
        Bound::AdaCosScale { .. } => "AdaCos scale s".to_string(),
    };
    {
        let root = SVGBackend::with_string(out, (960, 600)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 20))
            .margin(24)
            .x_label_area_size(48)
            .y_label_area_size(80)
            .build_cartesian_2d(x, y)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc(format!("{} (classes)", id.classes_symbol()))
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_desc(y_desc)
            .draw()
            .map_err(plot_error)?;
        chart
            .draw_series(LineSeries::new(curve.iter().copied(), BLUE.stroke_width(2)))
            .map_err(plot_error)?;
        // Marks, then their labels in pixel space: beside the point, on the side with
        // more room, pushed apart vertically so that marks at one n stay legible.
        let mut labels = Vec::with_capacity(marks.len());
        for m in marks {
            let color = if m.on_curve { RED } else { BLACK };
            let at = (m.classes as f64, m.value);
            chart
                .draw_series(std::iter::once(Circle::new(at, 5, color.filled())))
                .map_err(plot_error)?;
            labels.push((chart.backend_coord(&at), m.label.clone(), color));
        }
        labels.sort_by_key(|((_, y), _, _)| *y);
        let mut last_y = i32::MIN / 2;
        let width = root.dim_in_pixel().0 as i32;
        for ((px, py), label, color) in labels {
            let y = (py - 8).max(last_y + 18);
            last_y = y;
            let text_width = 8 * label.chars().count() as i32;
            let x = if px + 14 + text_width < width {
                px + 14
            } else {
                px - 14 - text_width
            };
            root.draw(&Text::new(
                label,
                (x, y),
                ("sans-serif", 14).into_font().color(&color),
            ))
            .map_err(plot_error)?;
        }
        root.present().map_err(plot_error)?;
    }
    Ok(())
}
