"""A small network that groks modular addition, and the Fourier analysis of its embedding.

The network maps a pair of tokens (a, b), 0 <= a, b < P, to logits over c = (a + b) mod P:

    x = [E_a, E_b]                       (2d,)   the two token embeddings concatenated
    h = ReLU(x W_hidden + b_hidden)      (h,)
    logits = h W_unembed                 (P,)

It is trained full-batch with AdamW (weight decay) on a keyed random fraction of all P² pairs
and tested on the rest. Trained this way, such networks generalise long after they fit the
training pairs ("grokking"), and their embedding concentrates on a few *key frequencies* k:
E_a ≈ Σ_k u_k cos(2πka/P) + v_k sin(2πka/P) (Nanda et al. 2023, "Progress measures for grokking
via mechanistic interpretability"; Gromov 2023). :func:`fourier_power` and :func:`key_frequencies`
read those frequencies off the weights; :func:`fourier_plane` gives the plane (u_k, v_k) of one.

Every token uses every key frequency at once, so the embedding is a *sum* of circles, one per
plane, not a sparse mixture. For manifold SAEs on such rows: :func:`match_circles` pairs fitted
circle coordinates with frequencies by circular R² against 2π·k·a/P; :func:`principal_pair_coordinates`
(a start from the data alone: angles of principal-component pairs) and :func:`solve_from_coordinates`
(the inner solve from given coordinates, every atom on) start a fit where every atom is active,
which :func:`superpose.sae.model.fit_sae`'s own starts (one atom per row) do not.

Everything is keyed and deterministic. Trained networks are saved as ``.npz`` (no pickle).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int

from superpose._validation import finite_matrix, nonnegative_float, positive_float, positive_int
from superpose.runner import files
from superpose.sae.init import all_on_params, dense_coordinates
from superpose.sae.metrics import circular_r2

MAX_MODULUS = 1024  # P² pairs are trained full-batch, so P stays small


class ModularAdditionParams(NamedTuple):
    """Weights of the modular-addition network (P tokens, d embedding, h hidden units)."""

    embedding: Float[Array, "P d"]
    hidden_weight: Float[Array, "two_d h"]
    hidden_bias: Float[Array, " h"]
    unembed: Float[Array, "h P"]


class GrokkingResult(NamedTuple):
    """What :func:`train_modular_addition` returns; the traces have one entry per evaluation."""

    params: ModularAdditionParams
    steps: np.ndarray  # (T,) optimisation steps done at each evaluation
    train_loss: np.ndarray  # (T,) full-batch cross-entropy on the training pairs, nats
    train_accuracy: np.ndarray  # (T,) fraction of training pairs predicted right
    test_accuracy: np.ndarray  # (T,) fraction of held-out pairs predicted right
    train_mask: np.ndarray  # (P²,) bool: pair i = (i // P, i % P) is a training pair

    @property
    def modulus(self) -> int:
        return int(self.params.embedding.shape[0])


def _check_key(key: Any) -> None:
    if not isinstance(key, jax.Array) or not (jnp.issubdtype(key.dtype, jax.dtypes.prng_key) or key.shape == (2,)):
        raise TypeError("key must be a JAX PRNG key, e.g. jax.random.key(0)")


def _check_modulus(modulus: Any) -> int:
    modulus = positive_int(modulus, "modulus", minimum=3)
    if modulus > MAX_MODULUS:
        raise ValueError(f"modulus must be at most {MAX_MODULUS} (P² pairs are trained full-batch), got {modulus}")
    return modulus


def all_pairs(modulus: int) -> tuple[np.ndarray, np.ndarray]:
    """Every pair (a, b) of tokens: two int arrays (P²,), pair i = (i // P, i % P)."""
    modulus = _check_modulus(modulus)
    a, b = np.divmod(np.arange(modulus * modulus), modulus)
    return a, b


def split_pairs(key: jax.Array, modulus: int, train_fraction: float) -> np.ndarray:
    """A keyed train mask (P²,) bool holding round(train_fraction·P²) pairs (at least 1, not all)."""
    _check_key(key)
    modulus = _check_modulus(modulus)
    fraction = positive_float(train_fraction, "train_fraction")
    if fraction >= 1.0:
        raise ValueError(f"train_fraction must be in (0, 1) so that some pairs are held out, got {train_fraction}")
    total = modulus * modulus
    count = min(max(int(round(fraction * total)), 1), total - 1)
    mask = np.zeros(total, bool)
    mask[np.asarray(jax.random.permutation(key, total))[:count]] = True
    return mask


def init_modular_addition(key: jax.Array, modulus: int, embed_dim: int = 32, hidden: int = 64) -> ModularAdditionParams:
    """Random weights: entries N(0, 1/d) for E, N(0, 1/d) for W_hidden, N(0, 1/h) for W_unembed; b = 0."""
    _check_key(key)
    modulus = _check_modulus(modulus)
    d, h = positive_int(embed_dim, "embed_dim"), positive_int(hidden, "hidden")
    k_embed, k_hidden, k_unembed = jax.random.split(key, 3)
    return ModularAdditionParams(
        embedding=jax.random.normal(k_embed, (modulus, d)) / math.sqrt(d),
        hidden_weight=jax.random.normal(k_hidden, (2 * d, h)) / math.sqrt(d),
        hidden_bias=jnp.zeros(h),
        unembed=jax.random.normal(k_unembed, (h, modulus)) / math.sqrt(h),
    )


def _check_params(params: Any) -> ModularAdditionParams:
    if not isinstance(params, ModularAdditionParams):
        raise TypeError(f"params must be ModularAdditionParams, got {type(params).__name__}")
    P, d = jnp.shape(params.embedding)
    h = jnp.shape(params.hidden_bias)[0]
    expected = {"hidden_weight": (2 * d, h), "hidden_bias": (h,), "unembed": (h, P)}
    for name, shape in expected.items():
        if jnp.shape(getattr(params, name)) != shape:
            raise ValueError(f"params.{name} must have shape {shape} for an embedding of shape {(P, d)} and "
                             f"{h} hidden units, got {jnp.shape(getattr(params, name))}")
    return params


def _logits(params: ModularAdditionParams, a, b):
    x = jnp.concatenate([params.embedding[a], params.embedding[b]], axis=-1)
    return jax.nn.relu(x @ params.hidden_weight + params.hidden_bias) @ params.unembed


def modular_addition_logits(params: ModularAdditionParams, a: Int[Array, " N"], b: Int[Array, " N"]
                            ) -> Float[Array, "N P"]:
    """The network's logits (N, P) over c for the token pairs (a_i, b_i), 0 <= a_i, b_i < P."""
    params = _check_params(params)
    P = params.embedding.shape[0]
    a, b = np.asarray(a), np.asarray(b)
    for name, tokens in (("a", a), ("b", b)):
        if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer):
            raise TypeError(f"{name} must be a 1-D integer array of tokens, got dtype {tokens.dtype}, "
                            f"shape {tokens.shape}")
        if tokens.size and (tokens.min() < 0 or tokens.max() >= P):
            raise ValueError(f"{name} must hold tokens in [0, {P}), got values in [{tokens.min()}, {tokens.max()}]")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    return _logits(params, jnp.asarray(a), jnp.asarray(b))


