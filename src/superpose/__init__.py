"""superpose: how many things fit into few dimensions, and how to get them back out.

Capabilities (each its own subpackage, sharing :mod:`superpose.numerics`):

- :mod:`superpose.memory`: Dense Associative Memory energies and retrieval, and DrDAM.
- :mod:`superpose.recall`: CMR memory-search models of free recall, fitted to recall data.
- :mod:`superpose.scales`: exact, reversible transitions between scales, with proven and
  measured Lipschitz bounds.
- :mod:`superpose.toy`: toy models of superposition trained as vectorised ensembles.
- :mod:`superpose.sae`: sparse autoencoders whose atoms are manifolds, fitted at given
  hyperparameters, and linear SAE baselines.

Shared infrastructure:

- :mod:`superpose.numerics`: power-scaled choice rules, clamped strengths, safe vector helpers.
- :mod:`superpose.parallel`: shard a batch or ensemble axis across every visible JAX device.
- :mod:`superpose.runner`: typed experiment configs, resumable run directories, HTML reports.

The command-line tool is ``superpose`` (see ``superpose --help``).
"""

import os
from importlib.metadata import PackageNotFoundError, version

#: jaxlib 0.10's CPU LAPACK kernels (batched ``eigh``, ``solve``, ``cholesky``, triangular solves)
#: split their batch over XLA's intra-op thread pool and block until it is done. When a compiled
#: function runs as many independent batched LAPACK calls at once as the pool has threads (two on a
#: 2-core machine), every pool thread waits for work queued behind it: the process hangs with
#: 0% CPU (measured here: the SAE's Laplace criterion with 8 circle atoms, and a 4-line repro in
#: tests/test_lapack_deadlock.py). XLA's memory-minimising scheduler orders such calls one after
#: the other. Set before JAX starts its CPU client; a flag the user set is left alone.
LAPACK_DEADLOCK_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler=false"


def _avoid_lapack_deadlock() -> None:
    try:
        affected = version("jaxlib").startswith("0.10.")
    except PackageNotFoundError:
        return
    current = os.environ.get("XLA_FLAGS", "")
    if affected and "xla_cpu_enable_concurrency_optimized_scheduler" not in current:
        os.environ["XLA_FLAGS"] = f"{current} {LAPACK_DEADLOCK_FLAG}".strip()


_avoid_lapack_deadlock()

try:
    __version__ = version("superpose")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
