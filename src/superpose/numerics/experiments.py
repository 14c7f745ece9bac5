"""Registered experiments of the numerical core: ``power-scale``."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from superpose.numerics.power import choice_probabilities, power_scale
from superpose.numerics.precision import float64_enabled
from superpose.runner import ExperimentConfig, RunContext, experiment, param
from superpose.runner.plotting import pyplot

# The seed notebook's printed outputs (float32), which power_scale must reproduce.
SEED_POWER_2 = (0.0625, 0.25, 0.5625, 1.0)
SEED_ONEHOT_100 = (0.0, 0.0, 1.0, 6.533167e-23)
SEED_MASK_THEN_SCALE = (0.0, 0.0, 9.9799335e-01, 2.0064958e-03, 7.4613226e-08)


def scale_then_mask(values: jax.Array, mask: jax.Array, scale: float) -> jax.Array:
    """The wrong order, for comparison: power-scale all entries, then zero the masked ones.

    If a masked entry is the maximum, every other entry is divided by it before the power is
    taken, underflows to 0, and the normalised row is all zeros (returned as zeros, as the
    seed's ``normalize`` does).
    """
    scaled = jnp.where(mask, 0.0, power_scale(values, scale))
    total = jnp.sum(scaled, axis=-1, keepdims=True)
    return jnp.where(total > 0, scaled / jnp.where(total > 0, total, 1.0), 0.0)


@dataclasses.dataclass(frozen=True)
class PowerScaleConfig(ExperimentConfig):
    """Settings of the ``power-scale`` demo (defaults are the seed notebook's)."""

    vector: tuple[float, ...] = param((1.0, 2.0, 3.0, 4.0), "values for power_scale against a plain power", low=0)
    power: float = param(2.0, "the exponent for that comparison", low=0)
    onehot_vector: tuple[float, ...] = param((1.0, 2.0, 5.0, 3.0), "values for the one-hot limit", low=0)
    onehot_scales: tuple[float, ...] = param((1.0, 5.0, 20.0, 100.0), "scales printed for the one-hot limit", low=0)
    activations: tuple[float, ...] = param(
        (0.05, 1e8, 3.0, 2.8, 2.5), "item activations for the masking-order demo", low=0
    )
    masked_item: int = param(2, "the already-recalled item (1-indexed) in that demo", low=1)
    demo_scale: float = param(90.0, "the choice sensitivity of that demo", low=0)
    max_scale: float = param(150.0, "largest scale of the sweeps", low=1, high=1e4)
    points: int = param(301, "scales per sweep (one resumable cell per precision)", low=3, high=100_000)

    def check(self) -> None:
        if self.masked_item > len(self.activations):
            raise ValueError(
                f"masked_item must be between 1 and {len(self.activations)} (the number of activations), "
                f"got {self.masked_item}"
            )


def _sweep(config: PowerScaleConfig, dtype: str) -> dict[str, np.ndarray]:
    """Choice probabilities for both masking orders over the scale grid, in one precision."""
    scales = np.linspace(0.0, config.max_scale, config.points)
    mask = np.arange(len(config.activations)) == config.masked_item - 1
    rows = np.broadcast_to(np.asarray(config.activations), (config.points, len(config.activations)))

    def compute() -> dict[str, np.ndarray]:
        values = jnp.asarray(rows, dtype=dtype)
        s = jnp.asarray(scales, dtype=dtype)
        right = jax.jit(choice_probabilities)(values, jnp.asarray(mask), s)
        wrong = jax.jit(jax.vmap(scale_then_mask, in_axes=(0, None, 0)))(values, jnp.asarray(mask), s)
        onehot = jax.jit(power_scale)(
            jnp.broadcast_to(jnp.asarray(config.onehot_vector, dtype), (config.points, len(config.onehot_vector))), s
        )
        return {"scales": scales, "mask_then_scale": np.asarray(right), "scale_then_mask": np.asarray(wrong),
                "onehot": np.asarray(onehot)}

    if dtype == "float64":
        with float64_enabled():
            return compute()
    return compute()


def _first_collapse(scales: np.ndarray, probabilities: np.ndarray) -> float | None:
    dead = probabilities.sum(axis=-1) == 0
    return float(scales[np.argmax(dead)]) if dead.any() else None


@experiment("power-scale", PowerScaleConfig, quick={"points": 121})
def power_scale_demo(config: PowerScaleConfig, run: RunContext) -> None:
    """power_scale against a plain power, its one-hot limit, and why masking must come first."""
    plt = pyplot()
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    vector = jnp.asarray(config.vector, jnp.float32)
    scaled = np.asarray(power_scale(vector, config.power))
    plain = np.asarray(vector**config.power)
    onehot = {s: np.asarray(power_scale(jnp.asarray(config.onehot_vector, jnp.float32), s))
              for s in config.onehot_scales}
    mask = jnp.arange(len(config.activations)) == config.masked_item - 1
    acts = jnp.asarray(config.activations, jnp.float32)
    right = np.asarray(choice_probabilities(acts, mask, config.demo_scale))
    wrong = np.asarray(scale_then_mask(acts, mask, config.demo_scale))
    zero_scale = np.asarray(power_scale(jnp.asarray(config.onehot_vector, jnp.float32), 0.0))

    sweeps = run.cells(["sweep-float32", "sweep-float64"], lambda name: _sweep(config, name.split("-")[1]),
                       description="power-scale sweeps")
    s32, s64 = sweeps["sweep-float32"], sweeps["sweep-float64"]

    metrics = {
        "power_scale": scaled, "simple_power": plain,
        "onehot": {f"scale_{s:g}": v for s, v in onehot.items()},
        "mask_then_scale": right, "scale_then_mask": wrong, "scale_zero": zero_scale,
        "scale_then_mask_collapse_scale_float32": _first_collapse(s32["scales"], s32["scale_then_mask"]),
        "scale_then_mask_collapse_scale_float64": _first_collapse(s64["scales"], s64["scale_then_mask"]),
        "mask_then_scale_min_total": float(min(s32["mask_then_scale"].sum(-1).min(),
                                               s64["mask_then_scale"].sum(-1).min())),
        "any_nan": bool(any(np.isnan(a).any() for sweep in (s32, s64) for a in sweep.values())),
    }
    defaults = PowerScaleConfig()
    if (config.vector, config.power) == (defaults.vector, defaults.power):
        metrics["seed_power_scale_max_abs_error"] = float(np.max(np.abs(scaled - SEED_POWER_2)))
    if config.onehot_vector == defaults.onehot_vector and 100.0 in onehot:
        metrics["seed_onehot_100_max_rel_error"] = float(
            np.max(np.abs(onehot[100.0] - SEED_ONEHOT_100) / np.maximum(np.abs(SEED_ONEHOT_100), 1e-30)))
    if (config.activations, config.masked_item, config.demo_scale) == (
            defaults.activations, defaults.masked_item, defaults.demo_scale):
        metrics["seed_mask_then_scale_max_rel_error"] = float(
            np.max(np.abs(right - SEED_MASK_THEN_SCALE) / np.maximum(np.abs(SEED_MASK_THEN_SCALE), 1e-30)))
    run.log_metrics(metrics)
    run.save_arrays("sweeps", **{f"{k}_{p}": v for p, sweep in (("float32", s32), ("float64", s64))
                                 for k, v in sweep.items()})

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    x = np.arange(len(config.vector))
    axes[0].bar(x - 0.2, plain, 0.4, label=f"v**{config.power:g}")
    axes[0].bar(x + 0.2, scaled, 0.4, label=f"power_scale(v, {config.power:g})")
    axes[0].set_xticks(x, [f"{v:g}" for v in config.vector])
    axes[0].set(xlabel="value v", title="max-normalised power keeps the top entry at 1", yscale="log")
    axes[0].legend()
    tiny = np.finfo(np.float64).tiny
    for i, v in enumerate(config.onehot_vector):
        axes[1].plot(s64["scales"], np.maximum(s64["onehot"][:, i], tiny), label=f"v={v:g}")
    axes[1].set(yscale="log", xlabel="scale", ylabel="power_scale(v, scale)", title="one-hot limit (float64)")
    axes[1].legend()
    for sweep, style, name in ((s32, "-", "float32"), (s64, "--", "float64")):
        axes[2].plot(sweep["scales"], sweep["mask_then_scale"].sum(-1), style, color="tab:green",
                     label=f"mask → scale ({name})")
        axes[2].plot(sweep["scales"], sweep["scale_then_mask"].sum(-1), style, color="tab:red",
                     label=f"scale → mask ({name})")
    axes[2].set(xlabel="choice sensitivity τ", ylabel="total probability of available items",
                title="masking order", ylim=(-0.05, 1.1))
    axes[2].legend(fontsize=8)
    run.save_figure(fig, "power_scale", "Left: power_scale against a plain power. Middle: large scales approach "
                    "a one-hot vector at the argmax. Right: scaling before masking loses all probability mass "
                    "once the masked item dominates.")

    interactive = make_subplots(rows=1, cols=2, subplot_titles=("mask → scale", "scale → mask"))
    for col, key in ((1, "mask_then_scale"), (2, "scale_then_mask")):
        for item in range(len(config.activations)):
            if item == config.masked_item - 1:
                continue
            interactive.add_trace(go.Scatter(
                x=s32["scales"], y=s32[key][:, item], mode="lines", showlegend=col == 1,
                name=f"item {item + 1} (a={config.activations[item]:g})", legendgroup=str(item)), row=1, col=col)
    interactive.update_layout(title="Choice probabilities against τ (float32); hover for values",
                              yaxis_title="probability", height=480)
    interactive.update_xaxes(title_text="choice sensitivity τ")
    run.save_plotly(interactive, "choice_probabilities", "Choice probability of each available item against τ.")
    collapse32 = metrics["scale_then_mask_collapse_scale_float32"]
    collapse64 = metrics["scale_then_mask_collapse_scale_float64"]
    run.note(
        "Scaling before masking divides every activation by the masked maximum "
        f"({max(config.activations):g}); raised to τ the ratios underflow, so the available items get no "
        f"probability at all from τ ≈ {collapse32} in float32 and τ ≈ {collapse64} in float64. "
        "Masking first keeps the total at 1 for every τ."
    )
