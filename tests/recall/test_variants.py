"""CMR variants (semantic M^CF, category units, instance M^CF) against the NumPy reference and the base model."""

import itertools

import jax
import numpy as np
import pytest

from superpose.numerics import float64_enabled
from superpose.recall import (
    RecallDataset,
    distances_by_item,
    load_sample,
    make_parameters,
    negative_log_likelihood,
    prepare,
    psifr_available,
)
from superpose.recall.variants import (
    CMRVariant,
    make_variant_parameters,
    prepare_variant,
    similarity_from_distances,
    stack_variant_parameters,
    variant_list_log_likelihoods,
    variant_nll,
    variant_population_nll,
)

from .conftest import random_parameters
from .reference import variant_list_log_likelihood
from .test_model import _mixed_dataset

needs_psifr = pytest.mark.skipif(not psifr_available(), reason="psifr (the 'recall' extra) is not installed")

VARIANTS = {
    "semantic": CMRVariant(semantic=True),
    "instance": CMRVariant(memory="instance"),
    "semantic+instance": CMRVariant(semantic=True, memory="instance"),
    "category": CMRVariant(category=True),
    "semantic+category": CMRVariant(semantic=True, category=True),
    "category+instance": CMRVariant(category=True, memory="instance"),
    "semantic+category+instance": CMRVariant(semantic=True, category=True, memory="instance"),
}
CATEGORIES = np.array(["fruit", "tool", "bird"], dtype=object)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(21)
    plain = _mixed_dataset(rng, n_lists=6)
    pool = int(plain.presented.max())
    dataset = RecallDataset(subject=plain.subject, list_length=plain.list_length, presented=plain.presented,
                            recalls=plain.recalls, item_attributes={"category": rng.choice(CATEGORIES, pool)})
    distances = rng.uniform(0.0, 1.2, (pool, pool))
    similarity = similarity_from_distances((distances + distances.T) / 2)
    return dataset, similarity


def _extra(rng, variant):
    out = {}
    if variant.semantic:
        out["semantic_scale"] = rng.uniform(0.1, 20.0)
    if variant.memory == "instance":
        out["trace_sensitivity"] = rng.uniform(0.3, 4.0)
    if variant.category:
        out["category_drift_rate"] = rng.uniform(0.05, 0.95)
        out["category_weight"] = rng.uniform(0.1, 20.0)
    return out


def _reference(values, dataset, similarity, variant):
    clean = dataset.clean_recalls()
    total = 0.0
    for row in range(dataset.n_lists):
        n = int(dataset.list_length[row])
        items = dataset.presented[row, :n] - 1
        total += variant_list_log_likelihood(
            values, n, [int(x) for x in clean[row] if x > 0],
            similarity=similarity[np.ix_(items, items)] if variant.semantic else None,
            trace_sensitivity=values["trace_sensitivity"] if variant.memory == "instance" else None,
            categories=[1 + sorted(CATEGORIES).index(dataset.item_attributes["category"][i]) for i in items]
            if variant.category else None, n_categories=len(CATEGORIES))
    return total


def _f64(values):
    return make_variant_parameters({k: np.float64(v) for k, v in values.items()})


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_matches_the_numpy_reference(data, name):
    dataset, similarity = data
    variant = VARIANTS[name]
    rng = np.random.default_rng(len(name))
    with float64_enabled():
        trials = prepare_variant(dataset, variant, similarity=similarity)
        for _ in range(3):
            values = {**random_parameters(rng), **_extra(rng, variant)}
            expected = _reference(values, dataset, similarity, variant)
            got = -float(variant_nll(_f64(values), trials, variant))
            assert abs(got - expected) <= 1e-6 * max(1.0, abs(expected)), (values, got, expected)


def test_defaults_reproduce_the_base_model(data):
    dataset, similarity = data
    rng = np.random.default_rng(4)
    values = random_parameters(rng)
    with float64_enabled():
        base = float(negative_log_likelihood(make_parameters({k: np.float64(v) for k, v in values.items()}),
                                             prepare(dataset)))
        for variant in VARIANTS.values():
            trials = prepare_variant(dataset, variant, similarity=similarity)
            got = float(variant_nll(_f64({**values, "category_drift_rate": 0.6}), trials, variant))
            assert abs(got - base) <= 1e-10 * abs(base), variant


