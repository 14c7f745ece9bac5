"""Input checks of superpose.memory (eager values only; traced values pass through)."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from superpose._validation import as_float_array, check_finite, is_concrete, positive_float, positive_int

__all__ = ["check_beta", "memories_array", "positive_float", "positive_int", "states_array"]


def check_beta(beta: Any, name: str = "beta") -> None:
    """β must be a finite number > 0."""
    if is_concrete(beta):
        values = np.asarray(beta, dtype=float)
        if not np.all(np.isfinite(values)) or np.any(values <= 0):
            raise ValueError(f"{name} must be finite and > 0, got {beta!r}")


def memories_array(memories: Any) -> jnp.ndarray:
    """Validates memories of shape (K, D): finite floats, K >= 1, D >= 1."""
    xi = as_float_array("memories", memories)
    if xi.ndim != 2 or xi.shape[0] < 1 or xi.shape[1] < 1:
        raise ValueError(f"memories must have shape (K, D) with K, D >= 1, got {xi.shape}")
    check_finite("memories", xi)
    return xi


def states_array(states: Any, dim: int, name: str = "states") -> jnp.ndarray:
    """Validates states of shape (..., D) with the memories' D; finite floats."""
    v = as_float_array(name, states)
    if v.ndim < 1 or v.shape[-1] != dim:
        raise ValueError(f"{name} must have shape (..., {dim}) to match the memories' D = {dim}, got {v.shape}")
    check_finite(name, v)
    return v
