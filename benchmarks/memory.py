"""DrDAM speed and memory: superpose.memory against the authors' reference code, side by side.

Every measurement runs in a child process of its own, so its peak resident memory is its own.
The reference (the public repository bhoov/distributed_DAM, ``kernel_sims.py``, which has no
licence and is never copied here) runs from a checkout named by ``DRDAM_REFERENCE`` or
``--reference``; without one its rows are skipped. It calls ``jnp.clip(a_min=...)``, which current
JAX has removed, so give it a Python of its own (``DRDAM_REFERENCE_PYTHON``) with jax 0.4.35,
equinox 0.11.10, jaxtyping, fastcore, tqdm and numpy<2.

    DRDAM_REFERENCE=/path/to/distributed_DAM DRDAM_REFERENCE_PYTHON=/path/to/venv/bin/python \
        python benchmarks/memory.py
    python benchmarks/memory.py --quick          # small sizes, no reference

Float32, a batch of 256 queries, β = 25, binary patterns scaled by 1/√D, 100-step recall with α = 0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BATCH, BETA, STEPS, ALPHA = 256, 25.0, 100, 0.1


# -- child measurements ---------------------------------------------------------------------------
def _data(d: int, k: int):
    """K memories and BATCH queries: superpose's binary patterns (the reference's child reads them from a file)."""
    import jax

    from superpose.memory.patterns import binary_patterns

    k1, k2 = jax.random.split(jax.random.key(0))
    return binary_patterns(k1, k, d), binary_patterns(k2, BATCH, d)


def _timed(fn, repeats: int = 3) -> tuple[float, float]:
    """(seconds of the first call, median seconds of later calls)."""
    import jax

    start = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return first, sorted(times)[len(times) // 2]


def child_ours(d: int, y: int, projection: str, recall: bool) -> dict:
    import jax

    from superpose.memory import DistributedMemory, descend, distributed_energy

    memories, queries = _data(d, 20)
    memory = DistributedMemory.from_memories(memories, jax.random.key(1), y, BETA, projection=projection)
    _, egrad = _timed(lambda: memory.energy_and_grad(queries), repeats=3 if y * d < 5e7 else 1)
    out = {"stored": memory.stored, "egrad_s": egrad, "queries_per_s": BATCH / egrad}
    if recall:
        first, steady = _timed(lambda: descend(distributed_energy, queries, memory, steps=STEPS, step_size=ALPHA)[0],
                               repeats=3 if y * d < 1e7 else 1)  # median of 3 where a run takes seconds
        out.update(recall_first_s=first, recall_s=steady)
    return out


def child_reference(d: int, y: int, recall: bool, path: str, data: str) -> dict:
    """The reference's timings on the patterns saved in ``data`` (its Python need not have superpose)."""
    import jax
    import numpy as np

    import inspect

    import jax.numpy as jnp

    if "a_min" not in inspect.signature(jnp.clip).parameters:  # removed in jax 0.6; the reference calls it
        clip = jnp.clip
        jnp.clip = lambda x, min=None, max=None, *, a_min=None, a_max=None: clip(  # noqa: E731
            x, a_min if min is None else min, a_max if max is None else max
        )
    sys.path.insert(0, path)
    import kernel_sims  # the reference, from its own checkout

    with np.load(data) as saved:
        memories, queries = jnp.asarray(saved["memories"]), jnp.asarray(saved["queries"])
    model = kernel_sims.SinCosL2DAM(jax.random.key(1), d, y, BETA)
    t = model.kernelize_memories(memories)
    egrad_fn = jax.jit(jax.vmap(jax.value_and_grad(model.kernel_energy), in_axes=(0, None)))
    _, egrad = _timed(lambda: egrad_fn(queries, t), repeats=3 if y * d < 5e7 else 1)
    out = {"egrad_s": egrad, "queries_per_s": BATCH / egrad}
    if recall:  # as its scripts call it: the recall recompiles on every call
        start = time.perf_counter()
        jax.block_until_ready(model.vkernel_recall(queries, t, depth=STEPS, alpha=ALPHA))
        out["recall_s"] = time.perf_counter() - start
    return out


