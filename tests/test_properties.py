"""Property-based tests (Hypothesis): the utilities' bounds and invariances for any
fates, and config validation that raises ValueError, never another exception."""

import math

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import diffgrn

fates_strategy = st.tuples(  # a few shapes (each compiles once), any values
    st.sampled_from([2, 5, 16]),  # replicates
    st.sampled_from([1, 7, 33, 128]),  # cells
    st.integers(1, 2),  # readout genes m: K = 2^m fates
    st.integers(0, 2**32 - 1),  # seed of the 0/1 draw
    st.floats(0.0, 1.0),  # probability of fate 1
).map(lambda t: (np.random.default_rng(t[3]).random((t[0], t[1], t[2])) < t[4]).astype(np.float32))

SETTINGS = settings(max_examples=20, deadline=None, derandomize=True)


@pytest.mark.slow  # README suite's time (< 5 min on 2 cores)
@SETTINGS
@given(fates_strategy)
def test_hard_utility_bounds(fates):
    u = diffgrn.hard_utility(jnp.asarray(fates))
    s_pat, s_rep, value = float(u.s_pat), float(u.s_rep), float(u.value)
    log_k = fates.shape[-1]  # log2 K = m bits per cell
    assert -1e-5 <= s_rep <= s_pat + 1e-5 <= log_k + 2e-5
    assert value == pytest.approx(s_pat - s_rep, abs=1e-5)
    assert s_rep <= math.log2(fates.shape[0]) / fates.shape[1] + 1e-5  # ≤ log2(R) / N


@pytest.mark.slow  # README suite's time (< 5 min on 2 cores)
@SETTINGS
@given(fates_strategy, st.integers(0, 2**32 - 1))
def test_hard_utility_invariant_to_replicate_order_and_fate_labels(fates, seed):
    u = diffgrn.hard_utility(jnp.asarray(fates))
    rng = np.random.default_rng(seed)
    permuted = fates[rng.permutation(fates.shape[0])]
    relabelled = 1.0 - fates  # swap the labels of each readout gene's two states
    for other in (permuted, relabelled):
        v = diffgrn.hard_utility(jnp.asarray(other))
        for a, b in zip(u, v):
            assert float(a) == pytest.approx(float(b), abs=1e-5)


@pytest.mark.slow  # README suite's time (< 5 min on 2 cores)
@SETTINGS
@given(fates_strategy, st.floats(0.05, 2.0))
def test_soft_utility_is_finite_and_bounded(fates, bandwidth):
    u = diffgrn.soft_utility(jnp.asarray(fates), bandwidth)
    assert all(math.isfinite(float(v)) for v in u)
    assert float(u.s_pat) <= fates.shape[-1] + 1e-4


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 300),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["open", "pinned", "periodic", "square", "hex", "clip", "grid", "x", ""]),
    st.lists(st.floats(-1, 1), max_size=3),
)


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.sampled_from(["chain", "lattice", "dynamics", "objective"]),
    st.dictionaries(
        st.sampled_from(
            ["n_cells", "boundary", "rows", "cols", "geometry", "t_final", "dt", "sigma",
             "constraint", "noise", "replicates", "bandwidth", "genes", "max_stiffness"]
        ),
        values,
        max_size=4,
    ),
)  # fmt: skip
def test_random_configs_construct_or_raise_value_error(without_type_checks, kind, fields):
    allowed = dict(
        chain={"n_cells", "boundary"},
        lattice={"rows", "cols", "geometry", "boundary"},
        dynamics={"t_final", "dt", "sigma", "constraint", "noise"},
        objective={"replicates", "bandwidth", "genes", "max_stiffness"},
    )[kind]
    kwargs = {k: v for k, v in fields.items() if k in allowed}
    make = dict(
        chain=lambda: diffgrn.Chain(**kwargs),
        lattice=lambda: diffgrn.Lattice(**{"rows": 3, "cols": 3, **kwargs}),
        dynamics=lambda: diffgrn.Dynamics(**kwargs),
        objective=lambda: diffgrn.Objective(tissue=diffgrn.Chain(5), **kwargs),
    )[kind]
    try:
        make()
    except ValueError:
        pass  # a clear error naming the field: the allowed outcome besides success
