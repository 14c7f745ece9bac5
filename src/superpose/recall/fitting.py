"""Maximum-likelihood fits of CMR: vectorised differential evolution, then a gradient polish.

Per subject and restart, scipy's ``differential_evolution(vectorized=True)`` hands the whole
population to one jitted call of :func:`population_nll` (float32); restarts run in threads.
The best set is then polished with L-BFGS on ``jax.grad`` of the float64 likelihood, with the
free parameters mapped to the real line by a logit transform of their bounds; the polish is
kept only where it lowers the negative log-likelihood. Subjects are padded to one shape, so the
likelihood compiles once per fit, not once per subject.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import threading
import time
from functools import partial
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import differential_evolution, minimize

from superpose.numerics import float64_enabled
from superpose.recall.data import RecallDataset
from superpose.recall.likelihood import (
    Trials,
    _total_nll,
    jit,
    negative_log_likelihood,
    prepare,
    score_population,
)
from superpose.recall.parameters import (
    BOUNDS,
    DEFAULT_FIXED,
    DEFAULT_FREE,
    FIT_BOUNDS,
    PARAMETER_NAMES,
    CMRParameters,
    from_unbounded,
    to_unbounded,
    make_parameters,
)
from superpose.runner.files import write_json


#: a free parameter within this fraction of its range from a bound counts as on that bound
AT_BOUND_FRACTION = 1e-3


def parameters_at_bounds(parameters: Mapping[str, float], free: Sequence[str], *,
                         fraction: float = AT_BOUND_FRACTION) -> dict[str, str]:
    """``{name: "low" | "high"}`` for each free parameter within ``fraction`` of its range (BOUNDS) of a bound.

    A fitted parameter on a bound is not an interior optimum: the likelihood would go on improving
    beyond it (or the parameter is not identified there). Raises ValueError for an unknown or missing
    name, a non-finite value, or ``fraction`` outside (0, 0.5).
    """
    if not (isinstance(fraction, (int, float)) and 0 < fraction < 0.5):
        raise ValueError(f"fraction must be in (0, 0.5), got {fraction!r}")
    out = {}
    for name in free:
        if name not in BOUNDS:
            raise ValueError(f"unknown parameter {name!r}; known: {list(BOUNDS)}")
        if name not in parameters:
            raise ValueError(f"parameters have no value for the free parameter {name!r}")
        value = float(parameters[name])
        if not np.isfinite(value):
            raise ValueError(f"{name} = {value!r} is not finite")
        low, high = BOUNDS[name]
        margin = fraction * (high - low)
        if value <= low + margin:
            out[name] = "low"
        elif value >= high - margin:
            out[name] = "high"
    return out


@dataclass
class SubjectFit:
    """One subject's fit: the best parameters over restarts, and what it took."""

    subject: int
    parameters: dict[str, float]
    nll: float
    restart_nlls: list[float]
    evaluations: int  # parameter sets scored (all restarts) plus polish iterations
    wall_seconds: float
    polished: bool
    polish_gain: float
    n_lists: int
    n_events: int
    nonfinite_evaluations: int = 0  # likelihoods that were inf (or NaN outside the box), scored as 1e12
    data_fingerprint: str = ""  # RecallDataset.fingerprint() of the subject's data ("" if unknown)
    final_nlls: list[float] = field(default_factory=list)  # each restart's NLL after its own polish (confirm mode)
    restarts_at_best: int = 0  # restarts whose final NLL is within `confirm` nats of the best (confirm mode)
    status: str = ""  # how the restarts ended: confirmed, or which budget was reached


