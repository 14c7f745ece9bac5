"""The search inside a CMR fit: its box, the coordinates DE searches in, one DE restart, the float64 polish.

- **Box.** Each free parameter is searched in the open interval ε inside its bounds (jaxcmr's
  box, :data:`~superpose.recall.parameters.BOUNDS` by default; :func:`search_box` widens or
  narrows it within the model's :data:`~superpose.recall.parameters.LIMITS`).
- **DE coordinates.** Parameters whose range is wider than 1 (supports, primacy, stop growth,
  τ) are searched on y = log(1 + x), the others on x. Drawn uniformly on [0, 100], 98% of DE's
  first population has a primacy scale above 2, and the best optimum of peers_notask subject 66
  has 1.8 and a shared support of 3.6: DE in x mostly ended on a worse ridge there (primacy scale at
  its bound; docs/recall.md compares both searches from their committed results).
- **Restart.** scipy's ``differential_evolution(vectorized=True)`` hands each generation to one
  jitted population call (float32); its final population's best few *distinct* members are
  returned, since a flat region (a primacy decay so large that only the first item gains) can hold
  DE's best while a better basin is still in the population.
- **Polish.** L-BFGS on ``jax.grad`` of the float64 likelihood in logit coordinates of the box,
  repeated from its own end point until a round gains less than 10⁻⁴ nats (a fresh start drops
  L-BFGS's curvature memory, which a bend of the likelihood can leave stale).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import differential_evolution, minimize

from superpose.numerics import float64_enabled
from superpose.recall import variants as _variants
from superpose.recall.likelihood import (
    Trials,
    _total_nll,
    jit,
    negative_log_likelihood,
    score_population,
    shard_population,
)
from superpose.recall.parameters import (
    BOUNDS,
    LIMITS,
    PARAMETER_NAMES,
    CMRParameters,
    from_unbounded,
    make_parameters,
    to_unbounded,
)
from superpose.recall.variants import (
    VARIANT_BOUNDS,
    VARIANT_DEFAULTS,
    VARIANT_LIMITS,
    CMRVariant,
    VariantParameters,
    VariantTrials,
    make_variant_parameters,
    variant_nll,
)

NONFINITE_SCORE = 1e12
"""What an infinite likelihood (a region the model cannot explain) is scored as during a fit."""

Box = dict[str, tuple[float, float]]
"""The open search interval of each free parameter."""

ALL_BOUNDS: dict[str, tuple[float, float]] = {**BOUNDS, **VARIANT_BOUNDS}
"""Default search box of every parameter, the base model's and the variants' added ones."""
ALL_LIMITS: dict[str, tuple[float, float]] = {**LIMITS, **VARIANT_LIMITS}
"""What the model accepts for every parameter."""


def parameter_names(variant: CMRVariant | None) -> tuple[str, ...]:
    """The base model's 12 parameters, then those ``variant`` adds (None: the base model)."""
    return PARAMETER_NAMES + (variant.extra if variant is not None else ())


def build(values: Mapping[str, Any], variant: CMRVariant | None) -> CMRParameters | VariantParameters:
    """The parameter pytree of ``values`` (scalars or ``(P,)`` arrays, every name of the model), unchecked;
    a variant's other added parameters take their defaults."""
    base = CMRParameters(**{n: values[n] for n in PARAMETER_NAMES})
    if variant is None:
        return base
    like = jnp.asarray(values["encoding_drift_rate"])
    return VariantParameters(cmr=base, **{n: values[n] if n in values else jnp.full_like(like, VARIANT_DEFAULTS[n])
                                          for n in VARIANT_DEFAULTS})


def model_total_nll(values: Mapping[str, Any], trials: Trials | VariantTrials, n_items: int,
                    variant: CMRVariant | None) -> jax.Array:
    """The NLL of one set (traceable): the base model's or ``variant``'s."""
    if variant is None:
        return _total_nll(build(values, None), trials, n_items)
    return _variants._total_nll(build(values, variant), trials, n_items, variant)


def score(values: Mapping[str, np.ndarray], trials: Trials | VariantTrials, variant: CMRVariant | None) -> jax.Array:
    """NLLs ``(P,)`` of a population given as ``(P,)`` arrays by name, in one jitted call (no checks)."""
    if variant is None:
        return score_population(build(values, None), trials)
    return shard_population(_variants._population, build(values, variant), trials, n_items=trials.n_items,
                            variant=variant)

