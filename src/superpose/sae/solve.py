"""The inner solve: minimise the penalised loss over decoders, thresholds, logits and coordinates.

One iteration, jitted once per shape:

1. decoders and offset: the model is linear in ``W = [b; B_1; …; B_K]`` given the activities and
   coordinates, so ``W`` is the exact penalised least-squares solution of
   ``(XᵀX + blockdiag(0, λ_k S_k)) W = XᵀZ`` with ``X_i = [1, a_i1 Φ_1(t_i1), …, a_iK Φ_K(t_iK)]``
   (the minimum-norm solution where the system is singular, e.g. an atom no row uses);
2. thresholds of the threshold gate: damped Newton steps, kept only where the loss falls;
3. optionally a global search per row and atom: switch atom k off, or on at each point of a grid
   over its chart, and keep whatever lowers that row's loss (charts are not convex: a bent curve
   gives a row several local minima in t, an atom whose activity is near 0 leaves its coordinate
   almost no gradient, and an atom that is off gets none to switch it on, so Newton alone cannot
   leave such points);
4. damped Newton steps on each row's (logits, coordinates) block, ``vmap``-ed over rows, with
   the saddle-free step ``−V diag(1/(|w| + μ)) Vᵀ g`` (``H = V diag(w) Vᵀ``), accepted only where
   the row's loss falls, μ adapted per row (Levenberg–Marquardt).

Alternation converges slowly along directions that couple decoders and rows (an activity traded
against its decoder's size), so :func:`solve` then switches to :func:`joint_newton`: damped Newton
steps on every parameter at once, through the arrow-shaped Hessian (:mod:`superpose.sae.structure`).
After each alternation and each joint step, every circle and torus chart is rotated to its ARD
prior's optimum in closed form (:func:`superpose.sae.objective.align_charts`; no decoded point
moves): only the weak prior fixes that rotation, and Newton steps along it crawled (on 8 superposed
circles, 2 000 rows: 100 iterations at ~10⁻⁵ nats each and no convergence; aligned, 7 iterations).

At the end, rows at a saddle (a negative curvature in their block: no Laplace approximation there)
step along it (:func:`escape_saddles`) and the solve goes on. Every step either lowers the loss or
is rejected, so the loss never rises.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from superpose import _xla
from superpose._xla import CHEAP_COMPILE
from superpose.parallel import gathered, replicate, shard_batch
from superpose.sae.gates import Gate
from superpose.sae.structure import arrow_blocks, eliminate_rows, factor_rows, global_vector, solve_rows, with_globals
from superpose.sae.objective import (
    align_charts,
    atom_runs,
    decoder_penalty_matrix,
    design_matrix,
    SaeParams,
    coord_slices,
    park_inactive,
    penalized_loss,
    row_loss,
    wrap_coords,
)


def _psd_solve(A: Array, rhs: Array) -> Array:
    """Minimum-norm solution of ``A x = rhs`` for symmetric PSD ``A`` (eigenvalue cut-off)."""
    w, V = jnp.linalg.eigh(A)
    cutoff = jnp.max(jnp.abs(w)) * 10 * jnp.finfo(A.dtype).eps * A.shape[0]
    inverse = jnp.where(w > cutoff, 1.0 / jnp.where(w > cutoff, w, 1.0), 0.0)
    return V @ (inverse[:, None] * (V.T @ rhs))


def decoder_update(atoms, gate: Gate, params: SaeParams, hyper, Z: Array) -> SaeParams:
    """The exact penalised least-squares decoders and offset at fixed activities and coordinates."""
    X = design_matrix(atoms, gate, params)
    A = X.T @ X + decoder_penalty_matrix(atoms, hyper.log_lambda_smooth, X.dtype)
    W = _psd_solve(A, X.T @ Z)
    decoders, start = [], 1
    for atom in atoms:
        decoders.append(W[start:start + atom.num_basis])
        start += atom.num_basis
    return params._replace(offset=W[0], decoders=tuple(decoders))


def _damped_newton_step(f, x, mu):
    """One saddle-free Levenberg–Marquardt step on ``f`` at ``x``; returns the proposal."""
    g = jax.grad(f)(x)
    H = jax.hessian(f)(x)
    w, V = jnp.linalg.eigh(H)
    return x - V @ ((V.T @ g) / (jnp.abs(w) + mu))


def threshold_update(atoms, gate: Gate, params: SaeParams, hyper, Z: Array, steps: int = 3) -> SaeParams:
    """Damped Newton steps on the threshold gate's θ (kept ≥ 0), each kept only if it helps."""
    def loss(theta):
        return penalized_loss(atoms, gate, params._replace(thresholds=theta), hyper, Z)

    def body(_, carry):
        theta, value, mu = carry
        proposal = jnp.maximum(_damped_newton_step(loss, theta, mu), 0.0)
        new = loss(proposal)
        better = new < value
        return (jnp.where(better, proposal, theta), jnp.where(better, new, value),
                jnp.where(better, mu / 3, mu * 4))

    mu0 = jnp.asarray(1e-3 * Z.shape[0], params.thresholds.dtype)
    theta, _, _ = jax.lax.fori_loop(0, steps, body, (params.thresholds, loss(params.thresholds), mu0))
    return params._replace(thresholds=theta)


