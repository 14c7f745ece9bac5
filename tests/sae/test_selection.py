"""The outer search: the selected point is a minimum of V (brute force around it), the posterior
covariance blocks equal a dense inverse, and the search's budget and statuses.

Shares ``_selected`` (single_circle(60, 4) fitted with "select", TopK gate) with test_criterion,
so the selection compiles once per session."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from superpose.numerics import float64_enabled
from superpose.sae import SelectionBudget, fit_sae, select_hyperparameters, single_circle
from superpose.sae import selection as selection_module
from superpose.sae.criterion import CriterionValue, covariance_blocks, laplace_criterion
from superpose.sae.metrics import circular_r2
from superpose.sae.solve import solve
from tests.sae.test_criterion import CIRCLE, _dense_hessian, _selected


def test_the_selected_point_is_a_minimum_of_the_criterion():
    """V at ρ̂ against V at ρ̂ ± 0.3 along every log-strength (each re-solved from the fit): none lower
    by more than the search's tolerance; and the search reports a converged status, its every
    evaluation, and the best of them."""
    gate, Z, truth, params, fit = _selected(60, 4)
    result = fit.selection
    assert result.converged and result.status.startswith("converged")
    values = [step.criterion for step in result.trace]
    assert result.criterion.value == pytest.approx(min(values), rel=1e-12)
    assert len(values) <= SelectionBudget().evaluations
    assert circular_r2(np.asarray(truth.angles)[:, 0], np.asarray(params.coords[:, 0])) > 0.95
    flat = np.asarray(fit.hyperparameters.to_flat())
    best = result.criterion.value
    with float64_enabled():
        for j in (0, 1):  # the TopK logit precision and λ_smooth (the periodic ARD is held, not selected)
            for delta in (-0.3, 0.3):
                moved = fit.hyperparameters.from_flat(jnp.asarray(flat).at[j].add(delta))
                solved, _ = solve(CIRCLE, gate, params, moved, Z)
                value = laplace_criterion(CIRCLE, gate, solved, moved, Z, circular=True).value
                assert value > best - 0.05, (j, delta, value, best)


def test_covariance_blocks_equal_the_dense_inverse():
    """The diagonal blocks of H⁻¹ from the arrow structure (the offset profiled) against inv of the
    dense jax.hessian of ℓ_pen over decoders, logits and coordinates."""
    gate, Z, _, params, fit = _selected(60, 4)
    with float64_enabled():
        H, _ = _dense_hessian(CIRCLE, gate, params, fit.hyperparameters, Z)
        dense = np.linalg.inv(H)
        ours = covariance_blocks(CIRCLE, gate, params, fit.hyperparameters, Z)
    n, p = Z.shape
    P = CIRCLE[0].num_basis * p
    np.testing.assert_allclose(np.asarray(ours.globals_)[p:, p:], dense[:P, :P], rtol=1e-7, atol=1e-12)
    assert np.all(np.asarray(ours.globals_)[:p] == 0)  # the offset is profiled: no covariance
    logits, coords = dense[P:P + n, P:P + n], dense[P + n:, P + n:]
    np.testing.assert_allclose(np.asarray(ours.rows)[:, 0, 0], np.diag(logits), rtol=1e-7)
    np.testing.assert_allclose(np.asarray(ours.rows)[:, 1, 1], np.diag(coords), rtol=1e-7)
    np.testing.assert_allclose(np.asarray(ours.rows)[:, 0, 1], np.diag(dense[P:P + n, P + n:]), rtol=1e-6,
                               atol=1e-12)


def test_covariance_given_the_gauges_equals_the_dense_conditional():
    """covariance_blocks(..., given_gauges=True) against the dense Gaussian conditional
    Σ − Σv(vᵀΣv)⁻¹vᵀΣ, with Σ = inv(jax.hessian) and v the chart's rotation by central differences
    of the exact shift (every coordinate + c, the decoder R(−c) B: the same decoded points)."""
    gate, Z, _, params, fit = _selected(60, 4)
    atom = CIRCLE[0]
    with float64_enabled():
        H, flat = _dense_hessian(CIRCLE, gate, params, fit.hyperparameters, Z)
        dense = np.linalg.inv(H)

        def shifted(c):
            c = jnp.asarray([c])
            B = atom.shift_matrix(-c) @ params.decoders[0]
            return np.concatenate([np.ravel(B), np.ravel(params.logits), np.ravel(params.coords + c)])

        v = (shifted(1e-5) - shifted(-1e-5)) / 2e-5
        x = dense @ v
        conditional = dense - np.outer(x, x) / (v @ x)
        ours = covariance_blocks(CIRCLE, gate, params, fit.hyperparameters, Z, given_gauges=True)
        plain = covariance_blocks(CIRCLE, gate, params, fit.hyperparameters, Z)
    n, p = Z.shape
    P = atom.num_basis * p
    np.testing.assert_allclose(np.asarray(ours.globals_)[p:, p:], conditional[:P, :P], rtol=1e-6,
                               atol=1e-9 * np.max(np.abs(conditional[:P, :P])))
    np.testing.assert_allclose(np.asarray(ours.rows)[:, 1, 1], np.diag(conditional[P + n:, P + n:]), rtol=1e-6)
    # the rotation carried most of the coordinates' variance: conditioning on it must matter
    assert np.mean(np.asarray(ours.rows)[:, 1, 1]) < 0.5 * np.mean(np.asarray(plain.rows)[:, 1, 1])


@pytest.mark.parametrize("centre, slope, curvature", [(3.0, 0.4, 2.0), (-1.0, -1.5, 0.5), (0.0, 0.0, 1.0)])
def test_parabola_step_finds_the_minimum_of_a_quadratic(centre, slope, curvature):
    """Exact for a quadratic (its minimum inside ±size, or the clipped point and its gain); None where
    V is not convex or not finite."""
    size = 0.5

    def V(x):
        return centre + slope * x + 0.5 * curvature * x**2

    step, gain = selection_module._parabola_step(V(0.0), V(size), V(-size), size)
    best = float(np.clip(-slope / curvature, -size, size))
    assert step == pytest.approx(best, abs=1e-12)
    assert gain == pytest.approx(V(0.0) - V(best), abs=1e-12)
    assert selection_module._parabola_step(0.0, -1.0, -1.0, size) == (None, 0.0)
    assert selection_module._parabola_step(0.0, math.inf, 1.0, size) == (None, 0.0)


def test_compass_moves_like_strengths_together_first():
    """The group moves (every selectable λ_smooth; every selectable flat ARD axis) come before the
    single ones, and held strengths (periodic ARD) are in none."""
    from superpose.sae import CircleAtom, IntervalAtom, SaeHyperparameters, make_gate

    atoms = (CircleAtom(1), CircleAtom(1), IntervalAtom(num_knots=3))
    hyper = SaeHyperparameters.create([1, 1, 1])
    moves = selection_module.compass_directions(atoms, make_gate("topk", k=1), hyper)
    # flat layout: sparse, λ_smooth × 3, ARD × 3 (two periodic, held; the interval's flat axis)
    np.testing.assert_array_equal(moves[0], [0, 1, 1, 1, 0, 0, 0])
    assert [int(np.flatnonzero(m)[0]) for m in moves[1:]] == [0, 1, 2, 3, 6]  # one flat ARD axis: no group
    assert all(np.count_nonzero(m) == 1 for m in moves[1:])


def test_budget_and_a_non_finite_criterion_end_the_search_with_a_status(monkeypatch):
    gate, Z, _, params, fit = _selected(60, 4)
    start = fit.hyperparameters.from_flat(fit.hyperparameters.to_flat().at[1].add(2.0))
    with float64_enabled():
        short = select_hyperparameters(CIRCLE, gate, params, start, Z, budget=SelectionBudget(2, 60.0))
        assert short.status == "budget reached: 2 evaluations" and not short.converged
        assert len(short.trace) == 2 and short.criterion.value == min(s.criterion for s in short.trace)
        quick = select_hyperparameters(CIRCLE, gate, params, start, Z, budget=SelectionBudget(40, 1e-9))
        assert quick.status.startswith("budget reached: 1e-09 s after 1 evaluations")

        def broken(*args, **kwargs):
            return CriterionValue(math.inf, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1, "hessian not positive definite: row 7",
                                  False)

        monkeypatch.setattr(selection_module, "laplace_criterion", broken)
        stopped = select_hyperparameters(CIRCLE, gate, params, start, Z)
    assert stopped.status == ("stopped: the criterion is not finite at the start "
                              "(hessian not positive definite: row 7)")
    assert not stopped.converged and len(stopped.trace) == 1


def test_fit_sae_select_validates_its_arguments():
    Z, _ = single_circle(jax.random.key(1), 20, 4)
    with pytest.raises(ValueError, match="'select'"):
        fit_sae(np.asarray(Z), CIRCLE, "topk", "chosen", key=jax.random.key(0))
    with pytest.raises(ValueError, match="budget applies only"):
        fit_sae(np.asarray(Z), CIRCLE, "topk", None, key=jax.random.key(0), budget=SelectionBudget())
    with pytest.raises(TypeError, match="SelectionBudget"):
        fit_sae(np.asarray(Z), CIRCLE, "topk", "select", key=jax.random.key(0), budget=(3, 4.0))
    with pytest.raises(ValueError, match="budget.evaluations"):
        select_hyperparameters(CIRCLE, None, None, None, None, budget=SelectionBudget(0, 1.0))


def test_a_resumed_search_reports_both_rounds():
    """merge_selections keeps the lower V, both traces (the second's seconds after the first's) and a status
    that counts the evaluations of both rounds."""

    def result(values, seconds, status):
        steps = [selection_module.SelectionStep(np.zeros(2), v, 1.0, "ok", 3, 0.5 * (i + 1)) for i, v in enumerate(values)]
        value = CriterionValue(min(values), *([None] * (len(CriterionValue._fields) - 1)))
        return selection_module.SelectionResult(None, None, value, None, steps, False, status, seconds)

    first = result([5.0, 4.0, 3.5], 2.0, "budget reached: 3 evaluations")
    second = result([3.0], 0.6, "budget reached: 1 evaluations")
    merged = selection_module.merge_selections(first, second)
    assert merged.criterion.value == 3.0 and merged.seconds == pytest.approx(2.6)
    assert [s.criterion for s in merged.trace] == [5.0, 4.0, 3.5, 3.0]
    assert merged.trace[-1].seconds == pytest.approx(2.5)
    assert merged.status == ("budget reached: 1 evaluations in the resumed search (3 evaluations, then a fresh start "
                             "scored a lower V at the selected point and the search went on for 1 more, 4 in all)")
    worse = selection_module.merge_selections(first, result([3.9], 0.6, "converged"))
    assert worse.criterion.value == 3.5 and len(worse.trace) == 4
