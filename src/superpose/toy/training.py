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
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float

from superpose._validation import positive_float, positive_int
from superpose.toy.data import Features, sample
from superpose.toy.models import ToyParams, forward

OPTIMIZERS = ("adamw", "adam_coupled_decay")
REDUCTIONS = ("sum", "mean")


def per_model_loss(params: ToyParams, x: Float[Array, "B M n"], importance: Float[Array, "M n"], kind: str):
    """L_i = mean over the batch of Σ_j I_ij (x_j − x'_j)², shape (M,)."""
    err = (x - forward(params, x, kind)) ** 2 * importance[None]
    return jnp.mean(jnp.sum(err, axis=-1), axis=0)


def make_optimizer(name: str, learning_rate: float, weight_decay: float) -> optax.GradientTransformation:
    """``"adamw"`` (decoupled decay) or ``"adam_coupled_decay"`` (decay added to the gradient, as
    ``torch.optim.Adam(weight_decay=...)`` does)."""
    if name == "adamw":
        return optax.adamw(learning_rate, weight_decay=weight_decay)
    if name == "adam_coupled_decay":
        return optax.chain(optax.add_decayed_weights(weight_decay), optax.adam(learning_rate))
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")


class TrainResult(NamedTuple):
    """Trained parameters and the per-model loss after every step, shape (steps, M)."""

    params: ToyParams
    losses: Float[Array, "steps M"]


@functools.partial(jax.jit, static_argnames=("parents", "kind", "steps", "batch", "optimizer", "reduction",
                                             "learning_rate", "weight_decay"))
def _train(params, density, importance, model_ids, key, *, parents, kind, steps, batch, optimizer, reduction,
           learning_rate, weight_decay):
    features = Features(density, parents)
    opt = make_optimizer(optimizer, learning_rate, weight_decay)

    def objective(p, x):
        losses = per_model_loss(p, x, importance, kind)
        return (jnp.sum(losses) if reduction == "sum" else jnp.mean(losses)), losses

    def step(carry, t):
        p, state = carry
        x = sample(jax.random.fold_in(key, t), features, batch, model_ids)
        (_, losses), grads = jax.value_and_grad(objective, has_aux=True)(p, x)
        updates, state = opt.update(grads, state, p)
        return (optax.apply_updates(p, updates), state), losses

    (params, _), losses = jax.lax.scan(step, (params, opt.init(params)), jnp.arange(steps))
    return params, losses


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
    kind: str = "relu",
    optimizer: str = "adamw",
    loss_reduction: str = "sum",
    model_ids: jax.Array | None = None,
) -> TrainResult:
    """Trains every model of the ensemble at once; batches are drawn inside the jitted step.

    Args:
        key: PRNG key of the data; model i draws from ``fold_in(fold_in(key, step), model_ids[i])``.
        params: the ensemble's initial parameters (see :func:`~superpose.toy.models.init_params`).
        features: the feature distribution (one density row per model).
        importance: per-model, per-feature importance weights, all > 0.
        steps, batch, learning_rate, weight_decay: optimisation settings.
        kind: ``"relu"`` or ``"linear"``.
        optimizer: ``"adamw"`` (default) or ``"adam_coupled_decay"`` (the seed's).
        loss_reduction: ``"sum"`` over models (default, TMS) or ``"mean"`` (the seed's).
        model_ids: the data stream of each model (default 0..M−1); give a model the same id to
            train it on the same data inside a different ensemble.
    """
    m, _, n = params.W.shape
    imp = jnp.asarray(importance, jnp.float32)
    if imp.shape != (m, n):
        raise ValueError(f"importance must have shape (M, n) = ({m}, {n}), got {imp.shape}")
    if not bool(jnp.all(imp > 0)) or not bool(jnp.all(jnp.isfinite(imp))):
        raise ValueError("every importance must be finite and > 0")
    if features.density.shape != (m, n):
        raise ValueError(f"feature densities must have shape ({m}, {n}), got {features.density.shape}")
    if loss_reduction not in REDUCTIONS:
        raise ValueError(f"loss_reduction must be one of {REDUCTIONS}, got {loss_reduction!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    steps, batch = positive_int(steps, "steps"), positive_int(batch, "batch")
    learning_rate = positive_float(learning_rate, "learning_rate")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    ids = jnp.arange(m) if model_ids is None else jnp.asarray(model_ids)
    params, losses = _train(params, features.density, imp, ids, key, parents=features.parents, kind=kind,
                            steps=steps, batch=batch, optimizer=optimizer, reduction=loss_reduction,
                            learning_rate=float(learning_rate), weight_decay=float(weight_decay))
    return TrainResult(params, losses)
