"""CMR parameters: a typed pytree, their bounds, and the unbounded transform used by fits.

The names follow the parameterisation that jaxcmr and cymr share (Morton & Polyn 2016):

================================  =========  ==============================================
field                             bounds     meaning (bounds: jaxcmr's, the default search box)
================================  =========  ==============================================
``encoding_drift_rate``           [0, 1]     β_enc, context drift at study
``start_drift_rate``              [0, 1]     β_start, drift back to the start-of-list unit
``recall_drift_rate``             [0, 1]     β_rec, context drift at each recall
``mfc_learning_rate``             [0, 1]     γ_FC; M^FC starts as (1 − γ_FC)·I
``mcf_learning_rate``             [0, 1]     γ_CF; M^CF learns γ_CF·φ_i per study event
``shared_support``                [0, 100]   α, pre-experimental M^CF between any unit and item
``item_support``                  [0, 100]   δ, pre-experimental M^CF between an item and its unit
``primacy_scale``                 [0, 100]   φ_s in φ_i = φ_s·exp(−φ_d·(i − 1)) + 1
``primacy_decay``                 [0, 100]   φ_d
``stop_probability_scale``        [0, 1]     θ_s in P(stop after n recalls) = θ_s·exp(θ_r·n)
``stop_probability_growth``       [0, 10]    θ_r
``choice_sensitivity``            [0, 100]   τ, the exponent of the Luce choice rule
================================  =========  ==============================================

The model itself accepts any value in :data:`LIMITS` (the upper bounds of 100 and 10 are the
search box, not limits of the model), so a fit can widen the box (``fit(..., bounds=...)``).
jaxcmr fixes γ_CF = 1 (its ``learning_rate`` is γ_FC); that is the default here too, so the
standard fit frees the other 11 parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class CMRParameters(NamedTuple):
    """CMR parameters (a pytree): scalars for one model, or arrays of equal shape for a population."""

    encoding_drift_rate: Any
    start_drift_rate: Any
    recall_drift_rate: Any
    mfc_learning_rate: Any
    mcf_learning_rate: Any
    shared_support: Any
    item_support: Any
    primacy_scale: Any
    primacy_decay: Any
    stop_probability_scale: Any
    stop_probability_growth: Any
    choice_sensitivity: Any


PARAMETER_NAMES: tuple[str, ...] = CMRParameters._fields

BOUNDS: dict[str, tuple[float, float]] = {
    "encoding_drift_rate": (0.0, 1.0),
    "start_drift_rate": (0.0, 1.0),
    "recall_drift_rate": (0.0, 1.0),
    "mfc_learning_rate": (0.0, 1.0),
    "mcf_learning_rate": (0.0, 1.0),
    "shared_support": (0.0, 100.0),
    "item_support": (0.0, 100.0),
    "primacy_scale": (0.0, 100.0),
    "primacy_decay": (0.0, 100.0),
    "stop_probability_scale": (0.0, 1.0),
    "stop_probability_growth": (0.0, 10.0),
    "choice_sensitivity": (0.0, 100.0),
}
"""jaxcmr's bounds: the default search box of fits (``fit(..., bounds=...)`` widens it within :data:`LIMITS`)."""

_INF = float("inf")
LIMITS: dict[str, tuple[float, float]] = {
    **{n: (0.0, 1.0) for n in ("encoding_drift_rate", "start_drift_rate", "recall_drift_rate", "mfc_learning_rate",
                               "mcf_learning_rate", "stop_probability_scale")},
    **{n: (0.0, _INF) for n in ("shared_support", "item_support", "primacy_scale", "primacy_decay",
                                "stop_probability_growth", "choice_sensitivity")},
}
"""Closed limits every parameter set must lie in: the values the model is defined for (rates and
probabilities in [0, 1], scales, decays and τ nonnegative)."""

_EPS = 2.220446049250313e-16
FIT_BOUNDS: dict[str, tuple[float, float]] = {
    name: (low + _EPS, high - _EPS * max(1.0, high)) for name, (low, high) in BOUNDS.items()
}
"""The default open search box of :func:`superpose.recall.fit` (jaxcmr's: ε inside each bound)."""

