"""A fast, keyed, counter-based generator of uniforms for data batches.

Drawing every uniform with threefry costs as much as the rest of a toy-model training step, so
batches use a cheaper scheme with the same guarantees that matter here:

- **Keyed**: stream s at step t starts from 64 bits drawn with threefry from
  ``fold_in(fold_in(key, t), s)`` (one draw per stream and step, not per uniform).
- **Counter-based**: element i of that stream is ``mix(mix(i ^ a) ^ b)``, with ``(a, b)`` the
  stream's two words and ``mix`` the ``lowbias32`` integer hash (C. Wellons, 2018; two xor-shift
  / multiply rounds, bias 0.17). The top 24 bits become a float32 uniform on [0, 1).
- **Common random numbers**: models that share a stream id see the same uniforms. Models with the
  same data distribution (e.g. every importance of one density in a sweep) can share a stream,
  which makes comparisons across them less noisy and draws far fewer numbers; members of one
  ensemble cell must have different ids so that they see independent data.

A stream's values depend only on (key, step, stream id, element index), never on how many
other streams are drawn with it. The statistics (mean, variance, uniformity, independence across
elements, streams and steps) are tested in ``tests/toy/test_streams.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, UInt32

_M1 = 0x7FEB352D
_M2 = 0x846CA68B


def mix32(x: UInt32[Array, "..."]) -> UInt32[Array, "..."]:
    """The ``lowbias32`` bijective integer hash of uint32 values."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(_M1)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(_M2)
    return x ^ (x >> 16)


def stream_words(key: jax.Array, step: Int[Array, ""], stream_ids: Int[Array, "S"]) -> UInt32[Array, "S 2"]:
    """The two 32-bit words that seed each stream at one step, drawn with threefry."""
    step_key = jax.random.fold_in(key, step)
    return jax.vmap(lambda s: jax.random.bits(jax.random.fold_in(step_key, s), (2,), jnp.uint32))(stream_ids)


def stream_uniforms(
    key: jax.Array, step: Int[Array, ""], stream_ids: Int[Array, "S"], batch: int, n: int
) -> Float[Array, "n S batch"]:
    """Uniforms on [0, 1) of shape ``(n, S, batch)``, 24 random bits each.

    Entry ``[j, s, b]`` is a function of (key, step, ``stream_ids[s]``, j·batch + b) only.
    """
    words = stream_words(key, step, jnp.asarray(stream_ids))
    index = jnp.arange(n * batch, dtype=jnp.uint32).reshape(n, 1, batch)
    bits = mix32(mix32(index ^ words[None, :, 0:1]) ^ words[None, :, 1:2])
    return (bits >> 8).astype(jnp.float32) * jnp.float32(2.0**-24)
