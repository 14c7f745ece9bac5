"""The category sublayer of CMR variants: one feature and context unit per category.

Context has a second sublayer of K = C + 1 units (unit 0 its start unit, unit g the category g),
normalised and drifted on its own, as cymr's context sublayers are (``set_sublayers(c=[..., "cat"])``
with a sublayer-specific drift rate). With g_k the category of the item at study position k:

    study:   c^cat_k = ρ c^cat_{k−1} + β_cat e_{g_k}          (c^cat_0 = e_0),
             M^FC_cat f_k = (1 − γ_FC) e_{g_k} + γ_FC c^cat_k,   y_k = M^FC_cat f_k / ‖·‖,
             M^CF_cat = Σ_k e_{g_k} f_kᵀ (pre-experimental) + Σ_k γ_CF φ_k c^cat_k f_kᵀ,
    recall:  start drift to e_0 with β_start; a recall of j drifts c^cat towards y_j with β_cat;
    cue:     a_j = c·M^CF[:, j] + w_cat · c^cat·M^CF_cat[:, j].

So w_cat = 0 (the default) is the base model. Like the temporal sublayer, the category sublayer's
activations and dots with the inputs y_k follow a context-free recursion (with its own ρ), so this
module only builds per-list tables; study is encoded per list (the category sequence differs).

With instance memory (``CMRVariant(category=True, memory="instance")``) M^CF_cat's two terms become
traces of the sublayer: one pre-experimental trace per category unit g, (e_g, M^CF_cat,pre[g, :]) with
M^CF_cat,pre = Σ_k e_{g_k} f_kᵀ, and one per study event k, (c^cat_k, γ_CF φ_k f_k). Its read-out is

    Σ_t (c^cat·c^cat_t)^κ v_t[j] = (c^cat[g_j])^κ + γ_CF φ_j (c^cat·c^cat_j)^κ     (j studied),

the same κ as the temporal sublayer's traces; κ = 1 is c^cat·M^CF_cat[:, j]. The recursion then carries
c^cat and its dots with the study contexts (c^cat·c^cat_i)_i (:class:`CategoryTables`' instance fields).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from superpose.recall.model import drift, primacy
from superpose.recall.parameters import CMRParameters


class CategoryTables(NamedTuple):
    """Per list: start dots with the recall inputs ``(L, N)`` and the inputs' overlaps ``(L·N, N)``; for linear
    memory the start activations ``(L, N)`` and their increments ``(L·N, N)``; for instance memory the start
    context ``(L, K)`` with its recall inputs ``(L·N, K)``, and its dots with the study contexts ``(L, N)``
    with their increments y_j·c^cat_i ``(L·N, N)``. The other memory type's fields are None.
    """

    dots: Float[Array, "L N"]
    input_overlaps: Float[Array, "LN N"]
    activations: Float[Array, "L N"] | None = None
    item_increments: Float[Array, "LN N"] | None = None
    context: Float[Array, "L K"] | None = None
    inputs: Float[Array, "LN K"] | None = None
    trace_dots: Float[Array, "L N"] | None = None
    trace_increments: Float[Array, "LN N"] | None = None


class CategoryNetwork(NamedTuple):
    """One list's category sublayer after study (:func:`encode_category`).

    Attributes:
        cue: ``(K,)`` the sublayer's context at the start of recall (drifted to e_0 with β_start).
        inputs: ``(N, K)`` normalised recall inputs y_k = M^FC_cat f_k / ‖·‖.
        mcf: ``(K, N)`` M^CF_cat, both terms (linear memory).
        contexts: ``(N, K)`` c^cat_k after each study event (the last studied one repeats past the list):
            the contexts of instance memory's study traces (c^cat_k, γ_CF φ_k f_k).
    """

    cue: Float[Array, " K"]
    inputs: Float[Array, "N K"]
    mcf: Float[Array, "K N"]
    contexts: Float[Array, "N K"]


def encode_category(params: CMRParameters, beta: Array, units: Float[Array, "N K"], n_studied: Array
                    ) -> CategoryNetwork:
    """One list's :class:`CategoryNetwork`; ``units`` is the one-hot category input of each position
    (rows of zeros past the list), ``beta`` β_cat, ``n_studied`` the list's length."""
    n_items, k = units.shape
    dtype = units.dtype
    phi = primacy(params, n_items).astype(dtype)

    def study(context, position):
        new = drift(context, units[position], beta)
        new = jnp.where(position < n_studied, new, context)
        return new, new

    start = jnp.zeros(k, dtype).at[0].set(1.0)
    context, contexts = jax.lax.scan(study, start, jnp.arange(n_items))        # (N, K)
    studied = (jnp.arange(n_items) < n_studied).astype(dtype)
    mcf = units.T + (params.mcf_learning_rate * phi * studied)[None, :] * contexts.T   # (K, N)
    fc = (1.0 - params.mfc_learning_rate) * units + params.mfc_learning_rate * contexts
    norm = jnp.sqrt(jnp.sum(fc**2, axis=-1, keepdims=True))
    y = fc / jnp.where(norm > 0, norm, 1.0)
    return CategoryNetwork(cue=drift(context, start, params.start_drift_rate), inputs=y, mcf=mcf, contexts=contexts)


def _list_tables(params: CMRParameters, beta: Array, units: Float[Array, "N K"], n_studied: Array, instance: bool
                 ) -> CategoryTables:
    net = encode_category(params, beta, units, n_studied)
    cue, y = net.cue, net.inputs
    if instance:
        return CategoryTables(dots=y @ cue, input_overlaps=y @ y.T, context=cue, inputs=y,
                              trace_dots=net.contexts @ cue, trace_increments=y @ net.contexts.T)
    return CategoryTables(dots=y @ cue, input_overlaps=y @ y.T, activations=cue @ net.mcf, item_increments=y @ net.mcf)


def category_tables(params: CMRParameters, beta: Array, units: Float[Array, "L N K"], list_length: Array, *,
                    instance: bool = False) -> CategoryTables:
    """The :class:`CategoryTables` of every list (``units``: one-hot categories, ``list_length``: ``(L,)``), for
    linear memory or (``instance``) instance memory; per-list tables are stacked to ``(L·N, ·)``."""
    tables = jax.vmap(partial(_list_tables, instance=instance), in_axes=(None, None, 0, 0))(params, beta, units,
                                                                                          list_length)
    flat = ("input_overlaps", "item_increments", "inputs", "trace_increments")
    return tables._replace(**{name: getattr(tables, name).reshape(-1, getattr(tables, name).shape[-1])
                              for name in flat if getattr(tables, name) is not None})
