"""Registered experiments of superpose.toy: the TMS phase diagram, the hierarchy sweep and geometry."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from superpose.runner import ExperimentConfig, RunContext, experiment, param
from superpose.runner.plotting import pyplot
from superpose.toy.data import make_features
from superpose.toy.figures import CLASS_COLOURS, boundary_segments, class_rgb, css, legend_image, phase_rgb
from superpose.toy.metrics import (
    SOLUTION_CLASSES,
    best_of,
    classify_pair,
    cosines,
    dimensionality,
    drop_worst_mean,
    feature_norms,
    superposition,
)
from superpose.toy.models import init_params
from superpose.toy.theory import candidate_losses, exact_minimum, model_expected_loss
from superpose.toy.training import OPTIMIZERS, REDUCTIONS, SCHEDULES, train


def _majority(classes: np.ndarray) -> np.ndarray:
    """Most frequent class over the last (members) axis."""
    counts = np.stack([(classes == c).sum(-1) for c in range(len(SOLUTION_CLASSES))], -1)  # (..., classes)
    return np.argmax(counts, -1)


def _two_feature_sweep(key, density, importance, parents, members, config) -> dict[str, np.ndarray]:
    """Trains members × cells two-feature, one-hidden-unit models; cells share batches along the
    importance axis (common random numbers). density/importance: (rows, cols, 2), importance
    varying along cols. Returns per-member arrays of shape (rows, cols, members)."""
    rows, cols, _ = density.shape
    # model order (row, member, col): the cols models of one (row, member) share every batch
    dens = np.broadcast_to(density[:, None], (rows, members, cols, 2)).reshape(-1, 2)
    imp = np.broadcast_to(importance[:, None], (rows, members, cols, 2)).reshape(-1, 2)
    k_init, k_data, k_stream = jax.random.split(key, 3)
    features = make_features(dens, parents)
    params = init_params(k_init, dens.shape[0], 2, 1, init=config.init)
    streams = np.asarray(jax.random.randint(k_stream, (), 0, 2**30)) + np.arange(rows * members)
    result = train(k_data, params, features, imp, steps=config.steps, batch=config.batch,
                   learning_rate=config.learning_rate, weight_decay=config.weight_decay, schedule=config.schedule,
                   optimizer=config.optimizer, loss_reduction=config.loss_reduction, streams=streams,
                   group_size=cols, log_every=config.steps // min(config.steps, CURVE_POINTS))
    W, b = result.params
    loss = model_expected_loss(W, b, features, imp)

    def grid(values):  # (rows·members·cols, ...) → (rows, cols, members, ...)
        values = np.asarray(values)
        return np.moveaxis(values.reshape(rows, members, cols, *values.shape[1:]), 1, 2)

    return {
        "W": grid(W[:, 0]), "b": grid(b), "loss": grid(loss), "solution": grid(classify_pair(W)),
        "norm2": grid(feature_norms(W)[:, 1]), "superposition2": grid(superposition(W)[:, 1]),
        "cosine": grid(cosines(W)[:, 0, 1]), "curve": grid(result.losses.T),
    }


def _agreement(cell: dict[str, np.ndarray], exact_class: np.ndarray) -> dict[str, float]:
    best = np.asarray(best_of(cell["solution"], cell["loss"]))
    majority = _majority(cell["solution"])
    return {"analytic_agreement": float(np.mean(best == exact_class)),
            "majority_agreement": float(np.mean(majority == exact_class)),
            "member_agreement": float(np.mean(cell["solution"] == exact_class[..., None]))}


CURVE_POINTS = 100  # learning-curve windows kept per model


def _check_curve_steps(steps: int) -> None:
    if steps % min(steps, CURVE_POINTS):
        raise ValueError(f"steps ({steps}) must be a multiple of {CURVE_POINTS} (or below it): "
                         f"learning curves keep {CURVE_POINTS} windows")


def _log_axes(ax, xlabel, ylabel):
    ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel=ylabel)


def _class_legend(ax):
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color=CLASS_COLOURS[c], label=c.replace("_", " ")) for c in SOLUTION_CLASSES],
              fontsize=7, loc="lower left", framealpha=0.8)


def _cell_image(ax, rgb, x, y):
    ax.pcolormesh(x, y, rgb, shading="nearest")


# -- toy-phase -----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class PhaseConfig(ExperimentConfig):
    """TMS's phase diagram: 2 features, 1 hidden unit; importance of feature 2 r against density s."""

    grid: int = param(40, "grid points per axis (r in [0.1, 10], s in [0.01, 1], log-spaced)", low=3, high=200)
    members: int = param(10, "ensemble members per cell", low=1, high=100)
    steps: int = param(4000, "training steps", low=1)
    batch: int = param(256, "batch size", low=1)
    learning_rate: float = param(1e-2, "AdamW learning rate", low=1e-8, high=10.0)
    weight_decay: float = param(0.0, "decoupled weight decay", low=0.0, high=1.0)
    schedule: str = param("cosine", "learning-rate schedule", choices=SCHEDULES)
    init: str = param("xavier_normal", "initialisation", choices=("xavier_normal", "sign"))
    optimizer: str = param("adamw", "optimizer", choices=OPTIMIZERS)
    loss_reduction: str = param("sum", "how per-model losses combine", choices=REDUCTIONS)
    starts: int = param(6, "starting points per cell for the exact minimum", low=1, high=64)

    def check(self) -> None:
        _check_curve_steps(self.steps)


