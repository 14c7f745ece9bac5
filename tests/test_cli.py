"""The superpose command line, end to end on the power-scale experiment."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from superpose.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.mark.parametrize("command", [[], ["list"], ["describe"], ["run"], ["gallery"]])
def test_help_is_complete(command):
    result = invoke(*command, "--help")
    assert result.exit_code == 0
    for word in {(): ["list", "run", "gallery", "describe"], ("run",): ["--set", "--out", "--resume", "--force"],
                 ("gallery",): ["--quick", "--out", "--resume"]}.get(tuple(command), []):
        assert word in result.output


def test_list_and_describe():
    assert "power-scale" in invoke("list").output
    described = invoke("describe", "power-scale").output
    assert "masked_item" in described and "demo_scale" in described
    assert invoke("describe", "no-such").exit_code == 2


def test_run_power_scale_writes_a_complete_run(tmp_path):
    out = tmp_path / "ps"
    result = invoke("run", "power-scale", "--quick", "--out", str(out), "--set", "seed=3", "--no-progress")
    assert result.exit_code == 0, result.output
    for name in ("config.json", "run.json", "metrics.json", "sweeps.npz", "power_scale.png",
                 "choice_probabilities.html", "plotly.min.js", "index.html"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["seed_power_scale_max_abs_error"] == 0.0
    assert metrics["seed_mask_then_scale_max_rel_error"] < 1e-6
    assert metrics["scale_zero"] == [1.0, 1.0, 1.0, 1.0]
    assert metrics["scale_then_mask"] == [0.0] * 5 and not metrics["any_nan"]
    assert 5 <= metrics["scale_then_mask_collapse_scale_float32"] <= 7
    assert 40 <= metrics["scale_then_mask_collapse_scale_float64"] <= 48
    assert json.loads((out / "config.json").read_text())["config"]["seed"] == 3
    page = (out / "index.html").read_text()
    assert "power_scale.png" in page and "choice_probabilities.html" in page and "seed_power_scale" in page
    # a second run into the same directory is refused, and nothing changes
    again = invoke("run", "power-scale", "--out", str(out), "--no-progress")
    assert again.exit_code == 2 and "--resume" in again.output
    resumed = invoke("run", "power-scale", "--quick", "--out", str(out), "seed=3", "--resume", "--no-progress")
    assert resumed.exit_code == 0 and "already finished" in resumed.output


def test_bad_overrides_exit_2_with_valid_keys(tmp_path):
    result = invoke("run", "power-scale", "--set", "bogus=1", "--out", str(tmp_path / "x"))
    assert result.exit_code == 2 and "valid keys" in result.output and "masked_item" in result.output
    result = invoke("run", "power-scale", "--set", "masked_item=9", "--out", str(tmp_path / "x"))
    assert result.exit_code == 2 and "masked_item must be between 1 and 5" in result.output
    assert not (tmp_path / "x").exists()


def test_gallery_quick_report_links_power_scale(tmp_path):
    out = tmp_path / "gallery"
    result = invoke("gallery", "--quick", "--out", str(out), "--only", "power-scale", "--no-progress")
    assert result.exit_code == 0, result.output
    page = (out / "index.html").read_text()
    assert "power-scale/index.html" in page and "finished" in page
    assert (out / "power-scale" / "power_scale.png").is_file()
    resumed = invoke("gallery", "--quick", "--out", str(out), "--only", "power-scale", "--resume", "--no-progress")
    assert resumed.exit_code == 0 and "kept from before" in resumed.output


@pytest.mark.slow
def test_full_quick_gallery_runs_every_experiment(tmp_path):
    out = tmp_path / "gallery"
    result = invoke("gallery", "--quick", "--out", str(out), "--no-progress")
    assert result.exit_code == 0, result.output
    page = (out / "index.html").read_text()
    for name in ("power-scale", "memory-landscape", "memory-error", "memory-completion", "memory-capacity"):
        assert f"{name}/index.html" in page
