import numpy as np
import pandas as pd
import pytest

from superpose.recall import (
    RecallDataset,
    input_crp,
    lag_crp,
    lag_crp_compound,
    lag_rank,
    load_sample,
    pli_list_lag,
    pnr,
    psifr_available,
    spc,
    termination_probability,
    to_events,
)

needs_psifr = pytest.mark.skipif(not psifr_available(), reason="psifr (the 'recall' extra) is not installed")


@pytest.fixture(scope="module")
def morton():
    from psifr import fr

    raw = fr.sample_data("Morton2013")
    return load_sample("Morton2013"), fr.merge_free_recall(raw), fr


def _compare(ours: pd.DataFrame, theirs: pd.DataFrame, keys: list[str], value: str):
    theirs = theirs.reset_index()
    merged = ours.merge(theirs, on=keys, suffixes=("", "_psifr"), how="outer", validate="one_to_one")
    assert len(merged) == len(ours) == len(theirs)
    a, b = merged[value].to_numpy(float), merged[f"{value}_psifr"].to_numpy(float)
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    assert np.nanmax(np.abs(a - b)) <= 1e-9
    return merged


@needs_psifr
def test_spc_matches_psifr_on_morton2013(morton):
    ours, merged, fr = morton
    theirs = fr.spc(merged)
    theirs["input"] = theirs["input"].astype(int)
    _compare(spc(ours), theirs, ["subject", "input"], "recall")


@needs_psifr
def test_pnr_matches_psifr_on_morton2013(morton):
    ours, merged, fr = morton
    m = _compare(pnr(ours), fr.pnr(merged), ["subject", "output", "input"], "prob")
    assert (m["actual"] == m["actual_psifr"]).all() and (m["possible"] == m["possible_psifr"]).all()


@needs_psifr
def test_lag_crp_matches_psifr_on_morton2013(morton):
    ours, merged, fr = morton
    m = _compare(lag_crp(ours), fr.lag_crp(merged), ["subject", "lag"], "prob")
    assert (m["actual"] == m["actual_psifr"]).all() and (m["possible"] == m["possible_psifr"]).all()


def test_hand_worked_lag_crp_and_pnr():
    # list of 4: recalls 4, 2, intrusion, 3, 2 (repeat), 1
    ds = RecallDataset(subject=[1], list_length=[4], presented=[[1, 2, 3, 4]], recalls=[[4, 2, -1, 3, 2, 1]])
    crp = lag_crp(ds).set_index("lag")
    # transitions counted: 4->2 (lag -2, possible -3,-2,-1); 2->intrusion and intrusion->3 break;
    # 3->2 is a repeat (skipped); 2(repeat)->1 skipped since the repeat is not in the pool.
    assert crp.loc[-2, "actual"] == 1 and crp["actual"].sum() == 1
    assert crp.loc[[-3, -2, -1], "possible"].tolist() == [1, 1, 1] and crp["possible"].sum() == 3
    table = pnr(ds).set_index(["output", "input"])
    assert table.loc[(1, 4), "prob"] == 1.0 and table.loc[(2, 2), "prob"] == 1.0
    assert table.loc[(3, 3), "prob"] == 1.0 and table.loc[(4, 1), "prob"] == 1.0
    assert table.loc[(2, 4), "possible"] == 0


def test_termination_probability_counts_directly():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 6, size=40)
    recalls = np.zeros((40, 6), int)
    for row, k in enumerate(counts):
        recalls[row, :k] = rng.permutation(6)[:k] + 1
    ds = RecallDataset(subject=np.repeat([1, 2], 20), list_length=np.full(40, 6),
                       presented=np.tile(np.arange(1, 7), (40, 1)), recalls=recalls)
    table = termination_probability(ds)
    for subject, rows in ((1, slice(0, 20)), (2, slice(20, 40))):
        mine = table[table.subject == subject].set_index("output")
        for k in range(1, 8):
            made = counts[rows]
            expected = (made == k - 1).sum() / max((made >= k - 1).sum(), 1) if (made >= k - 1).any() else np.nan
            got = mine.loc[k, "prob"]
            assert (np.isnan(got) and np.isnan(expected)) or abs(got - expected) < 1e-12
    with pytest.raises(TypeError, match="RecallDataset"):
        spc(pd.DataFrame())


