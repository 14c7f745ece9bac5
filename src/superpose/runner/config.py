"""Typed experiment configs: frozen dataclasses with defaults, documented fields and checks.

A config field is declared with :func:`param`, which records a help text and an optional
range or set of choices. :class:`ExperimentConfig` checks every field's type and range on
construction, and :meth:`ExperimentConfig.with_overrides` parses ``key=value`` strings from
the command line against those declarations.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, ClassVar, Self

_SCALARS = (bool, int, float, str)


def param(
    default: Any,
    help: str,
    *,
    low: float | None = None,
    high: float | None = None,
    choices: tuple[Any, ...] | None = None,
) -> Any:
    """Declares a config field.

    Args:
        default: the default value (a bool, int, float, str, or a tuple of one of those).
        help: one line that says what the field is, with its units.
        low, high: inclusive bounds for numbers (checked elementwise for tuples).
        choices: the allowed values, for strings and the like.
    """
    return dataclasses.field(
        default=default, metadata={"help": help, "low": low, "high": high, "choices": choices}
    )


def _field_kind(annotation: Any) -> tuple[type, bool]:
    """(scalar type, is_tuple) for ``int``, ``float``, ``tuple[float, ...]`` and the like."""
    origin = typing.get_origin(annotation)
    if origin is tuple:
        args = typing.get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis and args[0] in _SCALARS:
            return args[0], True
    elif annotation in _SCALARS:
        return annotation, False
    raise TypeError(
        f"config fields must be bool, int, float, str or tuple[T, ...] of those, got {annotation!r}"
    )


def _describe_kind(kind: type, is_tuple: bool) -> str:
    name = kind.__name__
    return f"comma-separated {name}s" if is_tuple else name


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


@dataclasses.dataclass(frozen=True)
class FieldInfo:
    """What the CLI and the reports need to know about one config field."""

    name: str
    kind: type
    is_tuple: bool
    default: Any
    help: str
    low: float | None
    high: float | None
    choices: tuple[Any, ...] | None

    def allowed(self) -> str:
        """The accepted values in words, e.g. ``'int in [1, 100]'``."""
        text = _describe_kind(self.kind, self.is_tuple)
        if self.choices is not None:
            text += " one of {" + ", ".join(map(str, self.choices)) + "}"
        elif self.low is not None or self.high is not None:
            lo = "-inf" if self.low is None else _number(self.low)
            hi = "inf" if self.high is None else _number(self.high)
            text += f" in [{lo}, {hi}]"
        return text

    def describe(self) -> str:
        """A one-line description: name, accepted values and default."""
        default = ",".join(map(str, self.default)) if self.is_tuple else self.default
        return f"{self.name} ({self.allowed()}; default {default})"


def _coerce_scalar(info: FieldInfo, value: Any) -> Any:
    kind = info.kind
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"{info.name} must be true or false, got {value!r}")
    if isinstance(value, bool):
        raise ValueError(f"{info.name} must be a {kind.__name__}, got the bool {value!r}")
    if kind is int:
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise ValueError(f"{info.name} must be an integer, got {value!r}")
    if kind is float:
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
        raise ValueError(f"{info.name} must be a number, got {value!r}")
    if not isinstance(value, str):
        raise ValueError(f"{info.name} must be a string, got {value!r}")
    return value


def _check_range(info: FieldInfo, value: Any) -> None:
    if info.choices is not None and value not in info.choices:
        raise ValueError(f"{info.name} must be one of {list(info.choices)}, got {value!r}")
    if info.kind in (int, float):
        if not math.isfinite(value):
            raise ValueError(f"{info.name} must be finite, got {value!r}")
        if (info.low is not None and value < info.low) or (info.high is not None and value > info.high):
            raise ValueError(f"{info.name} must be {info.allowed()}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Base class of every experiment's config. Subclasses add fields with :func:`param`.

    Subclasses may override :meth:`check` for rules that involve several fields.
    """

    seed: int = param(0, "PRNG seed; the same seed gives the same results", low=0, high=2**31 - 1)

    _info_cache: ClassVar[dict[type, dict[str, FieldInfo]]] = {}

    @classmethod
    def fields_info(cls) -> dict[str, FieldInfo]:
        """Every field's :class:`FieldInfo`, in declaration order."""
        if cls not in ExperimentConfig._info_cache:
            hints = typing.get_type_hints(cls)
            infos = {}
            for f in dataclasses.fields(cls):
                kind, is_tuple = _field_kind(hints[f.name])
                meta = f.metadata
                infos[f.name] = FieldInfo(
                    name=f.name,
                    kind=kind,
                    is_tuple=is_tuple,
                    default=f.default,
                    help=meta.get("help", ""),
                    low=meta.get("low"),
                    high=meta.get("high"),
                    choices=meta.get("choices"),
                )
            ExperimentConfig._info_cache[cls] = infos
        return ExperimentConfig._info_cache[cls]

    def __post_init__(self) -> None:
        for name, info in self.fields_info().items():
            value = getattr(self, name)
            if info.is_tuple:
                if isinstance(value, str):
                    value = tuple(part for part in value.split(",") if part.strip())
                if not isinstance(value, (tuple, list)):
                    raise ValueError(f"{name} must be {_describe_kind(info.kind, True)}, got {value!r}")
                value = tuple(_coerce_scalar(info, item) for item in value)
                if not value:
                    raise ValueError(f"{name} needs at least one value")
                for item in value:
                    _check_range(info, item)
            else:
                value = _coerce_scalar(info, value)
                _check_range(info, value)
            object.__setattr__(self, name, value)
        self.check()

    def check(self) -> None:
        """Cross-field validation; raise ValueError with a clear message. Default: nothing."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the fields (tuples become lists)."""
        return {
            name: list(getattr(self, name)) if info.is_tuple else getattr(self, name)
            for name, info in self.fields_info().items()
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Self:
        """Builds a config from a dict such as ``config.json``'s; unknown keys are an error."""
        unknown = set(values) - set(cls.fields_info())
        if unknown:
            raise ValueError(f"unknown config keys {sorted(unknown)}; {cls.valid_keys_message()}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    @classmethod
    def valid_keys_message(cls) -> str:
        """The list of valid keys with types, ranges and defaults, for error messages."""
        lines = "\n".join(f"  {info.describe()}" for info in cls.fields_info().values())
        return f"valid keys:\n{lines}"

    def with_overrides(self, overrides: dict[str, Any]) -> Self:
        """A copy with the given fields replaced, each parsed and checked like a default."""
        infos = self.fields_info()
        unknown = [key for key in overrides if key not in infos]
        if unknown:
            raise ValueError(f"unknown config key {unknown[0]!r}; {self.valid_keys_message()}")
        return dataclasses.replace(self, **overrides)


def parse_overrides(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """Splits ``["key=value", ...]`` into a dict; a malformed or repeated pair is an error."""
    parsed: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"overrides look like key=value, got {pair!r}")
        if key in parsed:
            raise ValueError(f"config key {key!r} is set twice")
        parsed[key] = value
    return parsed


def config_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Human-readable differences between two config dicts (as stored in config.json)."""
    keys = sorted(set(a) | set(b))
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in keys if a.get(k) != b.get(k)]


__all__ = [
    "ExperimentConfig",
    "FieldInfo",
    "config_differences",
    "param",
    "parse_overrides",
]
