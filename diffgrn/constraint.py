"""Constraints: the map applied to the state after every Euler–Maruyama step.

model.md's `s ← clip(s + f·dt + σ·ΔW, 0, 1)` is `Clip()`; the others change what
backpropagation sees at the walls. A new constraint is one subclass with `__call__`.
"""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._validate import check_range
from .config import Configurable


class AbstractConstraint(Configurable):
    """s ↦ the constrained state, elementwise."""

    @abc.abstractmethod
    def __call__(self, s: Float[Array, "*shape"]) -> Float[Array, "*shape"]: ...


class Clip(AbstractConstraint):
    """s ← clip(s, 0, 1) (model.md; the default). Its derivative is 0 at the walls,
    which cuts backpropagation through a clipped cell."""

    def __call__(self, s: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        return jnp.clip(s, 0.0, 1.0)


class Reflect(AbstractConstraint):
    """Fold back into [0, 1] at the walls (a triangle wave): derivative ±1, never 0,
    so backpropagation is not cut at the bounds."""

    def __call__(self, s: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        r = jnp.mod(s, 2.0)
        return jnp.where(r > 1.0, 2.0 - r, r)


class SoftClip(AbstractConstraint):
    """A smooth clip s ↦ softplus_k(s) − softplus_k(s − 1), softplus_k(x) =
    log(1 + e^{kx})/k: an increasing map of ℝ onto (0, 1) within log 2 / k of the clip,
    whose derivative σ(ks) − σ(k(s − 1)) is positive everywhere (though below float32
    resolution once s is more than about 17/k outside [0, 1]). `sharpness` k
    (default 100; larger is closer to the clip)."""

    sharpness: float = eqx.field(static=True, default=100.0)

    def __check_init__(self):
        check_range("SoftClip", "sharpness", self.sharpness, gt=0.0)

    def __call__(self, s: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        # Symmetric about ½: each half computed where its terms are small (no
        # cancellation near 1).
        k = self.sharpness
        g = lambda x: (jax.nn.softplus(k * x) - jax.nn.softplus(k * (x - 1.0))) / k
        return jnp.where(s <= 0.5, g(s), 1.0 - g(1.0 - s))


class Unconstrained(AbstractConstraint):
    """No constraint: the state may leave [0, 1]."""

    def __call__(self, s: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        return s
