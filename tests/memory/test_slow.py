"""Long checks, left out of the default run: `python -m pytest -m slow`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from superpose.memory import DistributedMemory

pytestmark = pytest.mark.slow


def test_a_million_memories_stream_into_T():
    """K = 10⁶ memories are written in batches; T equals the sum of two halves written separately."""
    memories = jax.random.normal(jax.random.key(0), (1_000_000, 30)) * 0.2
    base = DistributedMemory.create(jax.random.key(1), 30, 512, 5.0, projection="regenerated")
    whole = base.add(memories, batch=65_536)
    halves = base.add(memories[:500_000]).merge(base.add(memories[500_000:]))
    assert int(whole.count) == 1_000_000
    np.testing.assert_allclose(whole.T, halves.T, rtol=1e-3, atol=1e-2)
    # the mean feature of many random memories approaches the kernel mean embedding: finite, bounded
    assert np.isfinite(whole.T).all() and float(jnp.abs(whole.T).max()) < 1_000_000 / np.sqrt(512)
