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

import functools
import importlib
import importlib.metadata
import math
import os
import types
import zipfile
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

Values = Tuple[Dict[str, Any], Dict[str, Any]]

# SPEC §1's defaults for what a case omits
DEFAULTS: Dict[str, Dict[str, Any]] = {
    "softmax_ce": {"reduction": "mean", "label_smoothing": 0.0, "ignore_index": None},
    "focal": {"gamma": 2.0, "reduction": "mean"},
    "poly1": {"epsilon": 1.0, "reduction": "mean"},
    "distill": {"temperature": 4.0, "alpha": 0.9, "soft": "kl", "reduction": "mean"},
    "lsoftmax": {"margin": 2, "lambda": 0.0, "reduction": "mean"},
    "sphereface": {"margin": 4, "lambda": 0.0, "reduction": "mean"},
    "normface": {"scale": 16.0, "reduction": "mean"},
    "cosface": {"scale": 64.0, "margin": 0.35, "reduction": "mean"},
    "amsoftmax": {"scale": 30.0, "margin": 0.35, "reduction": "mean"},
    "arcface": {"scale": 64.0, "margin": 0.5, "boundary": "none", "margin_grad": "full", "reduction": "mean"},
    "combined": {"scale": 64.0, "m1": 1.0, "m2": 0.5, "m3": 0.0, "reduction": "mean"},
    "subcenter_arcface": {"scale": 64.0, "margin": 0.5, "boundary": "none", "margin_grad": "full", "reduction": "mean", "subcenters": 3},
    "curricularface": {"scale": 64.0, "margin": 0.5, "momentum": 0.01, "reduction": "mean"},
    "adacos": {"reduction": "mean"},
}


def params_of(case: Any) -> Dict[str, Any]:
    """The case's parameters with SPEC §1's defaults filled in."""
    return {**DEFAULTS.get(case.loss, {}), **case.params}


OPTIONAL_INPUTS = {
    "margins": "per-sample margins (SPEC §5, ElasticFace; not taken)",
    "classes": "a class subset (SPEC §5, Partial FC; not taken)",
}
"""SPEC §5's optional inputs of the margin family, and how a library without them is told."""


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
    dtypes: List[str] = field(default_factory=lambda: ["float32", "float64"])
    """The corpus dtypes it runs (SPEC §4, §6)."""
    pipeline: Optional[str] = None
    """How it computes those (SPEC §6's tier: `native`, `amp`, `bf16`, …), declared in its
    results; None for the plain float32/float64 model."""
    takes: List[str] = field(default_factory=list)
    """The optional inputs of SPEC §5 it takes (`margins`, `classes`); a case with any other
    is not expressible."""
    wheel: Optional[str] = None
    """The environment variable naming the library's wheel, for a library whose modules are
    read from its pinned wheel instead of installed (catalyst: see `_catalyst_layer`)."""

    def not_taken(self, case: Any) -> Optional[str]:
        """Why the case's optional inputs are beyond the library, or None."""
        for key, what in OPTIONAL_INPUTS.items():
            if key in case.inputs and key not in self.takes:
                return what
        return None

    def version(self) -> Optional[str]:
        if self.wheel is not None:
            path = os.environ.get(self.wheel, "")
            # NAME-VERSION-….whl
            return os.path.basename(path).split("-")[1] if os.path.isfile(path) else None
        try:
            return importlib.metadata.version(self.library)
        except importlib.metadata.PackageNotFoundError:
            return None


def _torch() -> Any:
    return importlib.import_module("torch")


def _dtype(case: Any) -> Any:
    torch = _torch()
    return {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}[case.dtype]


def _leaf(a: np.ndarray, dtype: Any) -> Any:
    torch = _torch()
    # a 16-bit array (ml_dtypes' bfloat16 has no torch conversion) widens exactly first
    return torch.tensor(np.asarray(a, dtype=np.float64), dtype=dtype, requires_grad=True)


