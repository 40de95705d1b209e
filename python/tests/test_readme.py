"""The examples of python/README.md run as written (the PyTorch one when torch is
importable), and the JAX example prints the diagnosis its comment shows."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def run(block: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, "README.md", "exec"), {"__name__": "readme"})
    return out.getvalue()


def test_the_readme_has_its_examples() -> None:
    assert len(BLOCKS) == 6
    assert len([l for l in BLOCKS[0].strip().splitlines() if l.strip()]) <= 15


def test_the_pytorch_example() -> None:
    if importlib.util.find_spec("torch") is None:
        pytest.skip("PyTorch is not installed")
    assert "lossref check: my cosface" in run(BLOCKS[0])


def test_the_jax_example_prints_its_diagnosis() -> None:
    pytest.importorskip("optax")
    printed = run(BLOCKS[1]).strip()
    said = re.search(r"# (matches if .*)", BLOCKS[1])
    assert said is not None and printed == said.group(1)


def test_the_eval_example() -> None:
    run(BLOCKS[2])


def test_the_options_example_runs_and_its_cases_are_selected_by_tag() -> None:
    import lossref

    run(BLOCKS[4])
    corpus = lossref.Corpus.load()
    plain = corpus.cases(loss="softmax_ce", options=False)
    with_options = corpus.cases(loss="softmax_ce", options=True)
    assert plain and with_options and len(plain) + len(with_options) == len(corpus.cases(loss="softmax_ce"))
    assert all(not any(t.startswith("option:") for t in c.tags) for c in plain)
    assert all("labels" in c.inputs and "weight" not in c.inputs and "targets" not in c.inputs for c in plain)


def test_the_pytest_example_defines_what_it_calls_and_shares_check_s_verdict() -> None:
    import lossref

    scope: dict = {"__name__": "readme"}
    exec(compile(BLOCKS[3], "README.md", "exec"), scope)
    corpus = lossref.Corpus.load()
    failed = []
    for case in corpus.cases(loss="softmax_ce", dtype="float32", options=False):
        try:
            scope["test_my_cross_entropy"](case)
        except AssertionError:
            failed.append(case)
    # exactly the cases lossref.check does not pass: the dominant targets (UNSTABLE)
    results = lossref.Results(corpus)
    for case in corpus.cases(loss="softmax_ce", dtype="float32", options=False):
        loss, grad = scope["my_cross_entropy"](case.inputs["logits"], case.inputs["labels"], **case.params)
        results.add(case, outputs={"loss": loss}, gradients={"logits": grad})
    report = lossref.check(results)
    assert sorted(c.id for c in failed) == sorted(c["id"] for c in report.failures())
    assert failed and all("edge:dominant-target" in c.tags for c in failed), [c.id for c in failed]


def test_the_precision_tier_example_passes_as_amp_and_its_bf16_inputs_are_bf16() -> None:
    import lossref

    run(BLOCKS[5])
    c = lossref.Corpus.load().cases(loss="softmax_ce", dtype="bfloat16", tag="random", options=False)[0]
    assert str(c.inputs["logits"].dtype) == "bfloat16"
