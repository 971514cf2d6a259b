"""The one simulation pipeline: tissue → regulator → dynamics → readout → utility.

`Objective` binds the pipeline; `HardUtility()` and `SoftUtility()` say which of its
two utilities a gradient estimator or a diagnostic evaluates.
"""

import abc
import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Bool, Float, PRNGKeyArray, Scalar

from . import _memory
from ._validate import check_instance, check_range
from .config import Configurable
from .dynamics import Dynamics
from .readout import AbstractReadout, SoftReadout
from .regulator import AbstractRegulator, drift_stiffness
from .tissue import Chain, Tissue
from .utility import AbstractUtility, PatternInformation, Utility


def _as_tuple(x):
    try:
        return tuple(int(g) if float(g) == int(g) else g for g in x)
    except TypeError:
        return (x,)
    except ValueError:
        return tuple(x)


def _as_int(x):
    """A whole float or an integer string becomes an int; anything else is left for
    validation to name."""
    try:
        if not isinstance(x, bool) and float(x) == int(float(x)):
            return int(float(x))
    except (TypeError, ValueError, OverflowError):
        pass
    return x


def _as_devices(x):
    if x is None or isinstance(x, (int, float, str, bool)):
        return x
    try:
        return tuple(x)
    except TypeError:
        return x


