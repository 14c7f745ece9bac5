"""DrDAM: K memories compressed into one fixed-size vector T of random features.

``T = Σ_μ φ(ξ^μ)`` (Hoover et al., NeurIPS 2024). The approximate energy

    Ẽ_β(v; T) = −(1/β) log ⟨φ(v), T⟩

approximates :func:`~superpose.memory.lse_energy` without the memories: its cost is O(Y·D) per
state, whatever K is. Trigonometric features can make ``⟨φ(v), T⟩ ≤ 0`` far from every memory
(the estimate is noisy where the true kernel sum is tiny), so the log is taken of
``max(⟨φ(v), T⟩, floor)``; :meth:`DistributedMemory.floor_hits` reports where that happened,
and the gradient there is 0. Positive features are summed in log space, so their sum is never
≤ 0, but the same floor applies to it: where log⟨φ(v), T⟩ falls below log(floor) (far from
every memory at large β) the energy is clipped there too and ``floor_hits`` says so.

The Y×D projection is either stored or regenerated from the key, chunk by chunk, inside the
jitted computation (memory O(Y + chunk·D) instead of O(Y·D)).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from superpose import _xla
from superpose._xla import WIDE_VECTORS
from superpose._validation import is_concrete
from superpose.memory._checks import check_beta, memories_array, positive_int, states_array
from superpose.memory.energies import BatchedEnergy
from superpose.memory.features import FEATURE_MAPS, PARTS, chunk_features, phase_chunk, projection_chunk
from superpose.numerics import sincos
from superpose.numerics.precision import MATMUL_PRECISIONS, matmul_at
from superpose.parallel import distribute, gathered

#: "auto" stores the projection when it takes at most this many bytes (512 MiB).
AUTO_STORE_BYTES = 512 * 2**20
PROJECTIONS = ("auto", "stored", "regenerated")


def _typed_key(key: Any) -> jax.Array:
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    if key.dtype == jnp.uint32 and key.shape == (2,):
        return jax.random.wrap_key_data(key)
    raise TypeError(f"key must be a JAX PRNG key (jax.random.key(seed)), got dtype {key.dtype}, shape {key.shape}")


class DistributedMemory(eqx.Module):
    """The distributed representation ``T`` of a set of memories, with its feature map.

    Build one with :meth:`create` (empty) or :meth:`from_memories`; write with :meth:`add`,
    :meth:`forget` and :meth:`merge` (each returns a new memory). Every array method takes states
    of shape ``(..., D)``.

    Attributes:
        T: shape ``(parts, Y)``: the feature sum (``parts`` is 2 for ``"sincos"`` and
            ``"positive"``, 1 for ``"cos"``). For ``"positive"`` it holds ``log T``.
        key: the PRNG key the projection is generated from.
        count: how many memories were written (adds minus forgets).
        omega: the stored projection, shape ``(chunks·chunk, D)``, or None when regenerated.
    """

    T: Float[Array, "parts Y"]
    key: jax.Array
    count: Int[Array, ""]
    omega: Float[Array, "Yp D"] | None
    dim: int = eqx.field(static=True)
    num_features: int = eqx.field(static=True)
    beta: float = eqx.field(static=True)
    feature_map: str = eqx.field(static=True)
    orthogonal: bool = eqx.field(static=True)
    chunk: int = eqx.field(static=True)
    floor: float = eqx.field(static=True)
    precision: str = eqx.field(static=True, default="highest")

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        key: jax.Array,
        dim: int,
        num_features: int,
        beta: float,
        *,
        feature_map: str = "sincos",
        orthogonal: bool = False,
        projection: str = "auto",
        chunk: int = 2048,
        floor: float = 1e-10,
        dtype: Any = jnp.float32,
        precision: str = "highest",
    ) -> DistributedMemory:
        """An empty memory (T = 0).

        Args:
            key: PRNG key of the projection (and phases); memories built with the same key can
                be merged.
            dim: D, the dimension of memories and states.
            num_features: Y, the number of random directions (φ has ``parts·Y`` entries).
            beta: the inverse temperature β > 0 of the kernel ``exp(−β/2 ‖x − y‖²)``.
            feature_map: ``"sincos"`` (default), ``"cos"`` or ``"positive"``.
            orthogonal: orthogonal random features (blocks of D orthogonal directions).
            projection: ``"stored"``, ``"regenerated"``, or ``"auto"``: stored when the
                projection takes at most 512 MiB (:data:`AUTO_STORE_BYTES`).
            chunk: directions processed at once; memory grows as ``chunk·(D + batch)``.
            floor: the smallest kernel sum the log is taken of (trigonometric maps).
            dtype: float dtype of T and the projection.
            precision: of the float32 products with the projection: ``"highest"`` (default: full
                float32 on every backend) or ``"default"`` (the backend's fastest: TF32 on NVIDIA
                GPUs since Ampere, whose 10-bit mantissa errs by about 10⁻³·|h| in each random-feature
                angle h = √β ω·v; on CPUs the same as ``"highest"``). docs/memory.md says when
                ``"default"`` is safe.
        """
        dim = positive_int(dim, "dim")
        num_features = positive_int(num_features, "num_features (Y)")
        check_beta(beta)
        if feature_map not in FEATURE_MAPS:
            raise ValueError(f"feature_map must be one of {FEATURE_MAPS}, got {feature_map!r}")
        if projection not in PROJECTIONS:
            raise ValueError(f"projection must be one of {PROJECTIONS}, got {projection!r}")
        chunk = min(positive_int(chunk, "chunk"), num_features)
        if not (isinstance(floor, (int, float)) and 0 < floor < 1):
            raise ValueError(f"floor must be a number in (0, 1), got {floor!r}")
        if precision not in MATMUL_PRECISIONS:
            raise ValueError(f"precision must be one of {tuple(MATMUL_PRECISIONS)}, got {precision!r}")
        dtype = jnp.dtype(dtype)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(f"dtype must be a float dtype, got {dtype}")
        key = _typed_key(key)
        n_chunks = -(-num_features // chunk)
        nbytes = projection_bytes(n_chunks * chunk, dim, dtype)
        store = projection == "stored" or (projection == "auto" and nbytes <= AUTO_STORE_BYTES)
        omega = None
        if store:
            omega = _stored_projection(jax.random.split(key)[0], n_chunks=n_chunks, chunk=chunk, dim=dim,
                                       orthogonal=bool(orthogonal), dtype=dtype)
        parts = PARTS[feature_map]
        empty = jnp.full((parts, num_features), -jnp.inf if feature_map == "positive" else 0.0, dtype)
        return cls(empty, key, jnp.asarray(0, jnp.int32), omega, dim, num_features, float(beta), feature_map,
                   bool(orthogonal), chunk, float(floor), precision)

    @classmethod
    def from_memories(cls, memories: Float[Array, "K D"], key: jax.Array, num_features: int, beta: float,
                      **options: Any) -> DistributedMemory:
        """``create(...)`` then ``add(memories)``; options are those of :meth:`create`."""
        xi = memories_array(memories)
        return cls.create(key, xi.shape[1], num_features, beta, **options).add(xi)

    # -- properties -----------------------------------------------------------------------
    @property
    def stored(self) -> bool:
        """True when the projection is held in memory."""
        return self.omega is not None

    @property
    def num_chunks(self) -> int:
        """How many chunks of directions the projection is split into."""
        return -(-self.num_features // self.chunk)

    @property
    def feature_size(self) -> int:
        """The length of φ(x): ``parts·Y``."""
        return PARTS[self.feature_map] * self.num_features

    # -- writing --------------------------------------------------------------------------
    def add(self, memories: Float[Array, "K D"], batch: int = 4096) -> DistributedMemory:
        """Adds memories to T, streaming them ``batch`` at a time (K = 10⁶ needs no K×Y array)."""
        xi = memories_array(memories).astype(self.T.dtype)
        self._check_dim(xi.shape[1])
        total = self._feature_sum(xi, positive_int(batch, "batch"))
        if self.feature_map == "positive":
            t = jnp.logaddexp(self.T, total)
        else:
            t = self.T + total
        return eqx.tree_at(lambda m: (m.T, m.count), self, (t, self.count + xi.shape[0]))

    def forget(self, memories: Float[Array, "K D"], batch: int = 4096) -> DistributedMemory:
        """Subtracts memories from T (exactly undoes :meth:`add` of the same memories, up to rounding).

        Raises ValueError when K exceeds :attr:`count`, the memories written so far (checked when
        ``count`` is concrete; under ``jit`` it is not).
        """
        xi = memories_array(memories).astype(self.T.dtype)
        self._check_dim(xi.shape[1])
        if is_concrete(self.count) and xi.shape[0] > int(self.count):
            raise ValueError(
                f"cannot forget {xi.shape[0]} memories: this memory holds {int(self.count)} "
                "(forget at most as many as were added)"
            )
        total = self._feature_sum(xi, positive_int(batch, "batch"))
        if self.feature_map == "positive":
            # log(e^a − e^b) = a + log(−expm1(b − a)); forgetting more than was stored gives −inf
            a, b = self.T, total
            ok = b < a
            t = jnp.where(ok, a + jnp.log(-jnp.expm1(jnp.where(ok, b - a, -1.0))), -jnp.inf)
        else:
            t = self.T - total
        return eqx.tree_at(lambda m: (m.T, m.count), self, (t, self.count - xi.shape[0]))

    def merge(self, other: DistributedMemory) -> DistributedMemory:
        """The memory holding both sets of memories.

        Both must be built with the same key and the same settings (dim, Y, β, feature map,
        orthogonal, chunk, floor, dtype, projection mode: stored or regenerated, and product
        precision); any
        difference raises ValueError naming it.
        """
        if not isinstance(other, DistributedMemory):
            raise TypeError(f"can only merge another DistributedMemory, got {type(other).__name__}")
        names = ("dim", "Y", "beta", "feature_map", "orthogonal", "chunk", "floor", "dtype", "projection",
                 "precision")
        mine, theirs = self._settings(), other._settings()
        differ = [f"{n}: {a!r} vs {b!r}" for n, a, b in zip(names, mine, theirs) if a != b]
        if differ:
            raise ValueError("cannot merge memories with different settings (" + "; ".join(differ) + ")")
        if not bool(jnp.all(jax.random.key_data(self.key) == jax.random.key_data(other.key))):
            raise ValueError(
                "cannot merge memories built with different keys: their random features differ, so "
                "their T vectors live in different spaces"
            )
        t = jnp.logaddexp(self.T, other.T) if self.feature_map == "positive" else self.T + other.T
        return eqx.tree_at(lambda m: (m.T, m.count), self, (t, self.count + other.count))

    # -- reading --------------------------------------------------------------------------
    def features(self, states: Float[Array, "... D"]) -> Float[Array, "... F"]:
        """φ(states), shape ``(..., parts·Y)``; for moderate Y (it is Y wide)."""
        v = self._states(states)
        flat = v.reshape(-1, self.dim)
        phi = _features(self, flat)
        if self.feature_map == "positive":
            phi = jnp.exp(phi)
        return phi.reshape(*v.shape[:-1], self.feature_size)

    def kernel_sum(self, states: Float[Array, "... D"]) -> Float[Array, "..."]:
        """``⟨φ(v), T⟩``, the estimate of ``Σ_μ exp(−β/2 ‖v − ξ^μ‖²)``, unclipped (may be <= 0)."""
        v = self._states(states)
        s = _kernel_sum(self, v.reshape(-1, self.dim))
        s = jnp.exp(s) if self.feature_map == "positive" else s
        return s.reshape(v.shape[:-1])

    def floor_hits(self, states: Float[Array, "... D"]) -> Bool[Array, "..."]:
        """True where the kernel sum is at or below the floor, so the energy was clipped.

        :meth:`energy` and :meth:`energy_and_grad` return the same flags from their own pass
        with ``with_floor_hits=True``; use that rather than a second pass.
        """
        v = self._states(states)
        _, _, clipped = _energy_and_grad_over_devices(self, v.reshape(-1, self.dim), False)
        return clipped.reshape(v.shape[:-1])

    def energy(self, states: Float[Array, "... D"], with_floor_hits: bool = False):
        """``Ẽ_β(v; T) = −(1/β) log max(⟨φ(v), T⟩, floor)``, shape ``(...)``.

        With ``with_floor_hits=True`` returns ``(energy, floor_hits)`` from the same pass.
        """
        v = self._states(states)
        e, _, clipped = _energy_and_grad_over_devices(self, v.reshape(-1, self.dim), False)
        e, clipped = e.reshape(v.shape[:-1]), clipped.reshape(v.shape[:-1])
        return (e, clipped) if with_floor_hits else e

    def energy_and_grad(self, states: Float[Array, "... D"], with_floor_hits: bool = False):
        """Ẽ and ∇_v Ẽ in one pass over the directions (two Y×D products per state).

        With ``with_floor_hits=True`` returns ``(energy, grad, floor_hits)`` from the same pass.
        """
        v = self._states(states)
        e, g, clipped = _energy_and_grad_over_devices(self, v.reshape(-1, self.dim), True)
        out = (e.reshape(v.shape[:-1]), g.reshape(v.shape))
        return (*out, clipped.reshape(v.shape[:-1])) if with_floor_hits else out

    # -- helpers --------------------------------------------------------------------------
    def _settings(self) -> tuple:
        projection = "stored" if self.stored else "regenerated"
        return (self.dim, self.num_features, self.beta, self.feature_map, self.orthogonal, self.chunk,
                self.floor, str(self.T.dtype), projection, self.precision)

    def _check_dim(self, d: int) -> None:
        if d != self.dim:
            raise ValueError(f"memories have D = {d}, but this memory was built for D = {self.dim}")

    def _states(self, states: Any) -> jax.Array:
        return states_array(states, self.dim).astype(self.T.dtype)

    def _feature_sum(self, xi: jax.Array, batch: int) -> jax.Array:
        batch = min(batch, xi.shape[0])
        total = None
        for start in range(0, xi.shape[0], batch):
            block = xi[start:start + batch]
            valid = jnp.arange(batch) < block.shape[0]
            if block.shape[0] < batch:  # pad the last block so every call has one shape
                block = jnp.concatenate([block, jnp.zeros((batch - block.shape[0], self.dim), block.dtype)])
            part = _sum_features(self, block, valid)
            if total is None:
                total = part
            elif self.feature_map == "positive":
                total = jnp.logaddexp(total, part)
            else:
                total = total + part
        return total


def _chunk_inputs(memory: DistributedMemory, c: jax.Array) -> tuple[jax.Array, jax.Array | None]:
    k_omega, k_phase = jax.random.split(memory.key)
    if memory.omega is not None:
        omega = jax.lax.dynamic_slice_in_dim(memory.omega, c * memory.chunk, memory.chunk)
    else:
        omega = projection_chunk(k_omega, c, memory.chunk, memory.dim, memory.orthogonal, memory.T.dtype)
    phase = phase_chunk(k_phase, c, memory.chunk, memory.T.dtype) if memory.feature_map == "cos" else None
    return omega, phase


def _padded_T(memory: DistributedMemory) -> jax.Array:
    parts, y = memory.T.shape
    pad = memory.num_chunks * memory.chunk - y
    fill = -jnp.inf if memory.feature_map == "positive" else 0.0
    t = jnp.concatenate([memory.T, jnp.full((parts, pad), fill, memory.T.dtype)], axis=1)
    return jnp.swapaxes(t.reshape(parts, memory.num_chunks, memory.chunk), 0, 1)


@eqx.filter_jit
def _sum_features(memory: DistributedMemory, block: jax.Array, valid: jax.Array) -> jax.Array:
    """Σ over the valid rows of φ(block) (log-sum for "positive"), shape (parts, Y)."""

    def one_chunk(c):
        omega, phase = _chunk_inputs(memory, c)
        phi = chunk_features(memory.feature_map, block, omega, phase, memory.beta, memory.num_features,
                             memory.precision)
        if memory.feature_map == "positive":
            return jax.nn.logsumexp(jnp.where(valid[None, :, None], phi, -jnp.inf), axis=1)
        return jnp.sum(jnp.where(valid[None, :, None], phi, 0.0), axis=1)

    out = jax.lax.map(one_chunk, jnp.arange(memory.num_chunks))  # (chunks, parts, C)
    parts = out.shape[1]
    return jnp.swapaxes(out, 0, 1).reshape(parts, -1)[:, : memory.num_features]


@eqx.filter_jit
def _features(memory: DistributedMemory, states: jax.Array) -> jax.Array:
    def one_chunk(c):
        omega, phase = _chunk_inputs(memory, c)
        return chunk_features(memory.feature_map, states, omega, phase, memory.beta, memory.num_features,
                              memory.precision)

    out = jax.lax.map(one_chunk, jnp.arange(memory.num_chunks))  # (chunks, parts, B, C)
    out = jnp.moveaxis(out, 2, 0)  # (B, chunks, parts, C)
    b, _, parts, _ = out.shape
    out = jnp.swapaxes(out, 1, 2).reshape(b, parts, -1)[:, :, : memory.num_features]
    return out.reshape(b, -1)


#: on accelerators a pass step holds at most this many (state, direction) pairs and this many
#: projection entries (64 Mi float32 each, 256 MiB), which keeps regeneration's memory bounded.
ACCELERATOR_STEP_ENTRIES = 2**26


def _chunks_per_step(memory: DistributedMemory, batch: int) -> int:
    """Generated chunks of directions per step of a pass: one on CPU, where a chunk is sized for the
    cache; on a GPU as many as fit in :data:`ACCELERATOR_STEP_ENTRIES`, since a long sequence of
    small steps leaves it idle (measured on an H100: 1.7× slower at D = 30, Y = 10⁵)."""
    if jax.default_backend() == "cpu":
        return 1
    per_chunk = memory.chunk * max(batch, memory.dim)
    return max(1, min(memory.num_chunks, ACCELERATOR_STEP_ENTRIES // per_chunk))


@functools.partial(_xla.jit, cpu_options=WIDE_VECTORS, static_argnames="want_grad")
def _pass(memory: DistributedMemory, states: jax.Array, want_grad: bool) -> tuple[jax.Array, jax.Array | None]:
    """One pass over the directions: (kernel sum, its gradient) or, for "positive", (log sum, its gradient)."""
    b, d = states.shape
    dtype = states.dtype
    matmul = matmul_at(memory.precision)
    sqrt_beta = jnp.sqrt(jnp.asarray(memory.beta, dtype))
    t_chunks = _padded_T(memory)

    if memory.feature_map == "positive":

        def step(carry, xs):
            top, total, weighted = carry
            c, t = xs
            omega, _ = _chunk_inputs(memory, c)
            logphi = chunk_features("positive", states, omega, None, memory.beta, memory.num_features,
                                    memory.precision)
            logits = logphi + t[:, None, :]  # (2, B, C)
            new_top = jnp.maximum(top, jnp.max(logits, axis=(0, 2)))
            safe_top = jnp.where(jnp.isfinite(new_top), new_top, 0.0)
            rescale = jnp.where(jnp.isfinite(top), jnp.exp(top - safe_top), 0.0)
            w = jnp.exp(logits - safe_top[None, :, None])
            total = total * rescale + jnp.sum(w, axis=(0, 2))
            if want_grad:
                weighted = weighted * rescale[:, None] + sqrt_beta * matmul(w[0] - w[1], omega)
            return (new_top, total, weighted), None

        init = (jnp.full((b,), -jnp.inf, dtype), jnp.zeros((b,), dtype), jnp.zeros((b, d), dtype))
        (top, total, weighted), _ = jax.lax.scan(step, init, (jnp.arange(memory.num_chunks), t_chunks))
        safe_total = jnp.where(total > 0, total, 1.0)
        log_s = jnp.where(total > 0, top + jnp.log(safe_total), -jnp.inf)
        grad = weighted / safe_total[:, None] - 2 * memory.beta * states if want_grad else None
        return log_s, grad

    # Trigonometric maps in phase form: direction j adds one term ρ_j cos(h_j − θ_j) to the kernel
    # sum (sincos: t0 cos h + t1 sin h = |t| cos(h − atan2(t1, t0)); cos: ρ = √(2/Y) t, θ = −b).
    # So a step takes one sin/cos pair per (state, direction), a matrix-vector product for s and
    # one (B×C)·(C×D) product for ∇s = −√β Σ_j ρ_j sin(h_j − θ_j) ω_j. Measured at D = 30,
    # Y = 10⁵, 256 states: 20–25% faster than the Cartesian form with its extra products.
    if memory.feature_map == "sincos":
        weight = jnp.hypot(t_chunks[:, 0], t_chunks[:, 1]) / jnp.sqrt(jnp.asarray(memory.num_features, dtype))
        shift = jnp.arctan2(t_chunks[:, 1], t_chunks[:, 0])
    else:
        weight = t_chunks[:, 0] * jnp.sqrt(jnp.asarray(2.0 / memory.num_features, dtype))
        shift = jnp.zeros_like(weight)
    scaled_states = sqrt_beta * states
    # several generated chunks per step on accelerators (padding chunks get weight 0)
    group = _chunks_per_step(memory, b)
    n_steps = -(-memory.num_chunks // group)
    extra = ((0, n_steps * group - memory.num_chunks), (0, 0))
    weight = jnp.pad(weight, extra).reshape(n_steps, group * memory.chunk)
    shift = jnp.pad(shift, extra).reshape(n_steps, group * memory.chunk)
    ids = jnp.arange(n_steps * group).reshape(n_steps, group)

    def step(carry, xs):
        s, g = carry
        c, rho, theta = xs
        omega, phase = jax.vmap(lambda i: _chunk_inputs(memory, i))(c)
        omega = omega.reshape(-1, d)
        phase = None if phase is None else phase.reshape(-1)
        angle = matmul(scaled_states, omega.T) - (theta if phase is None else theta - phase)
        sin, cos = sincos(angle)
        s = s + matmul(cos, rho)
        if want_grad:
            g = g - sqrt_beta * matmul(rho * sin, omega)
        return (s, g), None

    init = (jnp.zeros((b,), dtype), jnp.zeros((b, d), dtype))
    (s, g), _ = jax.lax.scan(step, init, (ids, weight, shift))
    return s, (g if want_grad else None)


@functools.partial(jax.jit, static_argnames=("n_chunks", "chunk", "dim", "orthogonal", "dtype"))
def _stored_projection(key: jax.Array, *, n_chunks: int, chunk: int, dim: int, orthogonal: bool, dtype) -> jax.Array:
    """``(n_chunks·chunk, D)``: every chunk's projection, as ``_chunk_inputs`` regenerates it (compiled once per
    shape: an eager ``lax.map`` over a fresh lambda compiled again at every ``create``, 0.4 s each)."""
    return jax.lax.map(lambda c: projection_chunk(key, c, chunk, dim, orthogonal, dtype),
                       jnp.arange(n_chunks)).reshape(n_chunks * chunk, dim)


@functools.partial(_xla.jit, cpu_options=WIDE_VECTORS)
def _kernel_sum(memory: DistributedMemory, states: jax.Array) -> jax.Array:
    """``_pass``'s s alone, compiled once per shape (an eager scan compiled again at every call)."""
    return _pass(memory, states, False)[0]


