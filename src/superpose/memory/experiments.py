"""Registered experiments of superpose.memory: landscapes, errors, completion and capacity."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from superpose.memory.diagnostics import divergence_bound, exact_energy_and_grad, kernel_error
from superpose.memory.distributed import DistributedMemory, distributed_energy
from superpose.memory.energies import lse_energy
from superpose.memory.patterns import binary_patterns
from superpose.memory.retrieval import descend, one_step_update, sign_update
from superpose.runner import ExperimentConfig, RunContext, experiment, param
from superpose.runner.plotting import pyplot


def _loglog_slope(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


# -- memory-landscape ------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class LandscapeConfig(ExperimentConfig):
    """The tutorial's 2-D landscapes: K memories in [−extent, extent]²."""

    memories: int = param(8, "number of memories K", low=1, high=1000)
    extent: float = param(5.0, "half-width of the square the memories and queries live in", low=0.1)
    betas: tuple[float, ...] = param((0.01, 0.1, 1.0, 10.0), "inverse temperatures β", low=1e-6, high=1e4)
    features: int = param(32768, "random features Y (sincos, so T has 2Y entries)", low=1)
    grid: int = param(50, "grid points per axis of the landscape", low=5, high=400)
    queries: int = param(3, "descent trajectories drawn per β", low=1, high=50)
    segments: int = param(20, "trajectory points recorded per query", low=1, high=1000)
    steps_per_segment: int = param(25, "descent steps between recorded points", low=1)
    step_size: float = param(0.01, "descent step size α", low=1e-8)


def grid_minima(energy: np.ndarray) -> np.ndarray:
    """Row/column indices ``(count, 2)`` of the strict local minima of a 2-D grid among its 8 neighbours.

    Edge points count when they are below every neighbour that exists.
    """
    energy = np.asarray(energy, float)
    if energy.ndim != 2 or min(energy.shape) < 2:
        raise ValueError(f"energy must be a 2-D grid of at least 2×2 points, got shape {energy.shape}")
    padded = np.pad(energy, 1, constant_values=np.inf)
    rows, cols = energy.shape
    neighbours = [padded[1 + dr: 1 + dr + rows, 1 + dc: 1 + dc + cols]
                  for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0)]
    return np.argwhere(np.all([energy < n for n in neighbours], axis=0))


def _landscape_cell(config: LandscapeConfig, key: jax.Array, beta: float) -> dict[str, np.ndarray]:
    k_mem, k_query, k_features = jax.random.split(key, 3)
    xi = jax.random.uniform(k_mem, (config.memories, 2), minval=-config.extent, maxval=config.extent)
    queries = jax.random.uniform(k_query, (config.queries, 2), minval=-config.extent, maxval=config.extent)
    memory = DistributedMemory.from_memories(xi, k_features, config.features, beta)
    axis = jnp.linspace(-config.extent, config.extent, config.grid)
    grid = jnp.stack(jnp.meshgrid(axis, axis), axis=-1).reshape(-1, 2)
    exact, _ = exact_energy_and_grad(xi, grid, beta)
    approx, clipped = memory.energy(grid, with_floor_hits=True)
    paths = {"exact": [queries], "approx": [queries]}
    for _ in range(config.segments):
        for name, (fn, args) in {"exact": (lse_energy, (xi, beta)), "approx": (distributed_energy, (memory,))}.items():
            nxt, _ = descend(fn, paths[name][-1], *args, steps=config.steps_per_segment, step_size=config.step_size)
            paths[name].append(nxt)
    exact_path, approx_path = (jnp.stack(paths[n], axis=1) for n in ("exact", "approx"))
    # the exact energy along both trajectories, as in the tutorial's energy-against-step curves
    e_exact = exact_energy_and_grad(xi, exact_path.reshape(-1, 2), beta)[0].reshape(exact_path.shape[:2])
    e_approx = exact_energy_and_grad(xi, approx_path.reshape(-1, 2), beta)[0].reshape(approx_path.shape[:2])
    return {
        "memories": xi, "exact": exact.reshape(config.grid, config.grid),
        "approx": approx.reshape(config.grid, config.grid), "clipped": clipped.reshape(config.grid, -1),
        "exact_path": exact_path, "approx_path": approx_path, "exact_path_energy": e_exact,
        "approx_path_energy": e_approx,
    }


