"""Run directories: contents, refusal to overwrite, --force, --resume, SIGKILL and the gallery."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from superpose.runner import ExperimentFailed, RunDirectoryError, run_experiment, run_gallery
from superpose.runner.files import read_npz, write_npz

from .helpers import BROKEN, CALLS, CELLS


@pytest.fixture(autouse=True)
def _clear_calls():
    CALLS.clear()


def test_run_directory_holds_everything(tmp_path):
    record = run_experiment(CELLS, {"cells": 3}, tmp_path / "run")
    out = tmp_path / "run"
    assert record.status == "finished" and record.metrics["total"] == pytest.approx(4.5)
    config = json.loads((out / "config.json").read_text())
    assert config == {"experiment": "test-cells", "config": {"seed": 0, "cells": 3, "delay": 0.0, "fail_at": -1}}
    meta = json.loads((out / "run.json").read_text())
    for key in ("superpose_version", "jax_version", "backend", "devices", "seed", "wall_time_s", "started"):
        assert key in meta
    assert meta["status"] == "finished" and meta["cells_computed"] == 3
    np.testing.assert_allclose(read_npz(out / "values.npz")["values"], [0.0, 1.5, 3.0])
    page = (out / "index.html").read_text()
    assert "test-cells" in page and "4.5" in page


def test_existing_directory_is_never_overwritten_silently(tmp_path):
    out = tmp_path / "run"
    run_experiment(CELLS, {}, out)
    before = (out / "run.json").read_text()
    with pytest.raises(RunDirectoryError, match="--resume.*--force"):
        run_experiment(CELLS, {}, out)
    assert (out / "run.json").read_text() == before
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(RunDirectoryError, match="refusing to delete"):
        run_experiment(CELLS, {}, foreign, force=True)
    assert (foreign / "thesis.tex").read_text() == "precious"
    run_experiment(CELLS, {"cells": 2}, out, force=True)
    assert json.loads((out / "config.json").read_text())["config"]["cells"] == 2


def test_resume_skips_finished_cells_and_finished_runs(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ExperimentFailed, match="cell 3 failed"):
        run_experiment(CELLS, {"cells": 5, "fail_at": 3}, out)
    assert CALLS == ["cell-0", "cell-1", "cell-2"]
    assert json.loads((out / "run.json").read_text())["status"] == "failed"
    assert "cell 3 failed on purpose" in (out / "index.html").read_text()
    with pytest.raises(RunDirectoryError, match="different config.*fail_at"):
        run_experiment(CELLS, {"cells": 5}, out, resume=True)
    CALLS.clear()
    # The config must match to resume; a failed cell is retried once the cause is fixed,
    # here by editing the stored config the way a user would rerun with the same settings.
    stored = json.loads((out / "config.json").read_text())
    stored["config"]["fail_at"] = -1
    (out / "config.json").write_text(json.dumps(stored))
    record = run_experiment(CELLS, {"cells": 5}, out, resume=True)
    assert CALLS == ["cell-3", "cell-4"] and record.status == "finished"
    meta = json.loads((out / "run.json").read_text())
    assert meta["cells_reused"] == 3 and meta["attempts"] == 2
    CALLS.clear()
    again = run_experiment(CELLS, {"cells": 5}, out, resume=True)
    assert again.skipped and CALLS == []


def test_npz_refuses_objects_and_reads_without_pickle(tmp_path):
    with pytest.raises(TypeError, match="pickle"):
        write_npz(tmp_path / "a.npz", {"x": np.array([{}, 1], dtype=object)})
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable npz"):
        read_npz(tmp_path / "bad.npz")


def test_gallery_marks_failures_and_still_runs_the_rest(tmp_path):
    result = run_gallery(tmp_path / "g", selection=[BROKEN, CELLS])
    status = {r.name: r.status for r in result.records}
    assert status == {"test-broken": "failed", "test-cells": "finished"}
    page = (tmp_path / "g" / "index.html").read_text()
    assert "broken on purpose" in page and "test-cells/index.html" in page
    with pytest.raises(RunDirectoryError, match="already holds a superpose gallery"):
        run_gallery(tmp_path / "g", selection=[CELLS])
    with pytest.raises(RunDirectoryError, match="same mode"):
        run_gallery(tmp_path / "g", selection=[CELLS], quick=True, resume=True)


KILL_SCRIPT = textwrap.dedent(
    """
    import dataclasses, sys
    sys.path.insert(0, {tests!r})
    from runner.helpers import CELLS, Experiment, CellsConfig, cells_fn
    from superpose.runner import run_gallery
    FIRST = Experiment("test-first", "finishes first", CellsConfig, cells_fn)
    @dataclasses.dataclass(frozen=True)
    class SlowConfig(CellsConfig):
        delay: float = 0.5
        cells: int = 6
    SLOW = Experiment("test-slow", "slow cells", SlowConfig, cells_fn)
    run_gallery({out!r}, selection=[FIRST, SLOW], resume={resume})
    """
)


def test_gallery_survives_sigkill_and_resume_redoes_nothing_finished(tmp_path):
    """Kill the gallery inside its second experiment; --resume keeps the first and the finished cells."""
    tests = str(Path(__file__).parent.parent)
    out = str(tmp_path / "g")
    marker = tmp_path / "computed.txt"
    env = {**os.environ, "SUPERPOSE_TEST_MARKER": str(marker)}
    script = KILL_SCRIPT.format(tests=tests, out=out, resume=False)
    process = subprocess.Popen([sys.executable, "-c", script], env=env, start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            lines = marker.read_text().split() if marker.exists() else []
            if lines.count("cell-2") >= 2:  # test-first is finished; test-slow has started cell 2
                break
            if process.poll() is not None:
                pytest.fail("the gallery ended before it could be killed")
            time.sleep(0.05)
        else:
            pytest.fail("the gallery did not reach the second experiment in time")
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    first_meta = json.loads((tmp_path / "g" / "test-first" / "run.json").read_text())
    assert first_meta["status"] == "finished"
    slow_meta = json.loads((tmp_path / "g" / "test-slow" / "run.json").read_text())
    assert slow_meta["status"] == "running"  # killed without a chance to record anything
    done_before = {p.stem for p in (tmp_path / "g" / "test-slow" / "cells").glob("*.npz")}
    assert {"cell-0", "cell-1"} <= done_before

    marker.unlink()
    resumed = subprocess.run([sys.executable, "-c", script.replace("resume=False", "resume=True")],
                             env=env, timeout=300, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    recomputed = marker.read_text().split()
    assert not set(recomputed) & done_before  # no finished cell is computed again
    assert sorted(recomputed + sorted(done_before)) == sorted(f"cell-{i}" for i in range(6))
    assert json.loads((tmp_path / "g" / "test-first" / "run.json").read_text()) == first_meta
    assert json.loads((tmp_path / "g" / "test-slow" / "run.json").read_text())["status"] == "finished"


def test_counter_draws_a_library_call_s_progress_and_removes_its_bar(tmp_path):
    from rich.progress import Progress

    from superpose.runner.run import RunContext
    from superpose.sae.experiments import SaeSweepConfig

    progress = Progress(disable=True)
    run = RunContext(tmp_path / "run", SaeSweepConfig(), progress=progress)
    with run.counter("fit") as tick:
        tick(3, 10)
        (task,) = progress.tasks
        assert (task.description, task.completed, task.total) == ("fit", 3, 10)
    assert progress.tasks == []  # the bar is gone once the block ends
    with RunContext(tmp_path / "quiet", SaeSweepConfig()).counter("fit") as tick:
        tick(1, 2)  # without a display: a no-op
