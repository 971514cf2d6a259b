"""CMA-ES, hybrid phases, schedules, truncated BPTT and the small initialisation."""

import json

import equinox as eqx
import jax
import jax.flatten_util
import jax.numpy as jnp
import jax.random as jr
import optax
import pytest

import diffgrn
from diffgrn.brownian import GridBrownianPath
from diffgrn.utility import Utility


class Sphere(diffgrn.Objective):
    """A stand-in objective: 'hard utility' = −‖θ − 1‖² (deterministic, known optimum)."""

    def __init__(self):
        super().__init__(tissue=diffgrn.Chain(3), replicates=2)

    def hard(self, regulator, key, *, replicates=None):
        flat, _ = jax.flatten_util.ravel_pytree(eqx.filter(regulator, eqx.is_inexact_array))
        v = -jnp.sum((flat - 1.0) ** 2)
        return Utility(v, v, jnp.zeros(()))


def test_cmaes_converges_on_a_sphere():
    reg = diffgrn.TanhRegulator(0.0, 0.0, 0.0)  # 3 parameters, optimum (1, 1, 1)
    trainer = diffgrn.CMAES(population=8, sigma=0.5).build(Sphere(), reg)
    step = jax.jit(trainer.step)
    state = trainer.init(jr.key(0))
    for i in range(120):
        state, info = step(state, jr.key(i))
        assert bool(info.finite)
    dist = jnp.linalg.norm(state["mean"] - 1.0)
    assert dist < 1e-3, dist  # linear convergence, from distance √3
    assert state["sigma"] < 0.05  # the step size adapted down


def test_cmaes_validation():
    with pytest.raises(ValueError, match="CMAES.population"):
        diffgrn.CMAES(population=2)
    with pytest.raises(ValueError, match="CMAES.sigma"):
        diffgrn.CMAES(sigma=0.0)


@pytest.mark.slow  # README suite's time (< 5 min on 2 cores)
def test_hybrid_runs_both_phases_in_one_history(small_objective, mlp):
    method = diffgrn.Hybrid(
        diffgrn.CMAES(population=6), diffgrn.Gradient(estimator=diffgrn.Pathwise()), switch=2
    )
    res = diffgrn.train(
        small_objective, mlp, method, key=jr.key(0), iterations=4, progress=False, select_top=1
    )
    h = res.history
    assert h.iteration == [0, 1, 2, 3]
    steps = jnp.diff(jnp.asarray([0] + h.replicate_steps))
    rs = small_objective.replicate_steps
    assert steps.tolist() == [6 * rs, 6 * rs, rs, rs]
    assert jnp.isnan(jnp.asarray(h.grad_norm[:2])).all()
    assert jnp.isfinite(jnp.asarray(h.grad_norm[2:])).all()
    assert res.config["method"]["type"] == "Hybrid" and method.name == "hybrid"
    with pytest.raises(ValueError, match="Hybrid.switch"):
        diffgrn.train(small_objective, mlp, method, key=jr.key(0), iterations=2)


@pytest.mark.slow  # README suite's time (< 5 min on 2 cores)
def test_truncated_bptt_equals_gradient_of_the_last_steps(small_objective):
    dyn = small_objective.dynamics.replace(constraint=diffgrn.Reflect(), noise=diffgrn.GridNoise())
    obj = small_objective.replace(dynamics=dyn)
    reg = diffgrn.TanhRegulator(1.0, 3.0, 0.5)
    k = 7
    s0, path = obj.draw(jr.key(3))
    n = obj.dynamics.n_steps

    class Cut(eqx.Module):  # the dynamics' solve, truncated to the last k steps
        def solve(self, r, tissue, start, p, **kw):
            return obj.dynamics.solve(r, tissue, start, p, backprop_steps=k, **kw)

    cut = Cut()

    def loss(dyn, r, start, p):
        return jnp.sum(dyn.solve(r, obj.tissue, start, p) ** 2)

    g_trunc = eqx.filter_grad(lambda r: loss(cut, r, s0, path))(reg)
    # The same gradient, by hand: run to step n - k, then differentiate k steps.
    traj = obj.dynamics.solve(reg, obj.tissue, s0, path, save_every=1)
    tail = GridBrownianPath(0.0, k * obj.dynamics.dt, obj.dynamics.dt, path.increments[n - k :])
    short = obj.dynamics.replace(t_final=k * obj.dynamics.dt)
    g_hand = eqx.filter_grad(lambda r: loss(short, r, traj[n - k], tail))(reg)
    g_full = eqx.filter_grad(lambda r: loss(obj.dynamics, r, s0, path))(reg)
    for a, b, c in zip(jax.tree.leaves(g_trunc), jax.tree.leaves(g_hand), jax.tree.leaves(g_full)):
        assert jnp.allclose(a, b, rtol=1e-4, atol=1e-6)
        assert not jnp.allclose(a, c, rtol=1e-2)
    # The forward solve is the same up to float32 rounding of the step times (the
    # tail segment's clock starts at (n - k)·dt instead of summing n - k steps).
    assert jnp.allclose(
        cut.solve(reg, obj.tissue, s0, path),
        obj.dynamics.solve(reg, obj.tissue, s0, path),
        rtol=0,
        atol=1e-6,
    )
    traj_cut = cut.solve(reg, obj.tissue, s0, path, save_every=3)
    assert traj_cut.shape == traj[::3].shape
    assert jnp.allclose(traj_cut, traj[::3], rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="backprop_steps"):
        obj.dynamics.solve(reg, obj.tissue, s0, path, backprop_steps=0)


