"""Throughput of the choice rule: superpose's jitted choice_probabilities against plain numpy.

Rows of 24 items (a study list), 30% masked, τ = 90, float32. The numpy reference computes the same
mask-then-scale Luce ratios in log space with vectorised numpy. Also measures what
``superpose.parallel.sharded`` costs on one device (it should be nothing).

    python benchmarks/numerics.py
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from _common import best_time, print_table, write_results
from superpose.numerics import choice_probabilities
from superpose.parallel import sharded


def numpy_choice(values: np.ndarray, mask: np.ndarray, scale: float) -> np.ndarray:
    masked = np.where(mask, 0.0, values)
    with np.errstate(divide="ignore"):
        logs = np.where(masked > 0, np.log(np.where(masked > 0, masked, 1.0)), -np.inf)
    scaled = np.exp(scale * (logs - logs.max(axis=-1, keepdims=True)))
    return scaled / scaled.sum(axis=-1, keepdims=True)


def main() -> None:
    rows = []
    jitted = jax.jit(choice_probabilities)
    through_sharded = sharded(choice_probabilities, batch_argnums=(0, 1))
    for batch in (1_000, 100_000, 1_000_000):
        key_v, key_m = jax.random.split(jax.random.key(batch))
        values = jax.random.uniform(key_v, (batch, 24), minval=1e-4)
        mask = jax.random.bernoulli(key_m, 0.3, (batch, 24)).at[:, 0].set(False)
        np_values, np_mask = np.asarray(values), np.asarray(mask)
        t_jax = best_time(lambda: jitted(values, mask, 90.0))
        t_sharded = best_time(lambda: through_sharded(values, mask, 90.0))
        t_np = best_time(lambda: numpy_choice(np_values, np_mask, 90.0), repeats=3)
        np.testing.assert_allclose(jitted(values, mask, 90.0), numpy_choice(np_values, np_mask, 90.0),
                                   rtol=1e-4, atol=1e-30)
        rows.append({"rows": batch, "superpose_rows_per_s": batch / t_jax, "sharded_rows_per_s": batch / t_sharded,
                     "numpy_rows_per_s": batch / t_np, "speedup_vs_numpy": t_np / t_jax})
    print_table(rows)
    print("wrote", write_results("numerics", rows))


if __name__ == "__main__":
    main()
