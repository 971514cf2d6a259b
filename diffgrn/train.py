"""`train`: one loop for every method, one history format for every method."""

import dataclasses
import hashlib
import io
import json
import math
import os
import shutil
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import PRNGKeyArray, PyTree

from ._interrupt import held
from ._memory import map_batched
from ._validate import check_key, check_range
from .assessment import Assessment, warn_bound
from .config import Configurable, type_name
from .methods import AbstractMethod, ClippedAdam, Trainer, get_method
from .objective import Objective
from .regulator import AbstractRegulator, Started
from .space import SearchSpace
from .trainer import build as build_trainer
from .utility import PatternInformation

HISTORY_FIELDS = (
    "iteration",
    "hard_utility",
    "hard_s_pat",
    "hard_s_rep",
    "soft_utility",
    "grad_norm",
    "wall_time",
    "replicate_steps",
)

CHECK_FIELDS = ("iteration", "mean", "lower", "wall_time", "replicate_steps")
"""What every re-assessment in `History.checks` holds (`reached` reads them)."""


def _number(v) -> bool:
    """A number of a JSON record (None: a NaN or inf written as null)."""
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def _is_check(c) -> bool:
    return (
        isinstance(c, dict) and all(k in c for k in CHECK_FIELDS) and all(map(_number, c.values()))
    )


@dataclasses.dataclass
class History:
    """Per-iteration record; the same fields for every method (NaN = undefined).

    - `hard_utility`, `hard_s_pat`, `hard_s_rep`: the method's current candidate on
      fresh noise (an independent key each iteration).
    - `soft_utility`, `grad_norm`: from the gradient step (NaN for ES).
    - `wall_time`: cumulative seconds inside the method's compiled steps
      (compilation and the monitoring evaluation excluded).
    - `replicate_steps`: cumulative simulated replicate-steps used by the method.
    - `checks`: re-assessments of the candidate at chosen iterations (`train(reassess=…)`),
      one dict each: iteration, mean, std, repeats, `lower` and `upper` (the mean's
      95 % bounds, Student t), `direction` (the objective's: +1 higher is better, −1
      a loss), wall_time, replicate_steps. What a fair time-to-target uses.
    - `direction`: +1 when a higher `hard_utility` is better, −1 for a loss (the
      objective's `direction`, e.g. a `TrajectoryFit`).

    An append-only record: `train`'s loop is the one place that grows it.
    """

    iteration: list = dataclasses.field(default_factory=list)
    hard_utility: list = dataclasses.field(default_factory=list)
    hard_s_pat: list = dataclasses.field(default_factory=list)
    hard_s_rep: list = dataclasses.field(default_factory=list)
    soft_utility: list = dataclasses.field(default_factory=list)
    grad_norm: list = dataclasses.field(default_factory=list)
    wall_time: list = dataclasses.field(default_factory=list)
    replicate_steps: list = dataclasses.field(default_factory=list)
    checks: list = dataclasses.field(default_factory=list)
    direction: int = 1

    def __len__(self):
        return len(self.iteration)

    def to_dict(self) -> dict:
        finite = lambda v: None if isinstance(v, float) and not math.isfinite(v) else v
        d = {k: [finite(v) for v in getattr(self, k)] for k in HISTORY_FIELDS}
        d["checks"] = [{k: finite(v) for k, v in c.items()} for c in self.checks]
        return d | dict(direction=self.direction)

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        """The history `to_dict` wrote; a ValueError naming the field for anything else
        (the caller names the file)."""
        if not isinstance(d, dict):
            raise ValueError(f"a history must be a mapping; got {repr(d)[:80]}")
        missing = [k for k in HISTORY_FIELDS if k not in d]
        if missing:
            raise ValueError(f"history is missing fields {missing}")
        for k in HISTORY_FIELDS:
            if not isinstance(d[k], list) or not all(map(_number, d[k])):
                raise ValueError(
                    f"history's '{k}' must be a list of numbers; got {repr(d[k])[:80]}"
                )
        lengths = {k: len(d[k]) for k in HISTORY_FIELDS}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"history's fields differ in length ({lengths})")
        raw = d.get("checks", [])
        if not isinstance(raw, list) or not all(_is_check(c) for c in raw):
            raise ValueError(
                "history's 'checks' must be a list of re-assessments (mappings of numbers "
                f"with {', '.join(CHECK_FIELDS)}); got {repr(raw)[:80]}"
            )
        nan = lambda v: math.nan if v is None else v
        checks = [{k: nan(v) for k, v in c.items()} for c in raw]
        # older records: the direction their checks carry, else a utility's
        direction = d.get("direction", checks[0].get("direction", 1) if checks else 1)
        if direction not in (1, -1) or isinstance(direction, bool):
            raise ValueError(f"history's direction must be 1 or -1; got {direction!r}")
        return cls(**{k: [nan(v) for v in d[k]] for k in HISTORY_FIELDS}, checks=checks,
                   direction=direction)  # fmt: skip

    def append(self, row: dict) -> None:
        """Record one iteration (a value for each of `HISTORY_FIELDS`)."""
        for k in HISTORY_FIELDS:
            getattr(self, k).append(row[k])

    def first(self, n: int) -> "History":
        """The record of the first `n` iterations (their checks included)."""
        fields = {k: getattr(self, k)[:n] for k in HISTORY_FIELDS}
        checks = [c for c in self.checks if c["iteration"] < n]
        return History(**fields, checks=checks, direction=self.direction)