def _phase_axes(config):
    return np.logspace(-1, 1, config.grid), np.logspace(-2, 0, config.grid)


@experiment("toy-phase", PhaseConfig, quick={"grid": 12, "members": 6, "steps": 2000})
def toy_phase(config: PhaseConfig, run: RunContext) -> None:
    """TMS's r–s phase diagram with closed-form and exact minimum-loss boundaries."""
    plt = pyplot()
    r, s = _phase_axes(config)
    S, R = np.meshgrid(s, r, indexing="ij")  # rows: density, cols: importance
    density = np.stack([S, S], -1)
    importance = np.stack([np.ones_like(R), R], -1)

    def exact():
        m = exact_minimum(make_features(density.reshape(-1, 2)), importance.reshape(-1, 2), starts=config.starts)
        return {"loss": m.loss.reshape(S.shape), "theta": m.theta.reshape(*S.shape, 4),
                "solution": m.solution.reshape(S.shape)}

    theory = run.cell("exact", exact)
    cell = run.cell("train", lambda: _two_feature_sweep(run.key, density, importance, None, config.members, config))
    agree = _agreement(cell, theory["solution"])
    closed = candidate_losses(S, R)  # keys in SOLUTION_CLASSES order: class index = argmin
    stacked = np.stack([closed[name] for name in SOLUTION_CLASSES[:3]])
    closed_class, closed_best = np.argmin(stacked, 0), np.min(stacked, 0)
    gain = (closed_best - theory["loss"]) / closed_best
    best = np.asarray(best_of(cell["solution"], cell["loss"]))
    stalled = np.mean((cell["solution"] != theory["solution"][..., None]), -1)
    run.log_metrics(
        **agree,
        closed_form_agreement=float(np.mean(closed_class == theory["solution"])),
        max_exact_gain_over_closed_forms=float(gain.max()),
        where_max_gain={"r": float(R.flat[np.argmax(gain)]), "s": float(S.flat[np.argmax(gain)])},
        stalled_member_fraction=float(stalled.mean()),
        stalled_member_fraction_low_density=float(stalled[s < 0.1].mean()),
    )
    # figures
    rr = np.logspace(-1, 1, 400)
    lines = {"not learned | antipodal": (rr[rr <= 1], 4 * rr[rr <= 1] / (5 * rr[rr <= 1] + 2)),
             "dedicated | antipodal": (rr[rr >= 1], 4 / (5 + 2 * rr[rr >= 1])),
             "not learned | dedicated": (np.ones(2), np.array([4 / 7, 1.0]))}
    bx, by = boundary_segments(theory["solution"], r, s)
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.8))
    panels = [(class_rgb(best), "best-of-N trained class"), (class_rgb(theory["solution"]), "exact minimum's class"),
              (class_rgb(closed_class), "closed-form candidates' class")]
    for ax, (rgb, title) in zip(axes, panels):
        _cell_image(ax, rgb, r, s)
        for label, (x, y) in lines.items():
            ax.plot(x, y, "k--", lw=1)
        ax.plot(bx, by, color="black", lw=1.6)
        _log_axes(ax, "importance of feature 2, r", "density s")
        ax.set_title(title, fontsize=10)
    _class_legend(axes[0])
    mesh = axes[3].pcolormesh(r, s, 1 - stalled, shading="nearest", cmap="viridis", vmin=0, vmax=1)
    axes[3].plot(bx, by, color="white", lw=1.2)
    _log_axes(axes[3], "importance of feature 2, r", "density s")
    axes[3].set_title("fraction of members in the exact class", fontsize=10)
    fig.colorbar(mesh, ax=axes[3])
    fig.tight_layout()
    run.save_figure(fig, "phase", "Solution classes over importance r and density s. Solid: the exact minimum's "
                    "boundaries; dashed: TMS's closed-form boundaries (triple point r = 1, s = 4/7). Right: members "
                    "that end in another class than the exact minimum (low-density saddles).")
    run.save_plotly(_plotly_classes(r, s, best, theory, cell, bx, by, lines), "phase-interactive",
                    "Best-of-N class per cell; hover for the exact minimum, losses and member classes.")
    run.note(_phase_note(config, agree, cell["solution"], theory, closed_class, gain, R, S))


