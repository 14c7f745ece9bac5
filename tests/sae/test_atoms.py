"""Atoms: roughness matrices against brute-force quadrature of autodiff second derivatives, null spaces
against the analytic unpenalised functions, derivatives against finite differences and SciPy's
B-splines, wrapping, shapes under jit/vmap, and input errors."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.interpolate import BSpline

from superpose.numerics import float64_enabled
from superpose.sae.atoms import (
    ATOM_TYPES,
    Atom,
    CircleAtom,
    IntervalAtom,
    LinearAtom,
    SphereAtom,
    TorusAtom,
    make_atom,
)

ATOMS = [
    LinearAtom(),
    IntervalAtom(num_knots=1),
    IntervalAtom(num_knots=5),
    CircleAtom(harmonics=1),
    CircleAtom(harmonics=3),
    SphereAtom(degree=1),
    SphereAtom(degree=2),
    SphereAtom(degree=3),
    TorusAtom(harmonics=2),
    TorusAtom(harmonics=(1, 2)),
]
#: one of each topology, for the checks that do not depend on the basis size
ONE_OF_EACH = [LinearAtom(), IntervalAtom(num_knots=5), CircleAtom(harmonics=3), SphereAtom(degree=2), TorusAtom(harmonics=(1, 2))]


@pytest.fixture(autouse=True)
def x64():
    with float64_enabled():
        yield


def random_decoder(atom: Atom, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((atom.num_basis, 3))


# ---- brute-force roughness: autodiff of evaluate, integrated by a rule independent of S ------------
def brute_force_roughness(atom: Atom) -> np.ndarray:
    """Σ_q w_q L(Φ)(t_q)ᵀ L(Φ)(t_q) with L the second-derivative operator, from autodiff of ``evaluate``;
    then tr(Bᵀ S B) = ∫ ‖∂²(Φ B)‖² for any decoder B."""
    if isinstance(atom, SphereAtom):  # Δf = ∂_z((1 - z²) ∂_z f) + (1 - z²)⁻¹ ∂²_φ f, dA = dz dφ
        g = lambda z, phi: atom.evaluate(jnp.stack([(z + 1) / 2, phi / (2 * math.pi)]))  # noqa: E731
        flux = lambda z, phi: (1 - z**2) * jax.jacfwd(g, 0)(z, phi)  # noqa: E731

        def laplacian(z, phi):
            return jax.jacfwd(flux, 0)(z, phi) + jax.jacfwd(jax.jacfwd(g, 1), 1)(z, phi) / (1 - z**2)

        z_nodes, z_weights = np.polynomial.legendre.leggauss(16)
        azimuths = 2 * math.pi * np.arange(24) / 24
        z, phi = (a.ravel() for a in np.meshgrid(z_nodes, azimuths, indexing="ij"))
        values = np.asarray(jax.jit(jax.vmap(laplacian))(z, phi))[:, :, None]  # (q, M, 1)
        weights = np.repeat(z_weights, 24) * (2 * math.pi / 24)
    else:
        if isinstance(atom, LinearAtom):  # Φ'' = 0 everywhere: sample the line
            points, weights = np.linspace(-5.0, 5.0, 41)[:, None], np.ones(41)
        elif isinstance(atom, IntervalAtom):  # 8-point Gauss–Legendre on each knot span
            nodes, gauss_weights = np.polynomial.legendre.leggauss(8)
            breaks = np.linspace(0.0, 1.0, atom.num_knots + 2)
            half = np.diff(breaks)[:, None] / 2
            points = (breaks[:-1, None] + half * (1 + nodes)).ravel()[:, None]
            weights = (half * gauss_weights).ravel()
        else:  # circle, torus: trapezoid on a periodic grid (exact for trigonometric polynomials)
            n = 64 if atom.dim == 1 else 32
            axis = np.arange(n) / n
            points = np.stack(np.meshgrid(*[axis] * atom.dim, indexing="ij"), -1).reshape(-1, atom.dim)
            weights = np.full(len(points), 1.0 / len(points))
        hessian = jax.jit(jax.vmap(jax.jacfwd(jax.jacfwd(atom.evaluate))))
        # ‖∇²f‖_F² sums all d² entries, so the mixed derivative counts twice (f_uv² + f_vu²)
        values = np.asarray(hessian(points)).reshape(len(points), atom.num_basis, -1)
    return np.einsum("q,qma,qna->mn", weights, values, values)


@pytest.mark.parametrize("atom", ATOMS, ids=repr)
def test_roughness_matches_brute_force_quadrature(atom):
    S = atom.roughness()
    assert S.shape == (atom.num_basis,) * 2 and S.dtype == np.float64
    brute = brute_force_roughness(atom)
    for seed in range(3):
        B = random_decoder(atom, seed)
        exact, quadrature = np.trace(B.T @ S @ B), np.trace(B.T @ brute @ B)
        if isinstance(atom, LinearAtom):
            assert exact == 0.0 and quadrature == 0.0
        else:
            assert abs(exact - quadrature) <= 1e-8 * quadrature, (exact, quadrature)
    np.testing.assert_allclose(S, brute, atol=1e-9 * np.abs(brute).max())


@pytest.mark.parametrize("atom", ATOMS, ids=repr)
def test_roughness_is_symmetric_psd_with_the_analytic_rank_and_null_space(atom):
    S = atom.roughness()
    np.testing.assert_array_equal(S, S.T)
    eigenvalues = np.linalg.eigvalsh(S)
    scale = max(eigenvalues.max(), 1.0)
    assert eigenvalues.min() >= -1e-10 * scale
    assert int(np.sum(eigenvalues > 1e-9 * scale)) == atom.roughness_rank()
    N = atom.null_space()
    assert N.shape == (atom.num_basis, atom.num_basis - atom.roughness_rank())
    assert np.linalg.matrix_rank(N) == N.shape[1]
    np.testing.assert_allclose(S @ N, 0.0, atol=1e-9 * scale)
    # the null space decodes to the analytic unpenalised functions
    t = atom.sample(jax.random.key(3), (6,))
    decoded_null = np.asarray(atom.evaluate(t) @ N)
    if isinstance(atom, (LinearAtom, IntervalAtom)):
        expected = np.concatenate([np.ones((6, 1)), np.asarray(t)], axis=1)  # constants and lines
    else:
        expected = np.ones((6, 1))  # constants only
    np.testing.assert_allclose(decoded_null, expected, atol=1e-12)


def test_closed_forms():
    circle = CircleAtom(harmonics=2)
    w = 2 * math.pi
    np.testing.assert_allclose(np.diag(circle.roughness()), [0, w**4 / 2, w**4 / 2, (2 * w) ** 4 / 2, (2 * w) ** 4 / 2])
    torus = TorusAtom(harmonics=(1, 1))  # index a·3 + b; (cos u)(cos v): ¼ (ω² + ω²)²
    np.testing.assert_allclose(torus.roughness()[4, 4], (2 * w**2) ** 2 / 4)
    np.testing.assert_allclose(torus.roughness()[1, 1], w**4 / 2)  # cos v alone
    sphere = SphereAtom(degree=3)  # orthonormal harmonics (mean square 1): Gram = 4π·I
    eigen = sphere.degrees * (sphere.degrees + 1.0)
    np.testing.assert_allclose(sphere.roughness(), np.diag(4 * math.pi * eigen**2), atol=1e-10)


def test_sphere_degree_one_functions_are_the_embedding_coordinates():
    sphere = SphereAtom(degree=2)
    t = sphere.sample(jax.random.key(0), (6,))
    u = np.asarray(sphere.embedding(t))
    np.testing.assert_allclose(np.linalg.norm(u, axis=1), 1.0, atol=1e-12)
    values = np.asarray(sphere.evaluate(t))
    np.testing.assert_allclose(values[:, 1:4], math.sqrt(3) * u[:, [2, 0, 1]], atol=1e-12)  # z, x, y


# ---- B-splines ---------------------------------------------------------------------------------
@settings(max_examples=4, deadline=None)
@given(num_knots=st.integers(1, 9))
def test_bsplines_partition_of_unity_and_match_scipy(num_knots):
    atom = IntervalAtom(num_knots=num_knots)
    x = np.concatenate([np.linspace(0.0, 1.0, 37), [1.0 - 1e-12, 1e-12]])
    values = np.asarray(atom.evaluate(x[:, None]))
    np.testing.assert_allclose(values.sum(axis=1), 1.0, atol=1e-13)
    assert values.min() >= 0.0
    np.testing.assert_allclose(values[0], np.eye(atom.num_basis)[0], atol=1e-15)  # t = 0
    np.testing.assert_allclose(values[36], np.eye(atom.num_basis)[-1], atol=1e-15)  # t = 1
    np.testing.assert_allclose(values, BSpline(atom.knots, np.eye(atom.num_basis), 3)(x), atol=1e-13)


def test_bspline_derivatives_match_scipy():
    atom = IntervalAtom(num_knots=5)
    x = np.array([0.0, 1 / 6, 0.4, 2 / 3, 0.9, 1.0])  # knots included: B' and B'' are continuous
    reference = BSpline(atom.knots, np.eye(atom.num_basis), 3)
    np.testing.assert_allclose(atom.derivative(x[:, None])[..., 0], reference.derivative(1)(x), atol=1e-10)
    np.testing.assert_allclose(atom.second_derivative(x[:, None])[..., 0, 0], reference.derivative(2)(x), atol=1e-8)
    # beyond [0, 1] the end spans' cubics continue (partition of unity still holds)
    outside = np.array([[-0.1], [1.1], [-0.3], [1.3], [-1.0], [2.0]])
    np.testing.assert_allclose(atom.evaluate(outside), reference(outside[:, 0]), atol=1e-12)
    np.testing.assert_allclose(np.sum(atom.evaluate(outside), axis=1), 1.0, atol=1e-12)


# ---- derivatives against central finite differences -------------------------------------------------
@pytest.mark.parametrize("atom", ONE_OF_EACH, ids=repr)
def test_derivatives_match_finite_differences(atom):
    t = np.array(atom.sample(jax.random.key(1), (6,)))
    if isinstance(atom, IntervalAtom):  # away from the knots, where the third derivative jumps
        t = np.array([0.013, 0.25, 0.377, 0.611, 0.71, 0.989])[:, None]
    if isinstance(atom, SphereAtom):
        t[:, 0] = 0.1 + 0.8 * t[:, 0]  # away from the poles
    jac = np.asarray(atom.derivative(t))
    hess = np.asarray(atom.second_derivative(t))
    scale = np.abs(hess).max() + 1.0
    for a in range(atom.dim):
        step = np.zeros(atom.dim)
        step[a] = 1e-5
        central = (np.asarray(atom.evaluate(t + step)) - np.asarray(atom.evaluate(t - step))) / 2e-5
        np.testing.assert_allclose(jac[..., a], central, atol=1e-6 * scale)
        step[a] = 1e-4
        fd = (np.asarray(atom.derivative(t + step)) - np.asarray(atom.derivative(t - step))) / 2e-4
        np.testing.assert_allclose(hess[..., a], fd, atol=1e-6 * scale)


def test_sphere_derivatives_stay_finite_at_the_poles():
    sphere = SphereAtom(degree=2)
    # poles, then z = ∓(1 - 1e-6) (the clamp), then beyond the domain (clamped the same way)
    points = jnp.array([[0.0, 0.3], [1.0, 0.7], [5e-7, 0.3], [1 - 5e-7, 0.7], [-0.2, 0.3], [1.2, 0.7]])
    jac, hess = np.asarray(sphere.derivative(points)), np.asarray(sphere.second_derivative(points))
    assert np.all(np.isfinite(jac)) and np.all(np.isfinite(hess))
    np.testing.assert_allclose(jac[:2], jac[2:4], rtol=1e-12)
    np.testing.assert_allclose(jac[:2], jac[4:], rtol=1e-12)
    assert np.abs(jac).max() < 1e4 and np.abs(hess).max() < 1e10


# ---- wrap, sample, grid ---------------------------------------------------------------------------
def test_wrap():
    circle = CircleAtom(harmonics=1)
    wrapped = np.asarray(circle.wrap(jnp.array([[1.25], [-0.25], [-1e-20], [3.0], [0.5]])))[:, 0]
    np.testing.assert_allclose(wrapped, [0.25, 0.75, 0.0, 0.0, 0.5], atol=1e-15)
    assert wrapped.max() < 1.0 and wrapped.min() >= 0.0
    assert circle.wrap(jnp.array([[1.25], [-0.25]], dtype=jnp.float32)).dtype == jnp.float32
    interval = IntervalAtom(num_knots=2)
    np.testing.assert_array_equal(interval.wrap(jnp.array([[-0.5], [0.3], [1.7]]))[:, 0], [0.0, 0.3, 1.0])
    np.testing.assert_array_equal(LinearAtom().wrap(jnp.array([[-7.5], [12.0]])), [[-7.5], [12.0]])
    sphere_wrapped = SphereAtom(degree=1).wrap(jnp.array([[1.2, -0.25], [-0.1, 2.5]]))
    np.testing.assert_allclose(sphere_wrapped, [[1.0, 0.75], [0.0, 0.5]], atol=1e-15)
    np.testing.assert_allclose(TorusAtom(harmonics=1).wrap(jnp.array([1.2, -0.25])), [0.2, 0.75], atol=1e-15)
    # wrapping never changes a periodic function's value
    t = jnp.array([[3.3, -2.1]])
    np.testing.assert_allclose(TorusAtom(harmonics=2).evaluate(t), TorusAtom(harmonics=2).evaluate(TorusAtom(2).wrap(t)))


@pytest.mark.parametrize("atom", ONE_OF_EACH, ids=repr)
def test_sample_and_grid_cover_the_domain(atom):
    t = np.asarray(atom.sample(jax.random.key(7), (2, 2000)))
    assert t.shape == (2, 2000, atom.dim)
    t = t.reshape(4000, atom.dim)
    grid = np.asarray(atom.grid(5))
    assert grid.shape == (5**atom.dim, atom.dim)
    for axis, ((lo, hi), periodic) in enumerate(zip(atom.domain, atom.periodic, strict=True)):
        if math.isinf(lo):  # standard normal
            assert abs(t[:, axis].mean()) < 0.1 and abs(t[:, axis].std() - 1) < 0.1
            np.testing.assert_allclose(np.unique(grid[:, axis]), np.linspace(-3, 3, 5))
            continue
        assert t[:, axis].min() >= lo and t[:, axis].max() <= hi
        assert abs(t[:, axis].mean() - (lo + hi) / 2) < 0.03  # uniform
        expected = lo + (hi - lo) * np.arange(5) / 5 if periodic else np.linspace(lo, hi, 5)
        np.testing.assert_allclose(np.unique(grid[:, axis]), expected)
    if isinstance(atom, SphereAtom):  # uniform in t is uniform in area: E[u] = 0, E[uuᵀ] = I/3
        u = np.asarray(atom.embedding(t))
        np.testing.assert_allclose(u.mean(0), 0.0, atol=0.05)
        np.testing.assert_allclose(u.T @ u / len(u), np.eye(3) / 3, atol=0.03)


# ---- shapes, jit, vmap, grad, dtype ---------------------------------------------------------------
@pytest.mark.parametrize("atom", ONE_OF_EACH, ids=repr)
def test_any_leading_shape_under_jit_and_vmap(atom):
    M, d = atom.num_basis, atom.dim
    batch = atom.sample(jax.random.key(2), (6,)).reshape(2, 3, d)
    flat = np.asarray(atom.evaluate(batch.reshape(6, d)))
    for lead, t in [((), batch[1, 2]), ((5,), batch.reshape(6, d)[1:]), ((2, 3), batch)]:
        np.testing.assert_allclose(atom.evaluate(t), flat[-int(np.prod(lead)) :].reshape(*lead, M), atol=1e-13)
    assert atom.derivative(batch).shape == (2, 3, M, d)
    assert atom.second_derivative(batch).shape == (2, 3, M, d, d)
    assert atom.wrap(batch).shape == batch.shape
    # inside an outer jit (atom static), under vmap, and under grad, in one compiled program
    B = random_decoder(atom)[:, 0]

    @functools.partial(jax.jit, static_argnums=0)
    def traced(a, t):
        return a.evaluate(t), jax.vmap(a.evaluate)(t), jax.grad(lambda s: a.evaluate(s) @ B)(t[0, 0])

    jitted, vmapped, grad = traced(atom, batch)
    np.testing.assert_allclose(jitted, flat.reshape(2, 3, M), atol=1e-13)
    np.testing.assert_allclose(vmapped, flat.reshape(2, 3, M), atol=1e-13)
    np.testing.assert_allclose(grad, np.einsum("md,m->d", atom.derivative(batch)[0, 0], B), atol=1e-10)
    assert atom.evaluate(batch.astype(jnp.float32)).dtype == jnp.float32


def test_derivative_shapes_for_every_leading_shape():
    torus = TorusAtom(harmonics=(1, 2))
    batch = torus.sample(jax.random.key(2), (6,)).reshape(2, 3, 2)
    jac, hess = torus.derivative(batch), torus.second_derivative(batch)
    for t, index in [(batch[1, 2], (1, 2)), (batch[0], (0,)), (batch, ())]:
        np.testing.assert_allclose(torus.derivative(t), jac[index], atol=1e-12)
        np.testing.assert_allclose(torus.second_derivative(t), hess[index], atol=1e-10)
        np.testing.assert_allclose(torus.wrap(t + 1.0), batch[index], atol=1e-12)
    np.testing.assert_allclose(jax.jit(jax.vmap(torus.second_derivative))(batch), hess, atol=1e-10)


def test_atoms_are_hashable_static_values():
    assert CircleAtom(3) == make_atom("circle", harmonics=3) and hash(CircleAtom(3)) == hash(CircleAtom(harmonics=3))
    assert TorusAtom(2) == TorusAtom((2, 2)) and TorusAtom(2).harmonics == (2, 2)
    assert IntervalAtom(np.int64(4)) == IntervalAtom(4)
    assert CircleAtom(3) != CircleAtom(2) and CircleAtom(1) != TorusAtom(1)
    assert make_atom(SphereAtom(1)) is not None and make_atom(SphereAtom(1)) == SphereAtom(1)
    assert set(ATOM_TYPES) == {"linear", "interval", "circle", "sphere", "torus"}
    for name in ATOM_TYPES:
        atom = make_atom(name)
        assert atom.name == name and len(atom.periodic) == len(atom.domain) == atom.dim


# ---- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("build", "argument"),
    [
        (lambda: IntervalAtom(num_knots=0), "num_knots"),
        (lambda: IntervalAtom(num_knots=2.5), "num_knots"),
        (lambda: CircleAtom(harmonics=0), "harmonics"),
        (lambda: CircleAtom(harmonics=True), "harmonics"),
        (lambda: SphereAtom(degree=-1), "degree"),
        (lambda: TorusAtom(harmonics=(1, 0)), r"harmonics\[1\]"),
        (lambda: TorusAtom(harmonics=(1, 2, 3)), "harmonics"),
        (lambda: make_atom("cube"), "circle, interval, linear, sphere, torus"),
        (lambda: make_atom("circle", num_knots=3), "num_knots"),
        (lambda: make_atom(CircleAtom(1), harmonics=2), "harmonics"),
        (lambda: CircleAtom(1).grid(0), "n"),
        (lambda: CircleAtom(1).sample(jax.random.key(0), (-1,)), "shape"),
        (lambda: CircleAtom(1).evaluate(jnp.zeros((4, 2))), r"\(\.\.\., 1\)"),
        (lambda: SphereAtom(1).derivative(jnp.zeros(3)), r"\(\.\.\., 2\)"),
        (lambda: IntervalAtom(1).evaluate(jnp.array([[0.2], [jnp.nan]])), "finite"),
    ],
)
def test_bad_input_raises(build, argument):
    with pytest.raises(ValueError, match=argument):
        build()


def test_wrong_types_raise():
    with pytest.raises(TypeError):
        make_atom(3)
    with pytest.raises(TypeError):
        CircleAtom(1).evaluate("not numbers")


@pytest.mark.parametrize("atom", [CircleAtom(harmonics=1), CircleAtom(harmonics=3), TorusAtom(harmonics=2),
                                  TorusAtom(harmonics=(1, 2))], ids=lambda a: f"{a.name}-{a.harmonics}")
def test_shift_matrix_moves_the_chart_exactly(atom):
    """Φ(t + c) = Φ(t) R(c) at random points and shifts (direct evaluation as the truth); R is
    orthogonal, commutes with S (so the roughness penalty is unchanged) and fixes the constant."""
    rng = np.random.default_rng(3)
    with float64_enabled():
        t = jnp.asarray(rng.uniform(0, 1, (50, atom.dim)))
        for shift in (rng.uniform(-1, 1, atom.dim), np.full(atom.dim, 0.5), np.zeros(atom.dim)):
            R = np.asarray(atom.shift_matrix(jnp.asarray(shift)))
            moved = np.asarray(atom.evaluate(t + jnp.asarray(shift)))
            np.testing.assert_allclose(np.asarray(atom.evaluate(t)) @ R, moved, atol=1e-12)
            np.testing.assert_allclose(R @ R.T, np.eye(atom.num_basis), atol=1e-12)
            S = atom.roughness()
            np.testing.assert_allclose(R @ S @ R.T, S, atol=1e-9 * np.max(S))
            assert R[0, 0] == pytest.approx(1.0)


def test_atoms_without_an_exact_shift_say_so():
    for atom in (LinearAtom(), IntervalAtom(num_knots=3), SphereAtom(degree=2)):
        assert atom.shift_matrix(jnp.zeros(atom.dim)) is None
