"""superpose.scales: exact, reversible transitions between scales, with stability proven and measured.

A transition from scale ``s`` to scale ``t`` multiplies every norm by ``r = t/s``; its Lipschitz
constant is therefore exactly ``r`` (docs/scales.md derives this and the bounds below).

Public API:
- :class:`ScaleLadder`: geometric scales ``(min_scale, max_scale, num_scales[, max_step])``, the
  index of a rung and the checked ratio between two scales.
- :func:`transition`: ``(t/s)·U_{s→t} x`` for real or complex states of any batch shape;
  :class:`Frame`: one orthogonal/unitary ``U_k = exp(skew(P_k))`` per rung, ``U_{s→t} = U_t U_sᴴ``,
  trainable (a pytree).
- :func:`connect`, :func:`validate` (:class:`PairReport`): carry a list of states along a list of
  scales, and report norm-ratio error, information preserved, phase coherence, bound and
  measured amplification per step.
- :func:`power_transition`: power-scaled activations from sensitivity τ₁ to τ₂ (through
  :func:`superpose.numerics.power_scale`); :func:`centered_log`.
- :class:`BetaSchedule`: the β annealing schedule of :func:`superpose.memory.descend`.
- :func:`certify` (:class:`CertifyReport`): probes and power iteration (jvp/vjp) on any JAX
  function, held to a claimed Lipschitz bound.
- Bounds: :func:`retrieval_step_bound` (``β·diam(Ξ)²/4``), :func:`descent_step_bound`,
  :func:`choice_rule_bound` (``τ/2``), :func:`memory_diameter`.

The library modules import :mod:`superpose.numerics` only; :mod:`superpose.memory` takes a
:class:`BetaSchedule` (imported where ``descend`` uses it), and the experiments use memory's
retrieval step.
"""

from superpose.scales.bounds import choice_rule_bound, descent_step_bound, memory_diameter, retrieval_step_bound
from superpose.scales.certify import CertifyReport, certify
from superpose.scales.ladder import ScaleLadder
from superpose.scales.power import centered_log, power_transition
from superpose.scales.schedules import BetaSchedule
from superpose.scales.transitions import Frame, PairReport, connect, transition, validate

__all__ = [
    "BetaSchedule",
    "CertifyReport",
    "Frame",
    "PairReport",
    "ScaleLadder",
    "centered_log",
    "certify",
    "choice_rule_bound",
    "connect",
    "descent_step_bound",
    "memory_diameter",
    "power_transition",
    "retrieval_step_bound",
    "transition",
    "validate",
]
