"""Fine-tuning that keeps what it had, and the search space bounding every method:
`train` with a trajectory objective (`TrajectoryFit`) selects by that loss, counts
its start, and keeps every candidate of every method in the box."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import diffgrn
from diffgrn.behaviour import fit, loss_of
from diffgrn.observe import TargetTrajectory, Trajectory
from diffgrn.space import Box, SearchSpace


def circuit(t_final=1.0):
    obj = diffgrn.Objective(
        tissue=diffgrn.Cell(),
        dynamics=diffgrn.Dynamics(t_final=t_final, dt=0.01, sigma=0.0),
        genes=3,
        replicates=1,
        utility=diffgrn.NoUtility(),
    )
    reg = diffgrn.TranscriptionalRegulator(3, key=jr.key(0), scale=5.0)
    reg = eqx.tree_at(lambda r: r.V, reg, jnp.ones((3, 3)))  # frozen, not zero
    space = SearchSpace(
        {"W": Box(-30, 30), "b": Box(-10, 10)}, frozen=("V", "log_k"), init=Box(0, 1)
    )
    return obj, reg, space


WHOLE = Trajectory(genes=(0,))


@pytest.mark.slow  # compiles a few solves: 3-11 s
def test_fine_tuning_returns_its_start_when_every_step_is_worse():
    obj, reg, space = circuit()
    bound = space.bind(reg)
    # a steady state y = 0.5 (W = 0, b = 0, y0 = 0.5) near a flat target at 0.55
    theta = jnp.concatenate([jnp.zeros(12), jnp.full(3, 0.5)])
    start = bound.regulator(theta)
    target = TargetTrajectory(0.0, 0.1, 0.55)
    start_loss = float(loss_of(obj, bound, target, WHOLE, jr.key(0))(theta[None])[0])
    big = diffgrn.ClippedAdam(5.0, clip=None)  # a step far too large: every step is worse
    res = fit(obj, space, start, target, WHOLE, steps=4, optimiser=big, key=jr.key(0))
    losses = np.asarray(res.history.hard_utility)
    assert len(losses) == 4 and np.all(losses > start_loss + 0.1)  # training made it worse
    assert res.best_iteration == -1 and res.best_utility == pytest.approx(start_loss)
    assert np.array_equal(np.asarray(bound.flatten(res.best_regulator)), np.asarray(theta))
    assert isinstance(res.best_regulator, diffgrn.Started)
    assert res.config["objective"]["utility"]["type"] == "TrajectoryFit"
    # the loss is what a gradient step lowers: at a sensible rate it improves on the start
    small = fit(
        obj,
        space,
        start,
        target,
        WHOLE,
        steps=4,
        optimiser=diffgrn.ClippedAdam(0.05),
        key=jr.key(0),
    )
    assert small.best_iteration >= 0 and small.best_utility < start_loss


def in_box(bound, regulator, template):
    theta = np.asarray(bound.flatten(regulator))
    inside = np.all(theta >= np.asarray(bound.low)) and np.all(theta <= np.asarray(bound.high))
    inner = regulator.regulator
    frozen = np.array_equal(np.asarray(inner.V), np.asarray(template.V)) and np.array_equal(
        np.asarray(inner.log_k), np.asarray(template.log_k)
    )
    return inside, frozen, theta


@pytest.mark.slow  # compiles a few solves: 3-11 s
def test_adam_iterates_are_projected_onto_the_box_and_frozen_leaves_untouched():
    obj, reg, space = circuit()
    bound = space.bind(reg)
    target = TargetTrajectory(0.3, 0.2, 0.5)
    start = bound.regulator(bound.uniform(jr.key(3), 1)[0])
    seen = []
    fit(obj, space, start, target, WHOLE, steps=6, optimiser=diffgrn.ClippedAdam(40.0, clip=None),
        key=jr.key(0), callback=lambda i, r: seen.append(r.final_regulator))  # fmt: skip
    assert len(seen) == 6
    at_bound = 0
    for r in seen:
        inside, frozen, theta = in_box(bound, r, reg)
        assert inside and frozen
        at_bound += np.sum((theta == np.asarray(bound.low)) | (theta == np.asarray(bound.high)))
    assert at_bound > 0  # the steps left the box and were clipped back


class SpyCMAES(diffgrn.CMAES):
    """CMA-ES that keeps each generation's evaluated population in its state."""

    def init(self, key, x0):
        return dict(super().init(key, x0), seen=jnp.zeros((self.population, x0.size)))

    def tell(self, state, population, fitness, key):
        return dict(super().tell(state, population, fitness, key), seen=population)


