"""Hypothesis strategies for valid lossref cases (SPEC §3), edge regimes included.

``cases(loss="cosface", dtype="float32")`` draws SPEC §3 dicts (inputs as Python lists of
floats; every number exact in the dtype) that :func:`lossref.eval` answers, so that a loss
can be property-tested against the certified reference on inputs the corpus never held::

    from hypothesis import given
    import lossref, lossref.strategies as ls

    @given(ls.cases(loss="cosface", dtype="float64"))
    def test_my_cosface(case):
        want = lossref.eval(case)
        got = my_cosface(**case["inputs"], **case["params"])
        ...

Regimes (``regime=`` restricts them): ``random``, ``near-tie`` and ``dominant`` logits,
``acos-near-1``, ``acos-near-minus-1``, ``easy-switch`` (cos θ near 0), ``thmm-switch``
(θ near π − m), ``tiny-norm``, ``huge-norm`` and ``exact-zero`` (a target at 30°…150° with a
class pair ±e orthogonal to the feature, where gradients vanish exactly); for
``softmax_ce``'s options (SPEC §5) ``wide-weights`` (class weights from 1e−6 to 1e6 with
zeros), ``mostly-ignored`` (every row but one carrying ``ignore_index``), ``smoothing-near-0``
and ``smoothing-1`` (ε), ``soft-one-hot``, ``soft-unnormalized`` (rows not summing to 1) and
``soft-zero-at-tiny-p`` (targets 0 where the logit is 800 … 5000 below its row). In the
other regimes a ``softmax_ce`` case draws each option at random. A regime that does not
apply to a loss is not drawn for it.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

try:
    from hypothesis import strategies as st
except ImportError as e:  # pragma: no cover
    raise ImportError("lossref.strategies needs hypothesis: pip install hypothesis") from e

from . import FAMILIES, LOSSES, _did_you_mean, switch_points  # the catalogue of the Rust library

NORMALIZED = list(FAMILIES["normalized"])
ANGLE_REGIMES = ["acos-near-1", "acos-near-minus-1", "easy-switch", "thmm-switch", "tiny-norm", "huge-norm", "exact-zero"]
LOGIT_REGIMES = ["near-tie", "dominant"]
OPTION_REGIMES = [
    "wide-weights",
    "mostly-ignored",
    "smoothing-near-0",
    "smoothing-1",
    "soft-one-hot",
    "soft-unnormalized",
    "soft-zero-at-tiny-p",
]

# feature rows at 30°, 45°, 60°, 90°, 120°, 135°, 150° to e₁ (exact cos² θ)
_SPECIAL = [[3, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 1], [0, 1, 1, 0], [-1, 1, 1, 1], [-1, 1, 0, 0], [-3, 1, 1, 1]]


def _narrow(x: float, dtype: str) -> float:
    return float(np.float32(x)) if dtype == "float32" else float(x)


def regimes_for(loss: str) -> List[str]:
    """The regimes that apply to `loss`, by its family in the catalogue."""
    family = next((name for name, losses in FAMILIES.items() if loss in losses), None)
    regimes = {
        "softmax": ["random"] + LOGIT_REGIMES,
        "softmax_ce": ["random"] + LOGIT_REGIMES + OPTION_REGIMES,
        "distill": ["random"] + LOGIT_REGIMES,
        "focal": ["random"] + LOGIT_REGIMES,
        "center": ["random"],
        "psi": ["random"] + ANGLE_REGIMES,
        "normalized": ["random"] + ANGLE_REGIMES,
        "subcenter": ["random", "thmm-switch", "tiny-norm", "huge-norm"],
        "adaptive": ["random", "thmm-switch", "easy-switch"],
    }
    if family not in regimes:
        raise ValueError(f"lossref.strategies has no regimes for the loss {loss!r} (family {family!r})")
    return regimes[family]


@st.composite
def _logits(draw: Any, n: int, c: int, regime: str, dtype: str, labels: Sequence[int]) -> List[List[float]]:
    small = st.floats(-8, 8, allow_nan=False, allow_infinity=False)
    rows = [[draw(small) for _ in range(c)] for _ in range(n)]
    if regime == "near-tie":
        base = draw(small)
        rows = [[base * (1 + draw(st.floats(-1e-6, 1e-6))) for _ in range(c)] for _ in range(n)]
    elif regime == "dominant":
        top = 60.0 if dtype == "float32" else 600.0
        for row, y in zip(rows, labels):
            row[y] += draw(st.floats(20.0, top))
    return [[_narrow(v, dtype) for v in row] for row in rows]


def _softmax_params(draw: Any, f: Any, reduction: str) -> Dict[str, Any]:
    return {"temperature": f(draw(st.sampled_from([1.0, 0.5, 2.0, 4.0])))}


def _softmax_ce_params(draw: Any, f: Any, reduction: str) -> Dict[str, Any]:
    return {"reduction": reduction}


def _focal_params(draw: Any, f: Any, reduction: str) -> Dict[str, Any]:
    return {"gamma": f(draw(st.sampled_from([0.0, 0.5, 1.0, 2.0, 2.5, 5.0]))), "reduction": reduction}


def _poly1_params(draw: Any, f: Any, reduction: str) -> Dict[str, Any]:
    return {"epsilon": f(draw(st.sampled_from([-1.0, 0.0, 1.0, 2.0]))), "reduction": reduction}


def _distill_params(draw: Any, f: Any, reduction: str) -> Dict[str, Any]:
    return {
        "temperature": f(draw(st.sampled_from([1.0, 2.0, 4.0]))),
        "alpha": f(draw(st.sampled_from([0.0, 0.5, 0.9, 1.0]))),
        "soft": draw(st.sampled_from(["kl", "ce"])),
        "reduction": reduction,
    }


def _psi_params(draw: Any, f: Any, reduction: str) -> Dict[str, Any]:
    return {"margin": draw(st.integers(1, 6)), "lambda": f(draw(st.sampled_from([0.0, 0.5, 5.0]))), "reduction": reduction}


def _center_params(draw: Any, f: Any, reduction: str) -> Dict[str, Any]:
    return {"alpha": f(draw(st.sampled_from([0.5, 0.25]))), "reduction": reduction}


def _normface_params(draw: Any, f: Any, reduction: str) -> Dict[str, Any]:
    return {"scale": f(draw(st.sampled_from([1.0, 16.0, 30.0]))), "reduction": reduction}


def _cosface_params(draw: Any, f: Any, reduction: str) -> Dict[str, Any]:
    return {"scale": f(draw(st.sampled_from([30.0, 64.0]))), "margin": f(draw(st.sampled_from([0.35, 0.2]))), "reduction": reduction}


def _arcface_params(draw: Any, f: Any, reduction: str) -> Dict[str, Any]:
    return {
        "scale": f(draw(st.sampled_from([30.0, 64.0]))),
        "margin": f(draw(st.sampled_from([0.5, 0.3]))),
        "boundary": draw(st.sampled_from(["none", "thmm", "easy"])),
        "margin_grad": draw(st.sampled_from(["full", "detached"])),
        "reduction": reduction,
    }


def _combined_params(draw: Any, f: Any, reduction: str) -> Dict[str, Any]:
    return {
        "scale": f(64.0),
        "m1": f(draw(st.sampled_from([1.0, 1.35, 2.0]))),
        "m2": f(draw(st.sampled_from([0.5, 0.25, 0.0]))),
        "m3": f(draw(st.sampled_from([0.0, 0.1]))),
        "reduction": reduction,
    }


def _subcenter_params(draw: Any, f: Any, reduction: str) -> Dict[str, Any]:
    return dict(_arcface_params(draw, f, reduction), subcenters=draw(st.sampled_from([1, 2, 3])))


def _curricularface_params(draw: Any, f: Any, reduction: str) -> Dict[str, Any]:
    return {
        "scale": f(draw(st.sampled_from([16.0, 32.0, 64.0]))),
        "margin": f(draw(st.sampled_from([0.5, 0.3]))),
        "momentum": f(draw(st.sampled_from([0.01, 0.3]))),
        "reduction": reduction,
    }


def _adaface_params(draw: Any, f: Any, reduction: str) -> Dict[str, Any]:
    return {
        "scale": f(draw(st.sampled_from([32.0, 64.0]))),
        "margin": f(0.4),
        "h": f(draw(st.sampled_from([0.333, 0.0]))),
        "t_alpha": f(draw(st.sampled_from([0.01, 0.5]))),
        "reduction": reduction,
    }


def _magface_params(draw: Any, f: Any, reduction: str) -> Dict[str, Any]:
    # l_a and u_a around the drawn feature norms (0.5 … 2), so that the clamp is met
    return {
        "scale": f(draw(st.sampled_from([32.0, 64.0]))),
        "l_a": f(0.75),
        "u_a": f(1.5),
        "l_m": f(0.45),
        "u_m": f(0.8),
        "lambda_g": f(draw(st.sampled_from([0.0, 5.0, 35.0]))),
        "boundary": draw(st.sampled_from(["easy", "none", "thmm"])),
        "reduction": reduction,
    }


def _adacos_params(draw: Any, f: Any, reduction: str) -> Dict[str, Any]:
    scale = draw(st.sampled_from([None, 2.0, 4.0]))
    return {"reduction": reduction} if scale is None else {"scale": f(scale), "reduction": reduction}


#: The parameters drawn for each loss, one entry per loss of the catalogue
#: (``tests/test_strategies.py`` fails when a loss has none; nothing falls through to
#: another loss's parameters).
PARAMS = {
    "softmax": _softmax_params,
    "softmax_ce": _softmax_ce_params,
    "distill": _distill_params,
    "lsoftmax": _psi_params,
    "sphereface": _psi_params,
    "center": _center_params,
    "normface": _normface_params,
    "cosface": _cosface_params,
    "amsoftmax": _cosface_params,
    "arcface": _arcface_params,
    "combined": _combined_params,
    "focal": _focal_params,
    "poly1": _poly1_params,
    "subcenter_arcface": _subcenter_params,
    "curricularface": _curricularface_params,
    "adaface": _adaface_params,
    "magface": _magface_params,
    "adacos": _adacos_params,
}


def _params(draw: Any, loss: str, dtype: str) -> Dict[str, Any]:
    if loss not in PARAMS:
        raise ValueError(f"lossref.strategies has no parameters for the loss {loss!r}; it knows {sorted(PARAMS)}")
    reduction = draw(st.sampled_from(["mean", "sum"]))
    return PARAMS[loss](draw, lambda x: _narrow(x, dtype), reduction)


def _options(draw: Any, regime: str, dtype: str, params: Dict[str, Any], inputs: Dict[str, Any], labels: List[int]) -> None:
    """SPEC §5's options of a softmax_ce case, in place: as `regime` says, or each at random."""
    n, c = len(inputs["logits"]), len(inputs["logits"][0])
    f = lambda x: _narrow(x, dtype)  # noqa: E731
    anything = regime in ["random"] + LOGIT_REGIMES
    soft = regime.startswith("soft-") or (anything and draw(st.booleans()))
    if regime == "wide-weights" or (anything and draw(st.booleans())):
        lo, hi = (-6, 6) if regime == "wide-weights" else (-1, 1)
        weights = [f(10.0 ** draw(st.floats(lo, hi))) if draw(st.integers(0, 4)) else 0.0 for _ in range(c)]
        if not soft and params.get("reduction") == "mean":
            weights[labels[0]] = max(weights[labels[0]], 1.0)  # a mean needs Σ w_y > 0
        inputs["weight"] = weights
    if regime == "smoothing-near-0":
        params["label_smoothing"] = f(10.0 ** draw(st.floats(-8, -3)))
    elif regime == "smoothing-1":
        params["label_smoothing"] = 1.0
    elif anything and draw(st.booleans()):
        params["label_smoothing"] = f(draw(st.sampled_from([0.1, 0.25, 0.5, 1.0])))
    if soft:
        rows = []
        for i in range(n):
            raw = [draw(st.floats(0.0, 1.0)) for _ in range(c)]
            if regime == "soft-one-hot":
                raw = [1.0 if j == labels[i] else 0.0 for j in range(c)]
            elif regime == "soft-zero-at-tiny-p":
                top = max(inputs["logits"][i])
                for j in range(c):
                    if j != labels[i] and draw(st.booleans()):
                        raw[j] = 0.0
                        inputs["logits"][i][j] = f(top - draw(st.floats(800.0, 5000.0)))
            elif regime != "soft-unnormalized":
                total = sum(raw) or 1.0
                raw = [v / total for v in raw]
            rows.append([f(v) for v in raw])
        inputs["targets"] = rows
        return
    shown: List[int] = list(labels)
    if regime == "mostly-ignored" or (anything and n > 1 and draw(st.booleans())):
        ignore = draw(st.sampled_from([-100, 0]))
        params["ignore_index"] = ignore
        keep = 1 if regime == "mostly-ignored" else n - 1
        shown = [(1 if y == ignore else y) if i < keep else ignore for i, y in enumerate(labels)]
        if "weight" in inputs and params.get("reduction") == "mean":
            inputs["weight"][shown[0]] = max(inputs["weight"][shown[0]], 1.0)
    inputs["labels"] = shown


