#!/usr/bin/env python3
"""An independent reference for every loss of SPEC §1 and §5 (softmax, softmax_ce with its
options, distill, lsoftmax, sphereface, center, normface, cosface, amsoftmax, arcface,
combined, focal, poly1, subcenter_arcface, curricularface, adaface, magface, adacos), in
mpmath
(no MPFR, no Rust).

Reads one SPEC §3 case per line (JSON) on standard input and prints, per line, a JSON
object with the same keys as `lossref eval` ("outputs", "gradients"), every value a
decimal string of 40 significant digits. It evaluates the literal definitions
(e^{z_j/T} / Σ e^{z_k/T}, ln Σ e^{z_k} − z_y, p − onehot) at 1500 decimal digits, which
covers the cancellation of a loss of 1e−300 beside logits of 1e3.
For the other losses the loss is the literal formula (acos, cos(mθ) and the segment k of
ψ from θ, the `boundary` branch, the KL sum), and every gradient is a central difference
with step 1e-120 at 400 digits (truncation error ~1e-240): nothing is shared with
lossref's analytic gradients.
`margin_grad = detached` differentiates with the target offset g − cos θ held constant, and
the adaptive margins (SPEC §5) with their batch state (t', μ, σ, ẑ, s') held constant.
Used by tests/certified_core/mpmath_crosscheck.rs.
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
    params, inputs = case.get("params", {}), case["inputs"]
    if any(k in params for k in ("label_smoothing", "ignore_index")) or any(k in inputs for k in ("weight", "targets")):
        return softmax_ce_options(case)
    mean = params.get("reduction", "mean") == "mean"
    logits, labels = inputs["logits"], inputs["labels"]
    n = len(logits)
    scale = mpmath.mpf(n) if mean else mpmath.mpf(1)
    loss, grad = mpmath.mpf(0), []
    for row, y in zip(logits, labels):
        e = [mpmath.exp(mpmath.mpf(z)) for z in row]
        total = mpmath.fsum(e)
        loss += mpmath.log(total) - mpmath.mpf(row[y])
        grad.append([s((x / total - (1 if j == y else 0)) / scale) for j, x in enumerate(e)])
    return {"outputs": {"loss": s(loss / scale)}, "gradients": {"logits": grad}}


def softmax_ce_options(case):
    """SPEC §5's options by the literal definitions at 1500 digits: the target distribution
    q_i = (1 − ε)·onehot(y_i) + ε/C (or (1 − ε)·t_i + ε/C), per class a_c = w_c·q_ic for
    soft targets and (1 − ε)·w_y·[c = y] + ε/C·w_c for labels, ignored rows 0;
    l_i = −Σ_c a_c·log p_ic and ∂l_i/∂z_ij = Σ_c a_c·(p_ij − [c = j]) summed as written;
    `mean` over Σ w_y of the rows not ignored (labels) or N (soft)."""
    params, inputs = case.get("params", {}), case["inputs"]
    mean = params.get("reduction", "mean") == "mean"
    eps = mpmath.mpf(params.get("label_smoothing", 0))
    ignore = params.get("ignore_index")
    logits = [[mpmath.mpf(v) for v in r] for r in inputs["logits"]]
    c = len(logits[0])
    w = [mpmath.mpf(v) for v in inputs.get("weight", [1] * c)]
    labels, targets = inputs.get("labels"), inputs.get("targets")
    total, divisor, grad = mpmath.mpf(0), mpmath.mpf(0), []
    for i, row in enumerate(logits):
        p = softmax_row(row, 1)
        if targets is not None:
            a = [w[k] * ((1 - eps) * mpmath.mpf(targets[i][k]) + eps / c) for k in range(c)]
            divisor += 1
        elif ignore is not None and labels[i] == ignore:
            a = [mpmath.mpf(0)] * c
        else:
            y = labels[i]
            a = [(1 - eps) * w[y] * (1 if k == y else 0) + eps / c * w[k] for k in range(c)]
            divisor += w[y]
        total += -mpmath.fsum(a[k] * mpmath.log(p[k]) for k in range(c) if a[k] != 0)
        grad.append([mpmath.fsum(a[k] * (p[j] - (1 if k == j else 0)) for k in range(c)) for j in range(c)])
    scale = divisor if mean else mpmath.mpf(1)
    return {"outputs": {"loss": s(total / scale)}, "gradients": {"logits": [[s(g / scale) for g in r] for r in grad]}}


def focal(case):
    """focal l = −α_y·(1 − p_y)^γ·log p_y and poly1 l = −log p_y + ε·(1 − p_y), literally at
    1500 digits (1 − p_y as written), reduced over N; the gradient by the chain rule through
    p_y: ∂l/∂z_j = (dl/dp_y)·p_y·([j = y] − p_j) with dl/dp_y differentiated by hand,
    α·(γ(1 − p)^(γ−1)·log p − (1 − p)^γ/p) for focal and −1/p − ε for poly1."""
    params, inputs = case.get("params", {}), case["inputs"]
    mean = params.get("reduction", "mean") == "mean"
    logits = [[mpmath.mpf(v) for v in r] for r in inputs["logits"]]
    labels = inputs["labels"]
    c = len(logits[0])
    alpha = [mpmath.mpf(v) for v in inputs.get("alpha", [1] * c)]
    gamma, eps = mpmath.mpf(params.get("gamma", 2)), mpmath.mpf(params.get("epsilon", 1))
    total, grad = mpmath.mpf(0), []
    for row, y in zip(logits, labels):
        p = softmax_row(row, 1)
        py = p[y]
        if case["loss"] == "focal":
            total += -alpha[y] * (1 - py) ** gamma * mpmath.log(py)
            slope = (gamma * (1 - py) ** (gamma - 1) * mpmath.log(py) if gamma != 0 else 0)
            dldp = alpha[y] * (slope - (1 - py) ** gamma / py)
        else:
            total += -mpmath.log(py) + eps * (1 - py)
            dldp = -1 / py - eps
        grad.append([dldp * py * ((1 if j == y else 0) - p[j]) for j in range(c)])
    scale = mpmath.mpf(len(labels)) if mean else mpmath.mpf(1)
    return {"outputs": {"loss": s(total / scale)}, "gradients": {"logits": [[s(g / scale) for g in r] for r in grad]}}


DEFAULTS = {
    "normface": {"scale": 16},
    "cosface": {"scale": 64, "margin": 0.35},
    "amsoftmax": {"scale": 30, "margin": 0.35},
    "arcface": {"scale": 64, "margin": 0.5, "boundary": "none", "margin_grad": "full"},
    "combined": {"scale": 64, "m1": 1, "m2": 0.5, "m3": 0},
    "subcenter_arcface": {"scale": 64, "margin": 0.5, "boundary": "none", "margin_grad": "full", "subcenters": 3},
}


def row_params(loss, p, margins, i):
    """Row i's parameters: its per-sample margin (SPEC §5) in place of cosface's and
    arcface's m, combined's m2 (or m3 with margins_as = m3)."""
    if margins is None:
        return p
    if loss == "combined":
        return dict(p, **{p.get("margins_as", "m2"): margins[i]})
    return dict(p, margin=margins[i])


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


def class_cosines(xi, w, k):
    """cos θ to each class: the largest of its k consecutive rows' (k = 1: one row each)."""
    nx = mpmath.sqrt(mpmath.fsum(a * a for a in xi))
    cos = [mpmath.fsum(a * b for a, b in zip(xi, wj)) / (nx * mpmath.sqrt(mpmath.fsum(b * b for b in wj))) for wj in w]
    return [max(cos[j * k:(j + 1) * k]) for j in range(len(w) // k)]


def normalized_loss(loss, p, x, w, labels, shifts=None, margins=None, classes=None, k=1):
    s = mpmath.mpf(p["scale"])
    total = mpmath.mpf(0)
    for i, (xi, y) in enumerate(zip(x, labels)):
        cos = class_cosines(xi, w, k)
        columns = classes if classes is not None else list(range(len(cos)))
        logits = []
        for j in columns:
            c = cos[j]
            if j == y:
                c = c + shifts[i] if shifts is not None else target(loss, row_params(loss, p, margins, i), c)
            logits.append(s * c)
        total += mpmath.log(mpmath.fsum(mpmath.exp(z) for z in logits)) - logits[columns.index(y)]
    return total / len(x) if p.get("reduction", "mean") == "mean" else total


def normalized(case):
    mpf = mpmath.mpf
    loss = case["loss"]
    p = dict(DEFAULTS[loss], **case.get("params", {}))
    inputs = case["inputs"]
    x = [[mpf(v) for v in row] for row in inputs["features"]]
    w = [[mpf(v) for v in row] for row in inputs["weights"]]
    labels = inputs["labels"]
    margins = [mpf(v) for v in inputs["margins"]] if "margins" in inputs else None
    classes = inputs.get("classes")
    k = int(p.get("subcenters", 1)) if loss == "subcenter_arcface" else 1
    rule = "arcface" if loss == "subcenter_arcface" else loss
    with mpmath.workdps(400):
        shifts = None
        if rule == "arcface" and p["margin_grad"] == "detached":
            shifts = []
            for i, (xi, y) in enumerate(zip(x, labels)):
                c = class_cosines(xi, w, k)[y]
                shifts.append(target(rule, row_params(rule, p, margins, i), c) - c)
        value = normalized_loss(rule, p, x, w, labels, None, margins, classes, k)
        h = mpf(10) ** -120

        def derivative(mat, i, k, f):
            old = mat[i][k]
            mat[i][k] = old + h
            up = f()
            mat[i][k] = old - h
            down = f()
            mat[i][k] = old
            return (up - down) / (2 * h)

        f = lambda: normalized_loss(rule, p, x, w, labels, shifts, margins, classes, k)
        grads = {
            "features": [[s(derivative(x, i, k, f)) for k in range(len(x[i]))] for i in range(len(x))],
            "weights": [[s(derivative(w, j, k, f)) for k in range(len(w[j]))] for j in range(len(w))],
        }
        if loss == "normface":
            sc = [[mpf(p["scale"])]]
            g = lambda: normalized_loss(loss, dict(p, scale=sc[0][0]), x, w, labels)
            grads["scale"] = s(derivative(sc, 0, 0, g))
        return {"outputs": {"loss": s(value)}, "gradients": grads}


def finite_difference(loss, mats, name):
    """Central differences of loss(mats) with respect to every entry of mats[name]."""
    h = mpmath.mpf(10) ** -120
    out = []
    for i, row in enumerate(mats[name]):
        out_row = []
        for k in range(len(row)):
            old = row[k]
            row[k] = old + h
            up = loss(mats)
            row[k] = old - h
            down = loss(mats)
            row[k] = old
            out_row.append(s((up - down) / (2 * h)))
        out.append(out_row)
    return out


def reduce(total, n, p):
    return total / n if p.get("reduction", "mean") == "mean" else total


def softmax_row(z, t):
    e = [mpmath.exp(v / t) for v in z]
    total = mpmath.fsum(e)
    return [v / total for v in e]


def distill(case):
    p = dict({"temperature": 4, "alpha": 0.9, "soft": "kl"}, **case.get("params", {}))
    inputs = case["inputs"]
    labels = inputs["labels"]
    with mpmath.workdps(400):
        t, a = mpmath.mpf(p["temperature"]), mpmath.mpf(p["alpha"])
        mats = {"student_logits": [[mpmath.mpf(v) for v in r] for r in inputs["student_logits"]]}
        teacher = [[mpmath.mpf(v) for v in r] for r in inputs["teacher_logits"]]

        def loss(m):
            total = mpmath.mpf(0)
            for srow, trow, y in zip(m["student_logits"], teacher, labels):
                qs, qt = softmax_row(srow, t), softmax_row(trow, t)
                if p["soft"] == "kl":
                    soft = mpmath.fsum(b * (mpmath.log(b) - mpmath.log(c)) for b, c in zip(qt, qs))
                else:
                    soft = -mpmath.fsum(b * mpmath.log(c) for b, c in zip(qt, qs))
                ce = -mpmath.log(softmax_row(srow, 1)[y])
                total += a * t * t * soft + (1 - a) * ce
            return reduce(total, len(labels), p)

        return {"outputs": {"loss": s(loss(mats))},
                "gradients": {"student_logits": finite_difference(loss, mats, "student_logits")}}


def center(case):
    p = dict({"alpha": 0.5}, **case.get("params", {}))
    inputs = case["inputs"]
    labels = inputs["labels"]
    with mpmath.workdps(400):
        mats = {"features": [[mpmath.mpf(v) for v in r] for r in inputs["features"]],
                "centers": [[mpmath.mpf(v) for v in r] for r in inputs["centers"]]}

        def loss(m):
            total = mpmath.fsum(mpmath.fsum((a - b) ** 2 for a, b in zip(x, m["centers"][y])) / 2
                                for x, y in zip(m["features"], labels))
            return reduce(total, len(labels), p)

        alpha = mpmath.mpf(p["alpha"])
        nxt = []
        for j, c in enumerate(mats["centers"]):
            members = [x for x, y in zip(mats["features"], labels) if y == j]
            nxt.append([s(c[k] - alpha * mpmath.fsum(c[k] - x[k] for x in members) / (1 + len(members)))
                        for k in range(len(c))])
        return {"outputs": {"loss": s(loss(mats)), "centers_next": nxt},
                "gradients": {"features": finite_difference(loss, mats, "features"),
                              "centers": finite_difference(loss, mats, "centers")}}


def multiplicative(case):
    loss_id = case["loss"]
    p = dict({"margin": 2 if loss_id == "lsoftmax" else 4, "lambda": 0}, **case.get("params", {}))
    inputs = case["inputs"]
    labels = inputs["labels"]
    m_int = int(p["margin"])
    with mpmath.workdps(400):
        lam = mpmath.mpf(p["lambda"])
        mats = {"features": [[mpmath.mpf(v) for v in r] for r in inputs["features"]],
                "weights": [[mpmath.mpf(v) for v in r] for r in inputs["weights"]]}

        def psi(theta):
            k = min(int(mpmath.floor(theta * m_int / mpmath.pi)), m_int - 1)
            return (-1) ** k * mpmath.cos(m_int * theta) - 2 * k

        def loss(m):
            total = mpmath.mpf(0)
            for x, y in zip(m["features"], labels):
                nx = mpmath.sqrt(mpmath.fsum(v * v for v in x))
                logits = []
                for j, w in enumerate(m["weights"]):
                    nw = mpmath.sqrt(mpmath.fsum(v * v for v in w))
                    nu = nw if loss_id == "lsoftmax" else 1
                    c = mpmath.fsum(a * b for a, b in zip(x, w)) / (nx * nw)
                    if j == y:
                        theta = mpmath.acos(c)
                        c = (lam * c + psi(theta)) / (1 + lam)
                    logits.append(nu * nx * c)
                total += mpmath.log(mpmath.fsum(mpmath.exp(z) for z in logits)) - logits[y]
            return reduce(total, len(labels), p)

        return {"outputs": {"loss": s(loss(mats))},
                "gradients": {"features": finite_difference(loss, mats, "features"),
                              "weights": finite_difference(loss, mats, "weights")}}

ADAPTIVE_DEFAULTS = {
    "curricularface": {"scale": 64, "margin": 0.5, "momentum": 0.01},
    "adaface": {"scale": 64, "margin": 0.4, "h": 0.333, "t_alpha": 0.01, "eps": 1e-3},
    "magface": {"scale": 64, "l_a": 10, "u_a": 110, "l_m": 0.45, "u_m": 0.8, "lambda_g": 35, "boundary": "easy"},
    "adacos": {},
}


def cosine_rows(x, w):
    """cos θ_ij of every feature row with every weight row, literally."""
    norm = lambda v: mpmath.sqrt(mpmath.fsum(a * a for a in v))
    return [[mpmath.fsum(a * b for a, b in zip(xi, wj)) / (norm(xi) * norm(wj)) for wj in w] for xi in x]


def adaptive_state(loss, p, inputs, x, w, labels):
    """SPEC §5's batch state, from the unperturbed inputs (it is a constant of the step)."""
    mpf = mpmath.mpf
    n = len(x)
    cos = cosine_rows(x, w)
    norms = [mpmath.sqrt(mpmath.fsum(a * a for a in xi)) for xi in x]
    if loss == "curricularface":
        mean = mpmath.fsum(cos[i][labels[i]] for i in range(n)) / n
        mo = mpf(p["momentum"])
        return {"t_next": mo * mean + (1 - mo) * mpf(inputs.get("t", 0))}
    if loss == "adaface":
        clip = [min(max(v, mpf(0.001)), mpf(100)) for v in norms]  # the binary64 0.001, as torch.clip takes it
        mean = mpmath.fsum(clip) / n
        std = mpmath.sqrt(mpmath.fsum((v - mean) ** 2 for v in clip) / (n - 1))
        ta = mpf(p["t_alpha"])
        mu = mean * ta + (1 - ta) * mpf(inputs.get("batch_mean", 20))
        sigma = std * ta + (1 - ta) * mpf(inputs.get("batch_std", 100))
        zhat = [min(max(mpf(p["h"]) * (v - mu) / (sigma + mpf(p["eps"])), -1), 1) for v in clip]
        return {"batch_mean_next": mu, "batch_std_next": sigma, "zhat": zhat}
    if loss == "adacos":
        # the default √2·log(C − 1), rounded once to binary64 as the case holds it
        s_old = mpf(p["scale"]) if "scale" in p else mpf(float(mpmath.sqrt(2) * mpmath.log(len(w) - 1)))
        b = mpmath.fsum(mpmath.exp(s_old * cos[i][j]) for i in range(n) for j in range(len(w)) if j != labels[i]) / n
        theta = sorted(mpmath.acos(cos[i][labels[i]]) for i in range(n))
        med = theta[(n - 1) // 2]
        return {"scale_next": mpmath.log(b) / mpmath.cos(min(mpmath.pi / 4, med))}
    return {}


def adaptive_loss(loss, p, state, x, w, labels):
    """The loss at (x, w) with the batch state held constant, as the official code computes it."""
    mpf = mpmath.mpf
    cos = cosine_rows(x, w)
    total = mpmath.mpf(0)
    own = mpmath.mpf(0)
    for i, y in enumerate(labels):
        c = cos[i]
        if loss == "curricularface":
            s, m = mpf(p["scale"]), mpf(p["margin"])
            cy = c[y]
            ctm = mpmath.cos(mpmath.acos(cy) + m)
            final = ctm if cy > mpmath.cos(mpmath.pi - m) else cy - m * mpmath.sin(m)
            t = state["t_next"]
            z = [s * (final if j == y else (v * (t + v) if v > ctm else v)) for j, v in enumerate(c)]
        elif loss == "adaface":
            s, m, eps = mpf(p["scale"]), mpf(p["margin"]), mpf(p["eps"])
            zh = state["zhat"][i]
            cc = [min(max(v, -1 + eps), 1 - eps) for v in c]
            theta = min(max(mpmath.acos(cc[y]) - m * zh, eps), mpmath.pi - eps)
            z = [s * (mpmath.cos(theta) - (m + m * zh) if j == y else v) for j, v in enumerate(cc)]
        elif loss == "magface":
            s = mpf(p["scale"])
            la, ua, lm, um = (mpf(p[k]) for k in ("l_a", "u_a", "l_m", "u_m"))
            a = min(max(mpmath.sqrt(mpmath.fsum(v * v for v in x[i])), la), ua)
            m = (um - lm) / (ua - la) * (a - la) + lm
            cy = c[y]
            arc = mpmath.cos(mpmath.acos(cy) + m)
            if p["boundary"] == "easy":
                g = arc if cy > 0 else cy
            elif p["boundary"] == "thmm":
                g = arc if cy > mpmath.cos(mpmath.pi - m) else cy - m * mpmath.sin(m)
            else:
                g = arc
            z = [s * (g if j == y else v) for j, v in enumerate(c)]
            own += mpf(p["lambda_g"]) * (a / ua ** 2 + 1 / a)
        else:
            z = [state["scale_next"] * v for v in c]
        total += mpmath.log(mpmath.fsum(mpmath.exp(v) for v in z)) - z[y]
    n = len(labels)
    return (total + own) / n if p.get("reduction", "mean") == "mean" else total + own


def adaptive(case):
    mpf = mpmath.mpf
    loss = case["loss"]
    p = dict(ADAPTIVE_DEFAULTS[loss], **case.get("params", {}))
    inputs = case["inputs"]
    with mpmath.workdps(400):
        x = [[mpf(v) for v in row] for row in inputs["features"]]
        w = [[mpf(v) for v in row] for row in inputs["weights"]]
        labels = inputs["labels"]
        state = adaptive_state(loss, p, inputs, x, w, labels)
        mats = {"features": x, "weights": w}
        f = lambda mats: adaptive_loss(loss, p, state, mats["features"], mats["weights"], labels)
        outputs = {"loss": s(f(mats))}
        for name in ("t_next", "batch_mean_next", "batch_std_next", "scale_next"):
            if name in state:
                outputs[name] = s(state[name])
        grads = {name: finite_difference(f, mats, name) for name in ("features", "weights")}
        return {"outputs": outputs, "gradients": grads}



# One entry per loss of SPEC §1: a loss that is not listed is an error, never another
# loss's formula (tests/certified_core/mpmath_crosscheck.rs compares this list with the
# catalogue's).
EVALUATE = {"softmax": softmax, "softmax_ce": softmax_ce, "distill": distill, "center": center,
            "lsoftmax": multiplicative, "sphereface": multiplicative,
            "normface": normalized, "cosface": normalized, "amsoftmax": normalized,
            "arcface": normalized, "combined": normalized, "focal": focal, "poly1": focal,
            "subcenter_arcface": normalized, "curricularface": adaptive, "adaface": adaptive,
            "magface": adaptive, "adacos": adaptive}

if len(sys.argv) > 1 and sys.argv[1] == "--losses":
    print(json.dumps(sorted(EVALUATE)))
    sys.exit(0)

for line in sys.stdin:
    if line.strip():
        case = json.loads(line)
        if case["loss"] not in EVALUATE:
            sys.exit(f"mpmath_reference.py: no formula for the loss {case['loss']!r}; it knows {sorted(EVALUATE)}")
        answer = EVALUATE[case["loss"]](case)
        print(json.dumps(answer), flush=True)
