"""Model comparison of CMR variants: per-subject NLL, AIC, BIC and cross-validated likelihood.

:func:`compare_variants` fits each variant to each subject (:func:`superpose.recall.fit`, the
certified search) and scores it by

- NLL (nats) at the fit, with k free parameters and n scored events (recalls and stops);
- AIC = 2k + 2·NLL and BIC = k·ln n + 2·NLL (lower is better; both assume the fit is the maximum
  of the likelihood and the events independent given the parameters, as the likelihood does);
- with ``folds`` ≥ 2, the held-out NLL of k-fold cross-validation over each subject's lists: the
  lists are split into ``folds`` parts by a keyed permutation (the same split for every variant),
  each part scored in float64 under the variant fitted to the others, and the parts' NLLs summed.

The variants are nested in the base model's direction (each added parameter's default gives the
base model), so a variant's NLL can only be lower at its optimum; AIC, BIC and the held-out
likelihood say whether the improvement pays for its parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import jax
import numpy as np
import pandas as pd

from superpose.numerics import float64_enabled
from superpose.recall.data import RecallDataset
from superpose.recall.fitting import FitResult, fit, padded_shapes
from superpose.recall.likelihood import list_log_likelihoods, prepare
from superpose.recall.parameters import make_parameters
from superpose.recall.variants import (
    CMRVariant,
    make_variant_parameters,
    prepare_variant,
    variant_list_log_likelihoods,
)

VARIANTS: dict[str, CMRVariant | None] = {
    "base": None,
    "category": CMRVariant(category=True),
    "semantic": CMRVariant(semantic=True),
    "semantic+category": CMRVariant(semantic=True, category=True),
    "instance": CMRVariant(memory="instance"),
    "category+instance": CMRVariant(category=True, memory="instance"),
    "semantic+category+instance": CMRVariant(semantic=True, category=True, memory="instance"),
}
"""The variants :func:`compare_variants` knows by name (None: the base model)."""

DEFAULT_VARIANTS: tuple[str, ...] = ("base", "category", "semantic", "semantic+category", "instance")
"""The variants ``recall-compare`` fits unless told otherwise (the instance variants with category units are
nameable, but left out of the default run for its time)."""


def _held_out(result: FitResult, subject: int, test: RecallDataset, variant: CMRVariant | None, similarity: Any,
              pad_to: tuple[int, int, int]) -> tuple[float, int]:
    """(float64 NLL of the ``test`` lists under the subject's fitted parameters, events scored: recalls and stops).

    The lists are padded to ``pad_to`` (padded lists and steps score exactly 0), so the folds of every
    subject share a few compiled shapes."""
    trials = prepare(test, pad_to=pad_to) if variant is None else prepare_variant(test, variant, similarity, pad_to)
    values = {n: float(v) for n, v in next(f for f in result.fits if f.subject == subject).parameters.items()}
    score = list_log_likelihoods if variant is None else partial(variant_list_log_likelihoods, variant=variant)
    with float64_enabled():
        params = (make_parameters if variant is None else make_variant_parameters)(values)
        nll = -float(np.sum(np.asarray(score(params, trials))))
    return nll, (trials if variant is None else trials.trials).n_events


def _cross_validated(dataset: RecallDataset, subjects: Sequence[int], name: str, folds: int, key: jax.Array,
                     similarity: Any, results_dir: Any, progress: Callable[[str], None] | None,
                     fit_options: Mapping[str, Any]) -> dict[int, tuple[float, int]]:
    """{subject: (held-out NLL summed over the folds, events scored)} of variant ``name``.

    Fold f of every subject is scored under the fit to that subject's other folds. The training lists of
    fold f of all subjects are fitted in one :func:`fit` call (subjects padded to shared shapes, so the
    likelihood compiles a few times per fold, not once per subject), stored as
    ``<results_dir>/fits-<name>-fold<f>.json`` when a directory is given (a resumed run reuses them)."""
    variant = VARIANTS[name]
    lists = {s: np.flatnonzero(dataset.subject == s) for s in subjects}
    assignment = {s: fold_assignment(lists[s].size, folds, jax.random.fold_in(key, s)) for s in subjects}
    totals = {s: (0.0, 0) for s in subjects}
    for fold in range(folds):
        train = dataset.select(np.concatenate([lists[s][assignment[s] != fold] for s in subjects]))
        path = None if results_dir is None else f"{results_dir}/fits-{name}-fold{fold}.json"
        fitted = fit(train, variant=variant, similarity=similarity, results_path=path, **fit_options)
        tests = {s: dataset.select(lists[s][assignment[s] == fold]) for s in subjects}
        padded = padded_shapes(tests)
        for s in subjects:
            nll, events = _held_out(fitted, s, tests[s], variant, similarity, padded[s])
            totals[s] = (totals[s][0] + nll, totals[s][1] + events)
        if progress is not None:
            progress(f"{name}: fold {fold + 1} of {folds} fitted and scored")
    return totals


def fold_assignment(n_lists: int, folds: int, key: jax.Array) -> np.ndarray:
    """``(n_lists,)`` fold index 0..folds−1 of each list: a keyed permutation cut into near-equal parts."""
    order = np.asarray(jax.random.permutation(key, n_lists))
    out = np.empty(n_lists, np.int64)
    for index, part in enumerate(np.array_split(order, folds)):
        out[part] = index
    return out


def compare_variants(dataset: RecallDataset, variants: Sequence[str], *, similarity: Any = None, folds: int = 0,
                     key: jax.Array | None = None, progress: Callable[[str], None] | None = None,
                     results_dir: Any = None, **fit_options: Any) -> pd.DataFrame:
    """Fits every named variant to every subject of ``dataset`` and scores it.

    Args:
        dataset: the recall data (Morton2013 has what every variant needs: item numbers and categories).
        variants: names from :data:`VARIANTS`.
        similarity: ``(K, K)`` similarity over item numbers, needed by semantic variants.
        folds: k of the cross-validation over each subject's lists (0: none; else 2..the fewest lists).
        key: PRNG key of the fold split (needed when ``folds`` ≥ 2).
        progress: called with a short text after each fit.
        results_dir: if given, each variant's fits go to ``<results_dir>/fits-<variant>.json`` and its
            cross-validation fits to ``fits-<variant>-fold<f>.json`` (resumable).
        fit_options: passed to :func:`fit` (``restarts``, ``confirm``, ``seed``, ...).

    Returns:
        One row per variant and subject: ``variant``, ``subject``, ``k`` (free parameters),
        ``n_events``, ``nll``, ``aic``, ``bic``, ``status`` of the fit, and with folds ``cv_nll``
        (held-out NLL summed over folds, nats) and ``cv_events``.

    Raises:
        ValueError: for an unknown variant name, bad ``folds``, a missing key, or data or a similarity
            matrix a variant cannot use (before any fit).
    """
    if not isinstance(dataset, RecallDataset):
        raise TypeError(f"expected a RecallDataset, got {type(dataset).__name__}")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise ValueError(f"variants must be names from {list(VARIANTS)}, got {list(variants)}")
    fewest = min(int(np.sum(dataset.subject == s)) for s in dataset.subjects)
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 0 or folds == 1 or folds > fewest:
        raise ValueError(f"folds must be 0 (no cross-validation) or an integer from 2 to {fewest} (the fewest lists "
                         f"of a subject), got {folds!r}")
    if folds and key is None:
        raise ValueError("cross-validation needs a PRNG key for the fold split (key=jax.random.key(...))")
    for name in variants:  # every variant's needs, checked before the first fit
        if VARIANTS[name] is not None:
            prepare_variant(dataset.select(subjects=[int(dataset.subjects[0])]), VARIANTS[name],
                            similarity if VARIANTS[name].semantic else None)
    rows = []
    for name in variants:
        variant = VARIANTS[name]
        needs = similarity if variant is not None and variant.semantic else None
        path = None if results_dir is None else f"{results_dir}/fits-{name}.json"
        result = fit(dataset, variant=variant, similarity=needs, results_path=path, **fit_options)
        k = len(result.free)
        if progress is not None:
            progress(f"{name}: fitted {len(result.fits)} subjects")
        held_out = (_cross_validated(dataset, [f.subject for f in result.fits], name, folds, key, needs, results_dir,
                                     progress, fit_options) if folds else {})
        for f in result.fits:
            row = {"variant": name, "subject": f.subject, "k": k, "n_events": f.n_events, "nll": f.nll,
                   "aic": 2 * k + 2 * f.nll, "bic": k * np.log(f.n_events) + 2 * f.nll, "status": f.status}
            if folds:
                row["cv_nll"], row["cv_events"] = held_out[f.subject]
            rows.append(row)
    return pd.DataFrame(rows)


def reference_variant(names: Sequence[str]) -> str:
    """The variant others are compared with: the base model if it was fitted, else the first one."""
    return "base" if "base" in names else names[0]


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Per variant: subjects and the sums of ``nll``, ``aic``, ``bic`` (and ``cv_nll``), with each one's
    difference from the base model's (or the first variant's) sum; lower is better."""
    columns = [c for c in ("nll", "aic", "bic", "cv_nll") if c in table]
    summary = table.groupby("variant", sort=False).agg(subjects=("subject", "nunique"), k=("k", "first"),
                                                        **{c: (c, "sum") for c in columns})
    reference = reference_variant(list(summary.index))
    for c in columns:
        summary[f"delta_{c}"] = summary[c] - summary.loc[reference, c]
    return summary.reset_index()


def winners(summary: pd.DataFrame) -> Mapping[str, str]:
    """The variant with the lowest sum by each criterion in ``summary`` (``nll``, ``aic``, ``bic``, ``cv_nll``)."""
    return {c: str(summary.loc[summary[c].idxmin(), "variant"]) for c in ("nll", "aic", "bic", "cv_nll")
            if c in summary}
