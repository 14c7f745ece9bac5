"""Registered experiments of superpose.sae.

- ``sae-toy``: linear SAEs on the hidden activations of toy models whose feature directions are
  known; feature recovery (MMCS) and feature absorption under hierarchy.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from superpose.runner import ExperimentConfig, RunContext, experiment, param
from superpose.sae.linear import SAE_KINDS, LinearSaeConfig, train_linear_sae
from superpose.sae.metrics import mmcs


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# -- sae-toy ---------------------------------------------------------------------------------------
TOY_SETTINGS = ("independent", "hierarchical")
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


def _toy_structure(config: SaeToyConfig):
    """(parents list, conditional densities, marginal densities, (parent, child) pairs, labels)."""
    parents, conditional, labels, pairs = [], [], [], []
    for i in range(config.parents):
        parent = len(parents)
        parents.append(-1)
        conditional.append(config.parent_density)
        labels.append(f"P{i + 1}")
        for c in range(config.children):
            pairs.append((parent, len(parents)))
            parents.append(parent)
            conditional.append(config.child_density)
            labels.append(f"P{i + 1}.c{c + 1}")
    for i in range(config.independent):
        parents.append(-1)
        conditional.append(config.independent_density)
        labels.append(f"I{i + 1}")
    marginal = [d if p == -1 else d * config.parent_density for p, d in zip(parents, conditional)]
    return parents, conditional, marginal, pairs, labels


def _toy_features(config: SaeToyConfig, setting: str):
    from superpose.toy import make_features

    parents, conditional, marginal, _, _ = _toy_structure(config)
    if setting == "hierarchical":
        return make_features(np.asarray([conditional], np.float32), parents)
    return make_features(np.asarray([marginal], np.float32))


def _train_toy(config: SaeToyConfig, setting: str, key) -> dict[str, np.ndarray]:
    from superpose.toy import init_params, train

    features = _toy_features(config, setting)
    k_init, k_data = jax.random.split(key)
    params = init_params(k_init, 1, config.features, config.hidden)
    result = train(k_data, params, features, np.ones((1, config.features), np.float32), steps=config.toy_steps,
                   batch=1024, learning_rate=config.toy_learning_rate, schedule="cosine")
    W = np.asarray(result.params.W[0])  # (m, n): feature i's direction in hidden space is W[:, i]
    return {"W": W, "norms": np.linalg.norm(W, axis=0), "final_loss": np.asarray(result.losses[-1, 0])}


def _toy_rows(config: SaeToyConfig, setting: str, W: np.ndarray, key) -> tuple[np.ndarray, np.ndarray]:
    """Feature values x (rows, n) and the toy's hidden activations h = W x (rows, m)."""
    from superpose.toy import sample

    x = np.asarray(sample(key, _toy_features(config, setting), config.rows)[:, 0, :])
    return x, x @ W.T


def _match(cosines: np.ndarray) -> np.ndarray:
    """The latent matched to each feature (one-to-one, largest total cosine; Hungarian)."""
    from scipy.optimize import linear_sum_assignment

    features, latents = linear_sum_assignment(-cosines)
    matched = np.full(cosines.shape[0], -1)
    matched[features] = latents
    return matched


