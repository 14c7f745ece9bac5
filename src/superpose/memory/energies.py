"""Energies of Dense Associative Memories, as pure functions of one state.

Each function takes one state ``v`` of shape ``(D,)`` and the memories ``Ξ`` of shape
``(K, D)``; batch with ``jax.vmap`` (``descend`` does). All are computed in log space or with
normalised overlaps, so float32 stays finite for inverse temperatures up to 10⁴ and
polynomial orders far beyond what overflows a plain power.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from superpose.memory._checks import check_beta, memories_array, positive_int, states_array
from superpose.numerics.precision import matmul


@dataclasses.dataclass(frozen=True)
class BatchedEnergy:
    """An energy of one state together with its batched form, for :func:`~superpose.memory.descend`.

    ``single(state, *args) -> scalar`` is the energy of one state of shape ``(D,)`` (calling the
    wrapper calls it, so ``jax.grad`` and ``jax.vmap`` work on it as on a plain energy);
    ``batched(states, *args) -> (energies, gradients)`` gives, for states of shape ``(N, D)``,
    shapes ``(N,)`` and ``(N, D)``. ``descend`` checks ``isinstance(energy, BatchedEnergy)`` and
    then calls ``batched`` once per step instead of ``vmap(value_and_grad(single))``. Both
    callables must be hashable (plain functions are): the wrapper is a static argument of a jit.
    """

    single: Callable[..., Any]
    batched: Callable[..., tuple[Any, Any]]

    def __post_init__(self) -> None:
        for name, fn in (("single", self.single), ("batched", self.batched)):
            if not callable(fn):
                raise TypeError(f"BatchedEnergy.{name} must be callable, got {type(fn).__name__}")
        # the wrapper reads as the single-state energy in help() and docs
        object.__setattr__(self, "__doc__", getattr(self.single, "__doc__", None))
        object.__setattr__(self, "__name__", getattr(self.single, "__name__", "batched_energy"))

    def __call__(self, state: Any, *args: Any, **kwargs: Any) -> Any:
        """The energy of one state: ``single(state, *args, **kwargs)``."""
        return self.single(state, *args, **kwargs)


def _check_pair(state: Array, memories: Array) -> None:
    """Shapes are static, so this check runs under jit too."""
    if state.ndim != 1 or memories.ndim != 2 or memories.shape[1] != state.shape[0]:
        raise ValueError(
            f"need one state of shape (D,) and memories of shape (K, D); got {state.shape} and {memories.shape} "
            "(vmap over a batch of states)"
        )


def lse_energy(state: Float[Array, " D"], memories: Float[Array, "K D"], beta: float) -> Float[Array, ""]:
    """Log-sum-exp energy with squared-distance similarity (Hoover et al. 2024; the seed's):

        E_β(v; Ξ) = −(1/β) log Σ_μ exp(−β/2 ‖v − ξ^μ‖²).

    Its gradient is ``v − Σ_μ softmax_μ(−β/2 ‖v − ξ^μ‖²) ξ^μ``: each step of descent moves the
    state towards a soft-max-weighted average of the memories.
    """
    _check_pair(state, memories)
    check_beta(beta)
    sq = jnp.sum((state - memories) ** 2, axis=-1)
    return -jax.nn.logsumexp(-0.5 * beta * sq) / beta


def dot_lse_energy(
    state: Float[Array, " D"], memories: Float[Array, "K D"], beta: float, constants: bool = False
) -> Float[Array, ""]:
    """The "modern Hopfield" energy with dot-product similarity (Ramsauer et al. 2020):

        E(v) = −(1/β) log Σ_μ exp(β ξ^μ·v) + ½‖v‖²  [+ (1/β) log K + ½ max_μ ‖ξ^μ‖² if constants].

    Gradient descent with step size 1 on it is exactly the one-step update
    ``v ← Ξᵀ softmax(β Ξ v)`` (:func:`superpose.memory.one_step_update`). The constants make
    the energy nonnegative, as in the paper; they do not change the dynamics.
    """
    _check_pair(state, memories)
    check_beta(beta)
    energy = -jax.nn.logsumexp(beta * matmul(memories, state)) / beta + 0.5 * jnp.sum(state**2)
    if constants:
        k = memories.shape[0]
        energy = energy + jnp.log(k) / beta + 0.5 * jnp.max(jnp.sum(memories**2, axis=-1))
    return energy


def polynomial_energy(
    state: Float[Array, " D"], memories: Float[Array, "K D"], order: int = 3, normalize: bool = True
) -> Float[Array, ""]:
    """Polynomial Dense Associative Memory energy (Krotov & Hopfield 2016), for ±1 patterns:

        E(σ) = −Σ_μ F(ξ^μ·σ / D),   F(x) = xⁿ     (normalize=True, the default)
        E(σ) = −Σ_μ F(ξ^μ·σ)                      (normalize=False, the paper's scale).

    Dividing the overlap by D keeps every term in [−1, 1], so any order is finite in float32;
    it rescales the energy by D⁻ⁿ and leaves the dynamics unchanged. Order 2 is the classical
    Hopfield network up to a constant (see :func:`hopfield_energy`).
    """
    if not isinstance(order, int) or order < 2:
        raise ValueError(f"order must be an integer >= 2, got {order!r}")
    _check_pair(state, memories)
    overlaps = matmul(memories, state)
    if normalize:
        overlaps = overlaps / state.shape[-1]
    return -jnp.sum(overlaps**order)


def hopfield_energy(state: Float[Array, " D"], memories: Float[Array, "K D"]) -> Float[Array, ""]:
    """The classical Hopfield energy with Hebbian weights and no self-coupling:

        E(σ) = −½ σᵀ W σ,   W = (1/D) Σ_μ ξ^μ ξ^μᵀ with the diagonal set to 0.

    Computed without forming W: ``−(1/2D) [Σ_μ (ξ^μ·σ)² − Σ_μ Σ_i (ξ^μ_i σ_i)²]``.
    """
    _check_pair(state, memories)
    d = state.shape[-1]
    overlaps = matmul(memories, state)
    diagonal = jnp.sum((memories * state) ** 2)
    return -(jnp.sum(overlaps**2) - diagonal) / (2 * d)


def lse_energy_and_grad_streamed(
    states: Float[Array, "B D"], memories: Float[Array, "K D"], beta: float, chunk: int = 4096
) -> tuple[Float[Array, " B"], Float[Array, "B D"]]:
    """:func:`lse_energy` and its gradient for a batch, streamed over chunks of memories.

    Uses the matrix-multiply form ``‖v‖² − 2 v·ξ + ‖ξ‖²`` and an online log-sum-exp, so memory
    is ``O(B·chunk + B·D)`` whatever K is (K = 10⁵ memories of D = 784 need no B×K×D array).
    NaN or inf in concrete ``states`` or ``memories`` raises ValueError (a traced call is not checked).

    Returns:
        energies of shape ``(B,)`` and gradients of shape ``(B, D)``.
    """
    check_beta(beta)
    memories = memories_array(memories)
    states = states_array(states, memories.shape[1])
    if states.ndim != 2:
        raise ValueError(f"need states of shape (B, D); got {states.shape}")
    chunk = positive_int(chunk, "chunk")
    return _lse_streamed(states, memories, jnp.asarray(beta, states.dtype), chunk=min(int(chunk), memories.shape[0]))


@functools.partial(jax.jit, static_argnames="chunk")
def _lse_streamed(states, memories, beta, *, chunk):
    k, d = memories.shape
    n_chunks = -(-k // chunk)
    padded = jnp.concatenate([memories, jnp.zeros((n_chunks * chunk - k, d), memories.dtype)])
    valid = jnp.arange(n_chunks * chunk) < k
    blocks = padded.reshape(n_chunks, chunk, d)
    valid = valid.reshape(n_chunks, chunk)
    state_sq = jnp.sum(states**2, axis=-1, keepdims=True)
    b = states.shape[0]

    def step(carry, block):
        top, total, weighted = carry
        xi, ok = block
        sq = jnp.maximum(state_sq - 2 * matmul(states, xi.T) + jnp.sum(xi**2, axis=-1), 0.0)
        logits = jnp.where(ok, -0.5 * beta * sq, -jnp.inf)
        new_top = jnp.maximum(top, jnp.max(logits, axis=-1))
        rescale = jnp.exp(top - new_top)
        w = jnp.exp(logits - new_top[:, None])
        return (new_top, total * rescale + jnp.sum(w, axis=-1), weighted * rescale[:, None] + matmul(w, xi)), None

    init = (jnp.full((b,), -jnp.inf, states.dtype), jnp.zeros((b,), states.dtype), jnp.zeros_like(states))
    (top, total, weighted), _ = jax.lax.scan(step, init, (blocks, valid))
    energies = -(top + jnp.log(total)) / beta
    return energies, states - weighted / total[:, None]
