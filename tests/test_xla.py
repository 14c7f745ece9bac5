"""superpose._xla.jit: per-function XLA options on CPU, plain jit inside other traces."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from superpose import _xla


def _f(x, power):
    return jnp.sum(jnp.sin(x) ** power)


def test_options_reach_the_compiler_at_top_level_only():
    bad = _xla.jit(_f, cpu_options={"not_an_xla_option": 1}, static_argnames="power")
    x = jnp.linspace(0.0, 1.0, 7)
    if jax.default_backend() == "cpu":
        with pytest.raises(Exception, match="not_an_xla_option"):
            bad(x, 2)
    # inlined into an outer trace, the outer compilation decides: no options, no error
    np.testing.assert_allclose(jax.jit(lambda v: bad(v, 2))(x), _f(x, 2), rtol=1e-6)
    np.testing.assert_allclose(jax.grad(lambda v: bad(v, 2))(x), 2 * jnp.sin(x) * jnp.cos(x), rtol=1e-5)


def test_wide_vectors_give_the_same_numbers():
    good = _xla.jit(cpu_options=_xla.WIDE_VECTORS, static_argnames="power")(_f)
    x = jax.random.normal(jax.random.key(0), (4096,))
    np.testing.assert_allclose(good(x, 3), jax.jit(_f, static_argnames="power")(x, 3), rtol=1e-5)


def test_compiled_programs_are_freed_only_above_the_budget():
    program = jax.jit(lambda x: jnp.cos(x) * 3.0)
    program(jnp.ones(4))
    count = _xla.memory_mappings()
    if count is not None:  # Linux: a budget above the count keeps them
        assert count > 0
        assert not _xla.free_compiled_programs(above=count + 10_000)
        assert program._cache_size() == 1
    assert _xla.free_compiled_programs(above=0)
    assert program._cache_size() == 0
