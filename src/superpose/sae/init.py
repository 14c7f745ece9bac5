"""Keyed starting points for the inner solve: rows grouped by the subspace they lie in, PCA charts.

Rows are assigned to atoms by K-subspaces clustering: starting from scikit-learn's k-means
labels and from random labels (all seeded from the key), each group's affine principal
subspace (as many components as the atom's chart needs) is fitted and every row moves to the
group whose subspace leaves the smallest residual; the assignment with the smallest total
residual wins. k-means alone splits a circle into arcs, while its points share one plane.
Where rows are sums of several manifolds (superposition), the rows that use two atoms fit no
single subspace and drag every group's fit: a second candidate is found by a sequential
subspace search (:func:`sequential_subspaces`: local PCA of random rows' neighbourhoods, grown
to every row within a noise threshold, the largest taken first, its rows removed) refined by
trimmed K-subspaces (each group's subspace fitted to its better-fitting half), and the two
starts the two labellings give are compared by their total residual (rows that start on two atoms
counted with their pair's residual, below). Atom
k starts switched on for its group and off elsewhere, and each row's coordinate on atom k is
read off the principal components of that group: a periodic axis takes the angle of the next two
component scores, a bounded axis the next score mapped through the cluster's 2%–98% quantiles
onto the domain, an unbounded axis the next score standardised. The decoders follow from the
first exact least-squares step of the solve. :func:`dense_params` is the other kind of start:
every atom on every row, charts from successive principal components of the whole data.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.cluster import KMeans

from superpose.sae.gates import Gate
from superpose.sae.objective import SaeParams


def _chart_coordinates(atom, scores: np.ndarray, member: np.ndarray) -> np.ndarray:
    """Coordinates (N, d) on ``atom`` from PCA scores (N, r) of its cluster's components."""
    out, column = [], 0
    for j in range(atom.dim):
        lo, hi = atom.domain[j]
        if atom.periodic[j]:
            angle = np.arctan2(scores[:, column + 1], scores[:, column])
            out.append(lo + (hi - lo) * np.mod(angle / (2 * np.pi), 1.0))
            column += 2
        elif np.isfinite(lo) and np.isfinite(hi):
            s = scores[:, column]
            q_lo, q_hi = np.quantile(s[member], [0.02, 0.98]) if member.sum() > 1 else (s.min(), s.max())
            scale = q_hi - q_lo if q_hi > q_lo else 1.0
            out.append(np.clip(lo + (hi - lo) * (s - q_lo) / scale, lo, hi))
            column += 1
        else:
            s = scores[:, column]
            std = s[member].std() if member.sum() > 1 else 1.0
            out.append(s / (std if std > 0 else 1.0))
            column += 1
    return np.stack(out, axis=1)


def _components_needed(atom) -> int:
    return sum(2 if periodic else 1 for periodic in atom.periodic)


SUBSPACE_STARTS = 8  # random label starts besides k-means


def _subspace(rows: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean (p,), orthonormal basis (d, p)) of the affine principal subspace of ``rows``."""
    mean = rows.mean(axis=0)
    return mean, np.linalg.svd(rows - mean, full_matrices=False)[2][:d]


def _residuals(X: np.ndarray, mean: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Squared distances (N,) of the rows to the affine subspace ``mean + span(basis)``."""
    centred = X - mean
    return np.maximum(np.sum(centred**2, 1) - np.sum((centred @ basis.T) ** 2, 1), 0.0)


#: a row's residual counts as noise below NOISE_FACTOR × a typical noise-level residual
NOISE_FACTOR = 9.0


