"""Linear sparse autoencoders: ReLU + L1, TopK and JumpReLU, trained with optax.

A row z ∈ R^p is encoded and decoded as

    pre   = (z − b_dec) W_enc + b_enc                      (pre-encoder bias = decoder bias)
    codes = ReLU(pre)                     kind "relu"      penalty l1 · Σ_l codes_l
          = TopK(ReLU(pre))               kind "topk"      no penalty: the support has k entries at most
          = pre · H(pre − θ)              kind "jumprelu"  penalty l0 · Σ_l H(pre_l − θ_l)
    ẑ     = codes W_dec + b_dec,          every decoder direction (row of W_dec) of unit norm.

**JumpReLU** (Rajamanoharan et al. 2024, "Jumping Ahead"): the threshold θ > 0 is learned as log θ.
The step H has no useful derivative, so both the JumpReLU and the L0 penalty pass gradients to θ
through a straight-through estimator with a rectangle kernel of width ``bandwidth`` ε:
∂H(pre − θ)/∂θ := −K((pre − θ)/ε)/ε with K = 1 on |u| < 1/2. The penalty is the **L0 norm via this
STE** (not a gated L1). Gradients to the encoder come from the reconstruction only.

**Training** (sparsify / SAELens practice): Adam on minibatches drawn with replacement from keyed
indices; the component of each decoder gradient parallel to its direction is removed before the
update and the directions are renormalised after it. At init W_enc = W_decᵀ (random unit rows),
b_enc = 0 and b_dec = an approximate geometric median of the rows (Weiszfeld iterations).
The loss is computed on the data divided by the root-mean-square norm of its column-centred rows,
so the reconstruction term is a minibatch estimate of the fraction of variance unexplained and
``l1`` and ``l0`` are dimensionless; the returned SAE acts on the data in its own units.
Dead latents are counted, not revived (no AuxK loss or resampling).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Bool, Float

from superpose._validation import as_float_array, check_finite, nonnegative_float, positive_float, positive_int
from superpose.sae.metrics import fraction_variance_unexplained

SAE_KINDS = ("relu", "topk", "jumprelu")
STEPS_PER_CHUNK = 500  # optimisation steps per jitted scan (progress is reported between chunks)
ROWS_PER_CHUNK = 4096  # rows per jitted call when statistics are computed over the whole data
WEISZFELD_ITERATIONS = 32


@dataclasses.dataclass(frozen=True)
class LinearSaeConfig:
    """Settings of a linear SAE and its training (validated on construction).

    kind: ``"relu"`` (L1 penalty ``l1``), ``"topk"`` (``k`` active latents at most) or ``"jumprelu"``
    (L0 penalty ``l0`` through a straight-through estimator of width ``bandwidth``, thresholds
    starting at ``threshold_init``). Penalties, bandwidth and threshold are in units of the RMS norm
    of the centred data (see the module docstring). ``batch_size`` rows per Adam step, ``steps`` steps.
    """

    kind: str = "topk"
    num_latents: int = 64
    k: int = 4
    l1: float = 1e-2
    l0: float = 1e-3
    bandwidth: float = 0.05
    threshold_init: float = 0.05
    learning_rate: float = 1e-3
    batch_size: int = 256
    steps: int = 2000

    def __post_init__(self) -> None:
        if self.kind not in SAE_KINDS:
            raise ValueError(f"kind must be one of {SAE_KINDS}, got {self.kind!r}")
        positive_int(self.num_latents, "num_latents")
        positive_int(self.k, "k")
        if self.kind == "topk" and self.k > self.num_latents:
            raise ValueError(f"k must be in [1, num_latents] = [1, {self.num_latents}], got {self.k}")
        nonnegative_float(self.l1, "l1")
        nonnegative_float(self.l0, "l0")
        for name in ("bandwidth", "threshold_init", "learning_rate"):
            positive_float(getattr(self, name), name)
        positive_int(self.batch_size, "batch_size")
        positive_int(self.steps, "steps")


# -- the JumpReLU and its straight-through gradients -----------------------------------------------
def _rectangle(pre, threshold, bandwidth):
    return (jnp.abs(pre - threshold) < 0.5 * bandwidth) / bandwidth


def _sum_to(gradient, shape):
    return jnp.sum(gradient.reshape(-1, *shape), axis=0)


@jax.custom_vjp
def _jump_relu(pre, threshold, bandwidth):
    return pre * (pre > threshold)


def _jump_relu_fwd(pre, threshold, bandwidth):
    return _jump_relu(pre, threshold, bandwidth), (pre, threshold, bandwidth)


def _jump_relu_bwd(residual, g):
    pre, threshold, bandwidth = residual
    d_threshold = -threshold * _rectangle(pre, threshold, bandwidth) * g
    return g * (pre > threshold), _sum_to(d_threshold, threshold.shape), jnp.zeros_like(bandwidth)


_jump_relu.defvjp(_jump_relu_fwd, _jump_relu_bwd)


@jax.custom_vjp
def _step(pre, threshold, bandwidth):
    return (pre > threshold).astype(pre.dtype)


def _step_fwd(pre, threshold, bandwidth):
    return _step(pre, threshold, bandwidth), (pre, threshold, bandwidth)


def _step_bwd(residual, g):
    pre, threshold, bandwidth = residual
    d_threshold = -_rectangle(pre, threshold, bandwidth) * g
    return jnp.zeros_like(pre), _sum_to(d_threshold, threshold.shape), jnp.zeros_like(bandwidth)


_step.defvjp(_step_fwd, _step_bwd)


def _top_k_codes(pre, k: int):
    values, indices = jax.lax.top_k(jax.nn.relu(pre), k)
    rows = jnp.arange(pre.shape[0])[:, None]
    return jnp.zeros_like(pre).at[rows, indices].set(values)


# -- the model --------------------------------------------------------------------------------------
class LinearSae(eqx.Module):
    """A linear SAE: W_enc (p, L), b_enc (L,), W_dec (L, p) with unit rows, b_dec (p,), and for
    ``kind="jumprelu"`` the thresholds (L,) > 0 (``None`` otherwise). Units are the data's."""

    W_enc: Float[Array, "p L"]
    b_enc: Float[Array, " L"]
    W_dec: Float[Array, "L p"]
    b_dec: Float[Array, " p"]
    threshold: Float[Array, " L"] | None
    kind: str = eqx.field(static=True)
    k: int = eqx.field(static=True)

    def __check_init__(self) -> None:
        if self.kind not in SAE_KINDS:
            raise ValueError(f"kind must be one of {SAE_KINDS}, got {self.kind!r}")
        p, L = jnp.shape(self.W_enc)
        shapes = {"b_enc": (L,), "W_dec": (L, p), "b_dec": (p,)}
        for name, shape in shapes.items():
            if jnp.shape(getattr(self, name)) != shape:
                raise ValueError(f"{name} must have shape {shape} for W_enc of shape {(p, L)}, "
                                 f"got {jnp.shape(getattr(self, name))}")
        if (self.threshold is None) != (self.kind != "jumprelu"):
            raise ValueError("threshold (L,) is required for kind 'jumprelu' and must be None otherwise")
        if self.threshold is not None and jnp.shape(self.threshold) != (L,):
            raise ValueError(f"threshold must have shape ({L},), got {jnp.shape(self.threshold)}")
        if self.kind == "topk" and not 1 <= self.k <= L:
            raise ValueError(f"k must be in [1, L] = [1, {L}], got {self.k}")

    @property
    def num_latents(self) -> int:
        return self.W_dec.shape[0]

    def _check(self, Z) -> jax.Array:
        Z = as_float_array("Z", Z)
        if Z.ndim != 2 or Z.shape[1] != self.W_enc.shape[0]:
            raise ValueError(f"Z must have shape (N, p) with p = {self.W_enc.shape[0]}, got {Z.shape}")
        check_finite("Z", Z)
        return Z

    def pre_activations(self, Z: Float[Array, "N p"]) -> Float[Array, "N L"]:
        """(Z − b_dec) W_enc + b_enc."""
        return (self._check(Z) - self.b_dec) @ self.W_enc + self.b_enc

    def encode(self, Z: Float[Array, "N p"]) -> Float[Array, "N L"]:
        """Codes (N, L), all >= 0; a TopK SAE has at most k nonzeros per row."""
        pre = self.pre_activations(Z)
        if self.kind == "topk":
            return _top_k_codes(pre, self.k)
        if self.kind == "jumprelu":
            return pre * (pre > self.threshold)
        return jax.nn.relu(pre)

    def decode(self, codes: Float[Array, "N L"]) -> Float[Array, "N p"]:
        """codes W_dec + b_dec, shape (N, p)."""
        codes = as_float_array("codes", codes)
        if codes.ndim != 2 or codes.shape[1] != self.num_latents:
            raise ValueError(f"codes must have shape (N, L) with L = {self.num_latents}, got {codes.shape}")
        check_finite("codes", codes)
        return codes @ self.W_dec + self.b_dec

    def reconstruct(self, Z: Float[Array, "N p"]) -> Float[Array, "N p"]:
        """decode(encode(Z)), shape (N, p)."""
        return self.decode(self.encode(Z))


