"""The registry of runnable experiments.

Each capability declares its experiments in its own ``experiments.py`` with the
:func:`experiment` decorator. The registry imports those modules the first time it is
asked for the list, so importing :mod:`superpose` stays cheap.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
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

# Expected wall time in seconds on 2 CPU cores, with the default ("full") and the quick settings,
# for experiments whose registration does not state its own. Quick: the cold quick gallery as a new
# machine runs it (empty compilation cache, two experiments at a time, each worker pinned to a core of
# its own), 2026-12-03 07:00 UTC on the 2-core Xeon (4 min 20 s in all; docs/runner.md).
# Full: the full gallery on a fresh clone, one at a time, 2026-12-03 07:49-08:26 UTC on the same Xeon
# (36 min 32 s of experiments; docs/runner.md).
EXPECTED_SECONDS: Mapping[str, Mapping[str, float]] = {
    "power-scale": {"full": 4.6, "quick": 8.8},
    "memory-landscape": {"full": 14.0, "quick": 17.2},
    "memory-error": {"full": 38.0, "quick": 35.4},
    "memory-completion": {"full": 5.3, "quick": 7.6},
    "memory-capacity": {"full": 45.0, "quick": 33.2},
    "toy-phase": {"full": 93.0, "quick": 27.5},
    "toy-hierarchy": {"full": 293.0, "quick": 37.0},
    "toy-geometry": {"full": 96.0, "quick": 21.5},
    "recall-fit": {"full": 182.0, "quick": 8.9},
    "recall-recovery": {"full": 53.0, "quick": 37.3},
    "recall-choice-rule": {"full": 6.9, "quick": 11.9},
    "recall-compare": {"full": 403.0, "quick": 35.9},
    "scales-stability": {"full": 19.2, "quick": 22.2},
    "sae-circles": {"full": 79.0, "quick": 27.9},
    "sae-sweep": {"full": 287.0, "quick": 40.1},
    "sae-toy": {"full": 23.0, "quick": 18.9},
    "sae-grokking": {"full": 88.0, "quick": 44.5},
    "sae-superposed": {"full": 454.0, "quick": 76.4},
}
# For an experiment with no expected time anywhere: generous, so the estimate errs long.
DEFAULT_EXPECTED_SECONDS: Mapping[str, float] = {"full": 120.0, "quick": 15.0}


def check_expected_seconds(expected: Mapping[str, Any]) -> dict[str, float]:
    """Checks a ``{"full": s, "quick": s}`` mapping (either key may be left out); returns it as floats."""
    if not isinstance(expected, Mapping):
        raise TypeError(f"expected_seconds must be a mapping like {{'full': 60.0, 'quick': 5.0}}, got {expected!r}")
    checked: dict[str, float] = {}
    for mode, seconds in expected.items():
        if mode not in ("full", "quick"):
            raise ValueError(f"expected_seconds keys are 'full' and 'quick', got {mode!r}")
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise TypeError(f"expected_seconds[{mode!r}] must be a number of seconds, got {seconds!r}")
        if not (math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"expected_seconds[{mode!r}] must be finite and > 0, got {seconds!r}")
        checked[mode] = float(seconds)
    return checked


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A runnable experiment: a name, a typed config class and the function that runs it.

    ``quick`` holds config overrides that make the experiment fast enough for
    ``superpose gallery --quick``; ``in_gallery`` says whether the gallery runs it;
    ``expected_seconds`` its wall time on 2 CPU cores, ``{"full": s, "quick": s}``, for the
    gallery's estimate of the time left (missing keys come from :data:`EXPECTED_SECONDS`).
    """

    name: str
    description: str
    config_class: type[ExperimentConfig]
    fn: ExperimentFn
    quick: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    in_gallery: bool = True
    expected_seconds: Mapping[str, float] = dataclasses.field(default_factory=dict)

    def expected_cost(self, quick: bool = False) -> float:
        """Expected wall time in seconds on 2 CPU cores with the default (or quick) settings.

        Taken from the experiment's own ``expected_seconds``, else :data:`EXPECTED_SECONDS` by
        name, else :data:`DEFAULT_EXPECTED_SECONDS`.
        """
        mode = "quick" if quick else "full"
        for source in (self.expected_seconds, EXPECTED_SECONDS.get(self.name, {})):
            if mode in source:
                return float(source[mode])
        return float(DEFAULT_EXPECTED_SECONDS[mode])

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
    expected_seconds: Mapping[str, float] | None = None,
) -> Callable[[ExperimentFn], ExperimentFn]:
    """Registers ``fn(config, run)`` as the experiment ``name``.

    The description defaults to the first line of the function's docstring; ``expected_seconds``
    (``{"full": s, "quick": s}``, wall time on 2 CPU cores) defaults to :data:`EXPECTED_SECONDS`.
    """
    if not name or name != name.strip().lower() or " " in name:
        raise ValueError(f"experiment names are lower-case words joined by '-', got {name!r}")
    if not (isinstance(config, type) and issubclass(config, ExperimentConfig)):
        raise TypeError(f"config must be an ExperimentConfig subclass, got {config!r}")
    expected = check_expected_seconds(expected_seconds or {})

    def register(fn: ExperimentFn) -> ExperimentFn:
        doc_lines = (inspect.getdoc(fn) or "").strip().splitlines()
        text = description or (doc_lines[0] if doc_lines else name)
        if name in _REGISTRY and _REGISTRY[name].fn is not fn:
            raise ValueError(f"an experiment named {name!r} is already registered")
        entry = Experiment(name, text, config, fn, dict(quick or {}), in_gallery, expected)
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
