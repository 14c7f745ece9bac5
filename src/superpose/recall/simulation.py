"""Sampling recall sequences from CMR (keyed and vectorised over lists)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from superpose._validation import positive_int
from superpose.recall.data import RecallDataset
from superpose.recall.model import encode, simulate_list
from superpose.recall.parameters import CMRParameters, check_parameters


@partial(jax.jit, static_argnames=("n_items",))
def _simulate_lists(params: CMRParameters, lengths: jax.Array, keys: jax.Array, n_items: int) -> jax.Array:
    def one(length: jax.Array, key: jax.Array) -> jax.Array:
        return simulate_list(params, encode(params, length, n_items), length, key)

    return jax.vmap(one)(lengths, keys)


def simulate_recalls(params: CMRParameters, list_lengths: np.ndarray, key: jax.Array) -> np.ndarray:
    """``(L, N)`` sampled recall sequences (1-indexed study positions, 0-padded) for lists of given lengths.

    Args:
        params: one parameter set (scalars).
        list_lengths: ``(L,)`` integers >= 1.
        key: a JAX PRNG key; the same key gives the same sequences.
    """
    check_parameters(params)
    lengths = np.asarray(list_lengths)
    if lengths.ndim != 1 or lengths.size == 0 or not np.issubdtype(lengths.dtype, np.integer) or lengths.min() < 1:
        raise ValueError(f"list_lengths must be a non-empty 1-D array of integers >= 1, got {list_lengths!r}")
    keys = jax.random.split(key, lengths.size)
    return np.asarray(_simulate_lists(params, jnp.asarray(lengths), keys, int(lengths.max())))


def simulate(params: CMRParameters, key: jax.Array, *, list_length: int = 24, n_lists: int = 48,
             subject: int = 1) -> RecallDataset:
    """A dataset of ``n_lists`` simulated lists of ``list_length`` items for one subject."""
    positive_int(list_length, "list_length")
    positive_int(n_lists, "n_lists")
    recalls = simulate_recalls(params, np.full(n_lists, list_length), key)
    presented = np.tile(np.arange(1, list_length + 1), (n_lists, 1))
    return RecallDataset(subject=np.full(n_lists, subject), list_length=np.full(n_lists, list_length),
                         presented=presented, recalls=recalls)


def simulate_like(dataset: RecallDataset, parameters: CMRParameters | Mapping[int, CMRParameters],
                  key: jax.Array, repeats: int = 1) -> RecallDataset:
    """Simulates every list of ``dataset`` (same subjects, lengths and items) ``repeats`` times.

    Args:
        dataset: the lists to mirror.
        parameters: one parameter set for all subjects, or a mapping subject -> parameters.
        key: PRNG key.
        repeats: copies of each list; copy r of list number k gets list number
            ``r · max(list_number) + k``.
    """
    positive_int(repeats, "repeats")
    per_subject = parameters if isinstance(parameters, Mapping) else None
    if per_subject is not None:
        missing = sorted(set(dataset.subjects.tolist()) - set(int(s) for s in per_subject))
        if missing:
            raise ValueError(f"no parameters for subjects {missing}")
    rows = np.tile(np.arange(dataset.n_lists), repeats)
    copy = np.repeat(np.arange(repeats), dataset.n_lists)
    n = dataset.presented.shape[1]
    recalls = np.zeros((rows.size, n), np.int64)
    keys = jax.random.split(key, dataset.subjects.size)
    for subject, subject_key in zip(dataset.subjects, keys):
        params = per_subject[int(subject)] if per_subject is not None else parameters
        mine = np.flatnonzero(dataset.subject[rows] == subject)
        sampled = simulate_recalls(params, dataset.list_length[rows[mine]], subject_key)
        recalls[mine, : sampled.shape[1]] = sampled
    offset = int(dataset.list_number.max())
    return RecallDataset(
        subject=dataset.subject[rows], list_length=dataset.list_length[rows], presented=dataset.presented[rows],
        recalls=recalls, list_number=dataset.list_number[rows] + copy * offset, words=dataset.words,
        conditions={k: v[rows] for k, v in dataset.conditions.items()},
    )
