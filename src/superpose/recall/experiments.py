"""Registered experiments of superpose.recall: fitting Morton2013, parameter recovery, the choice rule."""

from __future__ import annotations

import contextlib
import dataclasses
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from matplotlib.colors import to_hex

from superpose.numerics import choice_probabilities, float64_enabled, log_choice_probability_of
from superpose.numerics.experiments import scale_then_mask
from superpose.recall.analyses import lag_crp, pnr, spc
from superpose.recall.clustering import category_crp, distance_crp, distances_by_item
from superpose.recall.compare import DEFAULT_VARIANTS as DEFAULT_COMPARED
from superpose.recall.compare import VARIANTS as COMPARE_VARIANTS
from superpose.recall.compare import compare_variants, reference_variant, summarise, winners
from superpose.recall.data import RecallDataset
from superpose.recall.fitting import AT_BOUND_FRACTION, DEFAULT_AGREE, FitResult, fit, nll64, padded_shapes
from superpose.recall.likelihood import event_activations, prepare
from superpose.recall.parameters import DEFAULT_FIXED, DEFAULT_FREE, make_parameters
from superpose.recall.samples import SAMPLES, load_sample
from superpose.recall.search import search_box
from superpose.recall.simulation import simulate, simulate_like, simulate_variant_like
from superpose.recall.variants import similarity_from_distances
from superpose.runner import ExperimentConfig, RunContext, experiment, param
from superpose.runner.files import write_text
from superpose.runner.plotting import pyplot

LAG_WINDOW = 5


_SUBJECTS_ACCEPTED = "'all', 'first:N' (the N lowest subject ids of the data set) or comma-separated subject ids such as 1,2"


def _parse_subjects(text: str) -> tuple[int, ...] | int | None:
    """None for 'all', an int N for 'first:N', else the subject ids."""
    text = text.strip().lower()
    if text == "all":
        return None
    if text.startswith("first:"):
        try:
            count = int(text[len("first:"):])
        except ValueError:
            count = 0
        if count < 1:
            raise ValueError(f"subjects must be {_SUBJECTS_ACCEPTED}, with N >= 1; got {text!r}")
        return count
    try:
        values = tuple(int(part) for part in text.replace(";", ",").split(",") if part.strip())
    except ValueError as error:
        raise ValueError(f"subjects must be {_SUBJECTS_ACCEPTED}, got {text!r}") from error
    if not values:
        raise ValueError(f"subjects must name at least one subject: {_SUBJECTS_ACCEPTED}")
    return values


def _chosen_subjects(dataset, text: str):
    """The data set restricted to the subjects that ``text`` names (see :func:`_parse_subjects`)."""
    chosen = _parse_subjects(text)
    if chosen is None:
        return dataset
    if isinstance(chosen, int):
        chosen = tuple(int(s) for s in dataset.subjects[:chosen])  # sorted ids
    return dataset.select(subjects=chosen)


