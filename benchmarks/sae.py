"""Manifold SAE with selected hyperparameters against gamfit's, side by side in one run.

For each planted design and seed: superpose's ``fit_sae(..., "select")`` (one circle atom,
H = 3, TopK gate, in this process: the first fit of each shape includes its compilation) and
gamfit's ``gamfit.sae.sae_manifold_fit(X, K=1, d_atom=1, atom_topology="circle")`` (its defaults:
softmax assignment, REML/ARD selection) in a child process killed after ``--limit`` seconds. Both
get the same rows; each reports circular R² against the planted angle, wall time and how it ended.

    python benchmarks/sae.py                       # (60, 4), (120, 8), (240, 12) × seeds 0, 1, 2
    python benchmarks/sae.py --all-cells --seeds 0 # every sae-sweep cell
    python benchmarks/sae.py --gamfit-python /path/to/venv/bin/python   # where gamfit is installed

gamfit is benchmark-only (``pip install gamfit``, the ``bench`` extra); without it its rows say
"not installed". Results: ``benchmarks/results/sae-<backend>.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import jax
import numpy as np

from _common import print_table, write_results
from superpose.sae import CircleAtom, fit_sae, single_circle
from superpose.sae.metrics import circular_r2, explained_variance

SWEEP_ROWS, SWEEP_DIMENSIONS = (60, 90, 120, 180, 240), (4, 6, 8, 10, 12)
DEFAULT_CELLS = ((60, 4), (120, 8), (240, 12))

GAMFIT_CHILD = """
import json, sys, time
import numpy as np
data = np.load(sys.argv[1])
out = {"status": "error"}
try:
    import gamfit, gamfit.sae
    out["version"] = getattr(gamfit, "__version__", "?")
    start = time.perf_counter()
    model = gamfit.sae.sae_manifold_fit(data["Z"], K=1, d_atom=1, atom_topology="circle")
    out["seconds"] = time.perf_counter() - start
    out["model"] = type(model).__name__
    if out["model"] == "ManifoldSAE":
        out["coords"] = np.asarray(model.coords[0])[:, 0].tolist()
        out["verdict"] = str(model.termination.get("verdict"))
        out["reconstruction_r2"] = float(model.reconstruction_r2)
        out["log_lambda_smooth"] = np.asarray(model.selected_log_lambda_smooth, float).ravel().tolist()
        out["status"] = "model"
    else:
        out["status"] = "no atom kept (" + out["model"] + ")"
except ImportError as error:
    out["status"] = "not installed: " + str(error)
except Exception as error:
    out["status"] = "error: " + type(error).__name__ + ": " + str(error)[:300]
with open(sys.argv[2], "w") as handle:
    json.dump(out, handle)
"""


def run_gamfit(Z: np.ndarray, angles: np.ndarray, python: str, limit: float) -> dict:
    """gamfit's fit of Z in a child process (killed after ``limit`` s), scored against the angles."""
    with tempfile.TemporaryDirectory() as folder:
        data, result = Path(folder) / "data.npz", Path(folder) / "result.json"
        np.savez(data, Z=Z)
        start = time.perf_counter()
        try:
            subprocess.run([python, "-c", GAMFIT_CHILD, str(data), str(result)], timeout=limit, check=False,
                           capture_output=True, env={"RAYON_NUM_THREADS": "2", "PATH": "/usr/bin:/bin"})
        except subprocess.TimeoutExpired:
            return {"status": f"timeout after {limit:g} s", "seconds": limit}
        wall = time.perf_counter() - start
        if not result.exists():
            return {"status": "the child process died without a result", "seconds": wall}
        out = json.loads(result.read_text())
    row = {"status": out["status"] if out["status"] != "model" else out.get("verdict", "model"),
           "seconds": out.get("seconds", wall), "version": out.get("version")}
    if "coords" in out:
        t = np.asarray(out["coords"])
        row["circular_r2"] = circular_r2(angles, t % 1.0)
        row["reconstruction_r2"] = out["reconstruction_r2"]
        row["log_lambda_smooth"] = out["log_lambda_smooth"]
    return row


def run_superpose(Z: np.ndarray, angles: np.ndarray, seed: int) -> dict:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fit = fit_sae(Z, [CircleAtom(3)], "topk", "select", key=jax.random.key(seed), restarts=2)
    seconds = time.perf_counter() - start
    return {"status": fit.selection.status.split(":")[0], "seconds": seconds, "evaluations": len(fit.selection.trace),
            "circular_r2": circular_r2(angles, np.asarray(fit.encoding.coords[:, 0])),
            "reconstruction_r2": explained_variance(Z, fit.model.decode(fit.encoding)),
            "log_lambda_smooth": [float(v) for v in np.asarray(fit.hyperparameters.log_lambda_smooth)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--all-cells", action="store_true", help="every sae-sweep cell (25) instead of three")
    parser.add_argument("--limit", type=float, default=120.0, help="seconds before a gamfit child is killed")
    parser.add_argument("--gamfit-python", default=sys.executable, help="the Python that has gamfit installed")
    parser.add_argument("--skip-gamfit", action="store_true")
    args = parser.parse_args()
    cells = [(n, p) for n in SWEEP_ROWS for p in SWEEP_DIMENSIONS] if args.all_cells else list(DEFAULT_CELLS)
    rows = []
    for n, p in cells:
        for seed in args.seeds:
            Z, truth = single_circle(jax.random.key(seed), n, p)
            Z, angles = np.asarray(Z, np.float64), np.asarray(truth.angles)[:, 0]
            ours = run_superpose(Z, angles, seed)
            theirs = ({"status": "skipped"} if args.skip_gamfit
                      else run_gamfit(Z, angles, args.gamfit_python, args.limit))
            for name, result in (("superpose", ours), ("gamfit", theirs)):
                rows.append({"design": f"single_circle({n}, {p})", "seed": seed, "library": name, **result})
            print(f"n={n} p={p} seed={seed}: superpose R² {ours['circular_r2']:.3f} in {ours['seconds']:.1f} s "
                  f"({ours['status']}); gamfit {theirs.get('circular_r2', float('nan')):.3f} in "
                  f"{theirs.get('seconds', float('nan')):.1f} s ({theirs['status']})", flush=True)
    print_table([{k: v for k, v in r.items() if k not in ("log_lambda_smooth", "version")} for r in rows])
    path = write_results("sae", rows, {"limit_seconds": args.limit, "cells": cells, "seeds": args.seeds})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