def _numpy(t: Any) -> np.ndarray:
    # bfloat16 has no numpy dtype in torch: widened exactly to float32
    t = t.detach().cpu()
    return (t.float() if t.dtype == _torch().bfloat16 else t).numpy()


# --- PyTorch itself -----------------------------------------------------------------


def torch_cross_entropy(case: Any) -> Values:
    """`torch.nn.functional.cross_entropy(z, y, weight=…, ignore_index=…,
    label_smoothing=…, reduction=…)`, with class-index targets or probability targets
    (SPEC §5's soft `targets`)."""
    torch = _torch()
    p = params_of(case)
    dtype = _dtype(case)
    z = _leaf(case.inputs["logits"], dtype)
    weight = case.inputs.get("weight")
    kwargs: Dict[str, Any] = {
        "weight": None if weight is None else torch.tensor(np.asarray(weight, dtype=np.float64), dtype=dtype),
        "label_smoothing": float(p["label_smoothing"]),
        "reduction": p["reduction"],
    }
    if "targets" in case.inputs:
        y = torch.tensor(np.asarray(case.inputs["targets"], dtype=np.float64), dtype=dtype)
    else:
        y = torch.tensor(case.inputs["labels"], dtype=torch.long)
        kwargs["ignore_index"] = -100 if p["ignore_index"] is None else int(p["ignore_index"])
    loss = torch.nn.functional.cross_entropy(z, y, **kwargs)
    loss.backward()
    return {"loss": _numpy(loss)}, {"logits": _numpy(z.grad)}


# --- timm -------------------------------------------------------------------------------


def _timm_label_smoothing_expresses(case: Any) -> Optional[str]:
    p = params_of(case)
    if "targets" in case.inputs:
        return "soft targets (LabelSmoothingCrossEntropy takes class indices)"
    if "weight" in case.inputs or p["ignore_index"] is not None:
        return "class weights or ignore_index (not taken)"
    if p["reduction"] != "mean":
        return "reduction `sum` (it returns the mean)"
    if p["label_smoothing"] >= 1.0:
        return "ε = 1 (asserts smoothing < 1)"
    return None


def timm_label_smoothing(case: Any) -> Values:
    """`timm.loss.LabelSmoothingCrossEntropy(smoothing=ε)(z, y)`."""
    timm_loss = importlib.import_module("timm.loss")
    torch = _torch()
    z = _leaf(case.inputs["logits"], _dtype(case))
    y = torch.tensor(case.inputs["labels"], dtype=torch.long)
    loss = timm_loss.LabelSmoothingCrossEntropy(smoothing=float(params_of(case)["label_smoothing"]))(z, y)
    loss.backward()
    return {"loss": _numpy(loss)}, {"logits": _numpy(z.grad)}


def _timm_soft_target_expresses(case: Any) -> Optional[str]:
    p = params_of(case)
    if "targets" not in case.inputs:
        return "class-index labels (SoftTargetCrossEntropy takes probability targets)"
    if "weight" in case.inputs or p["label_smoothing"] != 0.0:
        return "class weights or label smoothing (not taken)"
    if p["reduction"] != "mean":
        return "reduction `sum` (it returns the mean)"
    return None


def timm_soft_target(case: Any) -> Values:
    """`timm.loss.SoftTargetCrossEntropy()(z, t)`."""
    timm_loss = importlib.import_module("timm.loss")
    torch = _torch()
    dtype = _dtype(case)
    z = _leaf(case.inputs["logits"], dtype)
    t = torch.tensor(case.inputs["targets"], dtype=dtype)
    loss = timm_loss.SoftTargetCrossEntropy()(z, t)
    loss.backward()
    return {"loss": _numpy(loss)}, {"logits": _numpy(z.grad)}


# --- kornia -------------------------------------------------------------------------------


