import equinox as eqx
import jax
import jax.flatten_util
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from conftest import LinearRegulator

import diffgrn
from diffgrn import diagnostics as dg
from diffgrn.estimators import AntitheticES, Mixture, Pathwise


def _tangents_under(constraint, feedback):
    """Tangent growth with the clip and with `constraint` under positive feedback
    f = feedback·(s̄ − ½), and the trajectory under `constraint`."""
    reg = LinearRegulator(jnp.asarray(feedback))
    base = diffgrn.Objective(
        tissue=diffgrn.Chain(4, "open"),
        dynamics=diffgrn.Dynamics(t_final=1.0, dt=0.05, sigma=0.1, noise=diffgrn.GridNoise()),
        replicates=4,
    )
    other = base.replace(dynamics=base.dynamics.replace(constraint=constraint))
    return (
        float(dg.tangent_growth(base, reg, jr.key(0))),
        float(dg.tangent_growth(other, reg, jr.key(0))),
        other.simulate(reg, jr.key(0), save_every=1),
    )


def test_reflect_keeps_states_in_unit_interval_and_gradient_alive():
    # Strong positive feedback: the clip zeroes the tangent map, reflection does not.
    clip, refl, traj = _tangents_under(diffgrn.Reflect(), 20.0)
    assert float(traj.min()) >= 0.0 and float(traj.max()) <= 1.0
    assert clip == 0.0 and refl > 0.0


def test_reflect_folds_values():
    got = diffgrn.Reflect()(jnp.array([-0.2, 0.3, 1.1, 2.3, -1.4]))
    assert np.allclose(got, [0.2, 0.3, 0.9, 0.3, 0.6], atol=1e-6)


def test_softclip_is_a_smooth_symmetric_clip():
    soft = diffgrn.SoftClip()
    x = jnp.linspace(-0.15, 1.15, 1301)
    y = soft(x)
    slope = jax.vmap(jax.grad(soft))(jnp.linspace(-0.1, 1.1, 121))
    assert float(y.min()) > 0.0 and float(y.max()) <= 1.0
    assert bool(jnp.all(jnp.diff(y) >= 0))
    assert float(jnp.max(jnp.abs(y - jnp.clip(x, 0, 1)))) <= np.log(2) / 100 + 1e-6
    assert float(jnp.max(jnp.abs(y + soft(1 - x) - 1))) < 1e-6
    assert float(slope.min()) > 0.0  # the clip's slope is 0 outside [0, 1]
    sharper = diffgrn.SoftClip(1000.0)(x)
    assert float(jnp.max(jnp.abs(sharper - jnp.clip(x, 0, 1)))) <= np.log(2) / 1000 + 1e-6
    with pytest.raises(ValueError, match="SoftClip.sharpness"):
        diffgrn.SoftClip(0.0)


def test_softclip_keeps_a_tangent_that_the_clip_cuts():
    # Mild positive feedback: cells reach the walls, where the clip's slope is 0.
    clip, soft, traj = _tangents_under(diffgrn.SoftClip(), 2.0)
    assert float(traj.min()) > 0.0 and float(traj.max()) < 1.0
    assert clip == 0.0 and soft > 0.0


def test_pathwise_estimator_is_gradient_of_soft(small_objective, mlp):
    g, u = Pathwise()(small_objective, mlp, jr.key(0))
    want = eqx.filter_grad(lambda r: small_objective.soft(r, jr.key(0)).value)(mlp)
    assert float(dg.tree_norm(jax.tree_util.tree_map(lambda a, b: a - b, g, want))) < 1e-6
    assert float(u) == pytest.approx(float(small_objective.soft(mlp, jr.key(0)).value))


