"""The gallery's overall progress: expected costs, the time-left arithmetic, the plan and the index page."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.progress import Progress

from superpose._xla import memory_mappings
from superpose.cli import _RemainingColumn
from superpose.runner import Experiment, ExperimentConfig, experiments, run_gallery
from superpose.runner.gallery import GalleryClock, core_groups, gallery_plan
from superpose.runner.registry import DEFAULT_EXPECTED_SECONDS, EXPECTED_SECONDS, experiment
from superpose.runner.report import format_duration, write_gallery_page

from .helpers import CELLS, cells_fn


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_time_left_follows_expected_costs_and_the_measured_speed():
    """Hand-computed values: expected 10, 20, 30 s; prior weight w = 60 / 4 = 15 s."""
    t = FakeClock()
    clock = GalleryClock({"a": 10.0, "b": 20.0, "c": 30.0}, clock=t)
    assert clock.remaining() == 60.0 and clock.speed_factor() == 1.0
    clock.start("a")
    t.now = 4.0
    assert clock.remaining() == pytest.approx(6 + 20 + 30)
    t.now = 20.0
    clock.finish("a", "finished", 20.0)  # twice as slow as expected
    factor = (20 + 15) / (10 + 15)
    assert clock.speed_factor() == pytest.approx(factor)
    assert clock.remaining() == pytest.approx(factor * 50)
    clock.start("b")
    t.now = 30.0
    assert clock.remaining() == pytest.approx(factor * 20 - 10 + factor * 30)
    t.now = 60.0  # b overruns its scaled cost: it counts 0, not less
    assert clock.remaining() == pytest.approx(factor * 30)
    clock.finish("b", "failed", 40.0)  # a failure does not change the speed factor
    assert clock.speed_factor() == pytest.approx(factor) and clock.remaining() == pytest.approx(factor * 30)
    assert clock.summary() == "2 of 3 experiments done, 1 min elapsed, about 40 s left"
    clock.start("c")
    t.now = 90.0
    clock.finish("c", "finished", 30.0)
    assert clock.remaining() == 0.0
    assert clock.summary() == "3 of 3 experiments done, 1 min 30 s elapsed"
    with pytest.raises(ValueError, match="not in this gallery"):
        clock.start("d")
    with pytest.raises(ValueError, match="finite and > 0"):
        GalleryClock({"a": 0.0})


@settings(max_examples=20, deadline=None)
@given(
    costs=st.lists(st.floats(0.5, 500.0), min_size=2, max_size=8),
    slowdown=st.floats(0.1, 10.0),
)
def test_estimate_moves_from_the_prior_towards_the_measured_speed(costs, slowdown):
    """Every run takes `slowdown` times its expected cost: after all but the last, the estimate for
    the last lies between its expected cost and the truth, and is nearer the truth than at the start."""
    t = FakeClock()
    clock = GalleryClock({f"e{i}": c for i, c in enumerate(costs)}, clock=t)
    for i, cost in enumerate(costs[:-1]):
        clock.start(f"e{i}")
        t.now += slowdown * cost
        clock.finish(f"e{i}", "finished", slowdown * cost)
    estimate, truth, prior = clock.remaining(), slowdown * costs[-1], costs[-1]
    assert min(prior, truth) - 1e-9 <= estimate <= max(prior, truth) + 1e-9
    assert abs(estimate - truth) <= abs(prior - truth) + 1e-9


def test_every_gallery_experiment_has_measured_costs_and_the_full_gallery_is_within_its_goal():
    gallery = [e for e in experiments().values() if e.in_gallery]
    assert gallery
    for exp in gallery:
        assert set(EXPECTED_SECONDS[exp.name]) == {"full", "quick"}, exp.name
        # quick costs are measured cold and two at a time, full ones one at a time: an experiment whose full
        # run is short is mostly compilation either way, so quick is quicker only where the full run is longer
        if exp.expected_cost(quick=False) > 30.0:
            assert exp.expected_cost(quick=True) < exp.expected_cost(quick=False), exp.name
    # the goal on 2 cores: full under 40 minutes (one at a time)
    assert sum(e.expected_cost(quick=False) for e in gallery) < 40 * 60


def test_quick_gallery_within_five_minutes():
    """Issue 15's goal on 2 cores, by the gallery's own schedule of the registry's measured quick costs."""
    gallery = {e.name: e.expected_cost(quick=True) for e in experiments().values() if e.in_gallery}
    assert GalleryClock(gallery, jobs=2).remaining() < 5 * 60


