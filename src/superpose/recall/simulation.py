"""Sampling recall sequences from CMR and its variants (keyed and vectorised over lists).

:func:`simulate_recalls`, :func:`simulate` and :func:`simulate_like` sample the base model;
:func:`simulate_variant_like` samples a :class:`~superpose.recall.variants.CMRVariant` (semantic
M^CF, category sublayer, instance M^CF) with the activations, choice rule and stop rule that
:func:`~superpose.recall.variants.variant_list_log_likelihoods` scores. Both ``*_like`` functions
give a list the same key for the same ``key``, so a variant with its added parameters at their
defaults (:data:`~superpose.recall.variants.VARIANT_DEFAULTS`) draws the base model's sequences
(up to rounding in the choice probabilities).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from superpose._validation import positive_int
from superpose.numerics import log_choice_probabilities
from superpose.recall.category import encode_category
from superpose.recall.data import RecallDataset
from superpose.recall.likelihood import jit
from superpose.recall.model import (
    drift,
    encode,
    encode_with_contexts,
    log_stop_probability,
    simulate_list,
    start_context,
)
from superpose.recall.parameters import CMRParameters, check_parameters
from superpose.recall.variants import (
    CMRVariant,
    VariantParameters,
    category_instance_activations,
    check_variant_parameters,
    instance_activations,
    make_variant_parameters,
    prepare_variant,
    stack_variant_parameters,
)


@partial(jax.jit, static_argnames=("n_items",))
def _simulate_lists(params: CMRParameters, lengths: jax.Array, keys: jax.Array, n_items: int) -> jax.Array:
    def one(length: jax.Array, key: jax.Array) -> jax.Array:
        return simulate_list(params, encode(params, length, n_items), length, key)

    return jax.vmap(one)(lengths, keys)


def _sample(params: CMRParameters, lengths: np.ndarray, keys: jax.Array) -> np.ndarray:
    return np.asarray(_simulate_lists(params, jnp.asarray(lengths), keys, int(lengths.max())))


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
    return _sample(params, lengths, jax.random.split(key, lengths.size))


def simulate(params: CMRParameters, key: jax.Array, *, list_length: int = 24, n_lists: int = 48,
             subject: int = 1) -> RecallDataset:
    """A dataset of ``n_lists`` simulated lists of ``list_length`` items for one subject."""
    positive_int(list_length, "list_length")
    positive_int(n_lists, "n_lists")
    recalls = simulate_recalls(params, np.full(n_lists, list_length), key)
    presented = np.tile(np.arange(1, list_length + 1), (n_lists, 1))
    return RecallDataset(subject=np.full(n_lists, subject), list_length=np.full(n_lists, list_length),
                         presented=presented, recalls=recalls)


# --- copies of a dataset ---------------------------------------------------------------------------

def _by_subject(dataset: RecallDataset, parameters: Any, accepted: Any, what: str) -> dict[int, Any]:
    """``{subject: parameters}`` for every subject of ``dataset`` from one set or a mapping."""
    if isinstance(parameters, Mapping):
        bad = [k for k in parameters if isinstance(k, bool) or not isinstance(k, (int, np.integer))]
        if bad:
            raise TypeError(f"parameters must be {what}, or a mapping subject id (int) -> one; got the key {bad[0]!r}")
        missing = sorted(set(dataset.subjects.tolist()) - set(int(s) for s in parameters))
        if missing:
            raise ValueError(f"no parameters for subjects {missing}")
        out = {int(s): parameters[int(s)] for s in dataset.subjects}
    else:
        out = {int(s): parameters for s in dataset.subjects}
    for subject, value in out.items():
        if not isinstance(value, accepted):
            raise TypeError(f"parameters must be {what}, or a mapping subject -> one; got {type(value).__name__}"
                            + (f" for subject {subject}" if isinstance(parameters, Mapping) else ""))
    return out


def _copies(dataset: RecallDataset, repeats: int, key: jax.Array) -> tuple[np.ndarray, np.ndarray, jax.Array]:
    """Rows of ``dataset`` for ``repeats`` copies, the copy of each row, and each row's PRNG key.

    The key is split once per subject, then once per row of the subject (in row order).
    """
    positive_int(repeats, "repeats")
    rows = np.tile(np.arange(dataset.n_lists), repeats)
    copy = np.repeat(np.arange(repeats), dataset.n_lists)
    groups = [np.flatnonzero(dataset.subject[rows] == s) for s in dataset.subjects]
    keys = jnp.concatenate([jax.random.split(k, g.size)
                            for k, g in zip(jax.random.split(key, dataset.subjects.size), groups)])
    return rows, copy, keys[np.argsort(np.concatenate(groups), kind="stable")]


def _like(dataset: RecallDataset, rows: np.ndarray, copy: np.ndarray, sampled: np.ndarray) -> RecallDataset:
    """The simulated copies as a dataset with the data's subjects, items, words, conditions and item attributes."""
    recalls = np.zeros((rows.size, dataset.presented.shape[1]), np.int64)
    recalls[:, : sampled.shape[1]] = sampled
    offset = int(dataset.list_number.max())
    return RecallDataset(
        subject=dataset.subject[rows], list_length=dataset.list_length[rows], presented=dataset.presented[rows],
        recalls=recalls, list_number=dataset.list_number[rows] + copy * offset, words=dataset.words,
        conditions={k: v[rows] for k, v in dataset.conditions.items()}, item_attributes=dataset.item_attributes,
    )


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
    per_subject = _by_subject(dataset, parameters, (CMRParameters,), "CMRParameters")
    rows, copy, keys = _copies(dataset, repeats, key)
    sampled = np.zeros((rows.size, int(dataset.list_length.max())), np.int64)
    for subject, params in per_subject.items():
        check_parameters(params)
        mine = np.flatnonzero(dataset.subject[rows] == subject)
        out = _sample(params, dataset.list_length[rows[mine]], keys[mine])
        sampled[mine, : out.shape[1]] = out
    return _like(dataset, rows, copy, sampled)


