"""Atomic file writes: a temporary file in the same folder, flushed, then renamed.

A reader (or a run killed with SIGKILL) therefore sees either the old file or the new one,
never half of one. Arrays go to ``.npz`` and are read back with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np


def _write_atomic(path: Path, write: Any, mode: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    """Writes UTF-8 text atomically."""
    _write_atomic(path, lambda h: h.write(text.encode("utf-8")), "wb")


def write_bytes(path: Path, data: bytes) -> None:
    """Writes bytes atomically."""
    _write_atomic(path, lambda h: h.write(data), "wb")


def to_jsonable(value: Any) -> Any:
    """Converts numpy/JAX scalars and arrays, tuples and paths to plain JSON values.

    Non-finite floats become ``None`` (JSON has no NaN); callers that must not lose them
    should check before saving.
    """
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if hasattr(value, "__array__"):
        return to_jsonable(np.asarray(value).tolist())
    return value


def write_json(path: Path, value: Any) -> None:
    """Writes JSON atomically (indented, sorted keys kept in insertion order)."""
    write_text(path, json.dumps(to_jsonable(value), indent=2, allow_nan=False) + "\n")


def read_json(path: Path) -> Any:
    """Reads JSON, with an error that names the file if it is malformed."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error


def write_npz(path: Path, arrays: Mapping[str, Any]) -> None:
    """Writes arrays to a compressed ``.npz`` atomically; object arrays are refused."""
    converted = {}
    for name, value in arrays.items():
        array = np.asarray(value)
        if array.dtype == object:
            raise TypeError(f"array {name!r} has dtype object, which npz cannot store without pickle")
        converted[name] = array
    _write_atomic(path, lambda h: np.savez_compressed(h, **converted), "wb")


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Reads every array of an ``.npz`` file (no pickle)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} is not a readable npz file: {error}") from error