def _phase_note(config, agree, members, theory, closed_class, gain, R, S) -> str:
    """The toy-phase findings, each from the run: agreement, where members disagree, where the exact
    minimum beats the closed forms and what it is there. members: (rows, cols, members) classes."""
    exact_class = theory["solution"]
    text = (f"Best-of-{config.members} agrees with the exact minimum's class in {agree['analytic_agreement']:.1%} "
            f"of cells; the majority of members in {agree['majority_agreement']:.1%}. ")
    wrong = members != exact_class[..., None]
    if wrong.any():
        classes, counts = np.unique(members[wrong], return_counts=True)
        common = SOLUTION_CLASSES[classes[np.argmax(counts)]]
        low = float(wrong[S[:, 0] < 0.1].sum() / wrong.sum())
        text += (f"{wrong.mean():.1%} of members end in another class than the exact minimum; {low:.0%} of those sit "
                 f"at density s < 0.1, and the most common class they end in is {common}. ")
    else:
        text += "Every member ends in the exact minimum's class. "
    at = np.unravel_index(np.argmax(gain), gain.shape)
    if gain[at] > 0:
        b1, b2 = theory["theta"][at][2:]
        text += (f"The exact minimum beats the best closed form by up to {gain[at]:.1%}, at r = {R[at]:.3g}, "
                 f"s = {S[at]:.3g}, where it is {SOLUTION_CLASSES[exact_class[at]]} with biases (b₁, b₂) = "
                 f"({b1:.2g}, {b2:.2g}). ")
    else:
        text += f"The exact minimum never beats the best closed form on this grid (largest gain {gain[at]:.1e}). "
    differ = int(np.sum(closed_class != exact_class))
    text += (f"Its class differs from the closed forms' in {differ} of {exact_class.size} cells"
             + (", so the exact boundaries move." if differ else "."))
    return text


def _plotly_classes(r, s, best, theory, cell, bx, by, lines):
    import plotly.graph_objects as go

    R, S = np.meshgrid(r, s)
    names = np.array(SOLUTION_CLASSES)
    members = ["/".join(names[c][:3] for c in row) for row in cell["solution"].reshape(-1, cell["solution"].shape[-1])]
    custom = np.stack([names[best].ravel(), names[theory["solution"]].ravel(),
                       np.round(theory["loss"].ravel(), 6), np.round(cell["loss"].min(-1).ravel(), 6),
                       np.array(members)], -1)
    fig = go.Figure(go.Scatter(
        x=R.ravel(), y=S.ravel(), mode="markers", customdata=custom,
        marker={"symbol": "square", "size": max(4, 360 // len(r)), "color": css(class_rgb(best)), "line": {"width": 0}},
        hovertemplate="r=%{x:.3f}<br>s=%{y:.3f}<br>best-of-N: %{customdata[0]}<br>exact: %{customdata[1]}"
                      "<br>exact min loss %{customdata[2]}<br>best member loss %{customdata[3]}"
                      "<br>members: %{customdata[4]}<extra></extra>", showlegend=False))
    fig.add_trace(go.Scatter(x=bx, y=by, mode="lines", line={"color": "black", "width": 2}, name="exact boundary"))
    for label, (x, y) in lines.items():
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", line={"color": "black", "dash": "dash", "width": 1},
                                 name=f"closed form: {label}"))
    fig.update_xaxes(type="log", title="importance of feature 2, r")
    fig.update_yaxes(type="log", title="density s")
    fig.update_layout(width=760, height=640, plot_bgcolor="white", title="Best-of-N solution class")
    return fig