class LinearSaeResult(NamedTuple):
    """A trained SAE with its loss per step (steps,), its fraction of variance unexplained on the
    training data, the mask (L,) of latents that never fired on it, and the mean number of active
    latents per row (L0)."""

    sae: LinearSae
    loss_trace: Float[Array, " steps"]
    fvu: float
    dead_latents: Bool[Array, " L"]
    l0: float


# -- data checks and statistics ---------------------------------------------------------------------
def _check_data(Z) -> jax.Array:
    Z = as_float_array("Z", Z)
    if Z.ndim != 2 or Z.shape[0] < 1 or Z.shape[1] < 1:
        raise ValueError(f"Z must have shape (N, p) with N, p >= 1, got {Z.shape}")
    check_finite("Z", Z)
    return Z


@jax.jit
def _chunk_statistics(sae: LinearSae, Z, valid):
    codes = sae.encode(Z) * valid[:, None]
    error = jnp.sum(((sae.decode(codes) - Z) * valid[:, None]) ** 2)
    active = codes > 0
    return error, jnp.sum(active, axis=0), jnp.sum(active)


def _statistics(sae: LinearSae, Z) -> tuple[float, np.ndarray, float]:
    """(squared error, fire count per latent, mean L0) over all rows, in fixed-size chunks."""
    n = Z.shape[0]
    size = min(n, ROWS_PER_CHUNK)
    error, fires, active = 0.0, np.zeros(sae.num_latents, np.int64), 0.0
    for start in range(0, n, size):
        rows = Z[start:start + size]
        valid = jnp.ones(rows.shape[0])
        if rows.shape[0] < size:  # pad to one shape: one compilation
            valid = jnp.pad(valid, (0, size - rows.shape[0]))
            rows = jnp.pad(rows, ((0, size - rows.shape[0]), (0, 0)))
        e, f, a = _chunk_statistics(sae, rows, valid)
        error, fires, active = error + float(e), fires + np.asarray(f), active + float(a)
    return error, fires, active / n


