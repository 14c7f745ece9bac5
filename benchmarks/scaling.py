"""The same sharded work in one process and in two: what joining processes costs on one machine.

Three layouts of the same 2-core machine, each in fresh child processes:

- ``1 process x 1 device``: the baseline (no sharding);
- ``1 process x 2 devices``: XLA splits the CPU in two (``--xla_force_host_platform_device_count=2``);
- ``2 processes x 1 device``: two processes joined by ``jax.distributed`` on the loopback address
  (gloo collectives), as on two hosts.

Each layout runs the batch-parallel parts of three capabilities: DrDAM energy and gradient, and
DrDAM descent (``descend``) over a batch of queries; one training step of a toy-model ensemble;
the recall likelihood of a population of CMR parameter sets. Every call is timed after a
compiling warm-up, a fixed number of times (the processes of a run must make the same calls), and
the layouts alternate over ``--rounds`` rounds; the table gives the median over rounds of the
per-call median, with the range. Results: ``benchmarks/results/scaling-cpu.json``.

    python benchmarks/scaling.py [--rounds 3] [--calls 5]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

LAYOUTS = {"1x1": (1, 1), "1x2": (1, 2), "2x1": (2, 1)}  # name -> (processes, devices per process)
DRDAM = dict(dim=30, memories=20, features=20_000, beta=25.0, queries=2048, steps=10)
TOY = dict(models=512, features=20, hidden=5, batch=256)
RECALL = dict(population=512, list_length=16, lists=48)


def workloads(calls: int) -> dict:
    """Times every workload in this process (all processes of a run call it together)."""
    import jax
    import jax.numpy as jnp

    from superpose.memory import DistributedMemory, descend, distributed_energy
    from superpose.recall import make_parameters, population_nll, prepare, simulate
    from superpose.recall.parameters import DEFAULT_FIXED, DEFAULT_FREE, uniform_population
    from superpose.toy import init_params, make_features, train

    def timed(fn) -> dict:
        jax.block_until_ready(fn())  # compile
        samples = []
        for _ in range(calls):
            start = time.perf_counter()
            jax.block_until_ready(fn())
            samples.append(time.perf_counter() - start)
        return {"median_s": statistics.median(samples), "samples_s": samples}

    rows = {}
    k_mem, k_query, k_feat = jax.random.split(jax.random.key(0), 3)
    xi = jnp.sign(jax.random.normal(k_mem, (DRDAM["memories"], DRDAM["dim"])))
    queries = jnp.sign(jax.random.normal(k_query, (DRDAM["queries"], DRDAM["dim"])))
    memory = DistributedMemory.from_memories(xi, k_feat, DRDAM["features"], DRDAM["beta"])
    rows["drdam_energy_and_grad"] = {**timed(lambda: memory.energy_and_grad(queries)), "rows": DRDAM["queries"]}
    rows["drdam_descend_10_steps"] = {
        **timed(lambda: descend(distributed_energy, queries, memory, steps=DRDAM["steps"], step_size=0.05)[0]),
        "rows": DRDAM["queries"], "steps_per_call": DRDAM["steps"]}

    density = jnp.linspace(0.02, 0.9, TOY["models"])[:, None] * jnp.ones((TOY["models"], TOY["features"]))
    features = make_features(density)
    params = init_params(jax.random.key(1), TOY["models"], TOY["features"], TOY["hidden"])
    importance = jnp.ones((TOY["models"], TOY["features"]))
    rows["toy_train_step"] = {
        **timed(lambda: train(jax.random.key(2), params, features, importance, steps=1, batch=TOY["batch"],
                              log_every=1).params.W),
        "rows": TOY["models"]}

    truth = make_parameters({
        "encoding_drift_rate": 0.7, "start_drift_rate": 0.1, "recall_drift_rate": 0.8, "mfc_learning_rate": 0.2,
        "mcf_learning_rate": 1.0, "shared_support": 0.1, "item_support": 4.0, "primacy_scale": 6.0,
        "primacy_decay": 0.4, "stop_probability_scale": 0.01, "stop_probability_growth": 0.3,
        "choice_sensitivity": 4.0})
    trials = prepare(simulate(truth, jax.random.key(3), list_length=RECALL["list_length"], n_lists=RECALL["lists"]))
    population = uniform_population(jax.random.key(4), RECALL["population"], DEFAULT_FREE, DEFAULT_FIXED)
    rows["recall_population_nll"] = {**timed(lambda: population_nll(population, trials)),
                                     "rows": RECALL["population"]}
    return {"devices": jax.device_count(), "processes": jax.process_count(), "workloads": rows}


def child(argv: list[str]) -> None:
    """``--child PORT PROCESS_ID PROCESSES CALLS OUT``: one process of a layout."""
    port, process_id, processes, calls, out = argv
    if int(processes) > 1:
        from superpose.parallel import initialize_processes

        initialize_processes(f"127.0.0.1:{port}", int(processes), int(process_id), heartbeat_timeout_s=30,
                             shutdown_timeout_s=30)
    result = workloads(int(calls))
    if process_id == "0":
        Path(out).write_text(json.dumps(result))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_layout(name: str, calls: int, timeout: float) -> dict:
    processes, devices = LAYOUTS[name]
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "SUPERPOSE_CACHE": "off",
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "result.json"
        port = str(free_port())
        start = time.perf_counter()
        children = [subprocess.Popen([sys.executable, __file__, "--child", port, str(i), str(processes), str(calls),
                                      str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                    for i in range(processes)]
        errors = []
        for proc in children:
            try:
                _, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
                errors.append(f"timed out after {timeout:.0f} s")
            if proc.returncode:
                errors.append(err[-2000:])
        if errors:
            raise RuntimeError(f"layout {name} failed: {errors}")
        result = json.loads(out.read_text())
        result["wall_s"] = time.perf_counter() - start
        return result


def main() -> None:
    from _common import print_table, write_results

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the three layouts, alternating")
    parser.add_argument("--calls", type=int, default=5, help="timed calls per workload and layout")
    parser.add_argument("--timeout", type=float, default=600, help="seconds before a layout's processes are killed")
    args = parser.parse_args()

    runs: dict[str, list[dict]] = {name: [] for name in LAYOUTS}
    for round_ in range(args.rounds):
        for name in LAYOUTS:
            print(f"round {round_ + 1}/{args.rounds}: {name} ...", flush=True)
            runs[name].append(run_layout(name, args.calls, args.timeout))

    rows = []
    names = list(runs["1x1"][0]["workloads"])
    for workload in names:
        medians = {name: [r["workloads"][workload]["median_s"] for r in runs[name]] for name in LAYOUTS}
        row = {"workload": workload}
        for name in LAYOUTS:
            row[f"{name}_ms"] = 1e3 * statistics.median(medians[name])
            row[f"{name}_range_ms"] = f"{1e3 * min(medians[name]):.3g}-{1e3 * max(medians[name]):.3g}"
        rows_per_call = runs["1x1"][0]["workloads"][workload]["rows"]
        row["2x1_rows_per_s"] = rows_per_call / (row["2x1_ms"] / 1e3)
        row["2x1_over_1x2_overhead_ms"] = row["2x1_ms"] - row["1x2_ms"]
        row["2x1_over_1x2_ratio"] = row["2x1_ms"] / row["1x2_ms"]
        rows.append(row)
    print_table(rows)
    settings = {"drdam": DRDAM, "toy": TOY, "recall": RECALL, "rounds": args.rounds, "calls": args.calls}
    path = write_results("scaling", rows, {"settings": settings, "runs": runs,
                                           "layouts": {k: {"processes": p, "devices_per_process": d}
                                                       for k, (p, d) in LAYOUTS.items()}})
    print(f"wrote {path}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
    else:
        main()
