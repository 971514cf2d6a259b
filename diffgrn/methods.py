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
from jaxtyping import Array, Float, Int, PRNGKeyArray, PyTree, Scalar

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
    def build(self, objective: Objective, regulator: AbstractRegulator) -> Trainer: ...

    @abc.abstractmethod
    def config(self) -> dict: ...

    def stages(self, iterations: int) -> list[tuple["AbstractMethod", int]]:
        """The (method, iterations) phases `train` runs in turn; one for most methods."""
        return [(self, iterations)]


def _all_finite(tree) -> Array:
    leaves = [
        jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree) if eqx.is_inexact_array(x)
    ]
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
        check_range("MuPlusLambdaES", "population", self.population, gt=self.parents, integer=True)
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
            children = parents[pick] + self.mutation * jr.normal(k_mut, (lam, flat0.size))
            pop = jnp.concatenate([parents, children])
            fit = jax.vmap(fitness, in_axes=(0, None))(pop, k_eval)
            order = jnp.argsort(-jnp.where(jnp.isnan(fit), -jnp.inf, fit))
            nan = jnp.asarray(jnp.nan, jnp.float32)
            new = dict(parents=pop[order[:mu]])
            return new, StepInfo(nan, nan, _all_finite((fit, new)))

        def candidate(state):
            return eqx.combine(unravel(state["parents"][0]), static)

        return Trainer(init, step, candidate, self.population * objective.replicate_steps)

    def config(self) -> dict:
        return dict(
            method="es", population=self.population, parents=self.parents, mutation=self.mutation
        )


class CMAES(AbstractMethod):
    """CMA-ES (Hansen's (μ/μ_w, λ) covariance matrix adaptation) on the hard utility.

    Written here (about sixty lines of array code) rather than taken from evosax,
    whose current release requires Flax. `population` λ (default 20: the same
    simulations per generation as the (μ+λ)-ES) candidates x = m + σ·B·D·z are
    evaluated on one fresh noise draw in one vmapped call; the best half, with
    log-rank weights, update the mean m, the evolution paths, the full covariance C
    and the step size σ (initially `sigma`). The candidate regulator is the mean.
    """

    population: int = eqx.field(static=True, default=20)
    sigma: float = eqx.field(static=True, default=0.3)

    def __check_init__(self):
        check_range("CMAES", "population", self.population, ge=4, integer=True)
        check_range("CMAES", "sigma", self.sigma, gt=0.0)

    def build(self, objective: Objective, regulator: AbstractRegulator) -> Trainer:
        params, static = eqx.partition(regulator, eqx.is_inexact_array)
        m0, unravel = jax.flatten_util.ravel_pytree(params)
        n, lam = m0.size, self.population
        mu = lam // 2
        w = jnp.log((lam + 1) / 2) - jnp.log(jnp.arange(1, mu + 1))
        w = w / w.sum()
        mu_eff = float(1.0 / jnp.sum(w**2))
        c_s = (mu_eff + 2) / (n + mu_eff + 5)
        d_s = 1 + 2 * max(0.0, ((mu_eff - 1) / (n + 1)) ** 0.5 - 1) + c_s
        c_c = (4 + mu_eff / n) / (n + 4 + 2 * mu_eff / n)
        c_1 = 2 / ((n + 1.3) ** 2 + mu_eff)
        c_mu = min(1 - c_1, 2 * (mu_eff - 2 + 1 / mu_eff) / ((n + 2) ** 2 + mu_eff))
        chi_n = n**0.5 * (1 - 1 / (4 * n) + 1 / (21 * n**2))

        def fitness(flat, key):
            return objective.hard(eqx.combine(unravel(flat), static), key).value

        def init(key):
            del key
            return dict(
                mean=m0,
                sigma=jnp.asarray(self.sigma, m0.dtype),
                cov=jnp.eye(n, dtype=m0.dtype),
                p_s=jnp.zeros_like(m0),
                p_c=jnp.zeros_like(m0),
                gen=jnp.zeros((), jnp.int32),
            )

        def step(state, key):
            k_z, k_eval = jr.split(key)
            m, sig, cov = state["mean"], state["sigma"], state["cov"]
            d2, b = jnp.linalg.eigh(cov)
            d = jnp.sqrt(jnp.maximum(d2, 1e-20))
            y = jr.normal(k_z, (lam, n)) * d @ b.T  # rows ~ N(0, C)
            fit = jax.vmap(fitness, in_axes=(0, None))(m + sig * y, k_eval)
            order = jnp.argsort(-jnp.where(jnp.isnan(fit), -jnp.inf, fit))
            y_sel = y[order[:mu]]
            y_w = w @ y_sel
            inv_sqrt_c = (b / d) @ b.T
            p_s = (1 - c_s) * state["p_s"] + jnp.sqrt(c_s * (2 - c_s) * mu_eff) * (inv_sqrt_c @ y_w)
            gen = state["gen"] + 1
            norm_ps = jnp.linalg.norm(p_s)
            h_s = (
                norm_ps / jnp.sqrt(1 - (1 - c_s) ** (2 * gen)) < (1.4 + 2 / (n + 1)) * chi_n
            ).astype(m.dtype)
            p_c = (1 - c_c) * state["p_c"] + h_s * jnp.sqrt(c_c * (2 - c_c) * mu_eff) * y_w
            rank_mu = (y_sel * w[:, None]).T @ y_sel
            cov = (
                (1 - c_1 - c_mu) * cov
                + c_1 * (jnp.outer(p_c, p_c) + (1 - h_s) * c_c * (2 - c_c) * cov)
                + c_mu * rank_mu
            )
            cov = (cov + cov.T) / 2
            sig = sig * jnp.exp((c_s / d_s) * (norm_ps / chi_n - 1))
            nan = jnp.asarray(jnp.nan, jnp.float32)
            new = dict(mean=m + state["sigma"] * y_w, sigma=sig, cov=cov, p_s=p_s, p_c=p_c, gen=gen)
            info = StepInfo(nan, nan, _all_finite((fit, new)))
            return new, info

        def candidate(state):
            return eqx.combine(unravel(state["mean"]), static)

        return Trainer(init, step, candidate, lam * objective.replicate_steps)

    def config(self) -> dict:
        return dict(method="cmaes", population=self.population, sigma=self.sigma)


