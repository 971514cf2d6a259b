"""The one simulation pipeline: tissue → regulator → dynamics → readout → utility."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray, Scalar

from ._validate import check_range
from .dynamics import Dynamics
from .readout import AbstractReadout, HardReadout, SoftReadout, readout_from_config
from .regulator import AbstractRegulator
from .tissue import Chain, Tissue
from .utility import Utility, hard_utility, soft_utility


class Objective(eqx.Module):
    """Binds a tissue, its dynamics, a differentiable readout and the utility.

    Every trainer and study evaluates regulators through this object:

    - `simulate(regulator, key)`: final states `(replicates, cells)`.
    - `hard(regulator, key)`: exact utility of thresholded fates.
    - `soft(regulator, key)`: differentiable utility (`readout`, then KDE with
      `bandwidth`).
    - `evaluate(regulator, key)`: both from one simulation.

    The same key gives the same noise in all of them (common random numbers).
    """

    tissue: Tissue = eqx.field(default_factory=Chain)
    dynamics: Dynamics = eqx.field(default_factory=Dynamics)
    readout: AbstractReadout = eqx.field(default_factory=SoftReadout)
    bandwidth: float = 0.5
    replicates: int = eqx.field(static=True, default=100)

    def __check_init__(self):
        check_range("Objective", "bandwidth", self.bandwidth, gt=0.0)
        check_range("Objective", "replicates", self.replicates, ge=2, integer=True)
        if not isinstance(self.readout, AbstractReadout):
            raise ValueError("Objective.readout must be a diffgrn readout "
                             f"(HardReadout, SoftReadout, StraightThroughReadout); got "
                             f"{type(self.readout).__name__}")

    @property
    def n_cells(self) -> int:
        return self.tissue.n_cells

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
    ) -> Float[Array, "replicates *time cells"]:
        """Final states `(R, N)`, or trajectories `(R, times, N)` with `save_every`."""
        r = self.replicates if replicates is None else replicates
        return self.dynamics.simulate(regulator, self.tissue, jr.split(key, r),
                                      save_every=save_every)

    def draw(self, key: PRNGKeyArray, *, replicates: int | None = None):
        """The initial states and Brownian path that `simulate(regulator, key)` uses."""
        r = self.replicates if replicates is None else replicates
        return self.dynamics.draw(self.tissue, jr.split(key, r))

    def hard(self, regulator: AbstractRegulator, key: PRNGKeyArray, *,
             replicates: int | None = None) -> Utility:
        return hard_utility(HardReadout()(self.simulate(regulator, key,
                                                        replicates=replicates)))

    def soft(self, regulator: AbstractRegulator, key: PRNGKeyArray, *,
             replicates: int | None = None) -> Utility:
        """`replicates` overrides the objective's R for this evaluation."""
        return soft_utility(self.readout(self.simulate(regulator, key,
                                                       replicates=replicates)),
                            self.bandwidth)

    def evaluate(self, regulator: AbstractRegulator, key: PRNGKeyArray) -> tuple[Utility, Utility]:
        """(hard, soft) utilities of one simulation."""
        s = self.simulate(regulator, key)
        return (hard_utility(HardReadout()(s)),
                soft_utility(self.readout(s), self.bandwidth))

    def loss(self, regulator: AbstractRegulator, key: PRNGKeyArray) -> Scalar:
        """−U_soft: the quantity gradient methods minimise."""
        return -self.soft(regulator, key).value

    def anneal(self, *, temperature=None, bandwidth=None) -> "Objective":
        """A copy with the readout temperature and/or the KDE bandwidth changed.

        Unlike `replace`, the values may be traced (a schedule inside a jitted
        training step), so no recompilation happens when they change.
        """
        out = self
        if temperature is not None:
            out = eqx.tree_at(lambda o: o.readout, out,
                              self.readout.with_temperature(temperature))
        if bandwidth is not None:
            out = eqx.tree_at(lambda o: o.bandwidth, out, bandwidth)
        return out

    def replace(self, **changes) -> "Objective":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def config(self) -> dict:
        return dict(tissue=self.tissue.config(), dynamics=self.dynamics.config(),
                    readout=self.readout.config(), bandwidth=self.bandwidth,
                    replicates=self.replicates)

    @classmethod
    def from_config(cls, config: dict) -> "Objective":
        t = dict(config["tissue"])
        if t.pop("type", "Chain") != "Chain":
            raise ValueError(f"unknown tissue type in config: {config['tissue']!r}")
        return cls(tissue=Chain(**t), dynamics=Dynamics(**config["dynamics"]),
                   readout=readout_from_config(config["readout"]),
                   bandwidth=config["bandwidth"], replicates=config["replicates"])
