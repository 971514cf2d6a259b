import os

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import pytest
from jaxtyping import install_import_hook

# Shape-checked tests: every jaxtyping annotation in diffgrn (public signatures and
# eqx.Module fields) is checked at run time by beartype, as Equinox and Diffrax do.
with install_import_hook("diffgrn", "_typecheck.typechecker"):
    import diffgrn

# The suite is dominated by XLA compile time at these tiny sizes; skipping most XLA
# optimisations halves it. Numerics stay IEEE float32 (tests use tolerances where
# operation order matters); speed is measured in benchmarks/, never here.
jax.config.update("jax_disable_most_optimizations", True)


class ConstantRegulator(diffgrn.AbstractRegulator):
    """f(s̄) = value, for closed-form checks."""

    value: jnp.ndarray

    def __call__(self, s, sbar):
        return jnp.full_like(sbar, self.value)


class LinearRegulator(diffgrn.AbstractRegulator):
    """f(s̄) = k (s̄ − ½): the dynamics are linear while no cell is clipped."""

    k: jnp.ndarray

    def __call__(self, s, sbar):
        return self.k * (sbar - 0.5)


@pytest.fixture(scope="session", autouse=True)
def compilation_cache(tmp_path_factory):
    """A compilation cache fresh for this test run and shared by its pytest-xdist
    workers and the subprocesses they start: identical computations built by different
    closures (each `train` call, each study), in different workers or in different CLI
    runs compile once."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # gw0, gw1, …: share the run's folder
        root = root.parent
    cache = root / "jax-cache"
    cache.mkdir(exist_ok=True)
    settings = dict(
        jax_compilation_cache_dir=str(cache),
        jax_persistent_cache_min_compile_time_secs=0.2,
        jax_persistent_cache_min_entry_size_bytes=0,
    )
    for name, value in settings.items():
        jax.config.update(name, value)
        # and for the CLI and script subprocesses the tests start (JAX reads JAX_NAME)
        os.environ[name.upper()] = str(value)
    yield


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
    return diffgrn.MLPRegulator(key=jr.key(0), output_scale=1.0)


@pytest.fixture(scope="session")
def jitted(small_objective):
    """Shared jitted entry points of the small objective."""
    return dict(
        simulate=eqx.filter_jit(small_objective.simulate),
        hard=eqx.filter_jit(small_objective.hard),
        soft=eqx.filter_jit(small_objective.soft),
    )


@pytest.fixture
def without_type_checks():
    """For tests of diffgrn's own input validation, the ValueErrors a user sees (users
    run without a type checker): the runtime checker would stop a mistyped argument
    first, so it is off for the test."""
    import jaxtyping

    jaxtyping.config.update("jaxtyping_disable", True)
    yield
    jaxtyping.config.update("jaxtyping_disable", False)
