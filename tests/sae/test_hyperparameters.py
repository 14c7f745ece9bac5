"""SaeHyperparameters: the seed's flat layout, exact inverses, dispersion seeding, pytree and JSON."""

from __future__ import annotations

import json
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from superpose.numerics import float64_enabled
from superpose.sae.hyperparameters import ARD_LAYOUTS, SaeHyperparameters, seed_from_dispersion


def _leaves_equal(a: SaeHyperparameters, b: SaeHyperparameters) -> bool:
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    return ta == tb and all(x.shape == y.shape and np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))


def _value_by_name(h: SaeHyperparameters, name: str) -> list[float]:
    """The table entries a describe_flat name refers to (several for a shared ARD axis)."""
    if name == "log_lambda_sparse":
        return [float(h.log_lambda_sparse)]
    if m := re.fullmatch(r"log_lambda_smooth\[(\d+)\]", name):
        return [float(h.log_lambda_smooth[int(m[1])])]
    if m := re.fullmatch(r"log_ard\[(\d+)\]\[(\d+)\]", name):
        return [float(h.log_ard[int(m[1])][int(m[2])])]
    m = re.fullmatch(r"log_ard_shared\[(\d+)\]", name)
    j = int(m[1])
    return [float(block[j]) for block in h.log_ard if block.shape[0] > j]


@settings(max_examples=30, deadline=None)
@given(
    dims=st.lists(st.integers(0, 3), min_size=1, max_size=6),
    layout=st.sampled_from(ARD_LAYOUTS),
    seed=st.integers(0, 2**31 - 1),
)
def test_flat_layout_is_the_seeds_and_from_flat_is_an_exact_inverse(dims, layout, seed):
    rng = np.random.default_rng(seed)
    K, max_d = len(dims), max(dims)
    if layout == "per_atom":
        log_ard = [rng.normal(size=d) * 10 for d in dims]
    else:
        log_ard = rng.normal(size=max_d) * 10
    h = SaeHyperparameters.create(
        dims, log_lambda_sparse=rng.normal(), log_lambda_smooth=rng.normal(size=K), log_ard=log_ard, ard_layout=layout
    )
    expected = 1 + K + (sum(dims) if layout == "per_atom" else max_d)
    flat = np.asarray(h.to_flat())
    names = h.describe_flat()
    assert flat.shape == (expected,) == (h.flat_size,) and len(names) == expected
    # Every flat coordinate is the table entry its name says (for shared: every owner's entry).
    for value, name in zip(flat, names):
        assert all(v == value for v in _value_by_name(h, name)), name
    assert _leaves_equal(h.from_flat(flat), h)
    # ... and the other way round, for an arbitrary flat vector.
    other = rng.normal(size=expected).astype(flat.dtype) * 5
    rebuilt = h.from_flat(other)
    np.testing.assert_array_equal(np.asarray(rebuilt.to_flat()), other)
    assert rebuilt.atom_dims == tuple(dims) and rebuilt.ard_layout == layout


def test_create_broadcasts_scalars_and_shared_axes():
    h = SaeHyperparameters.create([1, 2, 0], log_lambda_smooth=0.5, log_ard=[1.0, [2.0, 3.0], []])
    np.testing.assert_array_equal(h.log_lambda_smooth, [0.5, 0.5, 0.5])
    assert [b.tolist() for b in h.log_ard] == [[1.0], [2.0, 3.0], []]
    s = SaeHyperparameters.create([1, 2, 0], log_ard=[4.0, 5.0], ard_layout="shared")
    assert [b.tolist() for b in s.log_ard] == [[4.0], [4.0, 5.0], []]
    assert s.to_flat().tolist() == [0.0, 0.0, 0.0, 0.0, 4.0, 5.0]
    assert s.describe_flat()[-2:] == ["log_ard_shared[0]", "log_ard_shared[1]"]
    b = SaeHyperparameters.create([2, 2], log_ard=-1.0)
    assert [blk.tolist() for blk in b.log_ard] == [[-1.0, -1.0], [-1.0, -1.0]]
    assert (h.num_atoms, h.max_ard_axes, h.flat_size, s.flat_size) == (3, 2, 7, 6)
    none = SaeHyperparameters.create([0, 0], ard_layout="shared")
    assert none.max_ard_axes == 0 and none.to_flat().shape == (3,)


