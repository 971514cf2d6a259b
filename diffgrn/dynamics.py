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

from ._memory import available_memory, state_bytes
from ._typing import BoolScalarLike, KeyBatch, RealScalarLike
from ._validate import check_instance, check_range
from .config import Configurable
from .constraint import AbstractConstraint, Clip
from .noise import AbstractNoise, CounterNoise, NoNoise
from .observe import AbstractObservable
from .regulator import AbstractRegulator
from .tissue import Tissue

# The solution and vector-field pytrees as Diffrax annotates them
# (`diffrax._custom_types.Y`, `VF`).
_Y = PyTree[Shaped[ArrayLike, "?*y"], "Y"]
_VF = PyTree[Shaped[ArrayLike, "?*vf"], "VF"]


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
        if isinstance(s, (str, bytes)):
            return s  # not a number: validation names the field
        try:
            return float(s)
        except (TypeError, ValueError):
            return s  # validation names the field

    if isinstance(sigma, (list, tuple)) or getattr(sigma, "ndim", 0) == 1:
        return tuple(number(s) for s in sigma)
    return sigma


MAX_STEPS = 2**31 - 1  # Diffrax's step counter (and CounterNoise's fold_in) is int32


class Dynamics(Configurable):
    """The SDE of one tissue, integrated by Euler–Maruyama with a fixed step.

    **Fields:**

    - `t_final`: horizon T (default 20).
    - `dt`: step (default 0.01; T/dt must be an integer number of steps).
    - `sigma`: noise amplitude σ ≥ 0 (default 0.1), or one per gene (a tuple).
    - `noise`: how the increments are drawn (`diffgrn.noise`): `CounterNoise()`
      (default: inside each step, memory flat in the horizon), `GridNoise()` (stored
      on the grid; diffgrn ≤ 0.4's numbers), `VirtualTreeNoise()` or `NoNoise()`.
      With σ = 0 nothing is drawn, whichever it is.
    - `init_low`, `init_high`: initial states are uniform in this range
      (default [0.4, 0.6]).
    - `constraint`: the map applied after every step (`diffgrn.constraint`):
      `Clip()` (model.md; default), `Reflect()`, `SoftClip(sharpness)` or
      `Unconstrained()`.
    - `checkpoints`: reverse-mode checkpoints for `diffrax.RecursiveCheckpointAdjoint`;
      `None` stores every step (fastest, memory ∝ steps), an integer trades
      recomputation for memory.
    """

    t_final: float = eqx.field(static=True, default=20.0)
    dt: float = eqx.field(static=True, default=0.01)
    sigma: float | tuple[float, ...] = eqx.field(static=True, default=0.1, converter=_as_sigma)
    noise: AbstractNoise = eqx.field(default_factory=CounterNoise)
    init_low: float = eqx.field(static=True, default=0.4)
    init_high: float = eqx.field(static=True, default=0.6)
    checkpoints: int | None = eqx.field(static=True, default=None)
    constraint: AbstractConstraint = eqx.field(default_factory=Clip)

    def __check_init__(self):
        check_instance("Dynamics", "noise", self.noise, AbstractNoise)
        check_instance("Dynamics", "constraint", self.constraint, AbstractConstraint)
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
        sigmas = self.sigma if isinstance(self.sigma, (tuple, list)) else (self.sigma,)
        if isinstance(self.noise, NoNoise) and max(sigmas) > 0:
            raise ValueError(
                f"Dynamics.noise is NoNoise(), which draws nothing, but Dynamics.sigma is "
                f"{self.sigma}: set sigma to 0 (σ = 0 needs no noise object) or choose a noise"
            )
        check_range("Dynamics", "init_low", self.init_low, ge=0.0, le=1.0)
        check_range("Dynamics", "init_high", self.init_high, ge=self.init_low, le=1.0)
        if self.checkpoints is not None:
            check_range("Dynamics", "checkpoints", self.checkpoints, ge=1, integer=True)
        steps = self.t_final / self.dt
        if steps > MAX_STEPS:
            raise ValueError(
                f"Dynamics.t_final / Dynamics.dt = {self.t_final:g} / {self.dt:g} = "
                f"{steps:.3g} steps; a solve counts its steps in 32-bit integers, so at most "
                f"{MAX_STEPS}: lower t_final or raise dt"
            )
        if abs(steps - round(steps)) > 1e-6 * max(1.0, steps):
            raise ValueError(
                f"Dynamics.t_final / Dynamics.dt must be a whole number of steps; got "
                f"{self.t_final} / {self.dt} = {steps}"
            )

    @property
    def n_steps(self) -> int:
        return int(round(self.t_final / self.dt))

    @property
    def active_noise(self) -> AbstractNoise:
        """The noise a solve draws: `noise`, or `NoNoise()` when every σ is 0."""
        sigmas = self.sigma if isinstance(self.sigma, tuple) else (self.sigma,)
        return NoNoise() if max(sigmas) == 0 else self.noise

    def initial_state(
        self, tissue: Tissue, key: PRNGKeyArray, genes: int = 1
    ) -> Float[Array, "cells genes"]:
        """One replicate's initial state: uniform in [init_low, init_high], pinned."""
        s0 = jr.uniform(key, (tissue.n_cells, genes), minval=self.init_low, maxval=self.init_high)
        return tissue.pin(s0)

    def draw(
        self,
        tissue: Tissue,
        keys: KeyBatch,
        genes: int = 1,
        init: Float[Array, "*init_cells init_genes"] | None = None,
    ) -> tuple[Float[Array, "replicates cells genes"], diffrax.AbstractBrownianPath | None]:
        """The randomness of one replicate per key: initial states and Brownian path
        (replicate r's initial state from `keys[r]` alone). `simulate(…, keys)` is
        `solve(…, *draw(tissue, keys, regulator.genes))`. `init` (per gene, or per
        cell and gene): every replicate starts there instead (pinned cells still
        pinned); with σ = 0 nothing at all is then drawn."""
        self.check_memory(tissue, keys.shape[0], genes)
        s0, noise_keys = self._initial_states(tissue, keys, genes, init)
        shape = (tissue.n_cells, genes)
        return s0, self.active_noise.path(noise_keys, shape, self.t_final, self.dt)

    def draw_paired(
        self, tissue: Tissue, keys: KeyBatch, genes: int, refine: int
    ) -> tuple[Float[Array, "replicates cells genes"], Any, Any]:
        """As `draw`, with the same Brownian motion on the dt grid and on the
        dt / `refine` grid: `(s0, coarse path, fine path)` (the resolution guard)."""
        s0, noise_keys = self._initial_states(tissue, keys, genes)
        shape = (tissue.n_cells, genes)
        return s0, *self.active_noise.paired(noise_keys, shape, self.t_final, self.dt, refine)

    def _initial_states(self, tissue, keys, genes, init=None):
        split = jax.vmap(jr.split)(keys)
        if init is None:
            s0 = jax.vmap(lambda k: self.initial_state(tissue, k, genes))(split[:, 0])
        else:
            init = jnp.asarray(init, jnp.float32)
            if init.shape not in ((genes,), (tissue.n_cells, genes)):
                raise ValueError(
                    f"Dynamics: init has shape {init.shape}; expected ({genes},) (per gene) "
                    f"or ({tissue.n_cells}, {genes}) (per cell and gene)"
                )
            shape = (keys.shape[0], tissue.n_cells, genes)
            s0 = tissue.pin(jnp.broadcast_to(init, shape))
        return s0, split[:, 1]

    def memory_need(
        self, tissue: Tissue, replicates: int, genes: int = 1, save_every: int | None = None
    ) -> tuple[int, list[str]]:
        """(bytes, what to lower) of one forward solve: a few live copies of the state,
        the noise the path stores and, with `save_every`, the saved trajectory. What
        `check_memory` checks and batched evaluations are sized by."""
        state = state_bytes(replicates, tissue.n_cells, genes)
        need = 4 * state  # a few live copies of the state
        parts = []
        noise = self.active_noise
        stored = noise.stored_bytes(state, self.n_steps)
        if stored:
            need += stored
            parts.append(f"{type(noise).__name__} stores {noise.stores}")
        if save_every is not None:
            need += state * (self.n_steps // save_every + 1)
            parts.append("saved trajectories: raise save_every")
        parts.append("lower replicates or cells")
        return need, parts

    def check_memory(
        self, tissue: Tissue, replicates: int, genes: int = 1, save_every: int | None = None
    ):
        """Raise ValueError, before anything is built, when the forward solve's stored
        noise and states would not fit in the memory available (`available_memory()`).

        The estimate covers a forward solve. A gradient also stores one state per step
        (per checkpoint with `checkpoints`); batched evaluations (an ES's population,
        `assess`'s draws, an exploration round) are split into chunks that fit."""
        need, parts = self.memory_need(tissue, replicates, genes, save_every)
        have = available_memory()
        if need > have:
            raise ValueError(
                f"Dynamics: this solve needs about {need / 2**30:.3g} GiB "
                f"({self.n_steps} steps, {replicates} replicates, {tissue.n_cells} cells, "
                f"{genes} genes) but about {have / 2**30:.3g} GiB are available; "
                + "; ".join(parts)
            )

    def simulate(
        self,
        regulator: AbstractRegulator,
        tissue: Tissue,
        keys: KeyBatch,
        *,
        save_every: int | None = None,
        shard: Callable | None = None,
        backprop_steps: int | None = None,
        init: Float[Array, "*init_cells init_genes"] | None = None,
        observe: AbstractObservable | None = None,
    ) -> Float[Array, "replicates *time cells genes"]:
        """Simulate one replicate per key: final states `(R, cells, genes)`, or with
        `save_every=k` trajectories `(R, 1 + steps // k, cells, genes)`, or with
        `observe=Trajectory(…)` what it records, `(R, times, cells', genes')`.
        `shard`, if given, maps the drawn `(s0, path)` before the solve (`Objective`
        places them on its devices). `backprop_steps`: see `solve`; `init`: see
        `draw`."""
        if save_every is not None:
            check_range("Dynamics.simulate", "save_every", save_every, ge=1, integer=True)
            self.check_memory(tissue, keys.shape[0], regulator.genes, save_every)
        if observe is not None:
            check_instance("Dynamics.simulate", "observe", observe, AbstractObservable)
            observe.check(self.n_steps, tissue.n_cells, regulator.genes)
            observe.check_memory(self.n_steps, keys.shape[0], tissue.n_cells, regulator.genes)
        s0, path = self.draw(tissue, keys, regulator.genes, init)
        if shard is not None:
            s0, path = shard(s0, path)
        out = self.solve(
            regulator,
            tissue,
            s0,
            path,
            save_every=save_every,
            backprop_steps=backprop_steps,
            observe=observe,
        )
        return out if save_every is None and observe is None else jnp.swapaxes(out, 0, 1)

    def solve(
        self,
        regulator: AbstractRegulator,
        tissue: Tissue,
        s0: Float[Array, "*batch cells genes"],
        path: diffrax.AbstractBrownianPath | None,
        *,
        save_every: int | None = None,
        backprop_steps: int | None = None,
        observe: AbstractObservable | None = None,
    ) -> Float[Array, "..."]:
        """Integrate from `s0` driven by `path` (same shape as `s0`; `None`: no noise).

        Replicates are a leading batch axis of the state: the drift, the noise and
        the constraint act cell by cell and `tissue.neighbour_mean` on the cell axis,
        so one Diffrax solve advances all replicates (cheaper in reverse mode than a
        `jax.vmap` of per-replicate solves). Returns the final state, or with
        `save_every=k` the states at times 0, k·dt, 2k·dt, … stacked on axis 0.

        `backprop_steps=k`: truncated backpropagation through time (estimators ask
        for it): gradients flow through the last k steps only; the state before them
        is a constant to reverse mode, and those steps are neither stored nor
        traversed backwards. The forward solve is unchanged.

        `observe=Trajectory(…)` (`diffgrn.observe`): the states it records, stacked on
        axis 0; the steps before its window are integrated without being stored.
        """
        if backprop_steps is not None:
            check_range("Dynamics.solve", "backprop_steps", backprop_steps, ge=1, integer=True)
        if observe is not None and (save_every is not None or backprop_steps is not None):
            raise ValueError(
                "Dynamics.solve: observe records its own window; give it without "
                "save_every and backprop_steps"
            )

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

        def terms_of(f, path):  # drift f(s, s̄) dt plus diagonal noise σ dW on `path`
            drift = diffrax.ODETerm(lambda t, s, args: f(s, tissue.neighbour_mean(s)))
            if path is None:
                return drift
            return diffrax.MultiTerm(drift, diffrax.ControlTerm(diffusion, path))

        n = self.n_steps
        segment = lambda f, s, first, last, save, select=None: self._segment(
            terms_of, f, path, tissue, s, first, last, save, select
        )
        if observe is not None:
            first, every = observe.window(n)
            head = segment(regulator, s0, 0, first, False) if first > 0 else s0
            tail = segment(regulator, head, first, n, True, observe.select)
            return tail[every - 1 :: every]
        k = backprop_steps
        save = save_every is not None
        if k is None or k >= n:
            out = segment(regulator, s0, 0, n, save)
            return out[::save_every] if save else out
        # The first n - k steps run with a frozen copy of the regulator from a frozen
        # start, so reverse mode neither stores nor traverses them.
        params, static = eqx.partition(regulator, eqx.is_inexact_array)
        frozen = eqx.combine(jax.lax.stop_gradient(params), static)
        head = segment(frozen, jax.lax.stop_gradient(s0), 0, n - k, save)
        if not save:
            return segment(regulator, head, n - k, n, False)
        tail = segment(regulator, head[-1], n - k, n, True)
        return jnp.concatenate([head, tail[1:]])[::save_every]

    def _segment(self, terms_of, f, path, tissue, s0, first, last, save, select=None):
        """Grid steps `first` to `last` from `s0`: the final state, or with `save`
        all states from the start on, stacked on axis 0 (with `select`: `select` of
        the states after each step, the start excluded). A noise that draws in blocks
        (`block_size`) has each block's increments drawn at once and the block
        solved on them."""
        steps = last - first
        size = None if path is None else self.active_noise.block_size(path)
        if size is None or steps < 2 * size:
            _, out = self._solve(terms_of(f, path), tissue, s0, first, last, save, select)
            return jnp.concatenate([s0[None], out]) if save and select is None else out
        blocks, rest = divmod(steps, size)
        solve = lambda s, start, n: self._solve(
            terms_of(f, path.block(start, n)), tissue, s, 0, n, save, select
        )
        s, ys = jax.lax.scan(lambda s, b: solve(s, first + b * size, size), s0, jnp.arange(blocks))
        s, tail = solve(s, first + blocks * size, rest) if rest else (s, None)
        if not (save or select is not None):
            return s
        ys = [ys.reshape(-1, *ys.shape[2:])] + ([] if tail is None else [tail])
        return jnp.concatenate(ys if select is not None else [s0[None], *ys])

    def _solve(self, terms, tissue, s0, first, last, save, select=None):
        """`_segment` in one Diffrax solve: (final state, what `_segment` returns
        without the start: the final state, or the states or `select` of them after
        each step)."""
        solver = ProjectedSolver(diffrax.Euler(), lambda s, t: tissue.pin(self.constraint(s)))
        steps = last - first
        if select is not None:
            sub = diffrax.SubSaveAt(steps=True, fn=lambda t, s, args: select(s))
        else:
            sub = diffrax.SubSaveAt(steps=True) if save else None
        saveat = (
            diffrax.SaveAt(t1=True)
            if sub is None
            else diffrax.SaveAt(subs=[diffrax.SubSaveAt(t1=True), sub])
        )
        sol = diffrax.diffeqsolve(
            terms,
            solver,
            first * self.dt,
            last * self.dt,
            self.dt,
            s0,
            saveat=saveat,
            max_steps=steps,
            throw=False,
            adjoint=diffrax.RecursiveCheckpointAdjoint(
                steps if self.checkpoints is None else min(self.checkpoints, steps)
            ),
        )
        # throw=False keeps host callbacks (Equinox's runtime error) out of the compiled
        # program, so JAX's persistent compilation cache can store it; a failed solve
        # (with fixed Euler steps only `max_steps_reached` is possible) gives NaN states.
        failed = sol.result != diffrax.RESULTS.successful
        ys = jax.tree.map(lambda y: jnp.where(failed, jnp.nan, y), sol.ys)
        if select is None and not save:
            return ys[-1], ys[-1]
        end, out = ys
        return end[-1], out[:steps]

    def replace(self, **changes) -> "Dynamics":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)
