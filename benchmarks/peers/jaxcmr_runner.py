"""Times jaxcmr 0.1.1 on one subject; run with jaxcmr's own interpreter (JAXCMR_PYTHON).

Reads the subject's arrays from an npz written by benchmarks/recall.py and prints one JSON line.
Uses only jaxcmr's public classes (CMRFactory, MemorySearchLikelihoodFnGenerator, ScipyDE).
"""

import json
import sys
import time

import numpy as np


def main(path: str, fit_runs: int) -> None:
    import jax.numpy as jnp
    from jaxcmr.cmr import CMRFactory
    from jaxcmr.fitting import ScipyDE
    from jaxcmr.likelihood import MemorySearchLikelihoodFnGenerator

    raw = np.load(path, allow_pickle=False)
    data = {k: jnp.asarray(raw[k]) for k in ("subject", "listLength", "pres_itemnos", "recalls")}
    eps = 2.220446049250313e-16
    bounds = {
        "encoding_drift_rate": [eps, 1 - eps], "start_drift_rate": [eps, 1 - eps],
        "recall_drift_rate": [eps, 1 - eps], "shared_support": [eps, 100.0], "item_support": [eps, 100.0],
        "learning_rate": [eps, 1 - eps], "primacy_scale": [eps, 100.0], "primacy_decay": [eps, 100.0],
        "stop_probability_scale": [eps, 1 - eps], "stop_probability_growth": [eps, 10.0],
        "choice_sensitivity": [eps, 100.0],
    }
    names = list(bounds)
    generator = MemorySearchLikelihoodFnGenerator(CMRFactory, data, None)
    trials = jnp.arange(data["recalls"].shape[0])
    loss = generator(trials, {}, names)
    rng = np.random.default_rng(0)
    low, high = np.array(list(bounds.values())).T
    one = jnp.asarray(rng.uniform(low, high))
    population = jnp.asarray(rng.uniform(low, high, size=(15 * len(names), len(names))).T)
    out = {}
    t = time.perf_counter(); float(loss(one)); out["single_first_call_s"] = time.perf_counter() - t
    n = 200
    t = time.perf_counter()
    for _ in range(n):
        loss(one).block_until_ready()
    out["single_ms"] = (time.perf_counter() - t) / n * 1e3
    loss(population).block_until_ready()
    t = time.perf_counter()
    for _ in range(10):
        loss(population).block_until_ready()
    out["population_ms_per_set"] = (time.perf_counter() - t) / 10 / population.shape[1] * 1e3
    fits = []
    for run in range(fit_runs):
        fitter = ScipyDE(data, None, {"mcf_trace_sensitivity": 1.0}, CMRFactory, MemorySearchLikelihoodFnGenerator,
                         {"bounds": bounds, "progress_bar": False, "relative_tolerance": 1e-3, "pop_size": 15})
        t = time.perf_counter()
        result = fitter.single_fit(jnp.ones(data["recalls"].shape[0], bool))
        fits.append({"seconds": time.perf_counter() - t, "nll": float(result["fitness"][0])})
    out["fits"] = fits
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1)
