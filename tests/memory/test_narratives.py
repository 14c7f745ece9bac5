"""An experiment page's findings are computed from its run: a config that changes the answer changes the note."""

from __future__ import annotations

import json

import numpy as np

from superpose.memory.experiments import grid_minima
from superpose.runner import run_experiment

TINY = {"memories": 3, "grid": 25, "features": 1024, "segments": 1, "steps_per_segment": 1}


def landscape_note(tmp_path, beta: str) -> tuple[str, dict]:
    record = run_experiment("memory-landscape", {**TINY, "betas": beta}, tmp_path / beta)
    assert record.status == "finished"
    return json.loads((tmp_path / beta / "run.json").read_text())["notes"][0], record.metrics[f"beta={beta}"]


def test_grid_minima_finds_planted_minima():
    x = np.linspace(-3, 3, 31)
    X, Y = np.meshgrid(x, x, indexing="ij")
    energy = -np.exp(-((X - 1.0) ** 2 + Y**2)) - np.exp(-((X + 1.6) ** 2 + (Y - 2.0) ** 2))
    assert sorted(map(tuple, grid_minima(energy))) == [(7, 25), (20, 15)]  # x = −1.6, y = 2 and x = 1, y = 0


def test_landscape_note_follows_beta(tmp_path):
    # planted truth: at β → 0 the energy is ½|x − mean ξ|² + const (one basin); at large β, with the memories
    # a few units apart, one basin at each of the K = 3 memories
    smooth, smooth_metrics = landscape_note(tmp_path, "0.01")
    sharp, sharp_metrics = landscape_note(tmp_path, "10")
    assert smooth_metrics["exact_minima"] == 1 and sharp_metrics["exact_minima"] == 3
    assert sharp_metrics["memories_with_exact_minimum"] == 3
    assert "the exact energy has 1 local minimum on the 25×25 grid" in smooth
    assert "the exact energy has 3 local minima on the 25×25 grid (3 of the 3 memories" in sharp
    assert f"{sharp_metrics['clipped_fraction']:.0%} of the grid is clipped" in sharp
