"""The manifold SAE's model and penalised loss, as pure functions of pytrees.

A row ``Z_i ∈ R^p`` is explained as

    Ẑ_i = b + Σ_k a_ik · Φ_k(t_ik) B_k,

with ``b`` an offset, ``a_i = g(ℓ_i)`` the gate's activities from per-row logits ``ℓ_i``,
``t_ik`` the row's coordinate on atom k's chart and ``B_k`` (M_k × p) atom k's decoder. The
penalised loss at fixed hyperparameters ρ is

    ℓ_pen = ½ Σ_i ‖Z_i − Ẑ_i‖² + Σ_i pen_gate(ℓ_i) + Σ_k ½ tr(B_kᵀ (λ_k S_k + ε N_k N_kᵀ) B_k)
            + Σ_i Σ_kj ard(t_ikj; α_kj)

where ``ard`` is ``½ α (t − c)² − ½ log α`` on a flat axis (c = the centre of a bounded domain,
0 for an unbounded one) and the von Mises ``−α cos(2π (t − lo)/period) + log I₀(α)`` on a
periodic axis. Every term but the data fit is the negative log of a prior up to a constant.
``N_k`` spans the null space of S_k (the constant; for an interval also the line) and ε =
:data:`NULL_SPACE_PRECISION` is a fixed, weak ridge on it: where an atom is on in almost every row
with almost the same activity, its constant part and the offset are confounded, and without it
Newton steps drift along that direction without bound (measured: constant rows of norm ~10³ and
logit curvatures ~10⁶ for one always-on circle).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from superpose.numerics.strengths import stable_exp
from superpose.sae.gates import Gate


#: ε, the fixed precision (data units) of the ridge on every decoder's null-space coefficients
NULL_SPACE_PRECISION = 1e-4


def penalty_matrix(atom, log_lambda, dtype) -> Array:
    """``λ S + ε N Nᵀ`` (M, M): atom's decoder penalty's Hessian per output (module docstring)."""
    null = jnp.asarray(np.linalg.qr(atom.null_space())[0], dtype)  # orthonormal: ε N Nᵀ is ε × a projector
    return (stable_exp(log_lambda.astype(dtype)) * jnp.asarray(atom.roughness(), dtype)
            + NULL_SPACE_PRECISION * (null @ null.T))


class SaeParams(NamedTuple):
    """Everything the inner solve moves (shapes: N rows, p outputs, K atoms, D = Σ_k d_k)."""

    offset: Float[Array, " p"]
    decoders: tuple[Float[Array, "M_k p"], ...]  # one per atom
    thresholds: Float[Array, " K"]  # the threshold gate's θ_k (unused by other gates)
    logits: Float[Array, "N K"]
    coords: Float[Array, "N D"]  # atom k's coordinates in columns coord_slices(atoms)[k]


def coord_slices(atoms) -> tuple[slice, ...]:
    """The columns of ``coords`` that hold each atom's coordinates."""
    out, start = [], 0
    for atom in atoms:
        out.append(slice(start, start + atom.dim))
        start += atom.dim
    return tuple(out)


def atom_runs(atoms) -> tuple[tuple[int, int, int], ...]:
    """Runs of equal consecutive atoms: ``(first atom, count, first coordinate column)`` each.

    :func:`decode` and the row search (:mod:`superpose.sae.solve`) loop over runs, with one vectorised
    or ``fori_loop`` body per run, so their compile time grows with the number of runs, not with K.
    """
    runs, column = [], 0
    for k, atom in enumerate(atoms):
        if runs and atoms[runs[-1][0]] == atom:
            runs[-1][1] += 1
        else:
            runs.append([k, 1, column])
        column += atom.dim
    return tuple(tuple(run) for run in runs)


def num_coords(atoms) -> int:
    return sum(atom.dim for atom in atoms)


def wrap_coords(atoms, coords: Float[Array, "... D"]) -> Float[Array, "... D"]:
    """Periodic axes reduced into their period, bounded axes clamped."""
    parts = [atom.wrap(coords[..., s]) for atom, s in zip(atoms, coord_slices(atoms))]
    return jnp.concatenate(parts, axis=-1)


