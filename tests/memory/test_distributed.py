"""DistributedMemory (DrDAM) against exact kernels, explicit features and the seed's numbers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from superpose.memory import (
    FEATURE_MAPS,
    DistributedMemory,
    descend,
    distributed_energy,
    divergence_bound,
    energy_error,
    exact_kernel,
    kernel_error,
    lse_energy,
    retrieval_divergence,
)


def binary_patterns(key, n, d):
    """The seed's patterns: random {0, 1} vectors scaled by 1/√D."""
    return (jax.random.uniform(key, (n, d)) > 0.5) / jnp.sqrt(d)


@pytest.fixture(scope="module")
def seed_setting():
    keys = jax.random.split(jax.random.key(779), 4)
    return binary_patterns(keys[0], 20, 30), binary_patterns(keys[1], 256, 30), keys[2]


@pytest.mark.parametrize("feature_map", FEATURE_MAPS)
def test_stored_and_regenerated_projections_agree(feature_map):
    xi = jax.random.normal(jax.random.key(0), (9, 5)) * 0.4
    q = jax.random.normal(jax.random.key(1), (4, 5)) * 0.4
    options = dict(feature_map=feature_map, chunk=300, orthogonal=feature_map == "cos")
    stored = DistributedMemory.from_memories(xi, jax.random.key(2), 1000, 2.0, projection="stored", **options)
    regen = DistributedMemory.from_memories(xi, jax.random.key(2), 1000, 2.0, projection="regenerated", **options)
    assert stored.stored and not regen.stored and stored.num_chunks == 4  # 1000 = 3·300 + 100
    np.testing.assert_allclose(stored.T, regen.T, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stored.energy(q), regen.energy(q), rtol=1e-5)
    np.testing.assert_allclose(stored.energy_and_grad(q)[1], regen.energy_and_grad(q)[1], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("feature_map", FEATURE_MAPS)
@pytest.mark.parametrize("orthogonal", [False, True])
def test_kernel_approximation_converges_to_exact_kernel(feature_map, orthogonal):
    kx, ky, kf = jax.random.split(jax.random.key(3), 3)
    x = jax.random.normal(kx, (200, 8)) * 0.25
    y = x + jax.random.normal(ky, (200, 8)) * 0.15
    errors = []
    for y_features in (100, 1000, 10_000):
        memory = DistributedMemory.create(kf, 8, y_features, 1.0, feature_map=feature_map, orthogonal=orthogonal)
        errors.append(float(jnp.mean(kernel_error(memory, x, y))))
    assert errors[2] < errors[1] < errors[0]
    assert errors[2] < 0.35 * errors[0]  # about 1/√100 = 0.1 in expectation
    assert errors[2] < 0.02


@pytest.mark.parametrize("feature_map", FEATURE_MAPS)
def test_energy_and_gradient_match_explicit_features(feature_map):
    xi = jax.random.normal(jax.random.key(4), (6, 4)) * 0.3
    q = jax.random.normal(jax.random.key(5), (5, 4)) * 0.3
    memory = DistributedMemory.from_memories(xi, jax.random.key(6), 3000, 3.0, feature_map=feature_map)

    def explicit(v):  # autodiff through the explicit feature vector, independent of the chunked pass
        t = jnp.sum(memory.features(xi), axis=0)
        return -jnp.log(memory.features(v[None])[0] @ t) / memory.beta

    e_ref = jax.vmap(explicit)(q)
    g_ref = jax.vmap(jax.grad(explicit))(q)
    e, g = memory.energy_and_grad(q)
    np.testing.assert_allclose(e, e_ref, rtol=2e-4, atol=1e-5)
    np.testing.assert_allclose(g, g_ref, rtol=2e-3, atol=1e-4)
    g_autodiff = jax.vmap(jax.grad(distributed_energy), in_axes=(0, None))(q, memory)
    np.testing.assert_allclose(g_autodiff, g, rtol=1e-6, atol=1e-7)


def test_add_forget_merge_and_streaming():
    keys = jax.random.split(jax.random.key(7), 3)
    a = jax.random.normal(keys[0], (50, 6)) * 0.3
    b = jax.random.normal(keys[1], (30, 6)) * 0.3
    for feature_map in FEATURE_MAPS:
        base = DistributedMemory.create(keys[2], 6, 500, 2.0, feature_map=feature_map)
        both = base.add(jnp.concatenate([a, b]))
        streamed = base.add(jnp.concatenate([a, b]), batch=7)
        np.testing.assert_allclose(streamed.T, both.T, rtol=1e-4, atol=1e-5)
        merged = base.add(a).merge(base.add(b))
        np.testing.assert_allclose(merged.T, both.T, rtol=1e-4, atol=1e-5)
        assert int(merged.count) == 80
        undone = both.forget(b)
        np.testing.assert_allclose(undone.T, base.add(a).T, rtol=1e-3, atol=1e-4)
        assert int(undone.count) == 50
    other = DistributedMemory.create(jax.random.key(99), 6, 500, 2.0)
    with pytest.raises(ValueError, match="different keys"):
        DistributedMemory.create(keys[2], 6, 500, 2.0).merge(other)
    with pytest.raises(ValueError, match="different settings"):
        other.merge(DistributedMemory.create(jax.random.key(99), 6, 500, 3.0))


def test_floor_is_reported_and_keeps_energy_finite():
    xi = jnp.eye(4)
    memory = DistributedMemory.from_memories(xi, jax.random.key(8), 64, 200.0)
    far = jnp.full((32, 4), 3.0) + jax.random.normal(jax.random.key(9), (32, 4))
    hits = memory.floor_hits(far)
    s = memory.kernel_sum(far)
    np.testing.assert_array_equal(hits, s <= memory.floor)
    assert hits.any()
    e, g = memory.energy_and_grad(far)
    assert np.isfinite(e).all() and np.isfinite(g).all()
    np.testing.assert_allclose(e[hits], -np.log(memory.floor) / 200.0, rtol=1e-6)
    assert float(jnp.abs(g[hits]).max()) == 0.0


@pytest.mark.parametrize("feature_map", FEATURE_MAPS)
def test_huge_beta_float32_has_no_nan(feature_map):
    xi = binary_patterns(jax.random.key(10), 10, 16)
    memory = DistributedMemory.from_memories(xi, jax.random.key(11), 2000, 1e4, feature_map=feature_map)
    q = binary_patterns(jax.random.key(12), 20, 16)
    e, g = memory.energy_and_grad(jnp.concatenate([q, xi]))
    assert np.isfinite(e).all() and np.isfinite(g).all()


def test_seed_numbers_energy_error_and_divergence(seed_setting):
    """D=30, K=20, Y=10⁵, β=25: the seed shows |E − Ẽ| ≈ 0.004 and divergences of 0.02–0.04."""
    memories, queries, key = seed_setting
    memory = DistributedMemory.from_memories(memories, key, 100_000, 25.0)
    errors = energy_error(memory, memories, queries)
    assert float(jnp.median(errors)) < 0.02
    divergence = retrieval_divergence(memory, memories, queries, steps=10, step_size=0.1).divergence
    assert 0.015 <= float(jnp.median(divergence)) <= 0.05
    exact, _ = jax.vmap(jax.value_and_grad(lse_energy), in_axes=(0, None, None))(queries, memories, 25.0)
    bound = divergence_bound(exact, beta=25.0, num_memories=20, dim=30, num_features=100_000, steps=10,
                             step_size=0.1, kernel_error_sup=0.02)
    assert not bound.applicable and np.isinf(bound.bound).all() and bound.max_step_size < 1e-8


def test_energy_error_falls_like_one_over_sqrt_y(seed_setting):
    memories, queries, _ = seed_setting
    ys = np.array([1_000, 3_000, 10_000, 30_000, 100_000])
    medians = []
    for y in ys:
        errors = [energy_error(DistributedMemory.from_memories(memories, k, int(y), 25.0), memories, queries)
                  for k in jax.random.split(jax.random.key(int(y)), 3)]
        medians.append(float(jnp.median(jnp.concatenate(errors))))
    slope = np.polyfit(np.log(ys), np.log(medians), 1)[0]
    assert -0.6 <= slope <= -0.4, (slope, medians)


def test_descent_with_distributed_memory_retrieves(seed_setting):
    memories, _, key = seed_setting
    memory = DistributedMemory.from_memories(memories, key, 20_000, 25.0)
    start = memories[:5] + 0.05 * jax.random.normal(jax.random.key(13), (5, 30)) / jnp.sqrt(30)
    out, result = descend(distributed_energy, start, memory, steps=300, step_size=0.05)
    nearest = jnp.argmin(jnp.sum((out[:, None] - memories[None]) ** 2, -1), axis=1)
    np.testing.assert_array_equal(nearest, jnp.arange(5))
    assert np.isfinite(result.energy).all()


def test_bad_inputs_give_clear_errors():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="beta"):
        DistributedMemory.create(key, 3, 10, 0.0)
    with pytest.raises(ValueError, match="num_features"):
        DistributedMemory.create(key, 3, 0, 1.0)
    with pytest.raises(ValueError, match="finite"):
        DistributedMemory.from_memories(jnp.array([[0.0, jnp.nan, 1.0]]), key, 10, 1.0)
    memory = DistributedMemory.create(key, 3, 10, 1.0)
    with pytest.raises(ValueError, match="D = 4"):
        memory.add(jnp.ones((2, 4)))
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        memory.energy(jnp.ones((2, 4)))
    with pytest.raises(ValueError, match="feature_map"):
        DistributedMemory.create(key, 3, 10, 1.0, feature_map="fourier")
    with pytest.raises(TypeError, match="PRNG key"):
        DistributedMemory.create(jnp.ones(3), 3, 10, 1.0)
    assert float(exact_kernel(jnp.zeros(3), jnp.zeros(3), 5.0)) == 1.0


