"""Training methods: the gradient method, the hybrid, and the registry of names.

A method's `build(objective, regulator)` returns a `Trainer` (`diffgrn.trainer`) whose
pure functions the `train` loop compiles once per phase. The population methods
(ES, CMA-ES, random search, evosax) share `AbstractPopulationMethod`
(`diffgrn.population`); all of them are importable from here.
"""

import inspect
import re
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int, PyTree

from ._memory import available_memory
from ._validate import check_range
from .config import Configurable
from .estimators import AbstractEstimator, AntitheticES, Pathwise
from .objective import Objective
from .population import (
    CMAES,
    AbstractPopulationMethod,
    Evosax,
    MuPlusLambdaES,
    RandomSearch,
)
from .regulator import AbstractRegulator
from .space import AbstractCoordinates
from .trainer import AbstractMethod, StepInfo, Trainer, all_finite, build, coordinates

__all__ = [
    "CMAES",
    "METHODS",
    "ClippedAdam",
    "AbstractMethod",
    "AbstractPopulationMethod",
    "Evosax",
    "Gradient",
    "Hybrid",
    "HybridState",
    "LinearSchedule",
    "MuPlusLambdaES",
    "RandomSearch",
    "StepInfo",
    "Trainer",
    "default_optimiser",
    "get_method",
    "openes",
    "register_method",
]


class HybridState(eqx.Module):
    """A `Hybrid`'s state: its stage (0: `first`, 1: `second`), the steps taken in
    that stage, and the stage's method state."""

    stage: int = eqx.field(static=True)
    steps: Int[Array, ""]
    inner: PyTree


class Hybrid(AbstractMethod):
    """Warm start, then fine-tuning (default: CMA-ES, then Adam): `first` runs `switch`
    iterations, then `second` continues from `first`'s final candidate for the
    remaining iterations (an ES finds a good basin, a gradient method refines in it). Its state
    (`HybridState`) holds the stage and the stage's method state; the switch is a
    phase of the `train` loop, which compiles `second`'s step then."""

    first: AbstractMethod = eqx.field(default_factory=CMAES)
    second: AbstractMethod = eqx.field(default_factory=lambda: Gradient())
    switch: int = eqx.field(static=True, default=50)
    """Iterations of `first` before `second` takes over."""

    def __check_init__(self):
        check_range("Hybrid", "switch", self.switch, ge=1, integer=True)
        for name in ("first", "second"):
            inner = getattr(self, name)
            if not isinstance(inner, AbstractMethod):
                raise ValueError(f"Hybrid.{name} must be a diffgrn method object")
            if isinstance(inner, Hybrid):
                raise ValueError(f"Hybrid.{name} must be a single-phase method, not a Hybrid")

    def check_iterations(self, iterations: int) -> None:
        if iterations <= self.switch:
            raise ValueError(
                f"train.iterations must be > Hybrid.switch = {self.switch} "
                f"for a hybrid; got {iterations}"
            )

    def build(
        self,
        objective: Objective,
        regulator: AbstractRegulator,
        space: AbstractCoordinates | None = None,
    ) -> Trainer:
        stages = (
            build(self.first, objective, regulator, space),
            build(self.second, objective, regulator, space),
        )
        zero = lambda: jnp.zeros((), jnp.int32)

        def init(key):
            return HybridState(0, zero(), stages[0].init(key))

        def step(state, key):
            inner, info = stages[state.stage].step(state.inner, key)
            return HybridState(state.stage, state.steps + 1, inner), info

        def candidate(state):
            return stages[state.stage].candidate(state.inner)

        def phase_end(state):
            return state.stage == 0 and int(state.steps) >= self.switch

        def next_phase(state, key):
            start = stages[0].candidate(state.inner)  # second starts where first ended
            return HybridState(1, zero(), build(self.second, objective, start, space).init(key))

        def cost(state):
            return stages[state.stage].cost(state.inner)

        return Trainer(init, step, candidate, cost, phase_end, next_phase)

    @property
    def name(self) -> str:
        return "hybrid"


