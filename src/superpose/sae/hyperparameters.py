"""The hyperparameter block of a manifold SAE: log-strengths in a typed pytree with a flat layout.

A manifold SAE with K atoms carries

- ``log_lambda_sparse``: log of the gate's sparsity strength (or, for the ordered Beta–Bernoulli
  gate with a learnable α, a dimensionless log-α offset that is *not* a penalty strength);
- ``log_lambda_smooth[k]``: log of atom k's decoder-smoothness strength (one per atom);
- ``log_ard[k][j]``: log of the ARD precision α_kj of atom k's latent axis j (d_k per atom; an
  atom with d_k = 0 has no coordinate ARD).

The inner solve always reads the full per-atom table. The ARD *layout* only decides how an outer
optimiser sees it through :meth:`SaeHyperparameters.to_flat` / :meth:`~SaeHyperparameters.from_flat`,
whose layout is ``[log λ_sparse, K × log λ_smooth, ARD block]``:

- ``"per_atom"``: the ARD block is every ``log_ard[k][j]`` in atom order, then axis order
  (Σ_k d_k coordinates);
- ``"shared"``: one coordinate per axis index j < max_k d_k, broadcast to every atom owning axis j
  (max_d coordinates whatever K). ``to_flat`` reads the mean over the owners, which is exact when
  the table is broadcast (it always is after ``from_flat``).

Strengths come out through :func:`superpose.numerics.stable_exp`, so any finite log-strength gives
a finite, positive strength.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from superpose._validation import as_float_array, check_finite, is_concrete
from superpose.numerics import stable_exp

ARD_LAYOUTS = ("per_atom", "shared")


def _check_layout(layout: Any) -> str:
    if layout not in ARD_LAYOUTS:
        raise ValueError(f"ard_layout must be one of {ARD_LAYOUTS}, got {layout!r}")
    return layout


def _check_atom_dims(atom_dims: Any) -> tuple[int, ...]:
    try:
        dims = tuple(atom_dims)
    except TypeError:
        raise TypeError(f"atom_dims must be a sequence of ints (ARD axes per atom), got {atom_dims!r}") from None
    if len(dims) < 1:
        raise ValueError("atom_dims must name at least one atom (K >= 1), got an empty sequence")
    for k, d in enumerate(dims):
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 0:
            raise ValueError(f"atom_dims[{k}] must be an integer >= 0 (ARD axes of atom {k}), got {d!r}")
    return tuple(int(d) for d in dims)


def _float_leaf(name: str, value: Any) -> jax.Array:
    """A finite array in JAX's default float dtype (strongly typed, so jit sees one signature)."""
    array = as_float_array(name, value)
    check_finite(name, array)
    return jnp.asarray(array, dtype=jnp.result_type(float))


def _ard_leaves(value: Any) -> tuple[jax.Array, ...]:
    return tuple(_float_leaf(f"log_ard[{k}]", v) for k, v in enumerate(value))


