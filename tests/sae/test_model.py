"""The manifold SAE: objective against a NumPy transcription, the inner solve's optimum against a
long optax run, the arrow-structured log-determinant against a dense Hessian, planted recovery,
files and errors."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from superpose.numerics import float64_enabled
from superpose.sae import (
    CircleAtom,
    IntervalAtom,
    LinearAtom,
    ManifoldSAE,
    SaeHyperparameters,
    fit_sae,
    make_gate,
    single_circle,
    two_circles,
)
from superpose.sae.experiments import SaeCirclesConfig
from superpose.sae.init import initial_params
from superpose.sae.metrics import circular_r2, curve_span, explained_variance, match_atoms, plane_overlap
from superpose.sae.objective import NULL_SPACE_PRECISION, SaeParams, decode, penalized_loss, wrap_coords
from superpose.sae.solve import gradient_norm, solve
from scipy.linalg import null_space as scipy_null_space
from superpose.sae.structure import log_det_hessian

CIRCLES = SaeCirclesConfig()
CIRCLE_HYPER = dict(log_lambda_sparse=CIRCLES.log_lambda_sparse, log_lambda_smooth=CIRCLES.log_lambda_smooth,
                    log_ard=CIRCLES.log_ard)


def _random_params(rng, atoms, n, p, dtype=np.float64):
    return SaeParams(
        jnp.asarray(rng.normal(size=p), dtype), tuple(jnp.asarray(rng.normal(size=(a.num_basis, p)), dtype) for a in atoms),
        jnp.asarray(rng.uniform(0.1, 0.5, size=len(atoms)), dtype), jnp.asarray(rng.normal(size=(n, len(atoms))), dtype),
        jnp.asarray(rng.uniform(0.05, 0.95, size=(n, sum(a.dim for a in atoms))), dtype))


def test_objective_equals_numpy_transcription():
    """Decode and the penalised loss, written again in NumPy from the module's equations."""
    rng = np.random.default_rng(0)
    atoms = (CircleAtom(2), IntervalAtom(3), LinearAtom())
    gate = make_gate("threshold", width=0.2)
    with float64_enabled():
        params = _random_params(rng, atoms, 7, 4)
        hyper = SaeHyperparameters.create([1, 1, 1], log_lambda_sparse=-1.0, log_lambda_smooth=[-2.0, 0.5, 1.0],
                                          log_ard=[[0.3], [-0.4], [1.2]])
        Z = rng.normal(size=(7, 4))
        ours_decode = np.asarray(decode(atoms, gate, params))
        ours_loss = float(penalized_loss(atoms, gate, params, hyper, jnp.asarray(Z)))
    logits, coords = np.asarray(params.logits), np.asarray(params.coords)
    theta = np.asarray(params.thresholds)
    a = logits / (1 + np.exp(-(logits - theta) / 0.2))
    t0, t1, t2 = coords[:, 0], coords[:, 1], coords[:, 2]
    phi_circle = np.stack([np.ones_like(t0)] + [f(2 * np.pi * h * t0) for h in (1, 2) for f in (np.cos, np.sin)], 1)
    from scipy.interpolate import BSpline

    knots = np.concatenate([[0.0] * 4, [0.25, 0.5, 0.75], [1.0] * 4])
    phi_interval = np.stack([BSpline(knots, np.eye(7)[j], 3)(t1) for j in range(7)], 1)
    phi_linear = np.stack([np.ones_like(t2), t2], 1)
    B = [np.asarray(b) for b in params.decoders]
    expected = (np.asarray(params.offset) + a[:, :1] * phi_circle @ B[0] + a[:, 1:2] * phi_interval @ B[1]
                + a[:, 2:3] * phi_linear @ B[2])
    np.testing.assert_allclose(ours_decode, expected, rtol=1e-12, atol=1e-12)
    alpha = np.exp([0.3, -0.4, 1.2])
    from scipy.special import i0

    ard = (-alpha[0] * np.cos(2 * np.pi * t0) + np.log(i0(alpha[0]))
           + 0.5 * alpha[1] * (t1 - 0.5) ** 2 - 0.5 * np.log(alpha[1]) + 0.5 * alpha[2] * t2**2 - 0.5 * np.log(alpha[2]))
    smooth = sum(0.5 * lam * np.trace(b.T @ atom.roughness() @ b)
                 for lam, b, atom in zip(np.exp([-2.0, 0.5, 1.0]), B, atoms))
    for atom, b in zip(atoms, B):  # the weak ridge on what S leaves free (scipy's null space of S)
        null = scipy_null_space(atom.roughness(), rcond=1e-9)
        smooth += 0.5 * NULL_SPACE_PRECISION * np.sum((null.T @ b) ** 2)
    expected_loss = 0.5 * np.sum((Z - expected) ** 2) + np.exp(-1.0) * np.abs(a).sum() + ard.sum() + smooth
    assert ours_loss == pytest.approx(expected_loss, rel=1e-10)


