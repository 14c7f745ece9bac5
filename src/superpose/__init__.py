"""superpose: how many things fit into few dimensions, and how to get them back out.

Capabilities (each its own subpackage, sharing :mod:`superpose.numerics`):

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
