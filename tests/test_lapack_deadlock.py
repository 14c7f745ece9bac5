"""superpose keeps jaxlib 0.10's batched CPU LAPACK kernels from deadlocking XLA's thread pool."""

import os
import subprocess
import sys
import textwrap

import pytest

# Two independent pairs of batched eigh and solve in one compiled function: on 2 cores with
# jaxlib 0.10.2 and JAX's default XLA flags this hangs (0% CPU) by its second call, every time.
REPRO = textwrap.dedent("""
    import superpose  # sets the XLA flag before JAX starts its CPU client
    import jax, jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
    A = jax.random.normal(jax.random.key(0), (1000, 16, 16))
    A = A @ jnp.swapaxes(A, 1, 2) + jnp.eye(16)
    B = jax.random.normal(jax.random.key(1), (1000, 16, 300))

    @jax.jit
    def f(A, B):
        return (jnp.linalg.eigvalsh(A).sum() + jnp.linalg.solve(A, B).sum()
                + jnp.linalg.eigvalsh(A + 1).sum() + jnp.linalg.solve(A + 2, B).sum())

    for i in range(6):
        float(f(A + i, B))
    print("done")
""")


def test_concurrent_batched_lapack_calls_finish():
    env = {key: value for key, value in os.environ.items() if key != "XLA_FLAGS"}
    env["JAX_PLATFORMS"] = "cpu"
    try:
        result = subprocess.run([sys.executable, "-c", REPRO], env=env, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("concurrent batched LAPACK calls hung (the jaxlib 0.10 thread-pool deadlock)")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("done")


def test_a_users_own_flag_is_kept():
    env = {**os.environ, "XLA_FLAGS": "--xla_cpu_enable_concurrency_optimized_scheduler=true"}
    code = "import os, superpose; print(os.environ['XLA_FLAGS'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "--xla_cpu_enable_concurrency_optimized_scheduler=true"