def _band(table: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Mean over subjects and a 95% band (± 1.96 standard errors of the subject means)."""
    grouped = table.dropna(subset=[y]).groupby(x)[y]
    out = grouped.agg(["mean", "std", "count"]).reset_index()
    half = 1.96 * out["std"].fillna(0.0) / np.sqrt(out["count"].clip(lower=1))
    return out.assign(low=out["mean"] - half, high=out["mean"] + half)


def _curves(dataset: RecallDataset, distances: np.ndarray | None = None) -> dict[str, pd.DataFrame]:
    """Per-subject SPC, PFR (first recall) and lag-CRP, with subject-level bands; with ``distances`` (over item
    numbers) also the semantic CRP by distance bin and the within-category CRP (a single value per subject)."""
    first = pnr(dataset)
    crp = lag_crp(dataset)
    crp = crp[(crp["lag"].abs() <= LAG_WINDOW) & (crp["lag"] != 0)]
    out = {"spc": _band(spc(dataset), "input", "recall"),
           "pfr": _band(first[first["output"] == 1], "input", "prob"),
           "crp": _band(crp, "lag", "prob")}
    if distances is not None:
        out["semantic_crp"] = _band(distance_crp(dataset, distances), "center", "prob")
        out["category_crp"] = _band(category_crp(dataset).assign(transition="within category"), "transition", "prob")
    return out


PANELS = {
    "spc": ("serial position (study position, 1 = first)", "P(recall)"),
    "pfr": ("serial position (study position, 1 = first)", "P(first recall)"),
    "crp": ("lag (study positions, next − previous recall)", "conditional response probability"),
    "semantic_crp": ("semantic distance (cosine distance, bin centre)", "conditional response probability"),
    "category_crp": ("data and simulated models", "P(within-category transition | possible)"),
}
"""x and y labels of each curve of :func:`_curves` (probabilities are unitless)."""

MODEL_COLOURS = ("tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive")


def _compare_figures(run: RunContext, data: dict[str, pd.DataFrame], models: dict[str, dict[str, pd.DataFrame]],
                     title: str, panels: tuple[str, ...] = ("spc", "pfr", "crp"), name: str = "data_vs_model"
                     ) -> dict[str, dict[str, float]]:
    """Data against one or more models' curves (PNG and plotly), and the RMS difference of each model's curve
    from the data's over the points both have: ``{panel: {model: rms}}``. The category CRP is one point per
    source (data, then each model) with its band."""
    plt = pyplot()
    from plotly.subplots import make_subplots

    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2), squeeze=False)
    interactive = make_subplots(rows=1, cols=len(panels), subplot_titles=[PANELS[p][1] for p in panels])
    sources = [("data", data, "black")] + [(label, curves, MODEL_COLOURS[i % len(MODEL_COLOURS)])
                                         for i, (label, curves) in enumerate(models.items())]
    rms: dict[str, dict[str, float]] = {}
    for col, (ax, panel) in enumerate(zip(axes[0], panels), start=1):
        xlabel, ylabel = PANELS[panel]
        for index, (source, curves, colour) in enumerate(sources):
            table = curves[panel]
            x = table.iloc[:, 0].to_numpy()
            if panel == "category_crp":  # one value: a point per source
                x = np.full(len(table), index)
                ax.errorbar(x, table["mean"], yerr=[table["mean"] - table["low"], table["high"] - table["mean"]],
                            fmt="o", color=colour, capsize=3, label=source)
            elif panel == "crp":
                for side in (x < 0, x > 0):
                    ax.plot(x[side], table["mean"][side], "o-", color=colour, label=source if side[0] else None)
                    ax.fill_between(x[side], table["low"][side], table["high"][side], color=colour, alpha=0.2)
            else:
                ax.plot(x, table["mean"], "o-", color=colour, label=source, markersize=3)
                ax.fill_between(x, table["low"], table["high"], color=colour, alpha=0.2)
            interactive.add_scatter(x=[source] * len(x) if panel == "category_crp" else x, y=table["mean"],
                                    mode="markers" if panel == "category_crp" else "lines+markers",
                                    name=f"{source} {panel}", line={"color": to_hex(colour)}, col=col, row=1,
                                    error_y={"type": "data", "symmetric": False,
                                             "array": table["high"] - table["mean"],
                                             "arrayminus": table["mean"] - table["low"]},
                                    hovertemplate=f"{xlabel} %{{x}}<br>{ylabel} %{{y:.3f}}<extra>{source}</extra>")
        if panel == "category_crp":
            ax.set_xticks(range(len(sources)), [source for source, _, _ in sources], rotation=30, ha="right")
            ax.set_xlim(-0.5, len(sources) - 0.5)
        ax.set(xlabel=xlabel, ylabel=ylabel, ylim=(0, None))
        if len(models) == 1 or col == 1:
            ax.legend(frameon=False, fontsize=8 if len(models) > 1 else None)
        key = data[panel].columns[0]
        rms[panel] = {}
        for label, curves in models.items():
            merged = data[panel].merge(curves[panel], on=key, suffixes=("_data", "_model"))
            rms[panel][label] = float(np.sqrt(np.mean((merged["mean_data"] - merged["mean_model"]) ** 2)))
    fig.suptitle(title)
    n_subjects = max(int(table["count"].max()) for table in data.values())
    bands = ("Means over subjects with 95% bands (±1.96 standard errors of the subject means)." if n_subjects > 1
             else "One subject, so no band over subjects: the data's curves are that subject's, the model's its "
                  "simulated copies pooled.")
    run.save_figure(fig, name, caption=f"{title}. {bands}")
    interactive.update_layout(title=title, height=420)
    run.save_plotly(interactive, name, caption="Interactive version (hover for values).")
    return rms


@dataclasses.dataclass(frozen=True)
class FitConfig(ExperimentConfig):
    """Fit CMR (11 free parameters, γ_CF = 1) to every subject of a psifr sample data set."""

    dataset: str = param("Morton2013", "psifr sample data set", choices=tuple(SAMPLES))
    subjects: str = param("all", "'all', 'first:N' (the N lowest ids) or comma-separated subject ids, e.g. 1,2")
    restarts: int = param(2, "the fewest DE restarts per subject (exactly this many when confirm is 0)", low=1,
                          high=64)
    popsize: int = param(15, "DE population per free parameter", low=4, high=200)
    tol: float = param(1e-2, "DE relative tolerance (the gradient polish finishes the fit)", low=1e-8, high=1.0)
    polish_steps: int = param(200, "L-BFGS iterations per round of the float64 gradient polish (0 = none)", low=0)
    sim_repeats: int = param(10, "simulated copies of every list for the model curves", low=1, high=1000)
    confirm: float = param(0.1, "nats: restarts go on (up to max_restarts) until "
                                f"{DEFAULT_AGREE} end within this of the best; 0 = exactly `restarts` restarts",
                           low=0.0, high=100.0)
    max_restarts: int = param(12, "the most restarts per subject when confirm > 0", low=2, high=256)
    bounds: str = param("", "search bounds to widen or narrow, e.g. 'choice_sensitivity=0:1000,item_support=0:500' "
                            "(default: jaxcmr's)")

    def check(self) -> None:
        _parse_subjects(self.subjects)
        parse_bounds(self.bounds)
        if self.confirm > 0 and self.max_restarts < self.restarts:
            raise ValueError(f"max_restarts ({self.max_restarts}) must be >= restarts ({self.restarts})")


def parse_bounds(text: str) -> dict[str, tuple[float, float]]:
    """``'name=low:high,...'`` as ``{name: (low, high)}`` (checked against the model by ``fit``)."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, pair = part.partition("=")
        low, colon, high = pair.partition(":")
        try:
            if not colon:
                raise ValueError
            out[name.strip()] = (float(low), float(high))
        except ValueError:
            raise ValueError(f"bounds must read 'name=low:high' separated by commas, got {part!r}") from None
    unknown = sorted(set(out) - set(DEFAULT_FREE))
    if unknown:
        raise ValueError(f"bounds name {unknown}, which are not free in recall-fit; free: {list(DEFAULT_FREE)}")
    search_box(DEFAULT_FREE, out)  # finite, ordered, inside the model's limits
    return out


def _certificate(restarts: int, confirm: float, max_restarts: int = 12) -> dict[str, Any]:
    """``fit``'s restart settings from an experiment's: ``confirm`` 0 means exactly ``restarts`` restarts,
    and the budget of a confirmed fit is never below ``restarts``."""
    return {"restarts": restarts, "confirm": confirm if confirm > 0 else None,
            "max_restarts": max(max_restarts, restarts)}


@experiment("recall-fit", FitConfig, quick={"subjects": "first:2", "restarts": 1, "confirm": 0.0, "sim_repeats": 4})
def recall_fit(config: FitConfig, run: RunContext) -> None:
    """Fit CMR to Morton2013 (or peers_notask) per subject; data against simulated model."""
    dataset = _chosen_subjects(load_sample(config.dataset), config.subjects)
    subjects = tuple(int(s) for s in dataset.subjects)
    confirming = config.confirm > 0
    result = fit(dataset, subjects, bounds=parse_bounds(config.bounds), popsize=config.popsize, tol=config.tol,
                 seed=config.seed, polish_steps=config.polish_steps,
                 **_certificate(config.restarts, config.confirm, config.max_restarts),
                 show_progress=run.progress is not None, results_path=run.out / "fits.json")
    table = result.table()
    write_text(run.out / "fits.csv", table.to_csv(index=False))
    params = {f.subject: make_parameters(f.parameters) for f in result.fits}
    simulated = simulate_like(dataset, params, jax.random.fold_in(run.key, 1), repeats=config.sim_repeats)
    rms = _compare_figures(run, _curves(dataset), {"CMR": _curves(simulated)},
                           f"{config.dataset}: data and CMR fitted per subject ({len(subjects)} subjects)")
    rms = {f"{panel}_rms_difference": by_model["CMR"] for panel, by_model in rms.items()}
    spreads = [max(f.restart_nlls) - min(f.restart_nlls) for f in result.fits]
    run.log_metrics(
        subjects=len(subjects), total_nll=float(table["nll"].sum()), mean_nll=float(table["nll"].mean()),
        nll_by_subject={int(s): float(v) for s, v in zip(table["subject"], table["nll"])},
        mean_seconds_per_subject=float(table["seconds"].mean()),
        mean_de_spread_before_polish_nll=float(np.mean(spreads)),  # not the agreement of polished fits
        mean_final_spread_nll=float(np.mean([max(f.final_nlls) - min(f.final_nlls) for f in result.fits])),
        polished_fraction=float(np.mean([f.polished for f in result.fits])),
        nonfinite_evaluations=result.nonfinite_evaluations,  # likelihoods scored as 1e12 (inf/NaN regions)
        parameters_at_bounds_by_subject={f.subject: result.at_bounds(f.subject) for f in result.fits},
        **rms,
    )
    if confirming:  # how many restarts each subject took, how many reached its best, and how each ended
        run.log_metrics(
            confirmed_fraction=float(np.mean([f.status.startswith("confirmed") for f in result.fits])),
            restarts_by_subject={f.subject: len(f.restart_nlls) for f in result.fits},
            restarts_at_best_by_subject={f.subject: f.restarts_at_best for f in result.fits},
            status_by_subject={f.subject: f.status for f in result.fits},
        )
    restarts = (f"at least {config.restarts} differential-evolution restarts each" if confirming else
                f"{config.restarts} differential-evolution restarts each")
    finals = [max(f.final_nlls) - min(f.final_nlls) for f in result.fits]
    spread = (f" Before the polish, the restarts' DE end points spread over {np.mean(spreads):.1f} nats on average "
              f"(DE at tol {config.tol:g} stops while its population still spreads); after it, the restarts' final "
              f"NLLs spread over {np.mean(finals):.2f} nats (different basins, not rounding).")
    run.note(f"Fitted {len(subjects)} subjects of {config.dataset} with {restarts} (population "
             f"{config.popsize}×{len(result.free)}, tol {config.tol:g}), each polished in float64 by L-BFGS from "
             f"{result.settings['polish_starts']} distinct DE end members (the polish improved "
             f"{100 * np.mean([f.polished for f in result.fits]):.0f}% of subjects' best fits). Total NLL "
             f"{table['nll'].sum():.1f}.{spread} Per-subject parameters are in fits.csv and fits.json.")
    bounded = {f.subject: result.at_bounds(f.subject) for f in result.fits}
    bounded = {s: b for s, b in bounded.items() if b}
    run.note(f"{len(bounded)} of {len(result.fits)} subjects have a free parameter on a bound (within "
             f"{AT_BOUND_FRACTION:.1%} of its range; not an interior optimum)"
             + (": " + "; ".join(f"{s}: " + ", ".join(f"{n} ({side})" for n, side in b.items())
                                 for s, b in list(bounded.items())[:8]) + (" …" if len(bounded) > 8 else "")
                if bounded else "") + ".")
    if confirming:
        confirmed = sum(f.status.startswith("confirmed") for f in result.fits)
        run.note(f"Confirmation was on: every restart was polished on its own, and restarts went on until "
                 f"{result.settings['agree']} ended "
                 f"within {config.confirm:g} nats of the best (at most {config.max_restarts}). {confirmed} of "
                 f"{len(result.fits)} subjects were confirmed, after "
                 f"{min(len(f.restart_nlls) for f in result.fits)}–{max(len(f.restart_nlls) for f in result.fits)} "
                 "restarts. Confirmation is evidence, not proof: a rarely found better basin can exist (docs/recall.md).")


@dataclasses.dataclass(frozen=True)
class RecoveryConfig(ExperimentConfig):
    """Simulate data sets from known parameters (Morton2013-sized), fit them, compare."""

    n_subjects: int = param(12, "simulated subjects (one parameter set each)", low=2, high=500)
    lists: int = param(48, "lists per subject", low=1, high=1000)
    list_length: int = param(24, "items per list", low=2, high=100)
    restarts: int = param(2, "the fewest DE restarts per subject (exactly this many when confirm is 0)", low=1,
                          high=64)
    polish_steps: int = param(200, "L-BFGS iterations of the float64 polish", low=0)
    confirm: float = param(0.0, "nats: > 0 runs restarts until two end within this of the best; 0 = exactly "
                                "`restarts` (the default: the fits are compared with the truth, not certified)",
                           low=0.0, high=100.0)


# Parameters are drawn from a box of typical fitted values (the full bounds include regions where
# the model makes no recalls, in which nothing can be recovered).
RECOVERY_BOX = {
    "encoding_drift_rate": (0.3, 0.95), "start_drift_rate": (0.01, 0.5), "recall_drift_rate": (0.3, 0.95),
    "mfc_learning_rate": (0.05, 0.6), "shared_support": (0.01, 2.0), "item_support": (0.5, 10.0),
    "primacy_scale": (0.5, 20.0), "primacy_decay": (0.05, 2.0), "stop_probability_scale": (0.002, 0.05),
    "stop_probability_growth": (0.1, 0.5), "choice_sensitivity": (1.0, 20.0),
}


@experiment("recall-recovery", RecoveryConfig, quick={"n_subjects": 4, "lists": 24, "confirm": 0.0})
def recall_recovery(config: RecoveryConfig, run: RunContext) -> None:
    """Parameter recovery: fitted against true values per parameter, with correlations."""
    plt = pyplot()
    truth_key, simulation_key = jax.random.split(run.key)
    names = list(DEFAULT_FREE)
    low, high = (np.array([RECOVERY_BOX[n][side] for n in names]) for side in (0, 1))
    draws = np.asarray(jax.random.uniform(truth_key, (config.n_subjects, len(names))), np.float64)
    truths = [dict(zip(names, map(float, low + row * (high - low)))) | DEFAULT_FIXED for row in draws]
    datasets = []
    for index, truth in enumerate(truths):
        one = simulate(make_parameters(truth), jax.random.fold_in(simulation_key, index), list_length=config.list_length,
                       n_lists=config.lists, subject=index + 1)
        datasets.append(one)
    combined = RecallDataset(
        subject=np.concatenate([d.subject for d in datasets]), list_length=np.concatenate([d.list_length for d in datasets]),
        presented=np.concatenate([d.presented for d in datasets]),
        recalls=np.concatenate([np.pad(d.recalls, ((0, 0), (0, config.list_length - d.recalls.shape[1])))
                                for d in datasets]))
    result = fit(combined, seed=config.seed, polish_steps=config.polish_steps,
                 **_certificate(config.restarts, config.confirm), show_progress=run.progress is not None,
                 results_path=run.out / "fits.json")
    fitted = {f.subject: f for f in result.fits}
    subjects = {i + 1: combined.select(subjects=[i + 1]) for i in range(config.n_subjects)}
    padded = padded_shapes(subjects)  # the fit's shapes: the true NLLs reuse its compiled programs
    true_nll = [nll64(prepare(subjects[i + 1], pad_to=padded[i + 1]), truths[i]) for i in range(config.n_subjects)]
    fig, axes = plt.subplots(3, 4, figsize=(15, 10.5))
    correlations = {}
    rows = []
    for ax, name in zip(axes.ravel(), names):
        true = np.array([t[name] for t in truths])
        got = np.array([fitted[i + 1].parameters[name] for i in range(config.n_subjects)])
        r = float(np.corrcoef(true, got)[0, 1]) if np.std(got) > 0 else float("nan")
        correlations[name] = r
        ax.scatter(true, got, s=18)
        low, high = RECOVERY_BOX[name]
        ax.plot([low, high], [low, high], "k--", lw=0.8)
        ax.set(title=f"{name}\nr = {r:.2f}", xlabel="true", ylabel="fitted")
        rows += [{"subject": i + 1, "parameter": name, "true": t, "fitted": g} for i, (t, g) in enumerate(zip(true, got))]
    gaps = np.array([fitted[i + 1].nll - true_nll[i] for i in range(config.n_subjects)])
    axes.ravel()[-1].hist(gaps, bins=max(3, config.n_subjects // 2))
    axes.ravel()[-1].set(title="NLL(fit) − NLL(truth)", xlabel="nats")
    fig.tight_layout()
    run.save_figure(fig, "recovery", caption="Fitted against true parameters (dashed: identity), and how much "
                    "better (negative) than the true parameters each fit explains its own data.")
    write_text(run.out / "recovery.csv", pd.DataFrame(rows).to_csv(index=False))
    run.log_metrics(correlations=correlations, median_correlation=float(np.nanmedian(list(correlations.values()))),
                    nll_fit_minus_truth=gaps.tolist(), fits_at_least_as_good_as_truth=float(np.mean(gaps <= 1e-6)))
    run.note(f"{config.n_subjects} simulated subjects of {config.lists} lists of {config.list_length} items. "
             f"Median correlation of fitted with true values: {np.nanmedian(list(correlations.values())):.2f}. "
             f"The fit reached a likelihood at least as high as the true parameters' for "
             f"{100 * np.mean(gaps <= 1e-6):.0f}% of subjects.")


@partial(jax.jit, static_argnames="order")
def _choice_over_taus(values: jax.Array, masks: jax.Array, taus: jax.Array, order: str) -> jax.Array:
    """(T, E, N) choice probabilities for each sensitivity, masking before or after scaling."""
    if order == "mask_then_scale":
        return jax.vmap(lambda t: choice_probabilities(values, masks, t))(taus)
    return jax.vmap(lambda t: jax.vmap(scale_then_mask, (0, 0, None))(values, masks, t))(taus)


@jax.jit
def _log_choice_over_taus(values: jax.Array, masks: jax.Array, taus: jax.Array, index: jax.Array) -> jax.Array:
    """(T, E) log-probability of each recalled item, mask-then-scale in log space."""
    return jax.vmap(log_choice_probability_of, (None, None, 0, None))(values, masks, taus, index)


@dataclasses.dataclass(frozen=True)
class ChoiceRuleConfig(ExperimentConfig):
    """The choice rule inside CMR: masking before or after power scaling, float32 and float64."""

    taus: int = param(60, "sensitivities on a log grid from 1 to 1000 (fits allow up to 100)", low=3, high=1000)
    lists: int = param(48, "simulated lists whose recall events are scored", low=1, high=1000)


@experiment("recall-choice-rule", ChoiceRuleConfig, quick={"taus": 30, "lists": 16})
def recall_choice_rule(config: ChoiceRuleConfig, run: RunContext) -> None:
    """Where scaling before masking collapses on CMR's real activations, against the sensitivity τ."""
    plt = pyplot()
    from plotly.subplots import make_subplots

    base = {"encoding_drift_rate": 0.7, "start_drift_rate": 0.05, "recall_drift_rate": 0.8, "mfc_learning_rate": 0.2,
            "mcf_learning_rate": 1.0, "shared_support": 0.05, "item_support": 5.0, "primacy_scale": 8.0,
            "primacy_decay": 0.5, "stop_probability_scale": 0.01, "stop_probability_growth": 0.3,
            "choice_sensitivity": 5.0}
    params = make_parameters(base)
    data = simulate(params, run.key, list_length=24, n_lists=config.lists)
    taus = np.geomspace(1.0, 1000.0, config.taus)
    # Activations of every recall event of the simulated data, from the likelihood's recursion.
    trials = prepare(data)
    acts = np.asarray(event_activations(params, trials), np.float64)
    masks = np.asarray(trials.event_mask)[: len(acts)]
    targets = np.asarray(trials.event_target)[: len(acts)]
    results = {}
    for dtype in ("float32", "float64"):
        with float64_enabled() if dtype == "float64" else contextlib.nullcontext():
            values = jnp.asarray(acts, dtype)
            index = jnp.asarray(targets)
            for order in ("mask_then_scale", "scale_then_mask"):
                probs = np.asarray(_choice_over_taus(values, jnp.asarray(masks), jnp.asarray(taus, dtype), order),
                                   np.float64)                                          # (T, E, N)
                total = probs.sum(-1)
                collapsed = np.mean(~(total > 0.5), axis=1)
                if order == "mask_then_scale":  # the likelihood's own log-space form
                    logs = _log_choice_over_taus(values, jnp.asarray(masks), jnp.asarray(taus, dtype), index)
                    nll = -np.sum(np.asarray(logs, np.float64), axis=1)
                else:
                    chosen = probs[:, np.arange(len(targets)), targets]
                    with np.errstate(divide="ignore"):
                        nll = -np.sum(np.log(np.where(total > 0, chosen / np.where(total > 0, total, 1), 0)), axis=1)
                results[(order, dtype)] = (collapsed, nll)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    interactive = make_subplots(rows=1, cols=2, subplot_titles=("recall events whose choice collapses",
                                                                "NLL of the recalls (choice part)"))
    styles = {"float32": "-", "float64": "--"}
    colours = {"mask_then_scale": "tab:green", "scale_then_mask": "tab:red"}
    metrics = {}
    for (order, dtype), (collapsed, nll) in results.items():
        label = f"{order.replace('_', ' ')} ({dtype})"
        axes[0].plot(taus, collapsed, styles[dtype], color=colours[order], label=label)
        axes[1].plot(taus, np.where(np.isfinite(nll), nll, np.nan), styles[dtype], color=colours[order], label=label)
        for col, y in ((1, collapsed), (2, np.where(np.isfinite(nll), nll, np.nan))):
            interactive.add_scatter(x=taus, y=y, name=label, line={"color": to_hex(colours[order]),
                                    "dash": "solid" if dtype == "float32" else "dash"}, row=1, col=col,
                                    showlegend=col == 1)
        first = np.flatnonzero(collapsed > 0)
        metrics[f"{order}_{dtype}_first_collapse_tau"] = float(taus[first[0]]) if first.size else None
        metrics[f"{order}_{dtype}_max_collapsed_fraction"] = float(collapsed.max())
    axes[0].set(xscale="log", xlabel="choice sensitivity τ", ylabel="fraction of recall events", ylim=(-0.02, 1.02))
    axes[1].set(xscale="log", xlabel="choice sensitivity τ", ylabel="−log P(recalled items) (nats)")
    for ax in axes:
        ax.axvline(100.0, color="grey", lw=0.8, ls=":")
        ax.legend(frameon=False, fontsize=8)
    interactive.update_xaxes(type="log")
    run.save_figure(fig, "choice_rule", caption="On CMR's own activations (simulated Morton2013-sized lists), "
                    "scaling before masking loses all probability mass once an already-recalled item dominates; "
                    "the NLL then becomes infinite (gaps). Dotted: τ = 100, the largest sensitivity fits allow. "
                    "Masking first stays finite at every τ, in both precisions.")
    run.save_plotly(interactive, "choice_rule", caption="Interactive version.")
    run.log_metrics(events=int(len(targets)), **metrics)
    run.note(f"{len(targets)} recall events of {config.lists} simulated lists. Scale-then-mask collapses first at "
             f"τ = {metrics['scale_then_mask_float32_first_collapse_tau']} in float32 and "
             f"τ = {metrics['scale_then_mask_float64_first_collapse_tau']} in float64; mask-then-scale never does.")



@dataclasses.dataclass(frozen=True)
class CompareConfig(ExperimentConfig):
    """Fit CMR variants to Morton2013 subjects and compare them by NLL, AIC, BIC, held-out likelihood and simulated
    curves."""

    subjects: str = param("first:2", "'all', 'first:N' (the N lowest ids) or comma-separated Morton2013 subject ids")
    variants: tuple[str, ...] = param(DEFAULT_COMPARED, f"variants to fit, from {', '.join(COMPARE_VARIANTS)}")
    folds: int = param(2, "k-fold cross-validation over each subject's lists (0 = none)", low=0, high=48)
    restarts: int = param(2, "the fewest DE restarts per fit (exactly this many when confirm is 0)", low=1, high=64)
    confirm: float = param(0.1, "nats: restarts go on until two end within this of the best; 0 = exactly `restarts`",
                           low=0.0, high=100.0)
    sim_repeats: int = param(5, "simulated copies of every list per variant for the data-against-model curves",
                             low=1, high=1000)

    def check(self) -> None:
        _parse_subjects(self.subjects)
        unknown = [v for v in self.variants if v not in COMPARE_VARIANTS]
        if unknown or not self.variants:
            raise ValueError(f"variants must be names from {list(COMPARE_VARIANTS)}, got {list(self.variants)}")
        if self.folds == 1:
            raise ValueError("folds must be 0 (no cross-validation) or at least 2")


COMPARED_CURVES = ("spc", "crp", "semantic_crp", "category_crp")
"""The curves recall-compare draws for the data and each variant's simulation."""

_CURVE_NAMES = {"spc": "SPC", "crp": f"lag-CRP (lags ±1..{LAG_WINDOW})", "semantic_crp": "semantic CRP",
                "category_crp": "category CRP"}


def _curves_table(sources: dict[str, dict[str, pd.DataFrame]]) -> pd.DataFrame:
    """The compared curves in one long table: ``source``, ``curve``, ``x``, ``mean``, ``low``, ``high`` and
    ``count`` (subjects with a value)."""
    tables = [curves[panel].rename(columns={curves[panel].columns[0]: "x"}).assign(source=source, curve=panel)
              for source, curves in sources.items() for panel in COMPARED_CURVES]
    return pd.concat(tables)[["source", "curve", "x", "mean", "low", "high", "count"]]


def _simulated_curves(run: RunContext, config: CompareConfig, dataset: RecallDataset, similarity: np.ndarray,
                      distances: np.ndarray) -> dict[str, dict[str, pd.DataFrame]]:
    """Each variant simulated per subject at its fitted parameters (``fits-<variant>.json``), and its curves.

    Every variant gets the same key (common random numbers: list k of copy r has the same key in each)."""
    curves = {}
    for name in config.variants:
        result = FitResult.load(run.out / f"fits-{name}.json")
        parameters = {f.subject: result.parameters(f.subject) for f in result.fits}
        simulated = simulate_variant_like(dataset, parameters, COMPARE_VARIANTS[name], jax.random.fold_in(run.key, 3),
                                          similarity=similarity, repeats=config.sim_repeats)
        curves[name] = _curves(simulated, distances)
    return curves


@experiment("recall-compare", CompareConfig,
            quick={"subjects": "first:1", "variants": ("base", "semantic"), "folds": 0, "restarts": 1, "confirm": 0.0})
def recall_compare(config: CompareConfig, run: RunContext) -> None:
    """CMR variants (base, + category, + semantics, + both, instance M^CF) compared per subject."""
    from psifr import fr

    plt = pyplot()
    dataset = _chosen_subjects(load_sample("Morton2013"), config.subjects)
    distances = distances_by_item(dataset, *fr.sample_distances("Morton2013"))
    similarity = similarity_from_distances(distances)
    table = compare_variants(dataset, config.variants, similarity=similarity, folds=config.folds,
                             key=jax.random.fold_in(run.key, 2), seed=config.seed, results_dir=run.out,
                             show_progress=run.progress is not None, **_certificate(config.restarts, config.confirm))
    summary = summarise(table)
    write_text(run.out / "compare.csv", table.to_csv(index=False))
    write_text(run.out / "summary.csv", summary.to_csv(index=False))
    criteria = [c for c in ("aic", "bic", "cv_nll") if c in table]
    labels = {"aic": "AIC", "bic": "BIC", "cv_nll": f"held-out NLL ({config.folds}-fold)"}
    fig, axes = plt.subplots(1, len(criteria), figsize=(4.6 * len(criteria), 4.2), squeeze=False)
    names = list(summary["variant"])
    reference = reference_variant(names)
    by_variant = summary.set_index("variant")
    for ax, criterion in zip(axes[0], criteria):
        per_subject = table.pivot(index="subject", columns="variant", values=criterion)
        delta = per_subject.sub(per_subject[reference], axis=0)[names]
        ax.bar(range(len(names)), by_variant.loc[names, f"delta_{criterion}"], color="0.75", label="sum over subjects")
        for i, name in enumerate(names):
            ax.scatter(np.full(len(delta), i), delta[name], s=14, color="C0", zorder=3,
                       label="one subject" if i == 0 else None)
        ax.axhline(0, color="k", lw=0.8)
        ax.set(xticks=range(len(names)), ylabel=f"{labels[criterion]} − {reference}'s (lower is better)",
               title=labels[criterion])
        ax.set_xticklabels(names, rotation=30, ha="right")
        ax.legend(frameon=False, fontsize=8)
    n_subjects = int(table["subject"].nunique())
    fig.suptitle(f"Morton2013: CMR variants against {reference} ({n_subjects} subjects)")
    run.save_figure(fig, "criteria", caption="Each criterion's difference from the reference model, summed over "
                    "subjects (bars) and per subject (points); negative: the variant is better.")
    data_curves = _curves(dataset, distances)
    model_curves = _simulated_curves(run, config, dataset, similarity, distances)
    write_text(run.out / "curves.csv", _curves_table({"data": data_curves, **model_curves}).to_csv(index=False))
    rms = _compare_figures(run, data_curves, model_curves,
                           f"Morton2013: data and each variant simulated at its fits ({n_subjects} subject"
                           f"{'s' if n_subjects > 1 else ''}, {config.sim_repeats} copies of every list)",
                           panels=COMPARED_CURVES, name="data_vs_variants")
    closest = {panel: min(per_variant, key=per_variant.get) for panel, per_variant in rms.items()}
    best = winners(summary)
    run.log_metrics(subjects=n_subjects, winners=best,
                    **{f"sum_{c}_by_variant": dict(zip(summary["variant"], map(float, summary[c])))
                       for c in ("nll", *criteria)},
                    rms_difference_by_curve=rms, closest_variant_by_curve=closest)
    confirmation = f"confirmed within {config.confirm:g} nats" if config.confirm > 0 else "no confirmation"
    cross_validation = (f"; held-out NLL sums each of {config.folds} folds of a subject's lists scored under the "
                        "variant fitted to the other folds (the same keyed split for every variant)" if config.folds
                        else "; no cross-validation (folds = 0)")
    run.note("Per criterion, the variant with the lowest sum over subjects: " + "; ".join(
        f"{labels.get(c, 'NLL')}: {w} ({float(by_variant.loc[w, f'delta_{c}']):+.1f} "
        f"against {reference})" for c, w in best.items()) + f". Each variant was fitted to each subject with at least "
        f"{config.restarts} restarts ({confirmation}); AIC = 2k + 2·NLL, BIC = k·ln(n events) + 2·NLL"
        + cross_validation + ".")
    run.note(f"Each variant was simulated at each subject's fitted parameters ({config.sim_repeats} copies of every "
             "list, the same keys for every variant). The simulated curves closest to the data (RMS difference of "
             "the means over subjects, over the points both have): " + "; ".join(
                 f"{_CURVE_NAMES[panel]}: {closest[panel]} ({rms[panel][closest[panel]]:.3f}; "
                 + ", ".join(f"{v} {d:.3f}" for v, d in rms[panel].items() if v != closest[panel]) + ")"
                 for panel in COMPARED_CURVES) + ".")
