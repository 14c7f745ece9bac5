"""The negative log-likelihood of recall sequences under CMR, for one set or a population.

Events are the correct recalls of each list in output order, then the stop. Intrusions and
repeats are left out of the sequence (as cymr and jaxcmr do); :class:`RecallDataset` flags them.

Layout of one call, for P parameter sets:

1. study: one :func:`encode` per distinct list length (not per list), ``vmap``-ed over P;
2. recall: a ``lax.scan`` over output positions that carries every list's activations and
   input dots (:class:`~superpose.recall.model.RecallIncrements`: O(N) per step, no context);
3. choice: the log Luce probability of each actual recall, over a flat axis of the E real
   recall events (padding slots are never scored), masking recalled items before scaling;
4. stop: the stop rule at each recall and at each list's end.

Everything that depends only on the data (which items are already recalled at each event,
which slot is which event) is built once by :func:`prepare`, so the jitted function sees it
as constants and ``vmap`` over the population leaves it unbatched.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from superpose import _xla
from superpose._xla import FAST_COMPILE
from superpose.numerics import log_choice_probability_of
from superpose.parallel import pad_batch, sharded
from superpose.recall.data import RecallDataset
from superpose.recall.model import encode, log_stop_probability, recall_increments, retained_context
from superpose.recall.parameters import CMRParameters, check_parameters


POPULATION_CHUNK = 64
"""Parameter sets scored together inside one population call (measured best on 2 CPU cores)."""


class Trials(NamedTuple):
    """A dataset's lists in the layout the likelihood scans (device arrays only).

    L lists, R = most recalls + 1, N = longest list, U distinct lengths, E recall events.

    Attributes:
        lengths: ``(U,)`` the distinct list lengths.
        length_index: ``(L,)`` which of ``lengths`` each list has.
        targets: ``(L, R)`` 0-indexed study positions of the correct recalls, ``-1`` after.
        rows: ``(L, R)`` row of each recall in the stacked per-length tables (``index·N + item``).
        event_list, event_step: ``(E,)`` list and output position (0-based) of each recall.
        event_target: ``(E,)`` the recalled item (0-based).
        event_mask: ``(E, N)`` items unavailable at the event (recalled before, or not studied).
        event_left: ``(E,)`` items still available at the event.
        stop_step, stop_left: ``(L,)`` recalls made before stopping, and items left then.
        event_valid, list_valid: ``(E,)`` and ``(L,)``, False on padding (see :func:`prepare`).
    """

    lengths: Int[Array, " U"]
    length_index: Int[Array, " L"]
    targets: Int[Array, "L R"]
    rows: Int[Array, "L R"]
    event_list: Int[Array, " E"]
    event_step: Int[Array, " E"]
    event_target: Int[Array, " E"]
    event_mask: Bool[Array, "E N"]
    event_left: Int[Array, " E"]
    stop_step: Int[Array, " L"]
    stop_left: Int[Array, " L"]
    event_valid: Bool[Array, " E"]
    list_valid: Bool[Array, " L"]

    @property
    def n_items(self) -> int:
        """N, the longest list (static: read from an array shape)."""
        return int(self.event_mask.shape[1])

    @property
    def n_lists(self) -> int:
        """Real lists (padding excluded)."""
        return int(np.sum(np.asarray(self.list_valid)))

    @property
    def n_events(self) -> int:
        """Real recalls plus stops (one stop per list)."""
        return int(np.sum(np.asarray(self.event_valid)) + self.n_lists)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(lists, output steps, recall events) including padding: equal shapes share one compile."""
        return (int(self.targets.shape[0]), int(self.targets.shape[1]), int(self.event_list.shape[0]))