# -- toy-hierarchy -------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class HierarchyConfig(ExperimentConfig):
    """The seed's sweep: feature 2 fires only if feature 1 does; importance of feature 2 against
    p(feature 2 | feature 1), one panel per p(feature 1). Defaults are the seed's sizes and rates,
    with summed losses and AdamW (``--set loss_reduction=mean optimizer=adam_coupled_decay`` gives
    the seed's collapse)."""

    p_feature1: tuple[float, ...] = param((0.01, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 0.99), "p(feature 1) per panel",
                                          low=1e-6, high=1.0)
    grid: int = param(40, "grid points per axis (importance in [0.1, 10], p(2|1) in [0.01, 1], log-spaced)",
                      low=3, high=200)
    members: int = param(10, "ensemble members per cell", low=1, high=100)
    steps: int = param(800, "training steps", low=1)
    batch: int = param(256, "batch size", low=1)
    learning_rate: float = param(1e-2, "learning rate", low=1e-8, high=10.0)
    weight_decay: float = param(1e-4, "weight decay (decoupled for adamw, added to the gradient otherwise)",
                                low=0.0, high=1.0)
    schedule: str = param("constant", "learning-rate schedule", choices=SCHEDULES)
    init: str = param("xavier_normal", "initialisation (the seed used 'sign')", choices=("xavier_normal", "sign"))
    optimizer: str = param("adamw", "optimizer (the seed's: adam_coupled_decay)", choices=OPTIMIZERS)
    loss_reduction: str = param("sum", "how per-model losses combine (the seed's: mean)", choices=REDUCTIONS)
    exact: bool = param(True, "overlay the exact minimum-loss boundaries")
    starts: int = param(6, "starting points per cell for the exact minimum", low=1, high=64)

    def check(self) -> None:
        _check_curve_steps(self.steps)


def _hierarchy_grid(config, p1):
    importance_axis, conditional_axis = np.logspace(-1, 1, config.grid), np.logspace(-2, 0, config.grid)
    Q, R = np.meshgrid(conditional_axis, importance_axis, indexing="ij")
    density = np.stack([np.full_like(Q, p1), Q], -1)
    return importance_axis, conditional_axis, density, np.stack([np.ones_like(R), R], -1)


@experiment("toy-hierarchy", HierarchyConfig, quick={"grid": 12, "members": 4, "p_feature1": (0.1, 0.6, 0.95),
                                                      "steps": 400})
