"""Category and semantic clustering of free recall, vectorised over lists (psifr's definitions).

- :func:`category_crp`: P(a within-category transition | one was possible).
- :func:`category_clustering`: list-based clustering (LBC) and the adjusted ratio of clustering
  (ARC), per subject the mean over lists.
- :func:`distance_crp`: the CRP by the semantic distance between the previous and the next item,
  in distance bins.
- :func:`distance_rank`: the semantic factor, the mean percentile rank of each transition's
  distance among the distances to every item still available.
- :func:`distances_by_item`: a distance matrix over words (psifr's ``fr.sample_distances``)
  re-indexed by the dataset's item numbers.

Categories come from ``RecallDataset.item_attributes`` (``load_sample("Morton2013")`` has
``category``; ``from_events(events, item_attributes=("category",))`` reads one); distances are a
``(n_items, n_items)`` matrix whose row k − 1 belongs to item number k. Transitions follow psifr
(:func:`superpose.recall.analyses.transitions`): adjacent correct recalls in the raw output order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from superpose.recall.analyses import _check, _per_subject, _percentile_rank, _ratio, _subject_means, transitions
from superpose.recall.data import RecallDataset

DEFAULT_PERCENTILES = np.linspace(1, 99, 10)
"""Default bin edges of :func:`distance_crp`: these percentiles of the distances between distinct
items (psifr's documented choice, ``np.percentile(squareform(distances), np.linspace(1, 99, 10))``)."""


def _category_codes(dataset: RecallDataset, category: str, caller: str) -> np.ndarray:
    """``(n_items + 1,)`` integer code of each item number's category (index 0 and missing: −1)."""
    _check(dataset)
    if not isinstance(category, str):
        raise TypeError(f"category must be the name of an item attribute (a str), got {type(category).__name__}")
    if category not in dataset.item_attributes:
        raise ValueError(f"{caller} needs the category of every item: the dataset has no item attribute "
                         f"{category!r} (it has {sorted(dataset.item_attributes)}); read one with "
                         f"from_events(events, item_attributes=({category!r},))")
    codes, _ = pd.factorize(pd.Series(dataset.item_attributes[category]), sort=True)
    codes = np.concatenate([[-1], codes])
    studied = np.unique(dataset.presented[dataset.presented > 0])
    missing = studied[codes[studied] < 0]
    if missing.size:
        raise ValueError(f"{caller}: item attribute {category!r} is missing for {missing.size} studied item(s), "
                         f"item numbers {missing[:10].tolist()}")
    return codes


def category_crp(dataset: RecallDataset, category: str = "category") -> pd.DataFrame:
    """Within-category CRP: ``subject``, ``prob``, ``actual``, ``possible``.

    ``possible`` counts the transitions from an item while another item of its category was
    still available, ``actual`` those that went to one; ``prob`` is NaN where none was possible.

    Raises:
        ValueError: when the dataset lacks the item attribute ``category`` or a studied item
            has no category.
    """
    codes = _category_codes(dataset, category, "category_crp")
    tr = transitions(dataset)
    listed = codes[dataset.presented]                                        # (L, N), −1 = padding
    previous = listed[tr.row, tr.previous - 1]
    same = listed[tr.row, tr.current - 1] == previous
    possible = (tr.available & (listed[tr.row] == previous[:, None])).any(1)
    n_subjects = dataset.subjects.size
    actual = np.bincount(tr.subject[same], minlength=n_subjects)
    possible = np.bincount(tr.subject[possible], minlength=n_subjects)
    return pd.DataFrame({"subject": dataset.subjects, "prob": _ratio(actual, possible), "actual": actual,
                         "possible": possible})


def category_clustering(dataset: RecallDataset, category: str = "category") -> pd.DataFrame:
    """Category clustering: ``subject``, ``lbc`` (list-based clustering, in pairs), ``arc``
    (adjusted ratio of clustering, 1 = perfect clustering, 0 = chance).

    Per list, over the correct recalls in output order (intrusions and repeats removed, as psifr
    does): with r recalls, o adjacent same-category pairs, a list of n items in k categories
    (m = n / k per category) and n_c recalls from category c,
    LBC = o − (r − 1)(m − 1)/(n − 1) and ARC = (o − E)/(r − c − E) with E = Σ n_c(n_c − 1)/r
    and c the categories recalled (NaN when r − c = E, e.g. one category recalled). Each column
    is the subject's mean over lists, NaN ignored.

    Raises:
        ValueError: when the dataset lacks the item attribute ``category`` or a studied item
            has no category.
    """
    codes = _category_codes(dataset, category, "category_clustering")
    n_codes = int(codes.max()) + 1
    n_lists, n = dataset.n_lists, dataset.presented.shape[1]
    studied = codes[dataset.presented]                                       # (L, N), −1 = padding
    rows = np.repeat(np.arange(n_lists), n)
    in_list = studied.ravel() >= 0
    study_counts = np.bincount(rows[in_list] * n_codes + studied.ravel()[in_list], minlength=n_lists * n_codes)
    k = (study_counts.reshape(n_lists, n_codes) > 0).sum(1)
    length = dataset.list_length
    correct = dataset.correct
    r = correct.sum(1)
    l_idx, t_idx = np.nonzero(correct)
    recalled = codes[dataset.presented[l_idx, dataset.recalls[l_idx, t_idx] - 1]]
    counts = np.bincount(l_idx * n_codes + recalled, minlength=n_lists * n_codes).reshape(n_lists, n_codes)
    # adjacent pairs of the clean sequence: consecutive correct recalls of one list, intrusions and
    # repeats in between skipped
    same_list = l_idx[1:] == l_idx[:-1]
    observed = np.bincount(l_idx[1:][same_list & (recalled[1:] == recalled[:-1])], minlength=n_lists)
    with np.errstate(divide="ignore", invalid="ignore"):
        m = length / k
        lbc = observed - ((r - 1) * (m - 1)) / (length - 1)
        expected = (counts * (counts - 1) / r[:, None]).sum(1)
        maximum = r - (counts > 0).sum(1)
        arc = np.where(maximum == expected, np.nan, (observed - expected) / (maximum - expected))
    subject = np.searchsorted(dataset.subjects, dataset.subject)
    lbc_mean = _subject_means(dataset, subject, lbc, "lbc")
    return lbc_mean.assign(arc=_subject_means(dataset, subject, arc, "arc")["arc"])


def _check_distances(dataset: RecallDataset, distances: Any, caller: str) -> np.ndarray:
    """The distance matrix as float64, validated against the dataset's studied items."""
    _check(dataset)
    accepted = ("a square (n_items, n_items) matrix of distances between item numbers (row and column k − 1 "
                "belong to item k; distances_by_item builds one from words)")
    if distances is None:
        raise ValueError(f"{caller} needs a distance matrix: {accepted}")
    try:
        matrix = np.array(distances, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"distances must be {accepted}; got {type(distances).__name__} ({error})") from error
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"distances must be {accepted}, got shape {matrix.shape}")
    studied = np.unique(dataset.presented[dataset.presented > 0])
    if studied[-1] > matrix.shape[0]:
        beyond = studied[studied > matrix.shape[0]]
        raise ValueError(f"{caller}: distances cover item numbers 1..{matrix.shape[0]} but {beyond.size} studied "
                         f"item(s) lie beyond, item numbers {beyond[:10].tolist()}")
    block = matrix[np.ix_(studied - 1, studied - 1)]
    finite = np.isfinite(block).all(1)
    if not finite.all():
        raise ValueError(f"{caller}: distances must be finite between studied items; NaN or inf in the rows of item "
                         f"numbers {studied[~finite][:10].tolist()}")
    if not np.allclose(block, block.T, rtol=1e-6, atol=1e-9):
        raise ValueError(f"{caller}: distances must be symmetric (d[i, j] = d[j, i]); the largest difference between "
                         f"studied items is {np.abs(block - block.T).max():.3g}")
    return matrix


