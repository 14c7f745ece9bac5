"""The gallery: every registered default experiment, run into one report.

Each experiment runs in its own sub-directory. A failing experiment is recorded (status and
error on the report) and the others still run. ``gallery.json`` records the mode, so that
``--resume`` continues the same gallery: finished experiments are skipped, an interrupted
one resumes from its finished cells.

Before it starts, the gallery says how long the full and quick galleries take on 2 CPU cores;
while it runs, :class:`GalleryClock` gives experiments done of total, the time elapsed and an
estimate of the time left from each experiment's expected cost, refined as runs finish.

With ``jobs > 1`` that many experiments run at once, each in a worker process of its own (spawned,
so JAX starts clean in each; workers are reused and share the parent's compilation cache). Much of
a quick experiment is single-threaded compilation, which a second process overlaps. Where the cores
allow, each worker keeps to cores of its own (:func:`core_groups`).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import heapq
import math
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax

import superpose
from superpose._validation import positive_int
from superpose._xla import free_compiled_programs
from superpose.runner import files
from superpose.runner.registry import Experiment, experiments
from superpose.runner.report import format_duration, write_gallery_page
from superpose.runner.processes import process_directory
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


class GalleryClock:
    """Experiments done of total, time elapsed and an estimate of the time left, for a gallery.

    Each experiment has an expected cost (seconds on 2 CPU cores). The estimate scales the costs
    still to come by this machine's speed factor, ``(measured + w) / (expected + w)`` summed over
    the experiments finished so far, where the prior weight ``w`` (a quarter of the whole
    gallery's expected time) keeps one short first run from swinging it. The experiment in
    progress counts with its scaled cost less the time it has run (never below 0). Failed
    experiments count as done but not towards the speed factor; experiments kept from an earlier
    run count with their recorded wall time. With ``jobs`` experiments at once, the time left is
    that of the gallery's schedule: the running ones finish, and each pending experiment, the
    longest first, starts on the first worker to be free. Thread-safe: a progress display may read it while the gallery runs.

    Args:
        expected: expected seconds per experiment name, in run order (each finite and > 0).
        clock: a monotonic clock in seconds (tests pass a fake one).
        jobs: experiments that run at once (>= 1).
    """

    def __init__(self, expected: Mapping[str, float], clock: Callable[[], float] = time.monotonic,
                 jobs: int = 1) -> None:
        jobs = positive_int(jobs, "jobs")
        for name, seconds in expected.items():
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
                raise TypeError(f"expected seconds of {name!r} must be a number, got {seconds!r}")
            if not (math.isfinite(seconds) and seconds > 0):
                raise ValueError(f"expected seconds of {name!r} must be finite and > 0, got {seconds!r}")
        self.expected = {name: float(seconds) for name, seconds in expected.items()}
        self.prior_weight = 0.25 * sum(self.expected.values())
        self._clock = clock
        self._started = clock()
        self._lock = threading.Lock()
        self._done: dict[str, str] = {}  # name -> status
        self._measured: dict[str, float] = {}  # finished experiments -> wall seconds
        self._running: dict[str, float] = {}  # experiments in progress -> when they started
        self.jobs = jobs

    @property
    def total(self) -> int:
        """Number of experiments in the gallery."""
        return len(self.expected)

    @property
    def done(self) -> int:
        """Number of experiments done (finished, failed or kept from an earlier run)."""
        return len(self._done)

    def _check_name(self, name: str) -> None:
        if name not in self.expected:
            raise ValueError(f"{name!r} is not in this gallery ({', '.join(self.expected)})")

    def start(self, name: str) -> None:
        """Marks ``name`` as in progress, from now."""
        self._check_name(name)
        with self._lock:
            self._running[name] = self._clock()

    @property
    def running(self) -> list[str]:
        """The experiments in progress, in the order they started."""
        with self._lock:
            return list(self._running)

    def finish(self, name: str, status: str, wall_time_s: float) -> None:
        """Marks ``name`` done; a ``finished`` one's wall time (seconds) refines the speed factor."""
        self._check_name(name)
        if not (math.isfinite(wall_time_s) and wall_time_s >= 0):
            raise ValueError(f"wall time must be finite and >= 0, got {wall_time_s!r}")
        with self._lock:
            self._done[name] = status
            if status == "finished" and wall_time_s > 0:
                self._measured[name] = float(wall_time_s)
            self._running.pop(name, None)

    def speed_factor(self) -> float:
        """Measured over expected time of the finished experiments, with the prior weight (1 at first)."""
        with self._lock:
            measured = sum(self._measured.values())
            expected = sum(self.expected[name] for name in self._measured)
        if expected + self.prior_weight == 0:  # an empty gallery
            return 1.0
        return (measured + self.prior_weight) / (expected + self.prior_weight)

    def elapsed(self) -> float:
        """Seconds since the gallery started."""
        return self._clock() - self._started

    def remaining(self) -> float:
        """Estimated seconds until every experiment is done."""
        factor = self.speed_factor()
        now = self._clock()
        with self._lock:
            pending = [name for name in self.expected if name not in self._done]
            running = dict(self._running)
        # the gallery's own schedule: the longest pending experiment next, on the first worker to be free
        workers = sorted(max(factor * self.expected[name] - (now - started), 0.0) for name, started in running.items())
        workers += [0.0] * (self.jobs - len(workers))  # idle workers
        heapq.heapify(workers)
        for cost in sorted((factor * self.expected[name] for name in pending if name not in running), reverse=True):
            heapq.heappush(workers, heapq.heappop(workers) + cost)
        return max(workers, default=0.0)

    def times(self) -> str:
        """``"5 min 12 s elapsed, about 20 min left"`` (no time left once all are done)."""
        line = f"{format_duration(self.elapsed())} elapsed"
        if self.done < self.total:
            line += f", about {format_duration(self.remaining(), rough=True)} left"
        return line

    def summary(self) -> str:
        """``"3 of 14 experiments done, 5 min 12 s elapsed, about 20 min left"``."""
        return f"{self.done} of {self.total} experiments done, {self.times()}"


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_jobs(quick: bool) -> int:
    """The CLI's default: 2 experiments at once for ``--quick`` where there are 2 cores (compilation, mostly
    single-threaded, overlaps), 1 for the full gallery (whose sae selections have wall-time budgets)."""
    return 2 if quick and _cores() >= 2 and jax.process_count() == 1 else 1


def gallery_plan(selection: Sequence[Experiment], quick: bool, registered: Mapping[str, Experiment],
                 jobs: int = 1) -> str:
    """What the gallery is about to do and roughly how long the full and quick galleries take on 2 cores
    (the full one an experiment at a time, the quick one two at a time, as the CLI runs them there)."""
    gallery = [e for e in registered.values() if e.in_gallery]

    def estimate(chosen: Sequence[Experiment], fast: bool, at_once: int) -> str:
        costs = {e.name: e.expected_cost(fast) for e in chosen}
        return format_duration(GalleryClock(costs, jobs=at_once).remaining() if costs else 0.0, rough=True)

    count = f"{len(selection)} experiment{'s' if len(selection) != 1 else ''}"
    return (
        f"On 2 CPU cores the full gallery takes about {estimate(gallery, False, 1)} and --quick about "
        f"{estimate(gallery, True, 2)} (two at a time, compiling from scratch). Running {count} with the "
        f"{'quick' if quick else 'default'} settings{f', {jobs} at a time' if jobs > 1 else ''}: about "
        f"{estimate(selection, quick, jobs)} on 2 cores (this machine has {_cores()})."
    )


def _entry(exp: Experiment, record: RunRecord | None, quick: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": exp.name, "description": exp.description, "status": "pending", "expected_s": exp.expected_cost(quick),
    }
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
    log: Callable[[str], None] | None = None,
    jobs: int = 1,
) -> GalleryResult:
    """Runs every gallery experiment (or those named in ``only``) and writes ``out/index.html``.

    Args:
        out: the gallery directory.
        quick: use each experiment's quick settings.
        resume: continue an earlier gallery in ``out`` made in the same mode.
        force: replace an earlier gallery in ``out``.
        only: names of the experiments to run (default: all registered gallery experiments).
        progress: a ``rich.progress.Progress`` for bars, or None. The overall task carries the
            :class:`GalleryClock` in its ``clock`` field, for a column that shows the time left.
        selection: explicit experiments (for programmatic use and tests); overrides ``only``.
        log: called with the plan before the first experiment and one line after each
            (done of total, elapsed, time left), or None.
        jobs: experiments run at once, each in a worker process (registered experiments only;
            a single-process run). Experiments with a wall-time budget (the sae selections) get
            less done within it while they share the cores. Inside a worker no bars are shown.
    """
    jobs = positive_int(jobs, "jobs")
    out = Path(out)
    registered = experiments()
    if selection is None:
        if only:
            unknown = [name for name in only if name not in registered]
            if unknown:
                raise ValueError(f"no experiment named {unknown[0]!r}; registered: {', '.join(registered)}")
            selection = [registered[name] for name in dict.fromkeys(only)]
        else:
            selection = [e for e in registered.values() if e.in_gallery]
    names = [e.name for e in selection]
    if len(set(names)) != len(names):
        raise ValueError(f"a gallery runs each experiment once; got {', '.join(names)}")
    if jobs > 1:
        unregistered = [e.name for e in selection if registered.get(e.name) is not e]
        if unregistered:
            raise ValueError(f"jobs > 1 runs registered experiments only (a worker process finds them by name); "
                             f"not registered: {', '.join(unregistered)}")
        if jax.process_count() > 1:
            raise ValueError("jobs > 1 is for one process; a multi-process (--distributed) gallery runs one "
                             "experiment at a time")

    with process_directory(out) as here:  # other processes than 0 write to a private copy
        result = _run_gallery(here, selection, registered, quick=quick, resume=resume, force=force,
                              progress=progress, log=log, jobs=jobs)
    if here == out:
        return result
    records = [dataclasses.replace(r, out=out / r.name) for r in result.records]
    return GalleryResult(out, out / result.page.name, records)


