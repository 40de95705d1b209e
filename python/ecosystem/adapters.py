"""Adapters: the real losses of today's libraries, run on lossref's corpus cases.

Each adapter maps a case's SPEC §1 parameters to the library's own (degrees, temperature
= 1/s, D×C weights, α and β swapped, a reducer for the reduction), calls the library's
loss as its users do, differentiates it with the library's autograd, and returns the
values in SPEC §4's shapes. An adapter declares the cases its library can express
(`expresses`) and the value groups it computes (`computes`); everything else is "not
run". The conventions each library follows are cited from its source (`cites`), at the
pinned version of `requirements.txt`.

The adapters never change what a library computes: a library that normalizes with an ε,
holds a parameter in float32 or drops a factor is run as it is, and lossref's diagnosis
has to name what it does.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

Values = Tuple[Dict[str, Any], Dict[str, Any]]

# SPEC §1's defaults for what a case omits
DEFAULTS: Dict[str, Dict[str, Any]] = {
    "softmax_ce": {"reduction": "mean"},
    "distill": {"temperature": 4.0, "alpha": 0.9, "soft": "kl", "reduction": "mean"},
    "lsoftmax": {"margin": 2, "lambda": 0.0, "reduction": "mean"},
    "sphereface": {"margin": 4, "lambda": 0.0, "reduction": "mean"},
    "normface": {"scale": 16.0, "reduction": "mean"},
    "cosface": {"scale": 64.0, "margin": 0.35, "reduction": "mean"},
    "amsoftmax": {"scale": 30.0, "margin": 0.35, "reduction": "mean"},
    "arcface": {"scale": 64.0, "margin": 0.5, "boundary": "none", "margin_grad": "full", "reduction": "mean"},
    "combined": {"scale": 64.0, "m1": 1.0, "m2": 0.5, "m3": 0.0, "reduction": "mean"},
}


def params_of(case: Any) -> Dict[str, Any]:
    """The case's parameters with SPEC §1's defaults filled in."""
    return {**DEFAULTS.get(case.loss, {}), **case.params}


@dataclass
class Adapter:
    """One library loss under test."""

    name: str
    """How the ecosystem table names it: `pytorch-metric-learning CosFaceLoss`."""
    library: str
    """The distribution (`pip install` name) whose version is reported."""
    losses: List[str]
    """The SPEC §1 loss ids it computes."""
    expresses: Callable[[Any], Optional[str]]
    """None when the library can express the case; otherwise why not."""
    run: Callable[[Any], Values]
    """The case's outputs and gradients, computed by the library."""
    computes: List[str]
    """The value groups it computes (SPEC §4 `computes`)."""
    cites: List[str] = field(default_factory=list)
    """The conventions it follows, each with the source that shows it."""

    def version(self) -> Optional[str]:
        try:
            return importlib.metadata.version(self.library)
        except importlib.metadata.PackageNotFoundError:
            return None


def _torch() -> Any:
    return importlib.import_module("torch")


def _dtype(case: Any) -> Any:
    torch = _torch()
    return torch.float32 if case.dtype == "float32" else torch.float64


def _leaf(a: np.ndarray, dtype: Any) -> Any:
    torch = _torch()
    return torch.tensor(np.asarray(a), dtype=dtype, requires_grad=True)


def _numpy(t: Any) -> np.ndarray:
    return t.detach().cpu().numpy()


# --- PyTorch itself -----------------------------------------------------------------


def torch_cross_entropy(case: Any) -> Values:
    """`torch.nn.functional.cross_entropy(z, y, reduction=…)`."""
    torch = _torch()
    p = params_of(case)
    z = _leaf(case.inputs["logits"], _dtype(case))
    y = torch.tensor(case.inputs["labels"], dtype=torch.long)
    loss = torch.nn.functional.cross_entropy(z, y, reduction=p["reduction"])
    loss.backward()
    return {"loss": _numpy(loss)}, {"logits": _numpy(z.grad)}


