"""The docs' benchmark tables equal what benchmarks/report.py renders from the committed results."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("benchmark_report", ROOT / "benchmarks" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_table_matches_its_results_file(report):
    assert report.check() == []


def test_a_changed_number_or_result_is_caught(report, tmp_path, monkeypatch):
    page = (ROOT / "docs" / "benchmarks.md").read_text()
    assert report.differences(page) == []
    # a number typed into the page
    assert report.differences(page.replace("| 0.989 |", "| 0.990 |", 1))
    # a results file that changed under the page
    results = tmp_path / "results"
    results.mkdir()
    for file in (ROOT / "benchmarks" / "results").glob("*.json"):
        (results / file.name).write_text(file.read_text())
    data = json.loads((results / "sae-cpu.json").read_text())
    data["rows"][0]["circular_r2"] = 0.5
    (results / "sae-cpu.json").write_text(json.dumps(data))
    monkeypatch.setattr(report, "RESULTS", results)
    assert report.differences(page) == ["page: table 'sae-single' differs from benchmarks/results/sae-cpu.json"]


def test_scaling_table_is_the_median_of_its_rounds(report):
    data = json.loads((ROOT / "benchmarks" / "results" / "scaling-cpu.json").read_text())
    medians = sorted(run["workloads"]["toy_train_step"]["median_s"] for run in data["runs"]["2x1"])
    assert f"| {1e3 * medians[len(medians) // 2]:.1f} ms (" in report.render("scaling")