@dataclasses.dataclass
class TrainResult:
    """What `train` returns.

    `best_regulator` is chosen in two stages: the `select_top` candidates with the
    best hard utility on fresh noise during training (the highest; the lowest for a
    loss, `objective.direction` −1, e.g. a `TrajectoryFit`: what the method optimised)
    — the start among them, as iteration −1, so a result is never one that scored
    worse than its start — are re-assessed on `select_repeats` further independent
    draws, and the best mean wins (a single noisy maximum over many iterations is
    biased upward: the winner's curse).
    `best_utility` is that mean, `selection` records the re-assessment. `error` is set (and
    training stopped early) when states, utilities or gradients became non-finite or the
    run was interrupted.
    """

    best_regulator: AbstractRegulator | None  # None in `Comparison.collect`
    final_regulator: AbstractRegulator | None
    best_utility: float
    best_iteration: int
    config: dict
    history: History
    compile_time: float
    error: str | None = None
    selection: dict | None = None


@dataclasses.dataclass(frozen=True)
class TrainState:
    """Where training stands: all the loop carries from one iteration to the next,
    passed in and returned, checkpointed and resumed as a whole.

    `method_state` is the method's pytree; `phase` counts its phases (a `Hybrid`'s
    stages), `phase_iteration` the iterations done in the current one (the step keys
    derive from `key`, the phase and that count). `pool` holds the `select_top` best
    (hard utility, iteration, candidate) seen; `wall_time` and `replicate_steps` are
    cumulative. `history` is shared append-only by the states of one run.
    """

    method_state: PyTree
    key: PRNGKeyArray
    history: History
    best_regulator: AbstractRegulator
    final_regulator: AbstractRegulator
    best_utility: float = -math.inf
    best_iteration: int = -1
    pool: tuple = ()
    iteration: int = 0
    phase: int = 0
    phase_iteration: int = 0
    wall_time: float = 0.0
    replicate_steps: int = 0
    compile_time: float = 0.0
    error: str | None = None

    def replace(self, **changes) -> "TrainState":
        return dataclasses.replace(self, **changes)

    def result(self, config: dict) -> TrainResult:
        """The `TrainResult` of training stopped here (before the final re-selection)."""
        history = self.history
        if len(history) != self.iteration:  # interrupted between appending and moving on
            history = history.first(self.iteration)
        return TrainResult(
            self.best_regulator,
            self.final_regulator,
            self.best_utility,
            self.best_iteration,
            config,
            history,
            self.compile_time,
            self.error,
        )


@dataclasses.dataclass(frozen=True)
class _Run:
    """What stays fixed over one `train` call."""

    iterations: int
    config: dict
    monitor: Objective
    select_top: int
    name: str
    check_points: frozenset = frozenset()
    check_repeats: int = 0
    direction: int = 1  # +1: the highest utility is best; −1: the lowest loss
    time_budget: float | None = None


