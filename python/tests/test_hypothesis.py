"""Property tests against lossref.eval on inputs the corpus never held: the strategies draw
valid cases of every loss (lossref answers them all), and a JAX CosFace written as a user
would agrees with the certified reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lossref
import lossref.strategies as ls


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ls.cases())
def test_the_strategies_draw_cases_lossref_answers(case: dict) -> None:
    a = lossref.eval(case)
    # `bounded`: values below 2^−1075 whose digits lie beyond the precision cap (a ψ target
    # that dominates its row by G ≳ 10⁴), certified as binary64/binary32 zeros
    assert a.tier in ("correctly_rounded", "faithful", "bounded")


def test_the_strategies_cover_the_catalogue_and_refuse_an_unknown_loss() -> None:
    # the loss list comes from the Rust catalogue, and every loss has its own parameters
    # and regimes: a new loss without them fails here, it never borrows another's
    assert lossref.LOSSES == tuple(loss for losses in lossref.FAMILIES.values() for loss in losses)
    assert lossref.LOSSES[:2] == ("softmax", "softmax_ce") and "arcface" in lossref.FAMILIES["normalized"]
    assert set(ls.PARAMS) == set(lossref.LOSSES)
    for loss in lossref.LOSSES:
        assert "random" in ls.regimes_for(loss)
    with pytest.raises(ValueError, match="no regimes for the loss 'nosuch'"):
        ls.regimes_for("nosuch")


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ls.cases(loss="lsoftmax", regime="thmm-switch"))
def test_a_rule_without_switch_points_still_draws_its_switch_regimes(case: dict) -> None:
    # ψ_1 = cos θ has no segment boundary: lsoftmax with m = 1 has no switch point at all
    # (hypothesis found the strategy sampling from an empty list there)
    assert case["loss"] == "lsoftmax"
    assert lossref.eval(case).tier in ("correctly_rounded", "faithful", "bounded")


def test_switch_points_are_the_families_own() -> None:
    import math

    thmm = [p for p in lossref.switch_points("arcface", {"margin": 0.5, "boundary": "thmm"}) if p["tag"] == "edge:thmm-switch"]
    assert [p["theta"] for p in thmm] == [math.pi - 0.5]
    easy = lossref.switch_points("arcface", {"boundary": "easy"})
    assert [(p["cos"], p["undefined"]) for p in easy if p["tag"] == "edge:easy-switch"] == [(0.0, True)]
    assert [p["theta"] for p in lossref.switch_points("lsoftmax", {"margin": 3})] == [math.pi / 3, 2 * math.pi / 3]
    assert lossref.switch_points("softmax_ce") == []
    with pytest.raises(lossref.CaseError, match="unknown loss `arcfaec`"):
        lossref.switch_points("arcfaec")
    with pytest.raises(lossref.CaseError, match="params.boundary"):
        lossref.switch_points("arcface", {"boundary": "sometimes"})


@pytest.mark.parametrize("loss", lossref.LOSSES)
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_loss_of_the_catalogue_has_a_strategy_lossref_answers(loss: str, data: st.DataObject) -> None:
    case = data.draw(ls.cases(loss=loss))
    assert case["loss"] == loss
    assert lossref.eval(case).tier in ("correctly_rounded", "faithful", "bounded")


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


def test_regimes_are_checked_at_once_and_take_the_corpus_tag_names() -> None:
    # an unknown regime used to draw from every regime silently
    with pytest.raises(ValueError, match="unknown regime 'bogus'"):
        ls.cases(loss="cosface", regime="bogus")
    with pytest.raises(ValueError, match="did you mean 'acos-near-1'"):
        ls.cases(loss="cosface", regime="acos-near1")
    with pytest.raises(ValueError, match="does not apply to 'softmax_ce'"):
        ls.cases(loss="softmax_ce", regime="acos-near-1")
    with pytest.raises(ValueError, match="did you mean 'cosface'"):
        ls.cases(loss="cosfase")
    # the corpus's tag names, and a regime alone restricting the losses drawn
    assert ls.regime_name("edge:dominant-target") == "dominant"
    assert ls.regime_name("dominant-target") == "dominant"
    assert ls.regime_name("edge:acos-near-1") == "acos-near-1"


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ls.cases(regime="edge:dominant-target"))
def test_a_tag_name_draws_that_regime(case: dict) -> None:
    # only the losses with logits have a dominant-target regime, and the target dominates
    assert case["loss"] in ("softmax", "softmax_ce", "distill", "focal", "poly1")
