"""The ``superpose`` command: list, describe and run experiments, or run them all as a gallery."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

import superpose

app = typer.Typer(
    name="superpose",
    help=(
        "superpose: how many things fit into few dimensions, and how to get them back out.\n\n"
        "Run registered experiments into self-describing run directories (config.json, "
        "metrics.json, .npz arrays, PNG and interactive HTML figures, index.html), or all of "
        "them at once with `superpose gallery`."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"superpose {superpose.__version__}")
        raise typer.Exit()


def _enable_compilation_cache() -> None:
    """Keeps compiled XLA programs on disk between runs (JAX's persistent cache).

    A recall fit's first call compiles for ~5 s on 2 CPU cores; later runs load it instead. The
    directory is ``$SUPERPOSE_CACHE`` or ``~/.cache/superpose/jax``; ``JAX_COMPILATION_CACHE_DIR``
    set by the user wins, and ``SUPERPOSE_CACHE=off`` turns the cache off.
    """
    import os

    import jax

    setting = os.environ.get("SUPERPOSE_CACHE", "")
    if setting.lower() == "off" or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    path = Path(setting) if setting else Path.home() / ".cache" / "superpose" / "jax"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # a read-only home: run without the cache
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """superpose command-line tool."""
    _enable_compilation_cache()


class _RemainingColumn(TimeRemainingColumn):
    """Rich's time-remaining column, except on the gallery's line: there the GalleryClock's estimate
    (each experiment's expected cost, refined as runs finish) instead of the rate of finished tasks."""

    def render(self, task):  # type: ignore[no-untyped-def]
        clock = task.fields.get("clock")
        if clock is None or task.finished:
            return super().render(task)
        from superpose.runner.report import format_duration

        return Text(f"~{format_duration(clock.remaining(), rough=True)}", style="progress.remaining")


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator[Progress | None]:
    if not enabled:
        yield None
        return
    columns = (
        SpinnerColumn(), TextColumn("[progress.description]{task.description}"), BarColumn(),
        MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"), _RemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        yield progress


def _fail(message: str) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code=2)


_PROCESS_HELP = "Several processes (--distributed)"
Distributed = Annotated[bool, typer.Option(
    "--distributed", help="Join a multi-process run (one process per host, or several on one host): JAX reads "
    "the coordinator, process count and id from SLURM or Open MPI, or from the three options below. Every "
    "process runs the same command; only process 0 writes --out.", rich_help_panel=_PROCESS_HELP)]
Coordinator = Annotated[Optional[str], typer.Option(
    help="HOST:PORT of process 0's coordinator (implies --distributed).", rich_help_panel=_PROCESS_HELP,
    show_default=False)]
NumProcesses = Annotated[Optional[int], typer.Option(
    help="Number of processes (with --coordinator).", rich_help_panel=_PROCESS_HELP, show_default=False)]
ProcessId = Annotated[Optional[int], typer.Option(
    help="This process's id, 0 to N-1 (with --coordinator).", rich_help_panel=_PROCESS_HELP, show_default=False)]
PeerTimeout = Annotated[int, typer.Option(
    help="Seconds after which a lost or failed process ends every other one with an error.",
    rich_help_panel=_PROCESS_HELP, min=1)]


def _join(distributed: bool, coordinator: str | None, num_processes: int | None, process_id: int | None,
          peer_timeout: int) -> bool:
    """Joins a multi-process run when asked (before any other JAX work); True on the process that writes."""
    if not (distributed or coordinator is not None or num_processes is not None or process_id is not None):
        return True
    from superpose.parallel import initialize_processes, is_main_process

    try:
        initialize_processes(coordinator, num_processes, process_id, heartbeat_timeout_s=peer_timeout,
                             shutdown_timeout_s=peer_timeout)
    except (ValueError, RuntimeError) as error:
        raise _fail(str(error)) from None
    import jax

    if is_main_process():
        console.print(f"joined {jax.process_count()} processes, {jax.device_count()} devices; "
                      "this process (0) writes the results", highlight=False)
    return is_main_process()


@app.command("list")
def list_experiments() -> None:
    """Show every registered experiment with a one-line description."""
    from superpose.runner import experiments

    table = Table("experiment", "description", "in gallery", box=None)
    for exp in experiments().values():
        table.add_row(exp.name, exp.description, "yes" if exp.in_gallery else "no")
    Console().print(table)


@app.command()
def describe(name: Annotated[str, typer.Argument(help="Experiment name (see `superpose list`).")]) -> None:
    """Show an experiment's config keys: type, accepted range, default and meaning."""
    from superpose.runner import get_experiment

    try:
        exp = get_experiment(name)
    except ValueError as error:
        raise _fail(str(error)) from None
    table = Table("key", "accepted", "default", "quick", "meaning", box=None, title=f"{exp.name}: {exp.description}")
    for info in exp.config_class.fields_info().values():
        default = ",".join(map(str, info.default)) if info.is_tuple else str(info.default)
        quick = exp.quick.get(info.name, "")
        table.add_row(info.name, info.allowed(), default, str(quick), info.help)
    Console().print(table)


@app.command()
def run(
    name: Annotated[str, typer.Argument(help="Experiment name (see `superpose list`).")],
    pairs: Annotated[
        Optional[list[str]], typer.Argument(help="More KEY=VALUE overrides, as with --set.", show_default=False)
    ] = None,
    set_: Annotated[
        Optional[list[str]],
        typer.Option("--set", "-s", help="Override a config value, KEY=VALUE (repeatable; tuples comma-separated). "
                     "`superpose describe NAME` lists the keys."),
    ] = None,
    out: Annotated[Optional[Path], typer.Option(help="Run directory [default: superpose-results/NAME].")] = None,
    resume: Annotated[bool, typer.Option(help="Continue an earlier run in --out, reusing its finished cells.")] = False,
    force: Annotated[bool, typer.Option(help="Replace an earlier run in --out.")] = False,
    quick: Annotated[bool, typer.Option(help="Use the experiment's quick settings (as the quick gallery does).")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    distributed: Distributed = False,
    coordinator: Coordinator = None,
    num_processes: NumProcesses = None,
    process_id: ProcessId = None,
    peer_timeout: PeerTimeout = 60,
) -> None:
    """Run one experiment into its run directory (config, metrics, arrays, figures, index.html)."""
    writer = _join(distributed, coordinator, num_processes, process_id, peer_timeout)
    progress = progress and writer
    from superpose.runner import ExperimentFailed, RunDirectoryError, get_experiment, parse_overrides, run_experiment
    from superpose.runner.report import format_duration

    try:
        exp = get_experiment(name)
        overrides = parse_overrides([*(set_ or []), *(pairs or [])])
        exp.make_config(overrides, quick=quick)  # validate before touching the directory
    except ValueError as error:
        raise _fail(str(error)) from None
    try:
        with _progress(progress) as bar:
            record = run_experiment(exp, overrides, out, resume=resume, force=force, quick=quick, progress=bar)
    except RunDirectoryError as error:
        raise _fail(str(error)) from None
    except ExperimentFailed as error:
        console.print(f"[bold red]failed:[/] {error}", highlight=False)
        raise typer.Exit(code=1) from None
    if not writer:
        return
    if record.skipped:
        console.print(f"{exp.name} had already finished in {record.out}; nothing to do.", highlight=False)
    else:
        console.print(f"[green]finished[/] {exp.name} in {format_duration(record.wall_time_s)}", highlight=False)
    console.print(f"report: {record.out / 'index.html'}", highlight=False)


@app.command()
def gallery(
    quick: Annotated[bool, typer.Option(help="Quick settings for every experiment (minutes, not hours).")] = False,
    out: Annotated[Path, typer.Option(help="Gallery directory.")] = Path("superpose-results") / "gallery",
    resume: Annotated[bool, typer.Option(help="Continue an interrupted gallery; finished experiments are kept.")] = False,
    force: Annotated[bool, typer.Option(help="Replace an earlier gallery in --out.")] = False,
    only: Annotated[
        Optional[list[str]], typer.Option(help="Run only this experiment (repeatable).", show_default=False)
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    jobs: Annotated[Optional[int], typer.Option(
        help="Experiments run at once, each in a process of its own (default: 2 with --quick on a machine with at "
        "least 2 cores, else 1). Experiments with a wall-time budget get less done within it while they share "
        "the cores.", min=1, show_default=False)] = None,
    distributed: Distributed = False,
    coordinator: Coordinator = None,
    num_processes: NumProcesses = None,
    process_id: ProcessId = None,
    peer_timeout: PeerTimeout = 60,
) -> None:
    """Run every registered default experiment and write one HTML report (OUT/index.html).

    It says first how long the full and --quick galleries take on 2 CPU cores, then shows experiments done, time elapsed and time left.

    A failing experiment is marked on the report with its error while the others still run; the exit code is then 1.
    """
    writer = _join(distributed, coordinator, num_processes, process_id, peer_timeout)
    from superpose.runner import RunDirectoryError, run_gallery
    from superpose.runner.gallery import default_jobs
    from superpose.runner.report import format_duration

    def log(line: str) -> None:
        console.print(line, highlight=False, markup=False, soft_wrap=True)

    try:
        with _progress(progress and writer) as bar:
            result = run_gallery(out, quick=quick, resume=resume, force=force, only=only, progress=bar,
                                 log=log if writer else None, jobs=jobs if jobs is not None else default_jobs(quick))
    except (RunDirectoryError, ValueError) as error:
        raise _fail(str(error)) from None
    if not writer:
        for record in result.failed:
            console.print(f"[bold red]failed:[/] {record.name}: {(record.error or '').splitlines()[0]}", highlight=False)
        raise typer.Exit(code=1 if result.failed else 0)
    table = Table("experiment", "status", "time", box=None)
    for record in result.records:
        style = "green" if record.status == "finished" else "red"
        note = " (kept from before)" if record.skipped else ""
        table.add_row(record.name, f"[{style}]{record.status}[/]{note}", format_duration(record.wall_time_s))
    console.print(table)
    console.print(f"report: {result.page}", highlight=False)
    if result.failed:
        raise typer.Exit(code=1)


if __name__ == "__main__":  # pragma: no cover
    app()
