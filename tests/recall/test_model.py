import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from superpose.numerics import float64_enabled
from superpose.recall import (
    RecallDataset,
    drift,
    list_log_likelihoods,
    make_parameters,
    negative_log_likelihood,
    population_nll,
    prepare,
    simulate,
    simulate_recalls,
)
from superpose.recall.parameters import LIMITS, stack

from tests.devices import run_with_devices

from .conftest import random_parameters
from .reference import dataset_log_likelihood, list_log_likelihood


def _unit(rng, n):
    v = np.abs(rng.normal(size=n))
    return v / np.linalg.norm(v)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 10_000), beta=st.floats(0.0, 1.0))
def test_drift_keeps_unit_norm_and_matches_the_closed_form(seed, beta):
    rng = np.random.default_rng(seed)
    c, c_in = _unit(rng, 9), _unit(rng, 9)
    with float64_enabled():
        new = np.asarray(drift(jnp.asarray(c), jnp.asarray(c_in), jnp.float64(beta)))
    dot = c @ c_in
    rho = math.sqrt(1 + beta**2 * (dot**2 - 1)) - beta * dot
    np.testing.assert_allclose(new, rho * c + beta * c_in, atol=1e-12)
    assert abs(np.linalg.norm(new) - 1) < 1e-12


def test_drift_uses_the_dot_product_not_the_elementwise_product():
    c = np.array([0.6, 0.8, 0.0])
    c_in = np.array([0.0, 0.6, 0.8])
    beta = 0.5
    with float64_enabled():
        new = np.asarray(drift(jnp.asarray(c), jnp.asarray(c_in), jnp.float64(beta)))
    # by hand: c·c_in = 0.48, ρ = √(1 + 0.25·(0.48² − 1)) − 0.5·0.48 = √0.8076 − 0.24
    rho = math.sqrt(0.8076) - 0.24
    np.testing.assert_allclose(new, [0.6 * rho, 0.8 * rho + 0.3, 0.4], atol=1e-12)
    elementwise = c * c_in
    rho_wrong = np.sqrt(1 + beta**2 * (elementwise**2 - 1)) - beta * elementwise
    wrong = rho_wrong * c + beta * c_in
    assert abs(np.linalg.norm(wrong) - 1) > 0.05  # the element-wise ρ does not keep the norm ...
    assert not np.allclose(new, wrong / np.linalg.norm(wrong), atol=1e-3)  # ... nor, renormalised, the direction


def _mixed_dataset(rng, n_lists=7):
    """Lists of two lengths, with intrusions (-1) and repeats, to exercise the cleaning and padding."""
    lengths = rng.choice([5, 8], size=n_lists)
    presented = np.zeros((n_lists, 8), int)
    recalls = np.zeros((n_lists, 10), int)
    for row, n in enumerate(lengths):
        presented[row, :n] = np.arange(1, n + 1) + 100 * row
        k = rng.integers(0, n + 1)
        seq = list(rng.permutation(n)[:k] + 1)
        if k and rng.random() < 0.5:
            seq.insert(rng.integers(0, len(seq) + 1), -1)
        if k and rng.random() < 0.5:
            seq.insert(rng.integers(1, len(seq) + 1), seq[0])
        recalls[row, : len(seq)] = seq
    return RecallDataset(subject=np.ones(n_lists, int), list_length=lengths, presented=presented, recalls=recalls)


@pytest.mark.parametrize("seed", range(6))
def test_likelihood_matches_the_plain_python_reference(seed):
    rng = np.random.default_rng(seed)
    values = random_parameters(rng)
    dataset = _mixed_dataset(rng)
    expected = dataset_log_likelihood(values, dataset)
    with float64_enabled():
        params = make_parameters({k: np.float64(v) for k, v in values.items()})
        got = -float(negative_log_likelihood(params, prepare(dataset)))
    assert abs(got - expected) <= 1e-6 * max(1.0, abs(expected))


def test_likelihood_matches_reference_per_list_and_at_fitted_values(fitted_like):
    rng = np.random.default_rng(11)
    dataset = _mixed_dataset(rng, n_lists=5)
    with float64_enabled():
        params = make_parameters({k: np.float64(v) for k, v in fitted_like.items()})
        per_list = np.asarray(list_log_likelihoods(params, prepare(dataset)))
    clean = dataset.clean_recalls()
    for row in range(dataset.n_lists):
        seq = [int(x) for x in clean[row] if x > 0]
        assert abs(per_list[row] - list_log_likelihood(fitted_like, int(dataset.list_length[row]), seq)) < 1e-6


def test_probabilities_of_every_possible_sequence_sum_to_one():
    # A closed-form check: recall sequences of a 3-item list (each a permutation prefix, then stop).
    values = random_parameters(np.random.default_rng(3), stop_probability_scale=0.2)
    sequences = [list(p[:k]) for k in range(4) for p in itertools.permutations([1, 2, 3], k)]
    sequences = [list(s) for s in {tuple(s) for s in sequences}]
    recalls = np.zeros((len(sequences), 3), int)
    for row, s in enumerate(sequences):
        recalls[row, : len(s)] = s
    dataset = RecallDataset(subject=np.ones(len(sequences), int), list_length=np.full(len(sequences), 3),
                            presented=np.tile([1, 2, 3], (len(sequences), 1)), recalls=recalls)
    with float64_enabled():
        params = make_parameters({k: np.float64(v) for k, v in values.items()})
        per_list = np.asarray(list_log_likelihoods(params, prepare(dataset)))
    assert abs(np.exp(per_list).sum() - 1.0) < 1e-12


