import dataclasses
import json
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import diffgrn
from diffgrn.cli import main as cli_main
from diffgrn.compare import reached
from diffgrn.train import HISTORY_FIELDS, History, check_points, lower_bound_95


def mean_over_keys(fn, regulator, n=6):
    return float(np.mean([float(fn(regulator, jr.key(1000 + i)).value) for i in range(n)]))


@pytest.fixture(scope="module")
def es_result(small_objective, mlp):
    return diffgrn.train(small_objective, mlp, "es", key=jr.key(0), iterations=25, progress=False)


@pytest.fixture(scope="module")
def adam_result(small_objective, mlp):
    # The first version's Adam (lr 1e-2) on the objective's own 16 replicates, so the
    # soft utility it trains on is the one the tests measure.
    adam = diffgrn.Gradient(diffgrn.default_optimiser(1e-2), diffgrn.Pathwise())
    return diffgrn.train(small_objective, mlp, adam, key=jr.key(0), iterations=20, progress=False)


def test_history_has_same_fields_for_every_method(es_result, adam_result):
    for res, n in ((es_result, 25), (adam_result, 20)):
        d = res.history.to_dict()
        assert set(d) == {*HISTORY_FIELDS, "checks", "direction"} and d["checks"] == []
        assert d["direction"] == 1  # a utility: higher is better
        assert all(len(d[k]) == n for k in HISTORY_FIELDS)
        assert np.all(np.diff(res.history.wall_time) >= 0)
        assert np.all(np.diff(res.history.replicate_steps) > 0)
    # ES: pop × R × steps per generation; Adam: R × steps per step.
    assert es_result.history.replicate_steps[0] == 20 * 16 * 40
    assert adam_result.history.replicate_steps[0] == 16 * 40
    assert all(math.isnan(g) for g in es_result.history.grad_norm)
    assert all(math.isfinite(g) and g >= 0 for g in adam_result.history.grad_norm)
    assert all(math.isfinite(u) for u in adam_result.history.soft_utility)


def test_es_improves_hard_utility(es_result, jitted, mlp):
    before = mean_over_keys(jitted["hard"], mlp)
    after = mean_over_keys(jitted["hard"], es_result.best_regulator)
    # Standard errors over the 6 keys are about 0.006 (before) and 0.03 (after).
    assert after > before + 0.1, (before, after)
    # The best regulator is re-selected among the top 5 on fresh draws.
    sel = es_result.selection
    assert sel["iterations"][0] == int(np.argmax(es_result.history.hard_utility))
    assert es_result.best_iteration in sel["iterations"]
    assert es_result.best_utility == max(sel["reassessed_means"])


def test_adam_lowers_soft_loss(adam_result, jitted, mlp):
    before = mean_over_keys(jitted["soft"], mlp)
    after = mean_over_keys(jitted["soft"], adam_result.final_regulator)
    assert after > before + 0.05, (before, after)


def test_assess_is_unbiased_repeat_of_hard(small_objective, jitted, mlp):
    out = diffgrn.assess(small_objective, mlp, key=jr.key(3), repeats=4)
    keys = jr.split(jr.key(3), 4)
    want = [float(jitted["hard"](mlp, k).value) for k in keys]
    assert np.allclose(out["values"], want, atol=1e-6)
    assert out["mean"] == pytest.approx(np.mean(want), abs=1e-6)


def test_eval_replicates_and_replace(small_objective, mlp):
    res = diffgrn.train(
        small_objective, mlp, "es", key=jr.key(0), iterations=1, eval_replicates=8, progress=False
    )
    assert res.config["eval_replicates"] == 8
    assert small_objective.replace(replicates=8).replicates == 8
    with pytest.raises(ValueError, match="replicates"):
        small_objective.replace(replicates=1)
    with pytest.raises(ValueError, match="sigma"):
        small_objective.dynamics.replace(sigma=-1.0)


def test_custom_optax_optimiser(small_objective, mlp):
    res = diffgrn.train(
        small_objective,
        mlp,
        "adam",
        key=jr.key(0),
        iterations=2,
        optimiser=optax.sgd(0.0),
        progress=False,
    )
    # A zero learning rate leaves the regulator unchanged.
    same = jax.tree_util.tree_map(
        jnp.array_equal,
        eqx.filter(res.final_regulator, eqx.is_array),
        eqx.filter(mlp, eqx.is_array),
    )
    assert all(jax.tree_util.tree_leaves(same))


