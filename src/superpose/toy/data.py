"""Synthetic feature distributions: sparse, correlated, anticorrelated and hierarchical features.

Every feature is active with some probability and then takes a magnitude uniform on [0, 1].

- **Independent** roots fire with their own density.
- **Hierarchical**: a child fires only when its parent does: p(child) = p(parent) · p(child | parent).
- **Correlated** sets fire together (all or none, with independent magnitudes); their members
  share one density.
- **Anticorrelated** sets fire at most one member at a time; their densities sum to at most 1.

Densities are per model and per feature, so one ensemble can sweep them.

**One uniform per feature.** Feature j's draw u_j ~ U[0, 1) decides both whether it fires
(u_j < p_j) and its magnitude u_j / p_j, which is uniform on [0, 1) given that it fires. A set
uses its first member's uniform u to decide which members fire. A correlated set fires when
u < p; its first member's magnitude is u / p and the others take their own uniforms. An
anticorrelated set fires the member whose interval [low_j, low_j + p_j) of [0, 1) holds u, with
magnitude (u − low_j) / p_j, so the other members' uniforms are not used. The
uniforms come from :mod:`superpose.toy.streams`: models that share a stream id see the same
uniforms (common random numbers), and a model's data depends only on its stream id, never on the
size of the ensemble.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from superpose._validation import positive_int
from superpose.toy.streams import stream_uniforms


class Features(NamedTuple):
    """A feature distribution for an ensemble.

    density: (M, n); p(active) for a root, p(active | parent active) for a child.
    parents: n entries, -1 for a root, else the index of the parent feature (static).
    correlated: sets of root features that fire together (static).
    anticorrelated: sets of root features of which at most one fires (static).
    """

    density: Float[Array, "M n"]
    parents: tuple[int, ...]
    correlated: tuple[tuple[int, ...], ...] = ()
    anticorrelated: tuple[tuple[int, ...], ...] = ()

    @property
    def structure(self) -> tuple:
        """The static part (parents and sets), hashable, for jit."""
        return (self.parents, self.correlated, self.anticorrelated)


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


def _check_sets(sets, kind: str, parents: tuple[int, ...], taken: set[int]) -> tuple[tuple[int, ...], ...]:
    out = []
    for members in sets:
        members = tuple(int(j) for j in members)
        if len(members) < 2:
            raise ValueError(f"a {kind} set needs at least two features, got {members}")
        for j in members:
            if not 0 <= j < len(parents):
                raise ValueError(f"{kind} set {members}: feature {j} is not in [0, {len(parents)})")
            if parents[j] != -1:
                raise ValueError(f"{kind} set {members}: feature {j} has a parent; set members must be roots")
            if j in taken:
                raise ValueError(f"feature {j} is in more than one correlated/anticorrelated set")
            taken.add(j)
        out.append(members)
    return tuple(out)


def make_features(
    density: Float[Array, "M n"],
    parents: Sequence[int] | None = None,
    correlated: Sequence[Sequence[int]] = (),
    anticorrelated: Sequence[Sequence[int]] = (),
) -> Features:
    """A validated feature distribution.

    Args:
        density: (M, n) values in (0, 1]: p(active) of a root or set member, p(active | parent) of
            a child.
        parents: n entries, -1 for a root (default: all roots); self-parents and cycles are refused.
        correlated: sets of root features that fire together; members need equal densities.
        anticorrelated: sets of root features of which at most one fires; their densities must
            sum to at most 1 in every model.
    """
    d = jnp.asarray(density, jnp.float32)
    if d.ndim != 2:
        raise ValueError(f"density must have shape (M, n), got {d.shape}")
    values = np.asarray(d)
    if not np.all(np.isfinite(values)) or np.any(values <= 0) or np.any(values > 1):
        bad = np.argwhere(~(np.isfinite(values) & (values > 0) & (values <= 1)))[0]
        raise ValueError(f"every density (or conditional density) must be in (0, 1]; "
                         f"density[{bad[0]}, {bad[1]}] = {values[tuple(bad)]!r}")
    parents = tuple(int(p) for p in (parents if parents is not None else [-1] * d.shape[1]))
    if len(parents) != d.shape[1]:
        raise ValueError(f"parents has {len(parents)} entries for {d.shape[1]} features")
    _topological_order(parents)
    taken: set[int] = set()
    corr = _check_sets(correlated, "correlated", parents, taken)
    anti = _check_sets(anticorrelated, "anticorrelated", parents, taken)
    for members in corr:
        if not np.allclose(values[:, members], values[:, members[:1]], rtol=1e-6):
            raise ValueError(f"correlated set {members}: members fire together, so their densities must be equal")
    for members in anti:
        total = values[:, members].sum(axis=1)
        if np.any(total > 1 + 1e-6):
            raise ValueError(f"anticorrelated set {members}: densities sum to {total.max():.4g} > 1 in some model")
    return Features(d, parents, corr, anti)


def features_from_uniforms(u: Float[Array, "n ..."], density: Float[Array, "n ..."], structure: tuple) -> Float[Array, "n ..."]:
    """Turns one uniform per feature into feature values, feature axis first (see the module
    docstring); ``density`` broadcasts against ``u[j]``."""
    parents, correlated, anticorrelated = structure
    n = len(parents)
    fires, magnitude = [None] * n, [None] * n
    for members in anticorrelated:
        lead, low = u[members[0]], 0.0
        for j in members:
            p = density[j]
            fires[j] = (lead >= low) & (lead < low + p)
            magnitude[j] = (lead - low) / p
            low = low + p
    for members in correlated:
        p = density[members[0]]
        on = u[members[0]] < p
        for j in members:
            fires[j] = on
            magnitude[j] = u[j] / p if j == members[0] else u[j]
    for j in _topological_order(parents):
        if fires[j] is not None:
            continue
        p = density[j]
        own = u[j] < p
        fires[j] = own if parents[j] == -1 else own & fires[parents[j]]
        magnitude[j] = u[j] / p
    return jnp.stack([jnp.where(f, jnp.minimum(m, 1.0), 0.0) for f, m in zip(fires, magnitude)])


def draw_planes(key: jax.Array, step, density: Float[Array, "n S 1"], structure: tuple, batch: int,
                stream_ids: Int[Array, "S"]) -> Float[Array, "n S batch"]:
    """One batch per stream at one step, feature axis first: shape (n, S, batch)."""
    u = stream_uniforms(key, step, stream_ids, batch, density.shape[0])
    return features_from_uniforms(u, density, structure)


def group_layout(features: Features, streams, group_size: int) -> tuple[jax.Array, jax.Array]:
    """Checks a grouping of the ensemble; returns the stream ids (S,) and the groups' densities (n, S, 1).

    Models ``g·G … g·G + G − 1`` form group g, share its batches, and so need equal densities.
    """
    m, n = features.density.shape
    g = positive_int(group_size, "group_size")
    if m % g:
        raise ValueError(f"the ensemble size {m} is not a multiple of group_size {g}")
    s = m // g
    ids = np.arange(s) if streams is None else np.asarray(streams)
    if ids.shape != (s,) or not np.issubdtype(ids.dtype, np.integer) or np.any(ids < 0):
        raise ValueError(f"streams must hold {s} non-negative integers (one per group of {g} models), "
                         f"got shape {ids.shape} and dtype {ids.dtype}")
    grouped = np.asarray(features.density).reshape(s, g, n)
    if g > 1 and not np.array_equal(grouped, np.broadcast_to(grouped[:, :1], grouped.shape)):
        bad = int(np.argwhere(np.any(grouped != grouped[:, :1], axis=(1, 2)))[0, 0])
        raise ValueError(f"models in a group share batches, so they need equal densities; group {bad} "
                         f"(models {bad * g}…{bad * g + g - 1}) does not")
    return jnp.asarray(ids, jnp.int32), jnp.asarray(grouped[:, 0].T[:, :, None])


def sample(key: jax.Array, features: Features, batch: int, streams=None, group_size: int = 1,
           step: int = 0) -> Float[Array, "batch M n"]:
    """A batch for every model, shape (batch, M, n), as training draws it at ``step``.

    Model i belongs to group i // group_size; a group's batch depends only on (key, step, its
    stream id), default its index. Models of one group see the same batch.
    """
    ids, density = group_layout(features, streams, group_size)
    x = draw_planes(key, step, density, features.structure, positive_int(batch, "batch"), ids)
    return jnp.repeat(jnp.transpose(x, (2, 1, 0)), group_size, axis=1)