def test_floor_flags_from_the_same_pass_match_floor_hits():
    memory = DistributedMemory.from_memories(jnp.eye(4), jax.random.key(8), 64, 200.0)
    far = jnp.full((32, 4), 3.0) + jax.random.normal(jax.random.key(9), (32, 4))
    states = jnp.concatenate([jnp.eye(4), far])
    e, g, hits = memory.energy_and_grad(states, with_floor_hits=True)
    e_only, hits_only = memory.energy(states, with_floor_hits=True)
    np.testing.assert_array_equal(hits, memory.floor_hits(states))
    np.testing.assert_array_equal(hits_only, hits)
    np.testing.assert_allclose(e_only, e, rtol=1e-5, atol=1e-8)  # two summation orders in float32
    # at the memories the kernel sum is about 1; far away it is noise of either sign, so some clip
    assert hits[4:].any() and not hits[:4].any()
    np.testing.assert_array_equal(hits, memory.kernel_sum(states) <= memory.floor)


@pytest.mark.parametrize("feature_map", ["sincos", "cos"])
@pytest.mark.parametrize("projection", ["stored", "regenerated"])
def test_several_chunks_per_step_give_the_same_pass(monkeypatch, feature_map, projection):
    # accelerators take several generated chunks per step (padding the last step with weight-0
    # chunks); forced here on CPU: 8 chunks in steps of 3 must give the one-chunk-per-step results
    from superpose.memory import distributed

    xi = binary_patterns(jax.random.key(11), 5, 6)
    q = jax.random.normal(jax.random.key(12), (4, 6)) * 0.3
    memory = DistributedMemory.from_memories(
        xi, jax.random.key(13), 1000, 4.0, feature_map=feature_map, projection=projection, chunk=128
    )
    e1, g1 = memory.energy_and_grad(q)
    try:
        monkeypatch.setattr(distributed, "_chunks_per_step", lambda memory, batch: 3)
        jax.clear_caches()
        e3, g3 = memory.energy_and_grad(q)
    finally:
        monkeypatch.undo()
        jax.clear_caches()
    np.testing.assert_allclose(e3, e1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g3, g1, rtol=1e-4, atol=1e-6)
    assert not np.allclose(g1, 0.0)


def test_descend_in_concurrent_parts_equals_one_call(monkeypatch):
    # on one CPU device descend splits a large batch into parts run in threads; 131 queries go in
    # two parts (one padded row) and must give what one call gives, early stops and trace included
    from superpose.memory import retrieval

    xi = binary_patterns(jax.random.key(21), 6, 8)
    q = jax.random.normal(jax.random.key(22), (131, 8)) * 0.4
    memory = DistributedMemory.from_memories(xi, jax.random.key(23), 512, 6.0)
    kwargs = dict(steps=12, step_size=0.2, tol=0.05, record=True)
    monkeypatch.setattr(retrieval, "cpu_thread_parts", lambda n: 2)
    split_out, split = descend(distributed_energy, q, memory, **kwargs)
    monkeypatch.setattr(retrieval, "cpu_thread_parts", lambda n: 1)
    one_out, one = descend(distributed_energy, q, memory, **kwargs)
    np.testing.assert_allclose(split_out, one_out, rtol=1e-5, atol=1e-6)
    for a, b in zip(split, one, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert 0 < int(jnp.sum(one.converged)) < 131  # some queries stop early, some do not
