"""certify: measure how much a JAX function amplifies perturbations, and hold it to a claimed bound.

Two measurements around every given state ``x``:

- **probes**: ``‖f(x + δ) − f(x)‖ / ‖δ‖`` for random directions ``δ`` of relative size ``eps``,
  the worst over the probes. Random directions see an average stretch, not the worst one, so
  they underestimate the local Lipschitz constant (in D dimensions by about ``√D`` when a
  single direction is stretched).
- **Jacobian norm**: the largest singular value of ``J = ∂f/∂x`` at ``x``, by power iteration on
  ``JᵀJ`` with one ``jax.jvp`` and one ``jax.vjp`` per step (no dense Jacobian). The estimate
  ``‖J v‖`` for the final unit vector ``v`` never exceeds the true value.

Complex states and outputs are measured as real vectors ``(Re, Im)``, so the constant is the one
for the Euclidean norm of ``ℂᴰ ≅ ℝ²ᴰ`` and needs no holomorphy.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Inexact

from superpose import _xla
from superpose._xla import CHEAP_COMPILE
from superpose._validation import check_finite, nonnegative_float, positive_float, positive_int
from superpose.scales.transitions import real_dtype, state_array


class CertifyReport(NamedTuple):
    """The result of :func:`certify`; every array has one entry per state, shape ``(N,)``."""

    probe_ratio: np.ndarray  # worst ‖f(x+δ) − f(x)‖/‖δ‖ over the probes
    jacobian_norm: np.ndarray  # largest singular value of the Jacobian (power iteration, from below)
    bound: np.ndarray  # the claimed bound
    passed: np.ndarray  # bool: max(probe_ratio, jacobian_norm) <= bound · (1 + rtol)
    rtol: float

    @property
    def measured(self) -> np.ndarray:
        """The measured amplification per state, ``max(probe_ratio, jacobian_norm)``."""
        return np.maximum(self.probe_ratio, self.jacobian_norm)

    @property
    def relative_excess(self) -> np.ndarray:
        """``measured / bound − 1`` per state (≤ 0 when the bound holds)."""
        return self.measured / self.bound - 1.0

    @property
    def all_passed(self) -> bool:
        """True when every state passed."""
        return bool(np.all(self.passed))

    @property
    def worst_state(self) -> int:
        """The index of the state with the largest relative excess."""
        return int(np.argmax(self.relative_excess))


def _as_real(x: jax.Array) -> jax.Array:
    return jnp.stack([x.real, x.imag], axis=-1) if jnp.iscomplexobj(x) else x


def _real_function(fn: Callable[..., Any], args: tuple[Any, ...], is_complex: bool) -> Callable[[jax.Array], jax.Array]:
    """``fn`` as a map from real arrays to flat real vectors."""

    def real_fn(x: jax.Array) -> jax.Array:
        state = jax.lax.complex(x[..., 0], x[..., 1]) if is_complex else x
        return _as_real(jnp.asarray(fn(state, *args))).ravel()

    return real_fn


# CHEAP_COMPILE: the probes and power iterations run in milliseconds; compiling at LLVM's default level
# took about twice as long (2.2x in benchmarks/compile_options.py; the same run time and numbers).
@functools.partial(_xla.jit, cpu_options=CHEAP_COMPILE, static_argnames=("fn", "probes", "iterations", "is_complex"))
def _measure(fn, states, args, key, eps, *, probes, iterations, is_complex):
    real_fn = _real_function(fn, args, is_complex)
    xs = _as_real(states)

    def one(x, k):
        k_probe, k_start = jax.random.split(k)
        axes = tuple(range(1, x.ndim + 1))
        fx = real_fn(x)
        g = jax.random.normal(k_probe, (probes, *x.shape), x.dtype)
        size = jnp.linalg.norm(x)
        size = eps * jnp.where(size > 0, size, 1.0)
        probed = x + size * g / jnp.sqrt(jnp.sum(g * g, axis=axes, keepdims=True))
        step = jnp.sqrt(jnp.sum((probed - x) ** 2, axis=axes))  # the perturbation as rounded
        change = jnp.linalg.norm(jax.vmap(real_fn)(probed) - fx, axis=-1)
        worst = jnp.max(change / step)

        _, pullback = jax.vjp(real_fn, x)

        def normal_matvec(v):  # JᵀJ v
            return pullback(jax.jvp(real_fn, (x,), (v,))[1])[0]

        def iterate(_, v):
            w = normal_matvec(v)
            length = jnp.linalg.norm(w)
            return jnp.where(length > 0, w / jnp.where(length > 0, length, 1.0), v)

        v0 = jax.random.normal(k_start, x.shape, x.dtype)
        v = jax.lax.fori_loop(0, iterations, iterate, v0 / jnp.linalg.norm(v0))
        sigma = jnp.linalg.norm(jax.jvp(real_fn, (x,), (v,))[1])
        return worst, sigma

    return jax.vmap(one)(xs, jax.random.split(key, xs.shape[0]))


def _bound_array(bound: Any, count: int) -> np.ndarray:
    try:
        values = np.asarray(bound, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"bound must be a number or an array of numbers, got {bound!r}") from None
    if values.ndim > 1 or (values.ndim == 1 and values.shape[0] != count):
        raise ValueError(f"bound must be a scalar or have shape (N,) = ({count},), one per state; got {values.shape}")
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"bound must be finite and > 0, got {bound!r}")
    return np.broadcast_to(values, (count,)).copy()


def certify(
    fn: Callable[..., Any],
    states: Inexact[Array, "N *shape"],
    *args: Any,
    bound: float | Any,
    key: jax.Array | None = None,
    probes: int = 16,
    eps: float = 1e-3,
    iterations: int = 30,
    rtol: float = 1e-3,
    check: bool = True,
) -> CertifyReport:
    """Measures how much ``fn`` amplifies perturbations around each state, against a claimed bound.

    Args:
        fn: ``fn(state, *args) -> array``, a JAX-traceable function of one state of shape
            ``shape`` (real or complex); its output may have any shape and dtype. Pass the same
            function object (not a new lambda) to reuse the compiled measurement, and pass
            data such as memories in ``args``.
        states: shape ``(N, *shape)``: the leading axis lists the states, finite.
        *args: passed to ``fn`` unchanged (not perturbed).
        bound: the claimed Lipschitz constant, a number or one per state (shape ``(N,)``), > 0.
        key: PRNG key for the probes and the power iteration's start (default ``key(0)``).
        probes: random probes per state.
        eps: probe size relative to ``‖x‖`` (absolute at ``x = 0``), > 0.
        iterations: power-iteration steps on ``JᵀJ`` (each one jvp and one vjp).
        rtol: a state passes when ``max(probe ratio, Jacobian norm) <= bound · (1 + rtol)``.
        check: raise when a state fails (default); ``False`` only reports.

    Returns:
        A :class:`CertifyReport` (per state: worst probe ratio, Jacobian norm, bound, passed).

    Raises:
        ValueError: bad inputs, or (with ``check``) a broken bound, naming the worst state.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    x = state_array("states", states)
    if x.ndim < 2:
        raise ValueError(
            f"states must have shape (N, *shape) with a leading axis that lists the states, got {x.shape} "
            "(pass states[None] for a single state)"
        )
    probes = positive_int(probes, "probes")
    iterations = positive_int(iterations, "iterations")
    eps = positive_float(eps, "eps")
    rtol = nonnegative_float(rtol, "rtol")
    bounds = _bound_array(bound, x.shape[0])
    key = jax.random.key(0) if key is None else key
    is_complex = bool(jnp.iscomplexobj(x))
    worst, sigma = _measure(fn, x, tuple(args), key, jnp.asarray(eps, real_dtype(x.dtype)),
                            probes=probes, iterations=iterations, is_complex=is_complex)
    worst, sigma = np.asarray(worst, float), np.asarray(sigma, float)
    check_finite("the measured amplification (fn returned NaN or inf near the states)",
                 jnp.asarray(np.concatenate([worst, sigma])))
    passed = np.maximum(worst, sigma) <= bounds * (1 + rtol)
    report = CertifyReport(worst, sigma, bounds, passed, rtol)
    if check and not report.all_passed:
        i = report.worst_state
        failed = int(np.sum(~passed))
        raise ValueError(
            f"state {i} breaks the claimed bound {bounds[i]:.6g}: measured amplification {report.measured[i]:.6g} "
            f"(worst probe {worst[i]:.6g}, Jacobian norm {sigma[i]:.6g}), {report.relative_excess[i]:.3g} above it "
            f"(rtol {rtol:g}); {failed} of {len(passed)} states fail"
        )
    return report


__all__ = ["CertifyReport", "certify"]