@needs_psifr
def test_morton2013_semantic_and_category_model_with_psifr_distances(fitted_like):
    from psifr import fr

    data = load_sample("Morton2013")
    words, distances = fr.sample_distances("Morton2013")
    similarity = similarity_from_distances(distances_by_item(data, words, distances))
    subject = data.select(subjects=[1])
    variant = VARIANTS["semantic+category"]
    trials = prepare_variant(subject, variant, similarity=similarity)
    assert trials.similarity.shape == (48, 24, 24) and float(trials.similarity.min()) >= 0
    assert trials.category_units.shape == (48, 24, 4)       # start unit + cel, loc, obj
    np.testing.assert_array_equal(np.asarray(trials.category_units).sum(-1), 1.0)
    base = float(negative_log_likelihood(make_parameters(fitted_like), prepare(subject)))
    settings = [(0.0, 0.0), (0.5, 0.0), (0.5, 2.0)]                # (semantic_scale, category_weight)
    population = stack_variant_parameters([make_variant_parameters(fitted_like, semantic_scale=s, category_weight=w,
                                                                   category_drift_rate=0.4) for s, w in settings])
    nll = np.asarray(variant_population_nll(population, trials, variant))        # float32
    assert abs(nll[0] - base) <= 1e-5 * abs(base)      # s = w = 0 is the base model, to float rounding
    assert np.all(np.isfinite(nll)) and len(set(nll.tolist())) == 3


def test_instance_memory_at_sensitivity_one_equals_linear_memory_with_semantics(data):
    dataset, similarity = data
    values = {**random_parameters(np.random.default_rng(5)), "semantic_scale": 7.0, "trace_sensitivity": 1.0}
    with float64_enabled():
        linear = CMRVariant(semantic=True)
        instance = CMRVariant(semantic=True, memory="instance")
        a = float(variant_nll(_f64(values), prepare_variant(dataset, linear, similarity=similarity), linear))
        b = float(variant_nll(_f64(values), prepare_variant(dataset, instance, similarity=similarity), instance))
    assert abs(a - b) <= 1e-6 * abs(a)


@pytest.mark.parametrize("semantic", [False, True])
def test_category_instance_memory_at_sensitivity_one_equals_category_linear_memory(data, semantic):
    """Instance memory per sublayer: at κ = 1 each sublayer's Σ_t (c·c_t)^1 v_t is its linear read-out, so
    category + instance is category + linear on random parameters (float64, 1e-9); at κ ≠ 1 it is not."""
    dataset, similarity = data
    linear = CMRVariant(semantic=semantic, category=True)
    instance = CMRVariant(semantic=semantic, category=True, memory="instance")
    rng = np.random.default_rng(8 + semantic)
    with float64_enabled():   # the shapes and dtypes of test_variant_matches_the_numpy_reference: no new compile
        linear_trials = prepare_variant(dataset, linear, similarity=similarity)
        instance_trials = prepare_variant(dataset, instance, similarity=similarity)
        for _ in range(3):
            values = {**random_parameters(rng), **_extra(rng, instance), "trace_sensitivity": 1.0}
            a = float(variant_nll(_f64(values), linear_trials, linear))
            b = float(variant_nll(_f64(values), instance_trials, instance))
            assert abs(a - b) <= 1e-9 * abs(a), (values, a, b)
            for kappa in (0.5, 2.0):
                c = float(variant_nll(_f64({**values, "trace_sensitivity": kappa}), instance_trials, instance))
                assert abs(c - a) > 0.5 and abs(c - a) > 1e-3 * abs(a), (values, kappa, a, c)


