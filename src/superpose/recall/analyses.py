"""Standard free-recall analyses on :class:`RecallDataset`, vectorised over lists.

The definitions are psifr's (Morton 2020), and the tests check every number against psifr:

- :func:`spc`: P(recall) of each serial position, the mean over a subject's lists.
- :func:`pnr`: probability of nth recall. Output positions count correct recalls only (an
  intrusion or repeat does not advance them); ``possible`` counts lists that made an nth
  correct recall while the position was still unrecalled.
- :func:`lag_crp`: conditional response probability by lag, from adjacent pairs of events in
  the raw output sequence whose both ends are correct recalls (an intrusion or a repeat in
  between breaks the pair); possible lags are those to every item not yet recalled.
- :func:`lag_crp_compound`: the lag-CRP split by the lag of the transition before (pairs of
  adjacent transitions, three correct recalls in a row).
- :func:`input_crp`: the CRP by the study positions of the previous and the current recall.
- :func:`lag_rank`: the temporal factor, the mean percentile rank of each transition's |lag|
  among the |lags| still possible (1 = nearest, ties at their mean rank).
- :func:`pli_list_lag`: prior-list intrusions by how many lists back the intruded item was
  studied.
- :func:`termination_probability`: P(stopping after n correct recalls | n were made), which
  psifr does not have; it is checked against a direct count in the tests.

Every transition analysis here (and in :mod:`superpose.recall.clustering`) uses psifr's
transition rule, :func:`transitions`: adjacent events of the raw output sequence whose both ends
are first recalls of studied items, with the items still unrecalled as the possible next recalls.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
import pandas as pd

from superpose.recall.data import RecallDataset


def _check(dataset: RecallDataset) -> None:
    if not isinstance(dataset, RecallDataset):
        raise TypeError(f"expected a RecallDataset, got {type(dataset).__name__}")


def _subject_index(dataset: RecallDataset) -> np.ndarray:
    """``(L,)`` index of each list's subject in ``dataset.subjects``."""
    return np.searchsorted(dataset.subjects, dataset.subject)


def _per_subject(subject: np.ndarray, bins: np.ndarray, n_subjects: int, n_bins: int) -> np.ndarray:
    """``(S, n_bins)`` counts of ``bins`` (0..n_bins − 1) per subject index."""
    flat = np.bincount(subject * n_bins + bins, minlength=n_subjects * n_bins)
    return flat.reshape(n_subjects, n_bins)


def _ratio(actual: np.ndarray, possible: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return actual / possible


class Transitions(NamedTuple):
    """The T transitions psifr counts, in list and output order (see :func:`transitions`).

    Attributes:
        row: ``(T,)`` the list (row of the dataset).
        output: ``(T,)`` 0-based output index of the ``from`` recall (the ``to`` recall is next).
        previous: ``(T,)`` study position (1-based) of the ``from`` recall.
        current: ``(T,)`` study position of the ``to`` recall.
        available: ``(T, N)`` True at study position p + 1 when it was possible next: studied and
            not among the correct recalls up to and including the ``from`` recall (so the
            ``to`` position is always available).
        subject: ``(T,)`` index of the list's subject in ``dataset.subjects``.
    """

    row: np.ndarray
    output: np.ndarray
    previous: np.ndarray
    current: np.ndarray
    available: np.ndarray
    subject: np.ndarray


def transitions(dataset: RecallDataset) -> Transitions:
    """psifr's transitions: pairs of adjacent events (raw output order) that are both correct recalls.

    An intrusion or a repeat between two recalls breaks the pair; a repeat is never a ``from``
    or a ``to`` recall. The possible next recalls are the studied items not yet correctly
    recalled.
    """
    _check(dataset)
    n = dataset.presented.shape[1]
    recalls, correct = dataset.recalls, dataset.correct
    width = recalls.shape[1]
    pairs = correct[:, :-1] & correct[:, 1:] if width > 1 else np.zeros((dataset.n_lists, 0), bool)
    row, output = np.nonzero(pairs)
    # first output index at which each study position was correctly recalled (width: never)
    first = np.full((dataset.n_lists, n), width)
    l_idx, t_idx = np.nonzero(correct)
    first[l_idx, recalls[l_idx, t_idx] - 1] = t_idx
    studied = np.arange(n)[None, :] < dataset.list_length[row, None]
    available = studied & (first[row] > output[:, None])
    return Transitions(row=row, output=output, previous=recalls[row, output], current=recalls[row, output + 1],
                       available=available, subject=_subject_index(dataset)[row])


def _percentile_rank(actual: np.ndarray, possible: np.ndarray, available: np.ndarray) -> np.ndarray:
    """psifr's ``1 - stats.percentile_rank``: 1 when ``actual`` is the smallest of the available
    values, 0 when the largest; ties share their mean rank; NaN when only one was possible."""
    less = (available & (possible < actual[:, None])).sum(1)
    equal = (available & (possible == actual[:, None])).sum(1)
    count = available.sum(1)
    rank = 0.5 * (less + (less + equal) + 1)                                # scipy's average rank
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 1, 1 - (rank - 1) / (count - 1), np.nan)


