"""Shard a leading batch or ensemble axis across every visible JAX device.

Each capability has one big axis whose rows are independent: queries (memory), trials or
parameter sets (recall), ensemble members (toy), data batches (sae). :func:`sharded` wraps a
function that is already vectorised over that axis: it pads the axis to a multiple of the
device count, places each block on its own device with a ``NamedSharding`` over a 1-D
``Mesh``, lets ``jit`` partition the computation, and strips the padding from the result.

With a single device it is ``jax.jit`` and nothing else. On a single CPU device,
:func:`cpu_thread_parts` and :func:`run_concurrently` split a batch into parts that run in
threads at the same time instead. Multi-GPU and multi-host use is described in ``docs/scaling.md``.
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
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
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec(BATCH_AXIS)))


def replicate(tree: Any, mesh: Mesh | None = None) -> Any:
    """Places a full copy of every leaf on each device of the mesh."""
    mesh = batch_mesh() if mesh is None else mesh
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


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
        out = jitted(*placed)
        return jax.tree_util.tree_map(lambda leaf: leaf[:size], out)

    return wrapper


#: rows per part below which a CPU batch is not split across threads
MIN_THREAD_PART = 64
#: the most concurrent parts (measured on 2 cores only; more parts are untested)
MAX_THREAD_PARTS = 4


def cpu_thread_parts(size: int) -> int:
    """How many parts a batch of ``size`` independent rows is split into and run concurrently.

    Only on a single CPU device: XLA runs two calls from two threads at the same time, and on a
    CPU with few cores that keeps the cores busier than one call whose thin operations each split
    across them (DrDAM recall at D = 30, Y = 10⁵ on 2 cores: 1.6× faster). With several devices
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
    "BATCH_AXIS", "batch_mesh", "cpu_thread_parts", "distribute", "pad_batch", "replicate", "run_concurrently",
    "shard_batch", "sharded",
]