def _fit_sae(config: SaeToyConfig, kind: str, x, h, directions, represented, pairs, key) -> dict[str, np.ndarray]:
    """Trains one SAE on h and measures recovery and, for every (parent, child) pair, absorption."""
    sae_config = LinearSaeConfig(kind=kind, num_latents=config.latents, k=config.k, l1=config.l1, l0=config.l0,
                                 learning_rate=config.sae_learning_rate, batch_size=config.sae_batch,
                                 steps=config.sae_steps)
    result = train_linear_sae(jnp.asarray(h), sae_config, key)
    decoder = np.asarray(result.sae.W_dec)
    cosines = directions @ decoder.T  # (n, L): true feature against latent
    matched = _match(np.where(represented[:, None], cosines, -2.0))
    codes = np.asarray(result.sae.encode(jnp.asarray(h)))
    absorption, silent_both, child_parent_cos, parent_child_cos = [], [], [], []
    for parent, child in pairs:
        lp, lc = matched[parent], matched[child]
        on = x[:, parent] > 0
        both = on & (x[:, child] > 0)
        absorption.append(np.mean((codes[on, lp] == 0) & (codes[on, lc] > 0)) if on.any() else np.nan)
        silent_both.append(np.mean(codes[both, lp] == 0) if both.any() else np.nan)
        child_parent_cos.append(cosines[parent, lc])
        parent_child_cos.append(cosines[child, lp])
    return {
        "cosines": cosines, "matched": matched, "loss_trace": np.asarray(result.loss_trace),
        "mmcs": np.asarray(mmcs(decoder.T, directions[represented].T)),
        "max_cosine": cosines.max(axis=1), "fvu": np.asarray(result.fvu), "l0": np.asarray(result.l0),
        "dead": np.asarray(int(np.sum(result.dead_latents))),
        "absorption": np.asarray(absorption, float), "parent_silent_when_both": np.asarray(silent_both, float),
        "child_latent_parent_cosine": np.asarray(child_parent_cos, float),
        "parent_latent_child_cosine": np.asarray(parent_child_cos, float),
    }


def _mean(values) -> float:
    values = np.asarray(values, float)
    return float(np.nanmean(values)) if np.any(np.isfinite(values)) else float("nan")


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
    _figures(config, run, fits, pairs, labels, metrics)
    _note(config, run, metrics)


def _unit(v):
    return v / max(float(np.linalg.norm(v)), 1e-12)


def _figures(config, run, fits, pairs, labels, metrics) -> None:
    plt = _pyplot()
    kinds = config.kinds
    colours = {"independent": "tab:blue", "hierarchical": "tab:red"}
    width = 0.8 / len(TOY_SETTINGS)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.4))
    panels = (("mmcs", "MMCS (mean max cosine, true features)", "feature recovery"),
              ("absorption", "fraction of parent-active rows", "parent latent silent while the child's latent fires"),
              ("child_latent_parent_cosine", "cosine(child's latent, parent direction)",
               "parent direction in the child's latent"))
    for ax, (field, ylabel, title) in zip(axes, panels):
        for j, setting in enumerate(TOY_SETTINGS):
            for i, kind in enumerate(kinds):
                values = np.concatenate([np.atleast_1d(c[field]) for c in fits[setting][kind]])
                xpos = i + (j - (len(TOY_SETTINGS) - 1) / 2) * width
                ax.bar(xpos, _mean(values), width * 0.9, color=colours[setting], alpha=0.6,
                       label=f"{setting} features" if i == 0 else None)
                ax.plot(np.full(values.size, xpos), values, "k.", ms=4, label="one SAE / pair" if i == j == 0 else None)
                if field == "child_latent_parent_cosine":
                    ax.hlines(metrics["true_parent_child_cosine"][setting], xpos - width / 2, xpos + width / 2,
                              colors="k", linestyles="--", label="true child·parent cosine" if i == j == 0 else None)
        ax.set_xticks(range(len(kinds)), [f"{k} SAE" for k in kinds])
        ax.set(ylabel=ylabel, title=title)
        ax.axhline(0, color="grey", lw=0.6)
    axes[0].set_ylim(0, 1.05)
    axes[0].legend(fontsize=8, loc="lower left")
    axes[2].legend(fontsize=8, loc="upper left")
    fig.suptitle(f"Linear SAEs ({config.latents} latents) on a toy model's hidden activations "
                 f"(n = {config.features} features in m = {config.hidden} dimensions)")
    fig.tight_layout()
    run.save_figure(fig, "recovery-and-absorption",
                    "Left: MMCS of each SAE against the toy's true feature directions (bars: mean; dots: one SAE). "
                    "Middle: of the rows where a parent feature is active, the fraction in which the parent's matched "
                    "latent is 0 while the child's matched latent fires (dots: one SAE and one parent–child pair). "
                    "Right: cosine of the child's matched latent with the parent's true direction (dashed: the "
                    "mean cosine of the true child and parent directions themselves). Independent "
                    "features have the same marginal densities as the hierarchical ones, so they are the control.")

    fig, axes = plt.subplots(len(TOY_SETTINGS), len(kinds), figsize=(4.6 * len(kinds), 8.4), squeeze=False)
    for row, setting in enumerate(TOY_SETTINGS):
        for col, kind in enumerate(kinds):
            ax = axes[row, col]
            for cell in fits[setting][kind]:
                for i, (p, c) in enumerate(pairs):
                    lp, lc = cell["matched"][p], cell["matched"][c]
                    ax.plot(cell["cosines"][p, lc], cell["cosines"][c, lc], "o", color="tab:orange", ms=5,
                            label="child's latent" if i == 0 else None)
                    ax.plot(cell["cosines"][p, lp], cell["cosines"][c, lp], "s", color="tab:blue", ms=5,
                            label="parent's latent" if i == 0 else None)
                break  # the first SAE of each setting and kind
            ax.plot([np.sqrt(0.5)], [np.sqrt(0.5)], "k*", ms=12, label="(parent + child)/√2: full absorption")
            ax.set(xlim=(-0.3, 1.05), ylim=(-0.3, 1.05), aspect="equal", xlabel="cosine with the parent's direction",
                   ylabel="cosine with the child's direction", title=f"{kind} SAE, {setting} features")
            ax.axhline(0, color="grey", lw=0.5)
            ax.axvline(0, color="grey", lw=0.5)
            if row == col == 0:
                ax.legend(fontsize=7, loc="lower left")
    fig.suptitle("Where each parent–child pair's matched latents point (first SAE of each kind)")
    fig.tight_layout()
    run.save_figure(fig, "latent-cosines",
                    "Each parent–child pair's two matched latents (first SAE of each kind): the decoder direction's "
                    "cosine with the parent's and the child's true directions. Without absorption the parent's latent "
                    "sits at (1, 0) and the child's at (0, 1); a child's latent that absorbs its parent moves right.")
    run.save_plotly(_plotly_cosines(config, fits, labels), "cosine-matrices",
                    "Cosine of every SAE latent (first SAE of each kind, latents in matched order) with every true "
                    "feature direction; hover for values.")