def test_the_category_sublayers_traces_are_its_linear_read_out_only_at_sensitivity_one():
    """The category sublayer alone (context drifted with NumPy): its trace read-out equals c^cat·M^CF_cat at κ = 1
    and, at κ = 2, the sum of (c^cat·c^cat_t)² v_t over its explicit traces (unit traces (e_g, M^CF_cat,pre[g]),
    study traces (c^cat_k, γ_CF φ_k f_k)), which differs from the linear read-out."""
    from superpose.recall.variants import category_instance_activations

    from .reference import _drift

    rng = np.random.default_rng(12)
    categories = np.array([1, 2, 1, 3, 2, 0])           # five studied items, then a padding slot
    units = np.eye(4)[categories] * (np.arange(6) < 5)[:, None]
    values = {**random_parameters(rng), "category_drift_rate": 0.7, "category_weight": 1.0}
    contexts, c = [], np.eye(4)[0]
    for k in range(5):
        c = _drift(c, np.eye(4)[categories[k]], 0.7)
        contexts.append(c)
    contexts = np.array(contexts + [c])                 # the last studied context repeats in the padding slot
    cue = _drift(c, np.eye(4)[0], values["start_drift_rate"]) * 0.9 + 0.1 * contexts[2]   # any nonnegative cue
    gain = values["mcf_learning_rate"] * (values["primacy_scale"] * np.exp(-values["primacy_decay"] * np.arange(6))
                                          + 1) * (np.arange(6) < 5)
    linear = cue @ (units.T + gain * contexts.T)
    with float64_enabled():
        vp = _f64(values)
        one, two = (np.asarray(category_instance_activations(vp._replace(trace_sensitivity=np.float64(kappa)), cue,
                                                             contexts @ cue, units)) for kappa in (1.0, 2.0))
    np.testing.assert_allclose(one, linear, rtol=1e-12, atol=1e-15)
    traces = [(np.eye(4)[g], units[:, g]) for g in range(4)] + [(contexts[k], gain[k] * np.eye(6)[k]) for k in range(5)]
    np.testing.assert_allclose(two, sum(max(float(cue @ t), 0.0) ** 2 * v for t, v in traces), rtol=1e-12)
    assert np.max(np.abs(two[:5] - linear[:5]) / linear[:5]) > 0.1


@pytest.mark.parametrize("name", ["semantic+instance", "semantic+category", "semantic+category+instance"])
def test_probabilities_of_every_sequence_of_a_three_item_list_sum_to_one(name):
    variant = VARIANTS[name]
    sequences = sorted({tuple(p[:k]) for k in range(4) for p in itertools.permutations([1, 2, 3], k)})
    recalls = np.zeros((len(sequences), 3), int)
    for row, s in enumerate(sequences):
        recalls[row, : len(s)] = s
    dataset = RecallDataset(subject=np.ones(len(sequences), int), list_length=np.full(len(sequences), 3),
                            presented=np.tile([1, 2, 3], (len(sequences), 1)), recalls=recalls,
                            item_attributes={"category": np.array(["a", "b", "a"], dtype=object)})
    similarity = similarity_from_distances(np.array([[0, 0.2, 0.9], [0.2, 0, 0.5], [0.9, 0.5, 0]]))
    rng = np.random.default_rng(3)
    values = {**random_parameters(rng, stop_probability_scale=0.2), **_extra(rng, variant)}
    with float64_enabled():
        per_list = np.asarray(variant_list_log_likelihoods(
            _f64(values), prepare_variant(dataset, variant, similarity=similarity), variant))
    assert abs(np.exp(per_list).sum() - 1.0) < 1e-12


def test_population_equals_single_evaluations_and_gradients_are_finite(data):
    dataset, similarity = data
    variant = VARIANTS["semantic+category+instance"]   # every added term
    trials = prepare_variant(dataset, variant, similarity=similarity)
    rng = np.random.default_rng(6)
    values = [{**random_parameters(rng), **_extra(rng, variant)} for _ in range(5)]
    sets = [make_variant_parameters(v) for v in values]
    population = stack_variant_parameters(sets)
    expected = np.array([-_reference(v, dataset, similarity, variant) for v in values])
    got = np.asarray(variant_population_nll(population, trials, variant))   # float32
    single = np.array([float(variant_nll(s, trials, variant)) for s in sets])
    np.testing.assert_allclose(got, single, rtol=1e-5)
    # float32 against the float64 reference: the base model's float32 path is off by up to 4e-4
    # (relative) on these draws too, so this checks the scale, not the rounding
    np.testing.assert_allclose(got, expected, rtol=1e-3)
    grad = jax.grad(lambda p: variant_nll(p, trials, variant))(sets[0])
    added = ("semantic_scale", "trace_sensitivity", "category_drift_rate", "category_weight")
    assert all(np.isfinite(float(getattr(grad, n))) and float(getattr(grad, n)) != 0.0 for n in added), grad


