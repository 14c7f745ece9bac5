"""Shared helpers for the benchmark scripts: timing, machine description, result files."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax

RESULTS = Path(__file__).parent / "results"


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "jax_version": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
    }


def best_time(fn: Callable[[], Any], repeats: int = 5, min_time: float = 0.2) -> float:
    """Median seconds per call of ``fn`` (already compiled), over ``repeats`` timed batches."""
    jax.block_until_ready(fn())  # warm-up / compile
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            jax.block_until_ready(fn())
        elapsed = time.perf_counter() - start
        if elapsed >= min_time or calls >= 1 << 20:
            break
        calls *= 2
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            jax.block_until_ready(fn())
        samples.append((time.perf_counter() - start) / calls)
    return statistics.median(samples)


def write_results(name: str, rows: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> Path:
    """Writes ``benchmarks/results/<name>-<backend>.json`` and returns its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{jax.default_backend()}.json"
    path.write_text(json.dumps({"machine": machine(), "rows": rows, **(extra or {})}, indent=2) + "\n")
    return path


def print_table(rows: list[dict[str, Any]]) -> None:
    """Prints rows as an aligned text table."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    text = [[f"{r[k]:.4g}" if isinstance(r.get(k), float) else str(r.get(k, "")) for k in keys] for r in rows]
    widths = [max(len(k), *(len(t[i]) for t in text)) for i, k in enumerate(keys)]
    print("  ".join(k.ljust(w) for k, w in zip(keys, widths)))
    for t in text:
        print("  ".join(v.ljust(w) for v, w in zip(t, widths)))
