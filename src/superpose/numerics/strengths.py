"""Positive strengths parameterised by their logarithm.

Optimisers (REML, differential evolution, gradient polish) move hyperparameters such as
sparsity and smoothness strengths in log space. ``stable_exp`` maps them back with the
exponent clamped, so a wild step never produces 0, inf or NaN downstream.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from superpose._validation import as_float_array, check_finite


def exponent_limits(dtype: jnp.dtype) -> tuple[float, float]:
    """The widest ``(lo, hi)`` with ``exp(lo) > 0`` normal and ``exp(hi) < inf`` in ``dtype``."""
    info = jnp.finfo(dtype)
    # One unit of margin keeps exp() away from the rounding edge at both ends.
    return math.log(float(info.tiny)) + 1.0, math.log(float(info.max)) - 1.0


def stable_exp(
    log_strength: Float[ArrayLike, "*shape"], lo: float = -700.0, hi: float = 700.0
) -> Float[Array, "*shape"]:
    """``exp(clip(log_strength, lo, hi))``: always finite and strictly positive.

    The clamp is further narrowed to the dtype's range (about ``[-86, 87]`` in float32,
    ``[-707, 708]`` in float64), so the defaults are safe in either precision. Outside the
    clamp the gradient is 0, as for any clip; inside it equals the value.

    Args:
        log_strength: any shape, finite. Integers are promoted to float.
        lo, hi: the exponent's bounds, ``lo < hi``.

    Returns:
        An array of the same shape, every entry in ``[exp(lo'), exp(hi')]`` with the
        dtype-narrowed bounds ``lo'``, ``hi'``.
    """
    x = as_float_array("log_strength", log_strength)
    check_finite("log_strength", x)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"stable_exp needs finite bounds with lo < hi, got lo={lo}, hi={hi}")
    dtype_lo, dtype_hi = exponent_limits(x.dtype)
    lo_eff, hi_eff = max(lo, dtype_lo), min(hi, dtype_hi)
    if lo_eff >= hi_eff:
        raise ValueError(
            f"the bounds [{lo}, {hi}] do not overlap the exponents that {x.dtype} can represent "
            f"([{dtype_lo:.1f}, {dtype_hi:.1f}])"
        )
    return jnp.exp(jnp.clip(x, lo_eff, hi_eff))



__all__ = ["exponent_limits", "stable_exp"]