_EPS = 2.220446049250313e-16
POLISH_ROUNDS = 5
"""Most L-BFGS rounds of one polish (each from the last one's end point)."""
POLISH_GAIN = 1e-4
"""Nats: a polish round that gains less ends the polish."""
DISTINCT = 0.1
"""Members of a DE population count as distinct when they differ by this fraction of a search range."""


def open_interval(low: float, high: float) -> tuple[float, float]:
    """(low, high) moved ε inside, as jaxcmr's box is."""
    return low + _EPS * max(1.0, abs(low)), high - _EPS * max(1.0, abs(high))


def search_box(free: Sequence[str], bounds: Mapping[str, Sequence[float]] | None = None) -> Box:
    """The open search box of the free parameters: :data:`ALL_BOUNDS`, with ``bounds`` overriding some.

    Raises ValueError for an override of an unknown or non-free parameter, one that is not two
    finite numbers ``low < high``, or one outside the model's :data:`ALL_LIMITS`.
    """
    bounds = {} if bounds is None else dict(bounds)
    if not isinstance(bounds, dict):
        raise TypeError(f"bounds must be a mapping of name -> (low, high), got {type(bounds).__name__}")
    for name, pair in bounds.items():
        if name not in ALL_BOUNDS:
            raise ValueError(f"bounds names an unknown parameter {name!r}; the names are {list(ALL_BOUNDS)}")
        if name not in free:
            raise ValueError(f"bounds are given for {name!r}, which is not free in this fit (free: {list(free)})")
        try:
            low, high = (float(v) for v in pair)
        except (TypeError, ValueError):
            raise ValueError(f"bounds[{name!r}] must be two numbers (low, high), got {pair!r}") from None
        limit_low, limit_high = ALL_LIMITS[name]
        if not (np.isfinite(low) and np.isfinite(high) and low < high):
            raise ValueError(f"bounds[{name!r}] must be finite with low < high, got ({low:g}, {high:g})")
        if low < limit_low or high > limit_high:
            raise ValueError(f"bounds[{name!r}] = ({low:g}, {high:g}) leaves the model's limits "
                             f"[{limit_low:g}, {limit_high:g}]")
    return {n: open_interval(*(bounds[n] if n in bounds else ALL_BOUNDS[n])) for n in free}


