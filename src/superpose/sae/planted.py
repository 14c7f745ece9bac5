"""Planted data for manifold SAEs: circles in random planes of R^p, with known angles and supports.

Every generator takes a ``jax.random`` key and is deterministic given it. It returns the data
``Z`` (N, p) and a :class:`PlantedCircles` truth, from which the noiseless rows are

    signal_i = centre + Σ_c support_ic · radius_c · (cos θ_ic · planes[c, :, 0] + sin θ_ic · planes[c, :, 1]).

Arrays are JAX arrays in JAX's default float dtype: float32, or float64 inside
:func:`superpose.numerics.float64_enabled` (a float64 draw differs from the float32 draw of the
same key; each is deterministic). Angles are drawn for every circle, active or not; ``support``
says which circles a row uses. Each call draws one block of uniforms from the key (one random
generator to compile per shape) and makes its normals by Box–Muller and its planes by
Gram–Schmidt; a call compiles once per (n, p, C, dtype).

**Noise.** Isotropic Gaussian, per-coordinate standard deviation σ, so a noise row has expected
squared norm p·σ². ``noise_rms`` = σ·√p is that row RMS. In :func:`two_circles` and
:func:`superposed_circles` it is a fraction of the realised signal's row RMS,
RMS_row(signal) = sqrt(mean_i ‖signal_i − centre‖²), i.e. σ = noise · RMS_row(signal) / √p; in
:func:`single_circle` it is given in absolute units.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from superpose._validation import as_float_array, check_finite, nonnegative_float, positive_float, positive_int


class PlantedCircles(NamedTuple):
    """The truth behind a planted data set of C circles in R^p over N rows.

    planes: (C, p, 2), each plane's two columns orthonormal.
    angles: (N, C) radians in [0, 2π), drawn for every circle (used where support is True).
    support: (N, C) bool, which circles each row uses.
    radii: (C,) circle radii.
    centre: (p,) the offset added to every row.
    noise_rms: σ·√p, the expected row RMS of the noise (σ per coordinate).
    """

    planes: Float[Array, "C p 2"]
    angles: Float[Array, "N C"]
    support: Bool[Array, "N C"]
    radii: Float[Array, " C"]
    centre: Float[Array, " p"]
    noise_rms: float

    @property
    def noise_sigma(self) -> float:
        """The per-coordinate noise standard deviation σ = noise_rms / √p."""
        return self.noise_rms / math.sqrt(self.centre.shape[0])

    def signal(self) -> Float[Array, "N p"]:
        """The noiseless rows, centre + Σ_c support·radius·(cos θ, sin θ)·plane, shape (N, p)."""
        return self.centre + _circle_sum(self.planes, self.angles, self.support, self.radii)


def _circle_sum(planes, angles, support, radii) -> jax.Array:
    weights = support.astype(angles.dtype) * radii  # (N, C)
    unit = jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=-1)  # (N, C, 2)
    return jnp.einsum("nc,nck,cpk->np", weights, unit, planes)


def _check_key(key: Any) -> jax.Array:
    try:
        jax.random.split(key)
    except (TypeError, ValueError) as error:
        raise TypeError(f"key must be a jax.random key (jax.random.key or PRNGKey), got {key!r}") from error
    return key


def exact_counts(n: int, fractions: Any) -> tuple[int, ...]:
    """Splits n rows into groups with the given fractions (summing to 1), exactly n in all.

    Each group gets floor(f·n) rows; the leftover rows go to the largest remainders (ties to the
    earlier group), so a fraction that is a multiple of 1/n is met exactly.
    """
    n = positive_int(n, "n")
    values = [nonnegative_float(f, f"fractions[{i}]") for i, f in enumerate(fractions)]
    if not values or abs(sum(values) - 1.0) > 1e-9:
        raise ValueError(f"fractions must be non-negative and sum to 1, got {list(fractions)} (sum {sum(values)})")
    raw = [f * n for f in values]
    counts = [math.floor(r + 1e-9) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: (counts[i] - raw[i], i))[: n - sum(counts)]:
        counts[i] += 1
    return tuple(counts)


def _centre(centre: Any, p: int, dtype) -> jax.Array:
    if centre is None:
        return jnp.zeros((p,), dtype)
    array = as_float_array("centre", centre)
    if array.shape != (p,):
        raise ValueError(f"centre must have shape (p,) = ({p},), got {array.shape}")
    check_finite("centre", array)
    return array.astype(dtype)


class _Uniforms:
    """Hands out consecutive slices of one block of U[0, 1) draws (one generator call to compile)."""

    def __init__(self, key: jax.Array, size: int, dtype) -> None:
        self.values = jax.random.uniform(key, (size,), dtype)
        self.used = 0

    def take(self, shape: tuple[int, ...]) -> jax.Array:
        size = math.prod(shape)
        out = self.values[self.used : self.used + size].reshape(shape)
        self.used += size
        return out

    def normal(self, shape: tuple[int, ...]) -> jax.Array:
        """Standard normals by Box–Muller: √(−2 log(1 − u₁)) · cos(2π u₂)."""
        radius = jnp.sqrt(-2.0 * jnp.log1p(-self.take(shape)))
        return radius * jnp.cos(2.0 * math.pi * self.take(shape))


def _uniforms_needed(n: int, p: int, circles: int) -> int:
    planes = 2 * (p * 2 * circles)  # normals cost two uniforms each
    return planes + n * circles + 3 * n + 2 * (n * p)  # planes, angles, support (3 per row), noise


def _orthonormalise(vectors: jax.Array) -> jax.Array:
    """Gram–Schmidt (twice, for accuracy) on the columns of (..., p, m), m small and static."""
    columns = []
    for j in range(vectors.shape[-1]):
        v = vectors[..., j]
        for _ in range(2):
            for q in columns:
                v = v - jnp.sum(q * v, axis=-1, keepdims=True) * q
        columns.append(v / jnp.linalg.norm(v, axis=-1, keepdims=True))
    return jnp.stack(columns, axis=-1)


def _random_planes(draws: _Uniforms, count: int, p: int, orthogonal: bool) -> jax.Array:
    """(count, p, 2) planes from Gaussian columns: mutually orthogonal (one basis of 2·count
    columns) or each orthonormalised alone."""
    if orthogonal:
        q = _orthonormalise(draws.normal((p, 2 * count)))
        return jnp.transpose(q.reshape(p, count, 2), (1, 0, 2))
    return _orthonormalise(draws.normal((count, p, 2)))


def _draw_support(draws: _Uniforms, n: int, circles: int, spec: tuple) -> jax.Array:
    """(n, circles) bool support from a static spec.

    ("all",): every circle on every row. ("patterns", patterns, counts): pattern g (a tuple of
    bools) on counts[g] rows. ("one_or_two", n_single): n_single rows use one uniform circle, the
    rest a uniform pair of distinct circles. Rows come in a random order (argsort of uniforms).
    """
    first_u, second_u, order_u = draws.take((n,)), draws.take((n,)), draws.take((n,))
    if spec[0] == "all":
        return jnp.ones((n, circles), dtype=bool)
    if spec[0] == "patterns":
        rows = jnp.asarray(np.repeat(np.array(spec[1], dtype=bool), spec[2], axis=0))
    else:
        first = jnp.minimum(jnp.floor(first_u * circles), circles - 1).astype(jnp.int32)
        offset = jnp.minimum(jnp.floor(second_u * (circles - 1)), circles - 2).astype(jnp.int32)
        second = (first + 1 + offset) % circles  # uniform over the circles other than `first`
        uses_two = jnp.arange(n) >= spec[1]
        rows = (jnp.arange(circles) == first[:, None]) | (uses_two[:, None] & (jnp.arange(circles) == second[:, None]))
    return rows[jnp.argsort(order_u)]


@functools.partial(jax.jit, static_argnames=("n", "p", "circles", "orthogonal", "relative", "support_spec"))
def _generate(key, radii, centre, noise, *, n, p, circles, orthogonal, relative, support_spec):
    """One compiled draw: planes, support, angles, noise. Returns (Z, planes, angles, support, noise_rms)."""
    draws = _Uniforms(key, _uniforms_needed(n, p, circles), radii.dtype)
    planes = _random_planes(draws, circles, p, orthogonal)
    support = _draw_support(draws, n, circles, support_spec)
    angles = 2.0 * math.pi * draws.take((n, circles))
    clean = _circle_sum(planes, angles, support, radii)
    noise_rms = noise * jnp.sqrt(jnp.mean(jnp.sum(clean**2, axis=1))) if relative else noise
    Z = centre + clean + (noise_rms / math.sqrt(p)) * draws.normal((n, p))
    return Z, planes, angles, support, noise_rms


def _run(key, radii, centre, noise: float, *, p: int, **static) -> tuple[jax.Array, PlantedCircles]:
    dtype = jnp.result_type(float)
    radii = jnp.asarray(radii, dtype)
    centre = _centre(centre, p, dtype)
    Z, planes, angles, support, noise_rms = _generate(
        key, radii, centre, jnp.asarray(noise, dtype), p=p, circles=radii.shape[0], **static
    )
    # An absolute noise level is kept as given; a relative one is what the draw realised.
    noise_rms = float(noise_rms) if static["relative"] else noise
    return Z, PlantedCircles(planes, angles, support, radii, centre, noise_rms)


def on_training_planes(truth: PlantedCircles, other_rows: Any, other: PlantedCircles) -> jax.Array:
    """Rows of another draw (its angles, supports and realised noise) moved onto ``truth``'s planes.

    Held-out rows of the same planted circles: ``other_rows`` (n, p) and ``other`` come from a
    second call with another key (same n, p and number of circles).
    """
    if np.shape(other.planes) != np.shape(truth.planes):
        raise ValueError(f"the two draws must have the same planes' shape, got {np.shape(other.planes)} and "
                         f"{np.shape(truth.planes)}")
    moved = PlantedCircles(truth.planes, other.angles, other.support, truth.radii, truth.centre, truth.noise_rms)
    return moved.signal() + (jnp.asarray(other_rows) - other.signal())


def two_circles(
    key: jax.Array,
    n: int = 600,
    p: int = 24,
    *,
    radii: tuple[float, float] = (1.0, 1.1),
    fractions: tuple[float, float, float] = (0.3, 0.3, 0.4),
    noise: float = 0.04,
    centre: Any = None,
) -> tuple[Float[Array, "n p"], PlantedCircles]:
    """Two circles A and B in mutually orthogonal random planes of R^p.

    Args:
        key: a jax.random key.
        n: rows, >= 1. p: ambient dimension, >= 4 (two orthogonal planes).
        radii: (r_A, r_B) > 0.
        fractions: of rows using only A, only B, and both; non-negative, summing to 1. Counts are
            exact (:func:`exact_counts`: 180, 180, 240 for the default n = 600), rows shuffled.
        noise: the noise's row RMS as a fraction (>= 0) of the realised signal's row RMS.
        centre: (p,) offset, zeros by default.

    Returns:
        (Z (n, p), truth with C = 2).
    """
    key = _check_key(key)
    n, p = positive_int(n, "n"), positive_int(p, "p", minimum=4)
    if len(radii) != 2:
        raise ValueError(f"radii must hold two radii (A, B), got {radii!r}")
    radii_values = [positive_float(r, f"radii[{i}]") for i, r in enumerate(radii)]
    if len(fractions) != 3:
        raise ValueError(f"fractions must be three (only A, only B, both), got {fractions!r}")
    counts = exact_counts(n, fractions)
    noise = nonnegative_float(noise, "noise")
    patterns = ((True, False), (False, True), (True, True))
    return _run(
        key, radii_values, centre, noise, n=n, p=p, orthogonal=True, relative=True,
        support_spec=("patterns", patterns, counts),
    )


def single_circle(
    key: jax.Array,
    n: int,
    p: int,
    radius: float = 2.086,
    noise_rms: float = 0.352,
    *,
    centre: Any = None,
) -> tuple[Float[Array, "n p"], PlantedCircles]:
    """One circle of ``radius`` in a random plane of R^p, on every row, plus isotropic noise.

    Args:
        key: a jax.random key. n >= 1 rows; p >= 2.
        radius: > 0. noise_rms: the noise's row RMS in absolute units, >= 0 (σ = noise_rms/√p).
        centre: (p,) offset, zeros by default.

    Returns:
        (Z (n, p), truth with C = 1).
    """
    key = _check_key(key)
    n, p = positive_int(n, "n"), positive_int(p, "p", minimum=2)
    radius = positive_float(radius, "radius")
    noise_rms = nonnegative_float(noise_rms, "noise_rms")
    return _run(
        key, [radius], centre, noise_rms, n=n, p=p, orthogonal=False, relative=False, support_spec=("all",)
    )


def superposed_circles(
    key: jax.Array,
    n: int = 4000,
    p: int = 12,
    circles: int = 8,
    noise: float = 0.04,
    *,
    pair_fraction: float = 0.5,
    radius: float = 1.0,
    centre: Any = None,
) -> tuple[Float[Array, "n p"], PlantedCircles]:
    """C > p/2 circles in R^p, so their planes cannot all be orthogonal: features in superposition.

    Each plane is drawn at random (orthonormal within itself, independent of the others). A
    fraction ``pair_fraction`` of the rows (exactly, by :func:`exact_counts`) uses two distinct
    circles, the pair uniform over all C(C−1)/2 pairs; the other rows use one circle, uniform over
    the C. So P(row uses 2 circles) = pair_fraction, and each circle is used by a row with
    probability (1 − pair_fraction)/C + 2·pair_fraction/C.

    Args:
        key: a jax.random key. n >= 1 rows; p >= 2.
        circles: C, an integer with p/2 < C.
        noise: the noise's row RMS as a fraction (>= 0) of the realised signal's row RMS.
        pair_fraction: in [0, 1]. radius: > 0, shared by every circle.
        centre: (p,) offset, zeros by default.

    Returns:
        (Z (n, p), truth with C circles).
    """
    key = _check_key(key)
    n, p = positive_int(n, "n"), positive_int(p, "p", minimum=2)
    circles = positive_int(circles, "circles")
    if not 2 * circles > p:
        raise ValueError(
            f"superposed_circles needs circles > p/2 (here > {p / 2:g}), got {circles}: with at most "
            f"p/2 circles every plane could be orthogonal to the others, so nothing would be superposed"
        )
    pair_fraction = nonnegative_float(pair_fraction, "pair_fraction")
    if pair_fraction > 1.0:
        raise ValueError(f"pair_fraction must be in [0, 1], got {pair_fraction!r}")
    radius = positive_float(radius, "radius")
    noise = nonnegative_float(noise, "noise")
    n_single, _ = exact_counts(n, (1.0 - pair_fraction, pair_fraction))
    return _run(
        key, [radius] * circles, centre, noise, n=n, p=p, orthogonal=False, relative=True,
        support_spec=("one_or_two", n_single),
    )
