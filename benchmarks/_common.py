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


def _cpu_model() -> str:
    """The CPU's model name and family/model numbers from /proc/cpuinfo (Linux), else ''."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    fields = dict(line.split(":", 1) for line in info.splitlines()[:30] if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    return f"{fields.get('model name', '')} (family {fields.get('cpu family', '?')}, model {fields.get('model', '?')})"


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": _cpu_model(),
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


def paired_rounds(timers: dict[str, Callable[[], Any]], rounds: int = 3) -> dict[str, list[Any]]:
    """Seconds from each timer, ``rounds`` times, the sides alternating: round r runs the timers in
    their order when r is even and in reverse when odd, so that no side always goes first on a machine
    whose speed drifts. Returns every sample (what each timer returned: seconds, or a child's
    measurements), by timer name."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    samples: dict[str, list[Any]] = {name: [] for name in timers}
    for r in range(rounds):
        for name in (list(timers) if r % 2 == 0 else list(reversed(timers))):
            samples[name].append(timers[name]())
    return samples


def summary(values: list[float]) -> dict[str, Any]:
    """Median and range of samples (the median of an even count is the mean of the middle two)."""
    return {"median": statistics.median(values), "low": min(values), "high": max(values), "samples": list(values)}


def ratio_summary(slower: list[float], faster: list[float]) -> dict[str, Any]:
    """The speed-up ``slower / faster`` of paired samples, round by round: median and range."""
    if len(slower) != len(faster):
        raise ValueError("paired samples must have the same length")
    return summary([a / b for a, b in zip(slower, faster)])


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