def decode(atoms, gate: Gate, params: SaeParams, logits=None, coords=None) -> Float[Array, "... p"]:
    """``Ẑ = b + Σ_k a_k Φ_k(t_k) B_k`` for the given (or the stored) logits and coordinates."""
    logits = params.logits if logits is None else logits
    coords = params.coords if coords is None else coords
    a = gate.activities(logits, params.thresholds)
    out = params.offset
    for first, count, column in atom_runs(atoms):  # equal atoms at once: one Φ and one contraction per run
        atom = atoms[first]
        t = coords[..., column:column + count * atom.dim].reshape(*coords.shape[:-1], count, atom.dim)
        B = jnp.stack(params.decoders[first:first + count])  # (count, M, p)
        out = out + jnp.einsum("...c,...cm,cmp->...p", a[..., first:first + count], atom.evaluate(t), B)
    return out


def _log_i0(alpha: Array) -> Array:
    return jnp.log(jax.scipy.special.i0e(alpha)) + alpha


def ard_penalty(atoms, log_ard: tuple[Array, ...], coords: Float[Array, "... D"]) -> Float[Array, "..."]:
    """Σ over atoms and axes of the ARD prior's negative log density, per row."""
    total = jnp.zeros(coords.shape[:-1], coords.dtype)
    for atom, s, log_alpha in zip(atoms, coord_slices(atoms), log_ard):
        if log_alpha.shape[0] == 0:
            continue
        t = coords[..., s]
        for j in range(atom.dim):
            alpha = stable_exp(log_alpha[j].astype(coords.dtype))
            lo, hi = atom.domain[j]
            if atom.periodic[j]:
                total = total - alpha * jnp.cos(2 * jnp.pi * (t[..., j] - lo) / (hi - lo)) + _log_i0(alpha)
            else:
                centre = 0.5 * (lo + hi) if np.isfinite(lo) and np.isfinite(hi) else 0.0
                total = total + 0.5 * alpha * (t[..., j] - centre) ** 2 - 0.5 * jnp.log(alpha)
    return total


#: an activity at most this (in absolute value) counts as off for :func:`park_inactive`
INACTIVE_ACTIVITY = 1e-6


def ard_modes(atoms) -> np.ndarray:
    """(D,) the ARD prior's mode on every coordinate axis: lo on a periodic axis, the centre on a flat one."""
    modes = []
    for atom in atoms:
        for j in range(atom.dim):
            lo, hi = atom.domain[j]
            if atom.periodic[j]:
                modes.append(lo)
            else:
                modes.append(0.5 * (lo + hi) if np.isfinite(lo) and np.isfinite(hi) else 0.0)
    return np.asarray(modes, np.float64)


def park_inactive(atoms, gate: Gate, params: SaeParams) -> SaeParams:
    """Coordinates of atoms whose activity is 0 (|a| <= :data:`INACTIVE_ACTIVITY`) moved to their ARD mode.

    Such a coordinate enters the loss only through its ARD prior (up to a²‖Φ B‖² ≈ 0), so the
    mode is its minimiser (its gradient there is ~α, far below any solver tolerance, and away from
    the mode a periodic coordinate's curvature can be negative, which left H indefinite).
    """
    activities = gate.activities(params.logits, params.thresholds)
    modes = jnp.asarray(ard_modes(atoms), params.coords.dtype)
    coords = params.coords
    for k, s in enumerate(coord_slices(atoms)):
        off = jnp.abs(activities[:, k]) <= INACTIVE_ACTIVITY
        coords = coords.at[:, s].set(jnp.where(off[:, None], modes[s], coords[:, s]))
    return params._replace(coords=coords)


def align_charts(atoms, gate: Gate, params: SaeParams) -> SaeParams:
    """Each periodic chart shifted so its active coordinates' circular mean sits on the ARD mode.

    For atoms with an exact shift (:meth:`Atom.shift_matrix`: circle, torus), moving the active
    rows' coordinates by −c and the decoder to R(c) B leaves every fitted point, the roughness
    penalty and the null-space ridge unchanged; the von Mises ARD term Σ −α cos 2π(t − c − lo) is
    smallest at c = the coordinates' circular mean. So this never raises ℓ_pen, and it settles in
    closed form the one direction (a chart's rotation, resolved only by the weak prior) along
    which Newton steps converge slowly: a straight step leaves the rotation's orbit, so steps are
    damped to a crawl (measured: 10⁻⁵ nats per joint iteration for 100 iterations). Inactive rows
    stay at the mode.
    """
    activities = gate.activities(params.logits, params.thresholds)
    coords, decoders = params.coords, list(params.decoders)
    for k, (atom, s) in enumerate(zip(atoms, coord_slices(atoms))):
        if not any(atom.periodic) or atom.shift_matrix(jnp.zeros(atom.dim, coords.dtype)) is None:
            continue
        active = jnp.abs(activities[:, k]) > INACTIVE_ACTIVITY
        shift = []
        for j in range(atom.dim):
            lo, hi = atom.domain[j]
            if not atom.periodic[j]:
                shift.append(jnp.zeros((), coords.dtype))
                continue
            angle = 2 * jnp.pi * (coords[:, s.start + j] - lo) / (hi - lo)
            sine = jnp.sum(jnp.where(active, jnp.sin(angle), 0.0))
            cosine = jnp.sum(jnp.where(active, jnp.cos(angle), 0.0))
            resolved = jnp.hypot(sine, cosine) > 1e-12 * jnp.maximum(jnp.sum(active), 1)
            shift.append(jnp.where(resolved, jnp.arctan2(sine, cosine) / (2 * jnp.pi) * (hi - lo), 0.0))
        shift = jnp.stack(shift)
        moved = atom._wrap(coords[:, s] - shift)
        coords = coords.at[:, s].set(jnp.where(active[:, None], moved, coords[:, s]))
        decoders[k] = atom.shift_matrix(shift) @ decoders[k]
    return params._replace(coords=coords, decoders=tuple(decoders))


