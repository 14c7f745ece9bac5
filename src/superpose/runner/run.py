"""Run directories: one experiment run, its files, its metadata and its resumable cells.

Layout of a run directory::

    config.json    the experiment's name and full config
    run.json       status (running / finished / failed), versions, backend, devices, seed,
                   wall time, figures, notes and the error if it failed
    metrics.json   scalar and small-list results
    *.npz          arrays (no pickle)
    *.png, *.html  figures (matplotlib) and interactive figures (plotly)
    cells/         one .npz per finished cell of a sweep, for --resume
    index.html     the page that shows all of it

An existing directory is never overwritten silently: ``resume`` continues it (skipping
finished cells), ``force`` replaces it, and neither refuses with a message that says so.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import platform
import re
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import jax
import numpy as np

import superpose
from superpose.runner import files
from superpose.runner.config import ExperimentConfig, config_differences
from superpose.runner.processes import process_directory
from superpose.runner.registry import Experiment, get_experiment

T = TypeVar("T")
_CELL_NAME = re.compile(r"^[A-Za-z0-9_.=+-]+$")


class RunDirectoryError(ValueError):
    """The run directory exists and may not be used as asked (names the option that would)."""


class ExperimentFailed(RuntimeError):
    """An experiment raised; the run directory records the error and traceback."""


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def environment_metadata() -> dict[str, Any]:
    """Library versions, the JAX backend and its devices (by process), Python, the platform and the CPU cores
    this process may run on (a list on Linux, else the count)."""
    return {
        "superpose_version": superpose.__version__,
        "jax_version": jax.__version__,
        "numpy_version": np.__version__,
        "python_version": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_cores": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "backend": jax.default_backend(),
        "devices": [str(device) for device in jax.devices()],
        "process_count": jax.process_count(),
        "devices_by_process": {
            str(i): [str(d) for d in jax.devices() if d.process_index == i] for i in range(jax.process_count())
        },
    }


@dataclasses.dataclass
class Figure:
    """A figure saved in the run directory, as shown on its page."""

    file: str
    kind: str  # "png" or "html"
    caption: str


class RunContext:
    """What an experiment function receives besides its config.

    It writes results into the run directory (atomically), caches the cells of sweeps for
    ``--resume``, and drives progress bars.
    """

    def __init__(
        self,
        out: Path,
        config: ExperimentConfig,
        progress: Any | None = None,
    ) -> None:
        self.out = Path(out)
        self.config = config
        self.progress = progress
        self.metrics: dict[str, Any] = {}
        self.figures: list[Figure] = []
        self.notes: list[str] = []
        self.cells_computed = 0
        self.cells_reused = 0
        if (self.out / "metrics.json").exists():
            self.metrics = files.read_json(self.out / "metrics.json")

    @property
    def key(self) -> jax.Array:
        """A PRNG key made from the config's seed."""
        return jax.random.key(self.config.seed)

    # -- results ---------------------------------------------------------------------------
    def log_metrics(self, values: Mapping[str, Any] | None = None, **more: Any) -> None:
        """Merges values into ``metrics.json`` (written atomically each call)."""
        self.metrics.update(files.to_jsonable({**(values or {}), **more}))
        files.write_json(self.out / "metrics.json", self.metrics)

    def save_arrays(self, name: str, **arrays: Any) -> Path:
        """Saves arrays to ``name.npz``."""
        path = self.out / f"{self._check_name(name)}.npz"
        files.write_npz(path, arrays)
        return path

    def save_figure(self, figure: Any, name: str, caption: str = "") -> Path:
        """Saves a matplotlib figure as ``name.png`` (and closes it)."""
        import io

        import matplotlib.pyplot as plt

        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
        plt.close(figure)
        path = self.out / f"{self._check_name(name)}.png"
        files.write_bytes(path, buffer.getvalue())
        self._add_figure(Figure(path.name, "png", caption))
        return path

    def save_plotly(self, figure: Any, name: str, caption: str = "") -> Path:
        """Saves a plotly figure as interactive ``name.html`` (plotly.js written once beside it)."""
        path = self.out / f"{self._check_name(name)}.html"
        html = figure.to_html(include_plotlyjs="directory", full_html=True)
        files.write_text(path, html)
        bundle = self.out / "plotly.min.js"
        if not bundle.exists():
            from plotly.offline import get_plotlyjs

            files.write_text(bundle, get_plotlyjs())
        self._add_figure(Figure(path.name, "html", caption))
        return path

    def note(self, text: str) -> None:
        """Adds a paragraph to the run's page (what happened and why)."""
        self.notes.append(text)

    def _add_figure(self, figure: Figure) -> None:
        self.figures = [f for f in self.figures if f.file != figure.file] + [figure]

    @staticmethod
    def _check_name(name: str) -> str:
        if not _CELL_NAME.match(name):
            raise ValueError(f"file names may hold letters, digits and '_.=+-' only, got {name!r}")
        return name

    # -- cells and progress ----------------------------------------------------------------
    def cell(self, name: str, compute: Callable[[], Mapping[str, Any]]) -> dict[str, np.ndarray]:
        """Returns the cell's arrays, computing and saving them unless a finished copy exists.

        Each cell is one ``cells/<name>.npz``, written atomically, so a killed run loses at
        most the cell in progress and ``--resume`` reuses the rest.
        """
        path = self.out / "cells" / f"{self._check_name(name)}.npz"
        if path.exists():
            self.cells_reused += 1
            return files.read_npz(path)
        arrays = {k: np.asarray(v) for k, v in compute().items()}
        files.write_npz(path, arrays)
        self.cells_computed += 1
        return arrays

    def cells(
        self,
        names: Sequence[str],
        compute: Callable[[str], Mapping[str, Any]],
        description: str = "cells",
    ) -> dict[str, dict[str, np.ndarray]]:
        """Runs :meth:`cell` for every name with a progress bar; returns the results by name."""
        return {
            name: self.cell(name, lambda name=name: compute(name))
            for name in self.track(names, description=description, total=len(names))
        }

    @contextlib.contextmanager
    def counter(self, description: str) -> Iterator[Callable[[int, int], None]]:
        """A ``progress(done, total)`` callback for a library call that reports its own progress
        (e.g. ``fit_sae``), drawn as a bar while the block runs; a no-op without a display."""
        if self.progress is None:
            yield lambda done, total: None
            return
        task = self.progress.add_task(description, total=None)
        try:
            yield lambda done, total: self.progress.update(task, completed=done, total=total)
        finally:
            self.progress.remove_task(task)

    def track(self, items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
        """Iterates with a progress bar (elapsed time and ETA) when a progress display is attached."""
        if self.progress is None:
            yield from items
            return
        task = self.progress.add_task(description, total=total)
        try:
            for item in items:
                yield item
                self.progress.advance(task)
        finally:
            self.progress.remove_task(task)


@dataclasses.dataclass
class RunRecord:
    """The outcome of one run: where it is, its status, metrics and wall time."""

    name: str
    out: Path
    status: str
    wall_time_s: float
    metrics: dict[str, Any]
    error: str | None = None
    skipped: bool = False


def _looks_like_run(path: Path) -> bool:
    return (path / "run.json").is_file()


def prepare_directory(out: Path, resume: bool, force: bool, what: str, marker: str) -> bool:
    """Checks that ``out`` may be used; returns True if an earlier run is to be resumed.

    ``marker`` is the file that proves the directory was made by superpose (``run.json`` or
    ``gallery.json``); ``force`` deletes only such directories.
    """
    if resume and force:
        raise RunDirectoryError("--resume and --force contradict each other; choose one")
    if not out.exists():
        return False
    if not out.is_dir():
        raise RunDirectoryError(f"{out} exists and is not a directory")
    if not any(out.iterdir()):
        return False
    is_ours = (out / marker).is_file()
    if resume:
        if not is_ours:
            raise RunDirectoryError(f"cannot resume {out}: it holds no {marker}, so it is not a {what}")
        return True
    if force:
        if not is_ours:
            raise RunDirectoryError(
                f"refusing to delete {out}: it holds no {marker}, so it is not a {what}; "
                "choose another --out"
            )
        shutil.rmtree(out)
        return False
    raise RunDirectoryError(
        f"{out} already holds a {what}. Nothing was changed. Use --resume to continue it "
        "(finished work is kept), --force to replace it, or --out to write elsewhere."
    )


def run_experiment(
    experiment: str | Experiment,
    overrides: Mapping[str, Any] | None = None,
    out: Path | str | None = None,
    *,
    resume: bool = False,
    force: bool = False,
    quick: bool = False,
    progress: Any | None = None,
    raise_on_error: bool = True,
) -> RunRecord:
    """Runs one experiment into its run directory and writes its page.

    Args:
        experiment: a registered name or an :class:`Experiment`.
        overrides: config values by key (strings are parsed as on the command line).
        out: the run directory; default ``superpose-results/<name>``.
        resume: continue an earlier run in ``out`` (its config must match); finished runs
            are not run again, finished cells are reused.
        force: replace an earlier run in ``out``.
        quick: apply the experiment's quick overrides first (the gallery's ``--quick``).
        progress: a ``rich.progress.Progress`` to show bars in, or None.
        raise_on_error: re-raise the experiment's error as :class:`ExperimentFailed`
            (after recording it); otherwise return a record with status ``failed``.
    """
    exp = get_experiment(experiment) if isinstance(experiment, str) else experiment
    out = Path(out) if out is not None else Path("superpose-results") / exp.name
    config = exp.make_config(overrides, quick=quick)
    with process_directory(out) as here:  # other processes than 0 write to a private copy
        record = _run(exp, config, here, resume=resume, force=force, quick=quick, progress=progress,
                      raise_on_error=raise_on_error)
    return record if here == out else dataclasses.replace(record, out=out)


def _run(exp: Experiment, config: ExperimentConfig, out: Path, *, resume: bool, force: bool, quick: bool,
         progress: Any | None, raise_on_error: bool) -> RunRecord:
    from superpose.runner.report import write_run_page

    config_doc = {"experiment": exp.name, "config": config.to_dict()}

    resuming = prepare_directory(out, resume, force, "run of a superpose experiment", "run.json")
    previous: dict[str, Any] = {}
    if resuming:
        # run.json is written before config.json, and cells only after both: a run killed
        # between the two has nothing to keep, so a missing config.json is not an error.
        stored = files.read_json(out / "config.json") if (out / "config.json").exists() else config_doc
        if stored.get("experiment") != exp.name:
            raise RunDirectoryError(
                f"cannot resume {out}: it holds a run of {stored.get('experiment')!r}, not {exp.name!r}"
            )
        differences = config_differences(stored.get("config", {}), config_doc["config"])
        if differences:
            raise RunDirectoryError(
                f"cannot resume {out} with a different config ({'; '.join(differences)}); "
                "use the same settings, or --force to start again"
            )
        previous = files.read_json(out / "run.json")
        if previous.get("status") == "finished":
            metrics = files.read_json(out / "metrics.json") if (out / "metrics.json").exists() else {}
            return RunRecord(exp.name, out, "finished", previous.get("wall_time_s", 0.0), metrics, skipped=True)

    out.mkdir(parents=True, exist_ok=True)
    earlier_time = float(previous.get("wall_time_s", 0.0))
    meta: dict[str, Any] = {
        "experiment": exp.name,
        "description": exp.description,
        "status": "running",
        "seed": config.seed,
        "quick": quick,
        "started": previous.get("started", _now()),
        "attempts": int(previous.get("attempts", 0)) + 1,
        "command": " ".join(sys.argv),
        **environment_metadata(),
    }
    files.write_json(out / "run.json", meta)
    files.write_json(out / "config.json", config_doc)

    context = RunContext(out, config, progress)
    start = time.perf_counter()
    error_text = None
    try:
        exp.fn(config, context)
        status = "finished"
    except KeyboardInterrupt:
        status, error_text = "interrupted", "interrupted by the user (KeyboardInterrupt)"
    except Exception as error:  # recorded, then re-raised or returned
        status = "failed"
        error_text = f"{type(error).__name__}: {error}\n\n{traceback.format_exc()}"
    wall = earlier_time + time.perf_counter() - start
    meta.update(
        status=status,
        finished=_now(),
        wall_time_s=wall,
        cells_computed=context.cells_computed,
        cells_reused=context.cells_reused,
        figures=[dataclasses.asdict(f) for f in context.figures],
        notes=context.notes,
        error=error_text,
    )
    files.write_json(out / "run.json", meta)
    write_run_page(out)
    if status == "interrupted":
        raise KeyboardInterrupt
    record = RunRecord(exp.name, out, status, wall, context.metrics, error_text)
    if status == "failed" and raise_on_error:
        raise ExperimentFailed(f"{exp.name} failed (details in {out / 'run.json'}): {error_text.splitlines()[0]}")
    return record
