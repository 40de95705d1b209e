//! The committed conformance corpus (`fixtures/corpus`, SPEC §4): a fresh build of any shard
//! gives the same bytes, the manifest of a split build merges into the committed one, every
//! tagged regime is really reached, the binary embeds and exports the same files, and the
//! commands fail cleanly. (`.ci/run` verifies the whole corpus with `lossref corpus verify`.)

use lossref::corpus::all_cases;
use lossref::corpus::{self, case_file, Shard, VERSION};
use lossref::npz::{self, Data};
use lossref::spec::Dtype;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(corpus::COMMITTED)
}

fn manifest() -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join("manifest.json")).unwrap()).unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("lossref-corpus-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_fresh_build_of_a_shard_has_the_committed_bytes() {
    // Two of 24 shards (every 24th case), rebuilt and compared entry by entry and byte by byte.
    for k in [1, 13] {
        let shard = Shard {
            index: k,
            count: 24,
        };
        let summary = corpus::verify(&root(), shard).unwrap();
        assert!(summary.mismatches.is_empty(), "{:?}", summary.mismatches);
        assert!(
            summary.cases >= 15,
            "shard {k}/24 has {} cases",
            summary.cases
        );
    }
}

#[test]
fn split_manifests_merge_into_the_committed_manifest() {
    // The parts a 3-way split build writes, made from the committed entries, merge into the
    // very bytes of manifest.json.
    let m = manifest();
    let dir = scratch("merge");
    let cases = m["cases"].as_array().unwrap();
    for k in 1..=3 {
        let part: Vec<Value> = cases
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 == k - 1)
            .map(|(_, c)| c.clone())
            .collect();
        let text = serde_json::to_string_pretty(&serde_json::json!({"cases": part})).unwrap();
        std::fs::write(dir.join(format!("manifest.part-{k}-of-3.json")), text).unwrap();
    }
    // a file of an earlier build that no case names is removed by the merge; a named one
    // is kept
    let stray = dir.join("cases/normface/gone/f32-0000.npz");
    let named = dir.join(cases[0]["arrays"].as_str().unwrap());
    for f in [&stray, &named] {
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, b"x").unwrap();
    }
    corpus::merge(&dir).unwrap();
    assert!(!stray.exists(), "the stray file is removed");
    assert!(named.exists(), "a case's file is kept");
    let merged = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    assert_eq!(
        merged,
        std::fs::read_to_string(root().join("manifest.json")).unwrap()
    );
    assert!(
        !dir.join("manifest.part-1-of-3.json").exists(),
        "the parts are removed"
    );
    // an incomplete split is refused
    std::fs::write(dir.join("manifest.part-1-of-2.json"), "{\"cases\": []}").unwrap();
    let err = corpus::merge(&dir).unwrap_err();
    assert!(err.reason.contains("needs the parts 1 … 2"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_manifest_lists_every_generated_case_with_its_provenance() {
    let m = manifest();
    assert_eq!(m["version"], VERSION);
    let ids: Vec<&str> = m["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    let generated: Vec<String> = all_cases().into_iter().map(|g| g.id).collect();
    assert_eq!(ids, generated);
    for c in m["cases"].as_array().unwrap() {
        for key in [
            "id",
            "loss",
            "dtype",
            "params",
            "tags",
            "generator",
            "seed",
            "shapes",
            "arrays",
            "sha256",
            "reference",
        ] {
            assert!(c.get(key).is_some(), "{}: no {key}", c["id"]);
        }
        assert_eq!(c["arrays"], case_file(c["id"].as_str().unwrap()));
        assert!(c["generator"]["name"].is_string());
        assert!(
            ["correctly_rounded", "faithful"].contains(&c["reference"]["tier"].as_str().unwrap())
        );
    }
    // every loss of SPEC §1, both dtypes, and the large-C cases
    for loss in lossref::spec::SPEC_LOSSES {
        for dtype in ["float32", "float64"] {
            assert!(
                m["cases"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|c| c["loss"] == *loss && c["dtype"] == dtype),
                "no {loss} {dtype} case"
            );
        }
    }
    assert!(m["counts"]["by_tag"]["scale:large-C"].as_u64().unwrap() >= 8);
    assert!(m["counts"]["by_tag"]["edge:exact-zero"].as_u64().unwrap() >= 300);
}

fn array(c: &Value, name: &str) -> (Vec<usize>, Vec<f64>) {
    let arrays = npz::read(&root().join(c["arrays"].as_str().unwrap())).unwrap();
    let a = &arrays[name];
    let values = match &a.data {
        Data::Float(v) => v.clone(),
        Data::Int(v) => v.iter().map(|&x| x as f64).collect(),
        Data::Text(_) => panic!("{name} is text"),
    };
    (a.shape.clone(), values)
}

/// cos θ_iy of every row of a margin case, in binary64: for `subcenter_arcface`, the
/// largest of the target class's K sub-centers' (SPEC §5).
fn target_cosines(c: &Value) -> Vec<f64> {
    let (xs, x) = array(c, "inputs/features");
    let (_, w) = array(c, "inputs/weights");
    let (_, labels) = array(c, "inputs/labels");
    let d = xs[1];
    let k = if c["loss"] == "subcenter_arcface" {
        c["params"]["subcenters"].as_u64().unwrap_or(3) as usize
    } else {
        1
    };
    (0..xs[0])
        .map(|i| {
            let xi = &x[i * d..(i + 1) * d];
            let y = labels[i] as usize;
            let n = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>().sqrt();
            (y * k..(y + 1) * k)
                .map(|r| {
                    let wy = &w[r * d..(r + 1) * d];
                    let dot: f64 = xi.iter().zip(wy).map(|(a, b)| a * b).sum();
                    dot / (n(xi) * n(wy))
                })
                .fold(f64::NEG_INFINITY, f64::max)
        })
        .collect()
}

/// ‖x_i‖ of every feature row, in binary64.
fn row_norms(c: &Value) -> Vec<f64> {
    let (s, x) = array(c, "inputs/features");
    x.chunks(s[1])
        .map(|r| r.iter().map(|a| a * a).sum::<f64>().sqrt())
        .collect()
}

/// Every row of a CurricularFace case has a negative on each side of its mask cos(θ_y + m).
fn hard_negatives_on_both_sides(c: &Value, m: f64) -> bool {
    let (xs, x) = array(c, "inputs/features");
    let (_, w) = array(c, "inputs/weights");
    let (_, labels) = array(c, "inputs/labels");
    let d = xs[1];
    let n = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>().sqrt();
    let cos = |i: usize, j: usize| {
        let (xi, wj) = (&x[i * d..(i + 1) * d], &w[j * d..(j + 1) * d]);
        xi.iter().zip(wj).map(|(a, b)| a * b).sum::<f64>() / (n(xi) * n(wj))
    };
    let classes = w.len() / d;
    (0..xs[0]).all(|i| {
        let y = labels[i] as usize;
        let threshold = (cos(i, y).acos() + m).cos();
        let others: Vec<f64> = (0..classes)
            .filter(|&j| j != y)
            .map(|j| cos(i, j))
            .collect();
        others.iter().any(|&v| v > threshold) && others.iter().any(|&v| v < threshold)
    })
}

#[test]
fn every_tagged_regime_is_reached() {
    let m = manifest();
    let mut checked = 0;
    for c in m["cases"].as_array().unwrap() {
        let tags: Vec<&str> = c["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        let f32 = c["dtype"] == "float32";
        let margin = c["params"]["margin"].as_f64().unwrap_or(0.0);
        for tag in tags {
            let ok = match tag {
                "edge:acos-near-1" => target_cosines(c)
                    .iter()
                    .all(|&v| 1.0 - v <= if f32 { 2e-3 } else { 2e-4 }),
                "edge:acos-near-minus-1" => target_cosines(c)
                    .iter()
                    .all(|&v| 1.0 + v <= if f32 { 2e-3 } else { 2e-4 }),
                "edge:easy-switch" => target_cosines(c).iter().all(|&v| v.abs() <= 2e-3),
                // SPEC §5's adaptive margins: each regime's defining property
                "edge:hard-negatives" => {
                    hard_negatives_on_both_sides(c, c["params"]["margin"].as_f64().unwrap_or(0.5))
                }
                "edge:norm-clamp" => {
                    let norms = row_norms(c);
                    let (lo, hi) = if c["loss"] == "adaface" {
                        (1e-3, 100.0)
                    } else {
                        (10.0, 110.0)
                    };
                    norms.iter().any(|&v| v < lo)
                        && norms.iter().any(|&v| v > hi)
                        && norms.iter().any(|&v| v > lo && v < hi)
                }
                "edge:margin-scaler-clamp" => {
                    let arrays = npz::read(&root().join(c["arrays"].as_str().unwrap())).unwrap();
                    let scalar = |name: &str| match &arrays[name].data {
                        Data::Float(v) => v[0],
                        _ => panic!("{name} is a float"),
                    };
                    let (mu, sigma) = (
                        scalar("reference/outputs/batch_mean_next"),
                        scalar("reference/outputs/batch_std_next"),
                    );
                    let h = c["params"]["h"].as_f64().unwrap_or(0.333);
                    row_norms(c)
                        .iter()
                        .any(|&v| (h * (v.clamp(1e-3, 100.0) - mu) / (sigma + 1e-3)).abs() >= 1.0)
                }
                "edge:cos-clamp" => target_cosines(c).iter().any(|&v| v > 1.0 - 1e-3),
                "edge:median-angle" => {
                    let mut theta: Vec<f64> = target_cosines(c).iter().map(|v| v.acos()).collect();
                    theta.sort_by(f64::total_cmp);
                    let median = theta[(theta.len() - 1) / 2];
                    // the first case below π/4 with an even batch, the second above with an odd one
                    if c["id"].as_str().unwrap().ends_with("-0000") {
                        median < std::f64::consts::FRAC_PI_4 && theta.len() % 2 == 0
                    } else {
                        median > std::f64::consts::FRAC_PI_4 && theta.len() % 2 == 1
                    }
                }
                "edge:thmm-switch" => target_cosines(c)
                    .iter()
                    .all(|&v| (v.acos() - (std::f64::consts::PI - margin)).abs() <= 2e-2),
                "edge:tiny-norm" | "edge:huge-norm" => {
                    let (s, x) = array(c, "inputs/features");
                    let norms: Vec<f64> = x
                        .chunks(s[1])
                        .map(|r| r.iter().map(|a| a * a).sum::<f64>().sqrt())
                        .collect();
                    let (lo, hi) = if tag == "edge:tiny-norm" {
                        (0.0, 1e-11)
                    } else {
                        (999.0, f64::INFINITY)
                    };
                    norms.iter().all(|n| (lo..=hi).contains(n))
                }
                "scale:large-C" => {
                    let name = if c["loss"] == "softmax_ce" {
                        "inputs/logits"
                    } else {
                        "inputs/weights"
                    };
                    let (s, _) = array(c, name);
                    s[if c["loss"] == "softmax_ce" { 1 } else { 0 }] >= 10_000
                }
                // a gradient entry that is exactly 0 (softmax and softmax_ce have none:
                // their cases hold equal logits in permuted places)
                "edge:exact-zero" => {
                    let arrays = npz::read(&root().join(c["arrays"].as_str().unwrap())).unwrap();
                    matches!(c["loss"].as_str(), Some("softmax" | "softmax_ce"))
                        || arrays.iter().any(|(name, a)| {
                            name.starts_with("reference/gradients/")
                                && matches!(&a.data, Data::Float(v) if v.contains(&0.0))
                        })
                }
                _ => true,
            };
            assert!(ok, "{}: not in its regime {tag}", c["id"]);
            checked += 1;
        }
        // a float32 case holds float32 inputs
        if f32 {
            let arrays = npz::read(&root().join(c["arrays"].as_str().unwrap())).unwrap();
            for (name, a) in &arrays {
                // class indices (labels, SPEC §5's subsets) are integers
                if name.starts_with("inputs/")
                    && name != "inputs/labels"
                    && name != "inputs/classes"
                {
                    assert!(a.was_f32, "{}: {name} is not float32", c["id"]);
                }
            }
        }
    }
    assert!(checked > 400);
    let _ = Dtype::ALL;
}

#[test]
fn the_binary_embeds_the_committed_corpus_and_exports_it() {
    let dir = scratch("export");
    let out = Command::new(env!("CARGO_BIN_EXE_lossref"))
        .args(["corpus", "export", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files = 0;
    for (name, bytes) in corpus::embedded() {
        assert_eq!(&std::fs::read(root().join(name)).unwrap(), bytes, "{name}");
        assert_eq!(&std::fs::read(dir.join(name)).unwrap(), bytes, "{name}");
        files += 1;
    }
    assert_eq!(files, manifest()["cases"].as_array().unwrap().len() + 1);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn corpus_commands_fail_cleanly() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_lossref"))
            .args(args)
            .output()
            .unwrap()
    };
    for (args, message) in [
        (vec!["corpus", "bake"], "unknown action `bake`"),
        (
            vec!["corpus", "verify", "--shard", "0/3"],
            "--shard: expected K/N with 1 ≤ K ≤ N",
        ),
        (
            vec!["corpus", "verify", "--shard", "4/3"],
            "--shard: expected K/N",
        ),
        (vec!["corpus", "export"], "needs the destination directory"),
        (
            vec!["corpus", "verify", "/nonexistent-corpus"],
            "manifest.json: cannot read",
        ),
    ] {
        let out = run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains(message),
            "{args:?}: expected «{message}» in {stderr}"
        );
    }
    // a tampered copy fails verify, naming the case
    let dir = scratch("tampered");
    let m = manifest();
    let first = &m["cases"][0];
    let file = first["arrays"].as_str().unwrap();
    std::fs::copy(root().join("manifest.json"), dir.join("manifest.json")).unwrap();
    std::fs::create_dir_all(dir.join(file).parent().unwrap()).unwrap();
    let mut bytes = std::fs::read(root().join(file)).unwrap();
    let last = bytes.len() - 30;
    bytes[last] ^= 1;
    std::fs::write(dir.join(file), bytes).unwrap();
    // verify of the copy's first shard fails; what it says
    let verify_fails = || {
        let out = run(&[
            "corpus",
            "verify",
            dir.to_str().unwrap(),
            "--shard",
            "1/430",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        stderr
    };
    let stderr = verify_fails();
    assert!(
        stderr.contains(&format!(
            "{}: {file} differs from a fresh build",
            first["id"].as_str().unwrap()
        )),
        "{stderr}"
    );
    assert!(
        !stderr.contains("no case of manifest.json names it"),
        "{stderr}"
    );
    // a file no case names (left from an earlier build) fails verify too
    let stray = "cases/cosface/scale-large-c/bf16-0001.npz";
    std::fs::create_dir_all(dir.join(stray).parent().unwrap()).unwrap();
    std::fs::write(dir.join(stray), b"old").unwrap();
    let stderr = verify_fails();
    assert!(
        stderr.contains(&format!("{stray}: no case of manifest.json names it")),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn each_case_stores_the_tolerance_data_check_uses() {
    use lossref::check::Corpus;
    use lossref::tier::Pipeline;
    use lossref::tolerance::{allowed_ulps, scales, summation_factor, Rule};
    let corpus = Corpus::load(Some(&root())).unwrap();
    for c in corpus.cases.iter().step_by(7) {
        let loaded = corpus.load_case(c).unwrap();
        let stored = npz::read(&root().join(&c.arrays)).unwrap();
        let floats = |key: &str| match &stored
            .get(key)
            .unwrap_or_else(|| panic!("{}: no {key}", c.id))
            .data
        {
            Data::Float(v) => v.clone(),
            _ => panic!("{key} is not float"),
        };
        for g in scales(&loaded.case, &loaded.reference, c.dtype) {
            let (group, values) = (&g.name, &g.scales);
            let allowed = allowed_ulps(g.quantity, c.dtype);
            let scale = floats(&format!("tolerance/scale/{group}"));
            let kappa = floats(&format!("tolerance/kappa/{group}"));
            if c.dtype.is_half() {
                // SPEC §6: each tier's absolute limit, as `lossref check` computes it
                let (section, name) = group.split_once('/').unwrap();
                let want = if section == "outputs" {
                    loaded.reference.output(name)
                } else {
                    loaded.reference.gradient(name)
                }
                .unwrap();
                for tier in ["native", "amp"] {
                    let p = Pipeline::parse(&serde_json::json!(tier), "test").unwrap();
                    let rule = Rule::of(&loaded.case, p.tier(c.dtype));
                    let stored = floats(&format!("tolerance/limit_{tier}/{group}"));
                    for ((k, v), w) in values.iter().enumerate().zip(want.values()) {
                        let limit = rule.limit(group, g.quantity, v.scale, v.terms, *w);
                        assert_eq!(
                            stored[k].to_bits(),
                            limit.to_bits(),
                            "{} {group}[{k}]",
                            c.id
                        );
                    }
                }
                continue;
            }
            let limit = floats(&format!("tolerance/limit_ulps/{group}"));
            for (k, v) in values.iter().enumerate() {
                assert_eq!(
                    scale[k].to_bits(),
                    v.scale.to_bits(),
                    "{} {group}[{k}]",
                    c.id
                );
                assert_eq!(
                    kappa[k].to_bits(),
                    v.kappa.to_bits(),
                    "{} {group}[{k}]",
                    c.id
                );
                assert_eq!(
                    limit[k],
                    allowed * summation_factor(v.terms),
                    "{} {group}[{k}]",
                    c.id
                );
            }
        }
    }
}

/// The typed listing of value groups (`precision::quantities`) names exactly the groups of
/// every reference answer in the corpus, and the measures and tolerance scales give one
/// scale per value: no group falls outside the precision table.
#[test]
fn every_reference_group_has_a_table_row_and_a_scale_per_value() {
    use lossref::check::Corpus;
    use lossref::precision::{measures, quantities};
    use lossref::tolerance::scales;
    use std::collections::BTreeMap;
    let corpus = Corpus::load(Some(&root())).unwrap();
    let mut losses = std::collections::HashSet::new();
    for c in &corpus.cases {
        let loaded = corpus.load_case(c).unwrap();
        losses.insert(loaded.case.loss());
        // the archive stores groups by name, so the loaded answer's order is alphabetical
        let sizes: BTreeMap<String, usize> = loaded
            .reference
            .sections()
            .map(|(section, name, t)| (format!("{section}/{name}"), t.values().len()))
            .collect();
        let listed: Vec<String> = quantities(&loaded.case)
            .iter()
            .map(|(g, _)| g.to_string())
            .collect();
        let mut sorted = listed.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            sizes.keys().cloned().collect::<Vec<_>>(),
            "{}",
            c.id
        );
        let measured: BTreeMap<String, usize> = measures(&loaded.case, &loaded.reference, c.dtype)
            .iter()
            .map(|m| (m.group.to_string(), m.scales.len()))
            .collect();
        let tolerated: BTreeMap<String, usize> = scales(&loaded.case, &loaded.reference, c.dtype)
            .iter()
            .map(|g| (g.name.clone(), g.scales.len()))
            .collect();
        assert_eq!(measured, sizes, "{}", c.id);
        assert_eq!(tolerated, sizes, "{}", c.id);
    }
    assert_eq!(losses.len(), lossref::spec::SPEC_LOSSES.len(), "{losses:?}");
}

/// SPEC §4: an UNSTABLE verdict names a textbook formula only in that formula's regime.
/// Over every corpus case, the tolerance names `lse − z_y` and `softmax(z) − onehot` for a
/// `softmax_ce` row, and `log(Σ e^{z−max})` for a log-probability, exactly where the
/// certified probability (p_y from the logits in binary64; p from the reference's
/// `probabilities`) is at least 1/2; a case with no such row names no formula for its loss.
#[test]
fn unstable_formulas_are_named_only_in_their_regime() {
    use lossref::check::Corpus;
    use lossref::spec::Case;
    use lossref::tolerance::scales;
    let corpus = Corpus::load(Some(&root())).unwrap();
    let (mut named, mut unnamed) = (0, 0);
    for c in &corpus.cases {
        let loaded = corpus.load_case(c).unwrap();
        let groups = scales(&loaded.case, &loaded.reference, c.dtype);
        let group = |name: &str| groups.iter().find(|g| g.name == name).unwrap();
        match &loaded.case {
            Case::SoftmaxCe(s) => {
                // a class's gradient entry names its formula (softmax(z) − onehot, or with
                // SPEC §5's options softmax(z)·Σa − a) where that class dominates its row and
                // carries a coefficient a_j ≠ 0 (without options: the target alone)
                let (cols, o) = (s.logits.cols(), &s.options);
                let w = |j: usize| o.weight.as_ref().map_or(1.0, |w| w[j]);
                let mut any = false;
                for (i, row) in s.logits.iter_rows().enumerate() {
                    let top = row.iter().copied().fold(f64::MIN, f64::max);
                    let sum: f64 = row.iter().map(|z| (z - top).exp()).sum();
                    for (j, z) in row.iter().enumerate() {
                        let p = (z - top).exp() / sum;
                        let eps = o.label_smoothing;
                        let a = match &o.targets {
                            Some(t) => w(j) * ((1.0 - eps) * t.get(i, j) + eps / cols as f64),
                            None if o.ignored_rows.get(i).copied().unwrap_or(false) => 0.0,
                            None if s.labels[i] == j => w(j) * (1.0 - eps + eps / cols as f64),
                            None => w(j) * eps / cols as f64,
                        };
                        let in_regime = p >= 0.5 && a != 0.0;
                        any |= in_regime;
                        let scale = &group("gradients/logits").scales[i * cols + j];
                        assert_eq!(
                            scale.unstable.is_some(),
                            in_regime,
                            "{} [{i}][{j}]: p = {p}, a = {a}",
                            c.id
                        );
                        if in_regime {
                            named += 1
                        } else {
                            unnamed += 1
                        }
                    }
                }
                assert_eq!(
                    group("outputs/loss").scales[0].unstable.is_some(),
                    any,
                    "{}",
                    c.id
                );
            }
            Case::Focal(f) => {
                // focal, poly1: 1 − softmax(z)_y, named where the target dominates its row
                let cols = f.logits.cols();
                let mut any = false;
                for (i, (row, &y)) in f.logits.iter_rows().zip(&f.labels).enumerate() {
                    let top = row.iter().copied().fold(f64::MIN, f64::max);
                    let sum: f64 = row.iter().map(|z| (z - top).exp()).sum();
                    let p_y = (row[y] - top).exp() / sum;
                    any |= p_y >= 0.5;
                    for j in 0..cols {
                        let scale = &group("gradients/logits").scales[i * cols + j];
                        assert_eq!(
                            scale.unstable.is_some(),
                            p_y >= 0.5,
                            "{} [{i}][{j}]: p_y = {p_y}",
                            c.id
                        );
                    }
                }
                assert_eq!(
                    group("outputs/loss").scales[0].unstable.is_some(),
                    any,
                    "{}",
                    c.id
                );
            }
            Case::Softmax(_) => {
                let probs = loaded
                    .reference
                    .output("probabilities")
                    .unwrap()
                    .values()
                    .to_vec();
                for (k, s) in group("outputs/log_probabilities").scales.iter().enumerate() {
                    assert_eq!(
                        s.unstable.is_some(),
                        probs[k] >= 0.5,
                        "{} [{k}]: p = {}",
                        c.id,
                        probs[k]
                    );
                }
            }
            _ => {}
        }
    }
    // both sides of the rule are reached
    assert!(named > 0 && unnamed > 0, "{named} named, {unnamed} not");
}