def test_missing_data_and_bad_settings_are_named(data):
    dataset, similarity = data
    semantic = CMRVariant(semantic=True)
    with pytest.raises(ValueError, match="needs a similarity matrix"):
        prepare_variant(dataset, semantic)
    with pytest.raises(ValueError, match="cover item numbers"):
        prepare_variant(dataset, semantic, similarity=similarity[:3, :3])
    holes = similarity.copy()
    item = int(dataset.presented[0, 0])
    holes[item - 1, :] = np.nan
    with pytest.raises(ValueError, match=f"not finite for item {item}"):
        prepare_variant(dataset, semantic, similarity=holes)
    with pytest.raises(ValueError, match="memory must be one of"):
        CMRVariant(memory="trace")
    with pytest.raises(ValueError, match="memory must be one of"):
        CMRVariant(category=True, memory="instances")
    with pytest.raises(TypeError, match="category must be a bool"):
        CMRVariant(category=1, memory="instance")
    with pytest.raises(ValueError, match="needs the item attribute 'category'"):
        prepare_variant(_mixed_dataset(np.random.default_rng(0)), CMRVariant(category=True))
    unknown = dict(dataset.item_attributes)["category"].copy()
    unknown[item - 1] = None
    with pytest.raises(ValueError, match=f"item {item} .* has none"):
        prepare_variant(RecallDataset(subject=dataset.subject, list_length=dataset.list_length,
                                      presented=dataset.presented, recalls=dataset.recalls,
                                      item_attributes={"category": unknown}), CMRVariant(category=True))
    with pytest.raises(ValueError, match="semantic_scale is outside its limits"):
        make_variant_parameters({**random_parameters(np.random.default_rng(0)), "semantic_scale": -1.0})
    assert CMRVariant(semantic=True, memory="instance").free[-2:] == ("semantic_scale", "trace_sensitivity")
    assert CMRVariant(category=True, memory="instance").extra == ("category_drift_rate", "category_weight",
                                                                  "trace_sensitivity")


def test_similarity_from_distances_is_one_minus_distance_clipped_with_zero_diagonal():
    d = np.array([[0.0, 0.25, 1.1], [0.25, 0.0, np.nan], [1.1, np.nan, 0.0]])
    s = similarity_from_distances(d)
    np.testing.assert_array_equal(s[0], [0.0, 0.75, 0.0])
    assert np.isnan(s[1, 2]) and s[2, 2] == 0.0


def test_fitting_a_semantic_variant_reaches_the_brute_force_minimum(data, tmp_path):
    """fit(variant=...) against a 31 × 30 grid over (semantic scale, τ) of the float64 likelihood; the
    base model (s = 0) is nested in it, so the fit is no worse than the grid's s = 0 column either."""
    from superpose.recall import FitResult, fit
    from superpose.recall.variants import VariantParameters

    dataset, similarity = data
    subject = int(dataset.subjects[0])
    one = dataset.select(subjects=[subject])
    free = ("semantic_scale", "choice_sensitivity")
    fixed = {k: v for k, v in random_parameters(np.random.default_rng(5)).items() if k not in free}
    variant = CMRVariant(semantic=True)
    result = fit(one, variant=variant, similarity=similarity, free=free, fixed=fixed, restarts=1, popsize=8,
                 confirm=None, seed=0)
    f = result.fits[0]
    scales, taus = np.meshgrid(np.r_[0.0, np.geomspace(0.01, 100.0, 30)], np.geomspace(0.05, 100.0, 30))
    trials = prepare_variant(one, variant, similarity)
    with float64_enabled():
        grid = np.asarray(variant_population_nll(make_variant_parameters(
            {**{k: np.full(scales.size, np.float64(v)) for k, v in fixed.items()},
             "semantic_scale": scales.ravel(), "choice_sensitivity": taus.ravel()}), trials, variant))
    grid = grid.reshape(scales.shape)
    assert f.nll <= grid.min() + 1e-6 and f.nll >= grid.min() - 5.0  # the optimum, not a different model
    assert f.nll <= grid[:, 0].min() + 1e-6  # no worse than the best base model (s = 0) on the grid
    assert result.settings["variant"] == {"semantic": True, "category": False, "memory": "linear"}
    assert len(result.settings["similarity_sha256"]) == 64
    params = result.parameters(subject)
    assert isinstance(params, VariantParameters) and float(params.semantic_scale) == f.parameters["semantic_scale"]
    again = FitResult.load(result.save(tmp_path / "fits.json")).parameters(subject)  # JSON keeps the variant
    assert isinstance(again, VariantParameters) and float(again.semantic_scale) == float(params.semantic_scale)
    with pytest.raises(ValueError, match="needs a similarity matrix"):
        fit(one, variant=variant, free=free, fixed=fixed)
    with pytest.raises(ValueError, match=r"unknown parameters \['trace_sensitivity'\]"):
        fit(one, variant=variant, similarity=similarity, free=("trace_sensitivity",), fixed=fixed)