class RandomSearch(AbstractMethod):
    """Pure random search: the baseline every search method must beat.

    Each generation draws `population - 1` parameter vectors independently around the
    *initial* parameters, θ = θ₀ + `scale`·z (z ~ N(0, I), no adaptation, nothing
    learned from earlier draws), and evaluates them with the incumbent (the best so far)
    on one fresh noise draw (common random numbers, like the ES); the best of these
    becomes the incumbent. Same budget accounting as the ES: `population` simulations
    per generation.
    """

    population: int = eqx.field(static=True, default=20)
    scale: float = eqx.field(static=True, default=1.0)

    def __check_init__(self):
        check_range("RandomSearch", "population", self.population, ge=2, integer=True)
        check_range("RandomSearch", "scale", self.scale, gt=0.0)

    def build(self, objective: Objective, regulator: AbstractRegulator) -> Trainer:
        params, static = eqx.partition(regulator, eqx.is_inexact_array)
        flat0, unravel = jax.flatten_util.ravel_pytree(params)

        def fitness(flat, key):
            return objective.hard(eqx.combine(unravel(flat), static), key).value

        def init(key):
            del key
            return dict(best=flat0)

        def step(state, key):
            k_draw, k_eval = jr.split(key)
            draws = flat0 + self.scale * jr.normal(k_draw, (self.population - 1, flat0.size))
            pop = jnp.concatenate([state["best"][None], draws])
            fit = jax.vmap(fitness, in_axes=(0, None))(pop, k_eval)
            best = jnp.argmax(jnp.where(jnp.isnan(fit), -jnp.inf, fit))
            nan = jnp.asarray(jnp.nan, jnp.float32)
            new = dict(best=pop[best])
            return new, StepInfo(nan, nan, _all_finite((fit, new)))

        def candidate(state):
            return eqx.combine(unravel(state["best"]), static)

        return Trainer(init, step, candidate, self.population * objective.replicate_steps)

    def config(self) -> dict:
        return dict(method="random", population=self.population, scale=self.scale)


def _evosax_strategies() -> dict:
    try:
        from evosax.algorithms import distribution_based_algorithms
    except ImportError:
        raise ImportError(
            "diffgrn.Evosax needs the optional evosax extra: pip install 'diffgrn[evosax]'"
        ) from None
    return dict(distribution_based_algorithms)


