"""Population methods on the hard utility, evosax style: a strategy writes `ask` and
`tell` over a flat parameter vector; `AbstractPopulationMethod` does the rest.

The base ravels the regulator (or, given a search space, takes its unit-cube
coordinates: every candidate is clipped into the box before it is evaluated, and
the reported solution too; frozen leaves are never searched), evaluates each
generation's population with the objective's hard utility (negated for a loss) on
one fresh noise draw (common random numbers) in one vmapped call, hands `tell` the
fitness with NaN as the worst (−∞), checks finiteness and reports the strategy's
`solution` as the candidate regulator.
"""

import abc
import dataclasses
import functools
import inspect
from typing import Any

import equinox as eqx
import jax
import jax.flatten_util
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Bool, Float, PRNGKeyArray, PyTree

from ._memory import map_batched
from ._validate import check_range
from .objective import Objective
from .regulator import AbstractRegulator
from .space import AbstractCoordinates
from .trainer import AbstractMethod, StepInfo, Trainer, all_finite, coordinates


class AbstractPopulationMethod(AbstractMethod):
    """A population strategy over the flat parameter vector θ (maximising fitness).

    Subclasses write `ask` (the next population, and any state `tell` needs) and
    `tell` (the new state from the population's fitness, NaN already mapped to −∞).
    The defaults: the state is `dict(mean=θ₀)`, the reported point its `"mean"`, a
    generation's key is split into an ask and an evaluation key (override
    `split_key` for a tell key); `config()` records the constructor arguments.
    """

    @abc.abstractmethod
    def ask(
        self, state: PyTree, key: PRNGKeyArray
    ) -> tuple[Float[Array, "population dim"], PyTree]: ...

    @abc.abstractmethod
    def tell(
        self,
        state: PyTree,
        population: Float[Array, "population dim"],
        fitness: Float[Array, " population"],
        key: PRNGKeyArray | None,
    ) -> PyTree: ...

    def init(self, key: PRNGKeyArray, x0: Float[Array, " dim"]) -> PyTree:
        """The first state around the starting parameters `x0`."""
        del key
        return dict(mean=x0)

    def solution(self, state: PyTree) -> Float[Array, " dim"]:
        """The parameters the strategy reports (its mean, or its incumbent)."""
        return state["mean"]

    def split_key(
        self, key: PRNGKeyArray
    ) -> tuple[PRNGKeyArray, PRNGKeyArray, PRNGKeyArray | None]:
        """A generation's (ask, evaluation, tell) keys."""
        k_ask, k_eval = jr.split(key)
        return k_ask, k_eval, None

    def finite(self, state: PyTree) -> Bool[Array, ""]:
        """Whether the state is fit to continue (by default: all of it finite)."""
        return all_finite(state)

    def build(
        self,
        objective: Objective,
        regulator: AbstractRegulator,
        space: AbstractCoordinates | None = None,
    ) -> Trainer:
        coords = coordinates(space, regulator)
        x0 = coords.encode(regulator)
        sign = objective.direction  # fitness is higher-better: a loss is negated

        def fitness(flat, key):
            return sign * objective.hard(coords.decode(flat), key).value

        def init(key):
            return self.init(key, x0)

        def step(state, key):
            k_ask, k_eval, k_tell = self.split_key(key)
            population, state = self.ask(state, k_ask)
            population = coords.confine(population)  # every candidate in the box
            fit = map_batched(lambda flat: fitness(flat, k_eval), population, batch)
            new = self.tell(state, population, jnp.where(jnp.isnan(fit), -jnp.inf, fit), k_tell)
            nan = jnp.asarray(jnp.nan, jnp.float32)
            return new, StepInfo(nan, nan, all_finite(fit) & self.finite(new))

        def candidate(state):
            return coords.decode(coords.confine(self.solution(state)))

        def ask_shape(key):
            return self.ask(init(key), self.split_key(key)[0])[0]

        size = jax.eval_shape(ask_shape, jr.key(0)).shape[0]
        # the population in one vmapped call where it fits, else in chunks that do
        batch = objective.batch_size(size, f"{type(self).__name__} (one generation)")
        return Trainer(init, step, candidate, size * objective.replicate_steps)