def _subject_means(dataset: RecallDataset, subject: np.ndarray, values: np.ndarray, column: str) -> pd.DataFrame:
    """``subject`` and the NaN-ignoring mean of ``values`` per subject (NaN for none)."""
    n_subjects = dataset.subjects.size
    keep = ~np.isnan(values)
    total = np.bincount(subject[keep], weights=values[keep], minlength=n_subjects)
    count = np.bincount(subject[keep], minlength=n_subjects)
    return pd.DataFrame({"subject": dataset.subjects, column: _ratio(total, count)})


def _recalled_positions(dataset: RecallDataset) -> np.ndarray:
    """``(L, N)`` True where study position p + 1 was correctly recalled."""
    n = dataset.presented.shape[1]
    hits = dataset.correct[:, :, None] & (dataset.recalls[:, :, None] == np.arange(1, n + 1))
    return hits.any(axis=1)


def spc(dataset: RecallDataset) -> pd.DataFrame:
    """Serial position curve: columns ``subject``, ``input`` (1..N), ``recall`` (probability)."""
    _check(dataset)
    n = dataset.presented.shape[1]
    recalled = _recalled_positions(dataset)
    studied = np.arange(n)[None, :] < dataset.list_length[:, None]
    frames = []
    for subject in dataset.subjects:
        rows = dataset.subject == subject
        counts = studied[rows].sum(0)
        keep = counts > 0
        frames.append(pd.DataFrame({
            "subject": subject, "input": np.arange(1, n + 1)[keep],
            "recall": recalled[rows].sum(0)[keep] / counts[keep],
        }))
    return pd.concat(frames, ignore_index=True)


def _available_before(clean: np.ndarray, list_length: np.ndarray, n: int) -> np.ndarray:
    """``(L, K, N)`` True where position p + 1 is studied and not among the first k clean recalls."""
    k_max = clean.shape[1]
    onehot = clean[:, :, None] == np.arange(1, n + 1)                       # (L, K, N)
    recalled_before = np.cumsum(onehot, axis=1) - onehot                     # recalls at outputs < k
    studied = np.arange(n)[None, None, :] < list_length[:, None, None]
    return studied & (recalled_before[:, :k_max] == 0)


def pnr(dataset: RecallDataset) -> pd.DataFrame:
    """Probability of nth recall: ``subject``, ``output``, ``input``, ``prob``, ``actual``, ``possible``.

    Outputs and inputs both run 1..N (N = the longest list); ``prob`` is NaN where nothing was
    possible, as in psifr.
    """
    _check(dataset)
    n = dataset.presented.shape[1]
    clean = dataset.clean_recalls()
    if clean.shape[1] < n:
        clean = np.pad(clean, ((0, 0), (0, n - clean.shape[1])))
    clean = clean[:, :n]
    available = _available_before(clean, dataset.list_length, n)            # (L, N_out, N_in)
    made = clean > 0                                                         # (L, N_out)
    actual_lists = made[:, :, None] & (clean[:, :, None] == np.arange(1, n + 1))
    possible_lists = made[:, :, None] & available
    outputs, inputs = np.meshgrid(np.arange(1, n + 1), np.arange(1, n + 1), indexing="ij")
    frames = []
    for subject in dataset.subjects:
        rows = dataset.subject == subject
        actual = actual_lists[rows].sum(0)
        possible = possible_lists[rows].sum(0)
        with np.errstate(divide="ignore", invalid="ignore"):
            prob = actual / possible
        frames.append(pd.DataFrame({
            "subject": subject, "output": outputs.ravel(), "input": inputs.ravel(), "prob": prob.ravel(),
            "actual": actual.ravel(), "possible": possible.ravel(),
        }))
    return pd.concat(frames, ignore_index=True)


