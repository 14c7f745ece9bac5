"""Settings for the whole test session (every worker of it).

The default run is ``pytest -n auto --dist loadfile`` (pyproject's addopts): test files are shared
between pytest-xdist workers, each file's tests in one worker so they share its compiled programs.
Most of the suite's time is XLA compiling, which runs on one core, so two workers on the 2-core
Xeon took the suite from 16 min 46 s to 11 min 33 s (2026-12-02, 549 tests). ``-n 0`` runs in one
process (e.g. to debug one test).
"""

from __future__ import annotations

import os

import pytest

# workers may share one GPU: none may reserve 75% of its memory at start (JAX's default)
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

#: the most workers ``-n auto`` starts: measured with two on two cores; each worker holds its own
#: compiled programs and its own copy of the test data, so more are not free
MAX_WORKERS = 2


def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto``: one worker per core, at most :data:`MAX_WORKERS`."""
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


#: memory mappings above which a worker frees its compiled programs after a test file
#: (superpose._xla.free_compiled_programs says why): one worker held 40 512 of vm.max_map_count's 65 530 at
#: the end of the suite on 2026-12-03 (554 tests); below this budget nothing is freed, so files still share
#: programs.
MAPPING_BUDGET = 20_000


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_programs():
    """After each test file, frees the worker's compiled programs once their mappings pass the budget."""
    yield
    from superpose._xla import free_compiled_programs

    free_compiled_programs(above=MAPPING_BUDGET)