def test_row_steps_in_chunks_equal_one_pass(monkeypatch):
    """Row search, row Newton and the saddle escape over chunks of 7 rows (23 rows: two padded)
    give the rows of one unchunked pass."""
    import superpose.sae.solve as solve_module

    atoms, gate = (CircleAtom(1), CircleAtom(1)), make_gate("binary")
    with float64_enabled():
        rng = np.random.default_rng(4)
        params = _random_params(rng, atoms, 23, 5)
        Z = jnp.asarray(rng.normal(size=(23, 5)))
        hyper = SaeHyperparameters.create([1, 1], log_lambda_sparse=-3.0, log_lambda_smooth=-4.0, log_ard=-2.0)

        def steps():
            searched = solve_module.row_search(atoms, gate, params, hyper, Z, 12)
            newton = solve_module.row_newton(atoms, gate, searched, hyper, Z, 3)
            return searched, newton, solve_module.escape_saddles.__wrapped__(atoms, gate, newton, hyper, Z)[0]

        whole = jax.jit(steps)()
        monkeypatch.setattr(solve_module, "ROW_CHUNK", 7)
        chunked = jax.jit(steps)()  # a new trace reads the new chunk size
        for a, b in zip(whole, chunked):
            np.testing.assert_allclose(np.asarray(b.logits), np.asarray(a.logits), rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(np.asarray(b.coords), np.asarray(a.coords), rtol=1e-10, atol=1e-12)
        assert not np.allclose(np.asarray(whole[1].coords), np.asarray(params.coords))  # the steps moved rows


def test_inner_solve_reaches_the_optimum_of_a_long_optax_run(monkeypatch):
    """Same start: the solve's loss is no worse than 20 000 L-BFGS steps (1e-6 relative), gradient ~0."""
    atoms = (CircleAtom(1),)
    gate = make_gate("threshold")
    with float64_enabled():
        Z, _ = single_circle(jax.random.key(3), 40, 4)
        Z = jnp.asarray(Z, jnp.float64)
        hyper = SaeHyperparameters.create([1], log_lambda_sparse=-3.0, log_lambda_smooth=-4.0, log_ard=-2.0)
        start = initial_params(atoms, gate, np.asarray(Z), jax.random.key(0))
        start, _ = solve(atoms, gate, start, hyper, Z, max_iterations=1)  # decoders filled in
        ours, report = solve(atoms, gate, start, hyper, Z)
        assert report.converged
        # alternation alone (what N·q·P beyond JOINT_MEMORY gets) lowers the loss but more slowly:
        # measured 6.6415 after 500 iterations against the joint phase's 6.6365 after 16
        _, alternated = solve(atoms, gate, start, hyper, Z, joint=False, max_iterations=30)
        assert "alternation only" in alternated.status and "joint=False" in alternated.status, alternated.status
        assert report.loss <= alternated.loss <= float(penalized_loss(atoms, gate, start, hyper, Z))
        with pytest.raises(TypeError, match="joint"):
            solve(atoms, gate, start, hyper, Z, joint="yes")
        import superpose.sae.solve as solve_module

        monkeypatch.setattr(solve_module, "JOINT_MEMORY", 0)  # the default rule, as at N = 100 000
        _, automatic = solve(atoms, gate, start, hyper, Z, max_iterations=3)
        assert "alternation only" in automatic.status and "cross blocks would need" in automatic.status
        flat, unravel = ravel_pytree(start)

        def loss(x):
            q = unravel(x)
            return penalized_loss(atoms, gate, q, hyper, Z)

        optimiser = optax.lbfgs()
        value_and_grad = optax.value_and_grad_from_state(loss)

        @jax.jit
        def run(x):
            def body(carry, _):
                x, state = carry
                value, grad = value_and_grad(x, state=state)
                updates, state = optimiser.update(grad, state, x, value=value, grad=grad, value_fn=loss)
                return (optax.apply_updates(x, updates), state), None

            (x, _), _ = jax.lax.scan(body, (x, optimiser.init(x)), None, length=20_000)
            return x

        reference = unravel(run(flat))
        reference_loss = float(loss(ravel_pytree(reference)[0]))
        assert report.loss <= reference_loss + 1e-6 * abs(reference_loss)
        assert report.gradient_norm < 1e-6 * max(1.0, abs(report.loss))
        assert float(gradient_norm(atoms, gate, ours, hyper, Z)) == pytest.approx(report.gradient_norm)


def test_log_determinant_from_the_arrow_equals_dense_slogdet():
    """The identity det H = Π_i det H_ii · det S_G holds at any point where the H_ii are invertible."""
    atoms = (CircleAtom(1), LinearAtom())
    rng = np.random.default_rng(5)
    for gate in (make_gate("threshold"),):  # its thresholds make the global block the fullest
        with float64_enabled():
            Z = jnp.asarray(rng.normal(size=(6, 3)))
            hyper = SaeHyperparameters.create([1, 1], log_lambda_sparse=0.5, log_lambda_smooth=-1.0, log_ard=0.0)
            params = _random_params(rng, atoms, 6, 3)
            ours = log_det_hessian(atoms, gate, params, hyper, Z)
            kept = params if gate.learns_thresholds else params._replace(thresholds=jnp.zeros(0))
            flat, unravel = ravel_pytree(kept)

            def loss(x):
                q = unravel(x)
                return penalized_loss(atoms, gate, q if gate.learns_thresholds else q._replace(
                    thresholds=params.thresholds), hyper, Z)

            sign, dense = np.linalg.slogdet(np.asarray(jax.jit(jax.hessian(loss))(flat)))
        assert float(ours.sign) == sign
        assert float(ours.log_abs) == pytest.approx(float(dense), rel=1e-8)


@functools.cache
def _circle_fit(seed):
    """Two planted circles drawn from ``seed``, fitted at sae-circles' fixed strengths (select=false) with
    the threshold gate (one compile)."""
    hyper = SaeHyperparameters.create([1, 1], **CIRCLE_HYPER)
    Z, truth = two_circles(jax.random.key(seed))
    fit = fit_sae(np.asarray(Z), [CircleAtom(CIRCLES.harmonics)] * 2, "threshold", hyper,
                  key=jax.random.key(seed), restarts=CIRCLES.restarts)
    return np.asarray(Z), truth, fit


@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)])
def test_two_circles_are_recovered(seed):
    Z, truth, fit = _circle_fit(seed)
    model, encoding = fit.model, fit.encoding
    assert explained_variance(Z, model.decode(encoding)) >= 0.95
    planes, angles, support = (np.asarray(a) for a in (truth.planes, truth.angles, truth.support))
    overlap = np.array([[plane_overlap(curve_span(model.atom_curve(k, 128)), planes[c]) for c in range(2)]
                        for k in range(2)])
    matching = match_atoms(overlap)
    for k, c in zip(matching.fitted, matching.planted):
        assert overlap[k, c] >= 0.95
        assert circular_r2(angles[:, c], encoding.coords[:, k], mask=support[:, c]) >= 0.95
    assert fit.report.converged