def _loss(params, a, b, labels):
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(_logits(params, a, b), labels))


def _accuracy(params, a, b, labels, mask):
    right = jnp.argmax(_logits(params, a, b), axis=-1) == labels
    return jnp.sum(right * mask) / jnp.maximum(jnp.sum(mask), 1)


@functools.partial(jax.jit, static_argnames=("optimizer", "chunk"), donate_argnums=(0,))
def _train_chunk(carry, data, first_step, total_steps, *, optimizer, chunk):
    """``chunk`` full-batch AdamW steps (steps past ``total_steps`` leave the carry unchanged)."""
    a, b, labels, train = data
    a_train, b_train, labels_train = a[train], b[train], labels[train]

    def step(carry, t):
        params, state = carry
        grads = jax.grad(_loss)(params, a_train, b_train, labels_train)
        updates, new_state = optimizer.update(grads, state, params)
        keep = lambda new, old: jnp.where(t < total_steps, new, old)  # noqa: E731
        return (jax.tree.map(keep, optax.apply_updates(params, updates), params),
                jax.tree.map(keep, new_state, state)), None

    carry, _ = jax.lax.scan(step, carry, first_step + jnp.arange(chunk))
    params = carry[0]
    mask = jnp.zeros(a.shape[0], bool).at[train].set(True)
    statistics = (_loss(params, a_train, b_train, labels_train), _accuracy(params, a, b, labels, mask),
                  _accuracy(params, a, b, labels, ~mask))
    return carry, statistics