@experiment("memory-landscape", LandscapeConfig, quick={"grid": 30, "features": 8192, "segments": 10})
def memory_landscape(config: LandscapeConfig, run: RunContext) -> None:
    """Exact and DrDAM energy landscapes in 2-D for several β, with descent trajectories."""
    plt = pyplot()
    cells = run.cells([f"beta={b:g}" for b in config.betas],
                      lambda name: _landscape_cell(config, run.key, float(name.split("=")[1])), "landscapes")
    n = len(config.betas)
    fig, axes = plt.subplots(3, n, figsize=(3.4 * n, 9.6), squeeze=False)
    extent = [-config.extent, config.extent, -config.extent, config.extent]
    metrics = {}
    steps = np.arange(config.segments + 1) * config.steps_per_segment
    for col, (beta, cell) in enumerate(zip(config.betas, cells.values())):
        for row, key in enumerate(("exact", "approx")):
            ax = axes[row, col]
            ax.imshow(cell[key], extent=extent, origin="lower", cmap="PiYG_r", alpha=0.85)
            ax.scatter(*cell["memories"].T, marker="*", color="black", s=60, zorder=3)
            for path in cell[f"{key}_path"]:
                ax.plot(*path.T, ".-", color="tab:blue" if key == "exact" else "tab:orange", ms=3)
            ax.set(xticks=[], yticks=[])
            ax.set_title(f"{'exact E' if key == 'exact' else 'DrDAM Ẽ'}, β={beta:g}", fontsize=9)
        ax = axes[2, col]
        for i in range(cell["exact_path_energy"].shape[0]):
            ax.plot(steps, cell["exact_path_energy"][i], color="tab:blue", label="exact descent" if i == 0 else None)
            ax.plot(steps, cell["approx_path_energy"][i], "--", color="tab:orange",
                    label="DrDAM descent" if i == 0 else None)
        ax.set(xlabel="step", ylabel="exact energy E" if col == 0 else None)
        if col == 0:
            ax.legend(fontsize=8)
        gap = cell["exact"] - cell["approx"]
        spacing = 2 * config.extent / (config.grid - 1)
        found = {}
        for key in ("exact", "approx"):  # grid minima (x, y), and the memories with one within two grid steps
            xy = -config.extent + spacing * grid_minima(cell[key])[:, ::-1]
            near = np.linalg.norm(np.asarray(cell["memories"])[:, None] - xy[None], axis=-1) <= 2 * spacing
            found[key] = (len(xy), int(np.sum(np.any(near, axis=1))) if len(xy) else 0)
        metrics[f"beta={beta:g}"] = {
            "exact_minima": found["exact"][0], "drdam_minima": found["approx"][0],
            "memories_with_exact_minimum": found["exact"][1], "memories_with_drdam_minimum": found["approx"][1],
            "landscape_rms_difference": float(np.sqrt(np.mean(gap**2))),
            "clipped_fraction": float(cell["clipped"].mean()),
            "trajectory_divergence": [float(x) for x in np.linalg.norm(
                cell["exact_path"][:, -1] - cell["approx_path"][:, -1], axis=-1)],
        }
    fig.tight_layout()
    run.log_metrics(metrics)
    run.save_figure(fig, "landscapes", "Rows 1–2: exact and DrDAM energy (memories as stars, descent as dots). "
                    "Row 3: the exact energy along both descents against the step.")
    run.note(_landscape_note(config, metrics))


