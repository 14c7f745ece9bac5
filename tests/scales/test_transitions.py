"""Transitions against closed forms: exact rescaling, round trips, composition, frames (scipy's expm) and optax fits."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st

from superpose.scales import Frame, ScaleLadder, connect, transition, validate

LADDER = ScaleLadder(0.5, 4.0, 4)  # rungs 0.5, 1, 2, 4
D = 5


def unit_rows(x):
    return np.linalg.norm(np.asarray(x, np.complex128), axis=-1)


def frame_matrix(frame, scale):
    """U_k = expm((P − Pᴴ)/2) by scipy in float64/complex128: an independent implementation."""
    p = np.asarray(frame.generators[frame.ladder.index(scale)], np.complex128)
    return scipy.linalg.expm(0.5 * (p - p.conj().T))


@pytest.fixture(scope="module")
def real_case():
    k_frame, k_x = jax.random.split(jax.random.key(0))
    return Frame.random(k_frame, LADDER, D, strength=0.5), jax.random.normal(k_x, (3, 2, D))


@pytest.fixture(scope="module")
def complex_case():
    k_frame, k_re, k_im = jax.random.split(jax.random.key(1), 3)
    x = jax.lax.complex(jax.random.normal(k_re, (4, D)), jax.random.normal(k_im, (4, D)))
    return Frame.random(k_frame, LADDER, D, jnp.complex64, strength=0.5), x


def test_ladder_rungs_index_and_ratio():
    ladder = ScaleLadder(0.5, 2.0, 3)
    np.testing.assert_allclose(ladder.scales, [0.5, 1.0, 2.0], rtol=1e-15)
    assert ladder.scales[0] == 0.5 and ladder.scales[-1] == 2.0 and len(ladder) == 3
    assert ladder.index(1.0) == 1 and ladder.index(np.float32(2.0)) == 2
    assert ladder.ratio(0.5, 2.0) == 4.0 and ladder.ratio(2.0, 0.5) == 0.25
    assert ladder.step_ratio == pytest.approx(2.0, rel=1e-15)
    assert list(ScaleLadder(1.0, 1000.0, 4)) == pytest.approx([1.0, 10.0, 100.0, 1000.0], rel=1e-14)


def test_exact_rescaling_and_round_trip_for_every_pair_both_directions(real_case):
    frame, x = real_case
    norms = unit_rows(x)
    for source, target in itertools.permutations(LADDER, 2):
        r = target / source
        for f in (None, frame):
            y = transition(x, source, target, frame=f)
            assert y.dtype == jnp.float32 and y.shape == x.shape
            np.testing.assert_allclose(unit_rows(y), r * norms, rtol=1e-5)
            back = transition(y, target, source, frame=f)
            assert np.all(unit_rows(back - x) <= 1e-5 * norms)
        # against scipy's expm: y = r · U_t U_sᵀ x
        u = frame_matrix(frame, target) @ frame_matrix(frame, source).conj().T
        expected = r * np.asarray(x, np.float64) @ u.T.real
        np.testing.assert_allclose(transition(x, source, target, frame=frame), expected, rtol=1e-5, atol=1e-5 * r)


def test_composition_is_exact(real_case, complex_case):
    for frame, x in (real_case, complex_case):
        for s, t, u in itertools.permutations(LADDER, 3):
            two_steps = transition(transition(x, s, t, frame=frame), t, u, frame=frame)
            direct = transition(x, s, u, frame=frame)
            assert np.all(unit_rows(two_steps - direct) <= 1e-5 * unit_rows(direct))


def test_complex_states_keep_norms_and_phase(complex_case):
    frame, x = complex_case
    for source, target in itertools.permutations(LADDER, 2):
        r = target / source
        y = transition(x, source, target, frame=frame)
        assert y.dtype == jnp.complex64
        np.testing.assert_allclose(unit_rows(y), r * unit_rows(x), rtol=1e-5)
        # undo the frame with scipy's unitary and the scale: the phase of every component survives
        u = frame_matrix(frame, target) @ frame_matrix(frame, source).conj().T  # y = r·U x, so x = Uᴴ y / r
        undone = np.asarray(y, np.complex128) @ u.conj() / r
        coherence = np.abs(np.sum(np.conj(np.asarray(x)) * undone, -1)) / (unit_rows(x) * unit_rows(undone))
        assert coherence.min() > 0.999
        plain = transition(x, source, target)  # identity frame: y = r x, coherence 1
        coherence = np.abs(np.sum(np.conj(np.asarray(x)) * np.asarray(plain), -1)) / (unit_rows(x) * unit_rows(plain))
        assert coherence.min() > 0.999
    reports = validate([x, x], [0.5, 2.0, 4.0], frame=frame)
    assert [r.ratio for r in reports] == [4.0, 2.0]
    assert all(r.phase_coherence > 0.999 and r.information_preserved > 0.999 for r in reports)
    assert all(r.norm_ratio_error < 1e-5 and abs(r.amplification / r.ratio - 1) < 1e-3 and r.passed for r in reports)


def test_frames_are_orthogonal_and_identity_on_the_same_rung(real_case, complex_case):
    for frame, _ in (real_case, complex_case):
        u = np.asarray(frame.matrices(), np.complex128)
        eye = np.eye(D)
        assert np.abs(np.conj(np.swapaxes(u, -1, -2)) @ u - eye).max() < 1e-5
        np.testing.assert_array_equal(frame.between(2.0, 2.0), np.eye(D))
        np.testing.assert_allclose(frame.matrix(1.0), frame_matrix(frame, 1.0), atol=1e-5)


def test_jit_vmap_and_grad(real_case):
    frame, x = real_case
    eager = transition(x, 0.5, 4.0, frame=frame)
    rows = jax.jit(jax.vmap(lambda v, s, t: transition(v, s, t, frame=frame), in_axes=(0, None, None)))(
        x.reshape(-1, D), 0.5, 4.0)  # traced scales find their rungs under jit
    np.testing.assert_allclose(rows.reshape(x.shape), eager, rtol=1e-6, atol=1e-6)
    # ‖(t/s) x‖² = (t/s)² ‖x‖², so its gradient is 2 (t/s)² x (gradients through frames: the optax test)
    grad = jax.grad(lambda v: jnp.sum(transition(v, 0.5, 4.0) ** 2))(x)
    np.testing.assert_allclose(grad, 2 * 64 * x, rtol=1e-5, atol=1e-5)


def test_frame_fitted_with_optax_keeps_the_guarantees_at_every_step():
    """Align Y = 2·Q X (planted rotation Q) by fitting the frames; orthogonality holds at every step."""
    ladder = ScaleLadder(1.0, 2.0, 2)
    k_q, k_x, k_p = jax.random.split(jax.random.key(3), 3)
    a = np.asarray(jax.random.normal(k_q, (3, 3)), np.float64)
    q = scipy.linalg.expm(0.6 * (a - a.T))  # a rotation (det +1), as exp of a skew matrix can reach
    x = jax.random.normal(k_x, (32, 3))
    y = 2.0 * np.asarray(x) @ q.T
    optimizer = optax.adam(0.05)
    generators = 0.01 * jax.random.normal(k_p, (2, 3, 3))

    def loss(p):
        moved = transition(x, 1.0, 2.0, frame=Frame(ladder, p))
        return jnp.mean((moved - y) ** 2), moved

    def step(carry, _):
        p, state = carry
        (value, moved), grad = jax.value_and_grad(loss, has_aux=True)(p)
        updates, state = optimizer.update(grad, state)
        p = optax.apply_updates(p, updates)
        u = Frame(ladder, p).matrices()
        orthogonality = jnp.max(jnp.abs(jnp.swapaxes(u, -1, -2) @ u - jnp.eye(3)))
        norm_error = jnp.max(jnp.abs(jnp.linalg.norm(moved, axis=-1) / (2 * jnp.linalg.norm(x, axis=-1)) - 1))
        return (p, state), (value, orthogonality, norm_error)

    (p, _), (losses, orthogonality, norm_error) = jax.jit(
        lambda p0: jax.lax.scan(step, (p0, optimizer.init(p0)), None, length=300))(generators)
    assert orthogonality.max() < 1e-5 and norm_error.max() < 1e-5
    assert float(losses[-1]) < 1e-6 * float(np.mean(y**2)) < float(losses[0])
    frame = Frame(ladder, p)
    np.testing.assert_allclose(frame.between(1.0, 2.0), q, atol=1e-3)
    np.testing.assert_allclose(transition(transition(x, 1.0, 2.0, frame=frame), 2.0, 1.0, frame=frame), x, atol=1e-5)


@settings(max_examples=12, deadline=None)
@given(
    low=st.floats(1e-2, 10.0),
    spread=st.floats(1.5, 1e3),
    num=st.sampled_from([2, 3, 5]),
    dtype=st.sampled_from(["float32", "complex64"]),
    batch=st.sampled_from([(), (3,), (2, 2)]),
    seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_properties_over_random_ladders_dtypes_and_batches(low, spread, num, dtype, batch, seed, data):
    ladder = ScaleLadder(low, low * spread, num)
    i, j, k = (data.draw(st.integers(0, num - 1)) for _ in range(3))
    s, t, u = ladder[i], ladder[j], ladder[k]
    rng = np.random.default_rng(seed)  # numpy draws: no compilation per shape
    complex_states = dtype == "complex64"
    generators = rng.normal(size=(num, 3, 3)) + (1j * rng.normal(size=(num, 3, 3)) if complex_states else 0)
    frame = Frame(ladder, jnp.asarray(0.5 * generators, dtype))
    x = rng.normal(size=(*batch, 3)) + (1j * rng.normal(size=(*batch, 3)) if complex_states else 0)
    x = jnp.asarray(x, dtype)
    y = transition(x, s, t, frame=frame)
    assert y.shape == x.shape and y.dtype == x.dtype
    np.testing.assert_allclose(unit_rows(y), (t / s) * unit_rows(x), rtol=1e-5)
    assert np.all(unit_rows(transition(y, t, s, frame=frame) - x) <= 1e-5 * unit_rows(x))
    two = transition(y, t, u, frame=frame)
    assert np.all(unit_rows(two - transition(x, s, u, frame=frame)) <= 1e-5 * unit_rows(two))


def test_connect_contract():
    x = [jnp.ones((2, 3)), 2 * jnp.ones(3), 3 * jnp.ones(3)]
    moved = connect(x, [1.0, 2.0, 8.0, 4.0])  # len(scales) == len(states) + 1
    np.testing.assert_allclose(moved[0], 2 * x[0])
    np.testing.assert_allclose(moved[1], 4 * x[1])
    np.testing.assert_allclose(moved[2], 0.5 * x[2])
    moved = connect(x, [1.0, 2.0, 8.0])  # len(scales) == len(states): the last passes through
    np.testing.assert_allclose(moved[0], 2 * x[0])
    np.testing.assert_allclose(moved[1], 4 * x[1])
    np.testing.assert_array_equal(moved[2], x[2])
    stacked = connect(jnp.stack([x[1], x[2]]), [1.0, 3.0])
    np.testing.assert_allclose(stacked, [3 * x[1], x[2]])
    for scales in ([1.0], [1.0, 2.0, 3.0, 4.0, 5.0]):
        with pytest.raises(ValueError, match=r"need len\(scales\) == len\(states\) \+ 1"):
            connect(x, scales)
    reports = validate(x[1:], [1.0, 2.0, 8.0])
    expected = [(0, 1.0, 2.0, None), (1, 2.0, 8.0, None)]
    assert [(r.index, r.source, r.target, r.phase_coherence) for r in reports] == expected
    assert all(r.lipschitz_bound == r.ratio and abs(r.amplification / r.ratio - 1) < 1e-3 for r in reports)


def test_bad_input_raises_with_the_reason(real_case, complex_case):
    frame, x = real_case
    cframe, cx = complex_case
    for args, match in (
        ((0.0, 1.0, 3), "min_scale must be finite and > 0"),
        ((-1.0, 1.0, 3), "min_scale must be finite and > 0"),
        ((1.0, float("inf"), 3), "max_scale must be finite and > 0"),
        ((float("nan"), 1.0, 3), "min_scale must be finite and > 0"),
        ((2.0, 1.0, 3), "max_scale must be > min_scale"),
        ((1.0, 2.0, 1), "num_scales must be an integer >= 2"),
        ((1.0, 2.0, 2.5), "num_scales must be an integer >= 2"),
        ((1.0, 2.0, 3, 0.5), "max_step .* must be >= 1"),
    ):
        with pytest.raises(ValueError, match=match):
            ScaleLadder(*args)
    for source, target in ((0.0, 1.0), (-1.0, 1.0), (1.0, float("nan")), (float("inf"), 1.0)):
        with pytest.raises(ValueError, match="scale must be finite and > 0"):
            transition(x, source, target)
    with pytest.raises(ValueError, match="outside the ladder's range"):
        transition(x, 0.5, 8.0, ladder=LADDER)
    with pytest.raises(ValueError, match="beyond the ladder's largest step"):
        transition(x, 0.5, 4.0, ladder=ScaleLadder(0.5, 4.0, 4, max_step=2.0))
    assert transition(x, 0.5, 1.0, ladder=ScaleLadder(0.5, 4.0, 4, max_step=2.0)).shape == x.shape
    with pytest.raises(ValueError, match="not a rung"):
        transition(x, 0.5, 3.0, frame=frame)
    for bad in (jnp.nan, jnp.inf):
        with pytest.raises(ValueError, match="state must be finite"):
            transition(x.at[0, 0, 1].set(bad), 0.5, 1.0)
    with pytest.raises(ValueError, match="real frame cannot act on complex states"):
        transition(cx, 0.5, 1.0, frame=frame)
    with pytest.raises(ValueError, match="complex .* frame cannot act on real states"):
        transition(x, 0.5, 1.0, frame=cframe)
    with pytest.raises(ValueError, match="frame has the wrong size"):
        transition(jnp.ones((2, D + 1)), 0.5, 1.0, frame=frame)
    with pytest.raises(ValueError, match=r"generators must have shape \(num_scales, D, D\)"):
        Frame(LADDER, jnp.zeros((3, D, D)))
    with pytest.raises(ValueError, match=r"shape \(\.\.\., D\)"):
        transition(jnp.asarray(1.0), 0.5, 1.0)
    with pytest.raises(ValueError, match="scales\\[1\\] must be finite and > 0"):
        connect([x], [1.0, -2.0])
