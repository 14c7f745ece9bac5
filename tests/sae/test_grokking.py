"""The modular-addition network, the Fourier analysis of its embedding, and ``sae-grokking``."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from superpose.sae.grokking import (
    ModularAdditionParams,
    all_pairs,
    best_pair_overlap,
    count_key_frequencies,
    fourier_plane,
    fourier_power,
    frequency_scores,
    init_modular_addition,
    key_frequencies,
    load_grokking,
    match_circles,
    modular_addition_logits,
    principal_pair_coordinates,
    save_grokking,
    split_pairs,
    train_modular_addition,
)


def planted_embedding(P, frequencies, amplitudes, d=12, noise=0.0, seed=0):
    """E_a = Σ_k amp_k (cos(2πka/P) u_k + sin(2πka/P) v_k) + noise, with u_k, v_k unit and orthogonal."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((d, 2 * len(frequencies))))[0]
    a = np.arange(P)
    E = np.zeros((P, d))
    for i, (k, amp) in enumerate(zip(frequencies, amplitudes)):
        angle = 2 * np.pi * k * a / P
        E += amp * (np.outer(np.cos(angle), basis[:, 2 * i]) + np.outer(np.sin(angle), basis[:, 2 * i + 1]))
    return E + noise * rng.standard_normal((P, d)), basis


