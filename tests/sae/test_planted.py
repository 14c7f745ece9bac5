"""Planted circles: shapes, determinism, geometry of the planes, exact supports, and the noise level."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from superpose.numerics import float64_enabled
from superpose.sae.planted import (
    PlantedCircles,
    exact_counts,
    on_training_planes,
    single_circle,
    superposed_circles,
    two_circles,
)


def _np(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _reconstruct(truth: PlantedCircles) -> np.ndarray:
    """centre + Σ_c support·radius·(cos θ, sin θ)·plane, row by row in float64 (independent of the module)."""
    planes, angles, support, radii = _np(truth.planes), _np(truth.angles), np.asarray(truth.support), _np(truth.radii)
    rows = np.tile(_np(truth.centre), (angles.shape[0], 1))
    for c in range(planes.shape[0]):
        point = np.cos(angles[:, c])[:, None] * planes[c, :, 0] + np.sin(angles[:, c])[:, None] * planes[c, :, 1]
        rows += np.where(support[:, c][:, None], radii[c] * point, 0.0)
    return rows


def _row_rms(x: np.ndarray) -> float:
    return math.sqrt(np.mean(np.sum(x**2, axis=1)))


def _check_planes_orthonormal(planes: np.ndarray) -> None:
    for plane in planes:
        np.testing.assert_allclose(plane.T @ plane, np.eye(2), atol=1e-5)


@pytest.fixture(scope="module")
def circles_pair():
    centre = np.linspace(-1.0, 1.0, 24)
    return two_circles(jax.random.key(0), centre=centre)


def test_two_circles_shapes_supports_and_planes(circles_pair):
    Z, truth = circles_pair
    assert Z.shape == (600, 24) and Z.dtype == jnp.float32
    assert truth.planes.shape == (2, 24, 2) and truth.angles.shape == (600, 2) and truth.support.shape == (600, 2)
    assert truth.support.dtype == jnp.bool_
    support = np.asarray(truth.support)
    a, b = support[:, 0], support[:, 1]
    assert ((a & ~b).sum(), (~a & b).sum(), (a & b).sum()) == (180, 180, 240)
    assert support.any(axis=1).all()
    planes = _np(truth.planes)
    _check_planes_orthonormal(planes)
    np.testing.assert_allclose(planes[0].T @ planes[1], np.zeros((2, 2)), atol=1e-5)  # mutually orthogonal
    np.testing.assert_allclose(_np(truth.radii), [1.0, 1.1], rtol=1e-6)
    angles = _np(truth.angles)
    assert angles.min() >= 0.0 and angles.max() < 2 * math.pi


def test_two_circles_rows_reconstruct_to_the_noise_level(circles_pair):
    Z, truth = circles_pair
    clean = _reconstruct(truth)
    np.testing.assert_allclose(_np(truth.signal()), clean, atol=1e-5)
    signal_rms = _row_rms(clean - _np(truth.centre))
    # With orthogonal planes ‖signal_i‖² is r_A², r_B² or r_A² + r_B², so the RMS is known in closed form.
    assert signal_rms == pytest.approx(math.sqrt(0.3 * 1.0 + 0.3 * 1.21 + 0.4 * 2.21), rel=1e-5)
    noise = _np(Z) - clean
    assert _row_rms(noise) / signal_rms == pytest.approx(0.04, rel=0.03)
    assert truth.noise_rms == pytest.approx(0.04 * signal_rms, rel=1e-5)
    assert truth.noise_sigma == pytest.approx(truth.noise_rms / math.sqrt(24))
    np.testing.assert_allclose(noise.std(axis=0).mean(), truth.noise_sigma, rtol=0.05)


def test_two_circles_signal_lies_in_the_planes(circles_pair):
    Z, truth = circles_pair
    basis = _np(truth.planes).transpose(1, 0, 2).reshape(24, 4)  # orthonormal, both planes
    outside = (_np(Z) - _np(truth.centre)) @ (np.eye(24) - basis @ basis.T)
    # Only noise is left: p − 4 of the p noise dimensions, σ² each.
    assert _row_rms(outside) == pytest.approx(truth.noise_sigma * math.sqrt(20), rel=0.03)


def test_generators_are_deterministic_per_key():
    # Shapes the other tests use too, so nothing new is compiled.
    for make in (two_circles, lambda k: single_circle(k, 5, 3), superposed_circles):
        (Z1, t1), (Z2, t2), (Z3, _) = make(jax.random.key(3)), make(jax.random.key(3)), make(jax.random.key(4))
        np.testing.assert_array_equal(Z1, Z2)
        for a, b in zip(t1, t2):
            np.testing.assert_array_equal(a, b)
        assert not np.allclose(Z1, Z3)


def test_single_circle_has_the_radius_and_the_noise_level():
    Z, truth = single_circle(jax.random.key(1), 3000, 10)
    assert Z.shape == (3000, 10) and truth.planes.shape == (1, 10, 2) and bool(truth.support.all())
    _check_planes_orthonormal(_np(truth.planes))
    clean = _reconstruct(truth)
    np.testing.assert_allclose(np.linalg.norm(clean, axis=1), 2.086, rtol=1e-5)
    assert truth.noise_rms == 0.352 and truth.noise_sigma == pytest.approx(0.352 / math.sqrt(10))
    noise = _np(Z) - clean
    assert _row_rms(noise) == pytest.approx(0.352, rel=0.02)
    # Gaussian, not merely the right size: zero mean and kurtosis 3 (a uniform would give 1.8).
    z = noise.ravel() / truth.noise_sigma
    assert abs(z.mean()) < 0.03 and np.mean(z**4) / np.mean(z**2) ** 2 == pytest.approx(3.0, abs=0.15)
    Z_small, _ = single_circle(jax.random.key(2), 1, 2)  # the smallest case
    assert Z_small.shape == (1, 2) and np.isfinite(_np(Z_small)).all()
    Z_quiet, t_quiet = single_circle(jax.random.key(2), 5, 3, radius=0.5, noise_rms=0.0)
    np.testing.assert_allclose(_np(Z_quiet), _reconstruct(t_quiet), atol=1e-6)


def test_superposed_circles_supports_planes_and_noise():
    Z, truth = superposed_circles(jax.random.key(5))
    assert Z.shape == (4000, 12) and truth.planes.shape == (8, 12, 2)
    support = np.asarray(truth.support)
    per_row = support.sum(axis=1)
    assert set(np.unique(per_row)) == {1, 2} and (per_row == 2).sum() == 2000
    # Each circle is used with probability (1 − f)/C + 2f/C = 1.5/8.
    np.testing.assert_allclose(support.mean(axis=0), 1.5 / 8, atol=0.03)
    planes = _np(truth.planes)
    _check_planes_orthonormal(planes)
    cross = max(np.linalg.norm(planes[a].T @ planes[b], 2) for a in range(8) for b in range(a + 1, 8))
    assert cross > 0.3  # 8 planes in R^12 overlap
    clean = _reconstruct(truth)
    np.testing.assert_allclose(_np(truth.signal()), clean, atol=1e-5)
    ratio = _row_rms(_np(Z) - clean) / _row_rms(clean)
    assert ratio == pytest.approx(0.04, rel=0.03)


def test_float64_inside_float64_enabled():
    with float64_enabled():
        Z, truth = two_circles(jax.random.key(0), n=20, p=5)
        assert Z.dtype == jnp.float64 and truth.planes.dtype == jnp.float64
        np.testing.assert_allclose(_np(truth.planes[0]).T @ _np(truth.planes[1]), 0.0, atol=1e-12)


def test_exact_counts_hand_cases():
    assert exact_counts(600, (0.3, 0.3, 0.4)) == (180, 180, 240)
    assert exact_counts(7, (0.3, 0.3, 0.4)) == (2, 2, 3)  # remainders .1 .1 .8
    assert exact_counts(10, (1 / 3, 1 / 3, 1 / 3)) == (4, 3, 3)
    assert sum(exact_counts(997, (0.05, 0.15, 0.8))) == 997
    with pytest.raises(ValueError, match="sum to 1"):
        exact_counts(10, (0.3, 0.3, 0.3))


def test_bad_arguments_raise_clear_errors():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="circles > p/2"):
        superposed_circles(key, n=10, p=12, circles=6)
    with pytest.raises(ValueError, match="p must be an integer >= 4"):
        two_circles(key, n=10, p=3)
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        single_circle(key, 0, 3)
    with pytest.raises(ValueError, match="sum to 1"):
        two_circles(key, n=10, fractions=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="noise"):
        two_circles(key, n=10, noise=-0.1)
    with pytest.raises(ValueError, match="radius"):
        single_circle(key, 5, 3, radius=0.0)
    with pytest.raises(ValueError, match="pair_fraction"):
        superposed_circles(key, n=10, p=4, circles=3, pair_fraction=1.5)
    with pytest.raises(ValueError, match="centre"):
        single_circle(key, 5, 3, centre=np.zeros(4))
    with pytest.raises(TypeError, match="key"):
        single_circle("seed", 5, 3)


def test_held_out_rows_move_onto_the_training_planes():
    with float64_enabled():
        Z, truth = superposed_circles(jax.random.key(0), n=50, p=6, circles=4)
        Z2, other = superposed_circles(jax.random.key(1), n=50, p=6, circles=4)
        assert np.allclose(on_training_planes(truth, Z, truth), Z, atol=1e-12)  # its own draw: unchanged
        moved = np.asarray(on_training_planes(truth, Z2, other))
        # the held-out rows' noise is the second draw's; their signal lies on the training planes
        signal = moved - np.asarray(Z2 - other.signal())
        for c in range(4):
            rows = np.asarray(other.support)[:, c] & (np.asarray(other.support).sum(1) == 1)
            inside = signal[rows] @ np.asarray(truth.planes)[c]
            assert np.allclose(np.linalg.norm(inside, axis=1), np.linalg.norm(signal[rows], axis=1), atol=1e-9)
        with pytest.raises(ValueError, match="same planes"):
            on_training_planes(truth, *two_circles(jax.random.key(2), n=50, p=6))
