"""Retrieval: energy descent, the one-step update, and asynchronous sign updates.

All three are batched over queries in one jitted call. ``descend`` takes any energy of one
state, ``energy(state, *args)``, and compiles once per energy function and shapes: pass the
memories (or a :class:`DistributedMemory`) in ``args`` rather than closing over them, so a
new set of memories does not trigger a new compilation.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from superpose import _xla
from superpose._xla import CHEAP_COMPILE, WIDE_VECTORS
from superpose.memory._checks import check_beta, memories_array, positive_float, positive_int, states_array
from superpose.memory.energies import BatchedEnergy
from superpose.numerics.precision import matmul
from superpose.parallel import cpu_thread_parts, distribute, gathered, pad_batch, run_concurrently

if TYPE_CHECKING:  # imported where used: memory does not load superpose.scales at import time
    from superpose.scales.schedules import BetaSchedule


class DescentResult(NamedTuple):
    """What :func:`descend` reports besides the final states (shapes: the batch shape ``...``)."""

    energy: Float[Array, "..."]  # energy at the final state
    grad_norm: Float[Array, "..."]  # ‖∇E‖ over the free coordinates at the final state
    steps: Int[Array, "..."]  # updates applied before stopping
    converged: Bool[Array, "..."]  # grad_norm <= tol (always False without tol)
    trace: Float[Array, "steps ..."] | None  # energy before each step, if recorded


# 512-bit vectors on CPU: the random-feature pass (sin/cos of B×Y angles) runs 15–20% faster
@functools.partial(_xla.jit, cpu_options=WIDE_VECTORS, static_argnames=("energy", "steps", "record", "use_tol", "use_betas"))
def _descend(energy, states, args, free, step_size, tol, betas, *, steps, record, use_tol, use_betas):
    def value_and_grad(v, beta):
        extra = {"beta": beta} if use_betas else {}
        if isinstance(energy, BatchedEnergy):  # the energy's own batched (energies, gradients)
            return energy.batched(v, *args, **extra)
        return jax.vmap(jax.value_and_grad(lambda s: energy(s, *args, **extra)))(v)

    n = states.shape[0]
    trace0 = jnp.zeros((steps if record else 0, n), states.dtype)

    def cond(carry):
        t, _, done, *_ = carry
        return (t < steps) & ~jnp.all(done)

    def body(carry):
        t, v, done, taken, trace = carry
        e, g = value_and_grad(v, betas[t] if use_betas else None)
        g = jnp.where(free, g, 0.0)
        now_done = done | ((jnp.linalg.norm(g, axis=-1) <= tol) if use_tol else False)
        active = ~now_done
        v = jnp.where(active[:, None], v - step_size * g, v)
        if record:
            trace = trace.at[t].set(e)
        return t + 1, v, now_done, taken + active, trace

    init = (0, states, jnp.zeros(n, bool), jnp.zeros(n, jnp.int32), trace0)
    t_end, v, done, taken, trace = jax.lax.while_loop(cond, body, init)
    e, g = value_and_grad(v, betas[jnp.maximum(t_end - 1, 0)] if use_betas else None)
    gnorm = jnp.linalg.norm(jnp.where(free, g, 0.0), axis=-1)
    if record:  # after an early stop every query is at rest: fill the rest with its energy
        trace = jnp.where(jnp.arange(steps)[:, None] < t_end, trace, e[None, :])
    converged = (gnorm <= tol) | done if use_tol else jnp.zeros(n, bool)
    return v, e, gnorm, taken, converged, trace


def descend(
    energy: Callable[..., Any],
    states: Float[Array, "... D"],
    *args: Any,
    steps: int = 100,
    step_size: float = 0.1,
    clamp: Bool[Array, "... D"] | None = None,
    tol: float | None = None,
    betas: Float[Array, " steps"] | BetaSchedule | None = None,
    record: bool = False,
) -> tuple[Float[Array, "... D"], DescentResult]:
    """Gradient descent on an energy, ``v ← v − step_size · ∇E(v)``, for a batch of states.

    Args:
        energy: ``energy(state, *args) -> scalar`` for one state of shape ``(D,)``; with
            ``betas``, it is called as ``energy(state, *args, beta=β_t)``. A
            :class:`~superpose.memory.energies.BatchedEnergy` (such as
            :func:`~superpose.memory.distributed_energy`: one pass per step) is run through its
            ``batched(states, *args) -> (energies, gradients)`` instead of
            ``vmap(value_and_grad(energy))``.
        states: initial states, shape ``(..., D)``.
        *args: passed to ``energy`` (memories, β, a DistributedMemory, ...).
        steps: the largest number of updates.
        step_size: α > 0.
        clamp: boolean, broadcastable to ``states``; True marks coordinates that never move
            (the observed pixels in pattern completion).
        tol: stop a query once the norm of its gradient over the free coordinates is at most
            ``tol``; the loop ends when every query has stopped.
        betas: a β schedule of length ``steps`` (annealing from smooth to sharp), for energies
            that take ``beta``: a :class:`~superpose.scales.BetaSchedule` or an array of shape
            ``(steps,)``. A DistributedMemory's β is fixed when T is built.
        record: keep the energy before every step (``result.trace``, shape ``(steps, ...)``).

    Returns:
        The final states (shape of ``states``) and a :class:`DescentResult`.
    """
    if not callable(energy):
        raise TypeError(f"energy must be callable as energy(state, *args), got {type(energy).__name__}")
    if hasattr(energy, "batched") and not isinstance(energy, BatchedEnergy):
        raise TypeError(
            "energy has a 'batched' attribute but is not a BatchedEnergy; descend no longer reads such "
            "attributes: pass BatchedEnergy(energy, batched) (superpose.memory.energies) to use it"
        )
    steps = positive_int(steps, "steps")
    step_size = positive_float(step_size, "step_size")
    if tol is not None and not (float(tol) >= 0):
        raise ValueError(f"tol must be >= 0, got {tol!r}")
    v = jnp.asarray(states)
    if v.ndim < 1:
        raise ValueError(f"states must have shape (..., D), got {v.shape}")
    v = states_array(v, v.shape[-1])
    batch_shape, d = v.shape[:-1], v.shape[-1]
    flat = v.reshape(-1, d)
    if clamp is None:
        free = jnp.ones_like(flat, dtype=bool)
    else:
        c = jnp.asarray(clamp)
        if c.dtype != jnp.bool_:
            raise TypeError(f"clamp must be boolean (True = fixed coordinate), got dtype {c.dtype}")
        try:
            free = ~jnp.broadcast_to(c, v.shape).reshape(-1, d)
        except ValueError:
            raise ValueError(f"clamp of shape {c.shape} does not broadcast to states of shape {v.shape}") from None
    if betas is not None:  # a BetaSchedule or an array, as one (steps,) array (superpose.scales)
        from superpose.scales.schedules import schedule_array

        betas = schedule_array(betas, steps, v.dtype)
        check_beta(betas, "betas")
    # the query axis is split over every visible device (a no-op with one device)
    (flat, free), (args, step, tol_value, schedule), n = distribute(
        (flat, free),
        (tuple(args), jnp.asarray(step_size, v.dtype), jnp.asarray(0.0 if tol is None else tol, v.dtype),
         jnp.zeros((1,), v.dtype) if betas is None else betas),
    )
    run = functools.partial(
        _descend, energy, args=args, step_size=step, tol=tol_value, betas=schedule,
        steps=steps, record=record, use_tol=tol is not None, use_betas=betas is not None,
    )
    parts = cpu_thread_parts(n)
    if parts == 1:
        out, e, gnorm, taken, converged, trace = gathered(run(flat, free=free))  # whole on every process
    else:  # one CPU device: equal parts of the batch run concurrently (queries are independent)
        (flat, free), _ = pad_batch((flat, free), parts)
        size = flat.shape[0] // parts
        pieces = run_concurrently(
            [functools.partial(run, flat[i * size:(i + 1) * size], free=free[i * size:(i + 1) * size])
             for i in range(parts)]
        )
        out, e, gnorm, taken, converged = (jnp.concatenate([p[k] for p in pieces]) for k in range(5))
        trace = jnp.concatenate([p[5] for p in pieces], axis=1)
    out, e, gnorm, taken, converged = (a[:n] for a in (out, e, gnorm, taken, converged))
    trace = trace[:, :n] if record else trace
    reshape = lambda a: a.reshape(batch_shape)  # noqa: E731
    result = DescentResult(
        reshape(e), reshape(gnorm), reshape(taken), reshape(converged),
        trace.reshape((steps, *batch_shape)) if record else None,
    )
    return out.reshape(v.shape), result


def one_step_update(
    states: Float[Array, "... D"], memories: Float[Array, "K D"], beta: float
) -> Float[Array, "... D"]:
    """The modern Hopfield update ``v ← Ξᵀ softmax(β Ξ v)`` (Ramsauer et al. 2020).

    It is one gradient step of size 1 on :func:`dot_lse_energy`; for separated patterns and
    large β it retrieves a stored pattern in one step.
    """
    xi = memories_array(memories)
    v = states_array(states, xi.shape[1])
    check_beta(beta)
    return matmul(jax.nn.softmax(beta * matmul(v, xi.T), axis=-1), xi)


class SignResult(NamedTuple):
    """What :func:`sign_update` reports (shapes: the batch shape ``...``)."""

    energy: Float[Array, "..."]  # polynomial energy at the final state (normalised overlaps)
    sweeps: Int[Array, "..."]  # full sweeps run
    converged: Bool[Array, "..."]  # the last sweep flipped no unit (a fixed point)


def _sign_update_one(state, memories, key, *, order, max_sweeps):
    d = state.shape[0]

    def f(x):
        return (x / d) ** order

    def sweep(carry):
        s, overlaps, k, n, _ = carry
        k, sub = jax.random.split(k)
        order_of_units = jax.random.permutation(sub, d)

        def unit(i, inner):
            s, overlaps, flips = inner
            j = order_of_units[i]
            xi_j = memories[:, j]
            rest = overlaps - xi_j * s[j]  # overlaps without unit j
            drive = jnp.sum(f(rest + xi_j) - f(rest - xi_j))
            new = jnp.where(drive > 0, 1.0, jnp.where(drive < 0, -1.0, s[j])).astype(s.dtype)
            return s.at[j].set(new), rest + xi_j * new, flips + (new != s[j])

        s, overlaps, flips = jax.lax.fori_loop(0, d, unit, (s, overlaps, 0))
        return s, overlaps, k, n + 1, flips == 0

    def cond(carry):
        *_, n, stable = carry
        return (n < max_sweeps) & ~stable

    s, overlaps, _, n, stable = jax.lax.while_loop(
        cond, sweep, (state, memories @ state, key, 0, jnp.bool_(False))
    )
    return s, -jnp.sum(f(overlaps)), n, stable


# CHEAP_COMPILE: one program per (K, order, states), compiled 1.35x faster (benchmarks/compile_options.py;
# memory-capacity quick compiles 12); the run time is within ~20% either way (K 64: 0.8x there, 1.4x in a
# one-off check; K 800: equal), a fraction of a millisecond against ~0.15 s of compiling saved.
@functools.partial(_xla.jit, cpu_options=CHEAP_COMPILE, static_argnames=("order", "max_sweeps"))
def _sign_updates(states, memories, keys, *, order, max_sweeps):
    one = functools.partial(_sign_update_one, order=order, max_sweeps=max_sweeps)
    return jax.vmap(one, in_axes=(0, None, 0))(states, memories, keys)


def sign_update(
    states: Float[Array, "... D"],
    memories: Float[Array, "K D"],
    key: jax.Array,
    *,
    order: int = 2,
    max_sweeps: int = 20,
) -> tuple[Float[Array, "... D"], SignResult]:
    """Asynchronous sign updates of binary (±1) states on a polynomial energy.

    Each sweep visits every unit once in a random order (drawn from ``key``, independently per
    query) and sets ``σ_i ← sign(Σ_μ F(h_μ + ξ^μ_i) − F(h_μ − ξ^μ_i))``, where ``h_μ`` is the
    overlap of memory μ with the state without unit i and ``F(x) = (x/D)ⁿ``. Order 2 is the
    classical Hopfield network (local field with zero self-coupling); larger orders are the dense
    associative memories of Krotov & Hopfield (2016). A zero drive leaves the unit as it is.
    The energy never increases, and sweeps stop at a fixed point.

    Args:
        states: ±1 states, shape ``(..., D)``.
        memories: ±1 patterns, shape ``(K, D)``.
        key: PRNG key for the update orders.
        order: the polynomial order n >= 2.
        max_sweeps: the largest number of sweeps.

    Returns:
        The final ±1 states and a :class:`SignResult`.
    """
    xi = memories_array(memories)
    v = states_array(states, xi.shape[1])
    order = positive_int(order, "order", minimum=2)
    max_sweeps = positive_int(max_sweeps, "max_sweeps")
    for name, arr in (("states", v), ("memories", xi)):
        if not bool(jnp.all(jnp.abs(arr) == 1)):
            raise ValueError(f"{name} must hold only +1 and -1 for sign updates")
    flat = v.reshape(-1, v.shape[-1])
    keys = jax.random.split(key, flat.shape[0])
    s, e, n, stable = _sign_updates(flat, xi, keys, order=order, max_sweeps=max_sweeps)
    shape = v.shape[:-1]
    return s.reshape(v.shape), SignResult(e.reshape(shape), n.reshape(shape), stable.reshape(shape))
