"""Manifold SAE with selected hyperparameters against gamfit's, side by side in one run.

For each planted design and seed, superpose's ``fit_sae(..., "select")`` in this process (the
first fit of each shape includes its compilation) and gamfit's ``gamfit.sae.sae_manifold_fit`` in
a child process killed after ``--limit`` seconds. Both get the same rows and are scored the same
way against the planted truth: circular R² of each planted circle's matched atom (over the rows
that use it) and, with several circles, the overlap of each atom's curve span with its plane.

Designs (``--designs``):
- ``single``: ``single_circle(n, p)``, one circle atom, H = 3, TopK gate, two starts; gamfit
  ``K=1, d_atom=1, atom_topology="circle"`` with its defaults (softmax assignment).
- ``two``: ``two_circles`` (600 rows in R^24, 40% of rows on both circles) as sae-circles fits
  it (K = 2, H = 3, binary gate, three starts); gamfit ``K=2`` with ``assignment="threshold_gate"``
  (its gate that lets several atoms be on in a row).
- ``superposed``: ``superposed_circles`` (8 circles in R^12, half the rows on two, N = 4 000) as
  sae-superposed fits it (K = 8, H = 1, binary gate, one start, 60 evaluations / 600 s, inner
  tolerance 1e-7); gamfit ``K=8`` with ``assignment="threshold_gate"``.

    python benchmarks/sae.py                        # single: (60, 4), (120, 8), (240, 12) × seeds 0, 1, 2
    python benchmarks/sae.py --all-cells --seeds 0  # every sae-sweep cell
    python benchmarks/sae.py --designs two superposed --limit 300
    python benchmarks/sae.py --gamfit-python /path/to/venv/bin/python   # where gamfit is installed
    python benchmarks/sae.py --scale 10000 100000   # fixed strengths, 16 circles in R^64: time and memory

gamfit is benchmark-only (``pip install gamfit``, the ``bench`` extra); without it its rows say
"not installed". Results: ``benchmarks/results/sae-<backend>.json`` for ``single``, else
``sae-<designs>-<backend>.json``.
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
from superpose.sae import CircleAtom, SelectionBudget, fit_sae, single_circle, superposed_circles, two_circles
from superpose.sae.metrics import circular_r2, curve_span, explained_variance, match_atoms, plane_overlap
from superpose.sae.experiments import SaeCirclesConfig, SaeSuperposedConfig

SWEEP_ROWS, SWEEP_DIMENSIONS = (60, 90, 120, 180, 240), (4, 6, 8, 10, 12)
DEFAULT_CELLS = ((60, 4), (120, 8), (240, 12))
GRID = np.linspace(0.0, 1.0, 256, endpoint=False)[:, None]  # chart points of a circle atom (period 1)

GAMFIT_CHILD = """
import json, sys, time
import numpy as np
data = np.load(sys.argv[1])
options = json.loads(sys.argv[3])
out = {"status": "error"}
try:
    import gamfit, gamfit.sae
    out["version"] = getattr(gamfit, "__version__", "?")
    start = time.perf_counter()
    model = gamfit.sae.sae_manifold_fit(data["Z"], d_atom=1, atom_topology="circle", **options)
    out["seconds"] = time.perf_counter() - start
    out["model"] = type(model).__name__
    if out["model"] == "ManifoldSAE":
        out["coords"] = [np.asarray(c)[:, 0].tolist() for c in model.coords]
        grid = np.asarray(data["grid"])
        out["curves"] = [np.asarray(model.atom_curve(k, grid)).tolist() for k in range(len(model.coords))]
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


def score(coords: np.ndarray, curves: list[np.ndarray] | None, truth) -> dict:
    """The same scoring for both libraries: atoms matched to planted circles (on plane overlap where
    there are several, else the one atom), then per circle the overlap and the circular R² of the
    atom's coordinate (period 1) against the planted angle over the rows that use the circle.

    coords: (N, K) each atom's circle coordinate; curves: K arrays (256, p) of each atom's curve."""
    planes, angles, support = (np.asarray(truth.planes), np.asarray(truth.angles), np.asarray(truth.support))
    C, K = angles.shape[1], coords.shape[1]
    if C == 1 and K == 1:
        return {"circular_r2": [circular_r2(angles[:, 0], coords[:, 0] % 1.0, mask=support[:, 0])]}
    overlap = np.zeros((K, C))
    for k, curve in enumerate(curves):
        try:
            span = curve_span(np.asarray(curve))
        except ValueError:  # a collapsed atom spans no plane
            continue
        overlap[k] = [plane_overlap(span, planes[c]) for c in range(C)]
    matching = match_atoms(overlap)
    pairs = list(zip(matching.fitted, matching.planted))
    return {"plane_overlap": [float(overlap[k, c]) for k, c in pairs],
            "circular_r2": [circular_r2(angles[:, c], coords[:, k] % 1.0, mask=support[:, c]) for k, c in pairs]}


