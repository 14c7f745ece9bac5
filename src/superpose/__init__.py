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

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("superpose")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
