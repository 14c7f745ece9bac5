"""Vector helpers with safe gradients: L2 normalisation and log-mean-exp."""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from superpose._validation import as_float_array, check_at_least_1d, check_finite


def safe_norm(x: Float[ArrayLike, "*batch d"], axis: int = -1, keepdims: bool = False) -> Float[Array, "*batch"]:
    """L2 norm along ``axis`` whose gradient at the zero vector is 0 instead of NaN."""
    x = jnp.asarray(x)
    squared = jnp.sum(x * x, axis=axis, keepdims=keepdims)
    nonzero = squared > 0
    return jnp.where(nonzero, jnp.sqrt(jnp.where(nonzero, squared, 1.0)), 0.0)


def normalize(x: Float[ArrayLike, "*batch d"], axis: int = -1, eps: float = 0.0) -> Float[Array, "*batch d"]:
    """``x / ‖x‖`` along ``axis``; the zero vector (or one with norm <= eps) is returned as zeros.

    Args:
        x: shape ``(..., d)``, finite.
        axis: the axis holding the vector.
        eps: norms at or below ``eps`` count as zero (``eps >= 0``).

    Returns:
        Same shape: unit vectors, or zeros where the norm is at most ``eps``. Gradients are
        finite everywhere, including at zero.
    """
    x = as_float_array("x", x)
    check_at_least_1d("x", x)
    check_finite("x", x)
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    norm = safe_norm(x, axis=axis, keepdims=True)
    big = norm > eps
    return jnp.where(big, x / jnp.where(big, norm, 1.0), 0.0)