@dataclass
class FitResult:
    """Fits of several subjects, with the settings and software versions that produced them."""

    fits: list[SubjectFit]
    free: list[str]
    fixed: dict[str, float]
    settings: dict[str, Any]
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def nonfinite_evaluations(self) -> int:
        """Likelihood evaluations of all subjects that were not finite and scored as 1e12."""
        return sum(f.nonfinite_evaluations for f in self.fits)

    def table(self) -> Any:
        """A pandas table: one row per subject (nll, restarts and how many reached the best, status,
        evaluations, non-finite ones, seconds, the free parameters on a bound, parameters)."""
        import pandas as pd

        return pd.DataFrame([{"subject": f.subject, "nll": f.nll, "restarts": len(f.restart_nlls),
                              "restarts_at_best": f.restarts_at_best, "status": f.status,
                              "evaluations": f.evaluations, "nonfinite_evaluations": f.nonfinite_evaluations,
                              "seconds": f.wall_seconds, "at_bounds": "; ".join(
                                  f"{name} ({side})" for name, side in self.at_bounds(f.subject).items()),
                              **f.parameters} for f in self.fits])

    def at_bounds(self, subject: int) -> dict[str, str]:
        """The subject's free parameters on a bound (:func:`parameters_at_bounds`): ``{name: "low" | "high"}``."""
        for f in self.fits:
            if f.subject == subject:
                return parameters_at_bounds(f.parameters, self.free)
        raise ValueError(f"subject {subject} was not fitted; fitted: {[f.subject for f in self.fits]}")

    def parameters(self, subject: int) -> CMRParameters:
        for f in self.fits:
            if f.subject == subject:
                return make_parameters(f.parameters)
        raise ValueError(f"subject {subject} was not fitted; fitted: {[f.subject for f in self.fits]}")

    def to_json(self) -> dict[str, Any]:
        return {"free": self.free, "fixed": self.fixed, "settings": self.settings, "versions": self.versions,
                "fits": [asdict(f) for f in self.fits]}

    def save(self, path: str | Path) -> Path:
        """Writes the result as JSON atomically."""
        write_json(Path(path), self.to_json())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> FitResult:
        try:
            raw = json.loads(Path(path).read_text())
            return cls(fits=[SubjectFit(**f) for f in raw["fits"]], free=raw["free"], fixed=raw["fixed"],
                       settings=raw["settings"], versions=raw.get("versions", {}))
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as error:
            raise ValueError(f"{path} is not a fit result written by superpose: {error}") from error


