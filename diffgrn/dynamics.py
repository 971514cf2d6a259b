"""Euler–Maruyama dynamics ds = f(s, s̄) dt + σ dW on a tissue, solved with Diffrax.

States are `(replicates, cells, genes)`."""

import dataclasses
from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree, Shaped

from ._memory import available_memory
from ._typing import BoolScalarLike, KeyBatch, RealScalarLike
from ._validate import check_choice, check_range
from .brownian import CounterBrownianPath, GridBrownianPath
from .regulator import AbstractRegulator
from .tissue import Tissue

# The solution and vector-field pytrees as Diffrax annotates them
# (`diffrax._custom_types.Y`, `VF`).
_Y = PyTree[Shaped[ArrayLike, "?*y"], "Y"]
_VF = PyTree[Shaped[ArrayLike, "?*vf"], "VF"]

BROWNIAN_PATHS = ("grid", "counter", "tree")
CONSTRAINTS = ("clip", "reflect", "softclip", "none")


class ProjectedSolver(diffrax.AbstractWrappedSolver):
    """Wraps a Diffrax solver and applies `projection(state, t)` after every step.

    Used for the [0, 1] clip and the pinned-cell reset, so the constraint acts inside
    the solver loop, exactly as in `s ← clip(s + f·dt + σ·ΔW, 0, 1)`.
    """

    solver: diffrax.AbstractSolver
    projection: Callable

    @property
    def term_structure(self):
        return self.solver.term_structure

    @property
    def interpolation_cls(self):
        return self.solver.interpolation_cls

    def order(self, terms: PyTree[diffrax.AbstractTerm]) -> int | None:
        return self.solver.order(terms)

    def strong_order(self, terms: PyTree[diffrax.AbstractTerm]) -> RealScalarLike | None:
        return self.solver.strong_order(terms)

    def init(
        self,
        terms: PyTree[diffrax.AbstractTerm],
        t0: RealScalarLike,
        t1: RealScalarLike,
        y0: _Y,
        args: PyTree[Any],
    ) -> PyTree:
        return self.solver.init(terms, t0, t1, y0, args)

    def step(
        self,
        terms: PyTree[diffrax.AbstractTerm],
        t0: RealScalarLike,
        t1: RealScalarLike,
        y0: _Y,
        args: PyTree[Any],
        solver_state: PyTree,
        made_jump: BoolScalarLike,
    ) -> tuple[_Y, _Y | None, dict[str, PyTree[Array]], PyTree, diffrax.RESULTS]:
        y1, err, dense_info, solver_state, result = self.solver.step(
            terms, t0, t1, y0, args, solver_state, made_jump
        )
        y1 = self.projection(y1, t1)
        dense_info = dict(dense_info, y1=y1)
        return y1, err, dense_info, solver_state, result

    def func(
        self, terms: PyTree[diffrax.AbstractTerm], t0: RealScalarLike, y0: _Y, args: PyTree[Any]
    ) -> _VF:
        return self.solver.func(terms, t0, y0, args)


def _as_sigma(sigma):
    """A list or array of per-gene σ becomes a tuple (hashable, JSON-able)."""

    def number(s):
        try:
            return float(s)
        except (TypeError, ValueError):
            return s  # validation names the field

    if isinstance(sigma, (list, tuple)) or getattr(sigma, "ndim", 0) == 1:
        return tuple(number(s) for s in sigma)
    return sigma