def core_groups(jobs: int, cores: Sequence[int] | None = None) -> list[set[int]] | None:
    """Disjoint sets of CPU cores, one per worker, or None where workers are not pinned.

    ``cores`` defaults to the cores this process may run on. With ``jobs >= 2`` workers and at least as
    many cores (on Linux), worker ``i`` gets ``cores[i::jobs]``. Pinned before JAX starts, each worker's
    XLA sizes its thread pool to its own cores, so two experiments on 2 cores run two threads, not four
    that wait on each other: the cold quick gallery took 4 min 30 s pinned against 5 min 3 s unpinned,
    541 s of CPU against 604 s (2-core Xeon, docs/runner.md).
    """
    jobs = positive_int(jobs, "jobs")
    if cores is None:
        if not hasattr(os, "sched_setaffinity"):
            return None
        cores = sorted(os.sched_getaffinity(0))
    cores = list(cores)
    if jobs < 2 or jobs > len(cores):
        return None
    return [set(cores[i::jobs]) for i in range(jobs)]


def _worker_setup(cache_dir: str | None, min_compile_seconds: float, cores: Any = None) -> None:
    """A worker takes its cores (a queue of :func:`core_groups`' sets, before JAX starts its backend) and
    shares the parent's persistent compilation cache (JAX's config is per process)."""
    if cores is not None:
        try:
            os.sched_setaffinity(0, cores.get(timeout=30))
        except (queue.Empty, OSError):  # unpinned is slower, never wrong
            pass
    if cache_dir:
        jax.config.update("jax_compilation_cache_dir", cache_dir)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_seconds)