def versions() -> dict[str, str]:
    """Versions of the software a fit ran on."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in ("superpose", "jax", "jaxlib", "numpy", "scipy", "optax"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    out["devices"] = ", ".join(str(d) for d in jax.devices())
    return out


def _check_free_fixed(free: Sequence[str], fixed: Mapping[str, float]) -> tuple[tuple[str, ...], dict[str, float]]:
    free = tuple(free)
    fixed = {k: float(v) for k, v in fixed.items()}
    unknown = sorted((set(free) | set(fixed)) - set(PARAMETER_NAMES))
    if unknown:
        raise ValueError(f"unknown parameters {unknown}; the names are {list(PARAMETER_NAMES)}")
    both = sorted(set(free) & set(fixed))
    if both:
        raise ValueError(f"parameters {both} are both free and fixed")
    missing = [n for n in PARAMETER_NAMES if n not in free and n not in fixed]
    if missing:
        raise ValueError(f"parameters {missing} are neither free nor fixed")
    if not free:
        raise ValueError("at least one parameter must be free")
    for name, value in fixed.items():
        low, high = BOUNDS[name]
        if not low <= value <= high:
            raise ValueError(f"fixed {name} = {value:g} is outside its bounds [{low:g}, {high:g}]")
    return free, fixed


DEFAULT_AGREE = 3
"""Confirmed fits (``confirm=``): restarts that must end near the best. With 2, two restarts agreed on a
poor basin of a peers_notask subject (docs/recall.md)."""

NONFINITE_SCORE = 1e12
"""What an infinite likelihood (a region the model cannot explain) is scored as during a fit."""


def _screen_nonfinite(nll: np.ndarray, x: np.ndarray, free: Sequence[str]) -> tuple[np.ndarray, int]:
    """Scores non-finite NLLs ``(P,)`` as :data:`NONFINITE_SCORE` and counts them.

    ``x`` ``(len(free), P)`` holds the free values exactly as scored (the fixed ones were checked
    against their bounds already). A NaN where every free value is finite and inside ``FIT_BOUNDS``
    is a defect of the likelihood, not a bad region: it raises ``RuntimeError`` rather than steer
    the search away silently.
    """
    nll = np.asarray(nll, np.float64)
    bad = ~np.isfinite(nll)
    if not bad.any():
        return nll, 0
    values = np.asarray(x, np.float64).reshape(len(free), -1)  # compared in float64, never rounded
    bounds = np.array([FIT_BOUNDS[n] for n in free], np.float64)
    valid = np.all(np.isfinite(values) & (values >= bounds[:, :1]) & (values <= bounds[:, 1:]), axis=0)
    nan_at_valid = np.flatnonzero(np.isnan(nll) & valid)
    if nan_at_valid.size:
        at = {n: float(v) for n, v in zip(free, values[:, nan_at_valid[0]])}
        raise RuntimeError(f"the likelihood is NaN at valid parameters {at} (finite, inside the fit bounds): "
                           "this is a defect in the likelihood, not a bad region; please report it")
    return np.where(bad, NONFINITE_SCORE, nll), int(bad.sum())


@partial(jit, static_argnames=("free", "n_items"))
def _value_and_grad64(z: jax.Array, fixed_values: jax.Array, lows: jax.Array, highs: jax.Array, trials: Trials,
                      free: tuple[str, ...], n_items: int) -> tuple[jax.Array, jax.Array]:
    """NLL and its gradient in the logit coordinates of the free parameters (float64 inputs)."""
    names = tuple(n for n in PARAMETER_NAMES if n not in free)

    def objective(z: jax.Array) -> jax.Array:
        values = from_unbounded(z, lows, highs)
        params = {n: values[i] for i, n in enumerate(free)} | {n: fixed_values[i] for i, n in enumerate(names)}
        return _total_nll(CMRParameters(**params), trials, n_items)

    return jax.value_and_grad(objective)(z)


def _objective64(trials: Trials, free: tuple[str, ...], fixed: Mapping[str, float]) -> tuple[Any, Any, Any]:
    """(value-and-gradient function of logit coordinates, to-logit map, from-logit map), float64."""
    bounds = np.array([FIT_BOUNDS[n] for n in free], np.float64)
    names = tuple(n for n in PARAMETER_NAMES if n not in free)
    fixed_values = np.array([fixed[n] for n in names], np.float64)

    def value_and_grad(z: np.ndarray) -> tuple[float, np.ndarray]:
        with float64_enabled():
            value, grad = _value_and_grad64(jnp.asarray(z, jnp.float64), jnp.asarray(fixed_values),
                                            jnp.asarray(bounds[:, 0]), jnp.asarray(bounds[:, 1]), trials,
                                            free, trials.n_items)
            return float(value), np.asarray(grad, np.float64)

    lows, highs = bounds[:, 0], bounds[:, 1]
    margin = 1e-12 * (highs - lows)  # a start on a bound maps to a large but finite logit

    def to_z(x: np.ndarray) -> np.ndarray:
        with float64_enabled():
            return np.asarray(to_unbounded(jnp.asarray(np.clip(x, lows + margin, highs - margin)), lows, highs))

    def from_z(z: np.ndarray) -> np.ndarray:
        with float64_enabled():
            return np.asarray(from_unbounded(jnp.asarray(z), lows, highs))

    return value_and_grad, to_z, from_z


def polish(trials: Trials, start: Mapping[str, float], free: Sequence[str], fixed: Mapping[str, float],
           steps: int = 200, tolerance: float = 1e-7) -> tuple[dict[str, float], float, int]:
    """L-BFGS on the float64 NLL and its ``jax.grad``, over logit-transformed free parameters.

    scipy's L-BFGS drives the iterations (its line search runs in Python), so the only compiled
    function is the likelihood's value and gradient, shared by every subject of one shape.
    Returns ``(parameters, nll, evaluations)``. Raises ``RuntimeError`` if the likelihood is NaN
    at valid parameters.
    """
    return _polish(trials, start, free, fixed, steps, tolerance)[:3]


def _polish(trials: Trials, start: Mapping[str, float], free: Sequence[str], fixed: Mapping[str, float],
            steps: int, tolerance: float = 1e-7) -> tuple[dict[str, float], float, int, int]:
    """:func:`polish`, also returning the number of non-finite evaluations scored as 1e12."""
    free, fixed = _check_free_fixed(free, fixed)
    value_and_grad, to_z, from_z = _objective64(trials, free, fixed)
    z0 = to_z(np.array([start[n] for n in free], np.float64))
    nonfinite = [0]

    def safe(z: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = value_and_grad(z)
        if np.isfinite(value) and np.all(np.isfinite(grad)):
            return value, grad
        if not np.isfinite(value):  # raises on NaN at valid parameters
            _screen_nonfinite(np.array([value]), from_z(z)[:, None], free)
        nonfinite[0] += 1
        return NONFINITE_SCORE, np.zeros_like(z)

    result = minimize(safe, z0, jac=True, method="L-BFGS-B",
                      options={"maxiter": steps, "ftol": tolerance * 1e-3, "gtol": tolerance})
    out = {n: float(v) for n, v in zip(free, from_z(result.x))} | dict(fixed)
    return out, float(result.fun), int(result.nfev), nonfinite[0]


def nll64(trials: Trials, parameters: Mapping[str, float], free: Sequence[str] = DEFAULT_FREE,
          fixed: Mapping[str, float] | None = None) -> float:
    """The NLL of one parameter set in float64 (the number every fit reports)."""
    make_parameters(dict(parameters))
    free = tuple(free)
    fixed = {n: float(parameters[n]) for n in PARAMETER_NAMES if n not in free} if fixed is None else fixed
    value_and_grad, to_z, _ = _objective64(trials, free, fixed)
    x = np.array([parameters[n] for n in free], np.float64)
    bounds = np.array([FIT_BOUNDS[n] for n in free])
    if np.any(x < bounds[:, 0]) or np.any(x > bounds[:, 1]):  # outside the search box: score directly
        with float64_enabled():
            params = make_parameters({k: np.float64(v) for k, v in parameters.items()})
            return float(negative_log_likelihood(params, Trials(*trials)))
    return value_and_grad(to_z(x))[0]


def fit_subject(trials: Trials, *, free: Sequence[str] = DEFAULT_FREE,
                fixed: Mapping[str, float] = DEFAULT_FIXED, restarts: int = 3, popsize: int = 15,
                tol: float = 1e-2, maxiter: int = 1000, seed: int = 0, polish_steps: int = 200,
                subject: int = 0, workers: int | None = None, confirm: float | None = None,
                agree: int = DEFAULT_AGREE, max_restarts: int = 12, max_seconds: float | None = None) -> SubjectFit:
    """Fits one subject's :class:`Trials` (see :func:`fit` for the arguments)."""
    free, fixed = _check_free_fixed(free, fixed)
    if isinstance(restarts, bool) or not isinstance(restarts, int) or restarts < 1:
        raise ValueError(f"restarts must be an integer >= 1, got {restarts!r}")
    if confirm is not None:
        return _confirmed_fit(trials, free, fixed, restarts=restarts, popsize=popsize, tol=tol, maxiter=maxiter,
                              seed=seed, polish_steps=polish_steps, subject=subject, workers=workers,
                              confirm=confirm, agree=agree, max_restarts=max_restarts, max_seconds=max_seconds)
    start = time.perf_counter()
    warm = _warm_polish(trials, free, fixed) if polish_steps > 0 else None  # compiles while DE runs
    _compile_population(trials, free, fixed, popsize)
    # Restarts run in threads: XLA releases the GIL, so two populations are scored at once.
    workers = min(restarts, os.cpu_count() or 1) if workers is None else workers
    run = partial(_de_restart, trials, free, fixed, popsize=popsize, tol=tol, maxiter=maxiter, seed=seed)
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            runs = list(pool.map(run, range(restarts)))
    else:
        runs = [run(r) for r in range(restarts)]
    results = [r[0] for r in runs]
    evaluations, nonfinite_count = sum(r[1] for r in runs), sum(r[2] for r in runs)
    if warm is not None:
        warm.join()
    restart_nlls = [nll64(trials, r, free, fixed) for r in results]
    best = int(np.argmin(restart_nlls))
    nll = restart_nlls[best]
    parameters, polished_nll, steps, bad = _polish_if_better(trials, results[best], nll, free, fixed, polish_steps)
    polished = polished_nll < nll
    return SubjectFit(subject=subject, parameters={n: float(parameters[n]) for n in PARAMETER_NAMES},
                      nll=polished_nll, restart_nlls=restart_nlls, evaluations=evaluations + steps,
                      wall_seconds=time.perf_counter() - start, polished=polished, polish_gain=nll - polished_nll,
                      n_lists=int(trials.targets.shape[0]), n_events=trials.n_events,
                      nonfinite_evaluations=nonfinite_count + bad,
                      status=f"{restarts} restarts, the best " + ("polished" if polished else "as DE left it"))


