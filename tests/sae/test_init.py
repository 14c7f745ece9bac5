"""Starting points: the superposition-robust subspace search finds planted planes that plain K-subspaces misses."""

import jax
import numpy as np
import pytest

from superpose.numerics import float64_enabled
from superpose.sae import CircleAtom, make_gate, superposed_circles
from superpose.sae.init import _k_subspaces, initial_params, sequential_subspaces, trimmed_k_subspaces
from superpose.sae.metrics import match_atoms, plane_overlap


def _plane_overlaps(X, labels, planes):
    """Overlap of each planted plane with its matched group's principal plane (Hungarian)."""
    K = planes.shape[0]
    overlap = np.zeros((K, K))
    for k in range(K):
        rows = X[labels == k]
        basis = np.linalg.svd(rows - rows.mean(0), full_matrices=False)[2][:2].T
        overlap[k] = [plane_overlap(basis, planes[c]) for c in range(K)]
    matching = match_atoms(overlap)
    return overlap[np.asarray(matching.fitted), np.asarray(matching.planted)]


@pytest.fixture(scope="module")
def superposed():
    with float64_enabled():
        Z, truth = superposed_circles(jax.random.key(0), n=2000)
    Z = np.asarray(Z, np.float64)
    return Z - Z.mean(0), np.asarray(truth.planes)


def test_sequential_search_finds_every_superposed_plane(superposed):
    X, planes = superposed
    rng = np.random.default_rng(0)
    labels, own = trimmed_k_subspaces(X, [2] * 8, sequential_subspaces(X, [2] * 8, rng))
    assert _plane_overlaps(X, labels, planes).min() > 0.95
    assert own.shape == (X.shape[0],) and np.all(own >= 0)
    # plain K-subspaces from k-means and random labels (the old start) leaves planes unfound here
    plain = _k_subspaces(X, [2] * 8, [np.random.default_rng(s).integers(8, size=X.shape[0]) for s in range(4)])
    assert _plane_overlaps(X, plain, planes).min() < 0.9


def test_initial_params_switch_on_the_atom_of_each_single_circle_row(superposed):
    X, planes = superposed
    atoms = tuple(CircleAtom(1) for _ in range(8))
    with float64_enabled():
        start = initial_params(atoms, make_gate("binary", num_atoms=8), X, jax.random.key(0))
    on = np.asarray(start.logits) > 0
    assert np.all(on.sum(1) == 1)  # each row starts on one atom
    assert _plane_overlaps(X, on.argmax(1), planes).min() > 0.95