class SaeHyperparameters(eqx.Module):
    """Log-strengths of a K-atom manifold SAE (a pytree: arrays are leaves; layout and dims static).

    Build it with :meth:`create` (broadcasting, friendly errors); the field constructor takes the
    full table as is. Shapes: ``log_lambda_sparse`` (), ``log_lambda_smooth`` (K,),
    ``log_ard[k]`` (d_k,). Arrays hold JAX's default float dtype (float32 unless float64 is on).
    Construction checks shapes against ``atom_dims`` and, for concrete values, finiteness.
    """

    log_lambda_sparse: Float[Array, ""] = eqx.field(converter=lambda v: _float_leaf("log_lambda_sparse", v))
    log_lambda_smooth: Float[Array, " K"] = eqx.field(converter=lambda v: _float_leaf("log_lambda_smooth", v))
    log_ard: tuple[Float[Array, " d_k"], ...] = eqx.field(converter=_ard_leaves)
    ard_layout: str = eqx.field(static=True, converter=_check_layout)
    atom_dims: tuple[int, ...] = eqx.field(static=True, converter=_check_atom_dims)

    def __check_init__(self) -> None:
        K = len(self.atom_dims)
        if jnp.shape(self.log_lambda_sparse) != ():
            raise ValueError(f"log_lambda_sparse must be a scalar, got shape {jnp.shape(self.log_lambda_sparse)}")
        if jnp.shape(self.log_lambda_smooth) != (K,):
            raise ValueError(
                f"log_lambda_smooth must have shape (K,) = ({K},), one entry per atom, "
                f"got shape {jnp.shape(self.log_lambda_smooth)}"
            )
        if len(self.log_ard) != K:
            raise ValueError(f"log_ard must hold K = {K} per-atom blocks, got {len(self.log_ard)}")
        for k, (block, d) in enumerate(zip(self.log_ard, self.atom_dims)):
            if jnp.shape(block) != (d,):
                raise ValueError(f"log_ard[{k}] (atom {k}) must have shape ({d},), got shape {jnp.shape(block)}")

    def astype(self, dtype: Any) -> SaeHyperparameters:
        """The same strengths in ``dtype`` (the data's): one compiled solve serves hyperparameters
        made inside and outside ``float64_enabled``."""
        if all(leaf.dtype == dtype for leaf in jax.tree_util.tree_leaves(self)):
            return self
        return jax.tree_util.tree_map(lambda leaf: jnp.asarray(leaf, dtype), self)

    # ----------------------------------------------------------------------------------- build
    @classmethod
    def create(
        cls,
        atom_dims: Sequence[int],
        *,
        log_lambda_sparse: Any = 0.0,
        log_lambda_smooth: Any = 0.0,
        log_ard: Any = 0.0,
        ard_layout: str = "per_atom",
    ) -> SaeHyperparameters:
        """Hyperparameters for atoms with ``atom_dims[k]`` ARD axes each (K = len(atom_dims) >= 1).

        Args:
            atom_dims: d_k >= 0 per atom (0: no coordinate ARD for that atom).
            log_lambda_sparse: a scalar.
            log_lambda_smooth: a scalar (broadcast to all K atoms) or K values.
            log_ard: a scalar (broadcast to every axis of every atom); or K per-atom entries, each a
                scalar (broadcast to d_k) or d_k values; or, in the ``"shared"`` layout only, a
                1-D vector of max_k d_k values, value j given to every atom that owns axis j.
                Per-atom entries are accepted in the shared layout too; where the owners of an
                axis disagree, :meth:`to_flat` reads their mean (as the seed does), so the round
                trip is exact only for a broadcast table.
            ard_layout: one of :data:`ARD_LAYOUTS`.
        """
        dims = _check_atom_dims(atom_dims)
        layout = _check_layout(ard_layout)
        K, max_d = len(dims), max(dims)
        smooth = _float_leaf("log_lambda_smooth", log_lambda_smooth)
        if smooth.ndim == 0:
            smooth = jnp.full((K,), smooth)
        elif smooth.shape != (K,):
            raise ValueError(f"log_lambda_smooth must be a scalar or have K = {K} entries, got shape {smooth.shape}")
        return cls(
            log_lambda_sparse=log_lambda_sparse,
            log_lambda_smooth=smooth,
            log_ard=_parse_log_ard(log_ard, dims, max_d, layout),
            ard_layout=layout,
            atom_dims=dims,
        )

    # ------------------------------------------------------------------------------ accessors
    @property
    def num_atoms(self) -> int:
        """K, the number of atoms."""
        return len(self.atom_dims)

    @property
    def max_ard_axes(self) -> int:
        """max_k d_k (0 when no atom has ARD): the number of shared ARD coordinates."""
        return max(self.atom_dims)

    @property
    def flat_size(self) -> int:
        """Length of :meth:`to_flat`: 1 + K + Σ d_k (per_atom) or 1 + K + max_d (shared)."""
        ard = sum(self.atom_dims) if self.ard_layout == "per_atom" else self.max_ard_axes
        return 1 + self.num_atoms + ard

    @property
    def lambda_sparse(self) -> Float[Array, ""]:
        """exp(log_lambda_sparse), clamped finite and positive."""
        return stable_exp(self.log_lambda_sparse)

    @property
    def lambda_smooth(self) -> Float[Array, " K"]:
        """Per-atom smoothness strengths exp(log_lambda_smooth), (K,)."""
        return stable_exp(self.log_lambda_smooth)

    @property
    def ard_precisions(self) -> tuple[Float[Array, " d_k"], ...]:
        """Per-atom ARD precisions α_kj = exp(log_ard[k][j]), a tuple of (d_k,) arrays."""
        return tuple(stable_exp(block) for block in self.log_ard)

    def smoothness_vector(self) -> Float[Array, " K"]:
        """The per-atom λ_smooth vector, (K,) (the same as :attr:`lambda_smooth`)."""
        return self.lambda_smooth

    def check_atoms(self, atom_dims: Sequence[int]) -> None:
        """Raises ValueError unless these hyperparameters fit atoms with ``atom_dims`` ARD axes."""
        dims = _check_atom_dims(atom_dims)
        if len(dims) != self.num_atoms:
            raise ValueError(f"the hyperparameters are for K = {self.num_atoms} atoms, the model has {len(dims)}")
        for k, (mine, theirs) in enumerate(zip(self.atom_dims, dims)):
            if mine != theirs:
                raise ValueError(
                    f"atom {k}: the hyperparameters carry {mine} ARD axes, the model's atom has {theirs}"
                )

    # ---------------------------------------------------------------------------- flat layout
    def _flat_recipe(self) -> str:
        K = self.num_atoms
        if self.ard_layout == "per_atom":
            return f"1 + K + Σ d_k = 1 + {K} + {sum(self.atom_dims)} (d_k = {list(self.atom_dims)})"
        return f"1 + K + max_d = 1 + {K} + {self.max_ard_axes} (d_k = {list(self.atom_dims)})"

    def to_flat(self) -> Float[Array, " F"]:
        """``[log λ_sparse, log λ_smooth[0..K), ARD block]``, length :attr:`flat_size`."""
        leaves = (self.log_lambda_sparse, self.log_lambda_smooth, *self.log_ard)
        xp = _namespace(*leaves)
        sparse, smooth, *blocks = (xp.asarray(leaf) for leaf in leaves)
        if self.ard_layout == "per_atom":
            ard = blocks
        else:
            ard = []
            for j in range(self.max_ard_axes):
                owners = xp.stack([block[j] for block in blocks if block.shape[0] > j])
                # Exact read-back when the owners agree (always, after from_flat); else their mean.
                value = xp.where(xp.all(owners == owners[0]), owners[0], xp.mean(owners))
                ard.append(xp.reshape(value, (1,)))
        flat = xp.concatenate([xp.reshape(sparse, (1,)), smooth, *ard]).astype(smooth.dtype)
        return jnp.asarray(flat)

    def from_flat(self, flat: Float[Array, " F"]) -> SaeHyperparameters:
        """The inverse of :meth:`to_flat`: same layout and atom dims, values from ``flat``.

        Raises ValueError for a wrong length (naming how the length is made up) or, for a
        concrete vector, NaN/inf. Works under ``jit`` (the length is static).
        """
        flat = as_float_array("flat", flat)
        if flat.shape != (self.flat_size,):
            raise ValueError(
                f"from_flat needs a vector of length {self.flat_size} = {self._flat_recipe()} "
                f"in the {self.ard_layout!r} layout, got shape {flat.shape}"
            )
        check_finite("flat", flat)
        values = np.asarray(flat) if is_concrete(flat) else flat
        K = self.num_atoms
        if self.ard_layout == "per_atom":
            ends = np.cumsum((1 + K,) + self.atom_dims)
            blocks = [values[end - d : end] for end, d in zip(ends[1:], self.atom_dims)]
        else:
            blocks = [values[1 + K : 1 + K + d] for d in self.atom_dims]
        sparse, smooth = values[0], values[1 : 1 + K]
        return SaeHyperparameters(
            log_lambda_sparse=sparse,
            log_lambda_smooth=smooth,
            log_ard=tuple(blocks),
            ard_layout=self.ard_layout,
            atom_dims=self.atom_dims,
        )

    def describe_flat(self) -> list[str]:
        """A name for each coordinate of :meth:`to_flat`, in order."""
        names = ["log_lambda_sparse"] + [f"log_lambda_smooth[{k}]" for k in range(self.num_atoms)]
        if self.ard_layout == "per_atom":
            names += [f"log_ard[{k}][{j}]" for k, d in enumerate(self.atom_dims) for j in range(d)]
        else:
            names += [f"log_ard_shared[{j}]" for j in range(self.max_ard_axes)]
        return names

    # ----------------------------------------------------------------------------------- JSON
    def to_json(self) -> dict:
        """A plain dict (floats, lists, strings) for json.dump; :meth:`from_json` reads it back."""
        if not is_concrete(self.log_lambda_sparse, self.log_lambda_smooth, *self.log_ard):
            raise TypeError("to_json needs concrete values; call it outside jit")
        return {
            "log_lambda_sparse": float(self.log_lambda_sparse),
            "log_lambda_smooth": [float(v) for v in np.asarray(self.log_lambda_smooth)],
            "log_ard": [[float(v) for v in np.asarray(block)] for block in self.log_ard],
            "ard_layout": self.ard_layout,
            "atom_dims": list(self.atom_dims),
        }

    @classmethod
    def from_json(cls, data: dict) -> SaeHyperparameters:
        """Rebuilds hyperparameters from :meth:`to_json`'s dict (validated)."""
        keys = ("log_lambda_sparse", "log_lambda_smooth", "log_ard", "ard_layout", "atom_dims")
        if not isinstance(data, dict):
            raise TypeError(f"from_json needs a dict, got {type(data).__name__}")
        missing = [key for key in keys if key not in data]
        if missing:
            raise ValueError(f"from_json: the dict lacks {missing}; it needs {list(keys)}")
        dims = _check_atom_dims(data["atom_dims"])
        if len(data["log_ard"]) != len(dims):
            raise ValueError(f"from_json: log_ard has {len(data['log_ard'])} blocks for {len(dims)} atoms")
        return cls(
            log_lambda_sparse=data["log_lambda_sparse"],
            log_lambda_smooth=data["log_lambda_smooth"],
            log_ard=tuple(np.asarray(block, dtype=float).reshape(-1) for block in data["log_ard"]),
            ard_layout=data["ard_layout"],
            atom_dims=dims,
        )


