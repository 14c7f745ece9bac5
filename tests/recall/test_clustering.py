"""Category and semantic clustering (superpose.recall.clustering), per-item attributes of a
RecallDataset, and the analysis figures (superpose.recall.plots)."""

import warnings

import numpy as np
import pandas as pd
import pytest

from superpose.recall import (
    RecallDataset,
    category_clustering,
    category_crp,
    distance_crp,
    distance_rank,
    distances_by_item,
    from_events,
    input_crp,
    lag_crp,
    lag_crp_compound,
    lag_rank,
    load_sample,
    plot_distance_crp,
    plot_input_crp,
    plot_lag_crp,
    plot_pli_list_lag,
    plot_spc,
    plot_subject_scores,
    read_csv,
    spc,
    to_events,
    write_csv,
)

from .test_analyses import _compare, needs_psifr


@pytest.fixture(scope="module")
def morton_semantic():
    """Our Morton2013, psifr's merge of it with categories and distance-pool indices, the
    distances (psifr's and ours by item number) and the edges psifr documents."""
    from psifr import fr
    from scipy.spatial.distance import squareform

    raw = fr.sample_data("Morton2013")
    merged = fr.merge_free_recall(raw, study_keys=["category"])
    items, distances = fr.sample_distances("Morton2013")
    merged["item_index"] = fr.pool_index(merged["item"], items)
    edges = np.percentile(squareform(distances), np.linspace(1, 99, 10))
    ours = load_sample("Morton2013")
    return ours, merged, fr, distances, distances_by_item(ours, items, distances), edges


def _same_counts(merged):
    assert (merged["actual"] == merged["actual_psifr"]).all()
    assert (merged["possible"] == merged["possible_psifr"]).all()


# --- equal to psifr on all of Morton2013 --------------------------------------------------------

@needs_psifr
def test_category_crp_matches_psifr_on_morton2013(morton_semantic):
    ours, merged, fr, *_ = morton_semantic
    _same_counts(_compare(category_crp(ours), fr.category_crp(merged, "category"), ["subject"], "prob"))


@needs_psifr
def test_category_clustering_matches_psifr_on_morton2013(morton_semantic):
    ours, merged, fr, *_ = morton_semantic
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # psifr's nanmean of lists without an ARC
        theirs = fr.category_clustering(merged, "category")
    table = category_clustering(ours)
    _compare(table, theirs, ["subject"], "lbc")
    _compare(table, theirs, ["subject"], "arc")
    # the mixed lists alone (psifr's documented use); pure lists have LBC 0 and no ARC
    # (psifr's docstring merges with list_keys=["category"] instead, which also makes intrusions
    # of the 14 correct recalls whose recall event lacks a category: see docs/recall.md)
    mixed_events = fr.sample_data("Morton2013").query("list_type == 'mixed'")
    theirs = fr.category_clustering(fr.merge_free_recall(mixed_events, study_keys=["category"]), "category")
    table = category_clustering(ours.select(ours.conditions["list_type"] == "mixed"))
    _compare(table, theirs, ["subject"], "lbc")
    _compare(table, theirs, ["subject"], "arc")


@needs_psifr
def test_distance_crp_matches_psifr_on_morton2013(morton_semantic):
    ours, merged, fr, distances, by_item, edges = morton_semantic
    theirs = fr.distance_crp(merged, "item_index", distances, edges)
    table = distance_crp(ours, by_item)                                      # default edges: psifr's documented ones
    m = _compare(table, theirs, ["subject", "center"], "prob")
    _same_counts(m)
    assert (m["bin"].astype(str) == m["bin_psifr"].astype(str)).all()
    explicit = distance_crp(ours, by_item, edges=edges)
    pd.testing.assert_frame_equal(explicit, table)


@needs_psifr
def test_distance_rank_matches_psifr_on_morton2013(morton_semantic):
    ours, merged, fr, distances, by_item, _ = morton_semantic
    _compare(distance_rank(ours, by_item), fr.distance_rank(merged, "item_index", distances), ["subject"], "rank")


# --- hand-worked ----------------------------------------------------------------------------------

def _categorised(recalls, categories=("A", "B", "A", "B", "C", "C")) -> RecallDataset:
    n_lists = len(recalls)
    return RecallDataset(subject=[1] * n_lists, list_length=[6] * n_lists,
                         presented=[[1, 2, 3, 4, 5, 6]] * n_lists, recalls=recalls,
                         item_attributes={"category": np.array(categories, dtype=object)})