def torch_kl_distillation(case: Any) -> Values:
    """Hinton's distillation as PyTorch users write it: α·T²·KLDivLoss(log_softmax(s/T),
    log_softmax(t/T), log_target=True) + (1 − α)·cross_entropy(s, y), `batchmean` for the
    mean (KLDivLoss's own `mean` divides by N·C)."""
    torch = _torch()
    p = params_of(case)
    dtype = _dtype(case)
    s = _leaf(case.inputs["student_logits"], dtype)
    t = torch.tensor(case.inputs["teacher_logits"], dtype=dtype)
    y = torch.tensor(case.inputs["labels"], dtype=torch.long)
    temp, alpha = p["temperature"], p["alpha"]
    mean = p["reduction"] == "mean"
    kl = torch.nn.KLDivLoss(reduction="batchmean" if mean else "sum", log_target=True)
    soft = kl(torch.log_softmax(s / temp, dim=1), torch.log_softmax(t / temp, dim=1))
    hard = torch.nn.functional.cross_entropy(s, y, reduction=p["reduction"])
    loss = alpha * temp**2 * soft + (1 - alpha) * hard
    loss.backward()
    return {"loss": _numpy(loss)}, {"student_logits": _numpy(s.grad)}


def _only_kl(case: Any) -> Optional[str]:
    return None if params_of(case)["soft"] == "kl" else "the soft term is KL(q_t ‖ q_s) in this formulation"


# --- torchdistill ---------------------------------------------------------------------


def torchdistill_kd(case: Any) -> Values:
    """torchdistill's KDLoss: α·CE + β·T²·KL with torchdistill's α the cross-entropy's
    weight: SPEC's α is its β, and SPEC's 1 − α its α."""
    torch = _torch()
    mid_level = importlib.import_module("torchdistill.losses.mid_level")
    p = params_of(case)
    dtype = _dtype(case)
    s = _leaf(case.inputs["student_logits"], dtype)
    t = torch.tensor(case.inputs["teacher_logits"], dtype=dtype)
    y = torch.tensor(case.inputs["labels"], dtype=torch.long)
    reduction = "batchmean" if p["reduction"] == "mean" else "sum"
    kd = mid_level.KDLoss(
        "student", "output", "teacher", "output",
        temperature=p["temperature"], alpha=1 - p["alpha"], beta=p["alpha"], reduction=reduction,
    )
    loss = kd({"student": {"output": s}}, {"teacher": {"output": t}}, targets=y)
    loss.backward()
    return {"loss": _numpy(loss)}, {"student_logits": _numpy(s.grad)}


# --- pytorch-metric-learning ------------------------------------------------------------


def _pml_reducer(p: Dict[str, Any]) -> Any:
    reducers = importlib.import_module("pytorch_metric_learning.reducers")
    return reducers.MeanReducer() if p["reduction"] == "mean" else reducers.SumReducer()


def _pml_run(case: Any, make: Callable[[int, int, Dict[str, Any]], Any], extra: Optional[Callable[[Any, Any], Dict[str, Any]]] = None) -> Values:
    """Builds the loss with its D×C weights W = wᵀ, computes it on the features and
    labels, and returns ∂L/∂W transposed back to C×D."""
    torch = _torch()
    p = params_of(case)
    dtype = _dtype(case)
    w = np.asarray(case.inputs["weights"])
    classes, dim = w.shape
    loss_fn = make(classes, dim, p)
    loss_fn.W.data = torch.tensor(w.T.copy(), dtype=dtype)
    loss_fn.W.requires_grad_(True)
    x = _leaf(case.inputs["features"], dtype)
    y = torch.tensor(case.inputs["labels"], dtype=torch.long)
    loss = loss_fn(x, y)
    loss.backward()
    grads = {"features": _numpy(x.grad), "weights": _numpy(loss_fn.W.grad).T.copy()}
    return {"loss": _numpy(loss)}, grads


def pml_cosface(case: Any) -> Values:
    losses = importlib.import_module("pytorch_metric_learning.losses")
    return _pml_run(case, lambda c, d, p: losses.CosFaceLoss(num_classes=c, embedding_size=d, margin=p["margin"], scale=p["scale"], reducer=_pml_reducer(p)))


def pml_arcface(case: Any) -> Values:
    # PML takes the margin in degrees (ArcFaceLoss.init_margin: np.radians(self.margin))
    losses = importlib.import_module("pytorch_metric_learning.losses")
    return _pml_run(case, lambda c, d, p: losses.ArcFaceLoss(num_classes=c, embedding_size=d, margin=math.degrees(p["margin"]), scale=p["scale"], reducer=_pml_reducer(p)))


