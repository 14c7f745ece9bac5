"""superpose.sae.metrics against closed forms, hand-counted cases and brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from superpose.sae.metrics import (
    active_mass_recovery,
    circular_r2,
    circular_variance,
    curve_span,
    explained_variance,
    fraction_variance_unexplained,
    match_atoms,
    mmcs,
    plane_overlap,
)



def _unit(p: int, i: int) -> np.ndarray:
    e = np.zeros(p)
    e[i] = 1.0
    return e


# ------------------------------------------------------------------------------ reconstruction
def test_explained_variance_hand_cases():
    Z = np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 4.0]])
    assert explained_variance(Z, Z) == 1.0
    assert explained_variance(Z, np.broadcast_to(Z.mean(0), Z.shape)) == pytest.approx(0.0, abs=1e-15)
    # SST = (4 + 0 + 4) + (1 + 1 + 4) = 14; SSE = 0.25 + 1 + 0 + 0 + 0 + 4 = 5.25
    Z_hat = np.array([[0.5, 2.0], [2.0, 1.0], [4.0, 2.0]])
    assert explained_variance(Z, Z_hat) == pytest.approx(1 - 5.25 / 14)
    assert fraction_variance_unexplained(Z, Z_hat) == pytest.approx(5.25 / 14)
    # Column centring: a common offset in both changes nothing.
    assert explained_variance(Z + 100.0, Z_hat + 100.0) == pytest.approx(1 - 5.25 / 14)


def test_explained_variance_rejects_bad_input():
    Z = np.ones((3, 2))
    with pytest.raises(ValueError, match="no variance"):
        explained_variance(Z, Z)
    with pytest.raises(ValueError, match="same shape"):
        explained_variance(np.eye(3), np.eye(2))
    with pytest.raises(ValueError, match="finite"):
        explained_variance(np.array([[0.0], [np.nan]]), np.zeros((2, 1)))
    with pytest.raises(ValueError, match="2-D"):
        explained_variance(np.zeros(3), np.zeros(3))


# ------------------------------------------------------------------------------------ circles
def test_circular_r2_is_one_for_exact_reflected_and_rotated_charts():
    rng = np.random.default_rng(85)
    theta = rng.uniform(0, 2 * np.pi, 500)
    assert circular_r2(theta, theta / (2 * np.pi)) == pytest.approx(1.0, abs=1e-12)
    wrapped = (-theta / (2 * np.pi) + 0.3 + rng.integers(-3, 3, 500)) % 1.0  # reflected, rotated, wrapped
    assert circular_r2(theta, wrapped) == pytest.approx(1.0, abs=1e-12)


def test_circular_r2_with_a_constant_phase_error_is_cos_squared():
    theta = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    delta = 0.4
    t = (theta + np.where(np.arange(400) % 2 == 0, delta, -delta)) / (2 * np.pi)
    # The matched branch gives |mean e^{±iδ}|² = cos²δ; the reflected branch averages e^{2iθ} ≈ 0.
    assert circular_r2(theta, t) == pytest.approx(math.cos(delta) ** 2, abs=1e-9)


def test_circular_r2_of_unrelated_coordinates_is_about_one_over_n():
    rng = np.random.default_rng(202)
    # N·|mean of N random phasors|² ~ Exp(1); the max of the two (nearly independent) branches has mean 1.5.
    n, reps = 400, 300
    values = [circular_r2(rng.uniform(0, 2 * np.pi, n), rng.uniform(0, 1, n)) for _ in range(reps)]
    assert np.mean(values) * n == pytest.approx(1.5, abs=0.3)
    assert 0.0 <= min(values) and max(values) <= 1.0


def test_circular_r2_mask_selects_rows():
    rng = np.random.default_rng(892)
    theta = rng.uniform(0, 2 * np.pi, 200)
    t = theta / (2 * np.pi)
    mask = np.arange(200) < 120
    t_bad = np.where(mask, t, rng.uniform(0, 1, 200))
    assert circular_r2(theta, t_bad, mask=mask) == pytest.approx(1.0, abs=1e-12)
    assert circular_r2(theta, t_bad) < 0.9
    with pytest.raises(ValueError, match="no rows"):
        circular_r2(theta, t, mask=np.zeros(200, bool))
    with pytest.raises(ValueError, match="boolean"):
        circular_r2(theta, t, mask=np.ones(200))
    with pytest.raises(ValueError, match="same shape"):
        circular_r2(theta, t[:-1])


def test_circular_variance_hand_cases():
    assert circular_variance(np.full(50, 0.37)) == pytest.approx(0.0, abs=1e-12)  # collapsed chart
    assert circular_variance(np.arange(10) / 10) == pytest.approx(1.0, abs=1e-12)
    assert circular_variance([0.0, 0.5]) == pytest.approx(1.0, abs=1e-12)
    assert circular_variance([0.0, 0.25]) == pytest.approx(1 - math.sqrt(2) / 2)
    assert circular_variance([0.1, 0.9, 0.5], mask=np.array([True, False, False])) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="finite"):
        circular_variance([0.0, np.inf])


# ---------------------------------------------------------------------------------- subspaces
def test_plane_overlap_closed_forms():
    p = 6
    e = [_unit(p, i) for i in range(p)]
    U_true = np.stack([e[0], e[1]], axis=1)
    # Same plane, a skewed and scaled basis.
    assert plane_overlap(np.stack([3 * e[0] + e[1], -2 * e[1]], 1), U_true) == pytest.approx(1.0, abs=1e-12)
    assert plane_overlap(np.stack([e[2], e[3]], 1), U_true) == pytest.approx(0.0, abs=1e-12)
    # One direction tilted by 45°, the other in the plane: σ_min = cos 45°.
    tilted = np.stack([e[0], (e[1] + e[2]) / math.sqrt(2)], 1)
    assert plane_overlap(tilted, U_true) == pytest.approx(math.cos(math.pi / 4))
    # Principal angles a, b: σ_min = cos(max(a, b)), whatever basis the fitted plane is given in.
    a, b = 0.3, 0.9
    U_fit = np.stack([math.cos(a) * e[0] + math.sin(a) * e[2], math.cos(b) * e[1] + math.sin(b) * e[3]], 1)
    mix = np.array([[1.0, 2.0], [-0.5, 1.0]])
    assert plane_overlap(U_fit @ mix, U_true) == pytest.approx(math.cos(b), abs=1e-12)
    assert plane_overlap(U_true, U_fit) == pytest.approx(math.cos(b), abs=1e-12)
    # A line inside the plane lies wholly in it.
    assert plane_overlap((e[0] + e[1])[:, None], U_true) == pytest.approx(1.0, abs=1e-12)


def test_plane_overlap_rejects_degenerate_bases():
    U = np.stack([_unit(4, 0), _unit(4, 1)], 1)
    with pytest.raises(ValueError, match="linearly dependent"):
        plane_overlap(np.stack([_unit(4, 0), 2 * _unit(4, 0)], 1), U)
    with pytest.raises(ValueError, match="same number of rows"):
        plane_overlap(np.eye(3)[:, :2], U)


def test_curve_span_recovers_the_plane_of_a_circle():
    rng = np.random.default_rng(806)
    p = 8
    plane, _ = np.linalg.qr(rng.normal(size=(p, 2)))
    grid = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    points = 5.0 + 1.7 * (np.cos(grid)[:, None] * plane[:, 0] + np.sin(grid)[:, None] * plane[:, 1])
    span = curve_span(points)
    assert span.shape == (p, 2)
    np.testing.assert_allclose(span.T @ span, np.eye(2), atol=1e-12)
    assert plane_overlap(span, plane) == pytest.approx(1.0, abs=1e-10)
    with pytest.raises(ValueError, match="collapsed"):
        curve_span(np.ones((20, p)))
    with pytest.raises(ValueError, match="collapsed"):
        curve_span(np.outer(grid, plane[:, 0]))  # a segment spans one dimension
    with pytest.raises(ValueError, match="rank"):
        curve_span(points[:2], rank=2)


# ---------------------------------------------------------------------------- atoms, features
def _brute_force_best(scores: np.ndarray) -> float:
    """The best total over every one-to-one matching of the smaller side into the larger."""
    rows, cols = scores.shape
    if rows <= cols:
        return max(sum(scores[i, c] for i, c in enumerate(perm)) for perm in itertools.permutations(range(cols), rows))
    return max(sum(scores[r, j] for j, r in enumerate(perm)) for perm in itertools.permutations(range(rows), cols))


def test_match_atoms_beats_greedy_and_matches_brute_force():
    m = match_atoms([[0.9, 0.8], [0.85, 0.1]])  # greedy would take 0.9 + 0.1
    assert m.fitted.tolist() == [1, 0] and m.planted.tolist() == [0, 1]
    assert m.total == pytest.approx(1.65)
    rng = np.random.default_rng(4)
    for shape in [(4, 4), (3, 5), (5, 3)]:
        scores = rng.uniform(size=shape)
        best = _brute_force_best(scores)
        m = match_atoms(scores)
        assert len(m.scores) == min(shape) and m.total == pytest.approx(best)
        np.testing.assert_array_equal(m.scores, scores[m.fitted, m.planted])
        assert np.all(np.diff(m.planted) > 0)
    with pytest.raises(ValueError, match="finite"):
        match_atoms([[np.nan]])


def test_active_mass_recovery_hand_counts():
    support = np.array([[1, 0, 0], [1, 0, 0], [0, 0, 1], [1, 0, 1]], dtype=bool)
    assert active_mass_recovery(support.astype(float), support).tolist() == [1.0, 1.0, 1.0]
    assert active_mass_recovery(1.0 - support, support)[[0, 2]].tolist() == [0.0, 0.0]
    gates = np.array([[0.9, 0.0, 0.0], [0.2, 0.7, 0.0], [0.6, 0.0, 0.5], [0.8, 0.0, 0.51]])
    # atom 0: TP 2, FP 1, FN 1 -> 4/6; atom 1: TP 0, FP 1 -> 0; atom 2 (0.5 is not > 0.5): TP 1, FN 1 -> 2/3
    np.testing.assert_allclose(active_mass_recovery(gates, support), [4 / 6, 0.0, 2 / 3])
    np.testing.assert_allclose(active_mass_recovery(gates, support, threshold=0.1), [2 * 3 / 7, 0.0, 1.0])
    with pytest.raises(TypeError, match="boolean"):
        active_mass_recovery(gates, support.astype(int))
    with pytest.raises(ValueError, match="shape"):
        active_mass_recovery(gates[:, :2], support)


def test_mmcs_hand_cases():
    rng = np.random.default_rng(839)
    p = 5
    true = rng.normal(size=(p, 3))
    fit = np.concatenate([-2.0 * true[:, [2, 0]], 0.5 * true[:, [1]], rng.normal(size=(p, 2))], axis=1)
    assert mmcs(fit, true) == pytest.approx(1.0, abs=1e-12)  # permuted, scaled, sign-flipped, extra latents
    e = [_unit(p, i) for i in range(p)]
    fit2 = np.stack([e[0], (e[0] + e[1]) / math.sqrt(2)], 1)
    assert mmcs(fit2, np.stack([e[0], e[1]], 1)) == pytest.approx((1 + 1 / math.sqrt(2)) / 2)
    assert mmcs(np.stack([e[2]], 1), np.stack([e[0], e[1]], 1)) == pytest.approx(0.0, abs=1e-15)
    with pytest.raises(ValueError, match="zero columns"):
        mmcs(np.zeros((p, 1)), true)
    with pytest.raises(ValueError, match="same number of rows"):
        mmcs(np.ones((p + 1, 1)), true)
