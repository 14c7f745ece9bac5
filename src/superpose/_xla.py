"""``jax.jit`` with XLA options that apply on the CPU backend only, and freeing compiled programs.

Some of the library's hot loops run measurably faster on CPU with non-default XLA options
(each caller documents what it measured). The options are per function, not process-wide
flags, so they never change how a user's own code compiles, and other backends keep their
defaults. They apply when the function is called at the top level; called inside another
trace (``grad``, ``vmap``, an outer ``jit``) it is inlined and the outer compilation decides.

Every compiled program keeps its machine code in memory mappings (3 to 9 each, measured) until it
is freed, and Linux stops a process at ``vm.max_map_count`` (65530 by default; LLVM then fails with
"Cannot allocate memory"). Long processes that compile many shapes (the gallery, the test workers)
call :func:`free_compiled_programs`.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import jax

#: LLVM's optimisation level 1 instead of 3: faster to compile, and faster to run for scan-heavy code.
FAST_COMPILE = {"xla_backend_optimization_level": 1}
#: Level 1 without LLVM's expensive passes: 1.1-2.2x faster compiles for some programs at about the same
#: run time, none for others (benchmarks/compile_options.py); each user states what it measured.
CHEAP_COMPILE = {"xla_backend_optimization_level": 1, "xla_llvm_disable_expensive_passes": True}
#: 512-bit vectors where the CPU has them (XLA prefers 256-bit by default): elementwise-heavy code.
WIDE_VECTORS = {"xla_cpu_prefer_vector_width": 512}


def jit(fn: Callable[..., Any] | None = None, *, cpu_options: dict[str, Any], **kwargs: Any):
    """``jax.jit(fn, **kwargs)``, compiled with ``cpu_options`` when the backend is the CPU.

    The backend is read at the first call, not at import. Usable as a decorator, with or without
    keyword arguments: ``@functools.partial(jit, cpu_options=WIDE_VECTORS, static_argnames=...)``.
    """
    if fn is None:
        return functools.partial(jit, cpu_options=cpu_options, **kwargs)
    plain = jax.jit(fn, **kwargs)
    compiled: list[Any] = []
    lock = threading.Lock()

    @functools.wraps(fn)
    def call(*args: Any, **kw: Any) -> Any:
        if any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves((args, kw))):
            return plain(*args, **kw)
        with lock:  # callers in several threads share one jitted function
            if not compiled:
                options = dict(cpu_options) if jax.default_backend() == "cpu" else None
                compiled.append(jax.jit(fn, compiler_options=options, **kwargs) if options else plain)
        return compiled[0](*args, **kw)

    return call


def memory_mappings() -> int | None:
    """The number of memory mappings this process holds (``/proc/self/maps``), or None where it cannot be read."""
    try:
        with open("/proc/self/maps") as maps:
            return sum(1 for _ in maps)
    except OSError:  # not Linux
        return None


def free_compiled_programs(above: int = 0) -> bool:
    """Clears JAX's in-memory caches (compiled programs and their mappings; the persistent cache on disk
    stays) when this process holds more than ``above`` memory mappings, or where it cannot tell.
    Returns whether it cleared them."""
    count = memory_mappings()
    if count is not None and count <= above:
        return False
    jax.clear_caches()
    return True
