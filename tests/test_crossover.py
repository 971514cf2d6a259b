"""Gradient training that scales with the regulator (`ClippedAdam.reference_fan_in`),
training at a wall-time budget (`train(time_budget=…)`) and the crossover study."""

import json

import equinox as eqx
import jax
import jax.flatten_util
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import diffgrn
from diffgrn.compare import Comparison, reached
from diffgrn.observe import Recording, ReferenceTrajectory, Trajectory
from diffgrn.train import History
from diffgrn.utility import Utility
from studies.__main__ import main as studies_main


def _first_step(optimiser, regulator):
    """The largest |Adam step| on the first update (Adam's first step is the learning
    rate times the gradient's sign, whatever its size)."""
    params = eqx.filter(regulator, eqx.is_inexact_array)
    grads = jax.tree_util.tree_map(lambda x: -jnp.ones_like(x), params)
    updates, _ = optimiser.update(grads, optimiser.init(params), params)
    flat, _ = jax.flatten_util.ravel_pytree(updates)
    return float(jnp.max(jnp.abs(flat)))


def test_adam_steps_fall_as_one_over_the_width():
    adam = diffgrn.ClippedAdam()
    narrow = diffgrn.MLPRegulator((8, 8), key=jr.key(0))
    wide = diffgrn.MLPRegulator((64, 64), key=jr.key(0))
    assert adam.width_factor(narrow) == 1.0  # model.md's MLP: unchanged
    assert adam.width_factor(wide) == 8 / 64
    assert adam.width_factor(diffgrn.TanhRegulator()) == 1.0  # no weight matrices
    # Adam's first step is about the learning rate per parameter, whatever the gradient.
    assert _first_step(adam, wide) == pytest.approx(3e-2 / 8, rel=1e-3)
    unscaled = diffgrn.ClippedAdam(reference_fan_in=None)
    assert _first_step(unscaled, wide) == pytest.approx(3e-2, rel=1e-3)
    assert diffgrn.ClippedAdam(reference_fan_in=64).width_factor(wide) == 1.0


def test_the_width_scaling_is_validated_and_round_trips():
    with pytest.raises(ValueError, match="reference_fan_in"):
        diffgrn.ClippedAdam(reference_fan_in=0)
    with pytest.raises(ValueError, match="reference_fan_in"):
        diffgrn.ClippedAdam().update({}, (), None)  # the step needs the parameters
    for adam in (diffgrn.ClippedAdam(), diffgrn.ClippedAdam(1e-2, 0.5, reference_fan_in=None)):
        config = json.loads(json.dumps(diffgrn.Gradient(adam).config()))
        assert diffgrn.from_config(config).optimiser == adam
    assert diffgrn.ClippedAdam().config()["reference_fan_in"] == 8


class Sphere(diffgrn.Objective):
    """'Hard utility' = −‖θ − 1‖²: no simulation, so the loop is what is timed."""

    def __init__(self):
        super().__init__(tissue=diffgrn.Chain(3), replicates=2)

    def hard(self, regulator, key, *, replicates=None):
        flat, _ = jax.flatten_util.ravel_pytree(eqx.filter(regulator, eqx.is_inexact_array))
        v = -jnp.sum((flat - 1.0) ** 2)
        return Utility(v, v, jnp.zeros(()))


def test_train_stops_when_its_time_budget_is_spent():
    reg = diffgrn.TanhRegulator(0.0, 0.0, 0.0)
    es = diffgrn.RandomSearch(population=4)
    kw = dict(key=jr.key(0), iterations=20, progress=False, select_top=1)
    res = diffgrn.train(Sphere(), reg, es, time_budget=1e-9, reassess=3, **kw)
    assert len(res.history) == 1 and res.config["time_budget"] == 1e-9
    assert [c["iteration"] for c in res.history.checks] == [0]  # the stop is judged
    assert res.history.wall_time[-1] >= 1e-9
    full = diffgrn.train(Sphere(), reg, es, time_budget=1e9, **kw)
    assert len(full.history) == 20  # iterations stay the cap
    with pytest.raises(ValueError, match="time_budget"):
        diffgrn.train(Sphere(), reg, es, time_budget=0.0, **kw)


class LossSphere(diffgrn.Objective):
    """A loss (`TrajectoryFit`, lower is better) = ‖θ − 1‖², no simulation."""

    def __init__(self):
        loss = ReferenceTrajectory(jnp.zeros((1, 3, 1)))
        fit = diffgrn.TrajectoryFit(loss, Trajectory())
        super().__init__(tissue=diffgrn.Chain(3), replicates=2, utility=fit)

    def hard(self, regulator, key, *, replicates=None):
        flat, _ = jax.flatten_util.ravel_pytree(eqx.filter(regulator, eqx.is_inexact_array))
        v = jnp.sum((flat - 1.0) ** 2) + 0.01 * jr.normal(key)
        return Utility(v, v, jnp.zeros(()))