def test_encode_save_and_load(tmp_path):
    Z, _, fit = _circle_fit(0)
    model = fit.model
    again = model.encode(Z[:50])
    assert explained_variance(Z[:50], model.decode(again)) >= 0.95
    path = model.save(tmp_path / "sae")
    loaded = ManifoldSAE.load(path)
    np.testing.assert_array_equal(loaded.decode(fit.encoding), model.decode(fit.encoding))
    assert loaded.atoms == model.atoms and loaded.gate == model.gate
    np.testing.assert_array_equal(loaded.hyperparameters.to_flat(), model.hyperparameters.to_flat())
    (tmp_path / "sae.json").write_text("{}")
    with pytest.raises(ValueError, match="not a saved ManifoldSAE"):
        ManifoldSAE.load(path)


def test_gates_against_closed_forms():
    logits = jnp.array([[0.3, -1.0, 2.0], [5.0, 5.0, -5.0]])
    theta = jnp.array([0.2, 0.2, 0.2])
    softmax = make_gate("softmax", temperature=0.5)
    a = np.asarray(softmax.activities(logits, theta))
    np.testing.assert_allclose(a.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(softmax.penalty(logits, theta, jnp.log(2.0))),
                               2.0 * -(a * np.log(a)).sum(1), rtol=1e-5)
    topk = make_gate("topk", k=2)
    chosen = np.asarray(topk.activities(logits[:1], theta))
    np.testing.assert_allclose(chosen, [[1 / (1 + np.exp(-0.3)), 0.0, 1 / (1 + np.exp(-2.0))]], rtol=1e-6)
    bb = make_gate("beta_bernoulli")
    for log_alpha in (-60.0, 0.0, 2.0, 60.0):
        log_pi, log_not = (np.asarray(v, np.float64) for v in bb.log_rates(jnp.asarray(log_alpha, jnp.float32), 3))
        rho = 1 / (1 + np.exp(-log_alpha))
        np.testing.assert_allclose(log_pi, np.log(rho) * np.arange(1, 4), rtol=1e-5, atol=1e-20)
        assert np.all(np.isfinite(log_not)) and np.all(log_not <= 0)
    assert bb.sparse_is_penalty_strength is False and make_gate("threshold").sparse_is_penalty_strength is True