@functools.partial(_xla.jit, cpu_options=WIDE_VECTORS, static_argnames="want_grad")
def _energy_and_grad(memory: DistributedMemory, states: jax.Array, want_grad: bool):
    s, g = _pass(memory, states, want_grad)
    if memory.feature_map == "positive":
        log_floor = math.log(memory.floor)
        clipped = s <= log_floor
        log_s = jnp.maximum(s, log_floor)
        grad_log = jnp.where(clipped[:, None], 0.0, g) if want_grad else None
    else:
        clipped = s <= memory.floor
        safe = jnp.where(clipped, 1.0, s)
        log_s = jnp.log(jnp.where(clipped, memory.floor, s))
        grad_log = jnp.where(clipped[:, None], 0.0, g / safe[:, None]) if want_grad else None
    energy = -log_s / memory.beta
    return energy, (-grad_log / memory.beta if want_grad else None), clipped


def _energy_and_grad_over_devices(memory: DistributedMemory, states: jax.Array, want_grad: bool):
    """:func:`_energy_and_grad` with the states (N, D) split over every device (of every process).

    Not through :func:`superpose.parallel.sharded`: its outer ``jax.jit`` would compile the pass
    without ``_energy_and_grad``'s own CPU options (wide vectors)."""
    if jax.device_count() == 1:
        return _energy_and_grad(memory, states, want_grad)
    placed, placed_memory, n = distribute(states, memory)
    out = gathered(_energy_and_grad(placed_memory, placed, want_grad))
    return jax.tree_util.tree_map(lambda a: a[:n], out)