def _polish_if_better(trials: Trials, parameters: dict[str, float], nll: float, free: tuple[str, ...],
                      fixed: dict[str, float], steps: int) -> tuple[dict[str, float], float, int, int]:
    """The float64 polish of ``parameters`` (NLL ``nll``), kept only where it lowers the NLL:
    (parameters, NLL, polish evaluations, non-finite ones)."""
    if steps == 0:
        return parameters, nll, 0, 0
    candidate, _, evaluations, bad = _polish(trials, parameters, free, fixed, steps=steps)
    candidate_nll = nll64(trials, candidate, free, fixed)
    if np.isfinite(candidate_nll) and candidate_nll < nll:
        return candidate, candidate_nll, evaluations, bad
    return parameters, nll, evaluations, bad


def _warm_polish(trials: Trials, free: tuple[str, ...], fixed: dict[str, float]) -> threading.Thread:
    """Compiles the float64 value and gradient in a thread (joined before the polish)."""
    value_and_grad, to_z, _ = _objective64(trials, free, fixed)
    middle = np.array([sum(FIT_BOUNDS[n]) / 2 for n in free])
    warm = threading.Thread(target=lambda: value_and_grad(to_z(middle)), daemon=True)
    warm.start()
    return warm


def _compile_population(trials: Trials, free: tuple[str, ...], fixed: dict[str, float], popsize: int) -> None:
    """Compiles the population function once, before several restarts' threads all ask for it."""
    size = popsize * len(free)
    middle = {n: np.full(size, sum(FIT_BOUNDS[n]) / 2, np.float32) for n in free}
    score_population(CMRParameters(**middle, **{n: np.full(size, v, np.float32) for n, v in fixed.items()}),
                     trials).block_until_ready()