def _row_losses(atoms, gate, params, hyper, Z, logits, coords):
    return jax.vmap(lambda z, l, c: row_loss(atoms, gate, params, hyper, z, l, c))(Z, logits, coords)


def grid_points_per_axis(atom, grid_points: int) -> int:
    """``grid_points`` along a 1-D chart; about 4·grid_points points in all on a 2-D one."""
    return grid_points if atom.dim == 1 else max(4, int(np.ceil((4 * grid_points) ** (1 / atom.dim))))


#: rows per chunk of the per-row steps (search, Newton, saddles): their memory is bounded by the
#: chunk (a row's Hessian pass holds ~q·K·p numbers), not by N
ROW_CHUNK = 4096


def map_rows(fn, Z: Array, logits: Array, coords: Array, chunk: int | None = None):
    """``fn(Z, logits, coords) -> (logits, coords)`` over chunks of ``chunk`` rows (``lax.map``).

    The same compiled program as one call where N <= chunk; otherwise the rows are padded (with
    copies of the last row, dropped again) to a multiple of the chunk.
    """
    N, chunk = Z.shape[0], ROW_CHUNK if chunk is None else chunk
    if N <= chunk:
        return fn(Z, logits, coords)
    pad = (-N) % chunk

    def split(a):
        a = jnp.concatenate([a, jnp.repeat(a[-1:], pad, axis=0)]) if pad else a
        return a.reshape(-1, chunk, *a.shape[1:])

    out = jax.lax.map(lambda xs: fn(*xs), (split(Z), split(logits), split(coords)))
    return jax.tree_util.tree_map(lambda a: a.reshape(-1, *a.shape[2:])[:N], out)


def row_search(atoms, gate: Gate, params: SaeParams, hyper, Z: Array, grid_points: int) -> SaeParams:
    """Per row and atom (in turn): the best of keeping, switching off, or switching on at a grid point."""
    logits, coords = map_rows(lambda z, l, c: _search_rows(atoms, gate, params, hyper, z, l, c, grid_points),
                              Z, params.logits, params.coords)
    return params._replace(logits=logits, coords=coords)


