"""Gates: how strongly each atom takes part in explaining a row.

A row ``i`` carries one logit per atom, ``ℓ_i ∈ R^K``; a gate maps it to activities
``a_i = g(ℓ_i) ∈ R^K`` and charges a penalty for them. Every gate is a small frozen dataclass
with pure methods, so it can be a static argument of a jitted function:

==================  =============================  ==========================================  ==========
gate                activity a_ik                  penalty per row (× strength)                parameter
==================  =============================  ==========================================  ==========
``softmax``         softmax(ℓ_i / T)               λ_sparse · entropy(a_i) (nats)              strength
``topk``            σ(ℓ_ik) on the k largest ℓ_ik  ½ λ_sparse Σ ℓ² (the support is hard)       strength
``threshold``       ℓ_ik · σ((ℓ_ik − θ_k) / ε)     λ_sparse · Σ_k |a_ik| (gated L1)            strength
``beta_bernoulli``  σ(ℓ_ik)                        −Σ_k a log π_k + (1 − a) log(1 − π_k)       log α
``binary``          1 where ℓ_ik > 0, else 0       λ_sparse · Σ_k a_ik + ½ ρ Σ (|ℓ| − 1)²      strength
==================  =============================  ==========================================  ==========

``threshold`` is JumpReLU with its jump relaxed by a sigmoid of width ε; its per-atom
thresholds θ_k are learned with the decoders. ``beta_bernoulli`` is an ordered (Indian-buffet
style) gate: atom k fires at rate π_k = ρ^(k+1) with ρ = α / (1 + α), so later atoms are
shrunk geometrically; its sparse coordinate log α is an offset, not a penalty strength
(``topk``'s is the precision of a Gaussian prior on the logits: weak, it keeps logits finite; strong,
it holds every active atom's activity near σ(0) = ½, so that an always-on atom's amplitude cannot
turn a circle into a cone)
(``sparse_is_penalty_strength`` is False), which is what
:func:`superpose.sae.hyperparameters.seed_from_dispersion` reads.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from superpose._validation import positive_float, positive_int
from superpose.numerics.strengths import stable_exp

#: Logit given to a gate that a grid search switches on (σ = 0.95) or off (σ = 0.05).
ON_LOGIT, OFF_LOGIT = 2.944, -2.944


def _logit_prior(logits: Array, precision: float) -> Array:
    """½ ρ Σ ℓ² per row: the weak Gaussian prior that keeps σ(ℓ) activities' logits finite."""
    return 0.5 * precision * jnp.sum(logits**2, axis=-1)


def _entropy(p: Array) -> Array:
    return -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0), axis=-1)


@dataclasses.dataclass(frozen=True)
class SoftmaxGate:
    """Activities ``softmax(ℓ/T)`` (they sum to 1 per row); penalty ``entropy(a)``."""

    temperature: float = 1.0
    name: ClassVar[str] = "softmax"
    sparse_is_penalty_strength: ClassVar[bool] = True
    learns_thresholds: ClassVar[bool] = False
    allows_several: ClassVar[bool] = False  # more than one atom can be on in a row
    initial_threshold: ClassVar[float] = 0.0  # thresholds are not used
    #: log λ_sparse/φ where fit_sae(..., "select") starts: the search holds this gate's strength (no normaliser)
    selection_start: ClassVar[float] = 6.0

    def __post_init__(self) -> None:
        positive_float(self.temperature, "temperature")

    def activities(self, logits: Float[Array, "... K"], thresholds: Float[Array, " K"]) -> Float[Array, "... K"]:
        return jax.nn.softmax(logits / self.temperature, axis=-1)

    def penalty(self, logits, thresholds, log_sparse) -> Float[Array, "..."]:
        """Per-row penalty (already multiplied by its strength)."""
        return stable_exp(log_sparse) * _entropy(self.activities(logits, thresholds))

    def switched(self, logits: Array, atom: int, on: Array) -> Array:
        """Logits with ``atom`` made dominant (on) or suppressed (off)."""
        return logits.at[..., atom].set(jnp.where(on, jnp.max(logits, -1) + 2 * ON_LOGIT, jnp.min(logits, -1) - ON_LOGIT))