def train_modular_addition(
    key: jax.Array,
    modulus: int,
    *,
    embed_dim: int = 32,
    hidden: int = 64,
    train_fraction: float = 0.3,
    steps: int = 10_000,
    learning_rate: float = 3e-3,
    weight_decay: float = 1.0,
    eval_every: int = 250,
    progress: Callable[[int, int, float], None] | None = None,
) -> GrokkingResult:
    """Trains the network on (a + b) mod P, full-batch AdamW (β = 0.9, 0.98), and traces its accuracy.

    Args:
        key: PRNG key; it draws the train/test split and the initial weights (deterministic).
        modulus: P, 3 <= P <= 1024 (tokens 0..P−1; P prime gives the cleanest Fourier structure).
        embed_dim, hidden: d and h of the network.
        train_fraction: the fraction of the P² pairs trained on, in (0, 1).
        steps: full-batch optimisation steps.
        learning_rate, weight_decay: AdamW's (decoupled weight decay, applied to every weight).
        eval_every: steps between evaluations of the train loss and train/test accuracy.
        progress: called as ``progress(steps_done, steps, test_accuracy)`` after each evaluation.
    """
    _check_key(key)
    modulus = _check_modulus(modulus)
    steps = positive_int(steps, "steps")
    eval_every = positive_int(eval_every, "eval_every")
    learning_rate = positive_float(learning_rate, "learning_rate")
    weight_decay = nonnegative_float(weight_decay, "weight_decay")
    if progress is not None and not callable(progress):
        raise TypeError("progress must be callable as progress(steps_done, steps, test_accuracy) or None")
    k_split, k_init = jax.random.split(key)
    train_mask = split_pairs(k_split, modulus, train_fraction)
    params = init_modular_addition(k_init, modulus, embed_dim, hidden)
    a, b = all_pairs(modulus)
    data = (jnp.asarray(a), jnp.asarray(b), jnp.asarray((a + b) % modulus), jnp.asarray(np.flatnonzero(train_mask)))
    optimizer = optax.adamw(learning_rate, b1=0.9, b2=0.98, weight_decay=weight_decay)
    carry = (params, optimizer.init(params))
    chunk = min(eval_every, steps)
    trace = []
    for first in range(0, steps, chunk):
        carry, statistics = _train_chunk(carry, data, first, steps, optimizer=optimizer, chunk=chunk)
        done = min(first + chunk, steps)
        trace.append((done, *(float(s) for s in statistics)))
        if progress is not None:
            progress(done, steps, trace[-1][3])
    done, loss, train_accuracy, test_accuracy = (np.asarray(column) for column in zip(*trace))
    return GrokkingResult(carry[0], done.astype(np.int64), loss, train_accuracy, test_accuracy, train_mask)


# -- files ------------------------------------------------------------------------------------------
def grokking_arrays(result: GrokkingResult) -> dict[str, np.ndarray]:
    """The result as a flat dict of NumPy arrays (for ``.npz`` or a runner cell)."""
    if not isinstance(result, GrokkingResult):
        raise TypeError(f"result must be a GrokkingResult, got {type(result).__name__}")
    arrays = {f"params_{name}": np.asarray(value) for name, value in result.params._asdict().items()}
    return arrays | {name: np.asarray(getattr(result, name))
                     for name in ("steps", "train_loss", "train_accuracy", "test_accuracy", "train_mask")}


