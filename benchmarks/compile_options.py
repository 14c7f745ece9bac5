"""Compile and run time of the functions compiled with ``superpose._xla.CHEAP_COMPILE``, against XLA's defaults.

    python benchmarks/compile_options.py [--rounds 3]

Each function's arguments are recorded from one library call on a problem of the quick gallery's size
(the first call of the function); then, in ``--rounds`` paired rounds (XLA's default options and
CHEAP_COMPILE alternating, JAX's in-memory caches cleared before each), ``jax.jit(...).lower(...).compile()``
is timed, and the run time of the compiled function is ``best_time``'s median. Writes
``benchmarks/results/compile-options-cpu.json``, which ``benchmarks/report.py`` renders in
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import best_time, paired_rounds, print_table, ratio_summary, summary, write_results  # noqa: E402
from superpose._xla import CHEAP_COMPILE  # noqa: E402
from superpose.numerics.precision import float64_enabled  # noqa: E402

#: the static arguments of each measured function, by name
STATIC = {"_sign_updates": ("order", "max_sweeps"), "_measure": ("fn", "probes", "iterations", "is_complex"),
          "_polish": (), "_iterate": ("atoms", "gate", "grid_points"), "joint_newton": ("atoms", "gate", "steps"),
          "escape_saddles": ("atoms", "gate"), "_pieces": ("atoms", "gate", "gauge_spec")}


def record(spied: dict[str, tuple[Any, str]], call: Callable[[], Any]) -> dict[str, tuple[Callable, tuple, dict, bool]]:
    """{label: (plain function, args, kwargs, float64 on)} of the first call of each ``module.name`` in
    ``spied`` ({label: (module, name)}) while ``call()`` runs."""
    seen: dict[str, tuple[Callable, tuple, dict, bool]] = {}
    originals = {label: getattr(module, name) for label, (module, name) in spied.items()}

    def spy(label: str) -> Callable:
        def called(*args, **kwargs):
            seen.setdefault(label, (originals[label].__wrapped__, args, kwargs, bool(jax.config.jax_enable_x64)))
            return originals[label](*args, **kwargs)
        return called

    for label, (module, name) in spied.items():
        setattr(module, name, spy(label))
    try:
        call()
    finally:
        for label, (module, name) in spied.items():
            setattr(module, name, originals[label])
    return seen


def cases() -> dict[str, tuple[Callable, tuple, dict, bool]]:
    """Each measured function, by label, with the arguments of one library call."""
    from superpose.memory import sign_update
    from superpose.sae import CircleAtom, SelectionBudget, fit_sae
    from superpose.sae.planted import single_circle
    from superpose.scales import certify
    from superpose.toy import make_features

    # the modules themselves (a package may export a function of the module's name)
    retrieval, criterion, solve, certify_module, theory = (importlib.import_module(f"superpose.{name}") for name in (
        "memory.retrieval", "sae.criterion", "sae.solve", "scales.certify", "toy.theory"))

    key = jax.random.key(0)
    patterns = jnp.sign(jax.random.normal(key, (64, 100)))
    flips = jnp.where(jax.random.uniform(jax.random.fold_in(key, 1), (32, 100)) < 0.1, -1.0, 1.0)
    out = record({"memory sign updates (K 64, D 100, 32 states, order 3)": (retrieval, "_sign_updates")},
                 lambda: sign_update(patterns[:32] * flips, patterns, key, order=3))
    states = jax.random.normal(key, (8, 16))
    weights = jax.random.normal(jax.random.fold_in(key, 2), (16, 16)) / 4
    out |= record({"scales certificate (8 states of R^16, 16 probes)": (certify_module, "_measure")},
                  lambda: certify(lambda x, w: jnp.tanh(x @ w), states, weights, bound=10.0,
                                                 check=False))
    features = make_features(jnp.linspace(0.05, 0.95, 10)[:, None] * jnp.ones(2))
    out |= record({"toy exact-minimum polish (10 cells × 6 starts)": (theory, "_polish")},
                  lambda: theory.exact_minimum(features, jnp.ones((10, 2))))
    Z, _ = single_circle(key, 120, 4)

    def fit() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            fit_sae(Z, [CircleAtom(3)], "topk", "select", key=key, restarts=1, budget=SelectionBudget(2, 60.0))

    sae = " (one circle atom, H 3, n 120, p 4)"
    out |= record({"sae inner iteration" + sae: (solve, "_iterate"), "sae joint Newton" + sae: (solve, "joint_newton"),
                   "sae saddle escape" + sae: (solve, "escape_saddles"),
                   "sae criterion pieces" + sae: (criterion, "_pieces")}, fit)
    return out


def timer(fn: Callable, args: tuple, kwargs: dict, x64: bool, options: dict | None) -> Callable[[], dict]:
    """A timer of ``fn`` compiled with ``options``: {"compile_s", "run_s"}."""

    def measure() -> dict[str, float]:
        jax.clear_caches()
        jitted = jax.jit(fn, static_argnames=STATIC[fn.__name__], compiler_options=options)
        with float64_enabled() if x64 else contextlib.nullcontext():
            start = time.perf_counter()
            jitted.lower(*args, **kwargs).compile()
            compile_s = time.perf_counter() - start
            run_s = best_time(lambda: jitted(*args, **kwargs), repeats=5)
        return {"compile_s": compile_s, "run_s": run_s}

    return measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds, the sides alternating")
    args = parser.parse_args()
    if jax.default_backend() != "cpu":
        raise SystemExit("CHEAP_COMPILE applies on the CPU backend only")
    rows = []
    for label, (fn, call_args, call_kwargs, x64) in cases().items():
        samples = paired_rounds({side: timer(fn, call_args, call_kwargs, x64, options) for side, options in
                                 (("default", None), ("cheap", CHEAP_COMPILE))}, args.rounds)
        row = {"function": label, "name": fn.__name__}
        for what in ("compile_s", "run_s"):
            default, cheap = ([s[what] for s in samples[side]] for side in ("default", "cheap"))
            row[what] = {"default": summary(default), "cheap": summary(cheap),
                         "default_over_cheap": ratio_summary(default, cheap)}
        rows.append(row)
        print(f"{label}: compile {row['compile_s']['default']['median']:.2f} -> {row['compile_s']['cheap']['median']:.2f} s",
              flush=True)
    print_table([{"function": r["name"], "compile_default_s": r["compile_s"]["default"]["median"],
                  "compile_cheap_s": r["compile_s"]["cheap"]["median"],
                  "run_default_ms": 1e3 * r["run_s"]["default"]["median"],
                  "run_cheap_ms": 1e3 * r["run_s"]["cheap"]["median"]} for r in rows])
    print("wrote", write_results("compile-options", rows, {"rounds": args.rounds, "options": CHEAP_COMPILE}))


if __name__ == "__main__":
    main()
