"""Maximum-likelihood fits of CMR: vectorised differential evolution, then a gradient polish.

Per subject and restart, scipy's ``differential_evolution(vectorized=True)`` hands the whole
population to one jitted call of :func:`population_nll`. The best set is then polished with
optax's L-BFGS on ``jax.grad`` of the likelihood, in float64, with the free parameters mapped
to the real line by a logit transform of their bounds; the polish is kept only where it lowers
the negative log-likelihood.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy
from scipy.optimize import differential_evolution

from superpose.numerics import float64_enabled
from superpose.recall.data import RecallDataset
from superpose.recall.likelihood import Trials, _population_nll, population_nll, prepare
from superpose.recall.parameters import (
    BOUNDS,
    DEFAULT_FIXED,
    DEFAULT_FREE,
    FIT_BOUNDS,
    PARAMETER_NAMES,
    CMRParameters,
    from_unbounded,
    make_parameters,
    to_unbounded,
)
from superpose.runner.files import write_json


@dataclass
class SubjectFit:
    """One subject's fit: the best parameters over restarts, and what it took."""

    subject: int
    parameters: dict[str, float]
    nll: float
    restart_nlls: list[float]
    evaluations: int
    wall_seconds: float
    polished: bool
    polish_gain: float
    n_lists: int
    n_events: int


@dataclass
class FitResult:
    """Fits of several subjects, with the settings and software versions that produced them."""

    fits: list[SubjectFit]
    free: list[str]
    fixed: dict[str, float]
    settings: dict[str, Any]
    versions: dict[str, str] = field(default_factory=dict)

    def table(self) -> Any:
        """A pandas table: one row per subject (nll, evaluations, seconds, parameters)."""
        import pandas as pd

        return pd.DataFrame([{"subject": f.subject, "nll": f.nll, "evaluations": f.evaluations,
                              "seconds": f.wall_seconds, **f.parameters} for f in self.fits])

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
    out["scipy"] = scipy.__version__
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


def _assemble(free: tuple[str, ...], fixed: Mapping[str, float], values: Any) -> CMRParameters:
    """Parameters from free values (last axis = free names) and fixed constants."""
    values = jnp.asarray(values)
    out = {name: values[..., i] for i, name in enumerate(free)}
    out.update({name: jnp.full(values.shape[:-1], value, values.dtype) for name, value in fixed.items()})
    return CMRParameters(**out)


