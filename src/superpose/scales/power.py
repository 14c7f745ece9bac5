"""Power transitions: move power-scaled activations from one choice sensitivity to another.

Activations power-scaled at sensitivity τ₁ are ``a⁽¹⁾ = exp(τ₁·(log a − max log a))``
(:func:`superpose.numerics.power_scale`). Their maximum is 1, so power-scaling them again by
``τ₂/τ₁`` gives ``exp(τ₂·(log a − max log a))``: the activations at τ₂. In log space the map
multiplies every log-activation difference ``log a_i − log a_j`` by exactly ``τ₂/τ₁``, which is
therefore its Lipschitz constant on differences (docs/scales.md), and transitions compose:
``τ₁ → τ₂ → τ₃`` equals ``τ₁ → τ₃``.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from superpose._validation import is_concrete
from superpose.numerics.power import power_scale
from superpose.scales.ladder import ScaleLadder


def _sensitivity(name: str, value: Any) -> Any:
    """A finite τ > 0 (scalar or one per row); traced values pass unchecked."""
    if not is_concrete(value):
        return value
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number or an array of numbers, got {value!r}") from None
    if not np.all(np.isfinite(array)) or np.any(array <= 0):
        raise ValueError(f"{name} must be finite and > 0 (a choice sensitivity), got {value!r}")
    return float(array) if array.ndim == 0 else jnp.asarray(value)


def power_transition(
    activations: Float[ArrayLike, "*batch n"],
    source_tau: Float[ArrayLike, "*batch"] | float,
    target_tau: Float[ArrayLike, "*batch"] | float,
    *,
    ladder: ScaleLadder | None = None,
) -> Float[Array, "*batch n"]:
    """Moves activations power-scaled at ``source_tau`` to ``target_tau``: ``power_scale(a, τ₂/τ₁)``.

    Args:
        activations: shape ``(..., n)``, finite and ``>= 0``: activations already power-scaled
            at ``source_tau`` (or raw activations, which are then treated as scaled at it).
        source_tau, target_tau: the sensitivities τ₁ and τ₂, finite and > 0, scalars or one
            per row (shape ``(...)``).
        ladder: optional :class:`ScaleLadder` of sensitivities; scalar τ₁, τ₂ must lie in its
            range and their ratio within its ``max_step``.

    Returns:
        Shape ``(..., n)``: the activations at ``target_tau``, maximum 1 (``τ₂ = τ₁`` returns the
        input unchanged, the :func:`~superpose.numerics.power_scale` convention). Zeros stay zero.
        Log-activation differences are multiplied by exactly ``τ₂/τ₁``.

    Raises:
        ValueError: a non-finite or non-positive sensitivity, a negative, NaN or inf activation,
            or a ladder violation.
    """
    source = _sensitivity("source_tau", source_tau)
    target = _sensitivity("target_tau", target_tau)
    if ladder is not None:
        if not (isinstance(source, float) and isinstance(target, float)):
            raise ValueError("a ladder checks scalar sensitivities only; got per-row or traced source_tau/target_tau")
        ladder.ratio(source, target)
    ratio = target / source if isinstance(source, float) and isinstance(target, float) else (
        jnp.asarray(target) / jnp.asarray(source))
    return power_scale(activations, ratio)


def centered_log(activations: Float[ArrayLike, "*batch n"]) -> Float[Array, "*batch n"]:
    """``log a − mean(log a)`` along the last axis: log-activations modulo a constant.

    Power scaling fixes log-activations only up to an additive constant per row (the maximum is
    moved to 0); centring removes it, so that a power transition is exactly ``L ↦ (τ₂/τ₁)·L`` on
    centred log-activations. Activations must be > 0.
    """
    logs = jnp.log(jnp.asarray(activations))
    return logs - jnp.mean(logs, axis=-1, keepdims=True)


__all__ = ["centered_log", "power_transition"]