def _plotly_cosines(config, fits, labels):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    kinds = config.kinds
    fig = make_subplots(rows=len(TOY_SETTINGS), cols=len(kinds), horizontal_spacing=0.08, vertical_spacing=0.12,
                        subplot_titles=[f"{k} SAE, {s} features" for s in TOY_SETTINGS for k in kinds])
    for row, setting in enumerate(TOY_SETTINGS):
        for col, kind in enumerate(kinds):
            cell = fits[setting][kind][0]
            order = [int(l) for l in cell["matched"] if l >= 0]
            order += [l for l in range(cell["cosines"].shape[1]) if l not in order]
            fig.add_trace(go.Heatmap(z=cell["cosines"][:, order], x=[f"latent {l}" for l in order], y=labels,
                                     zmin=-1, zmax=1, colorscale="RdBu", reversescale=True,
                                     colorbar={"title": "cosine"}, showscale=row == col == 0,
                                     hovertemplate="%{y} vs %{x}: cosine %{z:.3f}<extra></extra>"),
                          row=row + 1, col=col + 1)
            fig.update_yaxes(autorange="reversed", row=row + 1, col=col + 1)
    fig.update_layout(height=420 * len(TOY_SETTINGS), width=560 * len(kinds),
                      title="Cosine of SAE decoder directions with the toy's true feature directions")
    return fig


