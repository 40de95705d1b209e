#!/usr/bin/env python3
"""An independent evaluation of the bounds of SPEC §2 (`lossref bound`), in mpmath.

Reads one request per line (JSON: "bound", "classes", and "scale" or "posterior" as
decimal strings) and prints, per line, {"value": …} (and "posterior" for adacos-scale),
each a decimal string of 60 significant digits. The formulas are written as the papers
state them, at 120 decimal digits: NormFace's log(1 + (n−1)·exp(−n·s/(n−1))) with a plain
log, e/(e + (n−1)/e), CosFace's (C−1)/C·log((C−1)·P/(1−P)), AdaCos's √2·log(C−1) and
e^s/(e^s + (C−1)·e^{−s/(C−1)}). Used by tests/certified_core/mpmath_crosscheck.rs.
"""
import json
import sys

import mpmath

mpmath.mp.dps = 120


def s(x):
    return mpmath.nstr(x, 60, min_fixed=1, max_fixed=0)


for line in sys.stdin:
    req = json.loads(line)
    n = mpmath.mpf(req["classes"])
    name = req["bound"]
    out = {}
    if name == "normface":
        sc = mpmath.mpf(req["scale"])
        out["value"] = s(mpmath.log(1 + (n - 1) * mpmath.exp(-n * sc / (n - 1))))
    elif name == "normface-ceiling":
        e = mpmath.e
        out["value"] = s(e / (e + (n - 1) / e))
    elif name == "cosface-scale":
        p = mpmath.mpf(req["posterior"])
        out["value"] = s((n - 1) / n * mpmath.log((n - 1) * p / (1 - p)))
    elif name == "adacos-scale":
        sc = mpmath.sqrt(2) * mpmath.log(n - 1)
        out["value"] = s(sc)
        out["posterior"] = s(mpmath.exp(sc) / (mpmath.exp(sc) + (n - 1) * mpmath.exp(-sc / (n - 1))))
    print(json.dumps(out))
