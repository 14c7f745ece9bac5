"""The counter-based batch generator: statistics, independence, keying, and the feature distributions."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from superpose.toy import make_features, sample
from superpose.toy.data import features_from_uniforms
from superpose.toy.streams import mix32, stream_uniforms


def _corr(a, b):
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def test_uniforms_have_the_right_moments_and_pass_a_chi_square_test():
    u = np.asarray(stream_uniforms(jax.random.key(0), 0, jnp.arange(64), 4096, 4)).ravel()  # 1M values
    assert u.min() >= 0.0 and u.max() < 1.0
    se = 1 / np.sqrt(12 * u.size)
    assert abs(u.mean() - 0.5) < 5 * se
    assert abs(u.var() - 1 / 12) < 5 * np.sqrt(1 / 180 / u.size)
    counts = np.histogram(u, bins=256, range=(0, 1))[0]
    assert stats.chisquare(counts).pvalue > 1e-4


def test_uniforms_are_independent_across_elements_streams_and_steps():
    key = jax.random.key(1)
    a = np.asarray(stream_uniforms(key, 0, jnp.arange(200), 5000, 2))  # (2, 200, 5000)
    b = np.asarray(stream_uniforms(key, 1, jnp.arange(200), 5000, 2))
    bound = 5 / np.sqrt(a[0].size)
    assert abs(_corr(a[0, :, 1:], a[0, :, :-1])) < bound  # neighbouring elements
    assert abs(_corr(a[0], a[1])) < bound  # the two features
    assert abs(_corr(a[0, 1:], a[0, :-1])) < bound  # neighbouring streams
    assert abs(_corr(a, b)) < bound / np.sqrt(2)  # consecutive steps
    # products of pairs have the mean of independent uniforms, 1/4 (catches non-linear dependence)
    assert abs(np.mean(a[0, :, 1:] * a[0, :, :-1]) - 0.25) < 5 * np.sqrt(7 / 144 / a[0].size)


def test_a_stream_depends_only_on_key_step_and_its_id():
    key = jax.random.key(2)
    many = stream_uniforms(key, 3, jnp.array([5, 9, 11]), 100, 3)
    alone = stream_uniforms(key, 3, jnp.array([9]), 100, 3)
    np.testing.assert_array_equal(many[:, 1], alone[:, 0])
    assert not np.array_equal(stream_uniforms(jax.random.key(3), 3, jnp.array([9]), 100, 3), alone)
    assert not np.array_equal(stream_uniforms(key, 4, jnp.array([9]), 100, 3), alone)
    # mix32 is a bijection on uint32 (checked on a window): no collisions
    assert np.unique(np.asarray(mix32(jnp.arange(1 << 20, dtype=jnp.uint32)))).size == 1 << 20


def test_one_uniform_per_feature_gives_the_right_distributions():
    n = 200_000
    u = jax.random.uniform(jax.random.key(4), (5, n))
    density = jnp.array([0.3, 0.3, 0.2, 0.5, 0.6])[:, None]
    # features 0, 1 correlated; 2, 3 anticorrelated; 4 a child of 0
    x = np.asarray(features_from_uniforms(u, density, ((-1, -1, -1, -1, 0), ((0, 1),), ((2, 3),))))
    on = x > 0
    np.testing.assert_allclose(on.mean(1), [0.3, 0.3, 0.2, 0.5, 0.18], atol=0.005)
    assert np.array_equal(on[0], on[1]) and not np.any(on[2] & on[3]) and not np.any(on[4] & ~on[0])
    for j in range(5):  # magnitudes uniform on [0, 1] given that the feature fires
        assert stats.kstest(x[j][on[j]], "uniform").pvalue > 1e-3
    assert abs(_corr(x[0][on[0]], x[1][on[0]])) < 0.02  # correlated firing, independent magnitudes


def test_groups_share_batches_and_members_do_not():
    features = make_features(jnp.full((6, 2), 0.4), parents=[-1, 0])
    x = np.asarray(sample(jax.random.key(5), features, 5000, group_size=3))
    np.testing.assert_array_equal(x[:, 0], x[:, 2])
    assert abs(_corr(x[:, 0, 0], x[:, 3, 0])) < 5 / np.sqrt(len(x))


def test_bad_distributions_are_refused():
    with pytest.raises(ValueError, match="cycle"):
        make_features(jnp.full((1, 3), 0.5), parents=[2, 0, 1])
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        make_features(jnp.array([[0.5, 1.5]]))
    with pytest.raises(ValueError, match="equal"):
        make_features(jnp.array([[0.5, 0.4]]), correlated=[(0, 1)])
    with pytest.raises(ValueError, match="sum"):
        make_features(jnp.array([[0.6, 0.5]]), anticorrelated=[(0, 1)])
    with pytest.raises(ValueError, match="roots"):
        make_features(jnp.full((1, 3), 0.2), parents=[-1, 0, -1], correlated=[(1, 2)])
    with pytest.raises(ValueError, match="more than one"):
        make_features(jnp.full((1, 3), 0.2), correlated=[(0, 1)], anticorrelated=[(1, 2)])
    with pytest.raises(ValueError, match="group"):
        sample(jax.random.key(0), make_features(jnp.array([[0.5, 0.5], [0.4, 0.5]])), 4, group_size=2)
    with pytest.raises(ValueError, match="multiple"):
        sample(jax.random.key(0), make_features(jnp.full((3, 2), 0.5)), 4, group_size=2)
