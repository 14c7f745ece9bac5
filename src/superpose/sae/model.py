"""A fitted manifold SAE and the fit at given hyperparameters.

:func:`fit_sae` runs the inner solve (:mod:`superpose.sae.solve`) from several keyed starts
(:mod:`superpose.sae.init`) and keeps the lowest penalised loss. The result holds a
:class:`ManifoldSAE` (atoms, gate, hyperparameters, offset, decoders, thresholds) that encodes
new rows at fixed decoders, decodes, draws its atoms' curves and saves to ``.npz`` + JSON.
All numbers are computed in float64 unless ``precision="float32"`` is asked for.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from superpose._validation import finite_matrix, positive_int
from superpose.numerics.precision import float64_enabled
from superpose.runner import files
from superpose.sae.atoms import make_atom
from superpose.sae.criterion import laplace_criterion
from superpose.sae.gates import GATE_TYPES, Gate, make_gate
from superpose.sae.hyperparameters import SaeHyperparameters, seed_from_dispersion
from superpose.sae.init import dense_params, encoding_start, initial_params, switched_logits
from superpose.sae.objective import SaeParams, decode, wrap_coords
from superpose.sae.selection import (
    LOG_KAPPA_FLOOR,
    SelectionBudget,
    SelectionResult,
    merge_selections,
    select_hyperparameters,
)
from superpose.sae.solve import SolveReport, grid_points_per_axis, solve

PRECISIONS = ("float64", "float32")


def _context(precision: str):
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return float64_enabled() if precision == "float64" else contextlib.nullcontext()


def make_atoms(atoms: Sequence[Any] | Any) -> tuple:
    """Atoms from names or atom objects (``["circle", "circle"]``, ``[CircleAtom(3)]``)."""
    if isinstance(atoms, str) or not isinstance(atoms, Sequence):
        atoms = [atoms]
    if len(atoms) < 1:
        raise ValueError("a manifold SAE needs K >= 1 atoms, got none")
    return tuple(make_atom(atom) for atom in atoms)


class Encoding(NamedTuple):
    """Rows encoded by a manifold SAE (N rows, K atoms, D = Σ_k d_k coordinates)."""

    logits: np.ndarray  # (N, K)
    activities: np.ndarray  # (N, K): the gate's a_ik
    coords: np.ndarray  # (N, D); atom k's in columns ManifoldSAE.coord_columns(k)


@dataclasses.dataclass(frozen=True, eq=False)
class ManifoldSAE:
    """A fitted manifold SAE: ``Ẑ = b + Σ_k a_k Φ_k(t_k) B_k``."""

    atoms: tuple
    gate: Gate
    hyperparameters: SaeHyperparameters
    offset: np.ndarray  # (p,)
    decoders: tuple[np.ndarray, ...]  # (M_k, p) each
    thresholds: np.ndarray  # (K,)
    precision: str = "float64"

    @property
    def num_atoms(self) -> int:
        return len(self.atoms)

    @property
    def output_size(self) -> int:
        return int(self.offset.shape[0])

    def coord_columns(self, k: int) -> slice:
        """The columns of ``Encoding.coords`` that hold atom k's coordinates."""
        start = sum(atom.dim for atom in self.atoms[:k])
        return slice(start, start + self.atoms[k].dim)

    def _params(self, logits, coords) -> SaeParams:
        dtype = jnp.float64 if self.precision == "float64" else jnp.float32
        return SaeParams(jnp.asarray(self.offset, dtype), tuple(jnp.asarray(B, dtype) for B in self.decoders),
                         jnp.asarray(self.thresholds, dtype), jnp.asarray(logits, dtype), jnp.asarray(coords, dtype))

    def encode(self, Z_new: Any, *, max_iterations: int = 30, grid_points: int = 48) -> Encoding:
        """Solves each row's gates and coordinates at the fixed decoders (Z_new: (N, p))."""
        Z = finite_matrix(Z_new, "Z_new", self.output_size)
        with _context(self.precision):
            grids = [np.asarray(atom.grid(grid_points_per_axis(atom, grid_points))) for atom in self.atoms]
            curves = [self.atom_curve(k, grid) - self.offset for k, grid in enumerate(grids)]
            on, coords = encoding_start(self.atoms, self.gate, np.asarray(Z, np.float64) - self.offset, grids, curves)
            dtype = jnp.float64 if self.precision == "float64" else jnp.float32
            start = self._params(switched_logits(self.gate, on, dtype), coords)
            start = start._replace(coords=wrap_coords(self.atoms, start.coords))
            params, _ = solve(self.atoms, self.gate, start, self.hyperparameters, jnp.asarray(Z, start.offset.dtype),
                              max_iterations=max_iterations, grid_points=grid_points, update_decoders=False)
            return self._encoding(params)

    def _encoding(self, params: SaeParams) -> Encoding:
        activities = self.gate.activities(params.logits, params.thresholds)
        return Encoding(np.asarray(params.logits), np.asarray(activities), np.asarray(params.coords))

    def decode(self, encoding: Encoding) -> np.ndarray:
        """``Ẑ`` (N, p) from an encoding's logits and coordinates."""
        with _context(self.precision):
            params = self._params(encoding.logits, encoding.coords)
            return np.asarray(decode(self.atoms, self.gate, params))

    def reconstruct(self, Z: Any) -> np.ndarray:
        """``decode(encode(Z))``: (N, p)."""
        return self.decode(self.encode(Z))

    def atom_curve(self, k: int, grid: Any = 200, activity: float = 1.0) -> np.ndarray:
        """Points ``b + a·Φ_k(t) B_k`` (G, p) of atom k at activity ``a``, over ``grid`` (G, d) or n points."""
        if not (isinstance(k, (int, np.integer)) and 0 <= k < self.num_atoms):
            raise ValueError(f"k must be an atom index in [0, {self.num_atoms}), got {k!r}")
        atom = self.atoms[k]
        if isinstance(grid, (int, np.integer)):
            t = np.asarray(atom.grid(positive_int(grid, "grid")))
        else:
            t = np.asarray(grid, np.float64)
            if t.ndim == 1 and atom.dim == 1:
                t = t[:, None]
            if t.ndim != 2 or t.shape[1] != atom.dim or not np.all(np.isfinite(t)):
                raise ValueError(f"grid must be finite coordinates of shape (G, {atom.dim}), got shape {t.shape}")
        with _context(self.precision):
            activity = float(activity)
            if not np.isfinite(activity):
                raise ValueError(f"activity must be finite, got {activity}")
            return np.asarray(self.offset + activity * np.asarray(atom.evaluate(jnp.asarray(t))) @ self.decoders[k])

    # -- files ---------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Writes ``path`` (.npz: offset, decoders, thresholds) and ``path`` with .json (the rest)."""
        path = Path(path).with_suffix(".npz")
        arrays = {"offset": self.offset, "thresholds": self.thresholds,
                  **{f"decoder_{k}": B for k, B in enumerate(self.decoders)}}
        files.write_npz(path, arrays)
        spec = {"format": "superpose.sae.ManifoldSAE", "version": 1, "precision": self.precision,
                "atoms": [_constructor_fields(atom) | {"name": atom.name} for atom in self.atoms],
                "gate": _constructor_fields(self.gate) | {"name": self.gate.name},
                "hyperparameters": self.hyperparameters.to_json()}
        files.write_json(path.with_suffix(".json"), spec)
        return path

    @classmethod
    def load(cls, path: str | Path) -> ManifoldSAE:
        """Reads a model written by :meth:`save` (no pickle)."""
        path = Path(path).with_suffix(".npz")
        try:
            spec = json.loads(path.with_suffix(".json").read_text())
            arrays = files.read_npz(path)
        except (OSError, ValueError) as error:
            raise ValueError(f"cannot read a ManifoldSAE from {path} and its .json: {error}") from error
        if spec.get("format") != "superpose.sae.ManifoldSAE":
            raise ValueError(f"{path.with_suffix('.json')} is not a saved ManifoldSAE")
        atoms = tuple(make_atom(a.pop("name"), **a) for a in spec["atoms"])
        gate_spec = dict(spec["gate"])
        gate = make_gate(gate_spec.pop("name"), **gate_spec)
        decoders = tuple(arrays[f"decoder_{k}"] for k in range(len(atoms)))
        for atom, B in zip(atoms, decoders):
            if B.shape[0] != atom.num_basis:
                raise ValueError(f"decoder of shape {B.shape} does not fit atom {atom.name} ({atom.num_basis} basis functions)")
        return cls(atoms, gate, SaeHyperparameters.from_json(spec["hyperparameters"]), arrays["offset"],
                   decoders, arrays["thresholds"], spec.get("precision", "float64"))


