"""The scales-stability experiment runs end to end through the runner (tiny settings) and keeps its promise."""

from __future__ import annotations

import json

import pytest

from superpose.runner import get_experiment, run_experiment


def test_scales_stability_quick_run(tmp_path):
    overrides = {"states": 2, "probes": 4, "iterations": 4, "taus": "1,10", "beta_steps": 2, "seed_rows": 4000,
                 "num_scales": 3, "frame_strength": 0}
    record = run_experiment("scales-stability", overrides, tmp_path / "run", quick=True)
    assert record.status == "finished"
    metrics = record.metrics
    assert metrics["max_relative_excess"] <= 1e-3
    assert max(metrics["jacobian_on_bound_max_relative_error"].values()) < 1e-6  # the points lie on y = r
    seed = metrics["seed_test"]
    assert seed["pass_fraction"] == 0.0 and seed["predicted_pass_probability"] < 1e-5
    assert seed["mean"] == pytest.approx(2 * 7.906, rel=0.01) and seed["relative_criterion_max_ratio"] <= 1 + 1e-9
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert {f["kind"] for f in meta["figures"]} == {"png", "html"}
    assert f"{metrics['max_relative_excess']:.1e}" in " ".join(meta["notes"])  # the note quotes the run's numbers


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="max_scale must be > min_scale"):
        get_experiment("scales-stability").make_config({"min_scale": "2", "max_scale": "1"})
    with pytest.raises(ValueError, match="dtype must be one of"):
        get_experiment("scales-stability").make_config({"dtype": "float16"})
