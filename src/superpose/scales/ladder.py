"""ScaleLadder: a validated set of geometric scales, the index of a scale and ratios between two.

A ladder from ``min_scale`` to ``max_scale`` with ``num_scales`` rungs holds
``min_scale · (max_scale/min_scale)**(k/(num_scales − 1))`` for ``k = 0 … num_scales − 1``, so
neighbouring rungs differ by one constant ratio. Transitions between scales (see
:func:`superpose.scales.transition`) may be checked against a ladder: both scales must lie in
its range, and an optional ``max_step`` caps the ratio of one transition in either direction.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from superpose._validation import is_concrete, positive_float, positive_int

# Scales closer than this (relative) count as the same rung; ladders are built in float64, and
# a float32 copy of a rung is within 6e-8 of it.
RUNG_RTOL = 1e-6


def check_scale(value: Any, name: str) -> float:
    """A finite scale > 0, as a Python float (ValueError with the name otherwise)."""
    try:
        return positive_float(value, name)
    except TypeError:
        raise TypeError(f"{name} must be a positive number, got {value!r}") from None


@dataclasses.dataclass(frozen=True)
class ScaleLadder:
    """Geometric scales from ``min_scale`` to ``max_scale``.

    Args:
        min_scale: the smallest scale, finite and > 0.
        max_scale: the largest scale, finite and > ``min_scale``.
        num_scales: the number of rungs, >= 2.
        max_step: optional largest ratio ``max(t/s, s/t)`` that one transition on this ladder
            may take (>= 1); ``None`` allows any pair of rungs.

    ``ladder.scales`` is a float64 NumPy array of shape ``(num_scales,)``; ``len(ladder)``,
    ``ladder[i]`` and iteration give the rungs.
    """

    min_scale: float
    max_scale: float
    num_scales: int
    max_step: float | None = None

    def __post_init__(self) -> None:
        low = check_scale(self.min_scale, "min_scale")
        high = check_scale(self.max_scale, "max_scale")
        if not high > low:
            raise ValueError(f"max_scale must be > min_scale, got min_scale={low:g} and max_scale={high:g}")
        count = positive_int(self.num_scales, "num_scales", minimum=2)
        step = self.max_step
        if step is not None:
            step = check_scale(step, "max_step")
            if step < 1:
                raise ValueError(f"max_step is a ratio max(t/s, s/t) and must be >= 1, got {step:g}")
        object.__setattr__(self, "min_scale", low)
        object.__setattr__(self, "max_scale", high)
        object.__setattr__(self, "num_scales", count)
        object.__setattr__(self, "max_step", step)

    @property
    def scales(self) -> np.ndarray:
        """The rungs, float64, shape ``(num_scales,)``, endpoints exact."""
        return np.geomspace(self.min_scale, self.max_scale, self.num_scales)

    @property
    def step_ratio(self) -> float:
        """The ratio between neighbouring rungs, ``(max/min)**(1/(num_scales − 1))``."""
        return (self.max_scale / self.min_scale) ** (1.0 / (self.num_scales - 1))

    def __len__(self) -> int:
        return self.num_scales

    def __getitem__(self, index: int) -> float:
        return float(self.scales[index])

    def __iter__(self):
        return iter(float(s) for s in self.scales)

    def index(self, scale: Any) -> int | jax.Array:
        """The index of the rung equal to ``scale`` (relative tolerance 1e-6).

        A concrete scale that is not a rung raises ValueError; a traced scale (under ``jit``)
        returns the index of the nearest rung in log distance, unchecked.
        """
        if not is_concrete(scale):
            logs = jnp.log(jnp.asarray(self.scales, jnp.result_type(float)))
            return jnp.argmin(jnp.abs(logs - jnp.log(scale)))
        value = check_scale(scale, "scale")
        distance = np.abs(np.log(self.scales) - math.log(value))
        nearest = int(np.argmin(distance))
        if distance[nearest] > RUNG_RTOL:
            raise ValueError(
                f"scale {value:g} is not a rung of the ladder {self.describe()}; rungs: "
                + ", ".join(f"{s:.6g}" for s in self.scales)
            )
        return nearest

    def contains(self, scale: float) -> bool:
        """True when ``scale`` lies in ``[min_scale, max_scale]`` (relative tolerance 1e-6)."""
        value = check_scale(scale, "scale")
        return self.min_scale * (1 - RUNG_RTOL) <= value <= self.max_scale * (1 + RUNG_RTOL)

    def ratio(self, source: Any, target: Any) -> float:
        """``target / source`` after checking both scales and the step against the ladder.

        Raises:
            ValueError: a scale that is not finite and > 0, a scale outside
                ``[min_scale, max_scale]`` (the ratio would leave the ladder's range), or a
                ratio ``max(t/s, s/t)`` beyond ``max_step``.
        """
        s = check_scale(source, "source scale")
        t = check_scale(target, "target scale")
        for name, value in (("source", s), ("target", t)):
            if not self.contains(value):
                raise ValueError(
                    f"{name} scale {value:g} lies outside the ladder's range [{self.min_scale:g}, "
                    f"{self.max_scale:g}]: the ratio {t / s:g} is beyond what the ladder {self.describe()} allows"
                )
        ratio = t / s
        if self.max_step is not None and max(ratio, 1 / ratio) > self.max_step * (1 + RUNG_RTOL):
            raise ValueError(
                f"the transition {s:g} -> {t:g} has ratio {ratio:g}, beyond the ladder's largest step "
                f"max_step={self.max_step:g} (either direction); go through intermediate rungs"
            )
        return ratio

    def describe(self) -> str:
        """``'ScaleLadder(0.5 .. 2, 5 rungs)'`` and the step limit if any."""
        step = "" if self.max_step is None else f", max_step {self.max_step:g}"
        return f"ScaleLadder({self.min_scale:g} .. {self.max_scale:g}, {self.num_scales} rungs{step})"
