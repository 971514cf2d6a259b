"""Training methods, each an `init`/`step` pair over a pytree state (Optax style).

`method.build(objective, regulator)` returns a `Trainer` whose pure functions the
`train` loop jits once: no recompilation inside the loop. Every method reports the
same `StepInfo`, so histories are comparable across methods.
"""

import abc
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.flatten_util
import jax.numpy as jnp
import jax.random as jr
import optax
from jaxtyping import Array, Float, PRNGKeyArray, PyTree, Scalar

from ._validate import check_range
from .estimators import AbstractEstimator, AntitheticES, Pathwise
from .objective import Objective
from .regulator import AbstractRegulator


class StepInfo(NamedTuple):
    """What one iteration of any method reports (NaN where undefined)."""

    soft_utility: Scalar
    grad_norm: Scalar
    finite: Array  # bool scalar: states, utilities and gradients all finite


class Trainer(NamedTuple):
    init: Callable[[PRNGKeyArray], PyTree]
    step: Callable[[PyTree, PRNGKeyArray], tuple[PyTree, StepInfo]]
    candidate: Callable[[PyTree], AbstractRegulator]
    replicate_steps: int  # simulated replicate-steps per iteration


class AbstractMethod(eqx.Module):
    """A training method. Subclasses define `build` and `config`."""

    default_iterations: int = eqx.field(static=True, default=200, kw_only=True)

    @abc.abstractmethod
    def build(self, objective: Objective, regulator: AbstractRegulator) -> Trainer:
        ...

    @abc.abstractmethod
    def config(self) -> dict:
        ...


def _all_finite(tree) -> Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)
              if eqx.is_inexact_array(x)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


class MuPlusLambdaES(AbstractMethod):
    """The (μ+λ) evolution strategy of the first version, on the hard utility.

    Each generation, `population - parents` children are drawn as a random parent
    plus Gaussian noise of scale `mutation` on the flat parameter vector; parents and
    children are all (re-)evaluated on one fresh noise draw (common random numbers,
    and no survival by a lucky past draw), and the best `parents` survive. The whole
    population is simulated in one jitted, vmapped call.
    """

    population: int = eqx.field(static=True, default=20)
    parents: int = eqx.field(static=True, default=5)
    mutation: float = eqx.field(static=True, default=0.1)

    def __check_init__(self):
        check_range("MuPlusLambdaES", "parents", self.parents, ge=1, integer=True)
        check_range("MuPlusLambdaES", "population", self.population,
                    gt=self.parents, integer=True)
        check_range("MuPlusLambdaES", "mutation", self.mutation, gt=0.0)

    def build(self, objective: Objective, regulator: AbstractRegulator) -> Trainer:
        params, static = eqx.partition(regulator, eqx.is_inexact_array)
        flat0, unravel = jax.flatten_util.ravel_pytree(params)
        mu, lam = self.parents, self.population - self.parents

        def fitness(flat, key):
            reg = eqx.combine(unravel(flat), static)
            return objective.hard(reg, key).value

        def init(key):
            noise = self.mutation * jr.normal(key, (mu - 1, flat0.size))
            return dict(parents=jnp.concatenate([flat0[None], flat0[None] + noise]))

        def step(state, key):
            k_pick, k_mut, k_eval = jr.split(key, 3)
            parents = state["parents"]
            pick = jr.randint(k_pick, (lam,), 0, mu)
            children = parents[pick] + self.mutation * jr.normal(
                k_mut, (lam, flat0.size))
            pop = jnp.concatenate([parents, children])
            fit = jax.vmap(fitness, in_axes=(0, None))(pop, k_eval)
            order = jnp.argsort(-jnp.where(jnp.isnan(fit), -jnp.inf, fit))
            nan = jnp.asarray(jnp.nan, jnp.float32)
            info = StepInfo(nan, nan, _all_finite(fit))
            return dict(parents=pop[order[:mu]]), info

        def candidate(state):
            return eqx.combine(unravel(state["parents"][0]), static)

        return Trainer(init, step, candidate,
                       self.population * objective.replicate_steps)

    def config(self) -> dict:
        return dict(method="es", population=self.population, parents=self.parents,
                    mutation=self.mutation)