def _note(config, run, metrics) -> None:
    parts = []
    for kind in config.kinds:
        m, a = metrics["mmcs"], metrics["absorption_fraction"]
        c = metrics["child_latent_parent_cosine"]
        parts.append(
            f"{kind}: MMCS {m['independent'][kind]:.3f} on independent features and {m['hierarchical'][kind]:.3f} on "
            f"hierarchical ones; the parent's latent is silent while the child's fires in "
            f"{a['hierarchical'][kind]:.1%} of parent-active rows (independent control {a['independent'][kind]:.1%}), "
            f"and the child's latent has cosine {c['hierarchical'][kind]:.2f} with the parent's direction "
            f"(control {c['independent'][kind]:.2f}).")
    fraction, cosine = metrics["absorption_fraction"], metrics["child_latent_parent_cosine"]
    absorbed = [k for k in config.kinds  # both measures well above the independent control
                if fraction["hierarchical"][k] > 2 * fraction["independent"][k] + 0.02
                and cosine["hierarchical"][k] > cosine["independent"][k] + 0.05]
    verdict = (f"Absorption shows in the {', '.join(absorbed)} SAE(s): under hierarchy the child's latent takes part "
               "of the parent's direction and the parent's latent stops firing when the child is present."
               if absorbed else
               "At these settings no SAE shows clear absorption (neither measure rises well above the control).")
    rep = metrics["represented_features"]
    run.note(f"Toy models with {config.features} features in {config.hidden} hidden dimensions represent "
             f"{rep['independent']} (independent) and {rep['hierarchical']} (hierarchical) features with ‖W_i‖ > "
             f"{REPRESENTED_NORM}; MMCS is over those. {' '.join(parts)} {verdict} The true parent and child "
             f"directions themselves have mean cosine {metrics['true_parent_child_cosine']['hierarchical']:.2f} "
             f"(hierarchical toy).")


# -- sae-circles -----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SaeCirclesConfig(ExperimentConfig):
    """A manifold SAE with K = 2 circle atoms on two planted circles, against linear baselines.

    The data: ``two_circles`` (radii 1.0 and 1.1 in orthogonal random planes of R^p; 30% of rows
    only A, 30% only B, 40% both; noise row RMS 4% of the signal's). Hyperparameters are fixed here.
    """

    rows: int = param(600, "training rows N (a second, held-out set of the same size is drawn too)", low=8)
    dimensions: int = param(24, "ambient dimension p", low=4, high=4096)
    harmonics: int = param(3, "Fourier harmonics H per circle atom (M = 2H + 1 basis functions)", low=1, high=16)
    gate: str = param("threshold", "the gate", choices=("threshold", "softmax", "topk", "beta_bernoulli"))
    topk: int = param(2, "active atoms per row of the topk gate (1 <= k <= 2)", low=1, high=2)
    log_lambda_sparse: float = param(-3.0, "log λ_sparse (the gate's strength, or log α)", low=-30, high=30)
    log_lambda_smooth: float = param(-4.0, "log λ_smooth of both atoms", low=-30, high=30)
    log_ard: float = param(-6.0, "log α of every ARD axis (von Mises concentration on a circle)", low=-30, high=30)
    restarts: int = param(3, "keyed starts of the inner solve (the lowest penalised loss is kept)", low=1, high=64)
    linear_k: int = param(4, "active latents of the TopK linear SAE", low=1)
    linear_steps: int = param(3000, "training steps of the linear SAE", low=10)


def _circle_plane_metrics(model, encoding, truth) -> dict[str, list]:
    """Per planted circle (after Hungarian matching on plane overlap): overlap, circular R², activity F1."""
    from superpose.sae.metrics import active_mass_recovery, circular_r2, curve_span, match_atoms, plane_overlap

    planes, angles, support = (np.asarray(truth.planes), np.asarray(truth.angles), np.asarray(truth.support))
    spans = []
    for k in range(model.num_atoms):
        try:
            spans.append(curve_span(model.atom_curve(k, 256)))
        except ValueError:  # a collapsed atom spans no plane
            spans.append(None)
    overlap = np.array([[plane_overlap(s, planes[c]) if s is not None else 0.0 for c in range(len(planes))]
                        for s in spans])
    matching = match_atoms(overlap)
    atoms = np.asarray(matching.fitted)
    circular = [circular_r2(angles[:, c], encoding.coords[:, model.coord_columns(int(k))][:, 0], mask=support[:, c])
                for k, c in zip(atoms, matching.planted)]
    activity = encoding.activities[:, atoms] / max(float(encoding.activities.max()), 1e-12)
    f1 = active_mass_recovery(activity, support[:, np.asarray(matching.planted)], threshold=0.5)
    return {"atom_of_circle": atoms.tolist(), "plane_overlap": [float(overlap[k, c]) for k, c in
                                                                zip(atoms, matching.planted)],
            "circular_r2": [float(v) for v in circular], "activity_f1": [float(v) for v in f1]}