def nan_at(step: int) -> optax.GradientTransformation:
    """An optimiser that behaves like SGD, then writes NaN into the parameters."""

    def init(params):
        return jnp.zeros((), jnp.int32)

    def update(grads, count, params=None):
        scale = jnp.where(count == step, jnp.nan, -1e-2)
        return jax.tree_util.tree_map(lambda g: scale * g, grads), count + 1

    return optax.GradientTransformation(init, update)


def test_nan_stops_with_iteration_and_keeps_best(small_objective, mlp):
    with pytest.warns(RuntimeWarning, match="iteration 3"):
        res = diffgrn.train(
            small_objective,
            mlp,
            "adam",
            key=jr.key(0),
            iterations=8,
            optimiser=nan_at(3),
            progress=False,
        )
    assert "non-finite" in res.error and "iteration 3" in res.error
    assert len(res.history) == 3
    leaves = jax.tree_util.tree_leaves(eqx.filter(res.best_regulator, eqx.is_array))
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in leaves)


@pytest.mark.parametrize("method", ["es", "cmaes", "random"])
def test_every_search_method_stops_on_non_finite_parameters(small_objective, mlp, method):
    # Infinite weights still give finite states here (tanh saturates): the ES used to
    # score them, carry on and save them. Now the method's state is checked too.
    bad = eqx.tree_at(lambda r: r.mlp.layers[0].weight, mlp, mlp.mlp.layers[0].weight * jnp.inf)
    with pytest.warns(RuntimeWarning, match="iteration 0"):
        res = diffgrn.train(
            small_objective, bad, method, key=jr.key(0), iterations=3, progress=False
        )
    assert "non-finite" in res.error and len(res.history) == 0


def test_non_finite_states_give_a_nan_hard_utility(small_objective):
    from conftest import ConstantRegulator

    util = small_objective.hard(ConstantRegulator(jnp.asarray(jnp.nan)), jr.key(0))
    assert all(bool(jnp.isnan(v)) for v in util)  # not U = 0 from NaN read as fate 0


def test_save_load_round_trip(tmp_path, adam_result, jitted):
    path = diffgrn.save(
        tmp_path / "run", adam_result.best_regulator, adam_result.config, adam_result.history
    )
    saved = diffgrn.load(path)
    a = eqx.filter(saved.regulator, eqx.is_array)
    b = eqx.filter(adam_result.best_regulator, eqx.is_array)
    assert all(jax.tree_util.tree_leaves(jax.tree_util.tree_map(jnp.array_equal, a, b)))
    assert saved.config == json.loads(json.dumps(adam_result.config))
    assert saved.history.hard_utility == adam_result.history.hard_utility
    assert (
        diffgrn.Objective.from_config(saved.config["objective"]).config()
        == adam_result.config["objective"]
    )
    # Tanh regulators round-trip too.
    tanh = diffgrn.TanhRegulator(2.0, 3.0, 0.4)
    back = diffgrn.load(diffgrn.save(tmp_path / "tanh", tanh)).regulator
    assert float(back.a) == 2.0 and float(back.c) == pytest.approx(0.4)


