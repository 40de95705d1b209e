"""Property tests against lossref.eval on inputs the corpus never held: the strategies draw
valid cases of every loss (lossref answers them all), and a JAX CosFace written as a user
would agrees with the certified reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import lossref
import lossref.strategies as ls


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ls.cases())
def test_the_strategies_draw_cases_lossref_answers(case: dict) -> None:
    a = lossref.eval(case)
    # `bounded`: values below 2^−1075 whose digits lie beyond the precision cap (a ψ target
    # that dominates its row by G ≳ 10⁴), certified as binary64/binary32 zeros
    assert a.tier in ("correctly_rounded", "faithful", "bounded")


implementations = pytest.importorskip("implementations", reason="needs jax and optax")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ls.cases(loss="cosface", dtype="float64"))
def test_a_jax_cosface_agrees_with_lossref_eval(case: dict) -> None:
    inputs = {k: np.asarray(v) for k, v in case["inputs"].items()}
    outputs, gradients = implementations.cosface(inputs, case["params"])
    want = lossref.eval(case)
    # float64 CosFace, judged as lossref's tolerance model judges it: relative 1e−9, plus an
    # absolute 1e−12 of the gradient's natural size s·r/‖row‖ (softmax − onehot carries
    # absolute errors of a few ulps of 1 when the target dominates, the named unstable
    # formula; hypothesis found exactly that case at 30°)
    s = case["params"]["scale"]
    r = 1 / len(case["inputs"]["labels"]) if case["params"]["reduction"] == "mean" else 1
    for name, got in gradients.items():
        ref = want.binary64["gradients"][name]
        rows = np.linalg.norm(inputs[name], axis=1, keepdims=True)
        natural = s * r / rows * (1 if name == "features" else len(case["inputs"]["labels"]))
        assert (np.abs(got - ref) <= 1e-9 * np.abs(ref) + 1e-12 * natural).all(), (name, got, ref)
    ref_loss = float(want.binary64["outputs"]["loss"])
    assert abs(float(outputs["loss"]) - ref_loss) <= 1e-9 * abs(ref_loss) + 1e-12 * s