@experiment("sae-circles", SaeCirclesConfig, quick={"restarts": 2, "linear_steps": 1000})
def sae_circles(config: SaeCirclesConfig, run: RunContext) -> None:
    """Two planted circles: a manifold SAE with two circle atoms against a linear SAE and PCA."""
    import time

    from sklearn.decomposition import PCA

    from superpose.sae.atoms import CircleAtom
    from superpose.sae.gates import make_gate
    from superpose.sae.hyperparameters import SaeHyperparameters
    from superpose.sae.metrics import explained_variance
    from superpose.sae.model import fit_sae
    from superpose.sae.planted import two_circles

    data_key, test_key, fit_key, linear_key = jax.random.split(run.key, 4)
    Z, truth = (np.asarray(a) if i == 0 else a for i, a in enumerate(two_circles(data_key, config.rows,
                                                                                 config.dimensions)))
    Z_test, truth_test = two_circles(test_key, config.rows, config.dimensions)
    # the held-out set uses the same planes: rebuild it from the training truth's planes
    Z_test = np.asarray(_same_planes(truth, truth_test, test_key))
    atoms = (CircleAtom(config.harmonics), CircleAtom(config.harmonics))
    hyper = SaeHyperparameters.create([1, 1], log_lambda_sparse=config.log_lambda_sparse,
                                      log_lambda_smooth=config.log_lambda_smooth, log_ard=config.log_ard)
    start = time.perf_counter()
    gate = make_gate("topk", k=config.topk) if config.gate == "topk" else make_gate(config.gate)
    fit = fit_sae(Z, atoms, gate, hyper, key=fit_key, restarts=config.restarts)
    seconds = time.perf_counter() - start
    model = fit.model
    model.save(run.out / "model")
    in_sample = explained_variance(Z, model.decode(fit.encoding))
    held_out = explained_variance(Z_test, model.reconstruct(Z_test))
    per_circle = _circle_plane_metrics(model, fit.encoding, truth)

    baselines = {}
    for rank in (2, 4):
        pca = PCA(n_components=rank).fit(Z)
        baselines[f"pca_rank_{rank}"] = [explained_variance(A, pca.inverse_transform(pca.transform(A)))
                                         for A in (Z, Z_test)]
    latents = sum(atom.num_basis for atom in atoms)
    linear = train_linear_sae(Z, LinearSaeConfig(kind="topk", num_latents=latents, k=min(config.linear_k, latents),
                                                 steps=config.linear_steps), linear_key)
    baselines["linear_topk"] = [explained_variance(A, np.asarray(linear.sae.reconstruct(jnp.asarray(A))))
                                for A in (Z, Z_test)]
    metrics = {
        "reconstruction_r2": in_sample, "heldout_r2": held_out,
        "circular_r2": per_circle["circular_r2"], "plane_overlap": per_circle["plane_overlap"],
        "activity_f1": per_circle["activity_f1"], "atom_of_circle": per_circle["atom_of_circle"],
        "baselines_r2": {name: {"in_sample": v[0], "held_out": v[1]} for name, v in baselines.items()},
        "linear_latents": latents, "seconds": seconds, "penalized_loss": fit.report.loss,
        "restart_losses": fit.restart_losses, "converged": fit.report.converged,
        "iterations": fit.report.iterations, "gradient_norm": fit.report.gradient_norm,
    }
    run.log_metrics(metrics)
    _circle_figures(run, model, fit.encoding, Z, truth, per_circle, metrics)
    worst = min(per_circle["circular_r2"])
    run.note(
        f"The manifold SAE explains {in_sample:.3f} of the variance in sample and {held_out:.3f} held out, "
        f"with {2 * atoms[0].num_basis} decoder rows; PCA of rank 2 explains {baselines['pca_rank_2'][1]:.3f} and of "
        f"rank 4 {baselines['pca_rank_4'][1]:.3f} held out, the TopK SAE with {latents} latents "
        f"{baselines['linear_topk'][1]:.3f}. Each planted circle was matched to an atom whose curve spans its plane "
        f"with overlap ≥ {min(per_circle['plane_overlap']):.3f}, and whose coordinate recovers the planted angle "
        f"with circular R² ≥ {worst:.3f} (1 = the same angle up to rotation and reflection). The inner solve "
        f"{'converged' if fit.report.converged else 'did not converge'} after {fit.report.iterations} iterations "
        f"(projected gradient norm {fit.report.gradient_norm:.2g}) in {seconds:.1f} s over {config.restarts} starts."
    )


