"""CMR (Polyn, Norman & Kahana 2009; Morton & Polyn 2016) as pure functions.

Items are identified by study position, so a list of N items has one-hot item features
``f_i`` (i = 1..N) and a context of N + 1 units, unit 0 being the start-of-list unit.

Study of item i:
    c_in = M^FC f_i / ‖M^FC f_i‖,   c_i = ρ c_{i−1} + β_enc c_in,
    ρ = √(1 + β²((c_{i−1}·c_in)² − 1)) − β (c_{i−1}·c_in)            (keeps ‖c‖ = 1),
    M^FC f_i += γ_FC c_i,            M^CF[:, i] += γ_CF φ_i c_i,   φ_i = φ_s e^{−φ_d (i−1)} + 1.
Before study, M^FC = (1 − γ_FC)·[f_i → unit i] and M^CF = α everywhere on the list units plus δ
on each item's own unit (the start unit has no association).

Recall starts by drifting towards the start unit with β_start. Each recall event has
    P(stop | n recalled) = smin(θ_s e^{θ_r n}, 1 − 10⁻⁶)  (1 when nothing is left),
    P(item j) = (1 − P(stop)) · a_j^τ / Σ_k a_k^τ over items not yet recalled,  a = c·M^CF,
and a recall of j drifts context towards M^FC f_j with β_rec. The choice rule masks recalled
items *before* power-scaling (:mod:`superpose.numerics`), so τ = 100 in float32 never makes
a choice uniform or NaN. :mod:`superpose.recall.likelihood` scores data with these equations
in the context-free form of :class:`RecallIncrements`.

The stop cap is smooth: smin(p, C) = exp(−logaddexp(−k log p, −k log C)/k), k = :data:`STOP_SHARPNESS`
= 20, a soft minimum of the logarithms. cymr and jaxcmr use the hard min(p, C), whose kink stalls
gradient polishes (its one-sided slopes differ by hundreds of nats); the soft form is smooth, never
exceeds C, and differs from p by a factor exp(−(p/C)^k/k): less than 5·10⁻⁸ relative for p ≤ 0.5,
0.6% at p = 0.9, 3.4% at p = C.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from superpose.numerics import choice_probabilities
from superpose.recall.parameters import CMRParameters

STOP_CEILING = 1.0 - 1e-6
"""The largest stop probability while an item is left, so that a recall is never impossible."""

STOP_SHARPNESS = 20.0
"""k of the smooth cap smin(p, C) = exp(−logaddexp(−k log p, −k log C)/k) on the stop probability."""


class Network(NamedTuple):
    """CMR's state after study of one list (padded to N items; unused items are never studied).

    Attributes:
        context: ``(N + 1,)`` context after the last studied item.
        fc_inputs: ``(N, N + 1)`` normalised M^FC f_j: the context input that recalling j gives.
        mcf: ``(N + 1, N)`` context-to-item associations.
    """

    context: Float[Array, " units"]
    fc_inputs: Float[Array, "items units"]
    mcf: Float[Array, "units items"]


def retained_context(dot: Array, rate: Array) -> Array:
    """ρ = √(1 + β²(d² − 1)) − β·d: how much of the old context a drift keeps, given d = c·c_in."""
    return jnp.sqrt(jnp.maximum(1.0 + rate**2 * (dot**2 - 1.0), 0.0)) - rate * dot


def drift(context: Float[Array, "*batch units"], context_input: Float[Array, "*batch units"],
          rate: Float[Array, "*batch"]) -> Float[Array, "*batch units"]:
    """One step of context drift: ρ·c + β·c_in with ρ chosen so that ‖c‖ stays 1.

    ρ = √(1 + β²((c·c_in)² − 1)) − β(c·c_in), the *dot* product of the two unit vectors (jaxcmr
    0.1.1 uses an elementwise product there). Both inputs must have unit norm.
    """
    dot = jnp.sum(context * context_input, axis=-1, keepdims=True)
    beta = jnp.asarray(rate)[..., None]
    return retained_context(dot, beta) * context + beta * context_input


def primacy(params: CMRParameters, n_items: int) -> Float[Array, " items"]:
    """φ_i = φ_s·exp(−φ_d·(i − 1)) + 1 for study positions i = 1..n_items."""
    positions = jnp.arange(n_items, dtype=jnp.result_type(params.primacy_scale, float))
    return params.primacy_scale * jnp.exp(-params.primacy_decay * positions) + 1.0


def pre_experimental_mcf(params: CMRParameters, n_items: int, dtype) -> Float[Array, "units items"]:
    """``(N + 1, N)`` M^CF before study: α on the list units, δ on each item's own unit, 0 on the start unit."""
    units = n_items + 1
    mcf = jnp.full((units, n_items), params.shared_support, dtype).at[0].set(0.0)
    return mcf.at[jnp.arange(1, units), jnp.arange(n_items)].set(params.item_support)


def encode(params: CMRParameters, list_length: Array | int, n_items: int) -> Network:
    """Studies items 1..list_length of a list padded to ``n_items``; later slots stay unstudied.

    Args:
        params: one parameter set (scalars).
        list_length: the number of studied items (traced or static), ``<= n_items``.
        n_items: the padded list length N (static).

    Returns:
        The :class:`Network` after study.
    """
    return encode_with_contexts(params, list_length, n_items)[0]


