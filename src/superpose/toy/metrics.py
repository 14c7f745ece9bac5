"""Per-model geometry of the learned features, and aggregation over ensemble members.

Feature i's direction is column W_i of W (shape (m, n)). With Ŵ_i = W_i / ‖W_i‖:

    superposition_i  = Σ_{j≠i} (Ŵ_i · W_j)²
    dimensionality_i = ‖W_i‖² / Σ_j (Ŵ_i · W_j)²         (Elhage et al. 2022)
    cosine_ij        = Ŵ_i · Ŵ_j                          (signed)

With one hidden unit the superposition score of feature 2 is W_1² whatever the sign of W_1·W_2, so
it cannot tell an antipodal pair (TMS's superposition) from an aligned, PCA-like pair; the signed
cosine and :func:`classify_pair` can.

Every function checks concrete inputs (shapes, NaN/inf, parameter ranges) and raises ValueError or
TypeError saying what is accepted; traced inputs (under ``jit``) are checked for shape only.
"""

from __future__ import annotations

import math
from typing import Any

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from superpose._validation import as_float_array, check_finite, is_concrete
from superpose.numerics import normalize, safe_norm

SOLUTION_CLASSES = ("not_learned", "dedicated", "antipodal", "aligned", "other")


def _weights(W: Any) -> jnp.ndarray:
    """W as a finite float array of shape (..., m, n) with m, n >= 1."""
    w = as_float_array("W", W)
    if w.ndim < 2 or w.shape[-2] < 1 or w.shape[-1] < 1:
        raise ValueError(f"W must have shape (..., m, n) with m, n >= 1 (features are columns), got {w.shape}")
    check_finite("W", w)
    return w


def _number(value: Any, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None


def _per_member(values: Any, losses: Any, least: int) -> tuple[jnp.ndarray, jnp.ndarray]:
    """values (numbers, any dtype) and losses (floats, no NaN) of one shape (..., members >= least)."""
    v = jnp.asarray(values)
    if not (jnp.issubdtype(v.dtype, jnp.number) or v.dtype == jnp.bool_):
        raise TypeError(f"values must hold numbers, got dtype {v.dtype}")
    if jnp.issubdtype(v.dtype, jnp.inexact):
        check_finite("values", v)
    loss = as_float_array("losses", losses)
    if v.shape != loss.shape or loss.ndim < 1 or loss.shape[-1] < least:
        raise ValueError(
            f"values and losses must have the same shape (..., members) with members >= {least}, "
            f"got {v.shape} and {loss.shape}"
        )
    if is_concrete(loss) and bool(np.any(np.isnan(np.asarray(loss)))):
        raise ValueError("losses must not hold NaN (a diverged member may have loss +inf)")
    return v, loss


def feature_norms(W: Float[Array, "*M m n"]) -> Float[Array, "*M n"]:
    """‖W_i‖ for every feature."""
    return safe_norm(_weights(W), axis=-2)


def _overlaps(W: jnp.ndarray) -> jnp.ndarray:
    unit = normalize(jnp.swapaxes(W, -1, -2))  # (..., n, m) unit rows, zeros for zero columns
    return jnp.einsum("...im,...mj->...ij", unit, W)  # (Ŵ_i · W_j)


def superposition(W: Float[Array, "*M m n"]) -> Float[Array, "*M n"]:
    """Σ_{j≠i} (Ŵ_i · W_j)² for every feature (0 for a feature with zero norm)."""
    o = _overlaps(_weights(W)) ** 2
    return jnp.sum(o, axis=-1) - jnp.diagonal(o, axis1=-2, axis2=-1)


def dimensionality(W: Float[Array, "*M m n"]) -> Float[Array, "*M n"]:
    """‖W_i‖² / Σ_j (Ŵ_i · W_j)² for every feature (0 for a feature with zero norm)."""
    W = _weights(W)
    norms2 = feature_norms(W) ** 2
    total = jnp.sum(_overlaps(W) ** 2, axis=-1)
    return jnp.where(total > 0, norms2 / jnp.where(total > 0, total, 1.0), 0.0)


def cosines(W: Float[Array, "*M m n"]) -> Float[Array, "*M n n"]:
    """Signed cosines Ŵ_i · Ŵ_j between features (0 where a feature has zero norm)."""
    unit = normalize(jnp.swapaxes(_weights(W), -1, -2))
    return unit @ jnp.swapaxes(unit, -1, -2)


def classify_pair(W: Float[Array, "*M m 2"], threshold: float = 0.5, cosine: float = 0.9) -> Int[Array, "*M"]:
    """Solution class of a two-feature model, as an index into :data:`SOLUTION_CLASSES`.

    Feature 2 is the one a phase diagram sweeps. ``not_learned``: feature 2's norm is below
    ``threshold``; ``dedicated``: feature 2 is represented and feature 1 is not; ``antipodal``
    and ``aligned``: both are, with cosine below ``−cosine`` or above ``cosine``; ``other``: both
    are represented otherwise (e.g. orthogonal, with m >= 2). ``threshold`` must be finite and
    >= 0, ``cosine`` in [0, 1].
    """
    W = _weights(W)
    if not (math.isfinite(_number(threshold, "threshold")) and threshold >= 0):
        raise ValueError(f"threshold must be a finite number >= 0 (a feature norm), got {threshold!r}")
    if not 0 <= _number(cosine, "cosine") <= 1:
        raise ValueError(f"cosine must be a number in [0, 1], got {cosine!r}")
    if W.shape[-1] != 2:
        raise ValueError(f"classify_pair needs two features, got W of shape {W.shape}")
    norms = feature_norms(W)
    on1, on2 = norms[..., 0] >= threshold, norms[..., 1] >= threshold
    c = cosines(W)[..., 0, 1]
    both = on1 & on2
    return jnp.where(
        ~on2, 0, jnp.where(~on1, 1, jnp.where(both & (c <= -cosine), 2, jnp.where(both & (c >= cosine), 3, 4)))
    )


def drop_worst_mean(values: Float[Array, "*cells members"], losses: Float[Array, "*cells members"]):
    """TMS's aggregation: drop each cell's highest-loss member, average the rest (last axis).

    ``values`` and ``losses`` share the shape ``(..., members)`` with at least 2 members; losses
    may be +inf (a diverged member) but not NaN. Returns shape ``(...)``.
    """
    values, losses = _per_member(values, losses, 2)
    worst = jnp.argmax(losses, axis=-1)
    keep = jnp.arange(losses.shape[-1]) != worst[..., None]
    return jnp.sum(jnp.where(keep, values, 0.0), axis=-1) / jnp.maximum(jnp.sum(keep, axis=-1), 1)


def best_of(values: Float[Array, "*cells members"], losses: Float[Array, "*cells members"]):
    """The value of each cell's lowest-loss member (last axis); shapes as in :func:`drop_worst_mean`
    with at least 1 member. Returns shape ``(...)`` in the dtype of ``values``."""
    values, losses = _per_member(values, losses, 1)
    return jnp.take_along_axis(values, jnp.argmin(losses, axis=-1)[..., None], axis=-1)[..., 0]