def test_hand_worked_category_crp():
    # study positions 1..6 are items 1..6 of categories A B A B C C.
    # list 1 recalls 1, 2, 3, 5, intrusion, 6, 4, 4 (repeat):
    #   1->2: from A, another A (3) still available: possible; to B: not actual
    #   2->3: from B, B (4) available: possible; to A: not actual
    #   3->5: from A, available 4, 5, 6: no A, not possible
    #   5->intrusion, intrusion->6 and 4->4 (repeat) are no transitions
    #   6->4: from C, only 4 (B) left: not possible
    # list 2 recalls 5, 6, 1, 3:
    #   5->6: from C, 6 available: possible and actual;  6->1: from C, no C left: not possible
    #   1->3: from A, 3 available: possible and actual
    # total: actual 2, possible 4, prob 0.5
    ds = _categorised([[1, 2, 3, 5, -1, 6, 4, 4], [5, 6, 1, 3, 0, 0, 0, 0]])
    table = category_crp(ds)
    assert table[["actual", "possible"]].to_numpy().tolist() == [[2, 4]] and table["prob"].item() == 0.5


def test_hand_worked_category_clustering():
    # list 1's clean sequence is 1, 2, 3, 5, 6, 4 (A B A C C B): r = 6 recalls, 1 adjacent
    # same-category pair (5-6); 6 items in 3 categories, m = 2: LBC = 1 - (5 * 1) / 5 = 0;
    # two recalls per category: E = 3 * 2 * 1 / 6 = 1, maximum r - c = 3: ARC = (1 - 1) / 2 = 0.
    # list 2: 5, 6, 1, 3 (C C A A): o = 2, LBC = 2 - 3 * 1 / 5 = 1.4; E = 2 * 2 / 4 = 1,
    # maximum 4 - 2 = 2: ARC = (2 - 1) / (2 - 1) = 1. Means over lists: 0.7 and 0.5.
    ds = _categorised([[1, 2, 3, 5, -1, 6, 4, 4], [5, 6, 1, 3, 0, 0, 0, 0]])
    table = category_clustering(ds)
    assert table["lbc"].item() == pytest.approx(0.7, abs=1e-12)
    assert table["arc"].item() == pytest.approx(0.5, abs=1e-12)


def test_hand_worked_distances():
    # items 1..4 on one list; distances as psifr's count_distance example: d(1,2)=1, d(1,3)=d(1,4)=2,
    # d(2,3)=d(2,4)=2, d(3,4)=3. Recalls 4, 2, 3, 1:
    #   4->2: distance 2 among 2, 2, 3 (to 1, 2, 3): mean rank 1.5 of 3: rank 1 - 0.5/2 = 0.75
    #   2->3: distance 2 among 1, 2 (to 1, 3): the largest: 0;   3->1: one item left: no rank
    distances = np.array([[0, 1, 2, 2], [1, 0, 2, 2], [2, 2, 0, 3], [2, 2, 3, 0]], float)
    ds = RecallDataset(subject=[1], list_length=[4], presented=[[1, 2, 3, 4]], recalls=[[4, 2, 3, 1]])
    assert distance_rank(ds, distances)["rank"].item() == pytest.approx(0.375, abs=1e-15)
    # bins (0.5, 1.5], (1.5, 2.5], (2.5, 3.5]: actual 0, 3, 0 and possible 1, 4, 1 (psifr's numbers)
    table = distance_crp(ds, distances, edges=[0.5, 1.5, 2.5, 3.5])
    assert table["actual"].tolist() == [0, 3, 0] and table["possible"].tolist() == [1, 4, 1]
    assert table["center"].tolist() == [1.0, 2.0, 3.0] and str(table["bin"].iloc[0]) == "(0.5, 1.5]"


# --- validation -----------------------------------------------------------------------------------

def test_clustering_without_categories_or_distances_says_what_is_missing():
    ds = RecallDataset(subject=[1], list_length=[3], presented=[[1, 2, 3]], recalls=[[1, 2]])
    for function in (category_crp, category_clustering):
        with pytest.raises(ValueError, match=r"no item attribute 'category'.*item_attributes=\('category',\)"):
            function(ds)
    gappy = RecallDataset(subject=[1], list_length=[3], presented=[[1, 2, 3]], recalls=[[1, 2]],
                          item_attributes={"category": np.array(["A", None, "B"], dtype=object)})
    with pytest.raises(ValueError, match=r"'category' is missing for 1 studied item\(s\), item numbers \[2\]"):
        category_crp(gappy)
    with pytest.raises(TypeError, match="name of an item attribute"):
        category_crp(gappy, category=1)
    for function in (distance_crp, distance_rank):
        with pytest.raises(ValueError, match="needs a distance matrix"):
            function(ds, None)
        with pytest.raises(TypeError, match="RecallDataset"):
            function(pd.DataFrame(), np.zeros((3, 3)))


