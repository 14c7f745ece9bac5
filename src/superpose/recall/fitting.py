"""Maximum-likelihood fits of CMR, with a certificate: restarts until the best is reached twice.

Per subject, each restart is a differential-evolution run (scipy, ``vectorized=True``: a whole
generation is one jitted float32 call of :func:`population_nll`) in the search coordinates of
:mod:`superpose.recall.search`, whose best few distinct end members are polished by L-BFGS on
``jax.grad`` of the float64 likelihood. Restarts run in threads, two at a time on two cores, and
go on until ``agree`` (2) of them end within ``confirm`` (0.1) nats of the best, or a budget of
restarts or seconds is reached; each fit says which (``status``). Subjects are padded to a few
shapes, so the likelihood compiles a few times per fit, not once per subject.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jax
import numpy as np

from superpose.recall.data import RecallDataset
from superpose.recall.likelihood import Trials, prepare
from superpose.recall.parameters import DEFAULT_FIXED, DEFAULT_FREE, make_parameters
from superpose.recall.search import (
    ALL_BOUNDS,
    ALL_LIMITS,
    NONFINITE_SCORE,
    compile_population,
    de_restart,
    nll64 as _nll64,
    parameter_names,
    polish as _polish_rounds,
    search_box,
    warm_polish,
)
from superpose.recall.variants import (
    VARIANT_DEFAULTS,
    CMRVariant,
    VariantTrials,
    make_variant_parameters,
    prepare_variant,
)
from superpose.runner.files import write_json

__all__ = ["AT_BOUND_FRACTION", "DEFAULT_AGREE", "DEFAULT_CONFIRM", "FitResult", "NONFINITE_SCORE", "SubjectFit",
           "fit", "fit_subject", "nll64", "padded_shapes", "parameters_at_bounds", "polish"]


#: a free parameter within this fraction of its range from a bound counts as on that bound
AT_BOUND_FRACTION = 1e-3


def parameters_at_bounds(parameters: Mapping[str, float], free: Sequence[str], *,
                         fraction: float = AT_BOUND_FRACTION,
                         bounds: Mapping[str, Sequence[float]] | None = None) -> dict[str, str]:
    """``{name: "low" | "high"}`` for each free parameter within ``fraction`` of its range of a bound.

    The bounds are the fit's search box: :data:`BOUNDS` (jaxcmr's), with ``bounds`` overriding some
    (as ``fit(..., bounds=...)`` does). A fitted parameter on a bound is not an interior optimum: the
    likelihood would go on improving beyond it (or the parameter is not identified there). Raises
    ValueError for an unknown or missing name, a non-finite value, or ``fraction`` outside (0, 0.5).
    """
    if not (isinstance(fraction, (int, float)) and 0 < fraction < 0.5):
        raise ValueError(f"fraction must be in (0, 0.5), got {fraction!r}")
    box = {**ALL_BOUNDS, **{k: tuple(float(x) for x in v) for k, v in (bounds or {}).items()}}
    out = {}
    for name in free:
        if name not in ALL_BOUNDS:
            raise ValueError(f"unknown parameter {name!r}; known: {list(ALL_BOUNDS)}")
        if name not in parameters:
            raise ValueError(f"parameters have no value for the free parameter {name!r}")
        value = float(parameters[name])
        if not np.isfinite(value):
            raise ValueError(f"{name} = {value!r} is not finite")
        low, high = box[name]
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
    restart_nlls: list[float]  # each restart's DE end point (float64 NLL), before its polish
    evaluations: int  # parameter sets scored (all restarts) plus polish iterations
    wall_seconds: float
    polished: bool
    polish_gain: float
    n_lists: int
    n_events: int
    nonfinite_evaluations: int = 0  # likelihoods that were inf (or NaN outside the box), scored as 1e12
    data_fingerprint: str = ""  # RecallDataset.fingerprint() of the subject's data ("" if unknown)
    final_nlls: list[float] = field(default_factory=list)  # each restart's NLL after its own polish
    restarts_at_best: int = 0  # restarts whose final NLL is within `confirm` nats (0.1 if None) of the best
    status: str = ""  # how the restarts ended: confirmed, which budget was reached, or no confirmation


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
                return parameters_at_bounds(f.parameters, self.free, bounds=self.settings.get("bounds"))
        raise ValueError(f"subject {subject} was not fitted; fitted: {[f.subject for f in self.fits]}")

    def parameters(self, subject: int) -> Any:
        """The subject's fitted :class:`CMRParameters` (``VariantParameters`` for a variant's fit)."""
        for f in self.fits:
            if f.subject == subject:
                return (make_variant_parameters if self.settings.get("variant") else make_parameters)(f.parameters)
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


def _check_free_fixed(free: Sequence[str], fixed: Mapping[str, float], variant: CMRVariant | None = None
                      ) -> tuple[tuple[str, ...], dict[str, float]]:
    """Validated (free, fixed); a variant's added parameters that are neither take their defaults."""
    names = parameter_names(variant)
    free = tuple(free)
    fixed = {k: float(v) for k, v in fixed.items()}
    unknown = sorted((set(free) | set(fixed)) - set(names))
    if unknown:
        raise ValueError(f"unknown parameters {unknown}; the names are {list(names)}")
    both = sorted(set(free) & set(fixed))
    if both:
        raise ValueError(f"parameters {both} are both free and fixed")
    if variant is not None:
        fixed |= {n: VARIANT_DEFAULTS[n] for n in variant.extra if n not in free and n not in fixed}
    missing = [n for n in names if n not in free and n not in fixed]
    if missing:
        raise ValueError(f"parameters {missing} are neither free nor fixed")
    if not free:
        raise ValueError("at least one parameter must be free")
    for name, value in fixed.items():
        low, high = ALL_LIMITS[name]
        if not low <= value <= high:
            raise ValueError(f"fixed {name} = {value:g} is outside its limits [{low:g}, {high:g}]")
    return free, fixed


