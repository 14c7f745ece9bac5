"""One cell of the single-circle sweep: a fit with its hyperparameters selected, and its scores.

``sweep_cell`` draws ``single_circle(n, p)`` (radius 2.086 in a random plane of R^p, noise row
RMS 0.352), fits one circle atom with the TopK gate (k = 1) and ``hyperparameters="select"``, and
scores the fit against the planted angle. The criterion is also evaluated at the collapsed chart
that an old release converged to: the inner optimum at log λ_smooth = 25 (its box edge) reached
from the fit, every other strength as selected.
"""

from __future__ import annotations

import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from superpose.numerics.precision import float64_enabled
from superpose.sae.atoms import CircleAtom
from superpose.sae.criterion import laplace_criterion
from superpose.sae.gates import make_gate
from superpose.sae.metrics import circular_r2, circular_variance
from superpose.sae.model import fit_sae
from superpose.sae.planted import single_circle
from superpose.sae.selection import SelectionBudget
from superpose.sae.solve import solve

#: log λ_smooth of the collapsed chart: the box edge an old release's search drove it to
COLLAPSE_LOG_SMOOTH = 25.0


def sweep_cell(n: int, p: int, key: jax.Array, *, harmonics: int = 3, restarts: int = 2,
               budget: SelectionBudget = SelectionBudget()) -> dict[str, np.ndarray]:
    """Fits and scores one (n, p) cell; every value a NumPy scalar or vector (for ``RunContext.cell``).

    Returns circular_r2 (fitted coordinate against the planted angle), circular_variance (of the
    fitted coordinates: near 0 for a collapsed chart), criterion (V at the fit), criterion_collapsed,
    flat (the selected log-strengths, ``SaeHyperparameters.to_flat`` layout), converged (1/0),
    evaluations, seconds (the whole fit) and dispersion (φ̂).
    """
    data_key, fit_key = jax.random.split(key)
    Z, truth = single_circle(data_key, n, p)
    Z = np.asarray(Z, np.float64)
    atoms, gate = (CircleAtom(harmonics),), make_gate("topk", k=1)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # an unconverged inner solve is reported, not raised
        fit = fit_sae(Z, atoms, gate, "select", key=fit_key, restarts=restarts, budget=budget)
    seconds = time.perf_counter() - start
    selection = fit.selection
    t = np.asarray(fit.encoding.coords[:, 0])
    with float64_enabled():
        params = fit.model._params(fit.encoding.logits, fit.encoding.coords)
        edge = fit.hyperparameters.from_flat(fit.hyperparameters.to_flat().at[1].set(COLLAPSE_LOG_SMOOTH))
        collapsed, _ = solve(atoms, gate, params, edge, jnp.asarray(Z))
        collapsed_value = laplace_criterion(atoms, gate, collapsed, edge, jnp.asarray(Z), circular=True).value
    return {"circular_r2": np.float64(circular_r2(np.asarray(truth.angles)[:, 0], t)),
            "circular_variance": np.float64(circular_variance(t)),
            "criterion": np.float64(selection.criterion.value), "criterion_collapsed": np.float64(collapsed_value),
            "flat": np.asarray(fit.hyperparameters.to_flat(), np.float64),
            "converged": np.float64(selection.converged), "evaluations": np.float64(len(selection.trace)),
            "seconds": np.float64(seconds), "dispersion": np.float64(selection.criterion.dispersion)}


__all__ = ["COLLAPSE_LOG_SMOOTH", "sweep_cell"]
