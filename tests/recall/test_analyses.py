import numpy as np
import pandas as pd
import pytest

from superpose.recall import RecallDataset, lag_crp, load_sample, pnr, psifr_available, spc, termination_probability

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
