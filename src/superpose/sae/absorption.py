"""The sae-toy experiment's pieces: toy features with a hierarchy, the toy model trained on them,
and linear SAEs fitted to its hidden activations, scored for recovery and feature absorption.

``config`` is a :class:`superpose.sae.experiments.SaeToyConfig` (any object with its fields).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from superpose.sae.linear import LinearSaeConfig, train_linear_sae
from superpose.sae.metrics import match_atoms, mmcs


def toy_structure(config):
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


def toy_features(config, setting: str):
    """The toy's feature process: ``"hierarchical"`` (children fire only with their parent) or the
    independent control with the same marginal densities."""
    from superpose.toy import make_features

    parents, conditional, marginal, _, _ = toy_structure(config)
    if setting == "hierarchical":
        return make_features(np.asarray([conditional], np.float32), parents)
    return make_features(np.asarray([marginal], np.float32))


def train_toy(config, setting: str, key) -> dict[str, np.ndarray]:
    from superpose.toy import init_params, train

    features = toy_features(config, setting)
    k_init, k_data = jax.random.split(key)
    params = init_params(k_init, 1, config.features, config.hidden)
    result = train(k_data, params, features, np.ones((1, config.features), np.float32), steps=config.toy_steps,
                   batch=1024, learning_rate=config.toy_learning_rate, schedule="cosine")
    W = np.asarray(result.params.W[0])  # (m, n): feature i's direction in hidden space is W[:, i]
    return {"W": W, "norms": np.linalg.norm(W, axis=0), "final_loss": np.asarray(result.losses[-1, 0])}


def toy_rows(config, setting: str, W: np.ndarray, key) -> tuple[np.ndarray, np.ndarray]:
    """Feature values x (rows, n) and the toy's hidden activations h = W x (rows, m)."""
    from superpose.toy import sample

    x = np.asarray(sample(key, toy_features(config, setting), config.rows)[:, 0, :])
    return x, x @ W.T


def match_features(cosines: np.ndarray) -> np.ndarray:
    """The latent matched to each feature (one-to-one, largest total cosine; Hungarian).

    ``latents_per_feature >= 1`` gives at least as many latents as features, so every feature
    has one.
    """
    matching = match_atoms(cosines.T)  # fitted = latents, planted = features
    matched = np.empty(cosines.shape[0], int)
    matched[np.asarray(matching.planted)] = matching.fitted
    return matched


def fit_linear_sae(config, kind: str, x, h, directions, represented, pairs, key) -> dict[str, np.ndarray]:
    """Trains one SAE on h and measures recovery and, for every (parent, child) pair, absorption."""
    sae_config = LinearSaeConfig(kind=kind, num_latents=config.latents, k=config.k, l1=config.l1, l0=config.l0,
                                 learning_rate=config.sae_learning_rate, batch_size=config.sae_batch,
                                 steps=config.sae_steps)
    result = train_linear_sae(jnp.asarray(h), sae_config, key)
    decoder = np.asarray(result.sae.W_dec)
    cosines = directions @ decoder.T  # (n, L): true feature against latent
    matched = match_features(np.where(represented[:, None], cosines, -2.0))
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


def toy_note(config, run, metrics, represented_norm: float) -> None:
    """The sae-toy run's note: recovery and absorption per SAE kind, with a verdict."""
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
             f"{represented_norm}; MMCS is over those. {' '.join(parts)} {verdict} The true parent and child "
             f"directions themselves have mean cosine {metrics['true_parent_child_cosine']['hierarchical']:.2f} "
             f"(hierarchical toy).")


__all__ = ["fit_linear_sae", "toy_note", "match_features", "toy_features", "toy_rows", "toy_structure", "train_toy"]
