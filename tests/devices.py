"""Run a snippet in fresh interpreters with 1 and N fake CPU devices (for sharding tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def run_with_devices(code: str, counts: tuple[int, ...] = (1, 4)) -> dict[int, dict]:
    """The JSON object that ``code`` prints last, from one run per device count."""
    runs = {}
    for count in counts:
        env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={count}", "JAX_PLATFORMS": "cpu"}
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        runs[count] = json.loads(done.stdout.strip().splitlines()[-1])
    return runs
