"""Gradient estimators for gradient methods: what `Gradient` feeds to its optimiser.

Each estimator maps (objective, regulator, key) to an estimate of ∇θ U (ascent
direction) and a utility value to log; `cost(objective)` is the simulated
replicate-steps per estimate. Pluggable like Optax transformations.

What an estimator differentiates is an object too: `utility=HardUtility()` or
`SoftUtility()` (`diffgrn.objective`), and the likelihood-ratio baseline is
`ReplicateBaseline()` or `BatchBaseline()`.
"""

import abc
import dataclasses
from typing import ClassVar

import equinox as eqx
import jax
from jaxtyping import Array, Float, PRNGKeyArray, PyTree, Scalar

from . import diagnostics
from ._memory import state_bytes
from ._validate import check_instance, check_range
from .config import Configurable
from .objective import AbstractEvaluation, HardUtility, Objective, SoftUtility
from .regulator import AbstractRegulator


class AbstractEstimator(Configurable):
    @abc.abstractmethod
    def __call__(
        self, objective: Objective, regulator: AbstractRegulator, key: PRNGKeyArray
    ) -> tuple[PyTree, Float[Array, ""] | float]:
        """Return (gradient of U as a pytree like `regulator`, U_soft or NaN)."""

    @abc.abstractmethod
    def cost(self, objective: Objective) -> int: ...

    @property
    def relaxed(self) -> bool:
        """Whether it evaluates the soft relaxation (so the readout's temperature and the
        bandwidth matter to it): it holds a `SoftUtility`, or a part that is relaxed."""
        parts = (getattr(self, f.name) for f in dataclasses.fields(self))
        return any(isinstance(p, SoftUtility) or getattr(p, "relaxed", False) for p in parts)

    def memory_bytes(self, objective: Objective, regulator: AbstractRegulator) -> int:
        """About how many bytes one estimate of `regulator`'s gradient holds, at least
        XLA's count for the compiled estimate (the built-in estimators' are tested
        against it); `Gradient` refuses, before compiling, an estimate that cannot fit.
        Default: every solve `cost` counts held at once, 5 solves' worth each (XLA's
        count on the CPU for vmapped hard evaluations: 3.9), right for an estimator that
        vmaps forward solves; one that backpropagates should say what it stores."""
        solves = -(-self.cost(objective) // objective.replicate_steps)  # ceil
        return 5 * max(1, solves) * objective.solve_bytes()


class Pathwise(AbstractEstimator):
    """Backpropagation through the simulation: ∇θ U_soft on one noise draw of
    `replicates` replicates (default: the objective's R).

    `backprop_steps=k` truncates backpropagation to the last k steps of the solve
    (`Dynamics.solve`): the forward solve is the same, the backward pass
    covers k steps only (default `None`: all steps).
    """

    replicates: int | None = eqx.field(static=True, default=None)
    """Replicates per estimate (None: the objective's)."""
    backprop_steps: int | None = eqx.field(static=True, default=None)
    """Backpropagate through the last K steps only (truncated BPTT; None: all)."""
    relaxed: ClassVar[bool] = True  # it backpropagates U_soft

    def __check_init__(self):
        if self.replicates is not None:
            check_range("Pathwise", "replicates", self.replicates, ge=2, integer=True)
        if self.backprop_steps is not None:
            check_range("Pathwise", "backprop_steps", self.backprop_steps, ge=1, integer=True)

    def __call__(
        self, objective: Objective, regulator: AbstractRegulator, key: PRNGKeyArray
    ) -> tuple[PyTree, Float[Array, ""] | float]:
        util, grads = eqx.filter_value_and_grad(
            lambda r: (
                objective.soft(
                    r, key, replicates=self.replicates, backprop_steps=self.backprop_steps
                ).value
            )
        )(regulator)
        return grads, util

    def cost(self, objective: Objective) -> int:
        r = objective.replicates if self.replicates is None else self.replicates
        return r * objective.dynamics.n_steps

    def memory_bytes(self, objective: Objective, regulator: AbstractRegulator) -> int:
        """The forward solve, and what reverse mode stores per backpropagated step (per
        checkpoint with `Dynamics.checkpoints`): 7 states (XLA's count on the CPU: 5.0
        at 200 steps, the regulator recomputed in the backward pass)."""
        r = objective.replicates if self.replicates is None else self.replicates
        dyn = objective.dynamics
        steps = min(self.backprop_steps or dyn.n_steps, dyn.n_steps)
        stored = steps if dyn.checkpoints is None else min(dyn.checkpoints, steps)
        return objective.solve_bytes(r) + 7 * stored * _state_bytes(objective, r)


class AntitheticES(AbstractEstimator):
    """Antithetic Gaussian-smoothing (OpenAI-ES) gradient of `utility`
    (`HardUtility()`, the default, or `SoftUtility()`): `pairs` mirrored perturbations
    of scale `sigma`, each pair on one noise draw."""

    sigma: float = eqx.field(static=True, default=0.05)
    """Perturbation scale."""
    pairs: int = eqx.field(static=True, default=16)
    """Antithetic pairs per estimate."""
    utility: AbstractEvaluation = eqx.field(default_factory=HardUtility)

    def __check_init__(self):
        check_range("AntitheticES", "sigma", self.sigma, gt=0.0)
        check_range("AntitheticES", "pairs", self.pairs, ge=1, integer=True)
        check_instance("AntitheticES", "utility", self.utility, AbstractEvaluation)

    def __call__(
        self, objective: Objective, regulator: AbstractRegulator, key: PRNGKeyArray
    ) -> tuple[PyTree, Float[Array, ""] | float]:
        grads = diagnostics.es_gradient(
            lambda r, k: self.utility(objective, r, k).value,
            regulator,
            key,
            sigma=self.sigma,
            pairs=self.pairs,
        )
        return grads, jax.numpy.nan

    def cost(self, objective: Objective) -> int:
        return 2 * self.pairs * objective.replicate_steps

    def memory_bytes(self, objective: Objective, regulator: AbstractRegulator) -> int:
        """`pairs` solves at once (vmapped), + and − side by side, with XLA's
        temporaries: 5 × pairs solves (XLA's count on the CPU: 3.9 × pairs)."""
        return 5 * self.pairs * objective.solve_bytes()


class AbstractBaseline(Configurable):
    """What `LikelihoodRatio` subtracts from each replicate's utility before weighting
    its score (a baseline independent of that replicate's path keeps it unbiased)."""

    least_batches: ClassVar[int] = 1

    @abc.abstractmethod
    def weights(
        self,
        u_batch: Scalar,
        u_without: Float[Array, " replicates"],
        u_batches: Float[Array, " batches"],
    ) -> Float[Array, " replicates"]:
        """The weight of each replicate's score in one batch: from the batch's utility,
        its utility without each replicate and the utilities of all the batches."""


class ReplicateBaseline(AbstractBaseline):
    """U − U_{−r}: the batch's utility less its utility without replicate r (the
    default; one batch suffices)."""

    def weights(
        self,
        u_batch: Scalar,
        u_without: Float[Array, " replicates"],
        u_batches: Float[Array, " batches"],
    ) -> Float[Array, " replicates"]:
        return u_batch - u_without


class BatchBaseline(AbstractBaseline):
    """U_b − the mean utility of the other batches, the same for every replicate of
    batch b (needs `batches` ≥ 2)."""

    least_batches: ClassVar[int] = 2

    def weights(
        self,
        u_batch: Scalar,
        u_without: Float[Array, " replicates"],
        u_batches: Float[Array, " batches"],
    ) -> Float[Array, " replicates"]:
        others = (jax.numpy.sum(u_batches) - u_batch) / (u_batches.shape[0] - 1)
        return jax.numpy.full_like(u_without, u_batch - others)


class LikelihoodRatio(AbstractEstimator):
    """Path-space score-function (likelihood-ratio) gradient of E[U], for the hard
    utility itself: no surrogate, no parameter perturbation, the clip included.

    Each Euler–Maruyama step draws the pre-constraint state
    y_k ~ N(s_{k−1} + f_θ(s_{k−1}, s̄_{k−1})·dt, σ²·dt) and the clip (or reflection,
    pin) is a deterministic function of y_k, so the score of replicate r's path is
    score_r = Σ_k Σ_cells Σ_genes ∂f_θ/∂θ · ΔW_k / σ over the free cells (ΔW_k: the
    increment actually used) and ∇θ E[U] = E[U · score]. U is a function of a whole
    batch of R replicates (the objective's R), so the baseline matters:

    - `baseline=ReplicateBaseline()` (default): Σ_r (U − U_{−r})·score_r on one
      batch, U_{−r} the utility of the batch without replicate r (independent of r's
      path, so unbiased); `batches` such batches are averaged.
    - `baseline=BatchBaseline()`: `batches` (≥ 2) independent batches, each
      (U_b − mean of the other batches' U)·Σ_r score_{b,r}.

    `utility=SoftUtility()` estimates ∇E[U_soft] the same way (to mix with
    `Pathwise`); the default is `HardUtility()`.
    Needs σ > 0 (any noise model: the score uses the increments it drew). Stores the
    trajectory: memory ∝ steps × replicates × cells.
    """

    baseline: AbstractBaseline = eqx.field(default_factory=ReplicateBaseline)
    batches: int = eqx.field(static=True, default=1)
    utility: AbstractEvaluation = eqx.field(default_factory=HardUtility)

    def __check_init__(self):
        check_instance("LikelihoodRatio", "baseline", self.baseline, AbstractBaseline)
        check_instance("LikelihoodRatio", "utility", self.utility, AbstractEvaluation)
        least = self.baseline.least_batches
        check_range("LikelihoodRatio", "batches", self.batches, ge=least, integer=True)

    def __call__(
        self, objective: Objective, regulator: AbstractRegulator, key: PRNGKeyArray
    ) -> tuple[PyTree, Float[Array, ""] | float]:
        sigma = objective.dynamics.sigma
        sigmas = sigma if isinstance(sigma, tuple) else (sigma,)
        if min(sigmas) <= 0:
            raise ValueError(
                "LikelihoodRatio needs noise: Dynamics.sigma must be > 0 for every gene "
                f"(the score divides by σ); got {sigma}"
            )
        params, static = eqx.partition(regulator, eqx.is_inexact_array)
        keys = jax.random.split(key, self.batches)
        per_batch = [self._batch(objective, regulator, k) for k in keys]
        utils = jax.numpy.stack([u for u, _, _ in per_batch])
        total = None
        for u_b, u_minus, surrogate in per_batch:
            weights = self.baseline.weights(u_b, u_minus, utils)  # (R,)
            g = jax.grad(lambda p, s=surrogate, w=weights: s(eqx.combine(p, static), w))(params)
            total = g if total is None else jax.tree_util.tree_map(jax.numpy.add, total, g)
        grads = jax.tree_util.tree_map(lambda x: x / self.batches, total)
        return grads, self.utility.reported(jax.numpy.mean(utils))

    def _batch(self, objective, regulator, key):
        """(U of the batch, U without each replicate (R,), the score surrogate)."""
        jnp = jax.numpy
        lax = jax.lax
        dyn, tissue = objective.dynamics, objective.tissue
        s0, path = objective.draw(key)
        traj = dyn.solve(regulator, tissue, s0, path, save_every=1)  # (T+1, R, N, G)
        traj = lax.stop_gradient(traj)
        steps = traj.shape[0] - 1
        dw = dyn.active_noise.increments(path, steps, dyn.dt)  # (T, R, N, G)
        final = traj[-1]
        u_fn = lambda s: self.utility.of(objective, s).value
        u = u_fn(final)
        r = final.shape[0]
        idx = jnp.array([[j for j in range(r) if j != i] for i in range(r)])
        u_minus = jax.vmap(lambda rows: u_fn(final[rows]))(idx)
        sigma = jnp.asarray(dyn.sigma, traj.dtype)
        free = (~tissue.pinned)[None, None, :, None]
        prev = traj[:-1]
        sbar = tissue.neighbour_mean(prev)

        def surrogate(reg, weights):  # Σ_r w_r · score_r(θ): its θ-gradient is the estimate
            f = reg(prev, sbar)  # (T, R, N, G)
            per_rep = jnp.sum(jnp.where(free, f * dw / sigma, 0.0), axis=(0, 2, 3))
            return jnp.sum(lax.stop_gradient(weights) * per_rep)

        return u, u_minus, surrogate

    def cost(self, objective: Objective) -> int:
        return self.batches * objective.replicate_steps

    def memory_bytes(self, objective: Objective, regulator: AbstractRegulator) -> int:
        """Per batch: the solve, the stored trajectory and increments and, per step,
        what the score's backward pass keeps of the regulator's call (its VJP's
        residuals, traced) with 10 states besides; the leave-one-out utilities."""
        state = _state_bytes(objective)
        steps = objective.dynamics.n_steps
        per_step = _residual_bytes(objective, regulator) + 10 * state
        return self.batches * (
            objective.solve_bytes() + steps * per_step + objective.replicates * state
        )


class Mixture(AbstractEstimator):
    """(1 − weight)·a + weight·b of two estimators on independent keys, each normalised
    to unit norm first (`normalise=True`, default: for estimators of different
    objectives, whose scales differ by orders of magnitude), or as they are
    (`normalise=False`: the α-blend of two estimators of the same gradient, unbiased
    when both are)."""

    a: AbstractEstimator
    b: AbstractEstimator
    weight: float = eqx.field(static=True, default=0.5)
    normalise: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        check_range("Mixture", "weight", self.weight, ge=0.0, le=1.0)

    def __call__(
        self, objective: Objective, regulator: AbstractRegulator, key: PRNGKeyArray
    ) -> tuple[PyTree, Float[Array, ""] | float]:
        ka, kb = jax.random.split(key)
        ga, ua = self.a(objective, regulator, ka)
        gb, _ = self.b(objective, regulator, kb)
        if self.normalise:
            na, nb = diagnostics.tree_norm(ga), diagnostics.tree_norm(gb)
        else:
            na = nb = jax.numpy.ones(())
        safe = lambda n: jax.numpy.where(n > 0, n, 1.0)
        mix = jax.tree_util.tree_map(
            lambda x, y: (1 - self.weight) * x / safe(na) + self.weight * y / safe(nb), ga, gb
        )
        return mix, ua

    def cost(self, objective: Objective) -> int:
        return self.a.cost(objective) + self.b.cost(objective)

    def memory_bytes(self, objective: Objective, regulator: AbstractRegulator) -> int:
        """Both in one program: a + b."""
        return self.a.memory_bytes(objective, regulator) + self.b.memory_bytes(objective, regulator)


class InverseVariance(AbstractEstimator):
    """Per-parameter inverse-variance combination of two estimators of the same
    gradient (PIPPS's "total propagation", Parmas et al. 2018): each is drawn on
    `batches` independent keys; with means m_a, m_b and sample variances of the mean
    v_a, v_b per parameter, the estimate is (m_a/v_a + m_b/v_b) / (1/v_a + 1/v_b).
    The weights come from the same draws, so the combination is unbiased only as the
    variances are known; `batches` ≥ 2 (default 4). Costs `batches` × both."""

    a: AbstractEstimator
    b: AbstractEstimator
    batches: int = eqx.field(static=True, default=4)

    def __check_init__(self):
        check_range("InverseVariance", "batches", self.batches, ge=2, integer=True)

    def __call__(
        self, objective: Objective, regulator: AbstractRegulator, key: PRNGKeyArray
    ) -> tuple[PyTree, Float[Array, ""] | float]:
        jnp = jax.numpy
        ka, kb = jax.random.split(key)

        def stats(est, k):
            draws = [est(objective, regulator, kk) for kk in jax.random.split(k, self.batches)]
            grads = [eqx.filter(g, eqx.is_inexact_array) for g, _ in draws]
            stacked = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *grads)
            mean = jax.tree_util.tree_map(lambda x: jnp.mean(x, 0), stacked)
            var = jax.tree_util.tree_map(
                lambda x: jnp.var(x, 0, ddof=1) / self.batches + 1e-30, stacked
            )
            return mean, var, draws[0][1]

        ma, va, ua = stats(self.a, ka)
        mb, vb, _ = stats(self.b, kb)
        combined = jax.tree_util.tree_map(
            lambda a, b, x, y: (a / x + b / y) / (1 / x + 1 / y), ma, mb, va, vb
        )
        return combined, ua

    def cost(self, objective: Objective) -> int:
        return self.batches * (self.a.cost(objective) + self.b.cost(objective))

    def memory_bytes(self, objective: Objective, regulator: AbstractRegulator) -> int:
        """Every draw of both in one program: `batches` × (a + b), an upper bound."""
        parts = self.a.memory_bytes(objective, regulator) + self.b.memory_bytes(
            objective, regulator
        )
        return self.batches * parts


def _state_bytes(objective: Objective, replicates: int | None = None) -> int:
    r = objective.replicates if replicates is None else replicates
    return state_bytes(r, objective.n_cells, objective.genes)


def _residual_bytes(objective: Objective, regulator: AbstractRegulator) -> int:
    """Bytes reverse mode keeps from one call of `regulator` on a batch of states (the
    residuals of its VJP), found by tracing: nothing is computed."""
    params, static = eqx.partition(regulator, eqx.is_inexact_array)
    states = jax.ShapeDtypeStruct((objective.replicates, objective.n_cells, objective.genes),
                                  jax.numpy.float32)  # fmt: skip

    def residuals(p, s):
        return jax.vjp(lambda p: eqx.combine(p, static)(s, s), p)[1]

    shapes = jax.tree_util.tree_leaves(jax.eval_shape(residuals, params, states))
    return sum(x.size * x.dtype.itemsize for x in shapes if hasattr(x, "dtype"))
