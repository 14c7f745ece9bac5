"""One process of a two-process run (started by tests/test_distributed.py): joins the run, computes
the sharded parts of each capability (DrDAM, toy, recall, the SAE's inner solve) and writes what it
got to ``OUT/process-<id>.json``.

    python tests/two_process_worker.py PORT PROCESS_ID OUT [--raise-on 1] [--peer-timeout SECONDS]

Without a port (``-``) it runs alone, as the single-process reference.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def compute() -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from superpose.memory import DistributedMemory, descend, distributed_energy
    from superpose.recall import make_parameters, population_nll, prepare, simulate
    from superpose.recall.parameters import DEFAULT_FIXED, DEFAULT_FREE, uniform_population
    from superpose.toy import init_params, make_features, train

    from superpose.parallel import assemble_batch, gathered, shard_batch

    placed = shard_batch(jnp.zeros((jax.device_count(), 1)))
    out: dict = {"devices": jax.device_count(), "processes": jax.process_count(),
                 "mesh_processes": sorted({d.process_index for d in placed.sharding.device_set})}
    # rows loaded per process (here 0..3 on process 0 and 4..7 on process 1), assembled and summed
    rows = 8 // jax.process_count()
    local = np.arange(rows * jax.process_index(), rows * (jax.process_index() + 1), dtype=np.float32)[:, None]
    assembled = assemble_batch(local)
    out["assembled"] = np.asarray(gathered(assembled)).ravel().tolist()
    out["assembled_sum"] = float(jax.jit(jnp.sum)(assembled))
    # DrDAM: energy and gradient of 11 queries (odd: the batch is padded), then 4 descent steps
    k_mem, k_query, k_feat = jax.random.split(jax.random.key(0), 3)
    xi = jnp.sign(jax.random.normal(k_mem, (6, 12)))
    queries = jnp.sign(jax.random.normal(k_query, (11, 12)))
    memory = DistributedMemory.from_memories(xi, k_feat, 2048, 4.0)
    energy, grad = memory.energy_and_grad(queries)
    final, result = descend(distributed_energy, queries, memory, steps=4, step_size=0.05)
    out.update(energy=np.asarray(energy).tolist(), grad=np.asarray(grad).tolist(),
               descended=np.asarray(final).tolist(), descended_energy=np.asarray(result.energy).tolist())
    # toy: one training step of an ensemble of 5 models, each with its own feature density
    density = jnp.linspace(0.05, 0.9, 5)[:, None] * jnp.ones((5, 4))
    params = init_params(jax.random.key(1), 5, 4, 2)
    trained = train(jax.random.key(2), params, make_features(density), jnp.ones((5, 4)), steps=1, batch=64,
                    log_every=1)
    out.update(toy_W=np.asarray(trained.params.W).tolist(), toy_b=np.asarray(trained.params.b).tolist(),
               toy_loss=np.asarray(trained.losses).tolist())
    # recall: the negative log-likelihood of 13 parameter sets
    truth = make_parameters({
        "encoding_drift_rate": 0.7, "start_drift_rate": 0.1, "recall_drift_rate": 0.8, "mfc_learning_rate": 0.2,
        "mcf_learning_rate": 1.0, "shared_support": 0.1, "item_support": 4.0, "primacy_scale": 6.0,
        "primacy_decay": 0.4, "stop_probability_scale": 0.01, "stop_probability_growth": 0.3,
        "choice_sensitivity": 4.0})
    trials = prepare(simulate(truth, jax.random.key(3), list_length=8, n_lists=6))
    population = uniform_population(jax.random.key(4), 13, DEFAULT_FREE, DEFAULT_FIXED)
    out["nll"] = np.asarray(population_nll(population, trials)).tolist()
    out.update(compute_sae())
    return out


def compute_sae() -> dict:
    """Three iterations of the SAE's inner solve on 120 planted rows (split over the devices: the
    size rule that keeps few rows whole is lowered)."""
    import jax
    import numpy as np

    from superpose.numerics import float64_enabled
    from superpose.sae import CircleAtom, SaeHyperparameters
    from superpose.sae.init import initial_params
    from superpose.sae.gates import make_gate
    from superpose.sae.planted import two_circles
    import superpose.sae.solve as solve_module

    with float64_enabled():
        Z, _ = two_circles(jax.random.key(0), n=120, p=8)
        atoms = (CircleAtom(2), CircleAtom(2))
        hyper = SaeHyperparameters.create([1, 1], log_lambda_sparse=-2.0, log_lambda_smooth=-2.0, log_ard=-4.0)
        gate = make_gate("threshold", 2)
        start = initial_params(atoms, gate, Z, jax.random.key(1))
        rule, solve_module.MIN_ROWS_PER_DEVICE = solve_module.MIN_ROWS_PER_DEVICE, 1  # split even these few rows
        try:
            params, report = solve_module.solve(atoms, gate, start, hyper, Z, max_iterations=3)
        finally:
            solve_module.MIN_ROWS_PER_DEVICE = rule
        return {"sae_loss_trace": report.loss_trace.tolist(), "sae_coords": np.asarray(params.coords).tolist()}


def main(argv: list[str]) -> None:
    port, process_id, folder = argv[0], int(argv[1]), Path(argv[2])
    raise_on = int(argv[argv.index("--raise-on") + 1]) if "--raise-on" in argv else None
    if port != "-":
        from superpose.parallel import initialize_processes

        timeout = int(argv[argv.index("--peer-timeout") + 1]) if "--peer-timeout" in argv else 10
        initialize_processes(f"127.0.0.1:{port}", 2, process_id, heartbeat_timeout_s=timeout,
                             shutdown_timeout_s=timeout, join_timeout_s=60)
    if raise_on is not None:
        from superpose.parallel import processes_agree

        processes_agree("both started")  # both are past their start; then one fails, the other computes
        if raise_on == process_id:
            raise RuntimeError(f"process {process_id} failed on purpose")
    result = compute()
    (folder / f"process-{process_id}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