def _box_arrays(box: Box, free: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([box[n][0] for n in free], np.float64), np.array([box[n][1] for n in free], np.float64)


def logarithmic(box: Box, free: Sequence[str]) -> np.ndarray:
    """``(len(free),)`` True for the parameters DE searches on log(1 + x): a range wider than 1, low >= 0."""
    lows, highs = _box_arrays(box, free)
    return (highs - lows > 1.0) & (lows >= 0.0)


def screen_nonfinite(nll: np.ndarray, x: np.ndarray, free: Sequence[str], box: Box) -> tuple[np.ndarray, int]:
    """Scores non-finite NLLs ``(P,)`` as :data:`NONFINITE_SCORE` and counts them.

    ``x`` ``(len(free), P)`` holds the free values exactly as scored (the fixed ones were checked
    already). A NaN where every free value is finite and inside ``box`` is a defect of the
    likelihood, not a bad region: it raises ``RuntimeError`` rather than steer the search away.
    """
    nll = np.asarray(nll, np.float64)
    bad = ~np.isfinite(nll)
    if not bad.any():
        return nll, 0
    values = np.asarray(x, np.float64).reshape(len(free), -1)  # compared in float64, never rounded
    lows, highs = _box_arrays(box, free)
    valid = np.all(np.isfinite(values) & (values >= lows[:, None]) & (values <= highs[:, None]), axis=0)
    nan_at_valid = np.flatnonzero(np.isnan(nll) & valid)
    if nan_at_valid.size:
        at = {n: float(v) for n, v in zip(free, values[:, nan_at_valid[0]])}
        raise RuntimeError(f"the likelihood is NaN at valid parameters {at} (finite, inside the fit bounds): "
                           "this is a defect in the likelihood, not a bad region; please report it")
    return np.where(bad, NONFINITE_SCORE, nll), int(bad.sum())


@partial(jit, static_argnames=("free", "n_items", "variant"))
def _value_and_grad64(z: jax.Array, fixed_values: jax.Array, lows: jax.Array, highs: jax.Array,
                      trials: Trials | VariantTrials, free: tuple[str, ...], n_items: int,
                      variant: CMRVariant | None = None) -> tuple[jax.Array, jax.Array]:
    """NLL and its gradient in the logit coordinates of the free parameters (float64 inputs)."""
    names = tuple(n for n in parameter_names(variant) if n not in free)

    def objective(z: jax.Array) -> jax.Array:
        values = from_unbounded(z, lows, highs)
        params = {n: values[i] for i, n in enumerate(free)} | {n: fixed_values[i] for i, n in enumerate(names)}
        return model_total_nll(params, trials, n_items, variant)

    return jax.value_and_grad(objective)(z)


def _objective64(trials: Trials | VariantTrials, free: tuple[str, ...], fixed: Mapping[str, float], box: Box,
                 variant: CMRVariant | None = None) -> tuple[Any, Any, Any]:
    """(value-and-gradient function of logit coordinates, to-logit map, from-logit map), float64."""
    lows, highs = _box_arrays(box, free)
    names = tuple(n for n in parameter_names(variant) if n not in free)
    fixed_values = np.array([fixed[n] for n in names], np.float64)

    def value_and_grad(z: np.ndarray) -> tuple[float, np.ndarray]:
        with float64_enabled():
            value, grad = _value_and_grad64(jnp.asarray(z, jnp.float64), jnp.asarray(fixed_values),
                                            jnp.asarray(lows), jnp.asarray(highs), trials, free, trials.n_items,
                                            variant)
            return float(value), np.asarray(grad, np.float64)

    margin = 1e-12 * (highs - lows)  # a start on a bound maps to a large but finite logit

    def to_z(x: np.ndarray) -> np.ndarray:
        with float64_enabled():
            return np.asarray(to_unbounded(jnp.asarray(np.clip(x, lows + margin, highs - margin)), lows, highs))

    def from_z(z: np.ndarray) -> np.ndarray:
        with float64_enabled():
            return np.asarray(from_unbounded(jnp.asarray(z), lows, highs))

    return value_and_grad, to_z, from_z


def polish_once(trials: Trials | VariantTrials, start: Mapping[str, float], free: tuple[str, ...],
                fixed: dict[str, float], box: Box, steps: int, tolerance: float = 1e-7, *,
                variant: CMRVariant | None = None) -> tuple[dict[str, float], float, int, int]:
    """One L-BFGS run: (parameters, NLL, evaluations, non-finite evaluations scored as 1e12)."""
    value_and_grad, to_z, from_z = _objective64(trials, free, fixed, box, variant)
    z0 = to_z(np.array([start[n] for n in free], np.float64))
    nonfinite = [0]

    def safe(z: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = value_and_grad(z)
        if np.isfinite(value) and np.all(np.isfinite(grad)):
            return value, grad
        if not np.isfinite(value):  # raises on NaN at valid parameters
            screen_nonfinite(np.array([value]), from_z(z)[:, None], free, box)
        nonfinite[0] += 1
        return NONFINITE_SCORE, np.zeros_like(z)

    result = minimize(safe, z0, jac=True, method="L-BFGS-B",
                      options={"maxiter": steps, "ftol": tolerance * 1e-3, "gtol": tolerance})
    out = {n: float(v) for n, v in zip(free, from_z(result.x))} | dict(fixed)
    return out, float(result.fun), int(result.nfev), nonfinite[0]


def polish(trials: Trials | VariantTrials, start: Mapping[str, float], free: tuple[str, ...], fixed: dict[str, float],
           box: Box, steps: int, *, variant: CMRVariant | None = None) -> tuple[dict[str, float], float, int, int]:
    """L-BFGS rounds from ``start`` (NLL measured here) until one gains < :data:`POLISH_GAIN`, keeping only
    improvements: (parameters, NLL, evaluations, non-finite evaluations)."""
    best, best_nll = dict(start), nll64(trials, start, free, fixed, box, variant=variant)
    evaluations = bad = 0
    for _ in range(POLISH_ROUNDS if steps > 0 else 0):
        candidate, _, count, nonfinite = polish_once(trials, best, free, fixed, box, steps, variant=variant)
        evaluations, bad = evaluations + count, bad + nonfinite
        candidate_nll = nll64(trials, candidate, free, fixed, box, variant=variant)
        gain = best_nll - candidate_nll if np.isfinite(candidate_nll) else -np.inf
        if gain > 0:
            best, best_nll = candidate, candidate_nll
        if not gain >= POLISH_GAIN:
            break
    return best, best_nll, evaluations, bad


def nll64(trials: Trials | VariantTrials, parameters: Mapping[str, float], free: Sequence[str],
          fixed: Mapping[str, float], box: Box, *, variant: CMRVariant | None = None) -> float:
    """The NLL of one parameter set in float64 (the number every fit reports)."""
    check = make_parameters if variant is None else make_variant_parameters
    check(dict(parameters))
    free = tuple(free)
    value_and_grad, to_z, _ = _objective64(trials, free, fixed, box, variant)
    x = np.array([parameters[n] for n in free], np.float64)
    lows, highs = _box_arrays(box, free)
    if np.any(x < lows) or np.any(x > highs):  # outside the search box: score directly
        with float64_enabled():
            params = check({k: np.float64(v) for k, v in parameters.items()})
            if variant is None:
                return float(negative_log_likelihood(params, Trials(*trials)))
            return float(variant_nll(params, trials, variant))
    return value_and_grad(to_z(x))[0]


def warm_polish(trials: Trials | VariantTrials, free: tuple[str, ...], fixed: dict[str, float], box: Box, *,
                variant: CMRVariant | None = None) -> threading.Thread:
    """Compiles the float64 value and gradient in a thread (joined before the first polish)."""
    value_and_grad, to_z, _ = _objective64(trials, free, fixed, box, variant)
    middle = np.array([sum(box[n]) / 2 for n in free])
    warm = threading.Thread(target=lambda: value_and_grad(to_z(middle)), daemon=True)
    warm.start()
    return warm


def compile_population(trials: Trials | VariantTrials, free: tuple[str, ...], fixed: dict[str, float], box: Box,
                       popsize: int, *, variant: CMRVariant | None = None) -> None:
    """Compiles the population function once, before several restarts' threads all ask for it."""
    size = popsize * len(free)
    middle = {n: np.full(size, sum(box[n]) / 2, np.float32) for n in free}
    score(middle | {n: np.full(size, v, np.float32) for n, v in fixed.items()}, trials, variant).block_until_ready()


def de_restart(trials: Trials | VariantTrials, free: tuple[str, ...], fixed: dict[str, float], box: Box,
               restart: int, *, popsize: int, tol: float, maxiter: int, seed: int, candidates: int,
               variant: CMRVariant | None = None) -> tuple[list[dict[str, float]], int, int]:
    """One differential-evolution run (seeded ``seed·1000 + restart``) in the search coordinates.

    Returns (the ``candidates`` best distinct members of the final population, best first, as
    parameter dicts; sets scored; non-finite scores).
    """
    counts = [0, 0]
    lows, highs = _box_arrays(box, free)
    log = logarithmic(box, free)
    y_lows, y_highs = np.where(log, np.log1p(lows), lows), np.where(log, np.log1p(highs), highs)

    def to_x(y: np.ndarray) -> np.ndarray:
        shape = (-1,) + (1,) * (y.ndim - 1)
        x = np.where(log.reshape(shape), np.expm1(y), y)
        return np.clip(x, lows.reshape(shape), highs.reshape(shape))  # expm1(log1p(x)) may round outside

    def objective(y: np.ndarray) -> np.ndarray:
        # the sets are inside the box by construction: they go straight to the jitted likelihood as NumPy
        counts[0] += y.shape[1]
        x32 = np.asarray(to_x(y), np.float32)
        values = dict(zip(free, x32))
        values.update({n: np.full(y.shape[1], v, np.float32) for n, v in fixed.items()})
        nll = np.asarray(score(values, trials, variant), np.float64)
        # float32 may round a value onto a closed bound (outside the open box), where NaN can occur
        nll, bad = screen_nonfinite(nll, x32, free, box)
        counts[1] += bad
        return nll

    result = differential_evolution(objective, list(zip(y_lows, y_highs)), vectorized=True, updating="deferred",
                                    popsize=popsize, tol=tol, maxiter=maxiter, polish=False, seed=seed * 1000 + restart)
    population = np.asarray(result.population, np.float64)
    order = np.argsort(np.asarray(result.population_energies))
    span = y_highs - y_lows
    picked: list[np.ndarray] = []
    for index in order:
        if len(picked) >= candidates:
            break
        y = population[index]
        if all(np.max(np.abs(y - other) / span) > DISTINCT for other in picked):
            picked.append(y)
    return [{n: float(v) for n, v in zip(free, to_x(y))} | fixed for y in picked], counts[0], counts[1]
