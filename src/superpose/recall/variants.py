"""CMR variants: semantic associations in M^CF (Morton & Polyn 2016), a category context sublayer
(:mod:`superpose.recall.category`) and instance (trace) M^CF.

A :class:`CMRVariant` declares which terms a model has; :class:`VariantParameters` holds the base
:class:`~superpose.recall.parameters.CMRParameters` plus the added parameters, whose defaults make the
variant exactly the base model; :func:`prepare_variant` carries what the variant needs from the data;
:func:`superpose.recall.simulation.simulate_variant_like` samples the model scored here.

**Semantic associations.** With S a similarity matrix over the word pool (item numbers),
pre-experimental M^CF gains s·S[item_k, item_j] between the context unit of the list's k-th item
and its j-th item:

    M^CF_pre[k + 1, j] = α + s·S[w_k, w_j] (k ≠ j),  δ (k = j)      (w_k: the item number at position k).

M^FC is unchanged (the context trajectory, and so the inputs x_j, do not depend on S), so only
the recall tables of the context-free recursion change, per list:

    X_l = X_{n_l} + s·x[:, 1:] S_l,    a_0 = a_0(n_l) + s·c_start[1:] S_l,

X_{n} and a_0(n) being the base model's per-length tables. The similarity used with psifr's
distances is :func:`similarity_from_distances`: S = max(1 − d, 0), diagonal 0 (1 − d is the cosine
similarity of the word vectors behind psifr's distances, cymr's dot-product similarity of unit
vectors; the few negative cosines are clipped so that every activation stays positive; the item's
own unit is δ's).

**Instance memory.** M^CF is a set of traces (c_t, v_t): one pre-experimental trace per context
unit u, (e_u, M^CF_pre[u, :]), and one per study event i, (c_i, γ_CF φ_i f_i). An item's activation
given context c is

    a_j = Σ_t (c·c_t)^κ v_t[j],      κ = ``trace_sensitivity``,

so κ = 1 is the linear model. Both c (against e_u: c itself) and the dots c·c_i move along the
fixed recall inputs, so the recursion carries c (N + 1 numbers), (c·c_i)_i and (c·x_k)_k per list
and raises them to κ only at the recall events.

**Category units with instance memory** (``category=True, memory="instance"``): instance memory per
context sublayer. The category sublayer's M^CF_cat (:mod:`superpose.recall.category`) is a set of traces
too: its pre-experimental term Σ_k e_{g_k} f_kᵀ as one trace per category unit g, (e_g, M^CF_cat,pre[g, :]),
and its learned term Σ_k γ_CF φ_k c^cat_k f_kᵀ as one trace per study event, (c^cat_k, γ_CF φ_k f_k). With
the same κ in both sublayers,

    a_j = Σ_t (c·c_t)^κ v_t[j] + w_cat · Σ_t (c^cat·c^cat_t)^κ v^cat_t[j]
        = (temporal instance read-out) + w_cat · ((c^cat[g_j])^κ + γ_CF φ_j (c^cat·c^cat_j)^κ),

so κ = 1 is the linear category model (:func:`category_instance_activations`); the category sublayer's
recursion carries c^cat and (c^cat·c^cat_i)_i as the temporal one carries c and (c·c_i)_i.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from superpose.recall.category import category_tables
from superpose.recall.data import RecallDataset
from superpose.recall.likelihood import (
    Trials,
    chunked_population,
    jit,
    log_probabilities_at,
    per_list,
    prepare,
    shard_population,
)
from superpose.recall.model import (
    encode_with_contexts,
    pre_experimental_mcf,
    primacy,
    retained_context,
    start_context,
)
from superpose.recall.parameters import (
    DEFAULT_FREE,
    CMRParameters,
    check_parameters,
    make_parameters,
)

MEMORY_TYPES = ("linear", "instance")


VARIANT_BOUNDS: dict[str, tuple[float, float]] = {"semantic_scale": (0.0, 100.0), "trace_sensitivity": (0.0, 10.0),
                                                  "category_drift_rate": (0.0, 1.0), "category_weight": (0.0, 100.0)}
"""Search box of the added parameters (like :data:`~superpose.recall.parameters.BOUNDS`)."""

VARIANT_LIMITS: dict[str, tuple[float, float]] = {"semantic_scale": (0.0, float("inf")),
                                                  "trace_sensitivity": (0.0, float("inf")),
                                                  "category_drift_rate": (0.0, 1.0),
                                                  "category_weight": (0.0, float("inf"))}
"""Values the model accepts for the added parameters."""


@dataclass(frozen=True)
class CMRVariant:
    """Which terms a CMR model has (hashable: a static argument of the jitted likelihood).

    Attributes:
        semantic: pre-experimental M^CF gains ``semantic_scale``·S between the studied items.
        category: a category context sublayer (:mod:`superpose.recall.category`).
        memory: ``"linear"`` (M^CF a matrix) or ``"instance"`` (traces, ``trace_sensitivity``); with
            ``category`` instance memory holds traces in each context sublayer, with one κ (module docstring).
    """

    semantic: bool = False
    category: bool = False
    memory: str = "linear"

    def __post_init__(self) -> None:
        for name in ("semantic", "category"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if self.memory not in MEMORY_TYPES:
            raise ValueError(f"memory must be one of {MEMORY_TYPES}, got {self.memory!r}")

    @property
    def extra(self) -> tuple[str, ...]:
        """The parameters this variant adds to the base model's."""
        return ((("semantic_scale",) if self.semantic else ())
                + (("category_drift_rate", "category_weight") if self.category else ())
                + (("trace_sensitivity",) if self.memory == "instance" else ()))

    @property
    def free(self) -> tuple[str, ...]:
        """The default free parameters: the base model's (γ_CF fixed to 1) and the added ones."""
        return DEFAULT_FREE + self.extra


