"""superpose.numerics: the numerical core shared by every capability.

Public API:
- :func:`power_scale`, :func:`masked_power_scale`, :func:`choice_probabilities`,
  :func:`log_choice_probabilities`, :func:`log_choice_probability_of`: the power-scaled Luce choice
  rule in log space (recall's item choice and likelihood, memory's retrieval).
- :func:`stable_exp`, :func:`exponent_limits`: log-parameterised strengths, clamped to stay
  finite and positive (sae's hyperparameters, recall's fitted parameters).
- :func:`normalize`, :func:`safe_norm`: vector helpers with safe gradients.
- :func:`float64_enabled`: a context in which JAX computes in float64.
- :func:`sincos`: sine and cosine together, ten times faster than XLA's on CPU in float32.

Every function takes arrays of any leading shape and works under ``jit`` and ``vmap``.
"""

from superpose.numerics.power import (
    choice_probabilities,
    log_choice_probabilities,
    log_choice_probability_of,
    masked_power_scale,
    power_scale,
)
from superpose.numerics.precision import float64_enabled
from superpose.numerics.trig import sincos
from superpose.numerics.strengths import exponent_limits, stable_exp
from superpose.numerics.vectors import normalize, safe_norm

__all__ = [
    "choice_probabilities",
    "exponent_limits",
    "float64_enabled",
    "log_choice_probabilities",
    "log_choice_probability_of",
    "masked_power_scale",
    "normalize",
    "power_scale",
    "safe_norm",
    "sincos",
    "stable_exp",
]