# --- lag rank, compound lag-CRP, input CRP, prior-list intrusions ---------------------------------

def _same_counts(merged):
    assert (merged["actual"] == merged["actual_psifr"].astype(int)).all()
    assert (merged["possible"] == merged["possible_psifr"].astype(int)).all()


@needs_psifr
def test_lag_rank_matches_psifr_on_morton2013(morton):
    ours, merged, fr = morton
    _compare(lag_rank(ours), fr.lag_rank(merged), ["subject"], "rank")


@needs_psifr
def test_lag_crp_compound_matches_psifr_on_morton2013(morton):
    ours, merged, fr = morton
    theirs = fr.lag_crp_compound(merged).astype({"previous": int, "current": int})
    table = lag_crp_compound(ours)
    _same_counts(_compare(table, theirs, ["subject", "previous", "current"], "prob"))
    # the same rows in psifr's order: previous lag outer, current lag inner
    np.testing.assert_array_equal(table[["previous", "current"]].to_numpy(), theirs[["previous", "current"]].to_numpy())


@needs_psifr
def test_input_crp_matches_psifr_on_morton2013_with_its_labels_swapped(morton):
    ours, merged, fr = morton
    # psifr 0.10.1 labels its 'previous' column with the current recall's position and vice
    # versa (see test_hand_worked_input_crp); its numbers are the same, in the same rows
    theirs = fr.input_crp(merged).rename(columns={"previous": "current", "current": "previous"})
    theirs["prob"] = theirs["prob"].astype(float)
    table = input_crp(ours)
    _same_counts(_compare(table, theirs, ["subject", "previous", "current"], "prob"))
    np.testing.assert_array_equal(table["actual"].to_numpy(), theirs["actual"].to_numpy(int))


@needs_psifr
@pytest.mark.parametrize("max_lag", [3, 12])
def test_pli_list_lag_matches_psifr_on_morton2013(morton, max_lag):
    ours, merged, fr = morton
    m = _compare(pli_list_lag(ours, max_lag), fr.pli_list_lag(merged, max_lag), ["subject", "list_lag"], "prob")
    assert (m["count"] == m["count_psifr"]).all()
    np.testing.assert_allclose(m["per_list"], m["per_list_psifr"], rtol=0, atol=1e-12)


