"""BetaSchedule: the β annealing schedule that :func:`superpose.memory.descend` takes.

An inverse temperature β is a scale: the softmax retrieval step's Lipschitz bound grows in
proportion to β (docs/scales.md), so annealing from a small β (a smooth landscape, every state
pulled to the memories' mean) to a large one (sharp minima at the memories) walks up a ladder of
scales. A geometric schedule takes a constant ratio per step, a linear one a constant difference.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from superpose._validation import positive_int
from superpose.scales.ladder import ScaleLadder, check_scale

KINDS = ("geometric", "linear")


@dataclasses.dataclass(frozen=True)
class BetaSchedule:
    """β from ``start`` to ``end`` over ``steps`` steps.

    Args:
        start: β of the first step, finite and > 0.
        end: β of the last step, finite and > 0 (``end < start`` cools down instead).
        steps: the number of steps, >= 1 (one step needs ``start == end``).
        kind: ``"geometric"`` (constant ratio between steps, the default) or ``"linear"``.

    ``schedule.values()`` is the ``(steps,)`` array (``np.asarray(schedule)`` too), with the
    endpoints exact; ``descend(energy, states, memories, steps=n, betas=schedule)`` takes it.
    """

    start: float
    end: float
    steps: int
    kind: str = "geometric"

    def __post_init__(self) -> None:
        start = check_scale(self.start, "start (β of the first step)")
        end = check_scale(self.end, "end (β of the last step)")
        steps = positive_int(self.steps, "steps")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {list(KINDS)}, got {self.kind!r}")
        if steps == 1 and start != end:
            raise ValueError(f"a one-step schedule has one β: start and end must be equal, got {start:g} and {end:g}")
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)
        object.__setattr__(self, "steps", steps)

    @classmethod
    def constant(cls, beta: float, steps: int) -> BetaSchedule:
        """The same β at every step."""
        return cls(beta, beta, steps)

    @classmethod
    def from_ladder(cls, ladder: ScaleLadder) -> BetaSchedule:
        """One step per rung of a ladder, from its smallest scale to its largest (geometric)."""
        if not isinstance(ladder, ScaleLadder):
            raise TypeError(f"ladder must be a ScaleLadder, got {type(ladder).__name__}")
        return cls(ladder.min_scale, ladder.max_scale, ladder.num_scales, "geometric")

    def as_numpy(self) -> np.ndarray:
        """The schedule in float64, shape ``(steps,)``."""
        if self.kind == "geometric":
            return np.geomspace(self.start, self.end, self.steps)
        return np.linspace(self.start, self.end, self.steps)

    def values(self, dtype: Any = None) -> Float[Array, " steps"]:
        """The schedule as a JAX array of shape ``(steps,)`` (default float dtype unless given)."""
        return jnp.asarray(self.as_numpy(), jnp.result_type(float) if dtype is None else dtype)

    def ratios(self) -> np.ndarray:
        """``β_{k+1}/β_k``, shape ``(steps − 1,)`` (all equal for a geometric schedule)."""
        values = self.as_numpy()
        return values[1:] / values[:-1]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        values = self.as_numpy()
        return values if dtype is None else values.astype(dtype)

    def __len__(self) -> int:
        return self.steps


def schedule_array(betas: Any, steps: int, dtype: Any) -> jax.Array:
    """A :class:`BetaSchedule` or an array as the ``(steps,)`` array of ``dtype`` (shape checked)."""
    if isinstance(betas, BetaSchedule):
        if betas.steps != steps:
            raise ValueError(
                f"betas must have shape (steps,) = ({steps},): the BetaSchedule has {betas.steps} steps "
                f"but steps={steps}; pass steps={betas.steps}"
            )
        return betas.values(dtype)
    values = jnp.asarray(betas, dtype)
    if values.shape != (steps,):
        raise ValueError(f"betas must have shape (steps,) = ({steps},), got {values.shape}")
    return values


__all__ = ["BetaSchedule", "schedule_array"]
