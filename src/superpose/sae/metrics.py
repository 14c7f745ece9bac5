"""Recovery metrics for (manifold) sparse autoencoders, scored against planted or reference truth.

All functions take NumPy or JAX arrays, compute in float64 NumPy on the host, validate their
inputs (shapes, NaN/inf, ranges) and return Python floats or NumPy arrays.

- Reconstruction: :func:`explained_variance` (column-centred R²), :func:`fraction_variance_unexplained`.
- Charts on circles: :func:`circular_r2` (rotation- and reflection-free agreement of a fitted
  coordinate with a planted angle), :func:`circular_variance` (does the chart use the circle, or
  has it collapsed to a point, which explained variance alone cannot see).
- Subspaces: :func:`curve_span` (principal directions of a decoded curve), :func:`plane_overlap`
  (smallest principal cosine between two subspaces).
- Atoms and features: :func:`match_atoms` (Hungarian matching of fitted to planted atoms),
  :func:`active_mass_recovery` (gate activity vs planted support), :func:`mmcs` (mean max
  cosine similarity of feature directions).

Direction matrices hold one direction per **column**, shape (p, r): p ambient dimensions, r
directions (as the toy models' W, shape (m hidden, n features)).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment

from superpose._validation import check_finite, positive_int


def _array(name: str, value: Any, ndim: int | None = None) -> np.ndarray:
    """A finite float64 NumPy array, optionally of a given rank."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be array-like of numbers, got {type(value).__name__}") from error
    numeric = np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
    if array.dtype == np.bool_ or not numeric:
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    array = array.astype(np.float64)
    if ndim is not None and array.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array, got shape {array.shape}")
    check_finite(name, array)
    return array


def _rows_mask(mask: Any, n: int) -> np.ndarray:
    if mask is None:
        return np.ones(n, dtype=bool)
    mask = np.asarray(mask)
    if mask.dtype != np.bool_ or mask.shape != (n,):
        raise ValueError(f"mask must be a boolean array of shape ({n},), got dtype {mask.dtype} and shape {mask.shape}")
    if not mask.any():
        raise ValueError("mask selects no rows; at least one is needed")
    return mask


# ------------------------------------------------------------------------------ reconstruction
def explained_variance(Z: Any, Z_hat: Any) -> float:
    """Reconstruction R² = 1 − ‖Z − Ẑ‖²_F / ‖Z − colmean(Z)‖²_F.

    Args:
        Z: (N, p) data, N >= 2, not constant in every column.
        Z_hat: (N, p) reconstruction.

    Returns:
        A float <= 1 (1: perfect; 0: as good as predicting each column's mean; may be negative).
    """
    Z = _array("Z", Z, ndim=2)
    Z_hat = _array("Z_hat", Z_hat, ndim=2)
    if Z.shape != Z_hat.shape:
        raise ValueError(f"Z and Z_hat must have the same shape, got {Z.shape} and {Z_hat.shape}")
    if Z.shape[0] < 2:
        raise ValueError(f"explained_variance needs at least 2 rows, got {Z.shape[0]}")
    total = float(np.sum((Z - Z.mean(axis=0)) ** 2))
    if total == 0.0:
        raise ValueError("Z is constant in every column, so it has no variance to explain")
    return 1.0 - float(np.sum((Z - Z_hat) ** 2)) / total


def fraction_variance_unexplained(Z: Any, Z_hat: Any) -> float:
    """FVU = ‖Z − Ẑ‖²_F / ‖Z − colmean(Z)‖²_F = 1 − :func:`explained_variance`."""
    return 1.0 - explained_variance(Z, Z_hat)


# ------------------------------------------------------------------------------------ circles
def circular_r2(theta: Any, t: Any, mask: Any = None) -> float:
    """Agreement of a fitted circle coordinate with a planted angle, free of rotation and reflection.

    R²_circ = max_{s ∈ {±1}} |mean_i exp(i(θ_i − s·2π t_i))|², over the rows in ``mask``.

    Args:
        theta: (N,) planted angles, radians.
        t: (N,) fitted coordinates, in periods (t and t + 1 are the same point).
        mask: optional (N,) bool, the rows to use (e.g. those where the atom is active).

    Returns:
        A float in [0, 1]: 1 when t = ±θ/2π + const (mod 1); about 1/n for unrelated coordinates
        over n rows.
    """
    theta = _array("theta", theta, ndim=1)
    t = _array("t", t, ndim=1)
    if theta.shape != t.shape:
        raise ValueError(f"theta and t must have the same shape (N,), got {theta.shape} and {t.shape}")
    if theta.shape[0] == 0:
        raise ValueError("circular_r2 needs at least one row")
    rows = _rows_mask(mask, theta.shape[0])
    theta, phase = theta[rows], 2.0 * np.pi * t[rows]
    same = abs(np.mean(np.exp(1j * (theta - phase)))) ** 2
    reflected = abs(np.mean(np.exp(1j * (theta + phase)))) ** 2
    return float(np.clip(max(same, reflected), 0.0, 1.0))