def test_truncated_pathwise_is_gradient_of_truncated_dynamics(small_objective, mlp):
    k = 5
    g, u = Pathwise(backprop_steps=k)(small_objective, mlp, jr.key(0))
    want = eqx.filter_grad(lambda r: small_objective.soft(r, jr.key(0), backprop_steps=k).value)(
        mlp
    )
    full, _ = Pathwise()(small_objective, mlp, jr.key(0))
    diff = lambda a, b: float(dg.tree_norm(jax.tree_util.tree_map(jnp.subtract, a, b)))
    assert diff(g, want) < 1e-6
    assert diff(g, full) > 1e-3 * float(dg.tree_norm(full))
    assert float(u) == pytest.approx(float(small_objective.soft(mlp, jr.key(0)).value), abs=1e-5)
    assert Pathwise(backprop_steps=k).config()["backprop_steps"] == k


@pytest.mark.slow  # README suite's time (< 5 min on 2 cores)
def test_mixture_endpoints_are_normalised_components(small_objective, mlp):
    key = jr.key(1)
    ka, _ = jr.split(key)
    ga, _ = Pathwise()(small_objective, mlp, ka)
    g0, _ = Mixture(Pathwise(), AntitheticES(pairs=2), 0.0)(small_objective, mlp, key)
    assert float(dg.cosine_similarity(g0, ga)) == pytest.approx(1.0, abs=1e-5)
    assert float(dg.tree_norm(g0)) == pytest.approx(1.0, abs=1e-5)
    assert (
        Mixture(Pathwise(), AntitheticES(pairs=2)).cost(small_objective)
        == 5 * small_objective.replicate_steps
    )


@pytest.mark.slow  # README suite's time (< 5 min on 2 cores)
def test_openes_improves_hard_utility(small_objective, mlp, jitted):
    res = diffgrn.train(
        small_objective, mlp, "openes", key=jr.key(0), iterations=25, progress=False
    )
    assert res.history.replicate_steps[0] == 32 * small_objective.replicate_steps
    mean = lambda r: float(
        np.mean([float(jitted["hard"](r, jr.key(1000 + i)).value) for i in range(6)])
    )
    before, after = mean(mlp), mean(res.best_regulator)
    # Standard errors over the 6 keys are about 0.006 and 0.008.
    assert after > before + 0.04, (before, after)


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: AntitheticES(sigma=0.0), "sigma"),
        (lambda: AntitheticES(pairs=0), "pairs"),
        (lambda: AntitheticES(utility="hard"), "AntitheticES.utility.*HardUtility"),
        (lambda: Mixture(Pathwise(), Pathwise(), 1.5), "weight"),
        (lambda: Pathwise(backprop_steps=0), "Pathwise.backprop_steps"),
        (lambda: diffgrn.Gradient(estimator="pathwise"), "estimator"),
    ],
)
def test_estimator_validation(make, field, without_type_checks):
    with pytest.raises(ValueError, match=field):
        make()


def _lr_problem(constraint=None):
    constraint = diffgrn.Clip() if constraint is None else constraint
    objective = diffgrn.Objective(
        tissue=diffgrn.Chain(5, "open"),
        dynamics=diffgrn.Dynamics(t_final=1.0, dt=0.05, constraint=constraint),
        replicates=16,
        bandwidth=0.5,
        readout=diffgrn.SoftReadout(10.0),
    )
    return objective, diffgrn.TanhRegulator(1.0, 6.0, 0.4)


def _mean_and_se(fn, keys, chunk=250):
    """Mean and standard error over keys of a pytree-valued fn (as flat vectors)."""
    flat = lambda k: jax.flatten_util.ravel_pytree(fn(k))[0]
    batch = jax.jit(lambda ks: jax.lax.map(flat, ks))  # compiled once (eager: every chunk)
    parts = [batch(keys[i : i + chunk]) for i in range(0, keys.shape[0], chunk)]
    x = np.asarray(jnp.concatenate(parts))
    return x.mean(0), x.std(0, ddof=1) / np.sqrt(x.shape[0])