def test_load_errors(tmp_path, mlp):
    with pytest.raises(FileNotFoundError, match="missing"):
        diffgrn.load(tmp_path / "nothing")
    path = diffgrn.save(tmp_path / "trunc", mlp)
    data = (path / "regulator.eqx").read_bytes()
    (path / "regulator.eqx").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        diffgrn.load(path)
    path = diffgrn.save(tmp_path / "meta", mlp)
    text = (path / "meta.json").read_text()
    (path / "meta.json").write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match="not valid JSON"):
        diffgrn.load(path)
    path = diffgrn.save(tmp_path / "mismatch", mlp)
    meta = json.loads((path / "meta.json").read_text())
    meta["regulator"]["widths"] = [4, 4]
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="does not match"):
        diffgrn.load(path)


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: diffgrn.Chain(0), "n_cells"),
        (lambda: diffgrn.Chain(2, "pinned"), "n_cells"),
        (lambda: diffgrn.Chain(7, "closed"), "boundary"),
        (lambda: diffgrn.Chain(3.5), "n_cells"),
        (lambda: diffgrn.Dynamics(dt=0.0), "dt"),
        (lambda: diffgrn.Dynamics(dt=-1.0), "dt"),
        (lambda: diffgrn.Dynamics(t_final=0.001, dt=0.01), "t_final"),
        (lambda: diffgrn.Dynamics(t_final=1.0, dt=0.3), "whole number"),
        (lambda: diffgrn.Dynamics(sigma=-0.1), "sigma"),
        (lambda: diffgrn.Dynamics(sigma=float("nan")), "sigma"),
        (lambda: diffgrn.Dynamics(noise="unsafe"), "Dynamics.noise.*CounterNoise"),
        (lambda: diffgrn.Dynamics(constraint="logit"), "Dynamics.constraint.*Reflect"),
        (lambda: diffgrn.SoftReadout(0.0), "temperature"),
        (lambda: diffgrn.StraightThroughReadout("tanh"), "surrogate.*IdentityReadout"),
        (lambda: diffgrn.Objective(bandwidth=0.0), "bandwidth"),
        (lambda: diffgrn.Objective(replicates=1), "replicates"),
        (lambda: diffgrn.MuPlusLambdaES(population=5, parents=5), "population"),
        (lambda: diffgrn.MuPlusLambdaES(parents=0), "parents"),
        (lambda: diffgrn.MuPlusLambdaES(mutation=0.0), "mutation"),
        (lambda: diffgrn.MLPRegulator((8, 0), key=jr.key(0)), "widths"),
        (lambda: diffgrn.Gradient(optimiser="adam"), "optimiser"),
    ],
)
def test_validation_names_the_field(make, field, without_type_checks):
    with pytest.raises(ValueError, match=field):
        make()


def test_train_validates_method_and_iterations(small_objective, mlp):
    with pytest.raises(ValueError, match="method"):
        diffgrn.train(small_objective, mlp, "sgd", key=jr.key(0))
    with pytest.raises(ValueError, match="iterations"):
        diffgrn.train(small_objective, mlp, "es", key=jr.key(0), iterations=0)
    with pytest.raises(ValueError, match="select_top"):
        diffgrn.train(small_objective, mlp, "es", key=jr.key(0), select_top=0)


def test_train_is_deterministic(small_objective, mlp, es_result):
    again = diffgrn.train(small_objective, mlp, "es", key=jr.key(0), iterations=25, progress=False)
    assert again.history.hard_utility == es_result.history.hard_utility


def test_cli_train_and_compare(tmp_path):
    small = [
        "--quick",
        "--t-final",
        "1",
        "--dt",
        "0.05",
        "--replicates",
        "8",
        "--cells",
        "5",
        "--no-progress",
        "--boundary",
        "pinned",
    ]
    # `train` and `compare` write each run through the same code; `compare` covers both.
    assert (
        cli_main(
            [
                "compare",
                "--generations",
                "2",
                "--steps",
                "2",
                "--out",
                str(tmp_path / "cmp"),
                "--methods",
                "es,adam",
                "--target",
                "0.1",
                *small,
            ]
        )
        == 0
    )
    for f in ("compare.png", "compare.md", "compare.json"):
        assert (tmp_path / "cmp" / f).is_file(), f
    for run in ("es-seed0", "adam-seed0"):
        for f in (
            "history.json",
            "training_curve.png",
            "regulator.png",
            "patterns.png",
            "kymograph.png",
            "best/meta.json",
            "best/regulator.eqx",
        ):
            assert (tmp_path / "cmp" / run / f).is_file(), f"{run}/{f}"
    assert (
        diffgrn.load(tmp_path / "cmp" / "es-seed0" / "best").config["objective"]["tissue"][
            "boundary"
        ]
        == "pinned"
    )
    table = json.loads((tmp_path / "cmp" / "compare.json").read_text())["table"]
    assert [r["method"] for r in table] == ["es", "adam"]
    summary = json.loads((tmp_path / "cmp" / "es-seed0" / "history.json").read_text())
    assert summary["fresh_noise"]["repeats"] == 10


