"""Run directories when several processes run the same experiment (``superpose run --distributed``).

Every process runs the same program; only process 0 writes the run directory. Each other process
works in a private copy of it, made before process 0 changes anything and deleted at the end, so
that every process reads the same finished cells and stored fits (``--resume`` makes the same
decisions everywhere) and nothing but process 0 ever writes to the user's directory.
"""

from __future__ import annotations

import contextlib
import contextvars
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import jax

from superpose.parallel import is_main_process, processes_agree

_IN_VIEW: contextvars.ContextVar[bool] = contextvars.ContextVar("superpose_process_view", default=False)


class ProcessesDisagree(ValueError):
    """The processes of a multi-process run see different run directories."""


def listing(path: Path) -> str:
    """Every file under ``path`` with its size, one per line, in sorted order (``"absent"`` if none)."""
    if not path.exists():
        return "absent"
    if not path.is_dir():
        return f"a file of {path.stat().st_size} bytes"
    return "\n".join(f"{p.relative_to(path).as_posix()} {p.stat().st_size if p.is_file() else '/'}"
                     for p in sorted(path.rglob("*")))


@contextlib.contextmanager
def process_directory(out: Path) -> Iterator[Path]:
    """The directory this process works in: ``out`` on process 0, a private copy elsewhere.

    With one process it is ``out``. With several, every process checks that it sees the same
    ``out`` as process 0 (a collective), which needs a file system that every process reads when
    ``out`` already exists (on one host, always); if they differ, every process raises
    :class:`ProcessesDisagree`. Nested calls (an experiment inside a gallery) reuse the outer view.
    """
    if jax.process_count() == 1 or _IN_VIEW.get():
        yield out
        return
    scratch = None
    here = out
    try:
        if not is_main_process():
            scratch = Path(tempfile.mkdtemp(prefix=f"superpose-process{jax.process_index()}-"))
            here = scratch / (out.name or "run")
            if out.is_dir():
                shutil.copytree(out, here, symlinks=True)
            elif out.exists():
                shutil.copy2(out, here)
        if not processes_agree(listing(here)):
            raise ProcessesDisagree(
                f"the processes of this run see different contents in {out}: a multi-process run needs "
                "its output directory on a file system that every process reads (or a new directory)"
            )
        token = _IN_VIEW.set(True)
        try:
            yield here
        finally:
            _IN_VIEW.reset(token)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
