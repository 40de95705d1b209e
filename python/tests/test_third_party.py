"""The package validated on real third-party code (SPEC §4): optax's cross-entropies and
JAX CosFace / ArcFace written as users write them pass the corpus (or fail only where the
tolerance model names their formula unstable, kept in an expectation file with reasons),
and deliberately wrong versions fail with the right diagnosis."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence

import pytest

import lossref

implementations = pytest.importorskip("implementations", reason="needs jax and optax: pip install jax optax")

EXPECT = Path(__file__).parent / "expectations"


def run(fn: Callable[..., Any], losses: Any, dtype: Optional[str] = None, where: Optional[Dict[str, Any]] = None, **kwargs: Any) -> lossref.Results:
    """`fn` over the corpus cases of `losses` (in `dtype`, with the params in `where`)."""
    corpus = lossref.Corpus.load()
    results = lossref.Results(fn.__name__)
    cases = [
        c
        for c in corpus.cases(loss=losses, dtype=dtype, options=False)
        # SPEC §4's float32 and float64 (the 16-bit tiers of SPEC §6: test_tiers.py)
        if c.dtype in ("float32", "float64") and all(c.params.get(k, v) == v for k, v in (where or {}).items())
    ]
    assert cases, losses
    for case in cases:
        outputs, gradients = fn(case.inputs, case.params, **kwargs)
        results.add(case, outputs=outputs, gradients=gradients)
    return results


def summary(report: lossref.Report) -> str:
    return f"{report.counts}\n{report.text[-3000:]}"


def judged(fn: Callable[..., Any], losses: Any, expectations: str, dtype: Optional[str] = None, bug_in: Sequence[str] = ()) -> lossref.Report:
    """Checks `fn` twice: without expectations every case passes or is UNSTABLE (a named
    unstable formula, or flushed subnormals), never FAIL, except the cases tagged or named
    by `bug_in` (a bug of that way of writing the loss, which the corpus exists to show); with the
    committed expectation file (those cases as xfail, with their reasons) the check passes
    and no expectation is stale (an expected failure that passes is UNEXPECTED PASS)."""
    results = run(fn, losses, dtype)
    bare = lossref.check(results)
    verdicts = {c["verdict"] for c in bare.cases if c["verdict"] != "not run" and not any(b in c["tags"] or b == c["id"] for b in bug_in)}
    assert verdicts <= {"pass", "UNSTABLE"}, summary(bare)
    expect = json.loads((EXPECT / expectations).read_text())
    report = lossref.check(results, expect=expect)
    assert report.passed, summary(report)
    assert "UNEXPECTED PASS" not in {c["verdict"] for c in report.cases}
    print(fn.__name__, dtype or "", bare.counts)
    return report


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("fn", [implementations.optax_ce_integer_labels, implementations.optax_ce_one_hot])
def test_optax_cross_entropy_over_every_softmax_ce_case(fn: Callable[..., Any], dtype: str) -> None:
    report = judged(fn, "softmax_ce", "optax_softmax_ce.json", dtype)
    ran = [c for c in report.cases if c["verdict"] != "not run"]
    assert len(ran) == 24
    # optax is unstable only where the target dominates its row
    assert all(c["verdict"] == "pass" or "dominant-target" in c["id"] for c in ran)


def test_jax_cosface_over_every_cosface_and_amsoftmax_case() -> None:
    judged(implementations.cosface, ["cosface", "amsoftmax"], "jax_cosface.json")


def test_jax_arcface_over_every_arcface_case() -> None:
    # arccos of a clipped cosine: the full margin gradient is NaN where cos θ rounds to 1,
    # and, through jnp.where's zero times ∞, wherever a non-target class's does (C = 10⁵
    # in 2 dimensions, float32)
    large = "arcface-none-full/scale-large-c/f32-0001"
    report = judged(implementations.arcface, "arcface", "jax_arcface.json", bug_in=("edge:cos-rounds-to-1", large))
    nan = [c["id"] for c in report.cases if "edge:cos-rounds-to-1" in c["tags"] and c["verdict"] == "xfail"]
    assert nan and all("-full/" in i for i in nan), nan
    assert report.verdict(large) == "xfail"
    # the same implementation in float64, where no cosine rounds to 1, passes that case
    assert report.verdict(large.replace("f32", "f64")) == "pass"


# (name, implementation, losses, its wrong setting, the cases it is run on, the
# expectations of the right implementation, the loss id, the diagnosis it must get)
WRONG = [
    ("arcface in degrees", implementations.arcface, "arcface", {"degrees": True}, {}, "jax_arcface.json", "arcface", "the margin is read in degrees"),
    ("sum for mean", implementations.optax_ce_integer_labels, "softmax_ce", {"sum_instead": True}, {"reduction": "mean"}, "optax_softmax_ce.json", "softmax_ce", "the loss is a sum over the batch, not a mean"),
    ("thmm for none", implementations.arcface, "arcface", {"boundary": "thmm"}, {"boundary": "none"}, "jax_arcface.json", "arcface", "ArcFace's boundary is `thmm`, not `none`"),
    ("missing T²", implementations.distill, "distill", {"drop_t_squared": True}, {}, None, "distill", "the soft term is missing its T² factor"),
]


@pytest.mark.parametrize("name, fn, losses, kwargs, where, expectations, loss, diagnosis", WRONG, ids=[w[0] for w in WRONG])
def test_wrong_versions_fail_with_their_diagnosis(
    name: str, fn: Callable[..., Any], losses: Any, kwargs: Dict[str, Any], where: Dict[str, Any], expectations: Optional[str], loss: str, diagnosis: str
) -> None:
    # as a user would: the right version's expectation file in place, so that the failures
    # left are the wrong convention's
    expect = json.loads((EXPECT / expectations).read_text()) if expectations else None
    report = lossref.check(run(fn, losses, "float64", where, **kwargs), expect=expect)
    assert not report.passed, f"{name} passed"
    text = report.diagnosis(loss)
    assert text is not None and text.startswith("matches if " + diagnosis), f"{name}: {text}\n{summary(report)}"
    print(name, "→", text)


def test_the_distillation_as_written_passes() -> None:
    # the reference for the missing-T² test: the same code with T² passes every case
    report = lossref.check(run(implementations.distill, "distill"))
    assert report.passed, summary(report)
