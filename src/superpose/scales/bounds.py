"""Proven Lipschitz bounds of the scale-dependent maps in superpose (derivations: docs/scales.md).

- A transition ``s → t`` (:func:`~superpose.scales.transition`): exactly ``t/s``.
- A power transition ``τ₁ → τ₂`` on log-activation differences: exactly ``τ₂/τ₁``.
- The softmax retrieval step ``v ↦ Ξᵀ softmax(β Ξ v)``: ``β·diam(Ξ)²/4``, attained at the
  midpoint of two memories that are alone in the softmax.
- The choice rule ``log a ↦ softmax(τ log a)`` (Luce probabilities from log-activations): ``τ/2``.
- A gradient step on the log-sum-exp energy ``v ↦ v − α∇E_β(v)``: ``|1 − α| + α·β·diam(Ξ)²/4``.

Each bound is linear in its inverse temperature or sensitivity: moving from β₁ to β₂ multiplies
it by ``β₂/β₁``, the same ratio as a transition between the two scales.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import ArrayLike, Float

from superpose._validation import as_float_array, check_finite, positive_float


def memory_diameter(memories: Float[ArrayLike, "K D"]) -> float:
    """``max_{μ,ν} ‖ξ_μ − ξ_ν‖`` over the rows of ``memories`` (shape ``(K, D)``), in float64."""
    xi = as_float_array("memories", memories)
    if xi.ndim != 2 or xi.shape[0] < 1 or xi.shape[1] < 1:
        raise ValueError(f"memories must have shape (K, D) with K, D >= 1, got {xi.shape}")
    check_finite("memories", xi)
    rows = np.asarray(xi, np.float64)
    # one row against all at a time: O(K·D) memory, exact differences (no ‖a‖² + ‖b‖² − 2a·b cancellation)
    return float(max(np.sqrt(np.max(np.sum((rows - row) ** 2, axis=-1))) for row in rows))


def retrieval_step_bound(memories: Float[ArrayLike, "K D"], beta: float) -> float:
    """Lipschitz bound of the one-step update ``v ↦ Ξᵀ softmax(β Ξ v)``: ``β·diam(Ξ)²/4``.

    The Jacobian is ``β Ξᵀ (diag p − p pᵀ) Ξ``; its norm is ``β`` times the largest variance of a
    projection ``ξ_μ·u`` under ``p``, at most ``diam(Ξ)²/4`` (Popoviciu). Units: output
    distance per input distance.
    """
    return positive_float(beta, "beta") * memory_diameter(memories) ** 2 / 4


def descent_step_bound(memories: Float[ArrayLike, "K D"], beta: float, step_size: float) -> float:
    """Lipschitz bound of one gradient step ``v ↦ v − α∇E_β(v)`` on ``lse_energy``: ``|1 − α| + αβ·diam²/4``."""
    alpha = positive_float(step_size, "step_size")
    return abs(1 - alpha) + alpha * retrieval_step_bound(memories, beta)


def choice_rule_bound(tau: float) -> float:
    """Lipschitz bound of ``L ↦ softmax(τ L)`` (choice probabilities from log-activations): ``τ/2``.

    The Jacobian is ``τ (diag p − p pᵀ)``; the variance of ``u_i`` under ``p`` for a unit vector
    ``u`` is at most ``(max u − min u)²/4 <= 1/2``.
    """
    return positive_float(tau, "tau") / 2


__all__ = [
    "choice_rule_bound",
    "descent_step_bound",
    "memory_diameter",
    "retrieval_step_bound",
]
