"""Registered experiments of superpose.sae.

- ``sae-toy``: linear SAEs on the hidden activations of toy models whose feature directions are
  known; feature recovery (MMCS) and feature absorption under hierarchy.
- ``sae-circles``: a manifold SAE with two circle atoms on two planted circles, beside PCA and a
  linear TopK SAE.
- ``sae-sweep``: one planted circle over a grid of rows × dimensions, hyperparameters selected by
  the Laplace criterion; circular R², the selected strengths, and the criterion against a collapse.
- ``sae-superposed``: more circles than the space holds linearly (8 in R^12), a manifold SAE with
  selected strengths against PCA and a linear TopK SAE.
- ``sae-grokking``: circle atoms on the token embedding of a network that grokked modular addition,
  matched to the key frequencies of its Fourier spectrum (not in the gallery yet).

Their figures are drawn in :mod:`superpose.sae.figures`.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from superpose.runner import ExperimentConfig, RunContext, experiment, param
from superpose.sae.absorption import fit_linear_sae as _fit_sae
from superpose.sae.absorption import toy_rows as _toy_rows
from superpose.sae.absorption import toy_structure as _toy_structure
from superpose.sae.absorption import toy_note
from superpose.sae.absorption import train_toy as _train_toy
from superpose.sae import figures
from superpose.sae.figures import TOY_SETTINGS, nan_mean as _mean
from superpose.sae.grokking import grokking_fit_metrics, grokking_note
from superpose.sae.linear import SAE_KINDS, LinearSaeConfig, train_linear_sae


# -- sae-toy ---------------------------------------------------------------------------------------
REPRESENTED_NORM = 0.5  # a toy feature with ‖W_i‖ below this is not represented, so not a target


@dataclasses.dataclass(frozen=True)
class SaeToyConfig(ExperimentConfig):
    """Linear SAEs on toy-model hidden activations: recovery of known features, and absorption.

    Features: ``parents`` roots each with ``children`` children (a child fires only with its
    parent), and ``independent`` further roots. The control setting has the same marginal densities
    with every feature independent.
    """

    parents: int = param(4, "parent features (each with its children)", low=1, high=64)
    children: int = param(2, "children per parent", low=1, high=16)
    independent: int = param(8, "further independent features", low=0, high=256)
    hidden: int = param(10, "hidden units m of the toy model", low=2, high=512)
    parent_density: float = param(0.15, "p(parent active)", low=1e-4, high=1.0)
    child_density: float = param(0.5, "p(child active | parent active)", low=1e-4, high=1.0)
    independent_density: float = param(0.05, "p(active) of each independent feature", low=1e-4, high=1.0)
    toy_steps: int = param(4000, "toy-model training steps (AdamW, cosine schedule)", low=10)
    toy_learning_rate: float = param(1e-2, "toy-model learning rate", low=1e-6, high=1.0)
    rows: int = param(16384, "rows of hidden activations the SAEs train on", low=256)
    kinds: tuple[str, ...] = param(("topk", "relu"), "SAE kinds", choices=SAE_KINDS)
    latents_per_feature: float = param(1.0, "SAE latents per toy feature", low=1.0, high=16.0)
    k: int = param(2, "active latents of a TopK SAE", low=1)
    l1: float = param(0.1, "L1 coefficient of a ReLU SAE (data in units of its RMS norm)", low=0.0)
    l0: float = param(0.03, "L0 coefficient of a JumpReLU SAE", low=0.0)
    sae_steps: int = param(4000, "SAE training steps (Adam)", low=10)
    sae_learning_rate: float = param(3e-3, "SAE learning rate", low=1e-6, high=1.0)
    sae_batch: int = param(256, "SAE minibatch rows", low=1)
    sae_seeds: int = param(3, "SAEs trained per setting and kind (different keys)", low=1, high=32)

    @property
    def features(self) -> int:
        return self.parents * (1 + self.children) + self.independent

    @property
    def latents(self) -> int:
        return int(round(self.latents_per_feature * self.features))

    def check(self) -> None:
        if self.hidden >= self.features:
            raise ValueError(f"hidden (m = {self.hidden}) must be smaller than the number of features "
                             f"(n = parents·(1 + children) + independent = {self.features}): "
                             "nothing would be superposed")
        if "topk" in self.kinds and self.k > self.latents:
            raise ValueError(f"k = {self.k} must be at most the number of SAE latents ({self.latents})")


@experiment("sae-toy", SaeToyConfig, quick={"toy_steps": 1500, "rows": 8192, "sae_steps": 1500, "sae_seeds": 1})
def sae_toy(config: SaeToyConfig, run: RunContext) -> None:
    """Linear SAEs on toy-model activations: MMCS against the true features, and absorption under hierarchy."""
    _, _, _, pairs, labels = _toy_structure(config)
    toys, data, fits = {}, {}, {}
    for index, setting in enumerate(TOY_SETTINGS):
        key = jax.random.fold_in(run.key, index)
        toys[setting] = run.cell(f"toy-{setting}", lambda: _train_toy(config, setting, jax.random.fold_in(key, 0)))
        data[setting] = _toy_rows(config, setting, toys[setting]["W"], jax.random.fold_in(key, 1))
    names = [(setting, kind, seed) for setting in TOY_SETTINGS for kind in config.kinds
             for seed in range(config.sae_seeds)]

    def fit(name: str) -> dict[str, np.ndarray]:
        setting, kind, seed = name.split("-")
        toy, (x, h) = toys[setting], data[setting]
        directions = (toy["W"] / np.maximum(toy["norms"], 1e-12)).T  # (n, m) unit rows
        key = jax.random.fold_in(jax.random.fold_in(run.key, 100 + SAE_KINDS.index(kind)), int(seed))
        return _fit_sae(config, kind, x, h, directions, toy["norms"] > REPRESENTED_NORM, pairs, key)

    cells = run.cells([f"{s}-{k}-{i}" for s, k, i in names], fit, description="SAEs")
    for (setting, kind, seed), cell in zip(names, cells.values()):
        fits.setdefault(setting, {}).setdefault(kind, []).append(cell)

    def summary(field: str):
        return {s: {k: _mean([_mean(c[field]) for c in fits[s][k]]) for k in config.kinds} for s in TOY_SETTINGS}

    true_cos = {s: [float(_unit(toys[s]["W"][:, p]) @ _unit(toys[s]["W"][:, c])) for p, c in pairs]
                for s in TOY_SETTINGS}
    metrics = {
        "mmcs": summary("mmcs"),
        "absorption_fraction": summary("absorption"),
        "parent_silent_when_both_active": summary("parent_silent_when_both"),
        "child_latent_parent_cosine": summary("child_latent_parent_cosine"),
        "fvu": summary("fvu"), "l0": summary("l0"), "dead_latents": summary("dead"),
        "true_parent_child_cosine": {s: _mean(v) for s, v in true_cos.items()},
        "represented_features": {s: int(np.sum(toys[s]["norms"] > REPRESENTED_NORM)) for s in TOY_SETTINGS},
        "toy_final_loss": {s: float(toys[s]["final_loss"]) for s in TOY_SETTINGS},
        "features": config.features, "latents": config.latents,
        "per_pair": {s: {k: {f"{labels[parent]}>{labels[child]}": {
            "absorption_fraction": _mean([cell["absorption"][i] for cell in fits[s][k]]),
            "child_latent_parent_cosine": _mean([cell["child_latent_parent_cosine"][i] for cell in fits[s][k]])}
            for i, (parent, child) in enumerate(pairs)} for k in config.kinds} for s in TOY_SETTINGS},
    }
    run.log_metrics(metrics)
    figures.toy_figures(config, run, fits, pairs, labels, metrics)
    toy_note(config, run, metrics, REPRESENTED_NORM)


def _unit(v):
    return v / max(float(np.linalg.norm(v)), 1e-12)


# -- sae-circles -----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SaeCirclesConfig(ExperimentConfig):
    """A manifold SAE with K = 2 circle atoms on two planted circles, against linear baselines.

    The data: ``two_circles`` (radii 1.0 and 1.1 in orthogonal random planes of R^p; 30% of rows
    only A, 30% only B, 40% both; noise row RMS 4% of the signal's). By default every strength is
    selected by the Laplace criterion with the binary gate (each atom on or off at full amplitude,
    any number on per row); ``select=false`` fits at the fixed ``log_*`` values instead.
    """

    rows: int = param(600, "training rows N (a second, held-out set of the same size is drawn too)", low=8)
    dimensions: int = param(24, "ambient dimension p", low=4, high=4096)
    harmonics: int = param(3, "Fourier harmonics H per circle atom (M = 2H + 1 basis functions)", low=1, high=16)
    gate: str = param("binary", "the gate", choices=("binary", "threshold", "softmax", "topk", "beta_bernoulli"))
    select: bool = param(True, "select every strength by the Laplace criterion (else the log_* keys are used)")
    evaluations: int = param(100, "criterion evaluations allowed to the outer search", low=1, high=10_000)
    seconds: float = param(120.0, "wall-time budget of the outer search (s)", low=1.0)
    topk: int = param(2, "active atoms per row of the topk gate (1 <= k <= 2)", low=1, high=2)
    log_lambda_sparse: float = param(-3.0, "log λ_sparse (select=false): the gate's strength, or the "
                                                      "beta_bernoulli gate's log α", low=-30, high=30)
    log_lambda_smooth: float = param(-4.0, "log λ_smooth of both atoms (select=false)", low=-30, high=30)
    log_ard: float = param(-6.0, "log α of every ARD axis, a von Mises concentration (select=false)", low=-30,
                           high=30)
    restarts: int = param(3, "keyed starts of the inner solve (the lowest penalised loss is kept)", low=1, high=64)
    linear_k: int = param(4, "active latents of the TopK linear SAE", low=1)
    linear_steps: int = param(3000, "training steps of the linear SAE", low=10)


def _linear_baselines(Z, Z_test, ranks, latents: int, k: int, steps: int, key) -> dict[str, list[float]]:
    """Explained variance [in sample, held out] of PCA at each rank and of a TopK SAE with ``latents``."""
    from sklearn.decomposition import PCA

    from superpose.sae.metrics import explained_variance

    baselines = {}
    for rank in ranks:
        pca = PCA(n_components=rank).fit(Z)
        baselines[f"pca_rank_{rank}"] = [explained_variance(A, pca.inverse_transform(pca.transform(A)))
                                         for A in (Z, Z_test)]
    linear = train_linear_sae(Z, LinearSaeConfig(kind="topk", num_latents=latents, k=min(k, latents), steps=steps), key)
    baselines["linear_topk"] = [explained_variance(A, np.asarray(linear.sae.reconstruct(jnp.asarray(A))))
                                for A in (Z, Z_test)]
    return baselines


@experiment("sae-circles", SaeCirclesConfig, quick={"restarts": 2, "linear_steps": 1000, "harmonics": 1, "evaluations": 25})
def sae_circles(config: SaeCirclesConfig, run: RunContext) -> None:
    """Two planted circles: a manifold SAE with two circle atoms against a linear SAE and PCA."""
    import time

    from superpose.sae.atoms import CircleAtom
    from superpose.sae.gates import make_gate
    from superpose.sae.hyperparameters import SaeHyperparameters
    from superpose.sae.metrics import explained_variance
    from superpose.sae.model import fit_sae
    from superpose.sae.metrics import circle_recovery
    from superpose.sae.planted import on_training_planes, two_circles
    from superpose.sae.selection import SelectionBudget

    data_key, test_key, fit_key, linear_key = jax.random.split(run.key, 4)
    Z, truth = two_circles(data_key, config.rows, config.dimensions)
    Z = np.asarray(Z)
    # the held-out rows: a second draw's angles, supports and noise, moved onto the training planes
    Z_test = np.asarray(on_training_planes(truth, *two_circles(test_key, config.rows, config.dimensions)))
    atoms = (CircleAtom(config.harmonics), CircleAtom(config.harmonics))
    hyper = SaeHyperparameters.create([1, 1], log_lambda_sparse=config.log_lambda_sparse,
                                      log_lambda_smooth=config.log_lambda_smooth, log_ard=config.log_ard)
    start = time.perf_counter()
    gate = make_gate("topk", k=config.topk) if config.gate == "topk" else make_gate(config.gate)
    if config.select:
        fit = fit_sae(Z, atoms, gate, "select", key=fit_key, restarts=config.restarts,
                      budget=SelectionBudget(config.evaluations, config.seconds))
    else:
        fit = fit_sae(Z, atoms, gate, hyper, key=fit_key, restarts=config.restarts)
    seconds = time.perf_counter() - start
    model = fit.model
    model.save(run.out / "model")
    in_sample = explained_variance(Z, model.decode(fit.encoding))
    held_out = explained_variance(Z_test, model.reconstruct(Z_test))
    per_circle = circle_recovery(model, fit.encoding, truth)

    latents = sum(atom.num_basis for atom in atoms)
    baselines = _linear_baselines(Z, Z_test, (2, 4), latents, config.linear_k, config.linear_steps, linear_key)
    metrics = {
        "reconstruction_r2": in_sample, "heldout_r2": held_out,
        "circular_r2": per_circle["circular_r2"], "plane_overlap": per_circle["plane_overlap"],
        "activity_f1": per_circle["activity_f1"], "atom_of_circle": per_circle["atom_of_circle"],
        "baselines_r2": {name: {"in_sample": v[0], "held_out": v[1]} for name, v in baselines.items()},
        "linear_latents": latents, "seconds": seconds, "penalized_loss": fit.report.loss,
        "selected": np.asarray(fit.hyperparameters.to_flat()).tolist(),
        "selection_status": fit.selection.status if fit.selection is not None else "not selected (fixed strengths)",
        "selection_evaluations": len(fit.selection.trace) if fit.selection is not None else 0,
        "restart_losses": fit.restart_losses, "converged": fit.report.converged,
        "iterations": fit.report.iterations, "gradient_norm": fit.report.gradient_norm,
    }
    run.log_metrics(metrics)
    figures.circle_figures(run, model, fit.encoding, Z, truth, per_circle, metrics)
    worst = min(per_circle["circular_r2"])
    run.note(
        f"The manifold SAE explains {in_sample:.3f} of the variance in sample and {held_out:.3f} held out, "
        f"with {2 * atoms[0].num_basis} decoder rows; PCA of rank 2 explains {baselines['pca_rank_2'][1]:.3f} and of "
        f"rank 4 {baselines['pca_rank_4'][1]:.3f} held out, the TopK SAE with {latents} latents "
        f"{baselines['linear_topk'][1]:.3f}. Each planted circle was matched to an atom whose curve spans its plane "
        f"with overlap ≥ {min(per_circle['plane_overlap']):.3f}, and whose coordinate recovers the planted angle "
        f"with circular R² ≥ {worst:.3f} (1 = the same angle up to rotation and reflection). The inner solve "
        f"{'converged' if fit.report.converged else 'did not converge'} after {fit.report.iterations} iterations "
        f"(projected gradient norm {fit.report.gradient_norm:.2g}) in {seconds:.1f} s over {config.restarts} starts"
        + (f"; the strengths were selected by the Laplace criterion in {len(fit.selection.trace)} evaluations "
           f"({fit.selection.status.split(' (')[0]})." if fit.selection is not None else " at fixed strengths.")
    )


# -- sae-sweep -------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SaeSweepConfig(ExperimentConfig):
    """One planted circle over rows × dimensions, every strength selected (:mod:`superpose.sae.sweep`)."""

    rows: tuple[int, ...] = param((60, 90, 120, 180, 240), "row counts n", low=8)
    dimensions: tuple[int, ...] = param((4, 6, 8, 10, 12), "ambient dimensions p", low=2, high=4096)
    harmonics: int = param(3, "Fourier harmonics H of the circle atom (M = 2H + 1)", low=1, high=16)
    restarts: int = param(2, "keyed starts of the inner solve", low=1, high=16)
    evaluations: int = param(100, "criterion evaluations allowed to each outer search", low=1, high=10_000)
    seconds: float = param(60.0, "wall-time budget of each outer search (s)", low=1.0)


@experiment("sae-sweep", SaeSweepConfig, quick={"rows": (120,), "dimensions": (4, 12)})
def sae_sweep(config: SaeSweepConfig, run: RunContext) -> None:
    """One planted circle over n × p with selected strengths: circular R², selected λ's, no collapse."""
    from superpose.sae.selection import SelectionBudget
    from superpose.sae.sweep import sweep_cell

    names = [f"n={n}+p={p}" for n in config.rows for p in config.dimensions]
    keys = {name: jax.random.fold_in(run.key, i) for i, name in enumerate(names)}
    budget = SelectionBudget(config.evaluations, config.seconds)

    def compute(name: str) -> dict[str, np.ndarray]:
        n, p = (int(part.split("=")[1]) for part in name.split("+"))
        return sweep_cell(n, p, keys[name], harmonics=config.harmonics, restarts=config.restarts, budget=budget)

    cells = run.cells(names, compute, description="sweep cells")
    shape = (len(config.rows), len(config.dimensions))

    def grid(field: str, index: int | None = None) -> np.ndarray:
        values = [cells[name][field] if index is None else cells[name][field][index] for name in names]
        return np.asarray(values, np.float64).reshape(shape)

    r2, variance, margin = grid("circular_r2"), grid("circular_variance"), grid("criterion") - grid("criterion_collapsed")
    metrics = {
        "min_circular_r2": float(r2.min()), "collapsed_cells": int(np.sum(variance < 0.1)),
        "criterion_prefers_fit_cells": int(np.sum(margin < 0)), "cells": len(names),
        "max_seconds": float(grid("seconds").max()), "unconverged_cells": int(np.sum(grid("converged") < 0.5)),
        "circular_r2": {name: float(cells[name]["circular_r2"]) for name in names},
        "selected": {name: cells[name]["flat"].tolist() for name in names},
        "seconds": {name: float(cells[name]["seconds"]) for name in names},
        "evaluations": {name: int(cells[name]["evaluations"]) for name in names},
    }
    run.log_metrics(metrics)
    figures.sweep_figure(run, config.rows, config.dimensions, [
        ("circular R² (fit vs planted angle)", r2, "viridis", (0.0, 1.0)),
        ("circular variance of the coordinates", variance, "viridis", (0.0, 1.0)),
        ("selected log λ_smooth", grid("flat", 1), "magma", None),
        ("selected log λ_sparse (TopK)", grid("flat", 0), "magma", None),
        ("V(fit) − V(collapsed chart), nats", margin, "cividis", None)])
    run.note(
        f"Over {len(names)} cells (n × p, one planted circle each, every strength selected by the Laplace criterion) "
        f"the worst circular R² is {metrics['min_circular_r2']:.3f}; {metrics['collapsed_cells']} cells collapsed "
        f"(circular variance < 0.1), and the criterion scored the fit below the collapsed chart in "
        f"{metrics['criterion_prefers_fit_cells']} of {len(names)}. {metrics['unconverged_cells']} outer searches "
        f"ended on their budget; the slowest cell took {metrics['max_seconds']:.1f} s (its first fit of a shape "
        "includes the compilation)."
    )


# -- sae-superposed --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SaeSuperposedConfig(ExperimentConfig):
    """More circles than the space holds linearly: C circles in R^p with 2C > p, 1 or 2 per row.

    The data: ``superposed_circles`` (random, non-orthogonal planes; half the rows use one circle,
    half two; noise row RMS 4% of the signal's). A manifold SAE with K = C circle atoms and the
    binary gate, every strength selected by the Laplace criterion, against PCA and a linear TopK
    SAE with as many decoder rows as the manifold SAE has (C·(2H + 1)).
    """

    rows: int = param(4000, "training rows N (a held-out set of the same size is drawn too)", low=16)
    dimensions: int = param(12, "ambient dimension p", low=4, high=4096)
    circles: int = param(8, "planted circles C (and circle atoms K); 2C > p", low=2, high=64)
    noise: float = param(0.04, "noise row RMS as a fraction of the signal's", low=0.0, high=1.0)
    harmonics: int = param(1, "Fourier harmonics H per circle atom (M = 2H + 1 basis functions)", low=1, high=16)
    restarts: int = param(1, "keyed starts of the inner solve", low=1, high=64)
    evaluations: int = param(60, "criterion evaluations allowed to the outer search", low=1, high=10_000)
    seconds: float = param(600.0, "wall-time budget of the outer search (s)", low=1.0)
    inner_tol: float = param(1e-7, "relative change at which each evaluation's inner solve stops", low=1e-12,
                             high=1e-3)
    pca_rank: int = param(4, "rank of the PCA baseline (4: the numbers a row of two circles needs)", low=1)
    linear_k: int = param(4, "active latents of the TopK linear SAE (two circles need four)", low=1)
    linear_steps: int = param(3000, "training steps of the linear SAE", low=10)

    def check(self) -> None:
        if not 2 * self.circles > self.dimensions:
            raise ValueError(f"circles (C = {self.circles}) must exceed dimensions/2 = {self.dimensions / 2:g}: "
                             "with fewer, every plane could be orthogonal and nothing would be superposed")


@experiment("sae-superposed", SaeSuperposedConfig,
            quick={"rows": 2000, "evaluations": 15, "seconds": 20.0, "linear_steps": 1000})
def sae_superposed(config: SaeSuperposedConfig, run: RunContext) -> None:
    """C circles superposed in R^p: a manifold SAE with selected strengths against PCA and a TopK SAE."""
    import time

    from superpose.sae.atoms import CircleAtom
    from superpose.sae.metrics import circle_recovery, explained_variance
    from superpose.sae.model import fit_sae
    from superpose.sae.planted import on_training_planes, superposed_circles
    from superpose.sae.selection import SelectionBudget

    data_key, test_key, fit_key, linear_key = jax.random.split(run.key, 4)
    draw = dict(n=config.rows, p=config.dimensions, circles=config.circles, noise=config.noise)
    Z, truth = superposed_circles(data_key, **draw)
    Z = np.asarray(Z)
    Z_test = np.asarray(on_training_planes(truth, *superposed_circles(test_key, **draw)))
    atoms = tuple(CircleAtom(config.harmonics) for _ in range(config.circles))
    start = time.perf_counter()
    with run.counter("fit: starts + criterion evaluations") as tick:
        fit = fit_sae(Z, atoms, "binary", "select", key=fit_key, restarts=config.restarts,
                      budget=SelectionBudget(config.evaluations, config.seconds, config.inner_tol), progress=tick)
    seconds = time.perf_counter() - start
    model = fit.model
    model.save(run.out / "model")
    in_sample, held_out = explained_variance(Z, model.decode(fit.encoding)), explained_variance(Z_test, model.reconstruct(Z_test))
    per_circle = circle_recovery(model, fit.encoding, truth)

    latents = sum(atom.num_basis for atom in atoms)
    ranks = sorted({min(config.pca_rank, config.dimensions), config.dimensions})
    baselines = _linear_baselines(Z, Z_test, ranks, latents, config.linear_k, config.linear_steps, linear_key)
    selection = fit.selection
    metrics = {
        "min_circular_r2": min(per_circle["circular_r2"]), "min_plane_overlap": min(per_circle["plane_overlap"]),
        "heldout_ev": held_out, "heldout_ev_pca": baselines[f"pca_rank_{ranks[0]}"][1],
        "heldout_ev_pca_full_rank": baselines[f"pca_rank_{config.dimensions}"][1],
        "heldout_ev_linear": baselines["linear_topk"][1], "reconstruction_r2": in_sample, "heldout_r2": held_out,
        "seconds": seconds, "circular_r2": per_circle["circular_r2"], "plane_overlap": per_circle["plane_overlap"],
        "activity_f1": per_circle["activity_f1"], "atom_of_circle": per_circle["atom_of_circle"],
        "baselines_r2": {name: {"in_sample": v[0], "held_out": v[1]} for name, v in baselines.items()},
        "linear_latents": latents, "selected": np.asarray(fit.hyperparameters.to_flat()).tolist(),
        "selection_status": selection.status, "selection_evaluations": len(selection.trace),
        "converged": fit.report.converged, "iterations": fit.report.iterations,
    }
    run.log_metrics(metrics)
    figures.circle_figures(run, model, fit.encoding, Z, truth, per_circle, metrics)
    recovered = ("recovers every planted circle" if min(metrics["min_plane_overlap"], metrics["min_circular_r2"]) >= 0.9
                 else "does NOT recover every planted circle (a circle counts as recovered at overlap and R² ≥ 0.9)")
    run.note(
        f"{config.circles} circles in R^{config.dimensions} (their planes need {2 * config.circles} dimensions), "
        f"{config.rows} rows: the manifold SAE with {config.circles} circle atoms, strengths selected in "
        f"{len(selection.trace)} criterion evaluations ({selection.status.split(' (')[0]}), "
        f"{recovered} (worst plane overlap {metrics['min_plane_overlap']:.3f}, worst circular R² "
        f"{metrics['min_circular_r2']:.3f}), and explains {held_out:.4f} of the held-out variance; PCA of rank "
        f"{ranks[0]} explains {metrics['heldout_ev_pca']:.4f}, the TopK SAE with {latents} latents (k = "
        f"{config.linear_k}) {metrics['heldout_ev_linear']:.4f}. PCA of full rank {config.dimensions} is the identity "
        f"in R^{config.dimensions} and explains {metrics['heldout_ev_pca_full_rank']:.4f} by construction. "
        f"The fit took {seconds:.0f} s."
    )


# -- sae-grokking ----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SaeGrokkingConfig(ExperimentConfig):
    """Circle atoms on the token embedding of a network that grokked (a + b) mod P.

    The network (superpose.sae.grokking) is trained once and cached in the run directory. The
    embedding's key frequencies are read from its Fourier spectrum; a manifold SAE with one circle
    atom per key frequency is fitted to the P embedding rows (centred, unit RMS row norm), its
    strengths selected by the Laplace criterion (or held at the fixed values below), and each
    circle is matched to the frequency its coordinate follows.
    """

    modulus: int = param(113, "P: the network learns (a + b) mod P on tokens 0..P−1", low=5, high=113)
    embed_dim: int = param(32, "embedding width d", low=2, high=512)
    hidden: int = param(64, "hidden ReLU units", low=2, high=2048)
    train_fraction: float = param(0.3, "fraction of the P² pairs trained on (the rest is the test set)",
                                  low=0.05, high=0.95)
    train_steps: int = param(8000, "full-batch AdamW steps", low=1)
    learning_rate: float = param(3e-3, "AdamW learning rate", low=1e-6, high=1.0)
    weight_decay: float = param(1.0, "AdamW decoupled weight decay", low=0.0, high=100.0)
    circles: int = param(0, "circle atoms K; 0: the number of key frequencies (the largest drop in the sorted "
                            "Fourier power among the strongest max_circles + 1)", low=0, high=16)
    max_circles: int = param(8, "the most key frequencies counted when circles = 0", low=1, high=16)
    harmonics: int = param(1, "Fourier harmonics H per circle atom (M = 2H + 1)", low=1, high=8)
    gate: str = param("binary", "the gate (every token uses every key frequency: a gate whose atoms can all be "
                      "on at full amplitude fits)", choices=("binary", "beta_bernoulli", "threshold", "topk", "softmax"))
    hyperparameters: str = param("select", "'select': every strength chosen by the Laplace criterion; 'fixed': "
                                 "the log-strengths below", choices=("select", "fixed"))
    evaluations: int = param(40, "criterion evaluations allowed to the outer search", low=1, high=10_000)
    seconds: float = param(120.0, "wall-time budget of the outer search (s)", low=1.0)
    log_lambda_sparse: float = param(8.0, "fixed only: log α of the beta_bernoulli gate (π_k ≈ 1), or another "
                                     "gate's log strength (unused by topk)", low=-30, high=30)
    log_lambda_smooth: float = param(-8.0, "fixed only: log λ_smooth of every atom", low=-30, high=30)
    log_ard: float = param(-6.0, "fixed only: log α of every circle's von Mises ARD prior", low=-30, high=30)
    restarts: int = param(4, "keyed starts of fit_sae (the lowest penalised loss is kept)", low=1, high=32)
    max_iterations: int = param(100, "inner-solve iteration budget of every fit", low=1, high=10_000)
    linear_k: int = param(0, "active latents of the TopK linear SAE; 0: 2K (two per circle)", low=0)
    linear_steps: int = param(4000, "training steps of the linear SAE", low=10)

    def check(self) -> None:
        if max(self.circles, 1) > (self.modulus // 2) or 2 * max(self.circles, 1) > self.embed_dim:
            raise ValueError(f"circles = {self.circles} needs K <= P//2 = {self.modulus // 2} frequencies and "
                             f"2K <= embed_dim = {self.embed_dim} dimensions")
        if self.hyperparameters == "select" and self.gate in ("softmax", "beta_bernoulli"):
            raise ValueError(f"gate = {self.gate!r} with hyperparameters = 'select': the search holds this gate's "
                             "sparse coordinate (no strength to select), and with the Beta–Bernoulli gate the "
                             "criterion was not finite at the start on this data; use binary, threshold or topk, "
                             "or hyperparameters = 'fixed'")


def _grokking_network(config: SaeGrokkingConfig, run: RunContext):
    """The trained network (cached as the run's ``cells/network.npz``) and the seconds its training took."""
    import time

    from superpose.sae.grokking import grokking_arrays, grokking_from_arrays, train_modular_addition

    def train() -> dict[str, np.ndarray]:
        start = time.perf_counter()
        result = train_modular_addition(jax.random.fold_in(run.key, 0), config.modulus, embed_dim=config.embed_dim,
                                        hidden=config.hidden, train_fraction=config.train_fraction,
                                        steps=config.train_steps, learning_rate=config.learning_rate,
                                        weight_decay=config.weight_decay)
        return grokking_arrays(result) | {"seconds": np.asarray(time.perf_counter() - start)}

    arrays = run.cell("network", train)
    return grokking_from_arrays(arrays), float(arrays["seconds"])


def _grokking_hyperparameters(config: SaeGrokkingConfig, K: int):
    from superpose.sae.hyperparameters import SaeHyperparameters

    return SaeHyperparameters.create([1] * K, log_lambda_sparse=config.log_lambda_sparse,
                                     log_lambda_smooth=config.log_lambda_smooth, log_ard=config.log_ard)


def _grokking_fits(config: SaeGrokkingConfig, Z, frequencies, key) -> tuple[dict, object]:
    """The manifold SAE fits by name: fit_sae (its own keyed starts; strengths selected or fixed) and two
    starts with every atom on, solved at fit_sae's strengths. Returns (fits, fit_sae's selection or None)."""
    import time
    import warnings

    from superpose.sae.atoms import CircleAtom
    from superpose.sae.gates import make_gate
    from superpose.sae.grokking import principal_pair_coordinates, solve_from_coordinates
    from superpose.sae.model import fit_sae
    from superpose.sae.selection import SelectionBudget

    K, P = len(frequencies), Z.shape[0]
    atoms = tuple(CircleAtom(config.harmonics) for _ in range(K))
    gate = make_gate("topk", k=K) if config.gate == "topk" else make_gate(config.gate)
    select = config.hyperparameters == "select"
    hyper = "select" if select else _grokking_hyperparameters(config, K)
    starts = {"principal_start": principal_pair_coordinates(Z, K),  # the data alone
              "fourier_start": np.stack([(k * np.arange(P) % P) / P for k in frequencies], axis=1)}  # the truth
    start = time.perf_counter()
    with warnings.catch_warnings(record=True):
        fit = fit_sae(Z, atoms, gate, hyper, key=key, restarts=config.restarts, dense_start=True,
                      max_iterations=config.max_iterations,
                      budget=SelectionBudget(config.evaluations, config.seconds) if select else None)
    fits = {"fit_sae": (fit, time.perf_counter() - start)}
    for name in starts:
        start = time.perf_counter()
        fits[name] = (solve_from_coordinates(Z, atoms, gate, fit.hyperparameters, starts[name],
                                             max_iterations=config.max_iterations), time.perf_counter() - start)
    return fits, fit.selection


@experiment("sae-grokking", SaeGrokkingConfig,
            quick={"modulus": 59, "embed_dim": 24, "hidden": 48, "train_fraction": 0.5, "train_steps": 4000,
                   "restarts": 1, "max_iterations": 40, "evaluations": 30, "seconds": 60.0, "linear_steps": 2000})
def sae_grokking(config: SaeGrokkingConfig, run: RunContext) -> None:
    """Circle atoms on a grokked modular-addition network's embedding, matched to its key frequencies."""
    import time

    from sklearn.decomposition import PCA

    from superpose.sae.grokking import (best_pair_overlap, count_key_frequencies, fourier_plane, fourier_power,
                                        key_frequencies)
    from superpose.sae.metrics import explained_variance

    begin = time.perf_counter()
    network, train_seconds = _grokking_network(config, run)
    P = config.modulus
    E = np.asarray(network.params.embedding, np.float64)
    centred = E - E.mean(axis=0)
    Z = centred / np.sqrt(np.mean(np.sum(centred**2, axis=1)))  # unit RMS row norm: the λ's are dimensionless
    power = fourier_power(E)
    K = config.circles or min(count_key_frequencies(E, min(config.max_circles, P // 2 - 1)), config.embed_dim // 2)
    frequencies = key_frequencies(E, K)
    planes = {int(k): fourier_plane(Z, int(k)) for k in frequencies}
    fit_key, linear_key = jax.random.split(jax.random.fold_in(run.key, 1))
    fits, selection = _grokking_fits(config, Z, frequencies, fit_key)
    per_fit = {name: grokking_fit_metrics(fit, seconds, Z, frequencies, planes)
               for name, (fit, seconds) in fits.items()}

    start = time.perf_counter()
    latents = sum(2 * config.harmonics + 1 for _ in range(K))  # the manifold SAE's decoder rows
    linear_k = min(config.linear_k or 2 * K, latents)
    linear = train_linear_sae(Z, LinearSaeConfig(kind="topk", num_latents=latents, k=linear_k,
                                                 steps=config.linear_steps), linear_key)
    decoder = np.asarray(linear.sae.W_dec)
    linear_metrics = {
        "latents": latents, "k": linear_k, "seconds": time.perf_counter() - start,
        "explained_variance": explained_variance(Z, np.asarray(linear.sae.reconstruct(jnp.asarray(Z)))),
        "best_pair_plane_overlap": [best_pair_overlap(decoder, planes[int(k)]) for k in frequencies],
        "dead_latents": int(np.sum(np.asarray(linear.dead_latents))), "l0": float(linear.l0),
    }
    pca = PCA(n_components=2 * K).fit(Z)
    test_reached = np.flatnonzero(network.test_accuracy >= 0.95)
    headline = per_fit["fit_sae"]
    metrics = {
        "modulus": P, "key_frequencies": frequencies.tolist(), "circles": K,
        "key_power_fraction": (power[frequencies - 1] / power.sum()).tolist(),
        "matched_frequencies": headline["matched_frequencies"], "circular_r2": headline["circular_r2"],
        "matched_frequencies_principal_start": per_fit["principal_start"]["matched_frequencies"],
        "circular_r2_principal_start": per_fit["principal_start"]["circular_r2"],
        "fits": per_fit, "linear": linear_metrics,
        "explained_variance": {"manifold": headline["explained_variance"],
                               "manifold_principal_start": per_fit["principal_start"]["explained_variance"],
                               "manifold_fourier_start": per_fit["fourier_start"]["explained_variance"],
                               "linear": linear_metrics["explained_variance"],
                               "pca": explained_variance(Z, pca.inverse_transform(pca.transform(Z)))},
        "pca_rank": 2 * K, "hyperparameters": config.hyperparameters,
        "selected": np.asarray(fits["fit_sae"][0].hyperparameters.to_flat()).tolist(),
        "selection_status": selection.status if selection is not None else None,
        "selection_evaluations": len(selection.trace) if selection is not None else 0,
        "train_accuracy": float(network.train_accuracy[-1]), "test_accuracy": float(network.test_accuracy[-1]),
        "steps_to_test_accuracy_0.95": int(network.steps[test_reached[0]]) if test_reached.size else None,
        "seconds": {"train": train_seconds, "total": time.perf_counter() - begin,
                    **{name: m["seconds"] for name, m in per_fit.items()}, "linear": linear_metrics["seconds"]},
    }
    run.log_metrics(metrics)
    figures.grokking_figures(run, network, power, frequencies, fits, per_fit, P)
    grokking_note(run, metrics)