def _search_rows(atoms, gate, params, hyper, Z, logits, coords, grid_points):
    """The search over atoms in turn; a run of equal atoms is one ``fori_loop`` (one compiled body,
    not one per atom: unrolled, 12 circles took 20 s to compile against 2 s for 4)."""
    current = _row_losses(atoms, gate, params, hyper, Z, logits, coords)
    for first, count, column in atom_runs(atoms):
        atom = atoms[first]
        grid = jnp.asarray(atom.grid(grid_points_per_axis(atom, grid_points)), coords.dtype)  # (G, d)

        def search_atom(j, carry, atom=atom, grid=grid, first=first, column=column):
            logits, coords, current = carry
            k, start = first + j, column + j * atom.dim
            off_logits = gate.switched(logits, k, jnp.zeros(logits.shape[0], bool))
            on_logits = gate.switched(logits, k, jnp.ones(logits.shape[0], bool))
            off = _row_losses(atoms, gate, params, hyper, Z, off_logits, coords)

            def on_at(point):
                placed = jax.lax.dynamic_update_slice(coords, jnp.broadcast_to(point, (coords.shape[0], atom.dim)),
                                                      (0, start))
                return _row_losses(atoms, gate, params, hyper, Z, on_logits, placed)

            on = jax.lax.map(on_at, grid)  # (G, N)
            best_point = jnp.argmin(on, axis=0)
            best_on = jnp.min(on, axis=0)
            use_on = (best_on < current) & (best_on <= off)
            use_off = (off < current) & ~use_on
            logits = jnp.where(use_on[:, None], on_logits, jnp.where(use_off[:, None], off_logits, logits))
            kept = jax.lax.dynamic_slice_in_dim(coords, start, atom.dim, axis=1)
            coords = jax.lax.dynamic_update_slice(coords, jnp.where(use_on[:, None], grid[best_point], kept), (0, start))
            current = jnp.where(use_on, best_on, jnp.where(use_off, off, current))
            return logits, coords, current

        logits, coords, current = jax.lax.fori_loop(0, count, search_atom, (logits, coords, current))
    return logits, coords


def row_newton(atoms, gate: Gate, params: SaeParams, hyper, Z: Array, steps) -> SaeParams:
    """``steps`` (an int, or a traced one) damped Newton steps on every row's (logits, coordinates), vmapped over rows."""
    K = params.logits.shape[1]

    def solve_row(z, logits, coords):
        def f(r):
            return row_loss(atoms, gate, params, hyper, z, r[:K], r[K:])

        def body(_, carry):
            r, value, mu = carry
            proposal = _damped_newton_step(f, r, mu)
            proposal = jnp.concatenate([proposal[:K], wrap_coords(atoms, proposal[K:])])
            new = f(proposal)
            better = new < value
            return (jnp.where(better, proposal, r), jnp.where(better, new, value),
                    jnp.clip(jnp.where(better, mu / 3, mu * 4), 1e-10, 1e10))

        r0 = jnp.concatenate([logits, coords])
        r, _, _ = jax.lax.fori_loop(0, steps, body, (r0, f(r0), jnp.asarray(1e-4, r0.dtype)))
        return r[:K], r[K:]

    logits, coords = map_rows(jax.vmap(solve_row), Z, params.logits, params.coords)
    return params._replace(logits=logits, coords=coords)


