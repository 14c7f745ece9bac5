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

The speeds are measured in ``--rounds`` paired rounds (superpose, cymr and jaxcmr alternating; each
round: superpose's rates and one compiled fit, cymr's single evaluation, one jaxcmr process with its
rates and one fit). A speed-up is the median of the per-round ratios with their range. superpose's
first fit in the process (it compiles) and cymr's fit (minutes) are timed once.

    python benchmarks/recall.py                  # everything (cymr's fit takes minutes)
    python benchmarks/recall.py --cymr-fit 0     # without cymr's fit
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

from _common import best_time, paired_rounds, print_table, ratio_summary, summary, write_results
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


def superpose_fit(trials, restarts: int, seed: int) -> dict:
    result = fit_subject(trials, restarts=restarts, seed=seed, subject=1)
    return {"seconds": result.wall_seconds, "nll": result.nll, "restart_nlls": result.restart_nlls,
            "evaluations": result.evaluations, "polish_gain": result.polish_gain}


def cymr_setup(raw, subject: int = 1, n_items: int = 24):
    """cymr's model, one subject's events (items named by study position), its parameter definition, patterns."""
    from cymr import cmr

    data = raw[raw.subject == subject].copy()
    study = data[data.trial_type == "study"].set_index(["list", "item"])["position"]
    data["item_index"] = [int(study.get((lst, item), 0)) - 1 for lst, item in zip(data["list"], data["item"])]
    data = data[data.item_index >= 0]  # intrusions out, as superpose leaves them out of the likelihood
    data["item"] = [f"position{i}" for i in data["item_index"]]
    patterns = {"items": np.array([f"position{i}" for i in range(n_items)], dtype=object),
                "vector": {"loc": np.eye(n_items)}}
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


def cymr_single_ms(model, data, definition, patterns, calls: int = 20) -> float:
    """Milliseconds per ``likelihood_subject`` call at one fixed parameter set."""
    study, recall = model.prepare_sim(data)
    param = definition.eval_dependent({"B_enc": 0.7, "B_start": 0.3, "B_rec": 0.8, "Lfc": 0.3, "Lcf": 0.3, "P1": 2.0,
                                       "P2": 1.0, "T": 0.1, "X1": 0.01, "X2": 0.3, "Acf": 0.1, "Afc": 0, "Aff": 0,
                                       "Dff": 1})
    start = time.perf_counter()
    for _ in range(calls):
        model.likelihood_subject(study, recall, param, definition, patterns)
    return (time.perf_counter() - start) / calls * 1e3


def cymr_fit(model, data, definition, patterns, seed: int) -> dict:
    start = time.perf_counter()
    _, logl, _, _ = model.fit_subject(data, definition, patterns, tol=1e-3, seed=seed)
    return {"seconds": time.perf_counter() - start, "nll": -float(logl)}