def run_gamfit(Z: np.ndarray, truth, options: dict, python: str, limit: float) -> dict:
    """gamfit's fit of Z in a child process (killed after ``limit`` s), scored against the truth."""
    with tempfile.TemporaryDirectory() as folder:
        data, result = Path(folder) / "data.npz", Path(folder) / "result.json"
        np.savez(data, Z=Z, grid=GRID)
        start = time.perf_counter()
        try:
            subprocess.run([python, "-c", GAMFIT_CHILD, str(data), str(result), json.dumps(options)], timeout=limit,
                           check=False, capture_output=True, env={"RAYON_NUM_THREADS": "2", "PATH": "/usr/bin:/bin"})
        except subprocess.TimeoutExpired:
            return {"status": f"timeout after {limit:g} s", "seconds": limit}
        wall = time.perf_counter() - start
        if not result.exists():
            return {"status": "the child process died without a result", "seconds": wall}
        out = json.loads(result.read_text())
    row = {"status": out["status"] if out["status"] != "model" else out.get("verdict", "model"),
           "seconds": out.get("seconds", wall), "version": out.get("version")}
    if "coords" in out:
        row.update(score(np.stack(out["coords"], axis=1), out["curves"], truth))
        row["reconstruction_r2"] = out["reconstruction_r2"]
        row["log_lambda_smooth"] = out["log_lambda_smooth"]
    return row


def run_superpose(Z: np.ndarray, truth, design: str, seed: int) -> dict:
    if design == "single":
        atoms, gate, options = [CircleAtom(3)], "topk", {"restarts": 2}
    elif design == "two":  # as sae-circles fits it, from its defaults
        c = SaeCirclesConfig()
        atoms, gate = [CircleAtom(c.harmonics)] * 2, c.gate
        options = {"restarts": c.restarts, "budget": SelectionBudget(c.evaluations, c.seconds)}
    else:  # as sae-superposed fits it, from its defaults
        c = SaeSuperposedConfig()
        atoms, gate = [CircleAtom(c.harmonics)] * np.asarray(truth.planes).shape[0], "binary"
        options = {"restarts": c.restarts, "budget": SelectionBudget(c.evaluations, c.seconds, c.inner_tol)}
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fit = fit_sae(Z, atoms, gate, "select", key=jax.random.key(seed), **options)
    seconds = time.perf_counter() - start
    model = fit.model
    coords = np.stack([np.asarray(fit.encoding.coords)[:, model.coord_columns(k)][:, 0]
                       for k in range(model.num_atoms)], axis=1)
    curves = [np.asarray(model.atom_curve(k, 256)) for k in range(model.num_atoms)]
    return {"status": fit.selection.status.split(":")[0], "seconds": seconds, "evaluations": len(fit.selection.trace),
            **score(coords, curves, truth), "reconstruction_r2": explained_variance(Z, model.decode(fit.encoding)),
            "log_lambda_smooth": [float(v) for v in np.asarray(fit.hyperparameters.log_lambda_smooth)]}


def problems(args) -> list[tuple[str, str, dict, tuple, int]]:
    """(design, label, gamfit options, (Z, truth), seed) for every design and seed asked for."""
    out = []
    for design in args.designs:
        for seed in args.seeds:
            key = jax.random.key(seed)
            if design == "single":
                cells = ([(n, p) for n in SWEEP_ROWS for p in SWEEP_DIMENSIONS] if args.all_cells
                         else list(DEFAULT_CELLS))
                for n, p in cells:
                    out.append((design, f"single_circle({n}, {p})", {"K": 1}, single_circle(key, n, p), seed))
            elif design == "two":
                out.append((design, "two_circles(600, 24)", {"K": 2, "assignment": "threshold_gate"},
                            two_circles(key), seed))
            else:
                out.append((design, "superposed_circles(4000, 12, 8)", {"K": 8, "assignment": "threshold_gate"},
                            superposed_circles(key), seed))
    return out


def summary(result: dict) -> str:
    r2 = result.get("circular_r2")
    overlap = result.get("plane_overlap")
    text = f"min R² {min(r2):.3f}" if r2 else "no model"
    if overlap:
        text += f", min overlap {min(overlap):.3f}"
    return f"{text} in {result.get('seconds', float('nan')):.1f} s ({result['status']})"