def test_a_loss_is_reached_when_its_upper_bound_is_below_the_target():
    h = History(
        iteration=list(range(3)),
        hard_utility=[0.5, 0.2, 0.1],
        wall_time=[1.0, 2.0, 3.0],
        replicate_steps=[10, 20, 30],
    )
    assert reached(h, 0.25, direction=-1) == (2.0, 20)  # monitored draws, lower is better
    assert reached(h, 0.6) is None and reached(h, 0.45) == (1.0, 10)  # as a utility
    h.checks = [
        dict(mean=0.2, lower=0.15, upper=0.3, direction=-1, wall_time=2.0, replicate_steps=20),
        dict(mean=0.1, lower=0.08, upper=0.12, direction=-1, wall_time=3.0, replicate_steps=30),
    ]
    # The mean 0.2 is below 0.25 but its upper bound is not: the fair rule waits.
    h.direction = -1
    assert reached(h, 0.25) == (3.0, 30)  # the history's direction
    assert reached(h, 0.1) is None
    assert reached(h, 0.15, direction=1) == (2.0, 20)  # a utility: the lower bound ≥
    with pytest.raises(ValueError, match="direction"):
        reached(h, 0.1, direction=0)
    # train records the bounds and the direction of a loss in its checks.
    reg = diffgrn.TanhRegulator(0.0, 0.0, 0.0)
    res = diffgrn.train(
        LossSphere(), reg, diffgrn.RandomSearch(population=4), key=jr.key(0), iterations=6,
        progress=False, select_top=1, reassess=3, reassess_repeats=4,
    )  # fmt: skip
    checks = res.history.checks
    assert checks and all(c["direction"] == -1 for c in checks)
    assert all(c["lower"] < c["mean"] < c["upper"] for c in checks)
    best = min(c["upper"] for c in checks)
    first = next(c for c in checks if c["upper"] <= best)
    assert reached(res.history, best) == (first["wall_time"], first["replicate_steps"])
    assert reached(res.history, best - 1e-6) is None
    # Comparison's success rate counts a loss whose fresh upper 95 % bound is at or
    # below the target (0.5 + t₀.₉₇₅,₂ · 0.02 / √3 = 0.55 here; 0.997 for the second).
    tight, wide = dict(mean=0.5, values=[0.5, 0.52, 0.48]), dict(mean=0.5, values=[0.3, 0.7, 0.5])
    comp = Comparison(runs={"random": [res]}, fresh={"random": [tight]}, target=0.6)
    assert comp.table()[0]["success_rate"] == 1.0
    comp = Comparison(runs={"random": [res]}, fresh={"random": [wide]}, target=0.6)
    assert comp.table()[0]["success_rate"] == 0.0
    assert "upper 95 % bound is ≤ the target" in comp.to_markdown()
    # Without re-assessments the history still knows it holds a loss, and says so in
    # its record (older records: the direction their checks carry).
    plain = diffgrn.train(
        LossSphere(), reg, diffgrn.RandomSearch(population=4), key=jr.key(0), iterations=6,
        progress=False, select_top=1,
    )  # fmt: skip
    h2 = plain.history
    assert h2.direction == -1 and not h2.checks
    first = next(i for i, u in enumerate(h2.hard_utility) if u <= max(h2.hard_utility))
    assert reached(h2, max(h2.hard_utility)) == (h2.wall_time[first], h2.replicate_steps[first])
    assert reached(h2, min(h2.hard_utility) - 1e-6) is None
    assert History.from_dict(h2.to_dict()).direction == -1
    old = {k: v for k, v in res.history.to_dict().items() if k != "direction"}
    assert History.from_dict(old).direction == -1  # from its checks
    assert History.from_dict({**old, "checks": []}).direction == 1  # an old utility record


def test_reference_trajectory_is_zero_on_its_reference_and_checked():
    ref = jnp.linspace(0.0, 1.0, 12).reshape(4, 3, 1)
    loss = ReferenceTrajectory(ref)
    same = Recording(jnp.stack([ref + 0.1, ref - 0.1]), 0.1, 0.1)  # mean = ref
    assert float(loss(same)) == pytest.approx(0.0, abs=1e-6)
    off = Recording(jnp.stack([ref + 0.2, ref + 0.2]), 0.1, 0.1)
    assert float(loss(off)) == pytest.approx(0.2, rel=1e-5)  # RMS of the mean's error
    with pytest.raises(ValueError, match="same observable"):
        loss(Recording(jnp.zeros((2, 5, 3, 1)), 0.1, 0.1))
    with pytest.raises(ValueError, match="reference"):
        ReferenceTrajectory(jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match="finite"):
        ReferenceTrajectory(jnp.full((4, 3, 1), jnp.nan))
    config = json.loads(json.dumps(diffgrn.TrajectoryFit(loss, Trajectory()).config()))
    back = diffgrn.from_config(config)
    assert np.allclose(np.asarray(back.loss.reference), np.asarray(ref))


def _quick_chain():
    return diffgrn.Objective(
        tissue=diffgrn.Chain(7, "open"),
        dynamics=diffgrn.Dynamics(t_final=2.0, dt=0.02),
        replicates=32,
    )