class VariantParameters(NamedTuple):
    """A pytree: the base parameters and the added ones (scalars, or ``(P,)`` arrays for a population)."""

    cmr: CMRParameters
    semantic_scale: Any = 0.0
    trace_sensitivity: Any = 1.0
    category_drift_rate: Any = 0.0
    category_weight: Any = 0.0


VARIANT_DEFAULTS: dict[str, float] = dict(VariantParameters._field_defaults)
"""Values of the added parameters that make a variant the base model (:class:`VariantParameters`' defaults)."""


def make_variant_parameters(values: Mapping[str, Any] | None = None, **kwargs: Any) -> VariantParameters:
    """Base parameters (all 12 names) plus any of the names in :data:`VARIANT_DEFAULTS`.

    Added parameters left out take their :data:`VARIANT_DEFAULTS`, shaped like the base ones.
    """
    merged = {**(dict(values) if values is not None else {}), **kwargs}
    extra = {n: merged.pop(n) for n in VARIANT_DEFAULTS if n in merged}
    base = make_parameters(merged)
    shape = np.shape(base.encoding_drift_rate)
    dtype = jnp.result_type(base.encoding_drift_rate, float)
    filled = {n: extra.get(n, jnp.full(shape, VARIANT_DEFAULTS[n], dtype)) for n in VARIANT_DEFAULTS}
    params = VariantParameters(cmr=base, **filled)
    check_variant_parameters(params)
    return params


def stack_variant_parameters(parameter_sets: list[VariantParameters]) -> VariantParameters:
    """Stacks parameter sets into a population (leading axis)."""
    return jax.tree_util.tree_map(lambda *leaves: jnp.stack([jnp.asarray(x) for x in leaves]), *parameter_sets)


def check_variant_parameters(params: VariantParameters) -> None:
    """Raises ValueError naming an added parameter that is NaN, outside its limits or misshapen."""
    if not isinstance(params, VariantParameters):
        raise TypeError(f"expected VariantParameters, got {type(params).__name__}")
    check_parameters(params.cmr)
    shape = np.shape(params.cmr.encoding_drift_rate)
    for name in VARIANT_DEFAULTS:
        value = getattr(params, name)
        if isinstance(value, jax.core.Tracer):
            continue
        array = np.asarray(value)
        if array.shape != shape:
            raise ValueError(f"{name} has shape {array.shape}, the base parameters {shape}")
        low, high = VARIANT_LIMITS[name]
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name} must be finite")
        if np.any(array < low) or np.any(array > high):
            raise ValueError(f"{name} is outside its limits [{low:g}, {high:g}]")


