"""superpose.sae: sparse autoencoders whose atoms are manifolds, and linear SAE baselines.

A row ``Z_i ∈ R^p`` is explained as ``Ẑ_i = b + Σ_k a_ik Φ_k(t_ik) B_k``: a gate's activity
``a_ik`` times a smooth decoder ``B_k`` of a coordinate ``t_ik`` on atom k's chart.

Public API:
- Atoms (:mod:`superpose.sae.atoms`): :class:`LinearAtom`, :class:`IntervalAtom` (cubic
  B-splines), :class:`CircleAtom` (Fourier), :class:`SphereAtom` (harmonics on S²),
  :class:`TorusAtom`; each with ``evaluate``, derivatives, ``wrap`` and its exact roughness
  matrix; :func:`make_atom`.
- Gates (:mod:`superpose.sae.gates`): :class:`SoftmaxGate`, :class:`TopKGate`,
  :class:`ThresholdGate` (JumpReLU), :class:`BetaBernoulliGate`, :class:`BinaryGate`; :func:`make_gate`.
- Hyperparameters (:mod:`superpose.sae.hyperparameters`): :class:`SaeHyperparameters` (log
  strengths, the seed's flat layout) and :func:`seed_from_dispersion`.
- Fitting: :func:`fit_sae` (at given hyperparameters, or ``hyperparameters="select"``) →
  :class:`SaeFit` holding a :class:`ManifoldSAE` (``encode``, ``decode``, ``reconstruct``,
  ``atom_curve``, ``save``/``load``) and, when selected, the search's :class:`SelectionResult`.
- The pure objective (:mod:`superpose.sae.objective`: :func:`penalized_loss`,
  :class:`SaeParams`), the inner solve (:mod:`superpose.sae.solve`) and the Hessian's arrow
  structure (:mod:`superpose.sae.structure`: row blocks, Schur complement, ``log|H|``).
- The Laplace criterion (:mod:`superpose.sae.criterion`: :func:`laplace_criterion`,
  :func:`collapsed_params`) and the outer search that selects the strengths by it
  (:mod:`superpose.sae.selection`: :func:`select_hyperparameters`, :class:`SelectionBudget`).
- Linear SAEs (:mod:`superpose.sae.linear`): ReLU + L1, TopK and JumpReLU, trained with optax:
  :class:`LinearSaeConfig`, :func:`train_linear_sae`.
- Metrics (:mod:`superpose.sae.metrics`) and planted data (:mod:`superpose.sae.planted`:
  :func:`two_circles`, :func:`single_circle`, :func:`superposed_circles`).
- A network that groks modular addition and the Fourier analysis of its embedding
  (:mod:`superpose.sae.grokking`), for the ``sae-grokking`` experiment.
"""

from superpose.sae.criterion import CriterionValue, collapsed_params, laplace_criterion
from superpose.sae.atoms import ATOM_TYPES, CircleAtom, IntervalAtom, LinearAtom, SphereAtom, TorusAtom, make_atom
from superpose.sae.gates import (
    GATE_TYPES,
    BetaBernoulliGate,
    BinaryGate,
    SoftmaxGate,
    ThresholdGate,
    TopKGate,
    make_gate,
)
from superpose.sae.hyperparameters import ARD_LAYOUTS, SaeHyperparameters, seed_from_dispersion
from superpose.sae.linear import LinearSae, LinearSaeConfig, LinearSaeResult, train_linear_sae
from superpose.sae.model import Encoding, ManifoldSAE, SaeFit, fit_sae
from superpose.sae.objective import SaeParams, penalized_loss
from superpose.sae.planted import PlantedCircles, single_circle, superposed_circles, two_circles
from superpose.sae.selection import SelectionBudget, SelectionResult, select_hyperparameters
from superpose.sae.solve import SolveReport

__all__ = [
    "ARD_LAYOUTS", "ATOM_TYPES", "GATE_TYPES", "BetaBernoulliGate", "BinaryGate", "CircleAtom", "CriterionValue",
    "Encoding", "IntervalAtom",
    "LinearAtom", "LinearSae", "LinearSaeConfig", "LinearSaeResult", "ManifoldSAE", "PlantedCircles", "SaeFit",
    "SaeHyperparameters", "SaeParams", "SelectionBudget", "SelectionResult", "SoftmaxGate", "SolveReport",
    "SphereAtom", "ThresholdGate", "TopKGate",
    "TorusAtom", "collapsed_params", "fit_sae", "laplace_criterion", "make_atom", "make_gate", "penalized_loss",
    "seed_from_dispersion",
    "select_hyperparameters", "single_circle",
    "superposed_circles", "train_linear_sae", "two_circles",
]