def pml_normalized_softmax(case: Any) -> Values:
    # NormFace: NormalizedSoftmaxLoss with cosine similarity (its default, the dot
    # product, leaves the features unnormalized) and temperature = 1/s
    losses = importlib.import_module("pytorch_metric_learning.losses")
    distances = importlib.import_module("pytorch_metric_learning.distances")
    return _pml_run(
        case,
        lambda c, d, p: losses.NormalizedSoftmaxLoss(
            num_classes=c, embedding_size=d, temperature=1 / p["scale"], distance=distances.CosineSimilarity(), reducer=_pml_reducer(p)
        ),
    )


def pml_large_margin(case: Any) -> Values:
    losses = importlib.import_module("pytorch_metric_learning.losses")
    cls = losses.SphereFaceLoss if case.loss == "sphereface" else losses.LargeMarginSoftmaxLoss
    return _pml_run(case, lambda c, d, p: cls(num_classes=c, embedding_size=d, margin=p["margin"], scale=1, reducer=_pml_reducer(p)))


def _pml_arcface_expresses(case: Any) -> Optional[str]:
    p = params_of(case)
    if p["boundary"] != "thmm":
        return "ArcFaceLoss switches to cos θ − m·sin m past θ = π − m (the `thmm` boundary) only"
    if p["margin_grad"] != "full":
        return "ArcFaceLoss differentiates through the margin (`full`) only"
    return None


def _lambda_zero(case: Any) -> Optional[str]:
    return None if params_of(case)["lambda"] == 0 else "no annealing λ: only λ = 0"


# --- open-metric-learning -----------------------------------------------------------------


def oml_arcface(case: Any) -> Values:
    """OML's ArcFaceLoss: weights C×D, `thmm` (th = −cos m, mm = m·sin m), CrossEntropyLoss
    with the reduction given."""
    torch = _torch()
    arcface = importlib.import_module("oml.losses.arcface")
    p = params_of(case)
    dtype = _dtype(case)
    w = np.asarray(case.inputs["weights"])
    classes, dim = w.shape
    loss_fn = arcface.ArcFaceLoss(in_features=dim, num_classes=classes, m=p["margin"], s=p["scale"], reduction=p["reduction"])
    loss_fn.weight.data = torch.tensor(w, dtype=dtype)
    x = _leaf(case.inputs["features"], dtype)
    y = torch.tensor(case.inputs["labels"], dtype=torch.long)
    loss = loss_fn(x, y)
    loss.backward()
    return {"loss": _numpy(loss)}, {"features": _numpy(x.grad), "weights": _numpy(loss_fn.weight.grad)}


# --- optax (JAX) ----------------------------------------------------------------------------


