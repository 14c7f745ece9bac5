"""Exact expected loss of the two-feature, one-hidden-unit ReLU model, and its global minimum.

For x' = ReLU(WᵀW x + b) with W = (w₁, w₂) and magnitudes uniform on [0, 1], the expected loss

    L(W, b) = Σ_patterns p(pattern) · E[Σ_j I_j (x_j − x'_j)²]

is a sum over the four activation patterns (none, only 1, only 2, both) of integrals over at
most two uniforms of (t − ReLU(a·u + c·v + d))², t ∈ {u, v, 0}. Each integrand is a polynomial
on the part of the unit square where a·u + c·v + d > 0. We integrate over v in closed form, split
u at the (at most two) points where the boundary of that region crosses v = 0 or v = 1, and
integrate each piece with 4-point Gauss–Legendre, which is exact for the piecewise polynomials
of degree ≤ 4 that result. The loss is exact to rounding and differentiable, so its minimum
over (w₁, w₂, b₁, b₂) is found with vectorised Adam followed by damped Newton steps from several
starts (the three TMS candidates and their neighbours).

Closed forms of the TMS candidates for independent features of density s and importances (1, r):
not learned L = r(s/3 − s²/4) (feature 2's bias s/2), dedicated L = s/3 − s²/4, antipodal
L = (1 + r)s²/6 with zero bias. They meet at r = 1, s = 4/7.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float

from superpose._validation import positive_int
from superpose.numerics.precision import float64_enabled
from superpose.toy.data import Features
from superpose.toy.metrics import classify_pair
from superpose.toy.training import check_importance

_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(4)
_FLAT = 1e-12


def relu_square_error(a, c, d, alpha, gamma):
    """E over u, v ~ U[0, 1] of (t − ReLU(a·u + c·v + d))² with target t = alpha·u + gamma·v.

    alpha, gamma ∈ {0, 1} (at most one of them 1); all arguments broadcast together.
    """
    a, c, d, alpha, gamma = jnp.broadcast_arrays(a, c, d, alpha, gamma)
    # slopes this small change the loss by < 1e-12 but would overflow −d/a (and its gradient)
    a = jnp.where(jnp.abs(a) < _FLAT, 0.0, a)
    c = jnp.where(jnp.abs(c) < _FLAT, 0.0, c)
    flat_a = a == 0
    safe_a = jnp.where(flat_a, 1.0, a)
    cuts = jnp.stack([jnp.where(flat_a, 0.5, -d / safe_a), jnp.where(flat_a, 0.5, -(c + d) / safe_a)], -1)
    cuts = jnp.sort(jnp.clip(cuts, 0.0, 1.0), axis=-1)
    left = jnp.concatenate([jnp.zeros_like(cuts[..., :1]), cuts], -1)  # (..., 3) pieces of [0, 1]
    half = (jnp.concatenate([cuts, jnp.ones_like(cuts[..., :1])], -1) - left) / 2
    nodes = jnp.asarray(_NODES, a.dtype)
    u = (left[..., :, None] + half[..., :, None] * (nodes + 1)).reshape(*a.shape, -1)  # (..., 12)
    weight = (half[..., :, None] * jnp.asarray(_WEIGHTS, a.dtype)).reshape(*a.shape, -1)
    a, c, d, alpha, gamma = (x[..., None] for x in (a, c, d, alpha, gamma))
    # for fixed u, ℓ = c·v + e is positive on [lo, hi] ⊂ [0, 1]; integrate over v in closed form
    e = a * u + d
    root = jnp.clip(-e / jnp.where(c == 0, 1.0, c), 0.0, 1.0)
    lo = jnp.where(c > 0, root, 0.0)
    hi = jnp.where((c == 0) & (e <= 0), 0.0, jnp.where(c < 0, root, 1.0))

    def primitive(v):  # ∫ (ℓ² − 2(αu + γv)ℓ) dv
        return (c * c * v**3 / 3 + c * e * v**2 + e * e * v - 2 * alpha * u * (c * v**2 / 2 + e * v)
                - 2 * gamma * (c * v**3 / 3 + e * v**2 / 2))

    inner = jnp.where(hi > lo, primitive(hi) - primitive(lo), 0.0)
    return jnp.sum(weight * inner, -1) + (alpha[..., 0] + gamma[..., 0]) / 3


def pattern_probabilities(features: Features) -> Float[Array, "M 4"]:
    """p(none), p(only 1), p(only 2), p(both) for every model of a two-feature distribution."""
    density = features.density
    if density.shape[-1] != 2:
        raise ValueError(f"pattern probabilities are defined for two features, got {density.shape[-1]}")
    d1, d2 = density[:, 0], density[:, 1]
    if features.correlated:
        return jnp.stack([1 - d1, 0 * d1, 0 * d1, d1], -1)
    if features.anticorrelated:
        return jnp.stack([1 - d1 - d2, d1, d2, 0 * d1], -1)
    parents = features.parents
    if parents == (-1, 0):
        return jnp.stack([1 - d1, d1 * (1 - d2), 0 * d1, d1 * d2], -1)
    if parents == (1, -1):
        return jnp.stack([1 - d2, 0 * d1, d2 * (1 - d1), d1 * d2], -1)
    return jnp.stack([(1 - d1) * (1 - d2), d1 * (1 - d2), (1 - d1) * d2, d1 * d2], -1)


def expected_loss(theta: Float[Array, "*M 4"], probabilities: Float[Array, "*M 4"],
                  importance: Float[Array, "*M 2"]) -> Float[Array, "*M"]:
    """Exact expected loss of x' = ReLU(WᵀW x + b), theta = (w₁, w₂, b₁, b₂) (m = 1, n = 2)."""
    w1, w2, b1, b2 = (theta[..., i] for i in range(4))
    i1, i2 = importance[..., 0], importance[..., 1]
    p = probabilities
    zero = jnp.zeros_like(w1)
    # (a, c, d, alpha, gamma) of the six integrals: only 1 (u), only 2 (v), both (u, v); outputs 1, 2
    terms = jnp.stack([
        jnp.stack([w1 * w1, zero, b1, zero + 1, zero], -1), jnp.stack([w2 * w1, zero, b2, zero, zero], -1),
        jnp.stack([zero, w1 * w2, b1, zero, zero], -1), jnp.stack([zero, w2 * w2, b2, zero, zero + 1], -1),
        jnp.stack([w1 * w1, w1 * w2, b1, zero + 1, zero], -1), jnp.stack([w2 * w1, w2 * w2, b2, zero, zero + 1], -1),
    ], -2)  # (..., 6, 5)
    err = relu_square_error(*(terms[..., k] for k in range(5)))
    none = i1 * jax.nn.relu(b1) ** 2 + i2 * jax.nn.relu(b2) ** 2
    only1 = i1 * err[..., 0] + i2 * err[..., 1]
    only2 = i1 * err[..., 2] + i2 * err[..., 3]
    both = i1 * err[..., 4] + i2 * err[..., 5]
    return p[..., 0] * none + p[..., 1] * only1 + p[..., 2] * only2 + p[..., 3] * both


