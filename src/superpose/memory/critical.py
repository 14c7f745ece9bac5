"""The critical inverse temperature: the smallest β at which every memory is a local minimum."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from superpose.memory._checks import memories_array, positive_int
from superpose.numerics import float64_enabled


def memory_weights(memories: Float[Array, "K D"], beta: float) -> Float[Array, "K K"]:
    """Row μ: the softmax weights ``softmax_ν(−β/2 ‖ξ^μ − ξ^ν‖²)`` that memory μ gives every memory."""
    xi = jnp.asarray(memories)
    sq = jnp.sum((xi[:, None, :] - xi[None, :, :]) ** 2, axis=-1)
    return jax.nn.softmax(-0.5 * beta * sq, axis=-1)


def memory_gradients(memories: Float[Array, "K D"], beta: float, weights: Array | None = None) -> Float[Array, "K D"]:
    """∇E_β at each memory of the log-sum-exp energy, in closed form:
    ``Σ_ν softmax_ν(−β/2 ‖ξ^μ − ξ^ν‖²) (ξ^μ − ξ^ν)``."""
    xi = jnp.asarray(memories)
    w = memory_weights(xi, beta) if weights is None else weights
    return xi - w @ xi


def memory_hessian_ok(memories: Float[Array, "K D"], beta: float, weights: Array | None = None) -> bool:
    """True when the Hessian ``I − β Cov_w(ξ)`` is positive definite at every memory."""
    xi = jnp.asarray(memories)
    w = memory_weights(xi, beta) if weights is None else weights

    def largest_variance(weights):
        centred = (xi - weights @ xi) * jnp.sqrt(weights)[:, None]
        return jnp.linalg.norm(centred, ord=2) ** 2

    return bool(jnp.all(beta * jax.vmap(largest_variance)(w) < 1.0))


def critical_beta(
    memories: Float[Array, "K D"],
    *,
    atol: float = 1e-7,
    beta_min: float = 1e-4,
    beta_max: float = 600.0,
    precision: float = 1e-3,
    max_steps: int = 60,
    check_hessian: bool = False,
) -> float:
    """The smallest β at which every memory is a local minimum of :func:`lse_energy`, by bisection.

    A memory counts as a minimum when every component of the energy gradient there is at most
    ``atol`` (and, with ``check_hessian``, the Hessian there is positive definite), the criterion
    of the reference scripts. Gradients are computed in float64 in closed form (K×K distances), so
    the answer reflects the memories, not float32 rounding. Bisection assumes the criterion holds
    for every β above the answer, which is true once the nearest other memory's weight decays.

    Args:
        memories: shape ``(K, D)``; K×K distances are formed, so K up to ~10⁴.
        atol: the gradient tolerance.
        beta_min, beta_max: the bracket, ``0 < beta_min < beta_max``.
        precision: stop when the bracket is narrower than this.
        max_steps: the largest number of bisection steps.
        check_hessian: also require a positive definite Hessian at each memory.

    Returns:
        The upper end of the final bracket (a β at which the criterion holds).

    Raises:
        ValueError: when even ``beta_max`` does not make every memory a minimum (two memories
            that nearly coincide need an enormous β), or the arguments are out of range.
    """
    xi = np.asarray(memories_array(memories), dtype=np.float64)
    if not (0 < beta_min < beta_max) or not np.isfinite(beta_max):
        raise ValueError(f"need 0 < beta_min < beta_max < inf, got {beta_min}, {beta_max}")
    if not (atol > 0 and precision > 0):
        raise ValueError("atol and precision must be > 0")
    max_steps = positive_int(max_steps, "max_steps")

    with float64_enabled():
        xi64 = jnp.asarray(xi, jnp.float64)

        def ok(beta: float) -> bool:
            w = memory_weights(xi64, beta)  # K×K distances and weights, once per β
            good = float(jnp.max(jnp.abs(memory_gradients(xi64, beta, w)))) <= atol
            return good and (not check_hessian or memory_hessian_ok(xi64, beta, w))

        if not ok(beta_max):
            raise ValueError(
                f"even beta_max = {beta_max} does not make every memory a local minimum (gradient "
                f"tolerance {atol}); raise beta_max, or check for memories that nearly coincide"
            )
        lo, hi = beta_min, beta_max
        for _ in range(max_steps):
            if hi - lo < precision:
                break
            mid = 0.5 * (lo + hi)
            lo, hi = (lo, mid) if ok(mid) else (mid, hi)
        return float(hi)
