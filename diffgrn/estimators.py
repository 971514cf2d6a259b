"""Gradient estimators for gradient methods: what `Gradient` feeds to its optimiser.

Each estimator maps (objective, regulator, key) to an estimate of ∇θ U (ascent
direction) and a utility value to log; `cost(objective)` is the simulated
replicate-steps per estimate. Pluggable like Optax transformations.
"""

import abc

import equinox as eqx
import jax
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from . import diagnostics
from ._validate import check_choice, check_range
from .objective import Objective
from .regulator import AbstractRegulator


class AbstractEstimator(eqx.Module):
    @abc.abstractmethod
    def __call__(
        self, objective: Objective, regulator: AbstractRegulator, key: PRNGKeyArray
    ) -> tuple[PyTree, Float[Array, ""] | float]:
        """Return (gradient of U as a pytree like `regulator`, U_soft or NaN)."""

    @abc.abstractmethod
    def cost(self, objective: Objective) -> int: ...

    @abc.abstractmethod
    def config(self) -> dict: ...


class Pathwise(AbstractEstimator):
    """Backpropagation through the simulation: ∇θ U_soft on one noise draw of
    `replicates` replicates (default: the objective's R).

    `backprop_steps=k` truncates backpropagation to the last k steps of the solve
    (`Dynamics.backprop_steps`): the forward solve is the same, the backward pass
    covers k steps only (default `None`: all steps).
    """

    replicates: int | None = eqx.field(static=True, default=None)
    backprop_steps: int | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if self.replicates is not None:
            check_range("Pathwise", "replicates", self.replicates, ge=2, integer=True)
        if self.backprop_steps is not None:
            check_range("Pathwise", "backprop_steps", self.backprop_steps, ge=1, integer=True)

    def __call__(
        self, objective: Objective, regulator: AbstractRegulator, key: PRNGKeyArray
    ) -> tuple[PyTree, Float[Array, ""] | float]:
        if self.backprop_steps is not None:
            # `tree_at`, not `objective.replace`: the objective may carry a traced
            # (annealed) bandwidth that construction-time validation cannot check.
            dyn = objective.dynamics
            objective = eqx.tree_at(
                lambda o: o.dynamics,
                objective,
                dyn.replace(backprop_steps=self.backprop_steps),
                is_leaf=lambda x: x is dyn,
            )
        util, grads = eqx.filter_value_and_grad(
            lambda r: objective.soft(r, key, replicates=self.replicates).value
        )(regulator)
        return grads, util

    def cost(self, objective: Objective) -> int:
        r = objective.replicates if self.replicates is None else self.replicates
        return r * objective.dynamics.n_steps

    def config(self):
        return dict(type="Pathwise", replicates=self.replicates, backprop_steps=self.backprop_steps)


class AntitheticES(AbstractEstimator):
    """Antithetic Gaussian-smoothing (OpenAI-ES) gradient of U_hard (or U_soft):
    `pairs` mirrored perturbations of scale `sigma`, each pair on one noise draw."""

    sigma: float = eqx.field(static=True, default=0.05)
    pairs: int = eqx.field(static=True, default=16)
    utility: str = eqx.field(static=True, default="hard")

    def __check_init__(self):
        check_range("AntitheticES", "sigma", self.sigma, gt=0.0)
        check_range("AntitheticES", "pairs", self.pairs, ge=1, integer=True)
        check_choice("AntitheticES", "utility", self.utility, ("hard", "soft"))

    def __call__(
        self, objective: Objective, regulator: AbstractRegulator, key: PRNGKeyArray
    ) -> tuple[PyTree, Float[Array, ""] | float]:
        fn = objective.hard if self.utility == "hard" else objective.soft
        grads = diagnostics.es_gradient(
            lambda r, k: fn(r, k).value, regulator, key, sigma=self.sigma, pairs=self.pairs
        )
        return grads, jax.numpy.nan

    def cost(self, objective: Objective) -> int:
        return 2 * self.pairs * objective.replicate_steps

    def config(self):
        return dict(type="AntitheticES", sigma=self.sigma, pairs=self.pairs, utility=self.utility)


class Mixture(AbstractEstimator):
    """(1 − weight)·a + weight·b of two estimators, each normalised to unit norm
    first (their scales differ by orders of magnitude), on independent keys."""

    a: AbstractEstimator
    b: AbstractEstimator
    weight: float = eqx.field(static=True, default=0.5)

    def __check_init__(self):
        check_range("Mixture", "weight", self.weight, ge=0.0, le=1.0)

    def __call__(
        self, objective: Objective, regulator: AbstractRegulator, key: PRNGKeyArray
    ) -> tuple[PyTree, Float[Array, ""] | float]:
        ka, kb = jax.random.split(key)
        ga, ua = self.a(objective, regulator, ka)
        gb, _ = self.b(objective, regulator, kb)
        na = diagnostics.tree_norm(ga)
        nb = diagnostics.tree_norm(gb)
        safe = lambda n: jax.numpy.where(n > 0, n, 1.0)
        mix = jax.tree_util.tree_map(
            lambda x, y: (1 - self.weight) * x / safe(na) + self.weight * y / safe(nb), ga, gb
        )
        return mix, ua

    def cost(self, objective: Objective) -> int:
        return self.a.cost(objective) + self.b.cost(objective)

    def config(self):
        return dict(type="Mixture", a=self.a.config(), b=self.b.config(), weight=self.weight)
