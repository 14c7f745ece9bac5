"""Issue 15 validation gaps in superpose.memory, and the explicit BatchedEnergy protocol of descend."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from superpose.memory import DistributedMemory, descend, distributed_energy
from superpose.memory.diagnostics import divergence_bound, energy_error, exact_kernel
from superpose.memory.energies import BatchedEnergy, lse_energy_and_grad_streamed

D, Y = 4, 64


def _memories(k=3, seed=0):
    return np.random.default_rng(seed).normal(size=(k, D)).astype(np.float32)


# -- exact_kernel and the streamed exact energy: finiteness and shapes ------------------------------
def test_exact_kernel_refuses_nan_mismatched_rows_and_bad_beta():
    x, y = np.ones((2, D)), np.zeros((2, D))
    with pytest.raises(ValueError, match="x must be finite"):
        exact_kernel(np.array([[np.nan] * D, [0.0] * D]), y, 1.0)
    with pytest.raises(ValueError, match="y must be finite"):
        exact_kernel(x, np.full((2, D), np.inf), 1.0)
    with pytest.raises(ValueError, match="same D"):
        exact_kernel(x, np.zeros((2, D + 1)), 1.0)
    with pytest.raises(ValueError, match="beta must be finite and > 0"):
        exact_kernel(x, y, -1.0)
    # valid rows: the closed form exp(−β/2 ‖x − y‖²) = exp(−0.5·2·4) = e^{−4}
    np.testing.assert_allclose(np.asarray(exact_kernel(x, y, 2.0)), [math.exp(-4.0)] * 2, rtol=1e-6)


def test_streamed_energy_refuses_nan_and_fractional_chunk_and_matches_logsumexp():
    xi, v = _memories(5), np.random.default_rng(1).normal(size=(3, D)).astype(np.float32)
    with pytest.raises(ValueError, match="states must be finite"):
        lse_energy_and_grad_streamed(np.where(np.eye(3, D, dtype=bool), np.nan, v), xi, 2.0)
    with pytest.raises(ValueError, match="memories must be finite"):
        lse_energy_and_grad_streamed(v, np.where(np.eye(5, D, dtype=bool), np.inf, xi), 2.0)
    with pytest.raises(ValueError, match="chunk must be an integer >= 1"):
        lse_energy_and_grad_streamed(v, xi, 2.0, chunk=2.5)
    e, g = lse_energy_and_grad_streamed(v, xi, 2.0, chunk=2)
    # independent truth in float64: E = −(1/β) log Σ exp(−β/2 ‖v − ξ‖²), ∇E = v − Σ softmax·ξ
    sq = ((v[:, None, :].astype(float) - xi[None].astype(float)) ** 2).sum(-1)
    logits = -0.5 * 2.0 * sq
    top = logits.max(1, keepdims=True)
    w = np.exp(logits - top)
    np.testing.assert_allclose(np.asarray(e), -(top[:, 0] + np.log(w.sum(1))) / 2.0, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(g), v - (w / w.sum(1, keepdims=True)) @ xi, atol=1e-5)


def test_energy_error_refuses_memories_of_another_dimension():
    memory = DistributedMemory.create(jax.random.key(0), D, Y, 1.0, projection="regenerated")
    with pytest.raises(ValueError, match=f"D = {D} columns"):
        energy_error(memory, np.zeros((3, D + 1)), np.zeros((2, D)))


# -- divergence_bound: ranges, and no silent clamp of β/2 -------------------------------------------
BOUND = dict(beta=25.0, num_memories=20, dim=30, num_features=1000, steps=10, step_size=1e-12, kernel_error_sup=0.1)


@pytest.mark.parametrize("change", [
    {"dim": 0}, {"num_features": 0}, {"num_features": 2.5}, {"step_size": -1e-12}, {"step_size": float("nan")},
    {"kernel_error_sup": -0.1}, {"kernel_error_sup": float("inf")},
])
def test_divergence_bound_refuses_out_of_range_arguments(change):
    with pytest.raises(ValueError, match=next(iter(change))):
        divergence_bound(np.zeros(2), **{**BOUND, **change})


def test_divergence_bound_refuses_nonfinite_energies():
    with pytest.raises(ValueError, match="exact_energies must be finite"):
        divergence_bound(np.array([0.0, np.nan]), **BOUND)


def test_divergence_bound_does_not_clamp_large_beta():
    # β = 1500: log C2 = log(αT) + β/2 + log(2Kβ) (+ a negligible term) = log(1e-320) + 750 + log(3000) ≈ 21.
    # Clamping β/2 at 700 would give C2 ≈ 3e-13 and call the bound applicable.
    b = divergence_bound(np.zeros(1), beta=1500.0, num_memories=1, dim=2, num_features=4, steps=1,
                         step_size=1e-320, kernel_error_sup=0.1)
    want_log_c2 = math.log(1e-320) + 750.0 + math.log(3000.0)
    assert math.log(b.c2) == pytest.approx(want_log_c2, abs=1e-3)  # 1e-320 is subnormal: few digits
    assert not b.applicable and b.max_step_size == 0.0 and np.isinf(np.asarray(b.bound)).all()
    # at a moderate β the log-space constants equal the paper's formulas evaluated directly
    b = divergence_bound(np.array([0.0, 1.0]), **BOUND)
    growth = 1 + 2 * 20 * 25.0 * math.exp(12.5)
    assert b.c2 == pytest.approx(1e-12 * 10 * growth, rel=1e-12)
    assert b.c1 == pytest.approx(0.1 / math.sqrt(30 / 1000), rel=1e-12)
    assert b.max_step_size == pytest.approx(0.5 / (10 * growth), rel=1e-12)
    want = b.c1 * b.c2 * np.exp(np.array([0.0, 1.0]) - 0.5) / (25.0 * (1 - b.c2))
    np.testing.assert_allclose(np.asarray(b.bound), want, rtol=1e-6)


# -- forget and merge ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_stored():
    """A memory holding the first two rows of _memories(3)."""
    return DistributedMemory.from_memories(_memories(3)[:2], jax.random.key(0), Y, 1.0)


def test_forget_refuses_more_than_was_stored_and_exact_forget_empties_t(two_stored):
    xi, memory = _memories(3), two_stored
    with pytest.raises(ValueError, match="cannot forget 3 memories: this memory holds 2"):
        memory.forget(xi)
    emptied = memory.forget(xi[:2])
    assert int(emptied.count) == 0
    np.testing.assert_allclose(np.asarray(emptied.T), 0.0, atol=1e-5)  # T of an empty memory is 0


@pytest.mark.parametrize("setting, options", [
    ("floor", {"floor": 1e-6}),
    ("dtype", {"dtype": jnp.bfloat16}),
    ("projection", {"projection": "stored"}),
    ("precision", {"precision": "default"}),
])
def test_merge_refuses_mismatched_floor_dtype_and_projection(setting, options):
    key = jax.random.key(0)
    base = DistributedMemory.create(key, D, Y, 1.0, projection="regenerated")
    other = DistributedMemory.create(key, D, Y, 1.0, **{"projection": "regenerated", **options})
    with pytest.raises(ValueError, match=f"different settings \\({setting}: "):
        base.merge(other)


def test_product_precision_is_validated_and_default_is_float32_on_cpu():
    with pytest.raises(ValueError, match=r"precision must be one of \('highest', 'default'\), got 'tf32'"):
        DistributedMemory.create(jax.random.key(0), D, Y, 1.0, precision="tf32")
    memories, states = _memories(5), _memories(7)[5:] + 0.1
    energies = {}
    for precision in ("highest", "default"):
        memory = DistributedMemory.from_memories(memories, jax.random.key(0), Y, 2.0, precision=precision)
        assert memory.precision == precision
        # the products are compiled at the asked precision (on CPU the values cannot tell)
        lowered = jax.jit(lambda v, m=memory: m.energy_and_grad(v)).lower(states).as_text()
        assert ("HIGHEST" in lowered) == (precision == "highest"), precision
        energies[precision] = [np.asarray(a) for a in memory.energy_and_grad(states)]
    for fast, full in zip(energies["default"], energies["highest"]):
        if jax.default_backend() == "cpu":  # XLA's CPU products are full float32 at either precision
            np.testing.assert_array_equal(fast, full)
        else:  # TF32 errs by ~1e-3 of each angle (β = 2, |v| ~ 1): a bound, not an equality
            np.testing.assert_allclose(fast, full, rtol=2e-2, atol=2e-2)


# -- descend's BatchedEnergy protocol -----------------------------------------------------------------
def _half_square(state):
    return 0.5 * jnp.sum(state**2)


def _shifted_batched(states, centre):
    """The batched form of ½‖v − c‖², deliberately unlike `single`, to see which one descend runs."""
    return 0.5 * jnp.sum((states - centre) ** 2, axis=-1), states - centre


def test_descend_runs_the_batched_form_of_a_batched_energy():
    centre = jnp.array([1.0, -2.0, 0.5, 3.0])
    shifted = BatchedEnergy(lambda s, c: _half_square(s - c), _shifted_batched)
    start, alpha, steps = jnp.zeros((2, D)), 0.25, 7
    out, _ = descend(shifted, start, centre, steps=steps, step_size=alpha)
    # gradient descent on ½‖v − c‖²: v_T = c + (1 − α)^T (v_0 − c)
    want = centre + (1 - alpha) ** steps * (start - centre)
    np.testing.assert_allclose(np.asarray(out), np.asarray(want), rtol=1e-6)
    assert float(shifted(jnp.ones(D), centre)) == pytest.approx(0.5 * float(jnp.sum((1 - centre) ** 2)))


def test_descend_refuses_an_unwrapped_batched_attribute_and_bad_wrappers():
    def energy(state, centre):
        return _half_square(state - centre)

    energy.batched = _shifted_batched
    with pytest.raises(TypeError, match="not a BatchedEnergy"):
        descend(energy, jnp.zeros((1, D)), jnp.ones(D), steps=2)
    with pytest.raises(TypeError, match="BatchedEnergy.batched must be callable"):
        BatchedEnergy(_half_square, None)
    with pytest.raises(TypeError, match="energy must be callable"):
        descend("lse", jnp.zeros((1, D)), steps=2)


def test_distributed_energy_is_a_batched_energy_that_matches_the_memory(two_stored):
    memory = two_stored
    assert isinstance(distributed_energy, BatchedEnergy)
    q = jnp.asarray(np.random.default_rng(2).normal(size=(2, D)), jnp.float32)
    want_e, want_g = memory.energy_and_grad(q)
    single = jax.vmap(distributed_energy, in_axes=(0, None))(q, memory)
    np.testing.assert_allclose(np.asarray(single), np.asarray(want_e), rtol=1e-5)
    _, g = distributed_energy.batched(q, memory)
    np.testing.assert_allclose(np.asarray(g), np.asarray(want_g), rtol=1e-5, atol=1e-6)