@pytest.mark.slow  # CI runs it after the README suite (kept under 5 minutes)
def test_cli_train_command(tmp_path, monkeypatch, capsys):
    # The 3-parameter reference regulator and truncated backpropagation from the CLI,
    # into the default folder.
    monkeypatch.chdir(tmp_path)
    argv = ["train", "--method", "adam", "--quick", "--t-final", "1", "--dt", "0.05",
            "--replicates", "8", "--cells", "5", "--no-progress", "--regulator", "tanh",
            "--backprop-steps", "5", "--bandwidth-to", "0.2", "--steps", "4"]  # fmt: skip
    assert cli_main(argv) == 0
    assert "fresh noise" in capsys.readouterr().out
    saved = diffgrn.load(tmp_path / "runs" / "adam-open-seed0" / "best")
    assert isinstance(saved.regulator, diffgrn.TanhRegulator)
    assert saved.config["method"]["estimator"]["backprop_steps"] == 5
    assert saved.config["method"]["bandwidth"] == dict(
        type="LinearSchedule", start=0.5, end=0.2, steps=3
    )
    assert saved.config["method"]["temperature"] is None


@pytest.mark.slow  # README suite's time (< 5 min on 2 cores)
def test_compare_same_start_per_seed_and_table(small_objective):
    seen = []
    comp = diffgrn.compare(
        small_objective,
        {"es": "es", "adam": "adam"},
        key=jr.key(0),
        seeds=2,
        iterations={"es": 2, "adam": 3},
        progress=False,
        assess_repeats=2,
        on_run=lambda name, seed, res, fresh: seen.append((name, seed)),
        reassess=None,  # judged on single draws here; re-assessments: the next test
    )
    assert seen == [("es", 0), ("adam", 0), ("es", 1), ("adam", 1)]
    assert [len(comp.runs[m][0].history) for m in ("es", "adam")] == [2, 3]
    assert comp.seeds == {"es": [0, 1], "adam": [0, 1]}
    # A target every run reaches at its first iteration: the lowest first utility. A
    # seed succeeds when the lower 95 % bound of its fresh draws is past it.
    target = min(r.history.hard_utility[0] for runs in comp.runs.values() for r in runs)
    assert target > 0
    comp = dataclasses.replace(comp, target=target)
    rows = {r["method"]: r for r in comp.table()}
    for name, row in rows.items():
        lower = [lower_bound_95(f["values"])[2] for f in comp.fresh[name]]
        assert row["seeds"] == 2 and row["success_rate"] == np.mean([b >= target for b in lower])
        first = [r.history.replicate_steps[0] for r in comp.runs[name]]
        assert row["median_replicate_steps_to_target"] == float(np.median(first))
    assert "| method |" in comp.to_markdown()
    (speed,) = comp.speedups("es")
    es_first = [r.history.replicate_steps[0] for r in comp.runs["es"]]
    adam_first = [r.history.replicate_steps[0] for r in comp.runs["adam"]]
    assert speed["method"] == "adam"
    assert speed["replicate_steps_ratio"] == [e / a for e, a in zip(es_first, adam_first)]
    assert f"Speed-up to U ≥ {target} against es" in comp.to_markdown("es")
    with pytest.raises(ValueError, match="unknown baseline"):
        comp.speedups("cmaes")


def test_reassessment_points_and_fair_time_to_target(small_objective, mlp):
    res = diffgrn.train(
        small_objective, mlp, "es", key=jr.key(3), iterations=6, progress=False,
        reassess=3, reassess_repeats=4,
    )  # fmt: skip
    checks = res.history.checks
    assert [c["iteration"] for c in checks] == check_points(6, 3) == [0, 1, 5]
    for c in checks:
        i = c["iteration"]
        assert c["lower"] < c["mean"] and c["repeats"] == 4
        assert c["wall_time"] == res.history.wall_time[i]
        assert c["replicate_steps"] == res.history.replicate_steps[i]
    assert History.from_dict(res.history.to_dict()).checks == checks
    # A lucky single draw crosses the target at iteration 1; the re-assessment's lower
    # bound only at iteration 4: the fair rule counts iteration 4, the old one 1.
    h = History(
        iteration=list(range(6)),
        hard_utility=[0.5, 0.71, 0.6, 0.65, 0.72, 0.73],
        wall_time=[1.0, 2, 3, 4, 5, 6],
        replicate_steps=[10, 20, 30, 40, 50, 60],
    )
    assert reached(h, 0.7) == (2.0, 20)
    h.checks = [
        dict(iteration=1, mean=0.66, lower=0.64, wall_time=2.0, replicate_steps=20),
        dict(iteration=4, mean=0.73, lower=0.705, wall_time=5.0, replicate_steps=50),
    ]
    assert reached(h, 0.7) == (5.0, 50)
    assert reached(h, 0.71) is None
    mean, std, lower = lower_bound_95([0.68, 0.67, 0.69, 0.70, 0.66])
    assert lower == pytest.approx(0.68 - 2.7764 * std / 5**0.5, abs=1e-4)