def test_expected_cost_comes_from_the_experiment_then_the_table_then_the_default():
    own = Experiment("toy-phase", "", ExperimentConfig, cells_fn, expected_seconds={"quick": 1.5})
    assert own.expected_cost(quick=True) == 1.5
    assert own.expected_cost(quick=False) == EXPECTED_SECONDS["toy-phase"]["full"]
    assert CELLS.expected_cost(quick=False) == DEFAULT_EXPECTED_SECONDS["full"]
    for bad, error in [({"slow": 3.0}, ValueError), ({"full": -1.0}, ValueError),
                       ({"full": math.inf}, ValueError), ({"quick": "3"}, TypeError)]:
        with pytest.raises(error, match="expected_seconds"):
            experiment("test-bad-cost", ExperimentConfig, expected_seconds=bad)


def test_durations_read_as_people_write_them():
    assert format_duration(8.24) == "8.2 s"
    assert format_duration(412.3) == "6 min 52 s"
    assert format_duration(420.0) == "7 min"
    assert format_duration(3900.0) == "1 h 5 min"
    assert format_duration(136.0, rough=True) == "2 min 20 s"
    assert format_duration(1575.0, rough=True) == "26 min"
    assert format_duration(2.3, rough=True) == "5 s"
    with pytest.raises(ValueError, match="finite number of seconds"):
        format_duration(-1.0)


def test_plan_states_full_and_quick_gallery_times():
    exps = {name: Experiment(name, "", ExperimentConfig, cells_fn, expected_seconds={"full": full, "quick": quick})
            for name, full, quick in [("x-one", 600.0, 150.0), ("x-two", 960.0, 100.0)]}
    plan = gallery_plan([exps["x-two"]], quick=True, registered=exps)
    # full: 600 + 960 s one at a time; quick: two at a time, (150 + 100) / 2 s but never less than the longest
    assert "full gallery takes about 26 min and --quick about 2 min 30 s (two at a time" in plan
    assert "Running 1 experiment with the quick settings: about 1 min 40 s on 2 cores" in plan
    both = gallery_plan(list(exps.values()), quick=True, registered=exps, jobs=2)
    assert "Running 2 experiments with the quick settings, 2 at a time: about 2 min 30 s on 2 cores" in both
    one_by_one = gallery_plan(list(exps.values()), quick=True, registered=exps)
    assert "Running 2 experiments with the quick settings: about 4 min 10 s on 2 cores" in one_by_one


def test_gallery_reports_progress_and_its_index_lists_wall_times(tmp_path):
    lines: list[str] = []
    result = run_gallery(tmp_path / "g", selection=[CELLS], log=lines.append)
    wall = result.records[0].wall_time_s
    assert lines[0].startswith("On 2 CPU cores the full gallery takes about")
    assert lines[1].startswith(f"[1/1] test-cells finished: {format_duration(wall)}")
    page = result.page.read_text()
    assert f"<td>{format_duration(wall)}</td>" in page
    assert "expected on 2 cores" in page and "Done: 1 experiment in" in page

    entries = [
        {"name": "slow", "description": "", "status": "finished", "wall_time_s": 412.3, "expected_s": 420.0},
        {"name": "next", "description": "", "status": "pending", "expected_s": 12.0},
    ]
    page = write_gallery_page(tmp_path, entries, "t", "1 of 2 experiments done").read_text()
    assert "<td>6 min 52 s</td><td>7 min</td>" in page and "<td></td><td>10 s</td>" in page
    assert "1 of 2 experiments done" in page and "6 min 52 s of run time in all" in page


def test_progress_line_shows_the_clock_estimate():
    t = FakeClock()
    clock = GalleryClock({"a": 100.0, "b": 50.0}, clock=t)
    clock.start("a")
    t.now = 40.0
    progress = Progress()
    task = progress.add_task("gallery", total=2, clock=clock)
    other = progress.add_task("cells", total=4)
    column = _RemainingColumn()
    assert column.render(progress.tasks[task]).plain == "~1 min 50 s"
    assert column.render(progress.tasks[other]).plain == "-:--:--"  # other bars keep rich's estimate