def _namespace(*arrays: Any):
    """NumPy for concrete arrays (no per-shape XLA compiles), jax.numpy under tracing."""
    return np if is_concrete(*arrays) else jnp


def _is_scalar(value: Any) -> bool:
    if hasattr(value, "ndim"):
        return value.ndim == 0
    return not isinstance(value, (Sequence, np.ndarray))


def _parse_log_ard(value: Any, dims: tuple[int, ...], max_d: int, layout: str) -> tuple[jax.Array, ...]:
    """Expands ``create``'s log_ard argument into K blocks of shapes (d_k,)."""
    K = len(dims)
    if _is_scalar(value):
        v = _float_leaf("log_ard", value)
        return tuple(jnp.full((d,), v) for d in dims)
    try:
        vector = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        vector = None  # ragged per-atom blocks
    if layout == "shared" and vector is not None and vector.ndim == 1:
        if vector.shape[0] != max_d:
            raise ValueError(
                f"in the shared layout a 1-D log_ard gives one value per axis index, so it needs "
                f"max_d = {max_d} entries; got {vector.shape[0]}"
            )
        per_axis = _float_leaf("log_ard", value)
        return tuple(per_axis[:d] for d in dims)
    if len(value) != K:
        raise ValueError(
            f"log_ard must be a scalar or hold K = {K} per-atom entries"
            + (f" (or, shared layout, max_d = {max_d} per-axis values)" if layout == "shared" else "")
            + f"; got {len(value)} entries"
        )
    blocks = []
    for k, (entry, d) in enumerate(zip(value, dims)):
        block = _float_leaf(f"log_ard[{k}]", entry)
        if block.ndim == 0 and _is_scalar(entry):
            block = jnp.full((d,), block)
        elif block.shape != (d,):
            raise ValueError(
                f"log_ard[{k}] (atom {k}) must be a scalar or have d_{k} = {d} entries, got shape {block.shape}"
            )
        blocks.append(block)
    return tuple(blocks)