def train(
    objective: "Objective | Configurable",
    regulator: AbstractRegulator | None = None,
    method: "str | AbstractMethod" = "es",
    *,
    key: PRNGKeyArray | None = None,
    iterations: int | None = None,
    optimiser: "optax.GradientTransformation | ClippedAdam | None" = None,
    eval_replicates: int | None = None,
    progress: bool = True,
    callback: Callable[[int, "TrainResult"], None] | None = None,
    select_top: int = 5,
    select_repeats: int = 5,
    checkpoint: "str | os.PathLike | None" = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    reassess: int | None = None,
    reassess_repeats: int = 10,
    space: "SearchSpace | None" = None,
    time_budget: float | None = None,
) -> TrainResult:
    """Train `regulator` on `objective` with `method` ('es', 'adam' or a method object).

    Each iteration runs one compiled method step, then evaluates the method's current
    candidate with the hard utility on fresh noise (`eval_replicates`, default the
    objective's replicates). `optimiser` (an `optax.GradientTransformation`) replaces
    the default Adam for `method='adam'`. `callback(i, partial_result)` runs after
    each iteration (e.g. to save checkpoints). `select_top`/`select_repeats` control
    the final choice of `best_regulator` (see `TrainResult`; `select_top=1` keeps the
    plain running maximum).

    `checkpoint` (a folder) with `checkpoint_every=K` saves the training state (the
    method's state, the history, the best and final regulators and the selection
    pool) every K iterations and when interrupted (Equinox leaves + JSON with a
    SHA-256, written whole); `resume=True` continues from that folder's checkpoint:
    the same call resumed gives exactly the history and regulators of an
    uninterrupted run (wall times aside).

    `reassess=K` re-assesses the current candidate at about 1.5 K iterations
    (`check_points`: K spaced geometrically from the first, K // 2 evenly), each on
    `reassess_repeats` fresh draws (keys no training step uses), into
    `history.checks` with the mean's 95 % bounds: a target counts as reached when the
    lower bound crosses it (for a loss: the upper bound falls below it), not at the first
    lucky draw (`Comparison`). Not counted in wall time or replicate-steps.

    `space` (a `diffgrn.space.SearchSpace`) bounds every method: gradient steps
    are clipped to its box, population candidates drawn and clipped in it, frozen
    leaves never change; with `SearchSpace(init=…)` the regulator is a
    `diffgrn.Started` (its initial state searched too). Default: every leaf,
    unbounded.

    What is monitored and selected is the objective's own score, in its own
    direction (`Objective.direction`): a `TrajectoryFit` utility makes `train` a
    fine-tuning toward a target trajectory that keeps its start when no step beats it.

    `time_budget` (seconds) stops training once the counted wall time (compiled steps
    only, as `history.wall_time`) reaches it, `iterations` then being a cap: methods
    compared at equal wall time (`studies/crossover.py`). With `reassess`, the
    candidate where the budget stopped is re-assessed too, so its final state is judged.

    A `diffgrn.Run` (objective, regulator, method, budget, seed, re-assessment and
    checkpointing in one description) trains with `run.train()`.
    """
    if key is None:
        raise ValueError("train.key (a PRNG key) is needed (or describe a diffgrn.Run)")
    check_key("train", "key", key)
    if callback is not None and not callable(callback):
        raise ValueError(
            "train.callback must be a function callback(iteration, partial_result) or None; "
            f"got {callback!r}"[:200]
        )
    if not isinstance(objective, Objective):
        raise ValueError(
            f"train.objective must be a diffgrn.Objective; got {type(objective).__name__}"
        )
    objective.check_regulator(regulator)
    method = get_method(method, optimiser)
    n_iter = method.default_iterations if iterations is None else iterations
    check_range("train", "iterations", n_iter, ge=1, integer=True)
    check_range("train", "select_top", select_top, ge=1, integer=True)
    check_range("train", "select_repeats", select_repeats, ge=1, integer=True)
    if reassess is not None:
        check_range("train", "reassess", reassess, ge=1, integer=True)
        check_range("train", "reassess_repeats", reassess_repeats, ge=2, integer=True)
    if eval_replicates is not None:
        check_range("train", "eval_replicates", eval_replicates, ge=2, integer=True)
    if time_budget is not None:
        check_range("train", "time_budget", time_budget, gt=0.0)
    method.check_iterations(n_iter)
    monitor_obj = (
        objective if eval_replicates is None else objective.replace(replicates=eval_replicates)
    )
    coords = None
    if space is not None:
        if not isinstance(space, SearchSpace):
            raise ValueError(
                f"train.space must be a diffgrn.space.SearchSpace; got {type(space).__name__}"
            )
        template = regulator.regulator if isinstance(regulator, Started) else regulator
        coords = space.bind(template)
        coords.flatten(regulator)  # a searched initial state needs a Started start
    config = dict(
        objective=objective.config(),
        method=method_config(method),
        regulator=regulator.config(),
        iterations=n_iter,
        eval_replicates=monitor_obj.replicates,
    )
    if space is not None:
        config["space"] = space.config()
    if reassess is not None:  # part of the run's identity (a checkpoint of it must match)
        config.update(reassess=reassess, reassess_repeats=reassess_repeats)
    if time_budget is not None:
        config.update(time_budget=time_budget)
    ckpt = None
    if checkpoint is not None:
        if checkpoint_every is not None:
            check_range("train", "checkpoint_every", checkpoint_every, ge=1, integer=True)
        ckpt = Checkpoint(Path(checkpoint), checkpoint_every, config)
        ckpt.check_folder(resume)
    elif resume or checkpoint_every is not None:
        raise ValueError("train.checkpoint (a folder) is needed for checkpoint_every/resume")
    run = _Run(
        n_iter,
        config,
        monitor_obj,
        select_top,
        method.name,
        direction=objective.direction,
        time_budget=time_budget,
    )
    if reassess is not None:
        points = frozenset(check_points(n_iter, reassess))
        run = dataclasses.replace(run, check_points=points, check_repeats=reassess_repeats)

    trainer = build_trainer(method, objective, regulator, coords)
    if resume:
        ts = ckpt.load(trainer, regulator, key)
    else:
        k_init, _ = _stage_keys(key, 0)
        ts = TrainState(
            trainer.init(k_init),
            key,
            History(direction=run.direction),
            regulator,
            regulator,
            best_utility=-run.direction * math.inf,
        )
    bar = progress_bar(n_iter, run.name, progress)
    if bar is not None and ts.iteration:
        bar.update(ts.iteration)
    try:
        ts = _loop(ts, trainer, run, bar, callback, ckpt)
    finally:
        if bar is not None:
            bar.close()
    result = ts.result(config)
    if select_top > 1 and len(ts.pool) > 1:
        try:
            chosen = _reselect(
                ts.pool, monitor_obj, jr.fold_in(key, 2**20), select_repeats, run.direction
            )
            result = dataclasses.replace(result, **chosen)
        except KeyboardInterrupt:  # keep the running maximum; the caller still saves
            result.error = (result.error or "interrupted") + "; re-assessment skipped"
            print("re-assessment skipped", file=sys.stderr, flush=True)
    if result.error is not None:
        warnings.warn(result.error, RuntimeWarning, stacklevel=2)
    return result


def method_config(method: AbstractMethod) -> dict:
    """`method.config()`, or where a field has no JSON config (a custom optax optimiser
    or schedule function) a readable record that says so (it cannot be rebuilt)."""
    try:
        return method.config()
    except TypeError as e:
        return dict(type=type_name(type(method)), name=method.name, not_loadable=str(e))


class _Phase(NamedTuple):
    """One phase's compiled step and monitor, and its loop key."""

    step: Callable
    monitor: Callable
    key: PRNGKeyArray