# CHEAP_COMPILE (here and for criterion._pieces): 1.13-1.14x faster compiles at the same run time
# (benchmarks/compile_options.py); the inner iteration and joint Newton gained nothing, so they keep the defaults.
@functools.partial(_xla.jit, cpu_options=CHEAP_COMPILE, static_argnames=("atoms", "gate"))
def escape_saddles(atoms, gate: Gate, params: SaeParams, hyper, Z: Array) -> tuple[SaeParams, Array]:
    """Rows whose block has a negative curvature step along it; returns (params, loss).

    Newton's steps (damped to positive definiteness) stop at any stationary point, saddles
    included, and a row at a saddle (e.g. a threshold-gate logit on a maximum of its jump) has no
    Laplace approximation. Each such row tries ±{0.1, 0.3, 1} along its most negative eigenvector
    and keeps the lowest row loss, if lower.
    """
    K = params.logits.shape[1]

    def escape_row(z, logits, coords):
        def f(r):
            return row_loss(atoms, gate, params, hyper, z, r[:K], r[K:])

        r0 = jnp.concatenate([logits, coords])
        w, V = jnp.linalg.eigh(jax.hessian(f)(r0))
        direction = V[:, 0]
        sizes = jnp.asarray([0.1, 0.3, 1.0, -0.1, -0.3, -1.0], r0.dtype)
        tries = r0[None, :] + sizes[:, None] * direction[None, :]
        tries = jnp.concatenate([tries[:, :K], wrap_coords(atoms, tries[:, K:])], axis=1)
        values = jax.vmap(f)(tries)
        best = jnp.argmin(values)
        better = (w[0] < 0) & (values[best] < f(r0))
        r = jnp.where(better, tries[best], r0)
        return r[:K], r[K:]

    logits, coords = map_rows(jax.vmap(escape_row), Z, params.logits, params.coords)
    params = params._replace(logits=logits, coords=coords)
    return params, penalized_loss(atoms, gate, params, hyper, Z)


def iterate(atoms, gate, params, hyper, Z, *, grid_points, newton_steps, search, update_decoders=True):
    """One iteration of the inner solve (see the module docstring); returns (params, loss).

    ``newton_steps``, ``search`` and ``update_decoders`` are traced: every variant that the solve
    and the encoder use runs one compiled program per shape.
    """
    return _iterate(atoms, gate, params, hyper, Z, jnp.asarray(newton_steps, jnp.int32), jnp.asarray(search, bool),
                    jnp.asarray(update_decoders, bool), grid_points=grid_points)


@functools.partial(jax.jit, static_argnames=("atoms", "gate", "grid_points"))
def _iterate(atoms, gate, params, hyper, Z, newton_steps, search, update_decoders, *, grid_points):
    def decoders(params):
        params = decoder_update(atoms, gate, params, hyper, Z)
        return threshold_update(atoms, gate, params, hyper, Z) if gate.learns_thresholds else params

    params = jax.lax.cond(update_decoders, decoders, lambda params: params, params)
    params = jax.lax.cond(search, lambda params: row_search(atoms, gate, params, hyper, Z, grid_points),
                          lambda params: params, params)
    params = park_inactive(atoms, gate, row_newton(atoms, gate, params, hyper, Z, newton_steps))
    params = jax.lax.cond(update_decoders, lambda params: align_charts(atoms, gate, params), lambda params: params,
                          params)  # the decoders must rotate with the charts
    return params, penalized_loss(atoms, gate, params, hyper, Z)


def _gradients(atoms, gate, params: SaeParams, hyper, Z):
    """(∂ℓ_pen/∂G (P,), ∂ℓ_pen/∂r_i (N, q)) at the current parameters."""
    flat, unravel = global_vector(gate, params)
    g_global = jax.grad(lambda g: penalized_loss(atoms, gate, with_globals(gate, params, unravel(g)), hyper, Z))(flat)
    K = params.logits.shape[1]
    rows = jnp.concatenate([params.logits, params.coords], axis=1)
    g_rows = jax.vmap(jax.grad(lambda z, r: row_loss(atoms, gate, params, hyper, z, r[:K], r[K:]), argnums=1))(Z, rows)
    return g_global, g_rows


