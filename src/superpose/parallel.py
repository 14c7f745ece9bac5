"""Shard a leading batch or ensemble axis across every visible JAX device.

Each capability has one big axis whose rows are independent: queries (memory), trials or
parameter sets (recall), ensemble members (toy), data batches (sae). :func:`sharded` wraps a
function that is already vectorised over that axis: it pads the axis to a multiple of the
device count, places each block on its own device with a ``NamedSharding`` over a 1-D
``Mesh``, lets ``jit`` partition the computation, and strips the padding from the result.

With a single device it is ``jax.jit`` and nothing else. On a single CPU device,
:func:`cpu_thread_parts` and :func:`run_concurrently` split a batch into parts that run in
threads at the same time instead.

Several processes (one per host, or several on one host) join with :func:`initialize_processes`;
``jax.devices()`` then lists every process's devices, the mesh spans them all, and
:func:`gathered` brings a result split over processes back to each of them. Multi-GPU and
multi-host use is described in ``docs/scaling.md``.
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import os
import re
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

BATCH_AXIS = "batch"


def batch_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh named ``"batch"`` over ``devices`` (default: every visible device)."""
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("batch_mesh needs at least one device")
    return Mesh(np.array(devices), (BATCH_AXIS,))


def _leading_size(tree: Any, what: str) -> int:
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves:
        raise ValueError(f"{what} holds no arrays")
    sizes = {np.shape(leaf)[0] if np.ndim(leaf) > 0 else None for leaf in leaves}
    if None in sizes:
        raise ValueError(f"every array in {what} needs a leading batch axis; found a scalar")
    if len(sizes) != 1:
        raise ValueError(f"the arrays in {what} disagree on the leading batch size: {sorted(sizes)}")
    return sizes.pop()


def pad_batch(tree: Any, multiple: int) -> tuple[Any, int]:
    """Pads every leaf's leading axis to a multiple of ``multiple`` by repeating its last row.

    Repeating a real row (rather than zeros) keeps the padding inside the function's domain,
    so it cannot raise or produce NaN. Returns ``(padded tree, original size)``.
    """
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    size = _leading_size(tree, "the batch")
    extra = (-size) % multiple
    if extra == 0:
        return tree, size

    def pad(leaf: Any) -> jax.Array:
        leaf = jnp.asarray(leaf)
        return jnp.concatenate([leaf, jnp.repeat(leaf[-1:], extra, axis=0)], axis=0)

    return jax.tree_util.tree_map(pad, tree), size


def shard_batch(tree: Any, mesh: Mesh | None = None) -> Any:
    """Places each leaf's leading axis across the mesh; its size must divide evenly."""
    mesh = batch_mesh() if mesh is None else mesh
    size = _leading_size(tree, "the batch")
    if size % mesh.size:
        raise ValueError(
            f"a leading axis of {size} does not split evenly over {mesh.size} devices; "
            "pad it first with pad_batch, or call through sharded()"
        )
    return _place(tree, NamedSharding(mesh, PartitionSpec(BATCH_AXIS)))


def replicate(tree: Any, mesh: Mesh | None = None) -> Any:
    """Places a full copy of every leaf on each device of the mesh."""
    mesh = batch_mesh() if mesh is None else mesh
    return _place(tree, NamedSharding(mesh, PartitionSpec()))


def _place(tree: Any, sharding: NamedSharding) -> Any:
    """``jax.device_put(tree, sharding)``; over several processes, each process places its own part
    of a host copy (every process holds the same values: the same program drew them)."""
    if jax.process_count() == 1 or sharding.is_fully_addressable:
        return jax.device_put(tree, sharding)

    def place(leaf: Any) -> jax.Array:
        if isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(place(jax.random.key_data(leaf)), impl=jax.random.key_impl(leaf))
        host = np.asarray(gathered(leaf))
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree_util.tree_map(place, tree)


def distribute(batched: Any, replicated: Any = (), mesh: Mesh | None = None) -> tuple[Any, Any, int]:
    """Places ``batched`` (leading axis split, padded to a multiple of the devices) and ``replicated``.

    Returns ``(placed batched, placed replicated, original batch size)``. With one device both
    trees come back untouched, so calling code needs no special case.
    """
    the_mesh = batch_mesh() if mesh is None else mesh
    size = _leading_size(batched, "the batch")
    if the_mesh.size == 1:
        return batched, replicated, size
    padded, size = pad_batch(batched, the_mesh.size)
    return shard_batch(padded, the_mesh), replicate(replicated, the_mesh), size


