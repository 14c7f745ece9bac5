"""power_scale, masked_power_scale and choice_probabilities against the seed and closed forms."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from superpose.numerics import (
    choice_probabilities,
    log_choice_probabilities,
    log_choice_probability_of,
    masked_power_scale,
    power_scale,
)
from superpose.numerics import float64_enabled
from superpose.numerics.experiments import scale_then_mask

SEED_ACTIVATIONS = [0.05, 1e8, 3.0, 2.8, 2.5]
SEED_RECALLED = [False, True, False, False, False]


def reference_power_scale(values, scale):
    """Plain Python-float (v/max)**scale, independent of the log-space implementation."""
    values = [float(v) for v in values]
    top = max(values)
    return [(v / top) ** scale if v > 0 else 0.0 for v in values]


# -- the seed's printed outputs -------------------------------------------------------------
def test_seed_power_two():
    out = power_scale(jnp.array([1.0, 2.0, 3.0, 4.0]), 2.0)
    np.testing.assert_array_equal(out, np.float32([0.0625, 0.25, 0.5625, 1.0]))


def test_seed_onehot_limit():
    vector = jnp.array([1.0, 2.0, 5.0, 3.0])
    np.testing.assert_allclose(power_scale(vector, 100.0), [0.0, 0.0, 1.0, 6.533167e-23], rtol=1e-6)
    np.testing.assert_allclose(
        power_scale(vector, 5.0), [3.1999993e-04, 1.0239999e-02, 1.0, 7.7759996e-02], rtol=1e-6
    )
    np.testing.assert_allclose(
        power_scale(vector, 20.0), [1.0485754e-14, 1.0995110e-08, 1.0, 3.6561578e-05], rtol=1e-6
    )


def test_seed_mask_then_scale_float32():
    probs = choice_probabilities(jnp.array(SEED_ACTIVATIONS, jnp.float32), jnp.array(SEED_RECALLED), 90.0)
    assert probs.dtype == jnp.float32
    np.testing.assert_allclose(
        probs, np.float32([0, 0, 0.99799335, 2.0064958e-03, 7.4613226e-08]), rtol=2e-7, atol=0
    )


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_scale_then_mask_collapses_to_zeros(precision):
    """Scaling first divides by the masked 1e8: (3/1e8)**90 ≈ 1e-677 underflows in both precisions."""
    with float64_enabled():
        values = jnp.array(SEED_ACTIVATIONS, dtype=precision)
        wrong = scale_then_mask(values, jnp.array(SEED_RECALLED), 90.0)
        right = choice_probabilities(values, jnp.array(SEED_RECALLED), 90.0)
        assert wrong.dtype == np.dtype(precision)
        right_total = float(jnp.sum(right))
    np.testing.assert_array_equal(wrong, np.zeros(5))
    assert right_total == pytest.approx(1.0, abs=1e-6)


# -- conventions and edge cases -------------------------------------------------------------
def test_scale_one_and_all_zero_return_input():
    v = jnp.array([1.0, 2.0, 5.0, 3.0])
    np.testing.assert_array_equal(power_scale(v, 1.0), v)
    np.testing.assert_array_equal(power_scale(jnp.zeros(4), 7.0), jnp.zeros(4))


def test_scale_zero_is_indicator_of_support():
    """The seed gives NaN here (0·−inf); the fix is 1 on nonzero entries, 0 elsewhere."""
    out = power_scale(jnp.array([0.0, 2.0, 0.0, 3.0]), 0.0)
    np.testing.assert_array_equal(out, [0.0, 1.0, 0.0, 1.0])
    out = jax.jit(power_scale)(jnp.array([0.0, 2.0, 0.0, 3.0]), 0.0)
    np.testing.assert_array_equal(out, [0.0, 1.0, 0.0, 1.0])


@pytest.mark.parametrize(
    "values, scale, match",
    [
        ([1.0, -0.5], 2.0, "values must be >= 0"),
        ([1.0, 2.0], -1.0, "scale must be >= 0"),
        ([1.0, np.nan], 2.0, "values must be finite"),
        ([1.0, 2.0], np.inf, "scale must be finite"),
        (3.0, 2.0, r"shape \(..., N\)"),
    ],
)
def test_bad_inputs_raise_eagerly(values, scale, match):
    with pytest.raises(ValueError, match=match):
        power_scale(jnp.asarray(values), scale)


def test_traced_negative_entry_gives_nan_row_not_silent_zero():
    out = jax.jit(power_scale)(jnp.array([[1.0, -1.0, 3.0], [1.0, 2.0, 3.0]]), 2.0)
    assert np.isnan(out[0]).all()
    np.testing.assert_allclose(out[1], [1 / 9, 4 / 9, 1.0], rtol=1e-6)


def test_per_row_scale_and_leading_shapes():
    values = jax.random.uniform(jax.random.key(0), (2, 3, 5))
    scales = jnp.array([[0.5, 2.0, 30.0], [1.5, 7.0, 99.0]])
    out = power_scale(values, scales)
    for i in range(2):
        for j in range(3):
            np.testing.assert_allclose(out[i, j], reference_power_scale(values[i, j], float(scales[i, j])),
                                       rtol=2e-5, atol=1e-30)
    with pytest.raises(ValueError, match="leading shape"):
        power_scale(values, jnp.ones(4))


def test_jit_and_vmap_agree_with_eager():
    values = jax.random.uniform(jax.random.key(1), (8, 6))
    scales = jnp.linspace(0.0, 60.0, 8)
    eager = power_scale(values, scales)
    jitted = jax.jit(power_scale)(values, scales)
    mapped = jax.vmap(power_scale)(values, scales)
    np.testing.assert_allclose(jitted, eager, rtol=1e-6)
    np.testing.assert_allclose(mapped, eager, rtol=1e-6)


def test_gradients_finite_and_correct_including_masked_entries():
    values = jnp.array([0.0, 0.4, 1.3, 2.0, 0.0])
    mask = jnp.array([False, False, False, True, True])
    scale = 3.7

    def loss(v, s):
        return jnp.sum(choice_probabilities(v, mask, s) * jnp.arange(5.0))

    grad_v, grad_s = jax.grad(loss, argnums=(0, 1))(values, scale)
    assert np.isfinite(grad_v).all() and np.isfinite(grad_s)
    # Central finite differences in float64 as the independent check.
    with float64_enabled():
        v64 = jnp.asarray(values, jnp.float64)
        eps = 1e-6
        fd_s = (loss(v64, scale + eps) - loss(v64, scale - eps)) / (2 * eps)
        for i in (1, 2):
            step = jnp.zeros(5, jnp.float64).at[i].set(eps)
            fd = (loss(v64 + step, scale) - loss(v64 - step, scale)) / (2 * eps)
            assert float(grad_v[i]) == pytest.approx(float(fd), rel=1e-3, abs=1e-5)
    assert float(grad_s) == pytest.approx(float(fd_s), rel=1e-3, abs=1e-5)
    assert float(grad_v[0]) == 0.0 and float(grad_v[4]) == 0.0  # zeros: no log(0) in the path
    assert float(grad_v[3]) == 0.0  # masked: cannot affect the choice


def test_power_scale_gradient_in_scale_matches_closed_form():
    v = jnp.array([0.0, 1.0, 2.0, 4.0])
    s = 2.5
    grad = jax.grad(lambda scale: jnp.sum(power_scale(v, scale)))(s)
    ratios = np.array([0.25, 0.5])
    expected = np.sum(ratios**s * np.log(ratios))
    assert float(grad) == pytest.approx(expected, rel=1e-5)


def test_masked_power_scale_takes_max_over_unmasked():
    out = masked_power_scale(jnp.array([1.0, 10.0, 2.0]), jnp.array([False, True, False]), 2.0)
    np.testing.assert_allclose(out, [0.25, 0.0, 1.0])
    with pytest.raises(TypeError, match="boolean"):
        masked_power_scale(jnp.ones(3), jnp.ones(3), 2.0)
    with pytest.raises(ValueError, match="does not broadcast"):
        masked_power_scale(jnp.ones(3), jnp.ones(4, bool), 2.0)


def test_choice_probabilities_edge_rows_and_floor():
    mask = jnp.array([False, True, False, False])
    zeros = choice_probabilities(jnp.zeros(4), mask, 5.0)
    np.testing.assert_allclose(zeros, [1 / 3, 0, 1 / 3, 1 / 3])  # uniform over the available
    np.testing.assert_array_equal(choice_probabilities(jnp.ones(4), jnp.ones(4, bool), 5.0), jnp.zeros(4))
    values = jnp.array([1.0, 5.0, 2.0, 1e-3])
    floored = choice_probabilities(values, mask, 90.0, floor=0.03)
    assert float(floored.sum()) == pytest.approx(1.0, abs=1e-6)
    assert float(floored[3]) >= 0.01 - 1e-7 and float(floored[1]) == 0.0
    with pytest.raises(ValueError, match="floor"):
        choice_probabilities(values, mask, 2.0, floor=1.0)


def test_large_sensitivity_float32_never_uniform_or_nan():
    """Fitted CMR sensitivities reach ~100: the choice must stay peaked and finite."""
    values = jax.random.uniform(jax.random.key(2), (64, 24), minval=1e-6, maxval=1.0)
    mask = jax.random.bernoulli(jax.random.key(3), 0.3, (64, 24)).at[:, 0].set(False)
    probs = choice_probabilities(values, mask, 100.0)
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    best = jnp.argmax(jnp.where(mask, -1.0, values), axis=-1)
    assert (jnp.argmax(probs, axis=-1) == best).all()


# -- properties (hypothesis) -----------------------------------------------------------------
positive_vectors = st.lists(st.floats(1e-3, 1e3), min_size=2, max_size=8)
scales = st.floats(0.05, 40.0).filter(lambda s: abs(s - 1.0) > 1e-3)


@settings(max_examples=60, deadline=None)
@given(positive_vectors, scales)
def test_property_order_preserved_and_max_is_one(values, scale):
    v = np.asarray(values, np.float32)
    out = np.asarray(power_scale(jnp.asarray(v), scale))
    assert out.max() == pytest.approx(1.0)
    order = np.argsort(v, kind="stable")
    assert np.all(np.diff(out[order]) >= 0)


@settings(max_examples=60, deadline=None)
@given(positive_vectors, st.floats(0.1, 6.0), st.floats(0.1, 6.0))
def test_property_composition(values, a, b):
    assume(abs(a - 1) > 1e-3 and abs(b - 1) > 1e-3 and abs(a * b - 1) > 1e-3)
    with float64_enabled():
        v = jnp.asarray(values, jnp.float64)
        twice = power_scale(power_scale(v, a), b)
        once = power_scale(v, a * b)
        np.testing.assert_allclose(twice, once, rtol=1e-9, atol=1e-300)


@settings(max_examples=60, deadline=None)
@given(positive_vectors, scales, st.floats(1e-3, 1e3))
def test_property_scale_invariance(values, scale, constant):
    with float64_enabled():
        v = jnp.asarray(values, jnp.float64)
        np.testing.assert_allclose(power_scale(v * constant, scale), power_scale(v, scale), rtol=1e-9, atol=1e-300)


@settings(max_examples=60, deadline=None)
@given(positive_vectors, scales)
def test_property_float32_matches_float64_and_reference(values, scale):
    with float64_enabled():
        out64 = np.asarray(power_scale(jnp.asarray(values, jnp.float64), scale))
    out32 = np.asarray(power_scale(jnp.asarray(values, jnp.float32), scale))
    expected = reference_power_scale(values, scale)
    np.testing.assert_allclose(out64, expected, rtol=1e-9, atol=1e-300)
    representable = out64 > 1e-30  # float32 flushes below ~1e-38; compare where it does not underflow
    np.testing.assert_allclose(out32[representable], out64[representable], rtol=5e-4)


def _log_luce_float64(values, mask, scale):
    """Exact log Luce probabilities in float64 with Python's math (independent of superpose)."""
    out = []
    for v, m in zip(values, mask):
        live = [math.log(x) * scale for x, hidden in zip(v, m) if not hidden and x > 0]
        top = max(live)
        log_total = top + math.log(sum(math.exp(t - top) for t in live))
        out.append([-math.inf if hidden or x == 0 else math.log(x) * scale - log_total for x, hidden in zip(v, m)])
    return np.array(out)