def similarity_from_distances(distances: Any) -> np.ndarray:
    """S = max(1 − d, 0) with a zero diagonal; NaN (unknown words) stays NaN.

    For psifr's ``sample_distances`` (cosine distances of word vectors) 1 − d is the cosine similarity.
    """
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"distances must be a square matrix, got shape {d.shape}")
    s = np.where(np.isnan(d), np.nan, np.maximum(1.0 - d, 0.0))
    np.fill_diagonal(s, 0.0)
    return s


class VariantTrials(NamedTuple):
    """:class:`~superpose.recall.likelihood.Trials` plus what a variant needs.

    Attributes:
        trials: the base model's layout.
        similarity: ``(L, N, N)`` S between the studied items of each list (0 elsewhere), or None.
        category_units: ``(L, N, C + 1)`` one-hot category unit of each studied item (unit 0, the
            sublayer's start unit, is never an item's), or None.
    """

    trials: Trials
    similarity: Float[Array, "L N N"] | None = None
    category_units: Float[Array, "L N K"] | None = None

    @property
    def n_items(self) -> int:
        return self.trials.n_items


def prepare_variant(dataset: RecallDataset, variant: CMRVariant, similarity: Any = None,
                    pad_to: tuple[int, int, int] | None = None) -> VariantTrials:
    """The :class:`VariantTrials` of ``dataset`` for ``variant``.

    Args:
        dataset: the lists to score.
        variant: the model.
        similarity: ``(K, K)`` similarity over item numbers (row k − 1 is item k), needed when
            ``variant.semantic``: e.g. ``similarity_from_distances(distances_by_item(data, items, d))``.
        pad_to: as :func:`~superpose.recall.likelihood.prepare`.

    Raises:
        ValueError: naming what the variant needs and the data lack.
    """
    if not isinstance(variant, CMRVariant):
        raise TypeError(f"expected a CMRVariant, got {type(variant).__name__}")
    trials = prepare(dataset, pad_to=pad_to)
    units = _category_units(dataset, trials) if variant.category else None
    if not variant.semantic:
        return VariantTrials(trials=trials, category_units=units)
    if similarity is None:
        raise ValueError("the semantic variant needs a similarity matrix over item numbers (similarity=...; "
                         "see similarity_from_distances and distances_by_item)")
    s = np.asarray(similarity, dtype=np.float64)
    n = trials.n_items
    studied = np.arange(dataset.presented.shape[1])[None, :] < dataset.list_length[:, None]
    items = np.asarray(dataset.presented)[:, :n]
    if s.ndim != 2 or s.shape[0] != s.shape[1] or s.shape[0] < int(items.max()):
        raise ValueError(f"similarity must be square and cover item numbers 1..{int(items.max())}, "
                         f"got shape {s.shape}")
    idx = np.maximum(items, 1) - 1
    lists = s[idx[:, :, None], idx[:, None, :]]                            # (L, N, N)
    mask = studied[:, :n, None] & studied[:, None, :n] & ~np.eye(n, dtype=bool)
    bad = mask & ~np.isfinite(lists)
    if bad.any():
        row, k, _ = np.argwhere(bad)[0]
        raise ValueError(f"similarity is not finite for item {int(items[row, k])} (list row {int(row)})")
    lists = np.where(mask, lists, 0.0)
    if np.any(lists < 0):
        raise ValueError("similarity must be nonnegative between studied items (see similarity_from_distances)")
    extra = trials.targets.shape[0] - lists.shape[0]
    if extra:
        lists = np.pad(lists, ((0, extra), (0, 0), (0, 0)), mode="edge")
    return VariantTrials(trials=trials, similarity=jnp.asarray(lists), category_units=units)