@functools.partial(jax.jit, static_argnames=("atoms", "gate", "steps"))
def joint_newton(atoms, gate, params: SaeParams, hyper, Z, mu, value, *, steps: int):
    """Damped Newton steps on every parameter at once, through the arrow structure.

    The system ``(H + μI) Δ = g`` is solved by eliminating the row blocks (N solves of q × q)
    and factoring the P × P Schur complement; a row block that is not positive definite enters with
    eigenvalues |w| + μ (saddle-free). A step is kept only where it is finite and the loss falls;
    μ shrinks after a kept step and grows after a rejected one.
    ``value`` is ℓ_pen at ``params`` (the caller has it). Returns (params, loss, μ).
    """
    K = params.logits.shape[1]

    def propose(current, mu):
        blocks = arrow_blocks(atoms, gate, current, hyper, Z)
        g_global, g_rows = _gradients(atoms, gate, current, hyper, Z)
        # one batched eigendecomposition serves every row solve (see structure.RowFactor); a row
        # block that is not positive definite (a saddle, an inactive atom's coordinate) takes
        # |λ| + μ for its eigenvalues λ (saddle-free Newton) instead of failing the whole step
        factor = factor_rows(blocks.rows)
        factor = factor._replace(values=jnp.abs(factor.values) + mu)
        cross, schur = eliminate_rows(blocks, factor)  # (N, q, P), (P, P)
        grow = solve_rows(factor, g_rows[..., None])[..., 0]  # (N, q)
        schur = schur + mu * jnp.eye(schur.shape[0], dtype=schur.dtype)
        rhs = g_global - jnp.einsum("nqp,nq->p", blocks.cross, grow)
        d_global = jnp.linalg.solve(schur, rhs)
        d_rows = grow - jnp.einsum("nqp,p->nq", cross, d_global)
        flat, unravel = global_vector(gate, current)
        proposal = with_globals(gate, current, unravel(flat - d_global))
        new_rows = jnp.concatenate([current.logits, current.coords], axis=1) - d_rows
        proposal = proposal._replace(logits=new_rows[:, :K], coords=wrap_coords(atoms, new_rows[:, K:]))
        if gate.learns_thresholds:
            proposal = proposal._replace(thresholds=jnp.maximum(proposal.thresholds, 0.0))
        proposal = align_charts(atoms, gate, proposal)  # the charts' rotations, in closed form
        ok = jnp.all(jnp.isfinite(d_global)) & jnp.all(jnp.isfinite(d_rows))
        return proposal, ok

    def body(_, carry):
        current, value, mu = carry
        proposal, ok = propose(current, mu)
        new = penalized_loss(atoms, gate, proposal, hyper, Z)
        better = ok & (new < value)
        current = jax.tree_util.tree_map(lambda a, b: jnp.where(better, a, b), proposal, current)
        return current, jnp.where(better, new, value), jnp.clip(jnp.where(better, mu / 4, mu * 8), 1e-12, 1e12)

    return jax.lax.fori_loop(0, steps, body, (params, jnp.asarray(value, Z.dtype), jnp.asarray(mu, Z.dtype)))


def projected_gradient(atoms, gate, params: SaeParams, hyper, Z: Array) -> SaeParams:
    """∇ℓ_pen with the components that push a clamped coordinate out of its domain set to 0."""
    grad = jax.grad(lambda q: penalized_loss(atoms, gate, q, hyper, Z))(params)
    g = grad.coords
    for atom, s in zip(atoms, coord_slices(atoms)):
        for j in range(atom.dim):
            lo, hi = atom.domain[j]
            if atom.periodic[j] or not (np.isfinite(lo) and np.isfinite(hi)):
                continue
            t, gj = params.coords[:, s.start + j], g[:, s.start + j]
            blocked = ((t <= lo) & (gj > 0)) | ((t >= hi) & (gj < 0))
            g = g.at[:, s.start + j].set(jnp.where(blocked, 0.0, gj))
    if not gate.learns_thresholds:
        grad = grad._replace(thresholds=jnp.zeros_like(grad.thresholds))
    return grad._replace(coords=g)


@functools.partial(jax.jit, static_argnames=("atoms", "gate"))
def gradient_norm(atoms, gate, params: SaeParams, hyper, Z: Array) -> Array:
    """The Euclidean norm of the projected gradient of ℓ_pen over every parameter."""
    leaves = jax.tree_util.tree_leaves(projected_gradient(atoms, gate, params, hyper, Z))
    return jnp.sqrt(sum(jnp.sum(leaf**2) for leaf in leaves))