def _constructor_fields(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.init}


class SaeFit(NamedTuple):
    """What :func:`fit_sae` returns."""

    model: ManifoldSAE
    encoding: Encoding  # the training rows' gates and coordinates
    report: SolveReport  # how the best start's inner solve ended
    restart_losses: np.ndarray  # the final penalised loss of every start
    hyperparameters: SaeHyperparameters
    selection: SelectionResult | None = None  # how the strengths were selected (None: they were given)


def fit_sae(
    Z: Any,
    atoms: Sequence[Any] | Any,
    gate: str | Gate = "threshold",
    hyperparameters: SaeHyperparameters | str | None = None,
    *,
    key: jax.Array,
    restarts: int = 4,
    dense_start: bool = False,
    budget: SelectionBudget | None = None,
    max_iterations: int = 100,
    tol: float = 1e-7,
    grid_points: int = 48,
    precision: str = "float64",
    progress: Callable[[int, int], None] | None = None,
) -> SaeFit:
    """Fits a manifold SAE to ``Z`` (N, p), at given hyperparameters or selecting them.

    Args:
        Z: data rows, (N, p), finite, N >= K.
        atoms: atom names or objects (:mod:`superpose.sae.atoms`), K >= 1.
        gate: a gate name or object (:mod:`superpose.sae.gates`). With ``"select"`` use
            ``"topk"``: the threshold gate's free per-row amplitude lets a circle fit a cone.
        hyperparameters: :class:`SaeHyperparameters` matching the atoms (default: every
            log-strength 0, per-atom ARD); or ``"select"``: start from :data:`SELECTION_START`
            (dimensionless) shifted by a PCA estimate of the noise variance
            (:func:`pca_dispersion`, :func:`seed_from_dispersion`), then run the outer search
            (:func:`superpose.sae.selection.select_hyperparameters`) on the Laplace criterion;
            at the selected point the keyed starts are solved again, and where one reaches a
            lower penalised loss the search resumes from it (once).
        key: PRNG key; the fit is deterministic given it.
        restarts: keyed K-subspaces starts (:func:`~superpose.sae.init.initial_params`: each
            row on one atom); the lowest penalised loss over all starts is kept.
        dense_start: one more start, :func:`~superpose.sae.init.dense_params` (every atom on
            every row, charts from successive principal components): for rows that are sums of
            manifolds in different subspaces. Off by default: on ``two_circles`` with the
            threshold gate it reaches a lower penalised loss than the planted circles do.
        budget: the outer search's :class:`~superpose.sae.selection.SelectionBudget`
            (evaluations, seconds), shared by both rounds; only with ``"select"``.
        max_iterations, tol, grid_points: the inner solve's budget, relative tolerance and
            per-axis grid of its row search.
        precision: ``"float64"`` (default) or ``"float32"``.
        progress: called as ``progress(done, total)`` after each start and each outer evaluation.
    """
    atoms = make_atoms(atoms)
    gate = make_gate(gate, num_atoms=len(atoms))
    data = finite_matrix(Z)
    if data.shape[0] < len(atoms):
        raise ValueError(f"need at least as many rows as atoms: N = {data.shape[0]} < K = {len(atoms)}")
    restarts = positive_int(restarts, "restarts")
    if not isinstance(key, jax.Array) or not (jnp.issubdtype(key.dtype, jax.dtypes.prng_key) or key.shape == (2,)):
        raise TypeError("key must be a JAX PRNG key, e.g. jax.random.key(0)")
    dims = [atom.dim for atom in atoms]
    select = isinstance(hyperparameters, str)
    if select and hyperparameters != "select":
        raise ValueError(f"hyperparameters must be SaeHyperparameters, None or 'select', got {hyperparameters!r}")
    if select:
        budget = SelectionBudget() if budget is None else budget
        if not isinstance(budget, SelectionBudget):
            raise TypeError(f"budget must be a SelectionBudget, got {type(budget).__name__}")
        ard = [[LOG_KAPPA_FLOOR if periodic else SELECTION_START["log_ard"] for periodic in atom.periodic]
               for atom in atoms]
        start = SaeHyperparameters.create(dims, log_lambda_sparse=gate.selection_start,
                                          log_lambda_smooth=SELECTION_START["log_lambda_smooth"], log_ard=ard)
        hyperparameters = seed_from_dispersion(start, pca_dispersion(data, atoms), gate)
    elif budget is not None:
        raise ValueError("budget applies only to hyperparameters='select'")
    if hyperparameters is None:
        hyperparameters = SaeHyperparameters.create(dims)
    if not isinstance(hyperparameters, SaeHyperparameters):
        raise TypeError(f"hyperparameters must be SaeHyperparameters, got {type(hyperparameters).__name__}")
    hyperparameters.check_atoms(dims)
    total = restarts + int(dense_start) + (budget.evaluations + restarts if select else 0)
    done = [0]

    def tick(*_):
        done[0] += 1
        if progress is not None:
            progress(min(done[0], total), total)

    with _context(precision):
        dtype = jnp.float64 if precision == "float64" else jnp.float32
        Zj = jnp.asarray(data, dtype)
        start_key, check_key = jax.random.split(key)
        solve_options = dict(max_iterations=max_iterations, tol=tol, grid_points=grid_points)
        params, report, losses = _best_start(atoms, gate, data, Zj, hyperparameters, start_key, restarts, dense_start,
                                             dtype, solve_options, tick)
        selection = None
        if select:
            params, report, hyperparameters, selection = _select(atoms, gate, data, Zj, params, hyperparameters,
                                                                 check_key, restarts, dtype, solve_options, budget, tick)
        fit = fit_from_params(atoms, gate, hyperparameters, params, report, losses, precision)
    if not report.converged:
        warnings.warn(f"fit_sae: the best start's inner solve did not converge ({report.status}); "
                      "raise max_iterations or check the hyperparameters", UserWarning, stacklevel=2)
    return fit._replace(selection=selection)


