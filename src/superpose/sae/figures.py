"""Figures of the sae experiments (matplotlib PNG, plotly HTML), each labelled to read without the code."""

from __future__ import annotations

import numpy as np

from superpose.runner.plotting import pyplot

TOY_SETTINGS = ("independent", "hierarchical")  # the toy settings of sae-toy: its control, and its subject


def nan_mean(values) -> float:
    """The mean over finite entries (NaN if none)."""
    values = np.asarray(values, float)
    return float(np.nanmean(values)) if np.any(np.isfinite(values)) else float("nan")


def toy_figures(config, run, fits, pairs, labels, metrics) -> None:
    plt = pyplot()
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
                ax.bar(xpos, nan_mean(values), width * 0.9, color=colours[setting], alpha=0.6,
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
            cell = fits[setting][kind][0]  # the first SAE of each setting and kind
            for i, (p, c) in enumerate(pairs):
                lp, lc = cell["matched"][p], cell["matched"][c]
                ax.plot(cell["cosines"][p, lc], cell["cosines"][c, lc], "o", color="tab:orange", ms=5,
                        label="child's latent" if i == 0 else None)
                ax.plot(cell["cosines"][p, lp], cell["cosines"][c, lp], "s", color="tab:blue", ms=5,
                        label="parent's latent" if i == 0 else None)
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
    run.save_plotly(plotly_cosines(config, fits, labels), "cosine-matrices",
                    "Cosine of every SAE latent (first SAE of each kind, latents in matched order) with every true "
                    "feature direction; hover for values.")


def plotly_cosines(config, fits, labels):
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


def circle_figures(run, model, encoding, Z, truth, per_circle, metrics) -> None:
    plt = pyplot()
    planes, support = np.asarray(truth.planes), np.asarray(truth.support)
    columns = min(len(planes), 4)
    rows = -(-len(planes) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 5 * rows), squeeze=False)
    for c, ax in enumerate(axes.ravel()[:len(planes)]):
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
        if c == 0:
            ax.legend(fontsize=8, loc="upper right")
    for ax in axes.ravel()[len(planes):]:
        ax.set_visible(False)
    fig.tight_layout()
    run.save_figure(fig, "circles", "Each planted circle's plane: the rows projected onto it and the fitted atom's "
                    "curve drawn there (offset + a·Φ(t)B at the median activity a of the rows that use it). Rows "
                    "without the circle sit near the centre where the planes are orthogonal, and spread over the "
                    "plane where other circles' planes overlap it (superposition).")

    names = ["manifold SAE"] + list(metrics["baselines_r2"])
    ins = [metrics["reconstruction_r2"]] + [v["in_sample"] for v in metrics["baselines_r2"].values()]
    outs = [metrics["heldout_r2"]] + [v["held_out"] for v in metrics["baselines_r2"].values()]
    fig, ax = plt.subplots(figsize=(max(7.5, 1.6 * len(names)), 4))
    x = np.arange(len(names))
    ax.bar(x - 0.2, ins, 0.4, label="training rows")
    ax.bar(x + 0.2, outs, 0.4, label="held-out rows")
    ax.set_xticks(x, names)
    ax.set(ylabel="explained variance R²", ylim=(0, 1.05), title="reconstruction: manifold SAE against linear models")
    ax.legend(loc="lower right")
    run.save_figure(fig, "reconstruction", "Explained variance (column-centred R²) of each model on training and "
                    "held-out rows of the same planted circles.")


