"""Training a whole ensemble in one jitted step.

The loss of model i is its importance-weighted reconstruction error, averaged over the batch:
L_i = E_x Σ_j I_ij (x_j − x'_j)². The ensemble's objective is the **sum** Σ_i L_i, as in TMS, so
each model's gradient is the one it would have alone. With optax's AdamW (decoupled weight decay)
every model then trains exactly as if it were alone. The seed notebook instead minimised the
*mean* of the L_i with Adam's coupled decay: the data gradient shrinks by 1/M but the decay does
not, and with M = 16 000 every weight decays to about 0. ``loss_reduction="mean"`` with
``optimizer="adam_coupled_decay"`` reproduces that on request.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float

from superpose._validation import positive_float, positive_int
from superpose.parallel import batch_mesh, gathered, pad_batch, shard_batch
from superpose.toy.data import Features, draw_planes, group_layout, sample
from superpose.toy.models import MODEL_KINDS, ToyParams, activate, forward

OPTIMIZERS = ("adamw", "adam_coupled_decay")
REDUCTIONS = ("sum", "mean")
SCHEDULES = ("constant", "cosine")
CHUNK_BUDGET_BYTES = 1 << 30  # working memory one chunk of models may use


def weighted_error(x, reconstruction, importance, *, batch_axis: int, feature_axis: int):
    """The toy loss Σ_j I_j · mean over the batch of (x_j − x'_j)², the one formula every path uses.

    ``x`` and ``reconstruction`` broadcast together; ``batch_axis`` is averaged first, then
    ``importance`` (shaped like the result without the batch axis) weights each feature and
    ``feature_axis`` (an axis of that result) is summed.
    """
    squared = jnp.mean((x - reconstruction) ** 2, axis=batch_axis)
    return jnp.sum(squared * importance, axis=feature_axis)


def per_model_loss(params: ToyParams, x: Float[Array, "B M n"], importance: Float[Array, "M n"], kind: str):
    """L_i = mean over the batch of Σ_j I_ij (x_j − x'_j)², shape (M,)."""
    return weighted_error(x, forward(params, x, kind), importance, batch_axis=0, feature_axis=-1)


def make_optimizer(name: str, learning_rate, weight_decay: float) -> optax.GradientTransformation:
    """``"adamw"`` (decoupled decay) or ``"adam_coupled_decay"`` (decay added to the gradient, as
    ``torch.optim.Adam(weight_decay=...)`` does). ``learning_rate`` may be an optax schedule."""
    if name == "adamw":
        return optax.adamw(learning_rate, weight_decay=weight_decay)
    if name == "adam_coupled_decay":
        return optax.chain(optax.add_decayed_weights(weight_decay), optax.adam(learning_rate))
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")


class TrainResult(NamedTuple):
    """Trained parameters and learning curves: the per-model loss averaged over each window of
    ``log_every`` steps, shape (steps // log_every, M)."""

    params: ToyParams
    losses: Float[Array, "windows M"]


PLANES_MAX_WEIGHTS = 64  # models with m·n up to this use the unrolled elementwise path


def _planes_losses(W, b, x, imp, kind):
    """Per-model losses for small models, x (n, S, B) with one batch per group.

    W (m, n, S, G), b/imp (n, S, G) give losses (S, G); with one model per group the G axis is
    dropped (W (m, n, S), b/imp (n, S), losses (S,)): a singleton axis there makes XLA's CPU
    gradient several times slower. Written as elementwise products over planes with the batch
    axis minor, which XLA's CPU backend vectorises far better than batched matrix products of size 1.
    """
    m, n = W.shape[:2]
    grouped = W.ndim == 4
    xs = [x[j][:, None, :] if grouped else x[j] for j in range(n)]
    w = [[W[k, j][..., None] for j in range(n)] for k in range(m)]
    hidden = [sum(w[k][j] * xs[j] for j in range(n)) for k in range(m)]
    total = 0.0
    for j in range(n):  # one plane at a time: no (n, …) array of outputs is materialised
        out = activate(sum(w[k][j] * hidden[k] for k in range(m)) + b[j][..., None], kind)
        total = total + weighted_error(xs[j], out, imp[j], batch_axis=-1, feature_axis=())
    return total


def _matmul_losses(W, b, x, imp, kind):
    """Per-model losses (S, G): W (S, G, m, n), b/imp (S, G, 1, n), x (n, S, B)."""
    xt = jnp.transpose(x, (1, 2, 0))  # (S, B, n)
    hidden = jnp.einsum("sbn,sgmn->sgbm", xt, W)
    out = activate(jnp.einsum("sgbm,sgmn->sgbn", hidden, W) + b, kind)
    return weighted_error(xt[:, None], out, imp[:, :, 0], batch_axis=-2, feature_axis=-1)


def _to_internal(W, b, imp, groups: int, planes: bool):
    m_models, m, n = W.shape
    g = m_models // groups
    if planes:
        shape = (groups, g) if g > 1 else (groups,)
        return (jnp.moveaxis(W.reshape(*shape, m, n), (-2, -1), (0, 1)),
                jnp.moveaxis(b.reshape(*shape, n), -1, 0), jnp.moveaxis(imp.reshape(*shape, n), -1, 0))
    return W.reshape(groups, g, m, n), b.reshape(groups, g, 1, n), imp.reshape(groups, g, 1, n)


def _to_public(W, b, planes: bool):
    if planes:
        m, n = W.shape[:2]
        return jnp.moveaxis(W, (0, 1), (-2, -1)).reshape(-1, m, n), jnp.moveaxis(b, 0, -1).reshape(-1, n)
    s, g, m, n = W.shape
    return W.reshape(s * g, m, n), b.reshape(s * g, n)


@functools.partial(jax.jit, static_argnames=("structure", "kind", "steps", "log_every", "batch", "optimizer",
                                             "scale", "learning_rate", "weight_decay", "schedule"))
def _train(W, b, importance, density, stream_ids, key, *, structure, kind, steps, log_every, batch, optimizer,
           scale, learning_rate, weight_decay, schedule):
    groups = stream_ids.shape[0]
    planes = W.shape[1] * W.shape[2] <= PLANES_MAX_WEIGHTS
    *params, imp = _to_internal(W, b, importance, groups, planes)
    params = tuple(params)
    group_density = density.T[:, :, None]  # (n, S, 1)
    losses_fn = _planes_losses if planes else _matmul_losses
    rate = (optax.cosine_decay_schedule(learning_rate, steps, alpha=0.01) if schedule == "cosine"
            else learning_rate)
    opt = make_optimizer(optimizer, rate, weight_decay)

    def objective(p, x):
        losses = losses_fn(p[0], p[1], x, imp, kind)
        return jnp.sum(losses) * scale, losses

    def step(carry, t):
        p, state = carry
        # materialise the batch once: fused into its consumers it would be recomputed per use
        x = jax.lax.optimization_barrier(draw_planes(key, t, group_density, structure, batch, stream_ids))
        (_, losses), grads = jax.value_and_grad(objective, has_aux=True)(p, x)
        updates, state = opt.update(grads, state, p)
        return (optax.apply_updates(p, updates), state), losses

    def window(carry, w):
        carry, losses = jax.lax.scan(step, carry, w * log_every + jnp.arange(log_every))
        return carry, jnp.mean(losses, axis=0).reshape(-1)

    (params, _), curves = jax.lax.scan(window, (params, opt.init(params)), jnp.arange(steps // log_every))
    return (*_to_public(*params, planes), curves)


def check_importance(importance, m: int, n: int, dtype=jnp.float32) -> jax.Array:
    """Per-model, per-feature importances of shape (M, n), finite and > 0."""
    imp = jnp.asarray(importance, dtype)
    if imp.shape != (m, n):
        raise ValueError(f"importance must have shape (M, n) = ({m}, {n}), got {imp.shape}")
    if not bool(jnp.all(jnp.isfinite(imp))) or not bool(jnp.all(imp > 0)):
        raise ValueError("every importance must be finite and > 0")
    return imp


def default_chunk(n_models: int, n_features: int, n_hidden: int, batch: int, windows: int) -> int:
    """Models per jitted call so that one chunk's working set stays under CHUNK_BUDGET_BYTES."""
    per_model = 4 * (12 * batch * max(n_features, n_hidden) + windows)
    return max(1, min(n_models, CHUNK_BUDGET_BYTES // per_model))


def train(
    key: jax.Array,
    params: ToyParams,
    features: Features,
    importance: Float[Array, "M n"],
    *,
    steps: int = 1000,
    batch: int = 256,
    learning_rate: float = 1e-3,
    weight_decay: float = 0.0,
    schedule: str = "constant",
    kind: str = "relu",
    optimizer: str = "adamw",
    loss_reduction: str = "sum",
    streams=None,
    group_size: int = 1,
    log_every: int = 1,
    chunk: int | None = None,
) -> TrainResult:
    """Trains every model of the ensemble at once; batches are drawn inside the jitted step.

    Args:
        key: PRNG key of the data (see :mod:`superpose.toy.streams`).
        params: the ensemble's initial parameters (see :func:`~superpose.toy.models.init_params`).
        features: the feature distribution (one density row per model).
        importance: (M, n) per-model, per-feature importance weights, all > 0.
        steps, batch, learning_rate, weight_decay: optimisation settings.
        schedule: ``"constant"`` or ``"cosine"`` (decay to 1% of the rate over ``steps``).
        kind: ``"relu"`` or ``"linear"``.
        optimizer: ``"adamw"`` (default) or ``"adam_coupled_decay"`` (the seed's).
        loss_reduction: ``"sum"`` over models (default, TMS) or ``"mean"`` (the seed's).
        group_size: models ``g·G … g·G + G − 1`` share every batch (common random numbers); they
            must have equal densities. Default 1: every model has its own data.
        streams: (M // group_size,) data stream id per group (default 0, 1, …). A group's data
            depends only on its id, so a model trains the same in any ensemble.
        log_every: learning curves average the loss over windows of this many steps.
        chunk: models per jitted call (default: as many as fit in 1 GiB of working memory),
            rounded to whole groups. Chunks, and sharding over devices, give the same result.
    """
    if not isinstance(params, ToyParams) or jnp.ndim(params.W) != 3:
        raise TypeError("params must be ToyParams with W of shape (M, m, n); use init_params")
    m, hidden, n = params.W.shape
    if jnp.shape(params.b) != (m, n):
        raise ValueError(f"params.b must have shape ({m}, {n}), got {jnp.shape(params.b)}")
    imp = check_importance(importance, m, n)
    if features.density.shape != (m, n):
        raise ValueError(f"feature densities must have shape ({m}, {n}), got {features.density.shape}")
    if kind not in MODEL_KINDS:
        raise ValueError(f"model kind must be one of {MODEL_KINDS}, got {kind!r}")
    if loss_reduction not in REDUCTIONS:
        raise ValueError(f"loss_reduction must be one of {REDUCTIONS}, got {loss_reduction!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    steps, batch = positive_int(steps, "steps"), positive_int(batch, "batch")
    log_every = positive_int(log_every, "log_every")
    if steps % log_every:
        raise ValueError(f"steps ({steps}) must be a multiple of log_every ({log_every})")
    learning_rate = positive_float(learning_rate, "learning_rate")
    if not (isinstance(weight_decay, (int, float)) and math.isfinite(weight_decay) and weight_decay >= 0):
        raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
    ids, density = group_layout(features, streams, group_size)
    density = density[:, :, 0].T  # (S, n), one row per group
    g = group_size
    chunk = default_chunk(m, n, hidden, batch, steps // log_every) if chunk is None else positive_int(chunk, "chunk")
    mesh = batch_mesh()
    groups_per_chunk = -(-max(1, min(chunk, m) // g) // mesh.size) * mesh.size  # whole groups per device
    options = dict(structure=features.structure, kind=kind, steps=steps, log_every=log_every, batch=batch,
                   optimizer=optimizer, scale=1.0 if loss_reduction == "sum" else 1.0 / m,
                   learning_rate=float(learning_rate), weight_decay=float(weight_decay), schedule=schedule)
    out_w, out_b, curves = [], [], []
    for start in range(0, m // g, groups_per_chunk):
        stop = min(start + groups_per_chunk, m // g)
        models = slice(start * g, stop * g)
        (w, b, chunk_imp), size = pad_batch((params.W[models], params.b[models], imp[models]),
                                            groups_per_chunk * g)  # one compilation for every chunk
        (chunk_density, chunk_ids), _ = pad_batch((density[start:stop], ids[start:stop]), groups_per_chunk)
        if mesh.size > 1:
            w, b, chunk_imp = shard_batch((w, b, chunk_imp), mesh)
            chunk_density, chunk_ids = shard_batch((chunk_density, chunk_ids), mesh)
        w, b, c = gathered(_train(w, b, chunk_imp, chunk_density, chunk_ids, key, **options))
        out_w.append(w[:size])
        out_b.append(b[:size])
        curves.append(c[:, :size])
    join = (lambda xs, axis=0: xs[0]) if len(out_w) == 1 else (lambda xs, axis=0: jnp.concatenate(xs, axis=axis))
    return TrainResult(ToyParams(join(out_w), join(out_b)), join(curves, 1))


def evaluate(key: jax.Array, params: ToyParams, features: Features, importance, *, batch: int = 4096,
             kind: str = "relu", streams=None, group_size: int = 1) -> Float[Array, "M"]:
    """Each model's loss on one fresh batch of ``batch`` samples (drawn at step 0 of ``key``)."""
    m, _, n = params.W.shape
    imp = check_importance(importance, m, n)
    x = sample(key, features, batch, streams, group_size)
    return per_model_loss(params, x, imp, kind)