def circular_variance(t: Any, mask: Any = None) -> float:
    """1 − |mean_i exp(2πi t_i)|: 0 when every coordinate is the same point, → 1 when spread.

    Args:
        t: (N,) coordinates in periods.
        mask: optional (N,) bool, the rows to use.
    """
    t = _array("t", t, ndim=1)
    if t.shape[0] == 0:
        raise ValueError("circular_variance needs at least one coordinate")
    rows = _rows_mask(mask, t.shape[0])
    return float(np.clip(1.0 - abs(np.mean(np.exp(2j * np.pi * t[rows]))), 0.0, 1.0))


# ---------------------------------------------------------------------------------- subspaces
def _orthonormal_columns(name: str, U: np.ndarray) -> np.ndarray:
    left, singular, _ = np.linalg.svd(U, full_matrices=False)
    if singular[-1] <= 1e-10 * max(singular[0], np.finfo(float).tiny):
        raise ValueError(
            f"{name}'s {U.shape[1]} columns are linearly dependent (singular values {singular}); "
            "they must span a subspace of that dimension"
        )
    return left


def plane_overlap(U_fit: Any, U_true: Any) -> float:
    """σ_min(Q_fitᵀ Q_true), the cosine of the largest principal angle between two subspaces.

    Both column sets are orthonormalised first, so any basis of a subspace gives the same value.

    Args:
        U_fit: (p, r_fit) spanning the fitted subspace (e.g. :func:`curve_span` of an atom).
        U_true: (p, r_true) spanning the planted one (e.g. a planted plane, (p, 2)).

    Returns:
        A float in [0, 1]: 1 when the subspaces coincide, 0 when some direction of one is
        orthogonal to all of the other. With r_fit != r_true it measures how well the smaller
        subspace lies inside the larger.
    """
    U_fit = _array("U_fit", U_fit, ndim=2)
    U_true = _array("U_true", U_true, ndim=2)
    if U_fit.shape[0] != U_true.shape[0]:
        raise ValueError(f"U_fit and U_true must have the same number of rows p, got {U_fit.shape} and {U_true.shape}")
    for name, U in (("U_fit", U_fit), ("U_true", U_true)):
        if not 1 <= U.shape[1] <= U.shape[0]:
            raise ValueError(f"{name} must have between 1 and p columns, got shape {U.shape}")
    overlap = _orthonormal_columns("U_fit", U_fit).T @ _orthonormal_columns("U_true", U_true)
    cosines = np.linalg.svd(overlap, compute_uv=False)
    return float(np.clip(cosines.min(), 0.0, 1.0))


def curve_span(curve_points: Any, rank: int = 2) -> np.ndarray:
    """Top-``rank`` principal directions of a sampled curve (rows centred), shape (p, rank).

    Args:
        curve_points: (G, p) points of a decoded atom curve, G > rank (e.g. Φ(grid) B).
        rank: the number of directions, 1 <= rank <= min(G − 1, p).

    Raises ValueError when the centred curve spans fewer than ``rank`` dimensions (a chart that
    collapsed to a point or a segment has no such subspace).
    """
    points = _array("curve_points", curve_points, ndim=2)
    rank = positive_int(rank, "rank")
    G, p = points.shape
    if rank > min(G - 1, p):
        raise ValueError(f"rank must be <= min(G - 1, p) = {min(G - 1, p)} for curve_points of shape {points.shape}")
    _, singular, right = np.linalg.svd(points - points.mean(axis=0), full_matrices=False)
    if singular[rank - 1] <= 1e-10 * max(singular[0], np.finfo(float).tiny):
        raise ValueError(
            f"the curve spans fewer than {rank} dimensions (singular values {singular[: rank + 1]}); "
            "it has collapsed, so it has no plane to compare"
        )
    return right[:rank].T


# ---------------------------------------------------------------------------- atoms, features
class AtomMatching(NamedTuple):
    """Fitted atom ``fitted[m]`` is matched to planted atom ``planted[m]`` with score ``scores[m]``.

    Pairs are sorted by planted index; there are min(K_fit, K_true) of them.
    """

    fitted: np.ndarray
    planted: np.ndarray
    scores: np.ndarray

    @property
    def total(self) -> float:
        """The sum of the matched scores (the maximum over one-to-one matchings)."""
        return float(self.scores.sum())


def match_atoms(score_matrix: Any) -> AtomMatching:
    """One-to-one matching of fitted to planted atoms maximising the summed score (Hungarian).

    Args:
        score_matrix: (K_fit, K_true), higher is better (e.g. plane overlaps or circular R²).
    """
    scores = _array("score_matrix", score_matrix, ndim=2)
    if 0 in scores.shape:
        raise ValueError(f"score_matrix must have at least one row and one column, got shape {scores.shape}")
    rows, cols = linear_sum_assignment(scores, maximize=True)
    order = np.argsort(cols)
    rows, cols = rows[order], cols[order]
    return AtomMatching(fitted=rows, planted=cols, scores=scores[rows, cols])