def _category_units(dataset: RecallDataset, trials: Trials) -> Array:
    if "category" not in dataset.item_attributes:
        raise ValueError("the category variant needs the item attribute 'category' (dataset.item_attributes; "
                         "from_events(..., item_attributes=('category',)))")
    values = np.asarray(dataset.item_attributes["category"], dtype=object)
    n = trials.n_items
    studied = np.arange(n)[None, :] < dataset.list_length[:, None]
    items = np.asarray(dataset.presented)[:, :n]
    missing = np.array([v is None or (isinstance(v, float) and np.isnan(v)) for v in values])
    bad = studied & missing[np.maximum(items, 1) - 1]
    if bad.any():
        row, k = np.argwhere(bad)[0]
        raise ValueError(f"the category variant needs a category for every studied item: item {int(items[row, k])} "
                         f"(list row {int(row)}) has none")
    names = sorted({str(v) for v in values[~missing]})
    code = {name: g + 1 for g, name in enumerate(names)}
    unit = np.zeros(items.shape, np.int64)
    unit[studied] = [code[str(values[i - 1])] for i in items[studied]]
    onehot = (unit[:, :, None] == np.arange(len(names) + 1)) & studied[:, :, None]
    extra = trials.targets.shape[0] - onehot.shape[0]
    if extra:
        onehot = np.pad(onehot, ((0, extra), (0, 0), (0, 0)), mode="edge")
    return jnp.asarray(onehot.astype(np.float64))


# --- likelihood -----------------------------------------------------------------------------------

def _power(d: Array, kappa: Array) -> Array:
    """d^κ for d ≥ 0 (0 where d ≤ 0), with finite gradients."""
    positive = d > 0
    return jnp.where(positive, jnp.exp(kappa * jnp.log(jnp.where(positive, d, 1.0))), 0.0)