def _target_cos(draw: Any, regime: str, loss: str, params: Dict[str, Any]) -> float:
    tiny = lambda: 10.0 ** draw(st.floats(-12, -2))  # noqa: E731
    if regime == "acos-near-1":
        return 1.0 - tiny()
    if regime == "acos-near-minus-1":
        return -1.0 + tiny()
    if regime in ("easy-switch", "thmm-switch"):
        # near the family's own points (lossref.switch_points): the switch of that name where
        # the rule has one, else any point of the rule (ψ's kπ/m, acos's poles)
        points = switch_points(loss, params)
        named = [p for p in points if p["tag"] == "edge:" + regime]
        if not (named or points):
            # a rule without switches (ψ_1 = cos θ): nothing to be near
            return draw(st.floats(-0.95, 0.95))
        point = draw(st.sampled_from(named or points))
        side = draw(st.sampled_from([-1.0, 1.0]))
        if point["cos"] == 0.0:
            return side * tiny()
        return max(-1.0, min(1.0, math.cos(point["theta"] + side * tiny())))
    return draw(st.floats(-0.95, 0.95))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


# the corpus's tag names for the regimes (SPEC §4), accepted as well
_TAG_ALIASES = {"edge:dominant-target": "dominant", "dominant-target": "dominant"}


