"""CMR likelihood and fitting speed: superpose against cymr and jaxcmr, side by side, in one run.

Data: Morton2013 (psifr's copy), subject 1: 48 lists of 24 items, 587 correct recalls, 48 stops.

- superpose: one parameter set per call, and a differential-evolution population of 15 × 11 sets
  in one call (also two populations at once from two threads, as fit's restarts run); then full
  fits (3 DE restarts at fit's default tol 1e-2 + float64 L-BFGS polish), the first in the process (it
  compiles) and a second with other seeds (compiled functions reused).
- cymr (``pip install cymr``, imported here): its CMR with localist item patterns over the 24
  study positions and 11 free parameters (B_enc, B_start, B_rec, Lfc, Lcf, P1, P2, T, X1, X2, Acf);
  its choice rule is exp(2a/T). One likelihood evaluation, and ``fit_subject`` with scipy DE at tol 1e-3.
- jaxcmr 0.1.1 (its own virtualenv, Python >= 3.12; point ``JAXCMR_PYTHON`` at its interpreter):
  benchmarks/peers/jaxcmr_runner.py times its likelihood and ``ScipyDE`` fit on the same lists.

    python benchmarks/recall.py                  # everything (peer fits take minutes)
    python benchmarks/recall.py --peer-fits 0    # likelihood speed only for the peers
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import jax
import numpy as np

from _common import best_time, print_table, write_results
from superpose.recall import (
    DEFAULT_FIXED,
    DEFAULT_FREE,
    fit_subject,
    load_sample,
    make_parameters,
    negative_log_likelihood,
    population_nll,
    prepare,
)
from superpose.recall.parameters import uniform_population

HERE = Path(__file__).parent


def superpose_rates(trials) -> dict[str, float]:
    key = jax.random.key(0)
    population = uniform_population(key, 15 * len(DEFAULT_FREE), DEFAULT_FREE, DEFAULT_FIXED)
    one = make_parameters({n: float(np.asarray(v)[0]) for n, v in zip(population._fields, population)})
    single = best_time(lambda: negative_log_likelihood(one, trials))
    per_call = best_time(lambda: population_nll(population, trials))
    # two populations at once from two threads (fit runs its restarts this way)
    others = [uniform_population(jax.random.fold_in(key, i), 165, DEFAULT_FREE, DEFAULT_FIXED) for i in (1, 2)]
    calls = 40

    def work(pop):
        for _ in range(calls):
            jax.block_until_ready(population_nll(pop, trials))

    threads = [threading.Thread(target=work, args=(p,)) for p in others]
    start = time.perf_counter()
    [t.start() for t in threads]
    [t.join() for t in threads]
    threaded = (time.perf_counter() - start) / (2 * calls * 165)
    return {"single_ms": single * 1e3, "population_ms_per_set": per_call / 165 * 1e3,
            "two_threads_ms_per_set": threaded * 1e3}


def superpose_fits(trials, restarts: int) -> list[dict[str, float]]:
    out = []
    for label, seed in (("first in process (compiles)", 0), ("second (compiled)", 1)):
        result = fit_subject(trials, restarts=restarts, seed=seed, subject=1)
        out.append({"run": label, "seconds": result.wall_seconds, "nll": result.nll,
                    "restart_nlls": result.restart_nlls, "evaluations": result.evaluations,
                    "polish_gain": result.polish_gain})
    return out


def cymr_setup(raw):
    from cymr import cmr

    data = raw[raw.subject == 1].copy()
    study = data[data.trial_type == "study"].set_index(["list", "item"])["position"]
    data["item_index"] = [int(study.get((lst, item), 0)) - 1 for lst, item in zip(data["list"], data["item"])]
    data = data[data.item_index >= 0]  # intrusions out, as superpose leaves them out of the likelihood
    data["item"] = [f"position{i}" for i in data["item_index"]]
    patterns = {"items": np.array([f"position{i}" for i in range(24)], dtype=object), "vector": {"loc": np.eye(24)}}
    definition = cmr.CMRParameters()
    definition.set_fixed(Afc=0, Aff=0, Dff=1)
    definition.set_dependent(Dfc="1 - Lfc", Dcf="1 - Lcf")
    definition.set_free(B_enc=(0, 1), B_start=(0, 1), B_rec=(0, 1), Lfc=(0, 1), Lcf=(0, 1), P1=(0, 10),
                        P2=(0.1, 5), T=(0.01, 10), X1=(0, 1), X2=(0, 5), Acf=(0, 1))
    definition.set_sublayers(f=["task"], c=["task"])
    weights = {(("task", "item"), ("task", "item")): "loc"}
    definition.set_weights("fc", weights)
    definition.set_weights("cf", weights)
    return cmr.CMR(), data, definition, patterns


def cymr_measure(raw, fits: int) -> dict:
    model, data, definition, patterns = cymr_setup(raw)
    study, recall = model.prepare_sim(data)
    param = definition.eval_dependent({"B_enc": 0.7, "B_start": 0.3, "B_rec": 0.8, "Lfc": 0.3, "Lcf": 0.3, "P1": 2.0,
                                       "P2": 1.0, "T": 0.1, "X1": 0.01, "X2": 0.3, "Acf": 0.1, "Afc": 0, "Aff": 0,
                                       "Dff": 1})
    n = 20
    start = time.perf_counter()
    for _ in range(n):
        model.likelihood_subject(study, recall, param, definition, patterns)
    out = {"single_ms": (time.perf_counter() - start) / n * 1e3, "fits": []}
    for run in range(fits):
        start = time.perf_counter()
        _, logl, _, _ = model.fit_subject(data, definition, patterns, tol=1e-3, seed=run)
        out["fits"].append({"seconds": time.perf_counter() - start, "nll": -float(logl)})
    return out


def jaxcmr_measure(dataset, fits: int) -> dict | None:
    python = os.environ.get("JAXCMR_PYTHON")
    if not python:
        return None
    clean = dataset.clean_recalls()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "subject1.npz"
        np.savez(path, subject=dataset.subject[:, None], listLength=dataset.list_length[:, None],
                 pres_itemnos=np.tile(np.arange(1, 25), (dataset.n_lists, 1)),
                 recalls=np.pad(clean, ((0, 0), (0, 24 - clean.shape[1]))))
        done = subprocess.run([python, str(HERE / "peers" / "jaxcmr_runner.py"), str(path), str(fits)],
                              capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--restarts", type=int, default=3, help="superpose DE restarts per fit")
    parser.add_argument("--peer-fits", type=int, default=1, help="full fits per peer (each takes minutes)")
    args = parser.parse_args()

    from psifr import fr

    raw = fr.sample_data("Morton2013")
    dataset = load_sample("Morton2013").select(subjects=[1])
    trials = prepare(dataset)
    rows = []
    extra: dict = {"data": "Morton2013 subject 1: 48 lists of 24, 587 recalls, 48 stops"}

    fits = superpose_fits(trials, args.restarts)  # first, so that the first fit really is cold
    rates = superpose_rates(trials)
    extra["superpose"] = {**rates, "fits": fits}
    rows.append({"peer": "superpose", "single eval (ms)": rates["single_ms"],
                 "population (ms/set)": rates["population_ms_per_set"],
                 "2 threads (ms/set)": rates["two_threads_ms_per_set"],
                 "fit (s)": f"{fits[0]['seconds']:.1f} / {fits[1]['seconds']:.1f}",
                 "NLL": f"{fits[0]['nll']:.1f} / {fits[1]['nll']:.1f}"})
    try:
        cy = cymr_measure(raw, args.peer_fits)
    except ImportError:
        cy = None
        print("cymr is not installed (pip install cymr): skipped")
    if cy is not None:
        extra["cymr"] = cy
        rows.append({"peer": "cymr", "single eval (ms)": cy["single_ms"],
                     "fit (s)": " / ".join(f"{f['seconds']:.1f}" for f in cy["fits"]),
                     "NLL": " / ".join(f"{f['nll']:.1f}" for f in cy["fits"])})
    jx = jaxcmr_measure(dataset, args.peer_fits)
    if jx is None:
        print("JAXCMR_PYTHON is not set: jaxcmr skipped")
    else:
        extra["jaxcmr"] = jx
        rows.append({"peer": "jaxcmr 0.1.1", "single eval (ms)": jx["single_ms"],
                     "population (ms/set)": jx["population_ms_per_set"],
                     "fit (s)": " / ".join(f"{f['seconds']:.1f}" for f in jx["fits"]),
                     "NLL": " / ".join(f"{f['nll']:.1f}" for f in jx["fits"])})
    best_superpose = min(rates["population_ms_per_set"], rates["two_threads_ms_per_set"])
    ratios = {}
    if cy is not None:
        ratios["vs_cymr_single"] = cy["single_ms"] / best_superpose
    if jx is not None:
        ratios["vs_jaxcmr_single"] = jx["single_ms"] / best_superpose
        ratios["vs_jaxcmr_population"] = jx["population_ms_per_set"] / best_superpose
        if jx["fits"]:
            ratios["fit_time_vs_jaxcmr_cold"] = jx["fits"][0]["seconds"] / fits[0]["seconds"]
            ratios["fit_time_vs_jaxcmr_compiled"] = jx["fits"][0]["seconds"] / fits[1]["seconds"]
    extra["speed_ratios"] = ratios
    print_table(rows)
    print(json.dumps(ratios, indent=1))
    print("wrote", write_results("recall", rows, extra))


if __name__ == "__main__":
    sys.exit(main())
