"""The arrow-shaped Hessian of the penalised loss, block by block.

The parameters split into global ones ``G`` (offset, decoders and, for the threshold gate, the
thresholds; P numbers) and per-row ones ``r_i = (ℓ_i, t_i)`` (q = K + Σ_k d_k numbers each). Row
i's parameters meet only their own row's loss and ``G``, so the Hessian is an arrow:

    H = [[H_GG, H_G1, …, H_GN], [H_1G, H_11, 0, …], …, [H_NG, 0, …, H_NN]].

Eliminating the row blocks leaves the Schur complement
``S_G = H_GG − Σ_i H_Gi H_ii⁻¹ H_iG`` (P × P), and

    log|H| = Σ_i log|H_ii| + log|S_G|,

which costs N small q × q factorisations and one P × P one instead of a dense
(P + Nq)² matrix. This is what a Laplace / REML criterion needs (superpose.sae, part 2).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float

from superpose.sae.gates import Gate
from superpose.sae.objective import SaeParams, decoder_penalty_matrix, design_matrix, penalized_loss, row_loss


def global_vector(gate: Gate, params: SaeParams):
    """(flat global parameters G, the function that rebuilds their pytree from a flat vector)."""
    leaves = (params.offset, params.decoders, params.thresholds) if gate.learns_thresholds else (
        params.offset, params.decoders)
    return ravel_pytree(leaves)


def with_globals(gate: Gate, params: SaeParams, values) -> SaeParams:
    if gate.learns_thresholds:
        offset, decoders, thresholds = values
        return params._replace(offset=offset, decoders=decoders, thresholds=thresholds)
    offset, decoders = values
    return params._replace(offset=offset, decoders=decoders)


class ArrowBlocks(NamedTuple):
    """The blocks of the Hessian of ℓ_pen (N rows, q per-row and P global parameters)."""

    rows: Float[Array, "N q q"]  # H_ii
    cross: Float[Array, "N q P"]  # H_iG
    globals_: Float[Array, "P P"]  # H_GG


@functools.partial(jax.jit, static_argnames=("atoms", "gate"))
def arrow_blocks(atoms, gate: Gate, params: SaeParams, hyper, Z: Float[Array, "N p"]) -> ArrowBlocks:
    """Every block of the Hessian, exactly, without forming the dense Hessian.

    Row blocks and cross blocks come from autodiff of one row's loss (q forward passes each);
    the decoders' block is ``(XᵀX + blockdiag(0, λ_k S_k)) ⊗ I_p`` because the model is linear in
    them, and the thresholds' rows and columns (threshold gate only) are K forward passes.
    """
    flat, unravel = global_vector(gate, params)
    K = params.logits.shape[1]

    def row(g, z, r):
        q = with_globals(gate, params, unravel(g))
        return row_loss(atoms, gate, q, hyper, z, r[:K], r[K:])

    rows = jnp.concatenate([params.logits, params.coords], axis=1)
    H_rr = jax.vmap(jax.hessian(row, argnums=2), in_axes=(None, 0, 0))(flat, Z, rows)
    H_Gr = jax.vmap(jax.jacfwd(jax.grad(row, argnums=0), argnums=2), in_axes=(None, 0, 0))(flat, Z, rows)
    X = design_matrix(atoms, gate, params)
    gram = X.T @ X + decoder_penalty_matrix(atoms, hyper.log_lambda_smooth, X.dtype)
    H_WW = jnp.kron(gram, jnp.eye(Z.shape[1], dtype=X.dtype))
    if gate.learns_thresholds:
        n_theta = params.thresholds.shape[0]

        def total(g):
            return penalized_loss(atoms, gate, with_globals(gate, params, unravel(g)), hyper, Z)

        def grad_at_theta(theta):
            return jax.grad(total)(jnp.concatenate([flat[:-n_theta], theta]))

        H_Gtheta = jax.jacfwd(grad_at_theta)(flat[-n_theta:])  # (P, K)
        H_GG = jnp.zeros((flat.shape[0],) * 2, X.dtype).at[:-n_theta, :-n_theta].set(H_WW)
        H_GG = H_GG.at[:, -n_theta:].set(H_Gtheta).at[-n_theta:, :].set(H_Gtheta.T)
    else:
        H_GG = H_WW
    return ArrowBlocks(H_rr, jnp.swapaxes(H_Gr, 1, 2), H_GG)


class RowFactor(NamedTuple):
    """The eigendecomposition of every row block ``H_ii = V diag(w) Vᵀ``.

    Every solve with, and inverse of, the row blocks is read from this one batched LAPACK call.
    jaxlib 0.10's batched CPU kernels deadlock XLA's thread pool when two of them run at once
    (see :mod:`superpose`), so a compiled function here makes at most one, and the rest of its
    linear algebra (einsums and single P × P matrices) depends on it.
    """

    values: Float[Array, "N q"]  # ascending
    vectors: Float[Array, "N q q"]


def factor_rows(rows: Float[Array, "N q q"]) -> RowFactor:
    """One batched symmetric eigendecomposition of the row blocks."""
    values, vectors = jnp.linalg.eigh(rows)
    return RowFactor(values, vectors)


def solve_rows(factor: RowFactor, rhs: Float[Array, "N q m"]) -> Float[Array, "N q m"]:
    """``H_ii⁻¹ rhs_i`` for every row (the blocks must be invertible)."""
    projected = jnp.einsum("nab,nam->nbm", factor.vectors, rhs) / factor.values[..., None]
    return jnp.einsum("nab,nbm->nam", factor.vectors, projected)


def invert_rows(factor: RowFactor) -> Float[Array, "N q q"]:
    """``H_ii⁻¹`` for every row."""
    return jnp.einsum("nab,nb,ncb->nac", factor.vectors, 1.0 / factor.values, factor.vectors)


def eliminate_rows(blocks: ArrowBlocks, factor: RowFactor) -> tuple[Float[Array, "N q P"], Float[Array, "P P"]]:
    """``(H_ii⁻¹ H_iG for every row, S_G = H_GG − Σ_i H_Gi H_ii⁻¹ H_iG)``: the row blocks eliminated once."""
    solved = solve_rows(factor, blocks.cross)  # (N, q, P)
    return solved, blocks.globals_ - jnp.einsum("nqp,nqr->pr", blocks.cross, solved)


def schur_complement(blocks: ArrowBlocks, factor: RowFactor | None = None) -> Float[Array, "P P"]:
    """``S_G = H_GG − Σ_i H_Gi H_ii⁻¹ H_iG`` (every H_ii must be invertible)."""
    return eliminate_rows(blocks, factor_rows(blocks.rows) if factor is None else factor)[1]


class InverseBlocks(NamedTuple):
    """The blocks of H⁻¹ that a Fellner–Schall update reads (the off-diagonal ones are never formed)."""

    rows: Float[Array, "N q q"]  # (H⁻¹)_ii = H_ii⁻¹ + X_i S_G⁻¹ X_iᵀ, X_i = H_ii⁻¹ H_iG
    globals_: Float[Array, "P P"]  # (H⁻¹)_GG = S_G⁻¹


def inverse_blocks(blocks: ArrowBlocks) -> InverseBlocks:
    """The diagonal blocks of H⁻¹ from the arrow structure (H must be invertible)."""
    factor = factor_rows(blocks.rows)
    X, schur = eliminate_rows(blocks, factor)
    schur_inverse = jnp.linalg.inv(schur)
    return InverseBlocks(invert_rows(factor) + jnp.einsum("nap,pr,nbr->nab", X, schur_inverse, X), schur_inverse)


class ArrowSpectra(NamedTuple):
    """The eigenvalues that ``log|H|`` and the positive-definiteness checks are read from."""

    rows: Float[Array, "N q"]  # of each H_ii, ascending
    schur: Float[Array, " P"]  # of S_G, ascending


def arrow_spectra(blocks: ArrowBlocks, factor: RowFactor | None = None,
                  schur: Float[Array, "P P"] | None = None) -> ArrowSpectra:
    """The row blocks' eigenvalues (from ``factor``) and one eigendecomposition of the Schur complement
    (``schur`` where the caller has formed it already)."""
    factor = factor_rows(blocks.rows) if factor is None else factor
    schur = schur_complement(blocks, factor) if schur is None else schur
    return ArrowSpectra(factor.values, jnp.linalg.eigvalsh(schur))


def log_abs_det(eigenvalues: Array) -> Array:
    """``log|det|`` of symmetric matrices from their eigenvalues (last axis)."""
    return jnp.sum(jnp.log(jnp.abs(eigenvalues)), axis=-1)


class LogDeterminant(NamedTuple):
    """``log|H|`` from the arrow structure, with what it is made of."""

    sign: Float[Array, ""]  # +1 when H is positive definite at an optimum
    log_abs: Float[Array, ""]  # log |det H| = Σ_i log|H_ii| + log|S_G|
    row_log_abs: Float[Array, " N"]  # log |det H_ii|
    row_positive_definite: Float[Array, " N"]  # bool: the smallest eigenvalue of H_ii is > 0
    schur_log_abs: Float[Array, ""]


@functools.partial(jax.jit, static_argnames=("atoms", "gate"))
def log_det_hessian(atoms, gate: Gate, params: SaeParams, hyper, Z: Float[Array, "N p"]) -> LogDeterminant:
    """``log|H|`` of the penalised loss's Hessian through its row blocks and Schur complement."""
    spectra = arrow_spectra(arrow_blocks(atoms, gate, params, hyper, Z))
    row_logdet, schur_logdet = log_abs_det(spectra.rows), log_abs_det(spectra.schur)
    sign = jnp.prod(jnp.sign(spectra.rows)) * jnp.prod(jnp.sign(spectra.schur))
    return LogDeterminant(sign, jnp.sum(row_logdet) + schur_logdet, row_logdet, spectra.rows[:, 0] > 0, schur_logdet)


__all__ = [
    "ArrowBlocks", "ArrowSpectra", "InverseBlocks", "RowFactor", "eliminate_rows", "factor_rows", "invert_rows",
    "solve_rows", "inverse_blocks", "LogDeterminant", "arrow_blocks", "arrow_spectra", "log_abs_det",
    "global_vector", "log_det_hessian", "schur_complement", "with_globals",
]