def _de_restart(trials: Trials, free: tuple[str, ...], fixed: dict[str, float], restart: int, *, popsize: int,
                tol: float, maxiter: int, seed: int) -> tuple[dict[str, float], int, int]:
    """One differential-evolution run (seeded ``seed·1000 + restart``): (parameters, sets scored, non-finite)."""
    counts = [0, 0]

    def objective(x: np.ndarray) -> np.ndarray:
        # DE keeps x inside FIT_BOUNDS, so the sets are valid by construction: they go straight
        # to the jitted likelihood as NumPy arrays (no per-generation eager JAX work).
        counts[0] += x.shape[1]
        x32 = np.asarray(x, np.float32)
        values = dict(zip(free, x32))
        values.update({n: np.full(x.shape[1], v, np.float32) for n, v in fixed.items()})
        nll = np.asarray(score_population(CMRParameters(**values), trials), np.float64)
        # float32 may round a value onto a closed bound (outside the open box), where NaN can occur
        nll, bad = _screen_nonfinite(nll, x32, free)
        counts[1] += bad
        return nll

    res = differential_evolution(objective, [FIT_BOUNDS[n] for n in free], vectorized=True, updating="deferred",
                                 popsize=popsize, tol=tol, maxiter=maxiter, polish=False, seed=seed * 1000 + restart)
    return {n: float(v) for n, v in zip(free, res.x)} | fixed, counts[0], counts[1]


