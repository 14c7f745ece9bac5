"""Energies, descent, the one-step update, sign updates and critical β against closed forms."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from superpose.memory import (
    critical_beta,
    descend,
    dot_lse_energy,
    hopfield_energy,
    lse_energy,
    lse_energy_and_grad_streamed,
    one_step_update,
    polynomial_energy,
    sign_update,
)
from superpose.numerics import float64_enabled


def brute_lse(v, xi, beta):
    """Plain float64 numpy reference of the log-sum-exp energy."""
    v, xi = np.asarray(v, np.float64), np.asarray(xi, np.float64)
    a = -0.5 * beta * np.sum((v - xi) ** 2, axis=-1)
    top = a.max()
    return -(top + math.log(np.exp(a - top).sum())) / beta


@pytest.fixture
def patterns():
    k1, k2 = jax.random.split(jax.random.key(0))
    return jax.random.normal(k1, (12, 6)), jax.random.normal(k2, (5, 6))


def test_lse_energy_matches_brute_force_and_is_finite_at_huge_beta(patterns):
    xi, v = patterns
    for beta in (0.01, 1.0, 25.0):
        got = jax.vmap(lse_energy, in_axes=(0, None, None))(v, xi, beta)
        np.testing.assert_allclose(got, [brute_lse(s, xi, beta) for s in v], rtol=2e-5, atol=1e-6)
    far = jax.vmap(lse_energy, in_axes=(0, None, None))(v * 50, xi, 1e4)
    assert np.isfinite(far).all()
    np.testing.assert_allclose(far, [brute_lse(s, xi, 1e4) for s in v * 50], rtol=1e-5)
    assert np.isfinite(jax.vmap(jax.grad(lse_energy), in_axes=(0, None, None))(v * 50, xi, 1e4)).all()
    with pytest.raises(ValueError, match="beta"):
        lse_energy(v[0], xi, 0.0)


def test_dot_energy_gradient_is_the_one_step_update(patterns):
    xi, v = patterns
    beta = 3.0
    grad = jax.vmap(jax.grad(dot_lse_energy), in_axes=(0, None, None))(v, xi, beta)
    np.testing.assert_allclose(v - grad, one_step_update(v, xi, beta), rtol=1e-5, atol=1e-6)
    e = dot_lse_energy(v[0], xi, 1e4)
    assert np.isfinite(e)
    with_constants = dot_lse_energy(v[0], xi, beta, constants=True)
    expected = float(dot_lse_energy(v[0], xi, beta)) + math.log(12) / beta + 0.5 * float(jnp.max(jnp.sum(xi**2, -1)))
    assert float(with_constants) == pytest.approx(expected, rel=1e-6)


def test_autodiff_gradients_match_finite_differences(patterns):
    xi, v = patterns
    with float64_enabled():
        xi64, v64 = jnp.asarray(xi, jnp.float64), jnp.asarray(v[0], jnp.float64)
        for fn, args in ((lse_energy, (xi64, 2.0)), (dot_lse_energy, (xi64, 2.0))):
            grad = jax.grad(fn)(v64, *args)
            eps = 1e-6
            for i in range(6):
                e = jnp.zeros(6, jnp.float64).at[i].set(eps)
                fd = (fn(v64 + e, *args) - fn(v64 - e, *args)) / (2 * eps)
                assert float(grad[i]) == pytest.approx(float(fd), rel=1e-6, abs=1e-9)


def test_hopfield_and_polynomial_energies_match_explicit_sums():
    key = jax.random.key(1)
    xi = jnp.sign(jax.random.normal(key, (7, 16)))
    s = jnp.sign(jax.random.normal(jax.random.key(2), (16,)))
    w = (xi.T @ xi) / 16
    w = w - jnp.diag(jnp.diag(w))
    assert float(hopfield_energy(s, xi)) == pytest.approx(float(-0.5 * s @ w @ s), rel=1e-6)
    raw = -sum(float(xi[m] @ s) ** 3 for m in range(7))
    assert float(polynomial_energy(s, xi, 3, normalize=False)) == pytest.approx(raw, rel=1e-6)
    assert float(polynomial_energy(s, xi, 3)) == pytest.approx(raw / 16**3, rel=1e-6)
    assert np.isfinite(polynomial_energy(jnp.ones(400), jnp.ones((3, 400)), 60))
    with pytest.raises(ValueError, match="order"):
        polynomial_energy(s, xi, 1)


def test_streamed_exact_energy_matches_direct():
    k1, k2 = jax.random.split(jax.random.key(3))
    xi = jax.random.normal(k1, (1000, 20)) * 0.3
    v = jax.random.normal(k2, (17, 20)) * 0.3
    e, g = lse_energy_and_grad_streamed(v, xi, 7.0, chunk=96)
    e_ref, g_ref = jax.vmap(jax.value_and_grad(lse_energy), in_axes=(0, None, None))(v, xi, 7.0)
    np.testing.assert_allclose(e, e_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(g, g_ref, rtol=1e-3, atol=1e-4)


def test_descend_plain_steps_match_manual_updates(patterns):
    xi, v = patterns
    out, result = descend(lse_energy, v, xi, 2.0, steps=3, step_size=0.05, record=True)
    manual = v
    energies = []
    for _ in range(3):
        e, g = jax.vmap(jax.value_and_grad(lse_energy), in_axes=(0, None, None))(manual, xi, 2.0)
        energies.append(e)
        manual = manual - 0.05 * g
    np.testing.assert_allclose(out, manual, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.trace, np.stack(energies), rtol=1e-5, atol=1e-6)
    assert result.trace.shape == (3, 5) and (result.steps == 3).all() and not result.converged.any()


def test_descend_clamped_coordinates_never_move_and_energy_decreases(patterns):
    xi, v = patterns
    clamp = jnp.array([True, False, True, False, False, True])
    out, result = descend(lse_energy, v, xi, 1.0, steps=200, step_size=0.1, clamp=clamp, record=True)
    np.testing.assert_array_equal(out[:, clamp], v[:, clamp])
    assert not np.allclose(out[:, ~clamp], v[:, ~clamp])
    assert (np.diff(np.asarray(result.trace), axis=0) <= 1e-6).all()


def test_descend_early_stop_batch_shapes_and_schedule(patterns):
    xi, _ = patterns
    near = xi[:4] + 1e-3
    out, result = descend(lse_energy, near.reshape(2, 2, 6), xi, 20.0, steps=5000, step_size=0.05, tol=1e-5)
    assert out.shape == (2, 2, 6) and result.converged.all()
    assert (result.grad_norm <= 1e-5).all()
    # near a memory the Hessian is I (the other memories are far at β = 20), so ‖∇E‖ = ‖v − ξ‖ shrinks by
    # 1 − α per step from ‖∇E₀‖ = √6·10⁻³: the stop comes after ⌈log(tol/‖∇E₀‖)/log(1 − α)⌉ = 108 steps
    # (measured 107–108: float32 rounding at the threshold), at ‖v − ξ‖ ≤ tol (measured 3.9e-6)
    expected_steps = math.ceil(math.log(1e-5 / (math.sqrt(6) * 1e-3)) / math.log(1 - 0.05))
    assert expected_steps == 108 and (np.abs(np.asarray(result.steps) - expected_steps) <= 1).all(), result.steps
    np.testing.assert_allclose(out.reshape(4, 6), xi[:4], rtol=0, atol=1e-5)
    betas = jnp.geomspace(0.01, 20.0, 300)
    annealed, res = descend(lse_energy, near, xi, steps=300, step_size=0.05, betas=betas, record=True)
    assert res.trace.shape == (300, 4) and np.isfinite(annealed).all()
    with pytest.raises(ValueError, match="betas must have shape"):
        descend(lse_energy, near, xi, steps=10, betas=betas)
    with pytest.raises(ValueError, match=r"need one state of shape \(D,\)"):
        descend(lse_energy, jnp.ones((3, 5)), xi, 1.0, steps=3)
    with pytest.raises(TypeError, match="clamp must be boolean"):
        descend(lse_energy, near, xi, 1.0, clamp=jnp.ones(6))


def test_sign_update_retrieves_and_never_raises_energy():
    key = jax.random.key(4)
    xi = jnp.sign(jax.random.normal(key, (5, 100)))
    flips = jax.random.bernoulli(jax.random.key(5), 0.15, (5, 100))
    noisy = jnp.where(flips, -xi, xi)
    for order in (2, 3):
        out, result = sign_update(noisy, xi, jax.random.key(6), order=order)
        np.testing.assert_array_equal(out, xi)
        assert result.converged.all()
        before = jax.vmap(polynomial_energy, in_axes=(0, None, None))(noisy, xi, order)
        assert (result.energy <= before + 1e-6).all()
    with pytest.raises(ValueError, match=r"\+1 and -1"):
        sign_update(noisy * 0.5, xi, jax.random.key(0))


def test_critical_beta_matches_two_memory_closed_form():
    # Two memories: the gradient at ξ¹ is w (ξ¹ − ξ²) with w = 1 / (1 + exp(β d²/2)).
    xi = jnp.array([[0.0, 0.0], [0.6, 0.8]])  # distance 1, largest component 0.8
    atol = 1e-6
    expected = 2.0 * math.log(0.8 / atol - 1.0)
    got = critical_beta(xi, atol=atol, precision=1e-4)
    assert got == pytest.approx(expected, abs=2e-4)
    with pytest.raises(ValueError, match="beta_max"):
        critical_beta(jnp.array([[0.0, 0.0], [1e-3, 0.0]]), beta_max=10.0)