def test_bad_input_is_refused():
    Z = np.random.default_rng(0).normal(size=(20, 4))
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="finite"):
        fit_sae(np.where(np.eye(20, 4) > 0, np.nan, Z), ["circle"], key=key)
    with pytest.raises(ValueError, match="at least as many rows as atoms"):
        fit_sae(Z[:1], ["circle", "circle"], key=key)
    with pytest.raises(ValueError, match="unknown"):
        fit_sae(Z, ["moebius"], key=key)
    with pytest.raises(ValueError, match="harmonics"):
        fit_sae(Z, [CircleAtom(0)], key=key)
    with pytest.raises(ValueError, match="K >= 1"):
        fit_sae(Z, [], key=key)
    with pytest.raises(ValueError, match="1 <= k <= K"):
        fit_sae(Z, ["circle", "circle"], make_gate("topk", k=3), key=key)
    with pytest.raises(ValueError, match="unknown gate"):
        fit_sae(Z, ["circle"], "relu", key=key)
    with pytest.raises(ValueError):  # hyperparameters for three atoms, two given
        fit_sae(Z, ["circle", "circle"], hyperparameters=SaeHyperparameters.create([1, 1, 1]), key=key)
    with pytest.raises(ValueError):  # ARD shaped for a 2-D atom
        fit_sae(Z, ["circle"], hyperparameters=SaeHyperparameters.create([2]), key=key)
    with pytest.raises(TypeError, match="PRNG key"):
        fit_sae(Z, ["circle"], key=0)
    with pytest.raises(ValueError, match="precision"):
        fit_sae(Z, ["circle"], key=key, precision="float16")


def test_wrap_keeps_coordinates_in_their_domains():
    atoms = (CircleAtom(1), IntervalAtom(2), LinearAtom())
    wrapped = np.asarray(wrap_coords(atoms, jnp.array([[1.25, 1.7, -9.0], [-0.25, -0.3, 4.0]])))
    np.testing.assert_allclose(wrapped, [[0.25, 1.0, -9.0], [0.75, 0.0, 4.0]], atol=1e-6)


def test_topk_support_is_exactly_k_even_with_ties():
    gate = make_gate("topk", k=1)
    a = np.asarray(gate.activities(jnp.array([[2.0, 2.0, -1.0], [0.0, 3.0, 3.0]]), jnp.zeros(3)))
    assert ((a > 0).sum(axis=1) == 1).all()
    np.testing.assert_allclose(a, [[1 / (1 + np.exp(-2.0)), 0, 0], [0, 1 / (1 + np.exp(-3.0)), 0]], rtol=1e-6)
    switched = gate.switched(jnp.array([[2.0, 2.0, -1.0]]), 2, jnp.array([True]))
    assert (np.asarray(gate.activities(switched, jnp.zeros(3))) > 0).tolist() == [[False, False, True]]


