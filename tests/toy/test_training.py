"""Training paths agree: groups (common random numbers), chunks, the matmul and plane layouts."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import superpose.toy.training as training
from superpose.toy import ToyParams, evaluate, init_params, make_features, train
from superpose.toy.theory import model_expected_loss
from tests.devices import run_with_devices


def _setup(m, n, hidden, density=0.3):
    params = init_params(jax.random.key(0), m, n, hidden)
    importance = jnp.asarray(0.9 ** np.arange(n))[None].repeat(m, 0) * jnp.linspace(0.5, 2, m)[:, None]
    return params, make_features(jnp.full((m, n), density)), importance


def _same(a, b):
    np.testing.assert_allclose(a.params.W, b.params.W, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(a.params.b, b.params.b, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(a.losses, b.losses, rtol=2e-5, atol=1e-7)


def test_a_model_in_a_group_trains_as_alone_on_the_group_stream():
    params, features, importance = _setup(12, 2, 1)
    options = dict(steps=40, batch=64, learning_rate=1e-2, weight_decay=1e-3)
    grouped = train(jax.random.key(1), params, features, importance, group_size=4, streams=[7, 3, 9], **options)
    i = 6  # group 1 → stream 3
    alone = train(jax.random.key(1), ToyParams(params.W[i:i + 1], params.b[i:i + 1]),
                  make_features(features.density[i:i + 1]), importance[i:i + 1], streams=[3], **options)
    np.testing.assert_allclose(alone.params.W[0], grouped.params.W[i], rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(alone.losses[:, 0], grouped.losses[:, i], rtol=2e-5, atol=1e-7)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_chunks_give_the_same_result_as_one_call(reduction):
    params, features, importance = _setup(10, 3, 2)
    options = dict(steps=30, batch=32, learning_rate=1e-2, weight_decay=1e-3, optimizer="adam_coupled_decay",
                   loss_reduction=reduction, log_every=5)
    _same(train(jax.random.key(2), params, features, importance, **options),
          train(jax.random.key(2), params, features, importance, chunk=4, **options))


@pytest.mark.parametrize("kind", ["relu", "linear"])
def test_the_plane_and_matmul_layouts_agree(kind, monkeypatch):
    params, features, importance = _setup(6, 5, 2, density=0.2)
    options = dict(steps=25, batch=48, learning_rate=5e-3, kind=kind, schedule="cosine")
    planes = train(jax.random.key(3), params, features, importance, **options)
    monkeypatch.setattr(training, "PLANES_MAX_WEIGHTS", 0)
    training._train.clear_cache()
    matmul = train(jax.random.key(3), params, features, importance, **options)
    training._train.clear_cache()
    _same(planes, matmul)


def test_learning_curves_fall_and_bad_settings_are_refused():
    params, features, importance = _setup(4, 5, 2, density=0.1)
    result = train(jax.random.key(4), params, features, importance, steps=600, batch=256, learning_rate=1e-2,
                   log_every=100)
    assert result.losses.shape == (6, 4)
    assert np.all(result.losses[-1] < 0.8 * result.losses[0])
    with pytest.raises(ValueError, match="multiple of log_every"):
        train(jax.random.key(0), params, features, importance, steps=10, log_every=3)
    with pytest.raises(ValueError, match="schedule"):
        train(jax.random.key(0), params, features, importance, steps=1, schedule="linear")
    with pytest.raises(ValueError, match="streams"):
        train(jax.random.key(0), params, features, importance, steps=1, streams=[0, 1])
    with pytest.raises(ValueError, match="weight_decay"):
        train(jax.random.key(0), params, features, importance, steps=1, weight_decay=float("nan"))


SHARDED = """
import json, sys
import jax, jax.numpy as jnp, numpy as np
from superpose.toy import init_params, make_features, train
params = init_params(jax.random.key(0), 10, 2, 1)
features = make_features(jnp.full((10, 2), 0.4), parents=[-1, 0])
importance = jnp.stack([jnp.ones(10), jnp.linspace(0.5, 2, 10)], -1)
out = train(jax.random.key(1), params, features, importance, steps=30, batch=64, learning_rate=1e-2,
            group_size=2, chunk=6)