class MuPlusLambdaES(AbstractPopulationMethod):
    """The (μ+λ) evolution strategy of the first version, on the hard utility.

    Each generation, `population - parents` children are drawn as a random parent
    plus Gaussian noise of scale `mutation` on the flat parameter vector; parents and
    children are all (re-)evaluated on one fresh noise draw (common random numbers,
    and no survival by a lucky past draw), and the best `parents` survive. The whole
    population is simulated in one jitted, vmapped call.
    """

    population: int = eqx.field(static=True, default=20)
    """Candidates simulated per generation."""
    parents: int = eqx.field(static=True, default=5)
    """Parents μ kept each generation."""
    mutation: float = eqx.field(static=True, default=0.1)
    """Scale of the Gaussian mutation."""

    def __check_init__(self):
        check_range("MuPlusLambdaES", "parents", self.parents, ge=1, integer=True)
        check_range("MuPlusLambdaES", "population", self.population, ge=2, integer=True)
        if not self.population > self.parents:
            raise ValueError(
                f"MuPlusLambdaES.population must be > MuPlusLambdaES.parents = {self.parents} "
                f"(children are drawn besides the parents); got {self.population}"
            )
        check_range("MuPlusLambdaES", "mutation", self.mutation, gt=0.0)

    def init(self, key: PRNGKeyArray, x0: Float[Array, " dim"]) -> PyTree:
        noise = self.mutation * jr.normal(key, (self.parents - 1, x0.size))
        return dict(parents=jnp.concatenate([x0[None], x0[None] + noise]))

    def split_key(
        self, key: PRNGKeyArray
    ) -> tuple[PRNGKeyArray, PRNGKeyArray, PRNGKeyArray | None]:
        # The first version's stream: ask splits the generation's key itself.
        return key, jr.split(key, 3)[2], None

    def ask(
        self, state: PyTree, key: PRNGKeyArray
    ) -> tuple[Float[Array, "population dim"], PyTree]:
        k_pick, k_mut, _ = jr.split(key, 3)
        parents = state["parents"]
        lam = self.population - self.parents
        pick = jr.randint(k_pick, (lam,), 0, self.parents)
        children = parents[pick] + self.mutation * jr.normal(k_mut, (lam, parents.shape[1]))
        return jnp.concatenate([parents, children]), state

    def tell(
        self,
        state: PyTree,
        population: Float[Array, "population dim"],
        fitness: Float[Array, " population"],
        key: PRNGKeyArray | None,
    ) -> PyTree:
        order = jnp.argsort(-fitness)
        return dict(parents=population[order[: self.parents]])

    def solution(self, state: PyTree) -> Float[Array, " dim"]:
        return state["parents"][0]

    @property
    def name(self) -> str:
        return "es"


@functools.cache
def _cma_constants(n: int, lam: int) -> tuple:
    """Hansen's default weights and learning rates for dimension n, population λ."""
    with jax.ensure_compile_time_eval():  # concrete, also when first asked inside jit
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
    return mu, w, mu_eff, c_s, d_s, c_c, c_1, c_mu, chi_n