def test_align_charts_rotates_each_chart_to_its_ard_mode_without_moving_a_point():
    """Random circle and torus charts (binary gate, some rows off): every decoded point is unchanged,
    ℓ_pen does not rise, and the active rows' circular mean on each periodic axis sits at 0 (the von
    Mises mode), where ±0.05 shifts of the whole chart (by the exact shift) only raise ℓ_pen."""
    from superpose.sae import SaeHyperparameters, TorusAtom
    from superpose.sae.objective import align_charts

    atoms = (CircleAtom(2), TorusAtom((1, 2)))
    gate = make_gate("binary")
    rng = np.random.default_rng(0)
    n, p = 80, 5
    with float64_enabled():
        params = SaeParams(jnp.asarray(rng.normal(size=p)),
                           tuple(jnp.asarray(rng.normal(size=(a.num_basis, p))) for a in atoms),
                           jnp.zeros(2), jnp.asarray(np.where(rng.uniform(size=(n, 2)) < 0.7, 1.0, -1.0)),
                           jnp.asarray(0.3 + 0.2 * rng.uniform(size=(n, 3))))  # clumped away from the mode
        hyper = SaeHyperparameters.create([1, 2], log_ard=[[0.0], [0.0, 0.0]])
        Z = jnp.asarray(rng.normal(size=(n, p)))
        aligned = align_charts(atoms, gate, params)
        np.testing.assert_allclose(decode(atoms, gate, aligned), decode(atoms, gate, params), atol=1e-12)
        before = float(penalized_loss(atoms, gate, params, hyper, Z))
        after = float(penalized_loss(atoms, gate, aligned, hyper, Z))
        assert after < before - 1.0
        on = np.asarray(aligned.logits) > 0
        coords = np.asarray(aligned.coords)
        for column, k in ((0, 0), (1, 1), (2, 1)):
            angle = 2 * np.pi * coords[on[:, k], column]
            assert abs(np.arctan2(np.sin(angle).sum(), np.cos(angle).sum())) < 1e-9
        for c in (-0.05, 0.05):  # the chart shifted away from the mode again, points unchanged
            shift = jnp.asarray([c])
            moved = aligned._replace(
                coords=aligned.coords.at[:, 0].set(jnp.where(on[:, 0], (aligned.coords[:, 0] + c) % 1.0,
                                                             aligned.coords[:, 0])),
                decoders=(atoms[0].shift_matrix(-shift) @ aligned.decoders[0], aligned.decoders[1]))
            np.testing.assert_allclose(decode(atoms, gate, moved), decode(atoms, gate, params), atol=1e-12)
            assert float(penalized_loss(atoms, gate, moved, hyper, Z)) > after


def test_runs_of_equal_atoms_decode_and_search_as_atom_by_atom(monkeypatch):
    """Equal consecutive atoms are decoded and searched as one run (one compiled body per run);
    with every atom its own run (searched atom by atom), decode and the row search give the same numbers."""
    from superpose.sae import objective, solve as solve_module

    atoms = (CircleAtom(1), CircleAtom(1), CircleAtom(1), LinearAtom(), CircleAtom(1), CircleAtom(1))
    assert objective.atom_runs(atoms) == ((0, 3, 0), (3, 1, 3), (4, 2, 4))
    rng = np.random.default_rng(3)

    def decode_and_search(gate, params, hyper, Z):  # jitted afresh: the patched runs are read when traced
        return jax.jit(lambda p, h, z: (decode(atoms, gate, p), solve_module.row_search(atoms, gate, p, h, z, 12)))(
            params, hyper, Z)

    with float64_enabled():
        for gate in (make_gate("binary"),):
            params = _random_params(rng, atoms, 40, 5)
            hyper = SaeHyperparameters.create([a.dim for a in atoms], log_lambda_sparse=-2.0)
            Z = jnp.asarray(rng.normal(size=(40, 5)))
            runs = decode_and_search(gate, params, hyper, Z)
            with monkeypatch.context() as patch:
                singles = lambda atoms: tuple((k, 1, sum(a.dim for a in atoms[:k])) for k in range(len(atoms)))
                patch.setattr(objective, "atom_runs", singles)
                patch.setattr(solve_module, "atom_runs", singles)
                one_by_one = decode_and_search(gate, params, hyper, Z)
            np.testing.assert_allclose(runs[0], one_by_one[0], rtol=1e-12, atol=1e-12)
            np.testing.assert_array_equal(runs[1].logits, one_by_one[1].logits)
            np.testing.assert_allclose(runs[1].coords, one_by_one[1].coords, atol=1e-12)
            assert not np.array_equal(runs[1].logits, params.logits)  # the search switched some atoms