@pytest.mark.slow  # statistics over thousands of draws
def test_likelihood_ratio_is_unbiased_for_the_hard_utility():
    objective, reg = _lr_problem()
    lr = diffgrn.LikelihoodRatio()
    params, static = eqx.partition(reg, eqx.is_inexact_array)
    est = eqx.filter_jit(lambda k: lr(objective, reg, k)[0])
    m_lr, se_lr = _mean_and_se(lambda k: eqx.filter(est(k), eqx.is_inexact_array),
                               jr.split(jr.key(0), 3000))  # fmt: skip
    # Central differences of E[U_hard] with common random numbers, same R per batch.
    flat0, unravel = jax.flatten_util.ravel_pytree(params)
    hard = lambda x, k: objective.hard(eqx.combine(unravel(x), static), k).value
    eps = 0.05

    @eqx.filter_jit
    def fd(k):
        basis = jnp.eye(flat0.size) * eps
        return jax.vmap(lambda e: hard(flat0 + e, k) - hard(flat0 - e, k))(basis) / (2 * eps)

    m_fd, se_fd = _mean_and_se(lambda k: fd(k), jr.split(jr.key(1), 3000))
    tol = 4 * np.sqrt(se_lr**2 + se_fd**2)
    assert np.all(np.abs(m_lr - m_fd) < tol), (m_lr, m_fd, tol)
    assert np.any(np.abs(m_fd) > 2 * se_fd)  # a gradient is there to be found


@pytest.mark.slow  # statistics over thousands of draws
def test_likelihood_ratio_of_the_soft_utility_agrees_with_pathwise_under_softclip():
    objective, reg = _lr_problem(diffgrn.SoftClip())  # smooth: the pathwise gradient is unbiased
    lr = diffgrn.LikelihoodRatio(utility=diffgrn.SoftUtility())
    pw = diffgrn.Pathwise()
    f_lr = eqx.filter_jit(lambda k: eqx.filter(lr(objective, reg, k)[0], eqx.is_inexact_array))
    f_pw = eqx.filter_jit(lambda k: eqx.filter(pw(objective, reg, k)[0], eqx.is_inexact_array))
    m_lr, se_lr = _mean_and_se(f_lr, jr.split(jr.key(2), 3000))
    m_pw, se_pw = _mean_and_se(f_pw, jr.split(jr.key(3), 1000))
    tol = 4 * np.sqrt(se_lr**2 + se_pw**2)
    assert np.all(np.abs(m_lr - m_pw) < tol), (m_lr, m_pw, tol)
    # the α-blend and the inverse-variance mixture of the two are unbiased too
    for mix, n in (
        (diffgrn.Mixture(lr, pw, 0.5, normalise=False), 2000),
        (diffgrn.InverseVariance(lr, pw, batches=4), 400),
    ):
        f = eqx.filter_jit(
            lambda k, m=mix: eqx.filter(m(objective, reg, k)[0], eqx.is_inexact_array)
        )
        m_mix, se_mix = _mean_and_se(f, jr.split(jr.key(4), n), chunk=100)
        tol = 4 * np.sqrt(se_mix**2 + se_pw**2)
        assert np.all(np.abs(m_mix - m_pw) < tol), (type(mix).__name__, m_mix, m_pw, tol)


def test_likelihood_ratio_needs_noise_and_validates(without_type_checks):
    objective, reg = _lr_problem()
    silent = objective.replace(dynamics=objective.dynamics.replace(sigma=0.0))
    with pytest.raises(ValueError, match="needs noise"):
        diffgrn.LikelihoodRatio()(silent, reg, jr.key(0))
    with pytest.raises(ValueError, match="LikelihoodRatio.batches"):
        diffgrn.LikelihoodRatio(baseline=diffgrn.BatchBaseline(), batches=1)
    with pytest.raises(ValueError, match="LikelihoodRatio.baseline.*ReplicateBaseline"):
        diffgrn.LikelihoodRatio(baseline="batch")
    with pytest.raises(ValueError, match="LikelihoodRatio.utility.*SoftUtility"):
        diffgrn.LikelihoodRatio(utility="soft")
    # it plugs into Gradient like Pathwise: a few Adam steps on U_hard
    res = diffgrn.train(objective, reg, diffgrn.Gradient(estimator=diffgrn.LikelihoodRatio()),
                        key=jr.key(0), iterations=3, progress=False)  # fmt: skip
    assert res.error is None and len(res.history) == 3
    assert res.history.replicate_steps[0] == objective.replicate_steps


