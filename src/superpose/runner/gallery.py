"""The gallery: every registered default experiment, run into one report.

Each experiment runs in its own sub-directory. A failing experiment is recorded (status and
error on the report) and the others still run. ``gallery.json`` records the mode, so that
``--resume`` continues the same gallery: finished experiments are skipped, an interrupted
one resumes from its finished cells.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import superpose
from superpose.runner import files
from superpose.runner.registry import Experiment, experiments
from superpose.runner.report import write_gallery_page
from superpose.runner.run import RunDirectoryError, RunRecord, prepare_directory, run_experiment


@dataclasses.dataclass
class GalleryResult:
    """The gallery's directory, its page and one record per experiment."""

    out: Path
    page: Path
    records: list[RunRecord]

    @property
    def failed(self) -> list[RunRecord]:
        return [r for r in self.records if r.status != "finished"]


def _entry(exp: Experiment, record: RunRecord | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": exp.name, "description": exp.description, "status": "pending"}
    if record is None:
        return entry
    entry.update(status=record.status, wall_time_s=record.wall_time_s, error=record.error)
    run_json = record.out / "run.json"
    if run_json.exists():
        pngs = [f["file"] for f in files.read_json(run_json).get("figures", []) if f["kind"] == "png"]
        if pngs:
            entry["thumbnail"] = f"{exp.name}/{pngs[0]}"
    return entry


def run_gallery(
    out: Path | str = Path("superpose-results") / "gallery",
    *,
    quick: bool = False,
    resume: bool = False,
    force: bool = False,
    only: Sequence[str] | None = None,
    progress: Any | None = None,
    selection: Sequence[Experiment] | None = None,
) -> GalleryResult:
    """Runs every gallery experiment (or those named in ``only``) and writes ``out/index.html``.

    Args:
        out: the gallery directory.
        quick: use each experiment's quick settings.
        resume: continue an earlier gallery in ``out`` made in the same mode.
        force: replace an earlier gallery in ``out``.
        only: names of the experiments to run (default: all registered gallery experiments).
        progress: a ``rich.progress.Progress`` for bars, or None.
        selection: explicit experiments (for programmatic use and tests); overrides ``only``.
    """
    out = Path(out)
    registered = experiments()
    if selection is None:
        if only:
            unknown = [name for name in only if name not in registered]
            if unknown:
                raise ValueError(f"no experiment named {unknown[0]!r}; registered: {', '.join(registered)}")
            selection = [registered[name] for name in only]
        else:
            selection = [e for e in registered.values() if e.in_gallery]
    names = [e.name for e in selection]

    resuming = prepare_directory(out, resume, force, "superpose gallery", "gallery.json")
    if resuming:
        stored = files.read_json(out / "gallery.json")
        if stored.get("quick") != quick:
            mode = "--quick" if stored.get("quick") else "full"
            raise RunDirectoryError(f"cannot resume {out}: it is a {mode} gallery; rerun in the same mode")
    out.mkdir(parents=True, exist_ok=True)
    files.write_json(out / "gallery.json", {"quick": quick, "experiments": names, "version": superpose.__version__})

    title = f"superpose gallery{' (quick)' if quick else ''}"
    records: dict[str, RunRecord] = {}

    def write_page() -> Path:
        return write_gallery_page(out, [_entry(e, records.get(e.name)) for e in selection], title)

    write_page()
    task = progress.add_task("gallery", total=len(selection)) if progress is not None else None
    for exp in selection:
        if progress is not None:
            progress.update(task, description=f"gallery: {exp.name}")
        run_dir = out / exp.name
        try:
            record = run_experiment(
                exp, out=run_dir, resume=resuming and run_dir.exists(), quick=quick,
                progress=progress, raise_on_error=False,
            )
        except RunDirectoryError as error:  # e.g. a config that changed between versions
            record = RunRecord(exp.name, run_dir, "failed", 0.0, {}, f"{type(error).__name__}: {error}")
        records[exp.name] = record
        write_page()
        if progress is not None:
            progress.advance(task)
    if progress is not None:
        progress.remove_task(task)
    return GalleryResult(out, write_page(), [records[e.name] for e in selection])
