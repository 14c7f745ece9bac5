import json

import jax
import numpy as np
import pytest

from superpose.recall import (
    DEFAULT_FIXED,
    DEFAULT_FREE,
    FitResult,
    RecallDataset,
    fit,
    list_log_likelihoods,
    make_parameters,
    negative_log_likelihood,
    prepare,
    simulate,
)
from superpose.recall.fitting import nll64, polish

TRUTH = {"encoding_drift_rate": 0.75, "start_drift_rate": 0.1, "recall_drift_rate": 0.8, "mfc_learning_rate": 0.2,
         "mcf_learning_rate": 1.0, "shared_support": 0.1, "item_support": 4.0, "primacy_scale": 6.0,
         "primacy_decay": 0.4, "stop_probability_scale": 0.01, "stop_probability_growth": 0.3,
         "choice_sensitivity": 4.0}
FREE = ("encoding_drift_rate", "recall_drift_rate", "choice_sensitivity", "stop_probability_growth")
FIXED = {n: v for n, v in TRUTH.items() if n not in FREE}


@pytest.fixture(scope="module")
def two_subjects() -> RecallDataset:
    a = simulate(make_parameters(TRUTH), jax.random.key(0), list_length=12, n_lists=60, subject=1)
    b = simulate(make_parameters({**TRUTH, "choice_sensitivity": 8.0}), jax.random.key(1), list_length=12,
                 n_lists=40, subject=2)
    width = max(a.recalls.shape[1], b.recalls.shape[1])
    pad = lambda r: np.pad(r, ((0, 0), (0, width - r.shape[1])))  # noqa: E731
    return RecallDataset(subject=np.r_[a.subject, b.subject], list_length=np.r_[a.list_length, b.list_length],
                         presented=np.r_[a.presented, b.presented], recalls=np.r_[pad(a.recalls), pad(b.recalls)])


def test_padding_to_a_common_shape_does_not_change_the_likelihood(two_subjects):
    one = two_subjects.select(subjects=[2])
    params = make_parameters(TRUTH)
    plain, padded = prepare(one), prepare(one, pad_to=(70, 20, 600))
    assert padded.shape == (70, 20, 600) and padded.n_lists == one.n_lists
    assert abs(float(negative_log_likelihood(params, plain)) - float(negative_log_likelihood(params, padded))) < 1e-3
    np.testing.assert_allclose(np.asarray(list_log_likelihoods(params, padded)),
                               np.asarray(list_log_likelihoods(params, plain)), rtol=1e-5)


def test_fit_recovers_parameters_and_beats_the_truth(two_subjects, tmp_path):
    path = tmp_path / "fits.json"
    result = fit(two_subjects, free=FREE, fixed=FIXED, restarts=2, popsize=10, seed=1, results_path=path, confirm=None,
                 polish_starts=1)
    assert [f.subject for f in result.fits] == [1, 2]
    for f, tau in zip(result.fits, (4.0, 8.0)):
        truth_nll = nll64(prepare(two_subjects.select(subjects=[f.subject])), {**TRUTH, "choice_sensitivity": tau})
        assert f.nll <= truth_nll + 1e-6  # the maximum-likelihood fit explains its data at least as well
        assert abs(f.parameters["choice_sensitivity"] - tau) < 0.5 * tau
        assert abs(f.parameters["recall_drift_rate"] - 0.8) < 0.15
        assert len(f.restart_nlls) == 2 and f.evaluations > 0 and f.wall_seconds > 0
        assert f.polish_gain >= 0 and (f.polished == (f.polish_gain > 0))
    saved = json.loads(path.read_text())
    assert saved["free"] == list(FREE) and "jax" in saved["versions"] and len(saved["fits"]) == 2
    again = FitResult.load(path)
    assert again.fits[0].nll == result.fits[0].nll
    # resuming with the same settings reuses finished subjects instead of refitting them
    resumed = fit(two_subjects, free=FREE, fixed=FIXED, restarts=2, popsize=10, seed=1, results_path=path,
                  confirm=None, polish_starts=1)
    assert [f.wall_seconds for f in resumed.fits] == [f.wall_seconds for f in result.fits]
    table = result.table()
    assert list(table["subject"]) == [1, 2] and "choice_sensitivity" in table