class ClippedAdam(Configurable):
    """Adam after global-norm clipping, as an optimiser that describes itself in configs:
    `init` and `update` are those of `optax.chain(optax.clip_by_global_norm(clip),
    optax.adam(learning_rate, b1, b2))` (`transformation()`; `clip=None`: Adam
    alone), so it goes wherever an Optax optimiser goes in `Gradient`, and
    `Gradient.config()` records it.

    `reference_fan_in` (default 8) scales the step with the regulator's width: Adam's
    step is multiplied by min(1, reference_fan_in / F), F the largest fan-in of the
    parameters' weight matrices (the hidden width of an MLP), so the learning rate
    falls as 1 / width past width 8 (μP's rule for Adam's hidden layers). Adam moves
    every parameter by about the learning rate whatever its gradient, so a layer of
    width F changes its outputs F times as much per step; without the scaling, Adam
    at 3e-2 sends MLPs of widths (64, 64) and (256, 256) to U = 0 on the open chain
    in a few steps, with it they train as (8, 8) does (benchmarks/gradient_width.py;
    docs/studies.md, "Where backpropagation wins"). Regulators no wider than 8
    (model.md's MLP, `TanhRegulator`, `TranscriptionalRegulator` with ≤ 8 genes) are
    unaffected. `None`: no scaling."""

    learning_rate: float = eqx.field(static=True, default=3e-2)
    """Learning rate of Adam."""
    clip: float | None = eqx.field(static=True, default=1.0)
    """Global-norm clip of the gradient (None: none)."""
    b1: float = eqx.field(static=True, default=0.9)
    b2: float = eqx.field(static=True, default=0.999)
    reference_fan_in: int | None = eqx.field(static=True, default=8)

    def __check_init__(self):
        check_range("ClippedAdam", "learning_rate", self.learning_rate, gt=0.0)
        if self.clip is not None:
            check_range("ClippedAdam", "clip", self.clip, gt=0.0)
        check_range("ClippedAdam", "b1", self.b1, ge=0.0, lt=1.0)
        check_range("ClippedAdam", "b2", self.b2, ge=0.0, lt=1.0)
        if self.reference_fan_in is not None:
            check_range(
                "ClippedAdam", "reference_fan_in", self.reference_fan_in, ge=1, integer=True
            )

    def width_factor(self, params: PyTree) -> float:
        """min(1, reference_fan_in / the largest fan-in among `params`' matrices): the
        factor on the learning rate (1 without matrices or without `reference_fan_in`)."""
        if self.reference_fan_in is None:
            return 1.0
        leaves = jax.tree_util.tree_leaves(eqx.filter(params, eqx.is_inexact_array))
        fan_in = max((x.shape[-1] for x in leaves if x.ndim >= 2), default=1)
        return min(1.0, self.reference_fan_in / fan_in)

    def transformation(self, params: PyTree | None = None) -> optax.GradientTransformation:
        """The Optax chain, its learning rate scaled for `params` (`width_factor`)."""
        factor = 1.0 if params is None else self.width_factor(params)
        adam = optax.adam(self.learning_rate * factor, b1=self.b1, b2=self.b2)
        if self.clip is None:  # plain Adam
            return adam
        return optax.chain(optax.clip_by_global_norm(self.clip), adam)

    def arguments(self) -> dict:
        out = super().arguments()
        for name, default in (("b1", 0.9), ("b2", 0.999)):  # defaults left out of configs
            if out[name] == default:
                del out[name]
        return out

    def init(self, params: PyTree) -> PyTree:
        return self.transformation(params).init(params)

    def update(self, updates: PyTree, state: PyTree, params: PyTree | None = None):
        if params is None and self.reference_fan_in is not None:
            raise ValueError(
                "ClippedAdam.update needs params to scale its step with the width "
                "(reference_fan_in); pass them, or use ClippedAdam(reference_fan_in=None)"
            )
        return self.transformation(params).update(updates, state, params)