def child_exact(d: int, k: int) -> dict:
    from superpose.memory import lse_energy_and_grad_streamed

    memories, queries = _data(d, k)
    first, steady = _timed(lambda: lse_energy_and_grad_streamed(queries, memories, BETA, chunk=4096), repeats=3)
    return {"egrad_s": steady, "queries_per_s": BATCH / steady}


def child_matmul() -> dict:
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (4096, 4096))
    b = jax.random.normal(jax.random.key(1), (4096, 4096))
    f = jax.jit(jnp.matmul)
    jax.block_until_ready(f(a, b))
    best = float("inf")
    for _ in range(7):  # the ceiling is the best of several runs: this machine is shared and noisy
        start = time.perf_counter()
        jax.block_until_ready(f(a, b))
        best = min(best, time.perf_counter() - start)
    return {"gflops": 2 * 4096**3 / best / 1e9}


def child_generator(d: int, y: int, chunk: int) -> dict:
    """Seconds to regenerate the whole Y×D projection once (the generator's share of a step)."""
    import jax
    import jax.numpy as jnp

    from superpose.memory.features import projection_chunk

    n = -(-y // chunk)
    key = jax.random.key(1)
    f = jax.jit(lambda: jax.lax.map(lambda c: jnp.sum(projection_chunk(key, c, chunk, d, False, jnp.float32)),
                                    jnp.arange(n)))
    _, t = _timed(f, repeats=1)
    return {"generate_s": t}


def run_child(kind: str, python: str | None = None, host_devices: int = 1, **kwargs) -> dict:
    """Runs one measurement in a fresh process and adds its peak resident memory.

    ``host_devices > 1`` splits the CPU into that many XLA devices (docs/scaling.md), over which
    ``descend`` shards its queries.
    """
    cmd = [python or sys.executable, __file__, "--child", json.dumps({"kind": kind, **kwargs})]
    env = dict(os.environ)
    if host_devices > 1:
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={host_devices}".strip()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        error = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"
        print(f"  {kind} {kwargs}: {error}", file=sys.stderr)
        return {"error": error}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _child_main(spec: dict) -> None:
    kind = spec.pop("kind")
    fn = {"ours": child_ours, "reference": child_reference, "exact": child_exact, "matmul": child_matmul,
          "generator": child_generator}[kind]
    result = fn(**spec)
    result["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    import jax

    if jax.default_backend() != "cpu":  # on an accelerator, the peak of its own memory
        stats = jax.devices()[0].memory_stats() or {}
        if "peak_bytes_in_use" in stats:
            result["peak_device_gib"] = stats["peak_bytes_in_use"] / 2**30
    print(json.dumps(result))


# -- the table ------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", default=os.environ.get("DRDAM_REFERENCE"), help="checkout of distributed_DAM")
    parser.add_argument("--reference-python", default=os.environ.get("DRDAM_REFERENCE_PYTHON"),
                        help="the Python that runs the reference (default: this one)")
    parser.add_argument("--quick", action="store_true", help="small sizes only, no reference")
    parser.add_argument("--dims", type=int, nargs="+", help="only these D (e.g. --dims 30); skips the other tables")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child_main(json.loads(args.child))
        return
    sys.path.insert(0, str(Path(__file__).parent))
    import jax
    import numpy as np
    from _common import print_table, write_results

    reference = None if args.quick else args.reference
    sizes = [(30, 10_000), (784, 10_000)] if args.quick else [(30, 10_000), (30, 100_000), (784, 10_000), (784, 100_000)]
    if args.dims:
        sizes = [(d, y) for d, y in sizes if d in args.dims]
    ceiling = run_child("matmul")["gflops"]
    print(f"float32 matmul ceiling (4096³): {ceiling:.1f} GFLOP/s")
    rows = []
    for d, y in sizes:
        ours = run_child("ours", d=d, y=y, projection="auto", recall=True)
        row = {"D": d, "Y": y, "stored": ours.get("stored"), "egrad_q_per_s": ours.get("queries_per_s"),
               "recall_s": ours.get("recall_s"), "recall_first_s": ours.get("recall_first_s"),
               "peak_gib": ours.get("peak_rss_gib"), "peak_device_gib": ours.get("peak_device_gib"),
               "matmul_fraction": (4 * BATCH * y * d / ours["egrad_s"] / 1e9 / ceiling) if "egrad_s" in ours else None}
        if d == 30 and jax.default_backend() == "cpu":  # thin products: one device per core keeps the cores busier
            split = run_child("ours", host_devices=os.cpu_count() or 1, d=d, y=y, projection="auto", recall=True)
            row.update(recall_s_device_per_core=split.get("recall_s"))
        if reference:
            with tempfile.TemporaryDirectory() as folder:
                data = os.path.join(folder, "patterns.npz")
                np.savez(data, **dict(zip(("memories", "queries"), map(np.asarray, _data(d, 20)))))
                ref = run_child("reference", python=args.reference_python, d=d, y=y, recall=True, path=reference,
                                data=data)
            row.update(ref_egrad_q_per_s=ref.get("queries_per_s"), ref_recall_s=ref.get("recall_s"),
                       ref_peak_gib=ref.get("peak_rss_gib"), ref_peak_device_gib=ref.get("peak_device_gib"),
                       recall_speedup=(ref["recall_s"] / ours["recall_s"]) if "recall_s" in ref and "recall_s" in ours else None)
            if row.get("recall_s_device_per_core") and "recall_s" in ref:
                row["recall_speedup_device_per_core"] = ref["recall_s"] / row["recall_s_device_per_core"]
        rows.append(row)
        print_table([row])
    if args.dims:
        path = write_results("memory-dims", rows, {"matmul_gflops": ceiling, "reference": bool(reference)})
        print("wrote", path)
        return
    # stored against regenerated, and the generator's share
    d, y = (784, 10_000) if args.quick else (784, 100_000)
    regen = run_child("ours", d=d, y=y, projection="regenerated", recall=False)
    stored = run_child("ours", d=d, y=y, projection="stored", recall=False)
    gen = run_child("generator", d=d, y=y, chunk=2048)
    projection_rows = [{"D": d, "Y": y, "stored_egrad_s": stored.get("egrad_s"), "stored_peak_gib": stored.get("peak_rss_gib"),
                        "regenerated_egrad_s": regen.get("egrad_s"), "regenerated_peak_gib": regen.get("peak_rss_gib"),
                        "stored_peak_device_gib": stored.get("peak_device_gib"),
                        "regenerated_peak_device_gib": regen.get("peak_device_gib"),
                        "generator_s": gen.get("generate_s"),
                        "generator_share": gen["generate_s"] / regen["egrad_s"] if "egrad_s" in regen and "generate_s" in gen else None}]
    if not args.quick:
        big = run_child("ours", d=784, y=1_000_000, projection="regenerated", recall=False)
        projection_rows.append({"D": 784, "Y": 1_000_000, "regenerated_egrad_s": big.get("egrad_s"),
                                "regenerated_peak_gib": big.get("peak_rss_gib"),
                                "regenerated_peak_device_gib": big.get("peak_device_gib"),
                                "stored_projection_gib": 784 * 1_000_000 * 4 / 2**30})
    print_table(projection_rows)
    # exact energy, streamed over memories, and the crossover with DrDAM
    exact_rows = []
    for d in (30, 784):
        for k in ((1_000, 10_000) if args.quick else (1_000, 10_000, 100_000)):
            ex = run_child("exact", d=d, k=k)
            exact_rows.append({"D": d, "K": k, "exact_egrad_q_per_s": ex.get("queries_per_s"),
                               "exact_egrad_s": ex.get("egrad_s"), "peak_gib": ex.get("peak_rss_gib"),
                               "peak_device_gib": ex.get("peak_device_gib")})
    crossover = []
    for d, y in sizes:
        ours_row = next(r for r in rows if r["D"] == d and r["Y"] == y)
        largest = max((r for r in exact_rows if r["D"] == d), key=lambda r: r["K"])
        if ours_row["egrad_q_per_s"] and largest["exact_egrad_s"]:
            per_memory = largest["exact_egrad_s"] / largest["K"]  # exact cost grows linearly in K
            crossover.append({"D": d, "Y": y, "crossover_K": BATCH / ours_row["egrad_q_per_s"] / per_memory})
    print_table(exact_rows)
    print_table(crossover)
    path = write_results("memory", rows, {"matmul_gflops": ceiling, "projection": projection_rows,
                                           "exact": exact_rows, "crossover": crossover,
                                           "reference": bool(reference)})
    print("wrote", path)


if __name__ == "__main__":
    main()