def test_shared_layout_reads_the_mean_of_a_non_broadcast_table():
    h = SaeHyperparameters(
        log_lambda_sparse=0.0,
        log_lambda_smooth=jnp.zeros(3),
        log_ard=(jnp.array([1.0, 6.0]), jnp.array([2.0]), jnp.array([4.0, 8.0])),
        ard_layout="shared",
        atom_dims=(2, 1, 2),
    )
    np.testing.assert_allclose(h.to_flat()[-2:], [7.0 / 3.0, 7.0], rtol=1e-6)


def test_strengths_are_exponentials_and_always_finite_positive():
    h = SaeHyperparameters.create(
        [2, 1], log_lambda_sparse=1e4, log_lambda_smooth=[-1e4, 0.7], log_ard=[[-3.0, 2.0], 1e5]
    )
    for values in (h.lambda_sparse, h.lambda_smooth, h.smoothness_vector(), *h.ard_precisions):
        values = np.asarray(values)
        assert np.all(np.isfinite(values)) and np.all(values > 0)
    assert float(h.lambda_smooth[1]) == pytest.approx(math.exp(0.7), rel=1e-6)
    np.testing.assert_allclose(h.ard_precisions[0], np.exp([-3.0, 2.0]), rtol=1e-6)
    np.testing.assert_array_equal(h.smoothness_vector(), h.lambda_smooth)


def test_gradient_through_from_flat_matches_the_closed_form():
    h = SaeHyperparameters.create([1, 2])
    flat = jnp.array([0.1, 0.2, -0.3, 0.4, 0.5, -0.6])
    objective = lambda f: jnp.sum(h.from_flat(f).lambda_smooth) + jnp.sum(h.from_flat(f).ard_precisions[1])
    expected = np.array([0.0, math.exp(0.2), math.exp(-0.3), 0.0, math.exp(0.5), math.exp(-0.6)])
    np.testing.assert_allclose(jax.grad(objective)(flat), expected, rtol=1e-6)


def test_pytree_round_trip_and_jit():
    h = SaeHyperparameters.create([1, 3], log_lambda_smooth=[0.1, 0.2], log_ard=[[0.3], [0.4, 0.5, 0.6]])
    leaves, tree = jax.tree_util.tree_flatten(h)
    assert len(leaves) == 2 + h.num_atoms
    assert _leaves_equal(jax.tree_util.tree_unflatten(tree, leaves), h)
    shifted = jax.jit(lambda hp: hp.from_flat(hp.to_flat() + 1.0))(h)
    np.testing.assert_allclose(shifted.to_flat(), np.asarray(h.to_flat()) + 1.0, rtol=1e-6)
    doubled = jax.tree_util.tree_map(lambda x: 2 * x, h)
    np.testing.assert_allclose(doubled.to_flat(), 2 * np.asarray(h.to_flat()))


def test_float64_round_trip_is_exact():
    with float64_enabled():
        h = SaeHyperparameters.create([2], log_lambda_sparse=1 / 3, log_ard=[[math.pi, -math.e]])
        assert h.to_flat().dtype == jnp.float64
        assert float(h.to_flat()[0]) == 1 / 3
        assert _leaves_equal(h.from_flat(h.to_flat()), h)


def test_json_round_trip_is_exact():
    h = SaeHyperparameters.create(
        [2, 0, 1], log_lambda_sparse=0.123, log_lambda_smooth=[1 / 3, 2 / 7, -5.5], log_ard=-0.77
    )
    back = SaeHyperparameters.from_json(json.loads(json.dumps(h.to_json())))
    assert _leaves_equal(back, h) and back.ard_layout == h.ard_layout
    with pytest.raises(ValueError, match="lacks"):
        SaeHyperparameters.from_json({"log_lambda_sparse": 0.0})


