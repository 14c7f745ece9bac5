"""Test experiments registered for the runner tests (not part of the built-in registry)."""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from superpose.runner import Experiment, ExperimentConfig, RunContext, param

CALLS: list[str] = []


@dataclasses.dataclass(frozen=True)
class CellsConfig(ExperimentConfig):
    cells: int = param(4, "number of cells", low=1)
    delay: float = param(0.0, "seconds per cell", low=0)
    fail_at: int = param(-1, "raise in this cell (-1: never)", low=-1)


def cells_fn(config: CellsConfig, run: RunContext) -> None:
    """A sweep of cells that records which cells it computed."""

    def compute(name: str) -> dict[str, np.ndarray]:
        index = int(name.split("-")[1])
        if index == config.fail_at:
            raise RuntimeError(f"cell {index} failed on purpose")
        CALLS.append(name)
        marker = os.environ.get("SUPERPOSE_TEST_MARKER")
        if marker:
            with open(marker, "a") as handle:
                handle.write(name + "\n")
        time.sleep(config.delay)
        return {"value": np.array([index * 1.5])}

    results = run.cells([f"cell-{i}" for i in range(config.cells)], compute)
    run.log_metrics(total=float(sum(r["value"][0] for r in results.values())))
    run.save_arrays("values", values=np.array([r["value"][0] for r in results.values()]))


CELLS = Experiment("test-cells", "cells for tests", CellsConfig, cells_fn, {"cells": 2})


def broken_fn(config: ExperimentConfig, run: RunContext) -> None:
    raise ValueError("this experiment is broken on purpose")


BROKEN = Experiment("test-broken", "always fails", ExperimentConfig, broken_fn)