def _landscape_note(config: LandscapeConfig, metrics: dict) -> str:
    """One sentence per β, from the counted grid minima and the clipped fraction."""
    def minima(count: int) -> str:
        return f"{count} local minimum" if count == 1 else f"{count} local minima"

    parts = []
    for beta in config.betas:
        m = metrics[f"beta={beta:g}"]
        parts.append(f"At β = {beta:g} the exact energy has {minima(m['exact_minima'])} on the "
                     f"{config.grid}×{config.grid} grid ({m['memories_with_exact_minimum']} of the {config.memories} "
                     f"memories have one within two grid steps) and DrDAM has {minima(m['drdam_minima'])} "
                     f"({m['memories_with_drdam_minimum']} memories); {m['clipped_fraction']:.0%} of the grid is "
                     "clipped at the floor, where the kernel sum is below the random-feature noise.")
    return " ".join(parts)


# -- memory-error ----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ErrorConfig(ExperimentConfig):
    """Errors of DrDAM against the exact model, in the tutorial's setting by default."""

    dim: int = param(30, "D", low=1, high=4096)
    memories: int = param(20, "K for the sweeps over Y and β", low=1)
    beta: float = param(25.0, "β for the sweeps over Y and K", low=1e-6, high=1e4)
    features: tuple[int, ...] = param((1000, 3000, 10000, 30000, 100000), "Y values", low=1)
    betas: tuple[float, ...] = param((1.0, 5.0, 25.0, 50.0, 100.0), "β values (at the middle Y)", low=1e-6)
    memory_counts: tuple[int, ...] = param((5, 20, 80, 320), "K values (at the middle Y)", low=1)
    queries: int = param(256, "random binary queries", low=8)
    repeats: int = param(3, "feature keys per point", low=1, high=50)
    steps: int = param(10, "descent steps for the retrieval divergence", low=1)
    step_size: float = param(0.1, "descent step size α", low=1e-8)

    def check(self) -> None:
        if len(set(self.features)) < 2:
            raise ValueError(f"features needs at least two different Y values for the error's slope against Y "
                             f"(the 1/√Y fit), got {self.features}")


def _error_cell(config: ErrorConfig, key: jax.Array, y: int, beta: float, k: int) -> dict[str, np.ndarray]:
    k_mem, k_query, k_features = jax.random.split(key, 3)
    xi = binary_patterns(k_mem, k, config.dim)
    queries = binary_patterns(k_query, config.queries, config.dim)
    exact_e, exact_g = exact_energy_and_grad(xi, queries, beta)
    exact_out, _ = descend(lse_energy, queries, xi, beta, steps=config.steps, step_size=config.step_size)
    rows = {"energy_error": [], "gradient_error": [], "divergence": [], "clipped": [], "kernel_error_sup": []}
    for key in jax.random.split(k_features, config.repeats):
        memory = DistributedMemory.from_memories(xi, key, y, beta)
        e, g, clipped = memory.energy_and_grad(queries, with_floor_hits=True)
        approx_out, _ = descend(distributed_energy, queries, memory, steps=config.steps, step_size=config.step_size)
        rows["energy_error"].append(jnp.abs(exact_e - e))
        rows["gradient_error"].append(jnp.linalg.norm(exact_g - g, axis=-1))
        rows["divergence"].append(jnp.linalg.norm(exact_out - approx_out, axis=-1))
        rows["clipped"].append(clipped)
        if y <= 20000:  # φ is Y wide; the sup is measured on memory–query pairs
            pairs = min(64, config.queries)
            rows["kernel_error_sup"].append(
                jnp.max(kernel_error(memory, queries[:pairs], xi[jnp.arange(pairs) % k]))[None])
    out = {name: np.concatenate([np.asarray(v).reshape(-1) for v in values]) for name, values in rows.items() if values}
    out["exact_energy"] = np.asarray(exact_e)
    return out


@experiment("memory-error", ErrorConfig,
            quick={"features": (1000, 3000, 10000, 30000), "queries": 128, "repeats": 2, "betas": (1.0, 25.0, 100.0),
                   "memory_counts": (5, 20, 80)})