# --- variants --------------------------------------------------------------------------------------

def _simulate_variant_list(vp: VariantParameters, variant: CMRVariant, length: jax.Array,
                           similarity: jax.Array | None, units: jax.Array | None, key: jax.Array,
                           n_items: int) -> jax.Array:
    """One list of ``variant``: ``(N,)`` 1-indexed study positions in output order, 0-padded.

    Context is drifted explicitly (one layer, or the temporal and the category sublayer), and the
    activations are those of :mod:`superpose.recall.variants`: linear c·(M^CF + s·S) (+ w_cat·c^cat·M^CF_cat)
    or instance memory's Σ_t (c·c_t)^κ v_t (+ w_cat·Σ_t (c^cat·c^cat_t)^κ v^cat_t over the category
    sublayer's traces). Keys are used as :func:`~superpose.recall.model.simulate_list` uses them.
    """
    params = vp.cmr
    network, contexts = encode_with_contexts(params, length, n_items)
    dtype = network.mcf.dtype
    s = similarity.astype(dtype) if variant.semantic else None
    mcf = network.mcf.at[1:].add(vp.semantic_scale * s) if variant.semantic else network.mcf
    layers = [(network.fc_inputs, params.recall_drift_rate)]
    start = [start_context(params, network)]
    if variant.category:
        units = units.astype(dtype)
        cat = encode_category(params, vp.category_drift_rate, units, length)
        layers.append((cat.inputs, vp.category_drift_rate))
        start.append(cat.cue)

    def activations(context: list[jax.Array]) -> jax.Array:
        if variant.memory == "instance":
            out = instance_activations(vp, variant, context[0], contexts @ context[0], s)
        else:
            out = context[0] @ mcf
        if variant.category and variant.memory == "instance":
            out = out + vp.category_weight * category_instance_activations(vp, context[1], cat.contexts @ context[1],
                                                                           units)
        elif variant.category:
            out = out + vp.category_weight * (context[1] @ cat.mcf)
        return out

    positions = jnp.arange(n_items)

    def step(carry, key):
        context, recalled, n, active = carry
        key_stop, key_item = jax.random.split(key)
        log_stop, _ = log_stop_probability(params, n, length - n)
        stop = jax.random.uniform(key_stop, dtype=dtype) < jnp.exp(log_stop)
        mask = recalled | (positions >= length)
        log_p = log_choice_probabilities(jnp.maximum(activations(context), 0.0), mask, params.choice_sensitivity)
        item = jax.random.choice(key_item, n_items, p=jnp.exp(log_p))
        recall = active & ~stop
        context = [jnp.where(recall, drift(c, inputs[item], rate), c) for c, (inputs, rate) in zip(context, layers)]
        carry = (context, recalled | (recall & (positions == item)), n + recall, recall)
        return carry, jnp.where(recall, item + 1, 0)

    init = (start, jnp.zeros(n_items, bool), jnp.array(0), jnp.array(True))
    _, out = jax.lax.scan(step, init, jax.random.split(key, n_items))
    return out