def toy_hierarchy(config: HierarchyConfig, run: RunContext) -> None:
    """The seed's 3×3 hierarchical phase diagram, by colour map and by solution class, with exact boundaries."""
    plt = pyplot()
    panels = {}
    for index, p1 in enumerate(run.track(config.p_feature1, "panels")):
        x, y, density, importance = _hierarchy_grid(config, p1)
        key = jax.random.fold_in(run.key, index)
        panels[p1] = run.cell(f"panel-{index}", lambda: _two_feature_sweep(key, density, importance, [-1, 0],
                                                                            config.members, config))
    exact = None
    if config.exact:
        def compute():
            grids = [_hierarchy_grid(config, p1) for p1 in config.p_feature1]
            density = np.concatenate([g[2].reshape(-1, 2) for g in grids])
            importance = np.concatenate([g[3].reshape(-1, 2) for g in grids])
            m = exact_minimum(make_features(density, [-1, 0]), importance, starts=config.starts)
            shape = (len(config.p_feature1), config.grid, config.grid)
            return {"loss": m.loss.reshape(shape), "solution": m.solution.reshape(shape)}

        exact = run.cell("exact", compute)
    x, y = np.logspace(-1, 1, config.grid), np.logspace(-2, 0, config.grid)
    metrics, mean_norm = {}, []
    views = {"colour": {}, "class": {}}
    for index, (p1, cell) in enumerate(panels.items()):
        norm = np.asarray(drop_worst_mean(cell["norm2"], cell["loss"]))
        sup = np.asarray(drop_worst_mean(cell["superposition2"], cell["loss"]))
        best = np.asarray(best_of(cell["solution"], cell["loss"]))
        views["colour"][p1], views["class"][p1] = (norm, sup, cell), best
        mean_norm.append(float(np.mean(np.linalg.norm(cell["W"], axis=-1))))
        entry = {"mean_weight_norm": mean_norm[-1],
                 "class_fractions": {c: float(np.mean(best == i)) for i, c in enumerate(SOLUTION_CLASSES)}}
        if exact is not None:
            entry.update(_agreement(cell, exact["solution"][index]))
        metrics[f"p1={p1:g}"] = entry
    summary = {}
    if exact is not None:
        for name in ("analytic_agreement", "majority_agreement"):
            summary[name] = float(np.mean([m[name] for m in metrics.values()]))
    collapsed = max(mean_norm) < 0.05
    run.log_metrics(panels=metrics, collapsed=collapsed, **summary)
    rows = int(np.ceil(len(config.p_feature1) / 3))
    for view in ("colour", "class"):
        fig, axes = plt.subplots(rows, 3, figsize=(13, 4.2 * rows), squeeze=False)
        for index, p1 in enumerate(config.p_feature1):
            ax = axes.flat[index]
            if view == "colour":
                norm, sup, _ = views["colour"][p1]
                _cell_image(ax, phase_rgb(norm, sup), x, y)
            else:
                _cell_image(ax, class_rgb(views["class"][p1]), x, y)
            if exact is not None:
                bx, by = boundary_segments(exact["solution"][index], x, y)
                ax.plot(bx, by, color="black", lw=1.4)
            _log_axes(ax, "importance of feature 2", "p(feature 2 | feature 1)")
            ax.set_title(f"p(feature 1) = {p1:g}", fontsize=10)
        for ax in list(axes.flat)[len(config.p_feature1):]:
            ax.axis("off")
        if view == "colour":
            inset = axes.flat[0].inset_axes([1.02, 0.62, 0.3, 0.36]) if len(config.p_feature1) < 3 else \
                axes.flat[2].inset_axes([0.68, 0.04, 0.3, 0.3])
            inset.imshow(legend_image(), origin="lower", extent=[0, 1, 0, 1])
            inset.set_xlabel("superposition", fontsize=6)
            inset.set_ylabel("‖W₂‖", fontsize=6)
            inset.tick_params(labelsize=5)
        else:
            _class_legend(axes.flat[0])
        fig.tight_layout()
        caption = ("Drop-worst means of ‖W₂‖ and its superposition, in the seed's colour map (legend inset)."
                   if view == "colour" else "Best-of-N solution class; aligned (PCA-like) pairs are green.")
        run.save_figure(fig, f"hierarchy-{view}", caption + (" Black: exact minimum-loss boundaries." if exact else ""))
    run.save_plotly(_plotly_hierarchy(config, x, y, views, exact), "hierarchy-interactive",
                    "Hover for ‖W₂‖, superposition, signed cosine, losses and classes; black: exact boundaries.")
    if collapsed:
        run.note(f"Every model collapsed (largest mean ‖W‖ over panels = {max(mean_norm):.2g}): with "
                 f"loss_reduction={config.loss_reduction} and optimizer={config.optimizer}, the per-model data "
                 "gradient is divided by the ensemble size while the coupled weight decay is not, so the decay wins "
                 "and the diagram is blank. Sum the losses (the default) or use decoupled decay (adamw).")
    elif exact is not None:
        run.note(f"Best-of-{config.members} agrees with the exact minimum's class in {summary['analytic_agreement']:.1%} "
                 f"of cells (mean over panels); the majority of members in {summary['majority_agreement']:.1%}. With "
                 "one hidden unit the superposition score cannot tell antipodal from aligned pairs; the class view can.")