DEFAULT_FIXED: dict[str, float] = {"mcf_learning_rate": 1.0}
"""Fixed by default in fits (as jaxcmr does), leaving 11 free parameters."""

DEFAULT_FREE: tuple[str, ...] = tuple(n for n in PARAMETER_NAMES if n not in DEFAULT_FIXED)


def make_parameters(values: Mapping[str, Any] | None = None, **kwargs: Any) -> CMRParameters:
    """Builds and validates parameters from a mapping and/or keywords (all 12 names needed)."""
    merged = {**(dict(values) if values is not None else {}), **kwargs}
    unknown = sorted(set(merged) - set(PARAMETER_NAMES))
    if unknown:
        raise ValueError(f"unknown CMR parameters {unknown}; the names are {list(PARAMETER_NAMES)}")
    missing = [n for n in PARAMETER_NAMES if n not in merged]
    if missing:
        raise ValueError(f"missing CMR parameters {missing}")
    params = CMRParameters(**merged)
    check_parameters(params)
    return params


def check_parameters(params: CMRParameters) -> None:
    """Raises ValueError naming a parameter that is NaN or outside its :data:`LIMITS` (concrete values only)."""
    if not isinstance(params, CMRParameters):
        raise TypeError(f"expected CMRParameters, got {type(params).__name__}")
    shapes = set()
    for name, value in zip(PARAMETER_NAMES, params):
        if isinstance(value, jax.core.Tracer):
            continue
        array = np.asarray(value)
        if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)) or array.dtype == bool:
            raise TypeError(f"{name} must be a real number, got dtype {array.dtype}")
        shapes.add(array.shape)
        low, high = LIMITS[name]
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name} must be finite, got {array if array.ndim == 0 else 'a NaN or inf entry'}")
        if np.any(array < low) or np.any(array > high):
            worst = array.min() if np.any(array < low) else array.max()
            raise ValueError(f"{name} = {worst:.6g} is outside its limits [{low:g}, {high:g}]")
    if len(shapes) > 1:
        raise ValueError(f"all parameters must share one shape (scalar or population), got shapes {sorted(shapes)}")


def stack(parameter_sets: list[CMRParameters]) -> CMRParameters:
    """Stacks parameter sets into a population (leading axis)."""
    return CMRParameters(*[jnp.stack([jnp.asarray(p[i]) for p in parameter_sets]) for i in range(len(PARAMETER_NAMES))])


def to_dict(params: CMRParameters) -> dict[str, Any]:
    """Plain floats (or lists, for a population) by name, for JSON."""
    return {n: np.asarray(v).tolist() for n, v in zip(PARAMETER_NAMES, params)}


# --- the unbounded transform used by gradient polishing ---------------------------------------------

def to_unbounded(value: jax.Array, low: float, high: float) -> jax.Array:
    """logit((x − low)/(high − low)): maps the open interval (low, high) onto the real line."""
    u = (value - low) / (high - low)
    return jnp.log(u) - jnp.log1p(-u)


def from_unbounded(z: jax.Array, low: float, high: float) -> jax.Array:
    """The inverse of :func:`to_unbounded`: low + (high − low)·sigmoid(z)."""
    return low + (high - low) * jax.nn.sigmoid(z)


def uniform_population(key: jax.Array, size: int, free: tuple[str, ...], fixed: Mapping[str, float],
                       bounds: Mapping[str, tuple[float, float]] | None = None) -> CMRParameters:
    """``size`` parameter sets, free parameters uniform in their bounds, fixed ones constant."""
    bounds = dict(FIT_BOUNDS if bounds is None else bounds)
    keys = jax.random.split(key, len(free))
    values = {n: jnp.full((size,), float(fixed[n])) for n in fixed}
    for k, name in zip(keys, free):
        low, high = bounds[name]
        values[name] = jax.random.uniform(k, (size,), minval=low, maxval=high)
    return make_parameters(values)

