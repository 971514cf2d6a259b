"""Discovery of behaviours over time: curiosity-driven exploration (IMGEP) in a vector
goal space against uniform random search, in a box of parameters.

`discover(objective, regulator, space, strategy, observe=…, goal=…, descriptors=…,
budget=…, key=…)` simulates `budget` points of the search space (`diffgrn.space`),
records each run with `observe` (`diffgrn.observe.Trajectory`), embeds the recording
with `goal` (e.g. `Spectrum()`) and describes it with `descriptors` (e.g.
`Oscillation()`), and returns a `Library` that holds every simulation's parameters,
initial state and key (`Library.replay(i, …)` re-simulates row i exactly).

- `UniformSearch()`: every point uniform in the box.
- `GoalIMGEP(initial, mutation, scaling, distance)`: `initial` uniform points, then
  rounds of goals drawn uniformly in the box of the goals reached so far scaled by
  `scaling` about its centre; each goal's source is the stored point whose goal is
  nearest (the `distance`, with each dimension divided by the library's range), and
  the round simulates one mutation per goal, θ + `mutation` × (high − low) · z,
  clipped to the box. That rollout is the one stored, so `budget` is exactly the
  number of simulations.

A round is one compiled call (propose, simulate the batch, embed, write into the
preallocated library, all on the device); the call is a module-level `filter_jit`,
so neither later rounds nor later `discover` calls with the same shapes recompile.
The nearest-neighbour search is batched over the round's goals and runs over the
filled part of the library only (chunks of `chunk` rows).
"""

import abc
import math
from collections.abc import Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from ._memory import available_memory
from ._validate import check_instance, check_range
from .config import Configurable
from .discovery import Library, occupied
from .estimators import Pathwise
from .methods import ClippedAdam, Gradient
from .objective import Objective
from .observe import (
    AbstractBehaviour,
    AbstractDistance,
    AbstractObservable,
    AbstractTrajectoryLoss,
    MeanAbsolute,
    Recording,
)
from .regulator import AbstractRegulator
from .space import BoundSpace, SearchSpace
from .train import TrainResult, progress_bar, train
from .utility import TrajectoryFit


class Store(NamedTuple):
    """The library while it is filled, on the device: rows `< count` are set."""

    points: Float[Array, "capacity P"]
    goals: Float[Array, "capacity D"]
    descriptors: Float[Array, "capacity E"]
    keys: Array  # (capacity, 2) uint32 key data
    count: Int[Array, ""]


class System(eqx.Module):
    """What one simulation is: the objective's solve from a point of the space,
    recorded by `observe` (`recording`), embedded by `goal`, described by
    `descriptors` (`run`; `replay` needs only the recording)."""

    objective: Objective
    space: BoundSpace
    observe: AbstractObservable
    goal: AbstractBehaviour | None = None
    descriptors: tuple = ()

    def recording(self, theta, key) -> Recording:
        reg, init = self.space.build(theta)
        states = self.objective.simulate(reg, key, init=init, observe=self.observe)
        dyn = self.objective.dynamics
        return self.observe.recording(states, dyn.n_steps, dyn.dt)

    def run(self, theta, key):
        rec = self.recording(theta, key)
        ok = jnp.all(jnp.isfinite(rec.states))
        g = jnp.asarray(self.goal(rec), jnp.float32)
        parts = [jnp.asarray(d(rec), jnp.float32).reshape(-1) for d in self.descriptors]
        d = jnp.concatenate(parts) if parts else jnp.zeros(0)
        return jnp.where(ok, g, jnp.nan), jnp.where(ok, d, jnp.nan)


class AbstractGoalStrategy(Configurable):
    """How `discover` chooses each round's points: `random_draws` uniform points
    first, then `propose` from the library as it stands (`system` simulates, for a
    strategy that optimises toward its goals before proposing; `solves` says how
    many solves each stored point cost, for fair accounting)."""

    @abc.abstractmethod
    def random_draws(self, budget: int, batch: int) -> int: ...

    @abc.abstractmethod
    def propose(
        self, key: PRNGKeyArray, system: "System", store: Store, batch: int
    ) -> Float[Array, "batch P"]: ...

    def solves(self) -> float:
        """Solves per stored point (its own simulation included)."""
        return 1.0


class UniformSearch(AbstractGoalStrategy):
    """Random search: every point uniform in the box."""

    def random_draws(self, budget, batch):
        return budget

    def propose(self, key, system, store, batch):
        return system.space.uniform(key, batch)