#: joint Newton steps per iteration of the second phase
JOINT_STEPS = 5
#: below this damping μ, a joint Newton call whose every step was rejected is not read as convergence
STALL_DAMPING = 1e8
#: the joint phase holds the N × q × P cross blocks of the Hessian (and their elimination, N q P²
#: flops): beyond this many bytes the solve alternates only (``joint=None``)
JOINT_MEMORY = 2 * 2**30


def joint_memory(gate: Gate, params: SaeParams) -> int:
    """Bytes of the cross blocks H_iG that a joint Newton step holds (N·q·P numbers)."""
    N, K = params.logits.shape
    q = K + params.coords.shape[1]
    P = global_vector(gate, params)[0].shape[0]
    return N * q * P * params.coords.dtype.itemsize


class SolveReport(NamedTuple):
    """How an inner solve ended."""

    loss: float  # the final penalised loss
    iterations: int
    converged: bool  # the relative change fell below the tolerance
    relative_change: float  # of the loss in the last iteration
    gradient_norm: float  # projected gradient of ℓ_pen at the end
    loss_trace: np.ndarray  # the loss after each iteration
    status: str  # how it ended, in words


def solve(atoms, gate: Gate, params: SaeParams, hyper, Z: Array, *, max_iterations: int = 100,
          tol: float = 1e-9, grid_points: int = 48, newton_steps: int = 4, search_every: int = 5,
          update_decoders: bool = True, switch_tol: float = 1e-2,
          switch_after: int = 10, joint: bool | None = None) -> tuple[SaeParams, SolveReport]:
    """Runs the inner solve until the loss stops falling; never raises away a finite model.

    Phase 1 alternates :func:`iterate` (exact decoders, row search in the first two iterations
    and every ``search_every``-th, row Newton steps) until the loss changes by less than
    ``switch_tol`` (relative) or for ``switch_after`` iterations. Phase 2 takes joint Newton steps (:func:`joint_newton`) on every
    parameter; once they change the loss by less than ``tol``, one more row search checks that
    no row gains from a jump to another part of its chart: if one does, the solve goes on,
    else it has converged. ``update_decoders=False`` solves the rows only (encoding).
    An iteration is one alternation or five joint Newton steps. ``joint``: take the joint phase
    (True), alternate only (False), or (None, default) take it where its cross blocks fit in
    :data:`JOINT_MEMORY` bytes (:func:`joint_memory`); alternating only, the solve converges when an
    alternation changes the loss by less than ``tol`` (more slowly: the status says so).
    Per-row steps run in chunks of :data:`ROW_CHUNK` rows, so memory grows with N only linearly.
    """
    if joint is None:
        joint_allowed = joint_memory(gate, params) <= JOINT_MEMORY
    elif isinstance(joint, bool):
        joint_allowed = joint
    else:
        raise TypeError(f"joint must be True, False or None, got {joint!r}")
    Z = jnp.asarray(Z)  # once, not at every compiled call
    hyper = hyper.astype(Z.dtype)
    Z, params, split = rows_over_devices(Z, params)
    trace, converged, change, stalled = [], False, float("inf"), False
    previous = float(penalized_loss(atoms, gate, params, hyper, Z))
    in_joint, mu, it = False, 1e-3, 0
    for it in range(1, max_iterations + 1):
        if in_joint:
            params, loss, mu_array = joint_newton(atoms, gate, params, hyper, Z, mu, previous, steps=JOINT_STEPS)
            # every step rejected (μ grew by 8 each time): the damping was too weak, not a sign of convergence
            stalled = float(mu_array) >= 0.99 * min(mu * 8.0**JOINT_STEPS, 1e12) and float(mu_array) < STALL_DAMPING
            mu = float(mu_array)
        else:
            search = it <= 2 or it % search_every == 0
            params, loss = iterate(atoms, gate, params, hyper, Z, grid_points=grid_points,
                                   newton_steps=newton_steps, search=search, update_decoders=update_decoders)
        loss = float(loss)
        if not np.isfinite(loss):
            raise FloatingPointError(f"the penalised loss became {loss} in iteration {it} of the inner solve")
        trace.append(loss)
        change = abs(previous - loss) / max(abs(loss), 1e-30)
        previous = loss
        if not in_joint and it > 2 and (change < switch_tol or it >= switch_after) and update_decoders and joint_allowed:
            in_joint, mu = True, 1e-3
        elif in_joint and change < tol and not stalled:
            checked, checked_loss = iterate(atoms, gate, params, hyper, Z, grid_points=grid_points, newton_steps=0,
                                            search=True, update_decoders=False)
            if float(checked_loss) < loss - 1e-4 * abs(loss):  # a row jumped: keep solving
                params, previous, in_joint = checked, float(checked_loss), False
                continue
            escaped, escaped_loss = escape_saddles(atoms, gate, params, hyper, Z)  # only when no row jumped
            if float(escaped_loss) < loss - 1e-9 * abs(loss):  # a row left a saddle: keep solving
                params, previous, mu = escaped, float(escaped_loss), 1e-3
            else:
                converged = True
                break
        elif not (update_decoders and joint_allowed) and it > 2 and change < tol:
            converged = True
            break
    parked = park_inactive(atoms, gate, params)  # exact for what only the ARD prior sees; never raises the loss
    parked_loss = float(penalized_loss(atoms, gate, parked, hyper, Z))
    if parked_loss <= previous:
        params, previous = parked, parked_loss
    grad = float(gradient_norm(atoms, gate, params, hyper, Z))
    if converged:
        status = (f"converged: relative change {change:.2g} < tol {tol:g}"
                  + (" under joint Newton steps, and no row gained from the row search"
                     if update_decoders and joint_allowed else ""))
    else:
        status = f"iteration budget reached ({max_iterations}); last relative change {change:.2g}"
    if update_decoders and not joint_allowed:
        status += (" (alternation only, no joint Newton phase: "
                   + (f"its cross blocks would need {joint_memory(gate, params) / 2**30:.3g} GiB)" if joint is None
                      else "joint=False)"))
    return gathered(params) if split else params, SolveReport(previous, it, converged, change, grad, np.asarray(trace), status)


