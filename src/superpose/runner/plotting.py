"""The one way experiments get matplotlib: the non-interactive Agg backend, imported on first use."""

from __future__ import annotations


def pyplot():
    """``matplotlib.pyplot`` with the Agg backend selected (figures are written to files, never shown)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
