"""Random binary patterns: the memories and queries of the DrDAM tutorial, its tests and benchmarks."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from superpose._validation import positive_int


def binary_patterns(key: jax.Array, n: int, d: int) -> jax.Array:
    """``n`` random patterns of dimension ``d``, each entry 0 or 1/√d with probability ½ (the DrDAM tutorial's).

    Returns a float32 array of shape ``(n, d)``.
    """
    n, d = positive_int(n, "n (number of patterns)"), positive_int(d, "d (pattern dimension)")
    return (jax.random.uniform(key, (n, d)) > 0.5) / jnp.sqrt(d)


__all__ = ["binary_patterns"]
