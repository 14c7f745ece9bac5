"""Training speed of toy-model ensembles: superpose against the seed notebook's PyTorch loop.

The seed's size: 16 000 models (40 × 40 cells × 10 members), 2 features, 1 hidden unit, batch 256,
Adam(lr 1e-2, weight decay 1e-4). The seed's loop is re-typed here from
``../shared/seeds/003_694b8e90622bd4dc.txt`` (torch is a benchmark-only dependency: ``pip install torch``).
superpose runs the same sizes with its counter-based generator, with every model on its own stream
(group 1) and with the hierarchy sweep's common random numbers (the 40 importances of a cell row
share a batch: group 40).

Per-step times come from ``--rounds`` paired rounds (the seed's loop and both superpose settings
alternating); a speed-up is the median of the per-round ratios, with their range. A full panel (800
steps, superpose's first call compiling) and the 10⁶-model ensemble are timed once per side.

    python benchmarks/toy.py            # per-step times, a full 800-step panel, 10⁶ models
    python benchmarks/toy.py --panel 0  # skip the full-panel wall times (the seed's takes ~6 min)
    python benchmarks/toy.py --hierarchy  # also time the whole 9-panel toy-hierarchy experiment
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp

from _common import paired_rounds, print_table, ratio_summary, summary, write_results
from superpose.toy import init_params, make_features, train

MODELS, BATCH, LR, DECAY = 16_000, 256, 1e-2, 1e-4


def seed_loop(steps: int, models: int = MODELS) -> float:
    """Seconds for ``steps`` steps of the seed's training loop (its sampling, model and Adam)."""
    import torch

    torch.manual_seed(0)
    p1 = torch.full((models,), 0.5)
    p2 = torch.full((models,), 0.5)
    importances = torch.stack((torch.ones(models), torch.full((models,), 0.7)), dim=-1)

    def sample(batch_size):
        primary = torch.rand(batch_size, models) < p1.unsqueeze(0)
        secondary = primary & (torch.rand(batch_size, models) < p2.unsqueeze(0))
        x = torch.rand(batch_size, models, 2)
        x[:, :, 0] = x[:, :, 0] * primary
        x[:, :, 1] = x[:, :, 1] * secondary
        return x

    weights = torch.randn(models, 2)
    weights = torch.nn.Parameter(weights / weights.abs().clamp_min(1e-8))
    biases = torch.nn.Parameter(torch.zeros(models, 2))
    optimizer = torch.optim.Adam([weights, biases], lr=LR, weight_decay=DECAY)
    start = time.perf_counter()
    for _ in range(steps):
        x = sample(BATCH)
        z = torch.sum(x * weights.unsqueeze(0), dim=-1)
        x_hat = torch.relu(z.unsqueeze(-1) * weights.unsqueeze(0) + biases.unsqueeze(0))
        loss = ((x - x_hat).pow(2) * importances.unsqueeze(0)).sum(dim=-1).mean(dim=0).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def _problem(models: int):
    params = init_params(jax.random.key(0), models, 2, 1, init="sign")
    features = make_features(jnp.full((models, 2), 0.5), parents=[-1, 0])
    importance = jnp.tile(jnp.array([[1.0, 0.7]]), (models, 1))
    return params, features, importance


def superpose_seconds(steps: int, models: int, group: int) -> float:
    """Seconds for one ``train`` call of ``steps`` steps of ``models`` models (compiling if it is the first)."""
    params, features, importance = _problem(models)
    start = time.perf_counter()
    out = train(jax.random.key(1), params, features, importance, steps=steps, batch=BATCH, learning_rate=LR,
                weight_decay=DECAY, group_size=group, log_every=steps // min(steps, 100))
    jax.block_until_ready(out.params.W)
    return time.perf_counter() - start


SIDES = {"own": (1, "superpose, own stream per model"), "crn": (40, "superpose, CRN groups of 40")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=50, help="steps for the per-step timings")
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds of the per-step timings")
    parser.add_argument("--panel", type=int, default=800, help="steps of the full-panel wall time (0: skip)")
    parser.add_argument("--million", type=int, default=1_000_000, help="ensemble size of the large run")
    parser.add_argument("--hierarchy", action="store_true", help="time the full 9-panel toy-hierarchy run")
    args = parser.parse_args()
    try:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        seed_loop(2)  # PyTorch's first-call costs stay out of the timed rounds
    except ImportError:
        torch = None
        print("torch is not installed (`pip install torch==2.13.0`): the seed's loop is skipped")
    for group, _ in SIDES.values():  # compile the per-step shapes before any timed round
        superpose_seconds(args.steps, MODELS, group)
    timers = {"seed": lambda: seed_loop(args.steps) / args.steps} if torch else {}
    for name, (group, _) in SIDES.items():
        timers[name] = lambda group=group: superpose_seconds(args.steps, MODELS, group) / args.steps
    per_step = paired_rounds(timers, args.rounds)
    rows = []
    if torch:
        rows.append({"what": "seed PyTorch loop", "models": MODELS, "s_per_step": summary(per_step["seed"]),
                     "panel_s": seed_loop(args.panel) if args.panel else None})
        print(rows[-1], flush=True)
    for name, (group, label) in SIDES.items():
        row = {"what": label, "models": MODELS, "group": group, "s_per_step": summary(per_step[name])}
        if torch:
            row["speedup"] = ratio_summary(per_step["seed"], per_step[name])
        if args.panel:  # first call of the panel's shape compiles; the second is compiled
            row.update(panel_s=superpose_seconds(args.panel, MODELS, group),
                       panel_s_compiled=superpose_seconds(args.panel, MODELS, group))
        rows.append(row)
        print(rows[-1], flush=True)
    million = []
    for name, (group, label) in SIDES.items():
        superpose_seconds(20, args.million, group)
        seconds = superpose_seconds(20, args.million, group)
        million.append({"what": label, "models": args.million, "group": group, "s_per_step": seconds / 20,
                        "model_steps_per_s": args.million * 20 / seconds})
        print(million[-1], flush=True)
    extra = {"rounds": args.rounds, "steps": args.steps, "panel_steps": args.panel, "million": million,
             "torch_version": torch.__version__ if torch else None,
             "torch_threads": torch.get_num_threads() if torch else None}
    if args.hierarchy:
        from superpose.runner import run_experiment

        for exact in (False, True):
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                record = run_experiment("toy-hierarchy", {"exact": str(exact).lower()}, Path(tmp) / "run")
                extra[f"toy_hierarchy_full_s_exact_{str(exact).lower()}"] = time.perf_counter() - start
                if exact:
                    extra["toy_hierarchy_agreement"] = {k: record.metrics[k] for k in
                                                        ("analytic_agreement", "majority_agreement")}
        print(extra)
    print_table([{k: (v["median"] if isinstance(v, dict) else v) for k, v in r.items()} for r in rows])
    print("wrote", write_results("toy", rows, extra))

if __name__ == "__main__":
    main()