def grokking_figures(run, network, power, frequencies, fits, per_fit, P) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 4))
    axes[0].plot(network.steps, network.train_accuracy, label="training pairs")
    axes[0].plot(network.steps, network.test_accuracy, label="held-out pairs")
    axes[0].set(xlabel="AdamW step", ylabel="accuracy", ylim=(-0.02, 1.02), title=f"(a + b) mod {P}")
    axes[0].legend(loc="lower right")
    share = power / power.sum()
    k = np.arange(1, share.size + 1)
    axes[1].bar(k, share, color="tab:grey", label="embedding's Fourier power")
    axes[1].bar(frequencies, share[frequencies - 1], color="tab:red", label="key frequencies")
    for f in frequencies:
        axes[1].annotate(str(int(f)), (f, share[f - 1]), ha="center", va="bottom", fontsize=8)
    axes[1].set(xlabel="frequency k (cycles over the P tokens)", ylabel="share of the non-constant power",
                title="Fourier spectrum of the token embedding")
    axes[1].legend(loc="upper right")
    fig.tight_layout()
    run.save_figure(fig, "training-and-spectrum", "Left: accuracy on the training pairs and the held-out pairs during "
                    "training (grokking: the held-out accuracy rises after the training accuracy). Right: the power of "
                    "the embedding at each frequency k over the token axis (k and P − k together), as a share of the "
                    "total; red bars are the key frequencies the circle atoms are matched to.")
    K = len(frequencies)
    fig, axes = plt.subplots(len(fits), K, figsize=(2.9 * K, 2.9 * len(fits)), squeeze=False)
    tokens = np.arange(P)
    for row, (name, (fit, _)) in enumerate(fits.items()):
        m = per_fit[name]
        for col, (k, atom) in enumerate(zip(m["key_frequency_of_circle"], m["atom_of_key_frequency"])):
            ax = axes[row, col]
            points = ax.scatter((k * tokens % P) / P, fit.encoding.coords[:, atom], s=8, c=tokens, cmap="viridis")
            ax.set(xlim=(0, 1), ylim=(0, 1), xlabel=f"k·a/P mod 1 (k = {k})",
                   ylabel=f"{name}\ncoordinate t (periods)" if col == 0 else "coordinate t (periods)",
                   title=f"atom {atom}: R² {m['circular_r2'][col]:.3f}, best k {m['matched_frequencies'][col]}")
    fig.tight_layout()
    fig.colorbar(points, ax=axes.ravel().tolist(), shrink=0.6, label="token a")
    run.save_figure(fig, "circle-coordinates", "Each fitted circle's coordinate t (periods) against k·a/P mod 1 for "
                    "every token a (colour: a), the circle matched to key frequency k by circular R² (Hungarian). A "
                    "perfect circle lies on one line of slope ±1 (mod 1); 'best k' is the frequency in 1..P//2 its "
                    "coordinate fits best. Rows: fit_sae from its own starts; a start from principal-component pairs "
                    "with every atom on (data only); a start on the key-frequency circles themselves (a check of the "
                    "objective).")


def sweep_figure(run, rows, dimensions, panels) -> None:
    """Heat maps over (rows n, dimension p): ``panels`` is [(title, values (len(rows), len(dimensions)),
    colour map, (vmin, vmax) or None)], one annotated panel each."""
    plt = pyplot()
    from matplotlib import patheffects

    outline = [patheffects.withStroke(linewidth=1.5, foreground="black")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.3 * len(panels), 3.9))
    for ax, (title, values, cmap, limits) in zip(np.atleast_1d(axes), panels):
        finite = np.where(np.isfinite(values), values, np.nan)
        image = ax.imshow(finite, cmap=cmap, origin="lower", aspect="auto",
                          vmin=None if limits is None else limits[0], vmax=None if limits is None else limits[1])
        ax.set_xticks(range(len(dimensions)), [str(p) for p in dimensions])
        ax.set_yticks(range(len(rows)), [str(n) for n in rows])
        ax.set(xlabel="ambient dimension p", ylabel="rows n", title=title)
        for (i, j), value in np.ndenumerate(values):
            ax.text(j, i, f"{value:.3g}", ha="center", va="center", fontsize=7, color="white", path_effects=outline)
        fig.colorbar(image, ax=ax, shrink=0.8)
    fig.tight_layout()
    run.save_figure(fig, "sweep", "Per cell (rows n × ambient dimension p, one planted circle each): the circular R² "
                    "between the fitted coordinate and the planted angle; the circular variance of the fitted "
                    "coordinates (near 0: a collapsed chart); the selected log λ_smooth and log λ_sparse (TopK logit "
                    "precision), in data units; and V at the fit minus V at the collapsed chart (negative: the fit "
                    "is preferred), in nats.")
