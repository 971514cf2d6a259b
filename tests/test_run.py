"""One run description: `Run` round-trips, `diffgrn train --config` reproduces a run."""

import json

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import pytest

import diffgrn
from diffgrn.cli import main as cli_main

SMALL = ["--quick", "--t-final", "1", "--dt", "0.05", "--replicates", "8", "--cells", "5",
         "--no-progress"]  # fmt: skip


ONE = jnp.asarray(1.0)


class Gain(diffgrn.AbstractRegulator):
    """f = g (s̄ − ½) with a trainable array `g` whose default its config does not hold."""

    g: jnp.ndarray

    def __init__(self, g=ONE):
        self.g, self.genes = jnp.asarray(g), 1

    def __call__(self, s, sbar):
        return self.g * (sbar - 0.5)


def test_a_run_round_trips_through_its_config(small_objective):
    method = diffgrn.Hybrid(diffgrn.CMAES(population=6), diffgrn.Gradient(), switch=2)
    run = diffgrn.Run(small_objective, diffgrn.MLPRegulator(key=jr.key(9)), method,
                      iterations=4, seed=3, reassess=2, out="somewhere")  # fmt: skip
    back = diffgrn.Run.from_config(json.loads(json.dumps(run.config())))
    assert eqx.tree_equal(back, run) and back.config() == run.config()
    assert (
        back.folder.name == "somewhere" and run.replace(out=None).folder.name == "hybrid-open-seed3"
    )
    # the regulator is drawn from the seed, whatever key the template had
    assert eqx.tree_equal(
        run.regulator, run.replace(regulator=diffgrn.MLPRegulator(key=jr.key(1))).regulator
    )
    with pytest.raises(TypeError, match="Run.regulator"):  # parameters no config holds
        diffgrn.Run(small_objective, Gain(jnp.asarray(2.0)), method).config()
    diffgrn.Run(small_objective, diffgrn.TanhRegulator(2.0), method).config()  # a, b, c held
    with pytest.raises(ValueError, match="Run.seed"):
        diffgrn.Run(small_objective, diffgrn.TanhRegulator(), method, seed=-1)


def test_train_takes_a_run(small_objective, mlp):
    run = diffgrn.Run(small_objective, mlp, diffgrn.MuPlusLambdaES(), iterations=2, seed=1)
    a = run.train(progress=False)
    k_init, k_train = jr.split(jr.key(1))
    b = diffgrn.train(small_objective, run.regulator, run.method, key=k_train, iterations=2,
                      progress=False)  # fmt: skip
    assert a.history.hard_utility == b.history.hard_utility


def test_config_file_reproduces_the_run_exactly(tmp_path, capsys):
    first, again, third = tmp_path / "first", tmp_path / "again", tmp_path / "third"
    argv = ["train", "--method", "cmaes", "--population", "6", "--generations", "2", *SMALL]
    assert cli_main([*argv, "--seed", "2", "--out", str(first)]) == 0
    assert (first / "run.json").is_file()
    recorded = json.loads((first / "history.json").read_text())
    assert recorded["run"] == json.loads((first / "run.json").read_text())
    assert recorded["run"]["method"] == {"type": "CMAES", "population": 6, "sigma": 0.3}
    for source, out in ((first / "run.json", again), (first / "history.json", third)):
        assert cli_main(["train", "--config", str(source), "--out", str(out), "--no-progress"]) == 0
        copy = json.loads((out / "history.json").read_text())
        for field in ("iteration", "hard_utility", "hard_s_pat", "replicate_steps"):
            assert copy["history"][field] == recorded["history"][field], field
        assert copy["fresh_noise"]["values"] == recorded["fresh_noise"]["values"]
    capsys.readouterr()
    with pytest.raises(SystemExit):  # the file holds the whole run
        cli_main(
            [
                "train",
                "--config",
                str(first / "run.json"),
                "--lr",
                "0.1",
                "--out",
                str(tmp_path / "x"),
            ]
        )
    assert "drop --lr" in capsys.readouterr().err


