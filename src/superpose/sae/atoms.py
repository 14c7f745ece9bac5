"""Atoms of a manifold sparse autoencoder: bases on low-dimensional charts with exact roughness penalties.

Atom k decodes a coordinate t on its manifold to R^p as Φ(t) B (Φ: M basis functions, B: M × p).
Each atom knows its intrinsic dimension d, its domain (periodic or clamped axes), and its roughness
Gram matrix S (M × M, symmetric PSD), ∫ ‖∂²(Φ(t) B)‖² dμ(t) = tr(Bᵀ S B), computed exactly, with
its analytic rank and null space (what a smoothness penalty leaves free: constants, lines).

Coordinates always carry a trailing axis of length d (d = 1 too); every method takes any leading
shape. Atoms are frozen dataclasses (hashable, static ``jit`` arguments); ``evaluate``,
``derivative``, ``second_derivative``, ``wrap`` and ``sample`` are pure JAX (jit/vmap/grad-safe;
derivatives are ``jax.jacfwd`` of ``evaluate`` per point); ``roughness`` and ``null_space`` are
NumPy float64 constants. Topologies: :class:`LinearAtom`, :class:`IntervalAtom`,
:class:`CircleAtom`, :class:`SphereAtom`, :class:`TorusAtom`; :func:`make_atom` builds one by name.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import math
from typing import Any, ClassVar

import jax
import jax.scipy.linalg
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float
from scipy.interpolate import BSpline

from superpose._validation import as_float_array, check_finite, positive_int
from superpose.numerics import sincos

_TWO_PI = 2.0 * math.pi
#: the sphere's derivatives are taken at z clamped to [-1 + POLE_MARGIN, 1 - POLE_MARGIN]
POLE_MARGIN = 1e-6
#: half-width, in standard deviations, of the linear atom's drawing grid
LINEAR_GRID_HALF_WIDTH = 3.0


@dataclasses.dataclass(frozen=True)
class Atom(abc.ABC):
    """A basis Φ: (..., d) coordinates -> (..., M) features on one manifold chart (see module docstring)."""

    name: ClassVar[str]
    dim: ClassVar[int]

    # ---- what each topology defines -------------------------------------------------------------
    @property
    @abc.abstractmethod
    def num_basis(self) -> int:
        """M, the number of basis functions."""

    @property
    @abc.abstractmethod
    def periodic(self) -> tuple[bool, ...]:
        """Per axis (length d): whether the axis is periodic with period hi - lo."""

    @property
    @abc.abstractmethod
    def domain(self) -> tuple[tuple[float, float], ...]:
        """Per axis (length d): (lo, hi); (-inf, inf) for an unbounded axis."""

    @abc.abstractmethod
    def _evaluate(self, t: jax.Array) -> jax.Array:
        """Φ(t) for checked coordinates (..., d) -> (..., M)."""

    @abc.abstractmethod
    def roughness(self) -> np.ndarray:
        """S (M, M) float64, symmetric PSD: ∫ ‖∂²(Φ(t) B)‖² dμ(t) = tr(Bᵀ S B)."""

    def null_space(self) -> np.ndarray:
        """(M, M - rank) float64: coefficients of the functions S leaves free (here: the constant,
        which is every periodic or spherical atom's first basis function)."""
        return np.eye(self.num_basis)[:, :1]

    def roughness_rank(self) -> int:
        """The analytic rank of S: M minus the number of analytic null functions."""
        return self.num_basis - self.null_space().shape[1]

    def _derivative_point(self, t: jax.Array) -> jax.Array:
        """Where derivatives are taken for coordinates t (the sphere moves points off its poles)."""
        return t

    def shift_matrix(self, shift: jax.Array) -> jax.Array | None:
        """R (M, M) with Φ(t + c) = Φ(t) R for a shift c (d,) of the coordinates, or None.

        Where it exists, moving every coordinate by −c and the decoder B to R B leaves each curve
        point Φ(t) B unchanged (a gauge of the chart); atoms without an exact one return None.
        """
        return None

    # ---- shared, pure JAX -----------------------------------------------------------------------
    def _check_coordinates(self, t: Any) -> jax.Array:
        t = as_float_array("t", t)
        if t.ndim < 1 or t.shape[-1] != self.dim:
            raise ValueError(
                f"coordinates t of a {self.name} atom must have shape (..., {self.dim}) "
                f"(a trailing axis of length d = {self.dim}), got shape {t.shape}"
            )
        check_finite("t", t)
        return t

    def evaluate(self, t: Float[Array, "... d"]) -> Float[Array, "... M"]:
        """Φ(t): coordinates (..., d) -> basis values (..., M). Non-finite or misshapen t raises."""
        t = self._check_coordinates(t)
        return _jit_evaluate(self, t.reshape(-1, self.dim)).reshape(*t.shape[:-1], self.num_basis)

    def derivative(self, t: Float[Array, "... d"]) -> Float[Array, "... M d"]:
        """∂Φ/∂t (..., M, d): entry [..., m, a] is ∂Φ_m/∂t_a."""
        t = self._check_coordinates(t)
        flat = _jit_derivative(self, t.reshape(-1, self.dim))
        return flat.reshape(*t.shape[:-1], self.num_basis, self.dim)

    def second_derivative(self, t: Float[Array, "... d"]) -> Float[Array, "... M d d"]:
        """∂²Φ/∂t² (..., M, d, d): entry [..., m, a, b] is ∂²Φ_m/∂t_a∂t_b."""
        t = self._check_coordinates(t)
        flat = _jit_second_derivative(self, t.reshape(-1, self.dim))
        return flat.reshape(*t.shape[:-1], self.num_basis, self.dim, self.dim)

    def _derivative(self, points: jax.Array) -> jax.Array:
        """(n, d) -> (n, M, d), jacfwd per point."""
        return jax.vmap(jax.jacfwd(self._evaluate))(self._derivative_point(points))

    def _second_derivative(self, points: jax.Array) -> jax.Array:
        """(n, d) -> (n, M, d, d), jacfwd of jacfwd per point."""
        return jax.vmap(jax.jacfwd(jax.jacfwd(self._evaluate)))(self._derivative_point(points))

    def wrap(self, t: Float[Array, "... d"]) -> Float[Array, "... d"]:
        """Periodic axes reduced into [lo, hi), bounded axes clipped to [lo, hi], unbounded unchanged."""
        t = self._check_coordinates(t)
        return _jit_wrap(self, t.reshape(-1, self.dim)).reshape(t.shape)

    def _wrap(self, t: jax.Array) -> jax.Array:
        lo, hi = (np.array(bound, dtype=np.float64) for bound in zip(*self.domain, strict=True))
        periodic = np.array(self.periodic)
        finite_lo = np.where(np.isfinite(lo), lo, 0.0)
        period = np.where(periodic, hi - lo, 1.0)
        reduced = finite_lo + jnp.mod(t - finite_lo, period.astype(t.dtype))
        # mod of a tiny negative number can round up to exactly the period
        reduced = jnp.where(reduced >= hi, finite_lo, reduced).astype(t.dtype)
        clipped = jnp.clip(t, lo.astype(t.dtype), hi.astype(t.dtype))
        return jnp.where(periodic, reduced, clipped)

    def sample(self, key: jax.Array, shape: tuple[int, ...] = ()) -> Float[Array, "*shape d"]:
        """Keyed coordinates (*shape, d), uniform on the domain (standard normal on unbounded axes)."""
        return _jit_sample(self, key, _check_shape(shape))

    def _sample(self, key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
        lo, hi = (np.array(bound, dtype=np.float64) for bound in zip(*self.domain, strict=True))
        uniform_key, normal_key = jax.random.split(key)
        uniform = jax.random.uniform(uniform_key, (*shape, self.dim))
        normal = jax.random.normal(normal_key, (*shape, self.dim))
        bounded = np.isfinite(lo) & np.isfinite(hi)
        width = np.where(bounded, hi - lo, 1.0)
        scaled = np.where(bounded, lo, 0.0) + uniform * width
        return jnp.where(bounded, scaled, normal).astype(uniform.dtype)

    def grid(self, n: int) -> Float[Array, "points d"]:
        """An even grid of coordinates, (n, d) for d = 1 or (n·n, d) for d = 2 (first axis slowest).

        Bounded axes include both ends; periodic axes take lo + i·period/n (no duplicated end);
        the linear atom's axis spans ±3 (its samples' standard deviation is 1).
        """
        n = positive_int(n, "n")
        axes = []
        for (lo, hi), periodic in zip(self.domain, self.periodic, strict=True):
            if periodic:
                axes.append(lo + (hi - lo) * np.arange(n) / n)
            elif np.isfinite(lo) and np.isfinite(hi):
                axes.append(np.linspace(lo, hi, n))
            else:
                axes.append(np.linspace(-LINEAR_GRID_HALF_WIDTH, LINEAR_GRID_HALF_WIDTH, n))
        mesh = np.meshgrid(*axes, indexing="ij")
        return jnp.asarray(np.stack([axis.ravel() for axis in mesh], axis=-1), dtype=float)


# one compiled program per (atom, shape, dtype) when called eagerly; inlined inside an outer jit
_jit_evaluate = jax.jit(lambda atom, t: atom._evaluate(t), static_argnums=0)
_jit_derivative = jax.jit(lambda atom, t: atom._derivative(t), static_argnums=0)
_jit_second_derivative = jax.jit(lambda atom, t: atom._second_derivative(t), static_argnums=0)
_jit_wrap = jax.jit(lambda atom, t: atom._wrap(t), static_argnums=0)
_jit_sample = jax.jit(lambda atom, key, shape: atom._sample(key, shape), static_argnums=(0, 2))


def _check_shape(shape: Any) -> tuple[int, ...]:
    """A sample shape: a tuple of integers >= 0 (a bare integer n means (n,))."""
    if not isinstance(shape, (tuple, list, int, np.integer)):
        raise TypeError(f"shape must be a tuple of non-negative integers, got {shape!r}")
    dims = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
    return tuple(positive_int(n, f"each entry of shape {shape!r}", minimum=0) for n in dims)


# ---- linear ---------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class LinearAtom(Atom):
    """Φ(t) = [1, t] on the real line (an ordinary SAE direction with an offset); S = 0, rank 0."""

    name = "linear"
    dim = 1

    num_basis = property(lambda self: 2)
    periodic = property(lambda self: (False,))
    domain = property(lambda self: ((-math.inf, math.inf),))

    def _evaluate(self, t: jax.Array) -> jax.Array:
        return jnp.concatenate([jnp.ones_like(t), t], axis=-1)

    def roughness(self) -> np.ndarray:
        """S = 0 (2, 2): a line has no curvature."""
        return np.zeros((2, 2))

    def null_space(self) -> np.ndarray:
        """The identity (2, 2): constants and lines are both free."""
        return np.eye(2)


# ---- interval -------------------------------------------------------------------------------------
@functools.cache
def _clamped_knots(num_knots: int) -> np.ndarray:
    """Open uniform cubic knot vector on [0, 1]: 4 zeros, num_knots interior knots, 4 ones."""
    interior = np.arange(1, num_knots + 1) / (num_knots + 1)
    knots = np.concatenate([np.zeros(4), interior, np.ones(4)])
    knots.setflags(write=False)
    return knots


def _inverse_or_zero(widths: np.ndarray, dtype: Any) -> jax.Array:
    """1 / width, and 0 where the width is 0 (Cox–de Boor's 0/0 := 0 for repeated knots)."""
    return jnp.asarray(np.where(widths > 0, 1.0 / np.where(widths > 0, widths, 1.0), 0.0), dtype)


@functools.cache
def _interval_roughness(num_knots: int) -> np.ndarray:
    """∫₀¹ B_i'' B_j'' dt by 3-point Gauss–Legendre per knot span (B'' is linear there: exact)."""
    knots = _clamped_knots(num_knots)
    size = num_knots + 4
    second = BSpline(knots, np.eye(size), 3).derivative(2)
    nodes, weights = np.polynomial.legendre.leggauss(3)
    breaks = np.linspace(0.0, 1.0, num_knots + 2)
    half = np.diff(breaks)[:, None] / 2
    points = (breaks[:-1, None] + half + half * nodes).ravel()
    values = second(points)  # (points, M)
    gram = values.T @ ((half * weights).ravel()[:, None] * values)
    gram = (gram + gram.T) / 2
    gram.setflags(write=False)
    return gram


@dataclasses.dataclass(frozen=True)
class IntervalAtom(Atom):
    """Clamped cubic B-splines on [0, 1] with ``num_knots`` uniform interior knots; M = num_knots + 4.

    Evaluated by vectorised Cox–de Boor in JAX. The end spans' polynomials continue beyond [0, 1]
    (so gradients do not vanish there; ``wrap`` clips); at t = 1 the last basis function is 1.
    S_ij = ∫₀¹ B_i''(t) B_j''(t) dt, rank M - 2: constants (coefficients all 1, the partition of
    unity) and lines (coefficients the Greville abscissae) are free.
    """

    num_knots: int = 6
    name = "interval"
    dim = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "num_knots", positive_int(self.num_knots, "num_knots"))

    num_basis = property(lambda self: self.num_knots + 4)
    periodic = property(lambda self: (False,))
    domain = property(lambda self: ((0.0, 1.0),))

    @property
    def knots(self) -> np.ndarray:
        """The full knot vector (num_knots + 8,), read-only."""
        return _clamped_knots(self.num_knots)

    def _evaluate(self, t: jax.Array) -> jax.Array:
        knots_np = self.knots
        knots = jnp.asarray(knots_np, dtype=t.dtype)
        x = t[..., :1]  # (..., 1), broadcasts against the functions' axis
        first_span, last_span = 3, self.num_knots + 3
        span = jnp.clip(jnp.searchsorted(knots, t[..., 0], side="right") - 1, first_span, last_span)
        basis = jax.nn.one_hot(span, knots_np.size - 1, dtype=t.dtype)
        for degree in (1, 2, 3):  # B_{i,p} = ω_{i,p} B_{i,p-1} + (1 - ω_{i+1,p}) B_{i+1,p-1}
            count = knots_np.size - 1 - degree
            left_width = knots_np[degree : degree + count] - knots_np[:count]
            right_width = knots_np[degree + 1 :] - knots_np[1 : 1 + count]
            left = (x - knots[:count]) * _inverse_or_zero(left_width, t.dtype)
            right = (knots[degree + 1 :] - x) * _inverse_or_zero(right_width, t.dtype)
            basis = left * basis[..., :-1] + right * basis[..., 1:]
        return basis

    def roughness(self) -> np.ndarray:
        """S (M, M): ∫₀¹ B_i'' B_j'' dt, exact."""
        return np.array(_interval_roughness(self.num_knots))

    def null_space(self) -> np.ndarray:
        """(M, 2): columns decode to the constant 1 and the line t."""
        knots = self.knots
        greville = (knots[1:-3] + knots[2:-2] + knots[3:-1]) / 3
        return np.stack([np.ones(self.num_basis), greville], axis=1)


# ---- circle and torus -------------------------------------------------------------------------------
def _fourier_basis(x: jax.Array, harmonics: int) -> jax.Array:
    """[1, cos 2πx, sin 2πx, ..., cos 2πHx, sin 2πHx] for x (...,) -> (..., 2H + 1)."""
    orders = jnp.arange(1, harmonics + 1, dtype=x.dtype)
    sin, cos = sincos(_TWO_PI * x[..., None] * orders)
    pairs = jnp.stack([cos, sin], axis=-1).reshape(*x.shape, 2 * harmonics)
    return jnp.concatenate([jnp.ones_like(x)[..., None], pairs], axis=-1)


def _fourier_shift(shift: jax.Array, harmonics: int) -> jax.Array:
    """R (2H + 1, 2H + 1) with basis(x + c) = basis(x) R: a rotation by 2πhc in each harmonic's plane."""
    orders = jnp.arange(1, harmonics + 1, dtype=shift.dtype)
    sin, cos = sincos(_TWO_PI * shift * orders)
    # [cos 2πh(x+c), sin 2πh(x+c)] = [cos 2πhx, sin 2πhx] @ [[cos, sin], [−sin, cos]]
    blocks = jnp.stack([jnp.stack([cos, sin], -1), jnp.stack([-sin, cos], -1)], -2)  # (H, 2, 2)
    R = jax.scipy.linalg.block_diag(jnp.ones((1, 1), shift.dtype), *blocks)
    return R


def _fourier_frequencies_and_norms(harmonics: int) -> tuple[np.ndarray, np.ndarray]:
    """Per Fourier basis function: angular frequency ω = 2πh and ∫₀¹ φ² dt (1 for the constant, ½ else)."""
    orders = np.concatenate([[0.0], np.repeat(np.arange(1, harmonics + 1), 2)])
    norms = np.where(orders == 0, 1.0, 0.5)
    return _TWO_PI * orders, norms


@dataclasses.dataclass(frozen=True)
class CircleAtom(Atom):
    """Fourier basis with H harmonics on the circle [0, 1) (period 1); M = 2H + 1.

    S is diagonal: 0 for the constant, (2πh)⁴/2 for cos 2πht and sin 2πht; rank 2H (constants free).
    """

    harmonics: int = 3
    name = "circle"
    dim = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "harmonics", positive_int(self.harmonics, "harmonics"))

    num_basis = property(lambda self: 2 * self.harmonics + 1)
    periodic = property(lambda self: (True,))
    domain = property(lambda self: ((0.0, 1.0),))

    def _evaluate(self, t: jax.Array) -> jax.Array:
        return _fourier_basis(t[..., 0], self.harmonics)

    def shift_matrix(self, shift: jax.Array) -> jax.Array:
        """R (M, M): one rotation per harmonic (Φ(t + c) = Φ(t) R; S commutes with R)."""
        return _fourier_shift(jnp.asarray(shift)[0], self.harmonics)

    def roughness(self) -> np.ndarray:
        """diag(0, (2π)⁴/2, (2π)⁴/2, ..., (2πH)⁴/2, (2πH)⁴/2)."""
        frequencies, norms = _fourier_frequencies_and_norms(self.harmonics)
        return np.diag(norms * frequencies**4)