@dataclasses.dataclass(frozen=True)
class TopKGate:
    """The ``k`` largest logits are active with activity ``σ(ℓ)``; the rest are exactly 0.

    The penalty ``½ λ_sparse Σ ℓ²`` is a Gaussian prior on the logits, precision λ_sparse (in the
    loss's units, a selectable strength): a weak one keeps logits finite where the data would
    drive an activity to exactly 1 or 0; a strong one holds the activities near ½, which removes
    the per-row amplitude that lets an always-on atom fit a cone instead of its manifold.
    """

    k: int = 1
    name: ClassVar[str] = "topk"
    sparse_is_penalty_strength: ClassVar[bool] = True
    learns_thresholds: ClassVar[bool] = False
    initial_threshold: ClassVar[float] = 0.0  # thresholds are not used
    #: log λ_sparse/φ where fit_sae(..., "select") starts: the logit precision: activities start within ±0.02 of ½
    selection_start: ClassVar[float] = 6.0

    def __post_init__(self) -> None:
        positive_int(self.k, "k")

    @property
    def allows_several(self) -> bool:
        """More than one atom can be on in a row (k ≥ 2)."""
        return self.k >= 2

    def activities(self, logits, thresholds):
        """Exactly k active atoms per row (ties go to the lower index)."""
        chosen = jax.lax.top_k(jax.lax.stop_gradient(logits), self.k)[1]  # (..., k)
        mask = jnp.any(jax.nn.one_hot(chosen, logits.shape[-1], dtype=jnp.int32) > 0, axis=-2)
        return jnp.where(mask, jax.nn.sigmoid(logits), 0.0)

    def penalty(self, logits, thresholds, log_sparse):
        return _logit_prior(logits, stable_exp(log_sparse))

    def switched(self, logits, atom, on):
        """On: the row's largest logit (so it is among the k chosen) plus a margin; off: its smallest minus one."""
        largest, smallest = jnp.max(logits, -1), jnp.min(logits, -1)
        return logits.at[..., atom].set(jnp.where(on, jnp.maximum(largest + 1.0, ON_LOGIT), smallest - 1.0))


@dataclasses.dataclass(frozen=True)
class ThresholdGate:
    """JumpReLU relaxed: ``a = ℓ · σ((ℓ − θ_k)/ε)``, penalised by the gated L1 ``Σ |a|``."""

    width: float = 0.1
    initial_threshold: float = 0.5
    name: ClassVar[str] = "threshold"
    sparse_is_penalty_strength: ClassVar[bool] = True
    learns_thresholds: ClassVar[bool] = True
    #: log λ_sparse/φ where fit_sae(..., "select") starts: the L1 rate, in φ units
    selection_start: ClassVar[float] = 6.0
    allows_several: ClassVar[bool] = True  # more than one atom can be on in a row

    def __post_init__(self) -> None:
        positive_float(self.width, "width")
        if not 0 <= float(self.initial_threshold) < 10:
            raise ValueError(f"initial_threshold must be in [0, 10), got {self.initial_threshold!r}")

    def activities(self, logits, thresholds):
        return logits * jax.nn.sigmoid((logits - thresholds) / self.width)

    def penalty(self, logits, thresholds, log_sparse):
        a = self.activities(logits, thresholds)
        return stable_exp(log_sparse) * jnp.sum(jnp.sqrt(a * a + 1e-12), axis=-1)  # |a|, smooth at 0

    def switched(self, logits, atom, on):
        return logits.at[..., atom].set(jnp.where(on, 1.0, 0.0))


@dataclasses.dataclass(frozen=True)
class BetaBernoulliGate:
    """Ordered Beta–Bernoulli: ``a = σ(ℓ)``, atom k fires at rate ``π_k = (α/(1+α))^(k+1)``.

    A weak Gaussian prior ``½ ρ Σ ℓ²`` (``logit_precision`` ρ) keeps the logits finite.
    """

    logit_precision: float = 1e-3
    name: ClassVar[str] = "beta_bernoulli"
    sparse_is_penalty_strength: ClassVar[bool] = False
    learns_thresholds: ClassVar[bool] = False
    allows_several: ClassVar[bool] = True  # more than one atom can be on in a row
    initial_threshold: ClassVar[float] = 0.0  # thresholds are not used
    #: log λ_sparse/φ where fit_sae(..., "select") starts: log α is held by the search (not a strength)
    selection_start: ClassVar[float] = 6.0

    def __post_init__(self) -> None:
        positive_float(self.logit_precision, "logit_precision")

    def activities(self, logits, thresholds):
        return jax.nn.sigmoid(logits)

    @staticmethod
    def log_rates(log_alpha: Array, num_atoms: int) -> tuple[Array, Array]:
        """(log π_k, log(1 − π_k)) for k = 0..K−1, computed without under- or overflow."""
        log_rho = -jax.nn.softplus(-log_alpha)  # log(α / (1 + α))
        log_pi = log_rho * jnp.arange(1, num_atoms + 1, dtype=log_rho.dtype)
        return log_pi, jnp.log(-jnp.expm1(log_pi))

    def penalty(self, logits, thresholds, log_sparse):
        a = self.activities(logits, thresholds)
        log_pi, log_not = self.log_rates(log_sparse, logits.shape[-1])
        return (-jnp.sum(a * log_pi + (1 - a) * log_not, axis=-1)
                + _logit_prior(logits, self.logit_precision))

    def switched(self, logits, atom, on):
        return logits.at[..., atom].set(jnp.where(on, ON_LOGIT, OFF_LOGIT))