def test_simulated_sequence_frequencies_match_the_likelihood():
    values = random_parameters(np.random.default_rng(5), stop_probability_scale=0.15, choice_sensitivity=3.0)
    params = make_parameters(values)
    recalls = simulate_recalls(params, np.full(20_000, 3), jax.random.key(0))
    seqs, counts = np.unique(recalls, axis=0, return_counts=True)
    dataset = RecallDataset(subject=np.ones(len(seqs), int), list_length=np.full(len(seqs), 3),
                            presented=np.tile([1, 2, 3], (len(seqs), 1)), recalls=seqs)
    with float64_enabled():
        p64 = make_parameters({k: np.float64(v) for k, v in values.items()})
        probs = np.exp(np.asarray(list_log_likelihoods(p64, prepare(dataset))))
    assert abs(probs.sum() - 1) < 1e-9  # every possible sequence was sampled
    expected = probs * 20_000
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 80  # 15 sequences: df = 14, p(chi2 > 80) < 1e-10


def test_population_equals_single_evaluations_and_is_one_call():
    rng = np.random.default_rng(2)
    dataset = _mixed_dataset(rng)
    trials = prepare(dataset)
    sets = [make_parameters(random_parameters(rng)) for _ in range(5)]
    single = np.array([float(negative_log_likelihood(p, trials)) for p in sets])
    pop = np.asarray(population_nll(stack(sets), trials))
    np.testing.assert_allclose(pop, single, rtol=1e-5)


def test_large_choice_sensitivity_in_float32_stays_finite_and_accurate(fitted_like):
    dataset = _mixed_dataset(np.random.default_rng(4))
    trials = prepare(dataset)
    for tau in (50.0, 100.0):
        values = {**fitted_like, "choice_sensitivity": tau, "shared_support": 0.01, "item_support": 50.0}
        got32 = float(negative_log_likelihood(make_parameters(values), trials))
        expected = -dataset_log_likelihood(values, dataset)
        assert np.isfinite(got32)
        assert abs(got32 - expected) < 1e-4 * abs(expected) + 1e-3


def test_gradients_are_finite_and_match_finite_differences(fitted_like):
    dataset = _mixed_dataset(np.random.default_rng(8))
    trials = prepare(dataset)
    with float64_enabled():
        params = make_parameters({k: np.float64(v) for k, v in fitted_like.items()})
        grad = jax.grad(lambda p: negative_log_likelihood(p, trials))(params)
        for name in ("encoding_drift_rate", "recall_drift_rate", "choice_sensitivity", "stop_probability_growth"):
            h = 1e-6
            up = params._replace(**{name: getattr(params, name) + h})
            down = params._replace(**{name: getattr(params, name) - h})
            fd = (float(negative_log_likelihood(up, trials)) - float(negative_log_likelihood(down, trials))) / (2 * h)
            assert np.isfinite(float(getattr(grad, name)))
            assert abs(float(getattr(grad, name)) - fd) < 1e-4 * max(1.0, abs(fd))


def test_stop_cap_is_smooth_bounded_and_close_to_the_hard_cap_below_one_half():
    from superpose.recall.model import STOP_CEILING, log_stop_probability

    values = random_parameters(np.random.default_rng(0), stop_probability_scale=1e-3)
    with float64_enabled():
        def log_stop(growth):
            params = make_parameters({**values, "stop_probability_growth": growth})
            return log_stop_probability(params, jnp.float64(10.0), jnp.int32(5))[0]

        # the hard cap min(p, C) bends at θ_r = −log(θ_s)/10 (p = C at n = 10); slopes there would jump
        # from 10 to 0: the smooth one changes continuously (one-sided differences agree)
        kink = -math.log(1e-3 / STOP_CEILING) / 10
        h = 1e-5
        left = (float(log_stop(kink)) - float(log_stop(kink - h))) / h
        right = (float(log_stop(kink + h)) - float(log_stop(kink))) / h
        assert abs(left - right) < 1e-2 * abs(left) and 0 < right < 10
        slope = float(jax.grad(log_stop)(jnp.float64(kink)))
        assert abs(slope - 5.0) < 1e-6  # at p = C the soft minimum takes half of the slope of log p
        growth = np.linspace(0.0, 5.0, 201)
        p_hard = np.minimum(1e-3 * np.exp(growth * 10), STOP_CEILING)
        p_soft = np.exp(np.array([float(log_stop(g)) for g in growth]))
        assert np.all(p_soft <= p_hard * (1 + 1e-12))  # never above the hard cap (to rounding)
        low = p_hard <= 0.5
        assert np.max(np.abs(p_soft[low] / p_hard[low] - 1)) < 5e-8  # documented in recall.model
        assert abs(p_soft[-1] / STOP_CEILING - 1) < 1e-12  # far above the cap, the cap holds