def prepare(dataset: RecallDataset, pad_to: tuple[int, int, int] | None = None) -> Trials:
    """The :class:`Trials` of every list in ``dataset`` (select subjects first to fit one).

    Args:
        dataset: the lists to score.
        pad_to: optional minimum ``(lists, output steps, recall events)``. Padding scores 0, so
            subjects padded to one shape share one compiled likelihood (``fit`` does this).
    """
    if not isinstance(dataset, RecallDataset):
        raise TypeError(f"expected a RecallDataset, got {type(dataset).__name__}")
    n = int(dataset.list_length.max())
    clean = dataset.clean_recalls()
    counts = (clean > 0).sum(1)
    targets = np.full((dataset.n_lists, int(counts.max()) + 1), -1, np.int64)
    targets[:, : clean.shape[1]] = np.where(clean > 0, clean - 1, -1)
    lengths, index = np.unique(dataset.list_length, return_inverse=True)
    valid = targets >= 0
    safe = np.maximum(targets, 0)
    onehot = safe[:, :, None] == np.arange(n)
    recalled_before = (np.cumsum(onehot & valid[:, :, None], axis=1) - (onehot & valid[:, :, None])) > 0
    unstudied = np.arange(n)[None, None, :] >= dataset.list_length[:, None, None]
    event_list, event_step = np.nonzero(valid)
    list_length = dataset.list_length
    event_target = targets[event_list, event_step]
    event_mask = (recalled_before | unstudied)[event_list, event_step]
    rows = index[:, None] * n + safe
    n_lists, n_steps, n_events = dataset.n_lists, targets.shape[1], event_list.size
    if pad_to is not None:
        want = tuple(int(x) for x in pad_to)
        if len(want) != 3 or min(want) < 0:
            raise ValueError(f"pad_to must be (lists, steps, events) of nonnegative integers, got {pad_to!r}")
        extra_lists, extra_steps, extra_events = (max(0, w - h) for w, h in zip(want, (n_lists, n_steps, n_events)))
        # Padded lists repeat list 0 and padded events repeat event 0; their scores are masked out.
        targets = np.pad(targets, ((0, extra_lists), (0, extra_steps)), constant_values=-1)
        rows = np.pad(rows, ((0, extra_lists), (0, extra_steps)), mode="edge")
        index = np.pad(index, (0, extra_lists), mode="edge")
        counts = np.pad(counts, (0, extra_lists), mode="edge")
        list_length = np.pad(list_length, (0, extra_lists), mode="edge")
        pad_event = (lambda a: np.pad(a, [(0, extra_events)] + [(0, 0)] * (a.ndim - 1), mode="edge")) \
            if n_events else (lambda a: np.zeros((extra_events, *a.shape[1:]), a.dtype))
        event_list, event_step, event_target, event_mask = map(pad_event, (event_list, event_step, event_target,
                                                                              event_mask))
    i32 = partial(jnp.asarray, dtype=jnp.int32)
    return Trials(
        lengths=i32(lengths), length_index=i32(index), targets=i32(targets), rows=i32(rows),
        event_list=i32(event_list), event_step=i32(event_step), event_target=i32(event_target),
        event_mask=jnp.asarray(event_mask), event_left=i32(list_length[event_list] - event_step),
        stop_step=i32(counts), stop_left=i32(list_length - counts),
        event_valid=jnp.arange(event_list.size) < n_events, list_valid=jnp.arange(targets.shape[0]) < n_lists,
    )


def _event_activations(params: CMRParameters, trials: Trials, n_items: int) -> Float[Array, "E N"]:
    """Item activations a = c·M^CF at each recall event, from the context-free recursion."""
    networks = jax.vmap(encode, in_axes=(None, 0, None))(params, trials.lengths, n_items)
    inc = jax.vmap(recall_increments, in_axes=(None, 0))(params, networks)
    increments = inc.item_increments.reshape(-1, n_items)                  # (U·N, N)
    overlaps = inc.input_overlaps.reshape(-1, n_items)
    beta = params.recall_drift_rate
    rows = trials.rows

    def step(carry, t):
        activations, dots = carry                                           # (L, N) each
        row = rows[:, t]
        dot = jnp.take_along_axis(dots, (row % n_items)[:, None], axis=1)   # d_{t-1}[j_t]
        rho = retained_context(dot, beta)
        new = (rho * activations + beta * increments[row], rho * dots + beta * overlaps[row])
        return new, activations

    start = (inc.activations[trials.length_index], inc.dots[trials.length_index])
    _, activations = jax.lax.scan(step, start, jnp.arange(rows.shape[1]))   # (R, L, N)
    return activations[trials.event_step, trials.event_list]               # (E, N)


def log_probabilities_at(activations: Float[Array, "E N"], params: CMRParameters, trials: Trials
                         ) -> tuple[Float[Array, " E"], Float[Array, " L"]]:
    """(log-probability of each recall event, of each list's stop) given the ``(E, N)`` activations at the
    events: the choice rule and the stop rule, shared by the base model and its variants."""
    log_choice = log_choice_probability_of(activations, trials.event_mask, params.choice_sensitivity,
                                           trials.event_target)
    _, log_continue = log_stop_probability(params, trials.event_step, trials.event_left)
    log_stop, _ = log_stop_probability(params, trials.stop_step, trials.stop_left)
    return (jnp.where(trials.event_valid, log_choice + log_continue, 0.0),
            jnp.where(trials.list_valid, log_stop, 0.0))


def per_list(events: Float[Array, " E"], stops: Float[Array, " L"], trials: Trials) -> Float[Array, " L"]:
    """Each list's log-likelihood from its events' and its stop's log-probabilities."""
    return stops + jax.ops.segment_sum(events, trials.event_list, num_segments=trials.targets.shape[0])


def _event_log_probabilities(params: CMRParameters, trials: Trials, n_items: int
                             ) -> tuple[Float[Array, " E"], Float[Array, " L"]]:
    """(log-probability of each recall event, log-probability of each list's stop)."""
    return log_probabilities_at(_event_activations(params, trials, n_items), params, trials)