def grokking_from_arrays(arrays: Mapping[str, Any]) -> GrokkingResult:
    """The inverse of :func:`grokking_arrays` (checks that every array is there with fitting shapes)."""
    missing = [f"params_{n}" for n in ModularAdditionParams._fields if f"params_{n}" not in arrays]
    missing += [n for n in GrokkingResult._fields[1:] if n not in arrays]
    if missing:
        raise ValueError(f"not a saved GrokkingResult: missing arrays {missing}")
    params = _check_params(ModularAdditionParams(*(jnp.asarray(arrays[f"params_{n}"])
                                                   for n in ModularAdditionParams._fields)))
    P = params.embedding.shape[0]
    mask = np.asarray(arrays["train_mask"])
    if mask.dtype != np.bool_ or mask.shape != (P * P,):
        raise ValueError(f"train_mask must be bool of shape ({P * P},), got {mask.dtype} {mask.shape}")
    traces = [np.asarray(arrays[n]) for n in ("steps", "train_loss", "train_accuracy", "test_accuracy")]
    if len({t.shape for t in traces}) != 1 or traces[0].ndim != 1:
        raise ValueError(f"the traces must be 1-D of one length, got shapes {[t.shape for t in traces]}")
    return GrokkingResult(params, *traces, mask)


def save_grokking(path: str | Path, result: GrokkingResult) -> Path:
    """Writes the trained network and its traces to ``path`` (.npz, atomically, no pickle)."""
    path = Path(path).with_suffix(".npz")
    files.write_npz(path, grokking_arrays(result))
    return path


def load_grokking(path: str | Path) -> GrokkingResult:
    """Reads a network written by :func:`save_grokking`."""
    return grokking_from_arrays(files.read_npz(Path(path).with_suffix(".npz")))


# -- Fourier analysis of the embedding ------------------------------------------------------------------
def _embedding(embedding: Any) -> np.ndarray:
    E = finite_matrix(embedding, "embedding")
    if E.shape[0] < 3:
        raise ValueError(f"embedding must have shape (P, d) with P >= 3 tokens, got {E.shape}")
    return E