class Dynamics(eqx.Module):
    """The SDE of one tissue, integrated by Euler–Maruyama with a fixed step.

    **Fields:**

    - `t_final`: horizon T (default 20).
    - `dt`: step (default 0.01; T/dt must be an integer number of steps).
    - `sigma`: noise amplitude σ ≥ 0 (default 0.1), or one per gene (a tuple).
    - `brownian`: `"grid"` (increments drawn once on the step grid; fast, exact for
      Euler–Maruyama, reverse-mode differentiable; memory steps × replicates × cells;
      default), `"counter"` (each step's increments drawn inside the step from
      `fold_in(key, step)`: exact and reproducible at O(replicates × cells) memory
      whatever the horizon; other numbers than `"grid"` for the same key) or
      `"tree"` (`diffrax.VirtualBrownianTree`).
    - `init_low`, `init_high`: initial states are uniform in this range
      (default [0.4, 0.6]).
    - `constraint`: `"clip"` (s ← clip(s, 0, 1) after every step, as in model.md;
      default), `"reflect"` (fold back into [0, 1] at the walls: derivative ±1, never
      0, so backpropagation is not cut at the bounds), `"softclip"` (a smooth clip
      s ↦ softplus_k(s) − softplus_k(s − 1), softplus_k(x) = log(1 + e^{kx})/k with
      k = `sharpness`: a smooth increasing map of ℝ onto (0, 1), within log 2 / k of
      the clip, whose derivative σ(ks) − σ(k(s − 1)) is positive everywhere, though
      below float32 resolution once s is more than about 17/k outside [0, 1]) or
      `"none"` (unconstrained).
    - `sharpness`: k of the soft clip (default 100; larger is closer to the clip).
    - `backprop_steps`: truncated backpropagation through time: gradients flow
      through the last `backprop_steps` steps only (the state before them is a
      constant to reverse mode, and those steps are neither stored nor traversed
      backwards, so a gradient costs a forward solve plus a backward pass over the
      last steps; the forward solve is unchanged). `None`: all steps.
    - `max_stiffness`: a guard against Euler artefacts: `Objective.hard` scores a
      regulator whose dt·max‖∂f/∂(s, s̄)‖ (`diagnostics.stiffness`) exceeds this as
      U = 0, so the search methods never select one that Euler at this dt does not
      resolve (1 is a sensible bound). `None` (default): no guard.
    - `checkpoints`: reverse-mode checkpoints for `diffrax.RecursiveCheckpointAdjoint`;
      `None` stores every step (fastest, memory ∝ steps), an integer trades
      recomputation for memory.
    """

    t_final: float = eqx.field(static=True, default=20.0)
    dt: float = eqx.field(static=True, default=0.01)
    sigma: float | tuple[float, ...] = eqx.field(static=True, default=0.1, converter=_as_sigma)
    brownian: str = eqx.field(static=True, default="grid")
    init_low: float = eqx.field(static=True, default=0.4)
    init_high: float = eqx.field(static=True, default=0.6)
    checkpoints: int | None = eqx.field(static=True, default=None)
    constraint: str = eqx.field(static=True, default="clip")
    backprop_steps: int | None = eqx.field(static=True, default=None)
    sharpness: float = eqx.field(static=True, default=100.0)
    max_stiffness: float | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if self.max_stiffness is not None:
            check_range("Dynamics", "max_stiffness", self.max_stiffness, gt=0.0)
        check_choice("Dynamics", "constraint", self.constraint, CONSTRAINTS)
        check_range("Dynamics", "sharpness", self.sharpness, gt=0.0)
        check_range("Dynamics", "dt", self.dt, gt=0.0)
        check_range("Dynamics", "t_final", self.t_final, ge=self.dt)
        if isinstance(self.sigma, (tuple, list)):
            if len(self.sigma) < 1:
                raise ValueError(
                    "Dynamics.sigma must be a number or a non-empty tuple "
                    "of numbers (one per gene); got ()"
                )
            for s in self.sigma:
                check_range("Dynamics", "sigma", s, ge=0.0)
        else:
            check_range("Dynamics", "sigma", self.sigma, ge=0.0)
        check_choice("Dynamics", "brownian", self.brownian, BROWNIAN_PATHS)
        check_range("Dynamics", "init_low", self.init_low, ge=0.0, le=1.0)
        check_range("Dynamics", "init_high", self.init_high, ge=self.init_low, le=1.0)
        if self.backprop_steps is not None:
            check_range("Dynamics", "backprop_steps", self.backprop_steps, ge=1, integer=True)
        if self.checkpoints is not None:
            check_range("Dynamics", "checkpoints", self.checkpoints, ge=1, integer=True)
        steps = self.t_final / self.dt
        if abs(steps - round(steps)) > 1e-6 * max(1.0, steps):
            raise ValueError(
                f"Dynamics.t_final / Dynamics.dt must be a whole number of steps; got "
                f"{self.t_final} / {self.dt} = {steps}"
            )

    @property
    def n_steps(self) -> int:
        return int(round(self.t_final / self.dt))

    def initial_state(
        self, tissue: Tissue, key: PRNGKeyArray, genes: int = 1
    ) -> Float[Array, "cells genes"]:
        """One replicate's initial state: uniform in [init_low, init_high], pinned."""
        s0 = jr.uniform(key, (tissue.n_cells, genes), minval=self.init_low, maxval=self.init_high)
        return tissue.pin(s0)

    def brownian_path(
        self, tissue: Tissue, keys: KeyBatch, genes: int = 1
    ) -> diffrax.AbstractBrownianPath:
        """A Brownian path of shape `(R, cells, genes)` for a batch of replicate keys.

        With `"grid"` and `"counter"`, replicate r's increments depend on `keys[r]`
        alone.
        """
        shape = (tissue.n_cells, genes)
        if self.brownian == "grid":
            sample = lambda k: (
                GridBrownianPath.sample(shape, k, 0.0, self.t_final, self.dt).increments
            )
            inc = jax.vmap(sample)(keys)
            return GridBrownianPath(0.0, self.t_final, self.dt, jnp.swapaxes(inc, 0, 1))
        if self.brownian == "counter":
            return CounterBrownianPath(0.0, self.t_final, self.dt, keys, shape)
        key = jr.fold_in(keys[0], keys.shape[0])
        return diffrax.VirtualBrownianTree(
            0.0, self.t_final, tol=self.dt / 2, shape=(keys.shape[0], *shape), key=key
        )

    def draw(
        self, tissue: Tissue, keys: KeyBatch, genes: int = 1
    ) -> tuple[Float[Array, "replicates cells genes"], diffrax.AbstractBrownianPath]:
        """The randomness of one replicate per key: initial states and Brownian path.
        `simulate(…, keys)` is `solve(…, *draw(tissue, keys, regulator.genes))`."""
        self.check_memory(tissue, keys.shape[0], genes)
        split = jax.vmap(jr.split)(keys)
        s0 = jax.vmap(lambda k: self.initial_state(tissue, k, genes))(split[:, 0])
        return s0, self.brownian_path(tissue, split[:, 1], genes)

    def check_memory(
        self, tissue: Tissue, replicates: int, genes: int = 1, save_every: int | None = None
    ):
        """Raise ValueError, before anything is built, when the forward solve's stored
        noise and states would not fit in the memory available (`available_memory()`).

        The estimate covers a forward solve (the grid path's increments at four times
        their size, the peak measured while drawing them in docs/performance.md). A
        gradient also stores one state per step (per checkpoint with `checkpoints`),
        and an ES evaluates `population` such solves at once: leave room for them."""
        state = 4 * replicates * tissue.n_cells * genes
        need = 4 * state  # a few live copies of the state
        parts = []
        if self.brownian == "grid":  # drawing peaks at ~4x the increments' size
            need += 4 * state * self.n_steps
            parts.append(
                "the grid Brownian path stores steps x replicates x cells x "
                "genes increments: lower t_final/dt, replicates or cells, or "
                "use Dynamics(brownian='counter')"
            )
        if save_every is not None:
            need += state * (self.n_steps // save_every + 1)
            parts.append("saved trajectories: raise save_every")
        have = available_memory()
        if need > have:
            raise ValueError(
                f"Dynamics: this solve needs about {need / 2**30:.3g} GiB "
                f"({self.n_steps} steps, {replicates} replicates, {tissue.n_cells} cells, "
                f"{genes} genes) but about {have / 2**30:.3g} GiB are available; "
                + "; ".join(parts or ["lower replicates or cells"])
            )

    def simulate(
        self,
        regulator: AbstractRegulator,
        tissue: Tissue,
        keys: KeyBatch,
        *,
        save_every: int | None = None,
        shard: Callable | None = None,
    ) -> Float[Array, "replicates *time cells genes"]:
        """Simulate one replicate per key: final states `(R, cells, genes)`, or with
        `save_every=k` trajectories `(R, 1 + steps // k, cells, genes)`. `shard`, if
        given, maps the drawn `(s0, path)` before the solve (`Objective` places them
        on its devices)."""
        if save_every is not None:
            check_range("Dynamics.simulate", "save_every", save_every, ge=1, integer=True)
            self.check_memory(tissue, keys.shape[0], regulator.genes, save_every)
        s0, path = self.draw(tissue, keys, regulator.genes)
        if shard is not None:
            s0, path = shard(s0, path)
        out = self.solve(regulator, tissue, s0, path, save_every=save_every)
        return out if save_every is None else jnp.swapaxes(out, 0, 1)

    def solve(
        self,
        regulator: AbstractRegulator,
        tissue: Tissue,
        s0: Float[Array, "*batch cells genes"],
        path: diffrax.AbstractBrownianPath,
        *,
        save_every: int | None = None,
    ) -> Float[Array, "..."]:
        """Integrate from `s0` driven by `path` (same shape as `s0`).

        Replicates are a leading batch axis of the state: the drift, the noise and
        the clip act cell by cell and `tissue.neighbour_mean` on the cell axis, so one
        Diffrax solve advances all replicates (cheaper in reverse mode than a
        `jax.vmap` of per-replicate solves). Returns the final state, or with
        `save_every=k` the states at times 0, k·dt, 2k·dt, … stacked on axis 0.
        """

        def diffusion(t, s, args):
            if isinstance(self.sigma, tuple):  # one σ per gene (the last axis)
                sigma = jnp.asarray(self.sigma, s.dtype)
                if sigma.shape[0] != s.shape[-1]:
                    raise ValueError(
                        f"Dynamics.sigma has {sigma.shape[0]} values but "
                        f"the state has {s.shape[-1]} genes"
                    )
                return lx.DiagonalLinearOperator(jnp.broadcast_to(sigma, s.shape))
            return lx.DiagonalLinearOperator(jnp.full_like(s, self.sigma))

        def terms_of(f):  # drift f(s, s̄) dt plus diagonal noise σ dW on `path`
            return diffrax.MultiTerm(
                diffrax.ODETerm(lambda t, s, args: f(s, tissue.neighbour_mean(s))),
                diffrax.ControlTerm(diffusion, path),
            )

        terms = terms_of(regulator)
        n = self.n_steps
        k = self.backprop_steps
        save = save_every is not None
        if k is None or k >= n:
            out = self._segment(terms, tissue, s0, 0, n, save)
            return out[::save_every] if save else out
        # Truncated BPTT: the first n - k steps run with a frozen copy of the
        # regulator from a frozen start, so reverse mode neither stores nor traverses
        # them; only the last k steps are differentiated.
        params, static = eqx.partition(regulator, eqx.is_inexact_array)
        frozen = eqx.combine(jax.lax.stop_gradient(params), static)
        head = self._segment(terms_of(frozen), tissue, jax.lax.stop_gradient(s0), 0, n - k, save)
        if not save:
            return self._segment(terms, tissue, head, n - k, n, False)
        tail = self._segment(terms, tissue, head[-1], n - k, n, True)
        return jnp.concatenate([head, tail[1:]])[::save_every]

    def _segment(self, terms, tissue, s0, first, last, save):
        """Grid steps `first` to `last` from `s0`: the final state, or with `save`
        all states from the start on, stacked on axis 0."""
        solver = ProjectedSolver(diffrax.Euler(), lambda s, t: tissue.pin(self.constrain(s)))
        steps = last - first
        sol = diffrax.diffeqsolve(
            terms,
            solver,
            first * self.dt,
            last * self.dt,
            self.dt,
            s0,
            saveat=diffrax.SaveAt(t0=True, steps=True) if save else diffrax.SaveAt(t1=True),
            max_steps=steps,
            adjoint=diffrax.RecursiveCheckpointAdjoint(
                steps if self.checkpoints is None else min(self.checkpoints, steps)
            ),
        )
        return sol.ys[: steps + 1] if save else sol.ys[-1]

    def replace(self, **changes) -> "Dynamics":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def constrain(self, s: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        """The state constraint applied after every step."""
        if self.constraint == "clip":
            return jnp.clip(s, 0.0, 1.0)
        if self.constraint == "reflect":
            r = jnp.mod(s, 2.0)  # a triangle wave: reflection at 0 and at 1
            return jnp.where(r > 1.0, 2.0 - r, r)
        if self.constraint == "softclip":
            # s − sp(s − 1) + sp(−s) = sp(s) − sp(s − 1); symmetric about ½, so each
            # half is computed where its terms are small (no cancellation near 1).
            k = self.sharpness
            g = lambda x: (jax.nn.softplus(k * x) - jax.nn.softplus(k * (x - 1.0))) / k
            return jnp.where(s <= 0.5, g(s), 1.0 - g(1.0 - s))
        return s

    def config(self) -> dict:
        return dict(
            t_final=self.t_final,
            dt=self.dt,
            sigma=self.sigma,
            brownian=self.brownian,
            init_low=self.init_low,
            init_high=self.init_high,
            checkpoints=self.checkpoints,
            constraint=self.constraint,
            backprop_steps=self.backprop_steps,
            sharpness=self.sharpness,
            max_stiffness=self.max_stiffness,
        )
