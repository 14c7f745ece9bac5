"""Power scaling in log space and the Luce choice rule built on it.

A memory-search model (CMR) turns nonnegative item activations ``a`` into choice
probabilities ``p_i ∝ a_i**τ``. Raised directly, ``a**τ`` overflows or underflows for
the sensitivities that fits reach (τ near 100). Dividing by the maximum first, in log
space, keeps the largest entry at exactly 1:

    power_scale(a, τ)_i = exp(τ · (log a_i − max_j log a_j)).

Masking (removing already-recalled items) must happen *before* the maximum is taken:
if a masked item dominates, scaling first sends every other entry below the smallest
float, and masking afterwards leaves only zeros (see :func:`choice_probabilities`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float

from superpose._validation import (
    as_float_array,
    broadcast_per_row,
    check_at_least_1d,
    check_finite,
    check_nonnegative,
    is_concrete,
)


def _validated(values: ArrayLike, scale: ArrayLike) -> tuple[jax.Array, jax.Array]:
    v = as_float_array("values", values)
    check_at_least_1d("values", v)
    check_finite("values", v)
    check_nonnegative("values", v)
    s = as_float_array("scale", scale).astype(v.dtype)
    check_finite("scale", s)
    check_nonnegative("scale", s)
    return v, broadcast_per_row("scale", s, v.shape[:-1])


def _log_power_scale(v: jax.Array, s: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Returns (log of the scaled values, support mask, invalid-row mask, has-support rows).

    Safe for zeros and their gradients.

    Zeros (and, under jit, negative entries) are kept out of every log: the log is taken of
    a placeholder 1 there, so neither the value nor the gradient meets log(0).
    """
    support = v > 0
    log_v = jnp.log(jnp.where(support, v, 1.0))
    # One reduction finds the maximum and any negative entry: a negative entry contributes
    # +inf, an empty support leaves -inf.
    marked = jnp.where(support, log_v, jnp.where(v < 0, jnp.inf, -jnp.inf))
    top = jnp.max(marked, axis=-1, keepdims=True)
    log_max = jnp.where(jnp.isfinite(top), top, 0.0)
    # s * (log v - log max) is <= 0 on the support, so exp never overflows.
    log_scaled = jnp.where(support, s * (log_v - log_max), -jnp.inf)
    # Traced negative entries cannot raise: callers turn their rows into NaN *after* exp
    # (XLA's fused CPU exp does not reliably propagate a NaN input).
    invalid = (top == jnp.inf) | (s < 0)
    return log_scaled, support, invalid, top > -jnp.inf


def power_scale(
    values: Float[ArrayLike, "*batch n"], scale: Float[ArrayLike, "*batch"] | float
) -> Float[Array, "*batch n"]:
    """Raises nonnegative values to ``scale`` relative to their maximum, in log space.

    ``exp(scale · (log v − max log v))`` along the last axis: the maximum becomes 1 and every
    ratio ``v_i / v_j`` is raised to ``scale``. Conventions, chosen to make the Luce rule
    continuous in its limits:

    - ``scale == 1`` or an all-zero row returns the row unchanged (as the seed notebook does);
    - ``scale == 0`` gives 1 on the support (the nonzero entries) and 0 elsewhere;
    - zeros stay zero and have zero gradient for every ``scale``.

    Args:
        values: shape ``(..., n)``, finite and ``>= 0``. Integers are promoted to float.
        scale: a scalar, or one exponent per row (shape ``(...)``), finite and ``>= 0``.

    Returns:
        An array of the values' shape and float dtype, entries in ``[0, 1]`` unless ``scale == 1``.

    Raises:
        ValueError: when called eagerly with a negative, NaN or inf entry or scale, or a
            scale whose shape does not match the rows. Under ``jit`` the inputs are tracers
            and cannot be checked: a row with a negative entry or scale comes back as NaN.
    """
    v, s = _validated(values, scale)
    log_scaled, _, invalid, _ = _log_power_scale(v, s)
    scaled = jnp.exp(log_scaled)
    identity = (s == 1) | ~jnp.any(v != 0, axis=-1, keepdims=True)
    return jnp.where(invalid, jnp.nan, jnp.where(identity, v, scaled))