def distributed_energy(state: Float[Array, " D"], memory: DistributedMemory) -> Float[Array, ""]:
    """Ẽ of one state, for :func:`~superpose.memory.descend` (``descend(distributed_energy, q, memory)``).

    The gradient is computed in the same pass as the energy and attached with a stop-gradient
    identity, so ``jax.grad`` costs no second pass and stores no per-chunk residuals. It is the
    exact gradient in the state; derivatives in T, and second derivatives, are not provided.
    ``distributed_energy`` is a :class:`~superpose.memory.energies.BatchedEnergy`: ``descend``
    uses its batched form, one pass over the features per step for all states.
    """
    e, g, _ = _energy_and_grad(memory, state[None, :], True)
    e, g = jax.lax.stop_gradient(e[0]), jax.lax.stop_gradient(g[0])
    return e + jnp.dot(state - jax.lax.stop_gradient(state), g)


def _batched_distributed_energy(states: jax.Array, memory: DistributedMemory) -> tuple[jax.Array, jax.Array]:
    """(Ẽ, ∇Ẽ) for states of shape (N, D) in one pass: what descend uses per step."""
    e, g, _ = _energy_and_grad(memory, states.astype(memory.T.dtype), True)
    return e, g


#: Ẽ of one state, callable as ``distributed_energy(state, memory)``, with its batched form.
distributed_energy = BatchedEnergy(distributed_energy, _batched_distributed_energy)


def projection_bytes(num_features: int, dim: int, dtype: Any = np.float32) -> int:
    """Bytes a stored projection of Y directions in D dimensions takes."""
    return int(num_features) * int(dim) * np.dtype(dtype).itemsize