def optax_cross_entropy(case: Any) -> Values:
    """`optax.softmax_cross_entropy_with_integer_labels`, reduced, differentiated by jax.grad
    (float64 through jax_enable_x64)."""
    jax = importlib.import_module("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = importlib.import_module("jax.numpy")
    optax = importlib.import_module("optax")
    p = params_of(case)
    z = jnp.asarray(case.inputs["logits"], dtype=jnp.float32 if case.dtype == "float32" else jnp.float64)
    y = jnp.asarray(case.inputs["labels"])

    def loss(z: Any) -> Any:
        per = optax.softmax_cross_entropy_with_integer_labels(z, y)
        return per.mean() if p["reduction"] == "mean" else per.sum()

    value, grad = jax.value_and_grad(loss)(z)
    return {"loss": np.asarray(value)}, {"logits": np.asarray(grad)}


def _any(case: Any) -> Optional[str]:
    return None


NORMALIZE_CITE = "`torch.nn.functional.normalize(v, p=2, dim=1)`: v/max(‖v‖, ε) with ε = 1e-12 (its default)"

ADAPTERS: List[Adapter] = [
    Adapter(
        "PyTorch F.cross_entropy", "torch", ["softmax_ce"], _any, torch_cross_entropy, ["outputs/loss", "gradients/logits"],
        ["`torch.nn.functional.cross_entropy`: log_softmax then NLL; its gradient softmax(z) − onehot (torch/nn/functional.py, aten LogSoftmax backward)"],
    ),
    Adapter(
        "PyTorch KLDivLoss distillation", "torch", ["distill"], _only_kl, torch_kl_distillation, ["outputs/loss", "gradients/student_logits"],
        ["α·T²·`nn.KLDivLoss(reduction='batchmean', log_target=True)`(log_softmax(s/T), log_softmax(t/T)) + (1 − α)·`F.cross_entropy` (the PyTorch docs' recipe)"],
    ),
    Adapter(
        "torchdistill KDLoss", "torchdistill", ["distill"], _only_kl, torchdistill_kd, ["outputs/loss", "gradients/student_logits"],
        [
            "α weighs the cross-entropy and β = 1 − α the KL term: SPEC's α is its β (torchdistill/losses/mid_level.py, KDLoss.__init__)",
            "returns the soft term alone, without T² or β, when its α is 0 or None (KDLoss.forward: `if self.alpha is None or self.alpha == 0 or targets is None: return soft_loss`)",
        ],
    ),
    Adapter(
        "pytorch-metric-learning CosFaceLoss", "pytorch-metric-learning", ["cosface", "amsoftmax"], _any, pml_cosface, ["outputs/loss", "gradients/features", "gradients/weights"],
        [
            "weights W are embedding_size × num_classes (D×C) (losses/large_margin_softmax_loss.py: `torch.Tensor(embedding_size, num_classes)`)",
            "cos θ by CosineSimilarity: " + NORMALIZE_CITE + " (distances/base_distance.py, `normalize`)",
            "mean over the batch by its default MeanReducer; SumReducer for `sum`",
        ],
    ),
    Adapter(
        "pytorch-metric-learning ArcFaceLoss", "pytorch-metric-learning", ["arcface"], _pml_arcface_expresses, pml_arcface, ["outputs/loss", "gradients/features", "gradients/weights"],
        [
            "the margin in degrees (losses/arcface_loss.py, `init_margin`: np.radians)",
            "`thmm` with ≤ at the tie: cos(θ + m) where θ ≤ π − m, else cos θ − m·sin m (ArcFaceLoss.modify_cosine_of_target_classes)",
            "θ = acos(clamp(cos θ, −1, 1)) (LargeMarginSoftmaxLoss.get_angles), cos θ by " + NORMALIZE_CITE,
        ],
    ),
    Adapter(
        "pytorch-metric-learning NormalizedSoftmaxLoss", "pytorch-metric-learning", ["normface"], _any, pml_normalized_softmax, ["outputs/loss", "gradients/features", "gradients/weights"],
        [
            "temperature = 1/s, fixed (no ∂L/∂s) (losses/normalized_softmax_loss.py)",
            "with distance=CosineSimilarity() the features are normalized too; W by " + NORMALIZE_CITE,
        ],
    ),
    Adapter(
        "pytorch-metric-learning LargeMarginSoftmaxLoss / SphereFaceLoss", "pytorch-metric-learning", ["lsoftmax", "sphereface"], _lambda_zero, pml_large_margin,
        ["outputs/loss", "gradients/features", "gradients/weights"],
        [
            "ψ by the Chebyshev expansion with k = ⌊θ/(π/m)⌋ from acos(clamp(cos θ, −1, 1)) (losses/large_margin_softmax_loss.py)",
            "logits × ‖w_j‖‖x_i‖ (L-Softmax) or × ‖x_i‖ (SphereFace); no annealing λ",
            "cos θ by " + NORMALIZE_CITE,
        ],
    ),
    Adapter(
        "open-metric-learning ArcFaceLoss", "open-metric-learning", ["arcface"], _pml_arcface_expresses, oml_arcface, ["outputs/loss", "gradients/features", "gradients/weights"],
        [
            "cos θ = F.linear(F.normalize(x), F.normalize(W)): " + NORMALIZE_CITE + " (oml/losses/arcface.py, `fc`)",
            "sin θ = sqrt(1 − cos²θ), unclamped; cos(θ + m) = cos θ·cos m − sin θ·sin m; `thmm` with th = −cos m, mm = m·sin m (ArcFaceLoss.forward)",
        ],
    ),
    Adapter(
        "optax softmax_cross_entropy_with_integer_labels", "optax", ["softmax_ce"], _any, optax_cross_entropy, ["outputs/loss", "gradients/logits"],
        ["log_softmax then the label's entry (optax/losses/_classification.py), differentiated by jax.grad"],
    ),
]