def encode_with_contexts(params: CMRParameters, list_length: Array | int, n_items: int
                         ) -> tuple[Network, Float[Array, "items units"]]:
    """:func:`encode`, and the ``(N, N + 1)`` context c_i after each study event (the last
    studied context repeats in unstudied slots): the study traces of instance memory."""
    dtype = jnp.result_type(params.encoding_drift_rate, float)
    units = n_items + 1
    phi = primacy(params, n_items).astype(dtype)
    context = jnp.zeros(units, dtype).at[0].set(1.0)
    mcf = pre_experimental_mcf(params, n_items, dtype)

    def study(carry, item):
        context, mcf = carry
        # Item `item` has never been studied, so M^FC f_item = (1 − γ_FC)·e_{item+1}: normalised,
        # its input is the unit vector e_{item+1} (for every γ_FC < 1, and the limit at 1).
        unit = jax.nn.one_hot(item + 1, units, dtype=dtype)
        new = drift(context, unit, params.encoding_drift_rate)
        studied = item < list_length
        new = jnp.where(studied, new, context)
        rate = jnp.where(studied, params.mcf_learning_rate * phi[item], 0.0)
        mcf = mcf.at[:, item].add(rate * new)
        return (new, mcf), new

    (context, mcf), contexts = jax.lax.scan(study, (context, mcf), jnp.arange(n_items))
    fc = (1.0 - params.mfc_learning_rate) * jnp.eye(n_items, units, 1, dtype=dtype)
    fc = fc + params.mfc_learning_rate * contexts
    norm = jnp.sqrt(jnp.sum(fc**2, axis=-1, keepdims=True))
    fc_inputs = fc / jnp.where(norm > 0, norm, 1.0)
    return Network(context=context, fc_inputs=fc_inputs, mcf=mcf), contexts


def start_context(params: CMRParameters, network: Network) -> Float[Array, " units"]:
    """Context at the start of recall: drift towards the start-of-list unit with β_start."""
    unit = jnp.zeros_like(network.context).at[0].set(1.0)
    return drift(network.context, unit, params.start_drift_rate)


def log_stop_probability(params: CMRParameters, n_recalled: Array, n_left: Array) -> tuple[Array, Array]:
    """``(log P(stop), log P(continue))`` after ``n_recalled`` recalls with ``n_left`` items left."""
    dtype = jnp.result_type(params.stop_probability_scale, float)
    n = jnp.asarray(n_recalled, dtype)
    log_p = jnp.log(params.stop_probability_scale) + params.stop_probability_growth * n
    # smooth minimum of log p and log C (module docstring), in the form that never rounds above either:
    # min(a, b) − softplus(−k|a − b|)/k
    log_ceiling = jnp.log(jnp.asarray(STOP_CEILING, dtype))
    log_p = jnp.minimum(log_p, log_ceiling) - jax.nn.softplus(-STOP_SHARPNESS * jnp.abs(log_p - log_ceiling)) / STOP_SHARPNESS
    log_continue = jnp.log1p(-jnp.exp(log_p))
    empty = n_left <= 0
    return jnp.where(empty, 0.0, log_p), jnp.where(empty, -jnp.inf, log_continue)


class RecallIncrements(NamedTuple):
    """What the recall phase of one list needs, after study, with context eliminated.

    Recall only ever moves context along the fixed inputs x_j = M^FC f_j/‖M^FC f_j‖, so with
    c_t = ρ_t c_{t−1} + β_rec x_{j_t} the activations a_t = c_t·M^CF and the dots
    d_t = (c_t·x_k)_k obey the same recursion:

        a_t = ρ_t a_{t−1} + β_rec X[j_t],   X = (x_j·M^CF)_j        (N × N),
        d_t = ρ_t d_{t−1} + β_rec G[j_t],   G = (x_j·x_k)_{jk}       (N × N),
        ρ_t = √(1 + β²(d_{t−1}[j_t]² − 1)) − β d_{t−1}[j_t].

    So a recall step costs O(N) instead of an O(N²) context-to-item product.
    """

    activations: Float[Array, " items"]   # a_0 = c_start·M^CF
    dots: Float[Array, " items"]          # d_0 = (c_start·x_k)_k
    item_increments: Float[Array, "items items"]   # X
    input_overlaps: Float[Array, "items items"]    # G


def recall_increments(params: CMRParameters, network: Network) -> RecallIncrements:
    """The :class:`RecallIncrements` of a studied list."""
    start = start_context(params, network)
    x = network.fc_inputs
    return RecallIncrements(activations=start @ network.mcf, dots=x @ start,
                            item_increments=x @ network.mcf, input_overlaps=x @ x.T)


def simulate_list(params: CMRParameters, network: Network, list_length: Array, key: Array) -> Array:
    """Samples one recall sequence: ``(N,)`` 1-indexed study positions in output order, 0-padded."""
    n_items = network.mcf.shape[1]
    dtype = network.mcf.dtype

    def step(carry, key):
        context, recalled, n, active = carry
        key_stop, key_item = jax.random.split(key)
        n_left = list_length - n
        log_stop, _ = log_stop_probability(params, n, n_left)
        stop = jax.random.uniform(key_stop, dtype=dtype) < jnp.exp(log_stop)
        mask = recalled | (jnp.arange(n_items) >= list_length)
        probs = choice_probabilities(jnp.maximum(context @ network.mcf, 0.0), mask, params.choice_sensitivity)
        item = jax.random.choice(key_item, n_items, p=probs)
        recall = active & ~stop
        new_context = drift(context, network.fc_inputs[item], params.recall_drift_rate)
        carry = (jnp.where(recall, new_context, context), recalled | (recall & (jnp.arange(n_items) == item)),
                 n + recall, recall)
        return carry, jnp.where(recall, item + 1, 0)

    init = (start_context(params, network), jnp.zeros(n_items, bool), jnp.array(0), jnp.array(True))
    _, out = jax.lax.scan(step, init, jax.random.split(key, n_items))
    return out