@pytest.mark.parametrize("matrix, message", [
    (np.zeros((3, 4)), r"square \(n_items, n_items\) matrix.*got shape \(3, 4\)"),
    (np.zeros(9), r"got shape \(9,\)"),
    (np.zeros((2, 2)), r"cover item numbers 1..2 but 1 studied item\(s\) lie beyond, item numbers \[3\]"),
    (np.array([[0, 1, np.nan], [1, 0, 1], [np.nan, 1, 0]]), r"finite between studied items.*\[1, 3\]"),
    (np.array([[0, 1, 2], [1, 0, 1], [5, 1, 0]]), r"symmetric.*largest difference .* is 3"),
    ([["a", "b", "c"]] * 3, r"distances must be a square"),
])
def test_bad_distance_matrices_are_refused(matrix, message):
    ds = RecallDataset(subject=[1], list_length=[3], presented=[[1, 2, 3]], recalls=[[1, 2]])
    error = TypeError if isinstance(matrix, list) else ValueError
    with pytest.raises(error, match=message):
        distance_rank(ds, matrix)


def test_distance_matrices_may_leave_unstudied_items_undefined_and_edges_are_checked():
    # item 4 is only ever intruded: its row may be NaN (distances_by_item leaves unknown words NaN)
    ds = RecallDataset(subject=[1], list_length=[3], presented=[[1, 2, 3]], recalls=[[1, -1, 2]],
                       recalled_items=[[1, 4, 2]])
    matrix = np.array([[0, 1, 2, np.nan], [1, 0, 1, np.nan], [2, 1, 0, np.nan], [np.nan] * 4])
    assert distance_crp(ds, matrix, edges=[0, 1.5, 3])["possible"].sum() == 0  # the intrusion breaks 1->2
    with pytest.raises(ValueError, match="default edges .* are not strictly increasing"):
        distance_crp(ds, matrix)                                             # 3 distances, 2 of them equal
    for edges in ([1.0], [2.0, 1.0], [0.0, np.nan], [[0.0, 1.0]]):
        with pytest.raises(ValueError, match="edges must be"):
            distance_crp(ds, matrix, edges=edges)
    with pytest.raises(ValueError, match="centers must have one value per bin"):
        distance_crp(ds, matrix, edges=[0, 1, 2], centers=[1.0])
    words = RecallDataset(subject=[1], list_length=[2], presented=[[1, 2]], recalls=[[1]], words=("b", "zz"))
    by_item = distances_by_item(words, ["a", "b"], np.array([[0.0, 0.5], [0.5, 0.0]]))
    np.testing.assert_array_equal(by_item, [[0.0, np.nan], [np.nan, np.nan]])
    with pytest.raises(ValueError, match="has no words"):
        distances_by_item(ds, ["a"], np.zeros((1, 1)))
    with pytest.raises(ValueError, match=r"\(len\(items\), len\(items\)\) = \(2, 2\)"):
        distances_by_item(words, ["a", "b"], np.zeros((3, 3)))


# --- per-item attributes of a RecallDataset -------------------------------------------------------

def test_item_attributes_are_validated_and_read_only():
    base = {"subject": [1], "list_length": [3], "presented": [[1, 2, 3]], "recalls": [[1, -1]],
            "recalled_items": [[1, 5]]}
    ds = RecallDataset(**base, item_attributes={"category": ["A", "A", "B", None, np.nan], "size": np.arange(5.0)})
    assert ds.item_attributes["category"].tolist() == ["A", "A", "B", None, None]
    for column in ds.item_attributes.values():
        assert not column.flags.writeable
    with pytest.raises(TypeError):
        ds.item_attributes["other"] = np.zeros(5)  # type: ignore[index]
    assert ds.select([0]).item_attributes["size"].tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(TypeError, match="must be a mapping from a name to a 1-D array"):
        RecallDataset(**base, item_attributes=[("category", ["A"] * 5)])
    with pytest.raises(TypeError, match="must be a mapping"):
        RecallDataset(**base, item_attributes={"category": "ABCDE"})
    with pytest.raises(ValueError, match=r"'category' has 3 values but item number 5 occurs"):
        RecallDataset(**base, item_attributes={"category": ["A", "A", "B"]})
    with pytest.raises(ValueError, match=r"must be 1-D .* got shape \(5, 1\)"):
        RecallDataset(**base, item_attributes={"category": np.zeros((5, 1))})
    with pytest.raises(ValueError, match="clashes"):
        RecallDataset(**base, item_attributes={"item": np.zeros(5)})
    with pytest.raises(TypeError, match="non-empty strings"):
        RecallDataset(**base, item_attributes={1: np.zeros(5)})


