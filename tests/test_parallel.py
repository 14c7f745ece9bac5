"""superpose.parallel: sharded results equal single-device results (4 forced CPU devices)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from superpose.numerics import choice_probabilities
from superpose.parallel import pad_batch, sharded

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    from superpose.numerics import choice_probabilities
    from superpose.parallel import batch_mesh, shard_batch, sharded

    assert len(jax.devices()) == 4, jax.devices()
    values = jax.random.uniform(jax.random.key(0), (10, 24), minval=1e-4)
    mask = jax.random.bernoulli(jax.random.key(1), 0.3, (10, 24))
    scales = jnp.linspace(0.5, 99.0, 10)
    placed = shard_batch(jnp.zeros((8, 3)))
    fn = sharded(choice_probabilities, batch_argnums=(0, 1, 2))
    out = fn(values, mask, scales)
    single = choice_probabilities(*jax.device_put((values, mask, scales), jax.devices()[0]))
    # the computation itself is partitioned: its output lives on all four devices
    from superpose.parallel import pad_batch
    padded, _ = pad_batch([values, mask, scales], 4)
    raw = jax.jit(choice_probabilities)(*shard_batch(padded))
    json.dump({"devices_used": len(placed.sharding.device_set), "output_devices": len(raw.sharding.device_set), "mesh": batch_mesh().size,
               "out": np.asarray(out).tolist(), "single": np.asarray(single).tolist()}, sys.stdout)
    """
)


def test_four_devices_match_single_device():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr

    data = json.loads(result.stdout)
    assert data["devices_used"] == 4 and data["mesh"] == 4 and data["output_devices"] == 4
    np.testing.assert_allclose(data["out"], data["single"], rtol=1e-6, atol=0)
    # and the same numbers as this (single-device) process computes
    values = jax.random.uniform(jax.random.key(0), (10, 24), minval=1e-4)
    mask = jax.random.bernoulli(jax.random.key(1), 0.3, (10, 24))
    here = choice_probabilities(values, mask, jnp.linspace(0.5, 99.0, 10))
    np.testing.assert_allclose(data["out"], here, rtol=1e-6, atol=0)


def test_single_device_is_plain_jit():
    fn = sharded(lambda x: x * 2.0)
    np.testing.assert_array_equal(fn(jnp.arange(5.0)), jnp.arange(5.0) * 2)


def test_pad_batch_repeats_last_row_and_validates():
    padded, size = pad_batch({"a": jnp.arange(5.0), "b": jnp.ones((5, 2))}, 4)
    assert size == 5 and padded["a"].shape == (8,) and float(padded["a"][-1]) == 4.0
    with pytest.raises(ValueError, match="disagree"):
        pad_batch([jnp.ones(3), jnp.ones(4)], 2)
    with pytest.raises(ValueError, match="scalar"):
        pad_batch([jnp.ones(3), jnp.float32(1.0)], 2)


DESCEND_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    from superpose.memory import DistributedMemory, descend, distributed_energy, lse_energy
    assert len(jax.devices()) == 4
    xi = (jax.random.uniform(jax.random.key(0), (12, 10)) > 0.5) / 10**0.5
    q = (jax.random.uniform(jax.random.key(1), (9, 10)) > 0.5) / 10**0.5  # 9 queries: padded to 12
    memory = DistributedMemory.from_memories(xi, jax.random.key(2), 3000, 8.0)
    clamp = jnp.arange(10) < 3
    exact, r1 = descend(lse_energy, q, xi, 8.0, steps=40, step_size=0.1, clamp=clamp, record=True)
    approx, r2 = descend(distributed_energy, q, memory, steps=40, step_size=0.1, tol=1e-3)
    json.dump({"exact": np.asarray(exact).tolist(), "approx": np.asarray(approx).tolist(),
               "trace": np.asarray(r1.trace).tolist(), "steps": np.asarray(r2.steps).tolist()}, sys.stdout)
    """
)


def test_descend_shards_queries_and_matches_one_device():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", DESCEND_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    single = subprocess.run([sys.executable, "-c", DESCEND_SCRIPT.replace("assert len(jax.devices()) == 4", "")],
                            env={**os.environ, "JAX_PLATFORMS": "cpu"}, capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr
    one = json.loads(single.stdout)
    for key in ("exact", "approx", "trace"):
        np.testing.assert_allclose(data[key], one[key], rtol=1e-5, atol=1e-6)
    assert data["steps"] == one["steps"] and len(data["steps"]) == 9
