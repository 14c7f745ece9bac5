"""superpose.memory: Dense Associative Memory and its random-feature compression (DrDAM).

Public API:
- Energies of one state (vmap for batches): :func:`lse_energy` (squared distance),
  :func:`dot_lse_energy` (modern Hopfield), :func:`polynomial_energy` (Krotov & Hopfield 2016),
  :func:`hopfield_energy` (classical); :func:`lse_energy_and_grad_streamed` for K too large to
  hold a batch×K×D array; :class:`BatchedEnergy`, an energy with its own batched (E, ∇E).
- Retrieval: :func:`descend` (batched gradient descent with clamping, early stop, β schedules and
  energy traces), :func:`one_step_update`, :func:`sign_update` (asynchronous, binary).
- :func:`binary_patterns`: random 0 / (1/√d) patterns, the DrDAM tutorial's memories and queries.
- :func:`critical_beta`: the smallest β at which every memory is a local minimum.
- DrDAM: :class:`DistributedMemory` (T = Σ φ(ξ), stored or regenerated projection, add / forget /
  merge), :func:`distributed_energy` (for :func:`descend`), feature maps in
  :mod:`superpose.memory.features`.
- Diagnostics: :func:`kernel_error`, :func:`energy_error`, :func:`gradient_error`,
  :func:`retrieval_divergence`, :func:`divergence_bound`.
"""

from superpose.memory.critical import critical_beta
from superpose.memory.diagnostics import (
    divergence_bound,
    energy_error,
    exact_kernel,
    gradient_error,
    kernel_error,
    retrieval_divergence,
)
from superpose.memory.distributed import DistributedMemory, distributed_energy
from superpose.memory.energies import (
    BatchedEnergy,
    dot_lse_energy,
    hopfield_energy,
    lse_energy,
    lse_energy_and_grad_streamed,
    polynomial_energy,
)
from superpose.memory.features import FEATURE_MAPS
from superpose.memory.patterns import binary_patterns
from superpose.memory.retrieval import DescentResult, SignResult, descend, one_step_update, sign_update

__all__ = [
    "FEATURE_MAPS",
    "BatchedEnergy",
    "DescentResult",
    "DistributedMemory",
    "SignResult",
    "binary_patterns",
    "critical_beta",
    "descend",
    "distributed_energy",
    "divergence_bound",
    "dot_lse_energy",
    "energy_error",
    "exact_kernel",
    "gradient_error",
    "hopfield_energy",
    "kernel_error",
    "lse_energy",
    "lse_energy_and_grad_streamed",
    "one_step_update",
    "polynomial_energy",
    "retrieval_divergence",
    "sign_update",
]