def run_scale(rows: int, p: int, circles: int, iterations: int, seed: int) -> dict:
    """One fit at fixed strengths on ``circles`` random circles in R^p, 1 or 2 per row (K = circles, H = 1, binary
    gate), timed in parts: the start, the first inner iteration (compiles), then ``iterations`` more.
    Run in a child process of its own, so that its peak resident memory is the fit's."""
    import resource

    from superpose.numerics import float64_enabled
    from superpose.sae import SaeHyperparameters, make_gate
    from superpose.sae.init import initial_params
    from superpose.sae.metrics import circle_recovery
    from superpose.sae.model import fit_from_params
    from superpose.sae.solve import joint_memory, solve

    from superpose.sae.planted import _run, exact_counts

    # superposed_circles' draw (random planes, half the rows on two circles) without its 2C > p check
    Z, truth = _run(jax.random.key(seed), [1.0] * circles, None, 0.04, n=rows, p=p, orthogonal=False, relative=True,
                    support_spec=("one_or_two", exact_counts(rows, (0.5, 0.5))[0]))
    atoms, gate = tuple(CircleAtom(1) for _ in range(circles)), make_gate("binary")
    hyper = SaeHyperparameters.create([1] * circles, log_lambda_sparse=-3.0, log_lambda_smooth=-4.0, log_ard=-6.0)
    with float64_enabled():
        Zj = jax.numpy.asarray(np.asarray(Z), jax.numpy.float64)
        start = time.perf_counter()
        params = initial_params(atoms, gate, np.asarray(Z), jax.random.key(seed))
        start_seconds = time.perf_counter() - start
        start = time.perf_counter()
        params, first = solve(atoms, gate, params, hyper, Zj, max_iterations=1)
        first_seconds = time.perf_counter() - start
        start = time.perf_counter()
        params, report = solve(atoms, gate, params, hyper, Zj, max_iterations=iterations)
        solve_seconds = time.perf_counter() - start
        fit = fit_from_params(atoms, gate, hyper, params, report, [report.loss], "float64")
        recovery = circle_recovery(fit.model, fit.encoding, truth)
        ev = explained_variance(np.asarray(Z), fit.model.decode(fit.encoding))
    return {"design": f"{circles} circles in R^{p}, 1 or 2 per row, N = {rows}", "seed": seed, "rows": rows, "p": p, "K": circles,
            "start_seconds": start_seconds, "first_iteration_seconds": first_seconds,
            "seconds_per_iteration": solve_seconds / report.iterations, "iterations": report.iterations,
            "status": report.status, "explained_variance": ev,
            "min_plane_overlap": min(recovery["plane_overlap"]), "min_circular_r2": min(recovery["circular_r2"]),
            "joint_phase_gib": joint_memory(gate, params) / 2**30,
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--designs", nargs="+", default=["single"], choices=("single", "two", "superposed"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--all-cells", action="store_true", help="every sae-sweep cell (25) instead of three")
    parser.add_argument("--limit", type=float, default=120.0, help="seconds before a gamfit child is killed")
    parser.add_argument("--gamfit-python", default=sys.executable, help="the Python that has gamfit installed")
    parser.add_argument("--skip-gamfit", action="store_true")
    parser.add_argument("--scale", type=int, nargs="*", metavar="ROWS",
                        help="instead: fixed-strength fits of 16 circles in R^64 (1 or 2 per row, ROWS rows), each in a child process "
                             "(default rows 10 000 and 100 000): time per inner iteration and peak memory")
    parser.add_argument("--scale-iterations", type=int, default=10)
    parser.add_argument("--scale-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scale_child:
        print("RESULT " + json.dumps(run_scale(args.scale_child, 64, 16, args.scale_iterations, args.seeds[0])))
        return
    if args.scale is not None:
        rows = []
        for n in args.scale or [10_000, 100_000]:
            child = subprocess.run([sys.executable, __file__, "--scale-child", str(n), "--scale-iterations",
                                    str(args.scale_iterations), "--seeds", str(args.seeds[0])],
                                   capture_output=True, text=True, check=False)
            lines = [line for line in child.stdout.splitlines() if line.startswith("RESULT ")]
            rows.append(json.loads(lines[-1][7:]) if lines else {"rows": n, "status": "failed: " + child.stderr[-500:]})
            print(rows[-1], flush=True)
        print_table(rows)
        print(f"wrote {write_results('sae-scale', rows, {'iterations': args.scale_iterations})}")
        return
    rows = []
    for design, label, gamfit_options, (Z, truth), seed in problems(args):
        Z = np.asarray(Z, np.float64)
        ours = run_superpose(Z, truth, design, seed)
        theirs = ({"status": "skipped"} if args.skip_gamfit
                  else run_gamfit(Z, truth, gamfit_options, args.gamfit_python, args.limit))
        for name, result in (("superpose", ours), ("gamfit", theirs)):
            rows.append({"design": label, "seed": seed, "library": name, **result,
                         **({"gamfit_options": gamfit_options} if name == "gamfit" else {})})
        print(f"{label} seed={seed}: superpose {summary(ours)}; gamfit {summary(theirs)}", flush=True)
    print_table([{k: (min(v) if k in ("circular_r2", "plane_overlap") else v) for k, v in r.items()
                  if k not in ("log_lambda_smooth", "version", "gamfit_options")} for r in rows])
    name = "sae" if args.designs == ["single"] else "sae-" + "-".join(args.designs)
    path = write_results(name, rows, {"limit_seconds": args.limit, "designs": args.designs, "seeds": args.seeds,
                                      "all_cells": args.all_cells})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