@pytest.mark.slow  # compiles a few solves: 3-11 s
def test_every_cmaes_candidate_stays_in_the_box():
    obj, reg, space = circuit()
    obj = obj.replace(utility=diffgrn.TrajectoryFit(TargetTrajectory(0.3, 0.2, 0.5), WHOLE))
    bound = space.bind(reg)
    start = bound.regulator(bound.uniform(jr.key(4), 1)[0])
    method = SpyCMAES(population=8, sigma=2.0)  # steps of twice the box: most leave it
    trainer = method.build(obj, start, bound)
    state = trainer.init(jr.key(0))
    step = jax.jit(trainer.step)
    clipped = 0
    for g in range(3):
        state, info = step(state, jr.key(g))
        u = np.asarray(state["seen"])
        assert np.all((u >= 0) & (u <= 1))
        clipped += np.sum((u == 0) | (u == 1))
        for x in u:
            inside, frozen, _ = in_box(bound, bound.decode(jnp.asarray(x)), reg)
            assert inside and frozen
        inside, frozen, _ = in_box(bound, trainer.candidate(state), reg)
        assert inside and frozen
    assert clipped > 0


@pytest.mark.slow  # compiles a few solves: 3-11 s
@pytest.mark.parametrize("method", [diffgrn.ES(population=6, parents=2, mutation=1.0),
                                    diffgrn.RandomSearch(population=6, scale=1.0)])  # fmt: skip
def test_es_and_random_search_candidates_stay_in_the_box(method):
    obj, reg, space = circuit()
    obj = obj.replace(utility=diffgrn.TrajectoryFit(TargetTrajectory(0.3, 0.2, 0.5), WHOLE))
    bound = space.bind(reg)
    start = bound.regulator(bound.uniform(jr.key(4), 1)[0])
    seen = []
    res = diffgrn.train(
        obj,
        start,
        method,
        space=space,
        key=jr.key(0),
        iterations=3,
        progress=False,
        callback=lambda i, r: seen.append(r.final_regulator),
    )
    for r in [*seen, res.best_regulator]:
        inside, frozen, _ = in_box(bound, r, reg)
        assert inside and frozen
    assert res.best_utility <= min(res.history.hard_utility) + 1e-6  # a loss: the least wins


def test_a_space_that_searches_the_start_needs_a_started_regulator():
    obj, reg, space = circuit()
    obj = obj.replace(utility=diffgrn.TrajectoryFit(TargetTrajectory(0.3, 0.2, 0.5), WHOLE))
    with pytest.raises(ValueError, match="Started"):
        diffgrn.train(obj, reg, "cmaes", space=space, key=jr.key(0), iterations=1)
    started = diffgrn.Started(reg, jnp.full(3, 0.5))
    assert diffgrn.from_config(started.config()).init.shape == (3,)


def test_search_space_coordinates_keep_the_box_and_the_frozen_leaves():
    _, reg, space = circuit()
    bound = space.bind(reg)
    theta = bound.uniform(jr.key(1), 1)[0]
    started = bound.regulator(theta)
    assert np.array_equal(np.asarray(bound.flatten(started)), np.asarray(theta))
    assert np.array_equal(np.asarray(bound.gather(started)), np.asarray(theta))  # a like-tree
    x = jnp.linspace(-2.0, 3.0, bound.size)  # population coordinates far outside the cube
    inside, frozen, _ = in_box(bound, bound.decode(bound.confine(x)), reg)
    assert inside and frozen
    assert np.all(np.asarray(bound.project(theta + 100.0)) == np.asarray(bound.high))
    u = bound.to_unit(theta)
    np.testing.assert_allclose(np.asarray(bound.from_unit(u)), np.asarray(theta), rtol=1e-5)
    every = diffgrn.space.AllLeaves(reg)
    flat = every.encode(reg)
    assert flat.shape == (2 * 9 + 2 * 3,)  # W, V, b, log k
    again = every.decode(flat)
    assert np.array_equal(np.asarray(again.W), np.asarray(reg.W))
    assert diffgrn.TrajectoryFit.direction == -1 and diffgrn.NoUtility.direction == 1