def _plotly_hierarchy(config, x, y, views, exact):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    n = len(config.p_feature1)
    rows = int(np.ceil(n / 3))
    fig = make_subplots(rows=rows, cols=3, subplot_titles=[f"p(feature 1) = {p:g}" for p in config.p_feature1],
                        horizontal_spacing=0.05, vertical_spacing=0.08)
    X, Y = np.meshgrid(x, y)
    names = np.array(SOLUTION_CLASSES)
    for index, p1 in enumerate(config.p_feature1):
        norm, sup, cell = views["colour"][p1]
        best = views["class"][p1]
        cosine = np.median(cell["cosine"], -1)
        custom = np.stack([np.round(norm.ravel(), 4), np.round(sup.ravel(), 4), np.round(cosine.ravel(), 3),
                           np.round(cell["loss"].min(-1).ravel(), 6), names[best].ravel(),
                           names[exact["solution"][index]].ravel() if exact else np.full(best.size, "-")], -1)
        row, col = index // 3 + 1, index % 3 + 1
        fig.add_trace(go.Scatter(
            x=X.ravel(), y=Y.ravel(), mode="markers", customdata=custom, showlegend=False,
            marker={"symbol": "square", "size": max(3, 240 // len(x)), "color": css(phase_rgb(norm, sup)),
                    "line": {"width": 0}},
            hovertemplate="importance=%{x:.3f}<br>p(2|1)=%{y:.3f}<br>‖W₂‖=%{customdata[0]}<br>superposition="
                          "%{customdata[1]}<br>median cosine=%{customdata[2]}<br>best loss=%{customdata[3]}"
                          "<br>best-of-N class: %{customdata[4]}<br>exact: %{customdata[5]}<extra></extra>"),
            row=row, col=col)
        if exact is not None:
            bx, by = boundary_segments(exact["solution"][index], x, y)
            fig.add_trace(go.Scatter(x=bx, y=by, mode="lines", line={"color": "black", "width": 1.5},
                                     showlegend=False, hoverinfo="skip"), row=row, col=col)
        fig.update_xaxes(type="log", row=row, col=col)
        fig.update_yaxes(type="log", row=row, col=col)
    fig.update_layout(width=1300, height=420 * rows, plot_bgcolor="white",
                      title="Hierarchical superposition (colour: the seed's ‖W₂‖ × superposition map)")
    return fig


# -- toy-geometry --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class GeometryConfig(ExperimentConfig):
    """TMS's geometry: the pentagon, and feature dimensionality against sparsity."""

    pentagon_members: int = param(8, "pentagon models trained (the lowest loss is drawn)", low=1, high=256)
    pentagon_steps: int = param(5000, "pentagon training steps", low=1)
    features: int = param(200, "n for the dimensionality sweep", low=2, high=4096)
    hidden: int = param(20, "m for the dimensionality sweep", low=1, high=1024)
    sparsities: int = param(16, "sparsity values, log-spaced in 1/(1 − S) from 1 to 1000", low=2, high=200)
    steps: int = param(4000, "training steps for the sweep", low=1)
    batch: int = param(1024, "batch size", low=1)
    learning_rate: float = param(1e-3, "AdamW learning rate", low=1e-8, high=10.0)

    def check(self) -> None:
        if self.hidden >= self.features:
            raise ValueError(f"hidden (m = {self.hidden}) must be smaller than features (n = {self.features}): "
                             "with m >= n every feature gets its own dimension and nothing is superposed")


FRACTIONS = (1.0, 3 / 4, 2 / 3, 1 / 2, 2 / 5, 3 / 8)


def _geometry_cell(config: GeometryConfig, key, n, m, density, importance, members, steps):
    k_init, k_data = jax.random.split(key)
    params = init_params(k_init, members, n, m)
    features = make_features(np.asarray(density, np.float32))
    result = train(k_data, params, features, np.asarray(importance, np.float32), steps=steps, batch=config.batch,
                   learning_rate=config.learning_rate, schedule="cosine", log_every=steps // min(steps, 50))
    W = result.params.W
    return {"W": W, "b": result.params.b, "final_loss": result.losses[-1], "curve": result.losses,
            "dimensionality": dimensionality(W), "norms": feature_norms(W)}


@experiment("toy-geometry", GeometryConfig, quick={"pentagon_steps": 3000, "features": 100, "hidden": 10,
                                                   "sparsities": 8, "steps": 1500, "batch": 512})
def toy_geometry(config: GeometryConfig, run: RunContext) -> None:
    """The pentagon (n=5, m=2) and features per dimension against 1/(1 − S), with D_i clustering."""
    plt = pyplot()
    k_pent, k_sweep = jax.random.split(run.key)
    pent = run.cell("pentagon", lambda: _geometry_cell(
        config, k_pent, 5, 2, np.full((config.pentagon_members, 5), 0.1),
        np.tile(0.9 ** np.arange(5), (config.pentagon_members, 1)), config.pentagon_members, config.pentagon_steps))
    inverse = np.logspace(0, 3, config.sparsities)  # 1 / (1 − S)
    densities = 1.0 / inverse
    sweep = run.cell("sweep", lambda: _geometry_cell(
        config, k_sweep, config.features, config.hidden, np.repeat(densities[:, None], config.features, 1),
        np.ones((config.sparsities, config.features)), config.sparsities, config.steps))
    best = int(np.argmin(pent["final_loss"]))
    W = pent["W"][best]
    per_dimension = np.sum(sweep["W"] ** 2, axis=(1, 2)) / config.hidden  # ‖W‖_F² / m: features per dimension
    represented = sweep["norms"] > 0.5
    dims = sweep["dimensionality"][represented]
    # the listed values are the configurations down to 3/8; below it features pack irregularly
    in_range = dims >= 0.35
    distance = np.abs(dims[in_range][:, None] - np.array(FRACTIONS)[None])
    near = np.min(distance, 1)
    nearest = np.argmin(distance, 1)[near < 0.03]
    run.log_metrics(
        pentagon_dimensionality=[float(v) for v in pent["dimensionality"][best]],
        pentagon_norms=[float(v) for v in pent["norms"][best]],
        pentagon_loss=float(pent["final_loss"][best]),
        features_per_dimension={f"{v:.4g}": float(p) for v, p in zip(inverse, per_dimension)},
        fraction_near_sticky_values=float(np.mean(near < 0.03)) if near.size else 0.0,
        sticky_value_counts={f"{v:.3f}": int(np.sum(nearest == i)) for i, v in enumerate(FRACTIONS)},
        features_with_dimensionality_at_least_3_8=int(in_range.sum()),
        represented_features=int(represented.sum()),
    )
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    ax = axes[0]
    for i in range(5):
        ax.arrow(0, 0, W[0, i], W[1, i], width=0.01, color=plt.cm.viridis(i / 5), length_includes_head=True)
        ax.annotate(f"{i} (D={pent['dimensionality'][best][i]:.2f})", W[:, i] * 1.08, fontsize=8, ha="center")
    ax.set(aspect="equal", xlim=(-1.4, 1.4), ylim=(-1.4, 1.4), title="pentagon: columns of W (n=5, m=2, S=0.9)")
    axes[1].semilogx(inverse, per_dimension, "o-")
    axes[1].set(xlabel="1 / (1 − S)", ylabel="features per dimension ‖W‖²_F / m",
                title=f"n={config.features}, m={config.hidden}")
    for value in FRACTIONS:
        axes[2].axhline(value, color="grey", lw=0.6, ls="--")
    xs = np.repeat(inverse[:, None], config.features, 1)
    axes[2].scatter(xs[represented], dims, s=4, alpha=0.5)
    axes[2].set(xscale="log", xlabel="1 / (1 − S)", ylabel="feature dimensionality D_i",
                title="D_i of represented features (‖W_i‖ > 0.5); dashed: 1, 3/4, 2/3, 1/2, 2/5, 3/8")
    fig.tight_layout()
    run.save_figure(fig, "geometry", "Left: the pentagon. Middle: features per dimension. Right: D_i per feature.")
    run.note(_geometry_note(config, near, nearest, inverse, per_dimension, sweep, represented))


def _geometry_note(config, near, nearest, inverse, per_dimension, sweep, represented) -> str:
    """The toy-geometry findings from the run: how D_i clusters, and what the sparsest model does."""
    names = ("1", "3/4", "2/3", "1/2", "2/5", "3/8")
    text = (f"Of the represented features with D_i ≥ 0.35, {np.mean(near < 0.03) if near.size else 0:.0%} lie within "
            "0.03 of 1, 3/4, 2/3, 1/2, 2/5 or 3/8")
    if nearest.size:
        counts = np.bincount(nearest, minlength=len(FRACTIONS))
        text += f" (most at {names[int(np.argmax(counts))]}: {counts.max()} features)"
    last = represented[-1]
    dims = np.asarray(sweep["dimensionality"][-1])[last]
    text += (f". At the highest sparsity (1/(1 − S) = {inverse[-1]:.0f}) {int(last.sum())} of the {config.features} "
             f"features are represented in the m = {config.hidden} dimensions ({per_dimension[-1]:.2f} features per "
             "dimension)")
    if dims.size:
        text += f", with median D_i {np.median(dims):.2f} and {np.mean(dims < 0.375):.0%} of them below 3/8"
    return text + "."