def _mask_like(mask: ArrayLike, shape: tuple[int, ...]) -> jax.Array:
    m = jnp.asarray(mask)
    if m.dtype != jnp.bool_:
        raise TypeError(f"mask must be boolean (True = masked out), got dtype {m.dtype}")
    try:
        return jnp.broadcast_to(m, shape)
    except ValueError as error:
        raise ValueError(f"mask of shape {m.shape} does not broadcast to values of shape {shape}") from error


def masked_power_scale(
    values: Float[ArrayLike, "*batch n"],
    mask: Bool[ArrayLike, "*batch n"],
    scale: Float[ArrayLike, "*batch"] | float,
) -> Float[Array, "*batch n"]:
    """Zeroes the masked entries, *then* power-scales, so the maximum is over unmasked entries.

    Args:
        values: shape ``(..., n)``, finite and ``>= 0``.
        mask: boolean, broadcastable to ``values``; ``True`` marks an entry that is masked
            out (for example an item already recalled).
        scale: a scalar or one exponent per row, ``>= 0``.

    Returns:
        Shape ``(..., n)``; masked entries are 0. Conventions as in :func:`power_scale`.
    """
    v = as_float_array("values", values)
    check_at_least_1d("values", v)
    m = _mask_like(mask, v.shape)
    return power_scale(jnp.where(m, 0.0, v), scale)


def choice_probabilities(
    values: Float[ArrayLike, "*batch n"],
    mask: Bool[ArrayLike, "*batch n"],
    scale: Float[ArrayLike, "*batch"] | float,
    floor: float = 0.0,
) -> Float[Array, "*batch n"]:
    """Luce choice probabilities ``p_i ∝ v_i**scale`` over the unmasked entries.

    The mask is applied before the maximum is taken (see :func:`masked_power_scale`), so a
    masked item that dominates the activations cannot push the others to zero. Scaling first
    and masking afterwards fails exactly there: with activations ``[0.05, 1e8, 3, 2.8, 2.5]``,
    item 2 masked and ``scale = 90``, every unmasked ratio ``(3/1e8)**90 ≈ 1e-677`` underflows
    in float32 and float64 alike, and the masked row is all zeros.

    The scaled values have maximum 1, so their sum lies in ``[1, n]``: normalising cannot
    overflow, and a probability that underflows to 0 is below ``1e-45`` (float32) anyway.

    Args:
        values: shape ``(..., n)``, finite and ``>= 0``.
        mask: boolean, broadcastable to ``values``; ``True`` = masked out (probability 0).
        scale: the choice sensitivity τ, a scalar or one per row, ``>= 0``.
        floor: optional lapse mass in ``[0, 1)``. With ``floor > 0`` the result is
            ``(1 − floor)·p + floor/n_unmasked`` on unmasked entries, so no available item is
            less likely than ``floor/n_unmasked``. Off by default: a floor changes the
            likelihood, and jaxcmr's additive floor is one reason its fits differ.

    Returns:
        Shape ``(..., n)``, summing to 1 over the unmasked entries of each row. A row whose
        unmasked values are all 0 gets the uniform distribution over its unmasked entries
        (the limit of equal activations); a row with every entry masked is all zeros.
    """
    v, s = _validated(values, scale)
    m = _mask_like(mask, v.shape)
    floor = float(floor) if is_concrete(floor) else floor
    if is_concrete(floor) and not 0.0 <= floor < 1.0:
        raise ValueError(f"floor must be in [0, 1), got {floor}")
    available = ~m
    v = jnp.where(m, 0.0, v)
    log_scaled, support, invalid, has_support = _log_power_scale(v, s)
    scaled = jnp.exp(log_scaled)
    total = jnp.sum(scaled, axis=-1, keepdims=True)
    luce = scaled / jnp.where(has_support, total, 1.0)
    n_available = jnp.sum(available, axis=-1, keepdims=True)
    uniform = jnp.where(available, 1.0 / jnp.maximum(n_available, 1), 0.0).astype(v.dtype)
    luce = jnp.where(has_support, luce, uniform)
    return jnp.where(invalid, jnp.nan, (1.0 - floor) * luce + floor * uniform)


