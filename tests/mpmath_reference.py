#!/usr/bin/env python3
"""An independent reference for softmax, softmax_ce and the normalized-margin family
(normface, cosface, amsoftmax, arcface, combined), in mpmath (no MPFR, no Rust).

Reads one SPEC §3 case per line (JSON) on standard input and prints, per line, a JSON
object with the same keys as `lossref eval` ("outputs", "gradients"), every value a
decimal string of 40 significant digits. It evaluates the literal definitions
(e^{z_j/T} / Σ e^{z_k/T}, ln Σ e^{z_k} − z_y, p − onehot) at 1500 decimal digits, which
covers the cancellation of a loss of 1e−300 beside logits of 1e3.
For the normalized-margin family the loss is the literal formula (acos, cos, the
`boundary` branch), and every gradient is a central difference with step 1e-120 at 400
digits (truncation error ~1e-240): nothing is shared with lossref's analytic gradients.
`margin_grad = detached` differentiates with the target offset g − cos θ held constant.
Used by tests/mpmath_crosscheck.rs.
"""
import json
import sys

import mpmath

mpmath.mp.dps = 1500


def s(x):
    return mpmath.nstr(x, 40, min_fixed=1, max_fixed=0)


def softmax(case):
    t = mpmath.mpf(case.get("params", {}).get("temperature", 1))
    probs, logs = [], []
    for row in case["inputs"]["logits"]:
        e = [mpmath.exp(mpmath.mpf(z) / t) for z in row]
        total = mpmath.fsum(e)
        probs.append([s(x / total) for x in e])
        logs.append([s(mpmath.mpf(z) / t - mpmath.log(total)) for z in row])
    return {"outputs": {"probabilities": probs, "log_probabilities": logs}, "gradients": {}}


def softmax_ce(case):
    mean = case.get("params", {}).get("reduction", "mean") == "mean"
    logits, labels = case["inputs"]["logits"], case["inputs"]["labels"]
    n = len(logits)
    scale = mpmath.mpf(n) if mean else mpmath.mpf(1)
    loss, grad = mpmath.mpf(0), []
    for row, y in zip(logits, labels):
        e = [mpmath.exp(mpmath.mpf(z)) for z in row]
        total = mpmath.fsum(e)
        loss += mpmath.log(total) - mpmath.mpf(row[y])
        grad.append([s((x / total - (1 if j == y else 0)) / scale) for j, x in enumerate(e)])
    return {"outputs": {"loss": s(loss / scale)}, "gradients": {"logits": grad}}


DEFAULTS = {
    "normface": {"scale": 16},
    "cosface": {"scale": 64, "margin": 0.35},
    "amsoftmax": {"scale": 30, "margin": 0.35},
    "arcface": {"scale": 64, "margin": 0.5, "boundary": "none", "margin_grad": "full"},
    "combined": {"scale": 64, "m1": 1, "m2": 0.5, "m3": 0},
}


def target(loss, p, c):
    """g(θ) of SPEC §1 for cos θ = c."""
    mpf = mpmath.mpf
    if loss == "normface":
        return c
    if loss in ("cosface", "amsoftmax"):
        return c - mpf(p["margin"])
    if loss == "combined":
        return mpmath.cos(mpf(p["m1"]) * mpmath.acos(c) + mpf(p["m2"])) - mpf(p["m3"])
    m = mpf(p["margin"])
    arc = mpmath.cos(mpmath.acos(c) + m)
    if p["boundary"] == "none":
        return arc
    if p["boundary"] == "thmm":
        return arc if c > mpmath.cos(mpmath.pi - m) else c - m * mpmath.sin(m)
    return arc if c > 0 else c


def normalized_loss(loss, p, x, w, labels, shifts=None):
    s = mpmath.mpf(p["scale"])
    total = mpmath.mpf(0)
    for i, (xi, y) in enumerate(zip(x, labels)):
        nx = mpmath.sqrt(mpmath.fsum(a * a for a in xi))
        logits = []
        for j, wj in enumerate(w):
            c = mpmath.fsum(a * b for a, b in zip(xi, wj)) / (nx * mpmath.sqrt(mpmath.fsum(b * b for b in wj)))
            if j == y:
                c = c + shifts[i] if shifts is not None else target(loss, p, c)
            logits.append(s * c)
        total += mpmath.log(mpmath.fsum(mpmath.exp(z) for z in logits)) - logits[y]
    return total / len(x) if p.get("reduction", "mean") == "mean" else total


def normalized(case):
    mpf = mpmath.mpf
    loss = case["loss"]
    p = dict(DEFAULTS[loss], **case.get("params", {}))
    inputs = case["inputs"]
    x = [[mpf(v) for v in row] for row in inputs["features"]]
    w = [[mpf(v) for v in row] for row in inputs["weights"]]
    labels = inputs["labels"]
    with mpmath.workdps(400):
        shifts = None
        if loss == "arcface" and p["margin_grad"] == "detached":
            shifts = []
            for xi, y in zip(x, labels):
                c = mpmath.fsum(a * b for a, b in zip(xi, w[y])) / (
                    mpmath.sqrt(mpmath.fsum(a * a for a in xi)) * mpmath.sqrt(mpmath.fsum(b * b for b in w[y])))
                shifts.append(target(loss, p, c) - c)
        value = normalized_loss(loss, p, x, w, labels)
        h = mpf(10) ** -120

        def derivative(mat, i, k, f):
            old = mat[i][k]
            mat[i][k] = old + h
            up = f()
            mat[i][k] = old - h
            down = f()
            mat[i][k] = old
            return (up - down) / (2 * h)

        f = lambda: normalized_loss(loss, p, x, w, labels, shifts)
        grads = {
            "features": [[s(derivative(x, i, k, f)) for k in range(len(x[i]))] for i in range(len(x))],
            "weights": [[s(derivative(w, j, k, f)) for k in range(len(w[j]))] for j in range(len(w))],
        }
        if loss == "normface":
            sc = [[mpf(p["scale"])]]
            g = lambda: normalized_loss(loss, dict(p, scale=sc[0][0]), x, w, labels)
            grads["scale"] = s(derivative(sc, 0, 0, g))
        return {"outputs": {"loss": s(value)}, "gradients": grads}


for line in sys.stdin:
    if line.strip():
        case = json.loads(line)
        evaluate = {"softmax": softmax, "softmax_ce": softmax_ce}.get(case["loss"], normalized)
        answer = evaluate(case)
        print(json.dumps(answer), flush=True)