@pytest.mark.parametrize(
    "content, words",
    [
        (None, "no such file"),
        ('{"type": "Run", "objective": {', "is not valid JSON (truncated?)"),
        ('{"type": "Chain", "n_cells": 5}', "does not describe a run"),
        ("[1, 2]", "does not describe a run"),
        ('{"type": "Run", "objective": {"type": "Objective"}}', "argument: 'regulator'"),
    ],
)
def test_a_bad_config_file_is_refused_naming_it(tmp_path, capsys, content, words):
    path = tmp_path / "run.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SystemExit) as e:
        cli_main(["train", "--config", str(path), "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"--config {path}" in err and words in err
    assert not (tmp_path / "x").exists()


def test_compare_and_explore_runs_round_trip_through_their_configs(small_objective):
    methods = {"es": diffgrn.MuPlusLambdaES(population=6, parents=2), "adam": diffgrn.Gradient()}
    run = diffgrn.CompareRun(small_objective, diffgrn.MLPRegulator(key=jr.key(0)), methods,
                             iterations={"es": 3}, seeds=[0, 2], target=0.5, out="c")  # fmt: skip
    back = diffgrn.config.from_config(json.loads(json.dumps(run.config())))
    assert isinstance(back, diffgrn.CompareRun) and back.config() == run.config()
    assert back.seeds == (0, 2) and back.replace(out="d").folder.name == "d"
    strategies = {"imgep": diffgrn.IMGEP(mutation=0.3), "random": diffgrn.RandomExploration()}
    explore = diffgrn.ExploreRun(small_objective, diffgrn.MLPRegulator(key=jr.key(5)),
                                 strategies, "fraction,like", budget=40, seed=1)  # fmt: skip
    again = diffgrn.ExploreRun.from_config(json.loads(json.dumps(explore.config())))
    assert again.config() == explore.config() and eqx.tree_equal(again.regulator, explore.regulator)
    assert explore.folder.name == "explore-open-seed1"
    with pytest.raises(ValueError, match="CompareRun.seeds lists the seed 0 twice"):
        diffgrn.CompareRun(small_objective, run.regulator, methods, seeds=[0, 0])
    with pytest.raises(ValueError, match="CompareRun.baseline 'cmaes' is not among"):
        diffgrn.CompareRun(small_objective, run.regulator, methods, baseline="cmaes")
    with pytest.raises(ValueError, match="ExploreRun.budget"):
        diffgrn.ExploreRun(small_objective, run.regulator, strategies, budget=0)


@pytest.mark.slow
def test_compare_and_explore_folders_rerun_from_their_descriptions(tmp_path, capsys):
    pop = ["--population", "4", "--parents", "2", "--generations", "2", "--reassess", "0"]
    assert cli_main(["compare", "--methods", "es,random", *pop, *SMALL, "--out",
                     str(tmp_path / "c")]) == 0  # fmt: skip
    assert cli_main(["rerun", str(tmp_path / "c"), "--out", str(tmp_path / "c2")]) == 0
    first, again = (json.loads((tmp_path / c / "compare.json").read_text()) for c in ("c", "c2"))
    assert again["description"]["type"] == "CompareRun"
    assert again["table"] == first["table"] and again["fresh"] == first["fresh"]
    argv = ["explore", "--budget", "40", "--batch", "20", *SMALL, "--out", str(tmp_path / "e")]
    assert cli_main(argv) == 0
    assert cli_main(["explore", "--config", str(tmp_path / "e" / "explore.json"), "--out",
                     str(tmp_path / "e2"), "--no-progress"]) == 0  # fmt: skip
    first, again = (json.loads((tmp_path / e / "explore.json").read_text()) for e in ("e", "e2"))
    assert again["coverage"] == first["coverage"] and again["filled"] == first["filled"]
    with pytest.raises(SystemExit):  # a compare description is not a training run
        cli_main(["train", "--config", str(tmp_path / "c" / "compare.json"), "--out",
                  str(tmp_path / "x")])  # fmt: skip
    assert "describes a CompareRun, not the Run that train runs" in capsys.readouterr().err


def test_a_run_carries_its_search_space(small_objective, without_type_checks):
    from diffgrn.space import Box, SearchSpace

    reg = diffgrn.TranscriptionalRegulator(1, key=jr.key(0))
    space = SearchSpace({"W": Box(-3, 3), "b": Box(-1, 1)}, frozen=("V", "log_k"))
    run = diffgrn.Run(small_objective, reg, diffgrn.CMAES(population=4), space=space)
    back = diffgrn.Run.from_config(json.loads(json.dumps(run.config())))
    assert back.config() == run.config() and back.space == space
    with pytest.raises(ValueError, match="Run.space"):
        diffgrn.Run(small_objective, reg, diffgrn.CMAES(), space={"W": (-3, 3)})
