"""Issue 15 validation gaps in superpose.toy: metrics input checks and exact_minimum's key."""

from __future__ import annotations

import inspect

import jax
import numpy as np
import pytest

from superpose.toy import make_features
from superpose.toy.metrics import best_of, classify_pair, cosines, dimensionality, drop_worst_mean, feature_norms, superposition
from superpose.toy.theory import exact_minimum

W_PAIR = np.array([[[1.0, -0.8]], [[0.2, 0.9]]])  # two (m = 1, n = 2) models


def test_metrics_refuse_nonfinite_and_vector_weights_and_match_brute_force_geometry():
    for metric in (feature_norms, superposition, dimensionality, cosines, classify_pair):
        with pytest.raises(ValueError, match="W must be finite"):
            metric(np.where(W_PAIR > 0.5, np.nan, W_PAIR))
        with pytest.raises(ValueError, match=r"W must have shape \(\.\.\., m, n\)"):
            metric(np.array([1.0, 2.0]))
    W = np.random.default_rng(0).normal(size=(3, 4))  # m = 3, n = 4
    unit = W / np.linalg.norm(W, axis=0)
    overlaps = unit.T @ W  # (Ŵ_i · W_j)
    want_sup = [sum(overlaps[i, j] ** 2 for j in range(4) if j != i) for i in range(4)]
    np.testing.assert_allclose(np.asarray(superposition(W)), want_sup, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(dimensionality(W)), np.linalg.norm(W, axis=0) ** 2 / (overlaps**2).sum(1),
                               rtol=1e-5)


@pytest.mark.parametrize("options, name", [({"threshold": -0.1}, "threshold"), ({"threshold": np.nan}, "threshold"),
                                           ({"cosine": 1.5}, "cosine"), ({"cosine": "high"}, "cosine")])
def test_classify_pair_refuses_out_of_range_parameters(options, name):
    with pytest.raises((ValueError, TypeError), match=name):
        classify_pair(W_PAIR, **options)
    # in range: model 0 is antipodal (both norms >= 0.5, cosine −1), model 1 dedicated (feature 1 off)
    assert list(np.asarray(classify_pair(W_PAIR))) == [2, 1]


def test_aggregations_refuse_bad_inputs_and_match_numpy():
    values, losses = np.array([[1.0, 2.0, 3.0]]), np.array([[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]])
    for aggregate in (drop_worst_mean, best_of):
        with pytest.raises(ValueError, match="same shape"):
            aggregate(values, losses)  # broadcasting would silently pair the wrong members
        with pytest.raises(ValueError, match="losses must not hold NaN"):
            aggregate(values, np.array([[0.1, np.nan, 0.3]]))
        with pytest.raises(ValueError, match="values must be finite"):
            aggregate(np.array([[1.0, np.inf, 3.0]]), losses[:1])
    with pytest.raises(ValueError, match="members >= 2"):
        drop_worst_mean(np.array([[5.0]]), np.array([[0.1]]))  # dropping the only member leaves nothing
    rng = np.random.default_rng(1)
    values, losses = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    losses[0, 2] = np.inf  # a diverged member is allowed, and dropped
    keep = np.ones_like(losses, bool)
    keep[np.arange(4), losses.argmax(1)] = False
    np.testing.assert_allclose(np.asarray(drop_worst_mean(values, losses)),
                               [values[i][keep[i]].mean() for i in range(4)], rtol=1e-5)
    classes = rng.integers(0, 5, size=(4, 5))
    best = best_of(classes, losses)  # integer classes keep their dtype
    assert np.issubdtype(np.asarray(best).dtype, np.integer)
    np.testing.assert_array_equal(np.asarray(best), classes[np.arange(4), losses.argmin(1)])


def test_exact_minimum_key_default_is_explicit_and_bad_keys_or_starts_are_refused():
    assert inspect.signature(exact_minimum).parameters["key"].default == 0
    features, importance = make_features(np.array([[0.3, 0.3]])), np.array([[1.0, 2.0]])
    with pytest.raises(TypeError, match="key must be an int seed or one PRNG key"):
        exact_minimum(features, importance, key=None)
    with pytest.raises(TypeError, match="key must be an int seed or one PRNG key"):
        exact_minimum(features, importance, key=jax.random.split(jax.random.key(0), 2))
    with pytest.raises(ValueError, match="starts must be an integer >= 1"):
        exact_minimum(features, importance, starts=0)
    with pytest.raises(TypeError, match="features must be"):
        exact_minimum(np.array([[0.3, 0.3]]), importance)
