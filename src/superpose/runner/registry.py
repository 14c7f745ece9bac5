"""The registry of runnable experiments.

Each capability declares its experiments in its own ``experiments.py`` with the
:func:`experiment` decorator. The registry imports those modules the first time it is
asked for the list, so importing :mod:`superpose` stays cheap.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from superpose.runner.config import ExperimentConfig

if TYPE_CHECKING:
    from superpose.runner.run import RunContext

# One module per capability; a capability that exists adds its line here.
EXPERIMENT_MODULES: tuple[str, ...] = (
    "superpose.numerics.experiments",
    "superpose.memory.experiments",
    "superpose.toy.experiments",
    "superpose.recall.experiments",
    "superpose.scales.experiments",
    "superpose.sae.experiments",
)

ExperimentFn = Callable[[Any, "RunContext"], None]


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A runnable experiment: a name, a typed config class and the function that runs it.

    ``quick`` holds config overrides that make the experiment fast enough for
    ``superpose gallery --quick``; ``in_gallery`` says whether the gallery runs it.
    """

    name: str
    description: str
    config_class: type[ExperimentConfig]
    fn: ExperimentFn
    quick: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    in_gallery: bool = True

    def make_config(self, overrides: Mapping[str, Any] | None = None, quick: bool = False) -> ExperimentConfig:
        """The default config, with the quick overrides (if asked) and then the user's."""
        config = self.config_class()
        if quick and self.quick:
            config = config.with_overrides(dict(self.quick))
        if overrides:
            config = config.with_overrides(dict(overrides))
        return config


_REGISTRY: dict[str, Experiment] = {}
_loaded = False


def experiment(
    name: str,
    config: type[ExperimentConfig],
    *,
    quick: Mapping[str, Any] | None = None,
    description: str | None = None,
    in_gallery: bool = True,
) -> Callable[[ExperimentFn], ExperimentFn]:
    """Registers ``fn(config, run)`` as the experiment ``name``.

    The description defaults to the first line of the function's docstring.
    """
    if not name or name != name.strip().lower() or " " in name:
        raise ValueError(f"experiment names are lower-case words joined by '-', got {name!r}")
    if not (isinstance(config, type) and issubclass(config, ExperimentConfig)):
        raise TypeError(f"config must be an ExperimentConfig subclass, got {config!r}")

    def register(fn: ExperimentFn) -> ExperimentFn:
        doc_lines = (inspect.getdoc(fn) or "").strip().splitlines()
        text = description or (doc_lines[0] if doc_lines else name)
        if name in _REGISTRY and _REGISTRY[name].fn is not fn:
            raise ValueError(f"an experiment named {name!r} is already registered")
        entry = Experiment(name, text, config, fn, dict(quick or {}), in_gallery)
        entry.make_config(quick=True)  # the quick overrides must be valid
        _REGISTRY[name] = entry
        return fn

    return register


def _load_builtin() -> None:
    global _loaded
    if not _loaded:
        for module in EXPERIMENT_MODULES:
            importlib.import_module(module)
        _loaded = True


def experiments() -> dict[str, Experiment]:
    """Every registered experiment, by name (sorted)."""
    _load_builtin()
    return dict(sorted(_REGISTRY.items()))


def get_experiment(name: str) -> Experiment:
    """The experiment called ``name``; an unknown name lists the registered ones."""
    registered = experiments()
    if name not in registered:
        raise ValueError(f"no experiment named {name!r}; registered: {', '.join(registered) or 'none'}")
    return registered[name]