def dead_latents(sae: LinearSae, Z: Float[Array, "N p"]) -> Bool[Array, " L"]:
    """Mask (L,) of the latents whose code is 0 on every row of Z (N, p)."""
    if not isinstance(sae, LinearSae):
        raise TypeError(f"sae must be a LinearSae, got {type(sae).__name__}")
    Z = sae._check(_check_data(Z))
    return jnp.asarray(_statistics(sae, Z)[1] == 0)


# -- initialisation ---------------------------------------------------------------------------------
@jax.jit
def _geometric_median(Z):
    """Weiszfeld iterations from the mean: argmin_b Σ_i ‖Z_i − b‖, approximately."""

    def update(_, b):
        distance = jnp.maximum(jnp.linalg.norm(Z - b, axis=1), 1e-8 * (1.0 + jnp.linalg.norm(b)))
        weights = 1.0 / distance
        return weights @ Z / jnp.sum(weights)

    return jax.lax.fori_loop(0, WEISZFELD_ITERATIONS, update, jnp.mean(Z, axis=0))


def init_linear_sae(Z: Float[Array, "N p"], config: LinearSaeConfig, key: jax.Array) -> LinearSae:
    """The initial SAE: W_dec rows uniform on the unit sphere (from ``key``), W_enc = W_decᵀ,
    b_enc = 0, b_dec = approximate geometric median of Z's rows, thresholds = ``threshold_init``
    times the RMS norm of the centred rows (JumpReLU)."""
    Z = _check_data(Z)
    if not isinstance(config, LinearSaeConfig):
        raise TypeError(f"config must be a LinearSaeConfig, got {type(config).__name__}")
    directions = jax.random.normal(key, (config.num_latents, Z.shape[1]), Z.dtype)
    directions = directions / jnp.linalg.norm(directions, axis=1, keepdims=True)
    threshold = None
    if config.kind == "jumprelu":
        threshold = jnp.full(config.num_latents, config.threshold_init * _data_scale(Z), Z.dtype)
    return LinearSae(directions.T, jnp.zeros(config.num_latents, Z.dtype), directions, _geometric_median(Z),
                     threshold, config.kind, config.k)


def _data_scale(Z) -> float:
    scale = float(jnp.sqrt(jnp.mean(jnp.sum((Z - jnp.mean(Z, axis=0)) ** 2, axis=1))))
    if not scale > 0:
        raise ValueError("Z has no variance (every row is the same): there is nothing for an SAE to explain")
    return scale


# -- training ---------------------------------------------------------------------------------------
class _Params(NamedTuple):
    W_enc: jax.Array
    b_enc: jax.Array
    W_dec: jax.Array
    b_dec: jax.Array
    log_threshold: jax.Array  # (L,); unused unless kind == "jumprelu"