class CMAES(AbstractPopulationMethod):
    """CMA-ES (Hansen's (μ/μ_w, λ) covariance matrix adaptation) on the hard utility.

    Written here (about sixty lines of array code) rather than taken from evosax,
    whose current release requires Flax. `population` λ (default 20: the same
    simulations per generation as the (μ+λ)-ES) candidates x = m + σ·B·D·z are
    evaluated on one fresh noise draw in one vmapped call; the best half, with
    log-rank weights, update the mean m, the evolution paths, the full covariance C
    and the step size σ (initially `sigma`). The candidate regulator is the mean.
    """

    population: int = eqx.field(static=True, default=20)
    """Candidates λ per generation."""
    sigma: float = eqx.field(static=True, default=0.3)
    """Initial step size σ."""

    def __check_init__(self):
        check_range("CMAES", "population", self.population, ge=4, integer=True)
        check_range("CMAES", "sigma", self.sigma, gt=0.0)

    def init(self, key: PRNGKeyArray, x0: Float[Array, " dim"]) -> PyTree:
        del key
        return dict(
            mean=x0,
            sigma=jnp.asarray(self.sigma, x0.dtype),
            cov=jnp.eye(x0.size, dtype=x0.dtype),
            p_s=jnp.zeros_like(x0),
            p_c=jnp.zeros_like(x0),
            gen=jnp.zeros((), jnp.int32),
        )

    def ask(
        self, state: PyTree, key: PRNGKeyArray
    ) -> tuple[Float[Array, "population dim"], PyTree]:
        m, sig, cov = state["mean"], state["sigma"], state["cov"]
        d2, b = jnp.linalg.eigh(cov)
        d = jnp.sqrt(jnp.maximum(d2, 1e-20))
        y = jr.normal(key, (self.population, m.size)) * d @ b.T  # rows ~ N(0, C)
        return m + sig * y, dict(state, y=y, b=b, d=d)

    def tell(
        self,
        state: PyTree,
        population: Float[Array, "population dim"],
        fitness: Float[Array, " population"],
        key: PRNGKeyArray | None,
    ) -> PyTree:
        m, sig, cov, y, b, d = (state[k] for k in ("mean", "sigma", "cov", "y", "b", "d"))
        n = m.size
        mu, w, mu_eff, c_s, d_s, c_c, c_1, c_mu, chi_n = _cma_constants(n, self.population)
        order = jnp.argsort(-fitness)
        y_sel = y[order[:mu]]
        y_w = w @ y_sel
        inv_sqrt_c = (b / d) @ b.T
        p_s = (1 - c_s) * state["p_s"] + jnp.sqrt(c_s * (2 - c_s) * mu_eff) * (inv_sqrt_c @ y_w)
        gen = state["gen"] + 1
        norm_ps = jnp.linalg.norm(p_s)
        h_s = (norm_ps / jnp.sqrt(1 - (1 - c_s) ** (2 * gen)) < (1.4 + 2 / (n + 1)) * chi_n).astype(
            m.dtype
        )
        p_c = (1 - c_c) * state["p_c"] + h_s * jnp.sqrt(c_c * (2 - c_c) * mu_eff) * y_w
        rank_mu = (y_sel * w[:, None]).T @ y_sel
        cov = (
            (1 - c_1 - c_mu) * cov
            + c_1 * (jnp.outer(p_c, p_c) + (1 - h_s) * c_c * (2 - c_c) * cov)
            + c_mu * rank_mu
        )
        cov = (cov + cov.T) / 2
        sig = sig * jnp.exp((c_s / d_s) * (norm_ps / chi_n - 1))
        return dict(mean=m + state["sigma"] * y_w, sigma=sig, cov=cov, p_s=p_s, p_c=p_c, gen=gen)

    @property
    def name(self) -> str:
        return "cmaes"


class RandomSearch(AbstractPopulationMethod):
    """Pure random search: the baseline every search method must beat.

    Each generation draws `population - 1` parameter vectors independently around the
    *initial* parameters, θ = θ₀ + `scale`·z (z ~ N(0, I), no adaptation, nothing
    learned from earlier draws), and evaluates them with the incumbent (the best so far)
    on one fresh noise draw (common random numbers, like the ES); the best of these
    becomes the incumbent. Same budget accounting as the ES: `population` simulations
    per generation.
    """

    population: int = eqx.field(static=True, default=20)
    """Draws per generation (with the incumbent)."""
    scale: float = eqx.field(static=True, default=1.0)
    """Scale of the draws around the start θ₀."""

    def __check_init__(self):
        check_range("RandomSearch", "population", self.population, ge=2, integer=True)
        check_range("RandomSearch", "scale", self.scale, gt=0.0)

    def init(self, key: PRNGKeyArray, x0: Float[Array, " dim"]) -> PyTree:
        del key
        return dict(best=x0, start=x0)

    def ask(
        self, state: PyTree, key: PRNGKeyArray
    ) -> tuple[Float[Array, "population dim"], PyTree]:
        start = state["start"]
        draws = start + self.scale * jr.normal(key, (self.population - 1, start.size))
        return jnp.concatenate([state["best"][None], draws]), state

    def tell(
        self,
        state: PyTree,
        population: Float[Array, "population dim"],
        fitness: Float[Array, " population"],
        key: PRNGKeyArray | None,
    ) -> PyTree:
        return dict(best=population[jnp.argmax(fitness)], start=state["start"])

    def solution(self, state: PyTree) -> Float[Array, " dim"]:
        return state["best"]

    @property
    def name(self) -> str:
        return "random"


