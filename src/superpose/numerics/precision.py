"""Precision control: float64 for a block of JAX code, and full-precision float32 products."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import jax
import jax.numpy as jnp


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


#: float32 products at full precision on every backend. GPUs otherwise run float32 matmuls in
#: TF32, whose 10-bit mantissa puts errors of about 10⁻³·|h| into random-feature angles h and
#: into ‖v‖² − 2v·ξ + ‖ξ‖²; on CPU it changes nothing.
matmul = functools.partial(jnp.matmul, precision=jax.lax.Precision.HIGHEST)


#: the float32 product precisions a user may ask for, by JAX's names: ``"highest"`` (full float32,
#: the default everywhere in superpose) and ``"default"`` (the backend's fastest: TF32 on NVIDIA GPUs
#: since Ampere, bfloat16 passes on TPUs, full float32 on CPUs).
MATMUL_PRECISIONS = {"highest": jax.lax.Precision.HIGHEST, "default": jax.lax.Precision.DEFAULT}


def matmul_at(precision: str):
    """``jnp.matmul`` at one of :data:`MATMUL_PRECISIONS` (raises ValueError for any other name)."""
    if precision not in MATMUL_PRECISIONS:
        raise ValueError(f"precision must be one of {tuple(MATMUL_PRECISIONS)}, got {precision!r}")
    return functools.partial(jnp.matmul, precision=MATMUL_PRECISIONS[precision])
