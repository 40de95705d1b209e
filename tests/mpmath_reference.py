#!/usr/bin/env python3
"""An independent reference for softmax / softmax_ce, in mpmath (no MPFR, no Rust).

Reads one SPEC §3 case per line (JSON) on standard input and prints, per line, a JSON
object with the same keys as `lossref eval` ("outputs", "gradients"), every value a
decimal string of 40 significant digits. It evaluates the literal definitions
(e^{z_j/T} / Σ e^{z_k/T}, ln Σ e^{z_k} − z_y, p − onehot) at 1500 decimal digits, which
covers the cancellation of a loss of 1e−300 beside logits of 1e3.
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


for line in sys.stdin:
    if line.strip():
        case = json.loads(line)
        answer = {"softmax": softmax, "softmax_ce": softmax_ce}[case["loss"]](case)
        print(json.dumps(answer), flush=True)