def _list_log_likelihoods(params: CMRParameters, trials: Trials, n_items: int) -> Float[Array, " L"]:
    return per_list(*_event_log_probabilities(params, trials, n_items), trials)


def _total_nll(params: CMRParameters, trials: Trials, n_items: int) -> Float[Array, ""]:
    events, stops = _event_log_probabilities(params, trials, n_items)
    return -(jnp.sum(events) + jnp.sum(stops))


# On CPU the likelihood compiles at LLVM level 1. Measured on 2 cores (Morton2013 subject 1,
# 165 sets): it compiles in 1.8 s instead of 2.9 s *and* runs 25–30% faster than level 3.
jit = partial(_xla.jit, cpu_options=FAST_COMPILE)


def chunked_population(score_one: Callable[[Any], Array], params: Any) -> Float[Array, " P"]:
    """``score_one(p)`` for every set ``p`` of a population (a pytree whose leaves are ``(P,)``), traced.

    Chunks of at most :data:`POPULATION_CHUNK` sets keep the (sets × events × items) arrays in cache:
    ``vmap`` within a chunk, ``lax.map`` over chunks, the population padded to equal chunks so that
    one loop body is compiled. Call it inside a jitted function.
    """
    size = jax.tree_util.tree_leaves(params)[0].shape[0]
    chunks = -(-size // POPULATION_CHUNK)
    per_chunk = -(-size // chunks)
    padded, _ = pad_batch(params, per_chunk)
    folded = jax.tree_util.tree_map(lambda x: x.reshape(chunks, per_chunk), padded)
    scores = jax.lax.map(jax.vmap(score_one), folded)
    return scores.reshape(-1)[:size]


@partial(jit, static_argnames=("n_items",))
def _population_nll(params: CMRParameters, trials: Trials, n_items: int) -> Float[Array, " P"]:
    return chunked_population(lambda p: _total_nll(p, trials, n_items), params)


_jitted_list_log_likelihoods = jit(_list_log_likelihoods, static_argnames="n_items")
_jitted_total_nll = jit(_total_nll, static_argnames="n_items")


_jitted_event_activations = jit(_event_activations, static_argnames="n_items")


def event_activations(params: CMRParameters, trials: Trials) -> Float[Array, "E N"]:
    """Activations of every item at every real recall event (one parameter set), in event order.

    Rows line up with ``trials.event_target`` (the recalled item) and ``trials.event_mask``
    (items unavailable then); padding events are dropped.
    """
    check_parameters(params)
    out = _jitted_event_activations(params, trials, trials.n_items)
    return out[: int(np.sum(np.asarray(trials.event_valid)))]


def list_log_likelihoods(params: CMRParameters, trials: Trials) -> Float[Array, " L"]:
    """Log-likelihood of each list under one parameter set (scalars); padded lists are dropped."""
    check_parameters(params)
    out = _jitted_list_log_likelihoods(params, trials, trials.n_items)
    return out[: trials.n_lists]


def negative_log_likelihood(params: CMRParameters, trials: Trials) -> Float[Array, ""]:
    """−log P(data | params) for one parameter set: a scalar in nats (``inf`` if impossible)."""
    check_parameters(params)
    return _jitted_total_nll(params, trials, trials.n_items)


def population_nll(params: CMRParameters, trials: Trials) -> Float[Array, " P"]:
    """−log-likelihood of the data for each of P parameter sets (each field of shape ``(P,)``).

    One jitted call scores the whole population; with several devices the population axis is
    sharded over them (:func:`superpose.parallel.sharded`).
    """
    check_parameters(params)
    shapes = {np.shape(v) for v in params}
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:
        raise ValueError(f"a population needs every parameter of shape (P,), got shapes {sorted(shapes)}")
    return score_population(params, trials)


def score_population(params: CMRParameters, trials: Trials) -> Float[Array, " P"]:
    """:func:`population_nll` without the input checks (for optimisers that stay in bounds)."""
    return shard_population(_population_nll, params, trials, n_items=trials.n_items)


def shard_population(population: Callable[..., Array], params: Any, trials: Any, **static: Any) -> Float[Array, " P"]:
    """``population(params, trials, **static)`` (a jitted population likelihood, ``static`` its hashable static
    arguments); with several devices the population axis is sharded over them
    (:func:`superpose.parallel.sharded`), for the base model and its variants alike."""
    if jax.device_count() == 1:
        return population(params, trials, **static)
    return _sharded_for(population, tuple(sorted(static.items())), jax.device_count())(params, trials)


@functools.lru_cache(maxsize=None)
def _sharded_for(population: Callable[..., Array], static: tuple[tuple[str, Any], ...], n_devices: int):
    return sharded(partial(population, **dict(static)), batch_argnums=(0,))