@pytest.mark.slow  # README suite's time (< 5 min on 2 cores)
def test_estimator_choices_are_objects_that_round_trip_their_config(small_objective, mlp):
    from diffgrn.config import from_config

    for est in (
        diffgrn.LikelihoodRatio(baseline=diffgrn.BatchBaseline(), batches=2),
        diffgrn.LikelihoodRatio(utility=diffgrn.SoftUtility()),
        AntitheticES(pairs=2, utility=diffgrn.SoftUtility()),
    ):
        assert from_config(est.config()) == est
    # the batch baseline: every replicate of a batch carries the same weight
    grads, value = diffgrn.LikelihoodRatio(baseline=diffgrn.BatchBaseline(), batches=2)(
        small_objective, mlp, jr.key(0)
    )
    assert np.isnan(value)
    assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(grads))
    _, soft = diffgrn.LikelihoodRatio(utility=diffgrn.SoftUtility())(
        small_objective, mlp, jr.key(0)
    )
    assert np.isfinite(soft)


def _compiled_bytes(estimator, objective, regulator) -> int:
    """XLA's count of the compiled estimate: arguments, outputs and temporaries."""
    params, static = eqx.partition(regulator, eqx.is_array)
    fn = jax.jit(lambda p, k: estimator(objective, eqx.combine(p, static), k))
    m = fn.lower(params, jr.key(1)).compile().memory_analysis()
    return m.temp_size_in_bytes + m.output_size_in_bytes + m.argument_size_in_bytes


class _Directions(diffgrn.estimators.AbstractEstimator):
    """A user's estimator with the default `memory_bytes`: 6 hard utilities at once."""

    def __call__(self, objective, regulator, key):
        params, static = eqx.partition(regulator, eqx.is_inexact_array)
        u = lambda k: objective.hard(eqx.combine(params, static), k).value
        g = jnp.mean(jax.vmap(u)(jr.split(key, 6)))
        return jax.tree_util.tree_map(lambda x: g * jnp.ones_like(x), params), jnp.nan

    def cost(self, objective):
        return 6 * objective.replicate_steps


@pytest.mark.slow  # README suite's time (< 5 min on 2 cores): 10 compiles, ~50 s
def test_memory_bytes_covers_the_compiled_estimate():
    """`Gradient` refuses an estimate that cannot fit by `memory_bytes`: it must not fall
    short of what XLA allocates (it fell 20-600x short for all but `Pathwise` before)."""
    from diffgrn.estimators import BatchBaseline, InverseVariance, LikelihoodRatio

    chain = diffgrn.Objective(diffgrn.Chain(120), diffgrn.Dynamics(t_final=2.0), replicates=16)
    mlp = diffgrn.MLPRegulator(key=jr.key(0))
    hexes = diffgrn.Objective(
        diffgrn.Lattice(6, 6, "hex"), diffgrn.Dynamics(t_final=1.0, dt=0.005), genes=2
    )
    circuit = diffgrn.TranscriptionalRegulator(2, key=jr.key(0))
    cases = [(chain, mlp, est) for est in (
        Pathwise(), Pathwise(backprop_steps=30), AntitheticES(pairs=4), LikelihoodRatio(),
        LikelihoodRatio(BatchBaseline(), batches=2), Mixture(Pathwise(), AntitheticES(pairs=2)),
        InverseVariance(Pathwise(), AntitheticES(pairs=2), batches=2),
        _Directions(),
    )] + [(hexes, circuit, Pathwise()), (hexes, circuit, LikelihoodRatio())]  # fmt: skip
    for obj, reg, est in cases:
        need, used = est.memory_bytes(obj, reg), _compiled_bytes(est, obj, reg)
        assert used <= need <= 12 * used, (f"{est} on {obj.tissue}", used, need)