def _transition_distances(dataset: RecallDataset, matrix: np.ndarray):
    """Transitions with their actual ``(T,)`` and possible ``(T, N)`` distances."""
    tr = transitions(dataset)
    items = dataset.presented[tr.row] - 1                                    # (T, N), −1 = padding
    previous = items[np.arange(tr.row.size), tr.previous - 1]
    possible = matrix[previous[:, None], np.maximum(items, 0)]
    actual = matrix[previous, items[np.arange(tr.row.size), tr.current - 1]]
    return tr, actual, possible


def distance_crp(dataset: RecallDataset, distances: Any, edges: Sequence[float] | np.ndarray | None = None,
                 centers: Sequence[float] | np.ndarray | None = None) -> pd.DataFrame:
    """CRP by semantic distance: ``subject``, ``center``, ``bin`` (pandas Interval, right-closed,
    labelled as ``pd.cut`` labels it), ``prob``, ``actual``, ``possible``.

    Each transition's distance (and each distance to an item still available) is counted in the
    bin (e_i, e_{i+1}] that holds it; distances outside (e_0, e_last] are not counted.

    Args:
        distances: ``(n_items, n_items)`` distances between item numbers (same units as edges).
        edges: bin edges, increasing; default: the 1st, 12th, ..., 99th percentiles of the
            distances between distinct items (:data:`DEFAULT_PERCENTILES`, psifr's documented
            choice) over every finite entry of the matrix.
        centers: a label per bin; default: the midpoints of the edges.

    Raises:
        ValueError: without distances, or when they are not square, symmetric and finite
            between the studied items, or do not cover every studied item number; for bad edges.
    """
    matrix = _check_distances(dataset, distances, "distance_crp")
    if edges is None:
        upper = matrix[np.triu_indices(matrix.shape[0], 1)]
        edges = np.percentile(upper[np.isfinite(upper)], DEFAULT_PERCENTILES)
        if np.any(np.diff(edges) <= 0):
            raise ValueError(f"the default edges (percentiles {DEFAULT_PERCENTILES.round(2).tolist()} of the "
                             f"distances) are not strictly increasing for these distances: {edges.tolist()}; "
                             "pass edges")
    edges = np.asarray(edges, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or not np.all(np.isfinite(edges)) or np.any(np.diff(edges) <= 0):
        raise ValueError(f"edges must be at least two finite, strictly increasing numbers, got {edges.tolist()}")
    n_bins = edges.size - 1
    centers = edges[:-1] + np.diff(edges) / 2 if centers is None else np.asarray(centers, dtype=np.float64)
    if centers.shape != (n_bins,):
        raise ValueError(f"centers must have one value per bin ({n_bins}), got shape {centers.shape}")
    tr, actual, possible = _transition_distances(dataset, matrix)

    def bin_of(values):
        index = np.searchsorted(edges, values, side="left") - 1             # (e_i, e_{i+1}] -> i
        return index, (index >= 0) & (index < n_bins)

    n_subjects = dataset.subjects.size
    index, inside = bin_of(actual)
    actual_counts = _per_subject(tr.subject[inside], index[inside], n_subjects, n_bins)
    index, inside = bin_of(possible)
    inside &= tr.available
    k = np.nonzero(inside)
    possible_counts = _per_subject(tr.subject[k[0]], index[k], n_subjects, n_bins)
    labels = pd.cut(edges[1:], edges).categories                             # psifr's bin labels
    return pd.DataFrame({
        "subject": np.repeat(dataset.subjects, n_bins), "center": np.tile(centers, n_subjects),
        "bin": pd.Categorical.from_codes(np.tile(np.arange(n_bins), n_subjects), labels),
        "prob": _ratio(actual_counts, possible_counts).ravel(), "actual": actual_counts.ravel(),
        "possible": possible_counts.ravel(),
    })


def distance_rank(dataset: RecallDataset, distances: Any) -> pd.DataFrame:
    """Semantic factor: ``subject``, ``rank`` (0..1).

    Each transition's distance is ranked among the distances from the previous item to every
    item still available (the recalled one included): 1 when it was the smallest, 0 the
    largest, ties at their mean rank; a transition with one item left has no rank. ``rank`` is
    the subject's mean over transitions (NaN without any).

    Raises:
        ValueError: as :func:`distance_crp` does for the distances.
    """
    matrix = _check_distances(dataset, distances, "distance_rank")
    tr, actual, possible = _transition_distances(dataset, matrix)
    return _subject_means(dataset, tr.subject, _percentile_rank(actual, possible, tr.available), "rank")


def distances_by_item(dataset: RecallDataset, items: Sequence[str], distances: Any) -> np.ndarray:
    """psifr-style distances over words re-indexed by the dataset's item numbers.

    Args:
        items: the word of each row of ``distances`` (``fr.sample_distances(...)[0]``).
        distances: ``(len(items), len(items))`` matrix.

    Returns:
        ``(n_items, n_items)`` float64 matrix, row k − 1 for item number k (``dataset.words``),
        NaN for words that ``items`` lacks.

    Raises:
        ValueError: when the dataset has no ``words`` or the shapes disagree.
    """
    _check(dataset)
    if dataset.words is None:
        raise ValueError("distances_by_item matches words: the dataset has no words (build it with from_events)")
    names = np.asarray(items).astype(str)
    matrix = np.asarray(distances, dtype=np.float64)
    if names.ndim != 1 or matrix.shape != (names.size, names.size):
        raise ValueError(f"distances must be (len(items), len(items)) = ({names.size}, {names.size}), "
                         f"got {matrix.shape}")
    where = pd.Series(np.arange(names.size), index=names)
    if not where.index.is_unique:
        raise ValueError("items must name each word once")
    index = where.reindex(list(dataset.words)).to_numpy()
    known = np.flatnonzero(~np.isnan(index))
    out = np.full((len(dataset.words),) * 2, np.nan)
    rows = index[known].astype(np.int64)
    out[np.ix_(known, known)] = matrix[np.ix_(rows, rows)]
    return out