def _same_planes(truth, other, key):
    """Held-out rows on the training truth's planes, with the other draw's angles, supports and noise level."""
    from superpose.sae.planted import PlantedCircles

    mixed = PlantedCircles(truth.planes, other.angles, other.support, truth.radii, truth.centre, truth.noise_rms)
    noise = truth.noise_sigma * jax.random.normal(key, mixed.signal().shape)
    return mixed.signal() + noise


def _circle_figures(run, model, encoding, Z, truth, per_circle, metrics) -> None:
    plt = _pyplot()
    planes, support = np.asarray(truth.planes), np.asarray(truth.support)
    fig, axes = plt.subplots(1, len(planes), figsize=(5.2 * len(planes), 5))
    for c, ax in enumerate(np.atleast_1d(axes)):
        k = per_circle["atom_of_circle"][c]
        projected = (Z - np.asarray(truth.centre)) @ planes[c]
        ax.scatter(*projected[support[:, c]].T, s=6, alpha=0.35, color="tab:grey", label="rows using this circle")
        ax.scatter(*projected[~support[:, c]].T, s=6, alpha=0.25, color="tab:orange", label="rows without it")
        typical = float(np.median(encoding.activities[support[:, c], k])) if support[:, c].any() else 1.0
        curve = (model.atom_curve(k, 256, typical) - np.asarray(truth.centre)) @ planes[c]
        ax.plot(*np.vstack([curve, curve[:1]]).T, color="tab:blue", lw=2,
                label=f"fitted atom {k} (at its median activity {typical:.2f})")
        ax.set(xlabel="planted plane, axis 1", ylabel="planted plane, axis 2", aspect="equal",
               title=f"circle {'AB'[c] if len(planes) == 2 else c}: overlap {per_circle['plane_overlap'][c]:.3f}, "
                     f"circular R² {per_circle['circular_r2'][c]:.3f}")
        ax.legend(fontsize=8, loc="upper right")
    run.save_figure(fig, "circles", "Each planted circle's plane: the rows projected onto it and the fitted atom's "
                    "curve drawn there (offset + a·Φ(t)B at the median activity a of the rows that use it). Rows "
                    "without the circle sit near the centre.")

    names = ["manifold SAE"] + list(metrics["baselines_r2"])
    ins = [metrics["reconstruction_r2"]] + [v["in_sample"] for v in metrics["baselines_r2"].values()]
    outs = [metrics["heldout_r2"]] + [v["held_out"] for v in metrics["baselines_r2"].values()]
    fig, ax = plt.subplots(figsize=(7.5, 4))
    x = np.arange(len(names))
    ax.bar(x - 0.2, ins, 0.4, label="training rows")
    ax.bar(x + 0.2, outs, 0.4, label="held-out rows")
    ax.set_xticks(x, names)
    ax.set(ylabel="explained variance R²", ylim=(0, 1.05), title="reconstruction: manifold SAE against linear models")
    ax.legend(loc="lower right")
    run.save_figure(fig, "reconstruction", "Explained variance (column-centred R²) of each model on training and "
                    "held-out rows of the same planted circles.")