def nearest(
    goals: Float[Array, "batch D"],
    library: Float[Array, "capacity D"],
    count: Int[Array, ""],
    scale: Float[Array, " D"],
    distance: AbstractDistance,
    chunk: int,
) -> Int[Array, " batch"]:
    """For each goal, the index of the nearest of the first `count` library rows
    (rows that are not finite never win), by `distance` with dimensions divided by
    `scale`: a loop over chunks of `chunk` rows up to `count`, batched over goals."""
    n_chunks = (count + chunk - 1) // chunk

    def body(c, carry):
        best, arg = carry
        rows = jax.lax.dynamic_slice_in_dim(library, c * chunk, chunk)
        idx = c * chunk + jnp.arange(chunk)
        d = distance(rows[None], goals[:, None], scale)  # (batch, chunk)
        d = jnp.where((idx < count)[None] & jnp.isfinite(d), d, jnp.inf)
        j = jnp.argmin(d, axis=1)
        dj = jnp.take_along_axis(d, j[:, None], 1)[:, 0]
        better = dj < best
        return jnp.where(better, dj, best), jnp.where(better, c * chunk + j, arg)

    init = (jnp.full(goals.shape[0], jnp.inf), jnp.zeros(goals.shape[0], jnp.int32))
    return jax.lax.fori_loop(0, n_chunks, body, init)[1]


