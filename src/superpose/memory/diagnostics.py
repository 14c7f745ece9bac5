"""How far DrDAM is from the exact model: kernel, energy, gradient and retrieval errors.

Every function is batched over states and compares against the exact log-sum-exp energy of
the memories that T was built from.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from superpose._validation import as_float_array, check_finite
from superpose.memory._checks import check_beta, memories_array, positive_float, positive_int, states_array
from superpose.memory.distributed import DistributedMemory, distributed_energy
from superpose.memory.energies import lse_energy
from superpose.memory.retrieval import descend


def _memory(memory: object) -> DistributedMemory:
    if not isinstance(memory, DistributedMemory):
        raise TypeError(f"memory must be a DistributedMemory, got {type(memory).__name__}")
    return memory


def _memories_for(memory: DistributedMemory, memories: object) -> jax.Array:
    """The memories T was built from: shape (K, memory.dim), finite."""
    xi = memories_array(memories)
    if xi.shape[1] != memory.dim:
        raise ValueError(f"memories must have D = {memory.dim} columns like the DistributedMemory, got {xi.shape}")
    return xi


def exact_kernel(x: Float[Array, "... D"], y: Float[Array, "... D"], beta: float) -> Float[Array, "..."]:
    """``κ_β(x, y) = exp(−β/2 ‖x − y‖²)`` for rows x, y of the same D (batch shapes broadcast).

    Raises ValueError for NaN/inf in x or y, mismatched D, or β not finite and > 0.
    """
    check_beta(beta)
    x, y = as_float_array("x", x), as_float_array("y", y)
    if x.ndim < 1 or y.ndim < 1 or x.shape[-1] != y.shape[-1]:
        raise ValueError(f"x and y must have shapes (..., D) with the same D, got {x.shape} and {y.shape}")
    check_finite("x", x)
    check_finite("y", y)
    return jnp.exp(-0.5 * beta * jnp.sum((x - y) ** 2, axis=-1))


def kernel_error(memory: DistributedMemory, x: Float[Array, "... D"], y: Float[Array, "... D"]) -> Float[Array, "..."]:
    """``|κ_β(x, y) − ⟨φ(x), φ(y)⟩|`` for pairs of rows (forms φ, so for moderate Y)."""
    _memory(memory)
    approx = jnp.sum(memory.features(x) * memory.features(y), axis=-1)
    return jnp.abs(exact_kernel(x, y, memory.beta) - approx)


def exact_energy_and_grad(memories: Float[Array, "K D"], states: Float[Array, "... D"], beta: float):
    """E_β and ∇E_β of the exact model for states (..., D), flattened: shapes (B,) and (B, D)."""
    xi = memories_array(memories)
    v = states_array(states, xi.shape[1])
    check_beta(beta)
    return jax.vmap(jax.value_and_grad(lse_energy), in_axes=(0, None, None))(v.reshape(-1, xi.shape[1]), xi, beta)


def energy_error(memory: DistributedMemory, memories: Float[Array, "K D"], states: Float[Array, "B D"]):
    """``|E_β(v; Ξ) − Ẽ_β(v; T)|`` per state."""
    xi = _memories_for(_memory(memory), memories)
    exact, _ = exact_energy_and_grad(xi, states, memory.beta)
    return jnp.abs(exact - memory.energy(states).reshape(-1))


def gradient_error(memory: DistributedMemory, memories: Float[Array, "K D"], states: Float[Array, "B D"]):
    """``‖∇E_β(v; Ξ) − ∇Ẽ_β(v; T)‖`` per state."""
    xi = _memories_for(_memory(memory), memories)
    _, exact = exact_energy_and_grad(xi, states, memory.beta)
    _, approx = memory.energy_and_grad(states)
    return jnp.linalg.norm(exact - approx.reshape(exact.shape), axis=-1)


class Divergence(NamedTuple):
    """Outputs of the exact and the distributed model after the same descent, and their distance."""

    exact: Float[Array, "B D"]
    approximate: Float[Array, "B D"]
    divergence: Float[Array, " B"]


def retrieval_divergence(
    memory: DistributedMemory, memories: Float[Array, "K D"], queries: Float[Array, "B D"],
    steps: int = 10, step_size: float = 0.1,
) -> Divergence:
    """``‖f_Ξ(q) − f_T(q)‖``: both models descend from each query for ``steps`` steps of ``step_size``."""
    xi = _memories_for(_memory(memory), memories)
    exact, _ = descend(lse_energy, queries, xi, memory.beta, steps=steps, step_size=step_size)
    approx, _ = descend(distributed_energy, queries, memory, steps=steps, step_size=step_size)
    return Divergence(exact, approx, jnp.linalg.norm(exact - approx, axis=-1))


class Bound(NamedTuple):
    """The paper's divergence bound and the constants it rests on."""

    bound: Float[Array, " B"]  # inf where the step-size condition fails (C2 >= 1)
    c1: float  # kernel error constant: sup |κ − ⟨φ, φ⟩| = C1 √(D/Y)
    c2: float  # step-size constant α T (1 + 2Kβ e^{β/2}); inf when it overflows a float
    applicable: bool  # C2 < 1
    max_step_size: float  # the α for which C2 = 1/2 (0.0 when it underflows a float, β >~ 1400)