def _confirmed_fit(trials: Trials, free: tuple[str, ...], fixed: dict[str, float], *, restarts: int, popsize: int,
                   tol: float, maxiter: int, seed: int, polish_steps: int, subject: int, workers: int | None,
                   confirm: float, agree: int, max_restarts: int, max_seconds: float | None) -> SubjectFit:
    """Restarts (DE, then each one's own float64 polish) until ``agree`` of them end within ``confirm`` nats
    of the best, after at least ``restarts`` of them; or until ``max_restarts`` or ``max_seconds``."""
    if not (isinstance(confirm, (int, float)) and np.isfinite(confirm) and confirm > 0):
        raise ValueError(f"confirm must be a number of nats > 0 (or None to run a fixed number of restarts), "
                         f"got {confirm!r}")
    if isinstance(agree, bool) or not isinstance(agree, int) or agree < 2:
        raise ValueError(f"agree must be an integer >= 2 (restarts that must reach the best), got {agree!r}")
    if isinstance(max_restarts, bool) or not isinstance(max_restarts, int) or max_restarts < max(restarts, agree):
        raise ValueError(f"max_restarts must be an integer >= max(restarts, agree) = {max(restarts, agree)}, "
                         f"got {max_restarts!r}")
    if max_seconds is not None and not (np.isfinite(max_seconds) and max_seconds > 0):
        raise ValueError(f"max_seconds must be > 0 or None, got {max_seconds!r}")
    start = time.perf_counter()
    warm = _warm_polish(trials, free, fixed) if polish_steps > 0 else None
    _compile_population(trials, free, fixed, popsize)
    workers = max(1, min(max_restarts, os.cpu_count() or 1) if workers is None else workers)

    def one(restart: int) -> tuple[dict[str, float], float, float, int, int, bool]:
        found, scored, bad = _de_restart(trials, free, fixed, restart, popsize=popsize, tol=tol, maxiter=maxiter,
                                         seed=seed)
        de_nll = nll64(trials, found, free, fixed)
        if warm is not None:
            warm.join()
        final_params, final, steps, more_bad = _polish_if_better(trials, found, de_nll, free, fixed, polish_steps)
        return final_params, de_nll, final, scored + steps, bad + more_bad, final < de_nll

    runs: list[tuple] = []
    status = ""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        while True:
            batch = min(workers, max_restarts - len(runs)) if len(runs) >= restarts else restarts - len(runs)
            runs += list(pool.map(one, range(len(runs), len(runs) + batch)))
            finals = np.array([r[2] for r in runs])
            at_best = int(np.sum(finals <= finals.min() + confirm))
            if at_best >= agree:
                status = f"confirmed: {at_best} of {len(runs)} restarts within {confirm:g} nats of the best"
                break
            reached = f"{at_best} of {len(runs)} restarts within {confirm:g} nats of the best, {agree} needed"
            if len(runs) >= max_restarts:
                status = f"restart budget reached ({max_restarts}): {reached}"
                break
            if max_seconds is not None and time.perf_counter() - start >= max_seconds:
                status = f"time budget reached ({max_seconds:g} s): {reached}"
                break
    best = int(np.argmin([r[2] for r in runs]))
    parameters, _, nll, _, _, polished = runs[best]
    return SubjectFit(subject=subject, parameters={n: float(parameters[n]) for n in PARAMETER_NAMES}, nll=float(nll),
                      restart_nlls=[float(r[1]) for r in runs], evaluations=sum(r[3] for r in runs),
                      wall_seconds=time.perf_counter() - start, polished=polished,
                      polish_gain=float(runs[best][1] - nll), n_lists=int(trials.targets.shape[0]),
                      n_events=trials.n_events, nonfinite_evaluations=sum(r[4] for r in runs),
                      final_nlls=[float(r[2]) for r in runs], restarts_at_best=at_best, status=status)


