"""Standard free-recall analyses on :class:`RecallDataset`, vectorised over lists.

The definitions are psifr's (Morton 2020), and the tests check every number against psifr:

- :func:`spc`: P(recall) of each serial position, the mean over a subject's lists.
- :func:`pnr`: probability of nth recall. Output positions count correct recalls only (an
  intrusion or repeat does not advance them); ``possible`` counts lists that made an nth
  correct recall while the position was still unrecalled.
- :func:`lag_crp`: conditional response probability by lag, from adjacent pairs of events in
  the raw output sequence whose both ends are correct recalls (an intrusion or a repeat in
  between breaks the pair); possible lags are those to every item not yet recalled.
- :func:`termination_probability`: P(stopping after n correct recalls | n were made), which
  psifr does not have; it is checked against a direct count in the tests.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from superpose.recall.data import RecallDataset


def _check(dataset: RecallDataset) -> None:
    if not isinstance(dataset, RecallDataset):
        raise TypeError(f"expected a RecallDataset, got {type(dataset).__name__}")


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
    recalls, correct = dataset.recalls, dataset.correct
    lags = np.arange(-(n - 1), n)
    if recalls.shape[1] < 2:
        pairs = np.zeros((dataset.n_lists, 0), bool)
    else:
        pairs = correct[:, :-1] & correct[:, 1:]                             # (L, R − 1)
    onehot = correct[:, :, None] & (recalls[:, :, None] == np.arange(1, n + 1))
    removed = np.cumsum(onehot, axis=1)[:, :-1] > 0                          # recalled at outputs <= t
    studied = np.arange(n)[None, None, :] < dataset.list_length[:, None, None]
    available = studied & ~removed                                          # (L, R − 1, N)
    prev = recalls[:, :-1]
    frames = []
    for subject in dataset.subjects:
        rows = np.flatnonzero(dataset.subject == subject)
        sel = pairs[rows]
        l_idx, t_idx = np.nonzero(sel)
        list_rows = rows[l_idx]
        p = prev[list_rows, t_idx]
        actual_lags = recalls[list_rows, t_idx + 1] - p
        avail = available[list_rows, t_idx]                                  # (T, N)
        poss_lags = (np.arange(1, n + 1)[None, :] - p[:, None])[avail]
        actual = np.bincount(actual_lags + n - 1, minlength=2 * n - 1)
        possible = np.bincount(poss_lags + n - 1, minlength=2 * n - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            prob = actual / possible
        frames.append(pd.DataFrame({"subject": subject, "lag": lags, "prob": prob, "actual": actual,
                                    "possible": possible}))
    return pd.concat(frames, ignore_index=True)


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