def _loop(ts: TrainState, trainer: Trainer, run: _Run, bar, callback, ckpt) -> TrainState:
    """Iterate from `ts` to `run.iterations`; the state where training stopped (with
    `error` set when values became non-finite or the run was interrupted)."""
    phase = None
    try:
        while ts.iteration < run.iterations:
            if trainer.phase_end is not None and trainer.phase_end(ts.method_state):
                k_init, _ = _stage_keys(ts.key, ts.phase + 1)
                state = trainer.next_phase(ts.method_state, k_init)
                ts = ts.replace(method_state=state, phase=ts.phase + 1, phase_iteration=0)
                phase = None
            if phase is None:
                phase, seconds = _compile(trainer, run.monitor, ts)
                ts = ts.replace(compile_time=ts.compile_time + seconds)
                if ts.iteration == 0 and not ts.pool:
                    ts = _count_start(ts, trainer, phase)
            new, row = _iterate(ts, trainer, phase, run)
            if row is None:
                return new
            ts.history.append(row)  # this loop is the one place the history grows
            ts = new
            i = row["iteration"]
            spent = run.time_budget is not None and ts.wall_time >= run.time_budget
            if i in run.check_points or (spent and run.check_repeats):
                ts.history.checks.append(_check(ts, run))
            if bar is not None:
                u, best = row["hard_utility"], ts.best_utility
                bar.set_postfix(U_draw=f"{u:.3f}", best_draw=f"{best:.3f}")
                bar.update(1)
            if ckpt is not None:
                ckpt.record(ts)
            if callback is not None:
                callback(i, ts.result(run.config))
            if spent:  # the time budget is used up: stop here, as at the last iteration
                break
    except KeyboardInterrupt:
        if ckpt is not None:
            ckpt.save_last()
        print(
            f"\ninterrupted at iteration {ts.iteration}: training stopped; choosing the best "
            "regulator and saving (Ctrl-C again skips the re-assessment)",
            file=sys.stderr,
            flush=True,
        )
        return ts.replace(
            error=f"interrupted at iteration {ts.iteration}; best regulator so far kept"
        )
    return ts


def _compile(trainer: Trainer, monitor_obj: Objective, ts: TrainState) -> tuple[_Phase, float]:
    """Compile the step for the state's phase, and the monitor; (phase, seconds)."""
    t0 = time.perf_counter()
    _, k_loop = _stage_keys(ts.key, ts.phase)
    step = jax.jit(trainer.step).lower(ts.method_state, k_loop).compile()

    @eqx.filter_jit
    def monitor(regulator, key):  # of a regulator: the start and the candidates alike
        util = monitor_obj.hard(regulator, key)
        return util, _finite(util)

    monitor(trainer.candidate(ts.method_state), k_loop)
    return _Phase(step, monitor, k_loop), time.perf_counter() - t0


def _count_start(ts: TrainState, trainer: Trainer, phase: _Phase) -> TrainState:
    """The start among the candidates (iteration −1): the regulator training began
    from, exactly (not the method's view of it: a population method's unit-cube round
    trip is not bitwise), scored like every later candidate, so training never returns
    something worse, on its monitored draws, than where it began (a fine-tuned start is
    kept when no step beats it). Its own key; the steps' keys are unchanged."""
    start = ts.best_regulator  # the regulator `train` was given
    util, ok = phase.monitor(start, jr.fold_in(phase.key, 2**30))
    if not bool(ok):
        return ts
    u = float(util.value)
    return ts.replace(best_utility=u, best_regulator=start, pool=((u, -1, start),))


def _iterate(
    ts: TrainState, trainer: Trainer, phase: _Phase, run: _Run
) -> tuple[TrainState, dict | None]:
    """One iteration: the compiled step, the candidate's hard utility on fresh noise,
    the new best and pool. (next state, history row), or (state with `error`, None)
    when values became non-finite."""
    i, j = ts.iteration, ts.phase_iteration
    k_step, k_eval = jr.split(jr.fold_in(phase.key, j))
    t = time.perf_counter()
    state, info = phase.step(ts.method_state, k_step)
    jax.block_until_ready(state)
    wall = ts.wall_time + time.perf_counter() - t
    rsteps = ts.replicate_steps + trainer.cost(ts.method_state)
    if not bool(info.finite):
        return ts.replace(
            error=f"non-finite state, utility or gradient at iteration {i} ({run.name}); "
            f"stopped, best regulator so far kept (iteration {ts.best_iteration})"
        ), None
    final = trainer.candidate(state)
    util, ok = phase.monitor(final, k_eval)
    if not bool(ok):
        return ts.replace(
            error=f"non-finite hard utility at iteration {i}; stopped, best regulator so "
            f"far kept (iteration {ts.best_iteration})"
        ), None
    u = float(util.value)
    row = dict(
        iteration=i,
        hard_utility=u,
        hard_s_pat=float(util.s_pat),
        hard_s_rep=float(util.s_rep),
        soft_utility=float(info.soft_utility),
        grad_norm=float(info.grad_norm),
        wall_time=wall,
        replicate_steps=rsteps,
    )
    sign = run.direction
    best = (u, i, final) if sign * u > sign * ts.best_utility else None
    pool = sorted([*ts.pool, (u, i, final)], key=lambda c: -sign * c[0])[: run.select_top]
    new = ts.replace(
        method_state=state,
        iteration=i + 1,
        phase_iteration=j + 1,
        wall_time=wall,
        replicate_steps=rsteps,
        final_regulator=final,
        pool=tuple(pool),
    )
    if best is not None:
        new = new.replace(best_utility=u, best_iteration=i, best_regulator=final)
    return new, row