def memory_error(config: ErrorConfig, run: RunContext) -> None:
    """DrDAM's energy, gradient and retrieval errors against Y, β and K, with the 1/√Y fit."""
    plt = pyplot()
    middle_y = sorted(config.features)[len(config.features) // 2]
    plan = [("Y", y, y, config.beta, config.memories) for y in config.features]
    plan += [("beta", b, middle_y, b, config.memories) for b in config.betas]
    plan += [("K", k, middle_y, config.beta, k) for k in config.memory_counts]
    names = [f"{axis}={value:g}" for axis, value, *_ in plan]
    specs = dict(zip(names, plan))
    cells = run.cells(names, lambda name: _error_cell(config, run.key, *specs[name][2:]), "error sweeps")

    def series(axis: str, stat: str, fn=np.median) -> tuple[np.ndarray, np.ndarray]:
        keys = [n for n in names if n.startswith(axis + "=")]
        return np.array([specs[n][1] for n in keys], float), np.array([fn(cells[n][stat]) for n in keys])

    ys, median_e = series("Y", "energy_error")
    _, mean_e = series("Y", "energy_error", np.mean)
    _, clipped = series("Y", "clipped", np.mean)
    _, divergence = series("Y", "divergence")
    _, gradient = series("Y", "gradient_error")
    sup_rows = [cells[n]["kernel_error_sup"].max() for n in names if n.startswith("Y=") and "kernel_error_sup" in cells[n]]
    bound = divergence_bound(cells[names[0]]["exact_energy"], beta=config.beta, num_memories=config.memories,
                             dim=config.dim, num_features=int(ys[-1]), steps=config.steps,
                             step_size=config.step_size, kernel_error_sup=float(max(sup_rows) if sup_rows else 1.0))
    slope, mean_slope = _loglog_slope(ys, median_e), _loglog_slope(ys, mean_e)
    run.log_metrics(
        energy_error_slope=slope,
        energy_error_mean_slope=mean_slope,
        clipped_fraction={f"{int(y)}": float(c) for y, c in zip(ys, clipped)},
        median_energy_error={f"{int(y)}": float(e) for y, e in zip(ys, median_e)},
        median_divergence={f"{int(y)}": float(d) for y, d in zip(ys, divergence)},
        median_gradient_error={f"{int(y)}": float(g) for y, g in zip(ys, gradient)},
        divergence_bound={"applicable": bound.applicable, "c1": bound.c1, "c2": bound.c2,
                          "largest_step_size_for_bound": bound.max_step_size},
    )
    run.save_arrays("errors", **{f"{n}__{stat}": v for n in names for stat, v in cells[n].items()})

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.4))
    ax = axes[0]
    for stat, label, marker in (("energy_error", "|E − Ẽ|", "o"), ("gradient_error", "‖∇E − ∇Ẽ‖", "s"),
                                ("divergence", f"divergence after {config.steps} steps", "^")):
        x, med = series("Y", stat)
        ax.loglog(x, med, marker + "-", label=f"median {label}")
    ax.loglog(ys, mean_e, "o:", color="tab:blue", alpha=0.6, label="mean |E − Ẽ|")
    ax.loglog(ys, median_e[0] * (ys / ys[0]) ** -0.5, "k--", lw=1, label="∝ 1/√Y")
    ax.set(xlabel="random features Y", title=f"slope of median |E − Ẽ|: {slope:.2f}")
    ax.legend(fontsize=7)
    for ax, axis, label in ((axes[1], "beta", "β"), (axes[2], "K", "memories K")):
        for stat, marker in (("energy_error", "o"), ("divergence", "^")):
            x, med = series(axis, stat)
            ax.loglog(x, med, marker + "-", label=stat.replace("_", " "))
        x, clip = series(axis, "clipped", np.mean)
        twin = ax.twinx()
        twin.plot(x, clip, "x:", color="gray")
        twin.set(ylabel="fraction clipped at the floor", ylim=(-0.02, 1.02))
        ax.set(xlabel=label, xscale="log", title=f"at Y = {middle_y}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    run.save_figure(fig, "errors", "Median errors of DrDAM against the exact model (binary queries). Left: against "
                    "Y with the 1/√Y reference; middle and right: against β and K, with the fraction of queries whose "
                    "kernel sum fell to the floor.")
    run.note(f"The median energy error changes with slope {slope:.2f} on log–log axes against Y (1/√Y is −0.5); "
             f"the mean with slope {mean_slope:.2f}. The fraction of queries clipped at the floor is "
             f"{clipped[0]:.0%} at Y = {ys[0]:g} and {clipped[-1]:.0%} at Y = {ys[-1]:g}. The paper's divergence "
             f"bound needs a step size below {bound.max_step_size:.1e} here, so at α = {config.step_size:g} it "
             + ("applies." if bound.applicable else "does not apply; the measured divergences are reported instead."))


