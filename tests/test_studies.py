"""Every study runs from a checkout (`python -m studies NAME --quick`) and writes its
results and figure."""

import json

import pytest

from diffgrn.cli import main as cli_main
from studies import STUDIES
from studies.__main__ import main as studies_main


def run(name, tmp_path, *options):
    out = tmp_path / name
    assert studies_main([name, "--quick", "--out", str(out), *options]) == 0
    assert (out / f"{name}.png").is_file()
    return json.loads((out / "results.json").read_text())["results"]


def test_all_studies_listed():
    assert set(STUDIES) == {
        "stage_attribution",
        "horizon",
        "noise_replicates",
        "bias",
        "landscape",
        "first_version",
        "recipe",
        "traps",
        "resolution",
        "scaling",
        "estimators",
        "discovery",
        "population",
        "oscillators",
        "coupled",
        "goal_gradient",
        "crossover",
    }


def test_unknown_study_is_rejected(capsys):
    assert studies_main(["nope"]) == 2
    assert "usage" in capsys.readouterr().err


def test_study_list(capsys):
    assert studies_main(["-h"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {name}  " in out or f"  {name} " in out for name in STUDIES), out
    assert "Horizon: gradient norm" in out
    assert studies_main([]) == 0 and capsys.readouterr().out == out
    assert studies_main(["nope"]) == 2
    assert "unknown study 'nope'" in capsys.readouterr().err


def test_the_cli_points_to_the_studies_of_a_checkout(capsys):
    # The package cannot import the studies (they are not installed): the command's
    # old `study` subcommand says where they run instead.
    assert cli_main(["study", "horizon", "--quick"]) == 2
    assert "python -m studies NAME" in capsys.readouterr().err


@pytest.mark.slow  # 12-30 s each: CI runs them after the README suite
def test_stage_attribution_quick(tmp_path):
    res = run("stage_attribution", tmp_path)
    stages = res["stages"]
    assert len(stages) == 6
    for name, row in stages.items():
        if "STE identity" in name:
            # Identity backward: the readout passes ∂U/∂fates to s(T) unchanged.
            assert row["final_state"] == pytest.approx(row["fates"], rel=1e-5)
    assert all(len(v) == len(res["adjoint_times"]) for v in res["adjoint_norms"].values())


@pytest.mark.slow  # CI runs it after the README suite (kept under 5 minutes)
def test_horizon_quick_on_a_lattice_with_two_genes(tmp_path):
    # The studies take the tissue and genes options (the other studies: see the slow tests).
    res = run(
        "horizon", tmp_path, "--tissue", "hex", "--size", "3x4", "--genes", "2", "--inputs", "both"
    )
    meta = json.loads((tmp_path / "horizon" / "results.json").read_text())
    assert meta["model"] == dict(tissue="hex", size="3x4", boundary="open", genes=2, inputs="both")
    rows = res["random MLP | clip"]
    assert [r["t_final"] for r in rows] == [1.0]
    assert set(res) == {"random MLP | clip", "random MLP | none"}
    assert all(r["sample_norm"] >= 0 for r in rows)


@pytest.mark.slow  # 12-25 s each: CI runs them after the README suite
def test_noise_replicates_quick(tmp_path):
    res = run("noise_replicates", tmp_path)
    assert [r["sigma"] for r in res["sigma"]] == [0.01, 0.1]
    assert [r["replicates"] for r in res["replicates"]] == [32]


@pytest.mark.slow  # 12-25 s each: CI runs them after the README suite
def test_bias_quick(tmp_path):
    res = run("bias", tmp_path)
    assert len(res["rows"]) == 1
    assert all(-1.0 <= r["cos_path_es"] <= 1.0 for r in res["rows"])


@pytest.mark.slow  # 12-25 s each: CI runs them after the README suite
def test_landscape_quick(tmp_path):
    res = run("landscape", tmp_path)
    line = res["θ₀ → θ_ES"]
    assert len(line["x"]) == len(line["hard"]) == 9
    # α = 0 and α = 1 are θ₀ and θ_ES; training made θ_ES better on the hard utility.
    assert line["hard"][6] > line["hard"][2]


@pytest.mark.slow  # 12-25 s each: CI runs them after the README suite
def test_first_version_quick(tmp_path):
    res = run("first_version", tmp_path)
    s = res["summary"]
    assert s["training_steps"] == 30
    assert len(res["probes"]) == 31


@pytest.mark.slow  # 12-30 s each: CI runs them after the README suite
def test_recipe_quick_pinned(tmp_path):
    out = tmp_path / "recipe"
    assert studies_main(["recipe", "--quick", "--boundary", "pinned", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())["results"]
    assert results["boundary"] == "pinned" and results["threshold"] == 0.95
    res = results["variants"]
    assert list(res) == ["recipe", "h = 0.1 (model.md)"]
    for r in res.values():
        assert len(r["curve"]) == 3 and r["error"] is None
        assert 0.0 <= r["fresh_mean"] <= 1.0


@pytest.mark.slow  # CI runs it after the README suite (kept under 5 minutes)
def test_recipe_variants_option(tmp_path, capsys):
    out = tmp_path / "recipe"
    assert (
        studies_main(
            [
                "recipe",
                "--quick",
                "--variants",
                "soft clip instead of clip",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    res = json.loads((out / "results.json").read_text())["results"]["variants"]
    assert list(res) == ["soft clip instead of clip"]
    assert len(res["soft clip instead of clip"]["curve"]) == 3
    with pytest.raises(SystemExit):
        studies_main(["recipe", "--quick", "--variants", "no such variant", "--out", str(out)])
    assert "unknown ['no such variant']" in capsys.readouterr().err


@pytest.mark.slow  # 12-25 s each: CI runs them after the README suite
def test_traps_quick(tmp_path):
    # The noise docs/studies.md measured the traps with: at the default CounterNoise the
    # quick run's escaped regulator happens to end every draw on a wall too.
    res = run("traps", tmp_path, "--noise", "grid")
    trapped, escaped = res["trapped"]["clip"], res["escaped"]["clip"]
    # f ≈ +10 drives every free cell into the clip at 1: the pathwise gradient is 0.
    assert res["trapped"]["patterns"][0][0] == "0111110"
    assert trapped["final_at_bound"] == 1.0 and trapped["pathwise_norm_mean"] == 0.0
    assert escaped["pathwise_norm_mean"] > 0.0
    assert len(res["line"]["hard"]) == 7


def test_resolution_quick(tmp_path):
    res = run("resolution", tmp_path)
    dt = res["dt"]
    rows = res["tanh"]
    assert set(rows) == {"tanh a=1 b=10 c=0.4", "tanh a=30 b=10 c=0.4"}
    for name, r in rows.items():
        a = 1.0 if "a=1 " in name else 30.0
        # f' = −a·b at s̄ = c, a grid point: the stiffness is exactly dt·a·b.
        assert abs(r["stiffness"] - dt * a * 10.0) < 1e-4 * dt * a * 10.0
        assert 0.0 <= r["u_dt"] <= 1.0 and 0.0 <= r["u_fine"] <= 1.0
    assert res["best_resolved"]["name"] == "tanh a=1 b=10 c=0.4"
    assert res["best_unresolved"]["name"] == "tanh a=30 b=10 c=0.4"


@pytest.mark.slow  # ~30 s: CI runs it after the README suite
def test_scaling_quick(tmp_path):
    res = run("scaling", tmp_path)
    rows = res["rows"]
    assert set(rows) == {
        f"{r} | {g}"
        for r in ("random MLP", "tanh lateral inhibition")
        for g in ("chain", "square", "hex")
    }
    for table in rows.values():
        for row in table:
            assert row["cells"] == 16 and -1.0 <= row["cosine_pathwise_es"] <= 1.0
            assert row["snr"] > 0 and 0.0 <= row["hard_utility"] <= 1.0


@pytest.mark.slow  # CI runs it after the README suite
def test_estimators_quick(tmp_path):
    rows = run("estimators", tmp_path)["rows"]
    names = {r["estimator"] for r in rows}
    assert names == {"pathwise (∇U_soft)", "likelihood ratio", "antithetic ES",
                     "inverse-variance (LR, ES)"}  # fmt: skip
    for r in rows:
        assert -1.0 <= r["cosine"] <= 1.0 and r["variance"] >= 0 and r["cost"] > 0


@pytest.mark.slow  # CI runs it after the README suite
def test_discovery_quick(tmp_path):
    res = run("discovery", tmp_path)
    cov = res["coverage"]
    assert set(cov) == {"chain-open", "chain-pinned", "hex3x3-open"}
    for c in cov.values():
        for row in c["seeds"]:
            assert row["imgep"] >= 1 and row["random"] >= 1
            assert row["curves"]["imgep"][-1][0] == 48
    for name in ("gallery-chain-open.png", "descriptors-hex3x3-open.png"):
        assert (tmp_path / "discovery" / name).is_file()
    assert len(res["finetune"]) == 2
    for row in res["finetune"]:
        for start in ("random start", "nearest discovery"):
            assert 0 <= row[start]["hit"] <= 1 and 0 <= row[start]["agreement"] <= 1


@pytest.mark.slow  # CI runs it after the README suite
def test_population_quick(tmp_path):
    res = run("population", tmp_path)
    assert [r["method"] for r in res["table"]] == ["cmaes", "pbt"]
    assert all(0.0 <= v <= 1.0 for f in res["fresh"].values() for v in f)
    assert res["methods"]["pbt"]["type"] == "GradientPopulation"


@pytest.mark.slow  # CI runs it after the README suite
def test_oscillators_quick(tmp_path):
    res = run("oscillators", tmp_path)
    for row in res["seeds"]:
        for m in ("imgep", "random"):
            assert 0 <= row[m]["oscillators"] <= 400 and row[m]["curve"][-1][0] == 400
    for row in res["finetune"]["rows"]:
        if row.get("loss_best") is not None:
            assert row["loss_best"] <= row["loss_start"]  # the start counts
    for name in ("gallery.png", "finetune.png"):
        assert (tmp_path / "oscillators" / name).is_file()


@pytest.mark.slow  # ~30 s: CI runs it after the README suite
def test_coupled_quick(tmp_path):
    res = run("coupled", tmp_path)
    kinds = ("synchronous", "travelling wave", "alternating", "incoherent", "none")
    assert [r["method"] for r in res["search"]] == [
        "random, V = 0", "random, V searched", "IMGEP, V searched"]  # fmt: skip
    for row in res["search"]:
        assert sum(row[k] for k in kinds) == 200
    for row in res["sweep"]:
        assert sum(row[k] for k in kinds) == res["circuits"] * res["settings"]["draws"]
    assert sorted({r["coupling"] for r in res["sweep"]}) == [-10.0, 0.0, 10.0]
    assert res["kymograph"] is None or len(res["kymograph"]["waves"]) == 6


@pytest.mark.slow  # ~25 s: CI runs it after the README suite
def test_goal_gradient_quick(tmp_path):
    res = run("goal_gradient", tmp_path)
    row = res["rows"][0]
    assert row["imgep"]["solves"] == 400 and row["gradient"]["solves"] <= 400
    assert row["gradient"]["stored"] > res["initial"]  # some goal-directed points
    assert row["gradient, equal points"]["stored"] == 400
    for m in ("imgep", "gradient", "gradient, equal points"):
        assert 0 <= row[m]["oscillators"] <= row[m]["stored"] and row[m]["bins"] >= 1
    assert (tmp_path / "goal_gradient" / "goal_gradient.png").is_file()