@partial(jit, static_argnames=("variant", "n_items"))
def _simulate_variant_lists(params: VariantParameters, subject_index: jax.Array, list_row: jax.Array,
                            lengths: jax.Array, similarity: jax.Array | None, units: jax.Array | None,
                            keys: jax.Array, variant: CMRVariant, n_items: int) -> jax.Array:
    def one(subject, row, length, key):
        vp = jax.tree_util.tree_map(lambda x: x[subject], params)
        return _simulate_variant_list(vp, variant, length, None if similarity is None else similarity[row],
                                      None if units is None else units[row], key, n_items)

    return jax.vmap(one)(subject_index, list_row, lengths, keys)


_Parameters = VariantParameters | CMRParameters
_VARIANT_PARAMETERS = ("one VariantParameters (or CMRParameters: the added parameters at their defaults) of "
                       "scalars")


def simulate_variant_like(dataset: RecallDataset,
                          parameters: _Parameters | Mapping[int, _Parameters],
                          variant: CMRVariant | None, key: jax.Array, *, similarity: Any = None,
                          repeats: int = 1) -> RecallDataset:
    """Simulates every list of ``dataset`` under ``variant``, ``repeats`` times, as :func:`simulate_like` does.

    One jitted call samples every list (``vmap`` over lists; one compile per shape and variant). The
    model is the one :func:`~superpose.recall.variants.variant_list_log_likelihoods` scores: the same
    activations, the log-space Luce rule (:func:`~superpose.numerics.log_choice_probabilities`, masking
    before scaling) and the smooth stop cap (:func:`~superpose.recall.model.log_stop_probability`).

    Args:
        dataset: the lists to mirror (item numbers, and the ``category`` item attribute for a category variant).
        parameters: one :class:`VariantParameters` for all subjects, or a mapping subject -> parameters;
            :class:`CMRParameters` stand for the base parameters with the added ones at their defaults.
        variant: the model (None: the base model, ``CMRVariant()``).
        key: PRNG key; the same key gives the same data, and a list gets the key :func:`simulate_like` gives it.
        similarity: ``(K, K)`` similarity over item numbers, needed by a semantic variant (as
            :func:`~superpose.recall.variants.prepare_variant`).
        repeats: copies of each list (numbered as :func:`simulate_like` numbers them).

    Returns:
        A :class:`RecallDataset` with the data's subjects, list lengths, items, words, conditions and item
        attributes (so ``category_crp`` and ``distance_crp`` apply to it) and the simulated recalls.

    Raises:
        TypeError: for a dataset, variant, parameters or key of the wrong type.
        ValueError: for parameters outside their limits or not scalars, a subject without parameters,
            ``repeats`` < 1, or data a variant cannot use (no similarity for a semantic variant, no categories
            for a category variant), naming what is accepted.
    """
    if not isinstance(dataset, RecallDataset):
        raise TypeError(f"expected a RecallDataset, got {type(dataset).__name__}")
    variant = CMRVariant() if variant is None else variant
    if not isinstance(variant, CMRVariant):
        raise TypeError(f"variant must be a CMRVariant or None (the base model), got {type(variant).__name__}")
    if not isinstance(key, jax.Array):
        raise TypeError(f"key must be a JAX PRNG key (jax.random.key(...)), got {type(key).__name__}")
    per_subject = _by_subject(dataset, parameters, _Parameters, _VARIANT_PARAMETERS)
    sets = []
    for subject, value in per_subject.items():
        vp = make_variant_parameters(value._asdict()) if isinstance(value, CMRParameters) else value
        check_variant_parameters(vp)
        shapes = {np.shape(leaf) for leaf in jax.tree_util.tree_leaves(vp)}
        if shapes != {()}:
            raise ValueError(f"parameters must be {_VARIANT_PARAMETERS}; subject {subject} has shapes {sorted(shapes)}")
        sets.append(vp)
    trials = prepare_variant(dataset, variant, similarity if variant.semantic else None)
    rows, copy, keys = _copies(dataset, repeats, key)
    subject_index = np.searchsorted(dataset.subjects, dataset.subject[rows])
    # one dtype for every leaf (weakly typed Python floats would key a second compile)
    dtype = jnp.result_type(float)
    stacked = jax.tree_util.tree_map(lambda leaf: jnp.asarray(leaf, dtype), stack_variant_parameters(sets))
    sampled = _simulate_variant_lists(stacked, jnp.asarray(subject_index), jnp.asarray(rows),
                                      jnp.asarray(dataset.list_length[rows]), trials.similarity,
                                      trials.category_units, keys, variant, trials.n_items)
    return _like(dataset, rows, copy, np.asarray(sampled))


__all__ = ["simulate", "simulate_like", "simulate_recalls", "simulate_variant_like"]