def test_time_left_with_two_experiments_at_once():
    """Hand-computed: expected 10, 20 and 16 s, two at a time, as the gallery schedules them (the longest
    pending one next, on the first worker to be free)."""
    t = FakeClock()
    clock = GalleryClock({"a": 10.0, "b": 20.0, "c": 16.0}, clock=t, jobs=2)
    assert clock.remaining() == 26.0  # b on one worker (20 s); c (16 s), then a (10 s) on the other
    clock.start("a")
    clock.start("b")
    assert clock.running == ["a", "b"]
    t.now = 5.0
    assert clock.remaining() == pytest.approx(21.0)  # a has 5 s left, then c's 16; b's 15 s end sooner
    t.now = 10.0
    clock.finish("a", "finished", 10.0)  # as expected: the speed factor stays 1
    clock.start("c")
    assert clock.running == ["b", "c"]
    t.now = 12.0  # b has 8 s left, c 14 s: (8 + 14) / 2 = 11 < 14, so c's 14 s are what is left
    assert clock.remaining() == pytest.approx(14.0)
    assert clock.summary() == f"1 of 3 experiments done, 12.0 s elapsed, about {format_duration(14.0, rough=True)} left"
    with pytest.raises(ValueError, match="jobs must be an integer >= 1"):
        GalleryClock({"a": 1.0}, jobs=0)


def test_gallery_runs_two_registered_experiments_at_once(tmp_path):
    """Two quick experiments in two worker processes: both finish, the page and records keep the gallery's order,
    and each run directory is complete (its own run.json, metrics and figures)."""
    lines: list[str] = []
    names = ["power-scale", "memory-completion"]
    result = run_gallery(tmp_path / "g", only=names, quick=True, jobs=2, log=lines.append)
    assert [r.name for r in result.records] == names
    assert all(r.status == "finished" and not r.skipped for r in result.records), [r.error for r in result.records]
    assert "Running 2 experiments with the quick settings, 2 at a time: about" in lines[0]
    assert sorted(line.split()[1] for line in lines[1:]) == sorted(names)
    for record in result.records:
        assert (record.out / "run.json").is_file() and (record.out / "metrics.json").is_file()
        assert record.metrics and record.wall_time_s > 0
    # each worker kept to cores of its own (where this machine has two)
    groups = core_groups(2)
    if groups is not None:
        used = [json.loads((r.out / "run.json").read_text())["cpu_cores"] for r in result.records]
        assert all(cores in [sorted(g) for g in groups] for cores in used), (used, groups)
    page = result.page.read_text()
    assert all(f"{name}/" in page for name in names) and "Done: 2 experiments in" in page
    again = run_gallery(tmp_path / "g", only=names, quick=True, jobs=2, resume=True)
    assert all(r.skipped for r in again.records)


def test_gallery_frees_compiled_programs_after_each_experiment(tmp_path):
    """Compiled programs hold memory mappings until freed (about nine each): a gallery in one process must not
    keep every experiment's, or a long one reaches vm.max_map_count and LLVM fails."""
    add_one = jax.jit(lambda x: x + 1.0)
    add_one(jnp.ones(3))
    assert add_one._cache_size() == 1
    run_gallery(tmp_path / "g", selection=[CELLS])
    assert add_one._cache_size() == 0
    if memory_mappings() is not None:  # and the mappings go with them
        before = memory_mappings()
        programs = [jax.jit(lambda x, k=k: jnp.sin(x) * k + jnp.cos(x @ x.T).sum()) for k in range(40)]
        for k, program in enumerate(programs):
            program(jnp.ones((k + 2, 3))).block_until_ready()
        compiled = memory_mappings()
        run_gallery(tmp_path / "h", selection=[CELLS])
        assert compiled - before >= 2 * len(programs)  # measured: 3 to 9 per program
        assert memory_mappings() - before < 0.25 * (compiled - before)


def test_core_groups_split_the_cores_between_workers():
    assert core_groups(2, [0, 1]) == [{0}, {1}]
    assert core_groups(2, [0, 1, 2, 3, 4]) == [{0, 2, 4}, {1, 3}]
    assert core_groups(3, [4, 5, 6]) == [{4}, {5}, {6}]
    assert core_groups(1, [0, 1]) is None  # one experiment at a time keeps every core
    assert core_groups(3, [0, 1]) is None  # more workers than cores: not pinned
    with pytest.raises(ValueError, match="jobs must be an integer >= 1"):
        core_groups(0, [0, 1])


def test_jobs_need_registered_experiments(tmp_path):
    with pytest.raises(ValueError, match="registered experiments only"):
        run_gallery(tmp_path / "g", selection=[CELLS], jobs=2)
    with pytest.raises(ValueError, match="jobs must be an integer >= 1"):
        run_gallery(tmp_path / "g", selection=[CELLS], jobs=0)