def _sparse_is_penalty_strength(gate: Any) -> bool:
    if isinstance(gate, (bool, np.bool_)):
        return bool(gate)
    flag = getattr(gate, "sparse_is_penalty_strength", None)
    if not isinstance(flag, (bool, np.bool_)):
        raise TypeError(
            "gate must be a bool or an object with a bool attribute `sparse_is_penalty_strength`, "
            f"got {type(gate).__name__}"
        )
    return bool(flag)


def seed_from_dispersion(hyperparameters: SaeHyperparameters, dispersion: Any, gate: Any) -> SaeHyperparameters:
    """Adds log φ to every penalty strength so that each seeded λ/φ is dimensionless.

    The Gaussian data fit is in squared output units while the strengths are absolute, so
    shifting every log-strength by log φ (φ the reconstruction dispersion) puts them on the data's
    scale. The sparse coordinate is shifted only when the gate's sparse parameter is a penalty
    strength (``gate.sparse_is_penalty_strength``, or ``gate`` itself as a bool); the ordered
    Beta–Bernoulli gate's learnable log-α offset is dimensionless and stays put.

    Raises ValueError for a concrete φ that is not finite and > 0 (a traced φ is not checked).
    """
    if not isinstance(hyperparameters, SaeHyperparameters):
        raise TypeError(f"hyperparameters must be SaeHyperparameters, got {type(hyperparameters).__name__}")
    scale_sparse = _sparse_is_penalty_strength(gate)
    phi = as_float_array("dispersion", dispersion)
    if phi.ndim != 0:
        raise ValueError(f"dispersion must be a scalar, got shape {phi.shape}")
    if is_concrete(phi):
        value = float(phi)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"dispersion must be finite and > 0, got {value!r}")
    shift = jnp.log(phi)
    return SaeHyperparameters(
        log_lambda_sparse=hyperparameters.log_lambda_sparse + (shift if scale_sparse else 0.0),
        log_lambda_smooth=hyperparameters.log_lambda_smooth + shift,
        log_ard=tuple(block + shift for block in hyperparameters.log_ard),
        ard_layout=hyperparameters.ard_layout,
        atom_dims=hyperparameters.atom_dims,
    )