def regime_name(regime: str) -> str:
    """`regime` as strategies names it: a corpus tag (``edge:dominant-target``,
    ``edge:acos-near-1``) or the short name (``dominant``, ``acos-near-1``). Raises
    ValueError for a name no loss has, with the nearest valid one."""
    if not isinstance(regime, str):
        raise TypeError(f"lossref.strategies: regime must be a str, got {type(regime).__name__}")
    name = _TAG_ALIASES.get(regime, regime)
    if name.startswith("edge:"):
        name = _TAG_ALIASES.get(name[len("edge:") :], name[len("edge:") :])
    known = ["random"] + LOGIT_REGIMES + ANGLE_REGIMES + OPTION_REGIMES
    if name not in known:
        hint = _did_you_mean(name, known + ["edge:" + k for k in known if k != "random"])
        raise ValueError(f"lossref.strategies: unknown regime {regime!r}{hint}; the regimes are {', '.join(known)}")
    return name


def cases(loss: Optional[str] = None, dtype: Optional[str] = None, regime: Optional[str] = None) -> Any:
    """A strategy for valid SPEC §3 cases of `loss` (default: any to which `regime` applies)
    in `dtype` (``float32`` or ``float64``; default: either), drawn in `regime` (default:
    any that applies; a corpus tag name such as ``edge:dominant-target`` is accepted). An
    unknown loss, dtype or regime, or a regime that does not apply to `loss`, raises
    ValueError at once."""
    if loss is not None and loss not in LOSSES:
        raise ValueError(f"lossref.strategies: unknown loss {loss!r}{_did_you_mean(loss, LOSSES)}")
    if dtype not in (None, "float32", "float64"):
        raise ValueError(f"lossref.strategies: dtype must be 'float32' or 'float64', got {dtype!r}")
    if regime is not None:
        regime = regime_name(regime)
        if loss is not None and regime not in regimes_for(loss):
            raise ValueError(
                f"lossref.strategies: the regime {regime!r} does not apply to {loss!r}; its regimes are {', '.join(regimes_for(loss))}"
            )
    losses = [loss] if loss is not None else [name for name in LOSSES if regime is None or regime in regimes_for(name)]
    return _cases(losses, dtype, regime)


