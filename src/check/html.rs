//! `lossref check --html OUT`: one self-contained page (no scripts, no external files) with
//! the verdict counts, the summary table, the diagnoses, the failures and, per loss, an SVG
//! scatter of every value's error (in units of the tolerance) against its condition number,
//! so that "unstable here" (high error, low condition number) and "ill-conditioned here"
//! (high condition number) are told apart at a glance.

use super::{escape_markup, CheckReport};
use crate::spec::Dtype;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::fmt::Write;

/// The error floor drawn for exact values (0 error has no place on a log axis).
const FLOOR: f64 = 1e-6;

fn scatter(loss: &str, points: &[(f64, f64, Dtype)]) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 360)).into_drawing_area();
        if root.fill(&WHITE).is_err() {
            return String::new();
        }
        let kmax = points
            .iter()
            .map(|p| p.1)
            .fold(10.0f64, f64::max)
            .min(1e300)
            * 2.0;
        let emax = points
            .iter()
            .map(|p| p.0)
            .fold(10.0f64, f64::max)
            .min(1e300)
            * 2.0;
        let chart = ChartBuilder::on(&root)
            .caption(
                format!("{loss}: error vs condition number"),
                ("sans-serif", 16),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((1f64..kmax).log_scale(), (FLOOR..emax).log_scale());
        let Ok(mut chart) = chart else {
            return String::new();
        };
        let _ = chart
            .configure_mesh()
            .x_desc("condition number")
            .y_desc("error / tolerance")
            .x_label_formatter(&|x| format!("{x:.0e}"))
            .y_label_formatter(&|y| format!("{y:.0e}"))
            .draw();
        // the tolerance
        let _ = chart.draw_series(LineSeries::new(
            [(1.0, 1.0), (kmax, 1.0)],
            RED.stroke_width(1),
        ));
        for (dtype, color) in [(Dtype::Float32, BLUE), (Dtype::Float64, GREEN)] {
            let _ = chart.draw_series(points.iter().filter(|p| p.2 == dtype).map(|p| {
                Circle::new(
                    (p.1.clamp(1.0, kmax), p.0.clamp(FLOOR, emax)),
                    2,
                    color.filled(),
                )
            }));
        }
        let _ = root.present();
    }
    svg
}

/// The page.
pub fn html(report: &CheckReport) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>lossref check: {}</title>\n<style>body{{font-family:sans-serif;margin:2em;max-width:80em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}td:first-child,th:first-child{{text-align:left}}.fail{{color:#b00}}.pass{{color:#070}}</style></head><body>\n",
        escape_markup(&report.implementation)
    );
    let verdict = if report.passed() {
        "<span class=\"pass\">PASSED</span>"
    } else {
        "<span class=\"fail\">FAILED</span>"
    };
    let counts: Vec<String> = report
        .counts()
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect();
    let _ = write!(
        out,
        "<h1>lossref check: {}</h1>\n<p id=\"verdict\">{verdict} against corpus {} — cases: {}</p>\n",
        escape_markup(&report.implementation),
        escape_markup(&report.corpus_version),
        escape_markup(&counts.join(", "))
    );
    out.push_str("<h2>Summary</h2>\n<table id=\"summary\"><tr><th>function</th><th>dtype</th><th>values</th><th>max (tolerance units)</th><th>median</th><th>p99</th><th>max ulps</th><th>failures</th><th>worst</th></tr>\n");
    for r in report.table() {
        let _ = writeln!(
            out,
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{:.3e}</td><td>{:.3e}</td><td>{:.3e}</td><td>{:.3e}</td><td>{}</td><td>{}</td></tr>",
            if r.failures > 0 { "fail" } else { "pass" },
            escape_markup(&r.function),
            r.dtype.as_str(),
            r.values,
            r.max,
            r.median,
            r.p99,
            r.max_ulps,
            r.failures,
            escape_markup(&r.worst_case)
        );
    }
    out.push_str("</table>\n");
    if !report.diagnoses.is_empty() {
        out.push_str("<h2>Diagnoses</h2>\n<ul id=\"diagnoses\">\n");
        for d in &report.diagnoses {
            let _ = writeln!(
                out,
                "<li><b>{}</b>: {}</li>",
                escape_markup(&d.loss),
                escape_markup(&d.text())
            );
        }
        out.push_str("</ul>\n");
    }
    let failing: Vec<_> = report
        .cases
        .iter()
        .filter(|c| c.verdict.is_failure())
        .collect();
    if !failing.is_empty() {
        out.push_str("<h2>Failures</h2>\n<ul id=\"failures\">\n");
        for c in failing {
            for g in c.groups.iter().filter(|g| g.verdict.is_failure()) {
                let line = format!("{} {}: {}", c.id, g.group, g.summary());
                let _ = writeln!(out, "<li>{}</li>", escape_markup(&line));
            }
        }
        out.push_str("</ul>\n");
    }
    out.push_str("<h2>Error against condition number, per loss</h2>\n<p>Blue: float32, green: float64; the red line is the tolerance. High and to the left: unstable implementation; to the right: ill-conditioned cases.</p>\n");
    let mut by_loss: BTreeMap<&str, Vec<(f64, f64, Dtype)>> = BTreeMap::new();
    for c in &report.cases {
        for g in &c.groups {
            by_loss
                .entry(&c.loss)
                .or_default()
                .extend(g.points.iter().map(|p| (p.0, p.1, c.dtype)));
        }
    }
    for (loss, points) in by_loss {
        let _ = writeln!(
            out,
            "<div class=\"scatter\" id=\"scatter-{}\">{}</div>",
            escape_markup(loss),
            scatter(loss, &points)
        );
    }
    out.push_str("</body></html>\n");
    out
}