def polish(trials: Trials, start: Mapping[str, float], free: Sequence[str], fixed: Mapping[str, float],
           steps: int = 200, tolerance: float = 1e-6) -> tuple[dict[str, float], float, int]:
    """L-BFGS (optax) on the float64 NLL over the logit-transformed free parameters.

    Returns ``(parameters, nll, evaluations)``. Starts are clipped into the open search box.
    """
    free, fixed = _check_free_fixed(free, fixed)
    bounds = [FIT_BOUNDS[n] for n in free]
    with float64_enabled():
        trials64 = Trials(*trials)
        n_items = trials.n_items

        def to_params(z: jax.Array) -> CMRParameters:
            values = jnp.stack([from_unbounded(z[i], lo, hi) for i, (lo, hi) in enumerate(bounds)])
            return _assemble(free, fixed, values[None])

        def objective(z: jax.Array) -> jax.Array:
            return _population_nll(to_params(z), trials64, n_items)[0]

        x0 = np.array([np.clip(start[n], lo + 1e-9 * (hi - lo), hi - 1e-9 * (hi - lo))
                       for n, (lo, hi) in zip(free, bounds)], np.float64)
        z0 = jnp.stack([to_unbounded(jnp.float64(x), lo, hi) for x, (lo, hi) in zip(x0, bounds)])
        optimizer = optax.lbfgs()
        value_and_grad = optax.value_and_grad_from_state(objective)

        @jax.jit
        def run(z: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
            def step(carry):
                z, state, i, _ = carry
                value, grad = value_and_grad(z, state=state)
                updates, state = optimizer.update(grad, state, z, value=value, grad=grad, value_fn=objective)
                return optax.apply_updates(z, updates), state, i + 1, optax.tree.norm(grad)

            def keep_going(carry):
                _, _, i, grad_norm = carry
                return (i < steps) & (grad_norm > tolerance) & jnp.isfinite(grad_norm)

            init = (z, optimizer.init(z), jnp.asarray(0), jnp.asarray(jnp.finfo(z.dtype).max, z.dtype))
            z, state, i, _ = jax.lax.while_loop(keep_going, step, init)
            return z, objective(z), i

        z, value, iterations = run(z0)
        values = np.asarray(jnp.stack([from_unbounded(z[i], lo, hi) for i, (lo, hi) in enumerate(bounds)]))
        out = {n: float(v) for n, v in zip(free, values)}
        out.update(fixed)
        return out, float(value), int(iterations)


def nll64(trials: Trials, parameters: Mapping[str, float]) -> float:
    """The NLL of one parameter set in float64 (the number every fit reports)."""
    with float64_enabled():
        params = make_parameters({k: np.float64(v) for k, v in parameters.items()})
        pop = CMRParameters(*[jnp.asarray(v, jnp.float64)[None] for v in params])
        return float(_population_nll(pop, Trials(*trials), trials.n_items)[0])


def fit_subject(trials: Trials, *, free: Sequence[str] = DEFAULT_FREE,
                fixed: Mapping[str, float] = DEFAULT_FIXED, restarts: int = 3, popsize: int = 15,
                tol: float = 1e-3, maxiter: int = 1000, seed: int = 0, polish_steps: int = 200,
                subject: int = 0) -> SubjectFit:
    """Fits one subject's :class:`Trials` (see :func:`fit` for the arguments)."""
    free, fixed = _check_free_fixed(free, fixed)
    if restarts < 1:
        raise ValueError(f"restarts must be >= 1, got {restarts}")
    bounds = [FIT_BOUNDS[n] for n in free]
    start = time.perf_counter()
    evaluations = 0

    def objective(x: np.ndarray) -> np.ndarray:
        values = jnp.asarray(np.asarray(x, np.float32).T)                    # (S, n_free)
        nll = np.asarray(population_nll(_assemble(free, fixed, values), trials), np.float64)
        return np.where(np.isfinite(nll), nll, 1e12)

    results = []
    for restart in range(restarts):
        res = differential_evolution(objective, bounds, vectorized=True, updating="deferred", popsize=popsize,
                                     tol=tol, maxiter=maxiter, polish=False, seed=seed * 1000 + restart)
        evaluations += int(res.nfev)
        results.append({n: float(v) for n, v in zip(free, res.x)} | fixed)
    restart_nlls = [nll64(trials, r) for r in results]
    best = int(np.argmin(restart_nlls))
    parameters, nll = results[best], restart_nlls[best]
    polished, gain = False, 0.0
    if polish_steps > 0:
        candidate, _, steps = polish(trials, parameters, free, fixed, steps=polish_steps)
        evaluations += steps
        candidate_nll = nll64(trials, candidate)
        if np.isfinite(candidate_nll) and candidate_nll < nll:
            polished, gain = True, nll - candidate_nll
            parameters, nll = candidate, candidate_nll
    return SubjectFit(subject=subject, parameters={n: float(parameters[n]) for n in PARAMETER_NAMES}, nll=nll,
                      restart_nlls=restart_nlls, evaluations=evaluations,
                      wall_seconds=time.perf_counter() - start, polished=polished, polish_gain=gain,
                      n_lists=int(trials.targets.shape[0]), n_events=trials.n_events)


def fit(dataset: RecallDataset, subjects: Sequence[int] | None = None, *, free: Sequence[str] = DEFAULT_FREE,
        fixed: Mapping[str, float] = DEFAULT_FIXED, restarts: int = 3, popsize: int = 15, tol: float = 1e-3,
        maxiter: int = 1000, seed: int = 0, polish_steps: int = 200,
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
            scored in one jitted call.
        seed: seeds restart r of a run as ``seed·1000 + r`` (the same seed gives the same fit).
        polish_steps: L-BFGS iterations of the float64 gradient polish (0 = none).
        progress: called as ``progress(done, total, fit)`` after each subject.
        show_progress: draw a rich progress bar.
        results_path: if given, the result JSON is rewritten after every subject, and subjects
            already in an existing file with the same settings are not fitted again (resumable).

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
    done: dict[int, SubjectFit] = {}
    if results_path is not None and Path(results_path).exists():
        previous = FitResult.load(results_path)
        if previous.settings == settings and previous.free == list(free) and previous.fixed == fixed:
            done = {f.subject: f for f in previous.fits}
    result = FitResult(fits=[], free=list(free), fixed=fixed, settings=settings, versions=versions())

    def run_all(advance: Callable[[], None]) -> None:
        for index, subject in enumerate(wanted):
            if subject in done:
                fit_ = done[subject]
            else:
                trials = prepare(dataset.select(subjects=[subject]))
                fit_ = fit_subject(trials, free=free, fixed=fixed, restarts=restarts, popsize=popsize, tol=tol,
                                   maxiter=maxiter, seed=seed, polish_steps=polish_steps, subject=subject)
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