@st.composite
def _cases(draw: Any, losses: List[str], dtype: Optional[str], regime: Optional[str]) -> Dict[str, Any]:
    loss = draw(st.sampled_from(losses))
    dtype = dtype or draw(st.sampled_from(["float32", "float64"]))
    regime = regime or draw(st.sampled_from(regimes_for(loss)))
    params = _params(draw, loss, dtype)
    # AdaFace's σ is an unbiased standard deviation: N ≥ 2 (SPEC §5)
    n = draw(st.integers(2 if loss == "adaface" else 1, 3))
    c, d = draw(st.integers(2, 6)), draw(st.integers(2, 5))
    labels = [draw(st.integers(0, c - 1)) for _ in range(n)]
    if loss in ("softmax", "softmax_ce", "focal", "poly1"):
        logit_regime = regime if regime in ["random"] + LOGIT_REGIMES else "random"
        logits = draw(_logits(n, c, logit_regime, dtype, labels))
        inputs: Dict[str, Any] = {"logits": logits}
        if loss == "softmax_ce":
            _options(draw, regime, dtype, params, inputs, labels)
        elif loss != "softmax":
            inputs["labels"] = labels
            if loss == "focal" and draw(st.booleans()):
                inputs["alpha"] = [_narrow(draw(st.sampled_from([0.0, 0.25, 0.75, 1.0, 4.0])), dtype) for _ in range(c)]
        return {"loss": loss, "params": params, "inputs": inputs}
    if loss == "distill":
        student = draw(_logits(n, c, regime, dtype, labels))
        teacher = draw(_logits(n, c, "random", dtype, labels))
        return {"loss": loss, "params": params, "inputs": {"student_logits": student, "teacher_logits": teacher, "labels": labels}}
    normal = st.floats(-2, 2, allow_nan=False).filter(lambda x: abs(x) > 1e-3)
    if loss not in FAMILIES["center"] + FAMILIES["psi"] + FAMILIES["normalized"] + FAMILIES["subcenter"] + FAMILIES["adaptive"]:
        raise ValueError(f"lossref.strategies cannot draw the inputs of the loss {loss!r}")
    if loss == "center":
        x = [[_narrow(draw(normal), dtype) for _ in range(d)] for _ in range(n)]
        centers = [[_narrow(draw(normal), dtype) for _ in range(d)] for _ in range(c)]
        return {"loss": loss, "params": params, "inputs": {"features": x, "centers": centers, "labels": labels}}
    if regime == "exact-zero":
        feature = draw(st.sampled_from(_SPECIAL))
        weights = [[2.0, 0, 0, 0, 0], [0, 0, 0, 0, 1.0], [0, 0, 0, 0, -1.0], [1.0, 0, -2.0, 0, 0]]
        x = [[float(v) for v in feature] + [0.0]]
        if params.get("boundary") == "easy" and feature == [0, 1, 1, 0]:
            params["margin_grad"] = "detached"  # the `easy` switch at exactly cos θ = 0
        return {"loss": loss, "params": params, "inputs": {"features": x, "weights": weights, "labels": [0]}}
    # sub-center ArcFace: K rows per class, each target placed against its class's first
    k = int(params.get("subcenters", 1)) if loss == "subcenter_arcface" else 1
    w = [[draw(normal) for _ in range(d)] for _ in range(c * k)]
    # ψ logits grow with ‖x‖‖w‖ and are computed (not binary64 points): a target that
    # dominates its row by a gap G leaves a loss near e^−G that the certified reference
    # resolves beside the logits' enclosures only with about 1.44·G bits. Beyond the
    # 16 384-bit cap (G ≳ 10⁴) such values come back with tier `bounded` (SPEC §3): their
    # binary64/binary32 roundings (zeros) are certified and their decimal is an enclosure.
    huge = (1e10, 1e12) if loss in NORMALIZED + ["subcenter_arcface"] else (1e3, 1e5)
    lo, hi = {"tiny-norm": (1e-12, 1e-10), "huge-norm": huge}.get(regime, (0.5, 2.0))
    x = []
    for y in labels:
        cos = _target_cos(draw, regime, loss, params)
        what = _unit(np.array(w[y * k]))
        u = np.array([draw(st.floats(-1, 1)) for _ in range(d)])
        u = u - (u @ what) * what
        if np.linalg.norm(u) < 1e-3:
            u = np.roll(what, 1) - (np.roll(what, 1) @ what) * what
        if np.linalg.norm(u) < 1e-6:
            u = np.eye(d)[0] - what[0] * what
        row = draw(st.floats(lo, hi)) * (cos * what + math.sqrt(max(0.0, 1 - cos * cos)) * _unit(u))
        x.append([_narrow(v, dtype) for v in row])
    w = [[_narrow(v, dtype) for v in row] for row in w]
    angular = loss in ("arcface", "combined", "subcenter_arcface", "curricularface", "magface")
    if angular and params.get("margin_grad") != "detached":
        # a target exactly (anti)parallel to its weight is an undefined point (SPEC §1)
        for i, y in enumerate(labels):
            xi, wy = np.array(x[i]), np.array(w[y * k])
            if abs(abs(xi @ wy) - np.linalg.norm(xi) * np.linalg.norm(wy)) == 0.0:
                x[i][0] = _narrow(x[i][0] + 0.25, dtype)
    inputs = {"features": x, "weights": w, "labels": labels}
    # SPEC §5's running state before the step
    if loss == "curricularface":
        inputs["t"] = _narrow(draw(st.sampled_from([0.0, 0.5, 1.0])), dtype)
    if loss == "adaface":
        inputs["batch_mean"] = _narrow(draw(st.sampled_from([20.0, 1.0])), dtype)
        inputs["batch_std"] = _narrow(draw(st.sampled_from([100.0, 0.5])), dtype)
    if loss in ("cosface", "amsoftmax", "arcface", "combined") and draw(st.booleans()):
        # SPEC §5: per-sample margins around the rule's (ElasticFace) and a class subset
        # holding every label (Partial FC)
        m = params.get("margin", params.get("m2", 0.5))
        inputs["margins"] = [_narrow(m + draw(st.floats(-0.1, 0.1)), dtype) for _ in labels]
        others = [j for j in range(c) if j not in labels and draw(st.booleans())]
        subset = sorted(set(labels) | set(others))
        if len(subset) < 2:
            subset = sorted(set(subset) | {next(j for j in range(c) if j not in subset)})
        inputs["classes"] = subset
    return {"loss": loss, "params": params, "inputs": inputs}
