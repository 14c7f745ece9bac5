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

from superpose.memory._checks import memories_array, positive_float, positive_int
from superpose.memory.distributed import DistributedMemory, distributed_energy
from superpose.memory.energies import lse_energy
from superpose.memory.retrieval import descend


def exact_kernel(x: Float[Array, "... D"], y: Float[Array, "... D"], beta: float) -> Float[Array, "..."]:
    """``κ_β(x, y) = exp(−β/2 ‖x − y‖²)``."""
    return jnp.exp(-0.5 * beta * jnp.sum((x - y) ** 2, axis=-1))


def kernel_error(memory: DistributedMemory, x: Float[Array, "... D"], y: Float[Array, "... D"]) -> Float[Array, "..."]:
    """``|κ_β(x, y) − ⟨φ(x), φ(y)⟩|`` for pairs of rows (forms φ, so for moderate Y)."""
    approx = jnp.sum(memory.features(x) * memory.features(y), axis=-1)
    return jnp.abs(exact_kernel(x, y, memory.beta) - approx)


def exact_energy_and_grad(memories: Float[Array, "K D"], states: Float[Array, "... D"], beta: float):
    """E_β and ∇E_β of the exact model for a batch of states."""
    return jax.vmap(jax.value_and_grad(lse_energy), in_axes=(0, None, None))(
        states.reshape(-1, states.shape[-1]), memories, beta
    )


def energy_error(memory: DistributedMemory, memories: Float[Array, "K D"], states: Float[Array, "B D"]):
    """``|E_β(v; Ξ) − Ẽ_β(v; T)|`` per state."""
    xi = memories_array(memories)
    exact, _ = exact_energy_and_grad(xi, states, memory.beta)
    return jnp.abs(exact - memory.energy(states).reshape(-1))


def gradient_error(memory: DistributedMemory, memories: Float[Array, "K D"], states: Float[Array, "B D"]):
    """``‖∇E_β(v; Ξ) − ∇Ẽ_β(v; T)‖`` per state."""
    xi = memories_array(memories)
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
    xi = memories_array(memories)
    exact, _ = descend(lse_energy, queries, xi, memory.beta, steps=steps, step_size=step_size)
    approx, _ = descend(distributed_energy, queries, memory, steps=steps, step_size=step_size)
    return Divergence(exact, approx, jnp.linalg.norm(exact - approx, axis=-1))


class Bound(NamedTuple):
    """The paper's divergence bound and the constants it rests on."""

    bound: Float[Array, " B"]  # inf where the step-size condition fails (C2 >= 1)
    c1: float  # kernel error constant: sup |κ − ⟨φ, φ⟩| = C1 √(D/Y)
    c2: float  # step-size constant: α = C2 / (T (1 + 2Kβ e^{β/2}))
    applicable: bool  # C2 < 1
    max_step_size: float  # the largest α for which C2 = 1/2


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
    """
    positive_float(beta, "beta")
    k = positive_int(num_memories, "num_memories")
    t = positive_int(steps, "steps")
    growth = 1.0 + 2.0 * k * beta * math.exp(min(beta / 2, 700.0))
    c2 = step_size * t * growth
    c1 = kernel_error_sup / math.sqrt(dim / num_features)
    applicable = c2 < 1.0
    e = jnp.asarray(exact_energies)
    bound = c1 * c2 * jnp.exp(e - 0.5) / (beta * (1 - c2)) if applicable else jnp.full(e.shape, jnp.inf)
    return Bound(bound, c1, c2, applicable, 0.5 / (t * growth))
