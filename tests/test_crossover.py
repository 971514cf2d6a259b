"""Gradient training that scales with the regulator (`ClippedAdam.reference_fan_in`),
training at a wall-time budget (`train(time_budget=…)`) and the crossover study."""

import json

import equinox as eqx
import jax
import jax.flatten_util
import jax.numpy as jnp
import jax.random as jr
import pytest

import diffgrn
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
    assert {r["method"] for r in lattice["table"]} == {"adam", "cmaes", "random"}
    for r in lattice["runs"]:
        assert 0.0 <= r["fresh"] <= 1.0 and r["wall_time"] >= 0.3  # the budget was spent
    assert res["largest"]["adam"]["step_bytes"] > 0