def polish(trials: Trials | VariantTrials, start: Mapping[str, float], free: Sequence[str], fixed: Mapping[str, float],
           steps: int = 200, *, bounds: Mapping[str, Sequence[float]] | None = None, variant: CMRVariant | None = None
           ) -> tuple[dict[str, float], float, int]:
    """The float64 polish of a fit: L-BFGS rounds on ``jax.grad`` of the NLL over logit coordinates of
    the search box, until a round gains < 10⁻⁴ nats; never returns a worse set than ``start``.

    Returns ``(parameters, nll, evaluations)``. Raises ``RuntimeError`` if the likelihood is NaN at
    valid parameters.
    """
    free, fixed = _check_free_fixed(free, fixed, variant)
    parameters, nll, evaluations, _ = _polish_rounds(trials, start, free, fixed, search_box(free, bounds), steps,
                                                     variant=variant)
    return parameters, nll, evaluations


def padded_shapes(selections: Mapping[int, RecallDataset]) -> dict[int, tuple[int, int, int]]:
    """``prepare``'s ``pad_to`` for each subject's data as :func:`fit` pads it: (lists, output steps,
    recall events), the lists to the most of any subject, the steps up to a multiple of 8 and the events
    of 256, so a fit's likelihood and gradient compile for a few shapes, not once per subject.
    Scoring a subject with the same padding (e.g. at its true parameters) reuses those programs."""
    # (lists, output steps, recall events) of each subject, read off the data (prepare's Trials.shape)
    shapes = {s: (sel.n_lists, int(sel.correct.sum(1).max()) + 1, int(sel.correct.sum()))
              for s, sel in selections.items()}
    most_lists = max((shape[0] for shape in shapes.values()), default=0)
    return {s: (most_lists, -(-shape[1] // 8) * 8, -(-shape[2] // 256) * 256) for s, shape in shapes.items()}


def nll64(trials: Trials | VariantTrials, parameters: Mapping[str, float], free: Sequence[str] = DEFAULT_FREE,
          fixed: Mapping[str, float] | None = None, *, bounds: Mapping[str, Sequence[float]] | None = None,
          variant: CMRVariant | None = None) -> float:
    """The NLL of one parameter set in float64, in nats (the number every fit reports)."""
    free = tuple(free)
    names = parameter_names(variant)
    fixed = {n: float(parameters[n]) for n in names if n not in free} if fixed is None else dict(fixed)
    return _nll64(trials, parameters, free, fixed, search_box(free, bounds), variant=variant)


DEFAULT_CONFIRM = 0.1
"""Nats: restarts whose polished NLL is within this of the best count as reaching it."""
DEFAULT_AGREE = 2
"""Restarts that must reach the best before a fit stops (the certificate of :func:`fit`)."""
DEFAULT_CANDIDATES = 3
"""Distinct members of each DE restart's final population that are polished (the best one is kept)."""


def _check_budget(confirm: float | None, agree: int, restarts: int, max_restarts: int,
                  max_seconds: float | None, candidates: int) -> None:
    if isinstance(restarts, bool) or not isinstance(restarts, int) or restarts < 1:
        raise ValueError(f"restarts must be an integer >= 1, got {restarts!r}")
    if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 1:
        raise ValueError(f"polish_starts must be an integer >= 1, got {candidates!r}")
    if confirm is None:
        return
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


def fit_subject(trials: Trials | VariantTrials, *, free: Sequence[str] | None = None,
                fixed: Mapping[str, float] = DEFAULT_FIXED, bounds: Mapping[str, Sequence[float]] | None = None,
                restarts: int = 2, popsize: int = 15, tol: float = 1e-2, maxiter: int = 1000, seed: int = 0,
                polish_steps: int = 200, polish_starts: int = DEFAULT_CANDIDATES, subject: int = 0,
                workers: int | None = None, confirm: float | None = DEFAULT_CONFIRM, agree: int = DEFAULT_AGREE,
                max_restarts: int = 12, max_seconds: float | None = None,
                variant: CMRVariant | None = None) -> SubjectFit:
    """Fits one subject's :class:`Trials` (``VariantTrials`` of :func:`prepare_variant` for a ``variant``;
    see :func:`fit` for the arguments).

    Every restart is a DE run whose ``polish_starts`` best distinct end members are polished in
    float64, the best kept. With ``confirm`` set, restarts go on (``workers`` at a time, at least
    ``restarts``) until ``agree`` of them end within ``confirm`` nats of the best, or a budget is
    reached; with ``confirm=None`` exactly ``restarts`` run.
    """
    if variant is not None and not isinstance(trials, VariantTrials):
        raise TypeError("a variant is fitted to VariantTrials (prepare_variant(dataset, variant, ...))")
    free = (DEFAULT_FREE if variant is None else variant.free) if free is None else free
    free, fixed = _check_free_fixed(free, fixed, variant)
    box = search_box(free, bounds)
    _check_budget(confirm, agree, restarts, max_restarts, max_seconds, polish_starts)
    counted = DEFAULT_CONFIRM if confirm is None else confirm
    limit = restarts if confirm is None else max_restarts
    start = time.perf_counter()
    model = {"variant": variant}
    warm = warm_polish(trials, free, fixed, box, **model) if polish_steps > 0 else None  # compiles while DE runs
    compile_population(trials, free, fixed, box, popsize, **model)
    # Restarts run in threads: XLA releases the GIL, so two populations are scored at once.
    workers = max(1, min(limit, os.cpu_count() or 1) if workers is None else workers)

    def one(restart: int) -> tuple[dict[str, float], float, float, int, int, bool]:
        found, scored, bad = de_restart(trials, free, fixed, box, restart, popsize=popsize, tol=tol, maxiter=maxiter,
                                        seed=seed, candidates=polish_starts, **model)
        de_nll = _nll64(trials, found[0], free, fixed, box, **model)
        if warm is not None:
            warm.join()
        best, best_nll = found[0], de_nll
        for candidate in found if polish_steps > 0 else []:
            polished, value, steps, more_bad = _polish_rounds(trials, candidate, free, fixed, box, polish_steps,
                                                              **model)
            scored, bad = scored + steps, bad + more_bad
            if value < best_nll:
                best, best_nll = polished, value
        return best, de_nll, best_nll, scored, bad, best_nll < de_nll

    runs: list[tuple] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        while True:
            batch = min(workers, limit - len(runs)) if len(runs) >= restarts else restarts - len(runs)
            runs += list(pool.map(one, range(len(runs), len(runs) + batch)))
            finals = np.array([r[2] for r in runs])
            at_best = int(np.sum(finals <= finals.min() + counted))
            reached = f"{at_best} of {len(runs)} restarts within {counted:g} nats of the best"
            if confirm is None:
                status = f"{restarts} restarts (no confirmation): {reached}"
                break
            if at_best >= agree:
                status = f"confirmed: {reached}"
                break
            reached += f", {agree} needed"
            if len(runs) >= max_restarts:
                status = f"restart budget reached ({max_restarts}): {reached}"
                break
            if max_seconds is not None and time.perf_counter() - start >= max_seconds:
                status = f"time budget reached ({max_seconds:g} s): {reached}"
                break
    best = int(np.argmin([r[2] for r in runs]))
    parameters, de_nll, nll, _, _, polished = runs[best]
    base = trials.trials if isinstance(trials, VariantTrials) else trials
    return SubjectFit(subject=subject, parameters={n: float(parameters[n]) for n in parameter_names(variant)},
                      nll=float(nll), restart_nlls=[float(r[1]) for r in runs], evaluations=sum(r[3] for r in runs),
                      wall_seconds=time.perf_counter() - start, polished=polished,
                      polish_gain=float(de_nll - nll), n_lists=int(base.targets.shape[0]),
                      n_events=base.n_events, nonfinite_evaluations=sum(r[4] for r in runs),
                      final_nlls=[float(r[2]) for r in runs], restarts_at_best=at_best, status=status)


def fit(dataset: RecallDataset, subjects: Sequence[int] | None = None, *, free: Sequence[str] | None = None,
        fixed: Mapping[str, float] = DEFAULT_FIXED, variant: CMRVariant | None = None, similarity: Any = None,
        bounds: Mapping[str, Sequence[float]] | None = None,
        restarts: int = 2, popsize: int = 15, tol: float = 1e-2, maxiter: int = 1000, seed: int = 0,
        polish_steps: int = 200, polish_starts: int = DEFAULT_CANDIDATES, workers: int | None = None,
        confirm: float | None = DEFAULT_CONFIRM, agree: int = DEFAULT_AGREE, max_restarts: int = 12,
        max_seconds: float | None = None, progress: Callable[[int, int, SubjectFit], None] | None = None,
        show_progress: bool = False, results_path: str | Path | None = None) -> FitResult:
    """Fits CMR to each subject by maximum likelihood, restarting until the best fit is found twice.

    Args:
        dataset: the recall data.
        subjects: subject ids to fit (default: all).
        free: names of the free parameters (default: the 11 of jaxcmr's fits, and a variant's added ones).
        fixed: values of the others (default ``mcf_learning_rate = 1``; a variant's added parameters
            that are neither free nor fixed take their defaults, which make it the base model).
        variant: a :class:`CMRVariant` (semantic associations, category units, instance M^CF) to fit
            instead of the base model; ``similarity`` is its ``(K, K)`` similarity over item numbers
            when it is semantic (:func:`similarity_from_distances`).
        bounds: ``{name: (low, high)}`` overriding the search box of some free parameters (default:
            jaxcmr's :data:`BOUNDS`), within the model's :data:`LIMITS`; e.g. ``{"choice_sensitivity":
            (0, 1000)}`` when τ sits on its bound of 100.
        restarts: the fewest restarts per subject (with ``confirm=None``: exactly this many).
        popsize, tol, maxiter: scipy's DE settings; a population is ``popsize · len(free)`` sets,
            scored in one jitted call. DE only has to find the basin; the polish does the rest.
        seed: seeds restart r of a run as ``seed·1000 + r`` (the same seed gives the same fit).
        polish_steps: L-BFGS iterations per polish round (0 = no polish).
        polish_starts: distinct members of each restart's final DE population that are polished.
        workers: threads that run restarts at once (default: one per core).
        confirm, agree, max_restarts, max_seconds: the certificate. Restarts go on (``workers`` at a
            time, at least ``restarts``) until ``agree`` of them end within ``confirm`` nats of the
            best, or ``max_restarts`` have run, or ``max_seconds`` have passed; each fit's ``status``
            says which, ``final_nlls`` holds every restart's polished NLL and ``restarts_at_best``
            how many reached the best. ``confirm=None`` runs exactly ``restarts`` restarts.
            Confirmation is evidence, not proof: a basin that no restart found can be better.
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
    if variant is not None and not isinstance(variant, CMRVariant):
        raise TypeError(f"variant must be a CMRVariant or None, got {type(variant).__name__}")
    free = (DEFAULT_FREE if variant is None else variant.free) if free is None else free
    free, fixed = _check_free_fixed(free, fixed, variant)
    if variant is not None:  # refuses data or a similarity matrix the variant cannot use, before any work
        prepare_variant(dataset, variant, similarity)
    wanted = [int(s) for s in (dataset.subjects if subjects is None else subjects)]
    missing = sorted(set(wanted) - set(dataset.subjects.tolist()))
    if missing:
        raise ValueError(f"subjects {missing} are not in the dataset; it has {dataset.subjects.tolist()}")
    search_box(free, bounds)  # validates the overrides before any work
    _check_budget(confirm, agree, restarts, max_restarts, max_seconds, polish_starts)
    settings = {"restarts": restarts, "popsize": popsize, "tol": tol, "maxiter": maxiter, "seed": seed,
                "polish_steps": polish_steps, "polish_starts": polish_starts, "confirm": confirm, "agree": agree,
                "max_restarts": max_restarts, "max_seconds": max_seconds,
                "bounds": {n: [float(v) for v in pair] for n, pair in (bounds or {}).items()}}
    if variant is not None:  # only then: base-model fits keep their settings
        settings["variant"] = {"semantic": variant.semantic, "category": variant.category, "memory": variant.memory}
        if similarity is not None:
            settings["similarity_sha256"] = hashlib.sha256(np.ascontiguousarray(similarity, np.float64)).hexdigest()
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
    padded = padded_shapes(selections)

    def run_all(advance: Callable[[], None]) -> None:
        for index, subject in enumerate(wanted):
            if subject in done:
                fit_ = done[subject]
            else:
                trials = (prepare(selections[subject], pad_to=padded[subject]) if variant is None else
                          prepare_variant(selections[subject], variant, similarity, pad_to=padded[subject]))
                fit_ = fit_subject(trials, free=free, fixed=fixed, bounds=bounds, restarts=restarts, popsize=popsize,
                                   tol=tol, maxiter=maxiter, seed=seed, polish_steps=polish_steps,
                                   polish_starts=polish_starts, subject=subject, workers=workers, confirm=confirm,
                                   agree=agree, max_restarts=max_restarts, max_seconds=max_seconds,
                                   variant=variant)
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