def fourier_power(embedding: Any) -> np.ndarray:
    """Power of the embedding (P, d) at each frequency k = 1..P//2 over the token axis, shape (P//2,).

    Power_k = Σ_j |Ê_kj|² + |Ê_(P−k)j|² (Ê the DFT over tokens: frequencies k and P − k are the
    same real cosine/sine pair; for even P the Nyquist k = P/2 counts once). Entry k − 1 is
    frequency k. By Parseval, Σ_k Power_k = P·‖E − mean_a E_a‖²_F.
    """
    E = _embedding(embedding)
    P = E.shape[0]
    power = np.sum(np.abs(np.fft.fft(E, axis=0)) ** 2, axis=1)  # (P,)
    k = np.arange(1, P // 2 + 1)
    return power[k] + np.where(2 * k == P, 0.0, power[(P - k) % P])


def key_frequencies(embedding: Any, count: int) -> np.ndarray:
    """The ``count`` frequencies k in 1..P//2 with the largest :func:`fourier_power`, largest first (int, (count,))."""
    power = fourier_power(embedding)
    count = positive_int(count, "count")
    if count > power.shape[0]:
        raise ValueError(f"count must be at most P//2 = {power.shape[0]} frequencies, got {count}")
    order = np.argsort(-power, kind="stable")
    return order[:count] + 1


def count_key_frequencies(embedding: Any, max_count: int | None = None) -> int:
    """How many frequencies stand out: the position of the largest drop (ratio) in the sorted power.

    Among the ``max_count`` strongest frequencies (default P//2 − 1), the count n maximises
    Power_(n) / Power_(n+1) (sorted descending), so 1 <= n <= max_count.
    """
    power = np.sort(fourier_power(embedding))[::-1]
    limit = power.shape[0] - 1 if max_count is None else positive_int(max_count, "max_count")
    if not 1 <= limit <= power.shape[0] - 1:
        raise ValueError(f"max_count must be in [1, P//2 − 1] = [1, {power.shape[0] - 1}], got {max_count}")
    tiny = np.finfo(float).tiny
    ratios = (power[:limit] + tiny) / (power[1:limit + 1] + tiny)
    return int(np.argmax(ratios)) + 1


def fourier_plane(embedding: Any, frequency: int) -> np.ndarray:
    """The directions (d, 2) of frequency k in the embedding: Eᵀ[cos 2πka/P, sin 2πka/P] (columns).

    Scaled so that E's frequency-k component is cos(2πka/P)·u + sin(2πka/P)·v with [u, v] the result
    (exact for 0 < k < P/2). Zero columns mean the embedding has no power at k.
    """
    E = _embedding(embedding)
    P = E.shape[0]
    frequency = positive_int(frequency, "frequency")
    if frequency > P // 2:
        raise ValueError(f"frequency must be in 1..P//2 = 1..{P // 2}, got {frequency}")
    angle = 2 * np.pi * frequency * np.arange(P) / P
    return (2.0 / P) * E.T @ np.stack([np.cos(angle), np.sin(angle)], axis=1)


def token_angles(modulus: int, frequency: int) -> np.ndarray:
    """θ_a = 2π·(k·a/P mod 1) for tokens a = 0..P−1, radians, shape (P,)."""
    modulus = _check_modulus(modulus)
    frequency = positive_int(frequency, "frequency")
    return 2 * np.pi * ((frequency * np.arange(modulus)) % modulus) / modulus


def frequency_scores(coordinates: Any, frequencies: Any) -> np.ndarray:
    """Circular R² of every fitted circle coordinate against every frequency's token angle.

    Args:
        coordinates: (P, K) one circle coordinate per token and atom, in periods.
        frequencies: (F,) frequencies k in 1..P//2.

    Returns:
        (K, F): entry (j, f) = circular_r2(2π·k_f·a/P, t_j) over the P tokens a.
    """
    t = np.asarray(coordinates, dtype=np.float64)
    if t.ndim != 2:
        raise ValueError(f"coordinates must have shape (P, K), got {t.shape}")
    ks = np.asarray(frequencies)
    if ks.ndim != 1 or ks.size == 0 or not np.issubdtype(ks.dtype, np.integer):
        raise ValueError(f"frequencies must be a non-empty 1-D integer array, got {ks!r}")
    P = t.shape[0]
    return np.array([[circular_r2(token_angles(P, int(k)), t[:, j]) for k in ks] for j in range(t.shape[1])])



class CircleMatch(NamedTuple):
    """Fitted circles matched one-to-one to frequencies (Hungarian on circular R²), in frequency order."""

    frequencies: np.ndarray  # (m,) the frequencies matched, in the order given
    atoms: np.ndarray  # (m,) the fitted atom matched to each
    circular_r2: np.ndarray  # (m,) circular R² of that atom's coordinate against 2π·k·a/P
    best_frequencies: np.ndarray  # (m,) the frequency in 1..P//2 that atom's coordinate fits best
    best_r2: np.ndarray  # (m,) its circular R²


def match_circles(coordinates: Any, frequencies: Any) -> CircleMatch:
    """Matches fitted circle coordinates (P, K) to frequencies (F,) by the largest total circular R².

    Each matched atom is also scored against every frequency 1..P//2, so a circle that fits a
    frequency outside ``frequencies`` better shows it in ``best_frequencies``.
    """
    from superpose.sae.metrics import match_atoms

    scores = frequency_scores(coordinates, frequencies)  # (K, F)
    ks = np.asarray(frequencies)
    matching = match_atoms(scores)
    t = np.asarray(coordinates, np.float64)[:, matching.fitted]
    every = frequency_scores(t, np.arange(1, t.shape[0] // 2 + 1))  # (m, P//2)
    return CircleMatch(ks[matching.planted], matching.fitted, matching.scores, np.argmax(every, axis=1) + 1,
                       np.max(every, axis=1))


def best_pair_overlap(directions: Any, plane: Any) -> float:
    """max over pairs (i, j) of directions (L, p) of plane_overlap(span(d_i, d_j), plane (p, 2)).

    How well the best two latents of a linear SAE span a plane; pairs of (nearly) parallel
    directions (|cos| > 0.999) are skipped. 0 when no pair qualifies.
    """
    from superpose.sae.metrics import plane_overlap

    D = np.asarray(directions, np.float64)
    U = np.asarray(plane, np.float64)
    if D.ndim != 2 or U.ndim != 2 or U.shape != (D.shape[1], 2):
        raise ValueError(f"directions must be (L, p) and plane (p, 2), got {D.shape} and {U.shape}")
    unit = D / np.maximum(np.linalg.norm(D, axis=1, keepdims=True), 1e-300)
    best = 0.0
    for i in range(D.shape[0]):
        for j in range(i + 1, D.shape[0]):
            if abs(unit[i] @ unit[j]) < 0.999 and np.linalg.norm(D[i]) > 0 and np.linalg.norm(D[j]) > 0:
                best = max(best, plane_overlap(np.stack([D[i], D[j]], axis=1), U))
    return best


# -- manifold SAE starts on every-atom-active data -----------------------------------------------------
def _circle_atoms(atoms) -> tuple:
    from superpose.sae.atoms import CircleAtom

    atoms = tuple(atoms)
    if not atoms or not all(isinstance(atom, CircleAtom) for atom in atoms):
        raise TypeError("these starts are for circle atoms only (superpose.sae.CircleAtom)")
    return atoms


def principal_pair_coordinates(Z: Any, count: int) -> np.ndarray:
    """Circle coordinates (N, count) from the data alone: the angle of principal components 2k, 2k + 1.

    A start for K circle atoms that every row uses at once (each row a sum of circles in
    different planes); no frequency or label is used. Needs 2·count <= min(N, p).
    """
    from superpose.sae.atoms import CircleAtom

    Z = np.asarray(Z, np.float64)
    count = positive_int(count, "count")
    if Z.ndim != 2 or 2 * count > min(Z.shape):
        raise ValueError(f"Z must be (N, p) with 2·count = {2 * count} <= min(N, p), got shape {Z.shape}")
    return dense_coordinates([CircleAtom(1)] * count, Z)


def solve_from_coordinates(Z: Any, atoms, gate, hyperparameters, coordinates: Any, *, max_iterations: int = 100):
    """The inner solve (:func:`superpose.sae.solve.solve`, float64) from given circle coordinates (N, K).

    Every atom starts on. Returns a :class:`superpose.sae.model.SaeFit` (one start).
    """
    from superpose.numerics.precision import float64_enabled
    from superpose.sae.model import fit_from_params
    from superpose.sae.solve import solve

    atoms = _circle_atoms(atoms)
    data = finite_matrix(Z)
    coords = np.asarray(coordinates, np.float64)
    if coords.shape != (data.shape[0], len(atoms)) or not np.all(np.isfinite(coords)):
        raise ValueError(f"coordinates must be finite, of shape (N, K) = {(data.shape[0], len(atoms))}, "
                         f"got {coords.shape}")
    hyperparameters.check_atoms([atom.dim for atom in atoms])
    with float64_enabled():
        start = all_on_params(atoms, gate, np.mod(coords, 1.0), data.shape[1])
        params, report = solve(atoms, gate, start, hyperparameters, jnp.asarray(data),
                               max_iterations=positive_int(max_iterations, "max_iterations"), tol=1e-7)
        return fit_from_params(atoms, gate, hyperparameters, params, report, [report.loss])


def grokking_fit_metrics(fit, seconds, Z, frequencies, planes) -> dict:
    """sae-grokking's metrics of one fit: each key frequency's matched circle, overlaps, variance, solve."""
    from superpose.sae.metrics import circular_variance, curve_span, explained_variance, plane_overlap

    model, encoding = fit.model, fit.encoding
    match = match_circles(encoding.coords, frequencies)
    overlaps = []
    for atom, k in zip(match.atoms, match.frequencies):
        try:
            span = curve_span(model.atom_curve(int(atom), 256))
            overlaps.append(plane_overlap(span, planes[int(k)]))
        except ValueError:  # a collapsed atom spans no plane
            overlaps.append(0.0)
    return {
        "matched_frequencies": match.best_frequencies.tolist(), "key_frequency_of_circle": match.frequencies.tolist(),
        "atom_of_key_frequency": match.atoms.tolist(), "circular_r2": match.circular_r2.tolist(),
        "best_frequency_r2": match.best_r2.tolist(), "plane_overlap": overlaps,
        "circular_variance": [circular_variance(encoding.coords[:, int(a)]) for a in match.atoms],
        "explained_variance": explained_variance(Z, model.decode(encoding)),
        "mean_activity": float(np.mean(encoding.activities)), "penalized_loss": fit.report.loss,
        "converged": fit.report.converged, "iterations": fit.report.iterations, "status": fit.report.status,
        "restart_losses": np.asarray(fit.restart_losses).tolist(), "seconds": seconds,
    }


def grokking_note(run, metrics) -> None:
    """The sae-grokking run's note, quoting its metrics."""
    fits, ev, linear = metrics["fits"], metrics["explained_variance"], metrics["linear"]

    def describe(name):
        m = fits[name]
        pairs = ", ".join(f"k = {k}: {r:.3f}" for k, r in zip(m["key_frequency_of_circle"], m["circular_r2"]))
        return (f"circular R² {pairs} (best-fitting frequencies {m['matched_frequencies']}), explained variance "
                f"{m['explained_variance']:.3f}, penalised loss {m['penalized_loss']:.4g}")

    fs, fo = fits["fit_sae"], fits["fourier_start"]
    verdict = ("fit_sae's own starts found the key-frequency circles" if min(fs["circular_r2"]) >= 0.9 else
               "fit_sae's own starts (one atom per row, by subspace clustering) did not find the key-frequency circles")
    objective = ("the start on the true circles ends at a lower penalised loss than fit_sae"
                 if fo["penalized_loss"] < fs["penalized_loss"] else
                 "fit_sae ends at a penalised loss no higher than the start on the true circles")
    strengths = ("at fixed hyperparameters" if metrics.get("hyperparameters") != "select" else
                 f"at the strengths fit_sae selected by the Laplace criterion in {metrics['selection_evaluations']} "
                 f"evaluations ({metrics['selection_status'].split(' (')[0]}); the two starts with every atom on "
                 "are solved at those strengths")
    step = metrics["steps_to_test_accuracy_0.95"]
    reached = f"first ≥ 0.95 at step {step}" if step is not None else "never ≥ 0.95 during training"
    overlaps = ", ".join(f"{v:.2f}" for v in linear["best_pair_plane_overlap"])
    run.note(
        f"The network reached test accuracy {metrics['test_accuracy']:.3f} ({reached}; train accuracy "
        f"{metrics['train_accuracy']:.3f}) on (a + b) mod {metrics['modulus']}. Its embedding's Fourier spectrum has "
        f"key frequencies {metrics['key_frequencies']} holding {sum(metrics['key_power_fraction']):.1%} of the "
        f"non-constant power, so the SAEs have K = {metrics['circles']} circle atoms. fit_sae: {describe('fit_sae')}. "
        f"From principal-component pairs with every atom on: {describe('principal_start')}. From the true circles: "
        f"{describe('fourier_start')}. In words: {verdict}; {objective}. The TopK linear SAE with "
        f"{linear['latents']} latents (the manifold SAE's decoder rows; k = {linear['k']}) explains "
        f"{ev['linear']:.3f} of the variance and its best pair of latents spans each key frequency's plane with "
        f"overlap {overlaps}; PCA of rank {metrics['pca_rank']} explains {ev['pca']:.3f}. All fits are on the P "
        f"embedding rows (in-sample), {strengths}."
    )


__all__ = [
    "CircleMatch", "GrokkingResult", "ModularAdditionParams", "all_pairs", "best_pair_overlap",
    "count_key_frequencies", "fourier_plane", "fourier_power", "frequency_scores", "grokking_arrays",
    "grokking_fit_metrics", "grokking_note",
    "grokking_from_arrays", "init_modular_addition", "key_frequencies", "load_grokking", "match_circles",
    "modular_addition_logits", "principal_pair_coordinates", "save_grokking", "solve_from_coordinates",
    "split_pairs", "token_angles", "train_modular_addition",
]