class Objective(Configurable):
    """Binds a tissue, its dynamics, a differentiable readout and the utility.

    Every trainer and study evaluates regulators through this object:

    - `simulate(regulator, key)`: final states `(replicates, cells, genes)`.
    - `hard(regulator, key)`: exact utility of thresholded fates.
    - `soft(regulator, key)`: differentiable utility (`readout`, then KDE with
      `bandwidth`).
    - `evaluate(regulator, key)`: both from one simulation.

    `utility` scores the fates: `PatternInformation()` (U = S_pat − S_rep, the
    default) or `TargetPattern("1001001")` (make one chosen pattern).

    The same key gives the same noise in all of them (common random numbers).

    `genes` is the number of genes per cell (default 1; the regulator's `genes` must
    match), `fate_genes` the readout genes (default `(0,)`): with m of them each cell
    has one of K = 2^m fates and U ≤ log₂ K bits per cell. `devices`: `None` splits
    the replicates over all local devices when there are several; an integer uses
    the first `devices` of them, or pass a sequence of `jax.Device`s (the replicates
    are split over the largest number of them that divides R).

    `max_stiffness`: a guard against Euler artefacts: `hard` scores a regulator whose
    dt·max‖∂f/∂(s, s̄)‖ (`diagnostics.stiffness`) exceeds this as U = 0, so the search
    methods never select one that Euler at this dt does not resolve (1 is a sensible
    bound). `None` (default): no guard.
    """

    tissue: Tissue = eqx.field(default_factory=Chain)
    dynamics: Dynamics = eqx.field(default_factory=Dynamics)
    readout: AbstractReadout = eqx.field(default_factory=SoftReadout)
    bandwidth: float | Scalar = 0.5
    """KDE bandwidth h of the soft utility (model.md's first: 0.1)."""
    replicates: int = eqx.field(static=True, default=100)
    """Replicates R simulated per evaluation."""
    genes: int = eqx.field(static=True, default=1, converter=_as_int)
    """Genes per cell (the regulator's `genes` must match)."""
    fate_genes: tuple[int, ...] = eqx.field(static=True, default=(0,), converter=_as_tuple)
    """Readout genes (e.g. 0 and 1): each cell has one of K = 2^m fates."""
    devices: int | tuple | None = eqx.field(static=True, default=None, converter=_as_devices)
    utility: AbstractUtility = eqx.field(default_factory=PatternInformation)
    max_stiffness: float | None = eqx.field(static=True, default=None)
    """Score regulators with dt·max|f'| above this as U = 0, a guard against Euler artefacts (e.g.
    1; None: no guard)."""

    def __check_init__(self):
        if self.max_stiffness is not None:
            check_range("Objective", "max_stiffness", self.max_stiffness, gt=0.0)
        if not isinstance(self.tissue, Tissue):
            raise ValueError(
                "Objective.tissue must be a diffgrn tissue (Chain, Lattice, "
                f"Graph); got {self.tissue!r}"
            )
        if not isinstance(self.dynamics, Dynamics):
            raise ValueError(
                f"Objective.dynamics must be a diffgrn.Dynamics; got {self.dynamics!r}"
            )
        check_range("Objective", "genes", self.genes, ge=1, integer=True)
        if not 1 <= len(self.fate_genes) <= 8:
            raise ValueError(
                f"Objective.fate_genes must list 1 to 8 readout genes; got {self.fate_genes!r}"
            )
        for g in self.fate_genes:
            check_range("Objective", "fate_genes", g, ge=0, integer=True)
            if g >= self.genes:
                raise ValueError(
                    f"Objective.fate_genes lists gene {g}, but a cell has Objective.genes = "
                    f"{self.genes} (genes 0 to {self.genes - 1}); got {self.fate_genes!r}"
                )
        if len(set(self.fate_genes)) != len(self.fate_genes):
            raise ValueError(
                f"Objective.fate_genes must not repeat a gene; got {self.fate_genes!r}"
            )
        sigma = self.dynamics.sigma
        if isinstance(sigma, tuple) and len(sigma) != self.genes:
            raise ValueError(
                f"Dynamics.sigma has {len(sigma)} values but Objective.genes "
                f"is {self.genes}: give one σ per gene, or one number"
            )
        if isinstance(self.devices, tuple):
            if not self.devices or not all(isinstance(d, jax.Device) for d in self.devices):
                raise ValueError(
                    "Objective.devices must be None, a number of local "
                    "devices or a non-empty sequence of jax.Device; got "
                    f"{self.devices!r}"
                )
        elif self.devices is not None:
            check_range(
                "Objective",
                "devices",
                self.devices,
                ge=1,
                le=len(jax.local_devices()),
                integer=True,
            )
        if not isinstance(self.tissue, Tissue):
            raise ValueError(
                "Objective.tissue must be a diffgrn tissue (Chain, Lattice, Graph); got "
                f"{self.tissue!r}"
            )
        if not isinstance(self.dynamics, Dynamics):
            raise ValueError(
                f"Objective.dynamics must be a diffgrn.Dynamics; got {type(self.dynamics).__name__}"
            )
        check_range("Objective", "bandwidth", self.bandwidth, gt=0.0)
        check_instance("Objective", "utility", self.utility, AbstractUtility)
        self.utility.check(self.tissue.n_cells, len(self.fate_genes))
        self.utility.check_run(self)
        check_range("Objective", "replicates", self.replicates, ge=1, integer=True)
        least, why = self.utility.least_replicates()
        if self.replicates < least:
            raise ValueError(
                f"Objective.replicates is {self.replicates} but {type(self.utility).__name__}() "
                f"needs at least {least} ({why}): raise Objective.replicates, or choose a "
                "utility that scores one replicate (TargetPattern, NoUtility)"
            )
        check_instance("Objective", "readout", self.readout, AbstractReadout)

    @property
    def n_cells(self) -> int:
        return self.tissue.n_cells

    @property
    def direction(self) -> int:
        """+1 when the utility is maximised, −1 when it is a loss (`AbstractUtility`)."""
        return self.utility.direction

    @property
    def n_fates(self) -> int:
        """K = 2^m fates per cell for m readout genes (U ≤ log₂ K bits per cell)."""
        return 2 ** len(self.fate_genes)

    def check_regulator(self, regulator: AbstractRegulator):
        """Raise ValueError unless `regulator` is a diffgrn regulator with our genes."""
        if not isinstance(regulator, AbstractRegulator):
            raise ValueError(
                "regulator must be a diffgrn regulator (an AbstractRegulator "
                f"subclass); got {type(regulator).__name__}"
            )
        if regulator.genes != self.genes:
            raise ValueError(
                f"the regulator has genes={regulator.genes} but Objective.genes is {self.genes}"
            )

    def fates(
        self, states: Float[Array, "*batch cells genes"], readout: AbstractReadout | None = None
    ) -> Float[Array, "*batch cells m"]:
        """The readout genes of `states` through `readout` (default: the objective's
        readout): `(…, cells, m)`."""
        readout = self.readout if readout is None else readout
        return readout(states[..., jnp.asarray(self.fate_genes)])

    def _device_list(self):
        if isinstance(self.devices, tuple):
            return list(self.devices)
        devs = jax.local_devices()
        return devs if self.devices is None else devs[: self.devices]

    def _shard(self, x, axis: int):
        """Split axis `axis` (replicates) of `x` over the devices (when several): over
        the largest number of them that divides the number of replicates."""
        devs = self._device_list()
        n = max(d for d in range(1, len(devs) + 1) if x.shape[axis] % d == 0)
        if n < 2:
            return x
        devs = devs[:n]
        mesh = jax.sharding.Mesh(np.asarray(devs), ("replicates",))
        spec = [None] * x.ndim
        spec[axis] = "replicates"
        return jax.lax.with_sharding_constraint(
            x, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(*spec))
        )

    def solve_bytes(self, replicates: int | None = None) -> int:
        """About how many bytes one evaluation (a forward solve of `replicates`, default
        the objective's) holds: what batches of evaluations are sized by."""
        r = self.replicates if replicates is None else replicates
        return self.dynamics.memory_need(self.tissue, r, self.genes)[0]

    def batch_size(self, count: int, what: str, replicates: int | None = None) -> int:
        """How many of `count` evaluations to run at once (`diffgrn._memory.batch_size`):
        all where they fit, else chunks that do; a ValueError naming `what` when not
        even one fits."""
        r = self.replicates if replicates is None else replicates
        need, parts = self.dynamics.memory_need(self.tissue, r, self.genes)
        return _memory.batch_size(count, need, what, "; ".join(parts))

    @property
    def replicate_steps(self) -> int:
        """Simulated replicate-steps of one evaluation (the cost unit of training)."""
        return self.replicates * self.dynamics.n_steps

    def simulate(
        self,
        regulator: AbstractRegulator,
        key: PRNGKeyArray,
        *,
        replicates: int | None = None,
        save_every: int | None = None,
        backprop_steps: int | None = None,
        init: Float[Array, "*init_cells init_genes"] | None = None,
        observe=None,
    ) -> Float[Array, "replicates *time cells genes"]:
        """Final states `(R, N, G)`, or trajectories `(R, times, N, G)` with
        `save_every`, or what `observe` records (`diffgrn.observe.Trajectory`);
        `backprop_steps` truncates reverse mode (`Dynamics.solve`); `init` starts every
        replicate from that state (per gene, or per cell and gene) instead of a draw."""
        self.check_regulator(regulator)
        r = self.replicates if replicates is None else replicates
        if init is None:  # a regulator that carries its start (`Started`)
            init = regulator.initial_state()
        return self.dynamics.simulate(
            regulator,
            self.tissue,
            jr.split(key, r),
            save_every=save_every,
            shard=self._shard_draw,
            backprop_steps=backprop_steps,
            init=init,
            observe=observe,
        )

    def draw(self, key: PRNGKeyArray, *, replicates: int | None = None):
        """The initial states and Brownian path that `simulate(regulator, key)` uses
        (split over the devices along the replicate axis when there are several)."""
        r = self.replicates if replicates is None else replicates
        return self._shard_draw(*self.dynamics.draw(self.tissue, jr.split(key, r), self.genes))

    def _shard_draw(self, s0, path):
        """Split a draw's initial states and noise over the devices (replicate axis)."""
        return self._shard(s0, 0), self.dynamics.active_noise.place(path, self._shard)

    def hard(
        self, regulator: AbstractRegulator, key: PRNGKeyArray, *, replicates: int | None = None
    ) -> Utility:
        s = self.simulate(regulator, key, replicates=replicates, observe=self.utility.observable())
        util = _nan_unless_finite(self.hard_of(s), s)
        if self.max_stiffness is not None:  # Euler at this dt must resolve it
            util = Utility(*(jnp.where(self.resolves(regulator), v, 0.0) for v in util))
        return util

    def resolves(self, regulator: AbstractRegulator) -> Bool[Array, ""]:
        """Whether `regulator` passes `max_stiffness` (dt·max|f'| ≤ the bound; always
        True without one). `hard` scores regulators that fail as U = 0."""
        bound = self.max_stiffness
        if bound is None:
            return jnp.asarray(True)
        return drift_stiffness(regulator, self.dynamics.dt) <= bound

    def soft(
        self,
        regulator: AbstractRegulator,
        key: PRNGKeyArray,
        *,
        replicates: int | None = None,
        backprop_steps: int | None = None,
    ) -> Utility:
        """`replicates` overrides the objective's R for this evaluation;
        `backprop_steps` truncates its gradient to the last steps."""
        s = self.simulate(
            regulator,
            key,
            replicates=replicates,
            backprop_steps=backprop_steps,
            observe=self.utility.observable(),
        )
        return self.soft_of(s)

    def hard_of(self, states: Float[Array, "replicates *times cells genes"]) -> Utility:
        """The hard utility of final states `(R, N, G)` (or of what the utility's
        `observable` recorded; no finiteness check)."""
        return self.utility.hard_of(self, states)

    def soft_of(self, states: Float[Array, "replicates *times cells genes"]) -> Utility:
        """The soft utility of final states `(R, N, G)` (readout, then `utility.soft`;
        or of what the utility's `observable` recorded)."""
        return self.utility.soft_of(self, states)

    def evaluate(self, regulator: AbstractRegulator, key: PRNGKeyArray) -> tuple[Utility, Utility]:
        """(hard, soft) utilities of one simulation."""
        s = self.simulate(regulator, key, observe=self.utility.observable())
        return _nan_unless_finite(self.hard_of(s), s), self.soft_of(s)

    def loss(self, regulator: AbstractRegulator, key: PRNGKeyArray) -> Scalar:
        """−U_soft: the quantity gradient methods minimise."""
        return -self.soft(regulator, key).value

    def anneal(
        self, *, temperature: float | Scalar | None = None, bandwidth: float | Scalar | None = None
    ) -> "Objective":
        """A copy with the readout temperature and/or the KDE bandwidth changed.

        Unlike `replace`, the values may be traced (a schedule inside a jitted
        training step), so no recompilation happens when they change.
        """
        out = self
        if temperature is not None:
            out = eqx.tree_at(lambda o: o.readout, out, self.readout.with_temperature(temperature))
        if bandwidth is not None:
            out = eqx.tree_at(lambda o: o.bandwidth, out, bandwidth)
        return out

    def replace(self, **changes) -> "Objective":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def arguments(self) -> dict:
        # `devices` is where it runs, not what it is: not part of the config.
        return {k: v for k, v in super().arguments().items() if k != "devices"}


