"""The Laplace criterion: the approximate negative log marginal likelihood of a fitted manifold SAE.

The model reading. Rows are ``Z_i | θ ~ N(Ẑ_i(θ), φ I_p)`` and every penalty strength is a prior
precision relative to the dispersion φ (λ/φ and α/φ dimensionless, as ``seed_from_dispersion``
intends). ``ℓ_pen`` (:func:`superpose.sae.objective.penalized_loss`) is in squared data units;
``ℓ'`` is ℓ_pen without the ARD normalisers it carries (``−½ log α`` per row and flat axis,
``+log I₀(α)`` per row and periodic axis) and, for the Beta–Bernoulli gate, without its penalty
``pen_BB`` (a −log probability in nats, with its logit prior ½ρℓ², read in nats too). Then

    V(ρ, φ) = ℓ'(θ̂)/φ + pen_BB(θ̂) + ½ log|H(θ̂)| − ½ dim(θ) log φ + ½ N p log(2πφ)
              − ½ p Σ_k rank(S_k) log(λ_k/φ)                 smoothness: B_k ~ N(0, (λ_k/φ · S_k)⁺ ⊗ I_p)
              − ½ p Σ_k null(S_k) log(ε/φ)                   the null-space ridge ε (objective module)
              − N Σ_flat ½ log(α/φ) + N Σ_periodic log I₀(α/φ) ARD: N(c, φ/α); von Mises, κ = α/φ
              − N K log(λ_sparse/φ)                          threshold gate (assumption below)
              − ½ N K log(λ_sparse/φ)                        TopK gate: its logit prior ½λℓ²
              + N K log(1 + e^(−λ_sparse/φ)) − ½ N K log(ρ/φ) binary gate: on w.p. σ(−λ/φ); logit prior

is the Laplace approximation of ``−log ∫ p(Z | θ, φ) p(θ | ρ, φ) dθ`` at the inner optimum θ̂ (of
ℓ_pen, the mode of the posterior, which is ℓ'/φ + const). H is the Hessian of ℓ_pen in the
integrated parameters (data units; the posterior's is H/φ, hence ``−½ dim θ log φ``), from the
arrow structure (:mod:`superpose.sae.structure`): ``log|H| = Σ_i log|H_ii| + log|S_G|``.
``dim θ = P − p + N q``: P = p(1 + Σ_k M_k) offset and decoder numbers, q = K + Σ_k d_k per row.
The offset is profiled, not integrated: under its flat prior it has an unbounded volume along the
direction it shares with the constant part of an atom that is on in almost every row (one
always-on circle: Schur eigenvalues ~1e-9, so V was +inf or a random sign). So are the threshold
gate's K thresholds: where every row's logit is far from its threshold ℓ_pen is flat in it
(curvature ~e^(−|ℓ − θ|/ε); 10⁻²⁰ at a planted-circle fit), and a flat direction under a flat
prior has no Laplace approximation. The softmax gate's gauge, a common shift of a row's logits
(N directions, along which ℓ_pen is exactly constant), is projected out: dim θ = P − p + N(q − 1).
φ is profiled out: V is minimised over log φ (grid, bounded Brent, then the root of ∂V/∂log φ).
Without periodic axes ∂V/∂φ = 0 is linear: φ̂ = 2ℓ'/(Np − dim θ + Σ normaliser counts).

Dropped constants (independent of ρ and φ): ``−½ dim θ log 2π`` of the Laplace integral; the
smoothness priors' ``½ p rank(S_k) log 2π − ½ p log|S_k|₊`` (pseudo-determinant); ``½ log 2π``
per row and flat axis; ``log(period)`` per row and periodic axis (0 here: period 1); the TopK
logit prior's ``½ log 2π`` per logit and the Beta–Bernoulli logit prior's ``½ log(2π/ρ)``.

What it is not: an exact evidence. The smoothness prior is improper on the null space of S_k
(constants, lines) but for the weak ridge ε there, the offset and the threshold gate's thresholds have flat priors, the threshold
gate's gated L1 is read as an exponential prior with rate λ_sparse/φ on each activity (an
assumption: activities are not constrained to be ≥ 0, and the Jacobian from logits to
activities is ignored), the softmax gate's entropy prior has no normaliser, and the TopK gate's
hard support is not a density. V compares hyperparameters of one model structure, not models.
For the Beta–Bernoulli gate θ̂ and H are those of ℓ_pen, i.e. its nats weighted as at φ = 1.

A known weakness, and an option: Laplace gives a periodic coordinate the Gaussian volume
√(2πφ/h), unbounded as its curvature h → 0, while the coordinate lives on a circle. A coordinate
that only its ARD prior sees (a constant decoder) therefore gains ½ log(1/(2πκ)), κ = α/φ, per
row, and a collapsed chart with a small ARD α can score better than the planted one (measured:
single_circle(60, 4) at log α = −10). ``laplace_criterion(..., circular=True)`` replaces each
periodic coordinate's Gaussian volume by the von Mises one of the same curvature (exact for such
a coordinate; the Gaussian again for large κ); see :func:`circular_correction`. It does the same
for each chart's shift gauge (:func:`shift_gauges`: every coordinate of a periodic axis moved
together, the decoder rotated back), which only the ARD prior fixes: without it, log|H| → −∞ as
the ARD α → 0, the uniform prior that a circle's angles call for.

Where H is not positive definite (a row block whose logit or coordinate is unidentified, e.g. an
inactive atom's; or an indefinite Schur complement: a saddle, or a global direction the data do
not fix), V is not a Laplace approximation there: the value is +inf, the status says where, and
nothing raises.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float
from scipy.optimize import brentq, minimize_scalar
from scipy.special import i0e, i1e

from superpose import _xla
from superpose._xla import CHEAP_COMPILE
from superpose._validation import as_float_array, check_finite, positive_float
from superpose.numerics.precision import float64_enabled
from superpose.numerics.strengths import stable_exp
from superpose.sae.gates import GATE_TYPES, BetaBernoulliGate, BinaryGate, SoftmaxGate, ThresholdGate, TopKGate
from superpose.sae.hyperparameters import SaeHyperparameters
from superpose.sae.objective import (
    NULL_SPACE_PRECISION,
    SaeParams,
    ard_penalty,
    coord_slices,
    decode,
    num_coords,
    smoothness_penalty,
)
from superpose.sae.structure import (
    ArrowBlocks,
    InverseBlocks,
    RowFactor,
    arrow_blocks,
    arrow_spectra,
    eliminate_rows,
    factor_rows,
    global_vector,
    invert_rows,
    log_abs_det,
    solve_rows,
)

#: half-width, in log φ, of the dispersion's search around log(mean squared residual per entry)
LOG_DISPERSION_HALF_WIDTH = 30.0


class CriterionValue(NamedTuple):
    """The Laplace criterion and its parts, each at the profiled (or given) dispersion φ̂."""

    value: float  # V(ρ, φ̂); +inf where status != "ok"
    dispersion: float  # φ̂ (squared data units per entry)
    fit_term: float  # ℓ'(θ̂)/φ̂ (+ the Beta–Bernoulli penalty in nats)
    log_det: float  # log|H(θ̂)| (data units; meaningful only when positive_definite)
    smooth_normaliser: float  # ½ p Σ_k [rank(S_k) log(λ_k/φ̂) + null(S_k) log(ε/φ̂)]
    ard_normaliser: float  # N [Σ_flat ½ log(α/φ̂) − Σ_periodic log I₀(α/φ̂)]
    gate_normaliser: float  # N K log(λ_sparse/φ̂) (threshold), ½ N K log(λ_sparse/φ̂) (TopK), else 0
    dimension: int  # dim θ: P − p + N q, less the threshold gate's K thresholds or the softmax logit shifts (N)
    status: str  # "ok" | "hessian not positive definite: …" | "non-finite: …" | "dispersion not identified: …"
    positive_definite: bool  # H(θ̂) positive definite
    circular_correction: float = 0.0  # included in value when laplace_criterion(circular=True)


# ----------------------------------------------------------------------------------- pieces
def _complement(directions: np.ndarray) -> np.ndarray:
    """(n, n − r) orthonormal basis of the complement of the r independent columns of ``directions``."""
    n, r = directions.shape
    return np.linalg.qr(np.column_stack([directions, np.eye(n)]))[0][:, r:n]


def _softmax_gauge(q: int, K: int) -> np.ndarray:
    """(q, q − 1): a basis of the complement of the softmax gate's gauge, a common shift of a row's
    logits (activities sum to 1, so it changes nothing)."""
    shift = np.zeros((q, 1))
    shift[:K] = 1.0
    return _complement(shift)


def _identifiable(atoms, gate, blocks: ArrowBlocks, p: int,
                  K: int) -> tuple[ArrowBlocks, Array | None, slice]:
    """The blocks of the parameters V integrates over: (blocks, the rows' basis or None, the globals kept).

    The globals kept are a ``slice`` of the global vector (offset first, then each decoder
    row-major, then the threshold gate's thresholds). Profiled, not integrated: the offset (under
    its flat prior it has an unbounded volume along the direction it shares with the constant
    part of an atom that is on in almost every row: measured Schur eigenvalues ~1e-9 for one
    always-on circle; for the softmax gate, whose activities sum to 1, that trade is exact) and
    the threshold gate's thresholds (where every row's logit is far from its atom's threshold
    the loss is flat in them, curvature ~e^(−|ℓ − θ|/ε)). The softmax gate's other gauge, a
    common shift of a row's logits, is projected out of the rows.
    """
    kept = slice(p, blocks.globals_.shape[0] - (K if isinstance(gate, ThresholdGate) else 0))
    cross, globals_ = blocks.cross[..., kept], blocks.globals_[kept, kept]
    if isinstance(gate, SoftmaxGate):
        rows = jnp.asarray(_softmax_gauge(blocks.rows.shape[-1], K), blocks.rows.dtype)
        return ArrowBlocks(jnp.einsum("qa,nqr,rb->nab", rows, blocks.rows, rows),
                           jnp.einsum("qa,nqp->nap", rows, cross), globals_), rows, kept
    return ArrowBlocks(blocks.rows, cross, globals_), None, kept


def _periodic_columns(atoms) -> tuple[list[int], list[float]]:
    """(indices within a row's parameters (logits first), periods) of every periodic coordinate axis."""
    columns, periods, start = [], [], len(atoms)
    for atom in atoms:
        for j in range(atom.dim):
            if atom.periodic[j]:
                columns.append(start + j)
                periods.append(atom.domain[j][1] - atom.domain[j][0])
        start += atom.dim
    return columns, periods


@functools.lru_cache(maxsize=64)
def _shift_generator(atom, axis: int) -> np.ndarray | None:
    """D (M, M) with ∂Φ/∂t_axis = Φ D, when the basis is closed under shifts along that axis (else None).

    Then shifting every coordinate by c and every decoder B to B − c D B (to first order)
    leaves every decoded point unchanged: a gauge of the chart (a circle's rotation).
    """
    with float64_enabled():  # the closure test needs float64 whatever the caller's precision
        grid = jnp.asarray(atom.grid(96 if atom.dim == 1 else 24), jnp.float64)
        values = np.asarray(atom.evaluate(grid), np.float64)
        slopes = np.asarray(atom.derivative(grid), np.float64)[..., axis]
    D, *_ = np.linalg.lstsq(values, slopes, rcond=None)
    closed = np.max(np.abs(values @ D - slopes)) <= 1e-8 * max(1.0, float(np.max(np.abs(slopes))))
    return D if closed else None


def shift_gauges(atoms) -> tuple[tuple[int, int, float, np.ndarray], ...]:
    """(atom k, axis j, period, D) of every periodic axis whose basis is closed under shifts.

    Shifting every row's coordinate on that axis by c and atom k's decoder B to B − c D B (to
    first order) leaves every decoded point unchanged: a gauge of the chart (a circle's rotation)
    that only the ARD prior and the coordinates' curvature see. Call outside ``jit``.
    """
    return tuple((k, j, atom.domain[j][1] - atom.domain[j][0], D) for k, atom in enumerate(atoms)
                 for j in range(atom.dim) if atom.periodic[j] and (D := _shift_generator(atom, j)) is not None)


def _gauge_vectors(atoms, params: SaeParams, p: int, spec, generators, basis=None, global_basis=slice(None)):
    """The shift gauges as (row parts (S, N, q), global parts (S, P)); ``spec`` is ((k, j), …). In the
    integrated parameters (:func:`_identifiable`'s rows ``basis`` and ``global_basis``) where given."""
    N, K = params.logits.shape
    q = K + num_coords(atoms)
    columns = [K + s.start for s in coord_slices(atoms)]
    starts = np.cumsum([p] + [atom.num_basis * p for atom in atoms])
    total = int(starts[-1])
    rows, globals_ = [], []
    for (k, j), D in zip(spec, generators):
        decoder = -D.astype(params.decoders[k].dtype) @ params.decoders[k]
        rows.append(jnp.zeros((N, q), params.coords.dtype).at[:, columns[k] + j].set(1.0))
        globals_.append(jnp.zeros(total, decoder.dtype).at[starts[k]:starts[k] + decoder.size].set(decoder.ravel()))
    rows, globals_ = jnp.stack(rows), jnp.stack(globals_)[:, global_basis]
    return (rows if basis is None else jnp.einsum("snq,qa->sna", rows, basis)), globals_


def _solve_gauges(blocks: ArrowBlocks, factor: RowFactor, solved_cross, solve_schur, row_parts, global_parts):
    """H⁻¹ V for S gauge vectors by block elimination: (row parts (S, N, q), global parts (S, P)).

    ``solve_schur`` maps (S, P) right-hand sides to S_G⁻¹ applied to each (one solve, or a product
    with an inverse the caller has)."""
    solved_rows = jax.vmap(lambda v: solve_rows(factor, v[..., None])[..., 0])(row_parts)  # (S, N, q)
    x_global = solve_schur(global_parts - jnp.einsum("nqp,snq->sp", blocks.cross, solved_rows))  # (S, P)
    return solved_rows - jnp.einsum("nqp,sp->snq", solved_cross, x_global), x_global


def _gauge_curvatures(blocks: ArrowBlocks, factor: RowFactor, solved_cross, schur, row_parts, global_parts) -> Array:
    """h_c = ‖v‖⁴ / (vᵀ H⁻¹ v) per gauge v: its curvature with every other direction integrated out.

    H⁻¹ v by block elimination on the arrow: x_G = S⁻¹(v_G − Σ_i H_Giᵀ H_ii⁻¹ v_i),
    x_i = H_ii⁻¹ (v_i − H_iG x_G). Row solves come from ``factor`` (no further batched LAPACK call);
    ``solved_cross`` (H_ii⁻¹ H_iG) and ``schur`` are :func:`~superpose.sae.structure.eliminate_rows`'.
    """
    x_rows, x_global = _solve_gauges(blocks, factor, solved_cross, lambda rhs: jnp.linalg.solve(schur, rhs.T).T,
                                     row_parts, global_parts)
    quadratic = jnp.sum(row_parts * x_rows, axis=(1, 2)) + jnp.sum(global_parts * x_global, axis=1)
    norm2 = jnp.sum(row_parts**2, axis=(1, 2)) + jnp.sum(global_parts**2, axis=1)
    return norm2**2 / quadratic


# CHEAP_COMPILE: 1.13x faster compiles at the same run time (benchmarks/compile_options.py)
@functools.partial(_xla.jit, cpu_options=CHEAP_COMPILE, static_argnames=("atoms", "gate", "gauge_spec"))
def _pieces(atoms, gate, params: SaeParams, hyper, Z, gauge_spec=(), generators=()):
    """The θ-dependent parts of V: the loss's terms and the Hessian's row and Schur spectra."""
    residual = Z - decode(atoms, gate, params)
    fit = 0.5 * jnp.sum(residual**2)
    gate_penalty = jnp.sum(gate.penalty(params.logits, params.thresholds, hyper.log_lambda_sparse))
    ard = jnp.sum(ard_penalty(atoms, hyper.log_ard, params.coords))
    smooth = smoothness_penalty(atoms, params.decoders, hyper.log_lambda_smooth)
    p, K = Z.shape[1], params.logits.shape[1]
    blocks, basis, global_basis = _identifiable(atoms, gate, arrow_blocks(atoms, gate, params, hyper, Z), p, K)
    factor = factor_rows(blocks.rows)  # the one batched LAPACK call (see RowFactor)
    solved_cross, schur = eliminate_rows(blocks, factor)  # once, for the gauges and the spectrum
    columns, _ = _periodic_columns(atoms)
    if columns:  # each periodic coordinate's curvature with the rest of its row integrated out (globals held)
        inverse = invert_rows(factor)
        if basis is not None:
            inverse = jnp.einsum("qa,nab,rb->nqr", basis, inverse, basis)
        periodic_curvature = 1.0 / jnp.diagonal(inverse, axis1=1, axis2=2)[:, jnp.asarray(columns)]
    else:
        periodic_curvature = jnp.zeros((Z.shape[0], 0), Z.dtype)
    if gauge_spec:
        row_parts, global_parts = _gauge_vectors(atoms, params, p, gauge_spec, generators, basis, global_basis)
        gauge_curvature = _gauge_curvatures(blocks, factor, solved_cross, schur, row_parts, global_parts)
    else:
        gauge_curvature = jnp.zeros((0,), Z.dtype)
    spectra = arrow_spectra(blocks, factor, schur)  # log|det| and definiteness from the same eigenvalues
    return dict(fit=fit, gate_penalty=gate_penalty, ard=ard, smooth=smooth, row_min=spectra.rows[:, 0],
                row_log_abs=log_abs_det(spectra.rows), schur_log_abs=log_abs_det(spectra.schur),
                schur_eigenvalues=spectra.schur,
                periodic_curvature=periodic_curvature, gauge_curvature=gauge_curvature)


@functools.partial(jax.jit, static_argnames=("atoms", "gate", "gauge_spec"))
def _covariance(atoms, gate, params: SaeParams, hyper, Z, gauge_spec=(), generators=()) -> InverseBlocks:
    p, K = Z.shape[1], params.logits.shape[1]
    full = arrow_blocks(atoms, gate, params, hyper, Z)
    blocks, basis, global_basis = _identifiable(atoms, gate, full, p, K)
    factor = factor_rows(blocks.rows)
    solved_cross, schur = eliminate_rows(blocks, factor)
    schur_inverse = jnp.linalg.inv(schur)
    rows = invert_rows(factor) + jnp.einsum("nap,pr,nbr->nab", solved_cross, schur_inverse, solved_cross)
    globals_ = schur_inverse
    if gauge_spec:  # condition on the gauges: Σ − X (Vᵀ X)⁻¹ Xᵀ with X = H⁻¹ V
        row_parts, global_parts = _gauge_vectors(atoms, params, p, gauge_spec, generators, basis, global_basis)
        x_rows, x_global = _solve_gauges(blocks, factor, solved_cross, lambda rhs: rhs @ schur_inverse, row_parts,
                                         global_parts)
        gram = jnp.einsum("snq,tnq->st", row_parts, x_rows) + global_parts @ x_global.T
        gram_inverse = jnp.linalg.inv(0.5 * (gram + gram.T))
        rows = rows - jnp.einsum("sna,st,tnb->nab", x_rows, gram_inverse, x_rows)
        globals_ = globals_ - x_global.T @ gram_inverse @ x_global
    if basis is not None:
        rows = jnp.einsum("qa,nab,rb->nqr", basis, rows, basis)
    P = full.globals_.shape[0]
    return InverseBlocks(rows, jnp.zeros((P, P), Z.dtype).at[global_basis, global_basis].set(globals_))


def covariance_blocks(atoms, gate, params: SaeParams, hyper: SaeHyperparameters, Z, *,
                      given_gauges: bool = False) -> InverseBlocks:
    """The diagonal blocks of H⁻¹ over the parameters V integrates (data units; the posterior's is φH⁻¹).

    Laid out as the full arrow (rows: logits then coordinates; globals: offset, decoders,
    thresholds), with zeros for what V profiles (the offset, the threshold gate's thresholds) and
    the softmax gate's logit shift projected out. Entries are NaN or inf where H is singular.
    ``given_gauges``: the covariance conditioned on the charts' shift gauges (:func:`shift_gauges`),
    ``Σ − X (VᵀX)⁻¹ Xᵀ`` with ``X = H⁻¹V``: what the parameters vary by with each chart's rotation
    held. Along a rotation only the weak ARD prior curves ℓ_pen, so its variance is large and, seen
    through a straight step (which leaves the rotation's orbit), looks like decoder roughness.
    """
    Z = _check_inputs(atoms, gate, params, hyper, Z)
    gauges = shift_gauges(atoms) if given_gauges else ()
    return _covariance(atoms, gate, params, hyper.astype(Z.dtype), Z, tuple((k, j) for k, j, _, _ in gauges),
                       tuple(jnp.asarray(D, Z.dtype) for *_, D in gauges))


def _log_i0(kappa):
    kappa = np.asarray(kappa, np.float64)
    return np.log(i0e(kappa)) + kappa


class _Counts(NamedTuple):
    """What the φ-dependence of V is made of (all plain floats)."""

    N: int
    p: int
    num_atoms: int
    dimension: int
    smooth_rank: list[tuple[float, int]]  # (log λ_k, p·rank(S_k)), then (log ε, p·null(S_k)) per atom
    log_alpha_flat: list[float]  # log α of every flat ARD axis
    alpha_periodic: list[float]  # α of every periodic ARD axis
    gate_prior: tuple[float, float] | None  # (weight w, log strength) of a gate normaliser w·log(strength/φ)
    on_off: tuple[float, float] | None = None  # binary gate: (N K, λ_sparse) of its on/off prior's normaliser


def _counts(atoms, gate, params: SaeParams, hyper, dtype) -> _Counts:
    N, K = params.logits.shape
    p = params.offset.shape[0]
    q = K + num_coords(atoms)
    P = global_vector(gate, params)[0].shape[0]
    if isinstance(gate, ThresholdGate):
        dimension = P - p - K + N * q  # offset and thresholds profiled
    elif isinstance(gate, SoftmaxGate):
        dimension = P - p + N * (q - 1)  # offset profiled, the logit shift removed
    else:
        dimension = P - p + N * q  # offset profiled

    def strength(log_value) -> float:  # exactly the value the loss used (stable_exp in the loss's dtype)
        return float(stable_exp(jnp.asarray(log_value, dtype)))

    smooth = [(math.log(strength(hyper.log_lambda_smooth[k])), p * atom.roughness_rank())
              for k, atom in enumerate(atoms)]
    smooth += [(math.log(NULL_SPACE_PRECISION), p * (atom.num_basis - atom.roughness_rank())) for atom in atoms]
    flat, periodic = [], []
    for atom, block in zip(atoms, hyper.log_ard):
        for j in range(block.shape[0]):
            if atom.periodic[j]:
                periodic.append(strength(block[j]))
            else:
                flat.append(math.log(strength(block[j])))
    if isinstance(gate, ThresholdGate):  # an exponential prior, rate λ_sparse/φ, on each of the N K activities
        gate_prior = (float(N * K), math.log(strength(hyper.log_lambda_sparse)))
    elif isinstance(gate, TopKGate):  # the Gaussian logit prior ½ λ ℓ², precision λ/φ, on each of the N K logits
        gate_prior = (0.5 * N * K, math.log(strength(hyper.log_lambda_sparse)))
    elif isinstance(gate, BinaryGate):  # its logit prior ½ ρ (|ℓ| − 1)², precision ρ/φ
        gate_prior = (0.5 * N * K, math.log(gate.logit_precision))
    else:
        gate_prior = None
    on_off = (float(N * K), strength(hyper.log_lambda_sparse)) if isinstance(gate, BinaryGate) else None
    return _Counts(N, p, K, dimension, smooth, flat, periodic, gate_prior, on_off)


def _normalisers(c: _Counts, log_phi: float) -> tuple[float, float, float]:
    """(smooth, ARD, gate) normalisers at φ = exp(log_phi), as in the module docstring."""
    smooth = sum(0.5 * count * (log_lam - log_phi) for log_lam, count in c.smooth_rank)
    ard = c.N * (sum(0.5 * (log_alpha - log_phi) for log_alpha in c.log_alpha_flat)
                 - sum(float(_log_i0(alpha * math.exp(-log_phi))) for alpha in c.alpha_periodic))
    gate = 0.0 if c.gate_prior is None else c.gate_prior[0] * (c.gate_prior[1] - log_phi)
    if c.on_off is not None:  # each atom on with probability σ(−λ/φ): normaliser log(1 + e^(−λ/φ)) each
        gate -= c.on_off[0] * float(np.logaddexp(0.0, -c.on_off[1] * math.exp(-log_phi)))
    return smooth, ard, gate


def _ard_constants(c: _Counts) -> float:
    """The normalisers ℓ_pen carries: N [Σ_flat (−½ log α) + Σ_periodic log I₀(α)]."""
    return c.N * (sum(-0.5 * a for a in c.log_alpha_flat) + sum(float(_log_i0(a)) for a in c.alpha_periodic))


# --------------------------------------------------------------------------------- validation
def _check_inputs(atoms, gate, params, hyper, Z):
    if not isinstance(atoms, tuple) or not atoms:
        raise TypeError(f"atoms must be a non-empty tuple of atoms, got {type(atoms).__name__}")
    if not isinstance(gate, tuple(GATE_TYPES.values())):
        raise TypeError(f"gate must be a gate object (superpose.sae.gates), got {type(gate).__name__}")
    if not isinstance(params, SaeParams):
        raise TypeError(f"params must be SaeParams, got {type(params).__name__}")
    if not isinstance(hyper, SaeHyperparameters):
        raise TypeError(f"hyper must be SaeHyperparameters, got {type(hyper).__name__}")
    hyper.check_atoms([atom.dim for atom in atoms])
    Z = as_float_array("Z", Z)
    if Z.ndim != 2:
        raise ValueError(f"Z must have shape (N, p), got shape {Z.shape}")
    N, p = Z.shape
    K = len(atoms)
    expected = {"offset": (p,), "thresholds": (K,), "logits": (N, K), "coords": (N, num_coords(atoms))}
    for name, shape in expected.items():
        if tuple(getattr(params, name).shape) != shape:
            raise ValueError(f"params.{name} must have shape {shape} for Z {Z.shape} and {K} atoms, "
                             f"got {tuple(getattr(params, name).shape)}")
    if len(params.decoders) != K:
        raise ValueError(f"params.decoders must hold K = {K} decoders, got {len(params.decoders)}")
    for k, (atom, B) in enumerate(zip(atoms, params.decoders)):
        if tuple(B.shape) != (atom.num_basis, p):
            raise ValueError(f"params.decoders[{k}] must have shape ({atom.num_basis}, {p}), got {tuple(B.shape)}")
    check_finite("Z", Z)
    for name, leaf in zip(("offset", "thresholds", "logits", "coords"),
                          (params.offset, params.thresholds, params.logits, params.coords)):
        check_finite(f"params.{name}", leaf)
    for k, B in enumerate(params.decoders):
        check_finite(f"params.decoders[{k}]", B)
    return Z.astype(params.offset.dtype)


# ---------------------------------------------------------------------------------- criterion
def laplace_criterion(atoms, gate, params: SaeParams, hyper: SaeHyperparameters, Z: Float[Array, "N p"], *,
                      dispersion: float | None = None, circular: bool = False) -> CriterionValue:
    """The Laplace criterion V (module docstring) at given, already solved parameters.

    Args:
        atoms: the model's atoms (a tuple); gate: its gate object.
        params: the inner optimum θ̂ (:func:`superpose.sae.solve.solve`), float64 expected (the
            log-determinant of an N q + P Hessian needs it).
        hyper: the hyperparameters ρ θ̂ was solved at.
        Z: the data (N, p).
        dispersion: φ to evaluate V at; ``None`` (default) profiles it out: V is minimised over
            log φ within ±30 of log(mean squared residual per entry), on a grid of step ½, then
            by bounded Brent around the best grid point, then by the root of ∂V/∂log φ.
        circular: add :func:`circular_correction` (default False: the plain Laplace criterion).
            The Gaussian volume that Laplace gives a periodic coordinate, √(2πφ/h), is unbounded
            as its curvature h → 0, while the coordinate lives on a circle of length L: a
            coordinate that the data do not see (a constant decoder, an inactive atom) then wins
            ½ log(1/(2πκ)) nats, κ = hL²/(4π²φ), which rewards collapsed charts as α → 0.
            With ``circular`` each periodic coordinate's Gaussian volume is replaced by the von
            Mises one of the same curvature, L·i0e(κ): exact for a coordinate only its ARD prior
            sees, and equal to the Gaussian as κ → ∞.

    Stationarity is not checked: V is the formula at ``params``, a Laplace approximation only at
    the inner optimum. The cost is one pass over the arrow blocks (no dense Hessian); the φ
    profile is scalar arithmetic.

    Returns:
        :class:`CriterionValue`. Never raises for a finite input: a Hessian that is not positive
        definite, a non-finite term or a dispersion whose minimum lies at its search bound give
        ``value = +inf`` and a status that says which.
    """
    Z = _check_inputs(atoms, gate, params, hyper, Z)
    hyper = hyper.astype(Z.dtype)
    if dispersion is not None:
        dispersion = positive_float(dispersion, "dispersion")
    gauges = shift_gauges(atoms) if circular else ()
    pieces = {name: np.asarray(value, np.float64) for name, value in _pieces(
        atoms, gate, params, hyper, Z, tuple((k, j) for k, j, _, _ in gauges),
        tuple(jnp.asarray(D, Z.dtype) for *_, D in gauges)).items()}
    c = _counts(atoms, gate, params, hyper, Z.dtype)
    N, p = c.N, c.p
    nats = float(pieces["gate_penalty"]) if isinstance(gate, BetaBernoulliGate) else 0.0
    scaled = float(pieces["fit"] + pieces["ard"] + pieces["smooth"]) - _ard_constants(c)
    if not isinstance(gate, BetaBernoulliGate):
        scaled += float(pieces["gate_penalty"])
    log_det = float(np.sum(pieces["row_log_abs"]) + pieces["schur_log_abs"])
    rows_pd = pieces["row_min"] > 0
    _, periods = _periodic_columns(atoms)
    kappa_scale = np.zeros(0)  # κ = kappa_scale/φ per row and periodic axis, where the correction is on
    if circular and np.all(rows_pd) and np.all(pieces["periodic_curvature"] > 0):
        kappa_scale = (pieces["periodic_curvature"] * np.asarray(periods) ** 2 / (4 * math.pi**2)).ravel()
        gauge = pieces["gauge_curvature"]
        if gauge.size and np.all(np.isfinite(gauge)) and np.all(gauge > 0):
            periods = np.asarray([period for _, _, period, _ in gauges])
            kappa_scale = np.concatenate([kappa_scale, gauge * periods**2 / (4 * math.pi**2)])

    def circle(log_phi: float) -> float:
        return _circular_terms(kappa_scale * math.exp(-log_phi))[0] if kappa_scale.size else 0.0

    def varying(log_phi: float) -> float:  # the terms of V that depend on φ
        smooth, ard, gate_norm = _normalisers(c, log_phi)
        return (scaled * math.exp(-log_phi) + 0.5 * (N * p - c.dimension) * log_phi - smooth - ard - gate_norm
                + circle(log_phi))

    def slope(log_phi: float) -> float:
        extra = _circular_terms(kappa_scale * math.exp(-log_phi))[1] if kappa_scale.size else 0.0
        return _slope(c, scaled, log_phi) + extra

    def value_at(log_phi: float) -> float:
        return varying(log_phi) + nats + 0.5 * log_det + 0.5 * N * p * math.log(2 * math.pi)

    loss_terms = {"fit": pieces["fit"], "gate penalty": pieces["gate_penalty"], "ARD penalty": pieces["ard"],
                  "smoothness penalty": pieces["smooth"]}
    bad = [name for name, value in loss_terms.items() if not np.isfinite(value)]
    at_bound = False
    if bad or dispersion is not None:
        log_phi = 0.0 if dispersion is None else math.log(dispersion)
    else:
        mean_square = max(2.0 * float(pieces["fit"]) / (N * p), 1e-200)
        log_phi, at_bound = _profile(varying, slope, mean_square)
    schur_bad = int(np.sum(~(pieces["schur_eigenvalues"] > 0)))
    positive_definite = bool(np.all(rows_pd)) and schur_bad == 0
    if bad:
        status = "non-finite: " + ", ".join(bad)
    elif not np.all(rows_pd):
        which = np.flatnonzero(~rows_pd)
        shown = ", ".join(str(i) for i in which[:8]) + (", …" if which.size > 8 else "")
        status = (f"hessian not positive definite: {which.size} of {N} row blocks are not PD (rows {shown}); "
                  "a logit or coordinate is unidentified there (e.g. an inactive atom's)")
    elif schur_bad:
        status = (f"hessian not positive definite: the globals' Schur complement has {schur_bad} of "
                  f"{pieces['schur_eigenvalues'].shape[0]} eigenvalues that are not > 0 (a saddle, or a "
                  "global parameter the data do not identify)")
    elif at_bound:
        status = (f"dispersion not identified: V keeps falling towards the bound log φ = {log_phi:.4g} of its "
                  f"search (ℓ' = {scaled:.4g}, dim θ = {c.dimension}, N p = {N * p})")
    elif not math.isfinite(log_det):
        status = "non-finite: log|H|"
    else:
        status = "ok"
    smooth, ard, gate_norm = _normalisers(c, log_phi)
    value = value_at(log_phi) if status == "ok" else math.inf
    if not math.isfinite(value):
        value, status = math.inf, status if status != "ok" else "non-finite: the assembled value"
    return CriterionValue(value, math.exp(log_phi), scaled * math.exp(-log_phi) + nats, log_det, smooth, ard,
                          gate_norm, c.dimension, status, positive_definite, circle(log_phi))


def _circular_terms(kappas: np.ndarray) -> tuple[float, float]:
    """(Σ −log i0e(κ) − ½ log(2πκ), its derivative in log φ for κ ∝ 1/φ): von Mises against Gaussian."""
    ratio = i1e(kappas) / i0e(kappas)
    return (float(np.sum(-np.log(i0e(kappas)) - 0.5 * np.log(2 * math.pi * kappas))),
            float(np.sum(kappas * (ratio - 1.0) + 0.5)))


def circular_correction(curvatures: Float[Array, "..."], dispersion: float, period: float = 1.0) -> float:
    """Σ [−log i0e(κ) − ½ log(2πκ)] over periodic coordinates, κ = h·L²/(4π²φ).

    −log of the von Mises volume L·i0e(κ) minus −log of the Gaussian volume L/√(2πκ) that Laplace
    gives a periodic coordinate of curvature h (data units) on a period L: ≈ −1/(8κ) for large κ,
    → +∞ as κ → 0. ``curvatures`` (any shape) must be finite and > 0.
    """
    h = np.asarray(curvatures, np.float64)
    if h.size and not (np.all(np.isfinite(h)) and np.all(h > 0)):
        raise ValueError("curvatures must be finite and > 0")
    phi, period = positive_float(dispersion, "dispersion"), positive_float(period, "period")
    return _circular_terms(h.ravel() * period**2 / (4 * math.pi**2 * phi))[0]


def _slope(c: _Counts, scaled: float, log_phi: float) -> float:
    """∂V/∂log φ (module docstring; log|H| and the Beta–Bernoulli nats do not depend on φ)."""
    kappas = np.asarray(c.alpha_periodic, np.float64) * math.exp(-log_phi)
    von_mises = float(np.sum(kappas * i1e(kappas) / i0e(kappas))) if kappas.size else 0.0
    constant = 0.5 * (c.N * c.p - c.dimension + sum(count for _, count in c.smooth_rank) + c.N * len(c.log_alpha_flat))
    constant += 0.0 if c.gate_prior is None else c.gate_prior[0]
    if c.on_off is not None:
        u = c.on_off[1] * math.exp(-log_phi)
        constant += c.on_off[0] * u * float(np.exp(-np.logaddexp(0.0, u)))  # N K (λ/φ) σ(−λ/φ)
    return -scaled * math.exp(-log_phi) + constant - c.N * von_mises


def _profile(varying, slope, mean_square: float) -> tuple[float, bool]:
    """(argmin of V over log φ within ±LOG_DISPERSION_HALF_WIDTH of log mean_square, at a bound?).

    A grid of step ½ finds the basin; bounded Brent (``minimize_scalar``) refines it, and where
    ∂V/∂log φ changes sign around that point its root (``brentq``) pins φ̂ to machine precision
    (a minimiser that sees only values resolves the argmin to about √eps).
    """
    centre = math.log(mean_square)
    lo, hi = centre - LOG_DISPERSION_HALF_WIDTH, centre + LOG_DISPERSION_HALF_WIDTH
    grid = np.linspace(lo, hi, int(4 * LOG_DISPERSION_HALF_WIDTH) + 1)
    values = np.array([varying(s) for s in grid])
    best = int(np.argmin(np.where(np.isfinite(values), values, np.inf)))
    if best in (0, grid.size - 1):
        return float(grid[best]), True
    a, b = float(grid[best - 1]), float(grid[best + 1])
    result = minimize_scalar(varying, bounds=(a, b), method="bounded", options={"xatol": 1e-10})
    x = float(result.x) if result.fun <= values[best] else float(grid[best])
    step = 1e-4
    left, right = max(a, x - step), min(b, x + step)
    if slope(left) < 0 < slope(right):
        x = brentq(slope, left, right, xtol=1e-14, rtol=4 * np.finfo(float).eps)
    return x, False


# ------------------------------------------------------------------------------ collapsed chart
def collapsed_params(atoms, gate, params: SaeParams) -> SaeParams:
    """The collapsed chart: every decoder replaced by the constant decoder, coordinates unchanged.

    Atom k's decoder becomes ``u_k c_kᵀ`` with ``u_k`` the coefficients of the constant function
    (``null_space()[:, 0]``) and ``c_k`` (p,) the mean of ``Φ_k(t) B_k`` over the atom's grid: for
    a Fourier, spherical-harmonic or linear basis (first function the constant) that is
    ``B_k[1:] = 0`` with the constant row kept. Every row then decodes to ``b + Σ_k a_ik c_k``
    whatever its coordinates: the "constant decoder" that an old release converged to when its
    outer search drove log λ_smooth to its box edge. Offset, thresholds, logits and coordinates
    are unchanged. ``gate`` is accepted for symmetry with the other functions and not used.
    """
    if not isinstance(atoms, tuple) or not isinstance(params, SaeParams):
        raise TypeError(f"collapsed_params needs a tuple of atoms and SaeParams, got {type(atoms).__name__} "
                        f"and {type(params).__name__}")
    if len(atoms) != len(params.decoders):
        raise ValueError(f"params holds {len(params.decoders)} decoders for {len(atoms)} atoms")
    decoders = []
    for atom, B in zip(atoms, params.decoders):
        if tuple(B.shape[:1]) != (atom.num_basis,):
            raise ValueError(f"a decoder of shape {tuple(B.shape)} does not fit atom {atom.name} "
                             f"({atom.num_basis} basis functions)")
        constant = np.asarray(atom.null_space()[:, 0], np.float64)
        if np.array_equal(constant, np.eye(atom.num_basis)[0]):
            decoders.append(B.at[1:].set(0.0))
            continue
        grid = jnp.asarray(atom.grid(64 if atom.dim == 1 else 16), B.dtype)
        mean_point = jnp.mean(atom.evaluate(grid) @ B, axis=0)
        decoders.append(jnp.asarray(constant, B.dtype)[:, None] * mean_point[None, :])
    return params._replace(decoders=tuple(decoders))


__all__ = ["LOG_DISPERSION_HALF_WIDTH", "CriterionValue", "circular_correction", "collapsed_params",
           "covariance_blocks", "laplace_criterion", "shift_gauges"]
