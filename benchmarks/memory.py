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
    python benchmarks/memory.py --ablation       # what each CPU choice gains (parts, vectors, generator)
    python benchmarks/memory.py --precision-study  # on a GPU: full float32 products against TF32

Float32, a batch of 256 queries, β = 25, binary patterns scaled by 1/√D, 100-step recall with α = 0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
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


def child_precision(d: int, y: int) -> dict:
    """Each product precision: one energy+gradient call's time, the largest error of the random-feature
    angles h = √β ω·v against float64, and the energies' largest relative error against ``"highest"``."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from superpose.memory import DistributedMemory
    from superpose.numerics.precision import MATMUL_PRECISIONS, matmul_at

    memories, queries = _data(d, 20)
    out = {}
    for precision in MATMUL_PRECISIONS:
        memory = DistributedMemory.from_memories(memories, jax.random.key(1), y, BETA, projection="stored",
                                                 precision=precision)
        _, seconds = _timed(lambda m=memory: m.energy_and_grad(queries), repeats=3)
        omega = memory.omega[: min(y, 8192)]
        angles = np.sqrt(BETA) * np.asarray(jax.jit(lambda a, b: matmul_at(precision)(a, b.T))(queries, omega))
        exact = np.sqrt(BETA) * np.asarray(queries, np.float64) @ np.asarray(omega, np.float64).T
        energy = np.asarray(memory.energy(queries), np.float64)
        out[precision] = {"egrad_s": seconds, "queries_per_s": BATCH / seconds,
                          "max_angle_error": float(np.max(np.abs(angles - exact))),
                          "max_angle": float(np.max(np.abs(exact))), "energy": energy.tolist()}
    energies = {precision: np.asarray(out[precision].pop("energy")) for precision in MATMUL_PRECISIONS}
    reference = energies["highest"]
    for precision, energy in energies.items():
        out[precision]["max_energy_relative_error"] = float(np.max(np.abs(energy - reference) / np.abs(reference)))
    return out


def child_ablation(d: int, y: int, rounds: int) -> dict:
    """What each CPU choice gains, on and off in paired rounds (seconds, every sample): descend's
    concurrent parts, 512-bit vectors in the energy+gradient pass, the threefry generator against
    JAX's other implementations (the regenerated projection's normals), and the fused sincos against
    ``jnp.sin`` and ``jnp.cos``."""
    import jax
    import jax.numpy as jnp

    import superpose.memory.retrieval as retrieval
    from superpose._xla import WIDE_VECTORS
    from superpose.memory import DistributedMemory, descend, distributed_energy
    from superpose.memory.distributed import _energy_and_grad
    from superpose.numerics import sincos
    from superpose.parallel import cpu_thread_parts

    sys.path.insert(0, str(Path(__file__).parent))
    from _common import best_time, paired_rounds

    memories, queries = _data(d, 20)
    memory = DistributedMemory.from_memories(memories, jax.random.key(1), y, BETA)

    def recall(parts_rule):
        retrieval.cpu_thread_parts = parts_rule
        try:
            return _timed(lambda: descend(distributed_energy, queries, memory, steps=STEPS, step_size=ALPHA)[0])[1]
        finally:
            retrieval.cpu_thread_parts = cpu_thread_parts

    body = _energy_and_grad.__wrapped__
    wide = jax.jit(body, static_argnames="want_grad", compiler_options=WIDE_VECTORS)
    narrow = jax.jit(body, static_argnames="want_grad")
    x = jax.random.uniform(jax.random.key(2), (10_000_000,), jnp.float32, -100.0, 100.0)
    fused, library = jax.jit(sincos), jax.jit(lambda v: (jnp.sin(v), jnp.cos(v)))

    def normals(impl):
        draw = jax.jit(lambda k: jax.random.normal(k, (y, d)))
        key = jax.random.key(0, impl=impl)
        return lambda: best_time(lambda: draw(key), repeats=3)

    timers = {
        "descend_concurrent_parts": lambda: recall(cpu_thread_parts),
        "descend_one_part": lambda: recall(lambda size: 1),
        "egrad_512_bit_vectors": lambda: best_time(lambda: wide(memory, queries, True), repeats=3),
        "egrad_xla_default_vectors": lambda: best_time(lambda: narrow(memory, queries, True), repeats=3),
        "sincos_fused": lambda: best_time(lambda: fused(x), repeats=3),
        "sin_cos_library": lambda: best_time(lambda: library(x), repeats=3),
        **{f"normals_{impl}": normals(impl) for impl in ("threefry2x32", "rbg", "unsafe_rbg")},
    }
    return {"parts": cpu_thread_parts(BATCH), "samples": paired_rounds(timers, rounds)}


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
          "generator": child_generator, "precision": child_precision,
          "ablation": child_ablation}[kind]
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
    parser.add_argument("--rounds", type=int, default=3,
                        help="paired rounds per size (superpose and the reference alternating, a fresh process each)")
    parser.add_argument("--precision-study", action="store_true",
                        help="only time each product precision (TF32 on GPUs) and its angle error; writes "
                             "memory-precision-<backend>.json")
    parser.add_argument("--ablation", action="store_true",
                        help="only measure what each CPU choice gains (concurrent parts, vector width, "
                             "generator, sincos); writes memory-ablation-<backend>.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child_main(json.loads(args.child))
        return
    sys.path.insert(0, str(Path(__file__).parent))
    import jax
    import numpy as np
    from _common import paired_rounds, print_table, ratio_summary, summary, write_results

    if args.ablation:
        rows = [{"D": d, "Y": y, **run_child("ablation", d=d, y=y, rounds=args.rounds)}
                for d, y in ((30, 100_000), (784, 10_000))]
        print(json.dumps([{k: v for k, v in r.items() if k != "samples"} for r in rows]))
        print("wrote", write_results("memory-ablation", rows))
        return
    if args.precision_study:
        rows = [{"D": d, "Y": y, **run_child("precision", d=d, y=y)} for d, y in ((30, 100_000), (784, 100_000))]
        print(json.dumps(rows, indent=1))
        print("wrote", write_results("memory-precision", rows))
        return
    reference = None if args.quick else args.reference
    sizes = [(30, 10_000), (784, 10_000)] if args.quick else [(30, 10_000), (30, 100_000), (784, 10_000), (784, 100_000)]
    if args.dims:
        sizes = [(d, y) for d, y in sizes if d in args.dims]
    ceiling = run_child("matmul")["gflops"]
    print(f"float32 matmul ceiling (4096³): {ceiling:.1f} GFLOP/s")
    rows = []
    for d, y in sizes:
        data_file = None
        if reference:
            folder = tempfile.mkdtemp()
            data_file = os.path.join(folder, "patterns.npz")
            np.savez(data_file, **dict(zip(("memories", "queries"), map(np.asarray, _data(d, 20)))))
        split = d == 30 and jax.default_backend() == "cpu"  # thin products: one device per core keeps cores busier
        sides = {"ours": lambda d=d, y=y: run_child("ours", d=d, y=y, projection="auto", recall=True)}
        if split:
            sides["device_per_core"] = lambda d=d, y=y: run_child("ours", host_devices=os.cpu_count() or 1, d=d, y=y,
                                                                  projection="auto", recall=True)
        if reference:
            sides["reference"] = lambda d=d, y=y, data=data_file: run_child(
                "reference", python=args.reference_python, d=d, y=y, recall=True, path=reference, data=data)
        runs = paired_rounds(sides, args.rounds)  # each sample: one fresh process's measurements
        if data_file:
            shutil.rmtree(os.path.dirname(data_file))
        ours = runs["ours"]

        def median(runs_of_side, key):
            values = [r[key] for r in runs_of_side if r.get(key) is not None]
            return summary(values)["median"] if values else None

        egrad_s = median(ours, "egrad_s")
        row = {"D": d, "Y": y, "stored": ours[0].get("stored"), "egrad_q_per_s": median(ours, "queries_per_s"),
               "recall_s": median(ours, "recall_s"), "recall_first_s": median(ours, "recall_first_s"),
               "peak_gib": median(ours, "peak_rss_gib"), "peak_device_gib": median(ours, "peak_device_gib"),
               "matmul_fraction": (4 * BATCH * y * d / egrad_s / 1e9 / ceiling) if egrad_s else None,
               "rounds": runs}
        if split:
            row["recall_s_device_per_core"] = median(runs["device_per_core"], "recall_s")
        if reference and all("recall_s" in r for r in runs["reference"]) and all("recall_s" in r for r in ours):
            theirs = runs["reference"]
            row.update(ref_egrad_q_per_s=median(theirs, "queries_per_s"), ref_recall_s=median(theirs, "recall_s"),
                       ref_peak_gib=median(theirs, "peak_rss_gib"), ref_peak_device_gib=median(theirs, "peak_device_gib"),
                       # compiled against compiled: one batched energy+gradient call, per round
                       egrad_speedup=ratio_summary([r["egrad_s"] for r in theirs], [r["egrad_s"] for r in ours]),
                       # end to end, compilation included on both sides: the reference recompiles every call
                       recall_speedup_end_to_end=ratio_summary([r["recall_s"] for r in theirs],
                                                               [r["recall_first_s"] for r in ours]),
                       # our compiled loop against the reference's call (which compiles): not like for like
                       recall_speedup_compiled_vs_call=ratio_summary([r["recall_s"] for r in theirs],
                                                                     [r["recall_s"] for r in ours]))
        rows.append(row)
        print_table([{k: (v["median"] if isinstance(v, dict) and "median" in v else v) for k, v in row.items()
                      if k != "rounds"}])
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
    path = write_results("memory-quick" if args.quick else "memory", rows, {"matmul_gflops": ceiling, "projection": projection_rows,
                                           "exact": exact_rows, "crossover": crossover,
                                           "reference": bool(reference), "rounds": args.rounds})
    print("wrote", path)


if __name__ == "__main__":
    main()
