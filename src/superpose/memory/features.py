"""Random feature maps for the kernel ``κ_β(x, y) = exp(−β/2 ‖x − y‖²)``.

Every map draws Y random directions ``ω_i ~ N(0, I_D)`` (optionally orthogonal within blocks
of D) and scales inputs by √β, so that ``⟨φ(x), φ(y)⟩ ≈ κ_β(x, y)`` with error ``O(√(D/Y))``:

- ``"sincos"`` (the default; Rahimi & Recht 2007): ``φ(x) = Y^{-1/2} [cos h_i, sin h_i]``,
  ``h = √β Ω x``, size 2Y. ``⟨φ(x), φ(y)⟩ = (1/Y) Σ_i cos(√β ω_i·(x − y))``, unbiased.
- ``"cos"``: ``φ(x) = √(2/Y) cos(h_i + b_i)`` with a random phase ``b_i ~ U[0, 2π)``, size Y.
  Unbiased, with twice the variance of ``"sincos"`` per feature.
- ``"positive"`` (Choromanski et al. 2021, with antithetic pairs):
  ``φ(x) = (2Y)^{-1/2} [exp(h_i − β‖x‖²), exp(−h_i − β‖x‖²)]``, size 2Y. Every feature is
  positive, so kernel sums never go negative; they are kept in log space (see
  :class:`~superpose.memory.DistributedMemory`).

The projection Ω is generated chunk by chunk from a key: chunk ``c`` (rows ``c·C … c·C+C−1``)
comes from ``fold_in(key, c)``. Regenerating a chunk therefore gives exactly the rows that a
stored projection holds, so both modes compute the same T and the same energies.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from superpose.numerics import sincos
from superpose.numerics.precision import matmul_at

FEATURE_MAPS = ("sincos", "cos", "positive")

# parts of φ per random direction: sincos and positive have two, cos has one
PARTS = {"sincos": 2, "cos": 1, "positive": 2}


def projection_chunk(
    key: jax.Array, index: jax.Array | int, chunk: int, dim: int, orthogonal: bool, dtype: jnp.dtype
) -> Float[Array, "chunk dim"]:
    """Rows ``index·chunk … index·chunk + chunk − 1`` of the random projection Ω.

    Gaussian rows by default. With ``orthogonal=True`` (orthogonal random features, Yu et al.
    2016) rows come in blocks of D that are exactly orthogonal, each row rescaled to the norm of
    an independent Gaussian vector, which keeps the kernel unbiased and lowers its variance.
    """
    k = jax.random.fold_in(key, index)
    if not orthogonal:
        return jax.random.normal(k, (chunk, dim), dtype)
    blocks = -(-chunk // dim)
    k_dir, k_norm = jax.random.split(k)
    q, _ = jnp.linalg.qr(jax.random.normal(k_dir, (blocks, dim, dim), dtype))
    norms = jnp.linalg.norm(jax.random.normal(k_norm, (blocks, dim, dim), dtype), axis=-1)
    rows = jnp.swapaxes(q, -1, -2) * norms[..., None]
    return rows.reshape(blocks * dim, dim)[:chunk]


def phase_chunk(key: jax.Array, index: jax.Array | int, chunk: int, dtype: jnp.dtype) -> Float[Array, " chunk"]:
    """Random phases ``b ~ U[0, 2π)`` of chunk ``index`` (the ``"cos"`` map)."""
    return jax.random.uniform(jax.random.fold_in(key, index), (chunk,), dtype, 0.0, 2 * math.pi)


def chunk_features(
    kind: str, states: Float[Array, "B D"], omega: Float[Array, "C D"], phase: Float[Array, " C"] | None,
    beta: float, num_features: int, precision: str = "highest",
) -> Float[Array, "parts B C"]:
    """φ of a batch for one chunk of directions, shape ``(parts, B, C)``; ``precision`` is that of
    the product ``states · omegaᵀ`` (:data:`superpose.numerics.precision.MATMUL_PRECISIONS`).

    For ``"positive"`` this returns the *logarithm* of the features (they under- and overflow
    in linear space for large β).
    """
    h = jnp.sqrt(beta) * matmul_at(precision)(states, omega.T)
    if kind == "sincos":
        sin, cos = sincos(h)
        return jnp.stack([cos, sin]) / jnp.sqrt(num_features)
    if kind == "cos":
        return (jnp.sqrt(2.0 / num_features) * sincos(h + phase)[1])[None]
    if kind == "positive":
        shift = beta * jnp.sum(states**2, axis=-1, keepdims=True) + 0.5 * jnp.log(2.0 * num_features)
        return jnp.stack([h - shift, -h - shift])
    raise ValueError(f"feature map must be one of {FEATURE_MAPS}, got {kind!r}")