def _loss(params: _Params, z, rates, kind: str, k: int):
    l1, l0, bandwidth = rates
    pre = (z - params.b_dec) @ params.W_enc + params.b_enc
    penalty = 0.0
    if kind == "topk":
        codes = _top_k_codes(pre, k)
    elif kind == "jumprelu":
        threshold = jnp.exp(params.log_threshold)
        codes = _jump_relu(pre, threshold, bandwidth)
        penalty = l0 * jnp.mean(jnp.sum(_step(pre, threshold, bandwidth), axis=1))
    else:
        codes = jax.nn.relu(pre)
        penalty = l1 * jnp.mean(jnp.sum(codes, axis=1))
    error = jnp.mean(jnp.sum((codes @ params.W_dec + params.b_dec - z) ** 2, axis=1))
    return error + penalty


def _unit_rows(W):
    return W / jnp.linalg.norm(W, axis=1, keepdims=True)


@functools.partial(jax.jit, static_argnames=("kind", "k", "batch_size", "chunk"), donate_argnums=(0,))
def _train_chunk(carry, Z, key, first_step, total_steps, rates, learning_rate, *, kind, k, batch_size, chunk):
    optimizer = optax.adam(learning_rate)

    def step(carry, t):
        params, state = carry
        rows = jax.random.randint(jax.random.fold_in(key, t), (batch_size,), 0, Z.shape[0])
        loss, grads = jax.value_and_grad(_loss)(params, Z[rows], rates, kind, k)
        parallel = jnp.sum(grads.W_dec * params.W_dec, axis=1, keepdims=True)
        grads = grads._replace(W_dec=grads.W_dec - parallel * params.W_dec)
        updates, new_state = optimizer.update(grads, state, params)
        new_params = optax.apply_updates(params, updates)
        new_params = new_params._replace(W_dec=_unit_rows(new_params.W_dec))
        active = t < total_steps  # the last chunk runs idle past the end: one compilation for all
        keep = lambda new, old: jnp.where(active, new, old)  # noqa: E731
        return (jax.tree.map(keep, new_params, params), jax.tree.map(keep, new_state, state)), loss

    return jax.lax.scan(step, carry, first_step + jnp.arange(chunk))


def train_linear_sae(
    Z: Float[Array, "N p"],
    config: LinearSaeConfig,
    key: jax.Array,
    *,
    progress: Callable[[int, int, float], None] | None = None,
) -> LinearSaeResult:
    """Trains a linear SAE on the rows of Z (N, p).

    ``key`` draws the initial decoder and every minibatch. ``progress(steps_done, steps, loss)`` is
    called after each jitted chunk of up to 500 steps. Returns the SAE (in Z's units), the loss of
    every step (on the rescaled data: reconstruction ≈ FVU plus penalty), and the FVU, dead-latent
    mask and mean L0 on all of Z.
    """
    Z = _check_data(Z)
    if not isinstance(config, LinearSaeConfig):
        raise TypeError(f"config must be a LinearSaeConfig, got {type(config).__name__}")
    if progress is not None and not callable(progress):
        raise TypeError("progress must be callable as progress(steps_done, steps, loss) or None")
    k_init, k_batches = jax.random.split(key)
    scale = _data_scale(Z)
    sae = init_linear_sae(Z, config, k_init)
    scaled = Z / scale
    log_threshold = jnp.full(config.num_latents, math.log(config.threshold_init), Z.dtype)
    params = _Params(sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec / scale, log_threshold)
    carry = (params, optax.adam(config.learning_rate).init(params))
    rates = jnp.asarray([config.l1, config.l0, config.bandwidth], Z.dtype)
    chunk = min(config.steps, STEPS_PER_CHUNK)
    losses = []
    for first in range(0, config.steps, chunk):
        carry, chunk_losses = _train_chunk(carry, scaled, k_batches, first, config.steps, rates,
                                           jnp.asarray(config.learning_rate, Z.dtype), kind=config.kind,
                                           k=config.k, batch_size=config.batch_size, chunk=chunk)
        losses.append(chunk_losses)
        if progress is not None:
            done = min(first + chunk, config.steps)
            progress(done, config.steps, float(chunk_losses[done - first - 1]))
    params = carry[0]
    threshold = jnp.exp(params.log_threshold) * scale if config.kind == "jumprelu" else None
    sae = LinearSae(params.W_enc, params.b_enc * scale, params.W_dec, params.b_dec * scale, threshold,
                    config.kind, config.k)
    error, fires, l0 = _statistics(sae, Z)
    total = float(jnp.sum((Z - jnp.mean(Z, axis=0)) ** 2))
    return LinearSaeResult(sae, jnp.concatenate(losses)[: config.steps], error / total, jnp.asarray(fires == 0), l0)


__all__ = [
    "SAE_KINDS",
    "LinearSae",
    "LinearSaeConfig",
    "LinearSaeResult",
    "dead_latents",
    "fraction_variance_unexplained",
    "init_linear_sae",
    "train_linear_sae",
]