def jaxcmr_measure(dataset, fits: int) -> dict | None:
    """jaxcmr's rates and ``fits`` fits of one subject's lists (its own process), or None without JAXCMR_PYTHON."""
    python = os.environ.get("JAXCMR_PYTHON")
    if not python:
        return None
    clean = dataset.clean_recalls()
    n = int(dataset.presented.shape[1])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "subject.npz"
        np.savez(path, subject=dataset.subject[:, None], listLength=dataset.list_length[:, None],
                 pres_itemnos=np.tile(np.arange(1, n + 1), (dataset.n_lists, 1)),
                 recalls=np.pad(clean, ((0, 0), (0, n - clean.shape[1]))))
        done = subprocess.run([python, str(HERE / "peers" / "jaxcmr_runner.py"), str(path), str(fits)],
                              capture_output=True, text=True)
    if done.returncode != 0:  # the peer failed: keep the others' measurements
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--restarts", type=int, default=3, help="superpose DE restarts per fit")
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds of every peer's speeds")
    parser.add_argument("--cymr-fit", type=int, default=1, help="cymr fits, timed once each after the rounds")
    args = parser.parse_args()

    from psifr import fr

    raw = fr.sample_data("Morton2013")
    dataset = load_sample("Morton2013").select(subjects=[1])
    trials = prepare(dataset)
    extra: dict = {"data": "Morton2013 subject 1: 48 lists of 24, 587 recalls, 48 stops", "rounds": args.rounds,
                   "restarts": args.restarts}

    cold = superpose_fit(trials, args.restarts, seed=0)  # first, so that the first fit really is cold
    timers = {"superpose": lambda seeds=iter(range(1, 1000)): {**superpose_rates(trials),
                                                               "fit": superpose_fit(trials, args.restarts, next(seeds))}}
    try:
        cymr_parts = cymr_setup(raw)
        timers["cymr"] = lambda: {"single_ms": cymr_single_ms(*cymr_parts)}
    except ImportError:
        cymr_parts = None
        print("cymr is not installed (pip install cymr): skipped")
    if os.environ.get("JAXCMR_PYTHON"):
        timers["jaxcmr"] = lambda: jaxcmr_measure(dataset, 1)
    else:
        print("JAXCMR_PYTHON is not set: jaxcmr skipped")
    rounds = paired_rounds(timers, args.rounds)
    failed = [r["error"] for r in rounds.get("jaxcmr", []) if "error" in r]
    if failed:
        print(f"jaxcmr failed ({failed[0]}): left out")
        extra["jaxcmr_error"] = failed[0]
        del rounds["jaxcmr"]
    ours = rounds["superpose"]
    extra["superpose"] = {"first_fit_in_process": cold, "rounds": ours}

    def column(side, key):
        return [r[key] for r in rounds[side]]

    rows = [{"peer": "superpose", "single_ms": summary(column("superpose", "single_ms")),
             "population_ms_per_set": summary(column("superpose", "population_ms_per_set")),
             "two_threads_ms_per_set": summary(column("superpose", "two_threads_ms_per_set")),
             "fit_s": summary([r["fit"]["seconds"] for r in ours]), "first_fit_s": cold["seconds"],
             "nll": [cold["nll"], *(r["fit"]["nll"] for r in ours)]}]
    ratios = {}
    if cymr_parts is not None:
        fits = [cymr_fit(*cymr_parts, seed=run) for run in range(args.cymr_fit)]
        extra["cymr"] = {"rounds": rounds["cymr"], "fits": fits}
        rows.append({"peer": "cymr", "single_ms": summary(column("cymr", "single_ms")),
                     "fit_s": summary([f["seconds"] for f in fits]) if fits else None,
                     "nll": [f["nll"] for f in fits]})
        ratios["single_vs_cymr"] = ratio_summary(column("cymr", "single_ms"), column("superpose", "single_ms"))
        # not like for like: a batched float32 population per set against cymr's single float64 call
        ratios["population_vs_cymr_single"] = ratio_summary(column("cymr", "single_ms"),
                                                            column("superpose", "population_ms_per_set"))
        ratios["two_threads_vs_cymr_single"] = ratio_summary(column("cymr", "single_ms"),
                                                             column("superpose", "two_threads_ms_per_set"))
    if "jaxcmr" in rounds:
        theirs = rounds["jaxcmr"]
        extra["jaxcmr"] = {"rounds": theirs}
        fit_seconds = [r["fits"][0]["seconds"] for r in theirs]
        rows.append({"peer": "jaxcmr 0.1.1", "single_ms": summary(column("jaxcmr", "single_ms")),
                     "population_ms_per_set": summary(column("jaxcmr", "population_ms_per_set")),
                     "fit_s": summary(fit_seconds), "nll": [r["fits"][0]["nll"] for r in theirs]})
        ratios["single_vs_jaxcmr"] = ratio_summary(column("jaxcmr", "single_ms"), column("superpose", "single_ms"))
        ratios["population_vs_jaxcmr"] = ratio_summary(column("jaxcmr", "population_ms_per_set"),
                                                       column("superpose", "population_ms_per_set"))
        ratios["two_threads_vs_jaxcmr_population"] = ratio_summary(column("jaxcmr", "population_ms_per_set"),
                                                                   column("superpose", "two_threads_ms_per_set"))
        ratios["fit_compiled_vs_jaxcmr"] = ratio_summary(fit_seconds, [r["fit"]["seconds"] for r in ours])
        ratios["fit_first_in_process_vs_jaxcmr"] = summary([t / cold["seconds"] for t in fit_seconds])
    extra["speed_ratios"] = ratios
    print_table([{k: (v["median"] if isinstance(v, dict) else v) for k, v in r.items()} for r in rows])
    print(json.dumps({k: v["median"] for k, v in ratios.items()}, indent=1))
    print("wrote", write_results("recall", rows, extra))

if __name__ == "__main__":
    sys.exit(main())