@dataclasses.dataclass(frozen=True)
class TorusAtom(Atom):
    """Tensor products of two circles' Fourier bases on [0, 1)²; M = (2H₁ + 1)(2H₂ + 1).

    ``harmonics`` is H (both circles) or (H₁, H₂). Basis index a·(2H₂ + 1) + b is
    φ_a(t₀) φ_b(t₁). S = ∫∫ (f_uu² + 2 f_uv² + f_vv²) du dv (squared Frobenius norm of the Hessian)
    is diagonal, n_a n_b (ω_a² + ω_b²)² with n the circle norms; rank M - 1 (constants free).
    """

    harmonics: int | tuple[int, int] = 2
    name = "torus"
    dim = 2

    def __post_init__(self) -> None:
        pair = self.harmonics
        if isinstance(pair, (int, np.integer)) and not isinstance(pair, bool):
            pair = (pair, pair)
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(
                f"harmonics must be an integer >= 1 or a pair of them (H1, H2), got {self.harmonics!r}"
            )
        pair = (positive_int(pair[0], "harmonics[0]"), positive_int(pair[1], "harmonics[1]"))
        object.__setattr__(self, "harmonics", pair)

    num_basis = property(lambda self: (2 * self.harmonics[0] + 1) * (2 * self.harmonics[1] + 1))
    periodic = property(lambda self: (True, True))
    domain = property(lambda self: ((0.0, 1.0), (0.0, 1.0)))

    def _evaluate(self, t: jax.Array) -> jax.Array:
        first = _fourier_basis(t[..., 0], self.harmonics[0])
        second = _fourier_basis(t[..., 1], self.harmonics[1])
        return (first[..., :, None] * second[..., None, :]).reshape(*t.shape[:-1], self.num_basis)

    def shift_matrix(self, shift: jax.Array) -> jax.Array:
        """R (M, M) = R₀ ⊗ R₁, each circle's rotations (Φ(t + c) = Φ(t) R; S commutes with R)."""
        shift = jnp.asarray(shift)
        return jnp.kron(_fourier_shift(shift[0], self.harmonics[0]), _fourier_shift(shift[1], self.harmonics[1]))

    def roughness(self) -> np.ndarray:
        """diag(n_a n_b (ω_a² + ω_b²)²) over the tensor-product index a·(2H₂ + 1) + b."""
        omega_u, norm_u = _fourier_frequencies_and_norms(self.harmonics[0])
        omega_v, norm_v = _fourier_frequencies_and_norms(self.harmonics[1])
        entries = np.outer(norm_u, norm_v) * (omega_u[:, None] ** 2 + omega_v[None, :] ** 2) ** 2
        return np.diag(entries.ravel())


