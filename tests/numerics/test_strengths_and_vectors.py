"""stable_exp, normalize and safe_norm against closed forms."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from superpose.numerics import exponent_limits, normalize, safe_norm, stable_exp
from superpose.numerics import float64_enabled


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_stable_exp_always_finite_and_positive(dtype):
    with float64_enabled():
        x = jnp.array([-1e6, -800.0, -100.0, 0.0, 3.0, 100.0, 800.0, 1e6], dtype=dtype)
        out = np.asarray(stable_exp(x))
        assert out.dtype == np.dtype(dtype)
    assert np.isfinite(out).all() and (out > 0).all()
    assert out[4] == pytest.approx(math.exp(3.0), rel=1e-6)
    assert np.all(np.diff(out) >= 0)


def test_stable_exp_respects_user_bounds_and_gradient():
    out = stable_exp(jnp.array([-5.0, 0.5, 5.0]), lo=-2.0, hi=2.0)
    np.testing.assert_allclose(out, np.exp([-2.0, 0.5, 2.0]), rtol=1e-6)
    grad = jax.grad(lambda x: jnp.sum(stable_exp(x, lo=-2.0, hi=2.0)))(jnp.array([-5.0, 0.5, 5.0]))
    np.testing.assert_allclose(grad, [0.0, math.exp(0.5), 0.0], rtol=1e-6)


def test_exponent_limits_match_the_dtype():
    lo, hi = exponent_limits(jnp.float32)
    assert np.isfinite(np.exp(np.float32(hi))) and np.exp(np.float32(lo)) >= np.finfo(np.float32).tiny


@pytest.mark.parametrize(
    "args, match",
    [((jnp.array([np.nan]),), "finite"), ((jnp.array([1.0]), 3.0, 2.0), "lo < hi"),
     ((jnp.array([1.0]), 1000.0, 2000.0), "do not overlap")],
)
def test_stable_exp_bad_inputs(args, match):
    with pytest.raises(ValueError, match=match):
        stable_exp(*args)


def test_normalize_unit_norm_zero_vector_and_gradient():
    x = jnp.array([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_allclose(normalize(x), [[0.6, 0.8], [0.0, 0.0]], rtol=1e-6)
    grad = jax.grad(lambda v: jnp.sum(normalize(v)))(x)
    assert np.isfinite(grad).all()
    # d/dx of sum(x/|x|) at (3,4): (1/|x|) * (1 - x*(x·1)/|x|²) = [0.2*(1-0.6*1.4), 0.2*(1-0.8*1.4)]
    np.testing.assert_allclose(grad[0], [0.2 * (1 - 0.6 * 1.4), 0.2 * (1 - 0.8 * 1.4)], rtol=1e-5)
    assert float(jax.grad(lambda v: safe_norm(v))(jnp.zeros(3)).sum()) == 0.0
    with pytest.raises(ValueError, match="finite"):
        normalize(jnp.array([1.0, np.inf]))


def test_sincos_matches_float64_library_values():
    from superpose.numerics import sincos

    x = np.random.default_rng(0).uniform(-1e5, 1e5, 200_000).astype(np.float32)
    x[:7] = [0.0, -0.0, np.pi / 4, np.pi / 2, -np.pi, 1e-30, 3.0]
    s, c = jax.jit(sincos)(jnp.asarray(x))
    x64 = x.astype(np.float64)
    assert np.abs(np.asarray(s) - np.sin(x64)).max() < 1.5e-7
    assert np.abs(np.asarray(c) - np.cos(x64)).max() < 1.5e-7
    with float64_enabled():
        s64, c64 = sincos(jnp.asarray(x64))
        assert s64.dtype == jnp.float64
    np.testing.assert_array_equal(np.asarray(s64), np.sin(x64))