print(json.dumps({"devices": len(jax.devices()), "W": np.asarray(out.params.W).tolist(),
                  "losses": np.asarray(out.losses).tolist()}))
"""


def test_sharding_over_devices_gives_the_same_models():
    runs = run_with_devices(SHARDED)
    assert runs[4]["devices"] == 4
    np.testing.assert_allclose(runs[4]["W"], runs[1]["W"], rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(runs[4]["losses"], runs[1]["losses"], rtol=2e-5, atol=1e-7)


def _monte_carlo_loss(W, b, density, importance, samples=200_000, seed=0):
    """Mean and standard deviation of Σ_j I_j (x_j − x'_j)² per model, by NumPy (independent of JAX)."""
    rng = np.random.default_rng(seed)
    W, b, density, importance = (np.asarray(a, np.float64) for a in (W, b, density, importance))
    active = rng.random((samples, *density.shape)) < density
    x = active * rng.random((samples, *density.shape))  # (S, M, 2): magnitudes U[0, 1] when active
    out = np.maximum(np.einsum("Mhn,Mhk,SMk->SMn", W, W, x) + b, 0.0)
    per_sample = np.sum(importance * (x - out) ** 2, axis=-1)
    return per_sample.mean(0), per_sample.std(0)


@pytest.fixture(scope="module")
def two_feature_models():
    """Eight (m = 1, n = 2) ReLU models with non-zero biases, varied densities and importances."""
    m = 8
    params = init_params(jax.random.key(5), m, 2, 1)
    params = ToyParams(params.W, 0.3 * jax.random.normal(jax.random.key(6), (m, 2)))
    density = jnp.stack([jnp.linspace(0.1, 0.9, m), jnp.linspace(0.7, 0.2, m)], -1)
    importance = jnp.stack([jnp.ones(m), jnp.linspace(0.3, 3.0, m)], -1)
    return params, make_features(density), importance


def test_training_and_evaluate_losses_match_the_exact_expected_loss(two_feature_models):
    # truth: superpose.toy.theory's closed-form expected loss; a batch mean of B samples lies within
    # 5 standard errors σ/√B of it (σ per model from an independent NumPy Monte Carlo). Measured: |z| ≤ 1.6
    # for train and evaluate; ignoring the importance gives |z| up to 104, swapped densities up to 53.
    params, features, importance = two_feature_models
    exact = model_expected_loss(params.W, params.b, features, importance)
    mc_mean, mc_std = _monte_carlo_loss(params.W, params.b, features.density, importance)
    np.testing.assert_allclose(mc_mean, exact, atol=5 * mc_std.max() / np.sqrt(200_000))  # the truth itself
    batch = 8192
    # one logged step: the recorded loss is that of the initial parameters on the step-0 batch
    first = train(jax.random.key(7), params, features, importance, steps=1, batch=batch, learning_rate=1e-3)
    assert np.all(np.abs(np.asarray(first.losses[0]) - exact) < 5 * mc_std / np.sqrt(batch))
    fresh = evaluate(jax.random.key(8), params, features, importance, batch=batch)
    assert fresh.shape == (8,)
    assert np.all(np.abs(np.asarray(fresh) - exact) < 5 * mc_std / np.sqrt(batch))
    # after training, evaluate still estimates the exact loss of the trained parameters, which fell
    trained = train(jax.random.key(9), params, features, importance, steps=200, batch=256, learning_rate=2e-2)
    exact_trained = model_expected_loss(trained.params.W, trained.params.b, features, importance)
    _, std_trained = _monte_carlo_loss(trained.params.W, trained.params.b, features.density, importance, 20_000)
    after = np.asarray(evaluate(jax.random.key(8), trained.params, features, importance, batch=batch))
    assert np.all(np.abs(after - exact_trained) < 5 * std_trained / np.sqrt(batch))
    assert np.all(exact_trained < exact)