def test_cli_rejects_bad_values(capsys):
    with pytest.raises(SystemExit) as e:
        cli_main(["train", "--sigma", "-1", "--quick", "--no-progress"])
    assert e.value.code == 2
    assert "sigma" in capsys.readouterr().err


@pytest.mark.slow  # CI runs it after the README suite (kept under 5 minutes)
def test_cli_lattice_with_two_genes(tmp_path):
    # A hex sheet, two genes, own state as input, both readout genes: es and adam
    # write their figures, the fate map included, and the run loads back.
    small = [
        "--quick",
        "--t-final",
        "1",
        "--dt",
        "0.05",
        "--replicates",
        "8",
        "--tissue",
        "hex",
        "--size",
        "4x4",
        "--genes",
        "2",
        "--inputs",
        "both",
        "--fate-genes",
        "0,1",
        "--sigma",
        "0.1,0.2",
        "--no-progress",
    ]
    for method, flag in (("es", "--generations"), ("adam", "--steps")):
        out = tmp_path / method
        assert cli_main(["train", "--method", method, flag, "2", "--out", str(out), *small]) == 0
        for f in (
            "history.json",
            "fate_map.png",
            "patterns.png",
            "regulator.png",
            "training_curve.png",
        ):
            assert (out / f).is_file(), f"{method}/{f}"
        saved = diffgrn.load(out / "best")
        assert saved.regulator.genes == 2 and saved.regulator.inputs == "both"
        objective = diffgrn.Objective.from_config(saved.config["objective"])
        assert objective.tissue.geometry == "hex" and objective.fate_genes == (0, 1)
        assert objective.dynamics.sigma == (0.1, 0.2)


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--tissue", "square", "--size", "0x5"], "Lattice.rows"),
        (["--tissue", "hex", "--size", "ax3"], "--size"),
        (["--genes", "2", "--fate-genes", "2"], "Objective.fate_genes"),
        (["--genes", "2", "--regulator", "tanh"], "the regulator has genes=1 but --genes is 2"),
        (["--genes", "2", "--sigma", "0.1,0.1,0.1"], "Dynamics.sigma"),
    ],
)
def test_cli_rejects_bad_tissue_and_gene_options(argv, words, capsys):
    with pytest.raises(SystemExit) as e:
        cli_main(["train", "--quick", "--no-progress", *argv])
    assert e.value.code == 2
    assert words in capsys.readouterr().err


def test_cli_version_and_help(capsys):
    with pytest.raises(SystemExit) as e:
        cli_main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"diffgrn {diffgrn.__version__}"
    # The study list moved with the studies: tests/test_studies.py::test_study_list.
    with pytest.raises(SystemExit) as e:
        cli_main(["train", "-h"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--population POPULATION", "--lr LR", "--seed SEED", "--cells CELLS"):
        assert flag in out
    flat = " ".join(out.split())  # help lines wrap with the terminal width
    assert "(default: 20)" in flat and "(default: 0.03)" in flat and "(default: es)" in flat


@pytest.mark.slow  # README suite's time (< 5 min on 2 cores)
def test_train_counts_its_start_among_the_candidates(small_objective):
    """A start no step improves on is what train returns (iteration −1), whichever
    selection is used: fine-tuning never hands back something worse than its start."""
    start = diffgrn.TanhRegulator(1.0, 6.0, 0.4)
    ruin = diffgrn.Gradient(diffgrn.ClippedAdam(learning_rate=50.0, clip=1e6))
    u0 = diffgrn.assess(small_objective, start, key=jr.key(5), repeats=3, refine=None)["mean"]
    assert u0 > 0.3  # a regulator worth keeping
    for top in (1, 3):
        res = diffgrn.train(
            small_objective, start, ruin, key=jr.key(0), iterations=3, progress=False,
            select_top=top, select_repeats=2,
        )  # fmt: skip
        assert res.best_iteration == -1, res.history.hard_utility
        assert res.best_regulator == start