def test_log_choice_probabilities_do_not_underflow_in_float32():
    values = np.array([[0.05, 1e8, 3.0, 2.8, 2.5], [1.0, 2.0, 3.0, 4.0, 0.0]])
    mask = np.array([[False, True, False, False, False], [False, False, False, False, False]])
    expected = _log_luce_float64(values, mask, 100.0)
    got = np.asarray(log_choice_probabilities(jnp.asarray(values, jnp.float32), mask, 100.0))
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(np.isfinite(got), finite)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-5, atol=1e-6)
    assert got[0, 0] < -400  # (0.05/3)^100 ≈ 1e-178: below float32's range, still exact in log space
    picked = np.asarray(log_choice_probability_of(jnp.asarray(values, jnp.float32), mask, 100.0, np.array([0, 3])))
    np.testing.assert_allclose(picked, [expected[0, 0], expected[1, 3]], rtol=1e-5, atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(
    values=arrays(np.float64, (3, 6), elements=st.floats(0.0, 1e3)),
    hidden=arrays(np.bool_, (3, 6)),
    scale=st.floats(0.0, 100.0),
    index=arrays(np.int64, (3,), elements=st.integers(0, 5)),
)
def test_property_log_forms_agree_with_choice_probabilities(values, hidden, scale, index):
    with float64_enabled():
        probs = np.asarray(choice_probabilities(values, hidden, scale))
        logs = np.asarray(log_choice_probabilities(values, hidden, scale))
        picked = np.asarray(log_choice_probability_of(values, hidden, scale, index))
    big = probs > 1e-250
    np.testing.assert_allclose(np.exp(logs[big]), probs[big], rtol=1e-9)
    assert np.all(np.isneginf(logs[probs == 0]) | (logs[probs == 0] < -500))
    np.testing.assert_array_equal(picked, np.take_along_axis(logs, index[:, None], 1)[:, 0])
