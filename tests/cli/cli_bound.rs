//! `lossref bound`, end to end through the binary: the papers' numbers, digits on request,
//! sweeps, the plot, and clean errors (exit 1) for every invalid argument.

use serde_json::Value;
use std::process::{Command, Output};

fn lossref(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lossref"))
        .args(args)
        .output()
        .expect("the lossref binary runs")
}

fn bound(args: &[&str]) -> Value {
    let mut all = vec!["bound"];
    all.extend_from_slice(args);
    let out = lossref(&all);
    assert!(
        out.status.success(),
        "lossref {all:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

fn significant_digits(decimal: &str) -> usize {
    let mantissa = decimal.split(['e', 'E']).next().unwrap_or("");
    mantissa
        .chars()
        .filter(char::is_ascii_digit)
        .collect::<String>()
        .trim_start_matches('0')
        .len()
}

#[test]
fn bound_normface_reproduces_the_paper_figure() {
    let v = bound(&["normface", "--classes", "10575", "--scale", "1"]);
    let value = v["value"].as_str().unwrap();
    assert!(value.starts_with("8.2663"), "{value}");
    assert!(significant_digits(value) >= 34, "{value}");
    assert_eq!(v["theorem"], "T1");
    assert_eq!(
        v["inputs"],
        serde_json::json!({"classes": 10575, "scale": 1})
    );
    assert_eq!(v["certificate"]["tier"], "correctly_rounded");
    assert!(v["certificate"]["precision_bits"].as_u64().unwrap() >= 192);
    assert!(v["binary64"]["value"]
        .as_str()
        .unwrap()
        .starts_with("0x1.08"));
    // NormFace's reported training losses, 9.27 and 8.50, are above it.
    let x: f64 = value.parse().unwrap();
    assert!(x < 8.50 && 8.50 < 9.27);
}

#[test]
fn bound_normface_ceiling_gives_the_papers_0_4509_and_0_007342() {
    let ten = bound(&["normface-ceiling", "--classes", "10"]);
    assert!(
        ten["value"].as_str().unwrap().starts_with("0.4508"),
        "{}",
        ten["value"]
    ); // 0.45085…
    let v: f64 = ten["value"].as_str().unwrap().parse().unwrap();
    assert_eq!(format!("{v:.4}"), "0.4509");
    let thousand = bound(&["normface-ceiling", "--classes", "1000"]);
    assert!(
        thousand["value"].as_str().unwrap().starts_with("0.007342"),
        "{}",
        thousand["value"]
    );
    assert_eq!(thousand["theorem"], "T2");
}

#[test]
fn bound_cosface_scale_for_any_c_and_p() {
    for (c, p) in [
        ("2", "0.5001"),
        ("10", "0.9"),
        ("10575", "0.9"),
        ("85742", "0.99"),
        ("1000000", "0.999999999"),
    ] {
        let v = bound(&["cosface-scale", "--classes", c, "--posterior", p]);
        let value: f64 = v["value"].as_str().unwrap().parse().unwrap();
        let (cf, pf): (f64, f64) = (c.parse().unwrap(), p.parse().unwrap());
        let plain = (cf - 1.0) / cf * ((cf - 1.0) * pf / (1.0 - pf)).ln();
        assert!(
            (value - plain).abs() <= 1e-9 * plain.abs(),
            "C={c} P={p}: {value} vs {plain}"
        );
        assert!(significant_digits(v["value"].as_str().unwrap()) >= 34);
        assert!(v.get("note").is_none());
    }
    // P = 1/C exactly: s = 0, exactly, with a note.
    let v = bound(&["cosface-scale", "--classes", "4", "--posterior", "0.25"]);
    assert_eq!(v["value"], "0");
    assert!(v["note"].as_str().unwrap().contains("at most 1/C"));
    // P = 1/5 as a decimal is exact too (it is not a binary64).
    assert_eq!(
        bound(&["cosface-scale", "--classes", "5", "--posterior", "0.2"])["value"],
        "0"
    );
    let below = bound(&["cosface-scale", "--classes", "10", "--posterior", "0.05"]);
    assert!(below["value"].as_str().unwrap().starts_with('-'));
}

#[test]
fn bound_adacos_scale_prints_the_scale_and_the_posterior_t3_allows() {
    let v = bound(&["adacos-scale", "--classes", "10575"]);
    let s: f64 = v["value"].as_str().unwrap().parse().unwrap();
    assert!((s - std::f64::consts::SQRT_2 * 10574f64.ln()).abs() < 1e-13);
    let p: f64 = v["posterior"].as_str().unwrap().parse().unwrap();
    let plain = 1.0 / (1.0 + 10574.0 * (-10575.0 / 10574.0 * s).exp());
    assert!((p - plain).abs() < 1e-15, "{p} vs {plain}");
    assert!(v["binary64"]["posterior"].is_string());
    assert_eq!(bound(&["adacos-scale", "--classes", "2"])["value"], "0");
}

#[test]
fn bound_digits_prints_more_digits_of_the_same_number() {
    let short = bound(&["normface", "--classes", "10575", "--scale", "1"]);
    let long = bound(&[
        "normface",
        "--classes",
        "10575",
        "--scale",
        "1",
        "--digits",
        "300",
    ]);
    let (s, l) = (
        short["value"].as_str().unwrap(),
        long["value"].as_str().unwrap(),
    );
    assert_eq!(significant_digits(l), 300, "{l}");
    assert_eq!(long["certificate"]["digits"], 300);
    // the first 35 digits agree (the 36th may be the short one's rounding)
    assert_eq!(&s[..36], &l[..36]);
    let v = bound(&[
        "cosface-scale",
        "--classes",
        "10",
        "--posterior",
        "0.9",
        "--digits",
        "1000",
    ]);
    assert_eq!(significant_digits(v["value"].as_str().unwrap()), 1000);
}

#[test]
fn invalid_bound_arguments_exit_1_with_a_message() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["normface", "--classes", "1", "--scale", "1"],
            "--classes: the number of classes must be at least 2",
        ),
        (
            &["normface", "--classes", "abc", "--scale", "1"],
            "--classes: expected a whole number of classes",
        ),
        (
            &["normface", "--classes", "10.5", "--scale", "1"],
            "must be a whole number",
        ),
        (
            &["normface", "--classes", "10", "--scale", "-1"],
            "--scale: the scale s = ℓ² must be at least 0",
        ),
        (
            &["normface", "--classes", "10", "--scale", "one"],
            "--scale: expected a decimal number",
        ),
        (
            &["normface", "--classes", "10", "--scale", "nan"],
            "--scale: expected a decimal number",
        ),
        (
            &["normface", "--classes", "10", "--scale", "inf"],
            "--scale: expected a decimal number",
        ),
        (
            &["normface", "--classes", "10"],
            "--scale: `normface` needs --scale",
        ),
        (&["normface", "--scale", "1"], "needs the number of classes"),
        (
            &[
                "normface",
                "--classes",
                "10",
                "--scale",
                "1",
                "--posterior",
                "0.5",
            ],
            "does not take --posterior",
        ),
        (
            &["cosface-scale", "--classes", "10", "--posterior", "0"],
            "--posterior: the target posterior P must lie strictly between 0 and 1",
        ),
        (
            &["cosface-scale", "--classes", "10", "--posterior", "1"],
            "strictly between 0 and 1",
        ),
        (
            &["cosface-scale", "--classes", "10", "--posterior", "1.5"],
            "strictly between 0 and 1",
        ),
        (
            &[
                "cosface-scale",
                "--classes",
                "10",
                "--posterior",
                "1e999999999",
            ],
            "the exponent must be an integer of at most 6 digits",
        ),
        (&["cosface-scale", "--classes", "10"], "needs --posterior"),
        (
            &["normface-ceiling", "--classes", "10", "--scale", "2"],
            "does not take --scale",
        ),
        (
            &["arcface-bound", "--classes", "10"],
            "unknown bound `arcface-bound`",
        ),
        (
            &["normface-ceiling", "--classes", "10", "--digits", "10"],
            "--digits: must be between 34 and 100000",
        ),
        (
            &["normface-ceiling", "--classes", "10", "--digits", "many"],
            "--digits: expected a whole number",
        ),
        (
            &["normface-ceiling", "--table", "100..10"],
            "--table: the range must go up",
        ),
        (
            &["normface-ceiling", "--table", "2-100"],
            "--table: expected a range FROM..TO",
        ),
        (&["normface-ceiling", "--table", "1..100"], "at least 2"),
        (
            &["normface-ceiling", "--classes", "10", "--table", "2..100"],
            "give one of --classes and --table",
        ),
        (
            &["normface-ceiling", "--classes", "10", "--points", "5"],
            "--points: is the number of rows of --table",
        ),
        (
            &["normface-ceiling", "--table", "2..100", "--points", "1"],
            "--points: must be between 2 and 10000",
        ),
        (
            &[
                "normface",
                "--classes",
                "10",
                "--scale",
                "1",
                "--plot",
                "/nonexistent-dir/x.svg",
            ],
            "/nonexistent-dir/x.svg: cannot write the plot",
        ),
    ];
    for (args, message) in cases {
        let mut all = vec!["bound"];
        all.extend_from_slice(args);
        let out = lossref(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{all:?}: {stderr}");
        assert!(stderr.starts_with("lossref: error: "), "{all:?}: {stderr}");
        assert!(
            stderr.contains(message),
            "{all:?}: expected «{message}» in {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{all:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{all:?} printed to stdout");
    }
    for (args, message) in [
        (
            &["normface", "--classes", "100", "--scale", "1", "--evidence"][..],
            "--evidence: T1's evidence is evaluated for at most 64 classes",
        ),
        (
            &["normface", "--classes", "10", "--scale", "1", "--dim", "3"][..],
            "--dim: is the dimension of `normface --evidence`",
        ),
        (
            &[
                "normface",
                "--classes",
                "10",
                "--scale",
                "1",
                "--evidence",
                "--dim",
                "0",
            ][..],
            "--dim: must be between 1 and 100000",
        ),
        (
            &["normface", "--table", "2..10", "--scale", "1", "--evidence"][..],
            "--evidence: checks one bound at one number of classes",
        ),
    ] {
        let mut all = vec!["bound"];
        all.extend_from_slice(args);
        let out = lossref(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{all:?}: {stderr}");
        assert!(
            stderr.contains(message),
            "{all:?}: expected «{message}» in {stderr}"
        );
    }
    // A value beyond MPFR's exponent range (≈ 9·e^(−1.1e12)) is bounded, never a wrong
    // number: its enclosure, tier `bounded`, and its binary64 rounding +0.
    let out = lossref(&["bound", "normface", "--classes", "10", "--scale", "1e12"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["certificate"]["tier"], "bounded");
    assert!(v["value"].as_str().unwrap().starts_with("[0, "), "{v}");
    assert_eq!(v["binary64"]["value"], "0x0p+0");
}

#[test]
fn bound_table_sweeps_log_spaced_classes() {
    let out = lossref(&[
        "bound",
        "normface",
        "--scale",
        "1",
        "--table",
        "2..100000",
        "--points",
        "6",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    let ns: Vec<u64> = rows.iter().map(|r| r[0].parse().unwrap()).collect();
    assert_eq!((ns[0], *ns.last().unwrap(), ns.len()), (2, 100000, 6));
    // log-spaced: successive ratios are all close to (10^5/2)^(1/5) ≈ 8.71
    for w in ns.windows(2) {
        let r = w[1] as f64 / w[0] as f64;
        assert!((r / 8.705 - 1.0).abs() < 0.1, "{ns:?}");
    }
    // the value column is the bound: increasing in n, and each with ≥ 34 digits
    let values: Vec<f64> = rows.iter().map(|r| r[1].parse().unwrap()).collect();
    assert!(values.windows(2).all(|w| w[0] < w[1]));
    assert!(rows.iter().all(|r| significant_digits(r[1]) >= 34));
    // --json gives the same rows
    let json = bound(&[
        "normface",
        "--scale",
        "1",
        "--table",
        "2..100000",
        "--points",
        "6",
        "--json",
    ]);
    let json_rows = json["rows"].as_array().unwrap();
    assert_eq!(json_rows.len(), 6);
    for (row, text_row) in json_rows.iter().zip(&rows) {
        assert_eq!(row["classes"].as_u64().unwrap().to_string(), text_row[0]);
        assert_eq!(row["value"].as_str().unwrap(), text_row[1]);
    }
    // adacos has two columns
    let out = lossref(&[
        "bound",
        "adacos-scale",
        "--table",
        "2..1000",
        "--points",
        "4",
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    let header = text.lines().find(|l| !l.starts_with('#')).unwrap();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        vec!["C", "value", "posterior"]
    );
}

fn points_of(polyline: &str) -> Vec<(f64, f64)> {
    polyline
        .split_whitespace()
        .map(|p| {
            let (x, y) = p.split_once(',').unwrap();
            (x.parse().unwrap(), y.parse().unwrap())
        })
        .collect()
}

#[test]
fn bound_plot_is_an_svg_with_the_papers_points_on_the_curve() {
    let dir = std::env::temp_dir().join(format!("lossref-plot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (args, labels, red, black) in [
        (
            vec!["normface", "--scale", "1"],
            vec![
                "n = 10575",
                "8.2663",
                "training loss 9.27",
                "training loss 8.50",
            ],
            1,
            2,
        ),
        (
            vec!["normface-ceiling"],
            vec!["n = 10: 0.4509", "n = 1000: 0.007342"],
            2,
            0,
        ),
        (
            vec!["cosface-scale", "--posterior", "0.9"],
            vec!["C = 10575, P = 0.9"],
            1,
            0,
        ),
        (vec!["adacos-scale"], vec!["AdaCos, C = 10575"], 1, 0),
    ] {
        let file = dir.join(format!("{}.svg", args[0]));
        let mut all = vec!["bound"];
        all.extend(args.iter().copied());
        all.extend(["--plot", file.to_str().unwrap()]);
        let out = lossref(&all);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let svg = std::fs::read_to_string(&file).unwrap();
        let doc = roxmltree::Document::parse(&svg).expect("the plot is well-formed XML");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        let texts: Vec<String> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .map(|n| n.text().unwrap_or("").to_string())
            .collect();
        for label in &labels {
            assert!(
                texts.iter().any(|t| t.contains(label)),
                "{}: no label «{label}» in {texts:?}",
                args[0]
            );
        }
        let curve: Vec<(f64, f64)> = doc
            .descendants()
            .filter(|n| n.has_tag_name("polyline") && n.attribute("stroke") == Some("#0000FF"))
            .flat_map(|n| points_of(n.attribute("points").unwrap()))
            .collect();
        assert!(
            curve.len() > 100,
            "{}: the curve has {} points",
            args[0],
            curve.len()
        );
        let circles = |fill: &str| -> Vec<(f64, f64)> {
            doc.descendants()
                .filter(|n| n.has_tag_name("circle") && n.attribute("fill") == Some(fill))
                .map(|n| {
                    (
                        n.attribute("cx").unwrap().parse().unwrap(),
                        n.attribute("cy").unwrap().parse().unwrap(),
                    )
                })
                .collect()
        };
        let marks = circles("#FF0000");
        assert_eq!(marks.len(), red, "{}: marked points {marks:?}", args[0]);
        for m in &marks {
            assert!(
                curve.contains(m),
                "{}: the marked point {m:?} is not on the curve",
                args[0]
            );
        }
        let reported = circles("#000000");
        assert_eq!(reported.len(), black, "{}", args[0]);
        for r in &reported {
            // SVG y grows downwards: the training losses are drawn above the bound
            assert!(
                r.1 < marks[0].1 && r.0 == marks[0].0,
                "{}: {r:?} vs {:?}",
                args[0],
                marks[0]
            );
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_readme_plots_are_current() {
    // README shows docs/*.svg; they must be what the commands it prints produce today.
    let dir = std::env::temp_dir().join(format!("lossref-readme-plots-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (args, committed) in [
        (["normface", "--scale", "1"], "docs/normface_bound.svg"),
        (
            ["cosface-scale", "--posterior", "0.9"],
            "docs/cosface_scale.svg",
        ),
    ] {
        let file = dir.join("plot.svg");
        let mut all = vec!["bound"];
        all.extend(args);
        all.extend(["--plot", file.to_str().unwrap()]);
        assert!(lossref(&all).status.success());
        let fresh = std::fs::read_to_string(&file).unwrap();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(committed);
        let old = std::fs::read_to_string(&path).unwrap();
        assert!(
            fresh == old,
            "{committed} is stale: regenerate it with `lossref {}`",
            all[..all.len() - 1].join(" ") + " " + committed
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

fn digits(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::INFINITY)
}

#[test]
fn bound_evidence_checks_each_theorem_on_the_spot() {
    // T1 at D = n − 1: the simplex meets the bound, and the descent gets within 1e-25
    // without crossing.
    let v = bound(&["normface", "--classes", "6", "--scale", "2", "--evidence"]);
    let e = &v["evidence"];
    assert!(
        digits(&e["simplex"]["agrees_with_bound_to_digits"]) >= 40.0,
        "{e}"
    );
    assert_eq!(e["descent"]["crossings"], 0);
    assert_eq!(e["descent"]["dim"], 5);
    let gap: f64 = e["descent"]["smallest_gap"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((0.0..1e-25).contains(&gap), "{e}");
    // Below D = n − 1 there is no simplex and the gap stays clearly positive.
    let v = bound(&[
        "normface",
        "--classes",
        "6",
        "--scale",
        "2",
        "--evidence",
        "--dim",
        "2",
    ]);
    let e = &v["evidence"];
    assert_eq!(e["simplex"]["exists"], false);
    assert_eq!(e["descent"]["crossings"], 0);
    let gap: f64 = e["descent"]["smallest_gap"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(gap > 1e-3, "{e}");
    // T2: the antipodal configuration reaches the ceiling.
    let v = bound(&["normface-ceiling", "--classes", "1000", "--evidence"]);
    assert!(digits(&v["evidence"]["agrees_with_ceiling_to_digits"]) >= 40.0);
    assert_eq!(v["evidence"]["posterior"], v["value"]);
    // T3: the simplex reaches P at the bound and falls below it just under.
    let v = bound(&[
        "cosface-scale",
        "--classes",
        "10",
        "--posterior",
        "0.9",
        "--evidence",
    ]);
    assert!(digits(&v["evidence"]["agrees_with_p_to_digits"]) >= 40.0);
    assert_eq!(v["evidence"]["which_is"], "below P");
    // AdaCos: the simplex at √2·log(C−1) reaches the printed posterior.
    let v = bound(&["adacos-scale", "--classes", "5", "--evidence"]);
    assert!(digits(&v["evidence"]["agrees_with_posterior_to_digits"]) >= 40.0);
    assert_eq!(v["evidence"]["posterior_at_scale"], v["posterior"]);
}
