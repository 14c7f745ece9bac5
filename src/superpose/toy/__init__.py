"""superpose.toy: toy models of superposition trained as large vectorised ensembles.

Public API:
- Models: :class:`ToyParams`, :func:`init_params`, :func:`forward` (ReLU and linear tied models,
  ensemble axis first).
- Data: :func:`make_features` (independent, hierarchical, correlated and anticorrelated features,
  validated), :func:`sample` (keyed batches from the counter-based generator in
  :mod:`superpose.toy.streams`; groups of models can share batches).
- Training: :func:`train` (one jitted scan per chunk of models; losses summed over models with
  AdamW by default; the seed's mean + coupled decay on request), :func:`evaluate`,
  :func:`per_model_loss`, :func:`make_optimizer`.
- Metrics: :func:`feature_norms`, :func:`superposition`, :func:`dimensionality`, :func:`cosines`,
  :func:`classify_pair`, :func:`drop_worst_mean`, :func:`best_of`.
- Theory (2 features, 1 hidden unit): :func:`expected_loss` (exact), :func:`exact_minimum`,
  :func:`candidate_losses` (TMS's closed forms), :func:`pattern_probabilities`.
- Experiments (``superpose run``): ``toy-phase``, ``toy-hierarchy``, ``toy-geometry``.
"""

from superpose.toy.data import Features, make_features, sample
from superpose.toy.metrics import (
    SOLUTION_CLASSES,
    best_of,
    classify_pair,
    cosines,
    dimensionality,
    drop_worst_mean,
    feature_norms,
    superposition,
)
from superpose.toy.models import MODEL_KINDS, ToyParams, forward, init_params
from superpose.toy.theory import (
    ExactMinimum,
    candidate_losses,
    exact_minimum,
    expected_loss,
    model_expected_loss,
    pattern_probabilities,
)
from superpose.toy.training import (
    OPTIMIZERS,
    REDUCTIONS,
    SCHEDULES,
    TrainResult,
    evaluate,
    make_optimizer,
    per_model_loss,
    train,
)

__all__ = [
    "MODEL_KINDS",
    "OPTIMIZERS",
    "REDUCTIONS",
    "SCHEDULES",
    "SOLUTION_CLASSES",
    "ExactMinimum",
    "Features",
    "ToyParams",
    "TrainResult",
    "best_of",
    "candidate_losses",
    "classify_pair",
    "cosines",
    "dimensionality",
    "drop_worst_mean",
    "evaluate",
    "exact_minimum",
    "expected_loss",
    "feature_norms",
    "forward",
    "init_params",
    "make_features",
    "make_optimizer",
    "model_expected_loss",
    "pattern_probabilities",
    "per_model_loss",
    "sample",
    "superposition",
    "train",
]