def _evosax_strategies() -> dict:
    try:
        from evosax.algorithms import distribution_based_algorithms
    except ImportError:
        raise ImportError(
            "diffgrn.Evosax needs the optional evosax extra: pip install 'diffgrn[evosax]'"
        ) from None
    return dict(distribution_based_algorithms)


def _positive(name: str) -> bool:
    """Strategy parameters that are scales or rates: step sizes (`std_*`, `sigma*`),
    learning rates (`lr_*`, `*_lr`), initial temperatures and largest radii."""
    return name != "std_min" and (
        name.startswith(("std_", "sigma", "lr_"))
        or name.endswith("_lr")
        or name in ("temperature_init", "radius_max")
    )


NONNEGATIVE = ("std_min", "radius_min", "temperature_limit")


def _check_strategy_value(strategy: str, name: str, value, default) -> None:
    """A value for an evosax `default_params` field: a finite number (or array of them,
    shaped as the default) where the default is numeric; > 0 for scales and rates,
    >= 0 for lower limits (evosax itself checks neither)."""
    if not isinstance(default, (int, float, jax.Array)) or isinstance(default, bool):
        return
    owner = f"Evosax({strategy!r})"
    try:
        if isinstance(value, (str, bytes)):
            raise TypeError
        array = jnp.asarray(value, jnp.float32)
    except (TypeError, ValueError):
        raise ValueError(f"{owner}.{name} must be a finite number; got {value!r}") from None
    shape = jnp.shape(default)
    if array.shape not in ((), shape):
        raise ValueError(
            f"{owner}.{name} must be a number or an array of shape {shape}; got shape {array.shape}"
        )
    bound = dict(gt=0.0) if _positive(name) else dict(ge=0.0) if name in NONNEGATIVE else {}
    for v in array.ravel().tolist():
        check_range(owner, name, v, **bound)


