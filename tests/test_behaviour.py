"""Behaviours over time: one-cell deterministic circuits, trajectory observables,
search spaces, behaviour discovery with exact re-simulation, and fine-tuning."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import diffgrn
from diffgrn.behaviour import GoalIMGEP, UniformSearch, _round, discover, replay
from diffgrn.config import from_config
from diffgrn.discovery import load_library
from diffgrn.observe import (
    Behaviour,
    Oscillation,
    Recording,
    Spectrum,
    TargetTrajectory,
    Trajectory,
)
from diffgrn.space import Box, SearchSpace


def circuit(t_final=2.0, replicates=1):
    obj = diffgrn.Objective(
        tissue=diffgrn.Cell(),
        dynamics=diffgrn.Dynamics(t_final=t_final, dt=0.01, sigma=0.0),
        genes=3,
        replicates=replicates,
        utility=diffgrn.NoUtility(),
    )
    reg = diffgrn.TranscriptionalRegulator(3, key=jr.key(0), scale=5.0)
    reg = eqx.tree_at(lambda r: r.V, reg, jnp.zeros((3, 3)))
    space = SearchSpace(
        {"W": Box(-30, 30), "b": Box(-10, 10)}, frozen=("V", "log_k"), init=Box(0, 1)
    )
    return obj, reg, space


def test_one_cell_tissues_and_deterministic_runs():
    obj, reg, _ = circuit()
    init = jnp.array([0.2, 0.5, 0.9])
    a = obj.simulate(reg, jr.key(0), init=init)
    b = obj.simulate(reg, jr.key(1), init=init)  # σ = 0 and a given start: keys unused
    chain = obj.replace(tissue=diffgrn.Chain(1)).simulate(reg, jr.key(0), init=init)
    assert a.shape == (1, 1, 3)
    assert np.array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_allclose(np.asarray(a), np.asarray(chain), rtol=1e-6)
    jaxpr = str(jax.make_jaxpr(lambda k: obj.simulate(reg, k, init=init))(jr.key(0)))
    assert "random_bits" not in jaxpr and "threefry" not in jaxpr  # nothing drawn
    noisy = obj.replace(dynamics=obj.dynamics.replace(sigma=0.1))
    assert "random_bits" in str(jax.make_jaxpr(lambda k: noisy.simulate(reg, k))(jr.key(0)))
    assert diffgrn.Cell.from_config(diffgrn.Cell().config()).n_cells == 1


def test_one_replicate_needs_a_utility_that_scores_one():
    with pytest.raises(ValueError, match="Objective.replicates.*PatternInformation"):
        diffgrn.Objective(tissue=diffgrn.Chain(3), replicates=1)
    with pytest.raises(ValueError, match="PatternInformation.*is 0 on one cell"):
        diffgrn.Objective(tissue=diffgrn.Cell(), replicates=4)  # U ≡ 0: nothing to train
    diffgrn.Objective(tissue=diffgrn.Cell(), replicates=1, utility=diffgrn.TargetPattern("1"))
    with pytest.raises(ValueError, match="n_cells"):
        diffgrn.Chain(0)


def test_trajectory_window_matches_the_full_trajectory():
    obj, reg, _ = circuit(replicates=2)
    obj = obj.replace(dynamics=obj.dynamics.replace(sigma=0.05))
    full = obj.simulate(reg, jr.key(3), save_every=1)  # states at steps 0..n
    win = obj.simulate(reg, jr.key(3), observe=Trajectory(start=0.5, every=2, genes=(0, 2)))
    n = obj.dynamics.n_steps
    assert win.shape == (2, (n - n // 2) // 2, 1, 2)
    expect = full[:, n // 2 + 2 :: 2][..., [0, 2]]
    np.testing.assert_allclose(np.asarray(win), np.asarray(expect), rtol=1e-5, atol=1e-6)
    rec = Trajectory(start=0.5, every=2).recording(win, n, obj.dynamics.dt)
    np.testing.assert_allclose(float(rec.times[0]), (n // 2 + 2) * 0.01, rtol=1e-6)


def test_trajectory_errors_name_the_field():
    obj, reg, _ = circuit()
    with pytest.raises(ValueError, match="Trajectory.genes"):
        obj.simulate(reg, jr.key(0), observe=Trajectory(genes=(5,)))
    with pytest.raises(ValueError, match="Trajectory.start"):
        Trajectory(start=1.0)
    long = obj.replace(dynamics=obj.dynamics.replace(t_final=1e6), replicates=10**4)
    with pytest.raises(ValueError, match="Trajectory: recording .* GiB"):
        long.simulate(reg, jr.key(0), observe=Trajectory())  # refused before any compute


def test_oscillation_detector_and_target_loss():
    dt, n = 0.01, 5000
    t = dt * (1 + jnp.arange(n))
    wave = 0.5 + 0.3 * jnp.cos(2 * jnp.pi * 0.4 * t)
    flat = jnp.full(n, 0.5)
    rec = Recording(jnp.stack([wave, flat])[:, :, None, None], dt, dt)
    test = Oscillation().detect(rec)
    assert test.periodic.tolist() == [True, False]
    np.testing.assert_allclose(float(test.frequency[0]), 0.4, atol=0.02)
    np.testing.assert_allclose(float(test.amplitude[0]), 0.6, atol=1e-3)
    np.testing.assert_allclose(float(test.offset[0]), 0.5, atol=1e-3)
    assert np.asarray(Oscillation()(rec)).tolist() == pytest.approx([0.25, 0.3, 0.2], abs=0.02)
    assert Spectrum().size(n) == Spectrum()(rec).shape[0] == n // 2 + 1
    assert Spectrum(modulus=False)(rec).shape == (2 * (n // 2 + 1),)
    target = TargetTrajectory(0.3, 0.4, 0.5)
    one = Recording(wave[None, :, None, None], dt, dt)
    assert float(target(one)) < 1e-4
    assert float(target(Recording(flat[None, :, None, None], dt, dt))) > 10
    assert from_config(target.config()).config() == target.config()


def test_search_space_boxes_frozen_leaves_and_errors():
    _, reg, space = circuit()
    assert from_config(space.config()) == space
    bound = space.bind(reg)
    assert bound.size == 9 + 3 + 3
    theta = bound.uniform(jr.key(0), 4000)
    assert np.all(theta >= bound.low) and np.all(theta <= bound.high)
    assert abs(float(theta[:, 0].mean())) < 1.5  # uniform on [-30, 30]
    centre = jnp.broadcast_to((bound.low + bound.high) / 2, (4000, bound.size))
    moved = bound.mutate(jr.key(1), centre, 0.1)
    np.testing.assert_allclose(np.std(np.asarray(moved[:, 0])), 6.0, rtol=0.1)  # 0.1 × 60
    far = bound.mutate(jr.key(2), jnp.broadcast_to(bound.high, (100, bound.size)), 0.5)
    assert np.all(far <= bound.high) and np.all(far >= bound.low)  # clipped
    built, init = bound.build(theta[0])
    assert np.array_equal(np.asarray(built.V), np.zeros((3, 3)))  # frozen at the template
    assert np.allclose(np.asarray(bound.point(built, init)), np.asarray(theta[0]))
    logs = SearchSpace({"W": Box(0.01, 100.0, log=True)}, frozen=("V", "b", "log_k")).bind(reg)
    w = np.log10(np.asarray(logs.uniform(jr.key(3), 4000)))
    assert abs(w.mean()) < 0.1 and w.min() >= -2 - 1e-5 and w.max() <= 2 + 1e-5
    for make, match in [
        (lambda: Box(1.0, 1.0), "Box.low must be < Box.high"),
        (lambda: Box(0.0, 1.0, log=True), "low > 0"),
        (lambda: SearchSpace({"W": Box(0, 1)}, frozen=("V", "b", "k")).bind(reg), "no leaf 'k'"),
        (lambda: SearchSpace({"W": Box(0, 1)}).bind(reg), "neither boxed nor frozen"),
        (lambda: SearchSpace({"W": Box((0, 0), (1, 1))}, frozen=("V", "b", "log_k")).bind(reg),
         "broadcast"),
    ]:  # fmt: skip
        with pytest.raises(ValueError, match=match):
            make()


@pytest.mark.slow  # README suite's time (< 5 min on 2 cores)
def test_discover_records_and_replays_exactly(tmp_path):
    obj, reg, space = circuit()
    window = Trajectory(start=0.5, genes=(0,))
    kw = dict(observe=window, goal=Spectrum(), descriptors=[Oscillation(threshold=1.0)])
    kw.update(budget=40, batch=10, key=jr.key(0), progress=False)
    strategies = dict(random=UniformSearch(), imgep=GoalIMGEP(initial=10))
    libs = {s: discover(obj, reg, space, strat, **kw) for s, strat in strategies.items()}
    size = _round._cached._cache_size()
    again = discover(obj, reg, space, GoalIMGEP(initial=10), **kw)  # same shapes
    assert _round._cached._cache_size() == size  # no recompilation between calls
    assert np.array_equal(again.goals, libs["imgep"].goals)
    for lib in libs.values():
        assert len(lib) == 40 and lib.points.shape == (40, 15) and lib.goals.shape == (40, 51)
        assert lib.inits.shape == (40, 3) and lib.keys.shape == (40, 2)
        assert np.all(lib.points >= np.asarray(space.bind(reg).low) - 1e-6)
        assert lib.descriptors.shape == (40, 3)
        assert np.isfinite(lib.descriptors).all()
        states = replay(lib, [3, 27], obj, space, window)
        rec = jax.vmap(lambda s: Spectrum()(window.recording(s, 200, 0.01)))(states)
        assert np.array_equal(np.asarray(rec), lib.goals[[3, 27]])  # bitwise
    # IMGEP's later rows descend from stored rows: each is within the clipped mutation
    # of some earlier point (θ − source is small against the box for most coordinates).
    pts = libs["imgep"].points
    gap = np.abs(pts[10:, None] - pts[None, :10]).max(-1).min(-1)
    assert np.median(gap[:10]) < 0.5 * 60
    saved = load_library(libs["imgep"].save(tmp_path / "lib"))
    for field in ("points", "inits", "keys", "goals"):
        assert np.array_equal(getattr(saved, field), getattr(libs["imgep"], field))
    bad = Behaviour(lambda r: jnp.zeros(4), 3)
    with pytest.raises(ValueError, match="declares size 3 but returns shape"):
        discover(obj, reg, space, UniformSearch(), **{**kw, "goal": bad})


@pytest.mark.slow
def test_goal_gradient_steps_move_points_toward_their_goals():
    from diffgrn.behaviour import Store, System
    from diffgrn.goal_gradient import GoalGradient

    obj, reg, space = circuit(t_final=1.0)
    window = Trajectory(start=0.5, genes=(0,))
    kw = dict(observe=window, goal=Spectrum(), budget=20, batch=10, progress=False)
    lib = discover(obj, reg, space, UniformSearch(), key=jr.key(1), **kw)
    bound = space.bind(reg)
    system = System(obj, bound, window, Spectrum(), ())
    store = Store(jnp.asarray(lib.points), jnp.asarray(lib.goals), jnp.zeros((20, 0)),
                  jnp.asarray(lib.keys), jnp.asarray(20, jnp.int32))  # fmt: skip
    strategy = GoalGradient(GoalIMGEP(initial=10), steps=3, step_size=0.05)
    key = jr.key(7)
    moved = jax.jit(lambda k: strategy.propose(k, system, store, 10))(key)
    k_goal, k_mut, k_sim = jr.split(key, 3)
    goals, scale, source = strategy.imgep.targets(k_goal, store, 10)
    start = bound.mutate(k_mut, source, strategy.imgep.mutation)

    def dist(points):
        keys = jr.split(k_sim, 10)
        reached = jax.vmap(lambda p, k: Spectrum()(system.recording(p, k)))(points, keys)
        return np.asarray(strategy.imgep.distance(reached, goals, scale))

    assert np.all(np.asarray(moved) >= np.asarray(bound.low) - 1e-5)
    assert np.all(np.asarray(moved) <= np.asarray(bound.high) + 1e-5)
    assert np.mean(dist(moved)) < np.mean(dist(start))  # the steps descend on average
    assert strategy.solves() == 7.0 and from_config(strategy.config()) == strategy
    with pytest.raises(ValueError, match="GoalGradient.steps"):
        GoalGradient(steps=0)


def test_replay_checks_its_rows_and_library_before_any_compute():
    from test_discovery import small_library

    obj, reg, space = circuit()
    window = Trajectory(start=0.5, genes=(0,))
    patterns_only = small_library(reg)
    with pytest.raises(ValueError, match=r"replay's rows must be row numbers in \[0, 3\)"):
        replay(patterns_only, [1, 3], obj, space, window)
    with pytest.raises(ValueError, match="needs a library from behaviour.discover"):
        replay(patterns_only, [1], obj, space, window)