def default_optimiser(learning_rate: float = 3e-2, clip: float = 1.0) -> ClippedAdam:
    """Adam after global-norm clipping (the first version used learning rate 1e-2;
    3e-2 reaches the plateau in fewer steps: docs/comparison.md), its step scaled as
    1 / width past width 8 (`ClippedAdam.reference_fan_in`): a `ClippedAdam`, which
    `Gradient` takes like an `optax.GradientTransformation` and records in its
    config."""
    check_range("default_optimiser", "learning_rate", learning_rate, gt=0.0)
    check_range("default_optimiser", "clip", clip, gt=0.0)
    return ClippedAdam(learning_rate, clip)


GRADIENT_REPLICATES = 25  # per pathwise estimate; docs/comparison.md


class LinearSchedule(Configurable):
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

    `optimiser` is a `ClippedAdam` (`None`, the default: `ClippedAdam()`, Adam at
    learning rate 3e-2 after global-norm clipping at 1.0, the rate falling as 1 / width
    past width 8) or any
    `optax.GradientTransformation` (which a saved config cannot describe: `config()`
    then raises a TypeError naming the field); `estimator` is a
    `diffgrn.estimators` estimator (default `Pathwise(replicates=25)`:
    backpropagation of U_soft on 25 replicates per step;
    `AntitheticES()` gives OpenAI-ES on U_hard; `Mixture(a, b, weight)` blends two).

    `temperature` and `bandwidth` are optional schedules (Optax style: a callable of
    the step count, e.g. `LinearSchedule(0.5, 0.2, 150)` or
    `optax.exponential_decay(0.5, 100, 0.2, end_value=0.1)`) for the soft readout's
    temperature and the KDE bandwidth; the objective's own values are used where they
    are `None`. They change inside the compiled step. A `LinearSchedule` is recorded
    in configs; a schedule function (e.g. an optax one) is not (`config()` says so).
    """

    optimiser: Any = None
    estimator: AbstractEstimator = eqx.field(
        default_factory=lambda: Pathwise(replicates=GRADIENT_REPLICATES)
    )
    """The gradient estimator (`diffgrn.estimators`): `Pathwise()` backpropagates U_soft,
    `LikelihoodRatio()` and `AntitheticES()` estimate ∇U_hard, `InverseVariance(a, b)`
    combines two per parameter."""
    name: str = eqx.field(static=True, default="adam")
    temperature: Callable | None = eqx.field(static=True, default=None)
    bandwidth: Callable | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if self.optimiser is not None and not isinstance(
            self.optimiser, (optax.GradientTransformation, ClippedAdam)
        ):
            raise ValueError(
                "Gradient.optimiser must be a diffgrn.ClippedAdam or an "
                f"optax.GradientTransformation; got {type(self.optimiser).__name__}"
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

    def check_memory(
        self, objective: Objective, regulator: AbstractRegulator, copies: int = 1
    ) -> None:
        """Refuse, before anything is compiled, `copies` estimates at once (a population
        of learners runs several) that cannot fit in the available memory."""
        check_range("Gradient.check_memory", "copies", copies, ge=1, integer=True)
        need = copies * self.estimator.memory_bytes(objective, regulator)
        have = available_memory()
        if need > have:
            name = type(self.estimator).__name__
            what = f"one {name} estimate needs"
            if copies > 1:
                what = f"{copies} {name} estimates at once (one per learner) need"
            raise ValueError(
                f"Gradient: {what} about "
                f"{need / 2**30:.3g} GiB but about {have / 2**30:.3g} GiB are available; "
                "lower the replicates, cells or steps it simulates (and its own size: "
                "AntitheticES.pairs, LikelihoodRatio.batches), truncate backpropagation "
                "(Pathwise(backprop_steps=k), Dynamics(checkpoints=k)), "
                + ("train fewer learners at once " if copies > 1 else "")
                + "or use a population method"
            )

    def build(
        self,
        objective: Objective,
        regulator: AbstractRegulator,
        space: AbstractCoordinates | None = None,
    ) -> Trainer:
        self.check_memory(objective, regulator)
        opt = self.optimiser if self.optimiser is not None else ClippedAdam()
        coords = coordinates(space, regulator)
        params = coords.params(regulator)
        sign = objective.direction  # optax descends: −U for a utility, +L for a loss

        def init(key):
            del key
            return dict(params=params, opt_state=opt.init(params), count=jnp.zeros((), jnp.int32))

        def step(state, key):
            p, count = state["params"], state["count"]
            obj = objective.anneal(
                temperature=None if self.temperature is None else self.temperature(count),
                bandwidth=None if self.bandwidth is None else self.bandwidth(count),
            )
            ascent, util = self.estimator(obj, coords.regulator(p), key)
            grads = jax.tree_util.tree_map(lambda g: -sign * g, coords.gather(ascent))
            updates, opt_state = opt.update(grads, state["opt_state"], p)
            new = coords.project(optax.apply_updates(p, updates))  # back into the box
            finite = all_finite((grads, new)) & ~jnp.isinf(util)
            info = StepInfo(jnp.asarray(util, jnp.float32), optax.tree.norm(grads), finite)
            return dict(params=new, opt_state=opt_state, count=count + 1), info

        def candidate(state):
            return coords.regulator(state["params"])

        return Trainer(init, step, candidate, self.estimator.cost(objective))

    def arguments(self) -> dict:
        out = super().arguments()
        for field, kind in (
            ("optimiser", "a diffgrn.ClippedAdam"),
            ("temperature", "a diffgrn.LinearSchedule"),
            ("bandwidth", "a diffgrn.LinearSchedule"),
        ):
            value = out[field]
            if value is not None and not isinstance(value, Configurable):
                raise TypeError(
                    f"Gradient.{field} is a custom {type(value).__name__}, which has no JSON "
                    f"config (a saved run cannot rebuild it); use {kind} or a "
                    "diffgrn.config.Configurable of your own"
                )
        return out


def openes(
    optimiser: "optax.GradientTransformation | ClippedAdam | None" = None,
    sigma: float = 0.05,
    pairs: int = 16,
) -> Gradient:
    """OpenAI-ES: the antithetic ES gradient of U_hard fed to an Optax optimiser."""
    return Gradient(optimiser, AntitheticES(sigma, pairs), name="openes")


METHODS = {
    "es": MuPlusLambdaES,
    "cmaes": CMAES,
    "adam": Gradient,
    "openes": openes,
    "random": RandomSearch,
    "hybrid": Hybrid,
}
"""Method names (`train(method=NAME)`, `compare(methods=[NAME, ...])`; the command's
`--method` takes these built-in ones) → a factory of the method from its defaults
(`register_method` adds one)."""


def register_method(name: str, factory: Callable[[], AbstractMethod]) -> None:
    """Give a method a name that `get_method`, `train` and `compare` accept: letters,
    digits, `_`, `.` and `-` (it names run folders, `NAME-seedK`); registering a name
    again with the same factory is a no-op (a module reloaded)."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"register_method: a name is letters, digits, _ . -; got {name!r}")
    if name.startswith("evosax") or METHODS.get(name, factory) is not factory:
        raise ValueError(f"register_method: {name!r} is taken (or reserved for evosax)")
    if not callable(factory):
        raise ValueError(f"register_method: factory must be callable; got {factory!r}")
    METHODS[name] = factory


def get_method(
    method: "str | AbstractMethod",
    optimiser: "optax.GradientTransformation | ClippedAdam | None" = None,
) -> AbstractMethod:
    """Resolve a method name ('es', 'cmaes', 'adam', 'openes', 'random', 'hybrid',
    'pbt', one `register_method` added, or 'evosax:NAME' for any evosax strategy) or
    pass a method object through."""
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
    factory = METHODS[method]
    if optimiser is None:
        return factory()
    if "optimiser" not in inspect.signature(factory).parameters:
        raise ValueError("optimiser= is only used with method='adam' or 'openes'")
    return factory(optimiser=optimiser)