def candidate_losses(density: Float[Array, "*cells"], ratio: Float[Array, "*cells"]) -> dict[str, jax.Array]:
    """TMS's closed forms for independent features of density s, importances (1, r)."""
    s, r = jnp.asarray(density), jnp.asarray(ratio)
    return {"not_learned": r * (s / 3 - s**2 / 4), "dedicated": s / 3 - s**2 / 4, "antipodal": (1 + r) * s**2 / 6}


_expected_loss_jit = jax.jit(expected_loss)


class ExactMinimum(NamedTuple):
    """The lowest expected loss found per cell, its parameters (w₁, w₂, b₁, b₂) and class index."""

    loss: Float[Array, "cells"]
    theta: Float[Array, "cells 4"]
    solution: jax.Array


#: how many of exact_minimum's starts per cell are deterministic (the rest are random)
FIXED_STARTS = 8


def _prng_key(key: Any) -> jax.Array:
    """An int seed or a PRNG key (typed or raw uint32[2]) as a typed key; anything else is a TypeError."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return jax.random.key(int(key))
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ():
        return key
    if isinstance(key, jax.Array) and key.dtype == jnp.uint32 and key.shape == (2,):
        return jax.random.wrap_key_data(key)
    raise TypeError(f"key must be an int seed or one PRNG key (jax.random.key(seed)), got {key!r}")


def _starts(probabilities, count: int, key) -> jax.Array:
    mean1 = (probabilities[:, 1] + probabilities[:, 3]) / 2  # E[x₁]
    mean2 = (probabilities[:, 2] + probabilities[:, 3]) / 2
    zero = jnp.zeros_like(mean1)
    one = jnp.ones_like(mean1)
    fixed = [
        (one, zero, zero, mean2), (zero, one, mean1, zero), (one, -one, zero, zero), (0.7 * one, 0.7 * one, zero, zero),
        (one, -0.5 * one, zero, zero), (0.5 * one, -one, zero, zero), (0.1 * one, 0.1 * one, mean1, mean2),
        (one, 0.3 * one, zero, zero),
    ]
    starts = [jnp.stack(s, -1) for s in fixed]
    extra = count - len(starts)
    if extra > 0:
        noise = jax.random.normal(key, (extra, *mean1.shape, 4)) * jnp.array([0.8, 0.8, 0.1, 0.1])
        starts += list(noise)
    return jnp.stack(starts[:count], 1)  # (cells, starts, 4)


ADAM_STEPS = 200
NEWTON_STEPS = 20


@jax.jit
def _descend(theta0, probabilities, importance):
    """Adam with a cosine schedule from every start: (cells, starts, 4) → the same, near minima."""
    total = lambda t: jnp.sum(expected_loss(t, probabilities[:, None], importance[:, None]))  # noqa: E731
    opt = optax.adam(optax.cosine_decay_schedule(0.05, ADAM_STEPS, alpha=0.01))

    def step(carry, _):
        t, state = carry
        updates, state = opt.update(jax.grad(total)(t), state)
        return (t + updates, state), None

    (theta, _), _ = jax.lax.scan(step, (theta0, opt.init(theta0)), None, length=ADAM_STEPS)
    return theta


@jax.jit
def _polish(theta, probabilities, importance):
    """Damped Newton steps (Levenberg–Marquardt), each kept only where it lowers the loss."""
    loss = lambda t: expected_loss(t, probabilities[:, None], importance[:, None])  # noqa: E731
    grad = jax.grad(lambda t: jnp.sum(loss(t)))  # problems are independent: row i is problem i's

    def hessian(t, g):  # forward differences of the exact gradient; compiles far faster than jax.hessian
        shifted = jax.vmap(lambda shift: grad(t + shift))(jnp.eye(4, dtype=t.dtype) * 1e-6)
        hess = jnp.moveaxis((shifted - g) / 1e-6, 0, -2)
        return (hess + jnp.swapaxes(hess, -1, -2)) / 2

    def step(carry, _):
        t, current, damping = carry
        g = grad(t)
        move = jnp.linalg.solve(hessian(t, g) + damping[..., None, None] * jnp.eye(4), g[..., None])[..., 0]
        trial = t - move
        trial_loss = loss(trial)
        better = trial_loss < current
        return (jnp.where(better[..., None], trial, t), jnp.where(better, trial_loss, current),
                jnp.where(better, damping / 3, damping * 4)), None

    start = (theta, loss(theta), jnp.full(theta.shape[:-1], 1e-3, theta.dtype))
    (theta, final, _), _ = jax.lax.scan(step, start, None, length=NEWTON_STEPS)
    return theta, final


def exact_minimum(features: Features, importance: Float[Array, "M 2"], *, starts: int = 6,
                  key: jax.Array | int = 0) -> ExactMinimum:
    """The global minimum of the exact expected loss for every model's distribution and importance.

    Minimised in float64 from ``starts`` starting points per cell (the TMS candidates, aligned and
    lopsided variants, then random ones); the best end point wins. Its class uses
    :func:`~superpose.toy.metrics.classify_pair` on W = (w₁, w₂).

    Args:
        features: two-feature distributions of M cells.
        importance: shape ``(M, 2)``.
        starts: starting points per cell, >= 1. The first :data:`FIXED_STARTS` are deterministic;
            only starts beyond them are random.
        key: a PRNG key (``jax.random.key(seed)``) or an int seed for those random starts. The
            default is seed 0, so a call without a key is reproducible (and the default 6 starts
            use no randomness at all).
    """
    if not isinstance(features, Features):
        raise TypeError(f"features must be a superpose.toy.Features, got {type(features).__name__}")
    if features.density.shape[-1] != 2:
        raise ValueError("the exact minimum is implemented for two features and one hidden unit")
    starts = positive_int(starts, "starts")
    key = _prng_key(key)
    with float64_enabled():
        imp = check_importance(importance, *features.density.shape, dtype=jnp.float64)
        probabilities = jnp.asarray(np.asarray(pattern_probabilities(features), np.float64))
        theta0 = _starts(probabilities, starts, key)
        near = _descend(theta0.astype(jnp.float32), probabilities.astype(jnp.float32), imp.astype(jnp.float32))
        theta, losses = _polish(near.astype(jnp.float64), probabilities, imp)
        losses = jnp.where(jnp.all(jnp.isfinite(theta), -1), losses, jnp.inf)
        if not bool(jnp.all(jnp.any(jnp.isfinite(losses), axis=1))):
            raise FloatingPointError("the exact minimisation diverged from every start in some cell")
        best = jnp.argmin(losses, axis=1)
        theta = jnp.take_along_axis(theta, best[:, None, None], axis=1)[:, 0]
        loss = jnp.take_along_axis(losses, best[:, None], axis=1)[:, 0]
        solution = classify_pair(theta[:, None, :2])
        return ExactMinimum(np.asarray(loss), np.asarray(theta), np.asarray(solution))


def model_expected_loss(W: Float[Array, "M 1 2"], b: Float[Array, "M 2"], features: Features,
                        importance: Float[Array, "M 2"]) -> np.ndarray:
    """The exact expected loss of every trained (m = 1, n = 2) ReLU model, in float64."""
    if W.shape[1:] != (1, 2) or b.shape != (W.shape[0], 2):
        raise ValueError(f"exact losses need W of shape (M, 1, 2) and b of shape (M, 2), got {W.shape}, {b.shape}")
    with float64_enabled():
        theta = jnp.concatenate([jnp.asarray(np.asarray(W[:, 0]), jnp.float64),
                                 jnp.asarray(np.asarray(b), jnp.float64)], -1)
        probabilities = jnp.asarray(np.asarray(pattern_probabilities(features)), jnp.float64)
        imp = check_importance(importance, W.shape[0], 2, dtype=jnp.float64)
        return np.asarray(_expected_loss_jit(theta, probabilities, imp))