#: fewest rows per device for which the solve splits its rows over devices. Each solve step sums over
#: rows across devices; on two processes of one 2-core machine, sae-circles' quick fit (a few hundred
#: rows) took 152 s split against 19 s on one device, so small problems stay whole on every device.
MIN_ROWS_PER_DEVICE = ROW_CHUNK


def rows_over_devices(Z: Array, params: SaeParams) -> tuple[Array, SaeParams, bool]:
    """Splits the rows (of ``Z``, the logits and the coordinates) over every device, of every process,
    where they divide evenly and each device gets at least :data:`MIN_ROWS_PER_DEVICE`; the decoders,
    offset and thresholds are copied to each. The compiled steps then run on every device's rows,
    with XLA's sums over rows (decoders, the joint Newton step's Schur complement) across devices.
    Otherwise every device (of every process) solves all rows. Returns ``(Z, params, split)``.
    """
    devices, n = jax.device_count(), Z.shape[0]
    if devices == 1 or n % devices or n < devices * MIN_ROWS_PER_DEVICE:
        return Z, params, False
    Z, logits, coords = shard_batch((Z, params.logits, params.coords))
    offset, decoders, thresholds = replicate((params.offset, params.decoders, params.thresholds))
    return Z, SaeParams(offset, decoders, thresholds, logits, coords), True


__all__ = [
    "SolveReport", "decoder_update", "escape_saddles", "grid_points_per_axis", "gradient_norm", "iterate", "joint_newton",
    "projected_gradient", "row_newton", "row_search", "rows_over_devices", "solve", "threshold_update",
]