class Evosax(AbstractMethod):
    """Any evosax distribution-based strategy (CMA_ES, Sep_CMA_ES, SNES, xNES, PGPE,
    Open_ES, ARS, …) as a diffgrn method, on the hard utility.

    `strategy` is the name evosax exports (`evosax.algorithms.distribution_based_algorithms`)
    or the strategy class itself. Each generation, evosax's `ask` draws `population`
    candidates around its mean, diffgrn evaluates them on one fresh noise draw in one
    vmapped call, and `tell` gets −U (evosax minimises; a NaN utility counts as worst);
    ask, evaluate and tell are one compiled step. The candidate regulator is the
    strategy's mean. `sigma` sets evosax's `std_init` where the strategy has one.
    `strategy_params` are either fields of the strategy's `default_params` (e.g.
    `std_min=0.01`) or arguments of its constructor (e.g. `optimizer=optax.adam(0.05)`
    for `Open_ES`). Needs `pip install "diffgrn[evosax]"`.
    """

    strategy: Any = eqx.field(static=True)
    population: int = eqx.field(static=True, default=20)
    sigma: float = eqx.field(static=True, default=0.3)
    strategy_params: dict = eqx.field(static=True, default_factory=dict)

    def __init__(
        self, strategy: str | type, population: int = 20, sigma: float = 0.3, **strategy_params
    ):
        self.strategy = strategy
        self.population = population
        self.sigma = sigma
        self.strategy_params = strategy_params

    def __check_init__(self):
        self._strategy_class()  # ImportError / ValueError before any compute
        check_range("Evosax", "population", self.population, ge=2, integer=True)
        check_range("Evosax", "sigma", self.sigma, gt=0.0)
        ctor, fields = self._split(jnp.zeros(2))
        del ctor, fields

    @property
    def name(self) -> str:
        s = self.strategy
        return s if isinstance(s, str) else getattr(s, "__name__", type(s).__name__)

    def _strategy_class(self):
        if not isinstance(self.strategy, str):
            if not isinstance(self.strategy, type):
                raise ValueError(
                    "Evosax.strategy must be an evosax strategy name or class; "
                    f"got {self.strategy!r}"
                )
            return self.strategy
        known = _evosax_strategies()
        if self.strategy not in known:
            raise ValueError(
                f"Evosax.strategy: unknown evosax strategy {self.strategy!r}; expected one "
                f"of {', '.join(sorted(known))}"
            )
        return known[self.strategy]

    def _split(self, solution):
        """(constructor kwargs, default_params overrides), validated by name."""
        import dataclasses
        import inspect

        cls = self._strategy_class()
        accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "solution"}
        ctor = {k: v for k, v in self.strategy_params.items() if k in accepted}
        try:
            strategy = cls(population_size=self.population, solution=solution, **ctor)
        except AssertionError as e:  # evosax asserts, e.g. an even population for Open_ES
            raise ValueError(f"Evosax({self.name!r}, population={self.population}): {e}") from None
        except TypeError as e:  # e.g. a required constructor argument is missing
            raise ValueError(
                f"Evosax({self.name!r}): {e}; pass it as Evosax({self.name!r}, name=value)"
            ) from None
        fields = {f.name for f in dataclasses.fields(strategy.default_params)}
        unknown = set(self.strategy_params) - accepted - fields
        if unknown:
            raise ValueError(
                f"Evosax({self.name!r}): unknown strategy parameter(s) "
                f"{', '.join(sorted(unknown))}; constructor arguments: "
                f"{', '.join(sorted(accepted - {'population_size'}))}; parameters: "
                f"{', '.join(sorted(fields))}"
            )
        params = strategy.default_params
        overrides = {k: v for k, v in self.strategy_params.items() if k in fields and k not in ctor}
        if "std_init" in fields and "std_init" not in overrides:
            overrides["std_init"] = self.sigma
        params = params.replace(
            **{
                k: jnp.asarray(v, getattr(params, k).dtype)
                if isinstance(getattr(params, k), jax.Array)
                else v
                for k, v in overrides.items()
            }
        )
        return strategy, params

    def build(self, objective: Objective, regulator: AbstractRegulator) -> Trainer:
        p0, static = eqx.partition(regulator, eqx.is_inexact_array)
        m0, unravel = jax.flatten_util.ravel_pytree(p0)
        strategy, params = self._split(m0)

        def fitness(flat, key):
            return objective.hard(eqx.combine(unravel(flat), static), key).value

        def init(key):
            return strategy.init(key, m0, params)

        def step(state, key):
            k_ask, k_eval, k_tell = jr.split(key, 3)
            pop, state = strategy.ask(k_ask, state, params)
            fit = jax.vmap(fitness, in_axes=(0, None))(pop, k_eval)
            loss = jnp.where(jnp.isnan(fit), 1.0, -fit)  # evosax minimises; U ≥ 0 > -1
            state, _ = strategy.tell(k_tell, pop, loss, state, params)
            nan = jnp.asarray(jnp.nan, jnp.float32)
            return state, StepInfo(nan, nan, _all_finite((fit, state.mean)))

        def candidate(state):
            return eqx.combine(unravel(state.mean), static)

        return Trainer(init, step, candidate, self.population * objective.replicate_steps)

    def config(self) -> dict:
        return dict(
            method=f"evosax:{self.name}",
            population=self.population,
            sigma=self.sigma,
            strategy_params={k: repr(v) for k, v in self.strategy_params.items()},
        )


