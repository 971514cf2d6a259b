"""Readouts: final states s(T) ∈ [0, 1] to fates (hard 0/1 or soft in [0, 1])."""

import abc

import equinox as eqx
import jax
from jaxtyping import Array, Float, Scalar

from ._validate import check_instance, check_range
from .config import Configurable

THRESHOLD = 0.5


class AbstractReadout(Configurable):
    """Maps final states to fates, elementwise."""

    def with_temperature(self, temperature: float | Scalar) -> "AbstractReadout":
        """A copy at another temperature (may be a traced value: schedules)."""
        raise ValueError(f"{type(self).__name__} has no temperature to schedule")

    @abc.abstractmethod
    def __call__(self, s: Float[Array, "*shape"]) -> Float[Array, "*shape"]: ...


class HardReadout(AbstractReadout):
    """z = 1 if s ≥ 0.5 else 0. Its gradient is zero almost everywhere."""

    def __call__(self, s: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        return (s >= THRESHOLD).astype(s.dtype)


class SoftReadout(AbstractReadout):
    """p = sigmoid(τ·(s − 0.5)), temperature τ > 0 (default 20)."""

    temperature: float | Scalar = 20.0
    """Soft readout temperature τ."""

    def __check_init__(self):
        check_range("SoftReadout", "temperature", self.temperature, gt=0.0)

    def with_temperature(self, temperature: float | Scalar) -> AbstractReadout:
        return eqx.tree_at(lambda r: r.temperature, self, temperature)

    def __call__(self, s: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        return jax.nn.sigmoid(self.temperature * (s - THRESHOLD))


class IdentityReadout(AbstractReadout):
    """p = s: the state itself as the soft fate (∂p/∂s = 1)."""

    def __call__(self, s: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        return s


class StraightThroughReadout(AbstractReadout):
    """Forward the hard fate; backward the derivative of the readout `surrogate`.

    `surrogate=IdentityReadout()` (the default, as first reported: ∂z/∂s = 1) or
    `SoftReadout(τ)` (∂z/∂s = τ·σ'(τ(s − 0.5))), or any readout. Its temperature, if
    it has one, is this readout's (`with_temperature`).
    """

    surrogate: AbstractReadout = eqx.field(default_factory=IdentityReadout)

    def __check_init__(self):
        check_instance("StraightThroughReadout", "surrogate", self.surrogate, AbstractReadout)

    def with_temperature(self, temperature: float | Scalar) -> AbstractReadout:
        surrogate = self.surrogate.with_temperature(temperature)
        return eqx.tree_at(lambda r: r.surrogate, self, surrogate)

    def __call__(self, s: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        soft = self.surrogate(s)
        hard = (s >= THRESHOLD).astype(s.dtype)
        return soft + jax.lax.stop_gradient(hard - soft)


class ChainedReadout(AbstractReadout):
    """Apply `first`, then `second` (e.g. the first version's pipeline: a
    straight-through threshold, then a sigmoid of the 0/1 values)."""

    first: AbstractReadout
    second: AbstractReadout

    def __call__(self, s: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        return self.second(self.first(s))

    def with_temperature(self, temperature: float | Scalar) -> AbstractReadout:
        """Sets the temperature of the stage(s) that have one."""
        out, found = self, False
        for name in ("first", "second"):
            try:
                stage = getattr(self, name).with_temperature(temperature)
            except ValueError:
                continue
            out, found = eqx.tree_at(lambda r, name=name: getattr(r, name), out, stage), True
        if not found:
            raise ValueError("ChainedReadout has no stage with a temperature to schedule")
        return out