def log_choice_probabilities(
    values: Float[ArrayLike, "*batch n"],
    mask: Bool[ArrayLike, "*batch n"],
    scale: Float[ArrayLike, "*batch"] | float,
) -> Float[Array, "*batch n"]:
    """``log`` of :func:`choice_probabilities` (no floor), computed without leaving log space.

    ``τ·(log v_i − max log v) − log Σ_j exp(τ·(log v_j − max log v))`` over unmasked entries.
    Unlike ``log(choice_probabilities(...))`` it never underflows: with τ = 100 in float32 a
    probability of ``1e-300`` is returned as ``−690.8``, not ``−inf``. Masked entries and zero
    activations are ``−inf``; the conventions for empty rows follow :func:`choice_probabilities`.
    Gradients are finite at every entry that is not ``−inf``.

    Args:
        values: shape ``(..., n)``, finite and ``>= 0``.
        mask: boolean, broadcastable to ``values``; ``True`` = masked out.
        scale: the choice sensitivity τ, a scalar or one per row, ``>= 0``.

    Returns:
        Shape ``(..., n)`` log-probabilities.
    """
    v, s = _validated(values, scale)
    m = _mask_like(mask, v.shape)
    available = ~m
    v = jnp.where(m, 0.0, v)
    log_scaled, support, invalid, has_support = _log_power_scale(v, s)
    # The scaled maximum is exactly 0 (exp = 1), so log Σ exp needs no second shift.
    total = jnp.sum(jnp.exp(log_scaled), axis=-1, keepdims=True)
    luce = jnp.where(support, log_scaled - jnp.log(jnp.where(has_support, total, 1.0)), -jnp.inf)
    n_available = jnp.sum(available, axis=-1, keepdims=True).astype(v.dtype)
    uniform = jnp.where(available, -jnp.log(jnp.maximum(n_available, 1.0)), -jnp.inf)
    return jnp.where(invalid, jnp.nan, jnp.where(has_support, luce, uniform))


def log_choice_probability_of(
    values: Float[ArrayLike, "*batch n"],
    mask: Bool[ArrayLike, "*batch n"],
    scale: Float[ArrayLike, "*batch"] | float,
    index: ArrayLike,
) -> Float[Array, "*batch"]:
    """``log_choice_probabilities(values, mask, scale)[..., index]``, without the full row.

    The rule a likelihood needs: one chosen entry per row. It takes one pass less than the
    full distribution (the log-normaliser is ``log Σ exp(·)`` of values whose maximum is 0, so
    it needs no second shift). ``index`` (integer, shape ``(...)``, each in ``[0, n)``) should
    point at an unmasked entry; a masked one gives ``−inf``. An index outside ``[0, n)`` raises
    ValueError when concrete; under ``jit`` it is not checked.
    """
    v, s = _validated(values, scale)
    m = _mask_like(mask, v.shape)
    idx = jnp.asarray(index)
    if not jnp.issubdtype(idx.dtype, jnp.integer):
        raise TypeError(f"index must hold integers, got dtype {idx.dtype}")
    n = v.shape[-1]
    if is_concrete(idx):
        bad = (np.asarray(idx) < 0) | (np.asarray(idx) >= n)
        if np.any(bad):
            raise ValueError(
                f"index must lie in [0, {n}) (one of the n = {n} entries of each row); "
                f"{int(np.sum(bad))} entries do not, e.g. {int(np.asarray(idx)[bad].flat[0])}"
            )
    v = jnp.where(m, 0.0, v)
    log_scaled, _, invalid, has_support = _log_power_scale(v, s)
    has_support = has_support[..., 0]
    total = jnp.sum(jnp.exp(log_scaled), axis=-1)
    chosen = jnp.take_along_axis(log_scaled, idx[..., None].astype(jnp.int32), axis=-1)[..., 0]
    n_available = jnp.sum(~m, axis=-1).astype(v.dtype)
    picked_available = ~jnp.take_along_axis(m, idx[..., None].astype(jnp.int32), axis=-1)[..., 0]
    luce = chosen - jnp.log(jnp.where(has_support, total, 1.0))
    uniform = jnp.where(picked_available, -jnp.log(jnp.maximum(n_available, 1.0)), -jnp.inf)
    return jnp.where(invalid[..., 0], jnp.nan, jnp.where(has_support, luce, uniform))