# ---- sphere ---------------------------------------------------------------------------------------
def _real_harmonics(x: Any, y: Any, z: Any, degree: int, xp: Any) -> Any:
    """Real spherical harmonics of degree <= L at unit vectors (x, y, z) -> (..., (L + 1)²).

    Order: for l = 0..L, m = 0 then (cos-type, sin-type) for m = 1..l. Each is
    N_lm Q_l^m(z) Re/Im (x + iy)^m, a polynomial in (x, y, z) whose restriction to S² is the
    associated-Legendre harmonic P_l^m(z) cos/sin(mφ), with N_lm giving mean square 1 over S²
    (so ∫ Y_i Y_j dA = 4π δ_ij). ``xp`` is numpy or jax.numpy.
    """
    ones = xp.ones_like(z)
    cos_m, sin_m = [ones], [0.0 * ones]
    for _ in range(degree):  # Re/Im of (x + iy)^m by complex multiplication
        cos_prev, sin_prev = cos_m[-1], sin_m[-1]
        cos_m.append(x * cos_prev - y * sin_prev)
        sin_m.append(x * sin_prev + y * cos_prev)
    # Q[m][l] with P_l^m(z) = (1 - z²)^{m/2} Q_l^m(z) (no Condon–Shortley phase)
    reduced: list[dict[int, Any]] = []
    for m in range(degree + 1):
        column = {m: math.prod(range(1, 2 * m, 2)) * ones}
        if m + 1 <= degree:
            column[m + 1] = (2 * m + 1) * z * column[m]
        for l in range(m + 2, degree + 1):
            column[l] = ((2 * l - 1) * z * column[l - 1] - (l + m - 1) * column[l - 2]) / (l - m)
        reduced.append(column)
    functions = []
    for l in range(degree + 1):
        for m in range(l + 1):
            ratio = math.factorial(l - m) / math.factorial(l + m)
            scale = math.sqrt((1 if m == 0 else 2) * (2 * l + 1) * ratio)
            radial = scale * reduced[m][l]
            functions.extend([radial] if m == 0 else [radial * cos_m[m], radial * sin_m[m]])
    return xp.stack(functions, axis=-1)