@pytest.mark.slow  # README suite's time (< 5 min on 2 cores)
def test_schedules_set_temperature_and_bandwidth(small_objective, mlp):
    target = small_objective.replace(readout=diffgrn.SoftReadout(3.0), bandwidth=0.4)
    method = diffgrn.Gradient(
        estimator=diffgrn.Pathwise(),
        temperature=optax.constant_schedule(3.0),
        bandwidth=lambda n: 0.4 + 0.0 * n,
    )
    trainer = method.build(small_objective, mlp)
    _, info = jax.jit(trainer.step)(trainer.init(jr.key(0)), jr.key(5))
    want = diffgrn.Pathwise()(target, mlp, jr.key(5))[1]
    assert jnp.allclose(info.soft_utility, want, rtol=1e-5)
    assert not jnp.allclose(
        info.soft_utility, diffgrn.Pathwise()(small_objective, mlp, jr.key(5))[1]
    )
    with pytest.raises(ValueError, match="HardReadout has no temperature"):
        small_objective.replace(readout=diffgrn.HardReadout()).anneal(temperature=2.0)


def test_schedule_validation(without_type_checks):
    with pytest.raises(ValueError, match="Gradient.bandwidth"):
        diffgrn.Gradient(bandwidth=0.3)


def test_linear_schedule_values_and_description():
    sched = diffgrn.LinearSchedule(0.5, 0.2, 6)
    got = [float(sched(jnp.asarray(n))) for n in (0, 3, 6, 10)]
    assert got == pytest.approx([0.5, 0.35, 0.2, 0.2], abs=1e-6)
    assert sched.description == "linear 0.5 -> 0.2 over 6 steps"
    assert diffgrn.Gradient(bandwidth=sched).config()["bandwidth"] == dict(
        type="LinearSchedule", start=0.5, end=0.2, steps=6
    )
    with pytest.raises(ValueError, match="LinearSchedule.steps"):
        diffgrn.LinearSchedule(0.5, 0.2, 0)


def test_output_scale_shrinks_the_initial_regulator():
    full = diffgrn.MLPRegulator(key=jr.key(1), output_scale=1.0)
    small = diffgrn.MLPRegulator(key=jr.key(1), output_scale=0.01)
    x = jnp.linspace(0, 1, 11)[:, None]
    assert jnp.allclose(small(x, x), 0.01 * full(x, x), atol=1e-6)
    with pytest.raises(ValueError, match="MLPRegulator.output_scale"):
        diffgrn.MLPRegulator(key=jr.key(1), output_scale=-1.0)


def test_random_search_keeps_the_best_and_does_not_adapt():
    """On the sphere (deterministic), the incumbent's fitness never falls, and with a tiny
    scale the draws stay around the start: random search does not walk (an ES would)."""
    reg = diffgrn.TanhRegulator(0.0, 0.0, 0.0)
    for scale, steps in ((1.0, 30), (0.01, 60)):
        trainer = diffgrn.RandomSearch(population=8, scale=scale).build(Sphere(), reg)
        step = jax.jit(trainer.step)
        state = trainer.init(jr.key(0))
        fits = []
        for i in range(steps):
            state, info = step(state, jr.key(i))
            assert bool(info.finite)
            fits.append(float(Sphere().hard(trainer.candidate(state), None).value))
        assert all(b >= a for a, b in zip(fits, fits[1:])), fits
        assert fits[-1] > -3.0  # better than the start θ = 0 (fitness −3)
        if scale == 0.01:
            assert jnp.max(jnp.abs(state["best"])) < 0.05  # still at the start
    assert isinstance(diffgrn.methods.get_method("random"), diffgrn.RandomSearch)
    with pytest.raises(ValueError, match="RandomSearch.population"):
        diffgrn.RandomSearch(population=1)
    with pytest.raises(ValueError, match="RandomSearch.scale"):
        diffgrn.RandomSearch(scale=-1.0)


