"""Brownian paths for fixed-step Euler–Maruyama that support reverse mode."""

import abc

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from ._typing import IntScalarLike, RealScalarLike


class AbstractStepPath(diffrax.AbstractBrownianPath):
    """A Brownian path known only on a step grid: `evaluate(t, t + dt)` at a grid
    point returns that step's increment (`increment(k)`), any other interval NaN, so a
    solver with another step fails loudly rather than using the wrong noise."""

    t0: eqx.AbstractVar[float]
    dt: eqx.AbstractVar[float]

    @property
    @abc.abstractmethod
    def n_steps(self) -> int: ...

    @abc.abstractmethod
    def increment(self, k: IntScalarLike) -> Float[Array, "..."]:
        """The increments of grid step `k` (an integer, may be traced and may lie
        outside the grid: then any value)."""

    def evaluate(
        self,
        t0: RealScalarLike,
        t1: RealScalarLike | None = None,
        left: bool = True,
        use_levy: bool = False,
    ) -> Float[Array, "..."]:
        del left
        name = type(self).__name__
        if use_levy:
            raise ValueError(f"{name} provides no Lévy area")
        if t1 is None:
            raise ValueError(f"{name} only evaluates increments w(t1) - w(t0)")
        t0 = jax.lax.stop_gradient(t0)
        t1 = jax.lax.stop_gradient(t1)
        k = jnp.round((t0 - self.t0) / self.dt).astype(jnp.int32)
        one_step = (jnp.abs((t1 - t0) - self.dt) <= 1e-3 * self.dt) & (k >= 0) & (k < self.n_steps)
        return jnp.where(one_step, self.increment(k), jnp.nan)

    def block(self, first: IntScalarLike, size: int) -> "GridBrownianPath":
        """Steps `first` … `first + size − 1` drawn at once, as a stored path on
        [0, size · dt] (one vectorised draw instead of `size` small ones)."""
        increments = jax.vmap(self.increment)(first + jnp.arange(size))
        return GridBrownianPath(0.0, size * self.dt, self.dt, increments)


class GridBrownianPath(AbstractStepPath):
    """Brownian increments drawn once on the step grid `t0, t0+dt, …, t1`.

    `evaluate(t, t + dt)` for a grid point `t` returns the stored increment, so
    fixed-step Euler–Maruyama with step `dt` is driven by exactly these increments.
    Unlike `diffrax.UnsafeBrownianPath`, the increments are an ordinary array, so
    reverse-mode differentiation through the solve works; unlike
    `diffrax.VirtualBrownianTree`, evaluation is a single gather.

    Only intervals of one grid step are supported: any other interval returns NaN
    (the solve then fails loudly rather than silently using the wrong noise).
    """

    t0: float = eqx.field(static=True)
    t1: float = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    increments: Float[Array, "steps ..."]
    levy_area: type = eqx.field(static=True, default=diffrax.BrownianIncrement)

    @classmethod
    def sample(
        cls, shape: tuple[int, ...], key: PRNGKeyArray, t0: float, t1: float, dt: float
    ) -> "GridBrownianPath":
        n_steps = int(round((t1 - t0) / dt))
        inc = jr.normal(key, (n_steps, *shape)) * jnp.sqrt(jnp.asarray(dt))
        return cls(t0=float(t0), t1=float(t1), dt=float(dt), increments=inc)

    @property
    def n_steps(self) -> int:
        return self.increments.shape[0]

    def increment(self, k: IntScalarLike) -> Float[Array, "..."]:
        return self.increments[jnp.clip(k, 0, self.n_steps - 1)]


class CounterBrownianPath(AbstractStepPath):
    """Brownian increments drawn inside each step from a counter-based key.

    The increments of grid step `k` are `sqrt(dt) · normal(fold_in(key, k), shape)`
    for the whole batch `shape = (replicates, cells, genes)`: exact Euler–Maruyama
    noise, reproducible, independent across steps, replicates and cells, and never
    stored, so a solve needs O(replicates · cells) memory for its noise whatever the
    horizon (`GridBrownianPath` stores steps × replicates × cells). One draw per step
    for the batch (not one per replicate) keeps a step as fast as reading stored
    increments. Reverse mode recomputes the increments it needs.
    """

    t0: float = eqx.field(static=True)
    t1: float = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    key: PRNGKeyArray
    shape: tuple[int, ...] = eqx.field(static=True)
    levy_area: type = eqx.field(static=True, default=diffrax.BrownianIncrement)

    @property
    def n_steps(self) -> int:
        return int(round((self.t1 - self.t0) / self.dt))

    def increment(self, k: IntScalarLike) -> Float[Array, "replicates ..."]:
        """The increments of grid step `k` (an integer, may be traced)."""
        return jr.normal(jr.fold_in(self.key, k), self.shape) * jnp.sqrt(jnp.asarray(self.dt))


class CoarsenedPath(AbstractStepPath):
    """A step path on a grid `factor` times coarser than `fine`'s: step k's increment
    is the sum of `fine`'s steps k·factor … k·factor + factor − 1 (the same Brownian
    motion, for comparing a solve at dt with one at dt / factor)."""

    fine: AbstractStepPath
    factor: int = eqx.field(static=True)
    levy_area: type = eqx.field(static=True, default=diffrax.BrownianIncrement)

    @property
    def t0(self) -> float:
        return self.fine.t0

    @property
    def t1(self) -> float:
        return self.fine.t1

    @property
    def dt(self) -> float:
        return self.fine.dt * self.factor

    @property
    def n_steps(self) -> int:
        return self.fine.n_steps // self.factor

    def increment(self, k: IntScalarLike) -> Float[Array, "..."]:
        steps = k * self.factor + jnp.arange(self.factor)
        return jnp.sum(jax.vmap(self.fine.increment)(steps), axis=0)