def _run_one(exp: Experiment | str, run_dir: Path, resume: bool, quick: bool, progress: Any | None) -> RunRecord:
    """One experiment of the gallery; a run directory it cannot use is a failed record, not an error.

    Afterwards its compiled programs are freed (:func:`superpose._xla.free_compiled_programs`): kept, the
    full gallery in one process held so many that their memory mappings reached Linux's limit and LLVM
    failed ("Cannot allocate memory", then a segfault, 30 minutes in; 2026-12-03). Experiments share no
    compiled program in memory; the persistent compilation cache on disk is kept.
    """
    try:
        return run_experiment(exp, out=run_dir, resume=resume, quick=quick, progress=progress, raise_on_error=False)
    except RunDirectoryError as error:  # e.g. a config that changed between versions
        name = exp if isinstance(exp, str) else exp.name
        return RunRecord(name, run_dir, "failed", 0.0, {}, f"{type(error).__name__}: {error}")
    finally:
        free_compiled_programs()


def _run_in_worker(name: str, out: str, resume: bool, quick: bool) -> dict[str, Any]:
    """Runs one registered experiment in a worker; its record as plain values."""
    record = _run_one(name, Path(out), resume, quick, None)
    return dataclasses.asdict(record) | {"out": str(record.out)}


def _worker_pool(jobs: int) -> concurrent.futures.ProcessPoolExecutor:
    cache = jax.config.jax_compilation_cache_dir
    context = multiprocessing.get_context("spawn")
    groups, cores = core_groups(jobs), None
    if groups is not None:
        cores = context.Queue()
        for group in groups:
            cores.put(group)
    return concurrent.futures.ProcessPoolExecutor(
        max_workers=jobs, mp_context=context, initializer=_worker_setup,
        initargs=(str(cache) if cache else None, float(jax.config.jax_persistent_cache_min_compile_time_secs), cores))