@pytest.mark.parametrize("gate_flag", [True, False])
def test_seed_from_dispersion_shifts_penalty_strengths_by_log_phi(gate_flag):
    class Gate:
        sparse_is_penalty_strength = gate_flag

    h = SaeHyperparameters.create(
        [1, 2], log_lambda_sparse=0.5, log_lambda_smooth=[0.0, 1.0], log_ard=[[2.0], [3.0, 4.0]]
    )
    phi = 2.5
    for gate in (Gate(), gate_flag):
        seeded = seed_from_dispersion(h, phi, gate)
        shift = np.full(h.flat_size, math.log(phi))
        shift[0] = math.log(phi) if gate_flag else 0.0
        np.testing.assert_allclose(seeded.to_flat(), np.asarray(h.to_flat()) + shift, rtol=1e-6)
    # The effective stiffness λ/φ of every smoothness and ARD strength is the seed's λ.
    ratio = np.asarray(seeded.lambda_smooth) / phi
    np.testing.assert_allclose(ratio, np.asarray(h.lambda_smooth), rtol=1e-5)


@pytest.mark.parametrize("phi", [0.0, -1.0, math.inf, math.nan])
def test_seed_from_dispersion_rejects_bad_dispersion(phi):
    h = SaeHyperparameters.create([1])
    with pytest.raises(ValueError, match="dispersion"):
        seed_from_dispersion(h, phi, True)


def test_seed_from_dispersion_rejects_a_gate_without_the_flag():
    with pytest.raises(TypeError, match="sparse_is_penalty_strength"):
        seed_from_dispersion(SaeHyperparameters.create([1]), 1.0, object())


def test_wrong_flat_length_names_the_expected_length_and_its_parts():
    h = SaeHyperparameters.create([1, 2])
    with pytest.raises(ValueError, match=re.escape("length 6 = 1 + K + Σ d_k = 1 + 2 + 3")):
        h.from_flat(jnp.zeros(5))
    s = SaeHyperparameters.create([1, 2], ard_layout="shared")
    with pytest.raises(ValueError, match=re.escape("length 5 = 1 + K + max_d = 1 + 2 + 2")):
        s.from_flat(jnp.zeros(6))
    with pytest.raises(ValueError, match="finite"):
        h.from_flat(jnp.array([0.0, 1.0, np.nan, 0.0, 0.0, 0.0]))


def test_bad_construction_raises_clear_errors():
    with pytest.raises(ValueError, match="per_atom"):
        SaeHyperparameters.create([1], ard_layout="global")
    with pytest.raises(ValueError, match=r"log_ard\[1\] \(atom 1\)"):
        SaeHyperparameters.create([1, 2], log_ard=[[0.0], [0.0, 1.0, 2.0]])
    with pytest.raises(ValueError, match="K = 2"):
        SaeHyperparameters.create([1, 2], log_ard=[0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="max_d = 2"):
        SaeHyperparameters.create([1, 2], log_ard=[0.0, 0.0, 0.0], ard_layout="shared")
    with pytest.raises(ValueError, match="K = 3"):
        SaeHyperparameters.create([1, 1, 1], log_lambda_smooth=[0.0, 1.0])
    with pytest.raises(ValueError, match="finite"):
        SaeHyperparameters.create([1], log_lambda_sparse=math.inf)
    with pytest.raises(ValueError, match="finite"):
        SaeHyperparameters.create([1], log_ard=[[math.nan]])
    with pytest.raises(ValueError, match="at least one atom"):
        SaeHyperparameters.create([])
    with pytest.raises(ValueError, match="atom_dims"):
        SaeHyperparameters.create([1, -1])


def test_check_atoms_catches_mismatched_atoms():
    h = SaeHyperparameters.create([1, 2])
    h.check_atoms([1, 2])
    with pytest.raises(ValueError, match="K = 2 atoms, the model has 3"):
        h.check_atoms([1, 2, 1])
    with pytest.raises(ValueError, match="atom 1: the hyperparameters carry 2 ARD axes, the model's atom has 1"):
        h.check_atoms([1, 1])