class Hybrid(AbstractMethod):
    """Warm start, then fine-tuning: `first` runs `switch` iterations, then `second`
    continues from `first`'s final candidate for the remaining iterations (e.g. an
    ES to find a good basin, then a gradient method to refine in it)."""

    first: AbstractMethod
    second: AbstractMethod
    switch: int = eqx.field(static=True, default=50)

    def __check_init__(self):
        check_range("Hybrid", "switch", self.switch, ge=1, integer=True)
        for name in ("first", "second"):
            if not isinstance(getattr(self, name), AbstractMethod):
                raise ValueError(f"Hybrid.{name} must be a diffgrn method object")

    def build(self, objective: Objective, regulator: AbstractRegulator) -> Trainer:
        raise TypeError("Hybrid has two phases: run it with diffgrn.train")

    def stages(self, iterations: int) -> list[tuple[AbstractMethod, int]]:
        if iterations <= self.switch:
            raise ValueError(
                f"train.iterations must be > Hybrid.switch = {self.switch} "
                f"for a hybrid; got {iterations}"
            )
        return [(self.first, self.switch), (self.second, iterations - self.switch)]

    def config(self) -> dict:
        return dict(
            method="hybrid",
            first=self.first.config(),
            second=self.second.config(),
            switch=self.switch,
        )


def default_optimiser(
    learning_rate: float = 3e-2, clip: float = 1.0
) -> optax.GradientTransformation:
    """Adam after global-norm clipping (the first version used learning rate 1e-2;
    3e-2 reaches the plateau in fewer steps: docs/comparison.md)."""
    check_range("default_optimiser", "learning_rate", learning_rate, gt=0.0)
    check_range("default_optimiser", "clip", clip, gt=0.0)
    return optax.chain(optax.clip_by_global_norm(clip), optax.adam(learning_rate))


GRADIENT_REPLICATES = 25  # per pathwise estimate; docs/comparison.md


class LinearSchedule(eqx.Module):
    """`start` → `end` linearly over the first `steps` steps, then `end`: an Optax-style
    schedule (`optax.linear_schedule`) that also describes itself in saved configs."""

    start: float = eqx.field(static=True)
    end: float = eqx.field(static=True)
    steps: int = eqx.field(static=True)

    def __check_init__(self):
        check_range("LinearSchedule", "steps", self.steps, ge=1, integer=True)

    def __call__(self, count: int | Int[Array, "*shape"]) -> Float[Array, "*shape"]:
        return optax.linear_schedule(self.start, self.end, self.steps)(count)

    @property
    def description(self) -> str:
        return f"linear {self.start} -> {self.end} over {self.steps} steps"