class AbstractEvaluation(Configurable):
    """Which utility of an `Objective` an estimator or a diagnostic evaluates:
    `HardUtility()` (exact, on thresholded fates) or `SoftUtility()` (differentiable,
    through the readout and the KDE)."""

    @abc.abstractmethod
    def __call__(
        self, objective: "Objective", regulator: AbstractRegulator, key: PRNGKeyArray
    ) -> Utility:
        """The utility of `regulator` on the noise of `key`."""

    @abc.abstractmethod
    def of(self, objective: "Objective", states: Float[Array, "replicates cells genes"]) -> Utility:
        """The utility of final states `(R, N, G)`."""

    def reported(self, value: Scalar) -> Scalar | float:
        """What an estimator logs as its U_soft, given its mean utility `value`:
        that value for the soft utility, NaN otherwise."""
        return jnp.nan


class HardUtility(AbstractEvaluation):
    """The exact utility of thresholded fates (`Objective.hard`)."""

    def __call__(
        self, objective: "Objective", regulator: AbstractRegulator, key: PRNGKeyArray
    ) -> Utility:
        return objective.hard(regulator, key)

    def of(self, objective: "Objective", states: Float[Array, "replicates cells genes"]) -> Utility:
        return objective.hard_of(states)


class SoftUtility(AbstractEvaluation):
    """The differentiable utility (`Objective.soft`: readout, then `utility.soft`)."""

    def __call__(
        self, objective: "Objective", regulator: AbstractRegulator, key: PRNGKeyArray
    ) -> Utility:
        return objective.soft(regulator, key)

    def of(self, objective: "Objective", states: Float[Array, "replicates cells genes"]) -> Utility:
        return objective.soft_of(states)

    def reported(self, value: Scalar) -> Scalar | float:
        return value


def _nan_unless_finite(util: Utility, states: Array) -> Utility:
    """NaN utilities when any state is non-finite: thresholding would silently read a
    NaN state as fate 0 and score a broken regulator U = 0 (so every method stops)."""
    ok = jnp.all(jnp.isfinite(states))
    return Utility(*(jnp.where(ok, v, jnp.nan) for v in util))
