"""superpose.recall: CMR memory-search models fitted to free-recall data.

Public API:

- Data: :class:`RecallDataset` (with optional per-item ``item_attributes`` such as ``category``),
  :func:`from_events` / :func:`to_events` (psifr's event table),
  :func:`read_csv` / :func:`write_csv`, :func:`read_hdf5` / :func:`write_hdf5` (jaxcmr's layout),
  :func:`load_sample` (``"Morton2013"``, ``"peers_notask"``; needs the ``recall`` extra).
- Model: :class:`CMRParameters`, :func:`make_parameters`, :data:`BOUNDS` (jaxcmr's, the default
  search box), :data:`LIMITS` (what the model accepts), :func:`drift`,
  :func:`encode`.
- Likelihood: :func:`prepare` (dataset -> :class:`Trials`), :func:`negative_log_likelihood`,
  :func:`population_nll` (one jitted call per population), :func:`list_log_likelihoods`,
  :func:`event_activations`.
- Variants (:mod:`superpose.recall.variants`): :class:`CMRVariant` (semantic M^CF, category units, instance M^CF),
  :class:`VariantParameters`, :func:`make_variant_parameters`, :func:`prepare_variant` (dataset ->
  :class:`VariantTrials`), :func:`similarity_from_distances`, :func:`stack_variant_parameters`, :func:`variant_nll`,
  :func:`variant_population_nll`, :func:`variant_list_log_likelihoods`.
- Fitting: :func:`fit` (differential evolution in log(1 + x) coordinates, float64 L-BFGS polishes of
  each restart's best distinct end members, restarts until the best is reached twice; JSON results;
  ``variant=`` fits a :class:`CMRVariant`),
  :class:`FitResult`, :func:`parameters_at_bounds` (which fitted parameters sit on a bound).
- Simulation: :func:`simulate`, :func:`simulate_like`, :func:`simulate_recalls`; :func:`simulate_variant_like`
  (a :class:`CMRVariant`, the model its likelihood scores, the data's items and attributes kept).
- Analyses (psifr's definitions and columns): :func:`spc`, :func:`pnr`, :func:`lag_crp`,
  :func:`lag_crp_compound`, :func:`input_crp`, :func:`lag_rank`, :func:`pli_list_lag`,
  :func:`termination_probability`, :func:`transitions` / :class:`Transitions` (the transitions
  they count); category and semantic clustering: :func:`category_crp`,
  :func:`category_clustering`, :func:`distance_crp`, :func:`distance_rank`,
  :func:`distances_by_item` (psifr's word-indexed distances by item number).
- Figures (matplotlib, imported on first use): :func:`plot_spc`, :func:`plot_lag_crp`,
  :func:`plot_input_crp`, :func:`plot_distance_crp`, :func:`plot_subject_scores`,
  :func:`plot_pli_list_lag`.
"""

from superpose.recall.analyses import (
    Transitions,
    input_crp,
    lag_crp,
    lag_crp_compound,
    lag_rank,
    pli_list_lag,
    pnr,
    spc,
    termination_probability,
    transitions,
)
from superpose.recall.clustering import (
    category_clustering,
    category_crp,
    distance_crp,
    distance_rank,
    distances_by_item,
)
from superpose.recall.data import (
    RecallDataset,
    from_events,
    read_csv,
    read_hdf5,
    to_events,
    write_csv,
    write_hdf5,
)
from superpose.recall.fitting import FitResult, SubjectFit, fit, fit_subject, parameters_at_bounds
from superpose.recall.likelihood import (
    Trials,
    event_activations,
    list_log_likelihoods,
    negative_log_likelihood,
    population_nll,
    prepare,
)
from superpose.recall.model import Network, drift, encode
from superpose.recall.parameters import (
    BOUNDS,
    DEFAULT_FIXED,
    DEFAULT_FREE,
    FIT_BOUNDS,
    LIMITS,
    PARAMETER_NAMES,
    CMRParameters,
    make_parameters,
)
from superpose.recall.plots import (
    plot_distance_crp,
    plot_input_crp,
    plot_lag_crp,
    plot_pli_list_lag,
    plot_spc,
    plot_subject_scores,
)
from superpose.recall.samples import load_sample, psifr_available
from superpose.recall.simulation import simulate, simulate_like, simulate_recalls, simulate_variant_like
from superpose.recall.variants import (
    CMRVariant,
    VariantParameters,
    VariantTrials,
    make_variant_parameters,
    prepare_variant,
    similarity_from_distances,
    stack_variant_parameters,
    variant_list_log_likelihoods,
    variant_nll,
    variant_population_nll,
)

__all__ = [
    "CMRVariant", "VariantParameters", "VariantTrials", "make_variant_parameters", "prepare_variant",
    "similarity_from_distances", "stack_variant_parameters", "variant_list_log_likelihoods", "variant_nll",
    "variant_population_nll",
    "BOUNDS", "CMRParameters", "DEFAULT_FIXED", "DEFAULT_FREE", "FIT_BOUNDS", "FitResult", "LIMITS", "Network",
    "PARAMETER_NAMES", "RecallDataset", "SubjectFit", "Transitions", "Trials", "category_clustering", "category_crp",
    "distance_crp", "distance_rank", "distances_by_item", "drift", "encode", "event_activations", "fit",
    "fit_subject", "from_events", "input_crp", "lag_crp", "lag_crp_compound", "lag_rank", "list_log_likelihoods",
    "load_sample", "make_parameters", "negative_log_likelihood", "parameters_at_bounds", "pli_list_lag",
    "plot_distance_crp", "plot_input_crp", "plot_lag_crp", "plot_pli_list_lag", "plot_spc", "plot_subject_scores",
    "pnr", "population_nll", "prepare", "psifr_available", "read_csv", "read_hdf5", "simulate", "simulate_like",
    "simulate_recalls", "simulate_variant_like", "spc", "termination_probability", "to_events", "transitions",
    "write_csv", "write_hdf5",
]
