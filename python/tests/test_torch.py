"""The PyTorch route (runs when torch is importable; CI runs PyTorch in the ecosystem
table's environment instead, scripts/ecosystem): a CosFace written with
torch.nn.functional, checked over the corpus in float32 and float64. It fails only where
F.normalize's ε = 1e-12 changes the answer (edge:tiny-norm) and where its float32 margin
does (edge:param-precision), each with its diagnosis; where it is UNSTABLE the report says
which formula. PyTorch on 16-bit tensors, with and without autocast, is judged in
its precision tier (SPEC §6)."""

from __future__ import annotations

import pytest

import lossref

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch --index-url https://download.pytorch.org/whl/cpu)")


def torch_cosface(inputs: dict, params: dict) -> tuple:
    dtype = torch.float32 if inputs["features"].dtype.itemsize == 4 else torch.float64
    x = torch.tensor(inputs["features"], dtype=dtype, requires_grad=True)
    w = torch.tensor(inputs["weights"], dtype=dtype, requires_grad=True)
    y = torch.tensor(inputs["labels"])
    # SPEC §5: Partial FC's `weight[classes]` with the labels renumbered, and ElasticFace's
    # per-sample margins as a column of the model's dtype
    rows = w
    if "classes" in inputs:
        classes = torch.tensor(inputs["classes"])
        rows, y = w[classes], torch.searchsorted(classes, y)
    m = torch.tensor(inputs["margins"], dtype=dtype)[:, None] if "margins" in inputs else params.get("margin", 0.35)
    cos = torch.nn.functional.normalize(x, dim=1) @ torch.nn.functional.normalize(rows, dim=1).T
    logits = params.get("scale", 64.0) * (cos - m * torch.nn.functional.one_hot(y, rows.shape[0]))
    loss = torch.nn.functional.cross_entropy(logits, y, reduction=params.get("reduction", "mean"))
    loss.backward()
    return {"loss": loss.detach().numpy()}, {"features": x.grad.numpy(), "weights": w.grad.numpy()}


def test_a_torch_cosface_never_fails() -> None:
    corpus = lossref.Corpus.load()
    results = lossref.Results("torch cosface")
    for case in corpus.cases(loss=["cosface", "amsoftmax"], dtype=["float32", "float64"]):
        outputs, gradients = torch_cosface(case.inputs, case.params)
        results.add(case, outputs=outputs, gradients=gradients)
    report = lossref.check(results)
    # Two conventions of this idiom, each named by the diagnosis: F.normalize divides by
    # max(‖v‖, 1e-12) (the tiny-norm cases), and `m * F.one_hot(y)` multiplies an int64
    # tensor by a Python float, which gives float32 (torch's default dtype): the margin is
    # held in float32 inside a float64 model (the f64 param-precision cases). Every other
    # case passes or is UNSTABLE.
    where = ("edge:tiny-norm", "edge:param-precision")
    verdicts = {c["verdict"] for c in report.cases if c["verdict"] != "not run" and not set(where) & set(c["tags"])}
    assert verdicts <= {"pass", "UNSTABLE"}, str(report)
    for loss in ["cosface", "amsoftmax"]:
        text = report.diagnosis(loss)
        assert text is not None and "max(‖v‖, ε) with ε = 1e-12" in text, text
        assert "the parameter m is held in float32 (m 0.35 → 0.3499999940395355)" in text, text
        assert "no known convention" not in text, text


def _cross_entropy_cases() -> list:
    """Well-conditioned random cases (logits normal(0, 2), N = 5, C = 7) of every
    combination of SPEC §5's options: weights or none, ignore_index (PyTorch's −100 or a
    class index) or none, ε ∈ {0, 0.1, 1}, labels or soft targets, `mean` and `sum`."""
    import itertools

    import numpy as np

    rng = np.random.default_rng(20261205)
    cases = []
    for weighted, ignore, eps, soft, reduction in itertools.product(
        [False, True], [None, -100, 3], [0.0, 0.1, 1.0], [False, True], ["mean", "sum"]
    ):
        if soft and ignore is not None:
            continue  # refused by both (SPEC §5; PyTorch raises)
        n, c = 5, 7
        logits = rng.normal(0.0, 2.0, (n, c))
        params = {"reduction": reduction, "label_smoothing": eps}
        inputs = {"logits": logits}
        if weighted:
            inputs["weight"] = rng.uniform(0.1, 3.0, c)
        if soft:
            t = rng.uniform(0.0, 1.0, (n, c))
            inputs["targets"] = t / t.sum(axis=1, keepdims=True)
        else:
            labels = rng.integers(0, c, n)
            if ignore is not None:
                params["ignore_index"] = ignore
                labels[labels == ignore] = (ignore + 1) % c if ignore >= 0 else labels[labels == ignore]
                labels[[1, 3]] = ignore
            inputs["labels"] = labels
        cases.append({"loss": "softmax_ce", "params": params, "inputs": inputs})
    return cases