def active_mass_recovery(gates_fit: Any, support_true: Any, threshold: float = 0.5) -> np.ndarray:
    """Per-atom F1 score of the fitted gate activity against the planted support.

    Atom k's row i counts as active when gates_fit[i, k] > threshold. With TP, FP, FN the counts
    of (active, supported), (active, unsupported), (inactive, supported) rows,
    F1_k = 2·TP / (2·TP + FP + FN): 1 when activity and support agree exactly, 0 when no supported
    row is found; an atom that is never supported and never active scores 1. Columns must be
    aligned (reorder the fitted ones with :func:`match_atoms` first: ``gates[:, m.fitted]`` vs
    ``support[:, m.planted]``).

    Args:
        gates_fit: (N, K) fitted gate values (e.g. the a_ik of a manifold SAE).
        support_true: (N, K) bool planted support.
        threshold: a finite gate level above which an atom counts as active.

    Returns:
        (K,) F1 scores in [0, 1].
    """
    gates = _array("gates_fit", gates_fit, ndim=2)
    support = np.asarray(support_true)
    if support.dtype != np.bool_:
        raise TypeError(f"support_true must be a boolean array, got dtype {support.dtype}")
    if support.shape != gates.shape:
        raise ValueError(f"support_true must have the shape of gates_fit {gates.shape}, got {support.shape}")
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold!r}")
    active = gates > float(threshold)
    tp = np.sum(active & support, axis=0)
    errors = np.sum(active != support, axis=0)
    denominator = 2 * tp + errors
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 1.0)


def mmcs(directions_fit: Any, directions_true: Any) -> float:
    """Mean max cosine similarity: mean over true features of max over fitted directions of |cos|.

    Args:
        directions_fit: (p, L) fitted directions, one per column (e.g. an SAE's decoder columns).
        directions_true: (p, F) true feature directions, one per column (e.g. a toy model's W).
            Every column of both must be nonzero.

    Returns:
        A float in [0, 1]: 1 when every true direction has a parallel (or antiparallel) fitted one.
    """
    fit = _array("directions_fit", directions_fit, ndim=2)
    true = _array("directions_true", directions_true, ndim=2)
    if fit.shape[0] != true.shape[0]:
        raise ValueError(
            f"directions_fit and directions_true must have the same number of rows p (directions are "
            f"columns), got {fit.shape} and {true.shape}"
        )
    if 0 in fit.shape or 0 in true.shape:
        raise ValueError(f"need at least one direction of length >= 1, got {fit.shape} and {true.shape}")
    norms_fit, norms_true = np.linalg.norm(fit, axis=0), np.linalg.norm(true, axis=0)
    for name, norms in (("directions_fit", norms_fit), ("directions_true", norms_true)):
        if np.any(norms == 0):
            zero = np.flatnonzero(norms == 0).tolist()
            raise ValueError(f"{name} has zero columns {zero}; directions must be nonzero")
    cosines = np.abs((fit / norms_fit).T @ (true / norms_true))  # (L, F)
    return float(np.clip(cosines.max(axis=0).mean(), 0.0, 1.0))


def circle_recovery(model, encoding, truth) -> dict[str, list]:
    """Per planted circle, after Hungarian matching of atoms to circles on plane overlap.

    Args:
        model: a fitted :class:`~superpose.sae.model.ManifoldSAE` whose first chart axis of each
            matched atom is a circle's; encoding: its :class:`~superpose.sae.model.Encoding` of
            the rows; truth: the :class:`~superpose.sae.planted.PlantedCircles` of those rows.

    Returns:
        lists indexed by planted circle: ``atom_of_circle``, ``plane_overlap`` (of the atom's
        curve span with the planted plane), ``circular_r2`` (of its coordinate against the planted
        angle, over the rows that use the circle) and ``activity_f1`` (activity ≥ half the largest).
        A collapsed atom (its curve spans no plane) has overlap 0 with every circle.
    """
    planes, angles, support = (np.asarray(truth.planes), np.asarray(truth.angles), np.asarray(truth.support))
    spans = []
    for k in range(model.num_atoms):
        try:
            spans.append(curve_span(model.atom_curve(k, 256)))
        except ValueError:  # a collapsed atom spans no plane
            spans.append(None)
    overlap = np.array([[plane_overlap(s, planes[c]) if s is not None else 0.0 for c in range(len(planes))]
                        for s in spans])
    matching = match_atoms(overlap)
    atoms = np.asarray(matching.fitted)
    circular = [circular_r2(angles[:, c], encoding.coords[:, model.coord_columns(int(k))][:, 0], mask=support[:, c])
                for k, c in zip(atoms, matching.planted)]
    activity = encoding.activities[:, atoms] / max(float(encoding.activities.max()), 1e-12)
    f1 = active_mass_recovery(activity, support[:, np.asarray(matching.planted)], threshold=0.5)
    return {"atom_of_circle": atoms.tolist(), "plane_overlap": [float(overlap[k, c]) for k, c in
                                                                zip(atoms, matching.planted)],
            "circular_r2": [float(v) for v in circular], "activity_f1": [float(v) for v in f1]}