def _harmonic_degrees(degree: int) -> np.ndarray:
    return np.concatenate([np.full(2 * l + 1, l) for l in range(degree + 1)])


def _sphere_embedding(t: jax.Array) -> jax.Array:
    """(t₀, t₁) -> (√(1 - z²) cos φ, √(1 - z²) sin φ, z) with z = 2t₀ - 1 (t₀ clipped to [0, 1]), φ = 2πt₁."""
    height = jnp.clip(t[..., 0], 0.0, 1.0)
    sin_phi, cos_phi = sincos(_TWO_PI * t[..., 1])
    radius = 2.0 * jnp.sqrt(height * (1.0 - height))  # √(1 - z²) without cancellation
    return jnp.stack([radius * cos_phi, radius * sin_phi, 2.0 * height - 1.0], axis=-1)


_jit_embedding = jax.jit(_sphere_embedding)


@functools.cache
def _sphere_gram(degree: int) -> np.ndarray:
    """∫_{S²} Y_i Y_j dA by Gauss–Legendre in z × the uniform rule in φ (dA = dz dφ), both exact."""
    z_nodes, z_weights = np.polynomial.legendre.leggauss(2 * degree + 2)
    azimuths = _TWO_PI * np.arange(4 * degree + 4) / (4 * degree + 4)
    z, phi = np.meshgrid(z_nodes, azimuths, indexing="ij")
    radius = np.sqrt(1 - z**2)
    values = _real_harmonics(radius * np.cos(phi), radius * np.sin(phi), z, degree, np)
    values = values.reshape(-1, (degree + 1) ** 2)
    weights = np.repeat(z_weights, azimuths.size) * (_TWO_PI / azimuths.size)
    gram = values.T @ (weights[:, None] * values)
    gram = (gram + gram.T) / 2
    gram.setflags(write=False)
    return gram