def _best_start(atoms, gate, data, Zj, hyperparameters, key, restarts, dense_start, dtype, solve_options, tick):
    """The inner solve from every keyed start (and the dense one): (params, report, losses) of the best."""
    best, losses = None, []
    total = restarts + int(dense_start)
    for r, sub in enumerate(jax.random.split(key, total)):
        dense = r == restarts  # the extra start, after the keyed ones
        start = dense_params(atoms, gate, data, dtype) if dense else initial_params(atoms, gate, data, sub, dtype)
        params, report = solve(atoms, gate, start, hyperparameters, Zj, **solve_options)
        losses.append(report.loss)
        if best is None or report.loss < best[1].loss:
            best = (params, report)
        tick()
    return (*best, losses)


def _select(atoms, gate, data, Zj, params, hyperparameters, key, restarts, dtype, solve_options, budget, tick):
    """The outer search, then the keyed starts again at the selected point; a start that scores a lower V
    there resumes the search (once). (A lower loss is not enough: at small λ_smooth, fresh starts find
    charts that wind twice or warp, with a lower loss and a higher V than the path's continuation.)"""
    began = time.perf_counter()
    selection = select_hyperparameters(atoms, gate, params, hyperparameters, Zj, budget=budget,
                                       inner_iterations=solve_options["max_iterations"], progress=tick)
    checked, checked_report, _ = _best_start(atoms, gate, data, Zj, selection.hyperparameters, key, restarts, False,
                                             dtype, solve_options, tick)
    checked_value = laplace_criterion(atoms, gate, checked, selection.hyperparameters, Zj, circular=True).value
    if checked_value < selection.criterion.value:
        left = SelectionBudget(max(1, budget.evaluations - len(selection.trace)),
                               max(1.0, budget.seconds - (time.perf_counter() - began)), budget.inner_tol)
        second = select_hyperparameters(atoms, gate, checked, selection.hyperparameters, Zj, budget=left,
                                        inner_iterations=solve_options["max_iterations"], progress=tick)
        selection = merge_selections(selection, second)
    return selection.params, selection.inner_report, selection.hyperparameters, selection


