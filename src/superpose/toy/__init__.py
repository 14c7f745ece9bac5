"""superpose.toy: toy models of superposition trained as large vectorised ensembles.

Public API (the core; the phase-diagram experiments of issue 5 build on it):
- Models: :class:`ToyParams`, :func:`init_params`, :func:`forward` (ReLU and linear tied models,
  ensemble axis first).
- Data: :func:`make_features` (independent sparse features and hierarchical trees, validated),
  :func:`sample` (per-model keyed batches, independent of the ensemble size).
- Training: :func:`train` (one jitted scan; losses summed over models with AdamW by default; the
  seed's mean + coupled decay on request), :func:`per_model_loss`, :func:`make_optimizer`.
- Metrics: :func:`feature_norms`, :func:`superposition`, :func:`dimensionality`, :func:`cosines`,
  :func:`classify_pair`, :func:`drop_worst_mean`, :func:`best_of`.
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
from superpose.toy.training import OPTIMIZERS, REDUCTIONS, TrainResult, make_optimizer, per_model_loss, train

__all__ = [
    "MODEL_KINDS",
    "OPTIMIZERS",
    "REDUCTIONS",
    "SOLUTION_CLASSES",
    "Features",
    "ToyParams",
    "TrainResult",
    "best_of",
    "classify_pair",
    "cosines",
    "dimensionality",
    "drop_worst_mean",
    "feature_norms",
    "forward",
    "init_params",
    "make_features",
    "make_optimizer",
    "per_model_loss",
    "sample",
    "superposition",
    "train",
]