def _run_gallery(out: Path, selection: Sequence[Experiment], registered: Mapping[str, Experiment], *, quick: bool,
                 resume: bool, force: bool, progress: Any | None, log: Callable[[str], None] | None,
                 jobs: int) -> GalleryResult:
    resuming = prepare_directory(out, resume, force, "superpose gallery", "gallery.json")
    if resuming:
        stored = files.read_json(out / "gallery.json")
        if stored.get("quick") != quick:
            mode = "--quick" if stored.get("quick") else "full"
            raise RunDirectoryError(f"cannot resume {out}: it is a {mode} gallery; rerun in the same mode")
    out.mkdir(parents=True, exist_ok=True)
    names = [e.name for e in selection]
    files.write_json(out / "gallery.json", {"quick": quick, "experiments": names, "version": superpose.__version__})

    title = f"superpose gallery{' (quick)' if quick else ''}"
    records: dict[str, RunRecord] = {}
    clock = GalleryClock({e.name: e.expected_cost(quick) for e in selection}, jobs=min(jobs, len(selection) or 1))
    say = log if log is not None else (lambda line: None)

    def write_page(summary: str) -> Path:
        entries = [_entry(e, records.get(e.name), quick) for e in selection]
        return write_gallery_page(out, entries, title, summary)

    say(gallery_plan(selection, quick, registered, jobs))
    write_page(f"Started; {clock.summary()} (when this page was written).")
    task = progress.add_task("gallery", total=len(selection), clock=clock) if progress is not None else None

    def finished(exp: Experiment, record: RunRecord) -> None:
        records[exp.name] = record
        clock.finish(exp.name, record.status, record.wall_time_s)
        outcome = "kept from before" if record.skipped else record.status
        say(f"[{clock.done}/{clock.total}] {exp.name} {outcome}: {format_duration(record.wall_time_s)} "
            f"(expected about {format_duration(exp.expected_cost(quick), rough=True)} on 2 cores); {clock.times()}")
        write_page(f"{clock.summary()} (when this page was written).")
        if progress is not None:
            progress.advance(task)

    def describe() -> None:
        if progress is not None:
            progress.update(task, description=f"gallery: {', '.join(clock.running)}")

    if jobs == 1:
        for exp in selection:
            run_dir = out / exp.name
            clock.start(exp.name)
            describe()
            finished(exp, _run_one(exp, run_dir, resuming and run_dir.exists(), quick, progress))
    else:
        _run_in_workers(out, selection, quick, resuming, jobs, clock, finished, describe)
    if progress is not None:
        progress.remove_task(task)
    count = f"{len(selection)} experiment{'s' if len(selection) != 1 else ''}"
    page = write_page(f"Done: {count} in {format_duration(clock.elapsed())} this session.")
    return GalleryResult(out, page, [records[e.name] for e in selection])


def _run_in_workers(out: Path, selection: Sequence[Experiment], quick: bool, resuming: bool, jobs: int,
                    clock: GalleryClock, finished: Callable[[Experiment, RunRecord], None],
                    describe: Callable[[], None]) -> None:
    """Runs the experiments ``jobs`` at a time, the longest expected first, each in a worker process."""
    waiting = sorted(selection, key=lambda e: -e.expected_cost(quick))
    running: dict[concurrent.futures.Future, Experiment] = {}
    with _worker_pool(jobs) as pool:
        while waiting or running:
            while waiting and len(running) < jobs:
                exp = waiting.pop(0)
                run_dir = out / exp.name
                clock.start(exp.name)
                running[pool.submit(_run_in_worker, exp.name, str(run_dir), resuming and run_dir.exists(), quick)] = exp
            describe()
            done, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                exp = running.pop(future)
                try:
                    fields = future.result()
                    record = RunRecord(**(fields | {"out": Path(fields["out"])}))
                except Exception as error:  # the worker died (memory, a signal): the others go on
                    record = RunRecord(exp.name, out / exp.name, "failed", 0.0, {},
                                       f"the worker process failed: {type(error).__name__}: {error}")
                finished(exp, record)