def test_item_attributes_round_trip_through_events_and_csv(tmp_path):
    ds = RecallDataset(subject=[1, 1], list_length=[3, 3], presented=[[1, 2, 3], [4, 5, 6]],
                       recalls=[[3, -1, 1], [2, 0, 0]], recalled_items=[[3, 7, 1], [5, 0, 0]],
                       words=tuple("abcdefg"), item_attributes={"category": list("xxyyz") + [None, "q"]})
    events = to_events(ds)
    assert events.loc[events["item"] == "g", "category"].tolist() == ["q"]  # the intrusion's own category
    assert events.loc[events["item"] == "f", "category"].isna().all()
    back = from_events(events, item_attributes=("category",))
    assert back.item_attributes["category"].tolist() == ds.item_attributes["category"].tolist()
    path = write_csv(ds, tmp_path / "events.csv")
    assert read_csv(path, item_attributes=["category"]).item_attributes["category"].tolist() == \
        ds.item_attributes["category"].tolist()
    numeric = from_events(events.assign(size=events["item_number"] * 0.5), item_attributes=["size"])
    np.testing.assert_array_equal(numeric.item_attributes["size"], np.arange(1, 8) * 0.5)
    clash = events.copy()
    clash.loc[clash.index[0], "category"] = "other"
    with pytest.raises(ValueError, match=r"one value per item; item 'a' \(number 1\) has \['other', 'x'\]"):
        from_events(clash, item_attributes=["category"])
    with pytest.raises(ValueError, match="item attribute column 'colour' is not in the events"):
        from_events(events, item_attributes=["colour"])
    with pytest.raises(TypeError, match="sequence of column names"):
        from_events(events, item_attributes="category")


@needs_psifr
def test_morton2013_keeps_each_items_category():
    ds = load_sample("Morton2013")
    category = ds.item_attributes["category"]
    assert not category.flags.writeable and len(category) == len(ds.words)
    studied = np.unique(ds.presented)
    assert set(category[studied - 1]) == {"cel", "loc", "obj"}
    # the pure lists hold one category each (their condition list_category names it)
    pure = ds.conditions["list_type"] == "pure"
    assert (category[ds.presented[pure] - 1] == ds.conditions["list_category"][pure][:, None]).all()


# --- figures --------------------------------------------------------------------------------------

def test_plots_draw_means_with_psifr_labels():
    from matplotlib.figure import Figure

    rng = np.random.default_rng(1)
    n_lists = 20
    recalls = np.zeros((n_lists, 8), int)
    for row in range(n_lists):
        recalls[row, :6] = rng.permutation(8)[:6] + 1
    ds = RecallDataset(subject=np.repeat([1, 2], n_lists // 2), list_length=[8] * n_lists,
                       presented=np.arange(1, 8 * n_lists + 1).reshape(n_lists, 8), recalls=recalls,
                       item_attributes={"category": np.tile(["A", "B"], 4 * n_lists).astype(object)})
    distances = np.abs(np.subtract.outer(np.arange(8.0 * n_lists), np.arange(8.0 * n_lists)))
    axes = Figure().subplots(2, 4).ravel()
    assert plot_spc(spc(ds), ax=axes[0]) is axes[0] and axes[0].get_xlabel() == "Serial position"
    ax = plot_lag_crp(lag_crp(ds), max_lag=3, ax=axes[1])
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("Lag", "CRP")
    negative, positive = (line.get_xdata() for line in ax.lines)             # the gap at lag 0
    assert list(negative) == [-3, -2, -1] and list(positive) == [1, 2, 3]
    ax = plot_lag_crp(lag_crp_compound(ds), max_lag=2, ax=axes[2])
    assert len(ax.lines) == 4 and ax.get_legend() is not None
    assert plot_input_crp(input_crp(ds), previous=[1, 8], ax=axes[3]).get_ylabel() == "CRP"
    assert plot_distance_crp(distance_crp(ds, distances, edges=[0, 1, 2, 4, 8]), ax=axes[4]).get_xlabel() == "Distance"
    ax = plot_subject_scores(lag_rank(ds).merge(category_clustering(ds)), ax=axes[5])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["rank", "lbc", "arc"]
    pli = pd.DataFrame({"subject": [1, 1, 2, 2], "list_lag": [1, 2, 1, 2], "prob": [0.5, 0.2, 0.4, 0.1]})
    ax = plot_pli_list_lag(pli, ax=axes[6])
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [0.45, 0.15])
    assert ax.get_xlabel() == "List lag"
    with pytest.raises(ValueError, match=r"needs the columns .* lacks \['list_lag'\]"):
        plot_pli_list_lag(pli.drop(columns="list_lag"), ax=axes[7])
    with pytest.raises(TypeError, match="takes the DataFrame"):
        plot_spc(ds, ax=axes[7])
    with pytest.raises(ValueError, match="max_lag must be a positive integer"):
        plot_lag_crp(lag_crp(ds), max_lag=0, ax=axes[7])
