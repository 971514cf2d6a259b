import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import pytest

import diffgrn


class ConstantRegulator(diffgrn.AbstractRegulator):
    """f(s̄) = value, for closed-form checks."""

    value: jnp.ndarray

    def __call__(self, sbar):
        return jnp.full_like(sbar, self.value)

    def config(self):
        return dict(type="ConstantRegulator")


@pytest.fixture(scope="session")
def small_objective():
    """A small, fast objective shared by the tests (compiled once per session)."""
    return diffgrn.Objective(
        tissue=diffgrn.Chain(5, "open"),
        dynamics=diffgrn.Dynamics(t_final=2.0, dt=0.05, sigma=0.1),
        readout=diffgrn.SoftReadout(10.0),
        bandwidth=0.2,
        replicates=16,
    )


@pytest.fixture(scope="session")
def mlp():
    return diffgrn.MLPRegulator(key=jr.key(0))


@pytest.fixture(scope="session")
def jitted(small_objective):
    """Shared jitted entry points of the small objective."""
    return dict(
        simulate=eqx.filter_jit(small_objective.simulate),
        hard=eqx.filter_jit(small_objective.hard),
        soft=eqx.filter_jit(small_objective.soft),
    )
