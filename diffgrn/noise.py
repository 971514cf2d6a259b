"""Noise: how the Brownian increments σ dW of a solve are drawn and held.

A noise object is to `Dynamics` what a Brownian path is to `diffrax.diffeqsolve`:
the one place that knows how increments are made and stored. Everything else (the
solve, sharding over devices, the likelihood-ratio score, the diagnostics, the dt / k
resolution guard) asks it through this interface:

- `path(keys, shape, t_final, dt)`: the Brownian path of a batch of replicates (one
  key each), or `None` for no noise;
- `increments(path, n_steps)`: the increments a fixed-step solve uses, `(steps, …)`;
- `paired(keys, shape, t_final, dt, refine)`: the same Brownian motion at dt and at
  dt / refine (a coarse and a fine path);
- `place(path, shard)`: the path with its replicate axis split over devices;
- `stored_bytes(state_bytes, n_steps)`: the memory the path holds.

A new noise model is one subclass in one file.
"""

import abc
from typing import ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float

from ._typing import KeyBatch
from ._validate import check_range
from .brownian import AbstractStepPath, CoarsenedPath, CounterBrownianPath, GridBrownianPath
from .config import Configurable

Shape = tuple[int, ...]


class AbstractNoise(Configurable):
    """How a solve's Brownian increments are drawn (see the module docstring)."""

    @abc.abstractmethod
    def path(
        self, keys: KeyBatch, shape: Shape, t_final: float, dt: float
    ) -> diffrax.AbstractBrownianPath | None:
        """`keys`: one per replicate; `shape`: one replicate's state."""

    def increments(
        self, path: diffrax.AbstractBrownianPath, n_steps: int, dt: float
    ) -> Float[Array, "steps replicates ..."]:
        """The increments w(t_k + dt) − w(t_k) a fixed-step solve uses."""
        if isinstance(path, AbstractStepPath):
            return jax.vmap(path.increment)(jnp.arange(n_steps))
        return jax.vmap(lambda k: path.evaluate(k * dt, (k + 1) * dt))(jnp.arange(n_steps))

    def paired(
        self, keys: KeyBatch, shape: Shape, t_final: float, dt: float, refine: int
    ) -> tuple[diffrax.AbstractBrownianPath, diffrax.AbstractBrownianPath]:
        """(coarse, fine): one Brownian motion on the dt grid and on the dt/refine grid
        (the coarse step's increment is the sum of the fine steps in it)."""
        fine = self.path(keys, shape, t_final, dt / refine)
        return CoarsenedPath(fine, refine), fine

    def place(self, path, shard):
        """`path` with its replicate axis split by `shard(array, axis)` (default: as is)."""
        return path

    def stored_bytes(self, state_bytes: int, n_steps: int) -> int:
        """Bytes the path holds for a state of `state_bytes` (default: none)."""
        return 0

    # What the path stores and how to store less (for the memory check's message).
    stores: ClassVar[str] = "its increments"

    def block_size(self, path: diffrax.AbstractBrownianPath) -> int | None:
        """Steps whose increments a solve draws at once (`path.block`), or `None`:
        the solve evaluates `path` step by step (default)."""
        return None


class CounterNoise(AbstractNoise):
    """Each step's increments drawn inside the step from `fold_in(key, step)`: exact
    Euler–Maruyama noise, reproducible, and never stored, so memory is flat in the
    horizon (reverse mode recomputes what it needs). The default.

    The batch shares one key (made from the replicates' keys and their number), so a
    replicate's noise depends on the batch it is drawn in; `GridNoise` draws each
    replicate from its own key.

    `block`: the solve draws the increments of `block` steps at once (the same
    numbers, vectorised: a small draw per step costs more than the step) and holds
    only those, so memory is O(block × replicates × cells)."""

    block: int = eqx.field(static=True, default=100)
    stores: ClassVar[str] = "block x replicates x cells x genes increments: lower its block"

    def __check_init__(self):
        check_range("CounterNoise", "block", self.block, ge=1, integer=True)

    def path(self, keys, shape, t_final, dt):
        key = jr.fold_in(keys[0], keys.shape[0])
        return CounterBrownianPath(0.0, t_final, dt, key, (keys.shape[0], *shape))

    def block_size(self, path):
        return self.block if isinstance(path, CounterBrownianPath) else None

    def stored_bytes(self, state_bytes, n_steps):
        return state_bytes * min(self.block, n_steps)


class GridNoise(AbstractNoise):
    """All increments drawn once on the step grid and stored: a gather per step, but
    memory steps × replicates × cells. The path of diffgrn ≤ 0.4 (same numbers)."""

    def path(self, keys, shape, t_final, dt):
        sample = lambda k: GridBrownianPath.sample(shape, k, 0.0, t_final, dt).increments
        inc = jax.vmap(sample)(keys)
        return GridBrownianPath(0.0, t_final, dt, jnp.swapaxes(inc, 0, 1))

    stores: ClassVar[str] = (
        "steps x replicates x cells x genes increments: lower t_final/dt, or use "
        "Dynamics(noise=CounterNoise())"
    )

    def increments(self, path, n_steps, dt):
        return path.increments

    def place(self, path, shard):
        return eqx.tree_at(lambda p: p.increments, path, shard(path.increments, 1))

    def stored_bytes(self, state_bytes, n_steps):
        return 4 * state_bytes * n_steps  # drawing peaks at ~4x the increments


class VirtualTreeNoise(AbstractNoise):
    """Diffrax's `VirtualBrownianTree` (one tree for the whole batch, tolerance dt/2):
    evaluable on any grid, so coarse and fine solves share it directly."""

    def path(self, keys, shape, t_final, dt):
        key = jr.fold_in(keys[0], keys.shape[0])
        return diffrax.VirtualBrownianTree(
            0.0, t_final, tol=dt / 2, shape=(keys.shape[0], *shape), key=key
        )

    def paired(self, keys, shape, t_final, dt, refine):
        tree = self.path(keys, shape, t_final, dt / refine)
        return tree, tree


class NoNoise(AbstractNoise):
    """No noise: nothing is drawn and the solve has no diffusion term (the ODE).
    Used whenever σ = 0, whichever noise is chosen."""

    def path(self, keys, shape, t_final, dt):
        return None

    def increments(self, path, n_steps, dt):
        raise ValueError("NoNoise has no increments (σ = 0)")

    def paired(self, keys, shape, t_final, dt, refine):
        return None, None
