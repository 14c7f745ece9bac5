"""Synthetic feature distributions: independent sparse features and hierarchical trees.

Every feature is active with some probability and then takes a magnitude uniform on [0, 1].
In a hierarchy a child can fire only when its parent does: p(child) = p(parent) · p(child | parent).
Densities are per model and per feature, so one ensemble can sweep them.

Batches for model i are drawn from ``fold_in(key, i)``: a model sees the same data whatever the
size of the ensemble it is trained in, and different models see independent data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float


class Features(NamedTuple):
    """A feature distribution for an ensemble.

    density: (M, n); for a root feature p(active), for a child p(active | parent active).
    parents: n entries, -1 for a root, else the index of the parent feature (static).
    """

    density: Float[Array, "M n"]
    parents: tuple[int, ...]


def _topological_order(parents: Sequence[int]) -> tuple[int, ...]:
    n = len(parents)
    for i, p in enumerate(parents):
        if isinstance(p, bool) or not isinstance(p, (int, np.integer)) or not -1 <= p < n:
            raise ValueError(f"parents[{i}] = {p!r}: a parent must be -1 (root) or a feature index in [0, {n})")
        if p == i:
            raise ValueError(f"feature {i} is its own parent")
    for i in range(n):  # walking up more than n steps means a cycle
        seen, node = [], i
        while node != -1:
            if node in seen:
                raise ValueError(f"the hierarchy has a cycle through features {seen[seen.index(node):]}")
            seen.append(node)
            node = parents[node]
    depth = {}
    for i in range(n):
        d, node = 0, parents[i]
        while node != -1:
            d, node = d + 1, parents[node]
        depth[i] = d
    return tuple(sorted(range(n), key=lambda i: depth[i]))


def make_features(density: Float[Array, "M n"], parents: Sequence[int] | None = None) -> Features:
    """Validates densities in (0, 1] and a parent list (default: all roots, independent features)."""
    d = jnp.asarray(density, jnp.float32)
    if d.ndim != 2:
        raise ValueError(f"density must have shape (M, n), got {d.shape}")
    values = np.asarray(d)
    if not np.all(np.isfinite(values)) or np.any(values <= 0) or np.any(values > 1):
        raise ValueError("every density (or conditional density) must be in (0, 1]")
    parents = tuple(int(p) for p in (parents if parents is not None else [-1] * d.shape[1]))
    if len(parents) != d.shape[1]:
        raise ValueError(f"parents has {len(parents)} entries for {d.shape[1]} features")
    _topological_order(parents)
    return Features(d, parents)


def sample(key: jax.Array, features: Features, batch: int, model_ids: jax.Array | None = None) -> Float[Array, "batch M n"]:
    """A batch for every model, shape (batch, M, n); model i draws from ``fold_in(key, model_ids[i])``."""
    m, n = features.density.shape
    ids = jnp.arange(m) if model_ids is None else model_ids
    order = _topological_order(features.parents)

    def one_model(model_id, density):
        k_on, k_mag = jax.random.split(jax.random.fold_in(key, model_id))
        fires = jax.random.uniform(k_on, (batch, n)) < density
        active = [None] * n
        for i in order:
            parent = features.parents[i]
            active[i] = fires[:, i] if parent == -1 else fires[:, i] & active[parent]
        magnitude = jax.random.uniform(k_mag, (batch, n))
        return magnitude * jnp.stack(active, axis=-1)

    return jnp.swapaxes(jax.vmap(one_model)(ids, features.density), 0, 1)
