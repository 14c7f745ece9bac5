"""Data safety of superpose.recall: immutable datasets, fingerprinted resumes, counted non-finite likelihoods."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from superpose.recall import (RecallDataset, fit, fitting, from_events, load_sample, make_parameters, psifr_available,
                              simulate, to_events)
from superpose.recall import search
from superpose.recall.parameters import FIT_BOUNDS

TRUTH = {"encoding_drift_rate": 0.75, "start_drift_rate": 0.1, "recall_drift_rate": 0.8, "mfc_learning_rate": 0.2,
         "mcf_learning_rate": 1.0, "shared_support": 0.1, "item_support": 4.0, "primacy_scale": 6.0,
         "primacy_decay": 0.4, "stop_probability_scale": 0.01, "stop_probability_growth": 0.3,
         "choice_sensitivity": 4.0}
FREE = ("encoding_drift_rate", "choice_sensitivity")
FIXED = {n: v for n, v in TRUTH.items() if n not in FREE}
QUICK = {"free": FREE, "fixed": FIXED, "restarts": 1, "popsize": 4, "maxiter": 3, "polish_steps": 0, "workers": 1,
         "confirm": None}
ARRAYS = ("subject", "list_length", "presented", "recalls", "list_number", "recalled_items")


@pytest.fixture(scope="module")
def two_subjects() -> RecallDataset:
    a = simulate(make_parameters(TRUTH), jax.random.key(0), list_length=8, n_lists=6, subject=1)
    b = simulate(make_parameters(TRUTH), jax.random.key(1), list_length=8, n_lists=6, subject=2)
    width = max(a.recalls.shape[1], b.recalls.shape[1])
    pad = lambda r: np.pad(r, ((0, 0), (0, width - r.shape[1])))  # noqa: E731
    return RecallDataset(subject=np.r_[a.subject, b.subject], list_length=np.r_[a.list_length, b.list_length],
                         presented=np.r_[a.presented, b.presented], recalls=np.r_[pad(a.recalls), pad(b.recalls)])


def fake_likelihood(monkeypatch, score):
    """Replaces both compiled likelihoods of a fit by ``score(values: dict of (P,) arrays) -> (P,)``."""
    monkeypatch.setattr(search, "score_population",
                        lambda params, trials: jnp.asarray(score({n: np.atleast_1d(np.asarray(v)) for n, v in
                                                                  params._asdict().items()})))

    def value_and_grad(z, fixed_values, lows, highs, trials, free, n_items, variant=None):
        values = dict(zip(free, np.atleast_2d(np.asarray(search.from_unbounded(z, lows, highs))).T))
        return jnp.asarray(score(values)[0]), jnp.zeros_like(z)

    monkeypatch.setattr(search, "_value_and_grad64", value_and_grad)


# --- (1) immutable datasets ------------------------------------------------------------------------

@pytest.mark.skipif(not psifr_available(), reason="needs psifr")
def test_the_cached_sample_cannot_be_corrupted_by_a_caller():
    first = load_sample("Morton2013")
    original = int(first.recalls[0, 0])
    with pytest.raises(ValueError, match="read-only"):
        first.recalls[0, 0] = 999
    for name in ARRAYS:
        assert not getattr(first, name).flags.writeable, name
    for name, column in first.conditions.items():
        assert not column.flags.writeable, name
    with pytest.raises(TypeError):
        first.conditions["list_type"] = np.zeros(first.n_lists)  # type: ignore[index]
    again = load_sample("Morton2013")
    assert int(again.recalls[0, 0]) == original and again.fingerprint() == first.fingerprint()
    # the validation still guards every dataset built from an edited copy
    edited = again.recalls.copy()
    edited[0, 0] = 999
    with pytest.raises(ValueError, match="recall position 999 points outside a list of 24 items"):
        RecallDataset(subject=again.subject, list_length=again.list_length, presented=again.presented,
                      recalls=edited)


def test_a_dataset_does_not_share_memory_with_its_inputs(two_subjects):
    recalls = two_subjects.recalls.copy()
    condition = np.arange(two_subjects.n_lists)
    ds = RecallDataset(subject=two_subjects.subject, list_length=two_subjects.list_length,
                       presented=two_subjects.presented, recalls=recalls, conditions={"block": condition})
    before = ds.recalls.copy()
    recalls[:] = 0  # editing the caller's arrays afterwards leaves the dataset as validated
    condition[:] = -1
    np.testing.assert_array_equal(ds.recalls, before)
    np.testing.assert_array_equal(ds.conditions["block"], np.arange(ds.n_lists))
    for name in ARRAYS:
        assert not getattr(ds, name).flags.writeable, name
    with pytest.raises(ValueError, match="read-only"):
        ds.select(subjects=[1]).presented[0, 0] = 5


# --- (2) fingerprinted resume ----------------------------------------------------------------------

def test_resume_refuses_stored_fits_of_different_data(two_subjects, tmp_path, monkeypatch):
    fake_likelihood(monkeypatch, lambda v: (v["encoding_drift_rate"] - 0.5) ** 2 + 0 * v["choice_sensitivity"])
    path = tmp_path / "fits.json"
    first = fit(two_subjects, results_path=path, **QUICK)
    assert [f.data_fingerprint for f in first.fits] == [two_subjects.select(subjects=[s]).fingerprint()
                                                         for s in (1, 2)]
    # the same data rebuilt another way (through psifr's event table) resumes: nothing is refitted
    same = from_events(to_events(two_subjects))
    resumed = fit(same, results_path=path, **QUICK)
    assert [f.wall_seconds for f in resumed.fits] == [f.wall_seconds for f in first.fits]
    # one recall of subject 2 changed (its last recall dropped): the stored fit is refused
    recalls = two_subjects.recalls.copy()
    row = int(np.flatnonzero(two_subjects.subject == 2)[0])
    recalls[row, int((recalls[row] != 0).sum()) - 1] = 0
    changed = RecallDataset(subject=two_subjects.subject, list_length=two_subjects.list_length,
                            presented=two_subjects.presented, recalls=recalls)
    assert changed.select(subjects=[1]).fingerprint() == two_subjects.select(subjects=[1]).fingerprint()
    with pytest.raises(ValueError, match="fit of subject 2 made on different data"):
        fit(changed, results_path=path, **QUICK)
    # fitting only the unchanged subject still resumes
    assert fit(changed, [1], results_path=path, **QUICK).fits[0].wall_seconds == first.fits[0].wall_seconds


# --- (3) non-finite likelihoods --------------------------------------------------------------------

def test_infinite_likelihoods_are_counted_in_the_fit_result(two_subjects, monkeypatch):
    returned_inf = [0]

    def score(v):  # a bowl, infinite on half of the sensitivity range
        nll = (v["encoding_drift_rate"] - 0.5) ** 2 + np.where(v["choice_sensitivity"] > 50, np.inf, 0.0)
        returned_inf[0] += int(np.isinf(nll).sum())
        return nll

    fake_likelihood(monkeypatch, score)
    before_fit = returned_inf[0]
    result = fit(two_subjects, **{**QUICK, "polish_steps": 5})
    counted = result.nonfinite_evaluations
    # every inf the fit saw was counted (nll64's own scoring of the restart results is not an evaluation)
    assert 0 < counted <= returned_inf[0] - before_fit
    assert counted == sum(f.nonfinite_evaluations for f in result.fits)
    assert list(result.table()["nonfinite_evaluations"]) == [f.nonfinite_evaluations for f in result.fits]
    assert all(f.nll < 1e12 for f in result.fits)


def test_a_nan_likelihood_at_valid_parameters_raises(two_subjects, monkeypatch):
    fake_likelihood(monkeypatch, lambda v: np.full(v["choice_sensitivity"].shape, np.nan))
    with pytest.raises(RuntimeError, match="NaN at valid parameters"):
        fit(two_subjects, **QUICK)
    trials = fitting.prepare(two_subjects.select(subjects=[1]))
    with pytest.raises(RuntimeError, match="NaN at valid parameters"):  # the gradient polish too
        fitting.polish(trials, TRUTH, FREE, FIXED, steps=3)


def test_nan_outside_the_box_is_a_counted_region_not_an_error():
    high = FIT_BOUNDS["encoding_drift_rate"][1]
    on_closed_bound = np.float32(high)  # float32 rounds the open bound 1 - 2^-52 up to 1.0
    assert np.float64(on_closed_bound) > high
    x = np.array([[0.5, on_closed_bound], [4.0, 4.0]], np.float32)
    scored, count = search.screen_nonfinite(np.array([1.0, np.nan]), x, FREE, search.search_box(FREE))
    assert count == 1 and scored.tolist() == [1.0, fitting.NONFINITE_SCORE]
    with pytest.raises(RuntimeError, match="encoding_drift_rate"):
        search.screen_nonfinite(np.array([np.nan, 1.0]), x, FREE, search.search_box(FREE))
