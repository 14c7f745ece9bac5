"""Throughput of the choice rule: superpose's jitted choice_probabilities against plain numpy.

Rows of 24 items (a study list), 30% masked, τ = 90, float32. The numpy reference computes the same
mask-then-scale Luce ratios in log space with vectorised numpy. Also measures what
``superpose.parallel.sharded`` costs on one device (it should be nothing).

Each batch size is timed in ``--rounds`` paired rounds (superpose, ``sharded`` and numpy alternating,
each the median of 3 timed batches of calls); the speed-up is the median of the per-round ratios, with
their range. Every sample goes to ``benchmarks/results/numerics-<backend>.json``.

    python benchmarks/numerics.py [--rounds 3]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from _common import best_time, paired_rounds, print_table, ratio_summary, summary, write_results
from superpose.numerics import choice_probabilities
from superpose.parallel import sharded


def numpy_choice(values: np.ndarray, mask: np.ndarray, scale: float) -> np.ndarray:
    masked = np.where(mask, 0.0, values)
    with np.errstate(divide="ignore"):
        logs = np.where(masked > 0, np.log(np.where(masked > 0, masked, 1.0)), -np.inf)
    scaled = np.exp(scale * (logs - logs.max(axis=-1, keepdims=True)))
    return scaled / scaled.sum(axis=-1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds per batch size")
    args = parser.parse_args()
    rows = []
    jitted = jax.jit(choice_probabilities)
    through_sharded = sharded(choice_probabilities, batch_argnums=(0, 1))
    for batch in (1_000, 100_000, 1_000_000):
        key_v, key_m = jax.random.split(jax.random.key(batch))
        values = jax.random.uniform(key_v, (batch, 24), minval=1e-4)
        mask = jax.random.bernoulli(key_m, 0.3, (batch, 24)).at[:, 0].set(False)
        np_values, np_mask = np.asarray(values), np.asarray(mask)
        np.testing.assert_allclose(jitted(values, mask, 90.0), numpy_choice(np_values, np_mask, 90.0),
                                   rtol=1e-4, atol=1e-30)
        seconds = paired_rounds({
            "superpose": lambda: best_time(lambda: jitted(values, mask, 90.0), repeats=3),
            "sharded": lambda: best_time(lambda: through_sharded(values, mask, 90.0), repeats=3),
            "numpy": lambda: best_time(lambda: numpy_choice(np_values, np_mask, 90.0), repeats=3),
        }, args.rounds)
        rates = {name: summary([batch / t for t in times]) for name, times in seconds.items()}
        rows.append({"rows": batch, "superpose_rows_per_s": rates["superpose"]["median"],
                     "sharded_rows_per_s": rates["sharded"]["median"], "numpy_rows_per_s": rates["numpy"]["median"],
                     "speedup_vs_numpy": ratio_summary(seconds["numpy"], seconds["superpose"]),
                     "sharded_cost": ratio_summary(seconds["sharded"], seconds["superpose"]),
                     "seconds_per_call": seconds})
    print_table([{k: (v["median"] if isinstance(v, dict) and "median" in v else v) for k, v in r.items()
                  if k != "seconds_per_call"} for r in rows])
    print("wrote", write_results("numerics", rows, {"rounds": args.rounds, "tau": 90.0, "items": 24,
                                                    "masked_fraction": 0.3, "dtype": "float32"}))

if __name__ == "__main__":
    main()
