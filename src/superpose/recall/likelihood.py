"""The negative log-likelihood of recall sequences under CMR, for one set or a population.

Events are the correct recalls of each list in output order, then the stop. Intrusions and
repeats are left out of the sequence (as cymr and jaxcmr do); :class:`RecallDataset` flags them.
Lists are encoded once per distinct list length, not once per list.

Layout of one call: ``vmap`` over parameter sets (a differential-evolution population), inside
it ``vmap`` over lists, inside that a ``lax.scan`` over recall events. Data-only work (which
items are already recalled at each event) does not depend on the parameters, so ``vmap``
leaves it unbatched and it is computed once per call.
"""

from __future__ import annotations

import functools
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from superpose.parallel import sharded
from superpose.recall.data import RecallDataset
from superpose.recall.model import encode, event_log_probabilities
from superpose.recall.parameters import CMRParameters, check_parameters


class Trials(NamedTuple):
    """A dataset's lists in the layout the likelihood scans (device arrays, no Python objects).

    Attributes:
        lengths: ``(U,)`` the distinct list lengths.
        length_index: ``(L,)`` which of ``lengths`` each list has.
        targets: ``(L, R)`` 0-indexed study positions of the correct recalls, ``-1`` after the last;
            R is one more than the most recalls in a list, so every list has its stop event.
    """

    lengths: Int[Array, " U"]
    length_index: Int[Array, " L"]
    targets: Int[Array, "L R"]

    @property
    def n_items(self) -> int:
        return int(self.lengths.max())

    @property
    def n_events(self) -> int:
        """Recalls plus stops (one stop per list)."""
        return int(np.sum(np.asarray(self.targets) >= 0) + self.targets.shape[0])


def prepare(dataset: RecallDataset) -> Trials:
    """The :class:`Trials` of every list in ``dataset`` (select subjects first to fit one)."""
    if not isinstance(dataset, RecallDataset):
        raise TypeError(f"expected a RecallDataset, got {type(dataset).__name__}")
    clean = dataset.clean_recalls()
    counts = (clean > 0).sum(1)
    targets = np.full((dataset.n_lists, int(counts.max()) + 1), -1, np.int32)
    targets[:, : clean.shape[1]] = np.where(clean > 0, clean - 1, -1)
    lengths, index = np.unique(dataset.list_length, return_inverse=True)
    return Trials(jnp.asarray(lengths, jnp.int32), jnp.asarray(index, jnp.int32), jnp.asarray(targets))


def _list_log_likelihoods(params: CMRParameters, trials: Trials, n_items: int) -> Float[Array, " L"]:
    networks = jax.vmap(encode, in_axes=(None, 0, None))(params, trials.lengths, n_items)
    if trials.lengths.shape[0] == 1:
        per_list = jax.vmap(event_log_probabilities, in_axes=(None, None, None, 0))
        events = per_list(params, jax.tree_util.tree_map(lambda x: x[0], networks), trials.lengths[0],
                          trials.targets)
    else:
        picked = jax.tree_util.tree_map(lambda x: x[trials.length_index], networks)
        per_list = jax.vmap(event_log_probabilities, in_axes=(None, 0, 0, 0))
        events = per_list(params, picked, trials.lengths[trials.length_index], trials.targets)
    return jnp.sum(events, axis=-1)


@partial(jax.jit, static_argnames=("n_items",))
def _population_nll(params: CMRParameters, trials: Trials, n_items: int) -> Float[Array, " P"]:
    per_set = jax.vmap(_list_log_likelihoods, in_axes=(0, None, None))(params, trials, n_items)
    return -jnp.sum(per_set, axis=-1)


def list_log_likelihoods(params: CMRParameters, trials: Trials) -> Float[Array, " L"]:
    """Log-likelihood of each list under one parameter set (scalars)."""
    check_parameters(params)
    return jax.jit(_list_log_likelihoods, static_argnames="n_items")(params, trials, trials.n_items)


def negative_log_likelihood(params: CMRParameters, trials: Trials) -> Float[Array, ""]:
    """−log P(data | params) for one parameter set: a scalar in nats (``inf`` if impossible)."""
    check_parameters(params)
    return population_nll(jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], params), trials)[0]


def population_nll(params: CMRParameters, trials: Trials) -> Float[Array, " P"]:
    """−log-likelihood of the data for each of P parameter sets (each field of shape ``(P,)``).

    One jitted call scores the whole population; with several devices the population axis is
    sharded over them (:func:`superpose.parallel.sharded`).
    """
    check_parameters(params)
    shapes = {np.shape(v) for v in params}
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:
        raise ValueError(f"a population needs every parameter of shape (P,), got shapes {sorted(shapes)}")
    return _sharded_nll(params, trials, trials.n_items)


@functools.lru_cache(maxsize=None)
def _sharded_for(n_items: int, n_devices: int):
    return sharded(partial(_population_nll, n_items=n_items), batch_argnums=(0,))


def _sharded_nll(params: CMRParameters, trials: Trials, n_items: int) -> Array:
    if jax.device_count() == 1:
        return _population_nll(params, trials, n_items)
    return _sharded_for(n_items, jax.device_count())(params, trials)
