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


def _drdam_results(end_to_end, fractions):
    ratio = {"median": 12.0, "low": 11.0, "high": 13.0}
    rows = [{"D": 30, "Y": 100_000, "recall_speedup_end_to_end": end_to_end, "egrad_speedup": ratio,
             "recall_speedup_compiled_vs_call": ratio}]
    rows += [{"D": 784, "Y": y, "matmul_fraction": f} for y, f in zip((10_000, 100_000), fractions)]
    return {"rows": rows, "matmul_gflops": 300.0}


@pytest.mark.parametrize("end_to_end, fractions, recall_verdict, ceiling_verdict", [
    ({"median": 14.0, "low": 10.5, "high": 15.0}, (0.8, 0.6), "the goal is met.", ": met."),
    ({"median": 10.2, "low": 9.0, "high": 11.0}, (0.8, 0.4), "the goal is met in the median.", ": not met."),
    ({"median": 9.9, "low": 9.0, "high": 11.0}, (0.49, 0.9), "the goal is not met.", ": not met."),
])
def test_drdam_goal_sentences_follow_the_numbers(report, end_to_end, fractions, recall_verdict, ceiling_verdict):
    text = report.render_drdam_goals(_drdam_results(end_to_end, fractions))
    recall, ceiling = text.strip().split("\n\n")
    assert recall_verdict in recall and f"{end_to_end['median']:.1f}× ({end_to_end['low']:.1f}–" in recall
    assert ceiling.endswith(ceiling_verdict) and f"{fractions[0]:.2f} (Y = 10⁴)" in ceiling


def test_paired_rounds_alternate_the_order_and_keep_every_sample():
    spec = importlib.util.spec_from_file_location("benchmark_common", ROOT / "benchmarks" / "_common.py")
    common = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(common)
    paired_rounds, ratio_summary = common.paired_rounds, common.ratio_summary

    calls = []
    samples = paired_rounds({"a": lambda: calls.append("a") or 2.0, "b": lambda: calls.append("b") or 1.0}, 3)
    assert calls == ["a", "b", "b", "a", "a", "b"]
    assert samples == {"a": [2.0, 2.0, 2.0], "b": [1.0, 1.0, 1.0]}
    assert ratio_summary([2.0, 6.0, 3.0], [1.0, 2.0, 1.0]) == {"median": 3.0, "low": 2.0, "high": 3.0,
                                                              "samples": [2.0, 3.0, 3.0]}


def test_every_quoted_speed_up_has_at_least_three_paired_rounds():
    results = ROOT / "benchmarks" / "results"
    rounds = {
        "numerics-cpu.json": lambda d: d["rounds"],
        "memory-cpu.json": lambda d: min(len(samples) for r in d["rows"] for samples in r["rounds"].values()),
        "memory-ablation-cpu.json": lambda d: min(len(v) for r in d["rows"] for v in r["samples"].values()),
        "toy-cpu.json": lambda d: min(len(r["s_per_step"]["samples"]) for r in d["rows"]),
        "recall-cpu.json": lambda d: min(len(side["rounds"]) for side in (d["superpose"], d["cymr"], d["jaxcmr"])),
    }
    for name, count in rounds.items():
        assert count(json.loads((results / name).read_text())) >= 3, name