def row_loss(atoms, gate: Gate, params: SaeParams, hyper, z: Float[Array, " p"], logits: Float[Array, " K"],
             coords: Float[Array, " D"]) -> Float[Array, ""]:
    """One row's share of the penalised loss at fixed decoders (what the row solve minimises)."""
    residual = z - decode(atoms, gate, params, logits, coords)
    return (0.5 * jnp.sum(residual**2) + gate.penalty(logits, params.thresholds, hyper.log_lambda_sparse)
            + ard_penalty(atoms, hyper.log_ard, coords))


def smoothness_penalty(atoms, decoders, log_lambda_smooth: Float[Array, " K"]) -> Float[Array, ""]:
    """Σ_k ½ tr(B_kᵀ (λ_k S_k + ε N_k N_kᵀ) B_k)."""
    total = 0.0
    for k, (atom, B) in enumerate(zip(atoms, decoders)):
        total = total + 0.5 * jnp.sum(B * (penalty_matrix(atom, log_lambda_smooth[k], B.dtype) @ B))
    return jnp.asarray(total)


def penalized_loss(atoms, gate: Gate, params: SaeParams, hyper, Z: Float[Array, "N p"]) -> Float[Array, ""]:
    """The full penalised loss ℓ_pen (see the module docstring)."""
    residual = Z - decode(atoms, gate, params)
    return (0.5 * jnp.sum(residual**2)
            + jnp.sum(gate.penalty(params.logits, params.thresholds, hyper.log_lambda_sparse))
            + jnp.sum(ard_penalty(atoms, hyper.log_ard, params.coords))
            + smoothness_penalty(atoms, params.decoders, hyper.log_lambda_smooth))


def design_matrix(atoms, gate: Gate, params: SaeParams) -> Float[Array, "N P"]:
    """``X_i = [1, a_i1 Φ_1(t_i1), …, a_iK Φ_K(t_iK)]``: the model is ``Ẑ = X W``."""
    a = gate.activities(params.logits, params.thresholds)
    blocks = [jnp.ones((params.logits.shape[0], 1), params.offset.dtype)]
    for k, (atom, s) in enumerate(zip(atoms, coord_slices(atoms))):
        blocks.append(a[:, k, None] * atom.evaluate(params.coords[:, s]))
    return jnp.concatenate(blocks, axis=1)


def decoder_penalty_matrix(atoms, log_lambda_smooth: Array, dtype) -> Float[Array, "P P"]:
    """``blockdiag(0, λ_1 S_1 + ε N_1 N_1ᵀ, …)``: the decoder penalty's Hessian in ``W``."""
    sizes = [1] + [atom.num_basis for atom in atoms]
    P = sum(sizes)
    out = jnp.zeros((P, P), dtype)
    start = 1
    for k, atom in enumerate(atoms):
        m = atom.num_basis
        out = out.at[start:start + m, start:start + m].set(penalty_matrix(atom, log_lambda_smooth[k], dtype))
        start += m
    return out


__all__ = [
    "NULL_SPACE_PRECISION", "SaeParams", "align_charts", "ard_modes", "park_inactive", "penalty_matrix",
    "ard_penalty", "atom_runs", "coord_slices", "decode", "decoder_penalty_matrix", "design_matrix",
    "num_coords", "penalized_loss", "row_loss", "smoothness_penalty", "wrap_coords",
]