def test_log_progress_writes_a_line_per_tenth(capsys):
    import io

    from diffgrn.train import LogProgress, progress_bar

    buf = io.StringIO()
    bar = LogProgress(200, "es", file=buf)
    for _ in range(200):
        bar.set_postfix(U="0.5")
        bar.update(1)
    lines = buf.getvalue().splitlines()
    assert len(lines) == 10, lines
    assert lines[-1].startswith("es: 200/200 (100%)") and lines[-1].endswith("U=0.5")
    # under pytest stderr is not a terminal: a log-friendly progress object
    assert isinstance(progress_bar(10, "x", True), LogProgress)
    assert progress_bar(10, "x", False) is None


class OnePlusOne(diffgrn.AbstractPopulationMethod):
    """A (1+1)-ES written as a user would: only ask and tell (the state is the base's
    default `dict(mean=θ₀)`); the parent and one child, the better survives."""

    sigma: float = 0.3

    def ask(self, state, key):
        mean = state["mean"]
        return jnp.stack([mean, mean + self.sigma * jr.normal(key, mean.shape)]), state

    def tell(self, state, population, fitness, key):
        return dict(mean=population[jnp.argmax(fitness)])


def test_a_new_population_trainer_is_one_small_class(small_objective, mlp, tmp_path):
    from diffgrn.train import HISTORY_FIELDS

    res = diffgrn.train(small_objective, mlp, OnePlusOne(), key=jr.key(0), iterations=3,
                        progress=False, select_top=1)  # fmt: skip
    d = res.history.to_dict()
    assert res.error is None and set(d) == {*HISTORY_FIELDS, "checks", "direction"}
    assert all(len(d[k]) == 3 for k in HISTORY_FIELDS)
    assert res.history.replicate_steps[0] == 2 * small_objective.replicate_steps
    assert all(g is None for g in d["grad_norm"])  # NaN: no gradient
    assert res.config["method"] == {"type": f"{__name__}:OnePlusOne", "sigma": 0.3}
    # On the sphere it improves from θ = 0 (U = −3), and resumes like the built-in ones.
    kw = dict(key=jr.key(1), iterations=40, progress=False, select_top=1)
    full = diffgrn.train(Sphere(), diffgrn.TanhRegulator(0.0, 0.0, 0.0), OnePlusOne(), **kw)
    assert full.best_utility > -0.5 and full.history.hard_utility[-1] > -3.0

    def stop(i, _):
        if i == 16:
            raise KeyboardInterrupt

    folder = tmp_path / "ck"
    reg = diffgrn.TanhRegulator(0.0, 0.0, 0.0)
    with pytest.warns(RuntimeWarning, match="interrupted"):
        diffgrn.train(Sphere(), reg, OnePlusOne(), **kw, checkpoint=folder, callback=stop)
    res = diffgrn.train(Sphere(), reg, OnePlusOne(), **kw, checkpoint=folder, resume=True)
    assert res.history.hard_utility == full.history.hard_utility
    assert float(res.final_regulator.a) == float(full.final_regulator.a)


@pytest.mark.parametrize(
    "method",
    [
        diffgrn.MuPlusLambdaES(population=12, parents=3, mutation=0.2),
        diffgrn.CMAES(population=8, sigma=0.5),
        diffgrn.RandomSearch(population=6, scale=0.5),
        diffgrn.Gradient(
            diffgrn.ClippedAdam(1e-2, 0.5),
            diffgrn.InverseVariance(diffgrn.Pathwise(8), diffgrn.AntitheticES(0.1, 4)),
            temperature=diffgrn.LinearSchedule(20.0, 10.0, 5),
            bandwidth=diffgrn.LinearSchedule(0.5, 0.2, 5),
        ),
        diffgrn.openes(diffgrn.default_optimiser(0.1), sigma=0.1, pairs=4),
        diffgrn.Hybrid(diffgrn.CMAES(population=6), diffgrn.Gradient(), switch=3),
        OnePlusOne(sigma=0.5),
    ],
    ids=lambda m: m.name,
)
def test_every_kind_of_method_round_trips_through_its_config(method):
    config = method.config()
    back = diffgrn.from_config(json.loads(json.dumps(config)))
    assert back == method and back.name == method.name
    assert diffgrn.AbstractMethod.from_config(config) == method


def test_a_method_that_cannot_be_described_says_which_field():
    import optax

    with pytest.raises(TypeError, match=r"Gradient\.optimiser is a custom"):
        diffgrn.Gradient(optax.sgd(0.1)).config()
    with pytest.raises(TypeError, match=r"Gradient\.bandwidth is a custom"):
        diffgrn.Gradient(bandwidth=optax.linear_schedule(0.5, 0.2, 5)).config()
    from diffgrn.train import method_config

    record = method_config(diffgrn.Gradient(optax.sgd(0.1)))
    assert record["name"] == "adam" and "Gradient.optimiser" in record["not_loadable"]