class Evosax(AbstractPopulationMethod):
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
    for `Open_ES`). Values of numeric parameters are checked when the method is built:
    finite, > 0 for step sizes and learning rates (`std_*`, `sigma*`, `lr_*`, `*_lr`),
    >= 0 for lower limits (`std_min` <= `std_max`). Needs `pip install "diffgrn[evosax]"`.
    """

    strategy: Any = eqx.field(static=True)
    population: int = eqx.field(static=True, default=20)
    """Candidates per generation."""
    sigma: float = eqx.field(static=True, default=0.3)
    """Initial step size."""
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
        ctor, fields = self._split(jnp.zeros(2), check=True)
        del ctor, fields

    @property
    def strategy_name(self) -> str:
        s = self.strategy
        return s if isinstance(s, str) else getattr(s, "__name__", type(s).__name__)

    @property
    def name(self) -> str:
        return f"evosax:{self.strategy_name}"

    def _strategy_class(self):
        if not isinstance(self.strategy, str):
            cls = self.strategy
            if not isinstance(cls, type) or not all(
                callable(getattr(cls, a, None)) for a in ("init", "ask", "tell")
            ):
                raise ValueError(
                    "Evosax.strategy must be an evosax strategy name (e.g. 'SNES') or "
                    f"class (with init, ask, tell and default_params); got {cls!r}"
                )
            return cls
        known = _evosax_strategies()
        if self.strategy not in known:
            raise ValueError(
                f"Evosax.strategy: unknown evosax strategy {self.strategy!r}; expected one "
                f"of {', '.join(sorted(known))}"
            )
        return known[self.strategy]

    def _split(self, solution, check: bool = False):
        """(constructor kwargs, default_params overrides), validated by name (and with
        `check`, by value: once, when the method is built)."""
        cls = self._strategy_class()
        accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "solution"}
        ctor = {k: v for k, v in self.strategy_params.items() if k in accepted}
        try:
            strategy = cls(population_size=self.population, solution=solution, **ctor)
        except AssertionError as e:  # evosax asserts, e.g. an even population for Open_ES
            raise ValueError(
                f"Evosax({self.strategy_name!r}, population={self.population}): {e}"
            ) from None
        except TypeError as e:  # e.g. a required constructor argument is missing
            raise ValueError(
                f"Evosax({self.strategy_name!r}): {e}; pass it as "
                f"Evosax({self.strategy_name!r}, name=value)"
            ) from None
        try:
            fields = {f.name for f in dataclasses.fields(strategy.default_params)}
        except (AttributeError, TypeError):
            raise ValueError(
                f"Evosax.strategy: {self.strategy_name} has no evosax default_params "
                "(expected an evosax strategy class)"
            ) from None
        unknown = set(self.strategy_params) - accepted - fields
        if unknown:
            raise ValueError(
                f"Evosax({self.strategy_name!r}): unknown strategy parameter(s) "
                f"{', '.join(sorted(unknown))}; constructor arguments: "
                f"{', '.join(sorted(accepted - {'population_size'}))}; parameters: "
                f"{', '.join(sorted(fields))}"
            )
        params = strategy.default_params
        overrides = {k: v for k, v in self.strategy_params.items() if k in fields and k not in ctor}
        if "std_init" in fields and "std_init" not in overrides:
            overrides["std_init"] = self.sigma
        for k, v in overrides.items() if check else ():
            _check_strategy_value(self.strategy_name, k, v, getattr(params, k))
        lo, hi = (overrides.get(k, getattr(params, k, None)) for k in ("std_min", "std_max"))
        if check and ("std_min" in overrides or "std_max" in overrides):
            if lo is not None and hi is not None and not float(lo) <= float(hi):
                raise ValueError(
                    f"Evosax({self.strategy_name!r}).std_min must be <= std_max; got "
                    f"std_min={float(lo)}, std_max={float(hi)}"
                )
        params = params.replace(
            **{
                k: jnp.asarray(v, getattr(params, k).dtype)
                if isinstance(getattr(params, k), jax.Array)
                else v
                for k, v in overrides.items()
            }
        )
        return strategy, params

    def _strategy(self, state):
        """evosax's (strategy, params) for the state's dimension, built concretely."""
        with jax.ensure_compile_time_eval():
            return self._split(jnp.zeros(state.mean.shape, state.mean.dtype))

    def init(self, key: PRNGKeyArray, x0: Float[Array, " dim"]) -> PyTree:
        strategy, params = self._split(x0)
        return strategy.init(key, x0, params)

    def split_key(
        self, key: PRNGKeyArray
    ) -> tuple[PRNGKeyArray, PRNGKeyArray, PRNGKeyArray | None]:
        k_ask, k_eval, k_tell = jr.split(key, 3)
        return k_ask, k_eval, k_tell

    def ask(
        self, state: PyTree, key: PRNGKeyArray
    ) -> tuple[Float[Array, "population dim"], PyTree]:
        strategy, params = self._strategy(state)
        return strategy.ask(key, state, params)

    def tell(
        self,
        state: PyTree,
        population: Float[Array, "population dim"],
        fitness: Float[Array, " population"],
        key: PRNGKeyArray | None,
    ) -> PyTree:
        strategy, params = self._strategy(state)
        # evosax minimises −fitness; a failed candidate (−∞) scores worse than any other
        # (1 for a utility, U ≥ 0; the worst loss + 1 for a loss, `direction` −1)
        worst = jnp.max(jnp.where(fitness == -jnp.inf, -jnp.inf, -fitness))
        loss = jnp.where(fitness == -jnp.inf, jnp.maximum(worst, 0.0) + 1.0, -fitness)
        return strategy.tell(key, population, loss, state, params)[0]

    def solution(self, state: PyTree) -> Float[Array, " dim"]:
        return state.mean

    def finite(self, state: PyTree) -> Bool[Array, ""]:
        return all_finite(state.mean)  # evosax keeps ±∞ bookkeeping (best fitness)

    def arguments(self) -> dict:
        # The strategy by its evosax name; its parameters as keyword arguments (a value
        # with no JSON config, e.g. an optax optimiser, makes `config()` say so).
        out = dict(strategy=self.strategy_name, population=self.population, sigma=self.sigma)
        return {**out, **self.strategy_params}