@pytest.mark.parametrize("name", ["encoding_drift_rate", "choice_sensitivity", "stop_probability_scale"])
def test_parameters_outside_the_model_limits_are_refused_with_their_limits(name):
    values = random_parameters(np.random.default_rng(0))
    low, high = LIMITS[name]
    outside = high + 1 if np.isfinite(high) else low - 1
    with pytest.raises(ValueError, match=rf"{name} = .* outside its limits \[{low:g}, {high:g}\]"):
        make_parameters({**values, name: outside})
    with pytest.raises(ValueError, match=f"{name} must be finite"):
        make_parameters({**values, name: float("nan")})


def test_unknown_and_missing_parameters_are_named():
    values = random_parameters(np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown CMR parameters \\['tau'\\]"):
        make_parameters({**values, "tau": 1.0})
    values.pop("item_support")
    with pytest.raises(ValueError, match="missing CMR parameters \\['item_support'\\]"):
        make_parameters(values)


def test_simulation_is_keyed_and_shaped():
    params = make_parameters(random_parameters(np.random.default_rng(1)))
    a = simulate(params, jax.random.key(3), list_length=12, n_lists=20)
    b = simulate(params, jax.random.key(3), list_length=12, n_lists=20)
    c = simulate(params, jax.random.key(4), list_length=12, n_lists=20)
    np.testing.assert_array_equal(a.recalls, b.recalls)
    assert not np.array_equal(a.recalls, c.recalls)
    assert a.repeats.sum() == 0 and a.intrusions.sum() == 0
    assert a.recalls.max() <= 12


SHARDED = """
import json, jax, numpy as np
from superpose.recall import population_nll, prepare, simulate, make_parameters
from superpose.recall.parameters import uniform_population, DEFAULT_FREE, DEFAULT_FIXED
truth = make_parameters({"encoding_drift_rate": 0.7, "start_drift_rate": 0.1, "recall_drift_rate": 0.8,
    "mfc_learning_rate": 0.2, "mcf_learning_rate": 1.0, "shared_support": 0.1, "item_support": 4.0,
    "primacy_scale": 6.0, "primacy_decay": 0.4, "stop_probability_scale": 0.01, "stop_probability_growth": 0.3,
    "choice_sensitivity": 4.0})
data = simulate(truth, jax.random.key(0), list_length=10, n_lists=12)
trials = prepare(data)
pop = uniform_population(jax.random.key(1), 37, DEFAULT_FREE, DEFAULT_FIXED)
from superpose.recall import CMRVariant, VariantParameters, prepare_variant, variant_population_nll
instance = CMRVariant(memory="instance")
kappa = np.linspace(0.5, 3.0, 37, dtype=np.float32)
zeros = np.zeros(37, np.float32)
variant_pop = VariantParameters(cmr=pop, semantic_scale=zeros, trace_sensitivity=kappa, category_drift_rate=zeros,
                                category_weight=zeros)
variant_nll = variant_population_nll(variant_pop, prepare_variant(data, instance), instance)
print(json.dumps({"devices": jax.device_count(), "nll": np.asarray(population_nll(pop, trials)).tolist(),
                  "instance_nll": np.asarray(variant_nll).tolist()}))
"""


def test_population_sharded_over_four_devices_equals_one_device():
    runs = run_with_devices(SHARDED)
    assert runs[4]["devices"] == 4 and len(runs[4]["nll"]) == 37
    np.testing.assert_allclose(runs[4]["nll"], runs[1]["nll"], rtol=1e-5)
    # a variant's population goes through the same sharding (instance M^CF, trace sensitivity 0.5..3)
    assert len(runs[4]["instance_nll"]) == 37 and np.all(np.isfinite(runs[1]["instance_nll"]))
    np.testing.assert_allclose(runs[4]["instance_nll"], runs[1]["instance_nll"], rtol=1e-5)


def test_event_activations_equal_context_times_mcf():
    """The context-free recursion gives the same activations as drifting context itself."""
    from superpose.recall import encode, event_activations
    from superpose.recall.model import start_context

    rng = np.random.default_rng(9)
    dataset = _mixed_dataset(rng, n_lists=5)
    with float64_enabled():
        params = make_parameters({k: np.float64(v) for k, v in random_parameters(rng).items()})
        trials = prepare(dataset)
        got = np.asarray(event_activations(params, trials))
        expected = []
        for row in range(dataset.n_lists):
            n = int(dataset.list_length[row])
            network = encode(params, n, trials.n_items)
            context = start_context(params, network)
            for pos in dataset.clean_recalls()[row]:
                if pos == 0:
                    break
                expected.append(np.asarray(context @ network.mcf))
                context = drift(context, network.fc_inputs[pos - 1], params.recall_drift_rate)
    np.testing.assert_allclose(got, np.array(expected), rtol=1e-10, atol=1e-12)
