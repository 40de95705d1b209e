"""Losses written the way a JAX user writes them (normalize, matmul, margin, optax's
cross-entropy, jax.grad), and deliberately wrong versions of them. These are the
third-party code the package is validated on; nothing here comes from lossref."""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

jax.config.update("jax_enable_x64", True)

Values = Tuple[Dict[str, Any], Dict[str, Any]]


def _reduce(per_sample: jnp.ndarray, reduction: str) -> jnp.ndarray:
    return per_sample.mean() if reduction == "mean" else per_sample.sum()


def optax_ce_integer_labels(inputs: Dict[str, np.ndarray], params: Dict[str, Any], sum_instead: bool = False) -> Values:
    """optax.softmax_cross_entropy_with_integer_labels, reduced, and its jax.grad."""
    reduction = params.get("reduction", "mean")
    if sum_instead:
        reduction = "sum"
    labels = jnp.asarray(inputs["labels"])

    def loss(z: jnp.ndarray) -> jnp.ndarray:
        return _reduce(optax.softmax_cross_entropy_with_integer_labels(z, labels), reduction)

    z = jnp.asarray(inputs["logits"])
    value, grad = jax.value_and_grad(loss)(z)
    return {"loss": np.asarray(value)}, {"logits": np.asarray(grad)}


def optax_ce_one_hot(inputs: Dict[str, np.ndarray], params: Dict[str, Any]) -> Values:
    """optax.softmax_cross_entropy with one-hot labels, reduced, and its jax.grad."""
    z = jnp.asarray(inputs["logits"])
    one_hot = jax.nn.one_hot(jnp.asarray(inputs["labels"]), z.shape[1], dtype=z.dtype)

    def loss(z: jnp.ndarray) -> jnp.ndarray:
        return _reduce(optax.softmax_cross_entropy(z, one_hot), params.get("reduction", "mean"))

    value, grad = jax.value_and_grad(loss)(z)
    return {"loss": np.asarray(value)}, {"logits": np.asarray(grad)}


def _normalize(v: jnp.ndarray) -> jnp.ndarray:
    return v / jnp.linalg.norm(v, axis=1, keepdims=True)


def _margin_loss(target: Callable[[jnp.ndarray], jnp.ndarray], inputs: Dict[str, np.ndarray], params: Dict[str, Any], scale: float) -> Values:
    labels = jnp.asarray(inputs["labels"])
    x0 = jnp.asarray(inputs["features"])
    w0 = jnp.asarray(inputs["weights"])
    # Partial FC (SPEC §5): the subset's rows of W, `weight[classes]`, labels renumbered
    classes = jnp.asarray(inputs["classes"]) if "classes" in inputs else None
    if classes is not None:
        labels = jnp.searchsorted(classes, labels)
    one_hot = jax.nn.one_hot(labels, w0.shape[0] if classes is None else classes.shape[0], dtype=x0.dtype)

    def loss(x: jnp.ndarray, w: jnp.ndarray) -> jnp.ndarray:
        rows = w if classes is None else w[classes]
        cos = _normalize(x) @ _normalize(rows).T
        logits = scale * jnp.where(one_hot > 0, target(cos), cos)
        return _reduce(optax.softmax_cross_entropy_with_integer_labels(logits, labels), params.get("reduction", "mean"))

    value, (gx, gw) = jax.value_and_grad(loss, argnums=(0, 1))(x0, w0)
    return {"loss": np.asarray(value)}, {"features": np.asarray(gx), "weights": np.asarray(gw)}


def _margins(inputs: Dict[str, np.ndarray], m: Any) -> Any:
    """ElasticFace's per-sample margins (SPEC §5) as a column that broadcasts over a row's
    classes, or the scalar margin."""
    return jnp.asarray(inputs["margins"])[:, None] if "margins" in inputs else m


def cosface(inputs: Dict[str, np.ndarray], params: Dict[str, Any]) -> Values:
    """CosFace / AM-Softmax: target logit s·(cos θ − m), m per sample where given."""
    m = _margins(inputs, params.get("margin", 0.35))
    return _margin_loss(lambda cos: cos - m, inputs, params, params.get("scale", 64.0))


def arcface(inputs: Dict[str, np.ndarray], params: Dict[str, Any], degrees: bool = False, boundary: str = "") -> Values:
    """ArcFace: target cos(θ + m) through arccos, with the `thmm` / `easy` boundaries and
    the detached margin gradient (stop_gradient on the offset), as insightface writes it."""
    m = _margins(inputs, params.get("margin", 0.5))
    if degrees:
        m = m * math.pi / 180.0
    boundary = boundary or params.get("boundary", "none")
    detached = params.get("margin_grad", "full") == "detached"

    def target(cos: jnp.ndarray) -> jnp.ndarray:
        theta = jnp.arccos(jnp.clip(cos, -1.0, 1.0))
        g = jnp.cos(theta + m)
        if boundary == "thmm":
            g = jnp.where(cos > jnp.cos(math.pi - m), g, cos - m * jnp.sin(m))
        elif boundary == "easy":
            g = jnp.where(cos > 0, g, cos)
        if detached:
            g = cos + jax.lax.stop_gradient(g - cos)
        return g

    return _margin_loss(target, inputs, params, params.get("scale", 64.0))


def distill(inputs: Dict[str, np.ndarray], params: Dict[str, Any], drop_t_squared: bool = False) -> Values:
    """Knowledge distillation: α·T²·KL(q_t ‖ q_s) + (1 − α)·CE, with optax's KL."""
    t = params.get("temperature", 4.0)
    alpha = params.get("alpha", 0.9)
    soft_mode = params.get("soft", "kl")
    labels = jnp.asarray(inputs["labels"])
    teacher = jnp.asarray(inputs["teacher_logits"])
    factor = 1.0 if drop_t_squared else t * t

    def loss(s: jnp.ndarray) -> jnp.ndarray:
        log_qs = jax.nn.log_softmax(s / t)
        log_qt = jax.nn.log_softmax(teacher / t)
        if soft_mode == "kl":
            soft = optax.kl_divergence(log_qs, jnp.exp(log_qt))
        else:
            soft = -(jnp.exp(log_qt) * log_qs).sum(axis=1)
        hard = optax.softmax_cross_entropy_with_integer_labels(s, labels)
        return _reduce(alpha * factor * soft + (1 - alpha) * hard, params.get("reduction", "mean"))

    s0 = jnp.asarray(inputs["student_logits"])
    value, grad = jax.value_and_grad(loss)(s0)
    return {"loss": np.asarray(value)}, {"student_logits": np.asarray(grad)}
