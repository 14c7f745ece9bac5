"""Input checks shared by every public function.

Checks run only on concrete (eager) values: under ``jit`` the values are tracers and
cannot be inspected, so callers validate before they trace, or accept that a traced
call skips the check (each function's docstring says what happens then).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(*values: Any) -> bool:
    """True when no value is a JAX tracer, so its contents can be inspected."""
    return not any(isinstance(v, jax.core.Tracer) for v in values)


def as_float_array(name: str, value: Any, allow_complex: bool = False) -> jax.Array:
    """Converts to a floating (or, if allowed, complex) JAX array; integers and bools become the default float."""
    try:
        array = jnp.asarray(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be array-like of numbers, got {type(value).__name__}") from error
    if array.dtype == jnp.bool_ or jnp.issubdtype(array.dtype, jnp.integer):
        array = array.astype(jnp.result_type(float))
    elif not jnp.issubdtype(array.dtype, jnp.inexact if allow_complex else jnp.floating):
        what = "real or complex numbers" if allow_complex else "real numbers"
        raise TypeError(f"{name} must hold {what}, got dtype {array.dtype}")
    return array


def host_values(array: Any) -> np.ndarray:
    """A concrete array's values on the host, also for a global array whose rows lie on several
    processes (gathered: a collective, as every process validates the same call)."""
    if isinstance(array, jax.Array) and not array.is_fully_addressable:
        from superpose.parallel import gathered

        array = gathered(array)
    return np.asarray(array)


def check_finite(name: str, array: jax.Array) -> None:
    """Raises ValueError if a concrete array holds NaN or inf."""
    if not is_concrete(array):
        return
    finite = np.isfinite(host_values(array))
    if not finite.all():
        raise ValueError(f"{name} must be finite; it holds {int(finite.size - np.count_nonzero(finite))} NaN or inf "
                         "entries")


def check_nonnegative(name: str, array: jax.Array) -> None:
    """Raises ValueError if a concrete array holds a negative entry."""
    if is_concrete(array):
        values = host_values(array)
        if np.any(values < 0):
            raise ValueError(
                f"{name} must be >= 0; found {int(np.sum(values < 0))} negative entries "
                f"(smallest {values.min():.6g})"
            )


def check_at_least_1d(name: str, array: jax.Array) -> None:
    """Raises ValueError for a scalar where a vector (last axis = items) is needed."""
    if array.ndim < 1 or array.shape[-1] == 0:
        raise ValueError(f"{name} must have shape (..., N) with N >= 1, got shape {array.shape}")


def broadcast_per_row(name: str, value: jax.Array, leading_shape: tuple[int, ...]) -> jax.Array:
    """Broadcasts a scalar or a per-row array (shape = leading_shape) to leading_shape + (1,)."""
    try:
        return jnp.broadcast_to(value, leading_shape)[..., None]
    except ValueError as error:
        raise ValueError(
            f"{name} must be a scalar or have the leading shape {leading_shape} of the values, "
            f"got shape {jnp.shape(value)}"
        ) from error


def positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """An integer >= minimum (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def positive_float(value: Any, name: str) -> float:
    """A finite float > 0."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return number


def nonnegative_float(value: Any, name: str) -> float:
    """A finite float >= 0."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return number


def finite_matrix(Z: Any, name: str = "Z", p: int | None = None) -> np.ndarray:
    """A finite float64 NumPy matrix (N, p) with N, p >= 1 (and p columns if given), else a clear error."""
    try:
        array = np.asarray(Z, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be a numeric array of shape (N, p), got {type(Z).__name__}") from error
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"{name} must have shape (N, p) with N, p >= 1, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        raise ValueError(f"{name} must be finite; it holds {bad} NaN or inf entries")
    if p is not None and array.shape[1] != p:
        raise ValueError(f"{name} must have p = {p} columns (the model's output size), got {array.shape[1]}")
    return array