@dataclasses.dataclass(frozen=True)
class SphereAtom(Atom):
    """Real spherical harmonics of degree <= L on the unit sphere S²; M = (L + 1)².

    Coordinates t = (t₀, t₁) ∈ [0, 1] × [0, 1): z = 2t₀ - 1 (clamped axis), azimuth φ = 2πt₁
    (periodic), embedding u = (√(1 - z²) cos φ, √(1 - z²) sin φ, z); each basis function is a
    polynomial of degree l in u (constant; x, y, z up to scale; the 5 quadrupoles; ...), scaled
    to mean square 1 on the sphere. ``evaluate`` clips t₀ to [0, 1].

    Roughness is ∫_{S²} (Δ_S f)² dA with Δ_S the Laplace–Beltrami operator and dA the area
    (4π in all), not the covariant Hessian ∫ ‖∇²f‖²: each degree-l harmonic is an eigenfunction,
    Δ_S Y = -l(l + 1) Y, so S_ij = l_i(l_i + 1) l_j(l_j + 1) ∫ Y_i Y_j dA is exact and diagonal
    (the Gram, computed by quadrature exact for these polynomials, is 4π·I), its null space is the
    constants only (rank M - 1), and the value does not depend on the chart. Why not the flat
    atoms' ∫ ‖∂²f/∂t²‖²: in the (t₀, t₁) chart it depends on the chart and diverges at the poles.
    The covariant Hessian would do, but by Bochner's formula on the unit sphere
    ∫ ‖∇²f‖² = ∫ (Δ_S f)² - ∫ ‖∇f‖², so per degree l the two differ only as (l(l + 1))² against
    l(l + 1)(l(l + 1) - 1): the same wiggles are penalised, and the Laplacian form is the classical
    spline-on-the-sphere penalty with a one-line exact check.

    The chart is singular at the poles (∂u/∂t₀ ∝ 1/√(1 - z²)): ``derivative`` and
    ``second_derivative`` are taken at z clamped to [-1 + 1e-6, 1 - 1e-6] (``POLE_MARGIN``), so
    they stay finite (large near the poles). Autodiff straight through ``evaluate`` at a pole is not.
    """

    degree: int = 2
    name = "sphere"
    dim = 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "degree", positive_int(self.degree, "degree"))

    num_basis = property(lambda self: (self.degree + 1) ** 2)
    periodic = property(lambda self: (False, True))
    domain = property(lambda self: ((0.0, 1.0), (0.0, 1.0)))

    @property
    def degrees(self) -> np.ndarray:
        """(M,) int: the harmonic degree l of each basis function."""
        return _harmonic_degrees(self.degree)

    def _evaluate(self, t: jax.Array) -> jax.Array:
        u = _sphere_embedding(t)
        return _real_harmonics(u[..., 0], u[..., 1], u[..., 2], self.degree, jnp)

    def _derivative_point(self, t: jax.Array) -> jax.Array:
        margin = POLE_MARGIN / 2  # in t₀ = (z + 1)/2
        return t.at[..., 0].set(jnp.clip(t[..., 0], margin, 1.0 - margin))

    def embedding(self, t: Float[Array, "... 2"]) -> Float[Array, "... 3"]:
        """The point u ∈ S² ⊂ R³ (..., 3) of coordinates t (..., 2)."""
        return _jit_embedding(self._check_coordinates(t))

    def roughness(self) -> np.ndarray:
        """S (M, M) = D G D with D = diag(l(l + 1)) and G = ∫ Y_i Y_j dA (= 4π·I)."""
        eigen = (self.degrees * (self.degrees + 1)).astype(np.float64)
        return eigen[:, None] * _sphere_gram(self.degree) * eigen[None, :]


# ---- registry -------------------------------------------------------------------------------------
ATOM_TYPES: dict[str, type[Atom]] = {
    "linear": LinearAtom,
    "interval": IntervalAtom,
    "circle": CircleAtom,
    "sphere": SphereAtom,
    "torus": TorusAtom,
}


def make_atom(spec: str | Atom, **options: Any) -> Atom:
    """An atom by name ("linear", "interval", "circle", "sphere", "torus") with constructor options,
    or an existing :class:`Atom` returned unchanged (options must then be empty)."""
    if isinstance(spec, Atom):
        if options:
            raise ValueError(f"options {sorted(options)} cannot be applied to an existing atom {spec!r}")
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"atom spec must be a name or an Atom, got {type(spec).__name__}")
    if spec not in ATOM_TYPES:
        raise ValueError(f"unknown atom topology {spec!r}; known: {', '.join(sorted(ATOM_TYPES))}")
    cls = ATOM_TYPES[spec]
    accepted = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for a {spec} atom; accepted: {sorted(accepted) or 'none'}"
        )
    return cls(**options)