def lag_crp(dataset: RecallDataset) -> pd.DataFrame:
    """Lag-CRP: ``subject``, ``lag`` (−(N−1)..N−1), ``prob``, ``actual``, ``possible``."""
    _check(dataset)
    n = dataset.presented.shape[1]
    tr = transitions(dataset)
    n_subjects, n_bins = dataset.subjects.size, 2 * n - 1
    actual = _per_subject(tr.subject, tr.current - tr.previous + n - 1, n_subjects, n_bins)
    k, j = np.nonzero(tr.available)
    possible = _per_subject(tr.subject[k], j + 1 - tr.previous[k] + n - 1, n_subjects, n_bins)
    return pd.DataFrame({"subject": np.repeat(dataset.subjects, n_bins),
                         "lag": np.tile(np.arange(-(n - 1), n), n_subjects), "prob": _ratio(actual, possible).ravel(),
                         "actual": actual.ravel(), "possible": possible.ravel()})


def lag_crp_compound(dataset: RecallDataset) -> pd.DataFrame:
    """Lag-CRP conditional on the previous transition's lag (psifr's ``lag_crp_compound``).

    Columns ``subject``, ``previous`` (lag of the transition before), ``current`` (lag of this
    one), both −(N−1)..N−1 with ``current`` varying fastest, ``prob``, ``actual``, ``possible``.
    Counted over pairs of adjacent transitions: three correct recalls in a row.
    """
    _check(dataset)
    n = dataset.presented.shape[1]
    tr = transitions(dataset)
    lag = tr.current - tr.previous
    follows = np.flatnonzero((tr.row[1:] == tr.row[:-1]) & (tr.output[1:] == tr.output[:-1] + 1)) + 1
    n_subjects, width = dataset.subjects.size, 2 * n - 1
    before = lag[follows - 1] + n - 1
    actual = _per_subject(tr.subject[follows], before * width + lag[follows] + n - 1, n_subjects, width * width)
    k, j = np.nonzero(tr.available[follows])
    t = follows[k]
    possible = _per_subject(tr.subject[t], before[k] * width + (j + 1 - tr.previous[t] + n - 1), n_subjects,
                            width * width)
    lags = np.arange(-(n - 1), n)
    return pd.DataFrame({
        "subject": np.repeat(dataset.subjects, width * width), "previous": np.tile(np.repeat(lags, width), n_subjects),
        "current": np.tile(lags, width * n_subjects), "prob": _ratio(actual, possible).ravel(),
        "actual": actual.ravel(), "possible": possible.ravel(),
    })


def input_crp(dataset: RecallDataset) -> pd.DataFrame:
    """CRP by study position: ``subject``, ``previous`` and ``current`` (study positions 1..N of
    the recall before and of this one; ``current`` varies fastest), ``prob``, ``actual``, ``possible``.

    ``possible`` counts the transitions from ``previous`` when ``current`` was still unrecalled.
    psifr 0.10.1's ``fr.input_crp`` has the same numbers in the same rows but its two position
    columns swapped (its ``previous`` is the current recall); the names here are the right ones.
    """
    _check(dataset)
    n = dataset.presented.shape[1]
    tr = transitions(dataset)
    n_subjects = dataset.subjects.size
    actual = _per_subject(tr.subject, (tr.previous - 1) * n + tr.current - 1, n_subjects, n * n)
    k, j = np.nonzero(tr.available)
    possible = _per_subject(tr.subject[k], (tr.previous[k] - 1) * n + j, n_subjects, n * n)
    positions = np.arange(1, n + 1)
    return pd.DataFrame({
        "subject": np.repeat(dataset.subjects, n * n), "previous": np.tile(np.repeat(positions, n), n_subjects),
        "current": np.tile(positions, n * n_subjects), "prob": _ratio(actual, possible).ravel(),
        "actual": actual.ravel(), "possible": possible.ravel(),
    })


def lag_rank(dataset: RecallDataset) -> pd.DataFrame:
    """Temporal factor: ``subject``, ``rank`` (0..1).

    Each transition's |lag| is ranked among the |lags| to every item still available (the
    recalled one included): 1 when it was the nearest, 0 the farthest, ties at their mean rank;
    a transition with one item left has no rank. ``rank`` is the subject's mean over
    transitions (NaN without any).
    """
    _check(dataset)
    n = dataset.presented.shape[1]
    tr = transitions(dataset)
    distance = np.abs(np.arange(1, n + 1)[None, :] - tr.previous[:, None])
    ranks = _percentile_rank(np.abs(tr.current - tr.previous), distance, tr.available)
    return _subject_means(dataset, tr.subject, ranks, "rank")