def default_optimiser(learning_rate: float = 1e-2, clip: float = 1.0):
    """Adam with global-norm clipping, as first reported."""
    return optax.chain(optax.clip_by_global_norm(clip), optax.adam(learning_rate))


class Gradient(AbstractMethod):
    """An Optax optimiser driven by a gradient estimator of U.

    `optimiser` is any `optax.GradientTransformation` (default: Adam, learning rate
    1e-2, after global-norm clipping at 1.0); `estimator` is a
    `diffgrn.estimators` estimator (default `Pathwise()`: backpropagation of U_soft;
    `AntitheticES()` gives OpenAI-ES on U_hard; `Mixture(a, b, weight)` blends two).
    """

    optimiser: Any = None
    estimator: AbstractEstimator = eqx.field(default_factory=Pathwise)
    name: str = eqx.field(static=True, default="adam")

    def __check_init__(self):
        if self.optimiser is not None and not isinstance(
                self.optimiser, optax.GradientTransformation):
            raise ValueError("Gradient.optimiser must be an optax.GradientTransformation;"
                             f" got {type(self.optimiser).__name__}")
        if not isinstance(self.estimator, AbstractEstimator):
            raise ValueError("Gradient.estimator must be a diffgrn estimator (Pathwise, "
                             f"AntitheticES, Mixture); got {type(self.estimator).__name__}")

    def build(self, objective: Objective, regulator: AbstractRegulator) -> Trainer:
        opt = self.optimiser if self.optimiser is not None else default_optimiser()
        params, static = eqx.partition(regulator, eqx.is_inexact_array)

        def init(key):
            del key
            return dict(params=params, opt_state=opt.init(params))

        def step(state, key):
            p = state["params"]
            ascent, util = self.estimator(objective, eqx.combine(p, static), key)
            grads = jax.tree_util.tree_map(lambda g: -g,
                                           eqx.filter(ascent, eqx.is_inexact_array))
            updates, opt_state = opt.update(grads, state["opt_state"], p)
            new = optax.apply_updates(p, updates)
            finite = _all_finite((grads, new)) & ~jnp.isinf(util)
            info = StepInfo(jnp.asarray(util, jnp.float32), optax.tree.norm(grads), finite)
            return dict(params=new, opt_state=opt_state), info

        def candidate(state):
            return eqx.combine(state["params"], static)

        return Trainer(init, step, candidate, self.estimator.cost(objective))

    def config(self) -> dict:
        return dict(method=self.name, estimator=self.estimator.config(),
                    optimiser="default: clip_by_global_norm(1.0) + adam(1e-2)"
                    if self.optimiser is None else "custom")


def openes(optimiser=None, sigma: float = 0.05, pairs: int = 16) -> Gradient:
    """OpenAI-ES: the antithetic ES gradient of U_hard fed to an Optax optimiser."""
    return Gradient(optimiser, AntitheticES(sigma, pairs), name="openes")


METHODS = {"es": MuPlusLambdaES, "adam": Gradient, "openes": openes}


def get_method(method: "str | AbstractMethod", optimiser=None) -> AbstractMethod:
    """Resolve a method name ('es', 'adam', 'openes') or pass a method object through."""
    if isinstance(method, AbstractMethod):
        if optimiser is not None:
            raise ValueError("optimiser= is only used with method='adam' or 'openes'")
        return method
    if method not in METHODS:
        raise ValueError(f"train.method must be one of {', '.join(map(repr, METHODS))} "
                         f"or a diffgrn method object; got {method!r}")
    if method == "adam":
        return Gradient(optimiser)
    if method == "openes":
        return openes(optimiser)
    if optimiser is not None:
        raise ValueError("optimiser= is only used with method='adam' or 'openes'")
    return METHODS[method]()
