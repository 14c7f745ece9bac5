"""Precision control: run a block of JAX code in float64 without changing the global default."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import jax


@contextlib.contextmanager
def float64_enabled() -> Iterator[None]:
    """Enables float64 in JAX for the duration of the block only (``jax.enable_x64``)."""
    if hasattr(jax, "enable_x64"):
        with jax.enable_x64(True):
            yield
    else:  # older JAX
        from jax.experimental import enable_x64

        with enable_x64():
            yield
