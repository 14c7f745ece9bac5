"""Transitions between scales: ``x ↦ (t/s)·U x`` with an orthogonal or unitary frame ``U``.

A transition from scale ``s`` to scale ``t`` multiplies every norm by ``r = t/s``. Up to an
isometry it is ``x ↦ r·x``, so its Lipschitz constant is exactly ``r`` (docs/scales.md). A
:class:`Frame` attaches one orthogonal (real) or unitary (complex) matrix ``U_k = exp(A_k)`` to
every rung ``k`` of a :class:`~superpose.scales.ScaleLadder`, with ``A_k`` the skew-symmetric
(skew-Hermitian) part of a free parameter, so that ``U_k`` stays exactly orthogonal while an
optimiser moves the parameter. The transition ``s → t`` applies ``U_{s→t} = U_t U_s⁻¹ = U_t U_sᴴ``;
hence ``t → s`` undoes ``s → t`` and ``s → t → u`` equals ``s → u`` (to float precision).

:func:`connect` and :func:`validate` are the seed system's two entry points: they carry a list of
states along a list of scales and report how exact and how stable each step was.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Inexact

from superpose._validation import as_float_array, check_finite, is_concrete, positive_float, positive_int
from superpose.numerics.precision import matmul
from superpose.scales.ladder import ScaleLadder, check_scale


def state_array(name: str, value: Any) -> jax.Array:
    """A float or complex array of shape ``(..., D)``, D >= 1, finite when concrete."""
    array = as_float_array(name, value, allow_complex=True)
    if array.ndim < 1 or array.shape[-1] == 0:
        raise ValueError(f"{name} must have shape (..., D) with D >= 1, got shape {array.shape}")
    check_finite(name, array)
    return array


def real_dtype(dtype: Any) -> jnp.dtype:
    """float32 for float32 and complex64, float64 for float64 and complex128."""
    return jnp.finfo(dtype).dtype


def _skew(parameter: jax.Array) -> jax.Array:
    """The skew-symmetric (skew-Hermitian) part ``(P − Pᴴ)/2``."""
    return 0.5 * (parameter - jnp.conj(jnp.swapaxes(parameter, -1, -2)))


@jax.jit
def _frame_matrices(generators: jax.Array) -> jax.Array:
    """``exp((P_k − P_kᴴ)/2)`` for every rung: the one compiled kernel of a frame (per shape and dtype)."""
    return jax.vmap(jax.scipy.linalg.expm)(_skew(generators))


class Frame(eqx.Module):
    """One orthogonal (real) or unitary (complex) matrix per rung of a ladder: ``U_k = exp(A_k)``.

    ``A_k = (P_k − P_kᴴ)/2`` is the skew part of the free parameter ``P_k``, so ``U_k`` is exactly
    orthogonal (unitary) for any ``P_k``, in particular at every step of an optimiser that
    updates ``generators`` (a Frame is a pytree: differentiate a loss with respect to it, or
    rebuild it from parameters with ``Frame(ladder, P)`` inside the loss).

    Args:
        ladder: the :class:`ScaleLadder` whose rungs the frames belong to.
        generators: ``P``, shape ``(num_scales, D, D)``, real (orthogonal frames) or complex
            (unitary frames), finite.
    """

    generators: Inexact[Array, "scales D D"]
    ladder: ScaleLadder = eqx.field(static=True)

    def __init__(self, ladder: ScaleLadder, generators: Any) -> None:
        if not isinstance(ladder, ScaleLadder):
            raise TypeError(f"ladder must be a ScaleLadder, got {type(ladder).__name__}")
        p = state_array("generators", generators)
        if p.ndim != 3 or p.shape != (len(ladder), p.shape[-1], p.shape[-1]):
            raise ValueError(
                f"generators must have shape (num_scales, D, D) = ({len(ladder)}, D, D), one square matrix per "
                f"rung of {ladder.describe()}; got {p.shape}"
            )
        self.ladder = ladder
        self.generators = p

    @classmethod
    def identity(cls, ladder: ScaleLadder, dim: int, dtype: Any = jnp.float32) -> Frame:
        """Every ``U_k = I`` (``P_k = 0``): the transition is the plain rescaling."""
        dim = positive_int(dim, "dim")
        return cls(ladder, jnp.zeros((len(ladder), dim, dim), dtype))

    @classmethod
    def random(cls, key: jax.Array, ladder: ScaleLadder, dim: int, dtype: Any = jnp.float32,
               strength: float = 1.0) -> Frame:
        """Generators with i.i.d. normal entries of standard deviation ``strength`` (complex if ``dtype`` is)."""
        dim = positive_int(dim, "dim")
        strength = positive_float(strength, "strength")
        shape = (len(ladder), dim, dim)
        if jnp.issubdtype(dtype, jnp.complexfloating):
            k_re, k_im = jax.random.split(key)
            part = real_dtype(dtype)
            p = jax.random.normal(k_re, shape, part) + 1j * jax.random.normal(k_im, shape, part)
            return cls(ladder, (strength * p).astype(dtype))
        return cls(ladder, strength * jax.random.normal(key, shape, dtype))

    @property
    def dim(self) -> int:
        """D, the size of the states the frame acts on."""
        return int(self.generators.shape[-1])

    @property
    def is_complex(self) -> bool:
        """True for unitary (complex) frames."""
        return bool(jnp.issubdtype(self.generators.dtype, jnp.complexfloating))

    def matrices(self) -> Inexact[Array, "scales D D"]:
        """Every ``U_k = exp(A_k)``, shape ``(num_scales, D, D)``."""
        return _frame_matrices(self.generators)

    def matrix(self, scale: float) -> Inexact[Array, "D D"]:
        """``U_k`` of the rung ``k`` equal to ``scale``."""
        return _frame_matrices(self.generators[self.ladder.index(scale)][None])[0]

    def between(self, source: float, target: float) -> Inexact[Array, "D D"]:
        """``U_{s→t} = U_t U_sᴴ`` (the identity, exactly, when source and target are the same rung)."""
        i, j = self.ladder.index(source), self.ladder.index(target)
        if is_concrete(i, j) and i == j:
            return jnp.eye(self.dim, dtype=self.generators.dtype)
        u = _frame_matrices(self.generators[jnp.stack([i, j])])  # only the two rungs it needs
        return matmul(u[1], jnp.conj(u[0]).T)


def _ratio(source: Any, target: Any, ladder: ScaleLadder | None, dtype: Any) -> Any:
    """``t/s`` checked (and against the ladder); traced scales pass unchecked."""
    if is_concrete(source, target):
        if ladder is not None:
            return ladder.ratio(source, target)
        return check_scale(target, "target scale") / check_scale(source, "source scale")
    part = real_dtype(dtype)
    return jnp.asarray(target, part) / jnp.asarray(source, part)


def _frame_for(frame: Frame, x: jax.Array) -> None:
    if not isinstance(frame, Frame):
        raise TypeError(f"frame must be a Frame or None, got {type(frame).__name__}")
    if frame.dim != x.shape[-1]:
        raise ValueError(
            f"the frame has the wrong size: it acts on D = {frame.dim} but the states have shape {x.shape} "
            f"(last axis {x.shape[-1]})"
        )
    state_complex = jnp.issubdtype(x.dtype, jnp.complexfloating)
    if state_complex and not frame.is_complex:
        raise ValueError(
            "a real frame cannot act on complex states: its generators span only real rotations, not phases; "
            "build the frame with a complex dtype (Frame.identity(ladder, D, jnp.complex64))"
        )
    if frame.is_complex and not state_complex:
        raise ValueError(
            f"a complex (unitary) frame cannot act on real states of dtype {x.dtype}: it would make them "
            "complex; cast the states to a complex dtype or use a real frame"
        )


def transition(
    state: Inexact[Array, "*batch D"],
    source: float,
    target: float,
    *,
    frame: Frame | None = None,
    ladder: ScaleLadder | None = None,
) -> Inexact[Array, "*batch D"]:
    """Moves states from scale ``source`` to scale ``target``: ``(t/s)·U_{s→t} x``.

    Every norm is multiplied by exactly ``r = t/s``, a round trip ``s → t → s`` gives the input
    back, and ``s → t → u`` equals ``s → u``. Perturbations grow by exactly ``r`` (the map's
    Lipschitz constant); no transition that rescales norms exactly can do otherwise.

    Args:
        state: shape ``(..., D)``, real or complex, finite; any leading batch shape.
        source, target: the scales, finite and > 0 (Python numbers, or traced under ``jit``).
        frame: a :class:`Frame` whose ladder holds ``source`` and ``target`` as rungs; ``None``
            is the identity frame. Complex states need a complex frame and real states a real one.
        ladder: checks ``source``, ``target`` and their ratio against this ladder (the frame's
            ladder by default).

    Returns:
        The moved states, shape and dtype of ``state``. Works under ``jit``, ``vmap`` and
        ``grad`` (with respect to the states and to the frame).

    Raises:
        ValueError: non-finite or non-positive scales, a scale outside the ladder's range or a
            ratio beyond its ``max_step``, NaN or inf states, a frame of the wrong size, a real
            frame applied to complex states (or the reverse).
    """
    x = state_array("state", state)
    checks = ladder if ladder is not None else (frame.ladder if isinstance(frame, Frame) else None)
    ratio = _ratio(source, target, checks, x.dtype)
    r = jnp.asarray(ratio, real_dtype(x.dtype))
    if frame is None:
        return x * r
    _frame_for(frame, x)
    u = frame.between(source, target).astype(x.dtype)
    return r * matmul(x, u.T)


def _sequence(name: str, values: Any) -> list[Any]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise TypeError(f"{name} must be a sequence (list, tuple or array with a leading axis), got {values!r}")
    return [values[i] for i in range(len(values))]


def _pairs(states: Any, scales: Any) -> tuple[list[Any], list[tuple[float, float] | None]]:
    """The states and, per state, its (source, target) scales or None (passed through)."""
    items = _sequence("states", states)
    steps = [check_scale(s, f"scales[{i}]") for i, s in enumerate(_sequence("scales", scales))]
    n = len(items)
    if n == 0:
        raise ValueError("connect/validate need at least one state")
    if len(steps) == n + 1:
        return items, [(steps[i], steps[i + 1]) for i in range(n)]
    if len(steps) == n:
        return items, [(steps[i], steps[i + 1]) for i in range(n - 1)] + [None]
    raise ValueError(
        f"got {n} states and {len(steps)} scales: need len(scales) == len(states) + 1 (state i goes from "
        f"scales[i] to scales[i+1]) or len(scales) == len(states) (each state goes to the next one's scale and "
        "the last passes through)"
    )


def connect(
    states: Sequence[Inexact[Array, "*batch D"]] | Inexact[Array, "n *batch D"],
    scales: Sequence[float],
    *,
    frame: Frame | None = None,
    ladder: ScaleLadder | None = None,
) -> list[jax.Array] | jax.Array:
    """Carries each state to the next scale.

    ``len(scales) == len(states) + 1``: state ``i`` goes from ``scales[i]`` to ``scales[i+1]``.
    ``len(scales) == len(states)``: state ``i`` goes from ``scales[i]`` to ``scales[i+1]`` (the
    next state's scale) and the last state is returned unchanged. Anything else raises.

    Args:
        states: a list of arrays ``(..., D)``, or one array whose leading axis lists the states.
        scales: the scales, each finite and > 0.
        frame, ladder: as in :func:`transition`.

    Returns:
        The moved states: a list, or an array of the input's shape if an array was given.
    """
    items, pairs = _pairs(states, scales)
    moved = [
        state_array(f"states[{i}]", x) if pair is None else transition(x, *pair, frame=frame, ladder=ladder)
        for i, (x, pair) in enumerate(zip(items, pairs))
    ]
    return moved if isinstance(states, (list, tuple)) else jnp.stack(moved)


class PairReport(NamedTuple):
    """What :func:`validate` measures for one carried state (worst case over its batch rows)."""

    index: int  # which state
    source: float
    target: float
    ratio: float  # r = target / source
    norm_ratio_error: float  # max |‖y‖ / (r‖x‖) − 1|
    information_preserved: float  # min Re⟨x, x̂⟩ / (‖x‖‖x̂‖), x̂ = the state moved back (scale and frame undone)
    phase_coherence: float | None  # min |⟨x, x̂⟩| / (‖x‖‖x̂‖) for complex states, None for real ones
    lipschitz_bound: float  # the proven Lipschitz constant, exactly r
    amplification: float  # measured by certify: max(worst probe ratio, Jacobian norm)
    passed: bool  # amplification <= lipschitz_bound · (1 + rtol)


def scaled_rotation(x: Inexact[Array, " D"], ratio: Any, u: Inexact[Array, "D D"]) -> Inexact[Array, " D"]:
    """``ratio · U x`` for one state: a transition with its matrix given (module level, so that
    :func:`~superpose.scales.certify` compiles it once per shape and dtype)."""
    return ratio * matmul(u, x)


def validate(
    states: Sequence[Inexact[Array, "*batch D"]] | Inexact[Array, "n *batch D"],
    scales: Sequence[float],
    *,
    frame: Frame | None = None,
    ladder: ScaleLadder | None = None,
    key: jax.Array | None = None,
    probes: int = 8,
    eps: float = 1e-3,
    iterations: int = 10,
    rtol: float = 1e-3,
) -> list[PairReport]:
    """Carries the states as :func:`connect` does and reports, per carried state, how exact and how stable it was.

    The amplification is measured with :func:`~superpose.scales.certify` around every batch row
    of the state (``probes`` random probes of relative size ``eps`` and ``iterations`` steps of
    power iteration on JᵀJ) and compared with the proven bound ``r``; a state passed through
    (``len(scales) == len(states)``) has no report.

    Returns:
        One :class:`PairReport` per carried state, in order.
    """
    from superpose.scales.certify import certify

    items, pairs = _pairs(states, scales)
    key = jax.random.key(0) if key is None else key
    reports = []
    for i, (x, pair) in enumerate(zip(items, pairs)):
        if pair is None:
            continue
        source, target = pair
        x = state_array(f"states[{i}]", x)
        y = transition(x, source, target, frame=frame, ladder=ladder)
        back = transition(y, target, source, frame=frame, ladder=ladder)
        rows, rows_back, rows_y = (a.reshape(-1, x.shape[-1]) for a in (x, back, y))
        ratio = target / source
        norm_x = np.linalg.norm(np.asarray(rows), axis=-1)
        norm_y = np.linalg.norm(np.asarray(rows_y), axis=-1)
        norm_back = np.linalg.norm(np.asarray(rows_back), axis=-1)
        nonzero = norm_x > 0
        norm_error = np.where(nonzero, np.abs(norm_y / (ratio * np.where(nonzero, norm_x, 1.0)) - 1.0),
                              np.where(norm_y > 0, np.inf, 0.0))
        inner = np.sum(np.conj(np.asarray(rows)) * np.asarray(rows_back), axis=-1)
        denominator = np.where(nonzero, norm_x * norm_back, 1.0)
        cosine = np.where(nonzero, np.real(inner) / denominator, 1.0)
        coherence = np.where(nonzero, np.abs(inner) / denominator, 1.0)
        u = (jnp.eye(x.shape[-1], dtype=x.dtype) if frame is None
             else frame.between(source, target).astype(x.dtype))
        key, sub = jax.random.split(key)
        report = certify(scaled_rotation, rows, jnp.asarray(ratio, real_dtype(x.dtype)), u, bound=ratio, key=sub,
                         probes=probes, eps=eps, iterations=iterations, rtol=rtol, check=False)
        reports.append(PairReport(
            index=i, source=source, target=target, ratio=ratio,
            norm_ratio_error=float(norm_error.max()),
            information_preserved=float(cosine.min()),
            phase_coherence=float(coherence.min()) if jnp.iscomplexobj(x) else None,
            lipschitz_bound=ratio,
            amplification=float(report.measured.max()),
            passed=report.all_passed,
        ))
    return reports


__all__ = ["Frame", "PairReport", "connect", "scaled_rotation", "state_array", "transition", "validate"]

