"""A population of gradient learners with selection (population-based training).

K copies of a `Gradient` method train at once in one compiled step (`vmap` over the
population, each with its own optimiser state and noise), started from diverse
networks: learner 0 at the given regulator, the others at it plus Gaussian noise of
std `spread` on every parameter. After the first step and then every `every` steps,
all learners are scored by the hard utility on one fresh draw (the same draw for
all: common random numbers), and the `replace` worst are overwritten by copies of the
best (its parameters plus noise of std `perturb`, its optimiser state). Gradients
from f ≈ 0 carry every estimator to the same local optimum on the pinned chain;
diverse starts and selection on U_hard let the population leave it
(docs/comparison.md measures whether it does).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, Int, PyTree

from ._validate import check_instance, check_range
from .methods import Gradient, register_method
from .objective import Objective
from .regulator import AbstractRegulator
from .trainer import AbstractMethod, StepInfo, Trainer


class PopulationState(eqx.Module):
    """The learners' `Gradient` states stacked on a leading axis, each learner's last
    selection score (hard utility), and the steps taken."""

    learners: PyTree
    score: Float[Array, " learners"]
    count: Int[Array, ""]


class GradientPopulation(AbstractMethod):
    """K gradient learners trained together with periodic selection on U_hard.

    - `gradient`: the method each learner runs (default `Gradient()`: Adam on the
      pathwise ∇U_soft).
    - `learners`: K, the Adam learners trained together (default 8).
    - `spread`: std of the noise added to every parameter of learners 1 … K−1 at the
      start (default 2.0); learner 0 starts at the given regulator.
    - `every`: steps between selections (default 5).
    - `replace`: learners overwritten by the best at each selection (default: a
      quarter of them, at least 1).
    - `perturb`: std of the noise on a copy's parameters (default 0.05).
    - `replicates`: replicates of a selection's hard utility (default: the
      objective's).
    - `fresh`: learners, the worst after those replaced, restarted around the start
      at each selection (noise `spread`, new optimiser state; default a quarter of
      them: on the pinned chain this is what finds the other basin,
      docs/comparison.md).

    The candidate (what `train` assesses and keeps) is the learner with the best last
    score. Cost per step: K learners' estimates, plus K × `replicates` simulations at
    each selection.
    """

    gradient: Gradient = eqx.field(default_factory=Gradient)
    learners: int = eqx.field(static=True, default=8)
    spread: float = eqx.field(static=True, default=2.0)
    every: int = eqx.field(static=True, default=5)
    replace: int | None = eqx.field(static=True, default=None)
    perturb: float = eqx.field(static=True, default=0.05)
    replicates: int | None = eqx.field(static=True, default=None)
    fresh: int | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        check_instance("GradientPopulation", "gradient", self.gradient, Gradient)
        check_range("GradientPopulation", "learners", self.learners, ge=2, integer=True)
        check_range("GradientPopulation", "spread", self.spread, ge=0.0)
        check_range("GradientPopulation", "every", self.every, ge=1, integer=True)
        if self.replace is not None:
            check_range(
                "GradientPopulation",
                "replace",
                self.replace,
                ge=0,
                le=self.learners - 1,
                integer=True,
            )
        check_range("GradientPopulation", "perturb", self.perturb, ge=0.0)
        if self.fresh is not None:
            check_range("GradientPopulation", "fresh", self.fresh, ge=0, integer=True)
        used = self._replaced + self._fresh
        if used > self.learners - 1:
            raise ValueError(
                f"GradientPopulation.replace + fresh must leave the best of the "
                f"{self.learners} learners; got {used}"
            )
        if self.replicates is not None:
            check_range("GradientPopulation", "replicates", self.replicates, ge=1, integer=True)

    @property
    def name(self) -> str:
        return "pbt"

    @property
    def _replaced(self) -> int:
        return max(1, self.learners // 4) if self.replace is None else self.replace

    @property
    def _fresh(self) -> int:
        return self.learners // 4 if self.fresh is None else self.fresh

    def build(self, objective: Objective, regulator: AbstractRegulator, space=None) -> Trainer:
        if space is not None or objective.direction != 1:
            raise ValueError(
                "GradientPopulation trains every leaf on a utility: it takes no search "
                "space and no loss (TrajectoryFit) yet"
            )
        self.gradient.check_memory(objective, regulator, copies=self.learners)
        inner = self.gradient.build(objective, regulator)
        _, static = eqx.partition(regulator, eqx.is_inexact_array)
        k = self.learners
        n_replace, n_fresh = self._replaced, self._fresh
        r = objective.replicates if self.replicates is None else self.replicates

        def noisy(params, key, std):
            leaves, tree = jax.tree_util.tree_flatten(params)
            keys = jr.split(key, len(leaves))
            out = [x + std * jr.normal(kk, x.shape, x.dtype) for x, kk in zip(leaves, keys)]
            return jax.tree_util.tree_unflatten(tree, out)

        def scores(learners, key):
            hard = lambda p: objective.hard(eqx.combine(p, static), key, replicates=r).value
            u = jax.vmap(hard)(learners["params"])
            return jnp.where(jnp.isfinite(u), u, -jnp.inf)

        start, _ = eqx.partition(regulator, eqx.is_inexact_array)

        def draw(key, n):  # n new learners around the start, with fresh optimiser states
            k_start, k_init = jr.split(key)
            starts = jax.vmap(lambda kk: noisy(start, kk, self.spread))(jr.split(k_start, n))
            build = lambda p, kk: self.gradient.build(objective, eqx.combine(p, static)).init(kk)
            return jax.vmap(build)(starts, jr.split(k_init, n))

        def init(key):
            learners = draw(key, k)
            first = self.gradient.build(objective, regulator).init(key)  # learner 0: the start
            learners = jax.tree_util.tree_map(lambda x, x0: x.at[0].set(x0), learners, first)
            # Unscored until the first selection (after step 1): the candidate is the
            # start, and no evaluation happens outside a counted step.
            score = jnp.full((k,), -jnp.inf).at[0].set(0.0)
            return PopulationState(learners, score, jnp.zeros((), jnp.int32))

        def selects(count):  # after the first step, then every `every` steps
            return (count == 1) | (count % self.every == 0)

        def select(learners, score, key):
            k_score, k_noise, k_fresh = jr.split(key, 3)
            score = scores(learners, k_score)
            order = jnp.argsort(score)  # worst first
            if n_fresh:  # the next worst restart around the start (exploration)
                again = order[n_replace : n_replace + n_fresh]
                new = draw(k_fresh, n_fresh)
                learners = jax.tree_util.tree_map(lambda x, y: x.at[again].set(y), learners, new)
                score = score.at[again].set(-jnp.inf)
            best, worst = order[-1], order[:n_replace]
            copy = lambda x: x.at[worst].set(jnp.broadcast_to(x[best], (n_replace, *x.shape[1:])))
            learners = jax.tree_util.tree_map(copy, learners)
            params = learners["params"]
            moved = jax.vmap(
                lambda kk: noisy(
                    jax.tree_util.tree_map(lambda x: x[best], params), kk, self.perturb
                )
            )(jr.split(k_noise, n_replace))
            params = jax.tree_util.tree_map(lambda x, m: x.at[worst].set(m), params, moved)
            return dict(learners, params=params), score.at[worst].set(score[best])

        def step(state, key):
            k_step, k_select = jr.split(key)
            learners, info = jax.vmap(inner.step)(state.learners, jr.split(k_step, k))
            count = state.count + 1
            learners, score = jax.lax.cond(
                selects(count),
                lambda: select(learners, state.score, k_select),
                lambda: (learners, state.score),
            )
            lead = jnp.argmax(score)
            out = StepInfo(info.soft_utility[lead], info.grad_norm[lead], info.finite[lead])
            return PopulationState(learners, score, count), out

        def candidate(state):
            lead = jnp.argmax(state.score)
            return inner.candidate(jax.tree_util.tree_map(lambda x: x[lead], state.learners))

        def cost(state):
            selecting = bool(selects(int(state.count) + 1))
            return k * inner.cost(state.learners) + (
                k * r * objective.dynamics.n_steps if selecting else 0
            )

        return Trainer(init, step, candidate, cost)


register_method("pbt", GradientPopulation)