def _kornia_alpha(case: Any) -> Tuple[Optional[str], Optional[float]]:
    """kornia's scalar α for the case's α vector: None for none, a for [1 − a, a, …, a]."""
    alpha = case.inputs.get("alpha")
    if alpha is None:
        return None, None
    a = [float(v) for v in alpha]
    if len(set(a[1:])) == 1 and a[0] == float(np.asarray(1.0 - a[1], dtype=np.asarray(alpha).dtype)):
        return None, a[1]
    return "a per-class α not of kornia's form [1 − a, a, …, a]", None


def kornia_focal(case: Any) -> Values:
    """`kornia.losses.focal_loss(z, y, alpha, gamma, reduction)` (softmax focal loss)."""
    kornia = importlib.import_module("kornia")
    torch = _torch()
    p = params_of(case)
    z = _leaf(case.inputs["logits"], _dtype(case))
    y = torch.tensor(case.inputs["labels"], dtype=torch.long)
    _, alpha = _kornia_alpha(case)
    loss = kornia.losses.focal_loss(z, y, alpha=alpha, gamma=float(p["gamma"]), reduction=p["reduction"])
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
    w = np.asarray(case.inputs["weights"], dtype=np.float64)  # 16-bit arrays widen exactly
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


def pml_subcenter_arcface(case: Any) -> Values:
    # the (C·K)×D weights as PML's D×(C·K) W, column j·K + k sub-center k of class j
    # (SubCenterArcFaceLoss.get_cosine: `cosine.view(-1, self.num_classes, self.sub_centers)`)
    losses = importlib.import_module("pytorch_metric_learning.losses")
    k = int(params_of(case)["subcenters"])
    return _pml_run(
        case,
        lambda c, d, p: losses.SubCenterArcFaceLoss(
            num_classes=c // k, embedding_size=d, margin=math.degrees(p["margin"]), scale=p["scale"], sub_centers=k, reducer=_pml_reducer(p)
        ),
    )


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


# --- catalyst ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _catalyst_layer(module: str) -> Any:
    """catalyst 22.4's `catalyst/contrib/layers/MODULE.py`, read from the pinned wheel that
    $CATALYST_WHEEL names. The wheel's metadata is invalid for pip ≥ 24.1 (its requirement
    `scikit-image (<0.19.0>=0.16.1)`), so scripts/ecosystem fetches it with an older pip and
    the layers run from it unchanged; each of these modules imports only math and torch."""
    wheel = os.environ["CATALYST_WHEEL"]
    name = f"catalyst/contrib/layers/{module}.py"
    with zipfile.ZipFile(wheel) as z:
        source = z.read(name)
    mod = types.ModuleType(f"catalyst.contrib.layers.{module}")
    exec(compile(source, f"{wheel}/{name}", "exec"), mod.__dict__)
    return mod


def _catalyst_run(case: Any, layer: Any, weight: Any, state: Callable[[Any], Dict[str, Any]]) -> Values:
    """The layer's logits for the case's features and labels, `F.cross_entropy` with the
    reduction, ∂L/∂x and ∂L/∂(the layer's weight), mapped back by `weight`; `state` reads the
    layer's state after the step."""
    torch = _torch()
    p = params_of(case)
    x = _leaf(case.inputs["features"], _dtype(case))
    y = torch.tensor(case.inputs["labels"], dtype=torch.long)
    loss = torch.nn.functional.cross_entropy(layer(x, y), y, reduction=p["reduction"])
    loss.backward()
    return {"loss": _numpy(loss), **state(layer)}, {"features": _numpy(x.grad), "weights": weight(_numpy(layer.weight.grad))}


def catalyst_curricularface(case: Any) -> Values:
    torch = _torch()
    p, dtype = params_of(case), _dtype(case)
    w = np.asarray(case.inputs["weights"], dtype=np.float64)
    classes, dim = w.shape
    layer = _catalyst_layer("curricularface").CurricularFace(dim, classes, s=p["scale"], m=p["margin"])
    # its weight is in_features × out_features (D×C); t is the buffer before the step
    layer.weight = torch.nn.Parameter(torch.tensor(w.T.copy(), dtype=dtype))
    layer.t = torch.tensor([float(np.asarray(case.inputs.get("t", 0.0)))], dtype=dtype)
    return _catalyst_run(case, layer, lambda g: g.T.copy(), lambda layer: {"t_next": _numpy(layer.t).reshape(())})