def test_hand_worked_lag_rank():
    # list of 5, recalls 3, 4, 1, 5 (subject 1, list 1):
    #   3->4: |lag| 1 among the available 1, 2, 4, 5 (|lags| 2, 1, 1, 2): 0 smaller, 2 equal, 4 in
    #         all, so scipy's mean rank is 1.5 and the rank 1 - (1.5 - 1) / 3 = 5/6;
    #   4->1: |lag| 3 among 1, 2, 5 (3, 2, 1): the farthest, 0;   1->5: |lag| 4 among 2, 5 (1, 4): 0.
    # list 2: 1, intrusion, 2, 1 (repeat), 3: no transition survives (the intrusion and the
    #   repeat break every pair). list 3 of 2 items, recalls 1, 2: one item left, no rank.
    ds = RecallDataset(subject=[1, 1, 1, 2], list_length=[5, 5, 2, 5],
                       presented=[[1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [11, 12, 0, 0, 0], [1, 2, 3, 4, 5]],
                       recalls=[[3, 4, 1, 5, 0], [1, -1, 2, 1, 3], [1, 2, 0, 0, 0], [0, 0, 0, 0, 0]])
    table = lag_rank(ds).set_index("subject")
    assert table.loc[1, "rank"] == pytest.approx(5 / 18, abs=1e-15)
    assert np.isnan(table.loc[2, "rank"])  # no recalls, no transitions


def test_hand_worked_compound_and_input_crp():
    # psifr's own example: 4 items, recalls 4, 2, 1. Transitions 4->2 (lag -2) then 2->1 (lag -1);
    # after 2 the available items are 1 and 3, so the lags -1 and +1 were possible after a -2.
    ds = RecallDataset(subject=[1], list_length=[4], presented=[[1, 2, 3, 4]], recalls=[[4, 2, 1]])
    table = lag_crp_compound(ds).set_index(["previous", "current"])
    assert table["actual"].sum() == 1 and table.loc[(-2, -1), "actual"] == 1
    assert table["possible"].sum() == 2 and table.loc[(-2, 1), "possible"] == 1
    assert table.loc[(-2, -1), "prob"] == 1.0 and table.loc[(-2, 1), "prob"] == 0.0
    # input CRP of recalls 4, 2, 3, 1 (psifr's count_input_pairs example): transitions 4->2, 2->3,
    # 3->1; possible: from 4 to 1, 2, 3; from 2 to 1, 3; from 3 to 1.
    ds = RecallDataset(subject=[1], list_length=[4], presented=[[1, 2, 3, 4]], recalls=[[4, 2, 3, 1]])
    table = input_crp(ds).set_index(["previous", "current"])
    assert sorted(table.index[table["actual"] == 1]) == [(2, 3), (3, 1), (4, 2)]
    assert sorted(table.index[table["possible"] == 1]) == [(2, 1), (2, 3), (3, 1), (4, 1), (4, 2), (4, 3)]
    assert table["possible"].sum() == 6


def _pli_dataset() -> RecallDataset:
    # subject 1, four lists of two items; item 1 is studied on lists 1 and 4
    #   list 2 recalls item 3, then intrudes item 2 (studied on list 1: lag 1)
    #   list 3 intrudes item 1 (list 1: lag 2; list 4: a future list, no lag), item 3 (list 2: lag
    #          1) and item 99 (never studied)
    #   list 4 intrudes item 5 (list 3: lag 1)
    return RecallDataset(
        subject=[1, 1, 1, 1], list_length=[2, 2, 2, 2], presented=[[1, 2], [3, 4], [5, 6], [1, 7]],
        recalls=[[1, 0, 0], [1, -1, 0], [-1, -1, -1], [-1, 0, 0]],
        recalled_items=[[1, 0, 0], [3, 2, 0], [1, 3, 99], [5, 0, 0]],
    )


def test_hand_worked_pli_list_lag():
    # max_lag 2 keeps lists 3 and 4. Their intrusions count 5 times (item 1 once per list it
    # was studied on, as psifr's merge does): lag 1 twice (item 3 on list 3, item 5 on list 4),
    # lag 2 once (item 1). per_list = count / 2 lists, prob = count / 5.
    table = pli_list_lag(_pli_dataset(), 2).set_index("list_lag")
    assert table["count"].tolist() == [2, 1]
    np.testing.assert_allclose(table["per_list"], [1.0, 0.5])
    np.testing.assert_allclose(table["prob"], [0.4, 0.2])


@needs_psifr
def test_hand_worked_pli_list_lag_agrees_with_psifr():
    from psifr import fr

    ds = _pli_dataset()
    theirs = fr.pli_list_lag(fr.merge_free_recall(to_events(ds)), 2)
    m = _compare(pli_list_lag(ds, 2), theirs, ["subject", "list_lag"], "prob")
    assert (m["count"] == m["count_psifr"]).all()


def test_temporal_analyses_validate_their_input():
    for function in (lag_rank, lag_crp_compound, input_crp):
        with pytest.raises(TypeError, match="RecallDataset"):
            function(pd.DataFrame())
    ds = _pli_dataset()
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="max_lag must be a positive integer"):
            pli_list_lag(ds, bad)
    unknown = RecallDataset(subject=[1], list_length=[2], presented=[[1, 2]], recalls=[[1, -1]])
    with pytest.raises(ValueError, match="needs the item number of every intrusion"):
        pli_list_lag(unknown, 1)
    with pytest.warns(UserWarning, match="all lists are excluded"):
        table = pli_list_lag(ds, 4)
    assert (table["count"] == 0).all() and table["per_list"].isna().all()
