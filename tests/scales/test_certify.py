"""certify against dense Jacobians and closed-form bounds; power transitions; the log's absolute criterion."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from superpose.memory import one_step_update
from superpose.numerics import choice_probabilities, power_scale
from superpose.scales import (
    ScaleLadder,
    centered_log,
    certify,
    choice_rule_bound,
    memory_diameter,
    power_transition,
    retrieval_step_bound,
    transition,
)


def dense_norms(fn, states, *args):
    """Largest singular value of the dense Jacobian at each state (float64 SVD of jax.jacobian)."""
    jacobians = jax.jit(jax.vmap(jax.jacobian(fn), in_axes=(0, *[None] * len(args))))(states, *args)
    return np.linalg.svd(np.asarray(jacobians, np.float64), compute_uv=False)[:, 0]


def squashed(x, weights):
    return 2.0 * jnp.tanh(weights @ x)


def linear(x, matrix):
    return matrix @ x


def test_jacobian_norm_equals_the_dense_singular_value():
    k_w, k_x = jax.random.split(jax.random.key(0))
    weights = jax.random.normal(k_w, (5, 4))
    states = 0.3 * jax.random.normal(k_x, (3, 4))
    report = certify(squashed, states, weights, bound=100.0, iterations=200)
    np.testing.assert_allclose(report.jacobian_norm, dense_norms(squashed, states, weights), rtol=1e-3)
    assert report.all_passed and report.passed.shape == (3,)
    # a complex linear map, measured as a real map of ℂ³ ≅ ℝ⁶: its constant is the largest singular value of A
    k_re, k_im = jax.random.split(k_w)
    a = jax.lax.complex(jax.random.normal(k_re, (3, 3)), jax.random.normal(k_im, (3, 3)))
    z = jax.lax.complex(states[:, :3], states[:, 1:])
    report = certify(linear, z, a, bound=100.0, iterations=100)
    np.testing.assert_allclose(report.jacobian_norm, np.linalg.svd(np.asarray(a), compute_uv=False)[0], rtol=1e-3)


def test_random_probes_underestimate_and_power_iteration_does_not():
    """A rank-one map stretches one direction by ‖u‖‖v‖; random probes in 32 dimensions rarely meet it."""
    k_u, k_v, k_x = jax.random.split(jax.random.key(1), 3)
    u, v = jax.random.normal(k_u, (32,)), jax.random.normal(k_v, (32,))
    sigma = float(jnp.linalg.norm(u) * jnp.linalg.norm(v))
    report = certify(linear, jax.random.normal(k_x, (2, 32)), jnp.outer(u, v), bound=sigma, iterations=5)
    np.testing.assert_allclose(report.jacobian_norm, sigma, rtol=1e-4)
    assert np.all(report.probe_ratio < 0.8 * sigma)


def test_certify_catches_a_function_that_breaks_its_bound_and_names_the_state():
    """tanh(3x) has slope 3·sech²(3x): above a claimed bound 2 only near 0 (state 2 here)."""
    states = jnp.array([[2.0, 2.5, 3.0], [-2.0, 2.0, 1.5], [0.0, 0.1, 2.0]])

    def steep(x):
        return jnp.tanh(3.0 * x)

    report = certify(steep, states, bound=2.0, check=False)
    slope = 3.0 / np.cosh(3.0 * np.asarray(states, np.float64)) ** 2  # closed form: J = diag(3 sech²(3x))
    # (float32's 1 − tanh² loses digits where the slope is tiny: absolute tolerance there)
    np.testing.assert_allclose(report.jacobian_norm, slope.max(axis=1), rtol=1e-3, atol=1e-5)
    np.testing.assert_array_equal(report.passed, [True, True, False])
    assert report.worst_state == 2 and report.relative_excess[2] > 0.4
    with pytest.raises(ValueError, match=r"state 2 breaks the claimed bound 2: measured amplification 3"):
        certify(steep, states, bound=2.0)


def test_retrieval_step_bound_holds_grows_with_beta_and_is_attained_at_a_midpoint():
    """v ↦ Ξᵀ softmax(βΞv) has Jacobian β Ξᵀ(diag p − ppᵀ)Ξ: bound β·diam²/4, attained with p = (½, ½)."""
    k_m, k_x = jax.random.split(jax.random.key(2))
    memories = jax.random.normal(k_m, (5, 4))
    states = 0.5 * jax.random.normal(k_x, (4, 4))
    for beta in (1.0, 4.0):
        bound = retrieval_step_bound(memories, beta)
        report = certify(one_step_update, states, memories, beta, bound=bound, iterations=60)
        dense = dense_norms(one_step_update, states, memories, beta)
        np.testing.assert_allclose(report.jacobian_norm, dense, rtol=1e-3, atol=1e-6)
        assert np.all(np.asarray(dense) <= bound)
    pair = memories[:2] / jnp.linalg.norm(memories[:2], axis=-1, keepdims=True)  # equal norms: equal logits
    midpoint = jnp.mean(pair, axis=0)[None]
    diameter_squared = float(jnp.sum((pair[0] - pair[1]) ** 2))
    assert memory_diameter(pair) ** 2 == pytest.approx(diameter_squared, rel=1e-6)
    measured = []
    for beta in (1.0, 4.0):
        report = certify(one_step_update, midpoint, pair, beta, bound=beta * diameter_squared / 4)
        measured.append(report.jacobian_norm[0])
        np.testing.assert_allclose(report.jacobian_norm, beta * diameter_squared / 4, rtol=1e-4)
        with pytest.raises(ValueError, match="state 0 breaks"):
            certify(one_step_update, midpoint, pair, beta, bound=0.99 * beta * diameter_squared / 4)
    assert measured[1] / measured[0] == pytest.approx(4.0, rel=1e-4)  # in proportion to β


def choice_from_logs(logs, mask, tau):
    return choice_probabilities(jnp.exp(logs), mask, tau)


def test_choice_rule_bound_holds_and_is_attained_with_two_tied_items():
    """p = softmax(τ L) has Jacobian τ(diag p − ppᵀ), norm <= τ/2; two tied items far above the rest attain it."""
    tau = 6.0
    mask = jnp.array([False, False, False, True, False])
    logs = jnp.concatenate([jnp.array([[0.0, 0.0, -20.0, 1.0, -20.0]]),
                            0.5 * jax.random.normal(jax.random.key(3), (3, 5))])
    report = certify(choice_from_logs, logs, mask, tau, bound=choice_rule_bound(tau), iterations=60)
    dense = dense_norms(choice_from_logs, logs, mask, tau)
    np.testing.assert_allclose(report.jacobian_norm, dense, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(report.jacobian_norm[0], tau / 2, rtol=1e-4)
    assert np.all(report.jacobian_norm[1:] < tau / 2)


def test_power_transition_is_exact_composes_and_scales_log_differences_by_the_ratio():
    activations = jnp.array([[0.2, 1.5, 3.0, 0.0, 0.9], [1.0, 2.0, 3.0, 4.0, 5.0]])
    values = np.asarray(activations, np.float64)
    logs = np.log(np.where(values > 0, values, 1.0))  # zeros stay zero: masked below
    at = {tau: power_scale(activations, tau) for tau in (2.0, 5.0, 10.0)}
    for source in at:
        for target in at:
            moved = power_transition(at[source], source, target)
            expected = np.where(values > 0, np.exp(target * (logs - logs.max(axis=-1, keepdims=True))), 0.0)
            np.testing.assert_allclose(moved, expected, rtol=2e-5, atol=1e-30)
    np.testing.assert_allclose(power_transition(power_transition(at[2.0], 2.0, 5.0), 5.0, 10.0),
                               power_transition(at[2.0], 2.0, 10.0), rtol=2e-5)
    np.testing.assert_array_equal(power_transition(activations, 3.0, 3.0), activations)  # τ₂ = τ₁: unchanged
    # log-activation differences are multiplied by exactly τ₂/τ₁: amplification τ₂/τ₁ in log space
    k_b, k_g = jax.random.split(jax.random.key(4))
    base = jax.random.normal(k_b, (64, 6))
    probe = base + 1e-2 * jax.random.normal(k_g, base.shape)
    for source, target in ((2.0, 5.0), (10.0, 1.0)):
        out = [centered_log(power_transition(jnp.exp(x), source, target)) for x in (probe, base)]
        ratio = jnp.linalg.norm(out[0] - out[1], axis=-1) / jnp.linalg.norm(centered_log(jnp.exp(probe))
                                                                           - centered_log(jnp.exp(base)), axis=-1)
        np.testing.assert_allclose(ratio, target / source, rtol=1e-3)


def power_in_log_space(logs, source, target):
    return centered_log(power_transition(jnp.exp(logs), source, target))


def test_certify_on_transitions_and_power_transitions_measures_the_ratio():
    states = jax.random.normal(jax.random.key(5), (3, 6))
    for source, target in ((0.5, 2.0), (2.0, 0.5)):
        report = certify(transition, states, source, target, bound=target / source, eps=1e-2)
        np.testing.assert_allclose(report.probe_ratio, target / source, rtol=1e-3)
        np.testing.assert_allclose(report.jacobian_norm, target / source, rtol=1e-3)
    for source, target in ((2.0, 5.0), (5.0, 1.0)):  # J = (τ₂/τ₁)(I − 11ᵀ/n): norm τ₂/τ₁
        report = certify(power_in_log_space, states, jnp.float32(source), jnp.float32(target), bound=target / source)
        np.testing.assert_allclose(report.jacobian_norm, target / source, rtol=1e-3)
    with pytest.raises(ValueError, match="source_tau must be finite and > 0"):
        power_transition(jnp.ones(3), 0.0, 1.0)
    with pytest.raises(ValueError, match="target_tau must be finite and > 0"):
        power_transition(jnp.ones(3), 1.0, jnp.inf)
    with pytest.raises(ValueError, match="beyond the ladder's largest step"):
        power_transition(jnp.ones(3), 1.0, 100.0, ladder=ScaleLadder(1.0, 100.0, 3, max_step=10.0))
    with pytest.raises(ValueError, match="values must be >= 0"):
        power_transition(-jnp.ones(3), 1.0, 2.0)


def test_the_logs_absolute_criterion_fails_for_the_exact_map():
    """The debug log required ‖T(p) − T(b)‖ < 10ε for T: scale 0.5 → 1.0 (r = 2), b a unit vector in D = 64
    and p = normalize(b + ε g), g standard normal. Normalising removes g's radial part, so
    ‖p − b‖ ≈ ε‖g_⊥‖ with ‖g_⊥‖ ~ χ₆₃, about √63·ε ≈ 7.9ε, and every correct ratio-2 map gives
    ≈ 2·7.9ε ≈ 15.8ε > 10ε. A row passes only if χ²₆₃ < (10/2)² = 25: probability ≈ 5·10⁻⁶.
    The right criterion is relative: ‖T(p) − T(b)‖ <= r‖p − b‖(1 + tolerance). Do not "fix" the map."""
    dim, eps, ratio = 64, 1e-3, 2.0
    k_b, k_g = jax.random.split(jax.random.key(6))
    b = jax.random.normal(k_b, (4000, dim))
    b = b / jnp.linalg.norm(b, axis=-1, keepdims=True)
    p = b + eps * jax.random.normal(k_g, b.shape)
    p = p / jnp.linalg.norm(p, axis=-1, keepdims=True)
    distance = np.asarray(jnp.linalg.norm(p - b, axis=-1)) / eps
    change = np.asarray(jnp.linalg.norm(transition(p, 0.5, 1.0) - transition(b, 0.5, 1.0), axis=-1)) / eps
    assert math.sqrt(63) == pytest.approx(7.94, abs=0.01) and 2 * math.sqrt(63) == pytest.approx(15.87, abs=0.01)
    assert distance.mean() == pytest.approx(7.9, abs=0.05)
    assert change.mean() == pytest.approx(15.8, abs=0.1)
    assert np.all(change >= 10.0)  # the absolute criterion rejects every row of the exact map
    pass_probability = stats.chi2.cdf((10.0 / ratio) ** 2, dim - 1)
    assert 3e-6 < pass_probability < 6e-6
    assert np.all(change <= ratio * distance * (1 + 1e-5))  # the relative criterion holds for every row
    np.testing.assert_allclose(change / distance, ratio, rtol=1e-5)


def test_bad_arguments_raise():
    states = jnp.ones((2, 3))
    with pytest.raises(ValueError, match="bound must be finite and > 0"):
        certify(jnp.sin, states, bound=0.0)
    with pytest.raises(ValueError, match=r"bound must be a scalar or have shape \(N,\) = \(2,\)"):
        certify(jnp.sin, states, bound=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"states must have shape \(N, \*shape\)"):
        certify(jnp.sin, jnp.ones(3), bound=1.0)
    with pytest.raises(ValueError, match="states must be finite"):
        certify(jnp.sin, states.at[0, 0].set(jnp.nan), bound=1.0)
    with pytest.raises(ValueError, match="probes must be an integer >= 1"):
        certify(jnp.sin, states, bound=1.0, probes=0)
    with pytest.raises(ValueError, match=r"measured amplification \(fn returned NaN or inf"):
        certify(jnp.sqrt, -states, bound=1.0)
    with pytest.raises(TypeError, match="fn must be callable"):
        certify(3.0, states, bound=1.0)