def test_torch_cross_entropy_in_float64_agrees_with_the_reference_to_its_rounding() -> None:
    """`F.cross_entropy(z, y, weight, ignore_index, label_smoothing, reduction)` in float64,
    and its autograd gradient, against lossref's certified values on every combination of
    options: within 16 ulps of the magnitudes each value is computed from (the loss's
    Σ|a_c log p_c|/D; a gradient entry's (A·p_j + a_j)/D), which is float64 rounding, not a
    tolerance of the formula."""
    import numpy as np

    u = np.finfo(np.float64).eps
    for case in _cross_entropy_cases():
        p, x = case["params"], case["inputs"]
        z = torch.tensor(x["logits"], dtype=torch.float64, requires_grad=True)
        kwargs = {"label_smoothing": p["label_smoothing"], "reduction": p["reduction"]}
        if "weight" in x:
            kwargs["weight"] = torch.tensor(x["weight"], dtype=torch.float64)
        if "targets" in x:
            y = torch.tensor(x["targets"], dtype=torch.float64)
        else:
            y = torch.tensor(x["labels"], dtype=torch.long)
            kwargs["ignore_index"] = p.get("ignore_index", -100)
        loss = torch.nn.functional.cross_entropy(z, y, **kwargs)
        loss.backward()
        ref = lossref.eval(case)
        want_loss = float(ref.binary64["outputs"]["loss"])
        want_grad = np.asarray(ref.binary64["gradients"]["logits"])
        # the magnitudes, from the options written out independently here
        n, c = x["logits"].shape
        logp = torch.log_softmax(torch.tensor(x["logits"]), dim=1).numpy()
        w = np.asarray(x.get("weight", np.ones(c)))
        eps = p["label_smoothing"]
        if "targets" in x:
            a = w * ((1 - eps) * np.asarray(x["targets"]) + eps / c)
            kept = np.ones(n, dtype=bool)
            d = n
        else:
            labels = np.asarray(x["labels"])
            kept = labels != p.get("ignore_index", -100)
            onehot = np.zeros((n, c))
            onehot[np.arange(n)[kept], labels[kept]] = 1.0
            a = ((1 - eps) * onehot * w + eps / c * w) * kept[:, None]
            d = float((w[labels[kept]]).sum())
        if p["reduction"] == "sum":
            d = 1.0
        loss_scale = float(np.abs(a * logp).sum()) / d
        grad_scale = (a.sum(axis=1, keepdims=True) * np.exp(logp) + a) / d
        what = f"{p} {sorted(x)}"
        assert abs(float(loss.detach()) - want_loss) <= 16 * u * loss_scale, (what, float(loss.detach()), want_loss)
        err = np.abs(z.grad.numpy() - want_grad)
        assert np.all(err <= 16 * u * grad_scale + 1e-300), (what, float((err / grad_scale).max() / u))


def _torch_cross_entropy_16_bit(case: lossref.CorpusCase, autocast: bool) -> tuple:
    """F.cross_entropy on the case's 16-bit logits as a leaf of that dtype (bfloat16 through
    float64, which holds it exactly: torch takes no ml_dtypes array), inside CPU bfloat16
    autocast or not."""
    import contextlib

    import numpy as np

    dtype = torch.bfloat16 if case.dtype == "bfloat16" else torch.float16
    z = torch.tensor(case.inputs["logits"].astype(np.float64), dtype=dtype, requires_grad=True)
    y = torch.tensor(case.inputs["labels"])
    scope = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    with scope:
        loss = torch.nn.functional.cross_entropy(z, y, reduction=case.params.get("reduction", "mean"))
    loss.backward()
    return {"loss": loss.detach().float().numpy()}, {"logits": z.grad.float().numpy()}


def test_torch_16_bit_cross_entropy_is_judged_in_its_own_tier_and_named_in_a_stricter_one() -> None:
    """PyTorch on bf16/f16 tensors passes `native`; declared `amp` it fails, and the
    diagnosis says it is the `native` pipeline. Under CPU autocast (float32 cross-entropy,
    a float32 loss) it passes `amp`, UNSTABLE only by a named formula on dominant targets."""
    corpus = lossref.Corpus.load()
    cases = corpus.cases(loss="softmax_ce", dtype=["bfloat16", "float16"], options=False)
    native = {p: lossref.Results(corpus, "torch bf16 tensors", pipeline=p) for p in ("native", "amp")}
    for case in cases:
        for r in native.values():
            r.add(case, *_torch_cross_entropy_16_bit(case, autocast=False))
    assert lossref.check(native["native"]).passed
    strict = lossref.check(native["amp"])
    assert not strict.passed
    assert strict.diagnosis("softmax_ce").startswith("matches if computed in the `native` pipeline, not the declared `amp`"), strict.diagnosis("softmax_ce")
    autocast = lossref.Results(corpus, "torch autocast", pipeline="amp")
    for case in (c for c in cases if c.dtype == "bfloat16"):
        autocast.add(case, *_torch_cross_entropy_16_bit(case, autocast=True))
    report = lossref.check(autocast)
    for c in report.cases:
        if c["verdict"] not in ("pass", "not run"):
            assert c["verdict"] == "UNSTABLE" and "edge:dominant-target" in c["tags"], c