@dataclasses.dataclass(frozen=True)
class BinaryGate:
    """Activity exactly 1 where ``ℓ > 0`` and 0 elsewhere: each atom is on or off, at full amplitude.

    Penalty per row: ``λ_sparse · Σ_k a_ik`` (an L0 count; as a prior, atom k is on with
    probability σ(−λ_sparse/φ)) plus ``½ ρ Σ_k (|ℓ_ik| − 1)²`` (``logit_precision`` ρ), which holds
    each logit at ±1: the data never see a logit, only its sign, so the row search switches atoms
    and Newton steps leave them. With no amplitude to trade against the decoder, an atom cannot
    turn its manifold into a cone, and any number of atoms can be on in a row.
    """

    logit_precision: float = 1.0
    name: ClassVar[str] = "binary"
    sparse_is_penalty_strength: ClassVar[bool] = True
    learns_thresholds: ClassVar[bool] = False
    allows_several: ClassVar[bool] = True  # more than one atom can be on in a row
    initial_threshold: ClassVar[float] = 0.0  # thresholds are not used
    #: log λ_sparse/φ where fit_sae(..., "select") starts: λ/φ = 1, where an atom is on wherever it removes
    #: more than 2φ of squared residual. At e⁶ it had to explain ~800φ, and on small designs (4 circles in
    #: R⁶, 400 rows; a grokked embedding of 59 rows) every atom started off and stayed off
    selection_start: ClassVar[float] = 0.0

    def __post_init__(self) -> None:
        positive_float(self.logit_precision, "logit_precision")

    def activities(self, logits, thresholds):
        return (logits > 0).astype(logits.dtype)

    def penalty(self, logits, thresholds, log_sparse):
        on = (logits > 0).astype(logits.dtype)
        return (stable_exp(log_sparse) * jnp.sum(on, axis=-1)
                + 0.5 * self.logit_precision * jnp.sum((jnp.abs(logits) - 1.0) ** 2, axis=-1))

    def switched(self, logits, atom, on):
        return logits.at[..., atom].set(jnp.where(on, 1.0, -1.0))


Gate = SoftmaxGate | TopKGate | ThresholdGate | BetaBernoulliGate | BinaryGate
GATE_TYPES: dict[str, type] = {
    "softmax": SoftmaxGate, "topk": TopKGate, "threshold": ThresholdGate, "beta_bernoulli": BetaBernoulliGate,
    "binary": BinaryGate,
}


def make_gate(spec: str | Gate, num_atoms: int | None = None, **options) -> Gate:
    """A gate from its name (``softmax``, ``topk``, ``threshold``, ``beta_bernoulli``, ``binary``) or itself.

    ``num_atoms`` checks a TopK gate's ``k`` against K (``1 <= k <= K``).
    """
    if isinstance(spec, str):
        if spec not in GATE_TYPES:
            raise ValueError(f"unknown gate {spec!r}; known gates: {', '.join(GATE_TYPES)}")
        gate = GATE_TYPES[spec](**options)
    elif isinstance(spec, tuple(GATE_TYPES.values())):
        if options:
            raise ValueError("options are only accepted with a gate name")
        gate = spec
    else:
        raise TypeError(f"gate must be a name or a gate object, got {type(spec).__name__}")
    if isinstance(gate, TopKGate) and num_atoms is not None and not 1 <= gate.k <= num_atoms:
        raise ValueError(f"a TopK gate needs 1 <= k <= K = {num_atoms}, got k = {gate.k}")
    return gate


__all__ = ["GATE_TYPES", "BetaBernoulliGate", "BinaryGate", "Gate", "SoftmaxGate", "ThresholdGate", "TopKGate", "make_gate"]