def _noise_threshold(residuals: np.ndarray) -> float:
    """NOISE_FACTOR × the median of the better half of ``residuals`` (positive; scale-free)."""
    better_half = np.sort(residuals)[: max(1, residuals.shape[0] // 2)]
    return NOISE_FACTOR * max(float(np.median(better_half)), np.finfo(float).tiny)


def _k_subspaces(X: np.ndarray, dims: list[int], starts: list[np.ndarray], iterations: int = 30) -> np.ndarray:
    """The labels (N,) with the smallest total residual to their groups' affine PCA subspaces."""
    best, best_cost = starts[0], np.inf
    for labels in starts:
        labels = labels.copy()
        for _ in range(iterations):
            residuals = np.empty((X.shape[0], len(dims)))
            for k, d in enumerate(dims):
                rows = X[labels == k]
                if rows.shape[0] <= d:  # an empty group: reseed it from the worst-fitted rows
                    rows = X[np.argsort(residuals[:, :k].min(1) if k else -np.linalg.norm(X, axis=1))[-(d + 1) * 4:]]
                residuals[:, k] = _residuals(X, *_subspace(rows, d))
            new = np.argmin(residuals, axis=1)
            if np.array_equal(new, labels):
                break
            labels = new
        cost = residuals[np.arange(X.shape[0]), labels].sum()
        if cost < best_cost:
            best, best_cost = labels, cost
    return best


TRIM_KEEP = 0.5  # trimmed K-subspaces fit each group's subspace to this fraction of its rows


def trimmed_k_subspaces(X: np.ndarray, dims: list[int], labels: np.ndarray, iterations: int = 50,
                        keep: float = TRIM_KEEP) -> tuple[np.ndarray, np.ndarray]:
    """K-subspaces in which each group's subspace is fitted to its ``keep`` best-fitting rows.

    Robust to rows that no single subspace explains (a sum of two manifolds). Returns (labels
    (N,), each row's residual to its group (N,)).
    """
    own = None
    for _ in range(iterations):
        residuals = np.empty((X.shape[0], len(dims)))
        for k, d in enumerate(dims):
            member = labels == k
            rows = X[member]
            if own is not None and rows.shape[0] > 4 * (d + 1):
                rows = rows[own[member] <= np.quantile(own[member], keep)]
            if rows.shape[0] <= d:  # an empty group: reseed it from the worst-fitted rows
                worst = own if own is not None else -np.linalg.norm(X, axis=1)
                rows = X[np.argsort(worst)[-(d + 1) * 4:]]
            residuals[:, k] = _residuals(X, *_subspace(rows, d))
        new = np.argmin(residuals, axis=1)
        own = residuals[np.arange(X.shape[0]), new]
        if np.array_equal(new, labels):
            break
        labels = new
    return labels, own


def sequential_subspaces(X: np.ndarray, dims: list[int], rng: np.random.Generator, candidates: int = 100,
                         neighbours: int = 40, factor: float = NOISE_FACTOR, refits: int = 5) -> np.ndarray:
    """Labels (N,) from subspaces found one at a time, the one explaining the most rows first.

    Each of ``candidates`` random rows gives a local subspace (PCA of its ``neighbours``
    nearest rows); the noise threshold τ is ``factor`` times the 10% quantile of those local
    fits' median residuals. A candidate grows to every still-unexplained row within τ of its
    subspace (refitted ``refits`` times); the one with the most rows is kept, its rows are
    removed, and the next atom's subspace is searched the same way. Rows then go to the nearest
    subspace. Scale-free: τ comes from the data.
    """
    from sklearn.neighbors import NearestNeighbors

    n = X.shape[0]
    neighbours = min(neighbours, n)
    search = NearestNeighbors(n_neighbors=neighbours).fit(X)
    seeds = rng.choice(n, size=min(candidates, n), replace=False)
    local = search.kneighbors(X[seeds], return_distance=False)  # (C, neighbours)
    fits = {d: [_subspace(X[nb], d) for nb in local] for d in sorted(set(dims))}
    spread = [np.median(_residuals(X[nb], *fit)) for nb, fit in zip(local, fits[max(dims)])]
    tau = factor * max(float(np.quantile(spread, 0.1)), np.finfo(float).tiny)
    free, subspaces = np.ones(n, bool), []
    for d in dims:
        best_count, best = -1, None
        for nb, (mean, basis) in zip(local, fits[d]):
            if free[nb].mean() <= 0.5:  # a neighbourhood mostly explained already
                continue
            inliers = nb
            for _ in range(refits):
                grown = np.flatnonzero((_residuals(X, mean, basis) <= tau) & free)
                if grown.shape[0] <= d + 1:
                    break
                inliers = grown
                mean, basis = _subspace(X[inliers], d)
            if inliers.shape[0] > best_count:
                best_count, best = inliers.shape[0], (mean, basis, inliers)
        if best is None:  # every neighbourhood explained: reuse the first candidate's subspace
            best = (*fits[d][0], local[0])
        subspaces.append(best[:2])
        free[best[2]] = False
    return np.argmin(np.stack([_residuals(X, *fit) for fit in subspaces], axis=1), axis=1)


def dense_coordinates(atoms, Z: np.ndarray) -> np.ndarray:
    """Charts (N, Σ d_k) read off successive principal components of the whole data.

    Atom k takes the next components (two per periodic axis, one per other axis; back to the
    first once they run out); a circle atom's coordinate is the angle of its pair of scores.
    """
    Z = np.asarray(Z, np.float64)
    centred = Z - Z.mean(axis=0)
    left, singular, _ = np.linalg.svd(centred, full_matrices=False)
    scores = left * singular
    available = scores.shape[1]
    coords, column = [], 0
    for atom in atoms:
        need = _components_needed(atom)
        take = [(column + i) % available for i in range(need)]
        coords.append(_chart_coordinates(atom, scores[:, take], np.ones(Z.shape[0], bool)))
        column += need
    return np.concatenate(coords, axis=1)


def switched_logits(gate: Gate, on: np.ndarray, dtype=jnp.float64) -> jax.Array:
    """Logits (N, K) with atom k switched on in the rows where ``on[:, k]`` (N, K) and off elsewhere."""
    logits = jnp.zeros(on.shape, dtype)
    for k in range(on.shape[1]):
        logits = gate.switched(logits, k, jnp.asarray(on[:, k]))
    return logits


def all_on_params(atoms, gate: Gate, coords: np.ndarray, p: int, dtype=jnp.float64) -> SaeParams:
    """A start with every atom switched on in every row, at the given coordinates (N, Σ d_k)."""
    on = np.ones((coords.shape[0], len(atoms)), bool)
    return _params(atoms, gate, p, switched_logits(gate, on, dtype), coords, dtype)


def dense_params(atoms, gate: Gate, Z: np.ndarray, dtype=jnp.float64) -> SaeParams:
    """Every atom on every row, charts from :func:`dense_coordinates`.

    The start for rows that are sums of manifolds in different subspaces (every token of a
    network using every key frequency at once), which a start that assigns each row to one atom
    cannot reach.
    """
    return all_on_params(atoms, gate, dense_coordinates(atoms, Z), np.shape(Z)[1], dtype)


def _params(atoms, gate: Gate, p: int, logits, coords: np.ndarray, dtype) -> SaeParams:
    return SaeParams(
        offset=jnp.zeros(p, dtype),
        decoders=tuple(jnp.zeros((atom.num_basis, p), dtype) for atom in atoms),
        thresholds=jnp.full(len(atoms), gate.initial_threshold, dtype),
        logits=jnp.asarray(logits, dtype),
        coords=jnp.asarray(coords, dtype),
    )


def initial_params(atoms, gate: Gate, Z: np.ndarray, key: jax.Array, dtype=jnp.float64) -> SaeParams:
    """A starting point for :func:`superpose.sae.solve.solve` (decoders zero, filled by its first step)."""
    Z = np.asarray(Z, np.float64)
    n, p = Z.shape
    K = len(atoms)
    seed = int(jax.random.randint(key, (), 0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    centred = Z - Z.mean(axis=0)
    needs = [min(_components_needed(atom), p) for atom in atoms]
    kmeans = KMeans(n_clusters=K, n_init=3, random_state=seed).fit_predict(centred)
    labels = _k_subspaces(centred, needs, [kmeans] + [rng.integers(K, size=n) for _ in range(SUBSPACE_STARTS)])
    candidates = [(labels, False)]
    if K > 1:  # the superposition-robust candidate: trimmed subspaces, kept where the start fits better
        candidates.append((trimmed_k_subspaces(centred, needs, sequential_subspaces(centred, needs, rng))[0], True))
    starts = [_start(atoms, gate, centred, labels, trim, rng) for labels, trim in candidates]
    labels, second, coords, _ = min(starts, key=lambda start: start[3])
    return _params(atoms, gate, p, switched_logits(gate, _on_pattern(labels, second, K), dtype), coords, dtype)


def _group_subspace(rows: np.ndarray, need: int, trim: bool) -> tuple[np.ndarray, np.ndarray]:
    """A group's affine principal subspace; ``trim``: refitted to the rows within the noise of its better half."""
    mean, basis = _subspace(rows, need)
    if trim and rows.shape[0] > 4 * (need + 1):
        residual = _residuals(rows, mean, basis)
        inside = residual <= _noise_threshold(residual)
        if inside.sum() > 4 * (need + 1):  # rows on two atoms no longer tilt the subspace
            mean, basis = _subspace(rows[inside], need)
    return mean, basis


def _start(atoms, gate: Gate, centred: np.ndarray, labels: np.ndarray, trim: bool, rng: np.random.Generator):
    """(labels, second atoms, coordinates (N, Σ d_k), total residual) of the start a labelling gives."""
    n, p = centred.shape
    K = len(atoms)
    means, components, coords = [], [], []
    for k, atom in enumerate(atoms):
        member = labels == k
        need = min(_components_needed(atom), p)
        if member.sum() > need:
            mean, basis = _group_subspace(centred[member], need, trim)
        else:  # a tiny cluster: random directions
            mean, basis = np.zeros(p), np.linalg.qr(rng.standard_normal((p, need)))[0].T
        scores = (centred - mean) @ basis.T
        if scores.shape[1] < _components_needed(atom):  # fewer outputs than the chart needs
            scores = np.concatenate([scores, rng.standard_normal((n, _components_needed(atom) - scores.shape[1]))], 1)
        means.append(mean)
        components.append(basis)
        coords.append(_chart_coordinates(atom, scores, member))
    second, residual = np.full(n, -1), np.empty(n)
    for k in range(K):
        residual[labels == k] = _residuals(centred[labels == k], means[k], components[k])
    if K > 1 and gate.allows_several:
        labels, second, residual = _pair_atoms(centred, labels, means, components, residual)
    for j, k, rows, scores_j, scores_k in _pairs(centred, labels, second, means, components):
        for a, part in ((j, scores_j), (k, scores_k)):  # both charts from the pair's joint fit
            if part.shape[1] == _components_needed(atoms[a]):
                coords[a][rows] = _chart_coordinates(atoms[a], part, np.ones(part.shape[0], bool))
    return labels, second, np.concatenate(coords, axis=1), float(residual.sum())


def encoding_start(atoms, gate: Gate, X: np.ndarray, grids, curves) -> tuple[np.ndarray, np.ndarray]:
    """On/off pattern (N, K) and coordinates (N, Σ d_k) to start encoding rows at fixed decoders.

    Args:
        atoms, gate: the model's. X: the rows minus the model's offset, (N, p).
        grids: per atom its chart points (G_k, d_k); curves: per atom ``Φ_k(grid) B_k`` (G_k, p).

    Each atom's curve gives an affine subspace (PCA, as many components as its chart needs); a row
    starts on the atom whose subspace is nearest, or, with a gate that allows several and a residual
    above the noise threshold, on the best pair (:func:`_pair_atoms`). Each active atom's coordinate
    is the grid point whose curve point is nearest to the row's part in that subspace (the whole row
    for one atom, its share of the pair's joint least-squares fit for two). Rows that are sums of two
    manifolds then start in the right basin, which a search over one atom at a time does not reach.
    """
    n, p = X.shape
    K = len(atoms)
    means, components = [], []
    for atom, curve in zip(atoms, curves):
        means.append(curve.mean(axis=0))
        components.append(_subspace(curve, min(_components_needed(atom), p))[1])
    residuals = np.stack([_residuals(X, m, U) for m, U in zip(means, components)], axis=1)
    labels = np.argmin(residuals, axis=1)
    own = residuals[np.arange(n), labels]
    second = np.full(n, -1)
    if K > 1 and gate.allows_several:
        labels, second, _ = _pair_atoms(X, labels, means, components, own)
    parts = [X.copy() for _ in range(K)]
    for j, k, rows, scores_j, scores_k in _pairs(X, labels, second, means, components):
        parts[j][rows] = means[j] + scores_j @ components[j]
        parts[k][rows] = means[k] + scores_k @ components[k]
    coords = []
    for k, (grid, curve) in enumerate(zip(grids, curves)):
        distances = np.sum(parts[k] ** 2, 1)[:, None] - 2 * parts[k] @ curve.T + np.sum(curve**2, 1)[None, :]
        coords.append(np.asarray(grid)[np.argmin(distances, axis=1)])
    return _on_pattern(labels, second, K), np.concatenate(coords, axis=1)


PAIR_GAIN = 4.0  # a row starts on two atoms when their joint fit leaves < 1/PAIR_GAIN of its one-atom residual


def _pair_scores(X: np.ndarray, first, second) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares scores of rows X on two affine subspaces at once: x ≈ m_j + m_k + s_jU_j + s_kU_k."""
    (mean_j, basis_j), (mean_k, basis_k) = first, second
    joint = np.vstack([basis_j, basis_k])
    coefficients = (X - mean_j - mean_k) @ np.linalg.pinv(joint)
    return coefficients[:, :basis_j.shape[0]], coefficients[:, basis_j.shape[0]:]


def _on_pattern(labels: np.ndarray, second: np.ndarray, K: int) -> np.ndarray:
    """(N, K) booleans: each row's own atom, and its second atom where it has one (≥ 0)."""
    on = np.zeros((labels.shape[0], K), bool)
    on[np.arange(labels.shape[0]), labels] = True
    on[second >= 0, second[second >= 0]] = True
    return on


def _pairs(X: np.ndarray, labels: np.ndarray, second: np.ndarray, means, components):
    """Yields (j, k, rows mask, scores on j, scores on k) for every pair of atoms some rows start on."""
    for j in range(len(means)):
        for k in np.unique(second[(labels == j) & (second >= 0)]):
            rows = (labels == j) & (second == k)
            yield (j, int(k), rows, *_pair_scores(X[rows], (means[j], components[j]), (means[k], components[k])))


def _pair_atoms(X: np.ndarray, labels: np.ndarray, means, components, own: np.ndarray):
    """(labels (N,), second atom (N,; −1 for one atom), residual (N,)) of rows that may start on two atoms.

    A row whose residual to its own subspace exceeds the noise threshold (9 × the median of the
    better half of those residuals, :func:`_noise_threshold`) is fitted by every pair of
    subspaces; the best pair replaces its label where it leaves less than 1/PAIR_GAIN of the
    one-atom residual. Rows that are sums of two manifolds then start with both charts right.
    """
    n, K = X.shape[0], len(means)
    tau = _noise_threshold(own)
    candidates = np.flatnonzero(own > tau)
    labels, second, residual_out = labels.copy(), np.full(n, -1), own.copy()
    if candidates.size == 0:
        return labels, second, residual_out
    best = own[candidates] / PAIR_GAIN
    for j in range(K):
        for k in range(j + 1, K):
            scores_j, scores_k = _pair_scores(X[candidates], (means[j], components[j]), (means[k], components[k]))
            fitted = means[j] + means[k] + scores_j @ components[j] + scores_k @ components[k]
            residual = np.sum((X[candidates] - fitted) ** 2, axis=1)
            better = residual < best
            best[better] = residual[better]
            labels[candidates[better]], second[candidates[better]] = j, k
    paired = second[candidates] >= 0
    residual_out[candidates[paired]] = best[paired]
    return labels, second, residual_out


__all__ = ["all_on_params", "dense_coordinates", "dense_params", "encoding_start", "initial_params", "switched_logits"]