#: Dimensionless starting strengths of the outer search (log λ/φ, log α/φ; periodic ARD axes start
#: at the floor; λ_sparse starts at the gate's ``selection_start``). λ_smooth starts smooth and the
#: search walks it down, each inner solve warm from the last (a continuation): started rough, fresh
#: solves find charts that warp or wind twice round a circle with a V as low as the planted one's
#: (measured on single_circle(240, 4)).
SELECTION_START = {"log_lambda_smooth": -4.0, "log_ard": -2.0}


def pca_dispersion(Z: np.ndarray, atoms) -> float:
    """φ₀: the mean squared residual per entry after PCA with as many components as the charts need.

    A seed only (each periodic axis needs 2 components, each other axis 1, capped at p − 1); the
    outer search profiles φ out of the criterion.
    """
    n, p = Z.shape
    rank = min(sum(2 if periodic else 1 for atom in atoms for periodic in atom.periodic), p - 1, n - 1)
    centred = Z - Z.mean(axis=0)
    singular = np.linalg.svd(centred, compute_uv=False)
    residual = float(np.sum(singular[rank:] ** 2)) / (n * p)
    return residual if residual > 0 else max(float(np.mean(centred**2)) * 1e-6, 1e-300)


def fit_from_params(atoms, gate: Gate, hyperparameters: SaeHyperparameters, params: SaeParams,
                    report: SolveReport, restart_losses, precision: str = "float64") -> SaeFit:
    """A :class:`SaeFit` from solved parameters (call inside the precision's context)."""
    model = ManifoldSAE(atoms, gate, hyperparameters, np.asarray(params.offset),
                        tuple(np.asarray(B) for B in params.decoders), np.asarray(params.thresholds), precision)
    return SaeFit(model, model._encoding(params), report, np.asarray(restart_losses), hyperparameters)


__all__ = ["GATE_TYPES", "PRECISIONS", "SELECTION_START", "Encoding", "ManifoldSAE", "SaeFit", "fit_from_params", "fit_sae",
           "make_atoms", "pca_dispersion"]