class GoalIMGEP(AbstractGoalStrategy):
    """IMGEP in a vector goal space (see the module docstring): `initial` uniform
    points (default budget // 5, at least one batch), then goals in the reached box
    scaled `scaling` about its centre, the nearest stored point by `distance`
    (dimensions divided by the library's range) mutated by `mutation` × the box.
    The defaults are the AutoDiscJax oscillator tutorial's."""

    initial: int | None = eqx.field(static=True, default=None)
    mutation: float = eqx.field(static=True, default=0.1)
    scaling: float = eqx.field(static=True, default=1.3)
    distance: AbstractDistance = eqx.field(default_factory=MeanAbsolute)
    chunk: int = eqx.field(static=True, default=16)

    def __check_init__(self):
        if self.initial is not None:
            check_range("GoalIMGEP", "initial", self.initial, ge=1, integer=True)
        check_range("GoalIMGEP", "mutation", self.mutation, gt=0.0)
        check_range("GoalIMGEP", "scaling", self.scaling, gt=0.0)
        check_range("GoalIMGEP", "chunk", self.chunk, ge=1, integer=True)
        check_instance("GoalIMGEP", "distance", self.distance, AbstractDistance)

    def random_draws(self, budget, batch):
        if self.initial is None:
            return min(budget, max(batch, budget // 5))
        check_range("GoalIMGEP", "initial", self.initial, ge=1, le=budget, integer=True)
        return min(budget, max(batch, self.initial))

    def propose(self, key, system, store, batch):
        k_goal, k_mut = jr.split(key)
        _, _, source = self.targets(k_goal, store, batch)
        return system.space.mutate(k_mut, source, self.mutation)

    def targets(self, key, store: Store, batch: int):
        """(goals, the library's goal range `scale`, the nearest stored point to each)."""
        g = store.goals
        valid = (jnp.arange(g.shape[0]) < store.count)[:, None] & jnp.isfinite(g)
        lo = jnp.min(jnp.where(valid, g, jnp.inf), axis=0)
        hi = jnp.max(jnp.where(valid, g, -jnp.inf), axis=0)
        lo, hi = jnp.where(jnp.isfinite(lo), lo, 0.0), jnp.where(jnp.isfinite(hi), hi, 0.0)
        centre, half = (lo + hi) / 2, (hi - lo) * self.scaling / 2
        goals = centre - half + 2 * half * jr.uniform(key, (batch, g.shape[1]))
        scale = jnp.where(hi > lo, hi - lo, 1.0)
        source = nearest(goals, g, store.count, scale, self.distance, self.chunk)
        return goals, scale, store.points[source]


@eqx.filter_jit
def _round(store: Store, key, strategy, system: System, batch: int) -> Store:
    k_prop, k_sim = jr.split(key)
    thetas = strategy.propose(k_prop, system, store, batch)
    keys = jr.split(k_sim, batch)
    goals, desc = jax.vmap(system.run)(thetas, keys)
    at = store.count
    put = lambda buf, x: jax.lax.dynamic_update_slice_in_dim(buf, x.astype(buf.dtype), at, 0)
    return Store(
        put(store.points, thetas),
        put(store.goals, goals),
        put(store.descriptors, desc),
        put(store.keys, jr.key_data(keys)),
        at + batch,
    )


@eqx.filter_jit
def _flat_params(bound: BoundSpace, points):
    return jax.vmap(bound.flat_params)(points)


def _check_sizes(system: System, samples: int) -> tuple[int, list]:
    """Declared sizes against what each behaviour returns (before any compute)."""
    theta = jnp.zeros(system.space.size)
    rec = jax.eval_shape(system.recording, theta, jr.key(0))
    sizes = []
    for field, b in [("goal", system.goal)] + [("descriptors", d) for d in system.descriptors]:
        out = jax.eval_shape(b, rec)
        declared = b.size(samples)
        if out.shape != (declared,):
            raise ValueError(
                f"discover.{field}: {type(b).__name__} declares size {declared} but returns "
                f"shape {out.shape} for a recording of {samples} samples"
            )
        sizes.append(declared)
    return sizes[0], sizes[1:]


def discover(
    objective: Objective,
    regulator: AbstractRegulator,
    space: SearchSpace,
    strategy: AbstractGoalStrategy | None = None,
    *,
    observe: AbstractObservable,
    goal: AbstractBehaviour,
    descriptors: Sequence[AbstractBehaviour] = (),
    budget: int = 5000,
    batch: int = 100,
    key: PRNGKeyArray,
    bins: int = 20,
    progress: bool = True,
) -> Library:
    """Explore the behaviours of `regulator`'s family in `space` (see the module
    docstring). Returns a `Library`: `params` (full regulator parameters), `points`
    (the searched coordinates), `inits`, `keys`, `goals` (the goal embeddings) and
    `descriptors` (the concatenated descriptors, binned over their bounds)."""
    strategy = GoalIMGEP() if strategy is None else strategy
    check_instance("discover", "strategy", strategy, AbstractGoalStrategy)
    check_instance("discover", "objective", objective, Objective)
    check_instance("discover", "space", space, SearchSpace)
    check_instance("discover", "observe", observe, AbstractObservable)
    check_instance("discover", "goal", goal, AbstractBehaviour)
    descriptors = tuple(descriptors)
    for d in descriptors:
        check_instance("discover", "descriptors", d, AbstractBehaviour)
    check_range("discover", "budget", budget, ge=1, integer=True)
    check_range("discover", "batch", batch, ge=1, integer=True)
    check_range("discover", "bins", bins, ge=1, integer=True)
    objective.check_regulator(regulator)
    dyn = objective.dynamics
    observe.check(dyn.n_steps, objective.n_cells, objective.genes)
    batch = min(batch, budget)
    observe.check_memory(
        dyn.n_steps, objective.replicates, objective.n_cells, objective.genes, batch
    )
    bound = space.bind(regulator)
    system = System(objective, bound, observe, goal, descriptors)
    samples = observe.samples(dyn.n_steps)
    n_goal, n_desc = _check_sizes(system, samples)
    rounds = -(-budget // batch)
    chunk = getattr(strategy, "chunk", batch)
    capacity = -(-rounds * batch // chunk) * chunk
    need = 4 * capacity * (n_goal + sum(n_desc) + bound.size + 2)
    observe_name = type(observe).__name__
    if need > 0.5 * available_memory():
        raise ValueError(
            f"discover: a library of {budget} rows of {n_goal} goal numbers needs about "
            f"{need / 2**30:.3g} GiB: lower budget, or record fewer samples ({observe_name})"
        )
    store = Store(
        jnp.zeros((capacity, bound.size), jnp.float32),
        jnp.full((capacity, n_goal), jnp.nan, jnp.float32),
        jnp.full((capacity, sum(n_desc)), jnp.nan, jnp.float32),
        jnp.zeros((capacity, 2), jnp.uint32),
        jnp.asarray(0, jnp.int32),
    )
    # Random rounds are whole rounds: the count drawn (and recorded) is rounded up to them.
    n_init = min(budget, -(-strategy.random_draws(budget, batch) // batch) * batch)
    uniform = UniformSearch()
    bar = progress_bar(budget, f"discover ({type(strategy).__name__})", progress)
    done = 0
    for r in range(rounds):
        chosen = uniform if done < n_init else strategy
        store = _round(store, jr.fold_in(key, r), chosen, system, batch)
        done += batch
        if bar is not None:
            bar.update(min(batch, budget - done + batch))
    if bar is not None:
        bar.close()
    points, goals, desc, keys = (np.asarray(x)[:budget] for x in store[:4])
    params = np.asarray(_flat_params(bound, jnp.asarray(points)))
    inits = points[:, bound.size - bound.genes :] if bound.genes else None
    bounds = []
    rec_dt = observe.recording(None, dyn.n_steps, dyn.dt).dt
    for d in descriptors:
        b = d.bounds(rec_dt, samples)
        bounds += b if b is not None else [(math.nan, math.nan)] * d.size(samples)
    names = [n for d in descriptors for n in d.names(samples)]
    coverage = []
    if descriptors and all(math.isfinite(lo) for lo, _ in bounds):
        coverage = [
            (min(n, budget), occupied(desc[: min(n, budget)], bounds, bins))
            for n in range(batch, rounds * batch + 1, batch)
        ]
    config = dict(
        method=strategy.config(),
        budget=budget,
        batch=batch,
        initial=n_init,
        bins=bins,
        space=space.config(),
        observe=observe.config(),
        goal=goal.config(),
        descriptors=[d.config() for d in descriptors],
        objective=objective.config(),
    )
    return Library(
        params,
        desc,
        np.full(budget, np.nan, np.float32),
        np.zeros((budget, 0), np.int8),
        coverage,
        names,
        bounds,
        bins,
        regulator,
        config,
        points=points,
        inits=inits,
        keys=keys,
        goals=goals,
    )


def replay(
    library: Library,
    rows: "int | Sequence[int] | np.ndarray",
    objective: Objective,
    space: SearchSpace,
    observe: AbstractObservable,
) -> Float[Array, "rows replicates times cells genes"]:
    """Re-simulate library rows from their stored parameters, initial states and keys
    (through the same vmapped solve `discover` ran), recorded by `observe`."""
    idx = library.rows(rows, "behaviour.replay's rows")
    if library.points is None or library.keys is None:
        raise ValueError(
            "behaviour.replay needs a library from behaviour.discover (it records each "
            "row's points and keys); this one holds patterns only (diffgrn.explore)"
        )
    system = System(objective, space.bind(library.template), observe)
    pts = jnp.asarray(library.points[idx])
    keys = jr.wrap_key_data(jnp.asarray(library.keys[idx]))
    return _replay(system, pts, keys)


@eqx.filter_jit
def _replay(system: System, pts, keys):
    return jax.vmap(lambda th, k: system.recording(th, k).states)(pts, keys)


# ---------------------------------------------------------------- fine-tuning


def fit(
    objective: Objective,
    space: SearchSpace,
    start: AbstractRegulator,
    loss: AbstractTrajectoryLoss,
    observe: AbstractObservable,
    *,
    steps: int = 100,
    optimiser: ClippedAdam | None = None,
    key: PRNGKeyArray,
    **train_options,
) -> TrainResult:
    """`train` toward a target trajectory: `objective` scored by
    `TrajectoryFit(loss, observe)`, `Gradient(optimiser, Pathwise())` for `steps`
    steps in `space` from `start` (a `Started` when the space searches the initial
    state, e.g. `space.bind(regulator).regulator(theta)`). The start counts among the
    candidates, so the result is never worse on the loss than where it began.
    Default optimiser: Adam(1e-3, b1=0.02, b2=0.001) unclipped (the tutorial's)."""
    check_range("fit", "steps", steps, ge=1, integer=True)
    opt = ClippedAdam(1e-3, clip=None, b1=0.02, b2=0.001) if optimiser is None else optimiser
    obj = objective.replace(utility=TrajectoryFit(loss, observe))
    method = Gradient(opt, Pathwise())
    opts = dict(iterations=steps, progress=False) | train_options
    return train(obj, start, method, key=key, space=space, **opts)


def loss_of(objective: Objective, space: BoundSpace, loss: AbstractTrajectoryLoss, observe, key):
    """A jitted `theta (n, P) -> loss (n,)`: the `TrajectoryFit` score of each point
    of `space` (one batched solve)."""
    obj = objective.replace(utility=TrajectoryFit(loss, observe))
    return jax.jit(jax.vmap(lambda th: obj.hard(space.regulator(th), key).value))