def fit(dataset: RecallDataset, subjects: Sequence[int] | None = None, *, free: Sequence[str] = DEFAULT_FREE,
        fixed: Mapping[str, float] = DEFAULT_FIXED, restarts: int = 3, popsize: int = 15, tol: float = 1e-2,
        maxiter: int = 1000, seed: int = 0, polish_steps: int = 200, workers: int | None = None,
        confirm: float | None = None, agree: int = DEFAULT_AGREE, max_restarts: int = 12, max_seconds: float | None = None,
        progress: Callable[[int, int, SubjectFit], None] | None = None, show_progress: bool = False,
        results_path: str | Path | None = None) -> FitResult:
    """Fits CMR to each subject by maximum likelihood.

    Args:
        dataset: the recall data.
        subjects: subject ids to fit (default: all).
        free: names of the free parameters (default: the 11 of jaxcmr's fits).
        fixed: values of the others (default ``mcf_learning_rate = 1``).
        restarts: independent differential-evolution runs per subject; the best is polished.
        popsize, tol, maxiter: scipy's settings; a population is ``popsize · len(free)`` sets,
            scored in one jitted call. DE only has to find the basin: at ``tol = 1e-2`` followed
            by the gradient polish, Morton2013 fits reach the NLL of ``tol = 1e-3`` runs in a third
            of the time (docs/recall.md has the measurements).
        seed: seeds restart r of a run as ``seed·1000 + r`` (the same seed gives the same fit).
        workers: threads that run restarts at once (default: one per core, at most ``restarts``).
        polish_steps: L-BFGS iterations of the float64 gradient polish (0 = none).
        confirm: None runs ``restarts`` restarts and polishes the best. A number of nats turns on
            confirmation: every restart is polished on its own, and restarts go on (``workers`` at a
            time, at least ``restarts`` of them) until ``agree`` end within ``confirm`` nats of the best, or
            ``max_restarts`` have run, or ``max_seconds`` have passed. Each fit's ``status`` says which,
            ``final_nlls`` holds every restart's polished NLL and ``restarts_at_best`` how many agree.
        progress: called as ``progress(done, total, fit)`` after each subject.
        show_progress: draw a rich progress bar.
        results_path: if given, the result JSON is rewritten after every subject, and subjects
            already in an existing file with the same settings are not fitted again (resumable).
            Each stored fit carries its subject's :meth:`RecallDataset.fingerprint`; resuming on
            different data for a stored subject raises ``ValueError`` (fits stored without a
            fingerprint are refitted).

    Returns:
        A :class:`FitResult` (``.table()`` for pandas, ``.save(path)`` for JSON).
    """
    if not isinstance(dataset, RecallDataset):
        raise TypeError(f"expected a RecallDataset, got {type(dataset).__name__}")
    free, fixed = _check_free_fixed(free, fixed)
    wanted = [int(s) for s in (dataset.subjects if subjects is None else subjects)]
    missing = sorted(set(wanted) - set(dataset.subjects.tolist()))
    if missing:
        raise ValueError(f"subjects {missing} are not in the dataset; it has {dataset.subjects.tolist()}")
    settings = {"restarts": restarts, "popsize": popsize, "tol": tol, "maxiter": maxiter, "seed": seed,
                "polish_steps": polish_steps}
    if confirm is not None:  # only then: fits stored without confirmation keep their settings
        settings.update(confirm=confirm, agree=agree, max_restarts=max_restarts, max_seconds=max_seconds)
    selections = {s: dataset.select(subjects=[s]) for s in wanted}
    fingerprints = {s: selection.fingerprint() for s, selection in selections.items()}
    done: dict[int, SubjectFit] = {}
    if results_path is not None and Path(results_path).exists():
        previous = FitResult.load(results_path)
        if previous.settings == settings and previous.free == list(free) and previous.fixed == fixed:
            done = {f.subject: f for f in previous.fits if f.subject in fingerprints and f.data_fingerprint}
        for subject, stored in done.items():
            if stored.data_fingerprint != fingerprints[subject]:
                raise ValueError(f"{results_path} holds a fit of subject {subject} made on different data "
                                 f"(data fingerprint {stored.data_fingerprint[:12]}…, this dataset's is "
                                 f"{fingerprints[subject][:12]}…); pass another results_path or delete the file "
                                 "to fit this data")
    result = FitResult(fits=[], free=list(free), fixed=fixed, settings=settings, versions=versions())
    # Subjects are padded to a few bucketed shapes (lists: the most of any subject; steps: a
    # multiple of 8; events: of 256), so the likelihood and its gradient compile a few times per
    # fit, not once per subject, and padding stays small.
    selections = {s: selection for s, selection in selections.items() if s not in done}
    # (lists, output steps, recall events) of each subject, read off the data (prepare's Trials.shape)
    shapes = {s: (sel.n_lists, int(sel.correct.sum(1).max()) + 1, int(sel.correct.sum()))
              for s, sel in selections.items()}
    most_lists = max((shape[0] for shape in shapes.values()), default=0)
    padded = {s: (most_lists, -(-shape[1] // 8) * 8, -(-shape[2] // 256) * 256) for s, shape in shapes.items()}

    def run_all(advance: Callable[[], None]) -> None:
        for index, subject in enumerate(wanted):
            if subject in done:
                fit_ = done[subject]
            else:
                trials = prepare(selections[subject], pad_to=padded[subject])
                fit_ = fit_subject(trials, free=free, fixed=fixed, restarts=restarts, popsize=popsize, tol=tol,
                                   maxiter=maxiter, seed=seed, polish_steps=polish_steps, subject=subject,
                                   workers=workers, confirm=confirm, agree=agree, max_restarts=max_restarts,
                                   max_seconds=max_seconds)
                fit_.data_fingerprint = fingerprints[subject]
            result.fits.append(fit_)
            if results_path is not None:
                result.save(results_path)
            if progress is not None:
                progress(index + 1, len(wanted), fit_)
            advance()

    if show_progress:
        from rich.progress import Progress

        with Progress() as bar:
            task = bar.add_task("fitting subjects", total=len(wanted))
            run_all(lambda: bar.advance(task))
    else:
        run_all(lambda: None)
    return result
