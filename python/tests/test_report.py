"""lossref.Corpus, Results, check and the report object; the pytest plugin."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import lossref


def reference_results(cases: list, name: str = "the reference itself") -> lossref.Results:
    results = lossref.Results(name)
    for c in cases:
        ref = c.reference()
        results.add(c, outputs=ref["outputs"], gradients=ref["gradients"])
    return results


def test_the_embedded_corpus_and_its_cases() -> None:
    corpus = lossref.Corpus.load()
    assert corpus.version == lossref.CORPUS_VERSION and len(corpus) == 1860
    c = corpus.cases(loss="cosface", dtype="float32", tag="edge:acos-near-1")[0]
    assert c.inputs["features"].dtype == np.float32 and c.inputs["labels"].dtype == np.int64
    assert set(c.reference()["gradients"]) == {"features", "weights"}
    # the corpus's inputs give the corpus's reference through lossref.eval
    a = lossref.eval(c.case)
    assert np.array_equal(a.binary32["gradients"]["weights"], c.reference()["gradients"]["weights"])
    assert corpus[c.id] is c


def test_a_mistyped_selection_is_refused_with_the_nearest_name_never_an_empty_list() -> None:
    corpus = lossref.Corpus.load()
    with pytest.raises(ValueError, match="unknown loss 'cosfase' \\(did you mean 'cosface'\\?\\)"):
        corpus.cases(loss="cosfase")
    with pytest.raises(ValueError, match="unknown loss 'arcfac' \\(did you mean 'arcface'\\?\\)"):
        corpus.cases(loss=["cosface", "arcfac"])
    with pytest.raises(ValueError, match="dtype must be one of float32, float64, bfloat16, float16, got 'f32'"):
        corpus.cases(dtype="f32")
    with pytest.raises(ValueError, match="got 'bfloat61' \\(did you mean 'bfloat16'\\?\\)"):
        corpus.cases(dtype="bfloat61")
    with pytest.raises(ValueError, match="the tag 'edge:acos-near-one' \\(did you mean 'edge:acos-near-1'\\?\\)"):
        corpus.cases(tag="edge:acos-near-one")
    # the regime's name without `edge:` is the corpus's tag
    assert corpus.cases(tag="dominant-target") == corpus.cases(tag="edge:dominant-target") != []
    real = corpus.cases(loss="cosface")[0].id
    with pytest.raises(ValueError, match=f"did you mean {real!r}"):
        corpus.cases(ids=[real.replace("cosface", "cosfase")])
    with pytest.raises(KeyError, match=f"did you mean {real!r}"):
        corpus[real.replace("cosface", "cosfase")]


def test_the_reference_passes_and_the_report_speaks_every_format(tmp_path: Path) -> None:
    corpus = lossref.Corpus.load()
    report = lossref.check(reference_results(corpus.cases(loss="arcface")))
    assert report.passed
    assert report.counts["pass"] == len(corpus.cases(loss="arcface"))
    assert "PASSED" in str(report) and "arcface.grad" in str(report)
    assert report._repr_html_().lstrip().lower().startswith("<!doctype html")
    report.to_junit(tmp_path / "r.xml")
    root = ET.parse(tmp_path / "r.xml").getroot()
    assert int(root.get("tests") or root[0].get("tests")) > 0
    row = next(r for r in report.table if r["function"] == "arcface.grad" and r["dtype"] == "float32")
    assert row["failures"] == 0 and row["max_units"] <= 1.0


def test_a_wrong_value_fails_with_its_place_and_the_results_round_trip(tmp_path: Path) -> None:
    corpus = lossref.Corpus.load()
    case = corpus.cases(loss="softmax_ce", dtype="float64")[0]
    results = reference_results([case], "off by one ulp·10⁶")
    grad = np.array(results.values[case.id]["gradients"]["logits"], dtype=float)
    grad[0, 0] *= 1 + 1e-10
    results.add(case, outputs=case.reference()["outputs"], gradients={"logits": grad})
    results.save(tmp_path / "results.json")
    report = lossref.check(tmp_path / "results.json")
    assert not report.passed and report.verdict(case.id) == "FAIL"
    group = next(g for g in report.case(case.id)["groups"] if g["group"] == "gradients/logits")
    assert group["at"] == "[0][0]"
    with pytest.raises(AssertionError, match="gradients/logits: FAIL"):
        lossref.assert_conforms(case, outputs=case.reference()["outputs"], gradients={"logits": grad})


def test_unknown_ids_and_malformed_results_raise_results_error() -> None:
    with pytest.raises(lossref.ResultsError, match="is not a case of corpus"):
        lossref.check({"implementation": "x", "results": {"no/such/case": {}}})
    with pytest.raises(lossref.ResultsError, match="expected an object"):
        lossref.check({"implementation": "x", "results": 3})


@pytest.mark.lossref_corpus(loss="softmax", dtype="float64")
def test_the_plugin_runs_once_per_case(lossref_case: lossref.CorpusCase) -> None:
    # a softmax written the textbook way, one pytest item per corpus case; its log Σ e^{z−max}
    # without log1p is UNSTABLE at a small temperature, which fails assert_conforms as it
    # fails lossref.check, so the test says so with a reason
    z = lossref_case.inputs["logits"] / lossref_case.params.get("temperature", 1.0)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    logp = z - z.max(axis=1, keepdims=True) - np.log(e.sum(axis=1, keepdims=True))
    expect = {"expectations": [{"tags": ["edge:small-temperature"], "category": "xfail", "reason": "log Σ e^{z−max} without log1p"}]}
    lossref.assert_conforms(lossref_case, outputs={"probabilities": p, "log_probabilities": logp}, expect=expect)


def test_results_bound_to_a_corpus_as_spec_section_4_says(tmp_path: Path) -> None:
    corpus = lossref.Corpus.load()
    case = corpus.cases(loss="center", dtype="float64")[0]
    results = lossref.Results(corpus, implementation="the reference itself")
    assert results.corpus is corpus and results.implementation == "the reference itself"
    ref = case.reference()
    results.add(case.id, outputs=ref["outputs"], gradients=ref["gradients"])
    # an id the bound corpus does not hold is refused at once, not at check time
    with pytest.raises(lossref.ResultsError, match="center/no-such-case: not a case of corpus"):
        results.add("center/no-such-case", outputs={"loss": 1.0})
    results.save(tmp_path / "r.json")
    assert lossref.check(results).counts["pass"] == 1
    assert lossref.Results().implementation == "unnamed"


@pytest.mark.parametrize("bad", [42, 1.5, ["a"], {"implementation": "x"}])
def test_results_refuses_a_wrong_argument_type_at_once(bad: object) -> None:
    with pytest.raises(TypeError, match="expected a lossref.Corpus or the implementation's name"):
        lossref.Results(bad)  # type: ignore[arg-type]


def test_results_add_refuses_wrong_types_at_once() -> None:
    results = lossref.Results("typed")
    with pytest.raises(TypeError, match="expected a CorpusCase or a case id"):
        results.add(7, outputs={"loss": 1.0})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="outputs must map value names to arrays"):
        results.add("softmax/random/f64-0000", outputs=[1.0])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="give the implementation's name once"):
        lossref.Results("a", implementation="b")


def test_a_declared_computes_makes_what_is_not_computed_not_run() -> None:
    corpus = lossref.Corpus.load()
    cases = corpus.cases(loss="normface", dtype="float64")[:3]
    groups = ["outputs/loss", "gradients/features", "gradients/weights"]
    for computes, verdict in ((None, "MISSING"), (groups, "pass")):
        results = lossref.Results("normface with a fixed scale", computes=computes)
        for c in cases:
            ref = c.reference()
            grads = {k: v for k, v in ref["gradients"].items() if k != "scale"}
            results.add(c, outputs=ref["outputs"], gradients=grads)
        report = lossref.check(results)
        assert all(report.verdict(c.id) == verdict for c in cases), [report.verdict(c.id) for c in cases]
    with pytest.raises(ValueError, match="computes must list value groups"):
        lossref.Results("x", computes=["loss"])


def test_one_verdict_everywhere_an_unstable_case_fails_assert_conforms_as_it_fails_check() -> None:
    # a textbook cross-entropy (lse − z_y, softmax − onehot) on a dominant target is
    # UNSTABLE: check's report does not pass, and assert_conforms (the pytest plugin's
    # assertion) raises too, unless an expectation says otherwise
    import numpy as np

    corpus = lossref.Corpus.load()
    case = next(c for c in corpus.cases(loss="softmax_ce", dtype="float64", tag="edge:dominant-target", options=False))
    z = np.asarray(case.inputs["logits"], dtype=np.float64)
    y = np.asarray(case.inputs["labels"])
    top = z.max(axis=1, keepdims=True)
    lse = (top + np.log(np.exp(z - top).sum(axis=1, keepdims=True)))[:, 0]
    r = 1 / len(y) if case.params.get("reduction", "mean") == "mean" else 1.0
    loss = r * float((lse - z[np.arange(len(y)), y]).sum())
    grad = r * (np.exp(z - lse[:, None]) - np.eye(z.shape[1])[y])
    results = lossref.Results(corpus)
    results.add(case, outputs={"loss": loss}, gradients={"logits": grad})
    report = lossref.check(results)
    assert report.verdict(case.id) == "UNSTABLE" and not report.passed
    assert [c["id"] for c in report.failures()] == [case.id]
    with pytest.raises(AssertionError, match="UNSTABLE"):
        lossref.assert_conforms(case, outputs={"loss": loss}, gradients={"logits": grad})
    expect = {"expectations": [{"case": case.id, "category": "xfail", "reason": "lse − z_y"}]}
    lossref.assert_conforms(case, outputs={"loss": loss}, gradients={"logits": grad}, expect=expect)
