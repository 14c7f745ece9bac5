"""Simulating the CMR variants (recall.simulation.simulate_variant_like) against their likelihood and the base model."""

import itertools

import jax
import numpy as np
import pytest
import scipy.stats

from superpose.numerics import float64_enabled
from superpose.recall import (
    CMRVariant,
    RecallDataset,
    category_crp,
    distance_crp,
    make_parameters,
    make_variant_parameters,
    prepare_variant,
    simulate_like,
    simulate_variant_like,
    similarity_from_distances,
    variant_list_log_likelihoods,
)
from superpose.recall.compare import VARIANTS as COMPARE_VARIANTS
from superpose.recall.variants import VARIANT_DEFAULTS

from .conftest import random_parameters
from .test_model import _mixed_dataset

VARIANTS = {name: variant or CMRVariant() for name, variant in COMPARE_VARIANTS.items()}
LISTS, REPEATS = 600, 10     # per subject (two subjects): 6000 simulated 3-item lists each (16 possible sequences)
DISTANCES = np.array([[0.0, 0.2, 0.9], [0.2, 0.0, 0.5], [0.9, 0.5, 0.0]])
SIMILARITY = similarity_from_distances(DISTANCES)
CATEGORIES = np.array(["a", "b", "a"], dtype=object)


def _three_item_lists(recalls=None):
    n = 2 * LISTS if recalls is None else len(recalls)
    return RecallDataset(subject=np.repeat([1, 2], n // 2) if recalls is None else np.ones(n, int),
                         list_length=np.full(n, 3), presented=np.tile([1, 2, 3], (n, 1)),
                         recalls=np.zeros((n, 3), int) if recalls is None else recalls,
                         item_attributes={"category": CATEGORIES}, words=("w1", "w2", "w3"))


def _values(rng, variant):
    """Base parameters with moderate choice and stop rules (every sequence is sampled) and added terms away from
    their defaults."""
    values = random_parameters(rng, stop_probability_scale=rng.uniform(0.05, 0.2), choice_sensitivity=rng.uniform(1, 4),
                               stop_probability_growth=rng.uniform(0.1, 0.6))
    if variant.semantic:
        values["semantic_scale"] = rng.uniform(1.0, 5.0)
    if variant.category:
        values |= {"category_drift_rate": rng.uniform(0.3, 0.9), "category_weight": rng.uniform(1.0, 5.0)}
    if variant.memory == "instance":
        values["trace_sensitivity"] = rng.uniform(2.0, 4.0)
    return values


SEQUENCES = np.array([s + (0,) * (3 - len(s)) for k in range(4) for s in itertools.permutations([1, 2, 3], k)])


def _sequence_probabilities(values, variant):
    """exp(variant_list_log_likelihoods) of each of the 16 SEQUENCES, in float64."""
    with float64_enabled():
        trials = prepare_variant(_three_item_lists(SEQUENCES), variant, SIMILARITY)
        params = make_variant_parameters({k: np.float64(v) for k, v in values.items()})
        return np.exp(np.asarray(variant_list_log_likelihoods(params, trials, variant)))


def _chi2(counts, probabilities):
    """Pearson's χ² of the counts against the probabilities, the sequences expected fewer than 5 times pooled
    into one bin; with its degrees of freedom."""
    expected = counts.sum() * probabilities
    rare = expected < 5
    observed = np.r_[counts[~rare], counts[rare].sum()]
    expected = np.r_[expected[~rare], expected[rare].sum()]
    keep = expected > 0
    return float(np.sum((observed[keep] - expected[keep]) ** 2 / expected[keep])), int(keep.sum()) - 1


@pytest.mark.parametrize("name", list(VARIANTS))
def test_simulated_sequence_frequencies_match_the_variant_likelihood(name):
    """Per subject (each with its own parameters), the counts of the 16 possible recall sequences of a 3-item list
    against 6000 · exp(variant_list_log_likelihoods): Pearson's χ² (rare sequences pooled) below its 1 − 10⁻⁶
    quantile (measured 1.6–23.6 on 6–15 degrees of freedom, quantiles 38.3–56.5). The same counts against the base
    model's probabilities (the added terms at their defaults) must exceed that quantile (measured 141–10 783), so the
    added terms are simulated, not only scored. The variants are those recall-compare knows by name (seven, with
    category + instance and semantic + category + instance)."""
    variant = VARIANTS[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    values = {subject: _values(rng, variant) for subject in (1, 2)}
    simulated = simulate_variant_like(_three_item_lists(), {s: make_variant_parameters(v) for s, v in values.items()},
                                      variant, jax.random.key(11), similarity=SIMILARITY, repeats=REPEATS)
    for subject, subject_values in values.items():
        recalls = simulated.recalls[simulated.subject == subject]
        counts = np.array([np.all(recalls == s, axis=1).sum() for s in SEQUENCES])
        assert counts.sum() == LISTS * REPEATS  # every draw is one of the 16 sequences
        probabilities = _sequence_probabilities(subject_values, variant)
        assert abs(probabilities.sum() - 1.0) < 1e-9
        chi2, df = _chi2(counts, probabilities)
        assert df >= 5 and chi2 < scipy.stats.chi2.ppf(1 - 1e-6, df), (subject, chi2, df)
        if name != "base":
            chi2, df = _chi2(counts, _sequence_probabilities({**subject_values, **VARIANT_DEFAULTS}, variant))
            assert chi2 > scipy.stats.chi2.ppf(1 - 1e-6, df), (subject, chi2, df)


def test_defaults_draw_the_base_models_sequences_with_the_same_key():
    """With the added parameters at their defaults, every variant draws exactly simulate_like's sequences from the
    same key (the keys are used alike; the choice probabilities differ only by rounding, exp of the log-space rule
    against the direct one, which could flip a draw within ~1e-7 of a cumulative boundary: none of these 12 000
    lists per variant). The copies keep the data's items, words and categories, so the clustering analyses apply."""
    rng = np.random.default_rng(3)
    data = _three_item_lists()
    values = {1: random_parameters(rng), 2: random_parameters(rng)}
    base = simulate_like(data, {s: make_parameters(v) for s, v in values.items()}, jax.random.key(5), repeats=REPEATS)
    for name, variant in VARIANTS.items():
        params = {s: make_variant_parameters({**v, "category_drift_rate": 0.6}) for s, v in values.items()}
        got = simulate_variant_like(data, params, variant, jax.random.key(5), similarity=SIMILARITY, repeats=REPEATS)
        np.testing.assert_array_equal(got.recalls, base.recalls, err_msg=name)
    np.testing.assert_array_equal(got.list_number, base.list_number)  # copy r of list k is number r·600 + k
    np.testing.assert_array_equal(got.subject, base.subject)
    other = simulate_variant_like(data, params, variant, jax.random.key(6), similarity=SIMILARITY, repeats=REPEATS)
    assert not np.array_equal(other.recalls, got.recalls)
    np.testing.assert_array_equal(got.presented, np.tile(data.presented, (REPEATS, 1)))
    assert got.words == data.words and list(got.item_attributes["category"]) == list(CATEGORIES)
    assert category_crp(got)["possible"].sum() > 0
    assert distance_crp(got, DISTANCES, edges=[0.0, 0.3, 1.0])["actual"].sum() > 0
    # CMRParameters stand for the added parameters at their defaults, and None for the base model
    again = simulate_variant_like(data, {s: make_parameters(v) for s, v in values.items()}, None, jax.random.key(5),
                                  repeats=REPEATS)
    np.testing.assert_array_equal(again.recalls, base.recalls)


def test_lists_of_two_lengths_draw_the_base_models_sequences():
    """Lists of 5 and 8 items (padded to 8) get simulate_like's keys too: instance memory at κ = 1 draws its
    sequences, each a sequence of distinct studied positions."""
    data = _mixed_dataset(np.random.default_rng(2), n_lists=6)
    params = make_parameters(random_parameters(np.random.default_rng(4)))
    got = simulate_variant_like(data, params, CMRVariant(memory="instance"), jax.random.key(0), repeats=2)
    np.testing.assert_array_equal(got.recalls, simulate_like(data, params, jax.random.key(0), repeats=2).recalls)
    assert got.n_lists == 12 and got.intrusions.sum() == 0 and got.repeats.sum() == 0
    assert np.all(got.recalls <= got.list_length[:, None])


def test_bad_inputs_are_named():
    data = _three_item_lists(np.zeros((2, 3), int))
    params = make_variant_parameters(random_parameters(np.random.default_rng(0)))
    key = jax.random.key(0)
    with pytest.raises(TypeError, match="expected a RecallDataset"):
        simulate_variant_like(data.recalls, params, CMRVariant(), key)
    with pytest.raises(TypeError, match="variant must be a CMRVariant or None"):
        simulate_variant_like(data, params, "semantic", key)
    with pytest.raises(TypeError, match="parameters must be one VariantParameters"):
        simulate_variant_like(data, {"encoding_drift_rate": 0.5}, CMRVariant(), key)
    with pytest.raises(TypeError, match="for subject 1"):
        simulate_variant_like(data, {1: 0.5}, CMRVariant(), key)
    with pytest.raises(TypeError, match="key must be a JAX PRNG key"):
        simulate_variant_like(data, params, CMRVariant(), 0)
    with pytest.raises(ValueError, match=r"no parameters for subjects \[1\]"):
        simulate_variant_like(data, {2: params}, CMRVariant(), key)
    with pytest.raises(ValueError, match="repeats must be an integer >= 1"):
        simulate_variant_like(data, params, CMRVariant(), key, repeats=0)
    with pytest.raises(ValueError, match="semantic_scale is outside its limits"):
        simulate_variant_like(data, {1: params._replace(semantic_scale=-2.0)}, CMRVariant(semantic=True), key,
                              similarity=SIMILARITY)
    with pytest.raises(ValueError, match="needs a similarity matrix"):
        simulate_variant_like(data, params, CMRVariant(semantic=True), key)
    with pytest.raises(ValueError, match="cover item numbers"):
        simulate_variant_like(data, params, CMRVariant(semantic=True), key, similarity=SIMILARITY[:2, :2])
    plain = RecallDataset(subject=data.subject, list_length=data.list_length, presented=data.presented,
                          recalls=data.recalls)
    with pytest.raises(ValueError, match="needs the item attribute 'category'"):
        simulate_variant_like(plain, params, CMRVariant(category=True), key)
    with pytest.raises(ValueError, match="trace_sensitivity is outside its limits"):
        simulate_variant_like(data, params._replace(trace_sensitivity=-1.0), CMRVariant(memory="instance"), key)
    values = random_parameters(np.random.default_rng(0))
    population = make_variant_parameters({k: np.full(2, v) for k, v in values.items()})
    with pytest.raises(ValueError, match="of scalars; subject 1 has shapes"):
        simulate_variant_like(data, population, CMRVariant(), key)
