"""lossref.eval against the command line, its error messages, and the answer's types."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

import lossref

ROOT = Path(__file__).resolve().parents[2]


def cli() -> str:
    """The `lossref` binary: $LOSSREF_CLI, on PATH, or built in the repository."""
    for candidate in [os.environ.get("LOSSREF_CLI"), shutil.which("lossref"), ROOT / "target/release/lossref", ROOT / "target/debug/lossref"]:
        if candidate and Path(candidate).is_file():
            return str(candidate)
    pytest.skip("no lossref binary: set LOSSREF_CLI or run cargo build")
    raise AssertionError


CASES = [
    {"loss": "cosface", "params": {"scale": 64, "margin": 0.35},
     "inputs": {"features": [[0.5, -1.25], [2.0, 0.75]], "weights": [[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]], "labels": [0, 2]}},
    {"loss": "softmax_ce", "inputs": {"logits": [[1, 2, 3], [690.8, 0.0, -5.0]], "labels": [2, 0]}},
    {"loss": "softmax", "params": {"temperature": 0.5}, "inputs": {"logits": [[1.1, 2.2, 5.0, 10.1]]}},
    {"loss": "sphereface", "inputs": {"features": [[1, 1, 0, 0]], "weights": [[1, 0, 0, 0], [0, 0, 1, 0]], "labels": [0]}},
    {"loss": "arcface", "params": {"boundary": "thmm", "margin_grad": "detached"},
     "inputs": {"features": [[0.25, -1.0, 2.0]], "weights": [[1.0, 0.5, 0.0], [-0.5, 0.0, 1.0]], "labels": [1]}},
    {"loss": "distill", "inputs": {"student_logits": [[1.5, -0.25, 3.0]], "teacher_logits": [[2.0, 0.0, 1.0]], "labels": [2]}},
    {"loss": "center", "inputs": {"features": [[1.5, -2.0]], "centers": [[1.0, -1.0], [0.0, 2.0]], "labels": [0]}},
]


@pytest.mark.parametrize("case", CASES, ids=[c["loss"] for c in CASES])
def test_eval_prints_what_the_command_line_prints(case: dict) -> None:
    out = subprocess.run([cli(), "eval", "-"], input=json.dumps(case), capture_output=True, text=True, check=True)
    assert lossref.eval(case).json() == json.loads(out.stdout)


def test_numpy_inputs_are_read_exactly_and_roundings_are_numpy_arrays() -> None:
    case = dict(CASES[0])
    case["inputs"] = {k: np.asarray(v, dtype=np.float32 if k != "labels" else np.int64) for k, v in CASES[0]["inputs"].items()}
    a = lossref.eval(case)
    b = lossref.eval(CASES[0])
    assert a.json() == b.json()  # every number of CASES[0] is a float32
    g = a.binary64["gradients"]["features"]
    assert g.dtype == np.float64 and g.shape == (2, 2)
    assert a.binary32["gradients"]["features"].dtype == np.float32
    assert a.decimal("loss") == Decimal("82.2151768722369312763030196158091473")
    assert float(a.binary64["outputs"]["loss"]) == float(Decimal(a.outputs["loss"]))
    assert a.tier == "correctly_rounded"


def test_exact_zeros_print_as_zero() -> None:
    a = lossref.eval(CASES[3])
    assert a.gradients["weights"][0] == ["0", "0", "0", "0"]
    assert (a.binary64["gradients"]["weights"][0] == 0).all()


@pytest.mark.parametrize(
    "case",
    [
        {"loss": "cosface", "inputs": {"features": [[0, 0]], "weights": [[1, 0], [0, 1]], "labels": [0]}},
        {"loss": "softmax_ce", "inputs": {"logits": [[1, 2]], "labels": [5]}},
        {"loss": "nope", "inputs": {}},
    ],
    # A value beyond MPFR's range (softmax of [−1, 1e300]) is no longer an error but a
    # `bounded` answer: test_a_value_beyond_mpfr_range_is_bounded_and_its_digits_are_refused.
    ids=["zero-norm", "label", "unknown-loss"],
)
def test_errors_raise_case_error_with_the_command_lines_message(case: dict) -> None:
    out = subprocess.run([cli(), "eval", "-"], input=json.dumps(case), capture_output=True, text=True)
    assert out.returncode != 0
    with pytest.raises(lossref.CaseError) as e:
        lossref.eval(case)
    assert out.stderr.strip() == f"lossref: error: {e.value}"


def test_a_case_file_with_npz_inputs(tmp_path: Path) -> None:
    np.savez(tmp_path / "batch.npz", logits=np.array([[1.0, 2.0, 3.0]]), labels=np.array([2]))
    (tmp_path / "case.json").write_text(json.dumps({"loss": "softmax_ce", "inputs": "batch.npz"}))
    a = lossref.eval(tmp_path / "case.json")
    assert a.outputs["loss"] == lossref.eval({"loss": "softmax_ce", "inputs": {"logits": [[1.0, 2.0, 3.0]], "labels": [2]}}).outputs["loss"]


def test_a_value_beyond_mpfr_range_is_bounded_and_its_digits_are_refused() -> None:
    # e^(−1e10) is below MPFR's least magnitude: its enclosure and roundings (±0) only.
    a = lossref.eval({"loss": "softmax_ce", "inputs": {"logits": [[0, 1e10]], "labels": [1]}})
    assert a.tier == "bounded"
    assert a.outputs["loss"].startswith("[0, ")
    assert a.binary64["outputs"]["loss"] == 0.0
    g = a.binary64["gradients"]["logits"]
    assert g[0, 0] == 0.0 and np.signbit(g[0, 1])
    with pytest.raises(ValueError, match="bounded value"):
        a.decimal("loss")
