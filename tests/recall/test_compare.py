"""Model comparison of CMR variants (recall.compare): criteria, nesting, the cross-validation split."""

import jax
import numpy as np
import pytest

from superpose.recall.compare import compare_variants, fold_assignment, summarise, winners

from .test_variants import data  # noqa: F401  (the module-scoped small data set with categories and similarity)


def test_fold_assignment_is_a_keyed_near_equal_partition():
    a = fold_assignment(11, 3, jax.random.key(4))
    assert sorted(np.bincount(a).tolist()) == [3, 4, 4] and set(a.tolist()) == {0, 1, 2}
    np.testing.assert_array_equal(a, fold_assignment(11, 3, jax.random.key(4)))
    assert not np.array_equal(a, fold_assignment(11, 3, jax.random.key(5)))


def test_compare_variants_scores_nested_models(data):  # noqa: F811
    dataset, similarity = data
    table = compare_variants(dataset, ["base", "semantic"], similarity=similarity, restarts=1, confirm=None,
                             popsize=5, maxiter=30, seed=0)
    base, semantic = (table[table.variant == v].iloc[0] for v in ("base", "semantic"))
    assert (base.k, semantic.k) == (11, 12) and "cv_nll" not in table
    assert semantic.nll <= base.nll + 1e-6  # semantic_scale = 0 is the base model: nested
    for row in (base, semantic):
        assert row.aic == pytest.approx(2 * row.k + 2 * row.nll)
        assert row.bic == pytest.approx(row.k * np.log(row.n_events) + 2 * row.nll)
    summary = summarise(table)
    assert summary.loc[summary.variant == "base", "delta_aic"].item() == 0.0
    assert winners(summary)["nll"] == "semantic"
    with pytest.raises(ValueError, match="variants must be names from"):
        compare_variants(dataset, ["semantics"], similarity=similarity)
    with pytest.raises(ValueError, match="folds must be 0"):
        compare_variants(dataset, ["base"], folds=1)
    with pytest.raises(ValueError, match="needs a PRNG key"):
        compare_variants(dataset, ["base"], folds=2)
    with pytest.raises(ValueError, match="needs a similarity matrix"):
        compare_variants(dataset, ["semantic"])


def test_cross_validation_scores_each_fold_under_its_stored_fit(data, tmp_path):  # noqa: F811
    """cv_nll equals the NumPy reference's NLL of each held-out fold at that fold's stored fit."""
    from superpose.recall.data import RecallDataset
    from superpose.recall.fitting import FitResult

    from .reference import dataset_log_likelihood

    one, _ = data
    order = np.arange(one.n_lists)[::-1]  # subject 2: the same lists in another order, so other folds
    two = RecallDataset(subject=np.repeat([1, 2], one.n_lists), list_length=np.r_[one.list_length, one.list_length[order]],
                        presented=np.r_[one.presented, one.presented[order]],
                        recalls=np.r_[one.recalls, one.recalls[order]], item_attributes=one.item_attributes)
    key = jax.random.key(3)
    table = compare_variants(two, ["base"], folds=2, key=key, results_dir=tmp_path,
                             restarts=1, confirm=None, popsize=5, maxiter=10, polish_steps=0, seed=0)
    for subject in (1, 2):
        lists = np.flatnonzero(two.subject == subject)
        assignment = fold_assignment(lists.size, 2, jax.random.fold_in(key, subject))
        total = 0.0
        for fold in range(2):
            fitted = FitResult.load(tmp_path / f"fits-base-fold{fold}.json")
            parameters = next(f for f in fitted.fits if f.subject == subject).parameters
            total -= dataset_log_likelihood(parameters, two.select(lists[assignment == fold]))
        row = table[table.subject == subject].iloc[0]
        assert row.cv_nll == pytest.approx(total, rel=1e-9)  # measured: 0 and 3e-16
        assert row.cv_events == row.n_events