def test_polish_never_returns_a_worse_fit(two_subjects):
    trials = prepare(two_subjects.select(subjects=[1]))
    start = {**TRUTH, "choice_sensitivity": 2.0, "encoding_drift_rate": 0.5}
    before = nll64(trials, start, FREE, FIXED)
    params, after, evaluations = polish(trials, start, FREE, FIXED, steps=50)
    assert after < before and evaluations > 0
    assert abs(nll64(trials, params, FREE, FIXED) - after) < 1e-8


def test_same_seed_same_fit(two_subjects):
    one = two_subjects.select(subjects=[2])
    a = fit(one, free=FREE[:2], fixed={**FIXED, **{n: TRUTH[n] for n in FREE[2:]}}, restarts=1, popsize=6,
            polish_steps=0, seed=3)
    b = fit(one, free=FREE[:2], fixed={**FIXED, **{n: TRUTH[n] for n in FREE[2:]}}, restarts=1, popsize=6,
            polish_steps=0, seed=3)
    assert a.fits[0].parameters == b.fits[0].parameters


@pytest.mark.parametrize("kwargs, message", [
    ({"free": ("tau",)}, r"unknown parameters \['tau'\]"),
    ({"free": ("choice_sensitivity",), "fixed": {"choice_sensitivity": 1.0}}, "both free and fixed"),
    ({"free": ("choice_sensitivity",), "fixed": {}}, "neither free nor fixed"),
    ({"free": DEFAULT_FREE, "fixed": {"mcf_learning_rate": 2.0}}, r"fixed mcf_learning_rate = 2 is outside"),
    ({"subjects": [99]}, r"subjects \[99\] are not in the dataset"),
])
def test_bad_fit_arguments_are_explained(two_subjects, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fit(two_subjects, **{"free": DEFAULT_FREE, "fixed": DEFAULT_FIXED, **kwargs})


def test_fit_result_load_refuses_other_files(tmp_path):
    (tmp_path / "x.json").write_text('{"a": 1}')
    with pytest.raises(ValueError, match="not a fit result"):
        FitResult.load(tmp_path / "x.json")


def test_confirmed_fits_agree_and_beat_the_truth(two_subjects):
    one = two_subjects.select(subjects=[1])
    result = fit(one, free=FREE, fixed=FIXED, restarts=2, popsize=8, seed=0, confirm=0.1, max_restarts=6)
    f = result.fits[0]
    finals = np.array(f.final_nlls)
    assert len(finals) == len(f.restart_nlls) >= 2 and f.nll == finals.min()
    assert f.restarts_at_best == int(np.sum(finals <= finals.min() + 0.1))
    assert f.status.startswith("confirmed") == (f.restarts_at_best >= 2)
    assert f.status.startswith("confirmed")  # on simulated data the basin is found every time
    # every restart was polished: no final NLL above its own DE end point
    assert np.all(finals <= np.array(f.restart_nlls) + 1e-9)
    # the maximum-likelihood fit is at least as good as the parameters that generated the data
    truth_nll = nll64(prepare(one), TRUTH, FREE, FIXED)
    assert f.nll <= truth_nll + 1e-6
    assert result.settings["confirm"] == 0.1 and result.settings["agree"] == 2


@pytest.mark.parametrize("kwargs, message", [
    ({"confirm": 0.0}, "confirm must be a number of nats > 0"),
    ({"confirm": float("nan")}, "confirm must be a number of nats > 0"),
    ({"confirm": 0.1, "agree": 1}, "agree must be an integer >= 2"),
    ({"confirm": 0.1, "restarts": 4, "max_restarts": 3}, r"max_restarts must be an integer >= max\(restarts, agree\)"),
    ({"confirm": 0.1, "max_seconds": -1.0}, "max_seconds must be > 0"),
])
def test_bad_confirmation_settings_are_explained(two_subjects, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fit(two_subjects.select(subjects=[1]), free=FREE, fixed=FIXED, popsize=6, **kwargs)


def test_confirmation_stops_at_its_time_budget(two_subjects):
    one = two_subjects.select(subjects=[1])
    f = fit(one, free=FREE[:2], fixed={**FIXED, **{n: TRUTH[n] for n in FREE[2:]}}, restarts=1, popsize=6,
            confirm=0.1, max_seconds=1e-3, polish_steps=5).fits[0]
    assert len(f.final_nlls) == 1 and f.restarts_at_best == 1
    assert f.status == "time budget reached (0.001 s): 1 of 1 restarts within 0.1 nats of the best, 2 needed"


def test_parameters_at_bounds_reads_each_side_within_its_fraction_of_the_range():
    """By hand: choice_sensitivity ∈ [0, 100] at 99.95 is on its upper bound (within 0.1 of 100), at 99.8
    not; primacy_decay at 0.05 is on its lower one; a fixed (not free) parameter on a bound is not
    reported; bad input is explained."""
    from superpose.recall import parameters_at_bounds

    values = {"choice_sensitivity": 99.95, "primacy_decay": 0.05, "item_support": 50.0, "mcf_learning_rate": 1.0}
    free = ["choice_sensitivity", "primacy_decay", "item_support"]
    assert parameters_at_bounds(values, free) == {"choice_sensitivity": "high", "primacy_decay": "low"}
    assert parameters_at_bounds(values | {"choice_sensitivity": 99.8}, free) == {"primacy_decay": "low"}
    assert parameters_at_bounds(values, free, fraction=1e-4) == {}
    with pytest.raises(ValueError, match="unknown parameter"):
        parameters_at_bounds(values, ["tau"])
    with pytest.raises(ValueError, match="no value"):
        parameters_at_bounds(values, ["encoding_drift_rate"])
    with pytest.raises(ValueError, match="not finite"):
        parameters_at_bounds(values | {"item_support": float("nan")}, free)
    with pytest.raises(ValueError, match="fraction"):
        parameters_at_bounds(values, free, fraction=0.5)


def test_widened_bounds_free_a_parameter_that_sat_on_its_bound(two_subjects):
    """Data made with τ = 8: a box capping τ at 3 leaves it on its bound; widening that box to (0, 30)
    frees it, fits at least as well, and the fit reports its bounds (the default box has τ ≤ 100)."""
    one = two_subjects.select(subjects=[2])
    options = dict(free=FREE, fixed=FIXED, restarts=1, popsize=8, seed=0, confirm=None)
    capped = fit(one, bounds={"choice_sensitivity": (0.0, 3.0)}, **options)
    widened = fit(one, bounds={"choice_sensitivity": (0.0, 30.0)}, **options)
    assert capped.at_bounds(2).get("choice_sensitivity") == "high"
    assert capped.fits[0].parameters["choice_sensitivity"] <= 3.0
    tau = widened.fits[0].parameters["choice_sensitivity"]
    assert 3.0 < tau < 30.0 and "choice_sensitivity" not in widened.at_bounds(2)
    assert widened.fits[0].nll < capped.fits[0].nll - 1.0
    assert widened.settings["bounds"] == {"choice_sensitivity": [0.0, 30.0]}


def test_the_model_accepts_values_beyond_the_default_box_but_not_beyond_its_limits():
    from superpose.recall.parameters import LIMITS

    values = {**TRUTH, "choice_sensitivity": 250.0, "item_support": 400.0}  # beyond jaxcmr's 100
    assert float(make_parameters(values).choice_sensitivity) == 250.0
    assert LIMITS["choice_sensitivity"] == (0.0, float("inf"))
    with pytest.raises(ValueError, match=r"choice_sensitivity = -1 is outside its limits \[0, inf\]"):
        make_parameters({**TRUTH, "choice_sensitivity": -1.0})


@pytest.mark.parametrize("bounds, message", [
    ({"tau": (0, 1)}, "unknown parameter 'tau'"),
    ({"mcf_learning_rate": (0, 1)}, "not free in this fit"),
    ({"choice_sensitivity": (5, 5)}, "low < high"),
    ({"choice_sensitivity": (0, float("inf"))}, "finite"),
    ({"encoding_drift_rate": (0, 2)}, r"leaves the model's limits \[0, 1\]"),
    ({"choice_sensitivity": "wide"}, "two numbers"),
])
def test_bad_bounds_are_explained(two_subjects, bounds, message):
    with pytest.raises(ValueError, match=message):
        fit(two_subjects, free=FREE, fixed=FIXED, bounds=bounds)