def sharded(
    fn: Callable[..., Any], batch_argnums: Sequence[int] = (0,), mesh: Mesh | None = None
) -> Callable[..., Any]:
    """Wraps ``fn`` so that the leading axis of its batched arguments is split over devices.

    ``fn`` must treat rows of that axis independently, and every leaf of its output must
    carry the same leading axis. Other arguments are replicated. The wrapped function is
    jitted once per input shape.

    Args:
        fn: a function vectorised over the leading axis of the arguments in ``batch_argnums``.
        batch_argnums: positions of the batched arguments (pytrees of arrays of size B).
        mesh: the device mesh; default, every visible device.

    Returns:
        A function with ``fn``'s signature whose outputs have leading size B.
    """
    batch_argnums = tuple(batch_argnums)
    jitted = jax.jit(fn)

    @functools.wraps(fn)
    def wrapper(*args: Any) -> Any:
        if any(i >= len(args) for i in batch_argnums):
            raise TypeError(f"batch_argnums {batch_argnums} name arguments that were not given")
        the_mesh = batch_mesh() if mesh is None else mesh
        if the_mesh.size == 1:
            return jitted(*args)
        others = [i for i in range(len(args)) if i not in batch_argnums]
        batched, rest, size = distribute([args[i] for i in batch_argnums], [args[i] for i in others], the_mesh)
        placed = list(args)
        for i, tree in zip([*batch_argnums, *others], [*batched, *rest]):
            placed[i] = tree
        out = gathered(jitted(*placed))
        return jax.tree_util.tree_map(lambda leaf: leaf[:size], out)

    return wrapper


def assemble_batch(local_rows: Any, mesh: Mesh | None = None) -> Any:
    """One global batch from each process's own rows (data too large to hold on every host).

    Every process passes the rows it loaded (a pytree of arrays with leading axis B_i); the result
    is a global array of B = Σ B_i rows split over the mesh, rows ordered by process index. Its
    leading size must split evenly over the mesh's devices. A collective: every process calls it.
    With one process it is :func:`shard_batch` of ``local_rows``.
    """
    mesh = batch_mesh() if mesh is None else mesh
    if jax.process_count() == 1:
        return shard_batch(local_rows, mesh)
    sharding = NamedSharding(mesh, PartitionSpec(BATCH_AXIS))
    return jax.tree_util.tree_map(
        lambda leaf: jax.make_array_from_process_local_data(sharding, np.asarray(leaf)), local_rows)


def gathered(tree: Any) -> Any:
    """Every leaf as an array this process holds whole.

    A result computed over several processes is a global array whose rows lie on several hosts;
    such leaves are gathered (a collective: every process must call this at the same point) and
    come back as single-device arrays with the same values on every process. Leaves held whole
    already (everything in a single process) come back untouched.
    """
    if jax.process_count() == 1:
        return tree

    def whole(leaf: Any) -> Any:
        if not isinstance(leaf, jax.Array) or leaf.is_fully_addressable:
            return leaf
        if leaf.is_fully_replicated:
            return jnp.asarray(leaf.addressable_data(0))
        from jax.experimental import multihost_utils

        return jnp.asarray(multihost_utils.process_allgather(leaf, tiled=True))

    return jax.tree_util.tree_map(whole, tree)


# -- several processes -----------------------------------------------------------------------

#: seconds without a heartbeat before a process counts as lost (every other process then ends)
HEARTBEAT_TIMEOUT_S = 60
#: seconds a finished process waits for the others at exit before ending with an error
SHUTDOWN_TIMEOUT_S = 60
#: seconds to wait for every process to join
JOIN_TIMEOUT_S = 300
_ADDRESS = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:(\d{1,5})$")