@settings(max_examples=15, deadline=None)
@given(st.integers(7, 61).map(lambda n: n | 1), st.data())
def test_key_frequencies_recover_planted_frequencies(P, data):
    ks = data.draw(st.lists(st.integers(1, P // 2), min_size=1, max_size=min(3, P // 2 - 1), unique=True))
    amplitudes = [1.0, 0.8, 0.6][: len(ks)]
    E, _ = planted_embedding(P, ks, amplitudes, noise=0.03, seed=P)
    found = key_frequencies(E, len(ks))
    assert found.tolist() == ks  # largest power first, as planted
    assert count_key_frequencies(E) == len(ks)


def test_fourier_power_and_plane_against_closed_forms():
    P, ks = 31, [4, 11]
    E, basis = planted_embedding(P, ks, [1.0, 0.5])
    power = fourier_power(E + 3.0)  # a constant offset lives at k = 0 only
    centred = E - E.mean(axis=0)
    assert power.sum() == pytest.approx(P * np.sum(centred**2), rel=1e-10)  # Parseval
    expected = np.zeros(P // 2)
    expected[[3, 10]] = [P**2 * 1.0, P**2 * 0.25]  # |Ê_k|² = amp²·P²/2 at k and again at P − k
    np.testing.assert_allclose(power, expected, atol=1e-8 * P**2)
    np.testing.assert_allclose(fourier_plane(E, 11), 0.5 * basis[:, 2:4], atol=1e-12)
    even = np.cos(2 * np.pi * 3 * np.arange(8) / 8)[:, None]  # even P: the Nyquist k = 4 counts once
    assert np.argmax(fourier_power(even)) + 1 == 3


def test_fourier_helpers_validate():
    with pytest.raises(ValueError, match="P >= 3"):
        fourier_power(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="finite"):
        fourier_power(np.full((5, 2), np.nan))
    with pytest.raises(ValueError, match="at most P//2"):
        key_frequencies(np.ones((9, 2)), 5)
    with pytest.raises(ValueError, match="1..P//2"):
        fourier_plane(np.ones((9, 2)), 5)


def test_forward_matches_numpy():
    P, d, h = 13, 5, 7
    params = init_modular_addition(jax.random.key(3), P, d, h)
    rng = np.random.default_rng(0)
    params = params._replace(hidden_bias=rng.standard_normal(h).astype(np.float32))
    a, b = all_pairs(P)
    E, W, c, U = (np.asarray(x, np.float64) for x in params)
    expected = np.maximum(np.concatenate([E[a], E[b]], axis=1) @ W + c, 0.0) @ U
    np.testing.assert_allclose(np.asarray(modular_addition_logits(params, a, b)), expected, rtol=1e-4, atol=1e-5)
    assert np.array_equal(a * P + b, np.arange(P * P))
    with pytest.raises(ValueError, match=r"\[0, 13\)"):
        modular_addition_logits(params, np.array([13]), np.array([0]))
    with pytest.raises(ValueError, match="must have shape"):
        modular_addition_logits(params._replace(hidden_bias=np.zeros(3)), a, b)


def test_training_is_deterministic_learns_and_round_trips(tmp_path):
    kwargs = dict(embed_dim=8, hidden=32, train_fraction=0.6, steps=300, learning_rate=1e-2, eval_every=100)
    first = train_modular_addition(jax.random.key(1), 11, **kwargs)
    again = train_modular_addition(jax.random.key(1), 11, **kwargs)
    for x, y in zip(first.params, again.params):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert first.steps.tolist() == [100, 200, 300]
    assert first.train_mask.sum() == round(0.6 * 121)
    assert first.train_accuracy[-1] == 1.0 and first.train_loss[-1] < first.train_loss[0]
    # the trace's train accuracy is what the forward pass gives on the training pairs
    a, b = all_pairs(11)
    right = np.argmax(np.asarray(modular_addition_logits(first.params, a, b)), 1) == (a + b) % 11
    assert right[first.train_mask].mean() == first.train_accuracy[-1]
    assert right[~first.train_mask].mean() == pytest.approx(first.test_accuracy[-1])
    loaded = load_grokking(save_grokking(tmp_path / "net", first))
    assert isinstance(loaded.params, ModularAdditionParams)
    for x, y in zip(first, loaded):
        for u, v in zip(jax.tree.leaves(x), jax.tree.leaves(y)):
            np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


def test_training_validates():
    with pytest.raises(ValueError, match="modulus"):
        train_modular_addition(jax.random.key(0), 2)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        split_pairs(jax.random.key(0), 7, 1.0)
    with pytest.raises(TypeError, match="PRNG key"):
        train_modular_addition(0, 7)
    with pytest.raises(ValueError, match="weight_decay"):
        train_modular_addition(jax.random.key(0), 7, weight_decay=-1.0)


def test_match_circles_finds_planted_coordinates():
    P = 37
    a = np.arange(P)
    rng = np.random.default_rng(1)
    # atom 0 follows k = 9 reflected and shifted, atom 1 k = 2, atom 2 is noise
    t = np.stack([np.mod(-9 * a / P + 0.3, 1), np.mod(2 * a / P + 0.01 * rng.standard_normal(P), 1),
                  rng.uniform(size=P)], axis=1)
    match = match_circles(t, np.array([2, 9]))
    assert match.frequencies.tolist() == [2, 9] and match.atoms.tolist() == [1, 0]
    assert match.circular_r2[1] == pytest.approx(1.0, abs=1e-12) and match.circular_r2[0] > 0.99
    assert match.best_frequencies.tolist() == [2, 9]
    scores = frequency_scores(t, np.arange(1, P // 2 + 1))
    assert scores[2].max() < 0.5  # the noise column follows no frequency


def test_best_pair_overlap_and_principal_pairs():
    P, ks = 41, [3, 8]
    E, basis = planted_embedding(P, ks, [1.0, 0.5], d=6)
    rng = np.random.default_rng(2)
    directions = np.concatenate([np.array([[1, 1], [1, -1]]) @ basis[:, :2].T / np.sqrt(2),
                                 rng.standard_normal((3, 6))])
    assert best_pair_overlap(directions, fourier_plane(E, 3)) == pytest.approx(1.0, abs=1e-10)
    assert best_pair_overlap(directions, fourier_plane(E, 8)) < 0.99
    t = principal_pair_coordinates(E, 2)  # distinct radii: each PC pair is one frequency's plane
    assert match_circles(t, np.array(ks)).circular_r2.min() > 0.999


def test_sae_grokking_tiny_run_reports_its_numbers(tmp_path):
    from superpose.runner import run_experiment

    overrides = {"modulus": 11, "embed_dim": 6, "hidden": 16, "train_fraction": 0.6, "train_steps": 200,
                 "circles": 2, "restarts": 1, "max_iterations": 4, "evaluations": 3, "linear_steps": 50}
    record = run_experiment("sae-grokking", overrides, tmp_path / "run")
    assert record.status == "finished", record
    metrics = record.metrics
    for key in ("key_frequencies", "matched_frequencies", "circular_r2", "test_accuracy", "explained_variance",
                "seconds", "fits", "linear"):
        assert key in metrics, key
    assert len(metrics["key_frequencies"]) == len(metrics["matched_frequencies"]) == len(metrics["circular_r2"]) == 2
    assert set(metrics["explained_variance"]) >= {"manifold", "linear", "pca"}
    assert all(0.0 <= r <= 1.0 for r in metrics["circular_r2"])
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert {f["file"] for f in meta["figures"]} == {"training-and-spectrum.png", "circle-coordinates.png"}
    note = " ".join(meta["notes"])
    assert f"{metrics['test_accuracy']:.3f}" in note and str(metrics["key_frequencies"]) in note
    assert f"{metrics['explained_variance']['linear']:.3f}" in note
    assert (tmp_path / "run" / "cells" / "network.npz").exists()
    assert metrics["hyperparameters"] == "select" and 1 <= metrics["selection_evaluations"] <= 3
    assert f"in {metrics['selection_evaluations']} evaluations" in note


def test_sae_grokking_refuses_select_with_a_gate_that_has_no_selectable_strength(tmp_path):
    from superpose.runner import run_experiment

    with pytest.raises(ValueError, match="no strength to select"):
        run_experiment("sae-grokking", {"gate": "beta_bernoulli"}, tmp_path / "run")


@pytest.mark.slow
def test_sae_grokking_quick_recovers_key_frequencies_from_principal_pairs(tmp_path):
    from superpose.runner import run_experiment

    record = run_experiment("sae-grokking", {}, tmp_path / "run", quick=True)
    assert record.status == "finished", record
    metrics = record.metrics
    assert metrics["test_accuracy"] > 0.95
    # measured (seed 0, strengths selected, binary gate): all five key frequencies matched, circular R²
    # 0.998, 0.984, 0.815, 0.985, 0.993
    assert metrics["matched_frequencies"] == metrics["key_frequencies"]
    assert min(metrics["circular_r2"][:2]) > 0.95 and sorted(metrics["circular_r2"])[1] > 0.9