def pli_list_lag(dataset: RecallDataset, max_lag: int) -> pd.DataFrame:
    """Prior-list intrusions by list lag: ``subject``, ``list_lag`` (1..max_lag), ``count``,
    ``per_list``, ``prob``.

    Only lists numbered above ``max_lag`` count (so every lag was possible). ``count``: the
    intrusions of an item the subject studied ``list_lag`` lists earlier (by ``list_number``);
    ``per_list``: ``count`` over those lists; ``prob``: ``count`` over all their intrusions
    (extra-list ones included). As in psifr, an intrusion of an item studied on k lists of the
    subject counts once per list (and k times in the total), and one whose item was only
    studied later is not a prior-list intrusion.

    Raises:
        ValueError: when ``max_lag`` is not a positive integer, or an intrusion's item number
            is unknown (``recalled_items`` < 1), since then its list cannot be found.
    """
    _check(dataset)
    if isinstance(max_lag, bool) or not isinstance(max_lag, (int, np.integer)) or max_lag < 1:
        raise ValueError(f"max_lag must be a positive integer, got {max_lag!r}")
    max_lag = int(max_lag)
    intrusion = dataset.intrusions
    unknown = intrusion & (dataset.recalled_items <= 0)
    if unknown.any():
        raise ValueError(f"pli_list_lag needs the item number of every intrusion (recalled_items >= 1); "
                         f"{int(unknown.sum())} intrusion(s) have none")
    subject = _subject_index(dataset)
    n_subjects = dataset.subjects.size
    for s, lists in zip(dataset.subjects, np.bincount(subject, minlength=n_subjects)):
        if max_lag >= lists:
            warnings.warn(f"subject {s}: all lists are excluded based on max_lag={max_lag}", stacklevel=2)
    included = dataset.list_number > max_lag
    # every (subject, item, list) study event, sorted by (subject, item)
    top = int(max(dataset.presented.max(), dataset.recalled_items.max())) + 1
    s_rows, s_pos = np.nonzero(dataset.presented)
    study_key = subject[s_rows] * top + dataset.presented[s_rows, s_pos]
    order = np.argsort(study_key, kind="stable")
    study_key, study_list = study_key[order], dataset.list_number[s_rows][order]
    i_rows, i_out = np.nonzero(intrusion & included[:, None])
    key = subject[i_rows] * top + dataset.recalled_items[i_rows, i_out]
    lo, hi = np.searchsorted(study_key, key, "left"), np.searchsorted(study_key, key, "right")
    matches = hi - lo
    total = np.bincount(subject[i_rows], weights=np.maximum(matches, 1), minlength=n_subjects)
    event = np.repeat(np.arange(key.size), matches)                         # one row per (intrusion, study list)
    within = np.arange(event.size) - np.repeat(np.cumsum(matches) - matches, matches)
    studied_on = study_list[lo[event] + within]
    lag = dataset.list_number[i_rows][event] - studied_on
    keep = (lag >= 1) & (lag <= max_lag)
    count = _per_subject(subject[i_rows][event][keep], lag[keep] - 1, n_subjects, max_lag)
    lists = np.bincount(subject[included], minlength=n_subjects)
    return pd.DataFrame({
        "subject": np.repeat(dataset.subjects, max_lag), "list_lag": np.tile(np.arange(1, max_lag + 1), n_subjects),
        "count": count.ravel(), "per_list": _ratio(count, lists[:, None]).ravel(),
        "prob": _ratio(count, total[:, None]).ravel(),
    })


def termination_probability(dataset: RecallDataset) -> pd.DataFrame:
    """P(stop | n correct recalls made): ``subject``, ``output`` (n + 1), ``prob``, ``actual``, ``possible``.

    ``output = k`` is the k-th recall attempt: ``actual`` counts lists that ended with exactly
    k − 1 correct recalls, ``possible`` lists that made at least k − 1.
    """
    _check(dataset)
    n = dataset.presented.shape[1]
    made = dataset.correct.sum(1)
    outputs = np.arange(1, n + 2)
    frames = []
    for subject in dataset.subjects:
        counts = made[dataset.subject == subject]
        actual = np.array([(counts == k - 1).sum() for k in outputs])
        possible = np.array([(counts >= k - 1).sum() for k in outputs])
        with np.errstate(divide="ignore", invalid="ignore"):
            prob = actual / possible
        frames.append(pd.DataFrame({"subject": subject, "output": outputs, "prob": prob, "actual": actual,
                                    "possible": possible}))
    return pd.concat(frames, ignore_index=True)
