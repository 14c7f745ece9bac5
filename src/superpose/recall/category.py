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
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from superpose.recall.model import drift, primacy
from superpose.recall.parameters import CMRParameters


class CategoryTables(NamedTuple):
    """Per list: start activations and dots ``(L, N)``, and increment / overlap tables ``(L·N, N)``."""

    activations: Float[Array, "L N"]
    dots: Float[Array, "L N"]
    item_increments: Float[Array, "LN N"]
    input_overlaps: Float[Array, "LN N"]


def category_network(params: CMRParameters, beta: Array, units: Float[Array, "N K"], n_studied: Array
                     ) -> tuple[Float[Array, " K"], Float[Array, "N K"], Float[Array, "K N"]]:
    """One list's category sublayer after study: ``(cue, y, M^CF_cat)``.

    ``units`` is the one-hot category input of each position (rows of zeros past the list); ``cue``
    the sublayer's context at the start of recall (drifted to e_0 with β_start), ``y`` the ``(N, K)``
    normalised recall inputs M^FC_cat f_k / ‖·‖ and ``M^CF_cat`` the ``(K, N)`` associations.
    """
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
    return drift(context, start, params.start_drift_rate), y, mcf


def _list_tables(params: CMRParameters, beta: Array, units: Float[Array, "N K"], n_studied: Array
                 ) -> tuple[Array, Array, Array, Array]:
    cue, y, mcf = category_network(params, beta, units, n_studied)
    return cue @ mcf, y @ cue, y @ mcf, y @ y.T


def category_tables(params: CMRParameters, beta: Array, units: Float[Array, "L N K"], list_length: Array
                    ) -> CategoryTables:
    """The :class:`CategoryTables` of every list (``units``: one-hot categories, ``list_length``: ``(L,)``)."""
    a, d, inc, ov = jax.vmap(_list_tables, in_axes=(None, None, 0, 0))(params, beta, units, list_length)
    n = units.shape[1]
    return CategoryTables(activations=a, dots=d, item_increments=inc.reshape(-1, n), input_overlaps=ov.reshape(-1, n))