# -- memory-completion -----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class CompletionConfig(ExperimentConfig):
    """Pattern completion of scikit-learn's 8×8 digits with clamped visible pixels."""

    digits: int = param(20, "stored digits K (the first K of the data set)", low=1, high=1797)
    hidden: float = param(0.5, "fraction of pixels hidden in each query", low=0.0, high=0.95)
    beta: float = param(1.0, "inverse temperature β (pixels scaled to [0, 1])", low=1e-4, high=1e4)
    features: int = param(20000, "DrDAM random features Y", low=1)
    steps: int = param(400, "descent steps", low=1)
    step_size: float = param(0.2, "descent step size α", low=1e-6)
    shown: int = param(10, "digits shown in the figure", low=1, high=50)


@experiment("memory-completion", CompletionConfig, quick={"features": 8000, "steps": 200, "step_size": 0.4})
def memory_completion(config: CompletionConfig, run: RunContext) -> None:
    """Store 8×8 digits, hide half of each one's pixels, and complete them with the exact model and DrDAM."""
    from sklearn.datasets import load_digits

    plt = pyplot()
    images = jnp.asarray(load_digits().data[: config.digits] / 16.0, jnp.float32)
    k_mask, k_features = jax.random.split(run.key)
    hidden = jax.random.bernoulli(k_mask, config.hidden, images.shape)
    start = jnp.where(hidden, 0.0, images)

    def complete(name: str) -> dict[str, np.ndarray]:
        if name == "exact":
            out, result = descend(lse_energy, start, images, config.beta, steps=config.steps,
                                  step_size=config.step_size, clamp=~hidden)
            clipped = jnp.zeros(images.shape[0], bool)
        else:
            memory = DistributedMemory.from_memories(images, k_features, config.features, config.beta)
            out, result = descend(distributed_energy, start, memory, steps=config.steps,
                                  step_size=config.step_size, clamp=~hidden)
            clipped = memory.floor_hits(start)
        return {"completed": out, "energy": result.energy, "clipped": clipped}

    cells = run.cells(["exact", "drdam"], complete, "completion")
    metrics = {}
    for name, cell in cells.items():
        out = cell["completed"]
        nearest = np.argmin(((out[:, None, :] - np.asarray(images)[None]) ** 2).sum(-1), axis=1)
        metrics[name] = {
            "hidden_pixel_error": float(np.abs(out - images)[np.asarray(hidden)].mean()),
            "fraction_retrieved": float(np.mean(nearest == np.arange(config.digits))),
            "clipped_fraction_at_start": float(np.mean(cell["clipped"])),
        }
    run.log_metrics(metrics)
    run.save_arrays("completion", images=images, hidden=hidden, **{k: v["completed"] for k, v in cells.items()})

    shown = min(config.shown, config.digits)
    rows = [("stored", images), ("occluded", jnp.where(hidden, 0.5, images)),
            ("exact", cells["exact"]["completed"]), (f"DrDAM (Y={config.features})", cells["drdam"]["completed"])]
    fig, axes = plt.subplots(len(rows), shown, figsize=(1.1 * shown, 1.25 * len(rows)), squeeze=False)
    for r, (label, data) in enumerate(rows):
        for c in range(shown):
            ax = axes[r, c]
            ax.imshow(np.asarray(data[c]).reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
            ax.set(xticks=[], yticks=[])
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.tight_layout()
    run.save_figure(fig, "completion", f"{config.hidden:.0%} of each stored digit's pixels hidden (grey), then "
                    "completed by energy descent with the visible pixels clamped.")


# -- memory-capacity -------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class CapacityConfig(ExperimentConfig):
    """Retrieval success against the number of stored random ±1 patterns."""

    dim: int = param(100, "pattern dimension D", low=8, high=2048)
    counts: tuple[int, ...] = param((5, 10, 14, 20, 30, 50, 100, 200, 400, 800), "numbers of patterns K", low=1)
    noise: float = param(0.1, "fraction of bits flipped in each query", low=0.0, high=0.45)
    probes: int = param(100, "patterns probed per K (at most K)", low=1)
    orders: tuple[int, ...] = param((2, 3, 4), "polynomial orders (2 = classical Hopfield)", low=2, high=30)
    beta: float = param(0.5, "β of the dot-product log-sum-exp model (overlaps are of size D)", low=1e-4)
    sweeps: int = param(20, "largest number of asynchronous sweeps", low=1)


def _capacity_cell(config: CapacityConfig, key: jax.Array, family: str, k: int) -> dict[str, np.ndarray]:
    k_pat, k_noise, k_update = jax.random.split(jax.random.fold_in(key, k), 3)
    patterns = jnp.where(jax.random.bernoulli(k_pat, 0.5, (k, config.dim)), 1.0, -1.0)
    probes = patterns[: min(config.probes, k)]
    flips = jax.random.bernoulli(k_noise, config.noise, probes.shape)
    queries = jnp.where(flips, -probes, probes)
    if family.startswith("order"):
        out, _ = sign_update(queries, patterns, k_update, order=int(family[5:]), max_sweeps=config.sweeps)
    else:  # dense log-sum-exp: a few one-step updates, then the sign
        out = queries
        for _ in range(3):
            out = one_step_update(out, patterns, config.beta)
        out = jnp.sign(out)
    exact = jnp.all(out == probes, axis=-1)
    overlap = jnp.mean(out * probes, axis=-1)
    return {"success": exact, "overlap": overlap}


@experiment("memory-capacity", CapacityConfig,
            quick={"dim": 64, "counts": (4, 9, 16, 32, 64, 128), "probes": 32, "orders": (2, 3)})
def memory_capacity(config: CapacityConfig, run: RunContext) -> None:
    """Retrieval success against K for classical, polynomial and log-sum-exp memories."""
    plt = pyplot()
    families = [f"order{n}" for n in config.orders] + ["lse"]
    names = [f"{f}-K={k}" for f in families for k in config.counts]
    cells = run.cells(names, lambda n: _capacity_cell(config, run.key, n.split("-K=")[0], int(n.split("-K=")[1])),
                      "capacity sweep")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    metrics = {}
    labels = {f"order{n}": ("classical Hopfield (n=2)" if n == 2 else f"polynomial n={n}") for n in config.orders}
    labels["lse"] = f"log-sum-exp, dot product (β={config.beta:g})"
    ks = np.array(config.counts, float)
    for family in families:
        success = np.array([cells[f"{family}-K={k}"]["success"].mean() for k in config.counts])
        ax.semilogx(ks, success, "o-", label=labels[family])
        above = ks[success >= 0.9]
        metrics[family] = {"success": {str(k): float(s) for k, s in zip(config.counts, success)},
                           "largest_K_with_90pct_success": float(above.max()) if above.size else 0.0}
    ax.axvline(0.138 * config.dim, color="gray", ls="--", label=f"0.138·D = {0.138 * config.dim:.0f}")
    ax.set(xlabel="stored patterns K", ylabel="fraction retrieved exactly",
           title=f"D = {config.dim}, {config.noise:.0%} of bits flipped")
    ax.legend(fontsize=8)
    run.log_metrics(metrics, classical_limit=0.138 * config.dim)
    run.save_figure(fig, "capacity", "Fraction of noisy queries that return exactly to their stored pattern "
                    "(dashed: the classical limit 0.138·D).")
    run.note("Largest K with at least 90% of queries retrieved exactly: " + "; ".join(
        f"{labels[f]}: {metrics[f]['largest_K_with_90pct_success']:g}" for f in families)
        + f" (classical limit 0.138·D = {0.138 * config.dim:.1f}).")
