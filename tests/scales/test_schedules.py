"""BetaSchedule against closed forms, and memory's descend driven by it against a plain Python loop."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from superpose.memory import descend, lse_energy
from superpose.scales import BetaSchedule, ScaleLadder


def test_schedule_values_match_closed_forms():
    geometric = BetaSchedule(0.1, 10.0, 5)
    np.testing.assert_allclose(np.asarray(geometric), 0.1 * 100.0 ** (np.arange(5) / 4), rtol=1e-14)
    assert geometric.as_numpy()[0] == 0.1 and geometric.as_numpy()[-1] == 10.0 and len(geometric) == 5
    np.testing.assert_allclose(geometric.ratios(), np.sqrt(10.0), rtol=1e-14)
    linear = BetaSchedule(1.0, 3.0, 5, "linear")
    np.testing.assert_allclose(linear.values(jnp.float32), [1.0, 1.5, 2.0, 2.5, 3.0])
    assert linear.values().shape == (5,) and linear.values().dtype == jnp.float32
    np.testing.assert_array_equal(BetaSchedule.constant(2.0, 3).as_numpy(), [2.0, 2.0, 2.0])
    ladder = ScaleLadder(0.5, 8.0, 5)
    np.testing.assert_allclose(BetaSchedule.from_ladder(ladder).as_numpy(), ladder.scales, rtol=1e-15)


def test_descend_with_a_schedule_equals_a_python_loop_of_gradient_steps():
    """v_{k+1} = v_k − α ∇E_{β_k}(v_k), written out step by step (no while_loop, no schedule indexing)."""
    k_m, k_q = jax.random.split(jax.random.key(0))
    memories = jax.random.normal(k_m, (6, 4))
    queries = jax.random.normal(k_q, (3, 4))
    schedule = BetaSchedule(0.05, 20.0, 25)
    step_size = 0.2
    out, result = descend(lse_energy, queries, memories, steps=25, step_size=step_size, betas=schedule, record=True)
    gradient = jax.jit(jax.vmap(jax.grad(lambda v, xi, beta: lse_energy(v, xi, beta=beta)), in_axes=(0, None, None)))
    energy = jax.jit(jax.vmap(lambda v, xi, beta: lse_energy(v, xi, beta=beta), in_axes=(0, None, None)))
    v = queries
    for k, beta in enumerate(np.geomspace(0.05, 20.0, 25)):
        np.testing.assert_allclose(result.trace[k], energy(v, memories, jnp.float32(beta)), rtol=1e-4, atol=1e-5)
        v = v - step_size * gradient(v, memories, jnp.float32(beta))
    np.testing.assert_allclose(out, v, rtol=1e-5, atol=1e-5)
    # existing callers: the same schedule as an array gives the same result
    from_array, _ = descend(lse_energy, queries, memories, steps=25, step_size=step_size, betas=schedule.values())
    np.testing.assert_array_equal(from_array, out)


def test_bad_schedules_raise_with_the_reason():
    for args, match in (
        ((0.0, 1.0, 3), "start .* must be finite and > 0"),
        ((1.0, -1.0, 3), "end .* must be finite and > 0"),
        ((1.0, float("nan"), 3), "end .* must be finite and > 0"),
        ((float("inf"), 1.0, 3), "start .* must be finite and > 0"),
        ((1.0, 2.0, 0), "steps must be an integer >= 1"),
        ((1.0, 2.0, 1), "one-step schedule has one β"),
        ((1.0, 2.0, 3, "cosine"), "kind must be one of"),
    ):
        with pytest.raises(ValueError, match=match):
            BetaSchedule(*args)
    with pytest.raises(ValueError, match=r"the BetaSchedule has 5 steps but steps=10; pass steps=5"):
        descend(lse_energy, jnp.ones((2, 3)), jnp.eye(3), steps=10, betas=BetaSchedule(1.0, 2.0, 5))
