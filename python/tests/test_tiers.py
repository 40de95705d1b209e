"""SPEC §6's precision tiers from Python: 16-bit corpus cases with their inputs in their own
dtype (numpy.float16, ml_dtypes.bfloat16), results that take those arrays exactly and
declare their pipeline, and the judge naming the tier a failure meets. The implementations
here are numpy code written the way mixed-precision training computes (nothing from
lossref)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import lossref

BF16 = ml_dtypes.bfloat16


def plain_ce_cases(corpus: lossref.Corpus, dtype: str) -> list:
    return [
        c
        for c in corpus.cases(loss="softmax_ce", dtype=dtype, options=False)
        if c.params.get("reduction", "mean") == "mean"
    ]


def amp_cross_entropy(case: lossref.CorpusCase, loss_in_16_bits: bool = False) -> tuple:
    """torch.autocast's cross-entropy, in numpy: the 16-bit logits widened to float32,
    log_softmax with the maximum subtracted, the mean loss in float32 and the gradient
    (softmax − onehot)/N cast back to the logits' dtype; `loss_in_16_bits` casts the loss
    to that dtype too (what a bf16-native pipeline returns)."""
    z16 = case.inputs["logits"]
    y = case.inputs["labels"]
    z = z16.astype(np.float32)
    shifted = z - z.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = z.shape[0]
    loss = np.float32(-log_p[np.arange(n), y].mean())
    grad = np.exp(log_p)
    grad[np.arange(n), y] -= 1
    grad = (grad / n).astype(z16.dtype)
    if loss_in_16_bits:
        loss = np.asarray(loss).astype(z16.dtype)
    return {"loss": loss}, {"logits": grad}


def test_16_bit_cases_hold_their_inputs_in_their_own_dtype() -> None:
    corpus = lossref.Corpus.load()
    assert set(lossref.DTYPES) == {"float32", "float64", "bfloat16", "float16"}
    bf = corpus.cases(loss="cosface", dtype="bfloat16")
    f16 = corpus.cases(loss="softmax_ce", dtype="float16", tag="tier:f16-exp-overflow")
    assert bf and f16
    assert bf[0].inputs["features"].dtype == BF16 and bf[0].inputs["labels"].dtype == np.int64
    z = f16[0].inputs["logits"]
    assert z.dtype == np.float16 and z.astype(np.float64).min() > 11.09
    # the stored float32 arrays are exact: widening the 16-bit ones gives them back
    stored = bf[0].arrays["inputs/features"]
    assert np.array_equal(bf[0].inputs["features"].astype(np.float32), stored)
    # each 16-bit case holds its reference rounded to its format, never twice
    ref = bf[0].reference()
    assert np.array_equal(ref["outputs"]["loss"].astype(BF16).astype(np.float32), ref["outputs"]["loss"])
    with pytest.raises(ValueError, match="holds no float16 rounding"):
        bf[0].reference("float16")
    # lossref.eval takes 16-bit arrays as the exact numbers they are
    wide = {k: v if k == "labels" else v.astype(np.float64) for k, v in bf[0].inputs.items()}
    assert lossref.eval(bf[0].case).outputs["loss"] == lossref.eval({**bf[0].case, "inputs": wide}).outputs["loss"]


def test_results_take_16_bit_arrays_exactly_and_declare_their_pipeline() -> None:
    corpus = lossref.Corpus.load()
    c = next(c for c in plain_ce_cases(corpus, "bfloat16") if "random" in c.tags)
    outputs, gradients = amp_cross_entropy(c)
    assert gradients["logits"].dtype == BF16
    results = lossref.Results(corpus, "numpy amp", pipeline="amp")
    results.add(c, outputs=outputs, gradients=gradients)
    stored = results.values[c.id]["gradients"]["logits"]
    assert np.array_equal(np.asarray(stored, dtype=np.float64), gradients["logits"].astype(np.float64))
    assert '"pipeline": "amp"' in results.to_json()
    with pytest.raises(ValueError, match="unknown tier 'amq' \\(did you mean 'amp'\\?\\)"):
        lossref.Results(corpus, "x", pipeline="amq")
    report = lossref.check(results)
    assert report.passed and "(pipeline amp, SPEC §6)" in str(report)
    assert report.case(c.id)["tier"] == "bfloat16 amp"


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_an_amp_cross_entropy_passes_amp_and_its_16_bit_loss_is_native_not_amp(dtype: str) -> None:
    corpus = lossref.Corpus.load()
    cases = plain_ce_cases(corpus, dtype)
    assert len(cases) >= 10
    amp = lossref.Results(corpus, "numpy amp", pipeline="amp")
    rounded = {p: lossref.Results(corpus, "numpy amp, loss in 16 bits", pipeline=p) for p in ("amp", "native")}
    for c in cases:
        amp.add(c, *amp_cross_entropy(c))
        for r in rounded.values():
            r.add(c, *amp_cross_entropy(c, loss_in_16_bits=True))
    # the textbook formulas (lse − z_y, softmax − onehot) are named UNSTABLE where the target
    # dominates, and only there; everything else passes
    for r in (amp, rounded["native"]):
        report = lossref.check(r)
        for c in report.cases:
            if c["verdict"] != "pass" and c["verdict"] != "not run":
                assert c["verdict"] == "UNSTABLE" and "edge:dominant-target" in c["tags"], str(report)
    report = lossref.check(rounded["amp"])
    assert not report.passed
    failing = [g for c in report.cases for g in c["groups"] if g["verdict"] == "FAIL"]
    assert failing and all(g["group"] == "outputs/loss" for g in failing)
    assert all(f"within the tolerance of `{dtype} native`" in g["tier_note"] for g in failing)
    d = next(d for d in report.diagnoses if d["loss"] == "softmax_ce")
    assert "computed in the `native` pipeline, not the declared `amp`" in d["text"]


def test_a_declared_16_bit_accumulation_fails_by_design() -> None:
    corpus = lossref.Corpus.load()
    c = plain_ce_cases(corpus, "bfloat16")[0]
    results = lossref.Results(corpus, "accumulates in bf16", pipeline="accumulate16")
    results.add(c, *amp_cross_entropy(c))
    report = lossref.check(results)
    assert not report.passed
    assert all("fails by design" in g["tier_note"] for g in report.case(c.id)["groups"])