@pytest.mark.slow  # README suite's time (< 5 min on 2 cores)
def test_gradient_population_selects_copies_of_the_best_and_counts_its_cost(small_objective, mlp):
    method = diffgrn.GradientPopulation(
        learners=4, replace=2, fresh=0, every=3, spread=1.0, perturb=0.01
    )
    trainer = method.build(small_objective, mlp)
    state = trainer.init(jr.key(0))
    flat = lambda s: jax.vmap(lambda p: jax.flatten_util.ravel_pytree(p)[0])(s.learners["params"])
    start = flat(state)
    own = jax.flatten_util.ravel_pytree(eqx.filter(mlp, eqx.is_inexact_array))[0]
    assert jnp.array_equal(start[0], own)  # learner 0 starts at the given regulator
    assert float(jnp.min(jnp.linalg.norm(start[1:] - own, axis=1))) > 1.0  # others spread
    inner = diffgrn.Gradient().build(small_objective, mlp).cost(None)
    selection = 4 * small_objective.replicates * small_objective.dynamics.n_steps
    assert trainer.cost(state) == 4 * inner + selection  # step 1 selects
    state, info = jax.jit(trainer.step)(state, jr.key(1))
    assert bool(info.finite) and jnp.isfinite(state.score).all()
    p = flat(state)
    # The two worst were replaced by perturbed copies of the best (and its score).
    top = jnp.flatnonzero(state.score == state.score.max())
    assert len(top) >= 3
    close = 0.01 * 6 * p.shape[1] ** 0.5
    dist = jnp.linalg.norm(p[top][:, None] - p[top][None], axis=-1)
    assert float(dist.max()) < 2 * close and float(dist.max()) > 0
    best = p[jnp.argmax(state.score)]
    assert trainer.cost(state) == 4 * inner  # step 2 does not select
    lead = trainer.candidate(state)
    assert jnp.array_equal(
        jax.flatten_util.ravel_pytree(eqx.filter(lead, eqx.is_inexact_array))[0], best
    )


@pytest.mark.slow  # a K-learner compile through train: CI runs it after the README suite
def test_gradient_population_trains_through_train(small_objective, mlp):
    method = diffgrn.GradientPopulation(learners=4)
    res = diffgrn.train(
        small_objective, mlp, method, key=jr.key(2), iterations=3, progress=False, select_top=1
    )
    assert len(res.history) == 3 and res.error is None


@pytest.mark.slow  # README suite's time (< 5 min on 2 cores)
def test_gradient_population_restarts_fresh_learners(small_objective, mlp):
    method = diffgrn.GradientPopulation(learners=4, replace=1, fresh=1, every=5)
    trainer = method.build(small_objective, mlp)
    state, _ = jax.jit(trainer.step)(trainer.init(jr.key(0)), jr.key(1))  # step 1 selects
    assert int(jnp.sum(jnp.isinf(state.score))) == 1  # restarted: unscored until the next
    assert int(jnp.sum(jnp.isfinite(state.score))) == 3


def test_gradient_population_config_and_validation(without_type_checks):
    m = diffgrn.GradientPopulation(learners=3, replace=1, replicates=8)
    assert diffgrn.config.from_config(json.loads(json.dumps(m.config()))) == m
    assert m.name == "pbt"
    for bad, match in (
        (dict(learners=1), "learners"),
        (dict(learners=4, replace=4), "replace"),
        (dict(learners=4, replace=2, fresh=2), "fresh"),
        (dict(every=0), "every"),
        (dict(spread=-1.0), "spread"),
        (dict(gradient=diffgrn.CMAES()), "gradient"),
    ):
        with pytest.raises((ValueError, TypeError), match=match):
            diffgrn.GradientPopulation(**bad)


def test_the_commands_method_names_are_the_librarys(without_type_checks):
    """`train(method=NAME)` and `compare(methods=[...])` take every name `--method` does."""
    from diffgrn.methods import get_method, register_method
    from diffgrn.options import M

    names = [n for n in M.split(" (")[0].split(", ") if not n.startswith("evosax")]
    assert {"hybrid", "pbt"} <= set(names)
    for name in names:
        assert get_method(name).name == name
    hybrid = get_method("hybrid")
    assert isinstance(hybrid.first, diffgrn.CMAES) and isinstance(hybrid.second, diffgrn.Gradient)
    assert isinstance(get_method("pbt"), diffgrn.GradientPopulation)
    with pytest.raises(ValueError, match="'es' is taken"):
        register_method("es", diffgrn.CMAES)
    register_method("pbt", diffgrn.GradientPopulation)  # again, the same: a reload
    for bad in ("", "a,b", "a b", 3):
        with pytest.raises(ValueError, match="a name is letters, digits"):
            register_method(bad, diffgrn.CMAES)
    with pytest.raises(ValueError, match="factory must be callable"):
        register_method("x", 3)