class Gradient(AbstractMethod):
    """An Optax optimiser driven by a gradient estimator of U.

    `optimiser` is any `optax.GradientTransformation` (default: Adam, learning rate
    3e-2, after global-norm clipping at 1.0); `estimator` is a
    `diffgrn.estimators` estimator (default `Pathwise(replicates=25)`:
    backpropagation of U_soft on 25 replicates per step;
    `AntitheticES()` gives OpenAI-ES on U_hard; `Mixture(a, b, weight)` blends two).

    `temperature` and `bandwidth` are optional schedules (Optax style: a callable of
    the step count, e.g. `LinearSchedule(0.5, 0.2, 150)` or
    `optax.exponential_decay(0.5, 100, 0.2, end_value=0.1)`) for the soft readout's
    temperature and the KDE bandwidth; the objective's own values are used where they
    are `None`. They change inside the compiled step.
    """

    optimiser: Any = None
    estimator: AbstractEstimator = eqx.field(
        default_factory=lambda: Pathwise(replicates=GRADIENT_REPLICATES)
    )
    name: str = eqx.field(static=True, default="adam")
    temperature: Callable | None = eqx.field(static=True, default=None)
    bandwidth: Callable | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if self.optimiser is not None and not isinstance(
            self.optimiser, optax.GradientTransformation
        ):
            raise ValueError(
                "Gradient.optimiser must be an optax.GradientTransformation;"
                f" got {type(self.optimiser).__name__}"
            )
        if not isinstance(self.estimator, AbstractEstimator):
            raise ValueError(
                "Gradient.estimator must be a diffgrn estimator (Pathwise, "
                f"AntitheticES, Mixture); got {type(self.estimator).__name__}"
            )
        for field in ("temperature", "bandwidth"):
            value = getattr(self, field)
            if value is not None and not callable(value):
                raise ValueError(
                    f"Gradient.{field} must be a schedule (a callable of the "
                    f"step count, e.g. an optax schedule) or None; got "
                    f"{value!r}"
                )

    def build(self, objective: Objective, regulator: AbstractRegulator) -> Trainer:
        opt = self.optimiser if self.optimiser is not None else default_optimiser()
        params, static = eqx.partition(regulator, eqx.is_inexact_array)

        def init(key):
            del key
            return dict(params=params, opt_state=opt.init(params), count=jnp.zeros((), jnp.int32))

        def step(state, key):
            p, count = state["params"], state["count"]
            obj = objective.anneal(
                temperature=None if self.temperature is None else self.temperature(count),
                bandwidth=None if self.bandwidth is None else self.bandwidth(count),
            )
            ascent, util = self.estimator(obj, eqx.combine(p, static), key)
            grads = jax.tree_util.tree_map(lambda g: -g, eqx.filter(ascent, eqx.is_inexact_array))
            updates, opt_state = opt.update(grads, state["opt_state"], p)
            new = optax.apply_updates(p, updates)
            finite = _all_finite((grads, new)) & ~jnp.isinf(util)
            info = StepInfo(jnp.asarray(util, jnp.float32), optax.tree.norm(grads), finite)
            return dict(params=new, opt_state=opt_state, count=count + 1), info

        def candidate(state):
            return eqx.combine(state["params"], static)

        return Trainer(init, step, candidate, self.estimator.cost(objective))

    def config(self) -> dict:
        schedule = lambda f: None if f is None else getattr(f, "description", "custom")
        return dict(
            method=self.name,
            estimator=self.estimator.config(),
            optimiser="default: clip_by_global_norm(1.0) + adam(3e-2)"
            if self.optimiser is None
            else "custom",
            temperature=schedule(self.temperature),
            bandwidth=schedule(self.bandwidth),
        )


def openes(
    optimiser: optax.GradientTransformation | None = None, sigma: float = 0.05, pairs: int = 16
) -> Gradient:
    """OpenAI-ES: the antithetic ES gradient of U_hard fed to an Optax optimiser."""
    return Gradient(optimiser, AntitheticES(sigma, pairs), name="openes")


METHODS = {
    "es": MuPlusLambdaES,
    "cmaes": CMAES,
    "adam": Gradient,
    "openes": openes,
    "random": RandomSearch,
}


def get_method(
    method: "str | AbstractMethod", optimiser: optax.GradientTransformation | None = None
) -> AbstractMethod:
    """Resolve a method name ('es', 'cmaes', 'adam', 'openes', 'random', or
    'evosax:NAME' for any evosax strategy) or pass a method object through."""
    if isinstance(method, AbstractMethod):
        if optimiser is not None:
            raise ValueError("optimiser= is only used with method='adam' or 'openes'")
        return method
    if isinstance(method, str) and method.startswith("evosax:"):
        if optimiser is not None:
            raise ValueError("optimiser= is only used with method='adam' or 'openes'")
        return Evosax(method.removeprefix("evosax:"))
    if method not in METHODS:
        raise ValueError(
            f"train.method must be one of {', '.join(map(repr, METHODS))}, "
            f"'evosax:NAME' or a diffgrn method object; got {method!r}"
        )
    if method == "adam":
        return Gradient(optimiser)
    if method == "openes":
        return openes(optimiser)
    if optimiser is not None:
        raise ValueError("optimiser= is only used with method='adam' or 'openes'")
    return METHODS[method]()
