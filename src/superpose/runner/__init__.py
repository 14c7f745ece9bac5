"""superpose.runner: typed experiment configs, resumable run directories and HTML reports.

Public API:
- :class:`ExperimentConfig`, :func:`param`: declare an experiment's typed, validated config.
- :func:`experiment`: register ``fn(config, run)`` under a name; :func:`experiments`,
  :func:`get_experiment` list and find registered experiments.
- :class:`RunContext`: what an experiment writes through (metrics, arrays, figures,
  resumable cells, progress bars).
- :func:`run_experiment`, :func:`run_gallery`: run one experiment, or all of them into one report.
"""

from superpose.runner.config import ExperimentConfig, param, parse_overrides
from superpose.runner.gallery import GalleryResult, run_gallery
from superpose.runner.registry import Experiment, experiment, experiments, get_experiment
from superpose.runner.run import (
    ExperimentFailed,
    RunContext,
    RunDirectoryError,
    RunRecord,
    run_experiment,
)

__all__ = [
    "Experiment",
    "ExperimentConfig",
    "ExperimentFailed",
    "GalleryResult",
    "RunContext",
    "RunDirectoryError",
    "RunRecord",
    "experiment",
    "experiments",
    "get_experiment",
    "param",
    "parse_overrides",
    "run_experiment",
    "run_gallery",
]
