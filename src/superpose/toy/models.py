"""Toy models of superposition with an ensemble axis first on every parameter.

A model maps n features to m hidden units and back with tied weights W of shape (m, n):

    relu:    x' = ReLU(WᵀW x + b)      (Elhage et al. 2022, "Toy Models of Superposition")
    linear:  x' = WᵀW x + b

An ensemble of M models has W of shape (M, m, n) and b of shape (M, n).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from superpose._validation import positive_int

MODEL_KINDS = ("relu", "linear")
INITS = ("xavier_normal", "sign")


class ToyParams(NamedTuple):
    """Parameters of an ensemble: W (M, m, n) and b (M, n)."""

    W: Float[Array, "M m n"]
    b: Float[Array, "M n"]


def init_params(key: jax.Array, n_models: int, n_features: int, n_hidden: int, init: str = "xavier_normal",
                allow_more_hidden: bool = False) -> ToyParams:
    """Initial parameters; model i's draw depends only on ``fold_in(key, i)``, not on M.

    ``"xavier_normal"`` (TMS's default): entries ~ N(0, 2/(m + n)). ``"sign"``: entries ±1 (the
    seed notebook's ``w / |w|``). Biases start at 0. More hidden units than features (m > n) leaves
    nothing to superpose and is refused unless ``allow_more_hidden=True``.
    """
    for name, value in (("n_models", n_models), ("n_features", n_features), ("n_hidden", n_hidden)):
        positive_int(value, name)
    if n_hidden > n_features and not allow_more_hidden:
        raise ValueError(f"n_hidden = {n_hidden} > n_features = {n_features}: every feature would get its own "
                         "dimension; pass allow_more_hidden=True if that is meant")
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(n_models))
    normal = jax.vmap(lambda k: jax.random.normal(k, (n_hidden, n_features)))(keys)
    w = jnp.sign(normal) if init == "sign" else normal * jnp.sqrt(2.0 / (n_hidden + n_features))
    return ToyParams(w, jnp.zeros((n_models, n_features)))


def forward(params: ToyParams, x: Float[Array, "batch M n"], kind: str = "relu") -> Float[Array, "batch M n"]:
    """Reconstructions of a batch for every model; x has shape (batch, M, n)."""
    if kind not in MODEL_KINDS:
        raise ValueError(f"model kind must be one of {MODEL_KINDS}, got {kind!r}")
    hidden = jnp.einsum("Mmn,BMn->BMm", params.W, x)
    return activate(jnp.einsum("Mmn,BMm->BMn", params.W, hidden) + params.b[None], kind)


def activate(out: Array, kind: str) -> Array:
    """The model's output nonlinearity: ReLU for ``"relu"``, the identity otherwise."""
    return jax.nn.relu(out) if kind == "relu" else out