def divergence_bound(
    exact_energies: Float[Array, " B"], *, beta: float, num_memories: int, dim: int, num_features: int,
    steps: int, step_size: float, kernel_error_sup: float,
) -> Bound:
    """The bound of Hoover et al. (2024) on ``‖f_Ξ(q) − f_T(q)‖``, as stated in the tutorial:

        ‖f_Ξ(q) − f_T(q)‖ <= C1 C2 exp(E_β(q; Ξ) − 1/2) / (β (1 − C2)),

    with ``C1 = kernel_error_sup / √(D/Y)`` (measure the sup with :func:`kernel_error`) and
    ``C2 = α T (1 + 2Kβ exp(β/2))``, which must be below 1. That condition is very strict: at
    the seed's β = 25, K = 20 and T = 10 steps it needs α below about 1e-10, so for practical
    step sizes the bound does not apply (``applicable`` is False and the bound is inf).

    ``C2`` is computed in log space, so no β is clamped: ``e^{β/2}`` overflows a float for
    β above about 1420, and then ``c2`` is inf (not applicable) and ``max_step_size`` is 0.0.

    Args:
        exact_energies: E_β(q; Ξ) per query, shape ``(B,)``, finite.
        beta, step_size, kernel_error_sup: β > 0 and α > 0 (finite); the sup >= 0 (finite).
        num_memories, dim, num_features, steps: K, D, Y, T, integers >= 1.

    Raises ValueError (TypeError for non-numbers) for any argument outside those ranges.
    """
    beta = positive_float(beta, "beta")
    k = positive_int(num_memories, "num_memories")
    d = positive_int(dim, "dim")
    y = positive_int(num_features, "num_features")
    t = positive_int(steps, "steps")
    alpha = positive_float(step_size, "step_size")
    try:
        sup = float(kernel_error_sup)
    except (TypeError, ValueError):
        raise TypeError(f"kernel_error_sup must be a number, got {kernel_error_sup!r}") from None
    if not (math.isfinite(sup) and sup >= 0):
        raise ValueError(f"kernel_error_sup must be finite and >= 0, got {kernel_error_sup!r}")
    e = as_float_array("exact_energies", exact_energies)
    check_finite("exact_energies", e)
    # log(1 + 2Kβ e^{β/2}) without overflow: β/2 + log(2Kβ) + log1p(e^{−β/2} / (2Kβ))
    log_growth = beta / 2 + math.log(2.0 * k * beta) + math.log1p(math.exp(-beta / 2) / (2.0 * k * beta))
    log_c2 = math.log(alpha) + math.log(t) + log_growth
    c2 = math.exp(log_c2) if log_c2 < 709.0 else math.inf
    max_step_size = math.exp(math.log(0.5) - math.log(t) - log_growth)  # 0.0 when it underflows
    c1 = sup / math.sqrt(d / y)
    applicable = c2 < 1.0
    bound = c1 * c2 * jnp.exp(e - 0.5) / (beta * (1 - c2)) if applicable else jnp.full(e.shape, jnp.inf)
    return Bound(bound, c1, c2, applicable, max_step_size)