def _event_activations(vp: VariantParameters, vt: VariantTrials, n_items: int, variant: CMRVariant
                       ) -> Float[Array, "E N"]:
    params, trials = vp.cmr, vt.trials
    dtype = jnp.result_type(params.encoding_drift_rate, float)
    networks, contexts = jax.vmap(encode_with_contexts, in_axes=(None, 0, None))(params, trials.lengths, n_items)
    start = jax.vmap(start_context, in_axes=(None, 0))(params, networks)           # (U, N+1)
    x = networks.fc_inputs                                                          # (U, N, N+1)
    index = trials.length_index
    n_lists = index.shape[0]
    overlaps = jnp.einsum("uik,ujk->uij", x, x).reshape(-1, n_items)
    dots = jnp.einsum("uik,uk->ui", x, start)[index]
    sim = vp.semantic_scale * vt.similarity.astype(dtype) if variant.semantic else None
    list_rows = jnp.arange(n_lists)[:, None] * n_items + trials.rows % n_items
    if variant.memory == "linear":
        increments = jnp.einsum("uik,ukj->uij", x, networks.mcf)                   # X (U, N, N)
        activations = jnp.einsum("uk,ukj->uj", start, networks.mcf)[index]
        if variant.semantic:
            increments = increments[index] + jnp.einsum("lik,lkj->lij", x[index][:, :, 1:], sim)
            activations = activations + jnp.einsum("lk,lkj->lj", start[index][:, 1:], sim)
            tables = ((increments.reshape(-1, n_items), list_rows),)
        else:
            tables = ((increments.reshape(-1, n_items), trials.rows),)
        states = (activations,)
    else:
        trace_dots = jnp.einsum("uik,ujk->uij", x, contexts)                       # x_j·c_i
        tables = ((x.reshape(-1, n_items + 1), trials.rows), (trace_dots.reshape(-1, n_items), trials.rows))
        states = (start[index], jnp.einsum("uik,uk->ui", contexts, start)[index])
    # a group is one context sublayer: its dots with the recall inputs set its ρ, and its states
    # (activations, or context and trace dots) move with that ρ
    carry = [(dots, states)]
    specs = [(overlaps, trials.rows, params.recall_drift_rate, tables)]
    if variant.category:
        list_length = trials.lengths[trials.length_index]
        cat = category_tables(params, vp.category_drift_rate, vt.category_units.astype(dtype), list_length,
                              instance=variant.memory == "instance")
        if variant.memory == "linear":
            cat_states, cat_tables = (cat.activations,), ((cat.item_increments, list_rows),)
        else:   # the sublayer's context (against its unit traces) and its dots with its study traces
            cat_states = (cat.context, cat.trace_dots)
            cat_tables = ((cat.inputs, list_rows), (cat.trace_increments, list_rows))
        carry.append((cat.dots, cat_states))
        specs.append((cat.input_overlaps, list_rows, vp.category_drift_rate, cat_tables))

    def step(carry, t):
        new = []
        for (dots, states), (overlaps, rows, beta, tables) in zip(carry, specs):
            row = rows[:, t]
            dot = jnp.take_along_axis(dots, (row % n_items)[:, None], axis=1)
            rho = retained_context(dot, beta)
            new.append((rho * dots + beta * overlaps[row],
                        tuple(rho * s + beta * table[r[:, t]] for s, (table, r) in zip(states, tables))))
        return new, [states for _, states in carry]

    _, outs = jax.lax.scan(step, carry, jnp.arange(trials.rows.shape[1]))
    at_events = [o[trials.event_step, trials.event_list] for o in outs[0]]
    if variant.memory == "linear":
        out = at_events[0]
        if variant.category:
            out = out + vp.category_weight * outs[1][0][trials.event_step, trials.event_list]
        return out
    context, trace_dots = at_events                                                 # (E, N+1), (E, N)
    # the data-only S gathered per event (a constant), then scaled inside: s·(w S_event)
    event_similarity = vt.similarity.astype(dtype)[trials.event_list] if variant.semantic else None
    out = instance_activations(vp, variant, context, trace_dots, event_similarity)
    if variant.category:
        cat_context, cat_dots = (o[trials.event_step, trials.event_list] for o in outs[1])   # (E, K), (E, N)
        units = vt.category_units.astype(dtype)[trials.event_list]                          # (E, N, K)
        out = out + vp.category_weight * category_instance_activations(vp, cat_context, cat_dots, units)
    return out


def instance_activations(vp: VariantParameters, variant: CMRVariant, context: Float[Array, "*batch units"],
                         trace_dots: Float[Array, "*batch items"], similarity: Float[Array, "*batch items items"] | None
                         ) -> Float[Array, "*batch items"]:
    """Instance memory's a_j = Σ_t (c·c_t)^κ v_t[j], given the context c and its dots (c·c_i)_i with the study traces.

    The unit traces give Σ_u c_u^κ (M^CF_pre[u, j] + s·S[u − 1, j]) (semantic term if ``variant.semantic``,
    ``similarity`` the list's S), the study traces (c·c_j)^κ γ_CF φ_j.
    """
    params = vp.cmr
    n_items = trace_dots.shape[-1]
    dtype = context.dtype
    kappa = vp.trace_sensitivity
    weighted = _power(context, kappa)
    out = weighted @ pre_experimental_mcf(params, n_items, dtype)
    if variant.semantic:
        out = out + vp.semantic_scale * jnp.einsum("...k,...kj->...j", weighted[..., 1:], similarity)
    gain = params.mcf_learning_rate * primacy(params, n_items).astype(dtype)
    return out + _power(trace_dots, kappa) * gain