@pytest.mark.slow  # ~30 s: CI runs it after the README suite
def test_a_wide_mlp_trains_with_the_width_scaling_and_collapses_without():
    # benchmarks/gradient_width.py, seed 0 of width 64: unscaled Adam ends at U = 0.000,
    # scaled at 0.315 (40 steps). Here 25 steps on the same objective and start.
    obj = _quick_chain()
    k_init, k_train, k_assess = jr.split(jr.key(0), 3)
    start = diffgrn.MLPRegulator((64, 64), key=k_init)
    fresh = {}
    for name, adam in (("scaled", diffgrn.ClippedAdam()), ("unscaled", None)):
        adam = adam or diffgrn.ClippedAdam(reference_fan_in=None)
        res = diffgrn.train(
            obj, start, diffgrn.Gradient(adam), key=k_train, iterations=25, progress=False,
            select_top=1,
        )  # fmt: skip
        f = diffgrn.assess(obj, res.final_regulator, key=k_assess, repeats=5, refine=None)
        fresh[name] = f["mean"]
    assert fresh["scaled"] > 0.2, fresh
    assert fresh["unscaled"] < 0.05, fresh


@pytest.mark.slow  # < 60 s: CI runs it after the README suite
def test_crossover_quick(tmp_path):
    out = tmp_path / "crossover"
    assert studies_main(["crossover", "--quick", "--out", str(out)]) == 0
    assert (out / "crossover.png").is_file()
    res = json.loads((out / "results.json").read_text())["results"]
    lattice = res["results"]["lattice"]
    ref = lattice["reference"]
    # The teacher's pattern is reproducible on fresh draws and not constant.
    assert ref["teacher_hit_rate_95"] >= 0.9 and ref["teacher_interior_agreement"] >= 0.95
    assert ref["constant_agreement"] < lattice["target"] <= ref["teacher_agreement"]
    assert {r["method"] for r in lattice["table"]} == {
        f"adam ({lattice['estimator']})",
        "cmaes",
        "random",
    }  # Adam named with the estimator the pilot picked, among the quick candidates
    assert set(lattice["pilot"]["scores"]) == {"pathwise", "few", "truncated"}
    for r in lattice["runs"]:
        assert 0.0 <= r["fresh"] <= 1.0 and r["wall_time"] >= 0.3  # the budget was spent
    assert res["largest"]["adam"]["step_bytes"] > 0


@pytest.mark.slow  # < 45 s: CI runs it after the README suite
def test_crossover_quick_trajectory_and_sizes(tmp_path):
    out = tmp_path / "crossover"
    argv = ["crossover", "--quick", "--tasks", "trajectory,sizes", "--sizes", "5",
            "--methods", "adam,random", "--out", str(out)]  # fmt: skip
    assert studies_main(argv) == 0
    assert (out / "crossover.png").is_file() and (out / "crossover_sizes.png").is_file()
    res = json.loads((out / "results.json").read_text())["results"]["results"]
    traj = res["trajectory"]
    ref = traj["reference"]
    # A loss: the teacher's noise floor < the target < the best constant trajectory's.
    assert traj["direction"] == -1
    assert ref["teacher_loss"] < traj["target"] < ref["constant_loss"] < ref["untrained_loss"]
    assert set(traj["pilot"]["scores"]) == {"pathwise", "few"}  # truncated: not with a trajectory
    picked = traj["pilot"]["scores"][traj["estimator"]]["fresh"]
    assert picked == min(s["fresh"] for s in traj["pilot"]["scores"].values())
    assert {r["method"] for r in traj["table"]} == {f"adam ({traj['estimator']})", "random"}
    for r in traj["runs"]:  # reached ⇔ some check's upper bound ≤ the target
        hit = any(upper <= traj["target"] for _, _, upper in r["checks"])
        assert hit == (r["time_to_target"] not in (None, "inf"))
    sizes = res["sizes"]
    assert [t["n_cells"] for t in sizes["table"]] == [25, 25]
    assert sizes["crossover"]["along"] == "n_cells"
    ref = sizes["reference"]["25"]
    assert ref["teacher_hit_rate_95"] >= 0.9
    assert ref["constant_agreement"] < sizes["target"]["25"] <= ref["teacher_agreement"]


def test_hard_teacher_guesses_are_random_search_draws_around_the_start():
    import argparse

    from studies.crossover import random_students

    args = argparse.Namespace(seed=0)
    guesses = random_students(args, jr.key(1), n=3)
    start = diffgrn.MLPRegulator((8, 8), key=jr.split(jr.fold_in(jr.key(0), 0), 3)[0])
    flat = lambda r: jax.flatten_util.ravel_pytree(eqx.filter(r, eqx.is_inexact_array))[0]
    steps = [flat(g) - flat(start) for g in guesses]
    assert len(guesses) == 3 and all(s.shape == (97,) for s in steps)
    for s in steps:  # θ₀ + z, z ~ N(0, I): unit-scale steps, a different one per draw
        assert 0.6 < float(jnp.std(s)) < 1.4
    assert not jnp.allclose(steps[0], steps[1])