def _catalyst_curricularface_expresses(case: Any) -> Optional[str]:
    return None if params_of(case)["momentum"] == 0.01 else "momentum 0.01 only (hard-coded in CurricularFace.forward)"


def catalyst_adacos(case: Any) -> Values:
    torch = _torch()
    w = np.asarray(case.inputs["weights"], dtype=np.float64)
    classes, dim = w.shape
    layer = _catalyst_layer("cosface").AdaCos(dim, classes)
    if "scale" in case.params:
        layer.s = float(case.params["scale"])  # s_old; else its own √2·log(C − 1)
    layer.weight = torch.nn.Parameter(torch.tensor(w, dtype=_dtype(case)))
    return _catalyst_run(case, layer, lambda g: g, lambda layer: {"scale_next": np.asarray(layer.s)})


def catalyst_subcenter_arcface(case: Any) -> Values:
    torch = _torch()
    p = params_of(case)
    k = int(p["subcenters"])
    w = np.asarray(case.inputs["weights"], dtype=np.float64)
    rows, dim = w.shape
    layer = _catalyst_layer("arcface").SubCenterArcFace(dim, rows // k, s=p["scale"], m=p["margin"], k=k)
    # its weight is K × D × C, sub-center-major: [q, :, j] is the case's row j·K + q
    layer.weight = torch.nn.Parameter(torch.tensor(w.reshape(rows // k, k, dim).transpose(1, 2, 0).copy(), dtype=_dtype(case)))
    back = lambda g: g.transpose(2, 0, 1).reshape(rows, dim).copy()  # noqa: E731
    return _catalyst_run(case, layer, back, lambda layer: {})


def _catalyst_subcenter_expresses(case: Any) -> Optional[str]:
    p = params_of(case)
    if p["boundary"] != "none" or p["margin_grad"] != "full":
        return "cos(θ + m) up to θ = π − m and cos θ past it, differentiated through the margin: boundary `none`, `full` only"
    return None


# --- open-metric-learning -----------------------------------------------------------------


def oml_arcface(case: Any) -> Values:
    """OML's ArcFaceLoss: weights C×D, `thmm` (th = −cos m, mm = m·sin m), CrossEntropyLoss
    with the reduction given."""
    torch = _torch()
    arcface = importlib.import_module("oml.losses.arcface")
    p = params_of(case)
    dtype = _dtype(case)
    w = np.asarray(case.inputs["weights"], dtype=np.float64)  # 16-bit arrays widen exactly
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


def _optax_setup(case: Any) -> Tuple[Any, Any, Any, Any, Dict[str, Any]]:
    jax = importlib.import_module("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = importlib.import_module("jax.numpy")
    optax = importlib.import_module("optax")
    z = jnp.asarray(case.inputs["logits"], dtype=jnp.float32 if case.dtype == "float32" else jnp.float64)
    return jax, jnp, optax, z, params_of(case)


def _optax_smoothed_expresses(case: Any) -> Optional[str]:
    p = params_of(case)
    if "weight" in case.inputs or p["ignore_index"] is not None:
        return "class weights or ignore_index (not taken)"
    return None


def optax_smoothed_cross_entropy(case: Any) -> Values:
    """`optax.softmax_cross_entropy(z, optax.smooth_labels(t, ε))` per example, then the
    case's reduction (optax leaves it to the caller); t one-hot from the labels or the soft
    targets."""
    jax, jnp, optax, z, p = _optax_setup(case)
    if "targets" in case.inputs:
        t = jnp.asarray(case.inputs["targets"], dtype=z.dtype)
    else:
        t = jax.nn.one_hot(jnp.asarray(case.inputs["labels"]), z.shape[1], dtype=z.dtype)
    t = optax.smooth_labels(t, p["label_smoothing"])

    def loss(z: Any) -> Any:
        per = optax.softmax_cross_entropy(z, t)
        return per.mean() if p["reduction"] == "mean" else per.sum()

    value, grad = jax.value_and_grad(loss)(z)
    return {"loss": np.asarray(value)}, {"logits": np.asarray(grad)}


def optax_poly_loss(case: Any) -> Values:
    """`optax.losses.poly_loss_cross_entropy(z, onehot(y), epsilon=ε)` per example, then the
    case's reduction."""
    jax, jnp, optax, z, p = _optax_setup(case)
    t = jax.nn.one_hot(jnp.asarray(case.inputs["labels"]), z.shape[1], dtype=z.dtype)

    def loss(z: Any) -> Any:
        per = optax.losses.poly_loss_cross_entropy(z, t, epsilon=p["epsilon"])
        return per.mean() if p["reduction"] == "mean" else per.sum()

    value, grad = jax.value_and_grad(loss)(z)
    return {"loss": np.asarray(value)}, {"logits": np.asarray(grad)}


# --- precision tiers (SPEC §6) ---------------------------------------------------------


def _under_cpu_autocast(run: Callable[[Any], Values]) -> Callable[[Any], Values]:
    """`run` inside `torch.autocast("cpu", dtype=torch.bfloat16)`, as a training step under
    CPU autocast calls it: `F.cross_entropy` on bfloat16 logits runs in float32 (CPU
    autocast's fp32 list) and returns ∂L/∂z in the leaf's bfloat16; PML's cosine matrix is a
    bfloat16 matmul."""

    def under(case: Any) -> Values:
        torch = _torch()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return run(case)

    return under


def pml_cosface_medium_matmul(case: Any) -> Values:
    """PML's CosFaceLoss in float32 under `torch.set_float32_matmul_precision("medium")`
    (bfloat16 products where the backend has them), restored afterwards."""
    torch = _torch()
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")
    try:
        return pml_cosface(case)
    finally:
        torch.set_float32_matmul_precision(before)


def optax_cross_entropy_16_bit(case: Any) -> Values:
    """`optax.softmax_cross_entropy_with_integer_labels` on bfloat16 or float16 arrays,
    reduced and differentiated by jax.grad in that dtype (every op's output in it)."""
    jax = importlib.import_module("jax")
    jnp = importlib.import_module("jax.numpy")
    optax = importlib.import_module("optax")
    p = params_of(case)
    z = jnp.asarray(case.inputs["logits"], dtype=jnp.bfloat16 if case.dtype == "bfloat16" else jnp.float16)
    y = jnp.asarray(case.inputs["labels"])

    def loss(z: Any) -> Any:
        per = optax.softmax_cross_entropy_with_integer_labels(z, y)
        return per.mean() if p["reduction"] == "mean" else per.sum()

    value, grad = jax.value_and_grad(loss)(z)
    wide = lambda a: np.asarray(a).astype(np.float64)  # noqa: E731
    return {"loss": wide(value)}, {"logits": wide(grad)}


def jax_cosface_bf16_matmul(case: Any) -> Values:
    """CosFace as JAX users write it (x/‖x‖, w/‖w‖, matmul, s·(cos θ − m·onehot), optax's
    cross-entropy, jax.grad) in float32 under `jax.default_matmul_precision("bfloat16")`."""
    jax = importlib.import_module("jax")
    jnp = importlib.import_module("jax.numpy")
    optax = importlib.import_module("optax")
    p = params_of(case)
    x = jnp.asarray(case.inputs["features"], dtype=jnp.float32)
    w = jnp.asarray(case.inputs["weights"], dtype=jnp.float32)
    y = jnp.asarray(case.inputs["labels"])
    onehot = jax.nn.one_hot(y, w.shape[0], dtype=jnp.float32)

    def loss(x: Any, w: Any) -> Any:
        xn = x / jnp.linalg.norm(x, axis=1, keepdims=True)
        wn = w / jnp.linalg.norm(w, axis=1, keepdims=True)
        cos = xn @ wn.T
        logits = p["scale"] * (cos - p["margin"] * onehot)
        per = optax.softmax_cross_entropy_with_integer_labels(logits, y)
        return per.mean() if p["reduction"] == "mean" else per.sum()

    with jax.default_matmul_precision("bfloat16"):
        value, (gx, gw) = jax.value_and_grad(loss, argnums=(0, 1))(x, w)
    return {"loss": np.asarray(value)}, {"features": np.asarray(gx), "weights": np.asarray(gw)}


def _any(case: Any) -> Optional[str]:
    return None


def _plain_ce(case: Any) -> Optional[str]:
    p = params_of(case)
    if any(k in case.inputs for k in ("weight", "targets")) or p["label_smoothing"] != 0.0 or p["ignore_index"] is not None:
        return "SPEC §5 options (weights, ignore_index, smoothing, soft targets: not taken)"
    return None


NORMALIZE_CITE = "`torch.nn.functional.normalize(v, p=2, dim=1)`: v/max(‖v‖, ε) with ε = 1e-12 (its default)"

TIER_ADAPTERS: List[Adapter] = [
    Adapter(
        "PyTorch F.cross_entropy on 16-bit tensors", "torch", ["softmax_ce"], _any, torch_cross_entropy, ["outputs/loss", "gradients/logits"],
        [
            "every tensor in the logits' dtype, no autocast: CPU log_softmax sums e^{x − max} in float for bfloat16 and half and writes its output in their dtype (aten/src/ATen/native/cpu/SoftMaxKernel.cpp, `_vec_log_softmax_lastdim`; LogSoftmaxKernelImpl.h), the loss and ∂L/∂z in that dtype",
        ],
        dtypes=["bfloat16", "float16"],
        pipeline="native",
    ),
    Adapter(
        "PyTorch F.cross_entropy under torch.autocast (CPU bfloat16)", "torch", ["softmax_ce"], _any, _under_cpu_autocast(torch_cross_entropy), ["outputs/loss", "gradients/logits"],
        [
            "CPU autocast runs the cross-entropy in float32 (the torch.amp docs' Autocast Op Reference, CPU Ops that can autocast to float32; aten/src/ATen/autocast_mode.cpp; the loss comes back float32) and the gradient returns in the bfloat16 leaf's dtype",
        ],
        dtypes=["bfloat16"],
        pipeline="amp",
    ),
    Adapter(
        "pytorch-metric-learning CosFaceLoss under torch.autocast (CPU bfloat16)", "pytorch-metric-learning", ["cosface", "amsoftmax"], _any, _under_cpu_autocast(pml_cosface),
        ["outputs/loss", "gradients/features", "gradients/weights"],
        [
            "the cosine matrix by `torch.matmul` of the normalized embeddings (distances/cosine_similarity.py), a bfloat16 product under CPU autocast; the cross-entropy promoted to float32",
        ],
        dtypes=["bfloat16"],
        pipeline="amp",
    ),
    Adapter(
        "pytorch-metric-learning CosFaceLoss, float32 matmul precision 'medium'", "pytorch-metric-learning", ["cosface", "amsoftmax"], _any, pml_cosface_medium_matmul,
        ["outputs/loss", "gradients/features", "gradients/weights"],
        [
            "`torch.set_float32_matmul_precision('medium')` allows bfloat16 products for float32 matmuls where the backend has them (torch/backends docs; on CPU, oneDNN's bf16 path where the processor supports it); on this table's CPU (torch's capability AVX2) the products stay float32's, bit for bit the `highest` results",
        ],
        dtypes=["float32"],
        pipeline="bf16",
    ),
    Adapter(
        "optax softmax_cross_entropy_with_integer_labels on 16-bit arrays", "optax", ["softmax_ce"], _plain_ce, optax_cross_entropy_16_bit, ["outputs/loss", "gradients/logits"],
        ["log_softmax as x − max − log Σ e^{x − max}, each op's output in the arrays' dtype (jax/_src/nn/functions.py), then the label's entry (optax/losses/_classification.py)"],
        dtypes=["bfloat16", "float16"],
        pipeline="native",
    ),
    Adapter(
        "JAX CosFace under jax.default_matmul_precision('bfloat16')", "jax", ["cosface", "amsoftmax"], _any, jax_cosface_bf16_matmul,
        ["outputs/loss", "gradients/features", "gradients/weights"],
        ["`jax.default_matmul_precision('bfloat16')`: one bfloat16 pass for float32 dots where the backend honours it (jax/_src/config.py); XLA on CPU"],
        dtypes=["float32"],
        pipeline="bf16",
    ),
]

ADAPTERS: List[Adapter] = [
    Adapter(
        "PyTorch F.cross_entropy", "torch", ["softmax_ce"], _any, torch_cross_entropy, ["outputs/loss", "gradients/logits"],
        [
            "`torch.nn.functional.cross_entropy`: log_softmax then NLL; its gradient softmax(z) − onehot (torch/nn/functional.py, aten LogSoftmax backward)",
            "`weight`, `ignore_index` and `label_smoothing` as SPEC §5 (aten/src/ATen/native/LossNLL.cpp, cross_entropy_loss_label_smoothing: the smoothing term weighted by w_c and divided by Σ w_y for `mean`); probability targets divided by N for `mean`",
        ],
    ),
    Adapter(
        "timm LabelSmoothingCrossEntropy", "timm", ["softmax_ce"], _timm_label_smoothing_expresses, timm_label_smoothing, ["outputs/loss", "gradients/logits"],
        ["(1 − ε)·nll + ε·mean_c(−log p_c), then the batch mean: SPEC §5's ε/C smoothing without weights (timm/loss/cross_entropy.py)"],
    ),
    Adapter(
        "timm SoftTargetCrossEntropy", "timm", ["softmax_ce"], _timm_soft_target_expresses, timm_soft_target, ["outputs/loss", "gradients/logits"],
        ["Σ_c −t_c·log_softmax(z)_c, then the batch mean (timm/loss/cross_entropy.py)"],
    ),
    Adapter(
        "optax softmax_cross_entropy + smooth_labels", "optax", ["softmax_ce"], _optax_smoothed_expresses, optax_smoothed_cross_entropy, ["outputs/loss", "gradients/logits"],
        [
            "`smooth_labels(t, α)` = (1 − α)·t + α/C (optax/losses/_smoothing.py); per-example −Σ t·log_softmax(z) (optax/losses/_classification.py), reduced by the caller",
        ],
    ),
    Adapter(
        "optax poly_loss_cross_entropy", "optax", ["poly1"], _any, optax_poly_loss, ["outputs/loss", "gradients/logits"],
        ["CE + ε·Σ_c t_c·(1 − softmax(z)_c) with 1 − p computed as written (optax/losses/_classification.py); per example, reduced by the caller"],
    ),
    Adapter(
        "kornia focal_loss", "kornia", ["focal"], lambda case: _kornia_alpha(case)[0], kornia_focal, ["outputs/loss", "gradients/logits"],
        [
            "α: 1 − α on class 0 and α on every other class (kornia/losses/focal.py, focal_loss: `alpha_fac = [1 - alpha] + [alpha] * (num_of_classes - 1)`)",
            "`mean` divides the sum of the N×C per-class map by N·C (focal_loss: `loss_tmp.mean(…) / num_of_classes`)",
            "the focal weight (1 − exp(log_softmax(z)))^γ, 1 − p as written",
        ],
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
        "pytorch-metric-learning SubCenterArcFaceLoss", "pytorch-metric-learning", ["subcenter_arcface"], _pml_arcface_expresses, pml_subcenter_arcface,
        ["outputs/loss", "gradients/features", "gradients/weights"],
        [
            "cos θ_ij = max_k cos(x_i, w_{jK+k}): `cosine.view(-1, self.num_classes, self.sub_centers)` then `cosine.max(axis=2)` (losses/subcenter_arcface_loss.py, get_cosine); the gradient reaches the maximizing sub-center",
            "then ArcFaceLoss's rule: the margin in degrees, `thmm` with ≤ at the tie (losses/arcface_loss.py)",
            "keyword arguments (the reducer among them) reach ArcFaceLoss since 2.x (`super().__init__(…, **kwargs)`); earlier releases dropped them",
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
        "catalyst CurricularFace", "catalyst", ["curricularface"], _catalyst_curricularface_expresses, catalyst_curricularface,
        ["outputs/loss", "outputs/t_next", "gradients/features", "gradients/weights"],
        [
            "the official code's formula (catalyst/contrib/layers/curricularface.py, CurricularFace.forward): `mask = cos_theta > cos_theta_m`, the raw cos(θ + m) of the target, and the target logit by `thmm` (threshold cos(π − m), mm = sin(π − m)·m)",
            "t ← 0.01·mean(target cos θ) + 0.99·t under `torch.no_grad()`, before the hard negatives are rescaled: the momentum is hard-coded 0.01",
            "cos θ = `torch.mm(F.normalize(input), F.normalize(self.weight, dim=0))` with a D×C weight, clamped to [−1, 1]; the logits go to `F.cross_entropy`",
        ],
        wheel="CATALYST_WHEEL",
    ),
    Adapter(
        "catalyst AdaCos", "catalyst", ["adacos"], _any, catalyst_adacos,
        ["outputs/loss", "outputs/scale_next", "gradients/features", "gradients/weights"],
        [
            "s_old = `math.sqrt(2) * math.log(out_features - 1)` at construction (catalyst/contrib/layers/cosface.py, AdaCos.__init__)",
            "B = Σ_{j≠y} e^{s·cos θ} per row, then `.mean()` over the batch; θ_med = `theta[one_hot > 0].median()` (the lower median) of θ = acos(clamp(cos θ, −1 + 1e-6, 1 − 1e-6)); s' = log B / cos(min(π/4, θ_med)) via `.item()`, all under `torch.no_grad()`",
            "the logits s'·cos θ with the new scale (AdaCos.forward)",
        ],
        wheel="CATALYST_WHEEL",
    ),
    Adapter(
        "catalyst SubCenterArcFace", "catalyst", ["subcenter_arcface"], _catalyst_subcenter_expresses, catalyst_subcenter_arcface,
        ["outputs/loss", "gradients/features", "gradients/weights"],
        [
            "weights K × D × C, sub-center-major, and cos θ_ij = max over the K `torch.bmm` products (catalyst/contrib/layers/arcface.py, SubCenterArcFace.forward)",
            "θ = acos(clamp(cos θ, −1 + 1e-6, 1 − 1e-6)) for every class; the target's logit cos(θ + m) where θ ≤ π − m and cos θ past it (no `thmm` fallback cos θ − m·sin m): SPEC's `none` boundary up to π − m",
        ],
        wheel="CATALYST_WHEEL",
    ),
    Adapter(
        "open-metric-learning ArcFaceLoss", "open-metric-learning", ["arcface"], _pml_arcface_expresses, oml_arcface, ["outputs/loss", "gradients/features", "gradients/weights"],
        [
            "cos θ = F.linear(F.normalize(x), F.normalize(W)): " + NORMALIZE_CITE + " (oml/losses/arcface.py, `fc`)",
            "sin θ = sqrt(1 − cos²θ), unclamped; cos(θ + m) = cos θ·cos m − sin θ·sin m; `thmm` with th = −cos m, mm = m·sin m (ArcFaceLoss.forward)",
        ],
    ),
    Adapter(
        "optax softmax_cross_entropy_with_integer_labels", "optax", ["softmax_ce"], _plain_ce, optax_cross_entropy, ["outputs/loss", "gradients/logits"],
        ["log_softmax then the label's entry (optax/losses/_classification.py), differentiated by jax.grad"],
    ),
]

ADAPTERS += TIER_ADAPTERS