def initialize_processes(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    heartbeat_timeout_s: int = HEARTBEAT_TIMEOUT_S,
    shutdown_timeout_s: int = SHUTDOWN_TIMEOUT_S,
    join_timeout_s: int = JOIN_TIMEOUT_S,
) -> None:
    """Joins this process to a multi-process JAX run (``jax.distributed.initialize``).

    Call it first, before any other JAX work. With no arguments JAX reads the coordinator, the
    process count and this process's id from the environment (SLURM, Open MPI, cloud TPUs); or
    give all three. On CPUs the processes exchange data through gloo. A process that stops
    sending heartbeats for ``heartbeat_timeout_s``, or that does not reach the exit barrier within
    ``shutdown_timeout_s`` of the others, ends every process with an error (JAX's coordination
    service), so a failure on one host never leaves the others waiting.

    Args:
        coordinator: ``"host:port"`` of process 0's coordination service.
        num_processes: how many processes join (≥ 1).
        process_id: this process's index, ``0 ≤ process_id < num_processes``.
        heartbeat_timeout_s, shutdown_timeout_s, join_timeout_s: whole seconds ≥ 1.
    """
    given = [coordinator is not None, num_processes is not None, process_id is not None]
    if any(given) and not all(given):
        raise ValueError(
            "give the coordinator address, the number of processes and this process's id together, "
            "or none of them (to read them from SLURM or Open MPI)"
        )
    for name, value in (("heartbeat_timeout_s", heartbeat_timeout_s), ("shutdown_timeout_s", shutdown_timeout_s),
                        ("join_timeout_s", join_timeout_s)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number of seconds >= 1, got {value!r}")
    if all(given):
        if not isinstance(coordinator, str) or not _ADDRESS.match(coordinator) or not (
                0 < int(_ADDRESS.match(coordinator).group(1)) < 65536):
            raise ValueError(f"coordinator must be 'host:port' with a port in 1..65535, got {coordinator!r}")
        if isinstance(num_processes, bool) or not isinstance(num_processes, int) or num_processes < 1:
            raise ValueError(f"num_processes must be an integer >= 1, got {num_processes!r}")
        if isinstance(process_id, bool) or not isinstance(process_id, int) or not 0 <= process_id < num_processes:
            raise ValueError(f"process_id must be an integer in [0, {num_processes}), got {process_id!r}")
    if jax.distributed.is_initialized():
        raise RuntimeError("this process has already joined a multi-process run")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            coordinator_address=coordinator, num_processes=num_processes, process_id=process_id,
            initialization_timeout=join_timeout_s, heartbeat_timeout_seconds=heartbeat_timeout_s,
            shutdown_timeout_seconds=shutdown_timeout_s,
        )
    except ValueError as error:  # nothing in the environment to read the settings from
        raise ValueError(
            f"could not join a multi-process run: {error}. Outside SLURM or Open MPI give the "
            "coordinator ('host:port' of process 0), the number of processes and this process's id"
        ) from None


def is_main_process() -> bool:
    """True on process 0, the one that writes results (always true in a single process)."""
    return jax.process_index() == 0


def processes_agree(text: str) -> bool:
    """True if every process passed the same ``text`` (a collective with several processes)."""
    if jax.process_count() == 1:
        return True
    from jax.experimental import multihost_utils

    digest = np.frombuffer(hashlib.sha256(text.encode()).digest(), dtype=np.uint8)
    every = np.asarray(multihost_utils.process_allgather(digest))
    return bool((every == every[0]).all())


#: rows per part below which a CPU batch is not split across threads
MIN_THREAD_PART = 64
#: the most concurrent parts (measured on 2 cores only; more parts are untested)
MAX_THREAD_PARTS = 4


def cpu_thread_parts(size: int) -> int:
    """How many parts a batch of ``size`` independent rows is split into and run concurrently.

    Only on a single CPU device: XLA runs two calls from two threads at the same time, and on a
    CPU with few cores that keeps the cores busier than one call whose thin operations each split
    across them (DrDAM recall: `python benchmarks/memory.py --ablation` measures it). With several devices
    :func:`distribute` splits the batch instead. Returns 1 where splitting does not apply.
    """
    if jax.default_backend() != "cpu" or jax.device_count() != 1:
        return 1
    return max(1, min(os.cpu_count() or 1, MAX_THREAD_PARTS, size // MIN_THREAD_PART))


def run_concurrently(calls: Sequence[Callable[[], Any]]) -> list[Any]:
    """Runs the zero-argument ``calls`` in a shared thread pool and returns their results in order
    (each blocked until its arrays are ready, so the calls overlap)."""
    futures = [_pool().submit(lambda c=c: jax.block_until_ready(c())) for c in calls]
    return [f.result() for f in futures]


@functools.cache
def _pool() -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(MAX_THREAD_PARTS, thread_name_prefix="superpose")


__all__ = [
    "BATCH_AXIS", "assemble_batch", "batch_mesh", "cpu_thread_parts", "distribute", "gathered", "initialize_processes",
    "is_main_process", "pad_batch", "processes_agree", "replicate", "run_concurrently", "shard_batch", "sharded",
]