def _check(ts: TrainState, run: _Run) -> dict:
    """Re-assessment of the candidate after iteration `ts.iteration - 1` (`history.checks`)."""
    i = ts.iteration - 1
    keys = jr.split(jr.fold_in(jr.fold_in(ts.key, 2**21), i), run.check_repeats)
    util = _hard_many(run.monitor, ts.final_regulator, keys, "train.reassess")
    values = [float(u) for u in util.value]
    mean, std, lower, upper = bounds_95(values)
    return dict(
        iteration=i,
        mean=mean,
        std=std,
        lower=lower,
        upper=upper,
        direction=run.direction,
        repeats=run.check_repeats,
        wall_time=ts.wall_time,
        replicate_steps=ts.replicate_steps,
    )


def check_points(n_iter: int, count: int) -> list[int]:
    """About `count` iterations (0-based) up to the last: `count` spaced geometrically
    from the first (dense early, where methods cross targets) and `count` // 2 evenly
    (so late crossings are resolved too); fewer where they coincide."""
    if count == 1 or n_iter == 1:
        return [n_iter - 1]
    ratio = n_iter ** (1 / (count - 1))
    geometric = {min(n_iter, round(ratio**k)) - 1 for k in range(count)}
    even = {max(0, round(n_iter * k / (count // 2)) - 1) for k in range(1, count // 2 + 1)}
    return sorted(geometric | even)


def lower_bound_95(values) -> tuple[float, float, float]:
    """(mean, sample std, the mean's lower 95 % bound: mean − t₀.₉₇₅,ₙ₋₁ · std / √n)."""
    v = np.asarray(values, float)
    n = len(v)
    mean, std = float(v.mean()), float(v.std(ddof=1))
    return mean, std, mean - _t975(n - 1) * std / math.sqrt(n)


def bounds_95(values) -> tuple[float, float, float, float]:
    """(mean, sample std, lower, upper): the mean's 95 % interval (Student t, symmetric)."""
    mean, std, lower = lower_bound_95(values)
    return mean, std, lower, 2 * mean - lower


def _t975(dof: int) -> float:
    """Student t's 97.5 % quantile (SciPy's `stdtrit`, float64; SciPy comes with JAX)."""
    from scipy.special import stdtrit

    return float(stdtrit(dof, 0.975))


def _stage_keys(key, n_stage: int):
    """(init key, loop key) of a phase: the first from `key`, later ones folded in."""
    return jr.split(key) if n_stage == 0 else jr.split(jr.fold_in(key, n_stage))


CHECKPOINT_FORMAT = "diffgrn-checkpoint-v2"


class Checkpoint:
    """A training checkpoint folder holding one `TrainState`: `state.eqx` (Equinox
    leaves of the method state, the best and final regulators and the pool) and
    `checkpoint.json` (the rest: phase, history, best, the config, the leaves' SHA-256)."""

    FILES = frozenset({"checkpoint.json", "state.eqx", "run.json"})
    """What a checkpoint folder holds (`run.json`: the `Run` it belongs to, kept across saves)."""

    def __init__(self, folder: Path, every: int | None, config: dict):
        self.folder, self.every, self.config = folder, every, config
        self.last: TrainState | None = None

    def check_folder(self, resume: bool) -> None:
        """Refuse, before any compute, a folder that a save (which replaces the whole
        folder) would destroy: a file, a folder holding anything but a checkpoint's
        files, or (a new run) a `checkpoint.json` that is not a diffgrn checkpoint. A
        folder holding only `run.json` (the `Run` that is starting) is a new checkpoint;
        a resume's `checkpoint.json` is checked by `load`."""
        f = self.folder
        if f.exists() and not f.is_dir():
            raise ValueError(f"train.checkpoint: {f} is an existing file, not a folder")
        if not f.is_dir():
            return
        names = {p.name for p in f.iterdir()}
        foreign = sorted(names - self.FILES)
        if foreign:
            shown = ", ".join(foreign[:5]) + (", …" if len(foreign) > 5 else "")
            raise ValueError(
                f"train.checkpoint: {f} holds files that are not a diffgrn checkpoint "
                f"({shown}); a checkpoint replaces its whole folder: choose a new or empty one"
            )
        if resume or names <= {"run.json"}:
            return
        fmt = None
        try:
            meta = json.loads((f / "checkpoint.json").read_text())
            fmt = meta.get("format") if isinstance(meta, dict) else None
        except (OSError, ValueError):
            pass
        if not (isinstance(fmt, str) and fmt.startswith("diffgrn-checkpoint-")):
            raise ValueError(
                f"train.checkpoint: {f} is not a diffgrn checkpoint (no checkpoint.json of "
                f"format {CHECKPOINT_FORMAT}); a checkpoint replaces its whole folder: "
                "choose a new or empty one"
            )

    def record(self, ts: TrainState) -> None:
        """Note the state after an iteration; save it every `every` iterations."""
        self.last = ts
        if self.every is not None and ts.iteration % self.every == 0:
            self.save(ts)

    def save_last(self) -> None:
        if self.last is not None:
            self.save(self.last)

    def save(self, ts: TrainState) -> None:
        """Write `ts` whole: into a temporary folder, then moved into place (a Ctrl-C
        meanwhile is delivered once it is written)."""
        with held():
            self._save(ts)

    def _save(self, ts: TrainState) -> None:
        leaves = dict(
            state=ts.method_state,
            best=ts.best_regulator,
            final=ts.final_regulator,
            pool=[c[2] for c in ts.pool],
        )
        tmp = self.folder.parent / f".{self.folder.name}.tmp-{os.getpid()}"
        tmp.mkdir(parents=True, exist_ok=True)
        eqx.tree_serialise_leaves(tmp / "state.eqx", leaves)
        # the run's description, kept across saves (also from a save an interrupt cut
        # between its two renames, whose folder is then the newest old one)
        stem = f".{self.folder.name}.old-{os.getpid()}"
        found = [p / "run.json" for p in (self.folder, *self.olds()) if (p / "run.json").is_file()]
        if found:
            shutil.copy2(found[0], tmp / "run.json")
        meta = dict(
            format=CHECKPOINT_FORMAT,
            phase=ts.phase,
            phase_iteration=ts.phase_iteration,
            history=ts.history.first(ts.iteration).to_dict(),
            best_utility=ts.best_utility,
            best_iteration=ts.best_iteration,
            pool=[[c[0], c[1]] for c in ts.pool],
            wall_time=ts.wall_time,
            replicate_steps=ts.replicate_steps,
            compile_time=ts.compile_time,
            config=self.config,
            sha256=hashlib.sha256((tmp / "state.eqx").read_bytes()).hexdigest(),
        )
        (tmp / "checkpoint.json").write_text(json.dumps(meta, default=str))
        # a fresh name each save: an interrupt during an earlier save's cleanup can leave
        # a half-removed old folder, and renaming onto it would fail
        old = self.folder.parent / f"{stem}-{time.monotonic_ns()}"
        if self.folder.exists():
            os.replace(self.folder, old)
        os.replace(tmp, self.folder)
        for stale in self.folder.parent.glob(f"{stem}-*"):
            shutil.rmtree(stale, ignore_errors=True)

    def recover(self) -> None:
        """Put back the newest whole checkpoint when the folder is missing: a save killed
        between its two renames leaves the previous one as `.NAME.old-PID-NS` (any
        process's: the resume may be another's)."""
        whole = [p for p in self.olds() if (p / "checkpoint.json").is_file()]
        if whole and not self.folder.exists():
            os.replace(whole[0], self.folder)

    def olds(self) -> list[Path]:
        """The folders earlier saves moved aside (`.NAME.old-PID-NS`, any process's),
        newest first."""
        found = self.folder.parent.glob(f".{self.folder.name}.old-*-*")
        ns = lambda p: p.name.rsplit("-", 1)[1]
        return sorted((p for p in found if ns(p).isdigit()), key=lambda p: -int(ns(p)))

    def load(self, trainer: Trainer, regulator: AbstractRegulator, key: PRNGKeyArray) -> TrainState:
        """The saved `TrainState`, checked to belong to this run."""
        self.recover()
        meta_file, leaves_file = self.folder / "checkpoint.json", self.folder / "state.eqx"
        if not meta_file.is_file() or not leaves_file.is_file():
            raise ValueError(f"train.resume: no checkpoint in {self.folder}")
        try:
            meta = json.loads(meta_file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(
                f"train.resume: {meta_file} is not valid JSON (truncated?): {e}"
            ) from None
        if not isinstance(meta, dict):
            raise ValueError(f"train.resume: {meta_file} is not a diffgrn checkpoint")
        if meta.get("format") == "diffgrn-checkpoint-v1":
            raise ValueError(
                f"train.resume: {meta_file} was written by an earlier diffgrn "
                f"(diffgrn-checkpoint-v1, not {CHECKPOINT_FORMAT}) and cannot be resumed "
                "by this one; start the run again"
            )
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"train.resume: {meta_file} is not a diffgrn checkpoint")
        history = _check_checkpoint(meta, meta_file, self.config.get("iterations"))
        if hashlib.sha256(leaves_file.read_bytes()).hexdigest() != meta.get("sha256"):
            raise ValueError(f"train.resume: {leaves_file} does not match {meta_file}")
        if json.loads(json.dumps(self.config, default=str)) != meta["config"]:
            raise ValueError(
                f"train.resume: the checkpoint in {self.folder} is of another run (its "
                "objective, method, regulator or iterations differ from this call's)"
            )
        like_state = trainer.init(_stage_keys(key, 0)[0])  # the structure of the saved phase
        for p in range(1, meta["phase"] + 1):
            like_state = trainer.next_phase(like_state, _stage_keys(key, p)[0])
        like = dict(
            state=like_state,
            best=regulator,
            final=regulator,
            pool=[regulator] * len(meta["pool"]),
        )
        try:
            saved = eqx.tree_deserialise_leaves(leaves_file, like)
        except Exception as e:  # equinox raises several types for a file that does not fit
            raise ValueError(
                f"train.resume: cannot read the checkpoint in {self.folder} "
                f"({type(e).__name__}: {e})"
            ) from None
        return TrainState(
            saved["state"],
            key,
            history,
            saved["best"],
            saved["final"],
            best_utility=meta["best_utility"],
            best_iteration=meta["best_iteration"],
            pool=tuple((u, i, r) for (u, i), r in zip(meta["pool"], saved["pool"])),
            iteration=len(history),
            phase=meta["phase"],
            phase_iteration=meta["phase_iteration"],
            wall_time=meta["wall_time"],
            replicate_steps=meta["replicate_steps"],
            compile_time=meta["compile_time"],
        )


def _check_checkpoint(meta: dict, meta_file: Path, iterations: int | None) -> History:
    """The fields of a `checkpoint.json` a resume reads: a ValueError naming the file and
    the field (the SHA-256 covers only `state.eqx`); the saved history, which cannot be
    longer than the run (`iterations`)."""
    whole = lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0
    number = lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
    checks = dict(
        phase=(whole, "an integer >= 0"),
        phase_iteration=(whole, "an integer >= 0"),
        best_iteration=(lambda v: isinstance(v, int) and v >= -1, "an integer >= -1"),
        replicate_steps=(whole, "an integer >= 0"),
        best_utility=(number, "a number"),
        wall_time=(number, "a number"),
        compile_time=(number, "a number"),
        config=(lambda v: isinstance(v, dict), "the run's config (a mapping)"),
        history=(lambda v: isinstance(v, dict), "a history (a mapping)"),
        pool=(
            lambda v: isinstance(v, list) and all(isinstance(c, list) and len(c) == 2 for c in v),
            "a list of [utility, iteration] pairs",
        ),
    )
    for field, (ok, expected) in checks.items():
        if field not in meta or not ok(meta[field]):
            got = repr(meta.get(field, "(missing)"))[:100]
            raise ValueError(f"train.resume: {meta_file}: '{field}' must be {expected}; got {got}")
    try:
        history = History.from_dict(meta["history"])
    except ValueError as e:
        raise ValueError(f"train.resume: {meta_file}: 'history' is malformed ({e})") from None
    if iterations is not None and len(history) > iterations:
        raise ValueError(
            f"train.resume: {meta_file}: its history holds {len(history)} iterations, "
            f"more than the run's {iterations}"
        )
    return history


def assess(
    objective: Objective,
    regulator: AbstractRegulator,
    *,
    key: PRNGKeyArray,
    repeats: int = 10,
    refine: int | None = 5,
) -> Assessment:
    """Hard utility of `regulator` on `repeats` independent noise draws.

    `repeats` is at least 2 (one draw has no standard deviation). Use a key never
    used in training: this is the unbiased figure to report (the best utility seen
    during training is a maximum over noisy evaluations, biased
    upward). Returns an `Assessment` (a dict with attributes and a readable repr):
    mean, standard deviation, the per-draw values and the utility's two parts under
    their names (`s_pat`, `s_rep` for U; `agreement`, `exact_hits` for a
    `TargetPattern`). For U, a `ReproducibilityBoundWarning` says when
    log₂ R / N < 0.2 (S_rep can then hardly tell reproducible from not).

    With `refine` (default 5), a guard against Euler artefacts: on `repeats` further
    draws the regulator is also solved at dt / `refine` on the same Brownian paths
    (the fine grid's increments summed for the coarse step), and
    `resolution` reports both means, their difference, its standard error, and
    dt·max‖∂f/∂(s, s̄)‖ over the states visited. When the two utilities differ by more
    than 3 standard errors, `resolution["artefact"]` is True and a RuntimeWarning
    says so: the utility belongs to the time step, not to the SDE. `None` skips it.
    """
    if not isinstance(objective, Objective):
        raise ValueError(
            f"assess.objective must be a diffgrn.Objective; got {type(objective).__name__}"
        )
    if not isinstance(regulator, AbstractRegulator):
        raise ValueError(
            f"assess.regulator must be a diffgrn regulator; got {type(regulator).__name__}"
        )
    objective.check_regulator(regulator)
    check_key("assess", "key", key)
    # one draw has no spread: its "± 0" would claim a precision it does not have
    check_range("assess", "repeats", repeats, ge=2, integer=True)
    if refine is not None:
        check_range("assess", "refine", refine, ge=2, integer=True)
    util = _hard_many(objective, regulator, jr.split(key, repeats))
    values = [float(v) for v in util.value]
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    parts = objective.utility.parts
    out = Assessment(
        mean=mean,
        std=math.sqrt(var),
        values=values,
        **{parts[0]: float(jnp.mean(util.s_pat)), parts[1]: float(jnp.mean(util.s_rep))},
        parts=list(parts),
        utility=type(objective.utility).__name__,
        label="U"
        if isinstance(objective.utility, PatternInformation)
        else f"{type(objective.utility).__name__} score",
        replicates=objective.replicates,
        repeats=repeats,
    )
    if isinstance(objective.utility, PatternInformation):
        warn_bound(objective.replicates, objective.n_cells)
    if refine is not None:
        out["resolution"] = _resolution(objective, regulator, jr.fold_in(key, 1), repeats, refine)
        r = out["resolution"]
        if r.get("artefact"):
            warnings.warn(
                f"assess: U = {r['mean_dt']:.3f} at dt = {r['dt']:g} but {r['mean_fine']:.3f} "
                f"at dt / {refine} on the same noise (> 3 s.e. apart; dt·max|f'| over the "
                f"visited states = {r['stiffness_visited']:.2f}): the utility is an "
                "artefact of the time step; lower dt, or train with "
                "Dynamics(max_stiffness=1)",
                RuntimeWarning,
                stacklevel=2,
            )
    return out


def _resolution(objective, regulator, key, repeats: int, refine: int) -> dict:
    """The paired coarse/fine comparison behind `assess(refine=…)`."""
    from . import diagnostics

    dyn = objective.dynamics
    if objective.utility.observable() is not None:
        return dict(skipped="the utility scores a recording; the paired check reads final states")
    try:
        fine = dyn.replace(dt=dyn.dt / refine)
        fine.check_memory(objective.tissue, objective.replicates, objective.genes)
    except ValueError as e:  # too big to hold the fine grid: say so, do not fail
        return dict(skipped=str(e))
    u_coarse, u_fine = _paired(objective, regulator, jr.split(key, repeats), dyn, fine)
    u_coarse, u_fine = np.asarray(u_coarse, float), np.asarray(u_fine, float)
    n = len(u_coarse)
    se = math.sqrt((u_coarse.var(ddof=1) + u_fine.var(ddof=1)) / n) if n > 1 else math.nan
    gap = float(u_coarse.mean() - u_fine.mean())
    stiff = float(eqx.filter_jit(diagnostics.visited_stiffness)(objective, regulator, key))
    return dict(
        dt=dyn.dt,
        refine=refine,
        mean_dt=float(u_coarse.mean()),
        mean_fine=float(u_fine.mean()),
        difference=gap,
        standard_error=se,
        stiffness_visited=stiff,
        artefact=bool(math.isfinite(se) and abs(gap) > 3 * se),
    )


@eqx.filter_jit
def _paired(objective, regulator, keys, coarse, fine):
    """Hard U at the coarse and the fine step on one Brownian path per draw."""
    tissue, genes, reps = objective.tissue, objective.genes, objective.replicates
    refine = fine.n_steps // coarse.n_steps

    def one(key):
        s0, coarse_path, path = coarse.draw_paired(tissue, jr.split(key, reps), genes, refine)
        u = [
            objective.hard_of(d.solve(regulator, tissue, s0, p)).value
            for d, p in ((coarse, coarse_path), (fine, path))
        ]
        return u[0], u[1]

    return jax.lax.map(one, keys)


def _reselect(pool, objective, key, repeats: int, direction: int = 1) -> dict:
    """Re-assess the pool on common fresh draws; the best mean (the highest, the
    lowest for `direction` −1) becomes the best (the `TrainResult` fields that
    change; none when a mean is not finite)."""
    means = []
    for _, _, reg in pool:
        u = _hard_many(objective, reg, jr.split(key, repeats), "train (selection)").value
        means.append(float(jnp.mean(u)))
    if not all(math.isfinite(m) for m in means):
        return {}
    j = max(range(len(pool)), key=lambda k: direction * means[k])
    return dict(
        best_regulator=pool[j][2],
        best_iteration=pool[j][1],
        best_utility=means[j],
        selection=dict(
            iterations=[c[1] for c in pool],
            training_utilities=[c[0] for c in pool],
            reassessed_means=means,
            repeats=repeats,
        ),
    )


def _hard_many(objective, regulator, keys, what: str = "assess"):
    """Hard utilities on each key, in one compiled call sized to fit: the draws run all
    at once where they fit, else in chunks that do (`Objective.batch_size`)."""
    batch = objective.batch_size(keys.shape[0], what)
    return _hard_batched(objective, regulator, keys, batch)


@eqx.filter_jit
def _hard_batched(objective, regulator, keys, batch: int):
    return map_batched(lambda k: objective.hard(regulator, k), keys, batch)


def _finite(util) -> jax.Array:
    """Whether the score is finite (a part may be undefined, NaN: `TrajectoryFit`)."""
    return jnp.isfinite(util.value)


def progress_bar(total: int, desc: str, enabled: bool):
    """The progress display of `train` and `explore`: None unless `enabled`; a tqdm
    bar on a terminal; in a log file (stderr not a terminal), a `LogProgress`, one
    short line per tenth of the run instead of one per iteration."""
    if not enabled:
        return None
    if not sys.stderr.isatty():
        return LogProgress(total, desc)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)


class LogProgress:
    """The part of tqdm's interface `train` uses, writing a line every `every` of the run."""

    def __init__(
        self, total: int, desc: str, every: float = 0.1, file: io.TextIOBase | None = None
    ):
        self.total, self.desc, self.n, self.postfix = max(int(total), 1), desc, 0, {}
        self.file = file if file is not None else sys.stderr
        self.step = max(1, math.ceil(every * self.total))
        self.start = time.perf_counter()

    def set_postfix(self, **kwargs):
        self.postfix = kwargs

    def update(self, n: int = 1):
        before, self.n = self.n, self.n + n
        if self.n // self.step > before // self.step or self.n == self.total:
            extra = ", ".join(f"{k}={v}" for k, v in self.postfix.items())
            elapsed = time.perf_counter() - self.start
            print(
                f"{self.desc}: {self.n}/{self.total} ({100 * self.n / self.total:.0f}%), "
                f"{elapsed:.1f} s elapsed" + (f", {extra}" if extra else ""),
                file=self.file,
                flush=True,
            )

    def close(self):
        pass
