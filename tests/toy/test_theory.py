"""The exact expected loss against brute force and closed forms, and its minimum."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

from superpose.numerics.precision import float64_enabled
from superpose.toy import make_features
from superpose.toy.theory import candidate_losses, exact_minimum, expected_loss, pattern_probabilities, relu_square_error


def _quad(a, c, d, alpha, gamma):
    f = lambda v, u: (alpha * u + gamma * v - max(a * u + c * v + d, 0.0)) ** 2  # noqa: E731
    return integrate.dblquad(f, 0, 1, 0, 1, epsabs=1e-11, epsrel=1e-9)[0]


@pytest.mark.parametrize("a, c, d", [(0.8, -0.6, 0.1), (-0.5, 0.9, 0.3), (1.2, 0.0, -0.4), (0.0, -0.7, 0.5),
                                     (0.3, 0.4, -0.9), (2.0, -2.0, 0.0), (-0.2, -0.3, -0.1)])
def test_relu_square_error_equals_numerical_integration(a, c, d):
    with float64_enabled():
        for alpha, gamma in ((1, 0), (0, 1), (0, 0)):
            got = float(relu_square_error(jnp.float64(a), jnp.float64(c), jnp.float64(d), float(alpha), float(gamma)))
            assert got == pytest.approx(_quad(a, c, d, alpha, gamma), abs=2e-8)  # quadrature across the kink is the looser of the two


@pytest.mark.parametrize("structure", [dict(), dict(parents=[-1, 0]), dict(correlated=[(0, 1)]),
                                       dict(anticorrelated=[(0, 1)])])
def test_expected_loss_equals_a_monte_carlo_estimate(structure):
    density = np.array([[0.4, 0.4 if "correlated" in structure else 0.6]])
    features = make_features(density, **structure)
    theta, imp = np.array([0.9, -0.6, 0.1, -0.05]), np.array([1.0, 0.7])
    with float64_enabled():
        exact = float(expected_loss(jnp.asarray(theta), jnp.asarray(np.asarray(pattern_probabilities(features)[0]),
                                                                    jnp.float64), jnp.asarray(imp)))
    rng = np.random.default_rng(0)
    n = 1_000_000
    gate, mag = rng.random((n, 2)), rng.random((n, 2))
    if structure.get("parents"):
        on = np.stack([gate[:, 0] < 0.4, (gate[:, 0] < 0.4) & (gate[:, 1] < 0.6)], 1)
    elif structure.get("correlated"):
        on = np.repeat(gate[:, :1] < 0.4, 2, 1)
    elif structure.get("anticorrelated"):
        on = np.stack([gate[:, 0] < 0.4, (gate[:, 0] >= 0.4) & (gate[:, 0] < 1.0)], 1)
    else:
        on = gate < density
    x = mag * on
    out = np.maximum((x @ theta[:2])[:, None] * theta[:2] + theta[2:], 0)
    loss = ((x - out) ** 2 * imp).sum(1)
    assert exact == pytest.approx(loss.mean(), abs=5 * loss.std() / np.sqrt(n))


def test_closed_forms_and_the_exact_minimum():
    s = np.array([0.05, 0.3, 0.5541, 0.8, 0.8])
    r = np.array([0.5, 3.0, 0.9427, 2.0, 0.3])
    features = make_features(np.stack([s, s], 1))
    imp = np.stack([np.ones_like(r), r], 1)
    closed = candidate_losses(s, r)
    with float64_enabled():
        p = jnp.asarray(np.asarray(pattern_probabilities(features)), jnp.float64)
        for name, theta in {"not_learned": [1, 0, 0, 1], "dedicated": [0, 1, 1, 0], "antipodal": [1, -1, 0, 0]}.items():
            t = np.tile(np.array(theta, float), (5, 1))
            t[:, 3 if name == "not_learned" else 2] *= s / 2  # the unused feature's bias is s/2
            np.testing.assert_allclose(expected_loss(jnp.asarray(t), p, jnp.asarray(imp)), closed[name], rtol=1e-6)
    best = exact_minimum(features, imp)
    floor = np.minimum(np.minimum(closed["not_learned"], closed["dedicated"]), closed["antipodal"])
    assert np.all(best.loss <= floor + 1e-8)
    # classes: antipodal at low density, dedicated/not learned at high density by r
    assert list(best.solution) == [2, 2, 2, 1, 0]
    # near r ≈ 0.94, s ≈ 0.55 an antipodal pair with positive biases beats the zero-bias formula by ~12.5%
    gain = (floor[2] - best.loss[2]) / floor[2]
    assert 0.12 < gain < 0.13
    assert best.theta[2, 2] > 0.1 and best.theta[2, 3] > 0.1
