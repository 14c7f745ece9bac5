"""Hyperparameter selection: Fellner–Schall updates on the Laplace criterion, with a line search.

At the inner optimum θ̂(ρ), the criterion V (:mod:`superpose.sae.criterion`) is stationary in a
log-strength ρ_j = log λ_j when (envelope theorem; third derivatives neglected, as in mgcv):

    ∂V/∂ρ_j = λ_j·(∂pen/∂λ)/φ + ½ tr(H⁻¹ ∂H/∂ρ_j) − (∂ normaliser/∂ρ_j) = 0.

For a quadratic penalty with normaliser ½·c·log(λ/φ) this reads λ (P/φ + τ) = c, P the penalty
over λ and τ the trace of H⁻¹ (data units) against the penalty matrix, and the extended
Fellner–Schall update of Wood & Fasiolo (2017) ``λ ← (c − λτ)/(P/φ)`` moves λ towards it:

- smoothness of atom k: c = p·rank S_k, P = tr(B_kᵀ S_k B_k), τ = tr((H⁻¹)_{B_k B_k} (S_k ⊗ I_p));
- ARD on a flat axis: c = N, P = Σ_i (t_i − centre)², τ = Σ_i (H⁻¹)_{t_i t_i};
- the TopK gate's logit precision: c = N K, P = Σ ℓ², τ = Σ_i tr((H⁻¹)_{ℓ_i ℓ_i});
- the threshold gate's λ_sparse (exponential prior, normaliser N K log(λ/φ)):
  ``λ ← N K / (Σ|a|/φ + λ Σ_i tr((H⁻¹)_{ℓ_i ℓ_i} ∇²_ℓ Σ_k |a_ik|))``;
- a periodic ARD axis is held at κ = α/φ = e^-6 (:data:`LOG_KAPPA_FLOOR` says why); the softmax
  gate's strength (no normaliser) and the Beta–Bernoulli gate's log α (not a strength) are held.

H⁻¹'s diagonal blocks come from the arrow structure (:func:`superpose.sae.criterion.covariance_blocks`),
the offset and thresholds profiled as in V, and conditioned on each chart's rotation (its shift
gauge): along a rotation only the weak ARD prior curves ℓ_pen, and its large variance, seen through
the straight line the Hessian takes, reads as decoder roughness (measured on 8 superposed circles:
with it the updates drove every log λ_smooth ~4 below V's minimum; given the gauges, ~1). The
updates neglect how θ̂ moves with ρ, so they propose a direction, not the answer: from the best
point the search steps towards the proposal (at most ``step_limit`` per log-strength), halves a
step that does not lower V, and stops when no halving helps or the gain is below a tolerance.
Each inner solve starts from the best point's parameters: a continuation in ρ, which keeps the
planted chart's basin (fresh starts at a rough ρ find charts that warp or wind twice, at a V as
low). The search is bounded by a number of
criterion evaluations and by wall time, and always returns the best point it evaluated, with a
status that says how it ended.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from superpose._validation import positive_float, positive_int
from superpose.sae.criterion import CriterionValue, covariance_blocks, laplace_criterion
from superpose.sae.gates import BinaryGate, Gate, ThresholdGate, TopKGate
from superpose.sae.hyperparameters import SaeHyperparameters
from superpose.sae.objective import SaeParams, coord_slices
from superpose.sae.solve import SolveReport, solve

#: log-strengths are kept inside this box (a step that would leave it stops at the edge).
LOG_STRENGTH_BOX = (-30.0, 30.0)
#: a periodic axis's von Mises concentration κ = α/φ is held at e^-6 (0.0025: a density that varies
#: by 0.5% round the circle), not selected. A concentrated prior competes with the chart's freedom to
#: reparametrise itself (t ↦ g(t), the decoder following): selected, κ grew with the coordinates'
#: clumping and the clumping with κ (measured on single_circle(60, 4): κ ≈ 0.9, a warped chart,
#: circular R² 0.48). Uniform leaves the parametrisation to the roughness penalty (constant speed);
#: e^-6 rather than 0 keeps the chart's shift gauge resolved in H.
LOG_KAPPA_FLOOR = -6.0
#: steps of the compass search that takes over where a Fellner–Schall step does not lower V
COMPASS_SIZES = (0.5, 0.25, 0.1)


class SelectionBudget(NamedTuple):
    """How long the outer search may run."""

    evaluations: int = 100  # criterion evaluations (each after an inner solve)
    seconds: float = 60.0  # wall time
    # each evaluation's inner solve stops at this relative change of ℓ_pen: 1e-7 of a loss of
    # ~10³ nats is 10⁻⁴ nats, far below the search's 0.01-nat steps, and at N = 4 000 rows a solve
    # to 1e-9 ran out of its 100 iterations (~200 s per evaluation on 2 cores, sae-superposed)
    inner_tol: float = 1e-9


class SelectionStep(NamedTuple):
    """One outer evaluation."""

    flat: np.ndarray  # the hyperparameters, in SaeHyperparameters.to_flat()'s layout
    criterion: float  # V (inf where the Laplace approximation does not apply)
    dispersion: float  # the profiled φ̂
    status: str  # the criterion's status
    inner_iterations: int
    seconds: float  # since the search began


class SelectionResult(NamedTuple):
    """The best point of the outer search and how the search ended."""

    hyperparameters: SaeHyperparameters
    params: SaeParams
    criterion: CriterionValue
    inner_report: SolveReport
    trace: list[SelectionStep]
    converged: bool
    status: str
    seconds: float


def selectable_strengths(atoms, gate: Gate, hyper: SaeHyperparameters) -> np.ndarray:
    """(F,) bool over ``hyper.to_flat()``: which log-strengths the search moves.

    The sparse coordinate for the TopK and threshold gates; λ_smooth of every atom whose S has
    rank > 0; every flat ARD axis (a shared axis if any owner's is flat). Periodic ARD axes are
    held (:data:`LOG_KAPPA_FLOOR`), as are the softmax and Beta–Bernoulli gates' coordinates.
    """
    mask = [isinstance(gate, (TopKGate, ThresholdGate, BinaryGate))]
    mask += [atom.roughness_rank() > 0 for atom in atoms]
    if hyper.ard_layout == "per_atom":
        mask += [not atom.periodic[j] for atom in atoms for j in range(atom.dim)]
    else:
        mask += [any(not atom.periodic[j] for atom in atoms if atom.dim > j) for j in range(hyper.max_ard_axes)]
    return np.asarray(mask, bool)


def compass_directions(atoms, gate: Gate, hyper: SaeHyperparameters) -> list[np.ndarray]:
    """The compass search's moves (each a (F,) vector over ``hyper.to_flat()``), in the order tried.

    First every group of like log-strengths moved together (all selectable λ_smooth; all
    selectable flat ARD axes), where a group has two or more members: on atoms alike the optimum
    moves them alike, and one evaluation finds what K single moves would (measured on 8
    superposed circles: the compass's single moves gained ~1 nat per atom per two evaluations).
    Then each selectable log-strength on its own (:func:`selectable_strengths`).
    """
    mask = selectable_strengths(atoms, gate, hyper)
    K = len(atoms)
    kinds = np.zeros(mask.size, int)  # 0: the sparse coordinate, 1: λ_smooth, 2: ARD
    kinds[1:1 + K], kinds[1 + K:] = 1, 2
    groups = []
    for kind in (1, 2):
        members = mask & (kinds == kind)
        if members.sum() >= 2:
            groups.append(members.astype(np.float64))
    return groups + [np.eye(mask.size)[j] for j in np.flatnonzero(mask)]


def _gate_strength_update(gate: Gate, params: SaeParams, hyper: SaeHyperparameters, rows: np.ndarray,
                          phi: float, N: int, K: int) -> float:
    """The sparse coordinate's update: threshold gate (exponential prior) or TopK (Gaussian logit prior)."""
    log_sparse = float(hyper.log_lambda_sparse)
    lam = math.exp(log_sparse)
    if isinstance(gate, TopKGate):  # ½ λ Σ ℓ², normaliser ½ N K log(λ/φ)
        total = float(jnp.sum(params.logits**2))
        tau = float(np.sum(np.diagonal(rows[:, :K, :K], axis1=1, axis2=2)))
        return _efs(N * K, lam, tau, total / phi, log_sparse)
    if isinstance(gate, ThresholdGate):  # λ Σ|a|, exponential prior: normaliser N K log(λ/φ)
        def unit_penalty(row_logits):
            return gate.penalty(row_logits, params.thresholds, jnp.zeros((), row_logits.dtype))

        total = float(jnp.sum(jax.vmap(unit_penalty)(params.logits)))
        curvature = np.asarray(jax.vmap(jax.hessian(unit_penalty))(params.logits))
        tau = float(np.einsum("nab,nba->", rows[:, :K, :K], curvature))
        denominator = total / phi + lam * tau
        return float(np.log(N * K) - np.log(denominator)) if denominator > 0 else log_sparse
    if isinstance(gate, BinaryGate):  # V's own minimum over λ: σ(−λ/φ) = the fraction of atoms on
        on = float(np.clip(np.mean(np.asarray(gate.activities(params.logits, params.thresholds))),
                           0.5 / (N * K), 1 - 0.5 / (N * K)))
        return math.log(phi) + math.log(math.log((1 - on) / on)) if on < 0.5 else log_sparse
    return log_sparse  # softmax (no normaliser) and Beta–Bernoulli (log α is not a strength)


def _efs(count: float, lam: float, tau: float, curvature: float, current: float) -> float:
    """log λ at the extended Fellner–Schall step for a quadratic penalty with normaliser ½·count·log λ.

    Stationarity of V in log λ reads λ (curvature + τ) = count (curvature: penalty/λ over φ, τ: the
    trace of the posterior covariance against the penalty matrix in data units). The update
    λ ← (count − λτ)/curvature (Wood & Fasiolo 2017) where that is positive, else the plain fixed
    point count/(curvature + τ).
    """
    if not (math.isfinite(tau) and math.isfinite(curvature)) or curvature + tau <= 0:
        return current
    numerator = count - lam * tau
    if numerator > 0 and curvature > 0:
        return math.log(numerator) - math.log(curvature)
    return math.log(count) - math.log(curvature + tau)


def fellner_schall_update(atoms, gate: Gate, params: SaeParams, hyper: SaeHyperparameters, Z,
                          dispersion: float) -> SaeHyperparameters:
    """One Fellner–Schall update of every selectable strength at a solved point (module docstring).

    Args:
        atoms, gate, params, hyper, Z: as for :func:`superpose.sae.criterion.laplace_criterion`;
            ``params`` solved at ``hyper``.
        dispersion: φ̂ at that point (the criterion's).

    Returns the proposed hyperparameters (not clipped: the search clips the step).
    """
    phi = positive_float(dispersion, "dispersion")
    covariance = covariance_blocks(atoms, gate, params, hyper, Z, given_gauges=True)
    G = np.asarray(covariance.globals_, np.float64)
    rows = np.asarray(covariance.rows, np.float64)
    N, p = Z.shape
    K = len(atoms)
    log_smooth = np.asarray(hyper.log_lambda_smooth, np.float64).copy()
    start = p  # the offset comes first in the global vector, then each decoder (M_k × p, row-major)
    for k, atom in enumerate(atoms):
        size = atom.num_basis * p
        rank = atom.roughness_rank()
        if rank > 0:
            S = atom.roughness()
            block = G[start:start + size, start:start + size].reshape(atom.num_basis, p, atom.num_basis, p)
            tau = float(np.einsum("aobo,ab->", block, S))
            B = np.asarray(params.decoders[k], np.float64)
            log_smooth[k] = _efs(p * rank, math.exp(log_smooth[k]), tau, float(np.sum(B * (S @ B))) / phi,
                                 log_smooth[k])
        start += size
    coords = np.asarray(params.coords, np.float64)
    log_ard = [np.asarray(block, np.float64).copy() for block in hyper.log_ard]
    for k, (atom, columns) in enumerate(zip(atoms, coord_slices(atoms))):
        for j in range(atom.dim):
            column = columns.start + j
            variance = rows[:, K + column, K + column]  # (H⁻¹)_tt per row, data units
            lo, hi = atom.domain[j]
            t = coords[:, column]
            if atom.periodic[j]:  # held uniform: see LOG_KAPPA_FLOOR
                log_ard[k][j] = LOG_KAPPA_FLOOR + math.log(phi)
            else:
                centre = 0.5 * (lo + hi) if np.isfinite(lo) and np.isfinite(hi) else 0.0
                log_ard[k][j] = _efs(N, math.exp(log_ard[k][j]), float(np.sum(variance)),
                                     float(np.sum((t - centre) ** 2)) / phi, log_ard[k][j])
    log_sparse = _gate_strength_update(gate, params, hyper, rows, phi, N, K)
    if hyper.ard_layout == "shared":  # one value per axis index: the mean over the atoms that own it
        shared: dict[int, list[float]] = {}
        for block in log_ard:
            for j, value in enumerate(block):
                shared.setdefault(j, []).append(float(value))
        log_ard = [np.array([np.mean(shared[j]) for j in range(len(block))]) for block in log_ard]
    return SaeHyperparameters(jnp.asarray(log_sparse), jnp.asarray(log_smooth),
                              tuple(jnp.asarray(a) for a in log_ard), hyper.ard_layout, hyper.atom_dims)


def select_hyperparameters(
    atoms, gate: Gate, params: SaeParams, hyper: SaeHyperparameters, Z, *,
    budget: SelectionBudget = SelectionBudget(), tol: float = 0.01, step_limit: float = 1.0,
    halvings: int = 4, inner_iterations: int = 100, progress: Callable[[int, int, float], Any] | None = None,
) -> SelectionResult:
    """Outer search from ``(params, hyper)``; returns the best point evaluated, with a status.

    Each evaluation solves the inner problem warm from the best point's parameters and scores it
    with ``laplace_criterion(..., circular=True)``. From the best point a Fellner–Schall update
    proposes the next ρ (each log-strength moving at most ``step_limit``, inside
    :data:`LOG_STRENGTH_BOX`); a proposal that does not lower V (or whose V is not finite) is
    halved back towards the best point, at most ``halvings`` times.

    Once no halving lowers V, a compass search takes over: each move of :func:`compass_directions`
    (like strengths together first, then each selectable log-strength alone) goes ±size in turn and
    the first that lowers V by more than ``tol`` nats is kept, then pushed on, doubling, while V
    falls (towards the box's edge where V is monotone: the TopK gate's logit precision on data
    whose amplitudes do not vary). A round without a success fits a parabola through V(ρ ± size)
    along each single log-strength: if together they predict no more than ``tol`` nats, V is at
    its minimum; else their joint minimum is tried, and if it fails too the next, smaller size of
    :data:`COMPASS_SIZES` is used.
    Ends "converged" when an accepted Fellner–Schall step lowered V by less than ``tol`` nats and
    the next moves no log-strength by more than 0.05, when the parabolas predict no more than
    ``tol``, or when the compass's last size finds no lower V ("converged: no step lowers V": a
    minimum along every selectable log-strength to within that size); "budget reached" after
    ``budget.evaluations`` or ``budget.seconds``;
    "stopped" when V is not finite at the start (its status says where).
    ``progress(evaluation, budget.evaluations, V)`` is called after each evaluation.
    """
    evaluations = positive_int(budget.evaluations, "budget.evaluations")
    seconds = positive_float(budget.seconds, "budget.seconds")
    tol = positive_float(tol, "tol")
    inner_tol = positive_float(budget.inner_tol, "budget.inner_tol")
    start = time.perf_counter()
    trace: list[SelectionStep] = []
    box = np.asarray(LOG_STRENGTH_BOX)

    def evaluate(flat: np.ndarray, warm: SaeParams):
        point = hyper.from_flat(jnp.asarray(flat))
        solved, report = solve(atoms, gate, warm, point, Z, max_iterations=inner_iterations, tol=inner_tol)
        value = laplace_criterion(atoms, gate, solved, point, Z, circular=True)
        trace.append(SelectionStep(flat.copy(), value.value, value.dispersion, value.status, report.iterations,
                                   time.perf_counter() - start))
        if progress is not None:
            progress(len(trace), evaluations, value.value)
        return value, point, solved, report

    flat = np.asarray(hyper.to_flat(), np.float64)
    value, point, solved, report = evaluate(flat, params)
    best = (value, point, solved, report, flat)
    if not math.isfinite(value.value):
        return SelectionResult(point, solved, value, report, trace, False,
                               f"stopped: the criterion is not finite at the start ({value.status})",
                               time.perf_counter() - start)
    status, converged, gain = f"budget reached: {evaluations} evaluations", False, math.inf

    def out_of_budget() -> str | None:
        if len(trace) >= evaluations:
            return f"budget reached: {evaluations} evaluations"
        if time.perf_counter() - start > seconds:
            return f"budget reached: {seconds:g} s after {len(trace)} evaluations"
        return None

    def try_point(candidate_flat: np.ndarray, margin: float = 0.0) -> tuple[bool, float | None]:
        """Evaluates a point: (moved, V there). A lower V becomes the best point, but it counts as a
        move only below best − margin. V is None where the point, clipped to the box, is the best point."""
        nonlocal best, gain
        if np.array_equal(np.clip(candidate_flat, *box), best[4]):  # a step off the box's edge, clipped back
            return False, None
        candidate = evaluate(np.clip(candidate_flat, *box), best[2])
        if math.isfinite(candidate[0].value) and candidate[0].value < best[0].value:
            gain = best[0].value - candidate[0].value
            best = (*candidate, np.clip(candidate_flat, *box))
            return gain > margin, candidate[0].value
        return False, candidate[0].value

    directions = compass_directions(atoms, gate, hyper)
    fellner_schall, size_index = True, 0
    while (ended := out_of_budget()) is None:
        value, point, solved, report, flat = best
        moved = False
        if fellner_schall:  # a line search along the Fellner–Schall step, until it first fails
            proposal = np.asarray(fellner_schall_update(atoms, gate, solved, point, Z, value.dispersion).to_flat())
            step = np.clip(np.clip(proposal, *box) - flat, -step_limit, step_limit)
            if gain < tol and np.max(np.abs(step)) <= 0.05:
                status, converged = (f"converged: the last step lowered V by {gain:.2g} < {tol:g} nats and the "
                                     "next moves no log-strength by more than 0.05"), True
                break
            for _ in range(halvings + 1):
                if np.max(np.abs(step)) > 1e-3 and try_point(flat + step)[0]:
                    moved = True
                    break
                step = 0.5 * step
                if out_of_budget() is not None:
                    break
            fellner_schall = moved
            continue
        # then a compass search (compass_directions): each move ±size; a success keeps going that
        # way, doubling, while V falls. A round without one fits a parabola along each single
        # log-strength: where they predict less than tol in all, V is at its minimum; else the
        # parabolas' joint minimum is tried, and if that fails too the size is halved.
        size, centre = COMPASS_SIZES[size_index], value.value
        model, predicted, certain = np.zeros(flat.size), 0.0, True
        for unit in directions:
            sides = []
            for sign in (1.0, -1.0):
                if moved or out_of_budget() is not None:
                    break
                direction = sign * size * unit
                moved, reached = try_point(flat + direction, tol)  # a compass step must gain at least tol nats
                sides.append(reached)
                while moved and out_of_budget() is None and not np.any(np.isin(best[4][unit != 0], box)):
                    direction = 2.0 * direction
                    if not try_point(best[4] + direction)[0]:
                        break
            if moved or out_of_budget() is not None:
                break
            if np.count_nonzero(unit) == 1 and None not in sides:  # (an edge of the box: no move that way)
                step, expected = _parabola_step(centre, sides[0], sides[1], size)
                if step is None:
                    certain = False
                else:
                    model, predicted = model + step * unit, predicted + expected
        if moved or out_of_budget() is not None:
            continue
        if certain and predicted <= tol:
            status, converged = (f"converged: no move of ±{size:g} lowers V by more than {tol:g} nats, and "
                                 "the parabolas along the selectable log-strengths predict "
                                 f"{predicted:.2g} nats in all"), True
            break
        if np.any(model):
            moved = try_point(flat + model, tol)[0]
        if not moved:
            size_index += 1
            if size_index == len(COMPASS_SIZES):
                status, converged = ("converged: no step lowers V (the Fellner–Schall step halved "
                                     f"{halvings} times, then no selectable log-strength moved by "
                                     f"±{COMPASS_SIZES[-1]:g} lowered it by more than {tol:g} nats)"), True
                break
    else:
        status = ended
    value, point, solved, report, _ = best
    return SelectionResult(point, solved, value, report, trace, converged, status, time.perf_counter() - start)


def _parabola_step(centre: float, up: float, down: float, size: float) -> tuple[float | None, float]:
    """The minimum of the parabola through V(−size) = down, V(0) = centre, V(+size) = up, within
    ±size: (offset, predicted gain), or (None, 0) where a value is not finite or V is not convex."""
    if not all(math.isfinite(v) for v in (centre, up, down)):
        return None, 0.0
    slope, curvature = (up - down) / (2 * size), (up + down - 2 * centre) / size**2
    if curvature <= 0:
        return None, 0.0
    offset = float(np.clip(-slope / curvature, -size, size))
    return offset, -(slope * offset + 0.5 * curvature * offset**2)


def merge_selections(first: SelectionResult, second: SelectionResult) -> SelectionResult:
    """One result from a search and its resumption: the better point by V, both traces, and a status that
    gives the resumed search's ending with the evaluations of both (``"budget reached: 1 evaluations"`` alone
    would read as if the whole search had one)."""
    offset = first.seconds
    trace = list(first.trace) + [step._replace(seconds=step.seconds + offset) for step in second.trace]
    best = second if second.criterion.value <= first.criterion.value else first
    status = (f"{second.status} in the resumed search ({len(first.trace)} evaluations, then a fresh start scored a "
              f"lower V at the selected point and the search went on for {len(second.trace)} more, "
              f"{len(trace)} in all)")
    return best._replace(trace=trace, converged=second.converged, status=status,
                         seconds=first.seconds + second.seconds)


__all__ = ["LOG_STRENGTH_BOX", "SelectionBudget", "SelectionResult", "SelectionStep", "fellner_schall_update",
           "select_hyperparameters", "LOG_KAPPA_FLOOR", "COMPASS_SIZES", "compass_directions", "merge_selections",
           "selectable_strengths"]