def category_instance_activations(vp: VariantParameters, context: Float[Array, "*batch K"],
                                  trace_dots: Float[Array, "*batch items"], units: Float[Array, "*batch items K"]
                                  ) -> Float[Array, "*batch items"]:
    """The category sublayer's instance read-out Σ_t (c^cat·c^cat_t)^κ v_t[j], given its context c^cat, its dots
    (c^cat·c^cat_i)_i with the study contexts and the list's one-hot category ``units`` (rows of zeros past it).

    The unit traces (e_g, Σ_k [g_k = g] f_k) give (c^cat[g_j])^κ, the study traces (c^cat_k, γ_CF φ_k f_k)
    give (c^cat·c^cat_j)^κ γ_CF φ_j on studied j; at κ = 1 the sum is c^cat·M^CF_cat[:, j].
    """
    params = vp.cmr
    kappa = vp.trace_sensitivity
    studied = jnp.sum(units, axis=-1)                 # 1 on studied positions (one category unit each), else 0
    gain = params.mcf_learning_rate * primacy(params, trace_dots.shape[-1]).astype(trace_dots.dtype) * studied
    return jnp.einsum("...k,...jk->...j", _power(context, kappa), units) + _power(trace_dots, kappa) * gain


def _log_probabilities(vp: VariantParameters, vt: VariantTrials, n_items: int, variant: CMRVariant):
    return log_probabilities_at(_event_activations(vp, vt, n_items, variant), vp.cmr, vt.trials)


def _list_log_likelihoods(vp, vt, n_items, variant):
    return per_list(*_log_probabilities(vp, vt, n_items, variant), vt.trials)


def _total_nll(vp, vt, n_items, variant):
    events, stops = _log_probabilities(vp, vt, n_items, variant)
    return -(jnp.sum(events) + jnp.sum(stops))


_jitted_list = jit(_list_log_likelihoods, static_argnames=("n_items", "variant"))
_jitted_total = jit(_total_nll, static_argnames=("n_items", "variant"))


@partial(jit, static_argnames=("n_items", "variant"))
def _population(vp: VariantParameters, vt: VariantTrials, n_items: int, variant: CMRVariant):
    return chunked_population(lambda p: _total_nll(p, vt, n_items, variant), vp)


def _check(vt: VariantTrials, variant: CMRVariant) -> None:
    if not isinstance(variant, CMRVariant):
        raise TypeError(f"expected a CMRVariant, got {type(variant).__name__}")
    if variant.semantic and vt.similarity is None:
        raise ValueError("the semantic variant needs trials prepared with a similarity matrix "
                         "(prepare_variant(..., similarity=...))")
    if variant.category and vt.category_units is None:
        raise ValueError("the category variant needs trials prepared for it (prepare_variant(..., variant))")


def variant_nll(params: VariantParameters, trials: VariantTrials, variant: CMRVariant) -> Float[Array, ""]:
    """−log P(data | params) under ``variant`` for one parameter set (scalars)."""
    check_variant_parameters(params)
    _check(trials, variant)
    return _jitted_total(params, trials, trials.n_items, variant)


def variant_list_log_likelihoods(params: VariantParameters, trials: VariantTrials, variant: CMRVariant
                                 ) -> Float[Array, " L"]:
    """Log-likelihood of each (real) list under ``variant``, one parameter set."""
    check_variant_parameters(params)
    _check(trials, variant)
    return _jitted_list(params, trials, trials.n_items, variant)[: trials.trials.n_lists]


def variant_population_nll(params: VariantParameters, trials: VariantTrials, variant: CMRVariant
                           ) -> Float[Array, " P"]:
    """−log-likelihood for each of P parameter sets (every leaf ``(P,)``), in one jitted call."""
    check_variant_parameters(params)
    _check(trials, variant)
    shapes = {np.shape(v) for v in jax.tree_util.tree_leaves(params)}
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:
        raise ValueError(f"a population needs every parameter of shape (P,), got shapes {sorted(shapes)}")
    return shard_population(_population, params, trials, n_items=trials.n_items, variant=variant)


__all__ = ["CMRVariant", "MEMORY_TYPES", "VARIANT_BOUNDS", "VARIANT_DEFAULTS", "VARIANT_LIMITS",
           "VariantParameters", "VariantTrials", "category_instance_activations", "check_variant_parameters",
           "instance_activations",
           "make_variant_parameters", "stack_variant_parameters",
           "prepare_variant", "similarity_from_distances", "variant_list_log_likelihoods", "variant_nll",
           "variant_population_nll"]
